"""The ext2/ext3/ext4 filesystem: :class:`Ext4` (superblock, descriptors, inodes, caches).

References:
    Linux ``fs/ext4/ext4.h``, ``fs/ext4/super.c`` (geometry), ``fs/ext4/inode.c``
        (__ext4_get_inode_loc: inode -> group -> inode table; __ext4_iget),
        ``fs/ext4/symlink.c`` and ``fs/ext4/inode.c`` ext4_inode_is_fast_symlink,
        ``fs/ext4/namei.c`` and ``fs/ext4/dir.c`` (directories), ``fs/ext4/inline.c``.
    GRUB ``grub-core/fs/ext2.c`` (what a boot loader reads, UUID and label format).

Reading path::

    Ext4.open(volume)                       superblock at 1024 (superblock.py)
      .inode(n) -> group (n-1) // s_inodes_per_group
                -> descriptor (classic GDT or meta_bg)   cached per group
                -> inode table block                      small LRU of table blocks
      Ext4Node.open() -> runs (mapping.py) -> ByteSource of long runs (holes = zeros)
      Ext4Node.iter_dir() -> records (dirent.py), block by block, htree read linearly

Nothing is read until asked for; inodes, descriptor lookups and directory name maps
are cached in bounded LRUs, so resolving many paths in one directory is cheap.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict

from virtkit._streams import ByteSource
from virtkit.boot.fs.base import Filesystem, FileType, decode_name
from virtkit.boot.fs.ext4 import structs as S
from virtkit.boot.fs.ext4.inode import Inode, parse_inode
from virtkit.boot.fs.ext4.node import Ext4Node
from virtkit.boot.fs.ext4.superblock import Superblock, parse_superblock
from virtkit.errors import CorruptStructure, NotThisFormat
from virtkit.limits import DEFAULT_LIMITS, Limits

__all__ = ["Ext4"]

log = logging.getLogger(__name__)

_INODE_CACHE = 4096  # parsed inodes kept per filesystem
_TABLE_BLOCK_CACHE = 256  # inode-table blocks kept per filesystem
_DIR_MAP_CACHE = 16  # directories whose name -> inode maps are kept


class Ext4(Filesystem):
    """A read-only ext2/ext3/ext4 filesystem.

    Attributes:
        sb: the validated superblock (``sb.raw`` has the kernel field names).
        fstype: "ext2", "ext3", "ext4" (or "ext4dev"), as blkid names it.
        uuid: as GRUB prints it (lower-case 8-4-4-4-12).
        label: ``s_volume_name`` (bytes that are not UTF-8 kept as surrogates).
        needs_recovery: the journal was not replayed (see :attr:`Superblock.needs_recovery`).
    """

    fstype = "ext4"

    def __init__(self, source: ByteSource, sb: Superblock, *, limits: Limits) -> None:
        self.source = source
        self.sb = sb
        self.limits = limits
        self.fstype = sb.fstype
        self.uuid = sb.uuid
        self.label = decode_name(sb.label_bytes)
        self.needs_recovery = sb.needs_recovery
        self.casefold = bool(sb.incompat & S.INCOMPAT_CASEFOLD)
        self._filetype = bool(sb.incompat & S.INCOMPAT_FILETYPE)
        self._itable_blocks = -(-sb.inodes_per_group * sb.inode_size // sb.block_size)
        self._group_tables: dict[int, int] = {}
        self._dir_maps: OrderedDict[int, dict[bytes, tuple[int, int | None]]] = OrderedDict()
        self._table_block = functools.lru_cache(maxsize=_TABLE_BLOCK_CACHE)(self._read_table_block)
        self._inode = functools.lru_cache(maxsize=_INODE_CACHE)(self._read_inode)
        self._check_gdt()

    # --- opening ----------------------------------------------------------------------

    @classmethod
    def open(cls, source: ByteSource, *, limits: Limits = DEFAULT_LIMITS) -> Ext4:
        """Open the ext2/3/4 filesystem on ``source``.

        Args:
            source: the volume's bytes.
            limits: bounds for everything read.

        Returns:
            the opened filesystem (nothing but the superblock has been read).

        Raises:
            NotThisFormat: no ext2/3/4 superblock magic (0xEF53 at 1024 + 0x38).
            UnsupportedFeature: an external journal device or an unreadable
                incompatible feature (named).
            CorruptStructure: an impossible geometry, or a descriptor table that does
                not fit in the volume.
        """
        end = S.SUPERBLOCK_OFFSET + S.SUPERBLOCK_SIZE
        if source.size < end:
            raise NotThisFormat(f"{source.name}: {source.size} bytes is too small for an ext2/3/4 superblock")
        sb = parse_superblock(source.pread(S.SUPERBLOCK_OFFSET, S.SUPERBLOCK_SIZE), where=source.name)
        return cls(source, sb, limits=limits)

    def _check_gdt(self) -> None:
        sb = self.sb
        blocks = -(-sb.group_count // sb.descs_per_block)
        if sb.incompat & S.INCOMPAT_META_BG:
            blocks = int(sb.raw.s_first_meta_bg)
        first = sb.first_data_block + 1
        end = (first + blocks) * sb.block_size
        if first + blocks > sb.blocks_count or end > self.source.size:
            raise CorruptStructure(
                f"ext4 group descriptor table on {self.source.name}",
                f"{blocks} blocks from block {first:#x} pass the end of the "
                f"{'filesystem' if first + blocks > sb.blocks_count else 'volume'}",
                offset=first * sb.block_size,
            )

    # --- blocks, descriptors, inodes --------------------------------------------------

    def read_block(self, block: int) -> bytes:
        """One filesystem block (the caller has checked ``block`` against the filesystem)."""
        bs = self.sb.block_size
        return self.source.pread(block * bs, bs)

    def _read_table_block(self, block: int) -> bytes:
        return self.read_block(block)

    def inode_table(self, group: int) -> int:
        """First block of ``group``'s inode table, from its group descriptor.

        Raises:
            CorruptStructure: the descriptor lies, or points the table outside the filesystem.
        """
        cached = self._group_tables.get(group)
        if cached is not None:
            return cached
        sb = self.sb
        bs = sb.block_size
        block = sb.descriptor_block(group // sb.descs_per_block)
        what = f"ext4 group descriptor {group} on {self.source.name}"
        if block <= 0 or block >= sb.blocks_count:
            raise CorruptStructure(what, f"descriptor block {block:#x} outside the filesystem")
        off = block * bs + (group % sb.descs_per_block) * sb.desc_size
        rec = S.DESC_64 if sb.desc_size >= S.DESC_64.size else S.DESC_32
        desc = rec.parse(self.source.pread(off, rec.size), 0, where=what)
        table = desc.bg_inode_table_lo
        if sb.incompat & S.INCOMPAT_64BIT:
            table |= desc.bg_inode_table_hi << 32
        if table <= sb.first_data_block or table + self._itable_blocks > sb.blocks_count:
            raise CorruptStructure(what, "bg_inode_table outside the filesystem", offset=off + 8, got=table)
        if len(self._group_tables) >= 65536:
            self._group_tables.clear()
        self._group_tables[group] = table
        return table

    def inode(self, ino: int) -> Inode:
        """The parsed inode ``ino`` (cached).

        Raises:
            CorruptStructure: ``ino`` is 0 or beyond ``s_inodes_count``, or the inode is damaged.
        """
        if not 1 <= ino <= self.sb.inodes_count:
            raise CorruptStructure(
                f"{self.describe()}", "inode number out of range", expected=f"1..{self.sb.inodes_count}", got=ino
            )
        return self._inode(ino)

    def inode_offset(self, ino: int) -> int:
        """Byte offset of inode ``ino`` on the volume."""
        sb = self.sb
        group, index = divmod(ino - 1, sb.inodes_per_group)
        return self.inode_table(group) * sb.block_size + index * sb.inode_size

    def _read_inode(self, ino: int) -> Inode:
        sb = self.sb
        off = self.inode_offset(ino)
        block, within = divmod(off, sb.block_size)
        buf = self._table_block(block)[within : within + sb.inode_size]
        return parse_inode(
            buf,
            ino,
            offset=off,
            block_size=sb.block_size,
            huge_file=bool(sb.ro_compat & S.RO_COMPAT_HUGE_FILE),
            large_dir=bool(sb.incompat & S.INCOMPAT_LARGEDIR),
            where=self.describe(),
        )

    def node(self, ino: int) -> Ext4Node:
        """A node for inode ``ino`` (reads the inode)."""
        return Ext4Node(self, self.inode(ino))

    def root(self) -> Ext4Node:
        """The root directory (inode 2).

        Raises:
            CorruptStructure: inode 2 is not a directory.
        """
        node = self.node(S.EXT4_ROOT_INO)
        if node.inode.type is not FileType.DIRECTORY:
            raise CorruptStructure(self.describe(), "root inode 2 is not a directory", got=node.inode.mode)
        return node

    def _entry_node(self, ino: int, parent: int) -> Ext4Node:
        """The node a directory entry names; reserved inodes (journal, resize...) are refused."""
        if ino < self.sb.first_ino and ino != S.EXT4_ROOT_INO:
            raise CorruptStructure(
                f"{self.describe()}: directory inode {parent}", "an entry names a reserved inode", got=ino
            )
        return self.node(ino)

    def _dir_map(self, node: Ext4Node) -> dict[bytes, tuple[int, int | None]]:
        ino = node.inode.ino
        cached = self._dir_maps.get(ino)
        if cached is not None:
            self._dir_maps.move_to_end(ino)
            return cached
        names = {name: (child, ftype) for child, name, ftype in node.iter_records()}
        self._dir_maps[ino] = names
        if len(self._dir_maps) > _DIR_MAP_CACHE:
            self._dir_maps.popitem(last=False)
        return names
