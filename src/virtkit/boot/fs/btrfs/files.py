"""A btrfs file's bytes: EXTENT_DATA items -> one bounded :class:`ByteSource`.

References:
    include/uapi/linux/btrfs_tree.h (``btrfs_file_extent_item``),
    fs/btrfs/inode.c (``btrfs_get_extent``: inline extents, holes with and
    without the NO_HOLES feature, ``disk_bytenr == 0`` as a hole),
    fs/btrfs/file-item.c and fs/btrfs/tree-checker.c (``check_extent_data_item``:
    ``offset``/``num_bytes`` inside the extent, compressed extents at most
    ``BTRFS_MAX_UNCOMPRESSED``).

A file is a :class:`~virtkit._streams.MappedSource` over runs:

* regular, uncompressed: ``num_bytes`` from logical ``disk_bytenr + offset``
  (read through the chunk map, so any RAID profile works);
* regular, compressed: ``[offset, offset + num_bytes)`` of the extent's
  decompressed bytes (decompressed on first touch; a small cache keeps the
  last few extents);
* inline: the item's bytes (decompressed if need be);
* prealloc extents, ``disk_bytenr == 0`` and missing ranges (NO_HOLES): zeros.
"""

from __future__ import annotations

from collections import OrderedDict

from virtkit._streams import ByteSource, BytesSource, MappedSource, Run, check_range
from virtkit.boot.fs.btrfs.chunks import ChunkMap, LogicalSource
from virtkit.boot.fs.btrfs.compression import decompress_extent
from virtkit.boot.fs.btrfs.items import FileExtent, parse_file_extent
from virtkit.boot.fs.btrfs.structs import (
    BTRFS_COMPRESS_NONE,
    BTRFS_EXTENT_DATA_KEY,
    BTRFS_FILE_EXTENT_INLINE,
    BTRFS_FILE_EXTENT_PREALLOC,
    BTRFS_MAX_UNCOMPRESSED,
    COMPRESSION_NAMES,
    U64_MAX,
)
from virtkit.boot.fs.btrfs.tree import TreeReader, TreeRoot
from virtkit.errors import CorruptStructure, UnsupportedFeature
from virtkit.limits import Limits

__all__ = ["ExtentReader"]

_CACHED_EXTENTS = 16  # decompressed extents kept (16 x 128 KiB)


class ExtentReader:
    """Builds file sources for one filesystem and caches decompressed extents.

    Args:
        tree: the tree reader (for EXTENT_DATA items).
        chunks: the logical address space.
        sectorsize: the filesystem's sector size.
        limits: bounds (``max_extents``, ``max_file_bytes``).
        where: "btrfs on disk0p2".
    """

    def __init__(self, tree: TreeReader, chunks: ChunkMap, *, sectorsize: int, limits: Limits, where: str) -> None:
        self.tree = tree
        self.chunks = chunks
        self.logical = LogicalSource(chunks)
        self.sectorsize = sectorsize
        self.limits = limits
        self.where = where
        self._cache: OrderedDict[tuple[int, int, int, int], bytes] = OrderedDict()

    def open(self, root: TreeRoot, ino: int, size: int, name: str) -> ByteSource:
        """The bytes of inode ``ino`` (``size`` from its inode item).

        Raises:
            LimitExceeded: ``size`` over ``max_file_bytes`` or more than ``max_extents`` extents.
            CorruptStructure: overlapping or out-of-range extents, bad compressed data (on read).
            UnsupportedFeature: encrypted or otherwise encoded extents.
        """
        limits = self.limits
        limits.check("max_file_bytes", size, name)
        runs: list[Run] = []
        prev_end = 0
        count = 0
        for item in self.tree.search(root, (ino, BTRFS_EXTENT_DATA_KEY, 0), (ino, BTRFS_EXTENT_DATA_KEY, U64_MAX)):
            count += 1
            limits.check("max_extents", count, name)
            fe = parse_file_extent(item, self.where)
            what = f"btrfs extent at file offset {fe.file_offset:#x} of {name}"
            if fe.encryption or fe.other_encoding:
                raise UnsupportedFeature(f"{what}: encrypted or encoded extents are not supported")
            if fe.compression not in COMPRESSION_NAMES:
                raise UnsupportedFeature(f"{what}: unknown compression type {fe.compression}")
            if fe.file_offset < prev_end:
                raise CorruptStructure(what, "overlaps the previous extent", expected=f">= {prev_end:#x}", got=fe.file_offset)
            run, length = self._run(fe, what)
            prev_end = fe.file_offset + length
            if run is None or fe.file_offset >= size:
                continue
            clip = min(run.length, size - fe.file_offset)
            runs.append(Run(run.start, clip, run.source, run.source_offset))
        return MappedSource(size, runs, name, max_runs=limits.max_extents)

    def _run(self, fe: FileExtent, what: str) -> tuple[Run | None, int]:
        """The run for one extent (None for a hole) and the file bytes it covers."""
        if fe.type == BTRFS_FILE_EXTENT_INLINE:
            data = fe.inline
            if fe.compression != BTRFS_COMPRESS_NONE:
                self._check_ram_bytes(fe, what)
                data = decompress_extent(fe.compression, data, fe.ram_bytes, sectorsize=self.sectorsize, what=what)
            return Run(fe.file_offset, len(data), BytesSource(data, what), 0), len(data)
        if fe.type == BTRFS_FILE_EXTENT_PREALLOC or fe.disk_bytenr == 0:
            return None, fe.num_bytes
        if fe.compression == BTRFS_COMPRESS_NONE:
            if fe.offset + fe.num_bytes > fe.disk_num_bytes:
                raise CorruptStructure(what, f"offset {fe.offset:#x} + num_bytes {fe.num_bytes:#x} runs past the extent", expected=f"<= {fe.disk_num_bytes:#x}", got=fe.offset + fe.num_bytes)
            return Run(fe.file_offset, fe.num_bytes, self.logical, fe.disk_bytenr + fe.offset), fe.num_bytes
        self._check_ram_bytes(fe, what)
        if fe.disk_num_bytes == 0 or fe.disk_num_bytes > BTRFS_MAX_UNCOMPRESSED:
            raise CorruptStructure(what, "compressed disk_num_bytes out of range", expected=f"1..{BTRFS_MAX_UNCOMPRESSED:#x}", got=fe.disk_num_bytes)
        if fe.offset + fe.num_bytes > fe.ram_bytes:
            raise CorruptStructure(what, f"offset {fe.offset:#x} + num_bytes {fe.num_bytes:#x} runs past ram_bytes", expected=f"<= {fe.ram_bytes:#x}", got=fe.offset + fe.num_bytes)
        src = _CompressedExtent(self, fe, what)
        return Run(fe.file_offset, fe.num_bytes, src, fe.offset), fe.num_bytes

    def _check_ram_bytes(self, fe: FileExtent, what: str) -> None:
        if fe.ram_bytes == 0 or fe.ram_bytes > BTRFS_MAX_UNCOMPRESSED:
            raise CorruptStructure(what, "compressed ram_bytes out of range", expected=f"1..{BTRFS_MAX_UNCOMPRESSED:#x}", got=fe.ram_bytes)

    def decompressed(self, fe: FileExtent, what: str) -> bytes:
        """The whole decompressed extent (cached)."""
        key = (fe.disk_bytenr, fe.disk_num_bytes, fe.compression, fe.ram_bytes)
        data = self._cache.get(key)
        if data is not None:
            self._cache.move_to_end(key)
            return data
        raw = self.chunks.read(fe.disk_bytenr, fe.disk_num_bytes)
        data = decompress_extent(fe.compression, raw, fe.ram_bytes, sectorsize=self.sectorsize, what=what)
        self._cache[key] = data
        if len(self._cache) > _CACHED_EXTENTS:
            self._cache.popitem(last=False)
        return data


class _CompressedExtent:
    """One compressed extent's decompressed bytes as a ByteSource (decompressed on first read)."""

    def __init__(self, reader: ExtentReader, fe: FileExtent, what: str) -> None:
        self.reader = reader
        self.fe = fe
        self.name = f"{what} ({COMPRESSION_NAMES[fe.compression]} at {fe.disk_bytenr:#x})"
        self.size = fe.ram_bytes

    def pread(self, offset: int, length: int) -> bytes:
        check_range(self.name, self.size, offset, length)
        data = self.reader.decompressed(self.fe, self.name)
        return data[offset : offset + length]
