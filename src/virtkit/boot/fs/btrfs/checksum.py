"""Checksums btrfs uses for its superblock, tree blocks and names: pure Python.

References:
    include/uapi/linux/btrfs_tree.h (``BTRFS_CSUM_TYPE_*``),
    fs/btrfs/disk-io.c (``btrfs_csum_data`` / superblock and tree block checks),
    fs/btrfs/ctree.h (``btrfs_name_hash`` = ``crc32c(~1, name)``),
    RFC 3720 appendix B.4 (CRC-32C, the Castagnoli polynomial),
    the xxHash specification (doc/xxhash_spec.md in Cyan4973/xxHash).

``crc32c`` is table driven, eight bytes per step ("slicing by 8"), because
every tree block read is verified.  ``xxhash64`` is the reference algorithm
written out on Python integers.  SHA-256 and BLAKE2b-256 come from hashlib.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from virtkit.errors import UnsupportedFeature

__all__ = [
    "CSUM_NAMES",
    "CSUM_SIZES",
    "crc32c",
    "crc32c_raw",
    "csum_function",
    "name_hash",
    "xxhash64",
]

_CRC32C_POLY = 0x82F63B78  # reflected Castagnoli polynomial, RFC 3720 B.4


def _make_tables() -> list[list[int]]:
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CRC32C_POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


_T = _make_tables()
_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _T
_PAIRS = struct.Struct("<II")


def crc32c_raw(crc: int, data: bytes | bytearray | memoryview) -> int:
    """The kernel's ``crc32c(seed, data)``: no inversion on entry or exit.

    Args:
        crc: the running register (the seed).
        data: bytes to fold in.

    Returns:
        the new register value.
    """
    mv = memoryview(data).cast("B")
    n = len(mv)
    head = n - (n % 8)
    t0, t1, t2, t3, t4, t5, t6, t7 = _T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7
    if head:
        for one, two in _PAIRS.iter_unpack(mv[:head]):
            one ^= crc
            crc = (
                t7[one & 0xFF]
                ^ t6[(one >> 8) & 0xFF]
                ^ t5[(one >> 16) & 0xFF]
                ^ t4[one >> 24]
                ^ t3[two & 0xFF]
                ^ t2[(two >> 8) & 0xFF]
                ^ t1[(two >> 16) & 0xFF]
                ^ t0[two >> 24]
            )
    for b in mv[head:]:
        crc = (crc >> 8) ^ t0[(crc ^ b) & 0xFF]
    return crc


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """Standard CRC-32C (init ``~0``, final inversion); ``crc32c(b"123456789") == 0xE3069283``."""
    return crc32c_raw(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def name_hash(name: bytes) -> int:
    """The key offset of a DIR_ITEM: ``crc32c((u32)~1, name)`` without final inversion (fs/btrfs/ctree.h)."""
    return crc32c_raw(0xFFFFFFFE, name)


# xxHash64 primes, from the xxHash specification.
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5
_M64 = 0xFFFFFFFFFFFFFFFF
_QUADS = struct.Struct("<QQQQ")


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M64
    return (_rotl(acc, 31) * _P1) & _M64


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M64


def xxhash64(data: bytes | bytearray | memoryview, seed: int = 0) -> int:
    """XXH64 of ``data`` (btrfs uses seed 0 and stores the result little-endian)."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    pos = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M64
        v2 = (seed + _P2) & _M64
        v3 = seed & _M64
        v4 = (seed - _P1) & _M64
        stripes = n - (n % 32)
        for a, b, c, d in _QUADS.iter_unpack(mv[:stripes]):
            v1 = (_rotl((v1 + a * _P2) & _M64, 31) * _P1) & _M64
            v2 = (_rotl((v2 + b * _P2) & _M64, 31) * _P1) & _M64
            v3 = (_rotl((v3 + c * _P2) & _M64, 31) * _P1) & _M64
            v4 = (_rotl((v4 + d * _P2) & _M64, 31) * _P1) & _M64
        pos = stripes
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M64
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while pos + 8 <= n:
        (lane,) = struct.unpack_from("<Q", mv, pos)
        h ^= _round(0, lane)
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        pos += 8
    if pos + 4 <= n:
        (lane,) = struct.unpack_from("<I", mv, pos)
        h ^= (lane * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        pos += 4
    while pos < n:
        h ^= (mv[pos] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        pos += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


# btrfs_csum_type (include/uapi/linux/btrfs_tree.h): name and stored digest size.
CSUM_NAMES = {0: "crc32c", 1: "xxhash64", 2: "sha256", 3: "blake2b"}
CSUM_SIZES = {0: 4, 1: 8, 2: 32, 3: 32}


def _csum_crc32c(data: bytes | memoryview) -> bytes:
    return struct.pack("<I", crc32c(data))


def _csum_xxhash64(data: bytes | memoryview) -> bytes:
    return struct.pack("<Q", xxhash64(data))


def _csum_sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _csum_blake2b(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


_FUNCS: dict[int, Callable[[bytes | memoryview], bytes]] = {
    0: _csum_crc32c,
    1: _csum_xxhash64,
    2: _csum_sha256,
    3: _csum_blake2b,
}


def csum_function(csum_type: int, where: str) -> Callable[[bytes | memoryview], bytes]:
    """The digest function for a superblock's ``csum_type``.

    Args:
        csum_type: ``btrfs_super_block.csum_type``.
        where: context for the error message.

    Returns:
        a function from bytes to the stored digest bytes (4, 8 or 32 of them; the
        on-disk field is 32 bytes, the rest zero).

    Raises:
        UnsupportedFeature: an unknown checksum type.
    """
    try:
        return _FUNCS[csum_type]
    except KeyError:
        raise UnsupportedFeature(f"{where}: unknown checksum type {csum_type}") from None
