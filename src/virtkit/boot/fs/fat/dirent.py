"""FAT directory entries: 8.3 names, VFAT long names, times.

A directory is an array of 32-byte entries.  A long name is stored in a run
of LFN entries *before* its short entry, last part first: the first one has
bit 0x40 and the highest sequence number, the numbers count down to 1, and
each carries the checksum of the 11-byte short name that follows.  A run that
breaks any of these rules is ignored and the short name is used, as the
specification (and GRUB, and Linux) do.

Short names are decoded with code page 437 (Linux' default ``codepage=437``);
the NT flags in byte 12 (0x08 lower-case base, 0x10 lower-case extension) are
honoured as Linux does.  Deleted entries (0xE5), the volume label, ``.`` and
``..`` are not listed.

References:
    Microsoft fatgen103, section 6 ("Directory Structure", DIR_Name rules,
    0xE5/0x05/0x00 markers), section 7 ("Long File Name Implementation",
    ``ChkSum``, ordinal rules); Linux ``fs/fat/dir.c`` (NT case flags
    ``CASE_LOWER_BASE``/``CASE_LOWER_EXT``).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass

from virtkit._binstruct import Record

__all__ = [
    "ATTR_DIRECTORY",
    "ATTR_READ_ONLY",
    "ATTR_VOLUME_ID",
    "FatDirent",
    "fat_time",
    "iter_dirents",
    "lfn_checksum",
]

# fatgen103 section 6, DIR_Attr.
ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID
ATTR_LONG_NAME_MASK = 0x3F
LAST_LONG_ENTRY = 0x40  # fatgen103 section 7: LDIR_Ord of the last (first stored) part
LFN_MAX_PARTS = 20  # 255 characters / 13 per entry
LFN_CHARS = 13
DELETED = 0xE5
KANJI_E5 = 0x05  # DIR_Name[0] == 0x05 stands for a real 0xE5
CASE_LOWER_BASE = 0x08  # DIR_NTRes bits (Linux fs/fat/dir.c)
CASE_LOWER_EXT = 0x10

DIR_ENTRY = Record(
    "FAT directory entry",
    "<",
    [
        ("DIR_Name", "11s"),
        ("DIR_Attr", "B"),
        ("DIR_NTRes", "B"),
        ("DIR_CrtTimeTenth", "B"),
        ("DIR_CrtTime", "H"),
        ("DIR_CrtDate", "H"),
        ("DIR_LstAccDate", "H"),
        ("DIR_FstClusHI", "H"),
        ("DIR_WrtTime", "H"),
        ("DIR_WrtDate", "H"),
        ("DIR_FstClusLO", "H"),
        ("DIR_FileSize", "I"),
    ],
)
# Byte ranges of the 13 UCS-2 characters of an LFN entry (fatgen103 section 7).
_LFN_SLICES = ((1, 11), (14, 26), (28, 32))


@dataclass(frozen=True, slots=True)
class FatDirent:
    """One listed directory entry.

    Attributes:
        name: the long name if a valid one precedes the entry, else the 8.3 name.
        short_name: the 8.3 name as displayed ("GRUB.CFG" / "grub.cfg" per NT flags).
        attr: DIR_Attr.
        first_cluster: DIR_FstClusHI:DIR_FstClusLO (HI is 0 on FAT12/16).
        size: DIR_FileSize.
        position: byte position of the short entry inside the directory's data.
        mtime, atime, crtime: write, access and creation times as POSIX seconds (FAT stores
            local time; taken as UTC), or None.
    """

    name: str
    short_name: str
    attr: int
    first_cluster: int
    size: int
    position: int
    mtime: float | None
    atime: float | None
    crtime: float | None

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)


def lfn_checksum(short: bytes) -> int:
    """fatgen103 section 7 ``ChkSum``: the 8-bit rotate-right-and-add over the 11 name bytes."""
    s = 0
    for b in short:
        s = (((s & 1) << 7) | (s >> 1)) + b & 0xFF
    return s


def fat_time(date: int, time: int = 0, *, tenths: int = 0) -> float | None:
    """A FAT date/time pair as POSIX seconds, or None if zero or invalid.

    Date bits: 15-9 year since 1980, 8-5 month, 4-0 day.  Time bits: 15-11 hour,
    10-5 minute, 4-0 two-second count (fatgen103 section 6 "Date and Time Formats").
    """
    if date == 0:
        return None
    year, month, day = 1980 + (date >> 9), (date >> 5) & 0xF, date & 0x1F
    hour, minute, sec2 = time >> 11, (time >> 5) & 0x3F, time & 0x1F
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or sec2 > 29 or tenths > 199:
        return None
    return calendar.timegm((year, month, day, hour, minute, sec2 * 2, 0, 0, 0)) + tenths / 100


def _short_name(raw: bytes, ntres: int) -> str:
    base_b = raw[:8].rstrip(b" ")
    ext_b = raw[8:11].rstrip(b" ")
    if base_b[:1] == bytes([KANJI_E5]):
        base_b = b"\xe5" + base_b[1:]
    base = base_b.decode("cp437")
    ext = ext_b.decode("cp437")
    if ntres & CASE_LOWER_BASE:
        base = base.lower()
    if ntres & CASE_LOWER_EXT:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


def _lfn_part(entry: bytes) -> bytes:
    return b"".join(entry[a:b] for a, b in _LFN_SLICES)


def _decode_lfn(parts: list[bytes]) -> str | None:
    """Join LFN parts (in name order); None if the result is not a usable name."""
    raw = b"".join(parts)
    units = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    try:
        end = units.index(b"\x00\x00")
    except ValueError:
        end = len(units)
    else:
        # After the terminator only 0xFFFF padding is allowed (fatgen103 section 7).
        if any(u != b"\xff\xff" for u in units[end + 1 :]):
            return None
    if end == 0:
        return None
    name = b"".join(units[:end]).decode("utf-16-le", "replace")
    if "/" in name or "\x00" in name or name in (".", ".."):
        return None
    return name


def iter_dirents(data: bytes, *, root: bool = False) -> Iterator[FatDirent | tuple[str, str]]:
    """Decode the entries of one directory's data.

    Args:
        data: the directory's bytes (the fixed root region, or its cluster chain).
        root: this is the root directory (its volume-label entry is reported).

    Yields:
        a :class:`FatDirent` per file or directory; for the root, the volume label as
        ``("label", text)`` (GRUB: the first entry whose attributes, ignoring
        ARCHIVE, are exactly VOLUME_ID).
    """
    parts: list[bytes | None] = []
    expect = 0  # next LFN ordinal expected; 0 = no run in progress
    checksum = -1
    label_seen = False
    for pos in range(0, len(data) - 31, 32):
        first = data[pos]
        if first == 0x00:  # fatgen103: this and all following entries are free
            return
        if first == DELETED:
            expect = 0
            continue
        attr = data[pos + 11]
        if attr & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME:
            order = first & 0x3F
            if first & LAST_LONG_ENTRY:
                if not 1 <= order <= LFN_MAX_PARTS:
                    expect = 0
                    continue
                parts = [None] * order
                expect = order
                checksum = data[pos + 13]
            if expect == 0 or order != expect or data[pos + 13] != checksum:
                expect = 0
                continue
            parts[order - 1] = _lfn_part(data[pos : pos + 32])
            expect -= 1
            if expect == 0:
                expect = -1  # complete: the short entry must come next
            continue
        e = DIR_ENTRY.parse(data, pos)
        long_name: str | None = None
        if expect == -1 and lfn_checksum(e.DIR_Name) == checksum:
            long_name = _decode_lfn([p for p in parts if p is not None])
        expect = 0
        if attr & ATTR_VOLUME_ID:
            if root and not label_seen and attr & ~ATTR_ARCHIVE == ATTR_VOLUME_ID:
                label_seen = True
                yield ("label", e.DIR_Name.rstrip(b" ").decode("cp437"))
            continue
        short = _short_name(e.DIR_Name, e.DIR_NTRes)
        if short in (".", "..") or not short:
            continue
        yield FatDirent(
            name=long_name or short,
            short_name=short,
            attr=attr,
            first_cluster=(e.DIR_FstClusHI << 16) | e.DIR_FstClusLO,
            size=e.DIR_FileSize,
            position=pos,
            mtime=fat_time(e.DIR_WrtDate, e.DIR_WrtTime),
            atime=fat_time(e.DIR_LstAccDate),
            crtime=fat_time(e.DIR_CrtDate, e.DIR_CrtTime, tenths=e.DIR_CrtTimeTenth),
        )
