"""Byte builders for GUID partition tables with correct (or deliberately wrong) CRCs.

    raw = GptDisk(sectors=4096).add(GptPart(LINUX_FS, first=2048, last=3071, name="root")).build()
    b = GptDisk(sectors=4096); b.primary_header["number_of_partition_entries"] = 2**32 - 1
    hostile = b.build()          # CRCs are recomputed over the hostile fields

Overrides in ``primary_header``/``backup_header`` replace fields before the
CRCs are computed; ``corrupt_*`` flags damage bytes after, so every kind of
broken table can be expressed.  Written independently of
``virtkit.boot.volume.gpt`` from the UEFI specification (§5.3).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from builders.mbr import Entry, mbr_sector

EFI_SYSTEM = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
LINUX_LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
LINUX_RAID = "A19D880F-05FC-4D3B-A006-743F0F84911E"
LINUX_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

_HEADER_FIELDS = (
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
)
_HEADER_FMT = "<" + "".join(c for _, c in _HEADER_FIELDS)


def guid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


@dataclass
class GptPart:
    type_guid: str
    first: int
    last: int
    unique_guid: str = ""
    attributes: int = 0
    name: str = ""
    slot: int | None = None  # 0-based slot; default: the next free one

    def pack(self, entry_size: int) -> bytes:
        uniq = self.unique_guid or str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.first}-{self.last}-{self.name}"))
        name = self.name.encode("utf-16-le", "surrogatepass")[:72].ljust(72, b"\0")
        raw = (
            guid_bytes(self.type_guid) + guid_bytes(uniq) + struct.pack("<QQQ", self.first, self.last, self.attributes)
        )
        return (raw + name).ljust(entry_size, b"\0")


@dataclass
class GptDisk:
    sectors: int
    sector_size: int = 512
    disk_guid: str = "6D1E3A2B-4C5D-4E6F-8A9B-0C1D2E3F4A5B"
    entries: int = 128
    entry_size: int = 128
    parts: list[GptPart] = field(default_factory=list)
    primary_header: dict[str, Any] = field(default_factory=dict)
    backup_header: dict[str, Any] = field(default_factory=dict)
    pmbr: list[Entry | None] | None = None  # default: one 0xEE entry over the disk
    write_backup: bool = True
    corrupt_primary_header: bool = False
    corrupt_primary_array: bool = False
    corrupt_backup_header: bool = False
    corrupt_backup_array: bool = False

    def add(self, part: GptPart) -> GptDisk:
        self.parts.append(part)
        return self

    def array(self) -> bytes:
        slots = [bytes(self.entry_size)] * self.entries
        nxt = 0
        for p in self.parts:
            i = p.slot if p.slot is not None else nxt
            slots[i] = p.pack(self.entry_size)
            nxt = i + 1
        return b"".join(slots)

    def array_sectors(self) -> int:
        return -(-self.entries * self.entry_size // self.sector_size)

    def header(self, *, my_lba: int, alternate: int, entry_lba: int, array: bytes, overrides: dict[str, Any]) -> bytes:
        n = self.array_sectors()
        values: dict[str, Any] = {
            "signature": b"EFI PART",
            "revision": 0x00010000,
            "header_size": 92,
            "header_crc32": 0,
            "reserved": 0,
            "my_lba": my_lba,
            "alternate_lba": alternate,
            "first_usable_lba": 2 + n,
            "last_usable_lba": self.sectors - 2 - n,
            "disk_guid": guid_bytes(self.disk_guid),
            "partition_entry_lba": entry_lba,
            "number_of_partition_entries": self.entries,
            "size_of_partition_entry": self.entry_size,
            "partition_entry_array_crc32": zlib.crc32(array) & 0xFFFFFFFF,
        }
        values.update({k: v for k, v in overrides.items() if k != "header_crc32"})
        raw = struct.pack(_HEADER_FMT, *(values[name] for name, _ in _HEADER_FIELDS))
        size = values["header_size"]
        body = raw.ljust(max(size, 92), b"\0")[: max(size, 92)]
        crc = overrides.get("header_crc32", zlib.crc32(body[:size] if size <= len(body) else body) & 0xFFFFFFFF)
        raw = raw[:16] + struct.pack("<I", crc) + raw[20:]
        return raw.ljust(self.sector_size, b"\0")

    def build(self) -> bytes:
        ss = self.sector_size
        buf = bytearray(self.sectors * ss)
        pmbr = self.pmbr if self.pmbr is not None else [Entry(0xEE, 1, min(self.sectors - 1, 0xFFFFFFFF))]
        buf[0:512] = mbr_sector(pmbr, signature=0)
        array = self.array()
        last = self.sectors - 1
        n = self.array_sectors()
        primary = self.header(my_lba=1, alternate=last, entry_lba=2, array=array, overrides=self.primary_header)
        buf[ss : 2 * ss] = primary
        buf[2 * ss : 2 * ss + len(array)] = array
        if self.write_backup:
            backup_entry_lba = last - n
            backup = self.header(
                my_lba=last, alternate=1, entry_lba=backup_entry_lba, array=array, overrides=self.backup_header
            )
            buf[backup_entry_lba * ss : backup_entry_lba * ss + len(array)] = array
            buf[last * ss : (last + 1) * ss] = backup
            if self.corrupt_backup_header:
                buf[last * ss + 40] ^= 0xFF
            if self.corrupt_backup_array:
                buf[backup_entry_lba * ss] ^= 0xFF
        if self.corrupt_primary_header:
            buf[ss + 40] ^= 0xFF
        if self.corrupt_primary_array:
            buf[2 * ss] ^= 0xFF
        return bytes(buf)
