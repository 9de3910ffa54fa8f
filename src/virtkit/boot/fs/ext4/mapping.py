"""Where a file's blocks are: extent trees (ext4), block maps (ext2/3), inline data.

References:
    Linux ``fs/ext4/ext4_extents.h`` and ``fs/ext4/extents.c`` (__ext4_ext_check: magic,
        eh_entries <= eh_max <= the node's capacity, eh_depth; ext4_valid_extent_entries:
        sorted, non-overlapping; ext4_inode_block_valid: a block lies after
        s_first_data_block and before the end), ``fs/ext4/indirect.c`` (12 direct, one
        indirect, one double and one triple indirect pointer), ``fs/ext4/inline.c``.

Every mapping comes out as a sorted list of :class:`BlockRun` (logical block, physical
block or None for a hole or an unwritten extent, count), with physically contiguous
neighbours merged, so a large file becomes a few long runs and reading it costs one
``pread`` per run.

Hostile input: every block number is checked against the filesystem, every index block
is visited at most once (a cycle or a shared subtree is corruption), tree depth is
bounded by ``Limits.max_tree_depth`` and must decrease by one per level, nodes by
``max_tree_nodes``, and runs by ``max_extents``.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

from virtkit.boot.fs.ext4 import structs as S
from virtkit.errors import CorruptStructure

if TYPE_CHECKING:
    from virtkit.boot.fs.ext4.fs import Ext4
    from virtkit.boot.fs.ext4.inode import Inode

__all__ = ["BlockRun", "blockmap_runs", "extent_runs"]

EXT_MAX_BLOCKS = 0xFFFFFFFF  # fs/ext4/ext4_extents.h: logical block numbers are 32-bit
EXT4_MAX_EXTENT_DEPTH = 5  # fs/ext4/ext4_extents.h: deepest tree the kernel accepts
_ROOT_CAPACITY = (S.EXT4_N_BLOCKS * 4 - S.EXTENT_HEADER.size) // S.EXTENT.size  # 4 entries in i_block


@dataclass(frozen=True, slots=True)
class BlockRun:
    """``count`` blocks from logical block ``logical`` live at ``physical`` (None: zeros)."""

    logical: int
    physical: int | None
    count: int


class _RunBuilder:
    """Collects (logical, physical, count) pieces in logical order, merging neighbours."""

    def __init__(self, fs: Ext4, what: str) -> None:
        self.runs: list[BlockRun] = []
        self._limits = fs.limits
        self._what = what
        self._lo = -1
        self._phys: int | None = None
        self._count = 0

    def add(self, logical: int, physical: int | None, count: int) -> None:
        if (
            self._count
            and logical == self._lo + self._count
            and (physical is None) == (self._phys is None)
            and (physical is None or physical == self._phys + self._count)  # type: ignore[operator]
        ):
            self._count += count
            return
        self._flush()
        self._lo, self._phys, self._count = logical, physical, count

    def _flush(self) -> None:
        if self._count:
            self.runs.append(BlockRun(self._lo, self._phys, self._count))
            if len(self.runs) > self._limits.max_extents:
                self._limits.check("max_extents", len(self.runs), self._what)

    def finish(self) -> list[BlockRun]:
        self._flush()
        self._count = 0
        return self.runs


def _check_block(fs: Ext4, block: int, count: int, what: str, problem: str, *, offset: int) -> None:
    """Blocks [block, block+count) must lie after s_first_data_block and inside the filesystem."""
    sb = fs.sb
    if block <= sb.first_data_block or block + count > sb.blocks_count:
        raise CorruptStructure(
            what,
            f"{problem} {block:#x}+{count} outside the filesystem (blocks {sb.first_data_block + 1:#x}..{sb.blocks_count - 1:#x})",
            offset=offset,
        )


def extent_runs(fs: Ext4, inode: Inode, nblocks: int) -> list[BlockRun]:
    """The block runs of an extent-mapped inode, for logical blocks below ``nblocks``.

    Unwritten (preallocated) extents come back as holes.  Extents past ``nblocks``
    (space preallocated beyond the end of file) are dropped.

    Raises:
        CorruptStructure: bad magic, depth, counts, ordering, block numbers, or a cycle.
        LimitExceeded: max_tree_depth, max_tree_nodes or max_extents.
    """
    what = f"{fs.describe()}: inode {inode.ino} extent tree"
    limits = fs.limits
    bs = fs.sb.block_size
    builder = _RunBuilder(fs, what)
    visited: set[int] = set()
    state = {"nodes": 1, "extents": 0, "next": 0}  # next: first logical block not yet covered

    def walk(buf: bytes, capacity: int, depth: int | None, node_off: int) -> None:
        h = S.EXTENT_HEADER.parse(buf, 0, where=what)
        if h.eh_magic != S.EXT4_EXT_MAGIC:
            raise CorruptStructure(what, "bad extent header magic", offset=node_off, expected=S.EXT4_EXT_MAGIC, got=h.eh_magic)
        if depth is None:
            depth = limits.check("max_tree_depth", h.eh_depth, what)
            if depth > EXT4_MAX_EXTENT_DEPTH:
                raise CorruptStructure(what, "eh_depth deeper than ext4 allows", offset=node_off, expected=f"<= {EXT4_MAX_EXTENT_DEPTH}", got=depth)
        elif h.eh_depth != depth:
            raise CorruptStructure(what, "eh_depth does not decrease by one per level", offset=node_off, expected=depth, got=h.eh_depth)
        if h.eh_max > capacity:
            raise CorruptStructure(what, "eh_max larger than the node", offset=node_off, expected=f"<= {capacity}", got=h.eh_max)
        if h.eh_entries > h.eh_max:
            raise CorruptStructure(what, "eh_entries larger than eh_max", offset=node_off, expected=f"<= {h.eh_max}", got=h.eh_entries)
        if depth == 0:
            for i in range(h.eh_entries):
                ent_off = node_off + 12 + 12 * i
                ee = S.EXTENT.parse(buf, 12 + 12 * i, where=what)
                length = ee.ee_len
                unwritten = length > S.EXT_INIT_MAX_LEN
                if unwritten:
                    length -= S.EXT_INIT_MAX_LEN
                if length == 0:
                    raise CorruptStructure(what, "zero-length extent", offset=ent_off)
                if ee.ee_block < state["next"]:
                    raise CorruptStructure(
                        what, "extents out of order or overlapping", offset=ent_off, expected=f">= {state['next']:#x}", got=ee.ee_block
                    )
                if ee.ee_block + length - 1 > EXT_MAX_BLOCKS:
                    raise CorruptStructure(what, "extent past the last logical block", offset=ent_off, got=ee.ee_block)
                state["next"] = ee.ee_block + length
                state["extents"] += 1
                limits.check("max_extents", state["extents"], what)
                phys = ee.ee_start_hi << 32 | ee.ee_start_lo
                _check_block(fs, phys, length, what, "extent", offset=ent_off)
                if ee.ee_block >= nblocks:
                    continue
                count = min(length, nblocks - ee.ee_block)
                builder.add(ee.ee_block, None if unwritten else phys, count)
            return
        prev = -1
        for i in range(h.eh_entries):
            ent_off = node_off + 12 + 12 * i
            ix = S.EXTENT_IDX.parse(buf, 12 + 12 * i, where=what)
            if ix.ei_block <= prev:
                raise CorruptStructure(what, "index entries out of order", offset=ent_off, expected=f"> {prev:#x}", got=ix.ei_block)
            prev = ix.ei_block
            child = ix.ei_leaf_hi << 32 | ix.ei_leaf_lo
            _check_block(fs, child, 1, what, "index block", offset=ent_off)
            if child in visited:
                raise CorruptStructure(what, f"extent index block {child:#x} referenced twice (a cycle)", offset=ent_off)
            visited.add(child)
            state["nodes"] += 1
            limits.check("max_tree_nodes", state["nodes"], what)
            walk(fs.read_block(child), (bs - 12) // 12, depth - 1, child * bs)

    walk(inode.i_block, _ROOT_CAPACITY, None, inode.offset + 0x28)
    return builder.finish()


def blockmap_runs(fs: Ext4, inode: Inode, nblocks: int) -> list[BlockRun]:
    """The block runs of an ext2/ext3 block-mapped inode, for logical blocks below ``nblocks``.

    Zero pointers are holes (a zero indirect pointer makes its whole subtree a hole).

    Raises:
        CorruptStructure: a block number outside the filesystem, or an indirect block
            used twice (a loop).
        LimitExceeded: max_tree_nodes or max_extents.
    """
    what = f"{fs.describe()}: inode {inode.ino} block map"
    limits = fs.limits
    sb = fs.sb
    bs = sb.block_size
    per_block = bs // 4
    first_ok, end_ok = sb.first_data_block, sb.blocks_count
    builder = _RunBuilder(fs, what)
    visited: set[int] = set()
    nodes = 0
    ptrs = array("I", inode.i_block)
    if sys.byteorder != "little":
        ptrs.byteswap()

    def data(logical: int, pointers: array[int], start: int, count: int, where_off: int) -> None:
        add = builder.add
        if count > 1:
            # Fast path, the common case: the pointers are one contiguous range (checked
            # by one C-level array comparison instead of a Python loop per block).
            first = pointers[start]
            if first_ok < first and first + count <= end_ok and pointers[start : start + count] == array("I", range(first, first + count)):
                add(logical, first, count)
                return
        for i in range(start, start + count):
            p = pointers[i]
            if p:
                if p <= first_ok or p >= end_ok:
                    _check_block(fs, p, 1, what, "data block", offset=where_off + 4 * i)
                add(logical + i - start, p, 1)

    def indirect(block: int, level: int, logical: int, ref_off: int) -> None:
        nonlocal nodes
        _check_block(fs, block, 1, what, "indirect block", offset=ref_off)
        if block in visited:
            raise CorruptStructure(what, f"indirect block {block:#x} used twice (a loop)", offset=ref_off)
        visited.add(block)
        nodes += 1
        limits.check("max_tree_nodes", nodes, what)
        table = array("I", fs.read_block(block))
        if sys.byteorder != "little":
            table.byteswap()
        if level == 1:
            data(logical, table, 0, min(per_block, nblocks - logical), block * bs)
            return
        span = per_block ** (level - 1)
        for i, p in enumerate(table):
            child = logical + i * span
            if child >= nblocks:
                break
            if p:
                indirect(p, level - 1, child, block * bs + 4 * i)

    data(0, ptrs, 0, min(S.EXT4_NDIR_BLOCKS, nblocks), inode.offset + 0x28)
    logical = S.EXT4_NDIR_BLOCKS
    for level, slot in ((1, S.EXT4_IND_BLOCK), (2, S.EXT4_DIND_BLOCK), (3, S.EXT4_TIND_BLOCK)):
        if logical >= nblocks:
            break
        if ptrs[slot]:
            indirect(ptrs[slot], level, logical, inode.offset + 0x28 + 4 * slot)
        logical += per_block**level
    return builder.finish()
