"""Hostile qcow2 images: each bad structure ends in one VirtkitError naming what and where.

Every case starts from a valid builder image and breaks one thing.  Refusals
of valid-but-unsupported images (encryption, external data, backing files)
are here too, with the message the operator sees.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders.qcow2 import L2_COMPRESSED, Qcow2Builder
from virtkit._streams import ByteSource, BytesSource, iter_chunks
from virtkit.boot.image import _compress
from virtkit.boot.image.qcow2 import open_qcow2
from virtkit.errors import (
    CorruptStructure,
    LimitExceeded,
    NotThisFormat,
    UnsupportedFeature,
    UsageError,
    VirtkitError,
)
from virtkit.limits import DEFAULT_LIMITS, Limits

CS = 4096  # cluster size of most cases (cluster_bits 12)


def _base(**kw: object) -> Qcow2Builder:
    b = Qcow2Builder(size=CS * 64, cluster_bits=12, **kw)  # type: ignore[arg-type]
    b.data(0, b"first cluster")
    b.data(5, b"fifth cluster")
    return b


def _read_all(
    img: bytes, *, limits: Limits = DEFAULT_LIMITS, backing: ByteSource | None = None, chunk: int = 1 << 20
) -> bytes:
    src = open_qcow2(BytesSource(img, "bad.qcow2"), limits=limits, backing=backing)
    return b"".join(iter_chunks(src, chunk=chunk))


def _patch(img: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(img)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _header(**fields: int) -> Callable[[], bytes]:
    def make() -> bytes:
        b = _base()
        b.header.update(fields)
        return b.build()

    return make


def _l1_entry(value_of: Callable[[Qcow2Builder], int]) -> Callable[[], bytes]:
    def make() -> bytes:
        b = _base()
        img = b.build()
        return _patch(img, b.layout.l1_offset, ">Q", value_of(b))

    return make


def _l2_entry(entry: int, *, ext: bool = False, bitmap: int = 0) -> Callable[[], bytes]:
    def make() -> bytes:
        b = Qcow2Builder(size=(1 << 14) * 8, cluster_bits=14, extended_l2=ext) if ext else _base()
        b.raw_entry(3, entry, bitmap)
        return b.build()

    return make


def _compressed(stream: bytes, *, zstd: bool = False) -> Callable[[], bytes]:
    def make() -> bytes:
        b = _base(compression_type=1) if zstd else _base()
        b.compressed(2, b"", stream=stream)
        return b.build()

    return make


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


def _zstd(data: bytes) -> bytes:
    from backports import zstd

    return zstd.compress(data)


def _truncated(n: int) -> Callable[[], bytes]:
    return lambda: _base().build()[:n]


def _build(b: Qcow2Builder) -> Callable[[], bytes]:
    return b.build


def _with(**kw: object) -> Qcow2Builder:
    b = _base(**kw)
    return b


def _feature(bit: int, table: list[tuple[int, int, bytes]]) -> Callable[[], bytes]:
    def make() -> bytes:
        b = _base()
        b.incompatible_extra = 1 << bit
        b.feature_table = table
        return b.build()

    return make


def _ext(ext_type: int, data: bytes, bits: int = 0) -> Callable[[], bytes]:
    def make() -> bytes:
        b = _base()
        b.extensions.append((ext_type, data))
        b.incompatible_extra = bits
        return b.build()

    return make


def _ext_overrun() -> bytes:
    img = bytearray(_base().build())
    struct.pack_into(">II", img, 112, 0x12345678, 5000)  # longer than the header cluster
    return bytes(img)


HUGE = 1 << 40

# (id, image maker, limits, error type, message fragment)
# fmt: off
HOSTILE: list[tuple[str, Callable[[], bytes], Limits, type[VirtkitError], str]] = [
    # header
    ("no-magic", lambda: b"\0" * 512, DEFAULT_LIMITS, NotThisFormat, "not a qcow2 image"),
    ("version-1", _header(version=1), DEFAULT_LIMITS, UnsupportedFeature, "qcow2 version 1 is not supported"),
    ("version-4", _header(version=4), DEFAULT_LIMITS, UnsupportedFeature, "qcow2 version 4 is not supported"),
    ("cluster-bits-8", _header(cluster_bits=8), DEFAULT_LIMITS, CorruptStructure, "qcow2 header of bad.qcow2 at 0x14: cluster_bits 8 is outside 9..21"),
    ("cluster-bits-22", _header(cluster_bits=22), DEFAULT_LIMITS, CorruptStructure, "cluster_bits 22 is outside 9..21"),
    ("cluster-bits-huge", _header(cluster_bits=0xFFFFFFFF), DEFAULT_LIMITS, CorruptStructure, "cluster_bits 4294967295 is outside"),
    ("truncated-v3-header", _truncated(90), DEFAULT_LIMITS, CorruptStructure, "truncated"),
    ("truncated-v2-header", _truncated(40), DEFAULT_LIMITS, CorruptStructure, "truncated"),
    ("header-length-short", _header(header_length=96), DEFAULT_LIMITS, CorruptStructure, "header_length 96 is below 104"),
    ("header-length-huge", _header(header_length=8192), DEFAULT_LIMITS, CorruptStructure, "header_length 8192 exceeds the cluster size 4096"),
    ("refcount-order-7", _header(refcount_order=7), DEFAULT_LIMITS, CorruptStructure, "refcount_order 7 exceeds 6"),
    ("extension-overrun", _ext_overrun, DEFAULT_LIMITS, CorruptStructure, "header extension 0x12345678 of bad.qcow2 at 0x70: length 5000 runs past"),
    # refusals
    ("aes", _header(crypt_method=1), DEFAULT_LIMITS, UnsupportedFeature, "encrypted qcow2 (AES/LUKS) is not supported (this one uses AES)"),
    ("luks", _header(crypt_method=2), DEFAULT_LIMITS, UnsupportedFeature, "encrypted qcow2 (AES/LUKS) is not supported (this one uses LUKS)"),
    ("external-data-file", _ext(0x44415441, b"/var/lib/x/data.raw", 1 << 2), DEFAULT_LIMITS, UnsupportedFeature, "external data file '/var/lib/x/data.raw'"),
    ("unknown-feature-named", _feature(9, [(0, 9, b"frobnicated \x1b[31mclusters")]), DEFAULT_LIMITS, UnsupportedFeature, "unknown incompatible features: bit 9 (frobnicated \\x1b[31mclusters)"),
    ("unknown-feature-bare", _feature(40, []), DEFAULT_LIMITS, UnsupportedFeature, "unknown incompatible features: bit 40"),
    ("compression-type-2", _header(compression_type=2, incompatible_features=1 << 3), DEFAULT_LIMITS, UnsupportedFeature, "unknown qcow2 compression_type 2"),
    ("compression-bit-without-type", _header(incompatible_features=1 << 3), DEFAULT_LIMITS, CorruptStructure, "compression type bit set but compression_type is zlib"),
    ("compression-type-without-bit", _header(compression_type=1), DEFAULT_LIMITS, CorruptStructure, "compression_type is non-zero without"),
    ("extl2-small-clusters", _header(incompatible_features=1 << 4), DEFAULT_LIMITS, CorruptStructure, "extended L2 entries need clusters of at least 16384 bytes"),
    # sizes and the L1 table
    ("virtual-size-limit", _header(size=HUGE, l1_size=HUGE // (CS * 512)), Limits(max_image_bytes=1 << 30), LimitExceeded, "1099511627776 exceeds the max_image_bytes limit of 1073741824"),
    ("l1-too-small", _header(size=CS * 512 * 3), DEFAULT_LIMITS, CorruptStructure, "qcow2 L1 table of bad.qcow2 at 0x1000: l1_size is too small for the virtual size 0x600000, expected 3, got 1"),
    ("l1-over-qemu-limit", _header(l1_size=(32 << 20) // 8 + 1), DEFAULT_LIMITS, CorruptStructure, "l1_size 4194305 exceeds the 32 MiB L1 table limit"),
    ("l1-unaligned", _header(l1_table_offset=4100), DEFAULT_LIMITS, CorruptStructure, "qcow2 L1 table of bad.qcow2 at 0x1004: table offset is not aligned"),
    ("l1-past-eof", _header(l1_table_offset=1 << 30), DEFAULT_LIMITS, CorruptStructure, "1 entries run past the end of the file"),
    ("l1-over-max-read", _header(size=CS * 512 * 4096, l1_size=4096), Limits(max_read=16 * 1024), LimitExceeded, "32768 exceeds the max_read limit of 16384"),
    # L1 -> L2
    ("l2-unaligned", _l1_entry(lambda b: b.layout.l2_offsets[0] + 512), DEFAULT_LIMITS, CorruptStructure, "qcow2 L1 entry 0 of bad.qcow2 at 0x1000: L2 table offset 0x2200 is not aligned"),
    ("l2-past-eof", _l1_entry(lambda b: 1 << 40), DEFAULT_LIMITS, CorruptStructure, "L2 table at 0x10000000000 runs past the end of the file"),
    # L2 -> data
    ("data-unaligned", _l2_entry(0x3200), DEFAULT_LIMITS, CorruptStructure, "qcow2 L2 entry 3 of bad.qcow2 at 0x2018: data cluster offset 0x3200 is not aligned"),
    ("data-past-eof", _l2_entry(1 << 40), DEFAULT_LIMITS, CorruptStructure, "data cluster offset 0x10000000000 is past the end of the file"),
    ("zero-alloc-unaligned", _l2_entry(0x3201), DEFAULT_LIMITS, CorruptStructure, "data cluster offset 0x3200 is not aligned"),
    ("extl2-unallocated-with-alloc-bits", _l2_entry(0, ext=True, bitmap=0x1), DEFAULT_LIMITS, CorruptStructure, "qcow2 extended L2 entry 3 of bad.qcow2 at 0x8030: unallocated cluster has allocated subclusters"),
    ("extl2-alloc-and-zero", _l2_entry(0x4000, ext=True, bitmap=(0x3 << 32) | 0x1), DEFAULT_LIMITS, CorruptStructure, "subclusters marked both allocated and zero"),
    # compressed clusters
    ("compressed-past-eof", _l2_entry(L2_COMPRESSED | (1 << 40)), DEFAULT_LIMITS, CorruptStructure, "compressed data offset 0x10000000000 is past the end of the file"),
    ("deflate-garbage", _compressed(b"\xff" * 600), DEFAULT_LIMITS, CorruptStructure, "bad deflate data"),
    ("deflate-short", _compressed(_deflate(b"x" * 1000)), DEFAULT_LIMITS, CorruptStructure, "deflate data ends before a full cluster, expected 0x1000, got 0x3e8"),
    ("zstd-garbage", _compressed(b"\x28\xb5\x2f\xfd" + b"\xff" * 60, zstd=True), DEFAULT_LIMITS, CorruptStructure, "bad zstd data"),
    ("zstd-short", _compressed(_zstd(b"x" * 1000), zstd=True), DEFAULT_LIMITS, CorruptStructure, "bad zstd data"),
    # backing files
    ("backing-not-given", _build(_with(backing_file=b"/etc/shadow")), DEFAULT_LIMITS, UnsupportedFeature, "bad.qcow2 is a qcow2 overlay on backing file '/etc/shadow'; virtkit does not follow"),
    ("backing-name-too-long", _build(_with(backing_file=b"x" * 1024)), DEFAULT_LIMITS, CorruptStructure, "backing_file_size 1024 exceeds 1023"),
    ("backing-name-past-eof", _header(backing_file_offset=1 << 40, backing_file_size=10), DEFAULT_LIMITS, CorruptStructure, "qcow2 backing file name of bad.qcow2 at 0x10000000000: runs past the end of the file"),
]
# fmt: on


@pytest.mark.parametrize(("make", "limits", "error", "fragment"), [pytest.param(*c[1:], id=c[0]) for c in HOSTILE])
@pytest.mark.parametrize("chunk", [1 << 20, 512], ids=["1MiB-reads", "512B-reads"])
def test_hostile(make: Callable[[], bytes], limits: Limits, error: type[VirtkitError], fragment: str, chunk: int) -> None:
    with pytest.raises(error) as info:
        _read_all(make(), limits=limits, chunk=chunk)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_zero_clusters_in_v2_follow_qemu() -> None:
    """Bit 0 is reserved in v2, but QEMU honours it; so do we (differential consistency)."""
    b = _base(version=2)
    b.raw_entry(1, 1)
    assert _read_all(b.build())[CS : 2 * CS] == bytes(CS)


def test_backing_refusals() -> None:
    plain = _base().build()
    with pytest.raises(UsageError, match="has no backing file; --backing only applies to qcow2 overlays"):
        _read_all(plain, backing=BytesSource(b"\0" * 512, "base"))
    # A two-level chain: the backing is itself an overlay.
    middle = _with(backing_file=b"bottom.qcow2").build()
    top = _with(backing_file=b"middle.qcow2", backing_format=b"qcow2").build()
    with pytest.raises(
        UnsupportedFeature,
        match=r"^middle is itself an overlay on 'bottom.qcow2'; backing chains deeper than one level are not supported",
    ):
        _read_all(top, backing=BytesSource(middle, "middle"))
    # The overlay says qcow2, the operator's file is not.
    with pytest.raises(UnsupportedFeature, match=r"says its backing file is qcow2, but base\.raw is not"):
        _read_all(top, backing=BytesSource(b"\0" * 4096, "base.raw"))
    vmdk = _with(backing_file=b"b.vmdk", backing_format=b"vmdk").build()
    with pytest.raises(UnsupportedFeature, match="backing format 'vmdk' is not supported"):
        _read_all(vmdk, backing=BytesSource(b"KDMV", "b.vmdk"))


def test_backing_format_raw_wins_over_content() -> None:
    """A backing declared raw is read raw even if it looks like qcow2 (as QEMU does)."""
    inner = _base().build()
    over = _with(backing_file=b"base", backing_format=b"raw")
    over.clusters.clear()
    data = _read_all(over.build(), backing=BytesSource(inner, "base"))
    assert data[:4] == b"QFI\xfb"


def test_missing_zstd_module_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    b = _base(compression_type=1)
    b.compressed(1, b"z" * 100)
    img = b.build()
    monkeypatch.setitem(_compress._zstd_cache, "mod", None)
    with pytest.raises(UnsupportedFeature, match=r"need the 'backports.zstd' package \(pip install backports.zstd\)"):
        _read_all(img)


def test_read_outside_the_disk() -> None:
    src = open_qcow2(BytesSource(_base().build(), "bad.qcow2"), limits=DEFAULT_LIMITS)
    with pytest.raises(CorruptStructure, match="outside the 0x40000-byte extent"):
        src.pread(src.size - 10, 11)
    with pytest.raises(CorruptStructure):
        src.pread(-1, 1)


def test_data_cluster_crossing_eof_reads_zeros_like_qemu() -> None:
    b = _base()
    img = b.build()
    # Move data cluster 5 to the last cluster and cut the file in its middle.
    last = len(img) - CS
    img = _patch(img, b.layout.l2_entry_offset(5, l2_entries=512), ">Q", last | (1 << 63))
    img = img[: last + 100]
    src = open_qcow2(BytesSource(img, "cut.qcow2"), limits=DEFAULT_LIMITS)
    got = src.pread(5 * CS, CS)
    assert got[100:] == bytes(CS - 100)


# -- property tests: any bytes -> data or VirtkitError, quickly --------------------------------


def _seed_images() -> dict[str, bytes]:
    compressed = _base()
    compressed.compressed(9, b"c" * 3000)
    ext = Qcow2Builder(size=1 << 18, cluster_bits=14, extended_l2=True)
    ext.data(1, b"e" * 16384, alloc=0xFF, zero=0xFF00)
    ext.zero(2, zero_mask=0xF0)
    return {"plain": _base().build(), "compressed": compressed.build(), "extl2": ext.build()}


_SEED_IMAGES = _seed_images()


def _exercise(img: bytes) -> None:
    try:
        src = open_qcow2(BytesSource(img, "fuzz.qcow2"), limits=DEFAULT_LIMITS)
        src.details()
        n = min(src.size, 1 << 20)
        if n:
            src.pread(0, n)
            src.pread(src.size - min(src.size, 70000), min(src.size, 70000))
    except VirtkitError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(sorted(_SEED_IMAGES)),
    flips=st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_images(seed: str, flips: list[tuple[int, int]]) -> None:
    img = bytearray(_SEED_IMAGES[seed])
    for pos, value in flips:
        if pos < len(img):
            img[pos] = value
    _exercise(bytes(img))


@settings(max_examples=150, deadline=None)
@given(body=st.binary(min_size=0, max_size=600))
def test_arbitrary_bytes_after_the_magic(body: bytes) -> None:
    _exercise(b"QFI\xfb" + body)


@settings(max_examples=100, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "version": st.integers(0, 5),
            "cluster_bits": st.integers(0, 40),
            "size": st.integers(0, 1 << 62),
            "l1_size": st.integers(0, (1 << 32) - 1),
            "l1_table_offset": st.integers(0, 1 << 20),
            "backing_file_offset": st.integers(0, 1 << 16),
            "backing_file_size": st.integers(0, 2000),
            "header_length": st.integers(0, 1 << 16),
            "incompatible_features": st.integers(0, 31),
            "compression_type": st.integers(0, 3),
        },
    )
)
def test_arbitrary_header_fields(fields: dict[str, int]) -> None:
    b = _base()
    b.header.update(fields)
    _exercise(b.build())


# -- the decompressors on their own ----------------------------------------------------------


def test_decompressors_exact_and_truncated() -> None:
    plain = bytes(range(256)) * 16
    assert _compress.decompress_deflate(_deflate(plain) + b"junk", 4096, what="c", offset=0) == plain
    assert _compress.decompress_zstd(_zstd(plain[:100]) + _zstd(plain[100:]), 4096, what="c", offset=0) == plain
    with pytest.raises(
        CorruptStructure, match="c at 0x200: zstd data ends before a full cluster, expected 0x1000, got 0x64"
    ):
        _compress.decompress_zstd(_zstd(plain[:100]), 4096, what="c", offset=512)
    with pytest.raises(CorruptStructure, match="zstd data ends before a full cluster"):
        _compress.decompress_zstd(_zstd(plain)[:-10], 4096, what="c", offset=0)
    with pytest.raises(CorruptStructure, match="deflate data ends before a full cluster"):
        _compress.decompress_deflate(_deflate(plain)[:-10], 4096, what="c", offset=0)
    with pytest.raises(CorruptStructure, match="bad deflate data"):
        _compress.decompress_deflate(b"\xff\xff\xff", 4096, what="c", offset=0)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), zstd=st.booleans())
def test_decompressors_any_bytes(data: bytes, zstd: bool) -> None:
    fn = _compress.decompress_zstd if zstd else _compress.decompress_deflate
    try:
        out = fn(data, 4096, what="c", offset=0)
    except CorruptStructure:
        return
    assert len(out) == 4096
