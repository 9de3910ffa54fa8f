"""FAT boot sector (BPB): strict recognition and the volume geometry derived from it.

FAT is the last entry of the probe table and has no magic number, so a false
positive would hide an unknown filesystem behind "corrupt FAT".  Recognition is
therefore strict: every BPB field that the specification constrains is checked,
the sizes must agree with each other, and the first FAT entry must carry the
media byte (as GRUB requires).  Any failure is :class:`NotThisFormat`.

The FAT type follows the specification's count-of-clusters rule for FAT12
versus FAT16 (< 4085 clusters is FAT12).  FAT32 is the BPB layout with
``BPB_FATSz16 == 0``, as Linux and GRUB decide it: ``mkfs.fat -F 32`` makes
valid FAT32 volumes with fewer than 65525 clusters, and both read them.

References:
    Microsoft, "FAT: General Overview of On-Disk Format" (fatgen103), sections 3-4
    ("Boot Sector and BPB", "FAT Type Determination").
    Linux ``fs/fat/inode.c`` (``fat_read_bpb``, ``fat_valid_media``).
    GRUB ``grub-core/fs/fat.c`` (``grub_fat_mount``: first-FAT-entry media check, the
    ``%04X-%04X`` serial it prints as the UUID).
"""

from __future__ import annotations

from dataclasses import dataclass

from virtkit._binstruct import Record
from virtkit._streams import ByteSource
from virtkit.errors import CorruptStructure, NotThisFormat

__all__ = ["FatGeometry", "parse_boot_sector"]

# fatgen103 section 3.1-3.3; field names as in the specification.
BPB_COMMON = Record(
    "FAT BPB",
    "<",
    [
        ("BS_jmpBoot", "3s"),
        ("BS_OEMName", "8s"),
        ("BPB_BytsPerSec", "H"),
        ("BPB_SecPerClus", "B"),
        ("BPB_RsvdSecCnt", "H"),
        ("BPB_NumFATs", "B"),
        ("BPB_RootEntCnt", "H"),
        ("BPB_TotSec16", "H"),
        ("BPB_Media", "B"),
        ("BPB_FATSz16", "H"),
        ("BPB_SecPerTrk", "H"),
        ("BPB_NumHeads", "H"),
        ("BPB_HiddSec", "I"),
        ("BPB_TotSec32", "I"),
    ],
)
# Offset 36 on FAT12/16.
BS_FAT16 = Record(
    "FAT12 and FAT16 extended boot record",
    "<",
    [
        ("BS_DrvNum", "B"),
        ("BS_Reserved1", "B"),
        ("BS_BootSig", "B"),
        ("BS_VolID", "I"),
        ("BS_VolLab", "11s"),
        ("BS_FilSysType", "8s"),
    ],
)
# Offset 36 on FAT32.
BS_FAT32 = Record(
    "FAT32 extended BPB",
    "<",
    [
        ("BPB_FATSz32", "I"),
        ("BPB_ExtFlags", "H"),
        ("BPB_FSVer", "H"),
        ("BPB_RootClus", "I"),
        ("BPB_FSInfo", "H"),
        ("BPB_BkBootSec", "H"),
        ("BPB_Reserved", "12s"),
        ("BS_DrvNum", "B"),
        ("BS_Reserved1", "B"),
        ("BS_BootSig", "B"),
        ("BS_VolID", "I"),
        ("BS_VolLab", "11s"),
        ("BS_FilSysType", "8s"),
    ],
)

BOOT_SIGNATURE = b"\x55\xaa"  # fatgen103 3.1: bytes 510-511 of sector 0
EXT_BOOT_SIGNATURE = 0x29  # fatgen103: BS_BootSig says BS_VolID/VolLab/FilSysType are present
FAT12_MAX_CLUSTERS = 4084  # fatgen103 "FAT Type Determination": < 4085 clusters is FAT12
FAT16_MAX_CLUSTERS = 65524  # ... < 65525 clusters is FAT16
FAT32_MAX_CLUSTERS = 0x0FFFFFF6 - 1  # 28-bit entries; 0x0FFFFFF7 is "bad cluster"
DIR_ENTRY_SIZE = 32  # fatgen103 section 6


@dataclass(frozen=True, slots=True)
class FatGeometry:
    """Where everything is, in bytes from the start of the volume.

    Attributes:
        fat_type: 12, 16 or 32.
        bytes_per_sector: logical sector size.
        cluster_size: bytes per cluster.
        fat_offset: the FAT that is read (the active one on FAT32 without mirroring).
        fat_bytes: size of one FAT.
        cluster_count: data clusters; valid cluster numbers are ``2 .. cluster_count + 1``.
        data_offset: byte offset of cluster 2.
        root_offset: FAT12/16 fixed root directory region (0 on FAT32).
        root_bytes: its size (0 on FAT32).
        root_cluster: first cluster of the FAT32 root directory (0 on FAT12/16).
        total_bytes: size of the filesystem.
        media: the BPB media byte.
        volume_id: the serial number (``BS_VolID``), or None without extended boot record.
        bpb_label: the BPB copy of the label (GRUB and Linux use the root directory's).
    """

    fat_type: int
    bytes_per_sector: int
    cluster_size: int
    fat_offset: int
    fat_bytes: int
    cluster_count: int
    data_offset: int
    root_offset: int
    root_bytes: int
    root_cluster: int
    total_bytes: int
    media: int
    volume_id: int | None
    bpb_label: bytes

    @property
    def max_cluster(self) -> int:
        """Highest valid cluster number."""
        return self.cluster_count + 1

    def cluster_offset(self, cluster: int) -> int:
        """Byte offset of a data cluster (2 .. max_cluster)."""
        return self.data_offset + (cluster - 2) * self.cluster_size


def _no(reason: str) -> NotThisFormat:
    return NotThisFormat(f"no FAT boot sector: {reason}")


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def parse_boot_sector(source: ByteSource) -> FatGeometry:
    """Recognise a FAT boot sector on ``source`` and derive the geometry.

    Args:
        source: the volume.

    Returns:
        the geometry.

    Raises:
        NotThisFormat: not a plausible FAT boot sector (see the module docstring).
        CorruptStructure: a FAT whose sizes do not fit in the volume.
    """
    if source.size < 512:
        raise _no(f"volume of {source.size} bytes is smaller than a boot sector")
    sector = source.pread(0, 512)
    bpb = BPB_COMMON.parse(sector, 0, where=source.name)
    if sector[0] not in (0xEB, 0xE9):  # fatgen103: "EB xx 90" or "E9 xx xx"
        raise _no(f"jump instruction {sector[0]:#04x} is neither 0xeb nor 0xe9")
    if sector[510:512] != BOOT_SIGNATURE:
        raise _no("no 0x55aa signature at 0x1fe")
    bps = bpb.BPB_BytsPerSec
    if bps not in (512, 1024, 2048, 4096):
        raise _no(f"bytes per sector {bps} is not 512, 1024, 2048 or 4096")
    spc = bpb.BPB_SecPerClus
    if not _power_of_two(spc) or spc > 128:
        raise _no(f"sectors per cluster {spc} is not a power of two up to 128")
    if bpb.BPB_RsvdSecCnt == 0:
        raise _no("no reserved sectors")
    if bpb.BPB_NumFATs not in (1, 2):
        raise _no(f"FAT count {bpb.BPB_NumFATs} is not 1 or 2")
    media = bpb.BPB_Media
    if media != 0xF0 and media < 0xF8:  # fatgen103 BPB_Media; Linux fat_valid_media
        raise _no(f"media byte {media:#04x} is not 0xf0 or 0xf8-0xff")
    total_sectors = bpb.BPB_TotSec16 or bpb.BPB_TotSec32
    if total_sectors == 0 or (bpb.BPB_TotSec16 and bpb.BPB_TotSec32 and bpb.BPB_TotSec16 != bpb.BPB_TotSec32):
        raise _no(f"total sector counts {bpb.BPB_TotSec16} / {bpb.BPB_TotSec32} are inconsistent")

    is_fat32 = bpb.BPB_FATSz16 == 0
    if is_fat32:
        ext = BS_FAT32.parse(sector, 36, where=source.name)
        fat_sectors = ext.BPB_FATSz32
        if bpb.BPB_RootEntCnt != 0:
            raise _no(f"FAT32 layout with {bpb.BPB_RootEntCnt} fixed root entries")
        if ext.BPB_FSVer != 0:
            raise _no(f"FAT32 version {ext.BPB_FSVer:#x} is not 0")
        if fat_sectors == 0:
            raise _no("FAT size is 0")
    else:
        ext = BS_FAT16.parse(sector, 36, where=source.name)
        fat_sectors = bpb.BPB_FATSz16
        if bpb.BPB_RootEntCnt == 0 or (bpb.BPB_RootEntCnt * DIR_ENTRY_SIZE) % bps:
            raise _no(f"fixed root directory of {bpb.BPB_RootEntCnt} entries does not fill whole sectors")

    root_dir_sectors = (bpb.BPB_RootEntCnt * DIR_ENTRY_SIZE + bps - 1) // bps
    first_data_sector = bpb.BPB_RsvdSecCnt + bpb.BPB_NumFATs * fat_sectors + root_dir_sectors
    if first_data_sector >= total_sectors:
        raise _no(f"metadata ({first_data_sector} sectors) does not leave room for data in {total_sectors} sectors")
    cluster_count = (total_sectors - first_data_sector) // spc
    if cluster_count == 0:
        raise _no("no data clusters")
    if is_fat32:
        fat_type = 32
        cluster_count = min(cluster_count, FAT32_MAX_CLUSTERS)
    elif cluster_count <= FAT12_MAX_CLUSTERS:
        fat_type = 12
    elif cluster_count <= FAT16_MAX_CLUSTERS:
        fat_type = 16
    else:
        raise _no(f"{cluster_count} clusters is too many for FAT16, but the BPB has the FAT12/16 layout")
    # The FAT must hold an entry for every cluster (plus the two reserved ones).
    entries_in_fat = fat_sectors * bps * 8 // fat_type
    if entries_in_fat < cluster_count + 2:
        raise _no(f"a FAT of {fat_sectors} sectors holds {entries_in_fat} entries, {cluster_count + 2} needed")

    fat_index = 0
    root_cluster = 0
    if is_fat32:
        if ext.BPB_ExtFlags & 0x80:  # mirroring disabled: bits 0-3 name the active FAT
            fat_index = ext.BPB_ExtFlags & 0x0F
            if fat_index >= bpb.BPB_NumFATs:
                raise _no(f"active FAT {fat_index} of {bpb.BPB_NumFATs}")
        root_cluster = ext.BPB_RootClus
        if not 2 <= root_cluster <= cluster_count + 1:
            raise _no(f"root cluster {root_cluster} is outside 2..{cluster_count + 1}")

    total_bytes = total_sectors * bps
    if total_bytes > source.size:
        raise CorruptStructure(
            f"FAT boot sector on {source.name}",
            "filesystem is larger than its volume",
            offset=0,
            expected=source.size,
            got=total_bytes,
        )
    geometry = FatGeometry(
        fat_type=fat_type,
        bytes_per_sector=bps,
        cluster_size=bps * spc,
        fat_offset=(bpb.BPB_RsvdSecCnt + fat_index * fat_sectors) * bps,
        fat_bytes=fat_sectors * bps,
        cluster_count=cluster_count,
        data_offset=first_data_sector * bps,
        root_offset=0 if is_fat32 else (bpb.BPB_RsvdSecCnt + bpb.BPB_NumFATs * fat_sectors) * bps,
        root_bytes=root_dir_sectors * bps,
        root_cluster=root_cluster,
        total_bytes=total_bytes,
        media=media,
        volume_id=ext.BS_VolID if ext.BS_BootSig == EXT_BOOT_SIGNATURE else None,
        bpb_label=ext.BS_VolLab if ext.BS_BootSig == EXT_BOOT_SIGNATURE else b"",
    )
    _check_media_entry(source, geometry)
    return geometry


def _check_media_entry(source: ByteSource, g: FatGeometry) -> None:
    """FAT[0] holds the media byte in its low 8 bits and ones above (fatgen103 section 4).

    GRUB refuses a FAT without it (ignoring bit 3 of the media byte, which some
    BIOSes rewrite); so do we, which also keeps random boot sectors out.
    """
    raw = source.pread(g.fat_offset, 4)
    value = int.from_bytes(raw, "little")
    if g.fat_type == 12:
        value, ones = value & 0xFFF, 0xF00
    elif g.fat_type == 16:
        value, ones = value & 0xFFFF, 0xFF00
    else:
        value, ones = value & 0x0FFFFFFF, 0x0FFFFF00
    if (value | 0x8) != (ones | g.media | 0x8):
        raise _no(f"FAT[0] is {value:#x}, not the media byte {g.media:#04x} with the high bits set")
