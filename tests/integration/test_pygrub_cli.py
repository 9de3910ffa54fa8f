"""virtkit-pygrub's command line, table-driven (virtinst style): every flag has a case,
every failing case names the message it expects.

These cases need no guest filesystem: they exercise argument handling, usage
errors and the exit statuses libxl depends on.  Cases that show an option's effect
on a real image are in test_pygrub_images.py (``CASES``); exact outputs (``-l``,
``-n``, ``--kernel``/``--ramdisk``/``--entry``, each ``--output-format``) in
test_pygrub_golden.py (``OUTPUTS``, ``FAILS``).  The meta-test at the end counts
the options used in all four tables.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
import test_pygrub_golden
import test_pygrub_images

from virtkit.cli.pygrub import LONG_OPTS, parse_args

PROG = [sys.executable, "-m", "virtkit.cli.pygrub"]


@dataclass
class Case:
    argv: list[str]
    status: int
    stderr: str = ""  # regex the stderr must contain
    stdout: str = ""


CASES = [
    Case([], 1, r"Usage: "),
    Case(["--help"], 1, r"Usage: "),  # pygrub checks for an image before --help
    Case(["--help", "img"], 0, r"Usage: "),
    Case(["-h", "img"], 1, r"option -h requires argument|Usage"),  # h:: in pygrub's getopt string
    Case(["--no-such-option", "img"], 1, r"option --no-such-option not recognized"),
    Case(["--output-format=xml", "img"], 1, r"Usage", r"unknown output format xml"),
    Case(["--output-directory=/nonexistent-dir", "img"], 1, "", r"/nonexistent-dir is not an existing directory"),
    Case(["--offset=abc", "img"], 1, r"Usage", r"offset value must be an integer"),
    Case(["--runas=no-such-user-xyz", "-q", "img"], 1, r"Usage", r"runas value must be an integer user id or a user name"),
    Case(["--runas=0", "-q", "img"], 1, "", r"refusing to run the parser as root"),
    Case(["-q", "/nonexistent/disk.img"], 3, r"cannot open image /nonexistent/disk.img"),
    Case(["--isconfig", "/nonexistent/grub.cfg"], 2, r"cannot read /nonexistent/grub.cfg"),
    Case(["--limit=max_bogus=1", "-q", "img"], 2, r"unknown limit 'max_bogus'"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: " ".join(c.argv) or "<none>")
def test_cli_case(case: Case) -> None:
    proc = subprocess.run([*PROG, *case.argv], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == case.status, proc.stderr
    if case.stderr:
        assert pytest.importorskip("re").search(case.stderr, proc.stderr), proc.stderr
    if case.stdout:
        assert pytest.importorskip("re").search(case.stdout, proc.stdout), proc.stdout
    assert "Traceback" not in proc.stderr


def test_libxl_argv_order_parses() -> None:
    a = parse_args(
        ["--kernel=/vmlinuz", "--ramdisk=/initrd", "--args=root=/dev/xvda1", "--runas=65534", "--quiet",
         "--output=/var/lib/xen/bootloader.7.out", "--output-format=simple0",
         "--output-directory=/tmp", "--entry=1>2", "/dev/vg/disk"],
        "virtkit-pygrub",
    )
    assert (a.kernel, a.ramdisk, a.args, a.runas, a.interactive) == ("/vmlinuz", "/initrd", "root=/dev/xvda1", 65534, False)
    assert (a.output, a.output_format, a.output_directory, a.entry, a.images) == (
        "/var/lib/xen/bootloader.7.out", "simple0", "/tmp", "1>2", ["/dev/vg/disk"])


def test_last_occurrence_wins_like_getopt() -> None:
    a = parse_args(["--output-format=simple0", "--output-format=sxp", "img"], "p")
    assert a.output_format == "sxp"


def test_xenserver_args_are_collected() -> None:
    a = parse_args(["--default_args=console=hvc0", "--extra_args=quiet", "img"], "p")
    assert a.extra == ["console=hvc0", "quiet"]


SHORT_OPTS = {"-q": "--quiet", "-i": "--interactive", "-l": "--list-entries", "-n": "--not-really", "-h": "--help"}

# Options whose effect only a guest image can show: each must have a row in test_pygrub_images.CASES.
NEEDS_AN_IMAGE = ["--image-format", "--platform", "--flavour", "--config", "--no-isolate", "--interactive",
                  "--debug", "--offset", "--output", "--default_args", "--extra_args"]


def _options_used(argvs: Iterable[Sequence[str]]) -> set[str]:
    used: set[str] = set()
    for argv in argvs:
        for arg in argv:
            if arg.startswith("--"):
                used.add(arg.split("=", 1)[0])
            elif arg in SHORT_OPTS:
                used.add(SHORT_OPTS[arg])
    return used


def test_every_long_option_has_a_case() -> None:
    """virtinst's checkprops idea: a flag that appears in no case table fails the suite."""
    tables = {
        "test_pygrub_cli.CASES": _options_used([c.argv for c in CASES]),
        "test_pygrub_images.CASES": _options_used([c.argv for c in test_pygrub_images.CASES]),
        "test_pygrub_golden.OUTPUTS": _options_used([o.argv for o in test_pygrub_golden.OUTPUTS]),
        "test_pygrub_golden.FAILS": _options_used([f.argv for f in test_pygrub_golden.FAILS]),
    }
    covered = set().union(*tables.values())
    for opt in LONG_OPTS:
        name = "--" + opt.rstrip("=")
        assert name in covered, f"{name} has no case in any of {sorted(tables)}"
    for name in NEEDS_AN_IMAGE:
        assert name in tables["test_pygrub_images.CASES"], f"{name} has no row in test_pygrub_images.CASES"


def test_meta_test_sees_short_options() -> None:
    assert _options_used([("-q", "-i", "--entry=1>0", "img")]) == {"--quiet", "--interactive", "--entry"}
