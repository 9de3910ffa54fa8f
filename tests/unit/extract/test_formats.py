"""Output records, byte for byte: ours against Xen's pygrub's own formatting functions."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from virtkit.boot.extract.formats import BootTarget, render_libvirt, render_pygrub, render_qemu
from virtkit.errors import OutputError

PYGRUB = Path("/usr/lib/xen-4.17/bin/pygrub")

VALUES = [
    BootTarget("/d/boot_kernel.abcdefgh", "/d/boot_ramdisk.ijklmnop", "root=/dev/xvda1 ro quiet"),
    BootTarget("/d/boot_kernel.x", None, "console=hvc0"),
    BootTarget("/d/boot_kernel.x", "/d/boot_ramdisk.y", ""),
    BootTarget("/d/k", "/d/r", "root=/dev/xvda1 x='y'"),
    BootTarget("/d/k", "/d/r", "a \"b\" 'c' \\d"),
    BootTarget("/d/k", "/d/r", ")(ramdisk '/etc/shadow')"),
    BootTarget("/d/k", "/d/r", "ünïcødé ☃"),
    BootTarget("/d/k", "/d/r", " leading space"),
]


def _pygrub_formatters() -> dict:
    """format_sxp/format_simple from the installed pygrub, executed as-is (not copied)."""
    if not PYGRUB.exists():
        pytest.skip("Xen's pygrub (xen-utils-4.17) is not installed")
    with warnings.catch_warnings():  # pygrub 4.17 has invalid escape sequences in unrelated regexes
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(PYGRUB.read_text())
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("format_sxp", "format_simple")]
    ns: dict = {}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), str(PYGRUB), "exec"), ns)
    return ns


@pytest.mark.differential
@pytest.mark.parametrize("target", VALUES, ids=range(len(VALUES)))
def test_records_identical_to_pygrub(target: BootTarget) -> None:
    ns = _pygrub_formatters()
    assert render_pygrub(target, "sxp") == ns["format_sxp"](target.kernel, target.ramdisk, target.args)
    assert render_pygrub(target, "simple") == ns["format_simple"](target.kernel, target.ramdisk, target.args, "\n")
    assert render_pygrub(target, "simple0") == ns["format_simple"](target.kernel, target.ramdisk, target.args, "\0")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("sxp", "linux (kernel '/d/k')(ramdisk '/d/r')(args 'root=/dev/xvda1')"),
        ("simple", "kernel /d/k\nramdisk /d/r\nargs root=/dev/xvda1\n\n"),
        ("simple0", "kernel /d/k\0ramdisk /d/r\0args root=/dev/xvda1\0\0"),
    ],
)
def test_exact_bytes(fmt: str, expected: str) -> None:
    assert render_pygrub(BootTarget("/d/k", "/d/r", "root=/dev/xvda1"), fmt) == expected


@pytest.mark.parametrize(
    ("fmt", "args", "message"),
    [
        ("simple0", "a\0ramdisk /etc/shadow", "contains a NUL byte"),
        ("simple", "a\nramdisk /etc/shadow", "contains a newline"),
        ("sxp", "a\0b", "NUL byte"),
    ],
)
def test_separator_injection_is_refused(fmt: str, args: str, message: str) -> None:
    with pytest.raises(OutputError, match=message):
        render_pygrub(BootTarget("/d/k", "/d/r", args), fmt)


def test_qemu_and_libvirt() -> None:
    t = BootTarget("/var/lib/k", "/var/lib/r", "root=/dev/vda1 console=ttyS0 x='<y>'")
    assert render_qemu(t) == "-kernel /var/lib/k -initrd /var/lib/r -append 'root=/dev/vda1 console=ttyS0 x='\"'\"'<y>'\"'\"''"
    assert render_libvirt(t) == (
        "<os>\n  <kernel>/var/lib/k</kernel>\n  <initrd>/var/lib/r</initrd>\n"
        "  <cmdline>root=/dev/vda1 console=ttyS0 x='&lt;y&gt;'</cmdline>\n</os>"
    )
    with pytest.raises(OutputError, match="control character"):
        render_libvirt(BootTarget("/k", None, "a\x1bb"))
