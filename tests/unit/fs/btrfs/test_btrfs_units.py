"""Unit tests of the btrfs building blocks: checksums, LZO1X, extent decompression, chunk maths."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtkit.boot.fs.btrfs import compression
from virtkit.boot.fs.btrfs.checksum import crc32c, csum_function, name_hash, xxhash64
from virtkit.boot.fs.btrfs.chunks import Chunk, Stripe, parse_chunk, parse_sys_chunk_array
from virtkit.boot.fs.btrfs.compression import decompress_extent
from virtkit.boot.fs.btrfs.lzo import LzoError, lzo1x_decompress
from virtkit.boot.fs.btrfs.structs import (
    BTRFS_BLOCK_GROUP_DATA,
    BTRFS_BLOCK_GROUP_DUP,
    BTRFS_BLOCK_GROUP_RAID0,
    BTRFS_BLOCK_GROUP_RAID1,
    BTRFS_BLOCK_GROUP_RAID1C3,
    BTRFS_BLOCK_GROUP_RAID5,
    BTRFS_BLOCK_GROUP_RAID6,
    BTRFS_BLOCK_GROUP_RAID10,
    format_uuid,
)
from virtkit.errors import CorruptStructure, UnsupportedFeature

# --- checksums ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"123456789", 0xE3069283),  # the CRC catalogue check value
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (b"", 0),
    ],
)
def test_crc32c_vectors(data: bytes, crc: int) -> None:
    assert crc32c(data) == crc


def test_crc32c_every_tail_length() -> None:
    """The 8-byte fast path and the byte tail agree with a bitwise reference."""

    def slow(data: bytes) -> int:
        c = 0xFFFFFFFF
        for b in data:
            c ^= b
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        return c ^ 0xFFFFFFFF

    blob = bytes((i * 37 + 11) & 0xFF for i in range(40))
    for n in range(len(blob) + 1):
        assert crc32c(blob[:n]) == slow(blob[:n]), n


def test_name_hash_of_default() -> None:
    # `btrfs inspect-internal dump-tree -t root`: key (ROOT_TREE_DIR DIR_ITEM 2378154706) name: default
    assert name_hash(b"default") == 2378154706


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", 0xEF46DB3751D8E999),  # xxHash specification / xxhsum -H64
        (b"abc", 0x44BC2CF5AD770999),
    ],
)
def test_xxhash64_vectors(data: bytes, digest: int) -> None:
    assert xxhash64(data) == digest


def test_unknown_checksum_type() -> None:
    with pytest.raises(UnsupportedFeature, match="unknown checksum type 9"):
        csum_function(9, "btrfs superblock on x")


def test_format_uuid() -> None:
    assert format_uuid(bytes(range(16))) == "00010203-0405-0607-0809-0a0b0c0d0e0f"


# --- LZO1X ---------------------------------------------------------------------------

END = b"\x11\x00\x00"
RUN_2100 = bytes((i * 7) & 0xFF for i in range(2100))
RUN_16400 = bytes((i * 13 + i // 256) & 0xFF for i in range(16400))

# Hand-assembled streams (Documentation/staging/lzo.rst), with exact outputs.
LZO_CASES = [
    ("first byte 22: 5 literals", bytes([22]) + b"hello" + END, b"hello"),
    ("first byte 19: 2 literals, then M1 (state 2) copies 2 from distance 2", bytes([19]) + b"ab" + bytes([4, 0]) + END, b"abab"),
    ("long literal run 20 (state 0, L=0 then 2)", bytes([0, 2]) + bytes(range(20)) + END, bytes(range(20))),
    ("long literal run 300 (one zero byte)", bytes([0, 0, 27]) + bytes(300) + END, bytes(300)),
    ("M3 overlapping copy: 1 literal repeated 10 times", bytes([18]) + b"a" + bytes([40, 0, 0]) + END, b"a" * 11),
    ("M2 3 bytes from distance 4 after a 4-literal run", bytes([21]) + b"abcd" + bytes([76, 0]) + END, b"abcdabc"),
    ("M2 with 2 trailing literals", bytes([21]) + b"abcd" + bytes([78, 0]) + b"XY" + END, b"abcdabcXY"),
    (
        "M1 after a run: 3 bytes from distance 2049",
        bytes([0]) + bytes(8) + bytes([42]) + RUN_2100 + bytes([0, 0]) + END,
        RUN_2100 + RUN_2100[2100 - 2049 : 2100 - 2049 + 3],
    ),
    (
        "M4: 3 bytes from distance 16385",
        bytes([0]) + bytes(64) + bytes([16400 - 3 - 15 - 255 * 64]) + RUN_16400 + bytes([17, 4, 0]) + END,
        RUN_16400 + RUN_16400[16400 - 16385 : 16400 - 16385 + 3],
    ),
]


@pytest.mark.parametrize(("what", "stream", "expected"), LZO_CASES, ids=[c[0] for c in LZO_CASES])
def test_lzo_hand_assembled(what: str, stream: bytes, expected: bytes) -> None:
    assert lzo1x_decompress(stream, 1 << 20) == expected


LZO_BAD = [
    (b"", 100, "empty stream"),
    (bytes([22]) + b"hel", 100, "input overrun in the first literal run"),
    (bytes([22]) + b"hello", 100, "no end-of-stream marker"),
    (bytes([18]) + b"a" + bytes([40, 4, 0]) + END, 100, "match distance 2 reaches before the start of the output"),
    (bytes([22]) + b"hello" + END, 3, "output overrun: over 3 bytes"),
    (bytes([18]) + b"a" + bytes([40, 0, 0]) + END, 5, "output overrun: over 5 bytes"),
    (bytes([22]) + b"hello" + END + b"x", 100, "1 bytes after the end-of-stream marker"),
    (bytes([22]) + b"hello" + b"\x12\x00\x00", 100, "malformed end-of-stream marker"),
    (bytes([0, 0, 0]), 100, "input overrun in a length"),
    (bytes([0, 5]) + b"abc", 100, "input overrun: literal run of 23"),
    (bytes([21]) + b"abcd" + bytes([76]), 100, "input overrun at 6"),
]


@pytest.mark.parametrize(("stream", "max_out", "message"), LZO_BAD, ids=[m for _, _, m in LZO_BAD])
def test_lzo_hostile(stream: bytes, max_out: int, message: str) -> None:
    with pytest.raises(LzoError, match=message.replace("(", r"\(")):
        lzo1x_decompress(stream, max_out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=5000))
def test_lzo_fuzz_arbitrary_bytes(stream: bytes, max_out: int) -> None:
    try:
        out = lzo1x_decompress(stream, max_out)
    except LzoError:
        return
    assert len(out) <= max_out


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([c[1] for c in LZO_CASES]), st.data())
def test_lzo_fuzz_mutated_streams(stream: bytes, data: st.DataObject) -> None:
    buf = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        out = lzo1x_decompress(bytes(buf[:cut]), 20000)
    except LzoError:
        return
    assert len(out) <= 20000


# --- extent decompression ---------------------------------------------------------------


def lzo_literal_stream(data: bytes) -> bytes:
    """A valid LZO1X stream holding ``data`` as one literal run (length >= 19)."""
    rest = len(data) - 3 - 15
    assert rest >= 1
    zeros, last = divmod(rest, 255)
    if last == 0:
        zeros, last = zeros - 1, 255
    return bytes([0]) + bytes(zeros) + bytes([last]) + data + END


def frame_lzo(segments: list[bytes], sectorsize: int) -> tuple[bytes, int]:
    """btrfs framing (fs/btrfs/lzo.c): LE32 total, then LE32 length + data per segment, a
    segment header never crossing a sector (zero padding).  Returns (bytes, paddings)."""
    out = bytearray(4)
    pads = 0
    for seg in segments:
        left = sectorsize - len(out) % sectorsize
        if left < 4:
            out += bytes(left)
            pads += 1
        out += struct.pack("<I", len(seg)) + seg
    out[0:4] = struct.pack("<I", len(out))
    return bytes(out), pads


def _sectors(data: bytes, sectorsize: int) -> list[bytes]:
    return [data[i : i + sectorsize] for i in range(0, len(data), sectorsize)]


def test_lzo_framing_several_segments() -> None:
    """Eight sector-sized segments; the extent on disk is rounded up with zeros after the frame."""
    sectorsize = 4096
    data = bytes((i * 31 + i // 4096) & 0xFF for i in range(7 * 4096 + 100))
    framed, _ = frame_lzo([lzo_literal_stream(s) for s in _sectors(data, sectorsize)], sectorsize)
    for tail in (0, 1, 4095):
        assert decompress_extent(2, framed + bytes(tail), len(data), sectorsize=sectorsize, what="x") == data


def test_lzo_framing_finds_padding_exactly() -> None:
    """A first segment that ends 1..3 bytes before a sector boundary forces the next header over."""
    sectorsize = 4096
    for gap in (1, 2, 3):
        n = next(n for n in range(3900, 4096) if 8 + len(lzo_literal_stream(bytes(n))) == sectorsize - gap)
        first = bytes(n)
        seg1 = lzo_literal_stream(first)
        assert 4 + 4 + len(seg1) == sectorsize - gap
        seg2 = lzo_literal_stream(b"z" * 50)
        framed, pads = frame_lzo([seg1, seg2], sectorsize)
        assert pads == 1
        assert decompress_extent(2, framed, len(first) + 50, sectorsize=sectorsize, what="x") == first + b"z" * 50


LZO_FRAME_BAD = [
    (b"\x01\x00", "lzo data shorter than its header"),
    (struct.pack("<I", 100) + bytes(10), "lzo total length header does not fit the extent"),
    (struct.pack("<I", 2), "lzo total length header does not fit the extent"),
    (struct.pack("<II", 30, 1000) + bytes(22), "lzo segment length overrun at 4"),
    (struct.pack("<II", 12, 5000) + bytes(4), "lzo segment length overrun at 4"),
    (struct.pack("<I", 6) + b"\x00\x00", "lzo segment header at 4 runs past the total length 6"),
    (struct.pack("<II", 12, 4) + b"\x16abc", "lzo segment at 4 is corrupt"),
]


@pytest.mark.parametrize(("data", "message"), LZO_FRAME_BAD, ids=[m for _, m in LZO_FRAME_BAD])
def test_lzo_framing_hostile(data: bytes, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compression._zstd_cache, "lzo", None)
    with pytest.raises(CorruptStructure, match=message):
        decompress_extent(2, data, 4096, sectorsize=4096, what="btrfs extent")


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure-python-lzo", "python-lzo"])
def test_lzo_segment_bigger_than_wanted_is_an_overrun(accelerated: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if accelerated:
        pytest.importorskip("lzo", reason="python-lzo (the optional virtkit[lzo] accelerator) is not installed")
        monkeypatch.delitem(compression._zstd_cache, "lzo", raising=False)
    else:
        monkeypatch.setitem(compression._zstd_cache, "lzo", None)
    framed, _ = frame_lzo([lzo_literal_stream(bytes(100))], 4096)
    if accelerated:
        with pytest.raises(CorruptStructure, match=r"lzo segment at 4 is corrupt \(Compressed data violation"):
            decompress_extent(2, framed, 50, sectorsize=4096, what="btrfs extent")
        return
    with pytest.raises(CorruptStructure, match="output overrun: over 50 bytes"):
        decompress_extent(2, framed, 50, sectorsize=4096, what="btrfs extent")


def test_zlib_extent() -> None:
    data = bytes(range(256)) * 100
    packed = zlib.compress(data, 3) + bytes(100)  # the extent is sector-rounded
    assert decompress_extent(1, packed, len(data), sectorsize=4096, what="x") == data
    # shorter output is zero-filled up to ram_bytes, as the kernel does
    assert decompress_extent(1, packed, len(data) + 10, sectorsize=4096, what="x") == data + bytes(10)
    with pytest.raises(CorruptStructure, match=r"^btrfs extent 7: decompresses to more than ram_bytes, expected 0x3e8, got 0x3e9"):
        decompress_extent(1, packed, 1000, sectorsize=4096, what="btrfs extent 7")
    with pytest.raises(CorruptStructure, match="zlib stream is corrupt"):
        decompress_extent(1, b"\x78\x9c" + b"\xff" * 50, 1000, sectorsize=4096, what="x")
    # a raw deflate stream without the zlib header is also accepted by zlib's path? no: corrupt
    with pytest.raises(CorruptStructure):
        decompress_extent(1, b"garbage!" * 4, 1000, sectorsize=4096, what="x")


def test_zstd_extent() -> None:
    zstd = compression.zstd_module()
    data = b"virtkit " * 5000
    packed = zstd.compress(data) + bytes(64)
    assert decompress_extent(3, packed, len(data), sectorsize=4096, what="x") == data
    with pytest.raises(CorruptStructure, match="decompresses to more than ram_bytes"):
        decompress_extent(3, packed, 4096, sectorsize=4096, what="x")
    with pytest.raises(CorruptStructure, match="zstd frame is corrupt"):
        decompress_extent(3, b"\x28\xb5\x2f\xfd" + b"\xff" * 20, 4096, sectorsize=4096, what="x")
    with pytest.raises(CorruptStructure, match="zstd frame is truncated"):
        decompress_extent(3, packed[:20], len(data), sectorsize=4096, what="x")


def test_zstd_without_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compression._zstd_cache, "mod", None)
    with pytest.raises(UnsupportedFeature, match=r"backports\.zstd.*pip install 'virtkit\[zstd\]'"):
        decompress_extent(3, b"whatever", 10, sectorsize=4096, what="x")


def test_unknown_compression() -> None:
    with pytest.raises(UnsupportedFeature, match="unknown compression type 7"):
        decompress_extent(7, b"", 1, sectorsize=4096, what="x")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, 2, 3]), st.binary(max_size=600), st.integers(1, 128 * 1024))
def test_decompress_fuzz(kind: int, data: bytes, ram_bytes: int) -> None:
    try:
        out = decompress_extent(kind, data, ram_bytes, sectorsize=4096, what="x")
    except (CorruptStructure, UnsupportedFeature):
        return
    assert len(out) == ram_bytes


# --- chunks --------------------------------------------------------------------------

K = 64 * 1024


def _chunk(profile: int, devids: list[int], sub: int = 0) -> Chunk:
    stripes = tuple(Stripe(d, d << 20, bytes(16)) for d in devids)
    return Chunk(logical=1 << 30, length=len(devids) * 4 * K, stripe_len=K, type=BTRFS_BLOCK_GROUP_DATA | profile, sub_stripes=sub, stripes=stripes)


# (profile, devids, sub_stripes, offset, length, mirror) -> [(devid, physical, length)]
MAPPING = [
    ("raid0 first unit", BTRFS_BLOCK_GROUP_RAID0, [1, 2], 0, 0, 4096, 0, [(1, 1 << 20, 4096)]),
    ("raid0 second unit", BTRFS_BLOCK_GROUP_RAID0, [1, 2], 0, K, 4096, 0, [(2, 2 << 20, 4096)]),
    ("raid0 second row", BTRFS_BLOCK_GROUP_RAID0, [1, 2], 0, 3 * K + 8192, 4096, 0, [(2, (2 << 20) + K + 8192, 4096)]),
    ("raid0 across units", BTRFS_BLOCK_GROUP_RAID0, [1, 2], 0, K - 4096, 8192, 0, [(1, (1 << 20) + K - 4096, 4096), (2, 2 << 20, 4096)]),
    ("raid10 group 1 mirror 0", BTRFS_BLOCK_GROUP_RAID10, [1, 2, 3, 4], 2, K, 4096, 0, [(3, 3 << 20, 4096)]),
    ("raid10 group 1 mirror 1", BTRFS_BLOCK_GROUP_RAID10, [1, 2, 3, 4], 2, K, 4096, 1, [(4, 4 << 20, 4096)]),
    ("raid10 row 1", BTRFS_BLOCK_GROUP_RAID10, [1, 2, 3, 4], 2, 2 * K, 4096, 1, [(2, (2 << 20) + K, 4096)]),
    ("raid5 row 0 data 1", BTRFS_BLOCK_GROUP_RAID5, [1, 2, 3], 0, K, 4096, 0, [(2, 2 << 20, 4096)]),
    ("raid5 row 1 data 0 (parity rotated)", BTRFS_BLOCK_GROUP_RAID5, [1, 2, 3], 0, 2 * K, 4096, 0, [(2, (2 << 20) + K, 4096)]),
    ("raid5 row 1 data 1", BTRFS_BLOCK_GROUP_RAID5, [1, 2, 3], 0, 3 * K, 4096, 0, [(3, (3 << 20) + K, 4096)]),
    ("raid6 row 1 data 1", BTRFS_BLOCK_GROUP_RAID6, [1, 2, 3, 4], 0, 3 * K, 4096, 0, [(3, (3 << 20) + K, 4096)]),
    ("raid1 mirror 1", BTRFS_BLOCK_GROUP_RAID1, [1, 2], 0, 5000, 100, 1, [(2, (2 << 20) + 5000, 100)]),
    ("dup mirror 1", BTRFS_BLOCK_GROUP_DUP, [1, 1], 0, 5000, 100, 1, [(1, (1 << 20) + 5000, 100)]),
]


@pytest.mark.parametrize(("what", "profile", "devids", "sub", "offset", "length", "mirror", "pieces"), MAPPING, ids=[m[0] for m in MAPPING])
def test_chunk_mapping(what: str, profile: int, devids: list[int], sub: int, offset: int, length: int, mirror: int, pieces: list[tuple[int, int, int]]) -> None:
    chunk = _chunk(profile, devids, sub)
    got = [(s.devid, phys, n) for s, phys, n in chunk.map(offset, length, mirror)]
    assert got == pieces


def test_chunk_copies() -> None:
    assert [_chunk(p, d, s).copies for p, d, s in [
        (0, [1], 0),
        (BTRFS_BLOCK_GROUP_DUP, [1, 1], 0),
        (BTRFS_BLOCK_GROUP_RAID1C3, [1, 2, 3], 0),
        (BTRFS_BLOCK_GROUP_RAID10, [1, 2, 3, 4], 2),
        (BTRFS_BLOCK_GROUP_RAID5, [1, 2, 3], 0),
    ]] == [1, 2, 3, 2, 1]


def _chunk_bytes(*, length: int = 8 << 20, stripe_len: int = K, type: int = BTRFS_BLOCK_GROUP_DATA, num_stripes: int = 1, sub: int = 0, stripes: int | None = None) -> bytes:
    head = struct.pack("<QQQQIIIHH", length, 2, stripe_len, type, 4096, 4096, 4096, num_stripes, sub)
    n = num_stripes if stripes is None else stripes
    return head + b"".join(struct.pack("<QQ16s", i + 1, (i + 1) << 20, bytes(16)) for i in range(n))


CHUNK_BAD = [
    ("absurd stripe count", _chunk_bytes(num_stripes=65535, stripes=1), None, "65535 stripes do not fit"),
    ("item size mismatch", _chunk_bytes(num_stripes=2), 48 + 32, "item size does not match 2 stripes"),
    ("no stripes", _chunk_bytes(num_stripes=0), None, "no stripes"),
    ("zero length", _chunk_bytes(length=0), None, "zero length"),
    ("wraps", _chunk_bytes(length=(1 << 64) - 0x1000), None, "length 0xfffffffffffff000 wraps the address space"),
    ("stripe_len", _chunk_bytes(stripe_len=3), None, "bad stripe_len"),
    ("no type bit", _chunk_bytes(type=BTRFS_BLOCK_GROUP_RAID0), None, "type has no data/metadata/system bit"),
    ("two profiles", _chunk_bytes(type=1 | BTRFS_BLOCK_GROUP_RAID0 | BTRFS_BLOCK_GROUP_RAID1, num_stripes=2), None, "more than one RAID profile"),
    ("dup with 3", _chunk_bytes(type=1 | BTRFS_BLOCK_GROUP_DUP, num_stripes=3), None, "dup chunk with 3 stripes, expected 2, got 3"),
    ("raid1c3 with 2", _chunk_bytes(type=1 | BTRFS_BLOCK_GROUP_RAID1C3, num_stripes=2), None, "raid1c3 chunk with 2 stripes"),
    ("raid6 with 2", _chunk_bytes(type=1 | BTRFS_BLOCK_GROUP_RAID6, num_stripes=2), None, "raid6 chunk with 2 stripes, expected at least 3"),
    ("raid10 groups", _chunk_bytes(type=1 | BTRFS_BLOCK_GROUP_RAID10, num_stripes=4, sub=3), None, "raid10 with 4 stripes in groups of 3"),
    ("single with 2", _chunk_bytes(num_stripes=2), None, "single chunk with several stripes"),
]


@pytest.mark.parametrize(("what", "data", "item_size", "message"), CHUNK_BAD, ids=[c[0] for c in CHUNK_BAD])
def test_chunk_hostile(what: str, data: bytes, item_size: int | None, message: str) -> None:
    with pytest.raises(CorruptStructure, match=rf"^btrfs chunk 0x100000 on test at 0x100000: {message}"):
        parse_chunk(0x100000, data, 0, where="test", item_size=item_size)


def test_sys_chunk_array_hostile() -> None:
    key = struct.pack("<QBQ", 256, 228, 0x100000)
    good = key + _chunk_bytes()
    assert [c.logical for c in parse_sys_chunk_array(good, where="t")] == [0x100000]
    with pytest.raises(CorruptStructure, match="entry is not a CHUNK_ITEM, expected 0xe4, got 0xe5"):
        parse_sys_chunk_array(struct.pack("<QBQ", 256, 229, 0) + _chunk_bytes(), where="t")
    with pytest.raises(CorruptStructure, match="truncated"):
        parse_sys_chunk_array(good[:-40], where="t")
