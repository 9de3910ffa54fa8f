"""XFS data forks: extent records, the block-mapping btree (bmbt), and file runs.

An extent record (``xfs_bmbt_rec``) is 128 bits, two big-endian words::

    l0: [63] unwritten flag | [62..9] br_startoff (54 bits) | [8..0] br_startblock high 9 bits
    l1: [63..21] br_startblock low 43 bits | [20..0] br_blockcount (21 bits)

In "extents" format the records sit in the inode's data fork.  In "btree"
format the fork holds a bmbt root (``xfs_bmdr_block``: level, numrecs, then
``maxrecs`` keys and ``maxrecs`` pointers, where ``maxrecs`` is computed from the
fork size, not from numrecs) and the tree's blocks are "BMAP" (v4) / "BMA3" (v5)
long-format btree blocks.  Leaves hold records; nodes hold keys then pointers.

The walk is bounded by ``Limits.max_tree_depth`` (the root's level),
``max_tree_nodes`` and ``max_extents``, keeps a visited set of blocks, and
checks each child's level, each v5 block's owner/blkno/uuid and each record's
order and range, so a self-referencing or crossed tree ends in one clear error.

References:
    fs/xfs/libxfs/xfs_format.h      xfs_bmbt_rec, xfs_bmdr_block, XFS_BMDR_*_ADDR, xfs_btree_block
    fs/xfs/libxfs/xfs_bmap_btree.c  xfs_bmbt_disk_get_all (record unpacking), xfs_bmdr_maxrecs,
                                    xfs_bmbt_verify (v5 header checks)
    fs/xfs/libxfs/xfs_bmap.c        xfs_iread_extents (the loaded count must equal di_nextents)
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from virtkit._streams import ByteSource, MappedSource, Run
from virtkit.boot.fs.xfs import structs as s
from virtkit.boot.fs.xfs.inode import Dinode
from virtkit.boot.fs.xfs.superblock import XfsGeometry
from virtkit.errors import CorruptStructure, InternalError
from virtkit.limits import Limits

__all__ = ["Extent", "ExtentFileSource", "ForkMap", "decode_extent_records", "extents_to_runs", "read_data_fork_extents"]

_MASK54 = (1 << 54) - 1
_MASK21 = (1 << 21) - 1
_REC = struct.Struct(">QQ")


@dataclass(frozen=True, slots=True)
class Extent:
    """One mapping: ``blockcount`` file blocks from ``startoff`` live at ``startblock``.

    ``byte`` is the checked byte offset of ``startblock`` on the volume.
    """

    startoff: int
    startblock: int
    blockcount: int
    unwritten: bool
    byte: int


def decode_extent_records(geo: XfsGeometry, data: bytes, count: int, what: str, offset: int, *, prev_end: int = 0) -> list[Extent]:
    """Decode and check ``count`` packed extent records from ``data``.

    Args:
        geo: geometry, for block-number checks.
        data: the bytes holding the records (from the first record).
        count: number of records.
        what: the owner, for errors ("xfs on vda1: inode 131").
        offset: byte offset of ``data`` on the volume (for errors).
        prev_end: the file block the previous record ended at (records must not go back).

    Returns:
        the extents in file order.

    Raises:
        CorruptStructure: truncated records, an empty or out-of-order extent, a block
            outside its AG or the filesystem.
    """
    if count * s.XFS_BMBT_REC_SIZE > len(data):
        raise CorruptStructure(what, f"{count} extent records overrun their {len(data)}-byte area", offset=offset)
    out: list[Extent] = []
    # The common case is checked inline (this loop runs once per extent of every file);
    # anything odd goes to _bad_record for the precise message.
    agblklog = geo.ag_blklog
    agmask = (1 << agblklog) - 1
    ag_count, ag_blocks, dblocks, bs = geo.ag_count, geo.ag_blocks, geo.dblocks, geo.block_size
    append = out.append
    for i, (l0, l1) in enumerate(_REC.iter_unpack(data[: count * s.XFS_BMBT_REC_SIZE])):
        startoff = (l0 >> 9) & _MASK54
        startblock = ((l0 & 0x1FF) << 43) | (l1 >> 21)
        blockcount = l1 & _MASK21
        agno = startblock >> agblklog
        agbno = startblock & agmask
        linear = agno * ag_blocks + agbno
        if (
            blockcount == 0
            or startoff < prev_end
            or startoff + blockcount > s.XFS_MAX_FILEOFF + 1
            or agno >= ag_count
            or agbno + blockcount > ag_blocks
            or linear + blockcount > dblocks
        ):
            _bad_record(
                geo, what, i, offset + i * s.XFS_BMBT_REC_SIZE,
                startoff=startoff, startblock=startblock, blockcount=blockcount, prev_end=prev_end,
            )
        append(Extent(startoff, startblock, blockcount, l0 >> 63 == 1, linear * bs))
        prev_end = startoff + blockcount
    return out


def _bad_record(
    geo: XfsGeometry, what: str, i: int, rec_off: int, *, startoff: int, startblock: int, blockcount: int, prev_end: int
) -> None:
    where = f"{what}: extent record {i}"
    if blockcount == 0:
        raise CorruptStructure(where, "extent of zero blocks", offset=rec_off)
    if startoff < prev_end:
        raise CorruptStructure(where, f"extent at file block {startoff:#x} overlaps or precedes the previous one", offset=rec_off)
    if startoff + blockcount > s.XFS_MAX_FILEOFF + 1:
        raise CorruptStructure(where, "extent ends beyond the largest file offset", offset=rec_off)
    geo.fsb_to_byte(startblock, blockcount, where)  # raises with the AG detail
    raise InternalError(f"{where}: the inline extent check and fsb_to_byte disagree")


class _BmbtWalk:
    """One bounded walk of a bmbt, in key order."""

    def __init__(self, geo: XfsGeometry, source: ByteSource, inode: Dinode, limits: Limits) -> None:
        self.geo = geo
        self.source = source
        self.inode = inode
        self.limits = limits
        self.what = f"{inode.what}: bmbt"
        self.visited: set[int] = set()
        self.extents: list[Extent] = []
        crc = geo.has_crc
        self.magic = s.XFS_BMAP_CRC_MAGIC if crc else s.XFS_BMAP_MAGIC
        self.hdr_len = s.XFS_BTREE_LBLOCK_CRC_LEN if crc else s.XFS_BTREE_LBLOCK_LEN
        self.block_maxrecs = (geo.block_size - self.hdr_len) // s.XFS_BMBT_REC_SIZE

    def run(self) -> list[Extent]:
        fork = self.inode.data_fork
        what = f"{self.what} root in the inode"
        if len(fork) < s.XFS_BMDR_HDR_SIZE:
            raise CorruptStructure(what, "data fork too small for a bmbt root", offset=self.inode.offset)
        level, numrecs = struct.unpack_from(">HH", fork, 0)
        maxrecs = (len(fork) - s.XFS_BMDR_HDR_SIZE) // (s.XFS_BMBT_KEY_SIZE + s.XFS_BMBT_PTR_SIZE)
        if level < 1:
            raise CorruptStructure(what, "a bmbt root in the inode must be an interior node", got=level)
        self.limits.check("max_tree_depth", level, what)
        if not 1 <= numrecs <= maxrecs:
            raise CorruptStructure(what, f"bmbt root holds {numrecs} entries, room for 1..{maxrecs}", got=numrecs)
        keys = struct.unpack_from(f">{numrecs}Q", fork, s.XFS_BMDR_HDR_SIZE)
        ptrs = struct.unpack_from(f">{numrecs}Q", fork, s.XFS_BMDR_HDR_SIZE + maxrecs * s.XFS_BMBT_KEY_SIZE)
        # Depth-first, left to right, without recursion: (block, expected level, key range).
        stack: list[tuple[int, int, int, int | None]] = []
        self._push_children(stack, keys, ptrs, level, None)
        while stack:
            fsb, child_level, lo, hi = stack.pop()
            self._block(stack, fsb, child_level, lo, hi)
        return self.extents

    def _push_children(
        self, stack: list[tuple[int, int, int, int | None]], keys: tuple[int, ...], ptrs: tuple[int, ...], level: int, hi: int | None
    ) -> None:
        children = []
        for i, (key, ptr) in enumerate(zip(keys, ptrs)):
            child_hi = keys[i + 1] if i + 1 < len(keys) else hi
            if child_hi is not None and key >= child_hi:
                raise CorruptStructure(f"{self.what} level {level}", "keys out of order", got=key)
            children.append((ptr, level - 1, key, child_hi))
        stack.extend(reversed(children))

    def _block(self, stack: list[tuple[int, int, int, int | None]], fsb: int, level: int, lo: int, hi: int | None) -> None:
        what = f"{self.what} block {fsb:#x}"
        if fsb in self.visited:
            raise CorruptStructure(what, "bmbt block is referenced twice (a loop or a crossed tree)")
        self.visited.add(fsb)
        self.limits.check("max_tree_nodes", len(self.visited), self.what)
        byte = self.geo.fsb_to_byte(fsb, 1, what)
        data = self.source.pread(byte, self.geo.block_size)
        hdr = s.XFS_BTREE_LBLOCK_RECORD.parse(data, 0, where=what)
        if hdr.bb_magic != self.magic:
            raise CorruptStructure(what, "bad bmbt block magic", offset=byte, expected=self.magic, got=hdr.bb_magic)
        if self.geo.has_crc:
            tail = s.XFS_BTREE_LBLOCK_CRC_RECORD.parse(data, s.XFS_BTREE_LBLOCK_RECORD.size, where=what)
            if tail.bb_owner != self.inode.ino:
                raise CorruptStructure(what, "bmbt block belongs to another inode", offset=byte, expected=self.inode.ino, got=tail.bb_owner)
            if tail.bb_blkno != byte >> s.BBSHIFT:
                raise CorruptStructure(what, "bmbt block records another address", offset=byte, expected=byte >> s.BBSHIFT, got=tail.bb_blkno)
            if bytes(tail.bb_uuid) != self.geo.meta_uuid:
                raise CorruptStructure(what, "bmbt block belongs to another filesystem (bb_uuid)", offset=byte)
        if hdr.bb_level != level:
            raise CorruptStructure(what, "bmbt block has the wrong level", offset=byte, expected=level, got=hdr.bb_level)
        n = hdr.bb_numrecs
        if not 1 <= n <= self.block_maxrecs:
            raise CorruptStructure(what, f"bmbt block holds {n} entries, room for 1..{self.block_maxrecs}", offset=byte, got=n)
        if level == 0:
            total = len(self.extents) + n
            self.limits.check("max_extents", total, self.inode.what)
            prev_end = self.extents[-1].startoff + self.extents[-1].blockcount if self.extents else 0
            recs = decode_extent_records(self.geo, data[self.hdr_len :], n, what, byte + self.hdr_len, prev_end=prev_end)
            if recs[0].startoff < lo or (hi is not None and recs[-1].startoff >= hi):
                raise CorruptStructure(what, "bmbt leaf records lie outside the key range that points at it", offset=byte)
            self.extents.extend(recs)
            return
        keys = struct.unpack_from(f">{n}Q", data, self.hdr_len)
        ptrs = struct.unpack_from(f">{n}Q", data, self.hdr_len + self.block_maxrecs * s.XFS_BMBT_KEY_SIZE)
        if keys[0] < lo:
            raise CorruptStructure(what, "bmbt node keys lie outside the key range that points at it", offset=byte)
        self._push_children(stack, keys, ptrs, level, hi)


def read_data_fork_extents(geo: XfsGeometry, source: ByteSource, inode: Dinode, limits: Limits) -> list[Extent]:
    """All extents of an inode's data fork ("extents" or "btree" format), checked and in order.

    Raises:
        CorruptStructure: see :func:`decode_extent_records`; bmbt damage; a count that
            disagrees with the inode's extent count.
        LimitExceeded: ``max_extents``, ``max_tree_depth`` or ``max_tree_nodes``.
    """
    if inode.di_format == s.XFS_DINODE_FMT_EXTENTS:
        limits.check("max_extents", inode.nextents, inode.what)
        return decode_extent_records(geo, inode.data_fork, inode.nextents, inode.what, inode.data_fork_offset)
    if inode.di_format != s.XFS_DINODE_FMT_BTREE:
        raise CorruptStructure(inode.what, f"data fork in {inode.format_name} format has no extents", offset=inode.offset)
    extents = _BmbtWalk(geo, source, inode, limits).run()
    if len(extents) != inode.nextents:
        raise CorruptStructure(inode.what, "bmbt holds a different number of extents than the inode says", expected=inode.nextents, got=len(extents))
    return extents


def extents_to_runs(extents: list[Extent], block_size: int, size: int, source: ByteSource) -> list[Run]:
    """Merge extents into as few runs as possible, clipped to ``size`` bytes.

    Unwritten extents and gaps become holes (zeros).  Physically adjacent extents
    merge even across AG boundaries, so a contiguous file is one run.
    """
    merged: list[list[int]] = []  # [start, length, source_offset]
    for e in extents:
        if e.unwritten:
            continue
        start = e.startoff * block_size
        if start >= size:
            break
        length = min(e.blockcount * block_size, size - start)
        if merged:
            last = merged[-1]
            if last[0] + last[1] == start and last[2] + last[1] == e.byte:
                last[1] += length
                continue
        merged.append([start, length, e.byte])
    return [Run(start, length, source, off) for start, length, off in merged]


class ExtentFileSource(MappedSource):
    """A file's contents: :class:`MappedSource` plus one read for many small nearby extents.

    A fragmented file (say every other block punched out, or written a block at a
    time next to other files) has hundreds of runs per MiB.  When the runs a read
    crosses lie in ascending order close together on the volume, one ``pread`` of
    their whole span and slicing beats one ``pread`` per run; the span is capped at
    twice the bytes wanted (plus 256 KiB), so the extra bytes read stay bounded.
    """

    _MIN_RUNS = 4
    _SLACK = 256 << 10

    def _pread(self, offset: int, length: int) -> bytes:
        runs = self.runs
        stop = offset + length
        lo = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        hi = bisect.bisect_left(self._starts, stop)
        window = [r for r in runs[lo:hi] if r.start + r.length > offset]
        if len(window) < self._MIN_RUNS:
            return super()._pread(offset, length)
        src = window[0].source
        first = window[0].source_offset + max(0, offset - window[0].start)
        last = window[-1].source_offset + min(stop, window[-1].start + window[-1].length) - window[-1].start
        if src is None or last - first > 2 * length + self._SLACK:
            return super()._pread(offset, length)
        prev = first
        for r in window:
            a = r.source_offset + max(0, offset - r.start)
            if r.source is not src or a < prev:
                return super()._pread(offset, length)
            prev = a
        span = memoryview(src.pread(first, last - first))
        parts: list[bytes | memoryview] = []
        pos = offset
        for r in window:
            a = max(pos, r.start)
            b = min(stop, r.start + r.length)
            if a > pos:
                parts.append(bytes(a - pos))
            rel = r.source_offset + (a - r.start) - first
            parts.append(span[rel : rel + (b - a)])
            pos = b
        if pos < stop:
            parts.append(bytes(stop - pos))
        return b"".join(parts)


class ForkMap:
    """Random access to the blocks of a directory or symlink data fork, by file block.

    Unlike a file's runs, metadata reads must be fully mapped: a hole or an
    unwritten extent inside a directory block is corruption.
    """

    def __init__(self, geo: XfsGeometry, source: ByteSource, extents: list[Extent], what: str) -> None:
        self.geo = geo
        self.source = source
        self.extents = extents
        self.what = what
        self._starts = [e.startoff for e in extents]

    def read(self, fsb: int, count: int) -> bytes | None:
        """The bytes of file blocks ``[fsb, fsb+count)``, or None if none of them is mapped.

        Raises:
            CorruptStructure: the range is partly mapped, or mapped by an unwritten extent.
        """
        bs = self.geo.block_size
        i = bisect.bisect_right(self._starts, fsb) - 1
        pos = fsb
        end = fsb + count
        parts: list[bytes] = []
        i = max(i, 0)
        while pos < end and i < len(self.extents):
            e = self.extents[i]
            if e.startoff + e.blockcount <= pos:
                i += 1
                continue
            if e.startoff > pos:
                break
            if e.unwritten:
                raise CorruptStructure(self.what, f"block {pos:#x} is mapped by an unwritten extent")
            n = min(end, e.startoff + e.blockcount) - pos
            parts.append(self.source.pread(e.byte + (pos - e.startoff) * bs, n * bs))
            pos += n
            i += 1
        if pos == fsb:
            return None
        if pos != end:
            raise CorruptStructure(self.what, f"blocks {fsb:#x}..{end - 1:#x} are only partly mapped (hole at {pos:#x})")
        return b"".join(parts)

    def byte_of(self, fsb: int) -> int:
        """Volume byte offset of mapped file block ``fsb`` (for v5 self-address checks)."""
        i = bisect.bisect_right(self._starts, fsb) - 1
        if i >= 0:
            e = self.extents[i]
            if fsb < e.startoff + e.blockcount:
                return e.byte + (fsb - e.startoff) * self.geo.block_size
        raise CorruptStructure(self.what, f"block {fsb:#x} is not mapped")

    def iter_block_starts(self, lo: int, hi: int, step: int) -> Iterator[int]:
        """Ascending starts of the ``step``-aligned groups of blocks in ``[lo, hi)`` with any mapping."""
        last = -1
        i = max(bisect.bisect_right(self._starts, lo) - 1, 0)
        for e in self.extents[i:]:
            if e.startoff >= hi:
                break
            first = max(e.startoff, lo)
            stop = min(e.startoff + e.blockcount, hi)
            b = first - first % step
            while b < stop:
                if b > last:
                    yield b
                    last = b
                b += step
