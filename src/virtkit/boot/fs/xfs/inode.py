"""XFS inodes: find one from its number, parse and check the dinode, decode times.

A dinode is a fixed core (100 bytes for v1/v2, 176 for v3) followed by the
"literal area": the data fork, and the attribute fork from ``di_forkoff * 8``
on if there is one.  The data fork holds, by ``di_format``, the bytes themselves
(local: short directories, short symlinks), an array of extent records, or the
root of a bmbt.

References:
    fs/xfs/libxfs/xfs_format.h       struct xfs_dinode, xfs_timestamp_t, XFS_DIFLAG*
    fs/xfs/libxfs/xfs_inode_buf.c    xfs_dinode_verify, xfs_dinode_verify_fork (which
                                     format each file type may use), xfs_inode_from_disk_ts
    fs/xfs/libxfs/xfs_inode_fork.h   XFS_DFORK_DSIZE / XFS_DFORK_BOFF
"""

from __future__ import annotations

import stat as stat_mod
from dataclasses import dataclass

from virtkit._streams import ByteSource
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.xfs import structs as s
from virtkit.boot.fs.xfs.superblock import XfsGeometry
from virtkit.errors import CorruptStructure

__all__ = ["Dinode", "read_dinode"]

_FORMATS_FOR_TYPE = {
    stat_mod.S_IFREG: (s.XFS_DINODE_FMT_EXTENTS, s.XFS_DINODE_FMT_BTREE),
    stat_mod.S_IFDIR: (s.XFS_DINODE_FMT_LOCAL, s.XFS_DINODE_FMT_EXTENTS, s.XFS_DINODE_FMT_BTREE),
    stat_mod.S_IFLNK: (s.XFS_DINODE_FMT_LOCAL, s.XFS_DINODE_FMT_EXTENTS, s.XFS_DINODE_FMT_BTREE),
    stat_mod.S_IFCHR: (s.XFS_DINODE_FMT_DEV,),
    stat_mod.S_IFBLK: (s.XFS_DINODE_FMT_DEV,),
    stat_mod.S_IFIFO: (s.XFS_DINODE_FMT_DEV,),
    stat_mod.S_IFSOCK: (s.XFS_DINODE_FMT_DEV,),
}

_TYPES = {stat_mod.S_IFREG: FileType.FILE, stat_mod.S_IFDIR: FileType.DIRECTORY, stat_mod.S_IFLNK: FileType.SYMLINK}


@dataclass(frozen=True, slots=True)
class Dinode:
    """A parsed, checked on-disk inode.

    Attributes:
        ino: the inode number.
        offset: byte offset of the dinode on the volume.
        what: "xfs on <volume>: inode N" for error messages.
        di_mode, di_version, di_format, di_uid, di_gid, di_size, di_flags, di_flags2,
        di_forkoff: the on-disk fields (``di_flags2`` is 0 before v3).
        nlink: ``di_onlink`` for v1 inodes, ``di_nlink`` otherwise.
        nextents: data fork extent count (``di_big_nextents`` with NREXT64).
        atime, mtime, ctime: POSIX seconds (float).
        crtime: creation time (v3 only, else None).
        data_fork: the bytes of the data fork area inside the inode.
        data_fork_offset: byte offset of ``data_fork`` on the volume.
    """

    ino: int
    offset: int
    what: str
    di_mode: int
    di_version: int
    di_format: int
    di_uid: int
    di_gid: int
    di_size: int
    di_flags: int
    di_flags2: int
    di_forkoff: int
    nlink: int
    nextents: int
    atime: float
    mtime: float
    ctime: float
    crtime: float | None
    data_fork: bytes
    data_fork_offset: int

    @property
    def file_type(self) -> FileType:
        return _TYPES.get(stat_mod.S_IFMT(self.di_mode), FileType.OTHER)

    @property
    def format_name(self) -> str:
        return s.XFS_DINODE_FMT_NAMES.get(self.di_format, str(self.di_format))


def _decode_time(raw: int, bigtime: bool) -> float:
    if bigtime:
        # Nanoseconds since the bigtime epoch, which is 2**31 s before the Unix epoch.
        secs, nsec = divmod(raw, 1_000_000_000)
        return (secs - s.XFS_BIGTIME_EPOCH_OFFSET) + nsec / 1e9
    sec = raw >> 32
    if sec >= 1 << 31:  # t_sec is a signed 32-bit count
        sec -= 1 << 32
    return sec + (raw & 0xFFFFFFFF) / 1e9


def read_dinode(geo: XfsGeometry, source: ByteSource, ino: int) -> Dinode:
    """Read inode ``ino`` and check it can be used.

    Args:
        geo: the filesystem geometry.
        source: the volume.
        ino: the inode number (from a directory entry or the superblock).

    Returns:
        the parsed inode.

    Raises:
        CorruptStructure: bad number, magic, version, inode number (v3), UUID (v3),
            type/format combination, fork offset, size or extent count.
    """
    what = f"{geo.where}: inode {ino}"
    offset = geo.ino_to_byte(ino, what)
    raw = source.pread(offset, geo.inode_size)
    di = s.XFS_DINODE_RECORD.parse(raw, 0, where=what)

    def bad(problem: str, expected: object = None, got: object = None) -> CorruptStructure:
        return CorruptStructure(what, problem, offset=offset, expected=expected, got=got)

    if di.di_magic != s.XFS_DINODE_MAGIC:
        raise bad("bad dinode magic", expected=s.XFS_DINODE_MAGIC, got=di.di_magic)
    if geo.has_crc:
        if di.di_version != 3:
            raise bad("v5 filesystems use version 3 inodes", expected=3, got=di.di_version)
        core = s.XFS_DINODE_CORE_V3
    else:
        if di.di_version not in (1, 2):
            raise bad("v4 filesystems use version 1 or 2 inodes", got=di.di_version)
        core = s.XFS_DINODE_CORE_V2
    flags2 = 0
    crtime_raw: int | None = None
    if di.di_version == 3:
        v3 = s.XFS_DINODE_V3_RECORD.parse(raw, s.XFS_DINODE_CORE_V2, where=what)
        if v3.di_ino != ino:
            raise bad("inode records a different number (di_ino)", expected=ino, got=v3.di_ino)
        if bytes(v3.di_uuid) != geo.meta_uuid:
            raise bad("inode belongs to another filesystem (di_uuid differs)")
        flags2 = v3.di_flags2
        crtime_raw = v3.di_crtime
    mode = di.di_mode
    ifmt = stat_mod.S_IFMT(mode)
    if mode == 0:
        raise bad("inode is not in use (di_mode is 0)")
    allowed = _FORMATS_FOR_TYPE.get(ifmt)
    if allowed is None:
        raise bad("unknown file type in di_mode", got=mode)
    if di.di_format not in allowed:
        raise bad(f"data fork format {di.di_format} is not valid for this file type (mode {mode:#o})")
    literal = geo.inode_size - core
    fork_size = literal
    if di.di_forkoff:
        fork_size = di.di_forkoff << 3
        if fork_size >= literal:
            raise bad("attribute fork offset is beyond the inode", got=di.di_forkoff)
    if di.di_size >= 1 << 63:
        raise bad("negative file size", got=di.di_size)
    bigtime = bool(flags2 & s.XFS_DIFLAG2_BIGTIME)
    nrext64 = bool(flags2 & s.XFS_DIFLAG2_NREXT64)
    if nrext64 and not geo.has_nrext64:
        raise bad("inode uses large extent counters but the filesystem does not have nrext64")
    nextents = di.di_big_nextents if nrext64 else di.di_nextents
    if di.di_format == s.XFS_DINODE_FMT_EXTENTS and nextents * s.XFS_BMBT_REC_SIZE > fork_size:
        raise bad(f"{nextents} extents do not fit in the {fork_size}-byte data fork", got=nextents)
    if di.di_format == s.XFS_DINODE_FMT_LOCAL and di.di_size > fork_size:
        raise bad(f"local data of {di.di_size} bytes does not fit in the {fork_size}-byte data fork", got=di.di_size)
    return Dinode(
        ino=ino,
        offset=offset,
        what=what,
        di_mode=mode,
        di_version=di.di_version,
        di_format=di.di_format,
        di_uid=di.di_uid,
        di_gid=di.di_gid,
        di_size=di.di_size,
        di_flags=di.di_flags,
        di_flags2=flags2,
        di_forkoff=di.di_forkoff,
        nlink=di.di_onlink if di.di_version == 1 else di.di_nlink,
        nextents=nextents,
        atime=_decode_time(di.di_atime, bigtime),
        mtime=_decode_time(di.di_mtime, bigtime),
        ctime=_decode_time(di.di_ctime, bigtime),
        crtime=None if crtime_raw is None else _decode_time(crtime_raw, bigtime),
        data_fork=raw[core : core + fork_size],
        data_fork_offset=offset + core,
    )
