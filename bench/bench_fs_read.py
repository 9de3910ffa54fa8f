#!/usr/bin/env python3
"""Reading a 64 MiB file through every filesystem reader, against the kernel reading the same image.

For each reader in the probe table (ext4, XFS, btrfs uncompressed and zstd,
vfat, iso9660) an image holding ``/big`` is made with the real tools
(``mkfs.ext4 -d``, ``mkfs.xfs -p protofile``, ``mkfs.btrfs --rootdir``, a
loop mount with ``compress-force=zstd`` for btrfs zstd, ``mkfs.vfat`` +
``mcopy``, ``xorriso``).  In the same run:

* **virtkit**: ``open_filesystem(image).lookup("/big").open()`` read in 1 MiB
  chunks (opening the image and resolving the path included);
* **kernel** (the I/O floor): ``cat`` of ``/big`` from a read-only loop mount of
  the same image (needs root and the kernel filesystem; rows without it say so);
* **cat tmpfs**: ``cat`` of the source file on tmpfs (no filesystem at all);
* for vfat and iso9660, whose kernel drivers may be missing, the userspace
  tools ``mtype`` (mtools) and ``isoinfo -x`` as extra peers.

Cache state: images live on tmpfs (``/dev/shm``); virtkit and each peer are
timed alternately (one run each per round) after uncounted warm-up rounds, so both sides read from the page cache
(the loop device's cache for the kernel): this compares CPU cost per byte,
which is what the reader controls.  Incompressible data (seeded random bytes)
except for the zstd row, whose data has 4 bits of entropy per byte (zstd
compresses it about 2:1).

    python3 bench/bench_fs_read.py [--size-mib 64] [--repeat 7] [--quick] [--no-write] [--only ext4,vfat]
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from virtkit.boot.fs import available_readers, open_filesystem
from virtkit.limits import DEFAULT_LIMITS

MiB = 1 << 20


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, capture_output=True, **kw)  # type: ignore[call-overload,no-any-return]


@dataclass
class Variant:
    """One image to make: a label, the reader's fstype, the tools it needs, and how to build it."""

    key: str
    label: str
    fstype: str
    tools: tuple[str, ...]
    build: Callable[[Path, Path, int], None]  # (source file, image, size) -> None
    needs_root: bool = False
    compressible: bool = False
    mount_opts: str = "ro,loop"
    user_peer: Callable[[Path], list[str]] | None = None


def build_ext4(big: Path, image: Path, size: int) -> None:
    tree = big.parent
    run(["truncate", "-s", str(size + 64 * MiB), str(image)])
    run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", str(tree), str(image)])


def build_xfs(big: Path, image: Path, size: int) -> None:
    proto = image.with_suffix(".proto")
    proto.write_text(f"bench\n0 0\nd--755 0 0\nbig ---644 0 0 {big}\n$\n$\n")
    run(["truncate", "-s", str(max(size + 64 * MiB, 320 * MiB)), str(image)])
    run(["mkfs.xfs", "-q", "-f", "-p", str(proto), str(image)])


def build_btrfs(big: Path, image: Path, size: int) -> None:
    run(["truncate", "-s", str(size + 192 * MiB), str(image)])
    run(["mkfs.btrfs", "-q", "-f", "--rootdir", str(big.parent), str(image)])


def build_btrfs_zstd(big: Path, image: Path, size: int) -> None:
    # btrfs-progs 6.2 has no --compress for --rootdir: write through the kernel once.
    run(["truncate", "-s", str(size + 192 * MiB), str(image)])
    run(["mkfs.btrfs", "-q", "-f", str(image)])
    mnt = image.with_suffix(".mnt")
    mnt.mkdir()
    run(["mount", "-o", "loop,compress-force=zstd", str(image), str(mnt)])
    try:
        shutil.copyfile(big, mnt / "big")
        run(["sync"])
    finally:
        run(["umount", str(mnt)])
        mnt.rmdir()


def build_vfat(big: Path, image: Path, size: int) -> None:
    run(["truncate", "-s", str(size + 64 * MiB), str(image)])
    run(["mkfs.vfat", "-F", "32", str(image)])
    run(["mcopy", "-i", str(image), str(big), "::/big"], env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})


def build_iso(big: Path, image: Path, size: int) -> None:
    run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-o", str(image), str(big.parent)])


VARIANTS = [
    Variant("ext4", "ext4 (mkfs.ext4 -b 4096 -d)", "ext4", ("mkfs.ext4",), build_ext4),
    Variant("xfs", "XFS v5 (mkfs.xfs -p protofile)", "xfs", ("mkfs.xfs",), build_xfs),
    Variant("btrfs", "btrfs (mkfs.btrfs --rootdir), uncompressed", "btrfs", ("mkfs.btrfs",), build_btrfs),
    Variant(
        "btrfs-zstd",
        "btrfs, compress-force=zstd (written through a loop mount)",
        "btrfs",
        ("mkfs.btrfs", "mount"),
        build_btrfs_zstd,
        needs_root=True,
        compressible=True,
    ),
    Variant(
        "vfat",
        "vfat (mkfs.vfat -F 32 + mcopy)",
        "vfat",
        ("mkfs.vfat", "mcopy", "mtype"),
        build_vfat,
        user_peer=lambda image: ["mtype", "-i", str(image), "::/big"],
    ),
    Variant(
        "iso9660",
        "iso9660 (xorriso -R -J)",
        "iso9660",
        ("xorriso", "isoinfo"),
        build_iso,
        user_peer=lambda image: ["isoinfo", "-R", "-x", "/big", "-i", str(image)],
    ),
]


def read_file(image: Path, path: str = "/big", chunk: int = MiB) -> int:
    """Open the image through the probe table, resolve ``path`` and read it all in ``chunk``-byte reads."""
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        total = 0
        for part in iter_chunks(fs.lookup(path).open(), chunk=chunk):
            total += len(part)
        return total
    finally:
        os.close(fd)


def fstype_of(image: Path) -> str:
    fd = os.open(image, os.O_RDONLY)
    try:
        return open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS).fstype
    finally:
        os.close(fd)


@contextlib.contextmanager
def mounted(image: Path, where: Path, opts: str) -> Iterator[tuple[Path | None, str]]:
    """A read-only loop mount of ``image`` (path, "") or (None, why not)."""
    if os.geteuid() != 0:
        yield None, "not root"
        return
    where.mkdir()
    r = subprocess.run(["mount", "-o", opts, str(image), str(where)], check=False, capture_output=True, text=True)
    if r.returncode:
        first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else f"mount exit {r.returncode}"
        yield None, first.replace(f"{where}: ", "").replace(str(where), "MOUNTPOINT")
        return
    try:
        yield where, ""
    finally:
        subprocess.run(["umount", str(where)], check=True)


def paired(fn: Callable[[], object], argv: list[str], *, repeat: int, warmup: int, names: tuple[str, str]) -> tuple[Timing, Timing]:
    """Time ``fn`` and the command ``argv`` alternately (one run of each per round).

    On a shared machine the load changes from second to second; alternating keeps
    both sides under the same conditions, so their ratio stays meaningful.
    """
    ours, peer = Timing(names[0]), Timing(names[1])
    for i in range(warmup + repeat):
        a = time_callable(fn, repeat=1, warmup=0)
        b = time_command(argv, repeat=1, warmup=0)
        if i >= warmup:
            ours.samples += a.samples
            peer.samples += b.samples
    return ours, peer


def make_data(size: int, *, compressible: bool, seed: int = 2024) -> bytes:
    raw = random.Random(seed).randbytes(size)
    if not compressible:
        return raw
    table = bytes(b"abcdefghijklmnop"[i % 16] for i in range(256))  # 4 bits of entropy per byte
    return raw.translate(table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="16 MiB, 3 runs: a smoke test")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--only", default="", help="comma-separated variant keys (" + ",".join(v.key for v in VARIANTS) + ")")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.repeat, args.warmup = 16, 3, 1
    only = {k for k in args.only.split(",") if k}
    size = args.size_mib * MiB
    r, w = args.repeat, args.warmup
    readers = {cls.fstype for cls in available_readers()}
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    rows: list[list[str]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="virtkit-bench-fs-", dir=base) as tmp:
        work = Path(tmp)
        sources: dict[bool, Path] = {}
        floors: dict[bool, Timing] = {}
        for v in VARIANTS:
            if only and v.key not in only:
                continue
            missing = [t for t in v.tools if shutil.which(t) is None]
            if v.fstype not in readers:
                notes.append(f"{v.label}: skipped, no virtkit reader for {v.fstype} yet")
                continue
            if missing:
                notes.append(f"{v.label}: skipped, {', '.join(missing)} not installed")
                continue
            if v.needs_root and os.geteuid() != 0:
                notes.append(f"{v.label}: skipped, building it needs root (a loop mount)")
                continue
            if v.compressible not in sources:
                d = work / ("src-text" if v.compressible else "src-random")
                d.mkdir()
                (d / "big").write_bytes(make_data(size, compressible=v.compressible))
                sources[v.compressible] = d / "big"
                floors[v.compressible] = time_command(["cat", str(d / "big")], repeat=r, warmup=w, name="cat tmpfs")
            big = sources[v.compressible]
            image = work / f"{v.key}.img"
            print(f"{v.label}: building {image.name}", file=sys.stderr)
            try:
                v.build(big, image, size)
            except subprocess.CalledProcessError as exc:
                notes.append(f"{v.label}: skipped, building the image failed ({exc.stderr.decode(errors='replace').strip()[:120]})")
                continue
            got = fstype_of(image)
            if read_file(image) != size:
                print(f"bench_fs_read: {v.key}: the reader returned the wrong size", file=sys.stderr)
                return 1
            def ours_fn(image: Path = image) -> int:
                return read_file(image)

            kernel: Timing | None = None
            with mounted(image, work / f"mnt-{v.key}", v.mount_opts) as (mnt, why):
                if mnt is not None:
                    ours, kernel = paired(
                        ours_fn, ["cat", str(mnt / "big")], repeat=r, warmup=w, names=(f"virtkit {got}", "cat (loop mount)")
                    )
            user: Timing | None = None
            if v.user_peer is not None:
                ours, user = paired(ours_fn, v.user_peer(image), repeat=r, warmup=w, names=(f"virtkit {got}", v.user_peer(image)[0]))
            if kernel is None and user is None:
                ours = time_callable(ours_fn, repeat=r, warmup=w, name=f"virtkit {got}")
            floor = floors[v.compressible]
            if kernel is None:
                notes.append(f"{v.label}: no kernel peer ({why})")
            rows.append(
                [
                    v.label,
                    format_seconds(ours.median),
                    format_throughput(size, ours.median),
                    format_seconds(kernel.median) if kernel else "n/a",
                    format_ratio(ours.median / kernel.median) if kernel else "n/a",
                    format_ratio(ours.best / kernel.best) if kernel else "n/a",
                    format_ratio(ours.median / floor.median),
                    f"{user.name}: {format_ratio(ours.median / user.median)}" if user else "",
                ]
            )
            print(
                f"  {ours.describe(size)}"
                + (f"; {kernel.describe(size)}" if kernel else f"; no kernel peer ({why})")
                + (f"; {user.describe(size)}" if user else ""),
                file=sys.stderr,
            )
    table = markdown_table(
        [
            "image",
            "virtkit",
            "throughput",
            "cat (loop mount)",
            "vs cat (loop mount)",
            "best vs best",
            "vs cat (tmpfs)",
            "vs userspace tool",
        ],
        rows,
    )
    floor_text = ", ".join(f"{format_seconds(t.median)} ({'compressible' if k else 'random'} data)" for k, t in floors.items())
    note_text = "".join(f"- {n}\n" for n in notes) or "- none\n"
    text = f"""## Filesystems: reading a {format_bytes(size)} file (`bench/bench_fs_read.py`)

One image per reader, each holding a {format_bytes(size)} `/big` made by the real tools (`mkfs.ext4 -d`,
`mkfs.xfs -p`, `mkfs.btrfs --rootdir`, a `compress-force=zstd` loop mount, `mkfs.vfat` + `mcopy`,
`xorriso`), on tmpfs. virtkit: `open_filesystem` on the image, `lookup("/big").open()`, read in
1 MiB chunks (opening and lookup included). Peer, the I/O floor: `cat` of the same file from a
read-only loop mount of the same image, timed alternately with virtkit (one run each per round, so
both see the same machine load). Both warm in the page cache (uncounted warm-up rounds first; the
loop device caches the image), so this is CPU per byte. Data: seeded random bytes (incompressible),
except for zstd: 4 bits of entropy per byte. `cat` of the tmpfs source took {floor_text}.
Median of {r} runs after {w} warm-up run(s); ratios are time / peer time (lower is better);
"best vs best" divides the fastest runs, which is steadier when the machine is shared.
Goal: at most 2x the loop mount on ext4 and XFS.

{table}

Notes:
{note_text}
Machine: {machine_summary()}.
"""
    print(text)
    if not args.no_write:
        update_benchmarks_md("fs-read", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
