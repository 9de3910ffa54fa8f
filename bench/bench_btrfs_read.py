#!/usr/bin/env python3
"""Reading a 64 MiB file out of btrfs images with virtkit's btrfs reader: uncompressed, zlib, lzo, zstd.

The file is 64 MiB of ELF libraries from the host's /usr/lib (compresses about 3:1,
like kernels' and initrds' contents), written into:

* ``mkfs.btrfs --rootdir`` (uncompressed);
* a loop mount with ``compress-force=zlib`` / ``lzo`` / ``zstd`` (btrfs-progs 6.2 cannot
  compress at mkfs time): 128 KiB compressed extents, as the kernel writes them.

Peers, measured in the same run on the same images (all on tmpfs):

* ``cat`` from a read-only loop mount, page cache warm: the memory-copy floor
  (needs root);
* ``cat`` from a loop mount remounted before every run: the kernel reads and
  *decompresses* the extents, the fair peer for compressed files (needs root);
* ``btrfs restore`` of the file to tmpfs: btrfs-progs' userspace reader, in C.

virtkit: ``open_filesystem`` on the image, ``lookup("/big").open()``, read in 1 MiB
chunks (opening included).  LZO is timed with virtkit's pure-Python decoder and, if
installed, with the optional ``python-lzo`` accelerator (``pip install 'virtkit[lzo]'``).

    python3 bench/bench_btrfs_read.py [--size-mib 64] [--repeat 5] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _common import (
    Timing,
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
from virtkit.boot.fs.btrfs import compression
from virtkit.limits import DEFAULT_LIMITS

MiB = 1 << 20


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def make_payload(path: Path, size: int) -> None:
    """``size`` bytes of the host's shared libraries, in a fixed order."""
    out = bytearray()
    for root, dirs, files in os.walk("/usr/lib/x86_64-linux-gnu"):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                out += Path(p).read_bytes()
            except OSError:
                continue
            if len(out) >= size:
                path.write_bytes(bytes(out[:size]))
                return
    out += bytes(size - len(out))
    path.write_bytes(bytes(out[:size]))


def read_file(image: Path, chunk: int = MiB) -> int:
    fd = os.open(image, os.O_RDONLY)
    try:
        fs = open_filesystem(FileSource(fd, image.name), limits=DEFAULT_LIMITS)
        return sum(len(part) for part in iter_chunks(fs.lookup("/big").open(), chunk=chunk))
    finally:
        os.close(fd)


class Mount:
    """A read-only loop mount that can be remounted (dropping its page cache)."""

    def __init__(self, image: Path, where: Path) -> None:
        self.image = image
        self.where = where
        self.mounted = False

    def mount(self) -> None:
        run(["mount", "-t", "btrfs", "-o", "ro,loop", str(self.image), str(self.where)])
        self.mounted = True

    def umount(self) -> None:
        if self.mounted:
            run(["umount", str(self.where)])
            self.mounted = False

    def remount(self) -> None:
        self.umount()
        self.mount()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="16 MiB, 3 runs: a smoke test")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.repeat = 16, 3
    for tool in ("mkfs.btrfs", "btrfs", "cat"):
        if shutil.which(tool) is None:
            print(f"bench_btrfs_read: {tool} is not installed (apt-get install btrfs-progs)", file=sys.stderr)
            return 2
    root = os.geteuid() == 0
    if not root:
        print("bench_btrfs_read: not root: no compressed images (they need a loop mount) and no kernel peers", file=sys.stderr)
    size = args.size_mib * MiB
    r, w = args.repeat, args.warmup
    has_lzo = compression._lzo_accelerator() is not None
    rows = []
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="virtkit-bench-btrfs-", dir=base) as tmp:
        work = Path(tmp)
        tree = work / "tree"
        tree.mkdir()
        big = tree / "big"
        make_payload(big, size)
        images: list[tuple[str, Path]] = []
        plain = work / "plain.img"
        run(["truncate", "-s", str(size + 192 * MiB), str(plain)])
        run(["mkfs.btrfs", "-q", "-f", "--rootdir", str(tree), str(plain)])
        images.append(("uncompressed (mkfs.btrfs --rootdir)", plain))
        if root:
            mnt = work / "mnt"
            mnt.mkdir()
            for algo in ("zlib", "lzo", "zstd"):
                img = work / f"{algo}.img"
                run(["truncate", "-s", str(size + 192 * MiB), str(img)])
                run(["mkfs.btrfs", "-q", "-f", str(img)])
                run(["mount", "-o", f"loop,compress-force={algo}", str(img), str(mnt)])
                try:
                    shutil.copyfile(big, mnt / "big")
                    run(["sync"])
                finally:
                    run(["umount", str(mnt)])
                images.append((f"compress-force={algo} (loop mount)", img))
        for label, img in images:
            if read_file(img) != size:
                print(f"bench_btrfs_read: wrong size from {img.name}", file=sys.stderr)
                return 1
            configs: list[tuple[str, bool | None]] = [(label, None)]
            if "lzo" in label:
                configs = [(f"{label}, pure-Python LZO", False)]
                if has_lzo:
                    configs.append((f"{label}, python-lzo", True))
            restore_out = work / "restored"
            restore = time_command(
                ["btrfs", "restore", "--path-regex", "^/(|big)$", str(img), str(restore_out)],
                repeat=r,
                warmup=w,
                name="btrfs restore",
                before=lambda out=restore_out: shutil.rmtree(out, ignore_errors=True) or out.mkdir(),
            )
            warm: Timing | None = None
            cold: Timing | None = None
            if root:
                m = Mount(img, work / f"m-{img.stem}")
                m.where.mkdir()
                m.mount()
                try:
                    warm = time_command(["cat", str(m.where / "big")], repeat=r, warmup=w, name="cat (warm)")
                    cold = time_command(["cat", str(m.where / "big")], repeat=r, warmup=0, name="cat (remounted)", before=m.remount)
                finally:
                    m.umount()
            for name, accel in configs:
                saved = compression._zstd_cache.pop("lzo", "unset")
                if accel is False:
                    compression._zstd_cache["lzo"] = None
                try:
                    reps = 1 if accel is False else r  # pure-Python LZO is slow: one run
                    ours = time_callable(lambda img=img: read_file(img), repeat=reps, warmup=0 if accel is False else w, name="virtkit")
                finally:
                    compression._zstd_cache.pop("lzo", None)
                    if saved != "unset":
                        compression._zstd_cache["lzo"] = saved
                print(f"{name}: {ours.describe(size)}", file=sys.stderr)
                rows.append(
                    [
                        name,
                        format_seconds(ours.median),
                        format_throughput(size, ours.median),
                        format_ratio(ours.median / warm.median) if warm else "n/a",
                        format_ratio(ours.median / cold.median) if cold else "n/a",
                        format_ratio(ours.median / restore.median),
                    ]
                )
    table = markdown_table(
        ["image", "virtkit", "throughput", "vs cat (warm mount)", "vs cat (remounted: kernel decompresses)", "vs btrfs restore"],
        rows,
    )
    text = f"""## btrfs: reading a {args.size_mib} MiB file (`bench/bench_btrfs_read.py`)

The file is {args.size_mib} MiB of the host's shared libraries (compresses about 3:1, like the
contents of kernels and initrds); images on tmpfs: `mkfs.btrfs --rootdir` for the uncompressed
one, loop mounts with `compress-force=zlib/lzo/zstd` for the compressed ones (128 KiB extents).
virtkit: `open_filesystem`, `lookup("/big").open()`, 1 MiB reads, opening included (median of
{r}; pure-Python LZO: one run). Peers in the same run: `cat` from a read-only loop mount with a
warm page cache (the memory-copy floor), `cat` after remounting (the kernel reads and
decompresses: the fair peer for compressed files), and `btrfs restore` of the file to tmpfs
(btrfs-progs' C reader). Ratios are virtkit / peer (lower is better).

{table}

Uncompressed reads map each extent to one `pread` of the device (no per-block Python work).
For compressed files the time is the C decompressor (zlib, backports.zstd) plus one slice per
128 KiB extent. LZO has no standard-library decoder: virtkit's own pure-Python LZO1X decoder is
the slow row; `pip install 'virtkit[lzo]'` (python-lzo) is used automatically when present.
{"" if has_lzo else "python-lzo was not installed for this run."}
{machine_summary()}
"""
    print(text)
    if not args.no_write:
        update_benchmarks_md("btrfs-read", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
