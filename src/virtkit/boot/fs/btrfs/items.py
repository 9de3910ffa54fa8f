"""Leaf item payloads: inodes, directory entries, back references, roots, file extents.

References:
    include/uapi/linux/btrfs_tree.h (``btrfs_inode_item``, ``btrfs_dir_item``,
    ``btrfs_inode_ref``, ``btrfs_root_item``,
    ``btrfs_root_ref``, ``btrfs_file_extent_item``),
    fs/btrfs/tree-checker.c (``check_dir_item``, ``check_extent_data_item``,
    ``check_inode_ref``, ``check_root_item``).

Each parser takes an :class:`~virtkit.boot.fs.btrfs.tree.Item` and checks that
every length it reads stays inside the item; a violation is a
:class:`~virtkit.errors.CorruptStructure` naming the item's key and leaf.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from virtkit.boot.fs.btrfs.structs import (
    BTRFS_DIR_ITEM,
    BTRFS_FILE_EXTENT_INLINE,
    BTRFS_FILE_EXTENT_INLINE_DATA_START,
    BTRFS_FILE_EXTENT_ITEM_HEAD,
    BTRFS_FILE_EXTENT_ITEM_REG,
    BTRFS_FILE_EXTENT_PREALLOC,
    BTRFS_FILE_EXTENT_REG,
    BTRFS_INODE_ITEM,
    BTRFS_INODE_REF,
    BTRFS_NAME_LEN,
    BTRFS_ROOT_ITEM,
    BTRFS_ROOT_REF,
)
from virtkit.boot.fs.btrfs.tree import Item, Key
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = [
    "DirItem",
    "FileExtent",
    "RootItem",
    "describe_item",
    "iter_dir_items",
    "iter_inode_refs",
    "parse_file_extent",
    "parse_inode_item",
    "parse_root_item",
    "parse_root_ref",
]


def describe_item(item: Item, kind: str, where: str) -> str:
    """"btrfs DIR_ITEM (256 84 0x1234) in leaf 0x1d4000 on disk0p2" for messages."""
    o, t, off = item.key
    return f"btrfs {kind} ({o} {t} {off:#x}) in leaf {item.leaf:#x} on {where}"


def parse_inode_item(item: Item, where: str) -> Any:
    """The ``btrfs_inode_item`` in ``item``.

    Raises:
        CorruptStructure: the item is too short.
    """
    if len(item.data) < BTRFS_INODE_ITEM.size:
        raise CorruptStructure(describe_item(item, "INODE_ITEM", where), "item shorter than an inode", expected=BTRFS_INODE_ITEM.size, got=len(item.data))
    return BTRFS_INODE_ITEM.parse(item.data, 0, where=where)


@dataclass(frozen=True, slots=True)
class DirItem:
    """One name in a DIR_ITEM / DIR_INDEX / XATTR_ITEM."""

    name: bytes
    location: Key
    type: int
    transid: int


def iter_dir_items(item: Item, where: str, limits: Limits) -> Iterator[DirItem]:
    """The entries packed in one DIR_ITEM or DIR_INDEX item (several when names collide).

    Raises:
        CorruptStructure: an entry runs past the item, or an empty / over-long name.
        LimitExceeded: a name over ``max_name_bytes``.
    """
    data = item.data
    pos = 0
    n = len(data)
    while pos < n:
        d = BTRFS_DIR_ITEM.parse(data, pos, where=where)
        end = pos + BTRFS_DIR_ITEM.size + d.name_len + d.data_len
        if end > n:
            raise CorruptStructure(
                describe_item(item, "DIR_ITEM", where),
                f"entry at {pos} with name_len {d.name_len} and data_len {d.data_len} runs past the {n}-byte item",
            )
        if d.name_len == 0:
            raise CorruptStructure(describe_item(item, "DIR_ITEM", where), f"entry at {pos} has an empty name")
        if d.type != 8 and d.name_len > BTRFS_NAME_LEN:  # BTRFS_FT_XATTR names are bounded by the item only
            raise CorruptStructure(describe_item(item, "DIR_ITEM", where), f"name_len {d.name_len} over {BTRFS_NAME_LEN}")
        limits.check("max_name_bytes", d.name_len, describe_item(item, "DIR_ITEM", where))
        start = pos + BTRFS_DIR_ITEM.size
        yield DirItem(
            name=bytes(data[start : start + d.name_len]),
            location=(d.location_objectid, d.location_type, d.location_offset),
            type=d.type,
            transid=d.transid,
        )
        pos = end


def iter_inode_refs(item: Item, where: str) -> Iterator[tuple[int, bytes]]:
    """``(index, name)`` for each name in an INODE_REF item (parent = key offset).

    Raises:
        CorruptStructure: a name runs past the item.
    """
    data = item.data
    pos = 0
    while pos < len(data):
        r = BTRFS_INODE_REF.parse(data, pos, where=where)
        start = pos + BTRFS_INODE_REF.size
        if start + r.name_len > len(data) or r.name_len == 0:
            raise CorruptStructure(describe_item(item, "INODE_REF", where), f"bad name_len {r.name_len} at {pos}")
        yield r.index, bytes(data[start : start + r.name_len])
        pos = start + r.name_len


@dataclass(frozen=True, slots=True)
class RootItem:
    """What the reader needs of a ``btrfs_root_item``."""

    objectid: int
    root_dirid: int
    bytenr: int
    level: int
    generation: int


def parse_root_item(item: Item, where: str) -> RootItem:
    """The ``btrfs_root_item`` in ``item`` (key objectid = tree id).

    Raises:
        CorruptStructure: too short, or no root block.
    """
    if len(item.data) < BTRFS_ROOT_ITEM.size:
        raise CorruptStructure(describe_item(item, "ROOT_ITEM", where), "item too short", expected=BTRFS_ROOT_ITEM.size, got=len(item.data))
    r = BTRFS_ROOT_ITEM.parse(item.data, 0, where=where)
    if r.bytenr == 0:
        raise CorruptStructure(describe_item(item, "ROOT_ITEM", where), "root block address is 0")
    return RootItem(objectid=item.key[0], root_dirid=r.root_dirid, bytenr=r.bytenr, level=r.level, generation=r.generation)


def parse_root_ref(item: Item, where: str) -> tuple[int, bytes]:
    """``(dirid, name)`` of a ROOT_REF / ROOT_BACKREF item.

    Raises:
        CorruptStructure: the name runs past the item.
    """
    r = BTRFS_ROOT_REF.parse(item.data, 0, where=where)
    start = BTRFS_ROOT_REF.size
    if r.name_len == 0 or start + r.name_len > len(item.data):
        raise CorruptStructure(describe_item(item, "ROOT_REF", where), f"bad name_len {r.name_len}")
    return r.dirid, bytes(item.data[start : start + r.name_len])


@dataclass(frozen=True, slots=True)
class FileExtent:
    """One EXTENT_DATA item.

    ``file_offset`` is the key offset.  Inline extents carry ``inline`` (raw,
    possibly compressed bytes); regular and prealloc ones the disk fields.
    """

    file_offset: int
    type: int
    compression: int
    encryption: int
    other_encoding: int
    ram_bytes: int
    inline: bytes = b""
    disk_bytenr: int = 0
    disk_num_bytes: int = 0
    offset: int = 0
    num_bytes: int = 0


def parse_file_extent(item: Item, where: str) -> FileExtent:
    """The ``btrfs_file_extent_item`` in ``item``.

    Raises:
        CorruptStructure: too short, unknown type, or a regular extent whose
            ``offset``/``num_bytes`` overflow.
    """
    what = describe_item(item, "EXTENT_DATA", where)
    h = BTRFS_FILE_EXTENT_ITEM_HEAD.parse(item.data, 0, where=where)
    common = {
        "file_offset": item.key[2],
        "type": h.type,
        "compression": h.compression,
        "encryption": h.encryption,
        "other_encoding": h.other_encoding,
        "ram_bytes": h.ram_bytes,
    }
    if h.type == BTRFS_FILE_EXTENT_INLINE:
        return FileExtent(inline=bytes(item.data[BTRFS_FILE_EXTENT_INLINE_DATA_START:]), **common)
    if h.type not in (BTRFS_FILE_EXTENT_REG, BTRFS_FILE_EXTENT_PREALLOC):
        raise CorruptStructure(what, "unknown extent type", got=h.type)
    if len(item.data) < BTRFS_FILE_EXTENT_INLINE_DATA_START + BTRFS_FILE_EXTENT_ITEM_REG.size:
        raise CorruptStructure(what, "item too short for a regular extent", got=len(item.data))
    r = BTRFS_FILE_EXTENT_ITEM_REG.parse(item.data, BTRFS_FILE_EXTENT_INLINE_DATA_START, where=where)
    if r.offset + r.num_bytes >= 1 << 64 or item.key[2] + r.num_bytes >= 1 << 64:
        raise CorruptStructure(what, "offset/num_bytes overflow")
    return FileExtent(disk_bytenr=r.disk_bytenr, disk_num_bytes=r.disk_num_bytes, offset=r.offset, num_bytes=r.num_bytes, **common)
