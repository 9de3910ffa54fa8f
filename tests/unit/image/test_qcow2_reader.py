"""The qcow2 reader on images from the byte builder: exact bytes for every cluster kind."""

from __future__ import annotations

import random

import pytest

from builders.qcow2 import Qcow2Builder
from virtkit._streams import ByteSource, BytesSource, iter_chunks
from virtkit.boot.image.qcow2 import Qcow2Source, open_qcow2
from virtkit.limits import DEFAULT_LIMITS

KiB = 1024


def _open(img: bytes, backing: ByteSource | None = None, **kw: int) -> Qcow2Source:
    return open_qcow2(BytesSource(img, "t.qcow2"), limits=DEFAULT_LIMITS, backing=backing, **kw)


class CountingSource:
    """A ByteSource that records every pread (to check run merging)."""

    def __init__(self, inner: ByteSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.size = inner.size
        self.calls: list[tuple[int, int]] = []

    def pread(self, offset: int, length: int) -> bytes:
        self.calls.append((offset, length))
        return self.inner.pread(offset, length)


def _pattern(tag: int, n: int) -> bytes:
    return (bytes([tag]) + b"virtkit" + bytes([tag ^ 0x5A])) * (n // 9) + bytes([tag]) * (n % 9)


def _mixed_builder(*, cluster_bits: int, version: int = 3, ext: bool = False, zstd: bool = False) -> Qcow2Builder:
    cs = 1 << cluster_bits
    b = Qcow2Builder(
        size=cs * 24 + 3 * 512 + 100,
        cluster_bits=cluster_bits,
        version=version,
        extended_l2=ext,
        compression_type=int(zstd),
    )
    for c in (0, 1, 2, 3, 7, 8, 12):  # 0-3 contiguous on the host, so reads merge
        b.data(c, _pattern(c, cs if c != 12 else cs // 3))
    b.compressed(4, _pattern(0x44, cs))
    b.compressed(5, _pattern(0x55, cs // 2))
    if version >= 3:
        b.zero(9)
        if not ext:
            b.zero(10, preallocated=True)
    if ext:
        b.data(14, _pattern(0x14, cs), alloc=0x0000_FFFF, zero=0x00FF_0000)  # half data, a quarter zeros
        b.zero(15, zero_mask=0xF0F0_F0F0)
    b.data(24, _pattern(0x24, cs))  # the partial last cluster
    return b


CASES = [
    pytest.param({"cluster_bits": 16}, id="v3-64k"),
    pytest.param({"cluster_bits": 9}, id="v3-512"),
    pytest.param({"cluster_bits": 12, "version": 2}, id="v2-4k"),
    pytest.param({"cluster_bits": 14, "ext": True}, id="extl2-16k"),
    pytest.param({"cluster_bits": 16, "zstd": True}, id="zstd-64k"),
    pytest.param({"cluster_bits": 16, "ext": True, "zstd": True}, id="extl2-zstd"),
    pytest.param({"cluster_bits": 21}, id="v3-2m"),
]


@pytest.mark.parametrize("kw", CASES)
def test_whole_disk_matches_model(kw: dict[str, int]) -> None:
    b = _mixed_builder(**kw)
    src = _open(b.build())
    expected = b.model()
    assert src.size == len(expected) == b.size - b.size % 512
    assert b"".join(iter_chunks(src, chunk=1 << 20)) == expected


@pytest.mark.parametrize("kw", CASES)
def test_unaligned_reads_match_model(kw: dict[str, int]) -> None:
    b = _mixed_builder(**kw)
    src = _open(b.build())
    expected = b.model()
    rnd = random.Random(7)
    for _ in range(200):
        off = rnd.randrange(0, len(expected))
        n = rnd.randrange(0, min(len(expected) - off, 5 * b.cluster_size) + 1)
        assert src.pread(off, n) == expected[off : off + n], (off, n)


@pytest.mark.parametrize("ext", [False, True], ids=["standard", "extl2"])
def test_unallocated_reads_backing_and_zeros_past_its_end(ext: bool) -> None:
    cs = 1 << 14
    b = Qcow2Builder(size=cs * 8, cluster_bits=14, extended_l2=ext, backing_file=b"base.img", backing_format=b"raw")
    b.data(1, b"\x01" * cs, alloc=0x0000_00FF if ext else 0xFFFF_FFFF)
    b.zero(2)
    backing = _pattern(0xBB, cs * 5 + 1000)  # shorter than the overlay
    src = _open(b.build(), backing=BytesSource(backing, "base.img"))
    assert b"".join(iter_chunks(src)) == b.model(backing)
    assert src.pread(0, 16) == backing[:16]
    assert src.pread(cs * 6, 16) == bytes(16)  # past the backing's end
    assert src.pread(cs * 2, cs) == bytes(cs)  # zero cluster: no backing data
    if ext:  # subclusters 8..31 of cluster 1 are unallocated: backing shows through
        sub = cs // 32
        assert src.pread(cs + 8 * sub, 4) == backing[cs + 8 * sub : cs + 8 * sub + 4]


def test_qcow2_backing_one_level() -> None:
    base = Qcow2Builder(size=1 << 20, cluster_bits=12)
    base.data(0, b"base0" * 100)
    base.data(3, b"base3" * 100)
    over = Qcow2Builder(size=1 << 20, cluster_bits=16, backing_file=b"/images/base.qcow2", backing_format=b"qcow2")
    over.data(1, b"overlay!" * 10)
    src = _open(over.build(), backing=BytesSource(base.build(), "base.qcow2"))
    assert src.pread(0, 10) == b"base0base0"
    assert src.pread(3 * 4096, 5) == b"base3"
    assert src.pread(1 << 16, 8) == b"overlay!"
    assert b"".join(iter_chunks(src)) == over.model(base.model())


def test_contiguous_clusters_are_read_with_one_pread() -> None:
    cs = 4096
    b = Qcow2Builder(size=cs * 64, cluster_bits=12)
    for c in range(16):
        b.data(c, bytes([c]) * cs)
    img = b.build()
    counting = CountingSource(BytesSource(img, "t.qcow2"))
    src = open_qcow2(counting, limits=DEFAULT_LIMITS)
    src.pread(0, 1)  # loads the L2 table
    counting.calls.clear()
    data = src.pread(100, 16 * cs - 200)
    assert data == b"".join(bytes([c]) * cs for c in range(16))[100 : 16 * cs - 100]
    assert counting.calls == [(b.layout.data_offsets[0] + 100, 16 * cs - 200)]


def test_l2_cache_is_bounded() -> None:
    b = Qcow2Builder(size=1 << 20, cluster_bits=9)  # one L2 table per 32 KiB: 32 tables
    for c in range(0, 2048, 37):
        b.data(c, bytes([c % 251]) * 512)
    src = _open(b.build(), l2_cache_bytes=4 * 512)
    assert b"".join(iter_chunks(src, chunk=4096)) == b.model()
    assert len(src._l2_cache) == 4


def test_compressed_cache_is_bounded_and_reused() -> None:
    cs = 1 << 16
    b = Qcow2Builder(size=cs * 200, cluster_bits=16)
    for c in range(200):
        b.compressed(c, bytes([c]) * cs)
    img = b.build()
    counting = CountingSource(BytesSource(img, "t.qcow2"))
    src = open_qcow2(counting, limits=DEFAULT_LIMITS)
    counting.calls.clear()  # forget the header and L1 reads
    for off in range(0, 4 * cs, 4096):  # small reads: one decompression per cluster
        assert src.pread(off, 4096) == bytes([off // cs]) * 4096
    assert len(counting.calls) == 4 + 1  # four compressed clusters, one L2 table
    assert b"".join(iter_chunks(src)) == b.model()
    assert len(src._z_cache) == 64  # 4 MiB of 64 KiB clusters


def test_decompression_stops_at_one_cluster() -> None:
    """A stream that would inflate to 16 clusters yields exactly one (bounded memory)."""
    import zlib

    cs = 4096
    comp = zlib.compressobj(9, zlib.DEFLATED, -12)
    bomb = comp.compress(b"\x07" * cs * 16) + comp.flush()
    b = Qcow2Builder(size=cs * 4, cluster_bits=12)
    b.compressed(1, b"", stream=bomb)
    src = _open(b.build())
    assert src.pread(cs, cs) == b"\x07" * cs
    assert src.pread(0, cs) == bytes(cs)


def test_zstd_cluster_of_several_frames() -> None:
    """QEMU reads zstd clusters frame after frame until the cluster is full."""
    from backports import zstd

    cs = 1 << 16
    b = Qcow2Builder(size=cs * 2, cluster_bits=16, compression_type=1)
    stream = zstd.compress(b"A" * 1000) + zstd.compress(b"B" * (cs - 1000)) + b"trailing garbage"
    b.compressed(0, b"", stream=stream)
    assert _open(b.build()).pread(0, cs) == b"A" * 1000 + b"B" * (cs - 1000)


def test_size_is_whole_sectors_like_qemu() -> None:
    b = Qcow2Builder(size=5000, cluster_bits=12)
    b.data(1, b"\x01" * 4096)
    src = _open(b.build())
    assert src.size == 4608
    assert src.details()["virtual_size"] == 4608
    assert src.details()["header_size"] == 5000
    assert src.pread(4096, 512) == b"\x01" * 512


def test_empty_disk() -> None:
    src = _open(Qcow2Builder(size=0, cluster_bits=16).build())
    assert src.size == 0
    assert src.pread(0, 0) == b""


def test_details() -> None:
    b = Qcow2Builder(
        size=1 << 24,
        cluster_bits=14,
        extended_l2=True,
        compression_type=1,
        backing_file=b"base\x1b[2J.img",
        backing_format=b"raw",
    )
    b.incompatible_extra = 0b11  # dirty + corrupt: still readable
    b.compatible_features = 1
    src = _open(b.build(), backing=BytesSource(b"", "base"))
    assert src.details() == {
        "version": 3,
        "cluster_size": 16384,
        "virtual_size": 1 << 24,
        "compression_type": "zstd",
        "extended_l2": True,
        "dirty": True,
        "corrupt": True,
        "lazy_refcounts": True,
        "refcount_order": 4,
        "l1_size": 1,
        "nb_snapshots": 0,
        "bitmaps": False,
        "backing_file": "base\\x1b[2J.img",  # guest text, sanitised
        "backing_format": "raw",
        "backing_used": "base",
    }
    assert src.pread(0, 16) == bytes(16)


def test_v2_details() -> None:
    src = _open(Qcow2Builder(size=1 << 20, cluster_bits=16, version=2).build())
    d = src.details()
    assert (d["version"], d["compression_type"], d["extended_l2"], d["refcount_order"]) == (2, "zlib", False, 4)


def test_unknown_header_extensions_are_ignored() -> None:
    b = Qcow2Builder(size=1 << 20, cluster_bits=12)
    b.extensions.append((0x12345678, b"whatever"))
    b.feature_table.append((1, 5, b"some compatible thing"))
    b.data(0, b"ok")
    src = _open(b.build())
    assert src.pread(0, 2) == b"ok"
    assert src.header.unknown_extensions == [0x12345678]
    assert src.header.feature_names == {(1, 5): "some compatible thing"}
