"""A safe LZO1X decompressor in pure Python (the format btrfs's ``lzo`` compression uses).

References:
    Documentation/staging/lzo.rst in Linux ("LZO stream format as understood by
    Linux's LZO decompressor": instruction encodings, states, end marker),
    the LZO distribution's doc/LZO.TXT (Markus F.X.J. Oberhumer).

Written from the format description.  The stream is a sequence of
instructions; each copies a run of literals from the input or a match from the
output already produced.  What an instruction in 0..15 means depends on the
*state*: how many literals the previous instruction copied::

    byte        state   meaning
    0..15       0       literal run: 3 + (L or 15 + 255*zeros + next) bytes; state := 4
    0..15       1..3    2-byte match, distance (H<<2) + D + 1        (M1)
    0..15       4       3-byte match, distance (H<<2) + D + 2049     (M1 after a run)
    16..31      any     match 2+L, distance 16384 + (H<<14) + (LE16>>2); 16384 = end (M4)
    32..63      any     match 2+L, distance (LE16>>2) + 1                (M3)
    64..127     any     match 3..4, distance (H<<3) + D + 1              (M2)
    128..255    any     match 5..8, distance (H<<3) + D + 1              (M2)

Every match (and the first byte, when it is > 17) is followed by S = 0..3
literals; S becomes the state.  Each read is checked against the input,
each write against ``max_out``, each distance against the output so far:
a hostile stream ends in :class:`LzoError`, never an overrun or a hang (every
instruction consumes at least one input byte).
"""

from __future__ import annotations

__all__ = ["LzoError", "lzo1x_decompress", "lzo1x_worst_compress"]


class LzoError(ValueError):
    """The stream is malformed (the caller turns it into a CorruptStructure with context)."""


def lzo1x_worst_compress(size: int) -> int:
    """The largest LZO1X output for ``size`` input bytes (include/linux/lzo.h)."""
    return size + size // 16 + 64 + 3


def lzo1x_decompress(src: bytes | bytearray | memoryview, max_out: int) -> bytes:
    """Decompress one LZO1X stream that ends with its end-of-stream marker.

    Args:
        src: the whole compressed stream (nothing may follow the end marker).
        max_out: the most bytes the stream may produce.

    Returns:
        the decompressed bytes.

    Raises:
        LzoError: truncated input, output over ``max_out``, a match reaching before
            the start of the output, a bad end marker, or bytes after it.
    """
    src = bytes(src)
    n = len(src)
    out = bytearray()
    if n == 0:
        raise LzoError("empty stream")
    ip = 0
    state = 0
    first = src[0]
    if first > 17:
        t = first - 17
        ip = 1
        if ip + t > n:
            raise LzoError(f"input overrun in the first literal run at {ip}")
        if t > max_out:
            raise LzoError(f"output overrun: over {max_out} bytes")
        out += src[ip : ip + t]
        ip += t
        state = t if t < 4 else 4
    while True:
        if ip >= n:
            raise LzoError(f"input overrun at {ip}: no end-of-stream marker")
        inst = src[ip]
        ip += 1
        if inst >= 64:  # M2: 3..8 bytes within 2 KiB
            if ip >= n:
                raise LzoError(f"input overrun at {ip}")
            length = (5 + ((inst >> 5) & 3)) if inst >= 128 else (3 + ((inst >> 5) & 1))
            dist = (src[ip] << 3) + ((inst >> 2) & 7) + 1
            ip += 1
            extra = inst & 3
        elif inst >= 32:  # M3: within 16 KiB
            length = inst & 31
            if length == 0:
                length, ip = _long_length(src, ip, 31)
            length += 2
            if ip + 2 > n:
                raise LzoError(f"input overrun at {ip}")
            v = src[ip] | (src[ip + 1] << 8)
            ip += 2
            dist = (v >> 2) + 1
            extra = v & 3
        elif inst >= 16:  # M4: 16..48 KiB, or the end marker
            length = inst & 7
            if length == 0:
                length, ip = _long_length(src, ip, 7)
            length += 2
            if ip + 2 > n:
                raise LzoError(f"input overrun at {ip}")
            v = src[ip] | (src[ip + 1] << 8)
            ip += 2
            dist = 16384 + ((inst & 8) << 11) + (v >> 2)
            extra = v & 3
            if dist == 16384:
                if length != 3 or extra:
                    raise LzoError(f"malformed end-of-stream marker at {ip - 3}")
                if ip != n:
                    raise LzoError(f"{n - ip} bytes after the end-of-stream marker")
                return bytes(out)
        elif state == 0:  # literal run
            length = inst
            if length == 0:
                length, ip = _long_length(src, ip, 15)
            length += 3
            if ip + length > n:
                raise LzoError(f"input overrun: literal run of {length} at {ip}")
            if len(out) + length > max_out:
                raise LzoError(f"output overrun: over {max_out} bytes")
            out += src[ip : ip + length]
            ip += length
            state = 4
            continue
        else:  # M1: a 2-byte (after 1..3 literals) or 3-byte (after a run) match
            if ip >= n:
                raise LzoError(f"input overrun at {ip}")
            if state == 4:
                length = 3
                dist = (src[ip] << 2) + (inst >> 2) + 2049
            else:
                length = 2
                dist = (src[ip] << 2) + (inst >> 2) + 1
            ip += 1
            extra = inst & 3
        have = len(out)
        if dist > have:
            raise LzoError(f"match distance {dist} reaches before the start of the output ({have} bytes) at {ip}")
        if have + length + extra > max_out:
            raise LzoError(f"output overrun: over {max_out} bytes")
        start = have - dist
        if dist >= length:
            out += out[start : start + length]
        else:  # overlapping copy repeats the last ``dist`` bytes
            pattern = out[start:have]
            out += (pattern * (length // dist + 1))[:length]
        if extra:
            if ip + extra > n:
                raise LzoError(f"input overrun at {ip}")
            out += src[ip : ip + extra]
            ip += extra
        state = extra


def _long_length(src: bytes, ip: int, base: int) -> tuple[int, int]:
    """An extended length: ``base`` + 255 per zero byte + the first non-zero byte."""
    n = len(src)
    start = ip
    while ip < n and src[ip] == 0:
        ip += 1
    if ip >= n:
        raise LzoError(f"input overrun in a length at {start}")
    total = base + 255 * (ip - start) + src[ip]
    return total, ip + 1
