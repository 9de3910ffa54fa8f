"""LVM2 physical-volume label, PV header, metadata-area header and the metadata ring buffer.

On-disk layout of a PV (offsets in bytes from the start of the PV)::

    sector 0..3   one of them holds the label (pvcreate uses sector 1):
                  label_header  "LABELONE" sector_xl crc_xl offset_xl "LVM2 001"
                  pv_header     pv_uuid[32] device_size_xl
                                disk_locn[] data areas      (offset, size), zero-terminated
                                disk_locn[] metadata areas  (offset, size), zero-terminated
    mda start     mda_header    checksum_xl magic[16] version start size raw_locn[]
    mda + 512     ring buffer of metadata text; raw_locn[0] = (offset, size, checksum, flags)
                  names the current copy, relative to the mda start.  A copy that
                  runs past the end of the area continues at mda + 512 (it wraps).
    pe_start      physical extents

All checksums use LVM's ``calc_crc``: CRC-32 (reflected polynomial
0xEDB88320) seeded with 0xF597A6CF and without the final inversion.

References:
    - LVM2 ``lib/label/label.h``, ``lib/format_text/layout.h`` (structures, magic,
      INITIAL_CRC, MDA_HEADER_SIZE, RAW_LOCN_IGNORED), ``lib/misc/crc.c``
      (calc_crc); read for facts.
    - LVM2 ``lib/format_text/format-text.c`` (the ring-buffer wrap-around and the
      metadata checksum over both parts).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from virtkit._binstruct import Record
from virtkit._streams import ByteSource
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = [
    "DiskLocn",
    "MetadataCopy",
    "PvLabel",
    "find_label_sector",
    "lvm_crc",
    "read_metadata",
    "read_pv_label",
]

LABEL_ID = b"LABELONE"  # lib/label/label.h
LVM2_LABEL = b"LVM2 001"  # lib/format_text/layout.h: LVM2_LABEL
LABEL_SCAN_SECTORS = 4  # lib/label/label.h: the label is in one of the first 4 sectors
LABEL_SIZE = 512  # lib/label/label.h: one 512-byte sector, whatever the device's sector size
SECTOR_SIZE = 512  # LVM counts sectors of 512 bytes in metadata and labels
INITIAL_CRC = 0xF597A6CF  # lib/misc/crc.h
FMTT_MAGIC = b" LVM2 x[5A%r0N*>"  # lib/format_text/layout.h
FMTT_VERSION = 1  # lib/format_text/layout.h
MDA_HEADER_SIZE = 512  # lib/format_text/layout.h
RAW_LOCN_IGNORED = 0x00000001  # lib/format_text/layout.h
ID_LEN = 32  # lib/uuid/uuid.h: a UUID is 32 characters without dashes
MAX_DISK_LOCNS = 8  # our bound on data/metadata area descriptors per PV (LVM writes 1 or 2)

LABEL_HEADER = Record(
    "LVM label header",
    "<",
    [("id", "8s"), ("sector_xl", "Q"), ("crc_xl", "I"), ("offset_xl", "I"), ("type", "8s")],
)
PV_HEADER = Record("LVM PV header", "<", [("pv_uuid", "32s"), ("device_size_xl", "Q")])
DISK_LOCN = Record("LVM disk_locn", "<", [("offset", "Q"), ("size", "Q")])
MDA_HEADER = Record(
    "LVM metadata area header",
    "<",
    [("checksum_xl", "I"), ("magic", "16s"), ("version", "I"), ("start", "Q"), ("size", "Q")],
)
RAW_LOCN = Record("LVM raw_locn", "<", [("offset", "Q"), ("size", "Q"), ("checksum", "I"), ("flags", "I")])


def lvm_crc(data: bytes, initial: int = INITIAL_CRC) -> int:
    """LVM's ``calc_crc(initial, data)``: zlib's CRC-32 without the pre/post inversion."""
    return (zlib.crc32(data, initial ^ 0xFFFFFFFF) ^ 0xFFFFFFFF) & 0xFFFFFFFF


@dataclass(frozen=True)
class DiskLocn:
    """An area of the PV: ``size`` bytes at byte ``offset`` (size 0 = to the end, for data)."""

    offset: int
    size: int


@dataclass(frozen=True)
class PvLabel:
    """The label and PV header of one physical volume.

    Attributes:
        sector: the 512-byte sector holding the label.
        pv_uuid: 32 characters, no dashes.
        device_size: the PV size recorded at pvcreate time, in bytes.
        data_areas, metadata_areas: the areas listed in the PV header.
    """

    sector: int
    pv_uuid: str
    device_size: int
    data_areas: tuple[DiskLocn, ...]
    metadata_areas: tuple[DiskLocn, ...]


@dataclass(frozen=True)
class MetadataCopy:
    """One copy of the VG metadata text, from one metadata area.

    Attributes:
        text: the metadata text (NUL padding removed).
        where: "disk0p2, metadata area at 0x1000" for messages.
    """

    text: bytes
    where: str


def find_label_sector(src: ByteSource) -> int | None:
    """The sector (0-3) holding an LVM2 label, or None.

    A label counts when it starts with "LABELONE", has type "LVM2 001" and
    records its own sector number.
    """
    for sector in range(LABEL_SCAN_SECTORS):
        off = sector * SECTOR_SIZE
        if off + LABEL_SIZE > src.size:
            break
        head = src.pread(off, LABEL_HEADER.size)
        lh = LABEL_HEADER.parse(head)
        if lh.id == LABEL_ID and lh.type == LVM2_LABEL and lh.sector_xl == sector:
            return sector
    return None


def _locn_list(buf: bytes, pos: int, what: str) -> tuple[list[DiskLocn], int]:
    """Read a zero-terminated disk_locn list at ``pos``; return it and the position after the terminator."""
    out: list[DiskLocn] = []
    while True:
        d = DISK_LOCN.parse(buf, pos, where=what)
        pos += DISK_LOCN.size
        if d.offset == 0 and d.size == 0:
            return out, pos
        if len(out) >= MAX_DISK_LOCNS:
            raise CorruptStructure(what, f"more than {MAX_DISK_LOCNS} area descriptors, or no terminator")
        out.append(DiskLocn(d.offset, d.size))


def read_pv_label(src: ByteSource, *, where: str) -> PvLabel:
    """Read and check the label and PV header of the PV ``src``.

    Args:
        src: the PV (a partition, disk or array).
        where: its name for messages.

    Raises:
        CorruptStructure: no label, a label CRC mismatch, a PV header outside the
            label sector, or area descriptors outside the PV.
    """
    sector = find_label_sector(src)
    if sector is None:
        raise CorruptStructure(f"LVM label on {where}", "no LABELONE label in sectors 0-3")
    label_off = sector * SECTOR_SIZE
    buf = src.pread(label_off, LABEL_SIZE)
    lh = LABEL_HEADER.parse(buf, where=where)
    crc = lvm_crc(buf[20:])  # label.h: the CRC covers offset_xl to the end of the sector
    what = f"LVM label on {where}"
    if crc != lh.crc_xl:
        raise CorruptStructure(what, "checksum mismatch", offset=label_off, expected=lh.crc_xl, got=crc)
    if not LABEL_HEADER.size <= lh.offset_xl <= LABEL_SIZE - PV_HEADER.size - 2 * DISK_LOCN.size:
        raise CorruptStructure(what, "PV header offset is outside the label sector", offset=label_off, got=lh.offset_xl)
    pvh = PV_HEADER.parse(buf, lh.offset_xl, where=where)
    pv_uuid = pvh.pv_uuid.decode("ascii", "replace")
    pos = lh.offset_xl + PV_HEADER.size
    data, pos = _locn_list(buf, pos, f"LVM PV header data areas on {where}")
    mdas, pos = _locn_list(buf, pos, f"LVM PV header metadata areas on {where}")
    for m in mdas:
        if m.offset < LABEL_SIZE or m.size < MDA_HEADER_SIZE or m.offset + m.size > src.size:
            raise CorruptStructure(
                f"LVM PV header on {where}",
                f"metadata area {m.offset:#x}+{m.size:#x} lies outside the PV (size {src.size:#x})",
                offset=label_off,
            )
    return PvLabel(
        sector=sector,
        pv_uuid=pv_uuid,
        device_size=pvh.device_size_xl,
        data_areas=tuple(data),
        metadata_areas=tuple(mdas),
    )


def read_metadata(src: ByteSource, mda: DiskLocn, *, limits: Limits, where: str) -> MetadataCopy | None:
    """Read the current metadata copy of one metadata area (following the ring-buffer wrap).

    Args:
        src: the PV.
        mda: the metadata area from the PV header.
        limits: ``max_lvm_metadata_bytes`` bounds the text.
        where: the PV's name for messages.

    Returns:
        the copy, or None when the area is ignored or holds no metadata (an orphan PV).

    Raises:
        CorruptStructure: bad mda header magic/version/checksum/start, a copy outside
            the area, or a text checksum mismatch.
        LimitExceeded: the text is larger than ``max_lvm_metadata_bytes``.
    """
    what = f"LVM metadata area header on {where}"
    hdr_buf = src.pread(mda.offset, MDA_HEADER_SIZE)
    mh = MDA_HEADER.parse(hdr_buf, where=where)
    if mh.magic != FMTT_MAGIC:
        raise CorruptStructure(what, "bad magic", offset=mda.offset, expected=repr(FMTT_MAGIC), got=repr(mh.magic))
    crc = lvm_crc(hdr_buf[4:])
    if crc != mh.checksum_xl:
        raise CorruptStructure(what, "checksum mismatch", offset=mda.offset, expected=mh.checksum_xl, got=crc)
    if mh.version != FMTT_VERSION:
        raise CorruptStructure(what, "unknown version", offset=mda.offset, expected=FMTT_VERSION, got=mh.version)
    if mh.start != mda.offset:
        raise CorruptStructure(
            what, "start does not match the PV header", offset=mda.offset, expected=mda.offset, got=mh.start
        )
    area = mh.size
    if area < MDA_HEADER_SIZE or area > mda.size:
        raise CorruptStructure(
            what, f"size {area:#x} is not within {MDA_HEADER_SIZE:#x}..{mda.size:#x}", offset=mda.offset
        )
    rl = RAW_LOCN.parse(hdr_buf, MDA_HEADER.size, where=where)
    if rl.flags & RAW_LOCN_IGNORED or (rl.offset == 0 and rl.size == 0):
        return None
    limits.check("max_lvm_metadata_bytes", rl.size, f"LVM metadata on {where}")
    if rl.offset < MDA_HEADER_SIZE or rl.offset >= area or rl.size == 0:
        raise CorruptStructure(
            f"LVM metadata location on {where}",
            f"copy {rl.offset:#x}+{rl.size:#x} lies outside the text area {MDA_HEADER_SIZE:#x}..{area:#x}",
            offset=mda.offset + MDA_HEADER.size,
        )
    first_len = min(rl.size, area - rl.offset)
    wrap_len = rl.size - first_len
    if wrap_len > rl.offset - MDA_HEADER_SIZE:
        raise CorruptStructure(
            f"LVM metadata location on {where}",
            f"copy {rl.offset:#x}+{rl.size:#x} wraps over itself in a {area:#x}-byte area",
            offset=mda.offset + MDA_HEADER.size,
        )
    first = src.pread(mda.offset + rl.offset, first_len)
    second = src.pread(mda.offset + MDA_HEADER_SIZE, wrap_len) if wrap_len else b""
    crc = lvm_crc(second, lvm_crc(first))
    if crc != rl.checksum:
        raise CorruptStructure(
            f"LVM metadata on {where}",
            "checksum mismatch",
            offset=mda.offset + rl.offset,
            expected=rl.checksum,
            got=crc,
        )
    text = (first + second).rstrip(b"\0")
    return MetadataCopy(text=text, where=f"{where}, metadata area at {mda.offset:#x}")
