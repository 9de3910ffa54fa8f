"""Our own qcow2 (v2 and v3) reader: the virtual disk of a qcow2 file as a ByteSource.

A guest offset is found through two tables::

    guest offset -> l1_index = offset >> (cluster_bits + l2_bits)
                    l2_index = (offset >> cluster_bits) & (l2_entries - 1)
                 -> L1[l1_index]  = host offset of an L2 table (0: unallocated)
                 -> L2[l2_index]  = cluster descriptor:
                        bit 62 set          compressed cluster (deflate or zstd)
                        bit 0 set           reads as zeros (not with extended L2)
                        offset 0            unallocated: backing file, or zeros
                        otherwise           data at host offset (+ offset in cluster)
                    extended L2: a second word holds 32 "allocated" and 32
                    "reads as zero" bits, one per subcluster.

Reading is built for sequential throughput: one request walks the L2 entries
it covers once, merges clusters that are contiguous on the host into a single
``pread``, and returns the host bytes unchanged when one run covers the whole
request.  L2 tables are cached in a bounded LRU, decompressed clusters in a
small one.  Refcount tables, snapshots and bitmaps are never read.

Refused, with a message that says why: encryption, external data files,
unknown incompatible features, and a backing file the operator did not name
(the path inside the image is guest-controlled; following it would read an
arbitrary host file).

References:
    QEMU ``docs/interop/qcow2.txt`` ("Cluster mapping", "Compressed Clusters
    Descriptor", "Extended L2 Entries").
    QEMU ``block/qcow2.h`` (facts only): how L2 entries are classified
    (``qcow2_get_cluster_type``/``qcow2_get_subcluster_type``) and the sanity
    checks applied when reading (unaligned offsets are corruption).
"""

from __future__ import annotations

import logging
import os
from array import array
from collections import OrderedDict
from typing import Any

from virtkit._streams import ByteSource, FileSource, check_range
from virtkit.boot.image._compress import decompress_deflate, decompress_zstd
from virtkit.boot.image._qcow2_header import (
    AUTOCLEAR_BITMAPS,
    COMPAT_LAZY_REFCOUNTS,
    COMPRESSION_NAMES,
    INCOMPAT_CORRUPT,
    INCOMPAT_DIRTY,
    QCOW2_MAGIC,
    V3_MIN_HEADER_LENGTH,
    Qcow2Header,
    be64_array,
    check_supported,
    guest_text,
    parse_qcow2_header,
    read_backing_name,
    read_l1_table,
)
from virtkit.errors import CorruptStructure, UnsupportedFeature, UsageError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["L2_CACHE_BYTES", "Qcow2Source", "open_qcow2"]

log = logging.getLogger(__name__)

# L1/L2 entry bits (qcow2.txt "Cluster mapping").
L1E_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00  # bits 9-55: L2 table offset
L2E_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00  # bits 9-55: host cluster offset
QCOW_OFLAG_COMPRESSED = 1 << 62  # L2 entry bit 62
QCOW_OFLAG_ZERO = 1 << 0  # standard cluster descriptor bit 0 (not with extended L2)
SUBCLUSTERS = 32  # qcow2.txt "Extended L2 Entries": 32 subclusters per cluster
SUB_ALL = 0xFFFF_FFFF
SECTOR = 512  # compressed sizes count 512-byte sectors; QEMU exposes size in whole sectors

L2_CACHE_BYTES = 32 << 20  # like QEMU's default l2-cache-size ceiling (32 MiB)
COMPRESSED_CACHE_BYTES = 4 << 20  # decompressed clusters kept for unaligned readers

# Kinds of a planned piece of a read.
_DATA, _BACKING, _COMPRESSED = 1, 2, 3


class Qcow2Source:
    """The virtual disk of one qcow2 image; a read-only :class:`ByteSource`.

    Build it with :func:`open_qcow2`.

    Attributes:
        name: the image's description in messages.
        size: the virtual disk size in bytes (whole 512-byte sectors, as QEMU).
        header: the parsed header.
        backing: the operator-named backing source, if any.
    """

    def __init__(
        self,
        file: ByteSource,
        header: Qcow2Header,
        l1: array[int],
        *,
        backing: ByteSource | None,
        backing_file_name: str | None,
        l2_cache_bytes: int = L2_CACHE_BYTES,
    ) -> None:
        self.name = file.name
        self.header = header
        self.size = header.size - header.size % SECTOR
        self.backing = backing
        self.backing_file_name = backing_file_name
        self._file = file
        self._fd = file.fd if isinstance(file, FileSource) else None
        self._file_size = file.size
        self._l1 = l1
        cb = header.cluster_bits
        self._cb = cb
        self._cs = 1 << cb
        self._ext = 1 if header.extended_l2 else 0  # log2 of words per L2 entry
        l2_bits = cb - 3 - self._ext
        self._l1_shift = cb + l2_bits
        self._l2_mask = (1 << l2_bits) - 1
        self._sc_bits = cb - (SUBCLUSTERS.bit_length() - 1)  # subcluster size = cluster / 32
        self._l2_cache: OrderedDict[int, tuple[int, array[int]]] = OrderedDict()
        self._l2_cache_max = max(2, l2_cache_bytes // self._cs)
        self._last_l1 = -1  # the most recent L2 table, checked before the LRU
        self._last_l2: tuple[int, array[int]] | None = None
        self._z_cache: OrderedDict[int, bytes] = OrderedDict()
        self._z_cache_max = max(2, COMPRESSED_CACHE_BYTES // self._cs)
        self._csize_shift = 62 - (cb - 8)  # qcow2.txt: x = 62 - (cluster_bits - 8)
        self._coffset_mask = (1 << self._csize_shift) - 1
        self._csize_mask = (1 << (cb - 8)) - 1
        self._zstd = header.compression_type == 1

    def __repr__(self) -> str:
        return f"<Qcow2Source {self.name!r} size={self.size:#x} cluster_size={self._cs}>"

    # -- public --------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        """Format facts for ``virtkit inspect`` (JSON-ready; guest strings sanitised)."""
        h = self.header
        out: dict[str, Any] = {
            "version": h.version,
            "cluster_size": h.cluster_size,
            "virtual_size": self.size,
            "compression_type": COMPRESSION_NAMES.get(h.compression_type, str(h.compression_type)),
            "extended_l2": h.extended_l2,
            "dirty": bool(h.incompatible_features & INCOMPAT_DIRTY),
            "corrupt": bool(h.incompatible_features & INCOMPAT_CORRUPT),
            "lazy_refcounts": bool(h.compatible_features & COMPAT_LAZY_REFCOUNTS),
            "refcount_order": h.refcount_order,
            "l1_size": h.l1_size,
            "nb_snapshots": h.nb_snapshots,
            "bitmaps": bool(h.autoclear_features & AUTOCLEAR_BITMAPS) or h.has_bitmaps_extension,
            "backing_file": self.backing_file_name,
            "backing_format": guest_text(h.backing_format) if h.backing_format is not None else None,
            "backing_used": self.backing.name if self.backing is not None else None,
        }
        if h.size != self.size:
            out["header_size"] = h.size
        return out

    def pread(self, offset: int, length: int) -> bytes:
        """Return exactly ``length`` bytes of the virtual disk from ``offset``.

        Raises:
            CorruptStructure: the range is outside the disk, or a table or
                cluster it needs is malformed (named with its file offset).
            UnsupportedFeature: a zstd cluster without a zstd module.
        """
        if offset < 0 or length <= 0 or offset + length > self.size:
            check_range(self.name, self.size, offset, length)  # raises unless length == 0
            return b""
        cs = self._cs
        inside = offset & (cs - 1)
        if inside + length <= cs and not self._ext:
            # Small reads inside one cluster (filesystem metadata): skip the planner
            # when the cluster is plain data.
            l2 = self._l2_table(offset >> self._l1_shift)
            if l2 is not None:
                word = (offset >> self._cb) & self._l2_mask
                entry = l2[1][word]
                host = entry & L2E_OFFSET_MASK
                if host and not entry & (QCOW_OFLAG_COMPRESSED | QCOW_OFLAG_ZERO):
                    self._check_host(host, l2[0], word)
                    if host + inside + length <= self._file_size:
                        return self._host_read(host + inside, length)
        plan = self._plan(offset, length)
        if not plan:
            return bytes(length)
        if len(plan) == 1:
            kind, g, n, h = plan[0][:4]
            if n == length and kind == _DATA and h + n <= self._file_size:
                return self._host_read(h, n)  # the common case: one contiguous run
        out = bytearray(length)
        view = memoryview(out)
        for piece in plan:
            kind, g, n, h = piece[:4]
            at = g - offset
            if kind == _DATA:
                self._read_into(view[at : at + n], h)
            elif kind == _BACKING:
                self._backing_into(view[at : at + n], g)
            else:
                cluster = self._compressed(h, piece[4], piece[5])
                skip = g & (self._cs - 1)
                view[at : at + n] = cluster[skip : skip + n]
        return bytes(out)

    # -- planning: L2 entries -> merged pieces -------------------------------

    def _plan(self, offset: int, length: int) -> list[list[int]]:
        """Turn a guest range into pieces ``[kind, guest, length, host, ...]``; zeros are left out."""
        plan: list[list[int]] = []
        cb, cs, ext = self._cb, self._cs, self._ext
        pos = offset
        end = offset + length
        while pos < end:
            l1_index = pos >> self._l1_shift
            span_end = min(end, (l1_index + 1) << self._l1_shift)
            l2 = self._l2_table(l1_index)
            if l2 is None:
                _add_backing(plan, pos, span_end - pos)
                pos = span_end
                continue
            l2_offset, table = l2
            while pos < span_end:
                cstart = pos & ~(cs - 1)
                hi = min(span_end, cstart + cs)
                word = ((pos >> cb) & self._l2_mask) << ext
                entry = table[word]
                if entry & QCOW_OFLAG_COMPRESSED:
                    plan.append([_COMPRESSED, pos, hi - pos, entry, l2_offset, word])
                elif ext:
                    self._plan_subclusters(
                        plan,
                        pos,
                        hi,
                        cstart=cstart,
                        entry=entry,
                        bitmap=table[word + 1],
                        l2_offset=l2_offset,
                        word=word,
                    )
                elif entry & QCOW_OFLAG_ZERO:
                    if entry & L2E_OFFSET_MASK:
                        self._check_host(entry & L2E_OFFSET_MASK, l2_offset, word, data=False)
                else:
                    host = entry & L2E_OFFSET_MASK
                    if host == 0:
                        _add_backing(plan, pos, hi - pos)
                    else:
                        self._check_host(host, l2_offset, word)
                        _add_data(plan, pos, hi - pos, host + (pos - cstart))
                pos = hi
        return plan

    def _plan_subclusters(
        self,
        plan: list[list[int]],
        pos: int,
        hi: int,
        *,
        cstart: int,
        entry: int,
        bitmap: int,
        l2_offset: int,
        word: int,
    ) -> None:
        """Plan one cluster of an image with extended L2 entries (32 subclusters)."""
        alloc = bitmap & SUB_ALL
        zero = (bitmap >> 32) & SUB_ALL
        host = entry & L2E_OFFSET_MASK
        if host == 0:
            if alloc:
                raise CorruptStructure(
                    f"qcow2 extended L2 entry {word >> 1} of {self.name}",
                    "unallocated cluster has allocated subclusters",
                    offset=l2_offset + word * 8,
                    got=alloc,
                )
        else:
            if alloc & zero:
                raise CorruptStructure(
                    f"qcow2 extended L2 entry {word >> 1} of {self.name}",
                    "subclusters marked both allocated and zero",
                    offset=l2_offset + word * 8,
                    got=alloc & zero,
                )
            self._check_host(host, l2_offset, word, data=bool(alloc))
            if alloc == SUB_ALL:
                _add_data(plan, pos, hi - pos, host + (pos - cstart))
                return
        if alloc == 0 and zero == 0:
            _add_backing(plan, pos, hi - pos)
            return
        sc_bits = self._sc_bits
        sc = (pos - cstart) >> sc_bits
        while pos < hi:
            sc_end = min(hi, cstart + ((sc + 1) << sc_bits))
            bit = 1 << sc
            if zero & bit:
                pass
            elif alloc & bit:
                _add_data(plan, pos, sc_end - pos, host + (pos - cstart))
            else:
                _add_backing(plan, pos, sc_end - pos)
            pos = sc_end
            sc += 1

    def _check_host(self, host: int, l2_offset: int, word: int, *, data: bool = True) -> None:
        """A host cluster must be cluster-aligned and, if read, start inside the file."""
        if host & (self._cs - 1):
            raise CorruptStructure(
                f"qcow2 L2 entry {word >> self._ext} of {self.name}",
                f"data cluster offset {host:#x} is not aligned to the {self._cs}-byte cluster size",
                offset=l2_offset + word * 8,
            )
        if data and host >= self._file_size:
            raise CorruptStructure(
                f"qcow2 L2 entry {word >> self._ext} of {self.name}",
                f"data cluster offset {host:#x} is past the end of the file ({self._file_size:#x})",
                offset=l2_offset + word * 8,
            )

    def _l2_table(self, l1_index: int) -> tuple[int, array[int]] | None:
        """The L2 table for ``l1_index`` (cached), or None if it is unallocated."""
        if l1_index == self._last_l1:
            return self._last_l2
        cached = self._l2_cache.get(l1_index)
        if cached is not None:
            self._l2_cache.move_to_end(l1_index)
            self._last_l1, self._last_l2 = l1_index, cached
            return cached
        l2_offset = self._l1[l1_index] & L1E_OFFSET_MASK
        if l2_offset == 0:
            return None
        where = self.header.l1_table_offset + l1_index * 8
        if l2_offset & (self._cs - 1):
            raise CorruptStructure(
                f"qcow2 L1 entry {l1_index} of {self.name}",
                f"L2 table offset {l2_offset:#x} is not aligned to the {self._cs}-byte cluster size",
                offset=where,
            )
        if l2_offset + self._cs > self._file_size:
            raise CorruptStructure(
                f"qcow2 L1 entry {l1_index} of {self.name}",
                f"L2 table at {l2_offset:#x} runs past the end of the file ({self._file_size:#x})",
                offset=where,
            )
        table = be64_array(self._file.pread(l2_offset, self._cs))
        entry = (l2_offset, table)
        self._l2_cache[l1_index] = entry
        if len(self._l2_cache) > self._l2_cache_max:
            self._l2_cache.popitem(last=False)
        self._last_l1, self._last_l2 = l1_index, entry
        return entry

    # -- execution ------------------------------------------------------------

    def _host_read(self, host: int, length: int) -> bytes:
        """``length`` bytes of the file at ``host`` (checked to lie inside it)."""
        if self._fd is not None:
            data = os.pread(self._fd, length, host)
            if len(data) == length:
                return data
        return self._file.pread(host, length)  # short read or not a file: the careful path

    def _read_into(self, view: memoryview, host: int) -> None:
        """Fill ``view`` from the file at ``host``; bytes past the end of the file read as zeros.

        Only the last cluster of a run can cross the end (every cluster start
        was checked), which QEMU also reads as zeros.
        """
        n = min(len(view), self._file_size - host)
        if self._fd is not None:
            done = 0
            while done < n:
                got = os.preadv(self._fd, [view[done:n]], host + done)
                if got <= 0:
                    raise CorruptStructure(self.name, f"file ended early at {host + done:#x} (did it shrink?)")
                done += got
        else:
            view[:n] = self._file.pread(host, n)

    def _backing_into(self, view: memoryview, guest: int) -> None:
        """Fill ``view`` with backing data for ``guest``; zeros beyond the backing's end."""
        if self.backing is None:
            return
        n = min(len(view), self.backing.size - guest)
        if n > 0:
            view[:n] = self.backing.pread(guest, n)

    def _compressed(self, entry: int, l2_offset: int, word: int) -> bytes:
        """Decompress the cluster described by L2 ``entry`` (small LRU cache)."""
        coffset = entry & self._coffset_mask
        cached = self._z_cache.get(coffset)
        if cached is not None:
            self._z_cache.move_to_end(coffset)
            return cached
        nb_csectors = ((entry >> self._csize_shift) & self._csize_mask) + 1
        csize = nb_csectors * SECTOR - (coffset & (SECTOR - 1))
        what = f"qcow2 compressed cluster (L2 entry {word >> self._ext} at {l2_offset + word * 8:#x}) of {self.name}"
        if coffset >= self._file_size:
            raise CorruptStructure(
                what,
                f"compressed data offset {coffset:#x} is past the end of the file ({self._file_size:#x})",
                offset=coffset,
            )
        # The last sector may end past EOF (compressed data is byte-allocated).
        data = self._file.pread(coffset, min(csize, self._file_size - coffset))
        if self._zstd:
            cluster = decompress_zstd(data, self._cs, what=what, offset=coffset)
        else:
            cluster = decompress_deflate(data, self._cs, what=what, offset=coffset)
        self._z_cache[coffset] = cluster
        if len(self._z_cache) > self._z_cache_max:
            self._z_cache.popitem(last=False)
        return cluster


def _add_data(plan: list[list[int]], guest: int, n: int, host: int) -> None:
    """Append a data piece, extending the previous one when contiguous in guest and host."""
    if plan:
        last = plan[-1]
        if last[0] == _DATA and last[1] + last[2] == guest and last[3] + last[2] == host:
            last[2] += n
            return
    plan.append([_DATA, guest, n, host])


def _add_backing(plan: list[list[int]], guest: int, n: int) -> None:
    """Append an unallocated piece (backing data or zeros), merging with its predecessor."""
    if plan:
        last = plan[-1]
        if last[0] == _BACKING and last[1] + last[2] == guest:
            last[2] += n
            return
    plan.append([_BACKING, guest, n, 0])


def open_qcow2(
    file: ByteSource,
    *,
    limits: Limits,
    backing: ByteSource | None = None,
    l2_cache_bytes: int = L2_CACHE_BYTES,
    _level: int = 0,
) -> Qcow2Source:
    """Open the qcow2 image in ``file`` and return its virtual disk.

    Args:
        file: the qcow2 file itself.
        limits: bounds (``max_image_bytes`` for the virtual size, ``max_read``
            for the L1 table).
        backing: an operator-named backing image (raw or qcow2) for an overlay;
            required when the image names a backing file, refused otherwise.
        l2_cache_bytes: memory for cached L2 tables.

    Returns:
        a :class:`Qcow2Source` with a ``details()`` method.

    Raises:
        NotThisFormat: no qcow2 magic.
        CorruptStructure: a malformed header, L1 table or backing name.
        UnsupportedFeature: encryption, an external data file, an unknown
            incompatible feature or compression type, a backing file the
            operator did not name, a backing chain deeper than one level.
        LimitExceeded: the virtual size or the L1 table is over its limit.
        UsageError: ``backing`` given for an image without a backing file.
    """
    name = file.name
    head = file.pread(0, min(file.size, V3_MIN_HEADER_LENGTH + 8))
    hdr = parse_qcow2_header(head, name=name)
    hdr = parse_qcow2_header(file.pread(0, min(file.size, hdr.cluster_size)), name=name)
    check_supported(hdr, name)
    limits.check("max_image_bytes", hdr.size, f"qcow2 virtual size of {name}")
    l1 = read_l1_table(file, hdr, limits)
    backing_name: str | None = None
    backing_src: ByteSource | None = None
    if hdr.backing_file_offset:
        raw_name = read_backing_name(file, hdr)
        backing_name = guest_text(raw_name)
        if backing is None:
            if _level:
                raise UnsupportedFeature(
                    f"{name} is itself an overlay on {backing_name!r}; backing chains deeper than one "
                    f"level are not supported (flatten it: qemu-img convert -O qcow2 BACKING flat.qcow2)"
                )
            raise UnsupportedFeature(
                f"{name} is a qcow2 overlay on backing file {backing_name!r}; virtkit does not follow the "
                f"path stored in the image (it is guest-controlled and could name any host file); "
                f"check it and pass it explicitly with --backing FILE"
            )
        backing_src = _open_backing(backing, hdr, limits, name)
    elif backing is not None:
        raise UsageError(f"{name} has no backing file; --backing only applies to qcow2 overlays")
    log.debug("qcow2 %r: v%d cluster_size=%d size=%d", name, hdr.version, hdr.cluster_size, hdr.size)
    return Qcow2Source(
        file, hdr, l1, backing=backing_src, backing_file_name=backing_name, l2_cache_bytes=l2_cache_bytes
    )


def _open_backing(backing: ByteSource, hdr: Qcow2Header, limits: Limits, name: str) -> ByteSource:
    """Interpret the operator-named backing file: qcow2 (one level) or raw.

    The format comes from the overlay's backing-format extension when it has
    one, else from the backing file's content.
    """
    magic = backing.pread(0, min(4, backing.size))
    stated = hdr.backing_format.decode("ascii", "replace") if hdr.backing_format is not None else None
    if stated is not None and stated not in ("raw", "qcow2"):
        raise UnsupportedFeature(
            f"{name}: backing format {sanitize_text(stated)!r} is not supported (only raw and qcow2 backing files)"
        )
    if magic == QCOW2_MAGIC and stated != "raw":
        return open_qcow2(backing, limits=limits, _level=1)
    if stated == "qcow2":
        raise UnsupportedFeature(
            f"{name}: the image says its backing file is qcow2, but {backing.name} is not a qcow2 image"
        )
    limits.check("max_image_bytes", backing.size, backing.name)
    return backing
