"""``search`` and ``probe``, resolved against the guest's filesystems.

References:
    grub-core/commands/search_wrap.c (GRUB 2.06): options, ``--set`` with an optional
    variable name (``root`` when omitted), hints per platform, leading unknown
    ``--hint-*`` arguments skipped.
    grub-core/commands/search.c ``do_search``: hint devices first (a hint ending in ","
    also tries its partitions), then every device; with a variable the first match is
    stored (no parentheses) and the search stops; without one every match is printed
    as `` NAME``; no match -> "no such device: KEY", status 5, variable unchanged.
    UUIDs compare case-insensitively, labels exactly.
    grub-core/commands/probe.c: ``probe --set VAR --fs|--fs-uuid|--label|... DEVICE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.argopts import ArgError, HelpRequested, Opt, parse_args
from virtkit.boot.config.grub2.paths import find_device
from virtkit.boot.config.source import DeviceInfo
from virtkit.errors import VirtkitError

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = ["cmd_probe", "cmd_search", "cmd_search_short", "grub_fs_name"]

_SEARCH_OPTS = (
    Opt("file", "f"),
    Opt("label", "l"),
    Opt("fs-uuid", "u"),
    Opt("set", "s", value=True, optional=True),
    Opt("no-floppy", "n"),
    Opt("efidisk-only", None),
    Opt("hint", "h", value=True, repeatable=True),
    Opt("hint-ieee1275", None, value=True, repeatable=True),
    Opt("hint-bios", None, value=True, repeatable=True),
    Opt("hint-baremetal", None, value=True, repeatable=True),
    Opt("hint-efi", None, value=True, repeatable=True),
    Opt("hint-arc", None, value=True, repeatable=True),
)

# Which platform-specific hints a GRUB on each platform honours (search_wrap.c #ifdefs).
_PLATFORM_HINTS = {
    "pc": ("hint-bios",),
    "efi": ("hint-efi",),
    "ieee1275": ("hint-ieee1275",),
    "arc": ("hint-arc",),
}


def grub_fs_name(fs_type: str | None) -> str | None:
    """GRUB's name for a filesystem type (``probe --fs``)."""
    if fs_type is None:
        return None
    if fs_type in ("ext2", "ext3", "ext4"):
        return "ext2"
    if fs_type in ("vfat", "fat", "fat12", "fat16", "fat32", "msdos"):
        return "fat"
    return fs_type


def _matches(interp: Interpreter, dev: DeviceInfo, kind: str, key: str) -> bool:
    if dev.fs_type is None:
        return False
    if kind == "uuid":
        return dev.uuid is not None and dev.uuid.lower() == key.lower()
    if kind == "label":
        return dev.label is not None and dev.label == key
    if not key.startswith("/"):
        return False
    try:
        st = interp.files.stat(dev.name, key)
    except VirtkitError:
        return False
    return st is not None and not st.is_dir


def _hint_candidates(interp: Interpreter, hint: str) -> list[tuple[str, DeviceInfo]]:
    h = hint.strip("()") if hint.startswith("(") else hint
    if h.endswith(","):
        disk = h[:-1]
        out: list[tuple[str, DeviceInfo]] = []
        dev = find_device(interp.devices, disk)
        if dev is not None:
            out.append((disk, dev))
        for d in interp.devices:
            if d.name.startswith(disk + ","):
                out.append((d.name, d))
        return out
    dev = find_device(interp.devices, h)
    return [(h, dev)] if dev is not None else []


def do_search(interp: Interpreter, kind: str, key: str, *, var: str | None, hints: list[str], no_floppy: bool) -> int:
    """``do_search``: set ``var`` to the first match, or print every match."""
    tried: set[str] = set()
    candidates: list[tuple[str, DeviceInfo]] = []
    for h in hints:
        candidates.extend(_hint_candidates(interp, h))
    candidates.extend((d.name, d) for d in interp.devices)
    found = 0
    for name, dev in candidates:
        interp.step()
        if no_floppy and name.startswith("fd"):
            continue
        if var is None and dev.name in tried:
            continue
        tried.add(dev.name)
        if _matches(interp, dev, kind, key):
            found += 1
            if var is not None:
                interp.set(var, dev.name, "search", f"search {kind} {key}")
                return 0
            interp.write(f" {name}")
    if not found:
        return interp.error(E.GRUB_ERR_FILE_NOT_FOUND, f"no such device: {key}")
    return 0


def cmd_search(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, pos = parse_args(_SEARCH_OPTS, args, accept_dash=True)
    except HelpRequested:
        interp.write("Usage: search [-f|-l|-u|-s|-n] [--hint HINT [--hint HINT] ...] NAME\n")
        return 0
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    hints: list[str] = list(state.get("hint") or [])
    for opt in _PLATFORM_HINTS.get(interp.platform, ()):
        hints.extend(state.get(opt) or [])
    hints.extend(state.get("hint-baremetal") or [])
    j = 0
    while j < len(pos) and pos[j].startswith("--hint-"):
        j += 1
    var: str | None = None
    if "set" in state:
        var = state["set"] or "root"
    if j < len(pos):
        key = pos[j]
    elif state.get("set"):
        key = state["set"]
        var = "root"
    else:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "one argument expected")
    if "label" in state:
        kind = "label"
    elif "fs-uuid" in state:
        kind = "uuid"
    elif "file" in state:
        kind = "file"
    else:
        return interp.error(E.GRUB_ERR_INVALID_COMMAND, "unspecified search type")
    return do_search(interp, kind, key, var=var, hints=[h for h in hints if h], no_floppy="no-floppy" in state)


def cmd_search_short(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    """``search.fs_uuid KEY [VAR [HINT...]]`` and friends."""
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "one argument expected")
    kind = {"search.fs_uuid": "uuid", "search.fs_label": "label", "search.file": "file"}[name]
    var = args[1] if len(args) > 1 else None
    return do_search(interp, kind, args[0], var=var, hints=args[2:], no_floppy=args[0].startswith("-"))


_PROBE_OPTS = (
    Opt("set", "s", value=True),
    Opt("driver", "d"),
    Opt("partmap", "p"),
    Opt("fs", "f"),
    Opt("fs-uuid", "u"),
    Opt("label", "l"),
    Opt("part-uuid", None),
)


def cmd_probe(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, pos = parse_args(_PROBE_OPTS, args)
    except HelpRequested:
        interp.write("Usage: probe [DEVICE]\n")
        return 0
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    if not pos:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "device name required")
    devname = pos[0]
    if devname.startswith("(") and devname.endswith(")"):
        devname = devname[1:-1]
    dev = find_device(interp.devices, devname)
    if dev is None:
        return interp.error(E.GRUB_ERR_UNKNOWN_DEVICE, f"disk `{devname}' not found")
    val: str | None
    if "driver" in state:
        val = {"pc": "biosdisk", "efi": "efidisk", "xen": "xen", "ieee1275": "ofdisk"}.get(interp.platform, "biosdisk")
    elif "partmap" in state:
        parts = dev.name.split(",")
        if len(parts) < 2:
            return interp.error(E.GRUB_ERR_BAD_DEVICE, "no partition map found")
        val = "gpt" if parts[-1].startswith("gpt") else "msdos"
    else:
        fs = grub_fs_name(dev.fs_type)
        if fs is None:
            return interp.error(E.GRUB_ERR_UNKNOWN_FS, "unknown filesystem")
        if "fs" in state:
            val = fs
        elif "fs-uuid" in state:
            if dev.uuid is None:
                return interp.error(E.GRUB_ERR_NOT_IMPLEMENTED_YET, f"{fs} does not support UUIDs")
            val = dev.uuid
        elif "label" in state:
            if dev.label is None:
                return interp.error(E.GRUB_ERR_NOT_IMPLEMENTED_YET, f"filesystem `{fs}' does not support labels")
            val = dev.label
        elif "part-uuid" in state:
            if dev.part_uuid is None:
                return interp.error(E.GRUB_ERR_BAD_DEVICE, "no partition map found")
            val = dev.part_uuid
        else:
            return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "unrecognised target")
    if "set" in state:
        interp.set(state["set"], val, "probe")
    else:
        interp.write(val)
    return 0
