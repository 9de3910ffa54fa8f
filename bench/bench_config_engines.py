#!/usr/bin/env python3
"""The GRUB legacy, extlinux and lilo engines against Xen's pygrub parsers on large generated configs.

In the same run, on the same text:

* **virtkit**: ``load_grub_legacy_menu`` / ``load_extlinux_menu`` / ``load_lilo_menu`` on an
  in-memory guest (reading the file, every directive, default and trail, file-existence checks
  for every kernel and initrd), i.e. the whole config stage for that file;
* **pygrub**: ``GrubConfigFile`` / ``ExtLinuxConfigFile`` / ``LiloConfigFile`` ``.parse()`` from
  Debian's xen-utils-4.17 (``/usr/lib/xen-4.17/lib/python/grub``), which only splits lines into
  fields (no default rules, no paths checked).

And end to end on ``tests/data/config/legacy-esp.img.gz`` (an MBR disk with an ext2 /boot):
``virtkit boot list IMAGE`` against ``pygrub -l IMAGE``, both as fresh processes.

    python3 bench/bench_config_engines.py [--entries 5000] [--repeat 7] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _common import (
    ROOT,
    Timing,
    format_ratio,
    format_seconds,
    machine_summary,
    markdown_table,
    time_callable,
    time_command,
    update_benchmarks_md,
)

from virtkit.boot.config.extlinux import load_extlinux_menu
from virtkit.boot.config.grub_legacy import load_grub_legacy_menu
from virtkit.boot.config.lilo import load_lilo_menu
from virtkit.boot.config.source import MemoryFiles
from virtkit.limits import Limits

PYGRUB_LIB = Path("/usr/lib/xen-4.17/lib/python")
D = "hd0"


def legacy_text(n: int) -> str:
    lines = ["default saved", "timeout 5", "hiddenmenu"]
    for i in range(n):
        lines += [f"title Linux 5.{i}", "\troot (hd0,0)",
                  f"\tkernel /vmlinuz-5.{i} ro root=/dev/xvda1 console=hvc0 quiet", f"\tinitrd /initrd-5.{i}.img"]
    return "\n".join(lines) + "\n"


def extlinux_text(n: int) -> str:
    lines = ["DEFAULT l0", "PROMPT 1", "TIMEOUT 50"]
    for i in range(n):
        lines += [f"LABEL l{i}", f"  MENU LABEL Linux 5.{i}", f"  KERNEL /vmlinuz-5.{i}",
                  f"  APPEND initrd=/initrd-5.{i}.img root=/dev/xvda1 ro quiet"]
    return "\n".join(lines) + "\n"


def lilo_text(n: int) -> str:
    lines = ["prompt", "timeout=50", "default=l0", 'append="console=hvc0"']
    for i in range(n):
        lines += [f"image=/boot/vmlinuz-5.{i}", f"  label=l{i}", "  root=/dev/xvda1", "  read-only",
                  f"  initrd=/boot/initrd-5.{i}.img"]
    return "\n".join(lines) + "\n"


def kernels(n: int, prefix: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for i in range(n):
        out[f"{prefix}/vmlinuz-5.{i}"] = b""
        out[f"{prefix}/initrd-5.{i}.img"] = b""
    return out


def pygrub_parser(module: str, cls: str, filename: str) -> Callable[[str], Any] | None:
    if not (PYGRUB_LIB / "grub" / f"{module}.py").exists():
        return None
    sys.path.insert(0, str(PYGRUB_LIB))
    logging.getLogger().setLevel(logging.ERROR)
    mod = __import__(f"grub.{module}", fromlist=[module])

    def parse(text: str) -> Any:
        conf = getattr(mod, cls)()
        conf.filename = filename
        with redirect_stderr(io.StringIO()):
            conf.parse(text)
        return conf

    return parse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="500 entries, 3 runs: a smoke test")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    n = 500 if args.quick else args.entries
    repeat = 3 if args.quick else args.repeat
    limits = Limits()

    rows = []
    cases = [
        ("GRUB legacy menu.lst", "/grub/menu.lst", legacy_text(n), kernels(n, ""), load_grub_legacy_menu,
         pygrub_parser("GrubConf", "GrubConfigFile", "/grub/menu.lst")),
        ("extlinux.conf", "/extlinux.conf", extlinux_text(n), kernels(n, ""), load_extlinux_menu,
         pygrub_parser("ExtLinuxConf", "ExtLinuxConfigFile", "/extlinux.conf")),
        ("lilo.conf", "/etc/lilo.conf", lilo_text(n), kernels(n, "/boot"), load_lilo_menu,
         pygrub_parser("LiloConf", "LiloConfigFile", "/etc/lilo.conf")),
    ]
    for name, path, text, tree, loader, peer in cases:
        files = MemoryFiles({D: {path: text.encode(), **tree}})
        menu = loader(files, D, path, limits=limits)
        assert len(menu.items) == n, (name, len(menu.items))
        ours = time_callable(lambda files=files, path=path, loader=loader: loader(files, D, path, limits=limits),
                             repeat=repeat, warmup=args.warmup, name=f"virtkit {name}")
        print(ours.describe())
        if peer is None:
            rows.append([f"{name}, {n} entries", format_seconds(ours.median), "pygrub not installed", "-"])
            continue
        theirs = time_callable(lambda text=text, peer=peer: peer(text), repeat=repeat, warmup=args.warmup,
                               name=f"pygrub {name}")
        print(theirs.describe(), format_ratio(ours.median / theirs.median))
        rows.append([f"{name}, {n} entries ({len(text) // 1024} KiB)", format_seconds(ours.median),
                     format_seconds(theirs.median), format_ratio(ours.median / theirs.median)])

    e2e = end_to_end(repeat, args.warmup)
    if e2e is not None:
        ours_t, theirs_t = e2e
        rows.append(["`virtkit boot list` vs `pygrub -l` on legacy-esp.img (processes, end to end)",
                     format_seconds(ours_t.median), format_seconds(theirs_t.median),
                     format_ratio(ours_t.median / theirs_t.median)])

    table = markdown_table(["workload", "virtkit", "pygrub (peer)", "ratio virtkit/pygrub"], rows)
    text = (
        "Config engines against Xen's pygrub parsers (Debian xen-utils-4.17), same text, same run; median of "
        f"{repeat} runs after {args.warmup} warm-up runs. virtkit does the whole config stage (every directive, the "
        "default rules and trail, an existence check of every kernel and initrd); pygrub only splits lines into "
        "fields. The last row compares whole commands: image, partitions, ext2, config, menu.\n\n"
        f"{table}\n\nMachine: {machine_summary()}.\n"
    )
    print()
    print(text)
    if not args.no_write:
        update_benchmarks_md("config-engines", text)
    return 0


def end_to_end(repeat: int, warmup: int) -> tuple[Timing, Timing] | None:
    virtkit = shutil.which("virtkit")
    pygrub = shutil.which("pygrub")
    if virtkit is None or pygrub is None:
        print("end to end: virtkit or pygrub not on PATH; skipped")
        return None
    src = ROOT / "tests" / "data" / "config" / "legacy-esp.img.gz"
    with tempfile.TemporaryDirectory() as tmp:
        img = Path(tmp) / "legacy-esp.img"
        img.write_bytes(gzip.decompress(src.read_bytes()))
        ours = time_command([virtkit, "boot", "list", str(img)], repeat=repeat, warmup=warmup, name="virtkit boot list")
        theirs = time_command([pygrub, "-l", str(img)], repeat=repeat, warmup=warmup, name="pygrub -l")
    print(ours.describe())
    print(theirs.describe(), format_ratio(ours.median / theirs.median))
    return ours, theirs


if __name__ == "__main__":
    sys.exit(main())
