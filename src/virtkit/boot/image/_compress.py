"""Decompressors for qcow2 compressed clusters: raw deflate and zstd.

Each function turns the bytes stored for one compressed cluster into exactly
``out_size`` bytes (one cluster), or raises :class:`CorruptStructure`.  The
output is bounded by ``out_size`` whatever the input claims, so a
decompression bomb costs at most one cluster of memory.

References:
    QEMU ``docs/interop/qcow2.txt``, "Compressed Clusters Descriptor": the stored
    data may be followed by unrelated bytes (the tail of the last 512-byte
    sector); decompression stops when it has produced a cluster.
    QEMU ``block/qcow2-threads.c`` (facts only): deflate is raw (no zlib
    header) with a 4 KiB window (``inflateInit2(-12)``); a zstd cluster may
    consist of several frames, read until the cluster is full.
"""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType
from typing import Any

from virtkit.errors import CorruptStructure, UnsupportedFeature

__all__ = ["ZSTD_PACKAGE", "decompress_deflate", "decompress_zstd", "zstd_module"]

DEFLATE_WBITS = -12  # block/qcow2-threads.c: inflateInit2(&strm, -12), raw deflate, 4 KiB window
ZSTD_WINDOW_LOG_MAX = 27  # zstd.h ZSTD_WINDOWLOG_LIMIT_DEFAULT: caps decoder memory at 128 MiB
ZSTD_PACKAGE = "backports.zstd"  # the stdlib module compression.zstd before Python 3.14

_zstd_cache: dict[str, Any] = {}


def zstd_module() -> ModuleType | None:
    """Return the zstd module (``compression.zstd`` or ``backports.zstd``), or None."""
    if "mod" not in _zstd_cache:
        mod: ModuleType | None = None
        for candidate in ("compression.zstd", "backports.zstd"):  # stdlib on Python >= 3.14, else the backport
            try:
                mod = importlib.import_module(candidate)
            except ImportError:
                continue
            break
        _zstd_cache["mod"] = mod
    result: ModuleType | None = _zstd_cache["mod"]
    return result


def decompress_deflate(data: bytes, out_size: int, *, what: str, offset: int) -> bytes:
    """Inflate one qcow2 cluster compressed with raw deflate.

    Args:
        data: the stored bytes (may carry trailing garbage).
        out_size: the cluster size; exactly this many bytes must come out.
        what: the structure, for errors ("compressed cluster 12 of disk.qcow2").
        offset: host file offset of ``data``, for errors.

    Returns:
        ``out_size`` bytes.

    Raises:
        CorruptStructure: the stream is invalid or ends before a full cluster.
    """
    dec = zlib.decompressobj(DEFLATE_WBITS)
    try:
        out = dec.decompress(data, out_size)
    except zlib.error as exc:
        raise CorruptStructure(what, f"bad deflate data ({exc})", offset=offset) from None
    if len(out) != out_size:
        raise CorruptStructure(
            what, "deflate data ends before a full cluster", offset=offset, expected=out_size, got=len(out)
        )
    return out


def decompress_zstd(data: bytes, out_size: int, *, what: str, offset: int) -> bytes:
    """Decompress one qcow2 cluster compressed with zstd (one or more frames).

    Args:
        data: the stored bytes (may carry trailing garbage).
        out_size: the cluster size; exactly this many bytes must come out.
        what: the structure, for errors.
        offset: host file offset of ``data``, for errors.

    Returns:
        ``out_size`` bytes.

    Raises:
        UnsupportedFeature: no zstd module is installed.
        CorruptStructure: the data is not valid zstd or ends before a full cluster.
    """
    zstd = zstd_module()
    if zstd is None:
        raise UnsupportedFeature(
            f"{what}: zstd-compressed qcow2 clusters need the '{ZSTD_PACKAGE}' package "
            f"(pip install {ZSTD_PACKAGE}) or Python 3.14's compression.zstd"
        )
    parts: list[bytes] = []
    got = 0
    rest = data
    options = {zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
    # Every frame produces at least one byte or consumes its input, so the loop
    # ends after at most len(data) + out_size rounds; in practice one or two.
    while got < out_size:
        if not rest:
            raise CorruptStructure(
                what, "zstd data ends before a full cluster", offset=offset, expected=out_size, got=got
            )
        dec = zstd.ZstdDecompressor(options=options)
        try:
            chunk = dec.decompress(rest, max_length=out_size - got)
        except zstd.ZstdError as exc:
            raise CorruptStructure(what, f"bad zstd data ({exc})", offset=offset) from None
        parts.append(chunk)
        got += len(chunk)
        if got >= out_size:
            break
        if not dec.eof:
            # The frame wants more input than there is: truncated.
            raise CorruptStructure(
                what, "zstd data ends before a full cluster", offset=offset, expected=out_size, got=got
            )
        nxt = dec.unused_data
        if len(nxt) >= len(rest):  # pragma: no cover - defensive: a frame always consumes its header
            raise CorruptStructure(what, "zstd frame made no progress", offset=offset)
        rest = nxt
    return b"".join(parts)
