"""What booting a GRUB legacy entry loads: running its ``root``/``kernel``/``initrd``/``module`` lines.

References:
    GNU GRUB Legacy manual (0.97), "Command-line and menu entry commands" (root, rootnoverify,
    kernel, initrd, module, chainloader, savedefault, lock, makeactive, map, configfile) and
    GRUB 0.97 ``stage2/builtins.c`` (``kernel_func``: options, the command line after the file
    name; ``initrd_func``/``module_func``: a Linux / multiboot kernel first); read for facts only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from virtkit.boot.config._support import MenuBuilder
from virtkit.boot.config.grub_legacy_lex import (
    DEVICE_RE,
    MENU_COMMANDS,
    LegacyEntry,
    command_name,
    line_location,
    skip_to,
)
from virtkit.boot.config.model import BootEntry, EntryKind, FileRef
from virtkit.boot.config.source import BootFiles, DeviceInfo, SourceFile, normalise_path
from virtkit.sanitize import sanitize_text

__all__ = ["BootRun", "Resolver", "entry_from_boot", "run_entry"]

@dataclass
class BootRun:
    """What running an entry's commands loads."""

    root: str | None
    root_note: str | None = None
    kernel: FileRef | None = None
    kernel_args: str = ""
    kernel_type: str = ""  # "linux", "multiboot", "other"
    initrd: FileRef | None = None
    modules: list[tuple[FileRef, str]] = field(default_factory=list)
    chainload: FileRef | None = None
    chain_written: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    savedefault: str | None = None


class Resolver:
    """GRUB legacy device names -> our devices, computed once per name per load."""

    def __init__(self, files: BootFiles) -> None:
        self.devices = list(files.devices())
        self.cache: dict[str, tuple[str | None, str | None]] = {}

    def resolve(self, dev: str) -> tuple[str | None, str | None]:
        hit = self.cache.get(dev)
        if hit is None:
            hit = self.cache[dev] = _resolve_device(self.devices, dev)
        return hit


def _resolve_device(devices: Sequence[DeviceInfo], dev: str) -> tuple[str | None, str | None]:
    """Map a GRUB legacy device ("hd0,0") to one of our devices; (name, problem)."""
    m = DEVICE_RE.match(f"({dev})")
    if not m:
        return None, f"({dev}) is not a GRUB legacy device name"
    drive, num, part, bsd = m.group("drive"), m.group("num"), m.group("part"), m.group("bsd")
    if drive != "hd":
        return None, f"({dev}) is a {'floppy' if drive == 'fd' else 'CD/network'} device, not a guest disk"
    disk = f"hd{num or '0'}"
    if bsd:
        return None, f"({dev}) names a BSD disklabel slice, which virtkit does not read"
    if part is None:
        names = [disk]
    else:
        n = int(part) + 1  # legacy counts partitions from 0
        names = [f"{disk},msdos{n}", f"{disk},gpt{n}", f"{disk},{n}"]
    for name in names:
        info = next((d for d in devices if d.matches(name)), None)
        if info is not None:
            return info.name, None
    if part is None:
        return None, f"({dev}) is not a device of this guest"
    return None, f"({dev}) is not a device of this guest (legacy partition {part} = GRUB 2 ({names[0]}))"


def _split_device(path: str) -> tuple[str | None, str]:
    """"(hd0,1)/vmlinuz" -> ("hd0,1", "/vmlinuz"); "/vmlinuz" -> (None, "/vmlinuz")."""
    if path.startswith("("):
        close = path.find(")")
        if close > 0:
            return path[1:close], path[close + 1 :]
    return None, path


def _file(res: Resolver, boot: BootRun, written: str, cfg_device: str) -> tuple[str | None, str, str | None]:
    """Resolve a file argument against the entry's root: (device, path, error)."""
    dev_text, path = _split_device(written)
    device = boot.root
    if dev_text is not None:
        device, problem = res.resolve(dev_text)
        if device is None:
            device = cfg_device
            boot.notes.append(f"{problem}; looked on the config's device ({cfg_device}) instead")
    if path.startswith("+") or re.match(r"^\d+\+", path):
        return device, path, "blocklist"
    if not path.startswith("/"):
        return device, path, f"'{sanitize_text(written)}': GRUB legacy needs an absolute path or a blocklist"
    return device, normalise_path(path), None


def run_entry(files: BootFiles, e: LegacyEntry, src: SourceFile, cfg_device: str, *, b: MenuBuilder,
               res: Resolver) -> BootRun:
    boot = BootRun(root=cfg_device)
    for ln in e.lines:
        name = command_name(ln.text)
        arg = skip_to(True, ln.text)
        loc = line_location(src, ln)
        if boot.error:
            break
        if name in ("root", "rootnoverify"):
            dev_text = arg.split(" ", 1)[0]
            if not dev_text.startswith("(") or ")" not in dev_text:
                boot.error = f"`{name} {arg.strip()}`: a device must be written in parentheses"
                break
            dev, problem = res.resolve(dev_text[1 : dev_text.index(")")])
            if dev is None:
                boot.root = cfg_device
                boot.root_note = f"`{name} {dev_text}`: {problem}; using the device the config was read from " \
                                 f"({cfg_device}), as pygrub and PV-GRUB do with partition images"
            else:
                boot.root = dev
        elif name == "uuid":
            want = arg.strip().lower()
            match = [d for d in res.devices if d.uuid and d.uuid.lower() == want]
            if match:
                boot.root = match[0].name
            else:
                boot.error = f"`uuid {arg.strip()}`: no filesystem with that UUID"
        elif name in ("kernel", "kernel$"):
            rest = arg
            ktype = ""
            while rest.startswith("--type=") or rest.startswith("--no-mem-option"):
                if rest.startswith("--type="):
                    ktype = rest[7:].split(" ", 1)[0]
                rest = skip_to(False, rest)
            written = rest.split(" ", 1)[0]
            if not written:
                boot.error = "`kernel` without a file"
                break
            device, path, err = _file(res, boot, written, cfg_device)
            if err:
                boot.error = f"kernel {err}"
                break
            boot.kernel = b.file_ref(files, device, path, written, what="kernel", location=loc)
            boot.kernel_args = skip_to(False, rest)
            boot.initrd = None
            boot.modules = []
            boot.chainload = None
            base = path.rsplit("/", 1)[-1].lower()
            if ktype == "multiboot" or base.startswith("xen"):
                boot.kernel_type = "multiboot"
            elif ktype in ("", "linux", "biglinux"):
                boot.kernel_type = "linux"
            else:
                boot.kernel_type = "other"
                boot.notes.append(f"kernel --type={ktype}: not a Linux kernel")
        elif name == "initrd":
            if boot.kernel is None or boot.kernel_type != "linux":
                boot.error = "`initrd` before a Linux `kernel` (GRUB legacy: \"Linux kernel must be loaded before initrd\")"
                break
            written = arg.split(" ", 1)[0]
            device, path, err = _file(res, boot, written, cfg_device)
            if err:
                boot.error = f"initrd {err}"
                break
            boot.initrd = b.file_ref(files, device, path, written, what="initrd", location=loc)
        elif name in ("module", "module$", "modulenounzip"):
            if boot.kernel is None:
                boot.error = "`module` before `kernel` (GRUB legacy: \"Multiboot kernel must be loaded before modules\")"
                break
            boot.kernel_type = "multiboot"
            written = arg.split(" ", 1)[0]
            device, path, err = _file(res, boot, written, cfg_device)
            if err:
                boot.error = f"module {err}"
                break
            ref = FileRef(device=device, path=path, written=written)
            boot.modules.append((ref, skip_to(False, arg)))
        elif name == "chainloader":
            rest = skip_to(False, arg) if arg.startswith("--force") else arg
            written = rest.split(" ", 1)[0]
            device, path, _err = _file(res, boot, written, cfg_device)
            boot.chainload = FileRef(device=device, path=path, written=written)
            boot.chain_written = written
            boot.kernel = None
        elif name == "savedefault":
            boot.savedefault = arg.strip() or "current"
        elif name in ("lock", "password"):
            boot.notes.append(f"`{name}`: GRUB legacy asks for the menu password before booting this entry; "
                              "not enforced here")
        elif name in ("makeactive", "map", "hide", "unhide", "parttype"):
            boot.notes.append(f"`{name}` changes partition tables or drive mapping at boot; ignored")
        elif name == "configfile":
            boot.notes.append(f"`configfile {arg.strip()}` loads another menu; not followed")
            boot.kernel_type = "configfile"
        elif name in ("findroot", "bootfs"):
            boot.error = f"`{name}` (Solaris GRUB) is not supported"
        elif name in MENU_COMMANDS and name not in ("hide", "unhide"):
            boot.notes.append(f"`{name}` inside an entry has no effect on what boots")
    return boot


def entry_from_boot(e: LegacyEntry, boot: BootRun, src: SourceFile) -> BootEntry:
    notes = list(boot.notes)
    if boot.root_note:
        notes.insert(0, boot.root_note)
    body = "\n".join(ln.text for ln in e.lines)
    origin = line_location(src, e.start)
    base = BootEntry(title=e.title, origin=origin, body=body)
    if boot.error:
        notes.append(f"GRUB legacy stops this entry with an error: {boot.error}")
        return _replace(base, kind=EntryKind.NONE, notes=tuple(notes))
    if boot.chainload is not None:
        notes.append(f"chainloader {boot.chain_written}: boots another boot loader, not a kernel")
        return _replace(base, kind=EntryKind.CHAINLOAD, notes=tuple(notes))
    if boot.kernel is None:
        if boot.kernel_type == "configfile":
            return _replace(base, kind=EntryKind.OTHER, notes=tuple(notes))
        notes.append("the entry loads no kernel")
        return _replace(base, kind=EntryKind.NONE, notes=tuple(notes))
    if boot.kernel_type == "multiboot":
        is_xen = boot.kernel.path.rsplit("/", 1)[-1].lower().startswith("xen")
        for i, (ref, args) in enumerate(boot.modules, 1):
            role = " (the dom0 kernel)" if is_xen and i == 1 else ""
            notes.append(f"module {i}: {ref.display()} {sanitize_text(args)}".rstrip() + role)
        if is_xen:
            notes.insert(0, "Xen hypervisor entry: `kernel` loads the hypervisor and `module` the dom0 kernel; "
                            "it cannot boot as a PV guest (pygrub would hand xen.gz to the domain builder)")
            kind = EntryKind.XEN
        else:
            notes.insert(0, "multiboot kernel: not a Linux kernel")
            kind = EntryKind.OTHER
        return _replace(base, kind=kind, kernel=boot.kernel, cmdline=boot.kernel_args, notes=tuple(notes))
    if boot.kernel_type == "other":
        return _replace(base, kind=EntryKind.OTHER, kernel=boot.kernel, cmdline=boot.kernel_args, notes=tuple(notes))
    initrds = (boot.initrd,) if boot.initrd is not None else ()
    return _replace(base, kind=EntryKind.LINUX, kernel=boot.kernel, initrds=initrds, cmdline=boot.kernel_args,
                    notes=tuple(notes))


def _replace(e: BootEntry, **kw: object) -> BootEntry:
    # BootEntry(**...) directly: dataclasses.replace() costs more than the whole entry otherwise.
    return BootEntry(title=e.title, origin=e.origin, body=e.body, **kw)  # type: ignore[arg-type]
