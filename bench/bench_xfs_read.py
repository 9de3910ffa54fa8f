#!/usr/bin/env python3
"""Reading a 64 MiB file out of XFS images with virtkit's XFS reader.

Peers, measured in the same run on the same images:

* ``cat`` of the same file from a read-only loop mount of the image (the kernel's
  XFS driver; the I/O floor the issue names).  Needs root, a loop device and a
  kernel that mounts the variant (many kernels no longer mount v4); without them
  the row says n/a and why;
* ``cat`` of the source file on tmpfs (no filesystem at all: the memory floor);
* a plain ``os.pread`` loop over the file's bytes in the image (the floor for a Python reader).

Images (on tmpfs, warm in the page cache):

* v5, 4 KiB blocks, made by ``mkfs.xfs -p`` (the file is one or two extents);
* v4, 1 KiB blocks, ``-m crc=0`` (same, smaller blocks);
* v5, 4 KiB blocks, the file written through a loop mount and then every other
  4 KiB hole-punched: 8192 one-block extents in a bmbt, half the file holes (root only).

A second table lists a 3000-entry node-form directory and stats every entry,
against ``xfs_db -c "ls"`` (which does not stat) and ``ls -l`` on the loop mount.

    python3 bench/bench_xfs_read.py [--size-mib 64] [--repeat 7] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "tools"))

from _common import (
    Timing,
    format_bytes,
    format_ratio,
    format_seconds,
    format_throughput,
    machine_summary,
    markdown_table,
    time_callable,
    time_command,
    update_benchmarks_md,
)
from xfs_protofile import render

from virtkit._streams import FileSource, iter_chunks
from virtkit.boot.fs import open_filesystem
from virtkit.limits import DEFAULT_LIMITS

MiB = 1 << 20
ENV = {**os.environ, "TEST_DEV": "bench", "TEST_DIR": "bench", "QA_CHECK_FS": "bench"}  # allow small filesystems


def read_file(image: Path, path: str, chunk: int = MiB) -> int:
    """Open the image through the probe table, find ``path`` and read it all."""
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        total = 0
        for part in iter_chunks(fs.lookup(path).open(), chunk=chunk):
            total += len(part)
        return total
    finally:
        os.close(fd)


def sha256_file(image: Path, path: str) -> str:
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        h = hashlib.sha256()
        for part in iter_chunks(fs.lookup(path).open()):
            h.update(part)
        return h.hexdigest()
    finally:
        os.close(fd)


def raw_pread_runs(image: Path, path: str) -> list[tuple[int, int]]:
    """(volume offset, length) of the file's data runs, found once by the reader."""
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        src = fs.lookup(path).open()
        return [(r.source_offset, r.length) for r in src.runs]  # type: ignore[attr-defined]
    finally:
        os.close(fd)


def raw_pread(image: Path, runs: list[tuple[int, int]], chunk: int = MiB) -> int:
    """The floor for a Python reader: os.pread of the same bytes, 1 MiB at a time, no filesystem."""
    fd = os.open(image, os.O_RDONLY)
    try:
        total = 0
        for off, length in runs:
            end = off + length
            while off < end:
                n = min(chunk, end - off)
                total += len(os.pread(fd, n, off))
                off += n
        return total
    finally:
        os.close(fd)


def list_and_stat(image: Path, path: str) -> int:
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        return sum(entry.node().stat().size >= 0 for entry in fs.lookup(path).iter_dir())
    finally:
        os.close(fd)


@contextlib.contextmanager
def mounted(image: Path, where: Path, *, ro: bool = True) -> Iterator[tuple[Path | None, str]]:
    """A loop mount of ``image`` (read-only unless ``ro`` is False), or (None, reason)."""
    if os.geteuid() != 0:
        yield None, "not root"
        return
    where.mkdir(exist_ok=True)
    opts = "ro,loop,norecovery" if ro else "loop"
    r = subprocess.run(["mount", "-t", "xfs", "-o", opts, str(image), str(where)], check=False, capture_output=True, text=True)
    if r.returncode:
        yield None, "the kernel does not mount it"
        return
    try:
        yield where, ""
    finally:
        subprocess.run(["umount", str(where)], check=True)


def mkfs(image: Path, size: int, opts: list[str], proto: Path | None) -> None:
    subprocess.run(["truncate", "-s", str(size), str(image)], check=True)
    args = ["mkfs.xfs", "-q", "-f", *opts] + (["-p", str(proto)] if proto else []) + [str(image)]
    subprocess.run(args, check=True, capture_output=True, env=ENV)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="16 MiB, 3 runs: a smoke test")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.repeat = 16, 3
    for tool in ("mkfs.xfs", "xfs_db", "xfs_io", "cat"):
        if shutil.which(tool) is None:
            print(f"bench_xfs_read: {tool} is not installed (apt-get install xfsprogs coreutils)", file=sys.stderr)
            return 2
    size = args.size_mib * MiB
    r, w = args.repeat, args.warmup
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    rows: list[list[str]] = []
    dir_rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="virtkit-bench-", dir=base) as tmp:
        work = Path(tmp)
        tree = work / "tree"
        tree.mkdir()
        big = tree / "big"
        big.write_bytes(random.Random(2024).randbytes(size))
        (tree / "big-dir").mkdir()
        for i in range(3000):
            (tree / "big-dir" / f"entry-{i:06d}-{'x' * (i % 40)}").write_bytes(b"")
        proto = work / "proto"
        proto.write_bytes(render(tree))
        floor = time_command(["cat", str(big)], repeat=r, warmup=w, name="cat (tmpfs, no filesystem)")
        # xfsprogs 6.1's protofile code allocates a file inside one AG and silently leaves the
        # rest a hole when it does not fit, so the AGs here are made larger than the file.
        img_size = 2 * size + 96 * MiB
        want = hashlib.sha256(big.read_bytes()).hexdigest()
        variants: list[tuple[str, Path, str]] = []
        v5 = work / "v5-4k.img"
        mkfs(v5, img_size, ["-b", "size=4096", "-d", "agcount=2"], proto)
        variants.append(("v5, 4 KiB blocks (mkfs -p)", v5, "/big"))
        v4 = work / "v4-1k.img"
        mkfs(v4, img_size, ["-m", "crc=0", "-b", "size=1024", "-d", "agcount=2"], proto)
        variants.append(("v4, 1 KiB blocks (mkfs -p)", v4, "/big"))
        frag = work / "v5-frag.img"
        mkfs(frag, img_size, ["-b", "size=4096", "-d", "agcount=2"], None)
        frag_note = ""
        with mounted(frag, work / "mnt-build", ro=False) as (mnt, why):
            if mnt is None:
                frag_note = f"the fragmented variant needs a read-write loop mount ({why}); left out"
            else:
                shutil.copyfile(big, mnt / "big")
                cmds: list[str] = []
                for off in range(4096, size, 8192):
                    cmds += ["-c", f"fpunch {off} 4096"]
                subprocess.run(["xfs_io", *cmds, str(mnt / "big")], check=True)
        if not frag_note:
            variants.append((f"v5, 4 KiB blocks, {size // 8192} extents (bmbt), half holes", frag, "/big"))
        for label, image, path in variants:
            print(f"{label}: {image.name}", file=sys.stderr)
            if read_file(image, path) != size:
                print("bench_xfs_read: the reader returned the wrong size", file=sys.stderr)
                return 1
            if image is not frag and sha256_file(image, path) != want:
                print(f"bench_xfs_read: {image.name}: the reader returned the wrong bytes", file=sys.stderr)
                return 1
            ours = time_callable(lambda image=image, path=path: read_file(image, path), repeat=r, warmup=w, name="virtkit")
            runs = raw_pread_runs(image, path)
            raw = time_callable(lambda image=image, runs=runs: raw_pread(image, runs), repeat=r, warmup=w, name="os.pread")
            kernel: Timing | None = None
            with mounted(image, work / f"mnt-{image.stem}") as (mnt, why):
                if mnt is not None:
                    kernel = time_command(["cat", str(mnt / path.lstrip("/"))], repeat=r, warmup=w, name="cat (loop mount)")
                    if image is not frag:
                        kls = time_command(["ls", "-l", str(mnt / "big-dir")], repeat=r, warmup=w, name="ls -l (loop mount)")
            rows.append(
                [
                    label,
                    format_seconds(ours.median),
                    format_throughput(size, ours.median),
                    format_ratio(ours.median / kernel.median) if kernel else f"n/a ({why})",
                    format_ratio(ours.median / floor.median),
                    format_ratio(ours.median / raw.median),
                    format_seconds(kernel.median) if kernel else "n/a",
                    format_seconds(raw.median),
                ]
            )
            print(f"  {ours.describe(size)}" + (f"; {kernel.describe(size)}" if kernel else ""), file=sys.stderr)
            if image is frag:
                continue
            listing = time_callable(lambda image=image: list_and_stat(image, "/big-dir"), repeat=r, warmup=w, name="virtkit ls")
            dbls = time_command(["xfs_db", "-r", "-c", "path /big-dir", "-c", "ls", str(image)], repeat=r, warmup=w, name="xfs_db ls")
            dir_rows.append(
                [
                    label,
                    format_seconds(listing.median),
                    format_seconds(dbls.median),
                    format_ratio(listing.median / dbls.median),
                    format_seconds(kls.median) if kernel else "n/a",
                    format_ratio(listing.median / kls.median) if kernel else "n/a",
                ]
            )

    table = markdown_table(
        ["image", "virtkit", "throughput", "vs cat (loop mount)", "vs cat (tmpfs)", "vs os.pread", "cat (loop mount)", "os.pread"], rows
    )
    dir_table = markdown_table(
        ["image", "virtkit list + stat", "xfs_db ls", "vs xfs_db", "ls -l (loop mount)", "vs ls -l"], dir_rows
    )
    note = f"\n\n{frag_note}." if frag_note else ""
    text = f"""## XFS: reading a {format_bytes(size)} file (`bench/bench_xfs_read.py`)

A {format_bytes(size)} file of random bytes in XFS images on tmpfs, all warm in the page cache.
virtkit opens the image through `open_filesystem`, resolves `/big` and reads it in 1 MiB `pread`s
(extents are merged into runs, so a contiguous file is one `pread` per MiB; the fragmented file has
every other 4 KiB block punched out, so it is 8192 extents read through a two-level bmbt, with
zeros for the holes). Peers: `cat` of the same file from a read-only loop mount (the kernel's XFS
driver, the I/O floor), `cat` of the source file on tmpfs, which took
{format_seconds(floor.median)}, and a plain Python `os.pread` loop over the same bytes of the image
(1 MiB at a time, the file's runs found beforehand: the floor for any Python reader). Median of {r} runs after {w} warm-up run(s). Ratios: time / peer
time (lower is better).{note}

{table}

Listing a 3000-entry node-form directory and reading every entry's inode (virtkit, including
opening the image), against `xfs_db -c ls` (lists without reading the inodes) and `ls -l` on the
loop mount (reads them; both are whole processes):

{dir_table}

Machine: {machine_summary()}.
"""
    print(text)
    if not args.no_write:
        update_benchmarks_md("xfs-read", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
