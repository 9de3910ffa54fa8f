"""Byte builders for MBR partition tables and EBR chains, so each hostile case reads as its own fixture.

    disk = DiskImage(sectors=4096)
    disk.put(0, mbr_sector([Entry(0x83, 2048, 100, boot=True), Entry(0x05, 3000, 1000)]))
    disk.put(3000, ebr_sector(data=Entry(0x83, 1, 50), link=Entry(0x05, 0, 1)))   # a self-loop
    raw = disk.bytes()

Entries are written exactly as given: nothing is validated, so the builders
can express every kind of broken table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNATURE = b"\x55\xaa"


@dataclass(frozen=True)
class Entry:
    """One 16-byte partition entry (start/sectors in the table's own units)."""

    type: int
    start: int
    sectors: int
    boot: bool = False
    boot_ind: int | None = None  # raw override of the boot indicator byte

    def pack(self) -> bytes:
        ind = self.boot_ind if self.boot_ind is not None else (0x80 if self.boot else 0)
        # CHS fields are left as 0xFE/0xFF/0xFF ("use LBA"), as modern tools write them.
        return struct.pack("<B3sB3sII", ind, b"\xfe\xff\xff", self.type, b"\xfe\xff\xff", self.start, self.sectors)


def mbr_sector(entries: list[Entry | None], *, signature: int = 0x5EED1234, magic: bytes = SIGNATURE) -> bytes:
    """A 512-byte boot sector with up to four entries (None = empty slot) and a disk signature."""
    if len(entries) > 4:
        raise ValueError("an MBR has four slots")
    table = b"".join(e.pack() if e is not None else bytes(16) for e in entries).ljust(64, b"\0")
    return bytes(440) + struct.pack("<I", signature) + b"\0\0" + table + magic


def ebr_sector(data: Entry | None, link: Entry | None, *, extra: list[Entry | None] | None = None) -> bytes:
    """An EBR: slot 1 the logical partition (start relative to this EBR), slot 2 the link
    to the next EBR (start relative to the extended partition), optional slots 3-4."""
    return mbr_sector([data, link, *(extra or [])], signature=0)


class DiskImage:
    """A sparse in-memory disk: ``put`` sectors, then ``bytes()``."""

    def __init__(self, sectors: int, sector_size: int = 512) -> None:
        self.sector_size = sector_size
        self.buf = bytearray(sectors * sector_size)

    def put(self, lba: int, data: bytes) -> DiskImage:
        off = lba * self.sector_size
        self.buf[off : off + len(data)] = data
        return self

    def put_bytes(self, offset: int, data: bytes) -> DiskImage:
        self.buf[offset : offset + len(data)] = data
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)


def chain_disk(
    logicals: list[tuple[int, int, int]],
    *,
    sectors: int = 65536,
    primaries: list[Entry | None] | None = None,
    ext_start: int = 2048,
    ext_type: int = 0x05,
) -> bytes:
    """A disk with an extended partition at ``ext_start`` and a well-formed EBR chain.

    ``logicals`` are ``(start_lba, sectors, type)`` with absolute starts; each
    EBR sits one sector before its logical partition (the first at ``ext_start``).
    """
    disk = DiskImage(sectors)
    ext_size = sectors - ext_start
    slots = list(primaries or [])
    slots.append(Entry(ext_type, ext_start, ext_size))
    disk.put(0, mbr_sector(slots))
    for i, (start, count, ptype) in enumerate(logicals):
        ebr = ext_start if i == 0 else start - 1
        link = None
        if i + 1 < len(logicals):
            nxt = logicals[i + 1][0] - 1
            link = Entry(0x05, nxt - ext_start, logicals[i + 1][1] + 1)
        disk.put(ebr, ebr_sector(Entry(ptype, start - ebr, count), link))
    return disk.bytes()
