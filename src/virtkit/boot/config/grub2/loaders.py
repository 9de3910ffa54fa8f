"""Loader commands: what an entry body would load (``linux``, ``initrd``, ``multiboot``, ...).

References:
    grub-core/loader/i386/linux.c (GRUB 2.06) ``grub_cmd_linux``/``grub_cmd_initrd``:
    ``linux`` drops any earlier kernel and initrd; ``initrd`` needs a kernel first.
    grub-core/lib/cmdline.c ``grub_create_loader_cmdline``: the kernel command line is
    ``BOOT_IMAGE=<path>`` then every argument with ``\\ ' "`` backslashed and wrapped
    in double quotes when it contains a space.
    grub-core/loader/linux.c: ``newc:NAME:FILE`` initrd arguments.
    grub-core/loader/multiboot.c, loader/i386/xen.c, loader/i386/pc/chainloader.c.

Nothing is loaded: the commands record a :class:`BootState`.  A missing kernel
is recorded anyway (GRUB would only fail when booting) with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.paths import open_error
from virtkit.boot.config.model import EntryKind, FileRef

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = ["LOADER_COMMANDS", "BootState", "quote_cmdline", "trace_marker"]


@dataclass
class BootState:
    """What the entry body loaded so far."""

    kind: EntryKind = EntryKind.NONE
    loaded: bool = False
    kernel: FileRef | None = None
    kernel_cmd: str = ""
    args: list[str] = field(default_factory=list)
    initrds: list[FileRef] = field(default_factory=list)
    devicetree: FileRef | None = None
    notes: list[str] = field(default_factory=list)
    modules: list[FileRef] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def quote_cmdline(args: list[str]) -> str:
    """``grub_create_loader_cmdline`` for ``args`` (without the BOOT_IMAGE part)."""
    out: list[str] = []
    for a in args:
        q = "".join("\\" + c if c in "\\'\"" else c for c in a)
        out.append(f'"{q}"' if " " in a else q)
    return " ".join(out)


def _fileref(interp: Interpreter, written: str, what: str, state: BootState) -> tuple[FileRef, tuple[int, str] | None]:
    rp, err = open_error(interp, written)
    dev = rp.device.name if rp.device is not None else None
    ref = FileRef(dev, rp.path or written, written)
    if err is not None:
        state.note(f"{what} {written} cannot be opened ({err[1]}): GRUB would fail to boot this entry")
    return ref, err


def _state(interp: Interpreter) -> BootState:
    if interp.boot is None:
        interp.boot = BootState()
    return interp.boot


def trace_marker(interp: Interpreter, name: str, args: list[str]) -> None:
    """The marker line the oracle harness's stand-in functions print."""
    if interp.trace:
        root = interp.get("root") or ""
        chosen = interp.get("chosen") or ""
        interp.write(f"@@{name} n={len(args)} root=[{root}] chosen=[{chosen}]" + "".join(" " + a for a in args or [""]) + "\n")


def cmd_linux(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    # grub_loader_unset: a new kernel drops everything loaded before
    st.kind = EntryKind.NONE
    st.loaded = False
    st.kernel = None
    st.initrds = []
    st.devicetree = None
    st.modules = []
    ref, err = _fileref(interp, args[0], "kernel", st)
    st.kernel = ref
    st.kernel_cmd = name
    st.args = list(args[1:])
    st.kind = EntryKind.LINUX
    if name == "linux16":
        st.note("linux16: loaded with the 16-bit boot protocol (BIOS)")
    if err is not None:
        if interp.trace:
            return 0
        return interp.error(*err)
    st.loaded = True
    return 0


def cmd_initrd(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    if st.kernel is None or st.kind is not EntryKind.LINUX:
        if interp.trace:
            return 0
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "you need to load the kernel first")
    refs: list[FileRef] = []
    first_err: tuple[int, str] | None = None
    for a in args:
        written = a
        newc = False
        if a.startswith("newc:"):
            rest = a[5:]
            colon = rest.find(":")
            if colon >= 0:
                # GRUB wraps the file in a cpio member of that name (with directories and a
                # trailer, its format depending on GRUB's version); virtkit does not build it
                st.note(f"initrd {a}: GRUB packs it into a generated cpio as {rest[:colon]}; virtkit cannot "
                        "reproduce that ramdisk, so it refuses to extract this entry")
                written = rest[colon + 1 :]
                newc = True
        ref, err = _fileref(interp, written, "initrd", st)
        if newc:  # the reference keeps the newc: form, so extraction can see and refuse it
            ref = FileRef(ref.device, ref.path, a)
        refs.append(ref)
        if err is not None and first_err is None:
            first_err = err
    st.initrds = refs  # a second initrd command replaces the first
    if first_err is not None and not interp.trace:
        return interp.error(*first_err)
    return 0


def cmd_devicetree(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    ref, err = _fileref(interp, args[0], "devicetree", st)
    st.devicetree = ref
    st.note(f"devicetree {args[0]}")
    if err is not None and not interp.trace:
        return interp.error(*err)
    return 0


_XEN_NOTE = "boots the Xen hypervisor; not bootable as a PV guest"


def cmd_multiboot(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    ref, err = _fileref(interp, args[0], name, st)
    st.kind = EntryKind.XEN
    st.loaded = err is None
    st.kernel = ref
    st.kernel_cmd = name
    st.args = list(args[1:])
    st.initrds = []
    st.modules = []
    st.note(f"{name} entry: {_XEN_NOTE}")
    if err is not None and not interp.trace:
        return interp.error(*err)
    return 0


def cmd_module(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    files = [a for a in args if not a.startswith("--")]
    if not files:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    if st.kind is not EntryKind.XEN:
        if interp.trace:
            return 0
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "you need to load the kernel first")
    ref, err = _fileref(interp, files[0], "module", st)
    st.modules.append(ref)
    if err is not None and not interp.trace:
        return interp.error(*err)
    return 0


def cmd_chainloader(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    files = [a for a in args if not a.startswith("--")]
    if not files and name != "appleloader":
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    st.kind = EntryKind.CHAINLOAD
    st.loaded = True
    st.kernel = None
    st.initrds = []
    target = files[0] if files else "(firmware)"
    st.note(f"{name} {target}: starts another boot loader; not bootable as a PV guest")
    return 0


def cmd_other_loader(interp: Interpreter, name: str, args: list[str], _block: bool) -> int:
    trace_marker(interp, name, args)
    st = _state(interp)
    st.kind = EntryKind.OTHER
    st.loaded = True
    st.kernel = None
    st.initrds = []
    st.note(f"{name}: not a Linux kernel; not bootable as a PV guest")
    return 0


LOADER_COMMANDS = {
    "linux": cmd_linux,
    "linux16": cmd_linux,
    "linuxefi": cmd_linux,
    "initrd": cmd_initrd,
    "initrd16": cmd_initrd,
    "initrdefi": cmd_initrd,
    "devicetree": cmd_devicetree,
    "multiboot": cmd_multiboot,
    "multiboot2": cmd_multiboot,
    "xen_hypervisor": cmd_multiboot,
    "module": cmd_module,
    "module2": cmd_module,
    "xen_module": cmd_module,
    "chainloader": cmd_chainloader,
    "ntldr": cmd_chainloader,
    "appleloader": cmd_chainloader,
    "kfreebsd": cmd_other_loader,
    "knetbsd": cmd_other_loader,
    "kopenbsd": cmd_other_loader,
    "plan9": cmd_other_loader,
    "truecrypt": cmd_other_loader,
}
