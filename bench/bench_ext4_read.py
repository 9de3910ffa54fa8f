#!/usr/bin/env python3
"""Reading a 64 MiB file out of ext4 / ext3 / ext2 images with virtkit's ext4 reader.

Peers, measured in the same run on the same images:

* ``cat`` of the same file from a read-only loop mount of the image (the kernel's
  ext4 driver; the I/O floor the issue names).  Needs root and a loop device;
  without them this row is left out and said so;
* ``cat`` of the source file on tmpfs (no filesystem at all: the memory floor);
* ``debugfs -R "dump /big /dev/null"`` (e2fsprogs' userspace reader, in C).

Images (made fresh with ``mke2fs -d`` on tmpfs, all warm in the page cache):
ext4 with 4 KiB blocks (one extent per 128 MiB), ext3 with 4 KiB blocks
(block maps: 12 direct + indirect + double-indirect blocks) and ext2 with 1 KiB
blocks (256 pointers per indirect block: 65 536 pointers to walk).  A second
table lists a 3000-entry htree directory and stats every entry, against
``debugfs -R "ls -l"``.

    python3 bench/bench_ext4_read.py [--size-mib 64] [--repeat 7] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
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

from virtkit._streams import FileSource, iter_chunks
from virtkit.boot.fs import open_filesystem
from virtkit.limits import DEFAULT_LIMITS

MiB = 1 << 20
VARIANTS = [
    ("ext4, 4 KiB blocks, extents", ["mkfs.ext4", "-t", "ext4", "-b", "4096"]),
    ("ext3, 4 KiB blocks, block maps", ["mkfs.ext3", "-t", "ext3", "-b", "4096"]),
    ("ext2, 1 KiB blocks, block maps", ["mkfs.ext2", "-t", "ext2", "-b", "1024"]),
]


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


def list_and_stat(image: Path, path: str) -> int:
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        return sum(entry.node().stat().size >= 0 for entry in fs.lookup(path).iter_dir())
    finally:
        os.close(fd)


@contextlib.contextmanager
def mounted(image: Path, where: Path) -> Iterator[Path | None]:
    """A read-only loop mount of ``image``, or None (with a reason printed) if not possible."""
    if os.geteuid() != 0:
        print("  (not root: no loop-mount peer)", file=sys.stderr)
        yield None
        return
    where.mkdir()
    r = subprocess.run(["mount", "-o", "ro,loop", str(image), str(where)], check=False, capture_output=True, text=True)
    if r.returncode:
        print(f"  (cannot loop-mount: {r.stderr.strip()})", file=sys.stderr)
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


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
    for tool in ("mkfs.ext4", "debugfs", "cat"):
        if shutil.which(tool) is None:
            print(f"bench_ext4_read: {tool} is not installed (apt-get install e2fsprogs coreutils)", file=sys.stderr)
            return 2
    size = args.size_mib * MiB
    r, w = args.repeat, args.warmup
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="virtkit-bench-", dir=base) as tmp:
        work = Path(tmp)
        tree = work / "tree"
        tree.mkdir()
        big = tree / "big"
        big.write_bytes(random.Random(2024).randbytes(size))
        (tree / "big-dir").mkdir()
        for i in range(3000):
            (tree / "big-dir" / f"entry-{i:06d}-{'x' * (i % 40)}").write_bytes(b"x")
        floor = time_command(["cat", str(big)], repeat=r, warmup=w, name="cat (tmpfs, no filesystem)")
        dir_rows = []
        for label, mkfs in VARIANTS:
            image = work / (mkfs[2] + mkfs[4] + ".img")
            subprocess.run(["truncate", "-s", str(size + 64 * MiB), str(image)], check=True)
            subprocess.run([*mkfs, "-q", "-F", "-N", "8192", "-d", str(tree), str(image)], check=True, capture_output=True)
            fsck = subprocess.run(["e2fsck", "-fyD", str(image)], check=False, capture_output=True)  # htree for big-dir
            if fsck.returncode not in (0, 1):  # 1: "file system was modified", expected
                print(f"bench_ext4_read: e2fsck -D failed on {image.name}", file=sys.stderr)
                return 1
            print(f"{label}: {image.name}", file=sys.stderr)
            if read_file(image, "/big") != size:
                print("bench_ext4_read: the reader returned the wrong size", file=sys.stderr)
                return 1
            ours = time_callable(lambda image=image: read_file(image, "/big"), repeat=r, warmup=w, name="virtkit")
            dump = time_command(["debugfs", "-R", "dump /big /dev/null", str(image)], repeat=r, warmup=w, name="debugfs dump")
            kernel: Timing | None = None
            with mounted(image, work / f"mnt-{image.stem}") as mnt:
                if mnt is not None:
                    kernel = time_command(["cat", str(mnt / "big")], repeat=r, warmup=w, name="cat (loop mount)")
            rows.append(
                [
                    label,
                    format_seconds(ours.median),
                    format_throughput(size, ours.median),
                    format_ratio(ours.median / kernel.median) if kernel else "n/a",
                    format_ratio(ours.median / floor.median),
                    format_ratio(ours.median / dump.median),
                    format_seconds(kernel.median) if kernel else "n/a",
                    format_seconds(dump.median),
                ]
            )
            listing = time_callable(lambda image=image: list_and_stat(image, "/big-dir"), repeat=r, warmup=w, name="virtkit ls")
            dls = time_command(["debugfs", "-R", "ls -l /big-dir", str(image)], repeat=r, warmup=w, name="debugfs ls -l")
            dir_rows.append([label, format_seconds(listing.median), format_seconds(dls.median), format_ratio(listing.median / dls.median)])
            print(f"  {ours.describe(size)}; {dump.describe(size)}" + (f"; {kernel.describe(size)}" if kernel else ""), file=sys.stderr)

    table = markdown_table(
        [
            "image",
            "virtkit",
            "throughput",
            "vs cat (loop mount)",
            "vs cat (tmpfs)",
            "vs debugfs dump",
            "cat (loop mount)",
            "debugfs dump",
        ],
        rows,
    )
    dir_table = markdown_table(["image", "virtkit list + stat", "debugfs ls -l", "ratio"], dir_rows)
    text = f"""## ext2/3/4: reading a {format_bytes(size)} file (`bench/bench_ext4_read.py`)

A {format_bytes(size)} file of random bytes in images made by `mke2fs -d` on tmpfs, all warm in
the page cache. virtkit opens the image through `open_filesystem`, resolves `/big` and reads it in
1 MiB `pread`s (contiguous blocks are merged into runs, so an extent-mapped file is one `pread` per
MiB). Peers: `cat` of the same file from a read-only loop mount (the kernel's ext4 driver, the I/O
floor), `cat` of the source file on tmpfs, and e2fsprogs' `debugfs -R "dump /big /dev/null"`.
`cat` of the tmpfs source took {format_seconds(floor.median)}. Median of {r} runs after {w} warm-up
run(s). Ratios: time / peer time (lower is better).

{table}

Listing a 3000-entry htree directory (read linearly) and reading every entry's inode, against
`debugfs -R "ls -l"` (which also reads each inode; both include opening the image):

{dir_table}

Machine: {machine_summary()}.
"""
    print(text)
    if not args.no_write:
        update_benchmarks_md("ext4-read", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
