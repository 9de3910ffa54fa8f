"""XFS symbolic links: local (target inside the inode) and remote (target in blocks).

A remote target on a v5 filesystem is split over the symlink's extents; each
extent starts with a self-describing header ("XSLM", the byte offset and length
of the piece, owner inode, own block address).  The kernel allocates
``ceil(len / (blocksize - 56))`` blocks and writes one header per extent, so
one 2-block extent has one header.  On v4 the blocks hold the bare target.
Targets are at most 1024 bytes (``XFS_SYMLINK_MAXLEN``).

References:
    fs/xfs/libxfs/xfs_format.h          struct xfs_dsymlink_hdr, XFS_SYMLINK_MAXLEN
    fs/xfs/libxfs/xfs_symlink_remote.c  xfs_symlink_hdr_ok, xfs_symlink_verify, xfs_symlink_blocks,
                                        XFS_SYMLINK_BUF_SPACE
    fs/xfs/xfs_symlink.c                xfs_readlink_bmap: one buffer (and header) per mapping
"""

from __future__ import annotations

from collections.abc import Callable

from virtkit.boot.fs.xfs import structs as s
from virtkit.boot.fs.xfs.bmap import ForkMap
from virtkit.boot.fs.xfs.inode import Dinode
from virtkit.boot.fs.xfs.superblock import XfsGeometry
from virtkit.errors import CorruptStructure

__all__ = ["read_symlink_target"]


def read_symlink_target(geo: XfsGeometry, inode: Dinode, fork: Callable[[], ForkMap]) -> bytes:
    """The raw target bytes of symlink ``inode``.

    Args:
        geo: filesystem geometry.
        inode: the symlink's dinode.
        fork: builds the data fork map (only called for remote symlinks).

    Returns:
        the target, 1..1024 bytes, without NULs.

    Raises:
        CorruptStructure: a bad length, unmapped blocks, a v5 header that does not match
            (magic, offset, length, owner, address, uuid), or a NUL in the target.
    """
    what = f"{inode.what}: symlink"
    size = inode.di_size
    if not 1 <= size <= s.XFS_SYMLINK_MAXLEN:
        raise CorruptStructure(what, f"target length must be 1..{s.XFS_SYMLINK_MAXLEN}", offset=inode.offset, got=size)
    if inode.di_format == s.XFS_DINODE_FMT_LOCAL:
        target = inode.data_fork[:size]
    else:
        fmap = fork()
        bs = geo.block_size
        if not geo.has_crc:
            nblocks = -(-size // bs)
            data = fmap.read(0, nblocks)
            if data is None:
                raise CorruptStructure(what, "remote target blocks are not mapped", offset=inode.offset)
            target = data[:size]
        else:
            # One header per *mapping* (the kernel reads each extent as one buffer), not per
            # block: the payload of a mapping is its length minus the header.
            hdr_len = s.XFS_SYMLINK_HDR_RECORD.size
            nblocks = -(-size // (bs - hdr_len))
            parts: list[bytes] = []
            done = 0
            block = 0
            for ext in fmap.extents:
                if done >= size or ext.startoff >= nblocks:
                    break
                if ext.startoff != block or ext.unwritten:
                    raise CorruptStructure(what, f"remote target block {block} is not mapped", offset=inode.offset)
                count = min(ext.blockcount, nblocks - block)
                byte = ext.byte
                data = fmap.source.pread(byte, count * bs)
                hdr = s.XFS_SYMLINK_HDR_RECORD.parse(data, 0, where=what)
                want = min(count * bs - hdr_len, size - done)
                where = f"{what} block {block}"
                if hdr.sl_magic != s.XFS_SYMLINK_MAGIC:
                    raise CorruptStructure(where, "bad remote symlink magic", offset=byte, expected=s.XFS_SYMLINK_MAGIC, got=hdr.sl_magic)
                if hdr.sl_offset != done:
                    raise CorruptStructure(where, "header offset does not match", offset=byte, expected=done, got=hdr.sl_offset)
                if hdr.sl_bytes != want:
                    raise CorruptStructure(where, "header length does not match", offset=byte, expected=want, got=hdr.sl_bytes)
                if hdr.sl_owner != inode.ino:
                    raise CorruptStructure(where, "block belongs to another inode", offset=byte, expected=inode.ino, got=hdr.sl_owner)
                if hdr.sl_blkno != byte >> s.BBSHIFT:
                    raise CorruptStructure(where, "block records another address", offset=byte, expected=byte >> s.BBSHIFT, got=hdr.sl_blkno)
                if bytes(hdr.sl_uuid) != geo.meta_uuid:
                    raise CorruptStructure(where, "block belongs to another filesystem (uuid)", offset=byte)
                parts.append(data[hdr_len : hdr_len + want])
                done += want
                block += count
            if done < size:
                raise CorruptStructure(what, f"remote target blocks hold {done} of {size} bytes", offset=inode.offset)
            target = b"".join(parts)
    if b"\0" in target:
        raise CorruptStructure(what, "target contains a NUL byte", offset=inode.offset)
    return target
