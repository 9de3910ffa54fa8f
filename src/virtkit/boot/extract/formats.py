"""How a chosen boot target is handed over: pygrub's formats, QEMU arguments, libvirt XML, JSON.

pygrub's formats are reproduced byte for byte (reference/pygrub.md §1.3),
because libxl and old xend parse them:

* ``sxp``:     ``linux (kernel 'K')(ramdisk 'R')(args 'A')`` with Python ``repr``
  quoting (the XSA-198 fix), no trailing newline;
* ``simple``:  ``kernel K\\nramdisk R\\nargs A\\n\\n``;
* ``simple0``: the same with NUL separators (what libxl reads).

A value containing the separator is refused (XSA-198): a guest-controlled
command line must never inject a second ``kernel``/``ramdisk`` record naming
a dom0 file.

For KVM: ``qemu`` prints ``-kernel K -initrd I -append A`` (shell-quoted) and
``libvirt`` an ``<os>`` fragment (``<kernel>``, ``<initrd>``, ``<cmdline>``),
so a guest can boot its own configured kernel directly.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from virtkit.errors import OutputError

__all__ = ["PYGRUB_FORMATS", "BootTarget", "render_libvirt", "render_pygrub", "render_qemu"]

PYGRUB_FORMATS = ("sxp", "simple", "simple0")


@dataclass(frozen=True)
class BootTarget:
    """What to hand to the toolstack: host paths of the extracted files and the command line.

    Attributes:
        kernel: host path of the kernel (or, for a dry run, a description).
        ramdisk: host path of the (concatenated) initrd, or None.
        args: the final kernel command line ("" for none).
    """

    kernel: str
    ramdisk: str | None
    args: str


def render_pygrub(target: BootTarget, fmt: str) -> str:
    """Render ``target`` exactly as pygrub would in format ``fmt``.

    Raises:
        OutputError: a value contains the record separator (simple/simple0), or NUL (sxp).
        ValueError: unknown format (a programming error; the CLI validates it).
    """
    k, r, a = target.kernel, target.ramdisk, target.args
    if fmt == "sxp":
        for v in (k, r, a):
            if v is not None and "\0" in v:
                raise OutputError("refusing to write a boot record: a value contains a NUL byte")
        s = f"linux (kernel {k!r})"
        if r:
            s += f"(ramdisk {r!r})"
        if a:
            s += f"(args {a!r})"
        return s
    if fmt in ("simple", "simple0"):
        sep = "\n" if fmt == "simple" else "\0"
        for name, v in (("kernel", k), ("ramdisk", r), ("args", a)):
            if v is not None and sep in v:
                shown = "newline" if sep == "\n" else "NUL byte"
                raise OutputError(
                    f"refusing to write a {fmt} boot record: the {name} value contains a {shown} "
                    "(it could forge another record; XSA-198)"
                )
        s = f"kernel {k}{sep}"
        if r:
            s += f"ramdisk {r}{sep}"
        if a:
            s += f"args {a}{sep}"
        return s + sep
    raise ValueError(f"unknown pygrub output format {fmt!r}")


def _xml_escape(text: str) -> str:
    # xml.sax.saxutils.escape would pull in urllib and http.client (~25 ms of start-up)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_qemu(target: BootTarget) -> str:
    """``-kernel K [-initrd I] [-append A]`` for a QEMU command line (shell-quoted)."""
    parts = ["-kernel", shlex.quote(target.kernel)]
    if target.ramdisk:
        parts += ["-initrd", shlex.quote(target.ramdisk)]
    if target.args:
        parts += ["-append", shlex.quote(target.args)]
    return " ".join(parts)


def render_libvirt(target: BootTarget) -> str:
    """An ``<os>`` fragment for a libvirt domain (direct kernel boot).

    Raises:
        OutputError: a value holds a character XML 1.0 cannot carry.
    """
    for v in (target.kernel, target.ramdisk or "", target.args):
        if any(ord(c) < 0x20 and c not in "\t\n\r" for c in v):
            raise OutputError("refusing to write libvirt XML: a value contains a control character")
    lines = ["<os>", f"  <kernel>{_xml_escape(target.kernel)}</kernel>"]
    if target.ramdisk:
        lines.append(f"  <initrd>{_xml_escape(target.ramdisk)}</initrd>")
    if target.args:
        lines.append(f"  <cmdline>{_xml_escape(target.args)}</cmdline>")
    lines.append("</os>")
    return "\n".join(lines)
