"""MBR ("msdos", "dos") partition tables: primaries, extended/logical chains, protective MBR.

The boot sector holds four 16-byte entries at 0x1BE and the signature 0x55AA
at 0x1FE.  An extended partition (type 0x05, 0x0F or 0x85) holds a chain of
extended boot records (EBRs), each a boot sector of its own::

    MBR  [p1][p2][ext: start=E][p4]
                  |
                  v  LBA E
         EBR  [data: start=a (relative to this EBR)][link: start=b (relative to E)]
                                                       |
                                                       v  LBA E+b
         EBR  [data: start=c (relative to E+b)][link: empty] -> end

Numbering follows GRUB (``grub-core/partmap/msdos.c``) and Linux: primaries
are 1-4 by slot, logical partitions count from 5 in chain order, an EBR entry
that is empty or extended takes no number.  Only the first extended entry of
the MBR and of each EBR is followed (GRUB does the same).

A chain is guest-controlled: every EBR address is checked against the disk,
a visited set catches loops, and ``Limits.max_partitions`` bounds the number
of entries and links per disk.

References:
    - Linux ``block/partitions/msdos.c`` (EBR semantics; read for facts).
    - GRUB ``grub-core/partmap/msdos.c`` (numbering, first extended entry only).
    - util-linux ``libblkid/src/partitions/dos.c``: boot indicators must be 0x00
      or 0x80, a FAT boot sector is not a partition table, PARTUUID is
      ``"%08x-%02x" % (disk signature, number)``.
    - UEFI 2.10 §5.2.3 (protective MBR, partition type 0xEE).
    - Type names: util-linux ``sfdisk --label dos --list-types``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from virtkit._binstruct import Record
from virtkit._streams import ByteSource
from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = [
    "EXTENDED_TYPES",
    "MBR_TYPE_NAMES",
    "MbrPartition",
    "MbrTable",
    "has_mbr_signature",
    "parse_mbr",
    "probe_mbr",
]

MBR_SIGNATURE = b"\x55\xaa"  # bytes 510-511 of a boot sector
MBR_SIGNATURE_OFFSET = 0x1FE
MBR_PARTITION_TABLE_OFFSET = 0x1BE  # four 16-byte entries
MBR_DISK_SIGNATURE_OFFSET = 0x1B8  # 32-bit NT disk signature
GPT_PROTECTIVE_TYPE = 0xEE  # UEFI 2.10 §5.2.3
EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})  # DOS extended, W95 extended (LBA), Linux extended

# One partition entry; field names as in Linux ``struct msdos_partition``.
MBR_ENTRY = Record(
    "MBR partition entry",
    "<",
    [
        ("boot_ind", "B"),  # 0x80 = active
        ("head", "B"),
        ("sector", "B"),
        ("cyl", "B"),
        ("sys_ind", "B"),  # partition type
        ("end_head", "B"),
        ("end_sector", "B"),
        ("end_cyl", "B"),
        ("start_sect", "I"),  # LBA of the first sector (relative, for EBR entries)
        ("nr_sects", "I"),  # number of sectors
    ],
)

# Partition type names, as sfdisk/fdisk print them (util-linux ``--list-types``).
MBR_TYPE_NAMES: dict[int, str] = {
    0x00: "Empty",
    0x01: "FAT12",
    0x04: "FAT16 <32M",
    0x05: "Extended",
    0x06: "FAT16",
    0x07: "HPFS/NTFS/exFAT",
    0x0B: "W95 FAT32",
    0x0C: "W95 FAT32 (LBA)",
    0x0E: "W95 FAT16 (LBA)",
    0x0F: "W95 Ext'd (LBA)",
    0x11: "Hidden FAT12",
    0x14: "Hidden FAT16 <32M",
    0x16: "Hidden FAT16",
    0x17: "Hidden HPFS/NTFS",
    0x1B: "Hidden W95 FAT32",
    0x1C: "Hidden W95 FAT32 (LBA)",
    0x1E: "Hidden W95 FAT16 (LBA)",
    0x27: "Hidden NTFS WinRE",
    0x41: "PPC PReP Boot",
    0x42: "SFS",
    0x63: "GNU HURD or SysV",
    0x80: "Old Minix",
    0x81: "Minix / old Linux",
    0x82: "Linux swap / Solaris",
    0x83: "Linux",
    0x84: "OS/2 hidden or Intel hibernation",
    0x85: "Linux extended",
    0x86: "NTFS volume set",
    0x87: "NTFS volume set",
    0x88: "Linux plaintext",
    0x8E: "Linux LVM",
    0xA5: "FreeBSD",
    0xA6: "OpenBSD",
    0xA8: "Darwin UFS",
    0xA9: "NetBSD",
    0xAB: "Darwin boot",
    0xAF: "HFS / HFS+",
    0xBE: "Solaris boot",
    0xBF: "Solaris",
    0xDA: "Non-FS data",
    0xEA: "Linux extended boot",
    0xEE: "GPT",
    0xEF: "EFI (FAT-12/16/32)",
    0xF0: "Linux/PA-RISC boot",
    0xFB: "VMware VMFS",
    0xFC: "VMware VMKCORE",
    0xFD: "Linux raid autodetect",
}


@dataclass(frozen=True)
class MbrPartition:
    """One partition of an MBR table.

    Attributes:
        number: 1-4 for primaries (by slot), 5.. for logical partitions.
        start_lba: absolute first sector on the disk.
        sectors: length in sectors (``nr_sects``).
        sys_ind: the partition type byte.
        bootable: the active flag (``boot_ind`` 0x80).
        logical: inside the extended partition.
        ebr_lba: for logical partitions, the LBA of the EBR describing it.
    """

    number: int
    start_lba: int
    sectors: int
    sys_ind: int
    bootable: bool = False
    logical: bool = False
    ebr_lba: int | None = None

    @property
    def extended(self) -> bool:
        return self.sys_ind in EXTENDED_TYPES

    @property
    def type_name(self) -> str:
        return MBR_TYPE_NAMES.get(self.sys_ind, "unknown")


@dataclass(frozen=True)
class MbrTable:
    """A parsed MBR.

    Attributes:
        disk_signature: the 32-bit NT disk signature.
        partitions: primaries in slot order, then logical partitions in chain order.
        protective: an entry has type 0xEE: the disk really has a GPT.
        hybrid: protective plus other used entries (a "hybrid MBR").
        notes: things the operator should know (an ignored second extended entry ...).
    """

    disk_signature: int
    partitions: tuple[MbrPartition, ...]
    protective: bool = False
    hybrid: bool = False
    notes: tuple[str, ...] = ()

    @property
    def disk_id(self) -> str:
        """The signature as sfdisk prints it ("0x1234abcd")."""
        return f"0x{self.disk_signature:08x}"

    def part_uuid(self, number: int) -> str:
        """blkid's PARTUUID for partition ``number`` ("1234abcd-05")."""
        return f"{self.disk_signature:08x}-{number:02x}"


def has_mbr_signature(sector0: bytes) -> bool:
    """True if ``sector0`` ends with the 0x55AA boot signature."""
    return len(sector0) >= 512 and sector0[MBR_SIGNATURE_OFFSET : MBR_SIGNATURE_OFFSET + 2] == MBR_SIGNATURE


def _entries(sector: bytes, where: str) -> list[Any]:
    return MBR_ENTRY.parse_array(sector, MBR_PARTITION_TABLE_OFFSET, 4, where=where)


def probe_mbr(sector0: bytes) -> bool:
    """Does ``sector0`` hold an MBR partition table?

    As libblkid decides: the 0x55AA signature, every boot indicator 0x00 or
    0x80.  The caller rules out FAT boot sectors (which also end in 0x55AA)
    before calling this.
    """
    if not has_mbr_signature(sector0):
        return False
    return all(e.boot_ind in (0x00, 0x80) for e in _entries(sector0, "MBR"))


def _used(e: Any) -> bool:
    return bool(e.sys_ind != 0 and e.nr_sects != 0)


def parse_mbr(source: ByteSource, *, sector_size: int, limits: Limits, where: str) -> MbrTable:
    """Parse the MBR of ``source`` and follow its extended-partition chain.

    Args:
        source: the whole disk.
        sector_size: logical sector size (512 or 4096); LBAs count in it.
        limits: ``max_partitions`` bounds entries plus EBR links.
        where: the disk's name for messages ("disk0").

    Returns:
        the table; partitions may be empty.

    Raises:
        CorruptStructure: an EBR link points outside the disk or back into the chain.
        LimitExceeded: more than ``max_partitions`` entries and links.
    """
    sector0 = source.pread(0, 512)
    signature = int.from_bytes(sector0[MBR_DISK_SIGNATURE_OFFSET : MBR_DISK_SIGNATURE_OFFSET + 4], "little")
    primaries = _entries(sector0, f"MBR of {where}")
    protective = any(e.sys_ind == GPT_PROTECTIVE_TYPE for e in primaries)
    used = [e for e in primaries if _used(e)]
    hybrid = protective and any(e.sys_ind != GPT_PROTECTIVE_TYPE for e in used)
    if protective:
        return MbrTable(signature, (), protective=True, hybrid=hybrid)

    parts: list[MbrPartition] = []
    notes: list[str] = []
    extended: MbrPartition | None = None
    for slot, e in enumerate(primaries):
        if not _used(e):
            continue
        p = MbrPartition(
            number=slot + 1,
            start_lba=e.start_sect,
            sectors=e.nr_sects,
            sys_ind=e.sys_ind,
            bootable=e.boot_ind == 0x80,
        )
        parts.append(p)
        if p.extended:
            if extended is None:
                extended = p
            else:
                notes.append(
                    f"partition {p.number} is a second extended partition; its logical partitions are ignored "
                    f"(as GRUB does)"
                )
    if extended is not None:
        logicals, chain_notes = _walk_ebr_chain(
            source, extended, primaries=len(parts), sector_size=sector_size, limits=limits, where=where
        )
        parts.extend(logicals)
        notes.extend(chain_notes)
    return MbrTable(signature, tuple(parts), notes=tuple(notes))


def _walk_ebr_chain(
    source: ByteSource,
    extended: MbrPartition,
    *,
    primaries: int,
    sector_size: int,
    limits: Limits,
    where: str,
) -> tuple[list[MbrPartition], list[str]]:
    """Follow the EBR chain inside ``extended``; return its logical partitions and notes."""
    disk_sectors = source.size // sector_size
    ext_start = extended.start_lba
    out: list[MbrPartition] = []
    notes: list[str] = []
    visited: set[int] = set()
    ebr_lba: int | None = ext_start
    previous: int | None = None
    number = 5
    links = 0
    while ebr_lba is not None:
        what = f"EBR of {where} at LBA {ebr_lba}"
        if ebr_lba in visited:
            raise CorruptStructure(
                f"extended partition chain of {where}",
                f"the EBR at LBA {previous} links back to LBA {ebr_lba}, already visited (a loop)",
                offset=ebr_lba * sector_size,
            )
        visited.add(ebr_lba)
        links += 1
        limits.check("max_partitions", primaries + links + len(out), f"extended partition chain of {where}")
        if ebr_lba >= disk_sectors:
            src = "the MBR's extended entry" if previous is None else f"the EBR at LBA {previous}"
            raise CorruptStructure(
                f"extended partition chain of {where}",
                f"{src} points at LBA {ebr_lba}, past the end of the disk ({disk_sectors} sectors)",
                offset=ebr_lba * sector_size,
            )
        sector = source.pread(ebr_lba * sector_size, 512)
        if not has_mbr_signature(sector):
            notes.append(f"{what} has no 0x55AA signature: the logical partitions from there on are ignored")
            break
        next_lba: int | None = None
        for e in _entries(sector, what):
            if e.sys_ind in EXTENDED_TYPES:
                if next_lba is None and e.nr_sects != 0:
                    next_lba = ext_start + e.start_sect
                continue
            if not _used(e):
                continue
            out.append(
                MbrPartition(
                    number=number,
                    start_lba=ebr_lba + e.start_sect,
                    sectors=e.nr_sects,
                    sys_ind=e.sys_ind,
                    bootable=e.boot_ind == 0x80,
                    logical=True,
                    ebr_lba=ebr_lba,
                )
            )
            number += 1
            limits.check("max_partitions", primaries + links + len(out), f"extended partition chain of {where}")
        previous = ebr_lba
        ebr_lba = next_lba
    return out, notes
