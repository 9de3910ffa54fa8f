"""LV segments to byte sources: linear (one stripe) and striped segments over the PVs present.

A segment of ``extent_count`` extents with ``stripe_count`` stripes takes
``extent_count / stripe_count`` extents from each listed PV, starting at the
listed extent; PV extent ``e`` lives at byte ``pe_start * 512 + e * extent_size * 512``.
Striped data rotates over the areas in chunks of ``stripe_size`` sectors::

    LV bytes:   | c0 | c1 | c2 | c3 | c4 | c5 | ...      (chunks of stripe_size)
    area 0:     | c0 | c2 | c4 | ...
    area 1:     | c1 | c3 | c5 | ...

This is the device-mapper ``striped`` target (and GRUB's reading of it):
chunk ``k`` is in area ``k mod N`` at row ``k div N``.  An area must be a
whole number of chunks, as dm-stripe requires.

Anything but ``striped`` (raid*, mirror, thin, thin-pool, cache, vdo, snapshot,
writecache, integrity, error, zero) is refused with
:class:`~virtkit.errors.UnsupportedFeature` naming the LV, so the caller can
list the LV as unreadable and keep the others.

References:
    - LVM2 ``lib/format_text/import_vsn1.c`` (units), ``lib/activate/dev_manager.c``
      (how segments become dm tables); Linux ``drivers/md/dm-stripe.c`` (chunk
      arithmetic, divisibility rules); read for facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from virtkit._streams import ByteSource, MappedSource, RangeSource, Run, check_range
from virtkit.boot.volume.lvm.metadata import LvMeta, PvMeta, SegmentMeta, VgMetadata
from virtkit.errors import CorruptStructure, ImageError, UnsupportedFeature
from virtkit.limits import Limits

__all__ = ["MissingPhysicalVolume", "PvDevice", "StripedSource", "build_lv_source"]


class MissingPhysicalVolume(ImageError):
    """An LV needs a PV that is not on any of the disks given."""


@dataclass(frozen=True)
class PvDevice:
    """A PV that is present: its metadata entry and the volume holding it."""

    meta: PvMeta
    source: ByteSource
    volume_name: str
    disk: int


class StripedSource:
    """Bytes striped over equal-sized areas in chunks of ``stripe_bytes`` (dm ``striped``).

    Raises:
        CorruptStructure: areas of different sizes, or not a whole number of chunks.
    """

    def __init__(self, areas: Sequence[ByteSource], stripe_bytes: int, name: str) -> None:
        if not areas or stripe_bytes <= 0:
            raise CorruptStructure(name, "a striped mapping needs areas and a positive stripe size")
        area = areas[0].size
        if any(a.size != area for a in areas) or area % stripe_bytes:
            raise CorruptStructure(
                name, f"stripe areas must be equal and a whole number of {stripe_bytes:#x}-byte chunks"
            )
        self.areas = list(areas)
        self.stripe_bytes = stripe_bytes
        self.name = name
        self.size = area * len(areas)

    def pread(self, offset: int, length: int) -> bytes:
        check_range(self.name, self.size, offset, length)
        sb = self.stripe_bytes
        n = len(self.areas)
        parts: list[bytes] = []
        while length > 0:
            chunk, within = divmod(offset, sb)
            row, stripe = divmod(chunk, n)
            take = min(length, sb - within)
            parts.append(self.areas[stripe].pread(row * sb + within, take))
            offset += take
            length -= take
        return b"".join(parts)

    def __repr__(self) -> str:
        return f"<StripedSource {self.name!r} {len(self.areas)}x{self.stripe_bytes:#x} size={self.size:#x}>"


def build_lv_source(
    vg: VgMetadata,
    lv: LvMeta,
    devices: dict[str, PvDevice],
    *,
    limits: Limits,
    name: str,
) -> ByteSource:
    """The bytes of ``lv``: its segments stitched over the PVs in ``devices``.

    Args:
        vg: the VG metadata the LV belongs to.
        lv: the LV.
        devices: PV name ("pv0") -> the PV, for the PVs present.
        limits: ``max_image_bytes`` bounds the LV size, ``max_extents`` its segments.
        name: the source's name ("vg0/root").

    Raises:
        UnsupportedFeature: a segment type other than striped (names the LV).
        MissingPhysicalVolume: a segment needs a PV that is not present.
        CorruptStructure: a segment refers to an unknown PV, lies beyond its PV, or
            has a stripe layout device-mapper would reject.
        LimitExceeded: the LV is larger than ``max_image_bytes``.
    """
    label = f"LV {vg.name}/{lv.name}"
    for seg in lv.segments:
        if seg.type != "striped":
            raise UnsupportedFeature(
                f"{label}: {seg.type!r} segments are not supported (virtkit reads linear and striped LVs only)"
            )
    ext_bytes = vg.extent_bytes
    size = lv.extent_count * ext_bytes
    limits.check("max_image_bytes", size, label)
    sources: list[tuple[int, ByteSource]] = []
    for i, seg in enumerate(lv.segments, 1):
        what = f"{label} segment {i}" if len(lv.segments) > 1 else name
        sources.append(
            (seg.start_extent * ext_bytes, _segment_source(vg, lv, seg, index=i, devices=devices, name=what))
        )
    if len(sources) == 1:
        return sources[0][1]
    runs = [Run(start, src.size, src, 0) for start, src in sources]
    return MappedSource(size, runs, name, max_runs=limits.max_extents)


def _segment_source(
    vg: VgMetadata, lv: LvMeta, seg: SegmentMeta, *, index: int, devices: dict[str, PvDevice], name: str
) -> ByteSource:
    label = f"LV {vg.name}/{lv.name} segment {index}"
    ext_bytes = vg.extent_bytes
    if seg.extent_count % seg.stripe_count:
        raise CorruptStructure(
            f"{label} ({vg.where}, line {seg.line})",
            f"{seg.extent_count} extents cannot be split over {seg.stripe_count} stripes",
        )
    area_extents = seg.extent_count // seg.stripe_count
    placed: list[tuple[PvDevice, int, int]] = []
    for pv_name, first in seg.stripes:
        pv = vg.pvs.get(pv_name)
        if pv is None:
            raise CorruptStructure(
                f"{label} ({vg.where}, line {seg.line})", f"refers to PV {pv_name!r}, which the VG does not list"
            )
        dev = devices.get(pv_name)
        if dev is None:
            raise MissingPhysicalVolume(
                f"LV {vg.name}/{lv.name} needs PV {pv_name} (uuid {pv.id}), which is not on the disks given"
            )
        if first + area_extents > pv.pe_count:
            raise CorruptStructure(
                f"{label} ({vg.where}, line {seg.line})",
                f"extents {first}..{first + area_extents - 1} on {pv_name} lie beyond its {pv.pe_count} extents",
            )
        start = pv.pe_start * 512 + first * ext_bytes
        length = area_extents * ext_bytes
        if start + length > dev.source.size:
            raise CorruptStructure(
                f"{label} ({vg.where}, line {seg.line})",
                f"extents {first}..{first + area_extents - 1} on {pv_name} end at {start + length:#x}, "
                f"beyond the end of {dev.volume_name} (size {dev.source.size:#x})",
                offset=start,
            )
        placed.append((dev, start, length))
    if seg.stripe_count == 1:
        dev, start, length = placed[0]
        return RangeSource(dev.source, start, length, name)
    stripe_bytes = seg.stripe_size * 512
    if seg.stripe_size <= 0 or seg.stripe_size & (seg.stripe_size - 1):
        raise CorruptStructure(
            f"{label} ({vg.where}, line {seg.line})", f"stripe_size {seg.stripe_size} is not a power of two"
        )
    if (area_extents * ext_bytes) % stripe_bytes:
        raise CorruptStructure(
            f"{label} ({vg.where}, line {seg.line})",
            f"a stripe area of {area_extents * ext_bytes:#x} bytes is not a whole number of {stripe_bytes:#x}-byte chunks",
        )
    areas = [RangeSource(dev.source, start, length, f"{name} on {dev.volume_name}") for dev, start, length in placed]
    return StripedSource(areas, stripe_bytes, name)
