"""btrfs B-trees: reading, checking and searching tree blocks.

References:
    include/uapi/linux/btrfs_tree.h (``btrfs_header``, ``btrfs_item``, ``btrfs_key_ptr``),
    fs/btrfs/disk-io.c (``btrfs_validate_extent_buffer``: bytenr, fsid, checksum, level),
    fs/btrfs/tree-checker.c (``check_leaf``/``check_node``: nritems, item offsets, key order),
    fs/btrfs/ctree.c (``btrfs_search_slot``: keys are ordered by (objectid, type, offset)).

Every block is verified before use: the header's ``bytenr`` must be the address
it was read from, its ``fsid`` the filesystem's, its checksum must match, its
level must be one below its parent's, ``nritems`` must fit, keys must ascend and
leaf item data must lie inside the block.  A block that fails on one copy is
read again from the next copy (DUP/RAID1).  Each walk keeps a visited set and a
node counter (``Limits.max_tree_nodes``), and a root deeper than
``Limits.max_tree_depth`` is refused.
"""

from __future__ import annotations

import bisect
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from virtkit.boot.fs.btrfs.chunks import ChunkMap, MissingDevice
from virtkit.boot.fs.btrfs.structs import (
    BTRFS_CSUM_SIZE,
    BTRFS_HEADER,
    BTRFS_ITEM_FMT,
    BTRFS_ITEM_SIZE,
    BTRFS_KEY_PTR_FMT,
    BTRFS_KEY_PTR_SIZE,
)
from virtkit.errors import CorruptStructure, ImageError, LimitExceeded, VirtkitError
from virtkit.limits import Limits

__all__ = ["Item", "Key", "TreeNode", "TreeReader", "TreeRoot"]

Key = tuple[int, int, int]  # (objectid, type, offset): btrfs key order is tuple order

_HEADER_SIZE = BTRFS_HEADER.size
_ITEM = struct.Struct(BTRFS_ITEM_FMT)
_KEY_PTR = struct.Struct(BTRFS_KEY_PTR_FMT)
_CACHE_NODES = 2048


@dataclass(frozen=True, slots=True)
class TreeRoot:
    """Where a tree starts: its root block and that block's level."""

    bytenr: int
    level: int
    name: str  # "root tree", "fs tree 5", "chunk tree" (for messages)


@dataclass(frozen=True, slots=True)
class Item:
    """A leaf item: its key and data, plus where it lives (for messages)."""

    key: Key
    data: bytes
    leaf: int  # logical address of the leaf


class TreeNode:
    """A verified tree block: keys, and child pointers (internal) or item data (leaf)."""

    __slots__ = ("bytenr", "children", "generation", "keys", "level", "owner", "raw", "spans")

    def __init__(self, bytenr: int, level: int, *, owner: int, generation: int, keys: list[Key], raw: bytes) -> None:
        self.bytenr = bytenr
        self.level = level
        self.owner = owner
        self.generation = generation
        self.keys = keys
        self.raw = raw
        self.children: list[int] = []
        self.spans: list[tuple[int, int]] = []  # leaf: (start, end) of each item's data in raw

    def item(self, i: int) -> Item:
        start, end = self.spans[i]
        return Item(self.keys[i], self.raw[start:end], self.bytenr)


class TreeReader:
    """Reads, verifies and caches tree blocks; searches trees by key range.

    Args:
        chunks: the logical address space.
        nodesize: ``btrfs_super_block.nodesize``.
        sectorsize: ``btrfs_super_block.sectorsize`` (blocks are aligned to it).
        fsid: the fsid every header must carry (``metadata_uuid`` when set).
        csum: the digest function; ``csum_size`` bytes of it are compared.
        csum_size: digest bytes stored.
        limits: bounds.
        where: "btrfs on disk0p2".
    """

    def __init__(
        self,
        chunks: ChunkMap,
        *,
        nodesize: int,
        sectorsize: int,
        fsid: bytes,
        csum: Callable[[bytes | memoryview], bytes],
        csum_size: int,
        limits: Limits,
        where: str,
    ) -> None:
        self.chunks = chunks
        self.nodesize = nodesize
        self.sectorsize = sectorsize
        self.fsid = fsid
        self.csum = csum
        self.csum_size = csum_size
        self.limits = limits
        self.where = where
        self._cache: OrderedDict[int, TreeNode] = OrderedDict()
        self.fallbacks: list[str] = []  # blocks that had to be read from a later copy

    # -- blocks ---------------------------------------------------------------

    def read_node(self, bytenr: int, *, level: int, tree: str) -> TreeNode:
        """The verified block at ``bytenr``, which must be at ``level``.

        Tries each copy of the block in turn; the first copy's error is raised if none verifies.

        Raises:
            CorruptStructure: no copy verifies.
            LimitExceeded: ``level`` over ``max_tree_depth``.
            ImageError: the block lives only on devices that were not given.
        """
        if level > self.limits.max_tree_depth:
            raise LimitExceeded("max_tree_depth", level, self.limits.max_tree_depth, f"btrfs {tree} block {bytenr:#x} on {self.where}")
        node = self._cache.get(bytenr)
        if node is not None:
            self._cache.move_to_end(bytenr)
            if node.level != level:
                raise CorruptStructure(f"btrfs {tree} block on {self.where}", "unexpected level", offset=bytenr, expected=level, got=node.level)
            return node
        if bytenr % self.sectorsize or bytenr == 0:
            raise CorruptStructure(f"btrfs {tree} block on {self.where}", "unaligned block address", offset=bytenr)
        copies = self.chunks.copies(bytenr)
        first: VirtkitError | None = None
        for mirror in range(copies):
            try:
                raw = self.chunks.read(bytenr, self.nodesize, mirror=mirror)
                node = self._parse(bytenr, raw, level, tree)
            except (CorruptStructure, ImageError) as exc:
                if first is None or (isinstance(first, MissingDevice) and not isinstance(exc, MissingDevice)):
                    first = exc
                continue
            if first is not None and not isinstance(first, MissingDevice):  # a bad copy, not just an absent device
                self.fallbacks.append(f"{tree} block {bytenr:#x}: copy 0 bad ({first}); used copy {mirror}")
            self._cache[bytenr] = node
            if len(self._cache) > _CACHE_NODES:
                self._cache.popitem(last=False)
            return node
        assert first is not None
        raise first

    def _parse(self, bytenr: int, raw: bytes, level: int, tree: str) -> TreeNode:
        what = f"btrfs {tree} block on {self.where}"
        h = BTRFS_HEADER.parse(raw, 0, where=self.where)
        if h.bytenr != bytenr:
            raise CorruptStructure(what, "header bytenr does not match its address", offset=bytenr, expected=bytenr, got=h.bytenr)
        if bytes(h.fsid) != self.fsid:
            raise CorruptStructure(what, "header fsid is not this filesystem's", offset=bytenr, expected=self.fsid.hex(), got=bytes(h.fsid).hex())
        want = self.csum(memoryview(raw)[BTRFS_CSUM_SIZE:])
        if bytes(h.csum[: self.csum_size]) != want:
            raise CorruptStructure(what, "checksum mismatch", offset=bytenr, expected="0x" + want.hex(), got="0x" + bytes(h.csum[: self.csum_size]).hex())
        if h.level != level:
            raise CorruptStructure(what, "unexpected level", offset=bytenr, expected=level, got=h.level)
        n = h.nritems
        room = self.nodesize - _HEADER_SIZE
        entry = BTRFS_KEY_PTR_SIZE if level else BTRFS_ITEM_SIZE
        if n * entry > room:
            raise CorruptStructure(what, f"nritems {n} does not fit in a {self.nodesize}-byte block", offset=bytenr, expected=f"<= {room // entry}", got=n)
        if level and n == 0:
            raise CorruptStructure(what, "internal node with no items", offset=bytenr)
        keys: list[Key] = []
        node = TreeNode(bytenr, level, owner=h.owner, generation=h.generation, keys=keys, raw=raw)
        region = memoryview(raw)[_HEADER_SIZE : _HEADER_SIZE + n * entry]
        if level:
            for objectid, typ, offset, blockptr, _gen in _KEY_PTR.iter_unpack(region):
                keys.append((objectid, typ, offset))
                node.children.append(blockptr)
        else:
            floor = n * BTRFS_ITEM_SIZE  # item data may not overlap the item headers
            for i, (objectid, typ, offset, data_off, data_size) in enumerate(_ITEM.iter_unpack(region)):
                if data_off < floor or data_off + data_size > room:
                    raise CorruptStructure(
                        what,
                        f"item {i} data {data_off:#x}+{data_size:#x} lies outside the leaf's data area {floor:#x}..{room:#x}",
                        offset=bytenr,
                    )
                keys.append((objectid, typ, offset))
                node.spans.append((_HEADER_SIZE + data_off, _HEADER_SIZE + data_off + data_size))
        for i in range(1, n):
            if keys[i - 1] >= keys[i]:
                raise CorruptStructure(what, f"keys not in ascending order at slot {i}", offset=bytenr, got=f"{keys[i - 1]} >= {keys[i]}")
        return node

    # -- searching ------------------------------------------------------------

    def search(self, root: TreeRoot, lo: Key, hi: Key) -> Iterator[Item]:
        """Items with ``lo <= key <= hi``, in key order.

        Raises:
            CorruptStructure: a bad block or a block met twice (a loop).
            LimitExceeded: ``max_tree_depth`` or ``max_tree_nodes``.
        """
        state = _Walk(self.limits, self.where, root.name)
        yield from self._walk(root.bytenr, root.level, lo, hi, tree=root.name, state=state)

    def _walk(self, bytenr: int, level: int, lo: Key, hi: Key, *, tree: str, state: _Walk) -> Iterator[Item]:
        state.enter(bytenr)
        node = self.read_node(bytenr, level=level, tree=tree)
        keys = node.keys
        if level == 0:
            i = bisect.bisect_left(keys, lo)
            n = len(keys)
            while i < n and keys[i] <= hi:
                yield node.item(i)
                i += 1
            return
        i = max(bisect.bisect_right(keys, lo) - 1, 0)
        n = len(keys)
        while i < n and keys[i] <= hi:
            yield from self._walk(node.children[i], level - 1, lo, hi, tree=tree, state=state)
            i += 1

    def first(self, root: TreeRoot, lo: Key, hi: Key) -> Item | None:
        """The first item in ``[lo, hi]``, or None."""
        for item in self.search(root, lo, hi):
            return item
        return None

    def last(self, root: TreeRoot, lo: Key, hi: Key) -> Item | None:
        """The last item in ``[lo, hi]``, or None (walks the range: use on small ranges)."""
        found: Item | None = None
        for item in self.search(root, lo, hi):
            found = item
        return found


class _Walk:
    """Per-walk loop guard: a visited set and a node counter."""

    __slots__ = ("count", "limits", "tree", "visited", "where")

    def __init__(self, limits: Limits, where: str, tree: str) -> None:
        self.limits = limits
        self.where = where
        self.tree = tree
        self.visited: set[int] = set()
        self.count = 0

    def enter(self, bytenr: int) -> None:
        if bytenr in self.visited:
            raise CorruptStructure(f"btrfs {self.tree} on {self.where}", "tree loop: block reached twice in one walk", offset=bytenr)
        self.visited.add(bytenr)
        self.count += 1
        if self.count > self.limits.max_tree_nodes:
            raise LimitExceeded("max_tree_nodes", self.count, self.limits.max_tree_nodes, f"btrfs {self.tree} on {self.where}")
