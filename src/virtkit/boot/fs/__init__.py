"""Stage 3 of the boot pipeline: read-only filesystem readers.

``open_filesystem(source, *, limits)`` tries each reader of the probe table in
order and returns the first that recognises the bytes.  Readers raise
:class:`~virtkit.errors.NotThisFormat` when the magic does not match; that is
the only error the probe loop catches.  Anything else (a recognised but
corrupt filesystem, a limit) propagates: a damaged ext4 must not silently
turn into "unknown".

Probe order, most specific magic first:

1. btrfs   - "_BHRfS_M" at 64 KiB + 0x40
2. xfs     - "XFSB" at 0
3. ext2/3/4 - 0xEF53 at 1 KiB + 0x38
4. iso9660 - "CD001" at 32 KiB + 1 (before FAT: hybrid ISOs carry a FAT-like boot sector)
5. vfat    - boot-sector heuristics (weakest: last)
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence

from virtkit._streams import ByteSource
from virtkit.boot.fs.base import DirEntry, Filesystem, FileType, Node, Stat, resolve_path
from virtkit.errors import NotThisFormat, UnknownFormat
from virtkit.limits import Limits

__all__ = [
    "PROBE_ORDER",
    "DirEntry",
    "FileType",
    "Filesystem",
    "Node",
    "Stat",
    "available_readers",
    "open_filesystem",
    "resolve_path",
]

# (module, class): each class has ``open(source, *, limits) -> Filesystem`` raising
# NotThisFormat when the bytes are not its format.
PROBE_ORDER: tuple[tuple[str, str], ...] = (
    ("virtkit.boot.fs.btrfs", "Btrfs"),
    ("virtkit.boot.fs.xfs", "Xfs"),
    ("virtkit.boot.fs.ext4", "Ext4"),
    ("virtkit.boot.fs.iso9660", "Iso9660"),
    ("virtkit.boot.fs.fat", "Fat"),
)


def _any_magic(source: ByteSource, places: tuple[tuple[int, bytes], ...]) -> bool:
    for offset, magic in places:
        if offset + len(magic) <= source.size and source.pread(offset, len(magic)) == magic:
            return True
    return False


# A cheap look at the magic before a reader module is even imported (start-up time: most
# guests need one or two readers).  Each reader's own probe makes the real decision.
# module -> (fstype, ((offset, magic), ...)): any one place matching lets the reader probe.
PRECHECKS: dict[str, tuple[str, tuple[tuple[int, bytes], ...]]] = {
    "virtkit.boot.fs.btrfs": ("btrfs", tuple((base + 0x40, b"_BHRfS_M") for base in (0x10000, 0x4000000, 0x4000000000))),
    "virtkit.boot.fs.xfs": ("xfs", ((0, b"XFSB"),)),
    "virtkit.boot.fs.ext4": ("ext4", ((0x438, b"\x53\xef"),)),
    "virtkit.boot.fs.iso9660": ("iso9660", ((0x8001, b"CD001"),)),
    "virtkit.boot.fs.fat": ("vfat", ((510, b"\x55\xaa"),)),
}


def _precheck(module_name: str, source: ByteSource) -> str | None:
    """None if the reader should probe ``source``, else why not (no magic where it must be)."""
    check = PRECHECKS.get(module_name)
    if check is None:
        return None
    fstype, places = check
    if _any_magic(source, places):
        return None
    return f"{fstype}: no {fstype} magic at {places[0][0]:#x}"


def available_readers() -> list[type[Filesystem]]:
    """The reader classes of the probe table, in probe order."""
    out: list[type[Filesystem]] = []
    for module_name, cls_name in PROBE_ORDER:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        out.append(getattr(module, cls_name))
    return out


def _readers_for(source: ByteSource) -> list[type[Filesystem]]:
    """The readers whose magic is present, in probe order (imported only now)."""
    out: list[type[Filesystem]] = []
    for module_name, cls_name in PROBE_ORDER:
        if _precheck(module_name, source) is not None:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        out.append(getattr(module, cls_name))
    return out


def open_filesystem(source: ByteSource, *, limits: Limits, peers: Sequence[ByteSource] = ()) -> Filesystem:
    """Recognise and open the filesystem on ``source``.

    Args:
        source: a volume's bytes.
        limits: bounds applied to everything the reader does.
        peers: the other devices of a multi-device filesystem (btrfs), passed as
            ``devices=`` to readers whose ``open`` accepts it.

    Returns:
        an opened, read-only Filesystem.

    Raises:
        UnknownFormat: no reader recognised the bytes (carries each reader's reason).
        CorruptStructure, UnsupportedFeature, LimitExceeded: a reader recognised the
            filesystem but cannot read it.
    """
    reasons = [r for m, _c in PROBE_ORDER if (r := _precheck(m, source)) is not None]
    for cls in _readers_for(source):
        try:
            if peers and "devices" in inspect.signature(cls.open).parameters:  # type: ignore[attr-defined]
                return cls.open(source, limits=limits, devices=peers)  # type: ignore[attr-defined]
            return cls.open(source, limits=limits)  # type: ignore[attr-defined]
        except NotThisFormat as exc:
            reasons.append(f"{cls.fstype}: {exc}")
    raise UnknownFormat(f"volume {source.name}", reasons)
