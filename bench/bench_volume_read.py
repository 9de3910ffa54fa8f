#!/usr/bin/env python3
"""Sequential reads through volumes: a partition, a linear LV, a striped LV across two disks.

virtkit discovers the volumes (GPT, LVM label and metadata) and reads each one
start to end in 1 MiB ``pread``s, computing a CRC32 of the bytes (so every run
does the same work as the GRUB peer).  Peers, in the same run on the same
files, all warm in the page cache:

* ``cat`` of a plain file holding the volume's bytes (the I/O floor: no mapping);
* ``dd`` of the partition's byte range out of the disk image (partition row);
* ``grub-fstest ... crc (DEVICE)0+N``: GRUB 2's own GPT/LVM code reading the same
  device and computing a CRC32, in C (every row, when grub-fstest is installed).

The disks are made with the test builders (tests/builders): two GPT disks, one
LVM PV each, a VG with a linear LV and a 2-stripe LV (64 KiB chunks), filled
with random bytes; the differential tests check that GRUB and virtkit read
the same bytes from such LVs.

    python3 bench/bench_volume_read.py [--size-mib 128] [--repeat 7] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import (  # noqa: E402
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

from builders.gpt import LINUX_LVM, GptDisk, GptPart  # noqa: E402
from builders.lvm import PV_UUID, PV_UUID_2, LvSpec, PvImage, PvSpec, Seg, vg_text  # noqa: E402
from virtkit._streams import iter_chunks  # noqa: E402
from virtkit.boot.pipeline import open_guest  # noqa: E402
from virtkit.limits import DEFAULT_LIMITS  # noqa: E402

MiB = 1 << 20
EXTENT = 4 * MiB


def make_disks(work: Path, size: int) -> tuple[list[Path], dict[str, bytes]]:
    """Two GPT disks, one PV each; VG "bench" with LV "lin" (on disk 0) and "stripes" (both)."""
    ext = size // EXTENT  # extents per LV
    per_pv = ext + ext // 2 + 1
    text = vg_text(
        "bench",
        pvs=[PvSpec("pv0", PV_UUID, pe_count=per_pv), PvSpec("pv1", PV_UUID_2, pe_count=per_pv)],
        lvs=[
            LvSpec("lin", [Seg(0, ext, [("pv0", 0)])]),
            LvSpec("stripes", [Seg(0, ext, [("pv0", ext), ("pv1", 0)], stripe_size=128)]),
        ],
    )
    rng = random.Random(2024)
    pv_bytes = MiB + per_pv * EXTENT
    disks = []
    areas: list[bytes] = []
    for i, uuid in enumerate((PV_UUID, PV_UUID_2)):
        data = rng.randbytes(per_pv * EXTENT)
        areas.append(data)
        pv = PvImage(size=pv_bytes, pv_uuid=uuid, text=text.encode()).build()
        pv[MiB : MiB + len(data)] = data
        sectors = (MiB + pv_bytes + MiB) // 512
        gpt = GptDisk(sectors=sectors).add(GptPart(LINUX_LVM, 2048, 2048 + pv_bytes // 512 - 1, name=f"pv{i}"))
        path = work / f"disk{i}.img"
        with open(path, "wb") as f:
            f.write(gpt.build())
            f.seek(MiB)
            f.write(pv)
        disks.append(path)
    lin = areas[0][:size]
    chunk = 128 * 512
    a0, a1 = areas[0][size : size + size // 2], areas[1][: size // 2]
    stripes = b"".join(a0[r : r + chunk] + a1[r : r + chunk] for r in range(0, size // 2, chunk))
    return disks, {"lin": lin, "stripes": stripes}


def read_volume(disks: list[Path], name: str, *, crc: bool = True) -> int:
    """Discover the volumes, read ``name`` start to end; return its CRC32 (or its length)."""
    with open_guest([str(d) for d in disks], limits=DEFAULT_LIMITS) as g:
        value = 0
        for part in iter_chunks(g.storage.find(name).source, chunk=MiB):
            value = zlib.crc32(part, value) if crc else value + len(part)
        return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="16 MiB, 3 runs: a smoke test")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.repeat = 16, 3
    size = args.size_mib * MiB
    r, w = args.repeat, args.warmup
    grub = shutil.which("grub-fstest")
    if grub is None:
        print("  (grub-fstest not installed: no GRUB column; apt-get install grub-common)", file=sys.stderr)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="virtkit-bench-", dir=base) as tmp:
        work = Path(tmp)
        disks, expected = make_disks(work, size)
        part_file = work / "partition.raw"
        with open(disks[0], "rb") as f:
            f.seek(MiB)
            part_bytes = f.read(MiB + (size // EXTENT + size // EXTENT // 2 + 1) * EXTENT)
        part_file.write_bytes(part_bytes)
        expected["disk0p1"] = part_bytes
        cases = [
            ("partition (GPT)", "disk0p1", "loop0,gpt1"),
            ("linear LV", "bench/lin", "lvm/bench-lin"),
            ("striped LV, 2 x 64 KiB", "bench/stripes", "lvm/bench-stripes"),
        ]
        for label, volume, grub_name in cases:
            data = expected.get(volume.split("/")[-1], expected.get(volume))
            assert data is not None
            if read_volume(disks, volume) != zlib.crc32(data):
                print(f"bench_volume_read: {volume} read back wrong bytes", file=sys.stderr)
                return 1
            raw = work / f"{volume.replace('/', '-')}.raw"
            raw.write_bytes(data)
            n = len(data)
            ours = time_callable(lambda v=volume: read_volume(disks, v, crc=False), repeat=r, warmup=w, name="virtkit")
            ours_crc = time_callable(lambda v=volume: read_volume(disks, v), repeat=r, warmup=w, name="virtkit + crc32")
            floor = time_command(["cat", str(raw)], repeat=r, warmup=w, name="cat of the bytes")
            dd: Timing | None = None
            if volume == "disk0p1":
                dd = time_command(
                    ["dd", f"if={disks[0]}", "bs=1M", "skip=1", f"count={n // MiB}", "status=none"],
                    repeat=r,
                    warmup=w,
                    name="dd of the range",
                )
            gt: Timing | None = None
            if grub is not None:
                argv = [grub, "-c", "2", str(disks[0]), str(disks[1]), "crc", f"({grub_name})0+{n // 512}"]
                got = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
                if got != f"{zlib.crc32(data):08x}":
                    print(f"bench_volume_read: GRUB read {grub_name} differently ({got})", file=sys.stderr)
                    return 1
                gt = time_command(argv, repeat=r, warmup=w, name="grub-fstest crc")
            print(
                f"{label}: {ours.describe(n)}; {floor.describe(n)}" + (f"; {gt.describe(n)}" if gt else ""),
                file=sys.stderr,
            )
            rows.append(
                [
                    label,
                    format_bytes(n),
                    format_seconds(ours.median),
                    format_throughput(n, ours.median),
                    format_ratio(ours.median / floor.median),
                    format_ratio(ours.median / dd.median) if dd else "-",
                    format_seconds(ours_crc.median),
                    format_ratio(ours_crc.median / gt.median) if gt else "n/a",
                    format_seconds(gt.median) if gt else "n/a",
                ]
            )
    table = markdown_table(
        [
            "volume",
            "size",
            "virtkit read",
            "throughput",
            "vs cat of the bytes",
            "vs dd",
            "virtkit read + CRC32",
            "vs GRUB",
            "GRUB (grub-fstest crc)",
        ],
        rows,
    )
    text = f"""## Volumes: reading a partition, a linear LV and a striped LV (`bench/bench_volume_read.py`)

Two GPT disks made by the test builders (tests/builders), one LVM PV each, a VG with a linear LV
and an LV striped over both PVs in 64 KiB chunks, filled with random bytes, on tmpfs and warm in
the page cache. Each virtkit run opens both images, discovers the volumes (GPT, LVM label, metadata),
and reads one volume start to end in 1 MiB `pread`s ("read"; "read + CRC32" also computes a
CRC32). Peers for the plain read: `cat` of a file holding exactly the volume's bytes (the floor:
no mapping at all) and `dd` of the partition's byte range from the disk image; for read + CRC32:
GRUB 2.06 reading the same device through its own GPT/LVM code (`grub-fstest ... crc (DEVICE)0+N`). Median of {r} runs after {w} warm-up run(s).
Ratios: time / peer time (lower is better).

{table}

Machine: {machine_summary()}.
"""
    print(text)
    if not args.no_write:
        update_benchmarks_md("volume-read", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
