"""Decompressing btrfs extents: zlib, lzo (btrfs's own framing) and zstd.

References:
    fs/btrfs/zlib.c (``zlib_decompress_bio``: a zlib stream; when the two-byte
    header is a plain deflate header it is skipped and the adler32 is not checked),
    fs/btrfs/lzo.c (the framing comment and ``lzo_decompress_bio``: a LE32 total
    length, then per-sector segments each with a LE32 length; a segment header
    never crosses a sector boundary, so up to 3 zero bytes pad a sector),
    fs/btrfs/zstd.c (one zstd frame, window at most 2^17),
    fs/btrfs/compression.h (``BTRFS_MAX_UNCOMPRESSED`` = 128 KiB).

Every output is bounded by the extent's ``ram_bytes`` (itself at most 128 KiB,
checked by the caller): a stream that would produce more is corrupt.  A
shorter output is zero-filled up to ``ram_bytes``, as the kernel does.
"""

from __future__ import annotations

import importlib
import struct
import zlib
from typing import Any

from virtkit.boot.fs.btrfs.lzo import LzoError, lzo1x_decompress, lzo1x_worst_compress
from virtkit.boot.fs.btrfs.structs import BTRFS_COMPRESS_LZO, BTRFS_COMPRESS_ZLIB, BTRFS_COMPRESS_ZSTD
from virtkit.errors import CorruptStructure, UnsupportedFeature

__all__ = ["decompress_extent", "zstd_module"]

_ZSTD_WINDOW_LOG_MAX = 20  # btrfs writes <= 17 (ZSTD_BTRFS_MAX_WINDOWLOG); some slack, bounded memory

_zstd_cache: dict[str, Any] = {}


def zstd_module() -> Any:
    """The zstd module: stdlib ``compression.zstd`` (3.14+) or ``backports.zstd``.

    Raises:
        UnsupportedFeature: neither is installed.
    """
    if "mod" not in _zstd_cache:
        mod: Any = None
        for name in ("compression.zstd", "backports.zstd"):
            try:
                mod = importlib.import_module(name)
                break
            except ImportError:
                continue
        _zstd_cache["mod"] = mod
    if _zstd_cache["mod"] is None:
        raise UnsupportedFeature(
            "btrfs zstd-compressed data needs the 'backports.zstd' package on Python < 3.14 "
            "(pip install 'virtkit[zstd]')"
        )
    return _zstd_cache["mod"]


def _lzo_accelerator() -> Any:
    if "lzo" not in _zstd_cache:
        try:
            accel: Any = importlib.import_module("lzo")  # python-lzo, an optional accelerator
        except ImportError:
            accel = None
        _zstd_cache["lzo"] = accel
    return _zstd_cache["lzo"]


def decompress_extent(compression: int, data: bytes, ram_bytes: int, *, sectorsize: int, what: str) -> bytes:
    """Decompress one extent's bytes to exactly ``ram_bytes`` bytes.

    Args:
        compression: ``btrfs_file_extent_item.compression``.
        data: the compressed bytes (the whole on-disk extent or the inline data).
        ram_bytes: the decompressed size the item records.
        sectorsize: the filesystem's sector size (the lzo segment unit).
        what: the extent, for messages ("btrfs extent 0x1500000 of inode 257 ...").

    Returns:
        ``ram_bytes`` bytes.

    Raises:
        CorruptStructure: the stream is malformed or decompresses to more than ``ram_bytes``.
        UnsupportedFeature: an unknown compression type, or zstd without its module.
    """
    if compression == BTRFS_COMPRESS_ZLIB:
        out = _zlib(data, ram_bytes, what)
    elif compression == BTRFS_COMPRESS_ZSTD:
        out = _zstd(data, ram_bytes, what)
    elif compression == BTRFS_COMPRESS_LZO:
        out = _lzo(data, ram_bytes, sectorsize, what)
    else:
        raise UnsupportedFeature(f"{what}: unknown compression type {compression}")
    if len(out) > ram_bytes:
        raise CorruptStructure(what, "decompresses to more than ram_bytes", expected=ram_bytes, got=len(out))
    if len(out) < ram_bytes:
        out += bytes(ram_bytes - len(out))
    return out


def _zlib(data: bytes, ram_bytes: int, what: str) -> bytes:
    wbits = 15
    body = data
    # zlib.c: a deflate header without a preset dictionary is skipped and raw inflate used
    if len(data) > 2 and data[0] & 0x0F == 8 and not data[1] & 0x20 and ((data[0] << 8) | data[1]) % 31 == 0:
        wbits = -((data[0] >> 4) + 8)
        body = data[2:]
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(body, ram_bytes + 1)
    except (zlib.error, ValueError) as exc:
        raise CorruptStructure(what, f"zlib stream is corrupt ({exc})") from None
    return out


def _zstd(data: bytes, ram_bytes: int, what: str) -> bytes:
    mod = zstd_module()
    try:
        d = mod.ZstdDecompressor(options={mod.DecompressionParameter.window_log_max: _ZSTD_WINDOW_LOG_MAX})
        out = d.decompress(data, max_length=ram_bytes + 1)
    except (mod.ZstdError, EOFError, ValueError) as exc:
        raise CorruptStructure(what, f"zstd frame is corrupt ({exc})") from None
    if not d.eof and len(out) <= ram_bytes:
        raise CorruptStructure(what, "zstd frame is truncated")
    return bytes(out)


def _lzo(data: bytes, ram_bytes: int, sectorsize: int, what: str) -> bytes:
    if len(data) < 4:
        raise CorruptStructure(what, "lzo data shorter than its header", got=len(data))
    (total,) = struct.unpack_from("<I", data, 0)
    if total > len(data) or total < 4:
        raise CorruptStructure(what, "lzo total length header does not fit the extent", expected=f"4..{len(data)}", got=total)
    max_seg = lzo1x_worst_compress(sectorsize) + 2  # fs/btrfs/lzo.c's bound (its helper adds 2)
    accel = _lzo_accelerator()
    out = bytearray()
    pos = 4
    while pos < total and len(out) < ram_bytes:
        if pos + 4 > total:
            raise CorruptStructure(what, f"lzo segment header at {pos} runs past the total length {total}")
        (seg,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if seg > max_seg or pos + seg > total:
            raise CorruptStructure(what, f"lzo segment length overrun at {pos - 4}", expected=f"<= {min(max_seg, total - pos)}", got=seg)
        want = min(sectorsize, ram_bytes - len(out))
        chunk = data[pos : pos + seg]
        try:
            if accel is not None:
                piece = accel.decompress(chunk, False, want)
            else:
                piece = lzo1x_decompress(chunk, want)
        except LzoError as exc:
            raise CorruptStructure(what, f"lzo segment at {pos - 4} is corrupt ({exc})") from None
        except Exception as exc:  # python-lzo raises lzo.error (and MemoryError on absurd sizes)
            if accel is None or not isinstance(exc, (accel.error, MemoryError)):
                raise
            raise CorruptStructure(what, f"lzo segment at {pos - 4} is corrupt ({exc})") from None
        out += piece
        pos += seg
        left = sectorsize - pos % sectorsize
        if left < 4:  # the next segment header starts in the next sector
            pos += left
    return bytes(out)
