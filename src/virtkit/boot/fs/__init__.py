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
    reasons: list[str] = []
    for cls in available_readers():
        try:
            if peers and "devices" in inspect.signature(cls.open).parameters:  # type: ignore[attr-defined]
                return cls.open(source, limits=limits, devices=peers)  # type: ignore[attr-defined]
            return cls.open(source, limits=limits)  # type: ignore[attr-defined]
        except NotThisFormat as exc:
            reasons.append(f"{cls.fstype}: {exc}")
    raise UnknownFormat(f"volume {source.name}", reasons)
