"""iso9660 with Rock Ridge and Joliet (install media, config drives, cloud-init seeds).

* :mod:`.structs` - volume descriptors and validated directory records;
* :mod:`.susp` - SUSP/Rock Ridge entries with every length checked (XSA-497);
* :mod:`.reader` - :class:`Iso9660` and :class:`IsoNode`.

References:
    ECMA-119 (ISO 9660), Joliet, SUSP 1.12, RRIP 1.12;
    GRUB ``grub-core/fs/iso9660.c``; Linux ``fs/isofs/``.
"""

from __future__ import annotations

from virtkit.boot.fs.iso9660.reader import Iso9660, IsoNode

__all__ = ["Iso9660", "IsoNode"]
