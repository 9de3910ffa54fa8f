"""On-disk records and constants of ext2/ext3/ext4, with the kernel's field names.

References:
    Linux ``fs/ext4/ext4.h`` (struct ext4_super_block, ext4_group_desc, ext4_inode,
        ext4_dir_entry_2, feature and inode flag bits), ``fs/ext4/ext4_extents.h``
        (ext4_extent_header, ext4_extent, ext4_extent_idx), ``fs/ext4/xattr.h``
        (ext4_xattr_entry, in-inode xattr header), ``fs/ext4/inline.c`` (inline data).
    e2fsprogs ``lib/ext2fs/ext2_fs.h`` and ``lib/e2p/feature.c`` (feature names as
        ``dumpe2fs`` prints them).
    The kernel's ext4 disk-layout document (``Documentation/filesystems/ext4/``).

Only the layouts are taken from those sources (facts); no code is.
"""

from __future__ import annotations

import struct

from virtkit._binstruct import Record

__all__ = [
    "COMPAT_NAMES",
    "DESC_32",
    "DESC_64",
    "DIRENT_HEADER",
    "EXTENT",
    "EXTENT_HEADER",
    "EXTENT_IDX",
    "INCOMPAT_NAMES",
    "INODE_BASE",
    "RO_COMPAT_NAMES",
    "SUPERBLOCK",
    "SUPERBLOCK_FIELD_OFFSETS",
    "XATTR_ENTRY",
    "feature_names",
]

# --- superblock -------------------------------------------------------------------------

SUPERBLOCK_OFFSET = 1024  # fs/ext4/super.c: the primary superblock is 1 KiB into the volume
SUPERBLOCK_SIZE = 1024
EXT4_SUPER_MAGIC = 0xEF53  # fs/ext4/ext4.h (include/uapi/linux/magic.h)
EXT4_MIN_BLOCK_LOG_SIZE = 10  # fs/ext4/ext4.h: 1 KiB
EXT4_MAX_BLOCK_LOG_SIZE = 16  # fs/ext4/ext4.h: 64 KiB
EXT4_GOOD_OLD_REV = 0  # fs/ext4/ext4.h: revision 0 has fixed inode size and first inode
EXT4_GOOD_OLD_INODE_SIZE = 128  # fs/ext4/ext4.h
EXT4_GOOD_OLD_FIRST_INO = 11  # fs/ext4/ext4.h
EXT4_ROOT_INO = 2  # fs/ext4/ext4.h
EXT4_MIN_DESC_SIZE = 32  # fs/ext4/ext4.h
EXT4_MIN_DESC_SIZE_64BIT = 64  # fs/ext4/ext4.h
EXT4_MAX_DESC_SIZE = 1024  # fs/ext4/ext4.h: EXT4_MIN_BLOCK_SIZE
EXT4_VALID_FS = 0x0001  # fs/ext4/ext4.h: s_state "unmounted cleanly"
EXT2_FLAGS_TEST_FILESYS = 0x0004  # fs/ext4/ext4.h: s_flags, blkid reports such filesystems as "ext4dev"

_SUPERBLOCK_FIELDS = [
    ("s_inodes_count", "I"),  # 0x00
    ("s_blocks_count_lo", "I"),
    ("s_r_blocks_count_lo", "I"),
    ("s_free_blocks_count_lo", "I"),
    ("s_free_inodes_count", "I"),  # 0x10
    ("s_first_data_block", "I"),
    ("s_log_block_size", "I"),
    ("s_log_cluster_size", "I"),
    ("s_blocks_per_group", "I"),  # 0x20
    ("s_clusters_per_group", "I"),
    ("s_inodes_per_group", "I"),
    ("s_mtime", "I"),
    ("s_wtime", "I"),  # 0x30
    ("s_mnt_count", "H"),
    ("s_max_mnt_count", "h"),
    ("s_magic", "H"),  # 0x38
    ("s_state", "H"),
    ("s_errors", "H"),
    ("s_minor_rev_level", "H"),
    ("s_lastcheck", "I"),  # 0x40
    ("s_checkinterval", "I"),
    ("s_creator_os", "I"),
    ("s_rev_level", "I"),
    ("s_def_resuid", "H"),  # 0x50
    ("s_def_resgid", "H"),
    ("s_first_ino", "I"),  # 0x54
    ("s_inode_size", "H"),  # 0x58
    ("s_block_group_nr", "H"),
    ("s_feature_compat", "I"),  # 0x5c
    ("s_feature_incompat", "I"),  # 0x60
    ("s_feature_ro_compat", "I"),  # 0x64
    ("s_uuid", "16s"),  # 0x68
    ("s_volume_name", "16s"),  # 0x78
    ("s_last_mounted", "64s"),  # 0x88
    ("s_algorithm_usage_bitmap", "I"),  # 0xc8
    ("s_prealloc_blocks", "B"),
    ("s_prealloc_dir_blocks", "B"),
    ("s_reserved_gdt_blocks", "H"),
    ("s_journal_uuid", "16s"),  # 0xd0
    ("s_journal_inum", "I"),  # 0xe0
    ("s_journal_dev", "I"),
    ("s_last_orphan", "I"),
    ("s_hash_seed", "16s"),  # 0xec
    ("s_def_hash_version", "B"),  # 0xfc
    ("s_jnl_backup_type", "B"),
    ("s_desc_size", "H"),  # 0xfe
    ("s_default_mount_opts", "I"),  # 0x100
    ("s_first_meta_bg", "I"),  # 0x104
    ("s_mkfs_time", "I"),  # 0x108
    ("s_jnl_blocks", "68s"),  # 0x10c
    ("s_blocks_count_hi", "I"),  # 0x150
    ("s_r_blocks_count_hi", "I"),
    ("s_free_blocks_count_hi", "I"),
    ("s_min_extra_isize", "H"),  # 0x15c
    ("s_want_extra_isize", "H"),
    ("s_flags", "I"),  # 0x160
    ("s_raid_stride", "H"),
    ("s_mmp_update_interval", "H"),
    ("s_mmp_block", "Q"),  # 0x168
    ("s_raid_stripe_width", "I"),  # 0x170
    ("s_log_groups_per_flex", "B"),  # 0x174
    ("s_checksum_type", "B"),
    ("s_encryption_level", "B"),
    ("s_reserved_pad", "B"),
    ("s_kbytes_written", "Q"),  # 0x178
    ("s_snapshot_inum", "I"),  # 0x180
    ("s_snapshot_id", "I"),
    ("s_snapshot_r_blocks_count", "Q"),
    ("s_snapshot_list", "I"),  # 0x190
    ("s_error_count", "I"),
    ("s_first_error_time", "I"),
    ("s_first_error_ino", "I"),
    ("s_first_error_block", "Q"),  # 0x1a0
    ("s_first_error_func", "32s"),
    ("s_first_error_line", "I"),  # 0x1c8
    ("s_last_error_time", "I"),
    ("s_last_error_ino", "I"),
    ("s_last_error_line", "I"),
    ("s_last_error_block", "Q"),  # 0x1d8
    ("s_last_error_func", "32s"),
    ("s_mount_opts", "64s"),  # 0x200
    ("s_usr_quota_inum", "I"),  # 0x240
    ("s_grp_quota_inum", "I"),
    ("s_overhead_clusters", "I"),
    ("s_backup_bgs_0", "I"),  # 0x24c: s_backup_bgs[2] (sparse_super2)
    ("s_backup_bgs_1", "I"),
    ("s_encrypt_algos", "4s"),  # 0x254
    ("s_encrypt_pw_salt", "16s"),
    ("s_lpf_ino", "I"),  # 0x268
    ("s_prj_quota_inum", "I"),
    ("s_checksum_seed", "I"),  # 0x270
    ("s_wtime_hi", "B"),
    ("s_mtime_hi", "B"),
    ("s_mkfs_time_hi", "B"),
    ("s_lastcheck_hi", "B"),
    ("s_first_error_time_hi", "B"),
    ("s_last_error_time_hi", "B"),
    ("s_first_error_errcode", "B"),
    ("s_last_error_errcode", "B"),
    ("s_encoding", "H"),  # 0x27c
    ("s_encoding_flags", "H"),
    ("s_orphan_file_inum", "I"),  # 0x280
    ("s_reserved", "376s"),  # 0x284: __le32 s_reserved[94]
    ("s_checksum", "I"),  # 0x3fc
]
SUPERBLOCK = Record("ext4 superblock", "<", _SUPERBLOCK_FIELDS)
assert SUPERBLOCK.size == SUPERBLOCK_SIZE


def _offsets(fields: list[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    pos = 0
    for name, code in fields:
        out[name] = pos
        pos += struct.calcsize("<" + code)
    return out


SUPERBLOCK_FIELD_OFFSETS = _offsets(_SUPERBLOCK_FIELDS)  # for error messages

# s_feature_compat (fs/ext4/ext4.h EXT4_FEATURE_COMPAT_*; names from lib/e2p/feature.c)
COMPAT_DIR_PREALLOC = 0x0001
COMPAT_IMAGIC_INODES = 0x0002
COMPAT_HAS_JOURNAL = 0x0004
COMPAT_EXT_ATTR = 0x0008
COMPAT_RESIZE_INODE = 0x0010
COMPAT_DIR_INDEX = 0x0020
COMPAT_SPARSE_SUPER2 = 0x0200
COMPAT_NAMES: dict[int, str] = {
    0x0001: "dir_prealloc",
    0x0002: "imagic_inodes",
    0x0004: "has_journal",
    0x0008: "ext_attr",
    0x0010: "resize_inode",
    0x0020: "dir_index",
    0x0040: "lazy_bg",
    0x0080: "snapshot_bitmap",
    0x0100: "exclude_bitmap",
    0x0200: "sparse_super2",
    0x0400: "fast_commit",
    0x0800: "stable_inodes",
    0x1000: "orphan_file",
}

# s_feature_ro_compat (fs/ext4/ext4.h EXT4_FEATURE_RO_COMPAT_*).  Read-only compatible:
# a reader may ignore every one of them.
RO_COMPAT_SPARSE_SUPER = 0x0001
RO_COMPAT_LARGE_FILE = 0x0002
RO_COMPAT_BTREE_DIR = 0x0004
RO_COMPAT_HUGE_FILE = 0x0008
RO_COMPAT_BIGALLOC = 0x0200
RO_COMPAT_METADATA_CSUM = 0x0400
RO_COMPAT_NAMES: dict[int, str] = {
    0x0001: "sparse_super",
    0x0002: "large_file",
    0x0004: "btree_dir",
    0x0008: "huge_file",
    0x0010: "uninit_bg",
    0x0020: "dir_nlink",
    0x0040: "extra_isize",
    0x0080: "snapshot",
    0x0100: "quota",
    0x0200: "bigalloc",
    0x0400: "metadata_csum",
    0x0800: "replica",
    0x1000: "read-only",
    0x2000: "project",
    0x4000: "shared_blocks",
    0x8000: "verity",
    0x10000: "orphan_present",
}

# s_feature_incompat (fs/ext4/ext4.h EXT4_FEATURE_INCOMPAT_*)
INCOMPAT_COMPRESSION = 0x0001
INCOMPAT_FILETYPE = 0x0002
INCOMPAT_RECOVER = 0x0004
INCOMPAT_JOURNAL_DEV = 0x0008
INCOMPAT_META_BG = 0x0010
INCOMPAT_EXTENTS = 0x0040
INCOMPAT_64BIT = 0x0080
INCOMPAT_MMP = 0x0100
INCOMPAT_FLEX_BG = 0x0200
INCOMPAT_EA_INODE = 0x0400
INCOMPAT_DIRDATA = 0x1000
INCOMPAT_CSUM_SEED = 0x2000
INCOMPAT_LARGEDIR = 0x4000
INCOMPAT_INLINE_DATA = 0x8000
INCOMPAT_ENCRYPT = 0x10000
INCOMPAT_CASEFOLD = 0x20000
INCOMPAT_NAMES: dict[int, str] = {
    0x0001: "compression",
    0x0002: "filetype",
    0x0004: "needs_recovery",
    0x0008: "journal_dev",
    0x0010: "meta_bg",
    0x0040: "extent",
    0x0080: "64bit",
    0x0100: "mmp",
    0x0200: "flex_bg",
    0x0400: "ea_inode",
    0x1000: "dirdata",
    0x2000: "metadata_csum_seed",
    0x4000: "large_dir",
    0x8000: "inline_data",
    0x10000: "encrypt",
    0x20000: "casefold",
}
# Every incompat bit this reader understands well enough to read the filesystem
# (the kernel's EXT4_FEATURE_INCOMPAT_SUPP, which also lacks compression, journal_dev
# and dirdata).  needs_recovery/mmp/csum_seed matter to writers only; encrypt is
# refused per inode, not per filesystem.
INCOMPAT_READABLE = (
    INCOMPAT_FILETYPE
    | INCOMPAT_RECOVER
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD
)

# blkid's ext2/ext3 feature sets (util-linux libblkid/src/superblocks/ext.c): a filesystem
# using anything outside them is "ext4".
EXT2_FEATURE_RO_COMPAT_SUPP = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR
EXT2_FEATURE_INCOMPAT_SUPP = INCOMPAT_FILETYPE | INCOMPAT_META_BG
EXT3_FEATURE_RO_COMPAT_SUPP = EXT2_FEATURE_RO_COMPAT_SUPP
EXT3_FEATURE_INCOMPAT_SUPP = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG


def feature_names(compat: int, incompat: int, ro_compat: int) -> list[str]:
    """Feature names in ``dumpe2fs``'s order (compat, incompat, ro_compat; low bit first).

    Unknown bits are named ``FEATURE_C12`` / ``FEATURE_I31`` / ``FEATURE_R20`` as e2p does.
    """
    out: list[str] = []
    for word, table, letter in ((compat, COMPAT_NAMES, "C"), (incompat, INCOMPAT_NAMES, "I"), (ro_compat, RO_COMPAT_NAMES, "R")):
        for bit in range(32):
            if word & (1 << bit):
                out.append(table.get(1 << bit, f"FEATURE_{letter}{bit}"))
    return out


# --- group descriptors ------------------------------------------------------------------

EXT4_BG_INODE_UNINIT = 0x0001  # fs/ext4/ext4.h: inode table/bitmap not initialised
EXT4_BG_BLOCK_UNINIT = 0x0002
EXT4_BG_INODE_ZEROED = 0x0004

_DESC_FIELDS = [
    ("bg_block_bitmap_lo", "I"),  # 0x00
    ("bg_inode_bitmap_lo", "I"),
    ("bg_inode_table_lo", "I"),
    ("bg_free_blocks_count_lo", "H"),  # 0x0c
    ("bg_free_inodes_count_lo", "H"),
    ("bg_used_dirs_count_lo", "H"),  # 0x10
    ("bg_flags", "H"),
    ("bg_exclude_bitmap_lo", "I"),
    ("bg_block_bitmap_csum_lo", "H"),  # 0x18
    ("bg_inode_bitmap_csum_lo", "H"),
    ("bg_itable_unused_lo", "H"),
    ("bg_checksum", "H"),  # 0x1e
]
DESC_32 = Record("ext4 group descriptor", "<", _DESC_FIELDS)
DESC_64 = Record(
    "ext4 group descriptor",
    "<",
    [
        *_DESC_FIELDS,
        ("bg_block_bitmap_hi", "I"),  # 0x20
        ("bg_inode_bitmap_hi", "I"),
        ("bg_inode_table_hi", "I"),
        ("bg_free_blocks_count_hi", "H"),  # 0x2c
        ("bg_free_inodes_count_hi", "H"),
        ("bg_used_dirs_count_hi", "H"),
        ("bg_itable_unused_hi", "H"),
        ("bg_exclude_bitmap_hi", "I"),  # 0x34
        ("bg_block_bitmap_csum_hi", "H"),
        ("bg_inode_bitmap_csum_hi", "H"),
        ("bg_reserved", "I"),
    ],
)
assert DESC_32.size == 32 and DESC_64.size == 64

# --- inodes -----------------------------------------------------------------------------

EXT4_N_BLOCKS = 15  # fs/ext4/ext4.h: i_block[] has 15 32-bit slots (60 bytes)
EXT4_NDIR_BLOCKS = 12  # direct block pointers
EXT4_IND_BLOCK = 12
EXT4_DIND_BLOCK = 13
EXT4_TIND_BLOCK = 14

# The first 128 bytes (the "good old" inode) plus the extra fields up to i_projid.
INODE_BASE = Record(
    "ext4 inode",
    "<",
    [
        ("i_mode", "H"),  # 0x00
        ("i_uid", "H"),
        ("i_size_lo", "I"),
        ("i_atime", "I"),  # 0x08
        ("i_ctime", "I"),
        ("i_mtime", "I"),  # 0x10
        ("i_dtime", "I"),
        ("i_gid", "H"),  # 0x18
        ("i_links_count", "H"),
        ("i_blocks_lo", "I"),
        ("i_flags", "I"),  # 0x20
        ("l_i_version", "I"),  # osd1
        ("i_block", "60s"),  # 0x28
        ("i_generation", "I"),  # 0x64
        ("i_file_acl_lo", "I"),
        ("i_size_high", "I"),  # 0x6c
        ("i_obso_faddr", "I"),
        ("l_i_blocks_high", "H"),  # 0x74 osd2 (Linux)
        ("l_i_file_acl_high", "H"),
        ("l_i_uid_high", "H"),
        ("l_i_gid_high", "H"),
        ("l_i_checksum_lo", "H"),
        ("l_i_reserved", "H"),
    ],
)
assert INODE_BASE.size == EXT4_GOOD_OLD_INODE_SIZE

# Fields after the first 128 bytes: (name, offset, struct code).  Each exists only when
# 128 + i_extra_isize covers it (fs/ext4/ext4.h EXT4_FITS_IN_INODE).
INODE_EXTRA_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("i_extra_isize", 0x80, "H"),
    ("i_checksum_hi", 0x82, "H"),
    ("i_ctime_extra", 0x84, "I"),
    ("i_mtime_extra", 0x88, "I"),
    ("i_atime_extra", 0x8C, "I"),
    ("i_crtime", 0x90, "I"),
    ("i_crtime_extra", 0x94, "I"),
    ("i_version_hi", 0x98, "I"),
    ("i_projid", 0x9C, "I"),
)
EXT4_EPOCH_BITS = 2  # fs/ext4/ext4.h: low 2 bits of *_extra extend the seconds
EXT4_EPOCH_MASK = (1 << EXT4_EPOCH_BITS) - 1

# i_flags (fs/ext4/ext4.h EXT4_*_FL)
EXT4_COMPR_FL = 0x00000004
EXT4_ENCRYPT_FL = 0x00000800
EXT4_INDEX_FL = 0x00001000  # hashed (htree) directory
EXT4_HUGE_FILE_FL = 0x00040000  # i_blocks counts filesystem blocks, not sectors
EXT4_EXTENTS_FL = 0x00080000
EXT4_VERITY_FL = 0x00100000
EXT4_EA_INODE_FL = 0x00200000
EXT4_INLINE_DATA_FL = 0x10000000
EXT4_CASEFOLD_FL = 0x40000000

# i_mode type bits (include/uapi/linux/stat.h)
S_IFMT = 0o170000
S_IFSOCK = 0o140000
S_IFLNK = 0o120000
S_IFREG = 0o100000
S_IFBLK = 0o060000
S_IFDIR = 0o040000
S_IFCHR = 0o020000
S_IFIFO = 0o010000

# --- extents (fs/ext4/ext4_extents.h) ---------------------------------------------------

EXT4_EXT_MAGIC = 0xF30A
EXT_INIT_MAX_LEN = 1 << 15  # ee_len above this marks an unwritten (uninitialised) extent
EXTENT_HEADER = Record(
    "ext4 extent header",
    "<",
    [("eh_magic", "H"), ("eh_entries", "H"), ("eh_max", "H"), ("eh_depth", "H"), ("eh_generation", "I")],
)
EXTENT = Record(
    "ext4 extent",
    "<",
    [("ee_block", "I"), ("ee_len", "H"), ("ee_start_hi", "H"), ("ee_start_lo", "I")],
)
EXTENT_IDX = Record(
    "ext4 extent index",
    "<",
    [("ei_block", "I"), ("ei_leaf_lo", "I"), ("ei_leaf_hi", "H"), ("ei_unused", "H")],
)
assert EXTENT_HEADER.size == EXTENT.size == EXTENT_IDX.size == 12

# --- directories (fs/ext4/ext4.h) -------------------------------------------------------

# struct ext4_dir_entry_2 without the name.  Without the filetype feature the last two
# bytes are one 16-bit name_len (struct ext4_dir_entry); names are at most 255 bytes,
# so the high byte must then be zero.
DIRENT_HEADER = Record("ext4 directory entry", "<", [("inode", "I"), ("rec_len", "H"), ("name_len", "B"), ("file_type", "B")])
EXT4_NAME_LEN = 255
EXT4_DIR_ROUND = 4  # entries are 4-byte aligned
EXT4_INLINE_DOTDOT_SIZE = 4  # fs/ext4/inline.c: an inline directory starts with the parent inode
EXT4_FT_DIR_CSUM = 0xDE  # fs/ext4/ext4.h: file_type of the checksum tail "entry"
EXT4_MAX_REC_LEN = 65535  # fs/ext4/ext4.h: rec_len encoding of a whole 64 KiB block

# ext4_dir_entry_2.file_type values (fs/ext4/ext4.h EXT4_FT_*)
EXT4_FT_REG_FILE = 1
EXT4_FT_DIR = 2
EXT4_FT_CHRDEV = 3
EXT4_FT_BLKDEV = 4
EXT4_FT_FIFO = 5
EXT4_FT_SOCK = 6
EXT4_FT_SYMLINK = 7

# --- extended attributes (fs/ext4/xattr.h) ----------------------------------------------

EXT4_XATTR_MAGIC = 0xEA020000
EXT4_XATTR_INDEX_SYSTEM = 7  # "system." prefix; inline data lives in "system.data"
EXT4_XATTR_ROUND = 4
XATTR_ENTRY = Record(
    "ext4 xattr entry",
    "<",
    [
        ("e_name_len", "B"),
        ("e_name_index", "B"),
        ("e_value_offs", "H"),
        ("e_value_inum", "I"),
        ("e_value_size", "I"),
        ("e_hash", "I"),
    ],
)
assert XATTR_ENTRY.size == 16
