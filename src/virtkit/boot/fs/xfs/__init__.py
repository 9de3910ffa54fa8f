"""Read-only XFS (v4 and v5) for the boot pipeline.

``Xfs.open(source, *, limits)`` recognises the "XFSB" superblock; the probe
table in :mod:`virtkit.boot.fs` lists it.  Modules, by concern:

* ``structs``    on-disk records and constants (kernel field names)
* ``superblock`` validation and address arithmetic (AG / block / inode numbers)
* ``inode``      dinode v1/v2/v3
* ``bmap``       data forks: extent records, the bmbt, file runs
* ``dir``        directories: shortform, block, leaf, node (any fork format)
* ``symlink``    local and remote symlinks
* ``xfs``        :class:`Xfs` and :class:`XfsNode`
"""

from __future__ import annotations

from virtkit.boot.fs.xfs.xfs import Xfs, XfsNode

__all__ = ["Xfs", "XfsNode"]
