"""A small qcow2 writer for tests: valid images, and hostile ones by overriding fields.

Images it writes are real qcow2 (``qemu-img check`` passes: refcounts are
written too), so the same builder feeds the differential tests against
``qemu-img convert`` and the hostile cases, which start valid and then set a
header field, an L1/L2 entry or raw bytes to something bad.

    b = Qcow2Builder(size=1 << 20, cluster_bits=12)
    b.data(0, b"hello")                 # guest cluster 0, padded with zeros
    b.zero(1)                           # a zero cluster (v3)
    b.compressed(2, b"x" * 4096)        # deflate (or zstd with compression_type=1)
    img = b.build()                     # bytes; b.layout says where things went
    b.header["cluster_bits"] = 30       # hostile: rebuild with a bad header field
    bad = b.build()

Layout of what ``build`` writes, one cluster each unless noted::

    header+extensions+backing name | L1 table (n) | L2 tables | data clusters |
    compressed stream (byte-packed) | refcount table | refcount blocks
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"QFI\xfb"
L2_COMPRESSED = 1 << 62
L2_COPIED = 1 << 63
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_DATA_FILE = 0x44415441


@dataclass
class Layout:
    """Where ``build`` put things (file offsets), for tests that patch bytes."""

    l1_offset: int = 0
    l2_offsets: dict[int, int] = field(default_factory=dict)  # l1 index -> L2 table offset
    data_offsets: dict[int, int] = field(default_factory=dict)  # guest cluster -> host offset
    compressed: dict[int, tuple[int, int]] = field(default_factory=dict)  # guest cluster -> (offset, length)
    refcount_table_offset: int = 0
    file_size: int = 0

    def l2_entry_offset(self, guest_cluster: int, *, l2_entries: int, entry_bytes: int = 8) -> int:
        """File offset of the L2 entry for ``guest_cluster``."""
        return self.l2_offsets[guest_cluster // l2_entries] + (guest_cluster % l2_entries) * entry_bytes


@dataclass
class _Cluster:
    kind: str  # "data", "zero", "zero_alloc", "compressed", "raw"
    data: bytes = b""
    plain: bytes = b""  # what a compressed cluster decompresses to
    bitmap: int = 0
    entry: int = 0


class Qcow2Builder:
    """Collects guest clusters and header settings; :meth:`build` returns the image bytes."""

    def __init__(
        self,
        *,
        size: int,
        cluster_bits: int = 16,
        version: int = 3,
        extended_l2: bool = False,
        compression_type: int = 0,
        backing_file: bytes | None = None,
        backing_format: bytes | None = None,
    ) -> None:
        self.size = size
        self.cluster_bits = cluster_bits
        self.version = version
        self.extended_l2 = extended_l2
        self.compression_type = compression_type
        self.backing_file = backing_file
        self.backing_format = backing_format
        self.extensions: list[tuple[int, bytes]] = []
        self.feature_table: list[tuple[int, int, bytes]] = []
        self.clusters: dict[int, _Cluster] = {}
        self.header: dict[str, int] = {}  # overrides applied to the written header fields
        self.incompatible_extra = 0
        self.compatible_features = 0
        self.layout = Layout()

    # -- geometry ---------------------------------------------------------------

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def entry_bytes(self) -> int:
        return 16 if self.extended_l2 else 8

    @property
    def l2_entries(self) -> int:
        return self.cluster_size // self.entry_bytes

    def l1_needed(self) -> int:
        span = self.cluster_size * self.l2_entries
        return -(-self.size // span)

    # -- content ----------------------------------------------------------------

    def data(self, guest_cluster: int, data: bytes, *, alloc: int = 0xFFFFFFFF, zero: int = 0) -> None:
        """A standard data cluster; with extended L2, ``alloc``/``zero`` are the subcluster bitmaps."""
        assert len(data) <= self.cluster_size
        bitmap = (zero << 32) | alloc if self.extended_l2 else 0
        self.clusters[guest_cluster] = _Cluster("data", data.ljust(self.cluster_size, b"\0"), bitmap)

    def zero(self, guest_cluster: int, *, preallocated: bool = False, zero_mask: int = 0xFFFFFFFF) -> None:
        """A cluster that reads as zeros (flag bit 0, or the extended-L2 zero bitmap)."""
        if self.extended_l2:
            self.clusters[guest_cluster] = _Cluster("zero", bitmap=zero_mask << 32)
        else:
            self.clusters[guest_cluster] = _Cluster("zero_alloc" if preallocated else "zero")

    def compressed(self, guest_cluster: int, data: bytes, *, stream: bytes | None = None) -> None:
        """A compressed cluster: ``data`` (one cluster) compressed, or a given ``stream`` verbatim."""
        plain = data.ljust(self.cluster_size, b"\0")
        if stream is None:
            if self.compression_type == 1:
                from backports import zstd  # the test extra installs it

                stream = zstd.compress(plain)
            else:
                comp = zlib.compressobj(6, zlib.DEFLATED, -12)
                stream = comp.compress(plain) + comp.flush()
        self.clusters[guest_cluster] = _Cluster("compressed", stream, plain=plain)

    def raw_entry(self, guest_cluster: int, entry: int, bitmap: int = 0) -> None:
        """An L2 entry written verbatim (hostile cases)."""
        self.clusters[guest_cluster] = _Cluster("raw", entry=entry, bitmap=bitmap)

    def model(self, backing: bytes = b"") -> bytes:
        """The virtual disk these clusters describe (the test oracle), in QEMU's whole sectors.

        Unallocated ranges read ``backing`` (zeros past its end); raw entries
        are not modelled (hostile cases assert errors instead).
        """
        cs = self.cluster_size
        size = self.size - self.size % 512
        disk = bytearray(backing[:size].ljust(size, b"\0"))
        sub = cs // 32
        for gc, c in self.clusters.items():
            start = gc * cs
            if start >= size:
                continue
            if c.kind == "data" and self.extended_l2:
                alloc, zero = c.bitmap & 0xFFFFFFFF, c.bitmap >> 32
                for sc in range(32):
                    lo = start + sc * sub
                    if zero >> sc & 1:
                        disk[lo : lo + sub] = bytes(sub)
                    elif alloc >> sc & 1:
                        disk[lo : lo + sub] = c.data[sc * sub : (sc + 1) * sub]
            elif c.kind == "data":
                disk[start : start + cs] = c.data
            elif c.kind == "compressed":
                disk[start : start + cs] = c.plain
            elif c.kind == "zero" and self.extended_l2:
                zero = c.bitmap >> 32
                for sc in range(32):
                    if zero >> sc & 1:
                        disk[start + sc * sub : start + (sc + 1) * sub] = bytes(sub)
            elif c.kind in ("zero", "zero_alloc"):
                disk[start : start + cs] = bytes(cs)
        return bytes(disk[:size])

    # -- writing ----------------------------------------------------------------

    def build(self) -> bytes:
        """Lay out and return the image; fills :attr:`layout`."""
        cs = self.cluster_size
        lay = Layout()
        used: dict[int, int] = {}  # host cluster index -> refcount

        def alloc(n: int = 1) -> int:
            nonlocal next_cluster
            first = next_cluster
            for i in range(n):
                used[first + i] = used.get(first + i, 0) + 1
            next_cluster += n
            return first * cs

        next_cluster = 0
        alloc()  # header cluster
        l1_size = self.l1_needed()
        l1_clusters = max(1, -(-l1_size * 8 // cs))
        lay.l1_offset = alloc(l1_clusters)
        l1 = [0] * l1_size
        l2_tables: dict[int, list[int]] = {}
        for gc in sorted(self.clusters):
            idx = gc // self.l2_entries
            if idx not in l2_tables:
                lay.l2_offsets[idx] = alloc()
                l2_tables[idx] = [0] * (self.l2_entries * (2 if self.extended_l2 else 1))
                if idx < l1_size:
                    l1[idx] = lay.l2_offsets[idx] | L2_COPIED
        blobs: list[tuple[int, bytes]] = []
        for gc, c in sorted(self.clusters.items()):
            if c.kind == "data":
                lay.data_offsets[gc] = alloc()
                blobs.append((lay.data_offsets[gc], c.data))
        # Compressed streams, byte-packed from a fresh cluster like qemu's allocator.
        cpos = next_cluster * cs
        for gc, c in sorted(self.clusters.items()):
            if c.kind == "compressed":
                lay.compressed[gc] = (cpos, len(c.data))
                blobs.append((cpos, c.data))
                for hc in range(cpos // cs, (cpos + len(c.data) - 1) // cs + 1):
                    used[hc] = used.get(hc, 0) + 1
                cpos += len(c.data)
        next_cluster = max(next_cluster, -(-cpos // cs))
        csize_shift = 62 - (self.cluster_bits - 8)
        for gc, c in self.clusters.items():
            table = l2_tables[gc // self.l2_entries]
            w = (gc % self.l2_entries) * (2 if self.extended_l2 else 1)
            if c.kind == "data":
                entry = lay.data_offsets[gc] | L2_COPIED
            elif c.kind == "zero":
                entry = 0 if self.extended_l2 else 1
            elif c.kind == "zero_alloc":
                entry = alloc() | L2_COPIED | 1
            elif c.kind == "compressed":
                off, n = lay.compressed[gc]
                nb_csectors = ((off + n - 1) >> 9) - (off >> 9)
                entry = L2_COMPRESSED | (nb_csectors << csize_shift) | off
            else:
                entry = c.entry
            table[w] = entry
            if self.extended_l2:
                table[w + 1] = c.bitmap
        # Refcounts: 16-bit entries; the table and blocks count themselves.
        rb_entries = cs // 2
        n_blocks = n_table = 1
        while True:
            total = next_cluster + n_table + n_blocks
            need_blocks = -(-total // rb_entries)
            need_table = max(1, -(-need_blocks * 8 // cs))
            if need_blocks <= n_blocks and need_table <= n_table:
                break
            n_blocks, n_table = max(n_blocks, need_blocks), max(n_table, need_table)
        lay.refcount_table_offset = alloc(n_table)
        block_offsets = [alloc() for _ in range(n_blocks)]
        header = self._header_cluster(l1_size, lay.l1_offset, lay.refcount_table_offset, n_table)
        out = bytearray(next_cluster * cs)
        out[: len(header)] = header
        out[lay.l1_offset : lay.l1_offset + 8 * l1_size] = struct.pack(f">{l1_size}Q", *l1)
        for idx, table in l2_tables.items():
            off = lay.l2_offsets[idx]
            out[off : off + cs] = struct.pack(f">{len(table)}Q", *table)
        for off, blob in blobs:
            out[off : off + len(blob)] = blob
        rt = lay.refcount_table_offset
        out[rt : rt + 8 * n_blocks] = struct.pack(f">{n_blocks}Q", *block_offsets)
        for hc, count in used.items():
            b = block_offsets[hc // rb_entries]
            struct.pack_into(">H", out, b + (hc % rb_entries) * 2, count)
        lay.file_size = len(out)
        self.layout = lay
        return bytes(out)

    def _header_cluster(self, l1_size: int, l1_offset: int, rt_offset: int, rt_clusters: int) -> bytes:
        v3 = self.version >= 3
        header_length = 112 if v3 else 72
        incompat = self.incompatible_extra
        if self.extended_l2:
            incompat |= 1 << 4
        if self.compression_type:
            incompat |= 1 << 3
        fields: dict[str, Any] = {
            "magic": MAGIC,
            "version": self.version,
            "backing_file_offset": 0,
            "backing_file_size": 0,
            "cluster_bits": self.cluster_bits,
            "size": self.size,
            "crypt_method": 0,
            "l1_size": l1_size,
            "l1_table_offset": l1_offset,
            "refcount_table_offset": rt_offset,
            "refcount_table_clusters": rt_clusters,
            "nb_snapshots": 0,
            "snapshots_offset": 0,
            "incompatible_features": incompat,
            "compatible_features": self.compatible_features,
            "autoclear_features": 0,
            "refcount_order": 4,
            "header_length": header_length,
            "compression_type": self.compression_type,
        }
        ext = bytearray()
        exts = list(self.extensions)
        if self.backing_format is not None:
            exts.insert(0, (EXT_BACKING_FORMAT, self.backing_format))
        if self.feature_table:
            table = b"".join(struct.pack(">BB46s", k, b, n) for k, b, n in self.feature_table)
            exts.append((EXT_FEATURE_TABLE, table))
        for t, d in exts:
            ext += struct.pack(">II", t, len(d)) + d + b"\0" * (-len(d) % 8)
        ext += b"\0" * 8  # end of extensions
        ext_start = header_length
        if self.backing_file is not None:
            fields["backing_file_offset"] = ext_start + len(ext)
            fields["backing_file_size"] = len(self.backing_file)
        fields.update(self.header)
        head = struct.pack(
            ">4sIQIIQIIQQIIQ",
            *(
                fields[k]
                for k in (
                    "magic",
                    "version",
                    "backing_file_offset",
                    "backing_file_size",
                    "cluster_bits",
                    "size",
                    "crypt_method",
                    "l1_size",
                    "l1_table_offset",
                    "refcount_table_offset",
                    "refcount_table_clusters",
                    "nb_snapshots",
                    "snapshots_offset",
                )
            ),
        )
        if v3:
            head += struct.pack(
                ">QQQIIB7x",
                fields["incompatible_features"],
                fields["compatible_features"],
                fields["autoclear_features"],
                fields["refcount_order"],
                fields["header_length"],
                fields["compression_type"],
            )
        out = head[:header_length].ljust(ext_start, b"\0") + bytes(ext)
        if self.backing_file is not None:
            out += self.backing_file
        assert len(out) <= self.cluster_size, "header area larger than one cluster"
        return out
