"""btrfs, read-only and hardened: superblock and mirrors, chunks and RAID profiles,
trees, subvolumes and snapshots, inline/regular/prealloc extents, zlib/lzo/zstd.

References:
    include/uapi/linux/btrfs_tree.h and the kernel's fs/btrfs/ (on-disk format),
    grub-core/fs/btrfs.c (how GRUB resolves paths and prints UUID/label; facts only).

Public API::

    fs = Btrfs.open(source, limits=limits, devices=[other devices with the same fsid])
    fs.root()                      # top-level subvolume (id 5)
    fs.default_root()              # the default subvolume
    fs.default_subvolume_path()    # "@/.snapshots/1/snapshot" or ""
    btrfs_device_info(source)      # (fsid, devid, num_devices) or None

Modules: ``structs`` (layouts and constants), ``checksum`` (crc32c, xxhash64,
sha256, blake2b), ``superblock``, ``chunks`` (logical -> physical), ``tree``
(block verification and search), ``items`` (item payloads), ``files``
(extents -> byte source), ``compression`` + ``lzo`` (decompression),
``filesystem`` (the reader).
"""

from __future__ import annotations

from virtkit._streams import ByteSource
from virtkit.boot.fs.btrfs.filesystem import Btrfs, BtrfsNode
from virtkit.boot.fs.btrfs.superblock import device_info

__all__ = ["Btrfs", "BtrfsNode", "btrfs_device_info"]


def btrfs_device_info(source: ByteSource) -> tuple[str, int, int] | None:
    """``(fsid, devid, num_devices)`` if ``source`` is a btrfs device, else None.

    Never raises: the pipeline calls it on every volume to group the devices of
    a multi-device filesystem before opening it.
    """
    return device_info(source)
