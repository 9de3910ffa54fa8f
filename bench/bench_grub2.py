#!/usr/bin/env python3
"""The GRUB 2 interpreter on a generated 5,000-entry grub.cfg with submenus, against real GRUB.

In the same run, on the same text (Debian 12's real grub-mkconfig header from
tests/configs/grub2/debian12, then one top entry and submenus of 100 entries in the
shape 10_linux writes them):

* **virtkit**: ``load_grub2_menu`` on an in-memory guest: read, parse, run the file, then
  run every entry body in its own context (kernel, initrds, command line per entry), the
  default and its trail - the whole config stage;
* **grub-emu**: Debian's GRUB 2.06 reading the same file under the oracle harness of
  tests/oracle/grub_emu.py and booting the default (process start to the failed boot; the
  ext2 image it reads is built beforehand and not counted);
* **pygrub**: Xen 4.17's ``Grub2ConfigFile.parse()`` (a line splitter, no script semantics).

    python3 bench/bench_grub2.py [--entries 5000] [--repeat 3] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import (
    ROOT,
    Timing,
    format_ratio,
    format_seconds,
    machine_summary,
    markdown_table,
    time_callable,
    update_benchmarks_md,
)

from virtkit._gcpause import gc_paused
from virtkit.boot.config.grub2 import load_grub2_menu
from virtkit.boot.config.grub2.autoboot import autoboot_transcript
from virtkit.boot.config.model import iter_entries
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.limits import Limits

UUID = "2f4c8a0e-5d1b-4b7e-9a43-0c2d6e8f1a37"
PYGRUB_LIB = Path("/usr/lib/xen-4.17/lib/python")


def _entry(title: str, ident: str, ver: str, indent: str) -> str:
    t = "\t"
    lines = [
        f"menuentry '{title}' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option '{ident}' {{",
        f"{t}load_video",
        f"{t}insmod gzio",
        f"{t}if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi",
        f"{t}insmod part_msdos",
        f"{t}insmod ext2",
        f"{t}set root='hd0,msdos1'",
        f"{t}if [ x$feature_platform_search_hint = xy ]; then",
        f"{t}  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1 {UUID}",
        f"{t}else",
        f"{t}  search --no-floppy --fs-uuid --set=root {UUID}",
        f"{t}fi",
        f"{t}echo{t}'Loading Linux {ver} ...'",
        f"{t}linux{t}/boot/vmlinuz-{ver} root=UUID={UUID} ro  quiet",
        f"{t}echo{t}'Loading initial ramdisk ...'",
        f"{t}initrd{t}/boot/initrd.img-{ver}",
        "}",
    ]
    body = "\n".join(lines)
    return "".join(indent + line + "\n" for line in body.splitlines())


def generate(n: int, per_submenu: int = 100) -> tuple[str, list[str]]:
    """(grub.cfg text, kernel versions)."""
    header = (ROOT / "tests/configs/grub2/debian12/grub.cfg").read_text().split("### BEGIN /etc/grub.d/05_debian_theme ###")[0]
    parts = [header, "### BEGIN /etc/grub.d/10_linux ###\n"]
    versions = ["6.1.0-13-amd64"]
    parts.append(_entry("Debian GNU/Linux", f"gnulinux-simple-{UUID}", versions[0], ""))
    count, s = 1, 0
    while count < n:
        parts.append(f"submenu 'Advanced options for Debian GNU/Linux ({s})' $menuentry_id_option 'gnulinux-advanced-{s}-{UUID}' {{\n")
        for k in range(min(per_submenu, n - count)):
            ver = f"6.1.0-{s}.{k}-amd64"
            versions.append(ver)
            parts.append(_entry(f"Debian GNU/Linux, with Linux {ver}", f"gnulinux-{ver}-advanced-{UUID}", ver, "\t"))
            count += 1
        parts.append("}\n")
        s += 1
    parts.append("### END /etc/grub.d/10_linux ###\n")
    return "".join(parts), versions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="500 entries, 1 run")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    n = 500 if args.quick else args.entries
    repeat = 1 if args.quick else args.repeat
    text, versions = generate(n)
    tree = {"/boot/grub/grub.cfg": text.encode()}
    for v in versions:
        tree[f"/boot/vmlinuz-{v}"] = b"k"
        tree[f"/boot/initrd.img-{v}"] = b"i"
    files = MemoryFiles({"hd0": {}, "hd0,msdos1": tree}, infos=[DeviceInfo("hd0", fs_type=None), DeviceInfo("hd0,msdos1", aliases=("hd0,1",), fs_type="ext4", uuid=UUID)])
    limits = Limits()

    def ours() -> None:
        menu = load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=limits)
        assert sum(1 for _ in iter_entries(menu.items)) == n and menu.default == (0,)

    transcript: list[str] = []

    def ours_grub_work() -> None:
        with gc_paused():  # as load_grub2_menu runs
            out = autoboot_transcript(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=limits)
        transcript[:] = [out]

    timings: list[Timing] = [
        time_callable(ours, repeat=repeat, warmup=1, name="virtkit load_grub2_menu (every entry)"),
        time_callable(ours_grub_work, repeat=repeat, warmup=1, name="virtkit, GRUB's work (read, run, boot the default)"),
    ]
    peer: Timing | None = None
    notes: list[str] = []

    from oracle.grub_emu import OracleCase, OraclePartition, normalize_transcript, oracle_available, run_grub_emu

    reason = oracle_available()
    if reason is None:
        case = OracleCase((OraclePartition((("/boot/grub/grub.cfg", text.encode()),), uuid=UUID),))
        peer = Timing("grub-emu 2.06 (Debian)")
        for _ in range(repeat):
            t: dict[str, float] = {}
            out = run_grub_emu(case, timeout=300, timings=t)
            assert "Booting `Debian GNU/Linux'" in out
            peer.samples.append(t["emu"])
        timings.append(peer)
        # the second row does what grub-emu does: the same console transcript, line for line
        assert normalize_transcript(transcript[0]) == normalize_transcript(out), "virtkit's autoboot differs from grub-emu"
        notes.append("The second virtkit row printed the same console transcript as grub-emu (checked in this run).")
    else:
        notes.append(f"grub-emu not measured: {reason}.")

    if (PYGRUB_LIB / "grub" / "GrubConf.py").exists():
        sys.path.insert(0, str(PYGRUB_LIB))
        from grub.GrubConf import Grub2ConfigFile  # type: ignore[import-not-found]

        def pygrub() -> None:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                Grub2ConfigFile().parse(text)

        timings.append(time_callable(pygrub, repeat=repeat, warmup=1, name="pygrub Grub2ConfigFile.parse (Xen 4.17)"))
    else:
        notes.append("pygrub (xen-utils-4.17) not installed: not measured.")

    base = timings[0].median
    rows = []
    for tm in timings:
        row = [tm.name, format_seconds(tm.median), format_ratio(tm.median / base)]
        if peer is not None:
            row.append(format_ratio(tm.median / peer.median))
        rows.append(row)
    headers = ["reader", "median", "vs virtkit"] + (["vs grub-emu"] if peer is not None else [])
    for r in rows:
        print("  ".join(str(c) for c in r))
    md = (
        f"## GRUB 2 interpreter: a {n:,}-entry grub.cfg with submenus (`bench/bench_grub2.py`)\n\n"
        f"A generated {len(text) / 1e6:.1f} MB grub.cfg: Debian 12's real grub-mkconfig header, one entry and "
        f"submenus of 100 entries in 10_linux's shape ({n:,} entries).  virtkit reads, parses and runs the file and then "
        "runs every entry body in its own context (kernel, initrds and command line of every entry), computes the default "
        "and its trail; grub-emu (GRUB 2.06) parses and runs the file and boots the default under the oracle harness "
        "(process time only; it does not evaluate the other entries); the second virtkit row is that same work - "
        "`autoboot_transcript`, the interpreter's replay of GRUB's menu code that the oracle tests compare with "
        "grub-emu: read, parse and run the file, boot the default, print the same console text; pygrub only "
        "splits lines. "
        f"Median of {repeat} run(s). Ratios: time / other time (lower is better).\n\n"
        + markdown_table(headers, rows)
        + "\n\n"
        + "The design goal was 0.2 s for parse+evaluate, against one grub-emu evaluation of the same file. "
        "Like for like - the second row, which does what grub-emu does and prints the same transcript - it "
        f"is {'met' if timings[1].median <= 0.2 else 'not met'}: {format_seconds(timings[1].median)}. "
        "GRUB parses every block of the file but runs only the entries it boots; virtkit does the same: a block "
        "in grub-mkconfig's shape (lines of simple commands, if/else/fi, menuentry blocks in a submenu) is "
        "recognised by one possessive regular expression, which proves the parser accepts it and where it ends, "
        "and its statements are parsed the first time they run (`parser.skim_block`; any other block is parsed "
        "at once, so syntax errors surface exactly where GRUB reports them; tests compare both ways on the "
        "corpus and on hypothesis-built blocks). virtkit's own commands (`virtkit boot`, `virtkit-pygrub`) "
        "evaluate every entry body, so that each entry's kernel, initrds and command line are known for the menu "
        "and `list` (the first row): that is outside the goal.\n\n"
        "History of this benchmark (profiled with cProfile each time; same machine, each against grub-emu in "
        "its own run; grub-emu's own time varies from run to run - 0.41 to 0.66 s in these runs - so compare "
        "the virtkit columns across rows):\n\n"
        + markdown_table(
            ["change", "every entry", "GRUB's work"],
            [
                ["parse once, shared words, backtracking-free fast lexer path (9026086)", "2.75 s", "-"],
                [
                    "the cyclic GC paused while a configuration runs (gen-2 collections over ~10^6 acyclic "
                    "tokens, words and AST nodes were a fifth of the run; `virtkit/_gcpause.py`) (9e06933)",
                    "1.61 s",
                    "-",
                ],
                [
                    "batch lexing (a command's first word and its run of simple arguments read by one regular "
                    "expression each, no token objects), literal words skip expansion, line maps built only when a "
                    "location is needed, a substring test before the blscfg regex (249f2f9)",
                    "1.45 s",
                    "0.86 s (parse and run only)",
                ],
                [
                    "blocks skimmed and parsed when first needed (the skim is one more regular-expression pass over the file, which the every-entry row pays for: about 5 %): this run",
                    format_seconds(timings[0].median),
                    format_seconds(timings[1].median),
                ],
            ],
        )
        + "\n\nWhat dominates the first row now (cProfile): parsing the 5,000 bodies, about half (85k lines: a "
        "few regular-expression passes over each line at some 4 ns per character, and a Python call or two per "
        "line), and running them, the other half (expansion and dispatch of 75k commands); the profile is flat. "
        "Making it fast would mean evaluating entry bodies only on demand in virtkit's own commands too - a "
        "change to the menu model and the worker protocol (the menu is plain data crossing the sandbox), not "
        "done.\n"
        + ("".join(f"\n{x}" for x in notes))
        + f"\n\n{machine_summary()}\n"
    )
    if not args.no_write:
        update_benchmarks_md("grub2", md)
        print("updated docs/benchmarks.md (section grub2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
