"""btrfs on-disk layouts and constants, with the kernel's field names.

References:
    include/uapi/linux/btrfs_tree.h (item keys, ``btrfs_header``, ``btrfs_chunk``,
    ``btrfs_inode_item``, ``btrfs_root_item``, ``btrfs_dir_item``,
    ``btrfs_file_extent_item``, block group flags),
    fs/btrfs/accessors.h and include/uapi/linux/btrfs.h (``btrfs_super_block``
    layout, ``BTRFS_SUPER_MIRROR_*``), Documentation/filesystems (btrfs-dev-docs
    "On-disk format").

Every multi-byte integer is little-endian.  Records keep the kernel's names
(``sys_chunk_array_size``, ``num_stripes``, ``disk_bytenr`` ...).
"""

from __future__ import annotations

from virtkit._binstruct import Record

# --- superblock ------------------------------------------------------------
BTRFS_MAGIC = b"_BHRfS_M"  # include/uapi/linux/btrfs_tree.h (BTRFS_MAGIC, little-endian u64)
BTRFS_SUPER_INFO_OFFSET = 0x10000  # fs/btrfs/disk-io.h: primary copy at 64 KiB
BTRFS_SUPER_INFO_SIZE = 4096  # fs/btrfs/disk-io.h
BTRFS_SUPER_MIRROR_SHIFT = 12  # fs/btrfs/disk-io.h: mirror i at 16 KiB << (12 * i)
BTRFS_SUPER_MIRROR_MAX = 3
BTRFS_CSUM_SIZE = 32  # include/uapi/linux/btrfs_tree.h
BTRFS_FSID_SIZE = 16
BTRFS_UUID_SIZE = 16
BTRFS_LABEL_SIZE = 256
BTRFS_SYSTEM_CHUNK_ARRAY_SIZE = 2048

# btrfs_super_block.incompat_flags bits used here (include/uapi/linux/btrfs.h).
BTRFS_FEATURE_INCOMPAT_MIXED_BACKREF = 1 << 0
BTRFS_FEATURE_INCOMPAT_DEFAULT_SUBVOL = 1 << 1
BTRFS_FEATURE_INCOMPAT_MIXED_GROUPS = 1 << 2
BTRFS_FEATURE_INCOMPAT_COMPRESS_LZO = 1 << 3
BTRFS_FEATURE_INCOMPAT_COMPRESS_ZSTD = 1 << 4
BTRFS_FEATURE_INCOMPAT_BIG_METADATA = 1 << 5
BTRFS_FEATURE_INCOMPAT_EXTENDED_IREF = 1 << 6
BTRFS_FEATURE_INCOMPAT_RAID56 = 1 << 7
BTRFS_FEATURE_INCOMPAT_SKINNY_METADATA = 1 << 8
BTRFS_FEATURE_INCOMPAT_NO_HOLES = 1 << 9
BTRFS_FEATURE_INCOMPAT_METADATA_UUID = 1 << 10
BTRFS_FEATURE_INCOMPAT_RAID1C34 = 1 << 11
BTRFS_FEATURE_INCOMPAT_ZONED = 1 << 12
BTRFS_FEATURE_INCOMPAT_EXTENT_TREE_V2 = 1 << 13
BTRFS_FEATURE_INCOMPAT_RAID_STRIPE_TREE = 1 << 14
BTRFS_FEATURE_INCOMPAT_SIMPLE_QUOTA = 1 << 16

# Incompat bits that change where data lives in ways this reader does not follow.
UNREADABLE_INCOMPAT = {
    BTRFS_FEATURE_INCOMPAT_EXTENT_TREE_V2: "extent-tree-v2",
    BTRFS_FEATURE_INCOMPAT_RAID_STRIPE_TREE: "raid-stripe-tree",
}

BTRFS_DEV_ITEM = Record(
    "btrfs dev_item",
    "<",
    [
        ("devid", "Q"),
        ("total_bytes", "Q"),
        ("bytes_used", "Q"),
        ("io_align", "I"),
        ("io_width", "I"),
        ("sector_size", "I"),
        ("type", "Q"),
        ("generation", "Q"),
        ("start_offset", "Q"),
        ("dev_group", "I"),
        ("seek_speed", "B"),
        ("bandwidth", "B"),
        ("uuid", "16s"),
        ("fsid", "16s"),
    ],
)  # 98 bytes

BTRFS_SUPER_BLOCK = Record(
    "btrfs superblock",
    "<",
    [
        ("csum", "32s"),
        ("fsid", "16s"),
        ("bytenr", "Q"),
        ("flags", "Q"),
        ("magic", "8s"),
        ("generation", "Q"),
        ("root", "Q"),
        ("chunk_root", "Q"),
        ("log_root", "Q"),
        ("__unused_log_root_transid", "Q"),
        ("total_bytes", "Q"),
        ("bytes_used", "Q"),
        ("root_dir_objectid", "Q"),
        ("num_devices", "Q"),
        ("sectorsize", "I"),
        ("nodesize", "I"),
        ("__unused_leafsize", "I"),
        ("stripesize", "I"),
        ("sys_chunk_array_size", "I"),
        ("chunk_root_generation", "Q"),
        ("compat_flags", "Q"),
        ("compat_ro_flags", "Q"),
        ("incompat_flags", "Q"),
        ("csum_type", "H"),
        ("root_level", "B"),
        ("chunk_root_level", "B"),
        ("log_root_level", "B"),
        ("dev_item", f"{BTRFS_DEV_ITEM.size}s"),
        ("label", f"{BTRFS_LABEL_SIZE}s"),
        ("cache_generation", "Q"),
        ("uuid_tree_generation", "Q"),
        ("metadata_uuid", "16s"),
        ("nr_global_roots", "Q"),
        ("reserved", "216s"),
        ("sys_chunk_array", f"{BTRFS_SYSTEM_CHUNK_ARRAY_SIZE}s"),
    ],
)  # 0xb2b bytes; the root backups and padding follow

# --- keys and tree blocks --------------------------------------------------
BTRFS_DISK_KEY = Record("btrfs disk_key", "<", [("objectid", "Q"), ("type", "B"), ("offset", "Q")])  # 17

BTRFS_HEADER = Record(
    "btrfs tree block header",
    "<",
    [
        ("csum", "32s"),
        ("fsid", "16s"),
        ("bytenr", "Q"),
        ("flags", "Q"),
        ("chunk_tree_uuid", "16s"),
        ("generation", "Q"),
        ("owner", "Q"),
        ("nritems", "I"),
        ("level", "B"),
    ],
)  # 101 bytes

# btrfs_item (leaf): key, then offset and size of the item data relative to the end
# of the header; btrfs_key_ptr (node): key, blockptr, generation.
BTRFS_ITEM_FMT = "<QBQII"  # 25 bytes
BTRFS_KEY_PTR_FMT = "<QBQQQ"  # 33 bytes
BTRFS_ITEM_SIZE = 25
BTRFS_KEY_PTR_SIZE = 33
BTRFS_MAX_LEVEL = 8  # fs/btrfs/ctree.h

# --- item types (include/uapi/linux/btrfs_tree.h) ---------------------------
BTRFS_INODE_ITEM_KEY = 1
BTRFS_INODE_REF_KEY = 12
BTRFS_INODE_EXTREF_KEY = 13
BTRFS_XATTR_ITEM_KEY = 24
BTRFS_DIR_ITEM_KEY = 84
BTRFS_DIR_INDEX_KEY = 96
BTRFS_EXTENT_DATA_KEY = 108
BTRFS_EXTENT_CSUM_KEY = 128
BTRFS_ROOT_ITEM_KEY = 132
BTRFS_ROOT_BACKREF_KEY = 144
BTRFS_ROOT_REF_KEY = 156
BTRFS_DEV_ITEM_KEY = 216
BTRFS_CHUNK_ITEM_KEY = 228

# --- object ids ---------------------------------------------------------------
BTRFS_ROOT_TREE_OBJECTID = 1
BTRFS_CHUNK_TREE_OBJECTID = 3
BTRFS_DEV_ITEMS_OBJECTID = 1
BTRFS_FS_TREE_OBJECTID = 5
BTRFS_ROOT_TREE_DIR_OBJECTID = 6
BTRFS_FIRST_FREE_OBJECTID = 256
BTRFS_LAST_FREE_OBJECTID = (1 << 64) - 256  # -256ULL
BTRFS_FIRST_CHUNK_TREE_OBJECTID = 256
BTRFS_EMPTY_SUBVOL_DIR_OBJECTID = 2  # placeholder dir for a nested subvolume inside a snapshot
U64_MAX = (1 << 64) - 1

# --- chunks ---------------------------------------------------------------------
BTRFS_CHUNK = Record(
    "btrfs chunk",
    "<",
    [
        ("length", "Q"),
        ("owner", "Q"),
        ("stripe_len", "Q"),
        ("type", "Q"),
        ("io_align", "I"),
        ("io_width", "I"),
        ("sector_size", "I"),
        ("num_stripes", "H"),
        ("sub_stripes", "H"),
    ],
)  # 48 bytes, followed by num_stripes btrfs_stripe
BTRFS_STRIPE = Record("btrfs stripe", "<", [("devid", "Q"), ("offset", "Q"), ("dev_uuid", "16s")])  # 32

# btrfs_block_group_item / chunk type flags.
BTRFS_BLOCK_GROUP_DATA = 1 << 0
BTRFS_BLOCK_GROUP_SYSTEM = 1 << 1
BTRFS_BLOCK_GROUP_METADATA = 1 << 2
BTRFS_BLOCK_GROUP_RAID0 = 1 << 3
BTRFS_BLOCK_GROUP_RAID1 = 1 << 4
BTRFS_BLOCK_GROUP_DUP = 1 << 5
BTRFS_BLOCK_GROUP_RAID10 = 1 << 6
BTRFS_BLOCK_GROUP_RAID5 = 1 << 7
BTRFS_BLOCK_GROUP_RAID6 = 1 << 8
BTRFS_BLOCK_GROUP_RAID1C3 = 1 << 9
BTRFS_BLOCK_GROUP_RAID1C4 = 1 << 10
BTRFS_BLOCK_GROUP_TYPE_MASK = BTRFS_BLOCK_GROUP_DATA | BTRFS_BLOCK_GROUP_SYSTEM | BTRFS_BLOCK_GROUP_METADATA
BTRFS_BLOCK_GROUP_PROFILE_MASK = (
    BTRFS_BLOCK_GROUP_RAID0
    | BTRFS_BLOCK_GROUP_RAID1
    | BTRFS_BLOCK_GROUP_DUP
    | BTRFS_BLOCK_GROUP_RAID10
    | BTRFS_BLOCK_GROUP_RAID5
    | BTRFS_BLOCK_GROUP_RAID6
    | BTRFS_BLOCK_GROUP_RAID1C3
    | BTRFS_BLOCK_GROUP_RAID1C4
)

# --- inodes, roots, directories -------------------------------------------
BTRFS_INODE_ITEM = Record(
    "btrfs inode_item",
    "<",
    [
        ("generation", "Q"),
        ("transid", "Q"),
        ("size", "Q"),
        ("nbytes", "Q"),
        ("block_group", "Q"),
        ("nlink", "I"),
        ("uid", "I"),
        ("gid", "I"),
        ("mode", "I"),
        ("rdev", "Q"),
        ("flags", "Q"),
        ("sequence", "Q"),
        ("reserved", "32s"),
        ("atime_sec", "Q"),
        ("atime_nsec", "I"),
        ("ctime_sec", "Q"),
        ("ctime_nsec", "I"),
        ("mtime_sec", "Q"),
        ("mtime_nsec", "I"),
        ("otime_sec", "Q"),
        ("otime_nsec", "I"),
    ],
)  # 160 bytes

# btrfs_root_item: the embedded inode item, then (only the fields read here; the item
# is longer on current kernels, at least 239 bytes on every version).
BTRFS_ROOT_ITEM = Record(
    "btrfs root_item",
    "<",
    [
        ("inode", f"{BTRFS_INODE_ITEM.size}s"),
        ("generation", "Q"),
        ("root_dirid", "Q"),
        ("bytenr", "Q"),
        ("byte_limit", "Q"),
        ("bytes_used", "Q"),
        ("last_snapshot", "Q"),
        ("flags", "Q"),
        ("refs", "I"),
        ("drop_progress", "17s"),
        ("drop_level", "B"),
        ("level", "B"),
    ],
)  # 239 bytes

BTRFS_ROOT_REF = Record("btrfs root_ref", "<", [("dirid", "Q"), ("sequence", "Q"), ("name_len", "H")])  # 18, then name

BTRFS_DIR_ITEM = Record(
    "btrfs dir_item",
    "<",
    [
        ("location_objectid", "Q"),
        ("location_type", "B"),
        ("location_offset", "Q"),
        ("transid", "Q"),
        ("data_len", "H"),
        ("name_len", "H"),
        ("type", "B"),
    ],
)  # 30 bytes, then name, then data (xattr value)

BTRFS_INODE_REF = Record("btrfs inode_ref", "<", [("index", "Q"), ("name_len", "H")])  # 10, then name
BTRFS_INODE_EXTREF = Record(
    "btrfs inode_extref", "<", [("parent_objectid", "Q"), ("index", "Q"), ("name_len", "H")]
)  # 18, then name

# btrfs_dir_item.type (include/uapi/linux/btrfs_tree.h BTRFS_FT_*).
BTRFS_FT_UNKNOWN = 0
BTRFS_FT_REG_FILE = 1
BTRFS_FT_DIR = 2
BTRFS_FT_CHRDEV = 3
BTRFS_FT_BLKDEV = 4
BTRFS_FT_FIFO = 5
BTRFS_FT_SOCK = 6
BTRFS_FT_SYMLINK = 7
BTRFS_FT_XATTR = 8
BTRFS_NAME_LEN = 255  # fs/btrfs/ctree.h

# --- file extents ----------------------------------------------------------
BTRFS_FILE_EXTENT_ITEM_HEAD = Record(
    "btrfs file_extent_item",
    "<",
    [
        ("generation", "Q"),
        ("ram_bytes", "Q"),
        ("compression", "B"),
        ("encryption", "B"),
        ("other_encoding", "H"),
        ("type", "B"),
    ],
)  # 21 bytes; inline data follows, or the fields below
BTRFS_FILE_EXTENT_ITEM_REG = Record(
    "btrfs file_extent_item",
    "<",
    [("disk_bytenr", "Q"), ("disk_num_bytes", "Q"), ("offset", "Q"), ("num_bytes", "Q")],
)  # 32 bytes at offset 21
BTRFS_FILE_EXTENT_INLINE_DATA_START = 21

BTRFS_FILE_EXTENT_INLINE = 0
BTRFS_FILE_EXTENT_REG = 1
BTRFS_FILE_EXTENT_PREALLOC = 2

BTRFS_COMPRESS_NONE = 0
BTRFS_COMPRESS_ZLIB = 1
BTRFS_COMPRESS_LZO = 2
BTRFS_COMPRESS_ZSTD = 3
COMPRESSION_NAMES = {0: "none", 1: "zlib", 2: "lzo", 3: "zstd"}
BTRFS_MAX_UNCOMPRESSED = 128 * 1024  # fs/btrfs/compression.h: one compressed extent holds at most 128 KiB


def format_uuid(raw: bytes) -> str:
    """16 bytes -> "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (GRUB's ``%04x`` x 8 on big-endian halves)."""
    h = raw.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
