"""What a volume holds, by magic numbers: the ``content`` of each Volume.

The names are blkid's ``TYPE`` values, so ``virtkit inspect`` agrees with
``blkid -p`` (a differential test checks it on every fixture volume).  This is
identification only; the filesystem readers (stage 3) do the real parsing.

Containers are checked first, because their members may also carry a
filesystem's magic: a RAID1 member with metadata 0.90/1.0 starts with the
array's filesystem, and blkid too reports it as ``linux_raid_member``.

Order: linux_raid_member, LVM2_member, crypto_LUKS, btrfs, xfs, ext2/ext3/ext4
(and jbd), iso9660, swap (and swsuspend), squashfs, ntfs, exfat, vfat.

References:
    - util-linux ``libblkid/src/superblocks/`` (type names; the ext2/3/4 feature
      rules of ``ext.c``; FAT boot-sector checks of ``vfat.c``; swap's page sizes).
    - ext4: Linux ``fs/ext4/ext4.h`` (s_magic at 0x438, feature words at 0x45C).
    - xfs: ``fs/xfs/libxfs/xfs_format.h`` (XFS_SB_MAGIC "XFSB" at 0).
    - btrfs: ``fs/btrfs/ctree.h`` (BTRFS_MAGIC "_BHRfS_M" at 64 KiB + 0x40).
    - ISO 9660 / ECMA-119 §8.1 (volume descriptor "CD001" at sector 16, byte 1).
    - Microsoft FAT specification (BPB fields), swap: ``include/linux/swap.h``.
    - LUKS on-disk format v1/v2 ("LUKS\\xba\\xbe"), squashfs ("hsqs").
"""

from __future__ import annotations

from virtkit._streams import ByteSource
from virtkit.boot.volume.lvm.label import find_label_sector
from virtkit.boot.volume.md import find_superblock

__all__ = ["ext_flavour", "is_fat_boot_sector", "sniff_content"]

EXT4_SUPER_MAGIC = 0xEF53  # fs/ext4/ext4.h
EXT_SUPERBLOCK_OFFSET = 0x400  # fs/ext4/ext4.h: superblock at 1 KiB
EXT_MAGIC_OFFSET = 0x38  # s_magic within the superblock
EXT_FEATURE_COMPAT_OFFSET = 0x5C  # s_feature_compat, then s_feature_incompat, s_feature_ro_compat
EXT3_FEATURE_COMPAT_HAS_JOURNAL = 0x0004  # fs/ext4/ext4.h
EXT3_FEATURE_INCOMPAT_RECOVER = 0x0004
EXT3_FEATURE_INCOMPAT_JOURNAL_DEV = 0x0008
EXT2_FEATURE_INCOMPAT_FILETYPE = 0x0002
EXT2_FEATURE_INCOMPAT_META_BG = 0x0010
EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER = 0x0001
EXT2_FEATURE_RO_COMPAT_LARGE_FILE = 0x0002
EXT2_FEATURE_RO_COMPAT_BTREE_DIR = 0x0004
# libblkid ext.c: what ext2 and ext3 drivers understand; anything more makes it ext4.
EXT2_FEATURE_RO_COMPAT_SUPP = (
    EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE | EXT2_FEATURE_RO_COMPAT_BTREE_DIR
)
EXT2_FEATURE_INCOMPAT_SUPP = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT2_FEATURE_INCOMPAT_META_BG
EXT3_FEATURE_RO_COMPAT_SUPP = EXT2_FEATURE_RO_COMPAT_SUPP
EXT3_FEATURE_INCOMPAT_SUPP = EXT2_FEATURE_INCOMPAT_SUPP | EXT3_FEATURE_INCOMPAT_RECOVER

XFS_SB_MAGIC = b"XFSB"  # fs/xfs/libxfs/xfs_format.h
BTRFS_MAGIC = b"_BHRfS_M"  # fs/btrfs/ctree.h
BTRFS_MAGIC_OFFSET = 0x10040  # primary superblock at 64 KiB, magic at +0x40
ISO9660_MAGIC = b"CD001"  # ECMA-119 §8.1: standard identifier
ISO9660_MAGIC_OFFSET = 0x8001  # sector 16 (2 KiB sectors), byte 1
LUKS_MAGIC = b"LUKS\xba\xbe"  # LUKS1/LUKS2 on-disk format
SQUASHFS_MAGIC = b"hsqs"  # squashfs_fs.h, little-endian
NTFS_OEM_ID = b"NTFS    "  # at byte 3 of the NTFS boot sector
EXFAT_OEM_ID = b"EXFAT   "  # exFAT specification §3.1.2
SWAP_MAGICS = (b"SWAPSPACE2", b"SWAP-SPACE")  # include/linux/swap.h, at page_size - 10
SWSUSPEND_MAGICS = (b"S1SUSPEND", b"S2SUSPEND", b"ULSUSPEND", b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c", b"LINHIB0001")
SWAP_PAGE_SIZES = (4096, 8192, 16384, 65536)  # libblkid swap.c tries these
FAT_MAGICS = ((0x36, b"FAT12   "), (0x36, b"FAT16   "), (0x36, b"FAT     "), (0x52, b"FAT32   "))
FAT_OEM_IDS = (b"MSWIN", b"MSDOS", b"mkdosfs", b"mkfs.fat")


def _read(src: ByteSource, offset: int, length: int) -> bytes | None:
    """``length`` bytes at ``offset``, or None if the source is too small."""
    if offset < 0 or offset + length > src.size:
        return None
    return src.pread(offset, length)


def ext_flavour(superblock: bytes) -> str:
    """ext2, ext3, ext4 or jbd for an ext superblock (from its offset 0), as blkid decides."""
    c = int.from_bytes(superblock[EXT_FEATURE_COMPAT_OFFSET : EXT_FEATURE_COMPAT_OFFSET + 4], "little")
    i = int.from_bytes(superblock[EXT_FEATURE_COMPAT_OFFSET + 4 : EXT_FEATURE_COMPAT_OFFSET + 8], "little")
    r = int.from_bytes(superblock[EXT_FEATURE_COMPAT_OFFSET + 8 : EXT_FEATURE_COMPAT_OFFSET + 12], "little")
    if i & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV:
        return "jbd"
    if c & EXT3_FEATURE_COMPAT_HAS_JOURNAL:
        if (r & ~EXT3_FEATURE_RO_COMPAT_SUPP) or (i & ~EXT3_FEATURE_INCOMPAT_SUPP):
            return "ext4"
        return "ext3"
    if (r & ~EXT2_FEATURE_RO_COMPAT_SUPP) or (i & ~EXT2_FEATURE_INCOMPAT_SUPP):
        return "ext4"
    return "ext2"


def is_fat_boot_sector(sector: bytes) -> bool:
    """Does ``sector`` look like a FAT boot sector (which also ends in 0x55AA)?

    A FAT magic string or a known OEM id, plus a plausible BIOS parameter
    block: bytes per sector a power of two 512..4096, sectors per cluster a
    power of two, reserved sectors >= 1, one or two FATs, a valid media byte.
    """
    if len(sector) < 512:
        return False
    magic = any(sector[off : off + len(m)] == m for off, m in FAT_MAGICS) or any(
        sector[3 : 3 + len(oem)] == oem for oem in FAT_OEM_IDS
    )
    if not magic:
        return False
    bytes_per_sector = int.from_bytes(sector[11:13], "little")
    sectors_per_cluster = sector[13]
    reserved = int.from_bytes(sector[14:16], "little")
    fats = sector[16]
    media = sector[21]
    return (
        bytes_per_sector in (512, 1024, 2048, 4096)
        and sectors_per_cluster != 0
        and sectors_per_cluster & (sectors_per_cluster - 1) == 0
        and reserved >= 1
        and fats in (1, 2)
        and (media == 0xF0 or media >= 0xF8)
    )


def sniff_content(src: ByteSource) -> str | None:
    """blkid's TYPE for the start of ``src`` (containers first), or None if unknown.

    Only fixed, small reads are made: the first 64 KiB + 4 KiB at most, and the
    MD superblock locations near the end.
    """
    if find_superblock(src) is not None:
        return "linux_raid_member"
    if find_label_sector(src) is not None:
        return "LVM2_member"
    head = _read(src, 0, min(src.size, 4096)) or b""
    if head.startswith(LUKS_MAGIC):
        return "crypto_LUKS"
    if _read(src, BTRFS_MAGIC_OFFSET, len(BTRFS_MAGIC)) == BTRFS_MAGIC:
        return "btrfs"
    if head.startswith(XFS_SB_MAGIC):
        return "xfs"
    sb = _read(src, EXT_SUPERBLOCK_OFFSET, 0x100)
    if sb is not None and int.from_bytes(sb[EXT_MAGIC_OFFSET : EXT_MAGIC_OFFSET + 2], "little") == EXT4_SUPER_MAGIC:
        return ext_flavour(sb)
    if _read(src, ISO9660_MAGIC_OFFSET, len(ISO9660_MAGIC)) == ISO9660_MAGIC:
        return "iso9660"
    for page in SWAP_PAGE_SIZES:
        tail = _read(src, page - 10, 10)
        if tail is None:
            break
        if tail in SWAP_MAGICS:
            return "swap"
        if any(tail.startswith(m) for m in SWSUSPEND_MAGICS):
            return "swsuspend"
    if head.startswith(SQUASHFS_MAGIC):
        return "squashfs"
    if head[3:11] == NTFS_OEM_ID:
        return "ntfs"
    if head[3:11] == EXFAT_OEM_ID:
        return "exfat"
    if is_fat_boot_sector(head[:512]):
        return "vfat"
    return None
