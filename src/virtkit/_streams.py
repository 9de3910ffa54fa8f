"""Read-only, bounds-checked byte sources: the one I/O interface of the boot pipeline.

Every stage speaks :class:`ByteSource`: an image is one, a partition is a
window into one, an LVM logical volume is a mapping over several, and a file
inside a filesystem is a mapping of extents.  So each stage can hand its
result to the next unchanged.

A source has a fixed ``size`` and one method, ``pread(offset, length)``, which
returns *exactly* ``length`` bytes or raises: a read that would cross the end
is a :class:`~virtkit.errors.CorruptStructure` naming the source, because on a
guest image it always means some on-disk pointer or length lied.

Nothing here ever writes.  :class:`FileSource` uses :func:`os.pread` on a
descriptor the caller opened read-only.

Window and mapping diagrams::

    RangeSource(parent, start=S, size=N)

        parent: |.........|<------ N ------>|..........|
                          S
        self:             |0            N-1|

    MappedSource(size, runs)       (gaps between runs read as zeros)

        self:   |run A ...|   hole   |run B ...........|
                    |                     |
                    v                     v
               source_a @ off_a      source_b @ off_b
"""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from virtkit.errors import CorruptStructure, InternalError, LimitExceeded

__all__ = [
    "BlockSource",
    "ByteSource",
    "BytesSource",
    "FileSource",
    "MappedSource",
    "RangeSource",
    "Run",
    "SourceReader",
    "check_range",
    "iter_chunks",
    "read_all",
]

CHUNK = 1 << 20  # default chunk for streaming copies


@runtime_checkable
class ByteSource(Protocol):
    """A read-only, fixed-size sequence of bytes.

    Attributes:
        name: a short human description used in error messages ("disk0", "hd0,msdos1",
            "vg0/root", "ext4:/boot/vmlinuz").
        size: number of bytes; reads never go past it.
    """

    name: str
    size: int

    def pread(self, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes starting at ``offset``.

        Raises:
            CorruptStructure: the range is negative or crosses ``size``.
        """
        ...


def check_range(src_name: str, size: int, offset: int, length: int) -> None:
    """Raise CorruptStructure unless ``[offset, offset+length)`` lies inside ``[0, size)``."""
    if offset < 0 or length < 0 or offset + length > size:
        raise CorruptStructure(
            src_name,
            f"read of {length} bytes at offset {offset:#x} is outside the {size:#x}-byte extent",
        )


class _Base:
    """Shared bounds check; subclasses implement ``_pread`` for in-range requests."""

    name: str
    size: int

    def pread(self, offset: int, length: int) -> bytes:
        check_range(self.name, self.size, offset, length)
        if length == 0:
            return b""
        return self._pread(offset, length)

    def _pread(self, offset: int, length: int) -> bytes:  # pragma: no cover - abstract
        raise InternalError(f"{type(self).__name__} does not implement _pread")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} size={self.size:#x}>"


class FileSource(_Base):
    """A regular file or block device, read with :func:`os.pread`.

    The descriptor is borrowed: the caller opened it read-only and closes it.

    Args:
        fd: an open descriptor.
        name: description for errors.
        size: byte size; if None it is taken from seeking to the end (works for block
            devices, unlike ``fstat``).
    """

    def __init__(self, fd: int, name: str, size: int | None = None) -> None:
        self.fd = fd
        self.name = name
        self.size = os.lseek(fd, 0, os.SEEK_END) if size is None else size

    def _pread(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) == length:
            return data
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(self.fd, length - got, offset + got)
            if not more:
                raise CorruptStructure(self.name, f"file ended early at {offset + got:#x} (did it shrink?)")
            parts.append(more)
            got += len(more)
        return b"".join(parts)


class BytesSource(_Base):
    """An in-memory source (decompressed data, test fixtures, inline file data)."""

    def __init__(self, data: bytes, name: str = "<memory>") -> None:
        self.data = bytes(data)
        self.name = name
        self.size = len(self.data)

    def _pread(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


class RangeSource(_Base):
    """A window ``[start, start+size)`` of a parent source (a partition, a PV data area).

    Raises:
        CorruptStructure: the window does not fit inside the parent.
    """

    def __init__(self, parent: ByteSource, start: int, size: int, name: str) -> None:
        if start < 0 or size < 0 or start + size > parent.size:
            raise CorruptStructure(
                name,
                f"extent {start:#x}+{size:#x} lies outside {parent.name} (size {parent.size:#x})",
            )
        # Collapse nested windows so deep stacks cost one pread.
        while isinstance(parent, RangeSource):
            start += parent.start
            parent = parent.parent
        self.parent: ByteSource = parent
        self.start: int = start
        self.size = size
        self.name = name

    def _pread(self, offset: int, length: int) -> bytes:
        return self.parent.pread(self.start + offset, length)


@dataclass(frozen=True, slots=True)
class Run:
    """``length`` bytes at logical ``start`` come from ``source`` at ``source_offset``.

    ``source`` None means a hole (zeros): sparse files, unwritten extents.
    """

    start: int
    length: int
    source: ByteSource | None
    source_offset: int = 0


class MappedSource(_Base):
    """A logical byte space stitched from runs; gaps read as zeros.

    Used for LVM linear segments, file extents and block maps.  Runs are checked
    once at construction: sorted, non-overlapping, inside ``size`` and inside their
    sources.

    Raises:
        CorruptStructure: overlapping runs, a run outside ``size`` or outside its source.
        LimitExceeded: more than ``max_runs`` runs.
    """

    def __init__(self, size: int, runs: Iterable[Run], name: str, *, max_runs: int = 1_000_000) -> None:
        self.name = name
        self.size = size
        ordered = sorted((r for r in runs if r.length > 0), key=lambda r: r.start)
        if len(ordered) > max_runs:
            raise LimitExceeded("max_extents", len(ordered), max_runs, name)
        end = 0
        for r in ordered:
            if r.start < end:
                raise CorruptStructure(name, f"overlapping mappings at logical offset {r.start:#x}")
            if r.start + r.length > size:
                raise CorruptStructure(name, f"mapping {r.start:#x}+{r.length:#x} is beyond the size {size:#x}")
            if r.source is not None and (r.source_offset < 0 or r.source_offset + r.length > r.source.size):
                raise CorruptStructure(
                    name,
                    f"mapping {r.start:#x}+{r.length:#x} points at {r.source_offset:#x}, "
                    f"outside {r.source.name} (size {r.source.size:#x})",
                )
            end = r.start + r.length
        self.runs: list[Run] = ordered
        self._starts = [r.start for r in ordered]

    def _pread(self, offset: int, length: int) -> bytes:
        runs = self.runs
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0:
            r = runs[i]
            if r.source is not None and offset + length <= r.start + r.length:
                # Fast path (most reads of a file): inside one run, one pread and no copy.
                return r.source.pread(r.source_offset + (offset - r.start), length)
        # Across runs and holes: one pread per run, zeros for gaps, one join (one copy).
        parts: list[bytes] = []
        pos = offset
        stop = offset + length
        i = max(i, 0)
        while pos < stop:
            run = runs[i] if i < len(runs) else None
            if run is not None and run.start + run.length <= pos:
                i += 1
                continue
            if run is None or run.start >= stop:
                parts.append(bytes(stop - pos))
                break
            if run.start > pos:
                parts.append(bytes(run.start - pos))
                pos = run.start
            hi = min(stop, run.start + run.length)
            if run.source is not None:
                parts.append(run.source.pread(run.source_offset + (pos - run.start), hi - pos))
            else:
                parts.append(bytes(hi - pos))
            pos = hi
            i += 1
        return b"".join(parts)


class BlockSource(_Base):
    """Base for sources naturally read in fixed blocks (qcow2 clusters, compressed chunks).

    Subclasses implement :meth:`_read_blocks` returning the bytes of ``count`` blocks from
    ``index`` (they may merge contiguous blocks into one read).  The last block may be
    partial when ``size`` is not a multiple of ``block_size``.
    """

    block_size: int

    def _read_blocks(self, index: int, count: int) -> bytes:  # pragma: no cover - abstract
        raise InternalError(f"{type(self).__name__} does not implement _read_blocks")

    def _pread(self, offset: int, length: int) -> bytes:
        bs = self.block_size
        first = offset // bs
        last = (offset + length - 1) // bs
        data = self._read_blocks(first, last - first + 1)
        skip = offset - first * bs
        return data[skip : skip + length]


def iter_chunks(src: ByteSource, *, chunk: int = CHUNK, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Yield the bytes of ``src`` (or a range of it) in chunks of at most ``chunk`` bytes."""
    end = src.size if length is None else start + length
    check_range(src.name, src.size, start, end - start)
    pos = start
    while pos < end:
        n = min(chunk, end - pos)
        yield src.pread(pos, n)
        pos += n


def read_all(src: ByteSource, *, limit: int, limit_name: str = "max_read") -> bytes:
    """Read a whole source, refusing sources larger than ``limit`` bytes.

    Raises:
        LimitExceeded: ``src.size`` > ``limit``.
    """
    if src.size > limit:
        raise LimitExceeded(limit_name, src.size, limit, src.name)
    return src.pread(0, src.size)


class SourceReader(io.RawIOBase):
    """A sequential, read-only file object over a ByteSource (for copying, hashing, zlib)."""

    def __init__(self, src: ByteSource) -> None:
        super().__init__()
        self._src = src
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._src.size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._src.size - self._pos))
        if n == 0:
            return 0
        view[:n] = self._src.pread(self._pos, n)
        self._pos += n
        return n
