"""ext2/ext3/ext4, read-only: superblock (64bit, flex_bg, meta_bg, sparse_super2), extent
trees, ext2/3 block maps, inline data, fast and slow symlinks, linear/htree/inline
directories, 1 KiB to 64 KiB blocks.

References:
    Linux ``fs/ext4/`` (ext4.h, ext4_extents.h, super.c, inode.c, extents.c,
        indirect.c, inline.c, dir.c, namei.c, xattr.h) and its disk-layout document
        ``Documentation/filesystems/ext4/``; e2fsprogs ``lib/ext2fs``; GRUB
        ``grub-core/fs/ext2.c`` for UUID/label formatting; util-linux libblkid for
        ext2/ext3/ext4 naming.  Facts only; no code was copied.

Modules: ``structs`` (records, kernel field names), ``superblock``, ``inode``,
``mapping`` (extents, block maps), ``dirent`` (directory records), ``fs``
(:class:`Ext4`), ``node`` (:class:`Ext4Node`).
"""

from __future__ import annotations

from virtkit.boot.fs.ext4.fs import Ext4
from virtkit.boot.fs.ext4.node import Ext4Node

__all__ = ["Ext4", "Ext4Node"]
