"""Run volume discovery on in-memory disks: ``discover(raw0, raw1, limits=...)``."""

from __future__ import annotations

from virtkit._streams import BytesSource
from virtkit.boot.image import Image
from virtkit.boot.volume import discover_volumes
from virtkit.boot.volume.model import Storage
from virtkit.limits import Limits


def images(*raws: bytes) -> list[Image]:
    """Raw disks as stage-1 Images (``disk0``, ``disk1`` ...)."""
    return [
        Image(name=f"disk{i}", path=f"disk{i}.img", format="raw", source=BytesSource(bytes(r), f"disk{i}"), file=None)  # type: ignore[arg-type]
        for i, r in enumerate(raws)
    ]


def discover(*raws: bytes, limits: Limits | None = None, sector_size: int | None = None) -> Storage:
    return discover_volumes(images(*raws), limits=limits or Limits(), sector_size=sector_size)
