"""ext2/3/4 inodes: the 128-byte base, the extra fields, times, and in-inode xattrs.

References:
    Linux ``fs/ext4/ext4.h`` (struct ext4_inode, EXT4_FITS_IN_INODE, ext4_decode_extra_time,
        ext4_isize), ``fs/ext4/inode.c`` (__ext4_iget: i_extra_isize checks,
        ext4_inode_is_fast_symlink), ``fs/ext4/xattr.h`` and ``fs/ext4/xattr.c``
        (in-inode extended attributes: a 4-byte magic, then entries whose value offsets
        count from the first entry).

Timestamps: a 32-bit signed seconds field, plus (when ``i_extra_isize`` covers it) a
32-bit ``*_extra`` whose low 2 bits extend the seconds past 2038 and whose upper 30
bits are nanoseconds::

    seconds = int32(i_mtime) + ((i_mtime_extra & 3) << 32)
    nanos   = i_mtime_extra >> 2
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.ext4 import structs as S
from virtkit.errors import CorruptStructure

__all__ = ["Inode", "find_inline_xattr", "parse_inode"]

_EXTRA_NAMES = [name for name, _, _ in S.INODE_EXTRA_FIELDS]
_EXTRA_ALL = struct.Struct("<" + "".join(code for _, _, code in S.INODE_EXTRA_FIELDS))
_EXTRA_END = S.EXT4_GOOD_OLD_INODE_SIZE + _EXTRA_ALL.size
_EXTRA_EACH = [(name, off, struct.Struct("<" + code)) for name, off, code in S.INODE_EXTRA_FIELDS]

_TYPES = {
    S.S_IFREG: FileType.FILE,
    S.S_IFDIR: FileType.DIRECTORY,
    S.S_IFLNK: FileType.SYMLINK,
    S.S_IFCHR: FileType.OTHER,
    S.S_IFBLK: FileType.OTHER,
    S.S_IFIFO: FileType.OTHER,
    S.S_IFSOCK: FileType.OTHER,
}


@dataclass(frozen=True, slots=True)
class Inode:
    """One parsed on-disk inode.

    Attributes:
        ino: the inode number.
        offset: byte offset of the inode on the volume.
        raw: the first 128 bytes, parsed (kernel field names: ``raw.i_mode``, ``raw.i_block``).
        extra: the extra fields present (``i_extra_isize``, ``i_mtime_extra``, ...).
        size: size in bytes (i_size_lo, plus i_size_high for regular files, and for
            directories with large_dir, as fs/ext4/ext4.h ext4_isize does).
        blocks512: allocated space in 512-byte units.
        xattr_area: the in-inode extended-attribute region (empty if none).
        atime_ns, mtime_ns, ctime_ns, crtime_ns: POSIX times in nanoseconds (crtime: None
            when the inode has no room for it).
    """

    ino: int
    offset: int
    raw: Any
    extra: dict[str, int]
    type: FileType
    size: int
    blocks512: int
    xattr_area: bytes
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    crtime_ns: int | None

    @property
    def mode(self) -> int:
        return int(self.raw.i_mode)

    @property
    def flags(self) -> int:
        return int(self.raw.i_flags)

    @property
    def uid(self) -> int:
        return int(self.raw.i_uid) | int(self.raw.l_i_uid_high) << 16

    @property
    def gid(self) -> int:
        return int(self.raw.i_gid) | int(self.raw.l_i_gid_high) << 16

    @property
    def links_count(self) -> int:
        return int(self.raw.i_links_count)

    @property
    def file_acl(self) -> int:
        """Block number of the external xattr block (0: none)."""
        return int(self.raw.i_file_acl_lo) | int(self.raw.l_i_file_acl_high) << 32

    @property
    def i_block(self) -> bytes:
        return bytes(self.raw.i_block)

    def has_flag(self, flag: int) -> bool:
        return bool(self.raw.i_flags & flag)


def _time_ns(seconds: int, extra: int | None) -> int:
    sec = seconds - (1 << 32) if seconds & 0x80000000 else seconds
    if extra is None:
        return sec * 1_000_000_000
    sec += (extra & S.EXT4_EPOCH_MASK) << 32
    return sec * 1_000_000_000 + (extra >> S.EXT4_EPOCH_BITS)


def parse_inode(
    buf: bytes,
    ino: int,
    *,
    offset: int,
    block_size: int,
    huge_file: bool,
    large_dir: bool,
    where: str,
) -> Inode:
    """Parse one on-disk inode of ``len(buf)`` (the superblock's inode size) bytes.

    Args:
        buf: the inode's bytes.
        ino: its number (for messages).
        offset: its byte offset on the volume (for messages).
        block_size: the filesystem block size (huge_file block counts).
        huge_file: the huge_file ro_compat feature is on.
        large_dir: the large_dir incompat feature is on (directories use i_size_high).
        where: the filesystem description for messages.

    Returns:
        the parsed :class:`Inode`.

    Raises:
        CorruptStructure: an unknown file type or a bad ``i_extra_isize``.
    """
    what = f"ext4 inode {ino} on {where}"
    raw = S.INODE_BASE.parse(buf, 0, where=where)
    ftype = _TYPES.get(raw.i_mode & S.S_IFMT)
    if ftype is None:
        raise CorruptStructure(what, "i_mode: unknown file type", offset=offset, got=raw.i_mode)
    extra: dict[str, int] = {}
    end = S.EXT4_GOOD_OLD_INODE_SIZE
    if len(buf) > S.EXT4_GOOD_OLD_INODE_SIZE:
        (isize,) = struct.unpack_from("<H", buf, 0x80)
        if isize & 3 or S.EXT4_GOOD_OLD_INODE_SIZE + isize > len(buf):
            raise CorruptStructure(what, "i_extra_isize: bad size", offset=offset + 0x80, got=isize)
        end = S.EXT4_GOOD_OLD_INODE_SIZE + isize
        if end >= _EXTRA_END:  # the usual 256-byte inode: every extra field, one unpack
            extra = dict(zip(_EXTRA_NAMES, _EXTRA_ALL.unpack_from(buf, S.EXT4_GOOD_OLD_INODE_SIZE)))
        else:
            for name, field_off, field in _EXTRA_EACH:
                if field_off + field.size <= end:
                    extra[name] = field.unpack_from(buf, field_off)[0]
    size = raw.i_size_lo
    if ftype is FileType.FILE or large_dir:
        size |= raw.i_size_high << 32
    blocks = raw.i_blocks_lo | raw.l_i_blocks_high << 32
    if huge_file and raw.i_flags & S.EXT4_HUGE_FILE_FL:
        blocks *= block_size // 512
    crtime = None
    if "i_crtime" in extra:
        crtime = _time_ns(extra["i_crtime"], extra.get("i_crtime_extra"))
    return Inode(
        ino=ino,
        offset=offset,
        raw=raw,
        extra=extra,
        type=ftype,
        size=size,
        blocks512=blocks,
        xattr_area=bytes(buf[end:]),
        atime_ns=_time_ns(raw.i_atime, extra.get("i_atime_extra")),
        mtime_ns=_time_ns(raw.i_mtime, extra.get("i_mtime_extra")),
        ctime_ns=_time_ns(raw.i_ctime, extra.get("i_ctime_extra")),
        crtime_ns=crtime,
    )


def find_inline_xattr(inode: Inode, index: int, name: bytes, *, where: str) -> bytes | None:
    """The value of the in-inode extended attribute (``index``, ``name``), or None.

    Used for ``system.data`` (index 7, name "data"), where inline data continues.

    Raises:
        CorruptStructure: an entry or value lies outside the in-inode xattr area, or
            the value lives in a separate EA inode (never the case for system.data).
    """
    area = inode.xattr_area
    if len(area) < 4 or struct.unpack_from("<I", area, 0)[0] != S.EXT4_XATTR_MAGIC:
        return None
    what = f"ext4 inode {inode.ino} in-inode xattrs on {where}"
    body = area[4:]
    base = inode.offset + S.EXT4_GOOD_OLD_INODE_SIZE + inode.extra.get("i_extra_isize", 0) + 4
    pos = 0
    # Each entry is at least 16 bytes, so this loop ends within len(body) / 16 steps.
    while pos + 4 <= len(body) and struct.unpack_from("<I", body, pos)[0] != 0:
        entry = S.XATTR_ENTRY.parse(body, pos, where=what)
        name_end = pos + S.XATTR_ENTRY.size + entry.e_name_len
        if name_end > len(body):
            raise CorruptStructure(what, "entry name overruns the inode", offset=base + pos)
        if entry.e_name_index == index and body[pos + S.XATTR_ENTRY.size : name_end] == name:
            if entry.e_value_inum:
                raise CorruptStructure(what, "value stored in an EA inode", offset=base + pos, got=entry.e_value_inum)
            lo, hi = entry.e_value_offs, entry.e_value_offs + entry.e_value_size
            if hi > len(body):
                raise CorruptStructure(what, f"value {lo:#x}+{entry.e_value_size:#x} overruns the inode", offset=base + pos)
            return bytes(body[lo:hi])
        pos = (name_end + S.EXT4_XATTR_ROUND - 1) & ~(S.EXT4_XATTR_ROUND - 1)
    return None
