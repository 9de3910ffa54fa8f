"""The iso9660 reader: :class:`Iso9660` and its nodes, with Rock Ridge and Joliet.

Which names a reader shows is GRUB's choice: Rock Ridge names if the primary
volume's root carries SUSP with Rock Ridge, else the Joliet tree (UCS-2
names) if there is a Joliet supplementary descriptor, else plain ISO names -
version suffix (``;1``) and a trailing dot removed, lower-cased, looked up
case-insensitively (as GRUB and Linux' ``map=normal`` do).  Under Rock Ridge
a record without an NM entry falls back to its ISO name, matched
case-insensitively, again as GRUB does.

Rock Ridge relocated directories: an RE record (the relocated directory in
``rr_moved``) is hidden and a CL record stands for the directory it points
to, as Linux shows them; nothing loops, because every lookup is bounded by
the path resolver's component count.

``uuid`` is GRUB's: the modification date of the descriptor in use, as
``YYYY-MM-DD-HH-MM-SS-hh``; ``label`` is that descriptor's volume identifier
(UCS-2 for Joliet), trailing spaces removed.

References:
    ECMA-119 (ISO 9660); Joliet specification; SUSP 1.12; RRIP 1.12.
    GRUB ``grub-core/fs/iso9660.c`` (name priority, uuid, label);
    Linux ``fs/isofs/`` (RE/CL handling, associated files hidden).
"""

from __future__ import annotations

import functools
import logging
import stat as st
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from virtkit._streams import ByteSource, BytesSource, MappedSource, Run
from virtkit.boot.fs.base import DirEntry, Filesystem, FileType, Node, Stat, decode_name
from virtkit.boot.fs.iso9660.structs import (
    FLAG_ASSOCIATED,
    FLAG_MULTI_EXTENT,
    JOLIET_ESCAPES,
    SECTOR,
    STANDARD_ID,
    SYSTEM_AREA_SECTORS,
    VD_PRIMARY,
    VD_SUPPLEMENTARY,
    VD_TERMINATOR,
    VOLUME_DESCRIPTOR,
    DirRecord,
    parse_dir_record,
)
from virtkit.boot.fs.iso9660.susp import RockRidge, parse_system_use, sp_skip
from virtkit.errors import (
    CorruptStructure,
    IsADirectory,
    LimitExceeded,
    NotADirectory,
    NotThisFormat,
    PathError,
    UnsupportedFeature,
)
from virtkit.limits import Limits

__all__ = ["Iso9660", "IsoNode"]

log = logging.getLogger(__name__)

_DIR_CACHE = 256
_NAMES_RR, _NAMES_JOLIET, _NAMES_ISO = "rockridge", "joliet", "iso9660"


@dataclass(frozen=True, slots=True)
class _Entry:
    """One listed name: its record(s) (several for a multi-extent file) and Rock Ridge data."""

    name: str
    records: tuple[DirRecord, ...]
    rr: RockRidge | None
    type: FileType
    fold: bool  # matched case-insensitively (an ISO name)
    inode: int


@dataclass
class _Listing:
    entries: list[_Entry]
    exact: dict[str, _Entry]
    folded: dict[str, _Entry]


class Iso9660(Filesystem):
    """An iso9660 filesystem (``fstype`` "iso9660").

    Attributes:
        block_size: the logical block size.
        names: which names are shown: "rockridge", "joliet" or "iso9660".
        susp_skip: SUSP LEN_SKP when Rock Ridge is used, else None.
        volume_space_size: the volume's size in logical blocks (from the PVD).
    """

    fstype = "iso9660"

    def __init__(self, source: ByteSource, *, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self._listings: OrderedDict[int, _Listing] = OrderedDict()
        pvd, joliet = self._read_descriptors()
        self.block_size = pvd.logical_block_size
        if self.block_size not in (512, 1024, 2048):
            raise CorruptStructure(
                f"iso9660 primary volume descriptor on {source.name}",
                "logical block size is not 512, 1024 or 2048",
                offset=SYSTEM_AREA_SECTORS * SECTOR + 128,
                got=self.block_size,
            )
        self.volume_space_size = pvd.volume_space_size
        self.susp_skip: int | None = None
        root = self._root_record(pvd, "primary volume descriptor")
        rr_root = self._detect_rock_ridge(root)
        descriptor = pvd
        if rr_root:
            self.names = _NAMES_RR
        elif joliet is not None:
            self.names = _NAMES_JOLIET
            descriptor = joliet
            root = self._root_record(joliet, "Joliet volume descriptor")
        else:
            self.names = _NAMES_ISO
        self.case_insensitive = self.names == _NAMES_ISO
        self._root = root
        self.label = _label(descriptor.volume_id, joliet=self.names == _NAMES_JOLIET)
        self.uuid = _uuid(descriptor.volume_modification_date)

    @classmethod
    def open(cls, source: ByteSource, *, limits: Limits) -> Iso9660:
        """Recognise and open an iso9660 filesystem.

        Args:
            source: the volume (a whole CD/DVD image or a partition).
            limits: bounds for everything read.

        Raises:
            NotThisFormat: no "CD001" volume descriptor at 32 KiB.
            CorruptStructure: a broken descriptor set, root directory or SUSP area.
            LimitExceeded: a bound was broken while reading the root.
        """
        return cls(source, limits=limits)

    def describe(self) -> str:
        return f"iso9660 on {self.source.name}"

    def root(self) -> IsoNode:
        root = _Entry("", (self._root,), None, FileType.DIRECTORY, False, self._root.extent * self.block_size)
        return IsoNode(self, root, "/")

    # -- volume descriptors ------------------------------------------------------

    def _read_descriptors(self) -> tuple[Any, Any]:
        src = self.source
        first = SYSTEM_AREA_SECTORS * SECTOR
        if src.size < first + SECTOR:
            raise NotThisFormat(f"no iso9660 volume descriptor: volume of {src.size} bytes is too small")
        pvd = joliet = None
        index = 0
        while True:
            offset = first + index * SECTOR
            what = f"iso9660 volume descriptor {index} on {src.name}"
            if offset + SECTOR > src.size:
                raise CorruptStructure(what, "volume descriptor set ends without a terminator", offset=offset)
            raw = src.pread(offset, SECTOR)
            if raw[1:6] != STANDARD_ID:
                if index == 0:
                    raise NotThisFormat("no iso9660 volume descriptor (no CD001 at 0x8001)")
                raise CorruptStructure(what, "no CD001 standard identifier", offset=offset + 1, got=raw[1:6])
            vd = VOLUME_DESCRIPTOR.parse(raw, 0, where=src.name)
            if vd.type == VD_TERMINATOR:
                break
            if vd.type == VD_PRIMARY and pvd is None:
                pvd = vd
            elif vd.type == VD_SUPPLEMENTARY and joliet is None and vd.escape_sequences[:3] in JOLIET_ESCAPES:
                joliet = vd
            index += 1
            self.limits.check("max_chain_length", index, f"iso9660 volume descriptor set on {src.name}")
        if pvd is None:
            raise CorruptStructure(f"iso9660 volume descriptor set on {src.name}", "no primary volume descriptor")
        return pvd, joliet

    def _root_record(self, vd: Any, which: str) -> DirRecord:
        raw: bytes = vd.root_directory_record
        where = f"the {which} on {self.source.name}"
        rec = parse_dir_record(raw, 0, susp_skip=None, where=where, base=SYSTEM_AREA_SECTORS * SECTOR + 156)
        if not rec.is_dir:
            raise CorruptStructure(f"iso9660 root directory record in {where}", "not a directory", got=rec.flags)
        return rec

    def _detect_rock_ridge(self, root: DirRecord) -> bool:
        """SUSP starts with SP in the root's "." record; Rock Ridge is in use if ER or PX follows."""
        data = self._dir_data(root, "/", first_sector_only=True)
        if not data or data[0] == 0:
            return False
        dot = parse_dir_record(data, 0, susp_skip=0, where="root directory", base=self._data_offset(root))
        skip = sp_skip(dot.system_use)
        if skip is None:
            return False
        rr = self._rock_ridge(dot, "root directory", self._data_offset(root))
        if rr.er or rr.mode is not None:
            self.susp_skip = skip
            return True
        return False

    # -- directories -------------------------------------------------------------

    def _data_offset(self, rec: DirRecord) -> int:
        return (rec.extent + rec.ext_attr_length) * self.block_size

    def _dir_data(self, rec: DirRecord, path: str, *, first_sector_only: bool = False) -> bytes:
        what = f"{self.describe()}: directory {path}"
        length = min(rec.data_length, SECTOR) if first_sector_only else rec.data_length
        self.limits.check("max_read", length, what)
        start = self._data_offset(rec)
        if start + length > self.source.size:
            raise CorruptStructure(
                what, f"extent of {length} bytes at block {rec.extent} lies outside the volume", offset=start
            )
        return self.source.pread(start, length)

    def _rock_ridge(self, rec: DirRecord, where: str, base: int) -> RockRidge:
        return parse_system_use(
            rec.system_use,
            source=self.source,
            block_size=self.block_size,
            limits=self.limits,
            where=where,
            offset=base + rec.offset + rec.length - len(rec.system_use),
        )

    def _listing(self, dir_rec: DirRecord, path: str) -> _Listing:
        key = dir_rec.extent
        cached = self._listings.get(key)
        if cached is not None:
            self._listings.move_to_end(key)
            return cached
        data = self._dir_data(dir_rec, path)
        base = self._data_offset(dir_rec)
        where = f"{self.describe()}: directory {path}"
        skip = self.susp_skip if self.names == _NAMES_RR else None
        entries: list[_Entry] = []
        pos = 0
        pending: list[DirRecord] = []
        while pos < len(data):
            if data[pos] == 0:  # no record fits in the rest of this sector
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            rec = parse_dir_record(data, pos, susp_skip=skip, where=where, base=base)
            pos += rec.length
            if pending and rec.identifier != pending[0].identifier:
                raise CorruptStructure(
                    where, "multi-extent file continues with a record of another name", offset=base + rec.offset
                )
            if rec.flags & FLAG_MULTI_EXTENT:
                pending.append(rec)
                if len(pending) + 1 > self.limits.max_extents:  # at least one more extent follows
                    raise LimitExceeded("max_extents", len(pending) + 1, self.limits.max_extents, where)
                continue
            records = (*pending, rec)
            pending = []
            if rec.is_dot or rec.flags & FLAG_ASSOCIATED:
                continue
            entry = self._entry(records, where, base)
            if entry is None:
                continue
            entries.append(entry)
            if len(entries) > self.limits.max_dir_entries:
                raise LimitExceeded("max_dir_entries", len(entries), self.limits.max_dir_entries, where)
        if pending:
            raise CorruptStructure(where, "multi-extent file has no final extent", offset=base + pending[-1].offset)
        exact: dict[str, _Entry] = {}
        folded: dict[str, _Entry] = {}
        for e in entries:
            exact.setdefault(e.name, e)
            if e.fold or self.case_insensitive:
                folded.setdefault(e.name.casefold(), e)
        listing = _Listing(entries, exact, folded)
        self._listings[key] = listing
        if len(self._listings) > _DIR_CACHE:
            self._listings.popitem(last=False)
        return listing

    def _entry(self, records: tuple[DirRecord, ...], where: str, base: int) -> _Entry | None:
        rec = records[0]
        rr: RockRidge | None = None
        if self.names == _NAMES_RR and rec.system_use:
            rr = self._rock_ridge(rec, where, base)
            if rr.relocated:
                return None  # shown through the CL record in its real parent
        fold = False
        if rr is not None and rr.name is not None:
            name = decode_name(rr.name)
        elif self.names == _NAMES_JOLIET:
            raw = rec.identifier[: len(rec.identifier) // 2 * 2]
            name = raw.decode("utf-16-be", "replace")
            name = name.split("\x00", 1)[0]
            if ";" in name:
                name = name[: name.rindex(";")]
        else:
            name = _iso_name(rec.identifier)
            fold = True
        if name in ("", ".", ".."):
            log.debug("skipping a record with the unusable name %r in %s", name, where)
            return None
        kind = FileType.DIRECTORY if rec.is_dir else FileType.FILE
        if rr is not None:
            if rr.child_link is not None:
                kind = FileType.DIRECTORY
            elif rr.mode is not None:
                kind = _kind_of_mode(rr.mode)
            elif rr.symlink is not None:
                kind = FileType.SYMLINK
        return _Entry(name, records, rr, kind, fold, base + rec.offset)

    def _child_link_record(self, block: int, path: str) -> DirRecord:
        """The "." record of a relocated directory (RRIP CL): its extent and size."""
        what = f"{self.describe()}: relocated directory {path}"
        start = block * self.block_size
        if start + SECTOR > self.source.size:
            raise CorruptStructure(what, f"child link to block {block} points outside the volume")
        data = self.source.pread(start, SECTOR)
        if data[0] == 0:
            raise CorruptStructure(what, f"child link to block {block} finds no directory record", offset=start)
        dot = parse_dir_record(data, 0, susp_skip=None, where=what, base=start)
        if not dot.is_dir or dot.identifier != b"\x00" or dot.extent != block:
            raise CorruptStructure(what, f"child link to block {block} does not point at a directory", offset=start)
        return dot

    def _file_source(self, entry: _Entry, path: str) -> ByteSource:
        what = f"{self.describe()}: {path}"
        if entry.rr is not None and entry.rr.zisofs:
            raise UnsupportedFeature(f"{what}: zisofs-compressed files are not supported (GRUB cannot read them either)")
        size = sum(r.data_length for r in entry.records)
        self.limits.check("max_file_bytes", size, what)
        runs: list[Run] = []
        pos = 0
        for r in entry.records:
            if r.interleaved:
                raise UnsupportedFeature(f"{what}: interleaved files are not supported")
            runs.append(Run(pos, r.data_length, self.source, self._data_offset(r)))
            pos += r.data_length
        if size == 0:
            return BytesSource(b"", f"iso9660:{path}")
        return MappedSource(size, runs, f"iso9660:{path}", max_runs=self.limits.max_extents)


def _iso_name(identifier: bytes) -> str:
    """ECMA-119 7.5 file identifier -> the name GRUB shows: no ``;version``, no final dot, lower case."""
    name = decode_name(identifier)
    if ";" in name:
        name = name[: name.rindex(";")]
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def _kind_of_mode(mode: int) -> FileType:
    if st.S_ISDIR(mode):
        return FileType.DIRECTORY
    if st.S_ISREG(mode):
        return FileType.FILE
    if st.S_ISLNK(mode):
        return FileType.SYMLINK
    return FileType.OTHER


def _label(volume_id: bytes, *, joliet: bool) -> str:
    if joliet:
        text = volume_id[:32].decode("utf-16-be", "replace").split("\x00", 1)[0]
    else:
        text = decode_name(volume_id.split(b"\x00", 1)[0])
    return text.rstrip(" ")


def _uuid(date: bytes) -> str:
    """GRUB's iso9660 UUID: the 16 date digits as ``YYYY-MM-DD-HH-MM-SS-hh`` ("" if all NUL)."""
    d = date[:16]
    if not any(d):
        return ""
    t = d.decode("latin-1")
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}-{t[8:10]}-{t[10:12]}-{t[12:14]}-{t[14:16]}"


class IsoNode(Node):
    """A file, directory or symlink of an :class:`Iso9660`."""

    def __init__(self, fs: Iso9660, entry: _Entry, path: str) -> None:
        self.fs = fs
        self._iso = fs
        self.entry = entry
        self.path = path

    def __repr__(self) -> str:
        return f"IsoNode({self.path!r})"

    @property
    def type(self) -> FileType:
        return self.entry.type

    def _dir_record(self) -> DirRecord:
        rr = self.entry.rr
        if rr is not None and rr.child_link is not None:
            return self._iso._child_link_record(rr.child_link, self.path)
        return self.entry.records[0]

    def stat(self) -> Stat:
        e = self.entry
        rr = e.rr
        if e.type is FileType.DIRECTORY:
            size = self._dir_record().data_length
        elif e.type is FileType.SYMLINK and rr is not None and rr.symlink is not None:
            size = len(rr.symlink.encode("utf-8", "surrogateescape"))
        else:
            size = sum(r.data_length for r in e.records)
        if rr is not None and rr.mode is not None:
            mode = rr.mode
        elif e.type is FileType.DIRECTORY:
            mode = st.S_IFDIR | 0o555
        elif e.type is FileType.SYMLINK:
            mode = st.S_IFLNK | 0o777
        else:
            mode = st.S_IFREG | 0o444
        mtime = rr.mtime if rr is not None and rr.mtime is not None else e.records[0].date
        return Stat(
            type=e.type,
            size=size,
            mode=mode,
            inode=e.inode,
            nlink=rr.nlink if rr is not None and rr.nlink is not None else 1,
            uid=rr.uid if rr is not None and rr.uid is not None else 0,
            gid=rr.gid if rr is not None and rr.gid is not None else 0,
            mtime=mtime,
            atime=rr.atime if rr is not None and rr.atime is not None else mtime,
            ctime=rr.ctime if rr is not None and rr.ctime is not None else mtime,
        )

    def _child(self, entry: _Entry) -> IsoNode:
        return IsoNode(self._iso, entry, f"{self.path.rstrip('/')}/{entry.name}")

    def _listing(self) -> _Listing:
        if self.entry.type is not FileType.DIRECTORY:
            raise NotADirectory(f"{self._iso.describe()}: {self.path} is not a directory", path=self.path)
        return self._iso._listing(self._dir_record(), self.path)

    def iter_dir(self) -> Iterator[DirEntry]:
        for e in self._listing().entries:
            yield DirEntry(e.name, e.type, e.inode, functools.partial(self._child, e))

    def lookup_child(self, name: str) -> Node | None:
        if self.entry.type is not FileType.DIRECTORY:
            return None
        listing = self._listing()
        e = listing.exact.get(name) or listing.folded.get(name.casefold())
        return self._child(e) if e is not None else None

    def readlink(self) -> str:
        rr = self.entry.rr
        if self.entry.type is not FileType.SYMLINK or rr is None or rr.symlink is None:
            raise CorruptStructure(f"{self._iso.describe()}: {self.path}", "not a symbolic link")
        return rr.symlink

    def open(self) -> ByteSource:
        if self.entry.type is FileType.DIRECTORY:
            raise IsADirectory(f"{self._iso.describe()}: {self.path} is a directory", path=self.path)
        if self.entry.type is not FileType.FILE:
            raise PathError(f"{self._iso.describe()}: {self.path} is not a regular file", path=self.path)
        return self._iso._file_source(self.entry, self.path)
