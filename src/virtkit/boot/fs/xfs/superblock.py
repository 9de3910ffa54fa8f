"""The XFS superblock: recognise, validate, and derive the geometry every other module uses.

Address arithmetic lives here too, because it is where hostile numbers are
turned into byte offsets:

* a filesystem block number (``xfs_fsblock_t``) is ``agno << sb_agblklog | agbno``;
  its bytes are at ``(agno * sb_agblocks + agbno) * sb_blocksize`` (AGs need not be a
  power of two blocks long, so the bit-packed number is not linear);
* an inode number is ``agno << (sb_agblklog + sb_inopblog) | agbno << sb_inopblog | slot``.

Every number is checked against the AG count, the AG size and the data size
before it becomes an offset.

References:
    fs/xfs/libxfs/xfs_sb.c       xfs_validate_sb_common, xfs_validate_sb_read (which
                                 fields must agree), xfs_sb_good_v4_features
    fs/xfs/libxfs/xfs_format.h   XFS_FSB_TO_AGNO/AGBNO, XFS_INO_TO_AGNO/AGINO, feature bits
    fs/xfs/libxfs/xfs_types.c    xfs_verify_ino (inodes never live in the AG headers)
    grub-core/fs/xfs.c           GRUB prints sb_uuid as the filesystem UUID (also with
                                 meta_uuid) and sb_fname up to the first NUL as the label
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from dataclasses import dataclass

from virtkit._streams import ByteSource
from virtkit.boot.fs.base import decode_name
from virtkit.boot.fs.xfs import structs as s
from virtkit.errors import CorruptStructure, NotThisFormat, UnsupportedFeature

log = logging.getLogger(__name__)

__all__ = ["XfsGeometry", "parse_superblock"]

SB_READ = 512  # the primary superblock fills the first sector of AG 0


@dataclass(frozen=True, slots=True)
class XfsGeometry:
    """The validated superblock facts the reader needs, plus address arithmetic.

    Attributes:
        where: "xfs on <volume>" for error messages.
        version: 4 or 5.
        block_size, block_log: filesystem block size and its log2.
        sect_size: sector size (the AG headers occupy the first four sectors of an AG).
        ag_blocks, ag_blklog, ag_count: AG geometry (``sb_agblocks``, ``sb_agblklog``, ``sb_agcount``).
        dblocks: blocks in the data section.
        inode_size, inop_log: inode size and log2 of inodes per block.
        dir_block_size: directory block size in bytes (``sb_blocksize << sb_dirblklog``).
        dir_fsbs: filesystem blocks per directory block.
        root_ino: the root directory's inode number.
        has_crc: v5 (self-describing metadata with CRCs, v3 inodes).
        has_ftype: directory entries carry a file-type byte.
        ascii_ci: names compare ASCII-case-insensitively ("-n version=ci").
        has_nrext64: large extent counters are enabled.
        uuid: ``sb_uuid`` formatted as GRUB prints it.
        meta_uuid: the UUID stamped into v5 metadata (``sb_meta_uuid`` with META_UUID, else sb_uuid).
        label: ``sb_fname`` up to the first NUL.
        incompat: names of the v5 incompatible features present.
        ro_compat: names of the v5 read-only compatible features present (unknown ones as hex).
    """

    where: str
    version: int
    block_size: int
    block_log: int
    sect_size: int
    ag_blocks: int
    ag_blklog: int
    ag_count: int
    dblocks: int
    inode_size: int
    inop_log: int
    dir_block_size: int
    dir_fsbs: int
    root_ino: int
    has_crc: bool
    has_ftype: bool
    ascii_ci: bool
    has_nrext64: bool
    uuid: str
    meta_uuid: bytes
    label: str
    incompat: tuple[str, ...]
    ro_compat: tuple[str, ...]

    # -- address arithmetic ---------------------------------------------------------------

    def fsb_to_byte(self, fsb: int, count: int, what: str) -> int:
        """Byte offset of ``count`` blocks at filesystem block ``fsb``, after checking them.

        Raises:
            CorruptStructure: the AG number, the AG block or the run is outside the filesystem.
        """
        agno = fsb >> self.ag_blklog
        agbno = fsb & ((1 << self.ag_blklog) - 1)
        if agno >= self.ag_count:
            raise CorruptStructure(what, f"block {fsb:#x} is in AG {agno}, but there are {self.ag_count} AGs")
        linear = agno * self.ag_blocks + agbno
        if count < 1 or agbno + count > self.ag_blocks or linear + count > self.dblocks:
            raise CorruptStructure(
                what, f"{count} blocks at block {fsb:#x} (AG {agno} block {agbno:#x}) run outside the AG or the filesystem"
            )
        return linear * self.block_size

    def ino_to_byte(self, ino: int, what: str) -> int:
        """Byte offset of inode ``ino`` on the volume.

        Raises:
            CorruptStructure: the inode number points outside the AGs or into an AG header.
        """
        agino_bits = self.ag_blklog + self.inop_log
        agno = ino >> agino_bits
        agino = ino & ((1 << agino_bits) - 1)
        agbno = agino >> self.inop_log
        slot = agino & ((1 << self.inop_log) - 1)
        if ino == 0 or ino >= s.NULLFSINO or agno >= self.ag_count:
            raise CorruptStructure(what, f"inode number {ino:#x} is outside the filesystem ({self.ag_count} AGs)")
        in_ag = agbno * self.block_size + slot * self.inode_size
        if agbno >= self.ag_blocks or agno * self.ag_blocks + agbno >= self.dblocks or in_ag < 4 * self.sect_size:
            raise CorruptStructure(what, f"inode number {ino:#x} points at AG {agno} block {agbno:#x}, which cannot hold inodes")
        return (agno * self.ag_blocks + agbno) * self.block_size + slot * self.inode_size

    def check_ino(self, ino: int, what: str) -> int:
        """Return ``ino`` if it could name an inode (see :meth:`ino_to_byte`), else raise CorruptStructure."""
        self.ino_to_byte(ino, what)
        return ino


def _log2(value: int) -> int:
    return value.bit_length() - 1


def _is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def parse_superblock(source: ByteSource) -> XfsGeometry:
    """Read and validate the primary superblock of ``source``.

    Args:
        source: the volume.

    Returns:
        the geometry.

    Raises:
        NotThisFormat: no "XFSB" magic at offset 0.
        UnsupportedFeature: an XFS this reader cannot read (version 1-3, v1 directories,
            unknown incompatible feature bits), named.
        CorruptStructure: fields that contradict each other.
    """
    where = f"xfs on {source.name}"
    if source.size < SB_READ:
        raise NotThisFormat(f"{source.name} is too small for an XFS superblock ({source.size} bytes)")
    raw = source.pread(0, SB_READ)
    sb = s.XFS_SB_RECORD.parse(raw, 0, where=source.name)
    if sb.sb_magicnum != s.XFS_SB_MAGIC:
        raise NotThisFormat(f"no XFS magic at offset 0 (got {sb.sb_magicnum:#010x})")
    what = f"{where}: superblock"

    def bad(problem: str, expected: object = None, got: object = None) -> CorruptStructure:
        return CorruptStructure(what, problem, offset=0, expected=expected, got=got)

    version = sb.sb_versionnum & s.XFS_SB_VERSION_NUMBITS
    if version in (1, 2, 3):
        raise UnsupportedFeature(f"{where}: XFS version {version} superblock (pre-2003 format) is not supported")
    if version not in (s.XFS_SB_VERSION_4, s.XFS_SB_VERSION_5):
        raise bad("unknown sb_versionnum", got=sb.sb_versionnum)
    has_crc = version == s.XFS_SB_VERSION_5
    features2 = 0
    if sb.sb_versionnum & s.XFS_SB_VERSION_MOREBITSBIT:
        # Old kernels wrote features2 at the wrong offset; the kernel merges both copies.
        features2 = sb.sb_features2 | sb.sb_bad_features2
    incompat_names: tuple[str, ...] = ()
    ro_names: tuple[str, ...] = ()
    if has_crc:
        unknown = sb.sb_features_incompat & ~s.XFS_SB_FEAT_INCOMPAT_READABLE
        if unknown:
            raise UnsupportedFeature(f"{where}: unknown incompatible feature bits {unknown:#x}; refusing to guess their layout")
        incompat_names = tuple(n for bit, n in s.XFS_SB_FEAT_INCOMPAT_NAMES.items() if sb.sb_features_incompat & bit)
        ro_names = tuple(
            s.XFS_SB_FEAT_RO_COMPAT_NAMES.get(1 << i, f"ro_compat_{1 << i:#x}")
            for i in range(32)
            if sb.sb_features_ro_compat & (1 << i)
        )
        if sb.sb_features_incompat & s.XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR:
            log.warning("%s: the superblock says xfs_repair must run first (needsrepair); reading anyway", where)
        has_ftype = bool(sb.sb_features_incompat & s.XFS_SB_FEAT_INCOMPAT_FTYPE)
    else:
        if not sb.sb_versionnum & s.XFS_SB_VERSION_DIRV2BIT:
            raise UnsupportedFeature(f"{where}: version 1 directories (no DIRV2 bit) are not supported")
        extra = sb.sb_versionnum & ~s.XFS_SB_VERSION_OKBITS
        if extra:
            raise UnsupportedFeature(f"{where}: unknown v4 sb_versionnum bits {extra:#x}")
        extra2 = features2 & ~s.XFS_SB_VERSION2_OKBITS
        if extra2:
            raise UnsupportedFeature(f"{where}: unknown v4 sb_features2 bits {extra2:#x}")
        if features2 & s.XFS_SB_VERSION2_CRCBIT:
            raise bad("CRC feature bit set on a version 4 superblock")
        has_ftype = bool(features2 & s.XFS_SB_VERSION2_FTYPE)
    if sb.sb_inprogress:
        raise bad("mkfs or an offline operation did not finish (sb_inprogress is set)")

    # Sizes: each must be a power of two in range and agree with its log2 twin.
    if not _is_pow2(sb.sb_blocksize) or not s.XFS_MIN_BLOCKSIZE_LOG <= sb.sb_blocklog <= s.XFS_MAX_BLOCKSIZE_LOG:
        raise bad("bad sb_blocksize", got=sb.sb_blocksize)
    if sb.sb_blocksize != 1 << sb.sb_blocklog:
        raise bad("sb_blocksize and sb_blocklog disagree", expected=1 << sb.sb_blocklog, got=sb.sb_blocksize)
    if has_crc and sb.sb_blocksize < 1024:
        raise bad("v5 filesystems need blocks of at least 1 KiB", got=sb.sb_blocksize)
    if (
        not _is_pow2(sb.sb_sectsize)
        or not s.XFS_MIN_SECTORSIZE_LOG <= sb.sb_sectlog <= s.XFS_MAX_SECTORSIZE_LOG
        or sb.sb_sectsize != 1 << sb.sb_sectlog
        or sb.sb_sectsize > sb.sb_blocksize
    ):
        raise bad("bad sb_sectsize/sb_sectlog", got=sb.sb_sectsize)
    min_inode_log = 9 if has_crc else s.XFS_DINODE_MIN_LOG
    if (
        not min_inode_log <= sb.sb_inodelog <= s.XFS_DINODE_MAX_LOG
        or sb.sb_inodesize != 1 << sb.sb_inodelog
        or sb.sb_inodesize > sb.sb_blocksize
    ):
        raise bad("bad sb_inodesize/sb_inodelog", got=sb.sb_inodesize)
    if sb.sb_inopblock != sb.sb_blocksize // sb.sb_inodesize or sb.sb_inopblog != sb.sb_blocklog - sb.sb_inodelog:
        raise bad("sb_inopblock/sb_inopblog disagree with the block and inode sizes", got=sb.sb_inopblock)
    if sb.sb_agblocks < s.XFS_MIN_AG_BLOCKS or sb.sb_agblocks * sb.sb_blocksize > s.XFS_MAX_AG_BYTES:
        raise bad("bad sb_agblocks", got=sb.sb_agblocks)
    if sb.sb_agblklog != (sb.sb_agblocks - 1).bit_length():
        raise bad("sb_agblklog does not match sb_agblocks", expected=(sb.sb_agblocks - 1).bit_length(), got=sb.sb_agblklog)
    if sb.sb_agblklog + sb.sb_inopblog > 32:
        raise bad("AG inode numbers would not fit in 32 bits", got=sb.sb_agblklog + sb.sb_inopblog)
    if sb.sb_agcount < 1:
        raise bad("no allocation groups", got=sb.sb_agcount)
    lo = (sb.sb_agcount - 1) * sb.sb_agblocks + s.XFS_MIN_AG_BLOCKS
    hi = sb.sb_agcount * sb.sb_agblocks
    if not lo <= sb.sb_dblocks <= hi:
        raise bad(f"sb_dblocks does not fit {sb.sb_agcount} AGs of {sb.sb_agblocks} blocks", got=sb.sb_dblocks)
    if sb.sb_blocklog + sb.sb_dirblklog > s.XFS_MAX_BLOCKSIZE_LOG:
        raise bad("directory blocks larger than 64 KiB", got=sb.sb_dirblklog)
    if sb.sb_dblocks * sb.sb_blocksize > source.size:
        log.warning("%s: the data section (%d bytes) is larger than the volume (%d bytes)", where, sb.sb_dblocks * sb.sb_blocksize, source.size)

    sb_uuid = bytes(sb.sb_uuid)
    meta_uuid = bytes(sb.sb_meta_uuid) if has_crc and sb.sb_features_incompat & s.XFS_SB_FEAT_INCOMPAT_META_UUID else sb_uuid
    geometry = XfsGeometry(
        where=where,
        version=version,
        block_size=sb.sb_blocksize,
        block_log=sb.sb_blocklog,
        sect_size=sb.sb_sectsize,
        ag_blocks=sb.sb_agblocks,
        ag_blklog=sb.sb_agblklog,
        ag_count=sb.sb_agcount,
        dblocks=sb.sb_dblocks,
        inode_size=sb.sb_inodesize,
        inop_log=sb.sb_inopblog,
        dir_block_size=sb.sb_blocksize << sb.sb_dirblklog,
        dir_fsbs=1 << sb.sb_dirblklog,
        root_ino=sb.sb_rootino,
        has_crc=has_crc,
        has_ftype=has_ftype,
        ascii_ci=bool(sb.sb_versionnum & s.XFS_SB_VERSION_BORGBIT),
        has_nrext64=has_crc and bool(sb.sb_features_incompat & s.XFS_SB_FEAT_INCOMPAT_NREXT64),
        uuid=str(uuid_mod.UUID(bytes=sb_uuid)),
        meta_uuid=meta_uuid,
        label=decode_name(bytes(sb.sb_fname).split(b"\0", 1)[0]),
        incompat=incompat_names,
        ro_compat=ro_names,
    )
    geometry.check_ino(sb.sb_rootino, f"{what}: sb_rootino")
    return geometry
