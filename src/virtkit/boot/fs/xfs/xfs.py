"""The XFS reader: :class:`Xfs` (the filesystem) and :class:`XfsNode` (files, dirs, links).

Read-only, pure Python, v4 and v5.  Opening reads only the superblock; inodes,
extent maps and directories are read on first use and cached per node (and a
bounded number of nodes per filesystem).  File contents are a
:class:`~virtkit._streams.MappedSource` over merged extent runs, so reading a
contiguous file costs one ``pread`` per chunk, with no per-block Python work.

References:
    fs/xfs/libxfs/xfs_format.h, xfs_da_format.h (see structs.py)
    XFS Algorithms & Data Structures, 3rd edition, "On-disk Inode" and "Directories"
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator

from virtkit._streams import ByteSource, BytesSource
from virtkit.boot.fs.base import DirEntry, Filesystem, FileType, Node, Stat, decode_name, encode_name
from virtkit.boot.fs.xfs import structs as s
from virtkit.boot.fs.xfs.bmap import Extent, ExtentFileSource, ForkMap, extents_to_runs, read_data_fork_extents
from virtkit.boot.fs.xfs.dir import XfsDirectory
from virtkit.boot.fs.xfs.inode import Dinode, read_dinode
from virtkit.boot.fs.xfs.superblock import XfsGeometry, parse_superblock
from virtkit.boot.fs.xfs.symlink import read_symlink_target
from virtkit.errors import CorruptStructure, IsADirectory, LimitExceeded, NotADirectory, UnsupportedFeature
from virtkit.limits import DEFAULT_LIMITS, Limits

__all__ = ["Xfs", "XfsNode"]

_FTYPES = {
    s.XFS_DIR3_FT_REG_FILE: FileType.FILE,
    s.XFS_DIR3_FT_DIR: FileType.DIRECTORY,
    s.XFS_DIR3_FT_SYMLINK: FileType.SYMLINK,
    s.XFS_DIR3_FT_CHRDEV: FileType.OTHER,
    s.XFS_DIR3_FT_BLKDEV: FileType.OTHER,
    s.XFS_DIR3_FT_FIFO: FileType.OTHER,
    s.XFS_DIR3_FT_SOCK: FileType.OTHER,
    s.XFS_DIR3_FT_WHT: FileType.OTHER,
}

_NODE_CACHE = 4096  # nodes kept per filesystem (each holds one dinode, maybe an extent list)
_CACHED_EXTENTS = 4096  # a node keeps its extent list only up to this size: memory stays bounded


class Xfs(Filesystem):
    """A read-only XFS v4/v5 filesystem.

    Attributes:
        geometry: the validated superblock facts (block size, AGs, features).
        uuid: ``sb_uuid`` as GRUB prints it.
        label: ``sb_fname``.
    """

    fstype = "xfs"

    def __init__(self, source: ByteSource, geometry: XfsGeometry, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.geometry = geometry
        self.uuid = geometry.uuid
        self.label = geometry.label
        self.case_insensitive = geometry.ascii_ci
        self._nodes: OrderedDict[int, XfsNode] = OrderedDict()

    @classmethod
    def open(cls, source: ByteSource, *, limits: Limits = DEFAULT_LIMITS) -> Xfs:
        """Open the XFS on ``source``.

        Args:
            source: the volume.
            limits: bounds for everything read later.

        Returns:
            the filesystem (only the superblock has been read).

        Raises:
            NotThisFormat: no "XFSB" magic.
            UnsupportedFeature: an XFS version or incompatible feature this reader cannot read.
            CorruptStructure: an inconsistent superblock.
        """
        return cls(source, parse_superblock(source), limits)

    def root(self) -> XfsNode:
        node = self.node(self.geometry.root_ino)
        if node.dinode.file_type is not FileType.DIRECTORY:
            raise CorruptStructure(f"{self.describe()}: root inode {node.ino}", "is not a directory")
        return node

    def node(self, ino: int) -> XfsNode:
        """The node for inode number ``ino`` (cached; the inode is read lazily)."""
        node = self._nodes.get(ino)
        if node is not None:
            self._nodes.move_to_end(ino)
            return node
        node = XfsNode(self, ino)
        self._nodes[ino] = node
        if len(self._nodes) > _NODE_CACHE:
            self._nodes.popitem(last=False)
        return node


class XfsNode(Node):
    """A file, directory or symlink on an :class:`Xfs`."""

    fs: Xfs

    def __init__(self, fs: Xfs, ino: int) -> None:
        self.fs = fs
        self.ino = ino
        self._dinode: Dinode | None = None
        self._extents: list[Extent] | None = None
        self._dir: XfsDirectory | None = None

    def __repr__(self) -> str:
        return f"<XfsNode {self.ino} on {self.fs.source.name!r}>"

    @property
    def dinode(self) -> Dinode:
        """The parsed inode (read on first use)."""
        if self._dinode is None:
            self._dinode = read_dinode(self.fs.geometry, self.fs.source, self.ino)
        return self._dinode

    def extents(self) -> list[Extent]:
        """The data fork's extents, in file order (extents or btree format)."""
        if self._extents is not None:
            return self._extents
        extents = read_data_fork_extents(self.fs.geometry, self.fs.source, self.dinode, self.fs.limits)
        if len(extents) <= _CACHED_EXTENTS:
            self._extents = extents  # big maps are rebuilt per use, so cached nodes stay small
        return extents

    def _fork_map(self) -> ForkMap:
        return ForkMap(self.fs.geometry, self.fs.source, self.extents(), f"{self.dinode.what}: data fork")

    @property
    def type(self) -> FileType:
        return self.dinode.file_type

    @property
    def size(self) -> int:
        return self.dinode.di_size

    def stat(self) -> Stat:
        d = self.dinode
        return Stat(
            type=d.file_type,
            size=d.di_size,
            mode=d.di_mode,
            inode=self.ino,
            nlink=d.nlink,
            uid=d.di_uid,
            gid=d.di_gid,
            mtime=d.mtime,
            atime=d.atime,
            ctime=d.ctime,
        )

    # -- directories --------------------------------------------------------------------

    def directory(self) -> XfsDirectory:
        """The directory reader for this node.

        Raises:
            NotADirectory: this node is not a directory.
        """
        if self._dir is None:
            d = self.dinode
            if d.file_type is not FileType.DIRECTORY:
                raise NotADirectory(f"{self.fs.describe()}: inode {self.ino} is not a directory")
            fork = None if d.di_format == s.XFS_DINODE_FMT_LOCAL else self._fork_map()
            directory = XfsDirectory(self.fs.geometry, self.fs.source, d, fork, self.fs.limits)
            if fork is not None and len(fork.extents) > _CACHED_EXTENTS:
                return directory
            self._dir = directory
        return self._dir

    def iter_dir(self) -> Iterator[DirEntry]:
        fs = self.fs
        for raw in self.directory().iter_entries():
            if raw.ftype is None or raw.ftype == s.XFS_DIR3_FT_UNKNOWN:
                ftype = fs.node(raw.ino).dinode.file_type  # no type in the entry: ask the inode
            else:
                ftype = _FTYPES[raw.ftype]
            yield DirEntry(decode_name(raw.name), ftype, raw.ino, functools.partial(fs.node, raw.ino))

    def lookup_child(self, name: str) -> XfsNode | None:
        raw = encode_name(name)
        if len(raw) > self.fs.limits.max_name_bytes:
            raise LimitExceeded("max_name_bytes", len(raw), self.fs.limits.max_name_bytes, f"{self.fs.describe()}: lookup")
        ino = self.directory().lookup(raw)
        return None if ino is None else self.fs.node(ino)

    # -- symlinks and files -------------------------------------------------------------

    def readlink(self) -> str:
        d = self.dinode
        if d.file_type is not FileType.SYMLINK:
            raise CorruptStructure(d.what, "readlink on something that is not a symlink", offset=d.offset)
        return decode_name(read_symlink_target(self.fs.geometry, d, self._fork_map))

    def open(self) -> ByteSource:
        d = self.dinode
        name = f"xfs:{self.fs.source.name}:inode {self.ino}"
        if d.file_type is FileType.DIRECTORY:
            raise IsADirectory(f"{self.fs.describe()}: inode {self.ino} is a directory")
        if d.file_type is FileType.SYMLINK:
            return BytesSource(read_symlink_target(self.fs.geometry, d, self._fork_map), name)
        if d.file_type is not FileType.FILE:
            raise UnsupportedFeature(f"{self.fs.describe()}: inode {self.ino} is a device, fifo or socket (mode {d.di_mode:#o})")
        self.fs.limits.check("max_file_bytes", d.di_size, f"{self.fs.describe()}: inode {self.ino}")
        if d.di_flags & s.XFS_DIFLAG_REALTIME:
            raise UnsupportedFeature(f"{self.fs.describe()}: inode {self.ino} keeps its data on the realtime device")
        runs = extents_to_runs(self.extents(), self.fs.geometry.block_size, d.di_size, self.fs.source)
        return ExtentFileSource(d.di_size, runs, name, max_runs=self.fs.limits.max_extents)
