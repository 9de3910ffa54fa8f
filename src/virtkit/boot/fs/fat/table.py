"""The File Allocation Table: cluster chains, walked with bounds, merged into runs.

A chain is followed from a directory entry's first cluster until an
end-of-chain mark.  Every link is checked: free (0), reserved (1), "bad
cluster" and out-of-range values inside a chain are :class:`CorruptStructure`;
a file's chain may not be shorter or longer than its size says; a directory's
chain is followed with a visited set, and every chain with a counter bounded by
``Limits.max_chain_length`` - so a cyclic FAT can never hang the reader.

Contiguous clusters are merged into runs, so reading a file is one
``pread`` per fragment instead of one per cluster.

References:
    Microsoft fatgen103, section 4 ("FAT Data Structure": entry values, EOC and
    BAD CLUSTER marks, FAT12 packing).
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict

from virtkit._streams import ByteSource
from virtkit.boot.fs.fat.bpb import FatGeometry
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = ["ClusterRun", "FatTable"]

ClusterRun = tuple[int, int]  # (first cluster, number of contiguous clusters)

# fatgen103 section 4: values >= EOC mark end a chain; BAD marks a bad cluster.
_EOC = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}
_BAD = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}
_CHUNK_ENTRIES = 16384  # FAT entries decoded per cached chunk (64 KiB of FAT32)
_CACHE_CHUNKS = 64  # at most 4 MiB of decoded FAT32 kept


class FatTable:
    """Reads FAT entries on demand (chunked, LRU-cached) and walks chains.

    Args:
        source: the volume.
        geometry: from :func:`~virtkit.boot.fs.fat.bpb.parse_boot_sector`.
        limits: ``max_chain_length`` bounds every chain.
    """

    def __init__(self, source: ByteSource, geometry: FatGeometry, *, limits: Limits) -> None:
        self.source = source
        self.g = geometry
        self.limits = limits
        self.what = f"FAT{geometry.fat_type} table on {source.name}"
        self._eoc = _EOC[geometry.fat_type]
        self._bad = _BAD[geometry.fat_type]
        self._chunks: OrderedDict[int, tuple[array[int], array[int]]] = OrderedDict()
        self._fat12: bytes | None = None

    # -- entries -------------------------------------------------------------------

    def entry(self, cluster: int) -> int:
        """The FAT entry of ``cluster`` (0 .. max_cluster), masked to its width."""
        g = self.g
        if g.fat_type == 12:
            if self._fat12 is None:
                need = ((g.cluster_count + 2) * 3 + 1) // 2
                self._fat12 = self.source.pread(g.fat_offset, need)
            off = cluster + cluster // 2
            fat = self._fat12
            pair = fat[off] | (fat[off + 1] << 8)  # the FAT12 read covers entry max_cluster + 1
            return (pair >> 4) if cluster & 1 else (pair & 0xFFF)
        index, slot = divmod(cluster, _CHUNK_ENTRIES)
        value = self._chunk(index)[0][slot]
        return value & 0x0FFFFFFF if g.fat_type == 32 else value

    def _chunk(self, index: int) -> tuple[array[int], array[int]]:
        """Entries ``index * CHUNK ..`` decoded, and the values a contiguous chain would hold there."""
        cached = self._chunks.get(index)
        if cached is not None:
            self._chunks.move_to_end(index)
            return cached
        g = self.g
        width = g.fat_type // 8
        first = index * _CHUNK_ENTRIES
        count = min(_CHUNK_ENTRIES, g.cluster_count + 2 - first)
        raw = self.source.pread(g.fat_offset + first * width, count * width)
        narrow = array("H" if width == 2 else "I")
        if narrow.itemsize != width:  # pragma: no cover - platforms with a 2-byte int
            narrow = array("L")
        narrow.frombytes(raw)
        if sys.byteorder == "big":  # pragma: no cover - FAT is little-endian
            narrow.byteswap()
        entries = narrow if narrow.typecode == "I" else array("I", narrow)
        # entry[c] == c + 1 all along a contiguous chain: compare slices against this, in C.
        expected = array("I", range(first + 1, first + 1 + count))
        self._chunks[index] = (entries, expected)
        if len(self._chunks) > _CACHE_CHUNKS:
            self._chunks.popitem(last=False)
        return entries, expected

    def _contiguous(self, cur: int, limit: int) -> int:
        """How many links from ``cur`` on (at most ``limit``) go to the very next cluster.

        Returns k such that ``entry(cur + i) == cur + i + 1`` for every ``i < k``.  This is
        the hot path of reading a file: whole slices of the FAT are compared at C speed.
        """
        limit = min(limit, self.g.max_cluster - cur)  # a link to max_cluster + 1 is out of range
        if self.g.fat_type == 12:
            k = 0
            while k < limit and self.entry(cur + k) == cur + k + 1:
                k += 1
            return k
        k = 0
        while k < limit:
            index, slot = divmod(cur + k, _CHUNK_ENTRIES)
            entries, expected = self._chunk(index)
            span = min(limit - k, len(entries) - slot)
            if span <= 0:
                break
            if entries[slot : slot + span] == expected[slot : slot + span]:
                k += span
                continue
            lo, hi = 0, span  # the longest equal prefix (equality of prefixes is monotone)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if entries[slot : slot + mid] == expected[slot : slot + mid]:
                    lo = mid
                else:
                    hi = mid - 1
            return k + lo
        return k

    # -- chains --------------------------------------------------------------------

    def _check_link(self, value: int, prev: int, what: str) -> None:
        if value == 0:
            raise CorruptStructure(what, f"cluster chain reaches a free cluster after cluster {prev}")
        if value == 1:
            raise CorruptStructure(what, f"cluster chain reaches the reserved value 1 after cluster {prev}")
        if value == self._bad:
            raise CorruptStructure(what, f"cluster chain reaches a bad-cluster mark after cluster {prev}")
        raise CorruptStructure(
            what,
            f"cluster chain points outside the volume after cluster {prev}",
            expected=f"2..{self.g.max_cluster}",
            got=value,
        )

    def check_first(self, first: int, what: str) -> None:
        """Raise CorruptStructure unless ``first`` is a valid data cluster number."""
        if not 2 <= first <= self.g.max_cluster:
            raise CorruptStructure(
                what, "first cluster is outside the volume", expected=f"2..{self.g.max_cluster}", got=first
            )

    def file_runs(self, first: int, size: int, what: str) -> list[ClusterRun]:
        """The runs holding a file of ``size`` bytes that starts at cluster ``first``.

        The chain must have exactly ``ceil(size / cluster_size)`` clusters: one that
        ends early or goes on past the file (a cycle, or cross-linked files) is
        corrupt.  The walk is bounded by the file's own cluster count.

        Raises:
            CorruptStructure: a bad link, a short or overlong chain.
            LimitExceeded: more than ``max_chain_length`` clusters.
        """
        need = -(-size // self.g.cluster_size)
        if need == 0:
            return []
        self.limits.check("max_chain_length", need, what)
        self.check_first(first, what)
        runs: list[ClusterRun] = []
        start = cur = first
        length = 1
        n = 1  # clusters of the chain seen so far (cur is the n-th)
        eoc, hi = self._eoc, self.g.max_cluster
        while True:
            if n < need:
                step = self._contiguous(cur, need - n)
                if step:
                    cur += step
                    n += step
                    length += step
                    continue
            nxt = self.entry(cur)
            if n == need:
                if nxt < eoc:
                    raise CorruptStructure(
                        what,
                        f"cluster chain goes on after the {need} clusters of the file "
                        f"(cluster {cur} links to {nxt}: a cycle or cross-linked chain)",
                    )
                break
            if nxt >= eoc:
                raise CorruptStructure(
                    what, "cluster chain ends before the end of the file", expected=f"{need} clusters", got=n
                )
            if not 2 <= nxt <= hi:
                self._check_link(nxt, cur, what)
            if nxt == cur + 1:  # high reserved bits set on a FAT32 entry: not seen by _contiguous
                length += 1
            else:
                runs.append((start, length))
                start, length = nxt, 1
            cur = nxt
            n += 1
        runs.append((start, length))
        return runs

    def dir_runs(self, first: int, what: str) -> list[ClusterRun]:
        """The runs of a directory's chain (directories have no size: follow to EOC).

        Raises:
            CorruptStructure: a bad link or a cycle.
            LimitExceeded: more than ``max_chain_length`` clusters.
        """
        self.check_first(first, what)
        seen: set[int] = {first}
        runs: list[ClusterRun] = []
        start = cur = first
        length = 1
        eoc, hi = self._eoc, self.g.max_cluster
        while True:
            nxt = self.entry(cur)
            if nxt >= eoc:
                break
            if not 2 <= nxt <= hi:
                self._check_link(nxt, cur, what)
            if nxt in seen:
                raise CorruptStructure(what, f"cyclic cluster chain: cluster {cur} links back to {nxt}")
            seen.add(nxt)
            self.limits.check("max_chain_length", len(seen), what)
            if nxt == cur + 1:
                length += 1
            else:
                runs.append((start, length))
                start, length = nxt, 1
            cur = nxt
        runs.append((start, length))
        return runs
