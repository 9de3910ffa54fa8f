"""XFS version 2/3 directories, in every form: list them and look names up.

Forms, smallest first (the kernel switches as a directory grows):

* **shortform** - the entries live in the inode's data fork (``di_format`` local):
  ``count, i8count, parent`` then ``namelen, offset[2], name, [ftype], inumber``
  with 4-byte inode numbers unless ``i8count`` is non-zero.
* **block** - one directory block ("XD2B"/"XDB3") holding data entries, then a
  leaf array of ``(hashval, address)`` sorted by hash, then a tail ``(count, stale)``.
* **leaf** - data blocks ("XD2D"/"XDD3") below 32 GiB of directory offset, plus
  one leaf block (LEAF1) at 32 GiB.
* **node** - data blocks, a da btree of LEAFN leaves (and DA node blocks above
  them) from 32 GiB, free-space blocks from 64 GiB.

Whatever the form, the data fork itself may be "extents" or "btree" (bmbt);
:mod:`virtkit.boot.fs.xfs.bmap` turns either into a :class:`ForkMap`.

A data entry is ``inumber(8) namelen(1) name [ftype(1)] tag(2)`` padded to 8
bytes, where ``tag`` is the entry's own offset in the block; an unused region is
``0xffff length ... tag``.  Listing walks the data blocks; lookup hashes the name
(:func:`xfs_da_hashname`) and follows the leaf/node index, then checks the name in
the data block the index points to.

References:
    fs/xfs/libxfs/xfs_da_format.h   xfs_dir2_sf_hdr/entry, xfs_dir2_data_entry/unused,
                                    xfs_dir2_block_tail, xfs_dir2_leaf_hdr/entry,
                                    xfs_da_node_hdr/entry and their v3 twins, XFS_DIR2_*_OFFSET
    fs/xfs/libxfs/xfs_dir2_sf.c     xfs_dir2_sf_verify (shortform bounds)
    fs/xfs/libxfs/xfs_dir2_data.c   __xfs_dir3_data_check (entry, tag and free-space rules)
    fs/xfs/libxfs/xfs_dir2_node.c   xfs_dir2_leafn_lookup_for_entry (hash collisions span leaves)
    fs/xfs/libxfs/xfs_da_btree.c    xfs_da3_node_lookup_int (descending the da btree)
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from virtkit._streams import ByteSource
from virtkit.boot.fs.xfs import structs as s
from virtkit.boot.fs.xfs.bmap import ForkMap
from virtkit.boot.fs.xfs.inode import Dinode
from virtkit.boot.fs.xfs.superblock import XfsGeometry
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = ["RawDirEntry", "XfsDirectory"]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PAIR = struct.Struct(">II")
_MIN_ENTRY = 16  # inumber + namelen + a 1-byte name + tag, rounded up to 8


@dataclass(frozen=True, slots=True)
class RawDirEntry:
    """A directory entry as stored: name bytes, inode number, file-type code (None without ftype)."""

    name: bytes
    ino: int
    ftype: int | None


class _Budget:
    """Directory blocks read by one operation (a listing, a lookup) against ``max_tree_nodes``."""

    __slots__ = ("limits", "used", "what")

    def __init__(self, limits: Limits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.used = 0

    def tick(self) -> None:
        self.used += 1
        self.limits.check("max_tree_nodes", self.used, self.what)


class XfsDirectory:
    """Reader for one directory inode.

    Args:
        geo: filesystem geometry.
        source: the volume.
        inode: the directory's dinode.
        fork: the data fork map (None for shortform directories).
        limits: bounds.
    """

    def __init__(self, geo: XfsGeometry, source: ByteSource, inode: Dinode, fork: ForkMap | None, limits: Limits) -> None:
        self.geo = geo
        self.source = source
        self.inode = inode
        self.fork = fork
        self.limits = limits
        self.what = f"{inode.what}: directory"
        crc = geo.has_crc
        self.data_hdr = s.XFS_DIR3_DATA_HDR_SIZE if crc else s.XFS_DIR2_DATA_HDR_SIZE
        self.da_hdr = s.XFS_DA3_HDR_SIZE if crc else s.XFS_DA_HDR_SIZE
        self.block_magic = s.XFS_DIR3_BLOCK_MAGIC if crc else s.XFS_DIR2_BLOCK_MAGIC
        self.data_magic = s.XFS_DIR3_DATA_MAGIC if crc else s.XFS_DIR2_DATA_MAGIC
        self.leaf1_magic = s.XFS_DIR3_LEAF1_MAGIC if crc else s.XFS_DIR2_LEAF1_MAGIC
        self.leafn_magic = s.XFS_DIR3_LEAFN_MAGIC if crc else s.XFS_DIR2_LEAFN_MAGIC
        self.node_magic = s.XFS_DA3_NODE_MAGIC if crc else s.XFS_DA_NODE_MAGIC
        self.leaf_dablk = s.XFS_DIR2_LEAF_OFFSET >> geo.block_log
        self.free_dablk = s.XFS_DIR2_FREE_OFFSET >> geo.block_log
        self._form: str | None = "shortform" if fork is None else None

    # -- form ---------------------------------------------------------------------------

    @property
    def form(self) -> str:
        """"shortform", "block", "leaf" or "node"."""
        if self._form is None:
            budget = self._budget()
            first, _ = self._read_dir_block(0, "first data block", budget)
            magic = _U32.unpack_from(first, 0)[0]
            if magic == self.block_magic:
                self._form = "block"
            elif magic == self.data_magic:
                _, magic16 = self._read_da_root(budget)
                self._form = "leaf" if magic16 == self.leaf1_magic else "node"
            else:
                raise self._bad_magic("first data block", self.fork_byte(0), (self.block_magic, self.data_magic), magic)
        return self._form

    # -- listing ------------------------------------------------------------------------

    def iter_entries(self) -> Iterator[RawDirEntry]:
        """Every entry except "." and "..", in on-disk order.

        Raises:
            CorruptStructure: damaged directory structures.
            LimitExceeded: ``max_dir_entries`` entries, or ``max_tree_nodes`` blocks read.
        """
        count = 0
        for entry in self._iter_all():
            if entry.name in (b".", b".."):
                continue
            count += 1
            self.limits.check("max_dir_entries", count, self.what)
            yield entry

    def _iter_all(self) -> Iterator[RawDirEntry]:
        if self.form == "shortform":
            yield from self._iter_shortform()
            return
        budget = self._budget()
        if self.form == "block":
            data, start, end, byte = self._block_form_area(budget)
            for _, entry in self._iter_data_entries(data, start, end, byte):
                yield entry
            return
        size_blocks = -(-self.inode.di_size // self.geo.block_size)
        hi = min(self.leaf_dablk, size_blocks)
        assert self.fork is not None
        for dablk in self.fork.iter_block_starts(0, hi, self.geo.dir_fsbs):
            data, byte = self._read_dir_block(dablk, "data block", budget)
            magic = _U32.unpack_from(data, 0)[0]
            if magic != self.data_magic:
                raise self._bad_magic(f"data block {dablk:#x}", byte, (self.data_magic,), magic)
            for _, entry in self._iter_data_entries(data, self.data_hdr, len(data), byte):
                yield entry

    # -- lookup -------------------------------------------------------------------------

    def lookup(self, name: bytes) -> int | None:
        """The inode number of entry ``name``, or None.

        Case-insensitive filesystems prefer an exact match, then the first ASCII-folded match.

        Raises:
            CorruptStructure: damaged directory structures on the way.
            LimitExceeded: ``max_tree_depth`` or ``max_tree_nodes``.
        """
        if not name or len(name) > 255 or b"/" in name or b"\0" in name:
            return None
        if self.form == "shortform":
            return self._choose(name, self._iter_shortform())
        if self.geo.ascii_ci:
            h = s.xfs_da_hashname(s.xfs_ascii_ci_xfrm(name))
        else:
            h = s.xfs_da_hashname(name)
        if self.form == "block":
            return self._choose(name, self._lookup_block(h, self._budget()))
        return self._choose(name, self._lookup_tree(h, self._budget()))

    def _choose(self, name: bytes, candidates: Iterator[RawDirEntry]) -> int | None:
        folded = s.xfs_ascii_ci_xfrm(name) if self.geo.ascii_ci else None
        fallback: int | None = None
        for entry in candidates:
            if entry.name == name:
                return entry.ino
            if folded is not None and fallback is None and s.xfs_ascii_ci_xfrm(entry.name) == folded:
                fallback = entry.ino
        return fallback

    def _lookup_block(self, h: int, budget: _Budget) -> Iterator[RawDirEntry]:
        data, start, end, byte = self._block_form_area(budget)
        count = _U32.unpack_from(data, len(data) - s.XFS_DIR2_BLOCK_TAIL_SIZE)[0]
        leaf = end
        yield from self._candidates(data, leaf, count, h, dablk=0, single=(start, end, data, byte), budget=budget)

    def _lookup_tree(self, h: int, budget: _Budget) -> Iterator[RawDirEntry]:
        block, magic = self._read_da_root(budget)
        dablk = self.leaf_dablk
        visited = {dablk}
        parent_level: int | None = None
        while magic == self.node_magic:
            what = f"{self.what}: da node block {dablk:#x}"
            count, level = self._da_count_level(block)
            if parent_level is None:
                self.limits.check("max_tree_depth", level, self.what)
                if level < 1:
                    raise CorruptStructure(what, "da node at level 0", got=level)
            elif level != parent_level - 1:
                raise CorruptStructure(what, "da node has the wrong level", expected=parent_level - 1, got=level)
            if not 1 <= count <= (len(block) - self.da_hdr) // s.XFS_DA_NODE_ENTRY_SIZE:
                raise CorruptStructure(what, "bad da node entry count", got=count)
            pairs = [_PAIR.unpack_from(block, self.da_hdr + i * s.XFS_DA_NODE_ENTRY_SIZE) for i in range(count)]
            i = bisect.bisect_left([p[0] for p in pairs], h)
            if i == count:
                return  # larger than every hash in the directory
            child = pairs[i][1]
            if not self.leaf_dablk <= child < self.free_dablk or child % self.geo.dir_fsbs:
                raise CorruptStructure(what, "da node points outside the leaf space", got=child)
            if child in visited:
                raise CorruptStructure(what, "da btree block is referenced twice (a loop)", got=child)
            visited.add(child)
            self.limits.check("max_tree_nodes", len(visited), self.what)
            parent_level = level
            dablk = child
            block, magic = self._read_da_block(dablk, budget)
        if parent_level is not None and parent_level != 1:
            raise CorruptStructure(f"{self.what}: leaf block {dablk:#x}", "leaf found above the bottom of the da btree", got=parent_level)
        want = self.leaf1_magic if parent_level is None and magic == self.leaf1_magic else self.leafn_magic
        while True:
            what = f"{self.what}: leaf block {dablk:#x}"
            if magic != want:
                raise self._bad_magic(f"leaf block {dablk:#x}", self.fork_byte(dablk), (want,), magic)
            count = self._da_count_level(block)[0]
            room = len(block) - self.da_hdr - (4 if magic == self.leaf1_magic else 0)
            if count * s.XFS_DIR2_LEAF_ENTRY_SIZE > room:
                raise CorruptStructure(what, "leaf entry count overruns the block", got=count)
            last_hash = _U32.unpack_from(block, self.da_hdr + (count - 1) * 8)[0] if count else -1
            yield from self._candidates(block, self.da_hdr, count, h, dablk=dablk, single=None, budget=budget)
            forw = s.XFS_DA_BLKINFO_RECORD.parse(block, 0).forw
            if last_hash != h or forw == 0 or magic == self.leaf1_magic:
                return
            if not self.leaf_dablk <= forw < self.free_dablk or forw in visited:
                raise CorruptStructure(what, "leaf sibling pointer loops or leaves the leaf space", got=forw)
            visited.add(forw)
            self.limits.check("max_tree_nodes", len(visited), self.what)
            dablk = forw
            block, magic = self._read_da_block(dablk, budget)

    def _candidates(
        self,
        block: bytes,
        first: int,
        count: int,
        h: int,
        *,
        dablk: int,
        single: tuple[int, int, bytes, int] | None,
        budget: _Budget,
    ) -> Iterator[RawDirEntry]:
        """Entries a leaf array (at ``first``, ``count`` entries) points at for hash ``h``."""
        hashes = [_U32.unpack_from(block, first + 8 * i)[0] for i in range(count)]
        i = bisect.bisect_left(hashes, h)
        while i < count and hashes[i] == h:
            address = _U32.unpack_from(block, first + 8 * i + 4)[0]
            i += 1
            if address == s.XFS_DIR2_NULL_DATAPTR:
                continue  # stale
            pos = address << s.XFS_DIR2_DATA_ALIGN_LOG
            db = pos // self.geo.dir_block_size
            off = pos % self.geo.dir_block_size
            if single is not None:
                start, end, data, byte = single
                if db != 0:
                    raise CorruptStructure(f"{self.what}: block leaf", "address points outside the block", got=address)
            else:
                if pos >= s.XFS_DIR2_LEAF_OFFSET:
                    raise CorruptStructure(f"{self.what}: leaf block {dablk:#x}", "address points outside the data space", got=address)
                data, byte = self._read_dir_block(db * self.geo.dir_fsbs, "data block", budget)
                magic = _U32.unpack_from(data, 0)[0]
                if magic != self.data_magic:
                    raise self._bad_magic(f"data block {db * self.geo.dir_fsbs:#x}", byte, (self.data_magic,), magic)
                start, end = self.data_hdr, len(data)
            if not start <= off < end:
                raise CorruptStructure(f"{self.what}: leaf", "address points outside the entry area", got=address)
            for _, entry in self._iter_data_entries(data, off, end, byte, only_one=True):
                yield entry

    # -- blocks -------------------------------------------------------------------------

    def fork_byte(self, dablk: int) -> int:
        assert self.fork is not None
        return self.fork.byte_of(dablk)

    def _budget(self) -> _Budget:
        return _Budget(self.limits, self.what)

    def _read_dir_block(self, dablk: int, role: str, budget: _Budget | None = None) -> tuple[bytes, int]:
        """One directory block (``dir_fsbs`` file blocks) and its volume byte offset."""
        assert self.fork is not None
        (budget or self._budget()).tick()
        data = self.fork.read(dablk, self.geo.dir_fsbs)
        if data is None:
            raise CorruptStructure(self.what, f"{role} at directory block {dablk:#x} is not mapped")
        byte = self.fork.byte_of(dablk)
        if self.geo.has_crc:
            hdr = s.XFS_DIR3_BLK_HDR_RECORD.parse(data, 0, where=self.what)
            self._check_self(f"{role} {dablk:#x}", byte, hdr.blkno, hdr.owner, bytes(hdr.uuid))
        return data, byte

    def _read_da_block(self, dablk: int, budget: _Budget | None = None) -> tuple[bytes, int]:
        """A leaf-space block and its 16-bit magic (da_blkinfo layout)."""
        assert self.fork is not None
        (budget or self._budget()).tick()
        data = self.fork.read(dablk, self.geo.dir_fsbs)
        if data is None:
            raise CorruptStructure(self.what, f"leaf-space block {dablk:#x} is not mapped")
        info = s.XFS_DA_BLKINFO_RECORD.parse(data, 0, where=self.what)
        if self.geo.has_crc:
            tail = s.XFS_DA3_BLKINFO_TAIL_RECORD.parse(data, s.XFS_DA_BLKINFO_RECORD.size, where=self.what)
            self._check_self(f"leaf-space block {dablk:#x}", self.fork.byte_of(dablk), tail.blkno, tail.owner, bytes(tail.uuid))
        return data, info.magic

    def _read_da_root(self, budget: _Budget | None = None) -> tuple[bytes, int]:
        assert self.fork is not None
        if self.fork.read(self.leaf_dablk, 1) is None:
            raise CorruptStructure(self.what, "multi-block directory without a leaf block at 32 GiB")
        block, magic = self._read_da_block(self.leaf_dablk, budget)
        if magic not in (self.leaf1_magic, self.leafn_magic, self.node_magic):
            raise self._bad_magic("leaf block", self.fork_byte(self.leaf_dablk), (self.leaf1_magic, self.leafn_magic, self.node_magic), magic)
        return block, magic

    def _da_count_level(self, block: bytes) -> tuple[int, int]:
        """(count, level-or-stale) from a da node or dir leaf header."""
        at = self.da_hdr - (8 if self.geo.has_crc else 4)
        count, second = struct.unpack_from(">HH", block, at)
        return count, second

    def _check_self(self, role: str, byte: int, blkno: int, owner: int, uuid: bytes) -> None:
        what = f"{self.what}: {role}"
        if blkno != byte >> s.BBSHIFT:
            raise CorruptStructure(what, "block records another address", offset=byte, expected=byte >> s.BBSHIFT, got=blkno)
        if owner != self.inode.ino:
            raise CorruptStructure(what, "block belongs to another inode", offset=byte, expected=self.inode.ino, got=owner)
        if uuid != self.geo.meta_uuid:
            raise CorruptStructure(what, "block belongs to another filesystem (uuid)", offset=byte)

    def _bad_magic(self, role: str, byte: int, expected: tuple[int, ...], got: int) -> CorruptStructure:
        exp = " or ".join(f"{m:#x}" for m in expected)
        return CorruptStructure(f"{self.what}: {role}", f"bad magic, expected {exp}, got {got:#x}", offset=byte)

    def _block_form_area(self, budget: _Budget | None = None) -> tuple[bytes, int, int, int]:
        """The single block of a block-form directory: (data, entries start, entries end, byte)."""
        data, byte = self._read_dir_block(0, "block", budget)
        magic = _U32.unpack_from(data, 0)[0]
        if magic != self.block_magic:
            raise self._bad_magic("block", byte, (self.block_magic,), magic)
        tail = len(data) - s.XFS_DIR2_BLOCK_TAIL_SIZE
        count, stale = struct.unpack_from(">II", data, tail)
        end = tail - count * s.XFS_DIR2_LEAF_ENTRY_SIZE
        if end < self.data_hdr or stale > count:
            raise CorruptStructure(f"{self.what}: block", "leaf count in the block tail overruns the block", offset=byte + tail, got=count)
        return data, self.data_hdr, end, byte

    # -- entries ------------------------------------------------------------------------

    def _iter_data_entries(
        self, data: bytes, start: int, end: int, byte: int, *, only_one: bool = False
    ) -> Iterator[tuple[int, RawDirEntry]]:
        """Parse data entries in ``data[start:end]``; yields (offset, entry)."""
        ft = 1 if self.geo.has_ftype else 0
        pos = start
        while pos < end:
            where = f"{self.what}: data entry"
            if end - pos < s.XFS_DIR2_DATA_ALIGN or pos % s.XFS_DIR2_DATA_ALIGN:
                raise CorruptStructure(where, "entry straddles the end of the entry area", offset=byte + pos)
            if _U16.unpack_from(data, pos)[0] == s.XFS_DIR2_DATA_FREE_TAG:  # an unused region (>= 8 bytes)
                if only_one:
                    raise CorruptStructure(where, "leaf points at an unused entry", offset=byte + pos)
                length = _U16.unpack_from(data, pos + 2)[0]
                if length < s.XFS_DIR2_DATA_ALIGN or length % s.XFS_DIR2_DATA_ALIGN or pos + length > end:
                    raise CorruptStructure(where, "unused region has a bad length", offset=byte + pos, got=length)
                if _U16.unpack_from(data, pos + length - 2)[0] != pos:
                    raise CorruptStructure(where, "unused region tag does not match its offset", offset=byte + pos)
                pos += length
                continue
            if end - pos < _MIN_ENTRY:
                raise CorruptStructure(where, "entry straddles the end of the entry area", offset=byte + pos)
            ino = _U64.unpack_from(data, pos)[0]
            namelen = data[pos + 8]
            size = (8 + 1 + namelen + ft + 2 + 7) & ~7
            if namelen == 0 or pos + size > end:
                raise CorruptStructure(where, f"entry with a {namelen}-byte name overruns the block", offset=byte + pos, got=namelen)
            name = data[pos + 9 : pos + 9 + namelen]
            ftype = data[pos + 9 + namelen] if ft else None
            if _U16.unpack_from(data, pos + size - 2)[0] != pos:
                raise CorruptStructure(where, "entry tag does not match its offset", offset=byte + pos)
            yield pos, self._entry(name, ino, ftype, byte + pos)
            if only_one:
                return
            pos += size

    def _iter_shortform(self) -> Iterator[RawDirEntry]:
        size = self.inode.di_size
        data = self.inode.data_fork[:size]
        base = self.inode.data_fork_offset
        what = f"{self.what}: shortform"
        if size < 2:
            raise CorruptStructure(what, "too small for a shortform header", offset=base, got=size)
        count, i8count = data[0], data[1]
        inosize = 8 if i8count else 4
        pos = 2 + inosize
        if pos > size:
            raise CorruptStructure(what, "header overruns the directory size", offset=base)
        ft = 1 if self.geo.has_ftype else 0
        for _ in range(count):
            if pos + 3 > size:
                raise CorruptStructure(what, "entry overruns the directory size", offset=base + pos)
            namelen = data[pos]
            end = pos + 3 + namelen + ft + inosize
            if namelen == 0 or end > size:
                raise CorruptStructure(what, f"entry with a {namelen}-byte name overruns the directory", offset=base + pos, got=namelen)
            name = data[pos + 3 : pos + 3 + namelen]
            ftype = data[pos + 3 + namelen] if ft else None
            ino = int.from_bytes(data[end - inosize : end], "big")
            yield self._entry(name, ino, ftype, base + pos)
            pos = end

    def _entry(self, name: bytes, ino: int, ftype: int | None, byte: int) -> RawDirEntry:
        where = f"{self.what}: entry {name!r}"
        if b"/" in name or b"\0" in name:
            raise CorruptStructure(where, "name contains '/' or NUL", offset=byte)
        if ftype is not None and ftype >= s.XFS_DIR3_FT_MAX:
            raise CorruptStructure(where, "unknown file type code", offset=byte, got=ftype)
        self.geo.check_ino(ino, where)
        return RawDirEntry(name, ino, ftype)
