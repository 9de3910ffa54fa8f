"""The ext2/3/4 superblock: validation, geometry, features, and where group descriptors live.

References:
    Linux ``fs/ext4/super.c`` (ext4_fill_super's geometry checks, descriptor_loc),
        ``fs/ext4/balloc.c`` (ext4_bg_has_super, sparse_super2's s_backup_bgs),
        ``fs/ext4/ext4.h`` (field layout).
    util-linux ``libblkid/src/superblocks/ext.c`` (ext2/ext3/ext4/jbd naming).
    GRUB ``grub-core/fs/ext2.c`` (``grub_ext2_uuid``: "%04x%04x-%04x-%04x-%04x-%04x%04x%04x"
        over the 16 UUID bytes read as big-endian 16-bit words; ``grub_ext2_label``:
        ``s_volume_name`` up to 16 bytes).

Group descriptor placement::

    classic (no meta_bg), descriptors packed after the superblock's block:

        block: first_data_block | +1 .. +N: GDT (all groups) | reserved GDT | ...

    meta_bg, descriptor block number b >= s_first_meta_bg covers groups
    [b*D, (b+1)*D) (D = descriptors per block) and sits in the first group of
    that range, right after its superblock backup (if the group has one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from virtkit.boot.fs.ext4 import structs as S
from virtkit.errors import CorruptStructure, NotThisFormat, UnsupportedFeature

__all__ = ["Superblock", "parse_superblock"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Superblock:
    """A validated superblock with the derived geometry.

    Attributes:
        raw: the parsed record (kernel field names: ``raw.s_magic``, ``raw.s_uuid``).
        block_size: bytes per block (1 KiB .. 64 KiB).
        blocks_count: blocks in the filesystem (64-bit when the 64bit feature is on).
        group_count: number of block groups.
        desc_size: bytes per group descriptor (32, or s_desc_size with 64bit).
        inode_size: bytes per on-disk inode.
        first_ino: first non-reserved inode number.
    """

    raw: Any
    block_size: int
    blocks_count: int
    group_count: int
    desc_size: int
    inode_size: int
    first_ino: int

    @property
    def compat(self) -> int:
        return int(self.raw.s_feature_compat)

    @property
    def incompat(self) -> int:
        return int(self.raw.s_feature_incompat)

    @property
    def ro_compat(self) -> int:
        return int(self.raw.s_feature_ro_compat)

    @property
    def inodes_count(self) -> int:
        return int(self.raw.s_inodes_count)

    @property
    def inodes_per_group(self) -> int:
        return int(self.raw.s_inodes_per_group)

    @property
    def blocks_per_group(self) -> int:
        return int(self.raw.s_blocks_per_group)

    @property
    def first_data_block(self) -> int:
        return int(self.raw.s_first_data_block)

    @property
    def descs_per_block(self) -> int:
        return self.block_size // self.desc_size

    @property
    def cluster_size(self) -> int:
        """Allocation unit: the block size, or a power-of-two multiple with bigalloc."""
        if self.ro_compat & S.RO_COMPAT_BIGALLOC:
            return 1024 << int(self.raw.s_log_cluster_size)
        return self.block_size

    @property
    def uuid(self) -> str:
        """The UUID as GRUB's ext2 driver (and blkid) print it: lower-case 8-4-4-4-12."""
        h = bytes(self.raw.s_uuid).hex()
        return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    @property
    def label_bytes(self) -> bytes:
        """``s_volume_name`` up to the first NUL (GRUB's grub_strndup of 16 bytes)."""
        return bytes(self.raw.s_volume_name).split(b"\0", 1)[0]

    @property
    def fstype(self) -> str:
        """"ext2", "ext3", "ext4" or "ext4dev", decided the way blkid decides."""
        fc, fi, frc = self.compat, self.incompat, self.ro_compat
        if fc & S.COMPAT_HAS_JOURNAL:
            if not (frc & ~S.EXT3_FEATURE_RO_COMPAT_SUPP) and not (fi & ~S.EXT3_FEATURE_INCOMPAT_SUPP):
                return "ext3"
        elif not (frc & ~S.EXT2_FEATURE_RO_COMPAT_SUPP) and not (fi & ~S.EXT2_FEATURE_INCOMPAT_SUPP):
            return "ext2"
        if int(self.raw.s_flags) & S.EXT2_FLAGS_TEST_FILESYS:
            return "ext4dev"
        return "ext4"

    @property
    def features(self) -> list[str]:
        """Feature names as ``dumpe2fs -h`` lists them."""
        return S.feature_names(self.compat, self.incompat, self.ro_compat)

    @property
    def needs_recovery(self) -> bool:
        """The journal holds transactions not yet written back (an unclean shutdown).

        A read-only reader cannot replay the journal: what it reads is the state of the
        last checkpoint, so recently changed files may look old or inconsistent.
        """
        return bool(self.incompat & S.INCOMPAT_RECOVER)

    def has_super(self, group: int) -> bool:
        """Whether ``group`` holds a superblock backup (fs/ext4/balloc.c ext4_bg_has_super)."""
        if group == 0:
            return True
        if self.compat & S.COMPAT_SPARSE_SUPER2:
            return group in (int(self.raw.s_backup_bgs_0), int(self.raw.s_backup_bgs_1))
        if group <= 1 or not (self.ro_compat & S.RO_COMPAT_SPARSE_SUPER):
            return True
        if not group & 1:
            return False
        return any(_is_power_of(group, base) for base in (3, 5, 7))

    def descriptor_block(self, desc_block_nr: int) -> int:
        """Block number of group-descriptor block ``desc_block_nr`` (fs/ext4/super.c descriptor_loc)."""
        first = self.first_data_block
        if not (self.incompat & S.INCOMPAT_META_BG) or desc_block_nr < int(self.raw.s_first_meta_bg):
            return first + desc_block_nr + 1
        group = self.descs_per_block * desc_block_nr
        has_super = 1 if self.has_super(group) else 0
        # A 1 KiB-block filesystem with first_data_block 0 (bigalloc) keeps the boot
        # block and the superblock in block 0 and 1.
        if self.block_size == 1024 and desc_block_nr == 0 and first == 0:
            has_super += 1
        return first + group * self.blocks_per_group + has_super


def _is_power_of(n: int, base: int) -> bool:
    p = base
    while p < n:
        p *= base
    return p == n


def parse_superblock(buf: bytes, *, where: str) -> Superblock:
    """Validate the 1 KiB superblock ``buf`` (read from volume offset 1024).

    Args:
        buf: the 1024 superblock bytes.
        where: the volume's name for messages.

    Returns:
        the validated :class:`Superblock`.

    Raises:
        NotThisFormat: the magic is not 0xEF53.
        UnsupportedFeature: an external journal device, or an incompatible feature this
            reader cannot read (named).
        CorruptStructure: the geometry is impossible.
    """
    raw = S.SUPERBLOCK.parse(buf, 0, where=where)
    what = f"ext4 superblock on {where}"
    if raw.s_magic != S.EXT4_SUPER_MAGIC:
        raise NotThisFormat(f"{what} at {S.SUPERBLOCK_OFFSET:#x}: bad magic, expected 0xef53, got {raw.s_magic:#06x}")

    def bad(problem: str, field: str, got: int, expected: Any = None) -> CorruptStructure:
        off = S.SUPERBLOCK_OFFSET + S.SUPERBLOCK_FIELD_OFFSETS[field]
        return CorruptStructure(what, f"{field}: {problem}", offset=off, expected=expected, got=got)

    incompat = raw.s_feature_incompat
    if incompat & S.INCOMPAT_JOURNAL_DEV:
        raise UnsupportedFeature(f"{what}: this is an external journal device (journal_dev), it holds no files")
    unreadable = incompat & ~S.INCOMPAT_READABLE
    if unreadable:
        names = ", ".join(S.feature_names(0, unreadable, 0))
        raise UnsupportedFeature(f"{what}: incompatible feature(s) this reader cannot read: {names}")

    if not S.EXT4_MIN_BLOCK_LOG_SIZE <= raw.s_log_block_size + 10 <= S.EXT4_MAX_BLOCK_LOG_SIZE:
        raise bad("block size out of range 1 KiB..64 KiB", "s_log_block_size", raw.s_log_block_size)
    block_size = 1024 << raw.s_log_block_size

    if raw.s_rev_level == S.EXT4_GOOD_OLD_REV:
        inode_size = S.EXT4_GOOD_OLD_INODE_SIZE
        first_ino = S.EXT4_GOOD_OLD_FIRST_INO
    else:
        inode_size = raw.s_inode_size
        first_ino = raw.s_first_ino
        if inode_size < S.EXT4_GOOD_OLD_INODE_SIZE or inode_size > block_size or inode_size & (inode_size - 1):
            raise bad("not a power of two between 128 and the block size", "s_inode_size", inode_size)
        if first_ino < S.EXT4_GOOD_OLD_FIRST_INO:
            raise bad("reserved inodes overlap", "s_first_ino", first_ino)

    blocks_count = raw.s_blocks_count_lo
    if incompat & S.INCOMPAT_64BIT:
        blocks_count |= raw.s_blocks_count_hi << 32
        desc_size = raw.s_desc_size
        if desc_size < S.EXT4_MIN_DESC_SIZE_64BIT or desc_size > S.EXT4_MAX_DESC_SIZE or desc_size & (desc_size - 1):
            raise bad("not a power of two between 64 and 1024", "s_desc_size", desc_size)
    else:
        desc_size = S.EXT4_MIN_DESC_SIZE
    if blocks_count == 0:
        raise bad("zero blocks", "s_blocks_count_lo", blocks_count)

    bpg = raw.s_blocks_per_group
    if raw.s_feature_ro_compat & S.RO_COMPAT_BIGALLOC:
        if raw.s_log_cluster_size < raw.s_log_block_size or raw.s_log_cluster_size > 30:
            raise bad("cluster smaller than a block", "s_log_cluster_size", raw.s_log_cluster_size)
        ratio = 1 << (raw.s_log_cluster_size - raw.s_log_block_size)
        if not 0 < raw.s_clusters_per_group <= 8 * block_size:
            raise bad("out of range", "s_clusters_per_group", raw.s_clusters_per_group, expected=f"1..{8 * block_size}")
        if bpg != raw.s_clusters_per_group * ratio:
            raise bad("does not match clusters per group", "s_blocks_per_group", bpg, expected=raw.s_clusters_per_group * ratio)
    elif not 0 < bpg <= 8 * block_size:
        raise bad("out of range", "s_blocks_per_group", bpg, expected=f"1..{8 * block_size}")
    ipg = raw.s_inodes_per_group
    if not block_size // inode_size <= ipg <= 8 * block_size:
        raise bad("out of range", "s_inodes_per_group", ipg, expected=f"{block_size // inode_size}..{8 * block_size}")
    if raw.s_first_data_block >= blocks_count:
        raise bad("beyond the last block", "s_first_data_block", raw.s_first_data_block)
    group_count = -(-(blocks_count - raw.s_first_data_block) // bpg)
    if group_count * ipg != raw.s_inodes_count:
        raise bad(
            "does not match groups x inodes per group",
            "s_inodes_count",
            raw.s_inodes_count,
            expected=group_count * ipg,
        )
    if raw.s_feature_incompat & S.INCOMPAT_META_BG:
        desc_blocks = -(-group_count // (block_size // desc_size))
        if raw.s_first_meta_bg > desc_blocks:
            raise bad("beyond the descriptor blocks", "s_first_meta_bg", raw.s_first_meta_bg, expected=f"<= {desc_blocks}")

    sb = Superblock(
        raw=raw,
        block_size=block_size,
        blocks_count=blocks_count,
        group_count=group_count,
        desc_size=desc_size,
        inode_size=inode_size,
        first_ino=first_ino,
    )
    if sb.needs_recovery:
        log.warning(
            "%s: the journal needs recovery; reading the last checkpointed state (a read-only reader cannot replay it)",
            what,
        )
    return sb
