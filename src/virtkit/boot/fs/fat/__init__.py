"""FAT12/16/32 with VFAT long names (EFI system partitions, old /boot partitions).

* :mod:`.bpb` - boot sector recognition (strict: FAT is probed last) and geometry;
* :mod:`.table` - the FAT: bounded chain walks merged into runs;
* :mod:`.dirent` - directory entries, 8.3 and long names, times;
* :mod:`.reader` - :class:`Fat` and :class:`FatNode`.

References:
    Microsoft, "FAT: General Overview of On-Disk Format" (fatgen103).
    GRUB ``grub-core/fs/fat.c``; Linux ``fs/fat/``.
"""

from __future__ import annotations

from virtkit.boot.fs.fat.reader import Fat, FatNode

__all__ = ["Fat", "FatNode"]
