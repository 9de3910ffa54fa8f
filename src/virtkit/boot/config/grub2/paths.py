"""GRUB file names -> (guest device, path): ``(dev)/path``, ``/path`` on ``$root``, btrfs.

References:
    grub-core/kern/file.c ``grub_file_get_device_name`` / ``grub_file_open`` (GRUB 2.06):
    ``(dev)/path`` is absolute, anything else is on ``$root``; a missing ``)`` is an error.
    grub-core/kern/partition.c: ``(hd0,1)`` means partition 1 of whatever table, so
    ``hd0,1``, ``hd0,msdos1`` and ``hd0,gpt1`` name the same partition.
    openSUSE grub2 patch "btrfs: use the default subvolume" (``btrfs_relative_path``):
    paths resolve relative to the default subvolume instead of the top level.
    grub-core/commands/wildcard.c: ``*``/``?`` expansion of ``/path`` and ``(dev)/path``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.source import DeviceInfo, FileStat, SourceFile, normalise_path
from virtkit.errors import IsADirectory, LimitExceeded, PathError, VirtkitError

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = [
    "ResolvedPath",
    "find_device",
    "glob_expand",
    "read_text_file",
    "resolve",
    "stat_path",
]

_PART_PREFIX = re.compile(r"^[a-z]+(?=\d)")


def _normalise_device(name: str) -> str:
    """``hd0,msdos1`` -> ``hd0,1`` (partition-table names dropped) for loose matching."""
    parts = name.split(",")
    return ",".join([parts[0]] + [_PART_PREFIX.sub("", p) for p in parts[1:]])


def find_device(devices: list[DeviceInfo], name: str) -> DeviceInfo | None:
    """The device GRUB would open for ``name`` (no parentheses), or None."""
    for d in devices:
        if d.name == name or name in d.aliases:
            return d
    if "," in name:
        loose = _normalise_device(name)
        for d in devices:
            if _normalise_device(d.name) == loose or any(_normalise_device(a) == loose for a in d.aliases):
                return d
    return None


class ResolvedPath:
    """A resolved file name.

    Attributes:
        device: the DeviceInfo, or None if the device does not exist.
        device_name: the device as written/taken from ``$root`` (no parentheses).
        path: the absolute path on the filesystem (btrfs subvolume applied).
        written: the file name as the script wrote it.
        error: (code, message) GRUB would report opening it, or None.
    """

    __slots__ = ("device", "device_name", "error", "path", "written")

    def __init__(self, device: DeviceInfo | None, device_name: str, path: str, written: str, error: tuple[int, str] | None) -> None:
        self.device = device
        self.device_name = device_name
        self.path = path
        self.written = written
        self.error = error


def _btrfs_relative(interp: Interpreter, dev: DeviceInfo) -> bool:
    forced = getattr(interp, "btrfs_relative_path", None)
    if forced is not None:
        return bool(forced)
    return (interp.get("btrfs_relative_path") or "").lower() in ("y", "yes", "1", "true")


def resolve(interp: Interpreter, written: str) -> ResolvedPath:
    """Resolve a GRUB file name against the current ``$root`` and the guest's devices."""
    if written.startswith("("):
        close = written.find(")")
        if close < 0:
            return ResolvedPath(None, "", "", written, (E.GRUB_ERR_BAD_FILENAME, "missing `)' symbol"))
        dev_name = written[1:close]
        rest = written[close + 1 :]
    else:
        dev_name = interp.get("root") or ""
        rest = written
    if not dev_name:
        return ResolvedPath(None, "", rest, written, (E.GRUB_ERR_BAD_DEVICE, "no such device: root is not set"))
    dev = find_device(interp.devices, dev_name)
    if dev is None:
        return ResolvedPath(None, dev_name, rest, written, (E.GRUB_ERR_UNKNOWN_DEVICE, f"disk `{dev_name}' not found"))
    if rest == "":
        return ResolvedPath(dev, dev_name, "", written, None)
    if not rest.startswith("/"):
        return ResolvedPath(dev, dev_name, rest, written, (E.GRUB_ERR_BAD_FILENAME, f"invalid file name `{written}'"))
    path = normalise_path(rest)
    if dev.fs_type == "btrfs" and dev.default_subvolume and _btrfs_relative(interp, dev):
        path = normalise_path("/" + dev.default_subvolume.strip("/") + path)
    return ResolvedPath(dev, dev_name, path, written, None)


def stat_path(interp: Interpreter, rp: ResolvedPath) -> FileStat | None:
    """Stat a resolved path (a bare device counts as an existing directory)."""
    if rp.device is None or rp.error is not None:
        return None
    if rp.path == "":
        return FileStat(is_dir=True, size=0)
    try:
        return interp.files.stat(rp.device.name, rp.path)
    except VirtkitError:
        return None


def open_error(interp: Interpreter, written: str) -> tuple[ResolvedPath, tuple[int, str] | None]:
    """Resolve ``written`` and say what ``grub_file_open`` would report (None: it opens)."""
    rp = resolve(interp, written)
    if rp.error is not None:
        return rp, rp.error
    st = stat_path(interp, rp)
    if st is None:
        shown = written if not written.startswith("(") else written[written.find(")") + 1 :]
        return rp, (E.GRUB_ERR_FILE_NOT_FOUND, f"file `{shown}' not found")
    if st.is_dir:
        return rp, (E.GRUB_ERR_BAD_FILE_TYPE, "not a regular file")
    return rp, None


def read_text_file(interp: Interpreter, written: str, *, limit: int) -> SourceFile | None:
    """Read a text file GRUB-style; None if it does not exist or is unreadable.

    Raises:
        LimitExceeded: the file is larger than ``limit``.
    """
    rp = resolve(interp, written)
    if rp.error is not None or rp.device is None or not rp.path:
        return None
    try:
        data = interp.files.read(rp.device.name, rp.path, limit=limit)
    except LimitExceeded as exc:
        raise LimitExceeded("max_config_bytes", exc.value, limit, f"({rp.device.name}){rp.path}") from None
    except (IsADirectory, PathError):
        return None
    except VirtkitError as exc:
        interp.warn(f"cannot read ({rp.device.name}){rp.path}: {exc}")
        return None
    return SourceFile(rp.device.name, rp.path, data.decode("utf-8", "surrogateescape"))


def read_bytes(interp: Interpreter, rp: ResolvedPath, *, limit: int) -> bytes | None:
    """Raw bytes of a resolved file, None if unreadable (LimitExceeded propagates)."""
    if rp.device is None or rp.error is not None or not rp.path:
        return None
    try:
        return interp.files.read(rp.device.name, rp.path, limit=limit)
    except LimitExceeded:
        raise
    except VirtkitError:
        return None


def _glob_regex(pattern: str) -> re.Pattern[str] | None:
    """An escaped GRUB glob component as a regex (None if it has no wildcard)."""
    out: list[str] = []
    wild = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
            wild = True
        elif ch == "?":
            out.append(".")
            wild = True
        else:
            out.append(re.escape(ch))
        i += 1
    if not wild:
        return None
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _unescape(s: str) -> str:
    from virtkit.boot.config.grub2.expand import wildcard_unescape

    return wildcard_unescape(s)


def glob_expand(interp: Interpreter, escaped: str) -> list[str] | None:
    """Wildcard expansion of one escaped argument (only ``/...`` and ``(dev)/...``)."""
    if not (escaped.startswith("/") or escaped.startswith("(")):
        return None
    if _glob_regex(escaped.replace("/", "")) is None:
        return None
    if escaped.startswith("("):
        close = escaped.find(")")
        if close < 0:
            return None
        dev_part = "(" + _unescape(escaped[1:close]) + ")"
        dev_name = dev_part[1:-1]
        rest = escaped[close + 1 :]
    else:
        dev_part = ""
        dev_name = interp.get("root") or ""
        rest = escaped
    dev = find_device(interp.devices, dev_name)
    if dev is None or not rest.startswith("/"):
        return None
    comps = [c for c in rest.split("/") if c]
    results = [""]
    budget = interp.limits.max_dir_entries
    for comp in comps:
        rx = _glob_regex(comp)
        nxt: list[str] = []
        for base in results:
            if rx is None:
                nxt.append(base + "/" + _unescape(comp))
                continue
            try:
                listing = interp.files.listdir(dev.name, base or "/")
            except VirtkitError:
                continue
            for name, _is_dir in listing:
                if rx.match(name):
                    nxt.append(base + "/" + name)
                    budget -= 1
                    if budget <= 0:
                        raise LimitExceeded("max_dir_entries", interp.limits.max_dir_entries + 1, interp.limits.max_dir_entries, "glob")
        results = nxt
        if not results:
            return None
    found = [r for r in results if stat_path(interp, ResolvedPath(dev, dev_name, r, r, None)) is not None]
    if not found:
        return None
    return [dev_part + r for r in found]
