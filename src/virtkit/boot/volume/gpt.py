"""GUID Partition Tables: header and entry-array CRCs, backup fallback, 512/4096-byte sectors.

Layout (LBAs in logical sectors)::

    LBA 0      protective MBR (one entry of type 0xEE)
    LBA 1      primary header  --partition_entry_lba-->  entry array (usually LBA 2..33)
    ...        partitions
    LBA N-33   backup entry array
    LBA N-1    backup header   (alternate_lba of the primary)

A header is trusted only if its signature, size, CRC32 and ``my_lba`` check
out and its entry array matches ``partition_entry_array_crc32``.  When the
primary fails, the backup at the last LBA is used and a note says so; when both
fail, :class:`~virtkit.errors.CorruptStructure` names both reasons.  The entry
count is checked against ``Limits.max_partitions`` before anything is read, so
a header claiming 2^32 entries fails at once.

Partitions are numbered by slot (entry index + 1), as GRUB (``hd0,gpt3``) and
Linux do; empty slots (type GUID all zero) are skipped but keep their number.

References:
    - UEFI 2.10 §5.3 (GPT header, entry, validity rules), §5.3.3 table 5-8 (attribute
      bit 2: legacy BIOS bootable).
    - GRUB ``grub-core/partmap/gpt.c`` (requires a protective MBR; numbering by slot).
    - util-linux ``sfdisk --json`` output fields (start, size, type, uuid, name, attrs).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from virtkit._binstruct import Record
from virtkit._streams import ByteSource
from virtkit.boot.volume.guids import gpt_type_name, guid_from_bytes
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = ["GPT_SIGNATURE", "GptPartition", "GptTable", "detect_gpt_sector_size", "parse_gpt"]

GPT_SIGNATURE = b"EFI PART"  # UEFI 2.10 §5.3.2
GPT_HEADER_MIN_SIZE = 92  # UEFI 2.10 §5.3.2: HeaderSize must be >= 92 and <= the logical block size
GPT_ENTRY_MIN_SIZE = 128  # UEFI 2.10 §5.3.2: SizeOfPartitionEntry = 128 * 2^n
GPT_ENTRY_MAX_SIZE = 4096  # our own sanity bound; real tables use 128
GPT_ATTR_REQUIRED = 1 << 0  # UEFI 2.10 table 5-8: required partition
GPT_ATTR_NO_BLOCK_IO = 1 << 1  # UEFI 2.10 table 5-8: no block IO protocol
GPT_ATTR_LEGACY_BIOS_BOOTABLE = 1 << 2  # UEFI 2.10 table 5-8
EMPTY_GUID = b"\0" * 16
SECTOR_SIZES = (512, 4096)

# UEFI 2.10 table 5-5 (field names in snake case).
GPT_HEADER = Record(
    "GPT header",
    "<",
    [
        ("signature", "8s"),
        ("revision", "I"),
        ("header_size", "I"),
        ("header_crc32", "I"),
        ("reserved", "I"),
        ("my_lba", "Q"),
        ("alternate_lba", "Q"),
        ("first_usable_lba", "Q"),
        ("last_usable_lba", "Q"),
        ("disk_guid", "16s"),
        ("partition_entry_lba", "Q"),
        ("number_of_partition_entries", "I"),
        ("size_of_partition_entry", "I"),
        ("partition_entry_array_crc32", "I"),
    ],
)

# UEFI 2.10 table 5-6.
GPT_ENTRY = Record(
    "GPT partition entry",
    "<",
    [
        ("partition_type_guid", "16s"),
        ("unique_partition_guid", "16s"),
        ("starting_lba", "Q"),
        ("ending_lba", "Q"),
        ("attributes", "Q"),
        ("partition_name", "72s"),
    ],
)


@dataclass(frozen=True)
class GptPartition:
    """One used GPT entry.

    Attributes:
        number: slot number (1-based).
        first_lba, last_lba: inclusive range in logical sectors.
        type_guid, unique_guid: canonical upper-case text.
        attributes: the 64-bit attribute field.
        name: the partition name (UTF-16LE on disk).
    """

    number: int
    first_lba: int
    last_lba: int
    type_guid: str
    unique_guid: str
    attributes: int
    name: str

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1

    @property
    def legacy_bios_bootable(self) -> bool:
        return bool(self.attributes & GPT_ATTR_LEGACY_BIOS_BOOTABLE)

    @property
    def type_name(self) -> str:
        return gpt_type_name(self.type_guid)


@dataclass(frozen=True)
class GptTable:
    """A validated GPT.

    Attributes:
        sector_size: the logical sector size the table was found with.
        disk_guid: canonical upper-case text.
        header_lba: LBA of the header used (1, or the backup's).
        first_usable_lba, last_usable_lba: the usable range from the header.
        entry_count: ``number_of_partition_entries``.
        partitions: used entries in slot order.
        notes: what the operator should know (backup used, backup damaged ...).
    """

    sector_size: int
    disk_guid: str
    header_lba: int
    first_usable_lba: int
    last_usable_lba: int
    entry_count: int
    partitions: tuple[GptPartition, ...]
    notes: tuple[str, ...] = ()


class _Damaged(Exception):
    """A header candidate failed validation (internal; becomes a note or a CorruptStructure)."""


def detect_gpt_sector_size(source: ByteSource) -> int | None:
    """The logical sector size at which a GPT header signature appears, or None.

    Looks for "EFI PART" at LBA 1 for 512- then 4096-byte sectors, then at the
    last LBA (a backup header) for each.
    """
    for ss in SECTOR_SIZES:
        if source.size >= 2 * ss and source.pread(ss, 8) == GPT_SIGNATURE:
            return ss
    for ss in SECTOR_SIZES:
        last = source.size // ss - 1
        if last >= 2 and source.pread(last * ss, 8) == GPT_SIGNATURE:
            return ss
    return None


def _crc32_zeroed(header: bytes) -> int:
    """CRC32 of a header with its ``header_crc32`` field (bytes 16-19) taken as zero."""
    return zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:]) & 0xFFFFFFFF


def _read_header(source: ByteSource, lba: int, ss: int, limits: Limits, where: str) -> tuple[Any, bytes]:
    """Read and validate the header at ``lba`` and its entry array.

    Raises:
        _Damaged: any validation failure, with the reason.
        LimitExceeded: the entry count is over ``max_partitions`` (never a fallback).
    """
    disk_sectors = source.size // ss
    if lba < 1 or lba >= disk_sectors:
        raise _Damaged(f"LBA {lba} is outside the disk ({disk_sectors} sectors)")
    sector = source.pread(lba * ss, ss)
    hdr = GPT_HEADER.parse(sector, 0, where=where)
    if hdr.signature != GPT_SIGNATURE:
        raise _Damaged(f"no 'EFI PART' signature (got {hdr.signature!r})")
    if not GPT_HEADER_MIN_SIZE <= hdr.header_size <= ss:
        raise _Damaged(f"header_size {hdr.header_size} is outside {GPT_HEADER_MIN_SIZE}..{ss}")
    crc = _crc32_zeroed(sector[: hdr.header_size])
    if crc != hdr.header_crc32:
        raise _Damaged(f"header CRC32 mismatch, expected {hdr.header_crc32:#010x}, got {crc:#010x}")
    if hdr.my_lba != lba:
        raise _Damaged(f"my_lba is {hdr.my_lba}, but the header was read from LBA {lba}")
    limits.check("max_partitions", hdr.number_of_partition_entries, f"GPT header at LBA {lba} of {where}")
    size = hdr.size_of_partition_entry
    if size < GPT_ENTRY_MIN_SIZE or size > GPT_ENTRY_MAX_SIZE or size & (size - 1):
        raise _Damaged(f"size_of_partition_entry {size} is not 128 * 2^n (up to {GPT_ENTRY_MAX_SIZE})")
    array_bytes = hdr.number_of_partition_entries * size
    limits.check("max_read", array_bytes, f"GPT entry array of {where}")
    start = hdr.partition_entry_lba
    if start < 1 or start * ss + array_bytes > source.size or (start <= lba < start + -(-array_bytes // ss)):
        raise _Damaged(f"entry array at LBA {start} ({array_bytes} bytes) is outside the disk or overlaps the header")
    array = source.pread(start * ss, array_bytes)
    crc = zlib.crc32(array) & 0xFFFFFFFF
    if crc != hdr.partition_entry_array_crc32:
        raise _Damaged(f"entry array CRC32 mismatch, expected {hdr.partition_entry_array_crc32:#010x}, got {crc:#010x}")
    return hdr, array


def parse_gpt(source: ByteSource, *, sector_size: int, limits: Limits, where: str) -> GptTable:
    """Parse the GPT of ``source``, falling back to the backup header.

    Args:
        source: the whole disk.
        sector_size: logical sector size (512 or 4096).
        limits: ``max_partitions`` bounds the entry count; ``max_read`` the array size.
        where: the disk's name for messages.

    Returns:
        the table, with notes when the backup was used or is damaged.

    Raises:
        CorruptStructure: neither the primary nor the backup header is valid.
        LimitExceeded: a valid header claims more than ``max_partitions`` entries.
    """
    ss = sector_size
    disk_sectors = source.size // ss
    last_lba = disk_sectors - 1
    notes: list[str] = []
    try:
        hdr, array = _read_header(source, 1, ss, limits, where)
        used_lba = 1
        alt = hdr.alternate_lba
        if alt >= disk_sectors:
            notes.append(
                f"the backup GPT header should be at LBA {alt}, past the end of the disk ({disk_sectors} sectors): "
                f"the image may be truncated"
            )
        else:
            try:
                _read_header(source, alt, ss, limits, where)
            except _Damaged as exc:
                notes.append(f"backup GPT header at LBA {alt} is damaged ({exc}); the primary is intact")
    except _Damaged as primary_exc:
        try:
            hdr, array = _read_header(source, last_lba, ss, limits, where)
        except _Damaged as backup_exc:
            raise CorruptStructure(
                f"GPT of {where}",
                f"the primary header at LBA 1 ({primary_exc}) and the backup header at LBA {last_lba} "
                f"({backup_exc}) are both damaged",
                offset=ss,
            ) from None
        used_lba = last_lba
        notes.append(f"primary GPT header at LBA 1 is damaged ({primary_exc}): used the backup at LBA {last_lba}")

    parts: list[GptPartition] = []
    size = hdr.size_of_partition_entry
    for i in range(hdr.number_of_partition_entries):
        e = GPT_ENTRY.parse(array, i * size, where=f"GPT of {where}")
        if e.partition_type_guid == EMPTY_GUID:
            continue
        number = i + 1
        if e.starting_lba > e.ending_lba:
            notes.append(
                f"GPT entry {number} ends (LBA {e.ending_lba}) before it starts (LBA {e.starting_lba}); ignored"
            )
            continue
        parts.append(
            GptPartition(
                number=number,
                first_lba=e.starting_lba,
                last_lba=e.ending_lba,
                type_guid=guid_from_bytes(e.partition_type_guid),
                unique_guid=guid_from_bytes(e.unique_partition_guid),
                attributes=e.attributes,
                name=_decode_name(e.partition_name),
            )
        )
    return GptTable(
        sector_size=ss,
        disk_guid=guid_from_bytes(hdr.disk_guid),
        header_lba=used_lba,
        first_usable_lba=hdr.first_usable_lba,
        last_usable_lba=hdr.last_usable_lba,
        entry_count=hdr.number_of_partition_entries,
        partitions=tuple(parts),
        notes=tuple(notes),
    )


def _decode_name(raw: bytes) -> str:
    """A partition name: UTF-16LE up to the first NUL code unit."""
    for i in range(0, len(raw) - 1, 2):
        if raw[i] == 0 and raw[i + 1] == 0:
            raw = raw[:i]
            break
    return raw.decode("utf-16-le", "replace")
