"""XFS on-disk records and constants, with the kernel's field names.

Everything on disk is big-endian, except the CRC fields of v5 metadata (which
this reader does not verify).

References:
    fs/xfs/libxfs/xfs_format.h     superblock (xfs_dsb), dinode, bmbt records and blocks,
                                   symlink header, feature bits, dinode flags
    fs/xfs/libxfs/xfs_da_format.h  directory v2/v3 formats: shortform, data blocks,
                                   leaf blocks, da btree nodes, file-type codes
    fs/xfs/libxfs/xfs_da_btree.c   xfs_da_hashname (the directory name hash)
    fs/xfs/libxfs/xfs_dir2.c       xfs_ascii_ci_hashname (ASCII case-insensitive hash)
    XFS Algorithms & Data Structures, 3rd edition (xfs-documentation,
    design/XFS_Filesystem_Structure), chapters "Superblocks", "On-disk Inode",
    "Data Extents", "Directories", "Symbolic Links"
"""

from __future__ import annotations

from virtkit._binstruct import Record

# --- superblock (xfs_format.h) -------------------------------------------------------------

XFS_SB_MAGIC = 0x58465342  # "XFSB", xfs_format.h
XFS_SB_VERSION_4 = 4  # xfs_format.h: "6.2 - based XFS"
XFS_SB_VERSION_5 = 5  # xfs_format.h: CRC enabled filesystem
XFS_SB_VERSION_NUMBITS = 0x000F

# sb_versionnum feature bits (xfs_format.h)
XFS_SB_VERSION_ATTRBIT = 0x0010
XFS_SB_VERSION_NLINKBIT = 0x0020
XFS_SB_VERSION_QUOTABIT = 0x0040
XFS_SB_VERSION_ALIGNBIT = 0x0080
XFS_SB_VERSION_DALIGNBIT = 0x0100
XFS_SB_VERSION_SHAREDBIT = 0x0200
XFS_SB_VERSION_LOGV2BIT = 0x0400
XFS_SB_VERSION_SECTORBIT = 0x0800
XFS_SB_VERSION_EXTFLGBIT = 0x1000
XFS_SB_VERSION_DIRV2BIT = 0x2000
XFS_SB_VERSION_BORGBIT = 0x4000  # ASCII only case-insensitive names ("-n version=ci")
XFS_SB_VERSION_MOREBITSBIT = 0x8000

# Version bits a v4 filesystem may carry (xfs_format.h XFS_SB_VERSION_OKBITS); SHAREDBIT is
# legacy and harmless for reading.
XFS_SB_VERSION_OKBITS = (
    XFS_SB_VERSION_NUMBITS
    | XFS_SB_VERSION_ATTRBIT
    | XFS_SB_VERSION_NLINKBIT
    | XFS_SB_VERSION_QUOTABIT
    | XFS_SB_VERSION_ALIGNBIT
    | XFS_SB_VERSION_DALIGNBIT
    | XFS_SB_VERSION_SHAREDBIT
    | XFS_SB_VERSION_LOGV2BIT
    | XFS_SB_VERSION_SECTORBIT
    | XFS_SB_VERSION_EXTFLGBIT
    | XFS_SB_VERSION_DIRV2BIT
    | XFS_SB_VERSION_BORGBIT
    | XFS_SB_VERSION_MOREBITSBIT
)

# sb_features2 bits (xfs_format.h)
XFS_SB_VERSION2_LAZYSBCOUNTBIT = 0x00000002
XFS_SB_VERSION2_ATTR2BIT = 0x00000008
XFS_SB_VERSION2_PARENTBIT = 0x00000010
XFS_SB_VERSION2_PROJID32BIT = 0x00000080
XFS_SB_VERSION2_CRCBIT = 0x00000100
XFS_SB_VERSION2_FTYPE = 0x00000200
XFS_SB_VERSION2_OKBITS = (
    XFS_SB_VERSION2_LAZYSBCOUNTBIT
    | XFS_SB_VERSION2_ATTR2BIT
    | XFS_SB_VERSION2_PROJID32BIT
    | XFS_SB_VERSION2_CRCBIT
    | XFS_SB_VERSION2_FTYPE
)

# v5 incompatible features (xfs_format.h XFS_SB_FEAT_INCOMPAT_*).  Each is readable by this
# reader; the comment says why.
XFS_SB_FEAT_INCOMPAT_FTYPE = 1 << 0  # file type in directory entries: handled
XFS_SB_FEAT_INCOMPAT_SPINODES = 1 << 1  # sparse inode chunks: only the inode btrees change
XFS_SB_FEAT_INCOMPAT_META_UUID = 1 << 2  # metadata carries sb_meta_uuid: handled
XFS_SB_FEAT_INCOMPAT_BIGTIME = 1 << 3  # 64-bit nanosecond timestamps: handled
XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR = 1 << 4  # xfs_repair must run before a mount; readable
XFS_SB_FEAT_INCOMPAT_NREXT64 = 1 << 5  # 64-bit extent counters: handled
XFS_SB_FEAT_INCOMPAT_EXCHRANGE = 1 << 6  # a log item only; no log replay here
XFS_SB_FEAT_INCOMPAT_PARENT = 1 << 7  # parent pointers live in xattrs: not read
XFS_SB_FEAT_INCOMPAT_METADIR = 1 << 8  # metadata directory tree: user tree unchanged
XFS_SB_FEAT_INCOMPAT_ZONED = 1 << 9  # zoned realtime device: realtime files are refused

XFS_SB_FEAT_INCOMPAT_NAMES: dict[int, str] = {
    XFS_SB_FEAT_INCOMPAT_FTYPE: "ftype",
    XFS_SB_FEAT_INCOMPAT_SPINODES: "sparse",
    XFS_SB_FEAT_INCOMPAT_META_UUID: "meta_uuid",
    XFS_SB_FEAT_INCOMPAT_BIGTIME: "bigtime",
    XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR: "needsrepair",
    XFS_SB_FEAT_INCOMPAT_NREXT64: "nrext64",
    XFS_SB_FEAT_INCOMPAT_EXCHRANGE: "exchrange",
    XFS_SB_FEAT_INCOMPAT_PARENT: "parent",
    XFS_SB_FEAT_INCOMPAT_METADIR: "metadir",
    XFS_SB_FEAT_INCOMPAT_ZONED: "zoned",
}
XFS_SB_FEAT_INCOMPAT_READABLE = sum(XFS_SB_FEAT_INCOMPAT_NAMES)

# v5 read-only compatible features (xfs_format.h): all are indexes we do not need to read.
XFS_SB_FEAT_RO_COMPAT_NAMES: dict[int, str] = {
    1 << 0: "finobt",
    1 << 1: "rmapbt",
    1 << 2: "reflink",
    1 << 3: "inobtcount",
}

XFS_SB_RECORD = Record(
    "xfs superblock",
    ">",
    [
        ("sb_magicnum", "I"),
        ("sb_blocksize", "I"),
        ("sb_dblocks", "Q"),
        ("sb_rblocks", "Q"),
        ("sb_rextents", "Q"),
        ("sb_uuid", "16s"),
        ("sb_logstart", "Q"),
        ("sb_rootino", "Q"),
        ("sb_rbmino", "Q"),
        ("sb_rsumino", "Q"),
        ("sb_rextsize", "I"),
        ("sb_agblocks", "I"),
        ("sb_agcount", "I"),
        ("sb_rbmblocks", "I"),
        ("sb_logblocks", "I"),
        ("sb_versionnum", "H"),
        ("sb_sectsize", "H"),
        ("sb_inodesize", "H"),
        ("sb_inopblock", "H"),
        ("sb_fname", "12s"),
        ("sb_blocklog", "B"),
        ("sb_sectlog", "B"),
        ("sb_inodelog", "B"),
        ("sb_inopblog", "B"),
        ("sb_agblklog", "B"),
        ("sb_rextslog", "B"),
        ("sb_inprogress", "B"),
        ("sb_imax_pct", "B"),
        ("sb_icount", "Q"),
        ("sb_ifree", "Q"),
        ("sb_fdblocks", "Q"),
        ("sb_frextents", "Q"),
        ("sb_uquotino", "Q"),
        ("sb_gquotino", "Q"),
        ("sb_qflags", "H"),
        ("sb_flags", "B"),
        ("sb_shared_vn", "B"),
        ("sb_inoalignmt", "I"),
        ("sb_unit", "I"),
        ("sb_width", "I"),
        ("sb_dirblklog", "B"),
        ("sb_logsectlog", "B"),
        ("sb_logsectsize", "H"),
        ("sb_logsunit", "I"),
        ("sb_features2", "I"),
        ("sb_bad_features2", "I"),
        # version 5 superblock fields start here
        ("sb_features_compat", "I"),
        ("sb_features_ro_compat", "I"),
        ("sb_features_incompat", "I"),
        ("sb_features_log_incompat", "I"),
        ("sb_crc", "4s"),  # little-endian crc32c; not verified
        ("sb_spino_align", "I"),
        ("sb_pquotino", "Q"),
        ("sb_lsn", "Q"),
        ("sb_meta_uuid", "16s"),
    ],
)

XFS_MIN_BLOCKSIZE_LOG = 9  # xfs_format.h
XFS_MAX_BLOCKSIZE_LOG = 16
XFS_MIN_SECTORSIZE_LOG = 9
XFS_MAX_SECTORSIZE_LOG = 15
XFS_DINODE_MIN_LOG = 8  # 256-byte inodes
XFS_DINODE_MAX_LOG = 11  # 2048-byte inodes
XFS_MIN_AG_BLOCKS = 64  # xfs_format.h
XFS_MAX_AG_BYTES = 1 << 40  # xfs_format.h: 1 TiB per AG
BBSHIFT = 9  # basic blocks (512-byte "daddr" units) used by v5 self-describing headers

# --- inodes (xfs_format.h) -----------------------------------------------------------------

XFS_DINODE_MAGIC = 0x494E  # "IN"
XFS_DINODE_CORE_V2 = 100  # offsetof(struct xfs_dinode, di_crc): core size of v1/v2 inodes
XFS_DINODE_CORE_V3 = 176  # sizeof(struct xfs_dinode) for v3 inodes

# di_format / di_aformat (enum xfs_dinode_fmt)
XFS_DINODE_FMT_DEV = 0
XFS_DINODE_FMT_LOCAL = 1
XFS_DINODE_FMT_EXTENTS = 2
XFS_DINODE_FMT_BTREE = 3
XFS_DINODE_FMT_UUID = 4
XFS_DINODE_FMT_META_BTREE = 5
XFS_DINODE_FMT_NAMES = {0: "dev", 1: "local", 2: "extents", 3: "btree", 4: "uuid", 5: "meta_btree"}

XFS_DIFLAG_REALTIME = 1 << 0  # di_flags: file data lives on the realtime device
XFS_DIFLAG2_BIGTIME = 1 << 3  # di_flags2: timestamps are 64-bit nanosecond counters
XFS_DIFLAG2_NREXT64 = 1 << 4  # di_flags2: di_big_nextents / di_big_anextents in use
XFS_BIGTIME_EPOCH_OFFSET = 1 << 31  # xfs_format.h: bigtime 0 is 1901-12-13T20:45:52Z

# The fixed part of every dinode (v1/v2/v3 share the first 100 bytes).
XFS_DINODE_RECORD = Record(
    "xfs dinode",
    ">",
    [
        ("di_magic", "H"),
        ("di_mode", "H"),
        ("di_version", "B"),
        ("di_format", "B"),
        ("di_onlink", "H"),
        ("di_uid", "I"),
        ("di_gid", "I"),
        ("di_nlink", "I"),
        ("di_projid_lo", "H"),
        ("di_projid_hi", "H"),
        ("di_big_nextents", "Q"),  # v3 + NREXT64; else di_v2_pad[6] + di_flushiter
        ("di_atime", "Q"),  # legacy: be32 seconds (signed) + be32 nanoseconds; bigtime: be64 ns
        ("di_mtime", "Q"),
        ("di_ctime", "Q"),
        ("di_size", "Q"),
        ("di_nblocks", "Q"),
        ("di_extsize", "I"),
        ("di_nextents", "I"),  # NREXT64: di_big_anextents
        ("di_anextents", "H"),  # NREXT64: di_nrext64_pad
        ("di_forkoff", "B"),
        ("di_aformat", "B"),
        ("di_dmevmask", "I"),
        ("di_dmstate", "H"),
        ("di_flags", "H"),
        ("di_gen", "I"),
        ("di_next_unlinked", "I"),
    ],
)

# The v3 tail, at offset XFS_DINODE_CORE_V2.
XFS_DINODE_V3_RECORD = Record(
    "xfs dinode v3 tail",
    ">",
    [
        ("di_crc", "4s"),
        ("di_changecount", "Q"),
        ("di_lsn", "Q"),
        ("di_flags2", "Q"),
        ("di_cowextsize", "I"),
        ("di_pad2", "12s"),
        ("di_crtime", "Q"),
        ("di_ino", "Q"),
        ("di_uuid", "16s"),
    ],
)

NULLFSINO = (1 << 64) - 1

# --- block mapping btree (xfs_format.h) ----------------------------------------------------

XFS_BMAP_MAGIC = 0x424D4150  # "BMAP"
XFS_BMAP_CRC_MAGIC = 0x424D4133  # "BMA3"
XFS_BMBT_REC_SIZE = 16  # xfs_bmbt_rec: two be64 words
XFS_BMBT_KEY_SIZE = 8  # xfs_bmbt_key: br_startoff
XFS_BMBT_PTR_SIZE = 8  # xfs_bmbt_ptr_t: fsblock number
XFS_BMDR_HDR_SIZE = 4  # xfs_bmdr_block: bb_level, bb_numrecs (root inside the inode)
XFS_BTREE_LBLOCK_LEN = 24  # long-format btree block header, v4
XFS_BTREE_LBLOCK_CRC_LEN = 72  # long-format btree block header, v5
XFS_MAX_FILEOFF = (1 << 54) - 1  # xfs_format.h: largest file block offset
MAXEXTLEN = (1 << 21) - 1  # xfs_format.h XFS_MAX_BMBT_EXTLEN

XFS_BTREE_LBLOCK_RECORD = Record(
    "xfs bmbt block",
    ">",
    [("bb_magic", "I"), ("bb_level", "H"), ("bb_numrecs", "H"), ("bb_leftsib", "Q"), ("bb_rightsib", "Q")],
)
XFS_BTREE_LBLOCK_CRC_RECORD = Record(
    "xfs bmbt block v5 tail",
    ">",
    [("bb_blkno", "Q"), ("bb_lsn", "Q"), ("bb_uuid", "16s"), ("bb_owner", "Q"), ("bb_crc", "4s"), ("bb_pad", "I")],
)

# --- directories (xfs_da_format.h) ---------------------------------------------------------

XFS_DIR2_BLOCK_MAGIC = 0x58443242  # "XD2B": single block dirs
XFS_DIR2_DATA_MAGIC = 0x58443244  # "XD2D": multiblock dirs
XFS_DIR3_BLOCK_MAGIC = 0x58444233  # "XDB3"
XFS_DIR3_DATA_MAGIC = 0x58444433  # "XDD3"
XFS_DIR2_LEAF1_MAGIC = 0xD2F1  # leaf-format directory, single leaf block
XFS_DIR2_LEAFN_MAGIC = 0xD2FF  # node-format directory leaf
XFS_DIR3_LEAF1_MAGIC = 0x3DF1
XFS_DIR3_LEAFN_MAGIC = 0x3DFF
XFS_DA_NODE_MAGIC = 0xFEBE  # da btree interior node
XFS_DA3_NODE_MAGIC = 0x3EBE

XFS_DIR2_DATA_FREE_TAG = 0xFFFF  # first two bytes of an unused data entry
XFS_DIR2_DATA_ALIGN_LOG = 3  # data entries are 8-byte aligned; leaf addresses count 8-byte units
XFS_DIR2_DATA_ALIGN = 1 << XFS_DIR2_DATA_ALIGN_LOG
XFS_DIR2_SPACE_SIZE = 1 << 35  # each directory "space" is 32 GiB of logical offsets
XFS_DIR2_DATA_OFFSET = 0 * XFS_DIR2_SPACE_SIZE
XFS_DIR2_LEAF_OFFSET = 1 * XFS_DIR2_SPACE_SIZE
XFS_DIR2_FREE_OFFSET = 2 * XFS_DIR2_SPACE_SIZE
XFS_DIR2_NULL_DATAPTR = 0  # a stale leaf entry

XFS_DIR2_DATA_HDR_SIZE = 16  # magic + 3 bestfree (offset, length) pairs
XFS_DIR3_DATA_HDR_SIZE = 64  # xfs_dir3_blk_hdr (48) + bestfree (12) + pad (4)
XFS_DIR2_BLOCK_TAIL_SIZE = 8  # xfs_dir2_block_tail: count, stale
XFS_DIR2_LEAF_ENTRY_SIZE = 8  # xfs_dir2_leaf_entry: hashval, address
XFS_DA_NODE_ENTRY_SIZE = 8  # xfs_da_node_entry: hashval, before
XFS_DA_HDR_SIZE = 16  # xfs_da_blkinfo (12) + count + level/stale
XFS_DA3_HDR_SIZE = 64  # xfs_da3_blkinfo (56) + count + level/stale + pad

# xfs_dir3_blk_hdr and xfs_da3_blkinfo self-describing parts (v5)
XFS_DIR3_BLK_HDR_RECORD = Record(
    "xfs dir3 block header",
    ">",
    [("magic", "I"), ("crc", "4s"), ("blkno", "Q"), ("lsn", "Q"), ("uuid", "16s"), ("owner", "Q")],
)
XFS_DA_BLKINFO_RECORD = Record("xfs da blkinfo", ">", [("forw", "I"), ("back", "I"), ("magic", "H"), ("pad", "H")])
XFS_DA3_BLKINFO_TAIL_RECORD = Record(
    "xfs da3 blkinfo", ">", [("crc", "4s"), ("blkno", "Q"), ("lsn", "Q"), ("uuid", "16s"), ("owner", "Q")]
)

# Directory entry file types (xfs_da_format.h XFS_DIR3_FT_*)
XFS_DIR3_FT_UNKNOWN = 0
XFS_DIR3_FT_REG_FILE = 1
XFS_DIR3_FT_DIR = 2
XFS_DIR3_FT_CHRDEV = 3
XFS_DIR3_FT_BLKDEV = 4
XFS_DIR3_FT_FIFO = 5
XFS_DIR3_FT_SOCK = 6
XFS_DIR3_FT_SYMLINK = 7
XFS_DIR3_FT_WHT = 8
XFS_DIR3_FT_MAX = 9

# --- symlinks (xfs_format.h) ---------------------------------------------------------------

XFS_SYMLINK_MAGIC = 0x58534C4D  # "XSLM"
XFS_SYMLINK_MAXLEN = 1024
XFS_SYMLINK_HDR_RECORD = Record(
    "xfs symlink header",
    ">",
    [
        ("sl_magic", "I"),
        ("sl_offset", "I"),
        ("sl_bytes", "I"),
        ("sl_crc", "4s"),
        ("sl_uuid", "16s"),
        ("sl_owner", "Q"),
        ("sl_blkno", "Q"),
        ("sl_lsn", "Q"),
    ],
)


def xfs_da_hashname(name: bytes) -> int:
    """The directory name hash (a rotate-and-xor over 7-bit shifted bytes).

    Computed four bytes at a time; the 1-3 leftover bytes fold in with a shorter rotation.
    """
    h = 0
    i = 0
    n = len(name)
    while n - i >= 4:
        h = (name[i] << 21) ^ (name[i + 1] << 14) ^ (name[i + 2] << 7) ^ name[i + 3] ^ _rol32(h, 28)
        i += 4
    left = n - i
    if left == 3:
        h = (name[i] << 14) ^ (name[i + 1] << 7) ^ name[i + 2] ^ _rol32(h, 21)
    elif left == 2:
        h = (name[i] << 7) ^ name[i + 1] ^ _rol32(h, 14)
    elif left == 1:
        h = name[i] ^ _rol32(h, 7)
    return h & 0xFFFFFFFF


def xfs_ascii_ci_xfrm(name: bytes) -> bytes:
    """ASCII-only lower-casing used by "-n version=ci" filesystems (A-Z only, since Linux 6.2)."""
    return name.translate(_ASCII_LOWER)


def _rol32(value: int, shift: int) -> int:
    value &= 0xFFFFFFFF
    return ((value << shift) | (value >> (32 - shift))) & 0xFFFFFFFF


_ASCII_LOWER = bytes.maketrans(bytes(range(ord("A"), ord("Z") + 1)), bytes(range(ord("a"), ord("z") + 1)))
