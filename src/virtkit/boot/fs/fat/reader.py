"""The FAT12/16/32 reader: :class:`Fat` and its nodes.

What a mount shows, read-only and bounded:

* names: VFAT long names where valid, else 8.3 names (see :mod:`.dirent`);
  lookups are case-insensitive and match the displayed name, as GRUB does
  (GRUB does not match the ``~1`` short alias of a long name; neither do we);
* modes as Linux shows them with the default ``umask=022``: directories and
  files ``0755``, read-only files ``0555``; ``ctime`` is the write time (FAT
  has no change time; Linux does the same);
* directory sizes are their cluster chains' length, as Linux reports them;
* ``uuid`` is the volume serial as GRUB prints it (``%04X-%04X``); ``label``
  is the volume-label entry of the root directory, which is what GRUB's
  ``search --label`` compares (not the BPB copy), trailing spaces removed.

References:
    Microsoft fatgen103 (BPB, FAT, directories, long names).
    GRUB ``grub-core/fs/fat.c`` (``grub_fat_uuid``, ``grub_fat_label``, name matching).
    Linux ``fs/fat/inode.c`` (``fat_fill_inode``: modes, sizes, times).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import stat as st
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from virtkit._streams import ByteSource, BytesSource, MappedSource, Run
from virtkit.boot.fs.base import DirEntry, Filesystem, FileType, Node, Stat
from virtkit.boot.fs.fat.bpb import FatGeometry, parse_boot_sector
from virtkit.boot.fs.fat.dirent import ATTR_DIRECTORY, ATTR_READ_ONLY, FatDirent, iter_dirents
from virtkit.boot.fs.fat.table import FatTable
from virtkit.errors import CorruptStructure, IsADirectory, LimitExceeded, NotADirectory
from virtkit.limits import Limits

__all__ = ["Fat", "FatNode"]

log = logging.getLogger(__name__)

ROOT_INODE = 1
_DIR_CACHE = 256  # directory listings kept per filesystem


@dataclass
class _Listing:
    """A directory read once: its entries, a case-folded index, where its bytes are."""

    entries: list[FatDirent]
    by_name: dict[str, FatDirent]
    size: int
    runs: list[tuple[int, int]] = field(default_factory=list)  # (volume offset, bytes)
    label: str | None = None

    def inode_of(self, position: int) -> int:
        """Volume byte offset of the entry at ``position`` in the directory data."""
        for offset, length in self.runs:
            if position < length:
                return offset + position
            position -= length
        return 0  # pragma: no cover - positions come from the data itself


class Fat(Filesystem):
    """A FAT12, FAT16 or FAT32 filesystem (``fstype`` "vfat", as blkid and GRUB's probe name it).

    Attributes:
        geometry: the layout derived from the boot sector.
        fat_type: 12, 16 or 32.
        table: the FAT.
    """

    fstype = "vfat"
    case_insensitive = True

    def __init__(self, source: ByteSource, geometry: FatGeometry, *, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.geometry = geometry
        self.fat_type = geometry.fat_type
        self.table = FatTable(source, geometry, limits=limits)
        self._listings: OrderedDict[int, _Listing] = OrderedDict()
        vid = geometry.volume_id
        self.uuid = f"{vid >> 16:04X}-{vid & 0xFFFF:04X}" if vid is not None else ""
        self.label = self._listing(None).label or ""

    @classmethod
    def open(cls, source: ByteSource, *, limits: Limits) -> Fat:
        """Recognise and open a FAT filesystem.

        Args:
            source: the volume.
            limits: bounds for everything read.

        Returns:
            the filesystem.

        Raises:
            NotThisFormat: no plausible FAT boot sector.
            CorruptStructure: a FAT volume that is damaged (root directory, sizes).
            LimitExceeded: the root directory breaks a limit.
        """
        return cls(source, parse_boot_sector(source), limits=limits)

    def describe(self) -> str:
        return f"FAT{self.fat_type} on {self.source.name}"

    def root(self) -> FatNode:
        return FatNode(self, None, "/")

    # -- directories -------------------------------------------------------------

    def _listing(self, first_cluster: int | None, path: str = "/") -> _Listing:
        """The decoded directory at ``first_cluster`` (None: the root), cached."""
        g = self.geometry
        if first_cluster is None and g.fat_type == 32:
            first_cluster = g.root_cluster
        key = 0 if first_cluster is None else first_cluster
        cached = self._listings.get(key)
        if cached is not None:
            self._listings.move_to_end(key)
            return cached
        what = f"{self.describe()}: directory {path}"
        if first_cluster is None:
            runs = [(g.root_offset, g.root_bytes)]
        else:
            runs = [(g.cluster_offset(c), n * g.cluster_size) for c, n in self.table.dir_runs(first_cluster, what)]
        size = sum(n for _, n in runs)
        self.limits.check("max_read", size, what)
        data = b"".join(self.source.pread(off, n) for off, n in runs)
        entries: list[FatDirent] = []
        by_name: dict[str, FatDirent] = {}
        label: str | None = None
        for item in iter_dirents(data, root=first_cluster is None or first_cluster == g.root_cluster):
            if isinstance(item, tuple):
                label = item[1]
                continue
            if g.fat_type != 32 and item.first_cluster >> 16:
                # FAT12/16 have no high cluster word (OS/2 stored EA handles there).
                item = dataclasses.replace(item, first_cluster=item.first_cluster & 0xFFFF)
            entries.append(item)
            if len(entries) > self.limits.max_dir_entries:
                raise LimitExceeded("max_dir_entries", len(entries), self.limits.max_dir_entries, what)
            by_name.setdefault(item.name.casefold(), item)
        listing = _Listing(entries, by_name, size, runs, label)
        self._listings[key] = listing
        if len(self._listings) > _DIR_CACHE:
            self._listings.popitem(last=False)
        return listing

    def _file_source(self, entry: FatDirent, path: str) -> ByteSource:
        what = f"{self.describe()}: {path}"
        self.limits.check("max_file_bytes", entry.size, what)
        if entry.size == 0:
            # An empty file owns no clusters; a stray first cluster is ignored, as Linux does.
            return BytesSource(b"", f"vfat:{path}")
        g = self.geometry
        runs: list[Run] = []
        pos = 0
        for cluster, count in self.table.file_runs(entry.first_cluster, entry.size, what):
            length = min(count * g.cluster_size, entry.size - pos)
            runs.append(Run(pos, length, self.source, g.cluster_offset(cluster)))
            pos += length
        return MappedSource(entry.size, runs, f"vfat:{path}", max_runs=self.limits.max_extents)


class FatNode(Node):
    """A file or directory of a :class:`Fat` (``entry`` None is the root directory)."""

    def __init__(self, fs: Fat, entry: FatDirent | None, path: str, inode: int = ROOT_INODE) -> None:
        self.fs = fs
        self._fat = fs
        self.entry = entry
        self.path = path
        self.inode = inode

    def __repr__(self) -> str:
        return f"FatNode({self.path!r})"

    @property
    def is_dir(self) -> bool:
        return self.entry is None or self.entry.is_dir

    def _dir_cluster(self) -> int | None:
        """First cluster of this directory; None for the root (also for cluster 0, as GRUB does)."""
        if self.entry is None or self.entry.first_cluster == 0:
            return None
        return self.entry.first_cluster

    def stat(self) -> Stat:
        e = self.entry
        if self.is_dir:
            size = self._fat._listing(self._dir_cluster(), self.path).size
            mode = st.S_IFDIR | 0o755
        else:
            assert e is not None
            size = e.size
            mode = st.S_IFREG | (0o555 if e.attr & ATTR_READ_ONLY else 0o755)
        mtime = e.mtime if e is not None else None
        return Stat(
            type=FileType.DIRECTORY if self.is_dir else FileType.FILE,
            size=size,
            mode=mode,
            inode=self.inode,
            mtime=mtime,
            atime=e.atime if e is not None else None,
            ctime=mtime,
        )

    @property
    def type(self) -> FileType:
        return FileType.DIRECTORY if self.is_dir else FileType.FILE

    def _child(self, d: FatDirent, listing: _Listing) -> FatNode:
        prefix = self.path.rstrip("/")
        return FatNode(self._fat, d, f"{prefix}/{d.name}", listing.inode_of(d.position))

    def iter_dir(self) -> Iterator[DirEntry]:
        if not self.is_dir:
            raise NotADirectory(f"{self._fat.describe()}: {self.path} is not a directory", path=self.path)
        listing = self._fat._listing(self._dir_cluster(), self.path)
        for d in listing.entries:
            kind = FileType.DIRECTORY if d.attr & ATTR_DIRECTORY else FileType.FILE
            yield DirEntry(d.name, kind, listing.inode_of(d.position), functools.partial(self._child, d, listing))

    def lookup_child(self, name: str) -> Node | None:
        if not self.is_dir:
            return None
        listing = self._fat._listing(self._dir_cluster(), self.path)
        d = listing.by_name.get(name.casefold())
        return self._child(d, listing) if d is not None else None

    def readlink(self) -> str:
        raise CorruptStructure(f"{self._fat.describe()}: {self.path}", "not a symbolic link (FAT has none)")

    def open(self) -> ByteSource:
        if self.is_dir:
            raise IsADirectory(f"{self._fat.describe()}: {self.path} is a directory", path=self.path)
        assert self.entry is not None
        return self._fat._file_source(self.entry, self.path)
