"""Directory entries of ext2/3/4: linear blocks, hashed (htree) directories read linearly,
and inline directories.

References:
    Linux ``fs/ext4/dir.c`` (__ext4_check_dir_entry: rec_len at least 12, a multiple
        of 4, large enough for the name, not past the block; inode number in range),
        ``fs/ext4/ext4.h`` (struct ext4_dir_entry_2, ext4_rec_len_from_disk, EXT4_DIR_REC_LEN,
        the metadata_csum tail entry), ``fs/ext4/namei.c`` (htree: the dx_root hides behind
        the ".." entry and each dx_node behind an empty entry spanning the block, so a
        linear scan sees only real entries), ``fs/ext4/inline.c`` (inline directories: the
        parent's inode number in the first 4 bytes of i_block, then entries to the end of
        i_block, then more entries in the ``system.data`` xattr value).
    e2fsprogs ``lib/ext2fs/dirblock.c`` (ext2fs_get_rec_len: with 64 KiB blocks, rec_len
        65535 or 0 means the whole block).

Entry layout::

    +--------+---------+----------+-----------+------------------+---------+
    | inode  | rec_len | name_len | file_type | name (name_len)  | padding |
    | u32    | u16     | u8       | u8        |                  |         |
    +--------+---------+----------+-----------+------------------+---------+
    |<------------------------- rec_len (4-byte multiple) ---------------->|

Without the filetype feature, ``name_len`` is 16 bits and there is no file type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.ext4 import structs as S
from virtkit.errors import CorruptStructure

__all__ = ["FILE_TYPES", "iter_dir_region", "rec_len_from_disk"]

FILE_TYPES: dict[int, FileType] = {
    S.EXT4_FT_REG_FILE: FileType.FILE,
    S.EXT4_FT_DIR: FileType.DIRECTORY,
    S.EXT4_FT_SYMLINK: FileType.SYMLINK,
    S.EXT4_FT_CHRDEV: FileType.OTHER,
    S.EXT4_FT_BLKDEV: FileType.OTHER,
    S.EXT4_FT_FIFO: FileType.OTHER,
    S.EXT4_FT_SOCK: FileType.OTHER,
}

_HEADER = struct.Struct("<IHBB")
_MIN_REC_LEN = 12  # EXT4_DIR_REC_LEN(1)


def rec_len_from_disk(raw: int, block_size: int) -> int:
    """Decode rec_len (e2fsprogs ext2fs_get_rec_len; only 64 KiB blocks need it)."""
    if block_size < 65536:
        return raw
    if raw in (S.EXT4_MAX_REC_LEN, 0):
        return block_size
    return (raw & 65532) | ((raw & 3) << 16)


def iter_dir_region(
    buf: bytes,
    *,
    block_size: int,
    filetype: bool,
    inodes_count: int,
    what: str,
    base_offset: int,
) -> Iterator[tuple[int, bytes, int | None]]:
    """Yield ``(inode, name, file_type)`` for every record of one directory block or region.

    Deleted records (inode 0, which includes htree node headers and the checksum tail)
    are yielded too, so callers can count every record against their budget; callers
    skip them.  ``file_type`` is None without the filetype feature.

    Args:
        buf: the block (or inline region); records must tile it exactly.
        block_size: for rec_len decoding.
        filetype: the filetype incompat feature is on.
        inodes_count: s_inodes_count (entries naming a larger inode are corrupt).
        what: the directory's description for messages.
        base_offset: byte offset of ``buf`` on the volume (for messages).

    Raises:
        CorruptStructure: a record that breaks a kernel rule (rec_len too small, not a
            multiple of 4, too small for its name, past the end; inode out of range;
            an empty name on a live entry).
    """
    end = len(buf)
    off = 0
    unpack = _HEADER.unpack_from
    while off < end:
        if off + 8 > end:
            raise CorruptStructure(what, "directory entry header crosses the end of the block", offset=base_offset + off)
        ino, raw_rec_len, name_len, ftype = unpack(buf, off)
        rec_len = rec_len_from_disk(raw_rec_len, block_size)
        if not filetype:
            name_len |= ftype << 8
        if rec_len < _MIN_REC_LEN:
            raise CorruptStructure(what, "rec_len smaller than the minimum of 12", offset=base_offset + off, got=rec_len)
        if rec_len & 3:
            raise CorruptStructure(what, "rec_len not a multiple of 4", offset=base_offset + off, got=rec_len)
        if off + rec_len > end:
            raise CorruptStructure(
                what,
                f"directory entry overrun: rec_len {rec_len} at offset {off} passes the end ({end})",
                offset=base_offset + off,
            )
        if name_len > S.EXT4_NAME_LEN or 8 + name_len > rec_len:
            raise CorruptStructure(what, f"name_len {name_len} does not fit in rec_len {rec_len}", offset=base_offset + off)
        if ino > inodes_count:
            raise CorruptStructure(what, "entry names an inode beyond s_inodes_count", offset=base_offset + off, expected=f"<= {inodes_count}", got=ino)
        if ino and not name_len:
            raise CorruptStructure(what, "live entry with an empty name", offset=base_offset + off)
        yield ino, buf[off + 8 : off + 8 + name_len], (ftype if filetype else None)
        off += rec_len
