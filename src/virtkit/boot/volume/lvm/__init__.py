"""LVM2: find physical volumes, assemble volume groups, map logical volumes.

:func:`scan_lvm` takes the volumes whose content is ``LVM2_member`` (whole
disks, partitions, MD arrays), reads each PV's label and metadata copies
(:mod:`.label`), parses the text with our own parser (:mod:`.metadata`),
keeps the copy with the highest ``seqno`` per VG, matches the VG's PVs to the
labels found by PV UUID (so a VG spanning several disks is assembled when all
its PVs are present), and maps each visible LV (:mod:`.mapping`).

An LV that cannot be read - an unsupported segment type (raid, thin, cache,
vdo, mirror ...), a snapshot, a missing PV - is listed in
:class:`~virtkit.boot.volume.model.VolumeGroupInfo` with the reason, and the
other LVs stay usable.  Corrupt metadata (bad checksums, syntax errors, a
segment beyond its PV) raises :class:`~virtkit.errors.CorruptStructure`.

GRUB names an LV ``lvm/VG-LV`` with every ``-`` inside either name doubled,
and ``lvmid/VGUUID/LVUUID`` with the dashed UUIDs of the metadata.

References:
    - GRUB ``grub-core/disk/lvm.c`` (``lvm/`` and ``lvmid/`` names; only VISIBLE
      LVs get one); read for facts.
    - ``lvm(8)``, ``lvs(8)`` (segtype "linear" = striped with one stripe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from virtkit.boot.volume.lvm.label import read_metadata, read_pv_label
from virtkit.boot.volume.lvm.mapping import MissingPhysicalVolume, PvDevice, build_lv_source
from virtkit.boot.volume.lvm.metadata import LvMeta, VgMetadata, parse_vg_metadata
from virtkit.boot.volume.model import LogicalVolumeInfo, Volume, VolumeGroupInfo, VolumeKind
from virtkit.errors import UnsupportedFeature
from virtkit.limits import Limits

__all__ = ["LvmScan", "grub_lvm_name", "scan_lvm", "segment_type_name"]


@dataclass(frozen=True)
class LvmScan:
    """What :func:`scan_lvm` found: LV volumes (content not yet sniffed), VGs, notes."""

    volumes: tuple[Volume, ...]
    groups: tuple[VolumeGroupInfo, ...]
    notes: tuple[str, ...]


def grub_lvm_name(vg: str, lv: str) -> str:
    """GRUB's ``lvm/VG-LV`` name, with ``-`` doubled inside each part."""
    return f"lvm/{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def segment_type_name(seg_type: str, stripe_count: int) -> str:
    """The segment type as ``lvs -o segtype`` shows it ("linear" for one stripe)."""
    if seg_type == "striped" and stripe_count == 1:
        return "linear"
    return seg_type


@dataclass
class _Pv:
    volume: Volume
    uuid: str
    copies: list[VgMetadata]


def scan_lvm(candidates: Sequence[Volume], *, limits: Limits) -> LvmScan:
    """Assemble the VGs whose PVs are among ``candidates`` and map their LVs.

    Args:
        candidates: volumes whose content is ``LVM2_member``, in enumeration order.
        limits: bounds for metadata size, tokens, nesting, segments and LV size.

    Returns:
        the LV volumes (readable ones), every VG with all its visible LVs, notes.

    Raises:
        CorruptStructure: a damaged label, metadata area or metadata text, or an
            LV mapping that points outside its PV.
        LimitExceeded: a bound was broken.
    """
    notes: list[str] = []
    parsed: dict[bytes, VgMetadata] = {}
    pvs: list[_Pv] = []
    for vol in candidates:
        label = read_pv_label(vol.source, where=vol.name)
        copies: list[VgMetadata] = []
        for mda in label.metadata_areas:
            copy = read_metadata(vol.source, mda, limits=limits, where=vol.name)
            if copy is None:
                continue
            meta = parsed.get(copy.text)
            if meta is None:
                meta = parse_vg_metadata(copy.text, limits=limits, where=copy.where)
                parsed[copy.text] = meta
            copies.append(meta)
        pvs.append(_Pv(vol, label.pv_uuid, copies))

    # The newest copy of each VG, in order of first appearance.
    best: dict[str, VgMetadata] = {}
    for pv in pvs:
        for meta in pv.copies:
            cur = best.get(meta.id)
            if cur is None or meta.seqno > cur.seqno:
                best[meta.id] = meta
    for pv in pvs:
        for meta in pv.copies:
            newest = best[meta.id]
            if meta.seqno < newest.seqno:
                notes.append(
                    f"{pv.volume.name} holds old metadata of VG {meta.name} (seqno {meta.seqno}); "
                    f"used seqno {newest.seqno} from {newest.where}"
                )
            elif meta is not newest and meta.seqno == newest.seqno:
                notes.append(
                    f"VG {meta.name}: two different metadata copies have seqno {meta.seqno}; used the one on {newest.where}"
                )
    names_seen: dict[str, str] = {}
    for meta in best.values():
        if meta.name in names_seen:
            notes.append(
                f"two volume groups are called {meta.name!r} (uuids {names_seen[meta.name]} and {meta.id}); "
                f"GRUB names such as lvm/{meta.name}-... are ambiguous"
            )
        names_seen[meta.name] = meta.id

    by_uuid: dict[str, _Pv] = {}
    for pv in pvs:
        if pv.uuid in by_uuid:
            notes.append(
                f"{pv.volume.name} and {by_uuid[pv.uuid].volume.name} carry the same PV uuid {pv.uuid} "
                f"(a cloned disk?); using {by_uuid[pv.uuid].volume.name}"
            )
            continue
        by_uuid[pv.uuid] = pv
    claimed: set[str] = set()
    volumes: list[Volume] = []
    groups: list[VolumeGroupInfo] = []
    for meta in best.values():
        devices: dict[str, PvDevice] = {}
        missing: list[str] = []
        for pv_name, pv_meta in meta.pvs.items():
            found = by_uuid.get(pv_meta.uuid_plain)
            if found is None:
                missing.append(pv_meta.id)
                continue
            claimed.add(found.uuid)
            devices[pv_name] = PvDevice(pv_meta, found.volume.source, found.volume.name, found.volume.disk)
        lv_infos, lv_volumes = _map_lvs(meta, devices, limits)
        volumes.extend(lv_volumes)
        vg_notes = []
        if missing:
            vg_notes.append(f"{len(missing)} of {len(meta.pvs)} physical volumes are missing")
        groups.append(
            VolumeGroupInfo(
                name=meta.name,
                uuid=meta.id,
                extent_size=meta.extent_bytes,
                seqno=meta.seqno,
                pvs=tuple(devices[n].volume_name for n in meta.pvs if n in devices),
                missing_pvs=tuple(missing),
                lvs=tuple(lv_infos),
                notes=tuple(vg_notes),
            )
        )
    for pv in pvs:
        if pv.uuid not in claimed and not pv.copies:
            notes.append(f"{pv.volume.name} is an LVM physical volume that belongs to no volume group found")
    return LvmScan(tuple(volumes), tuple(groups), tuple(notes))


def _snapshot_cow_stores(meta: VgMetadata) -> dict[str, str]:
    """COW store LV name -> origin LV name, from the "snapshot" segments (lvm(8) SNAPSHOTS)."""
    out: dict[str, str] = {}
    for lv in meta.lvs:
        for seg in lv.segments:
            if seg.type == "snapshot":
                cow = seg.settings.get("cow_store")
                origin = seg.settings.get("origin")
                if isinstance(cow, str) and isinstance(origin, str):
                    out[cow] = origin
    return out


def _visible(lv: LvMeta, meta: VgMetadata, cows: dict[str, str]) -> bool:
    """Visible as lvs shows it: the VISIBLE flag, or a snapshot's COW store whose origin is visible.

    LVM writes a snapshot's COW LV without VISIBLE and derives its visibility from
    the origin (``lv_is_visible`` in lib/metadata/lv.c); GRUB only looks at the flag.
    """
    if lv.visible:
        return True
    origin = cows.get(lv.name)
    return origin is not None and any(o.name == origin and o.visible for o in meta.lvs)


def _map_lvs(
    meta: VgMetadata, devices: dict[str, PvDevice], limits: Limits
) -> tuple[list[LogicalVolumeInfo], list[Volume]]:
    infos: list[LogicalVolumeInfo] = []
    volumes: list[Volume] = []
    cows = _snapshot_cow_stores(meta)
    for lv in meta.lvs:
        if not _visible(lv, meta, cows):
            continue
        name = f"{meta.name}/{lv.name}"
        seg_types = tuple(dict.fromkeys(segment_type_name(s.type, s.stripe_count) for s in lv.segments))
        size = lv.extent_count * meta.extent_bytes
        reason: str | None = None
        try:
            if lv.name in cows:
                raise UnsupportedFeature(
                    f"LV {name} is a snapshot: reading it needs its origin merged with the copy-on-write "
                    f"store, which virtkit does not do"
                )
            source = build_lv_source(meta, lv, devices, limits=limits, name=name)
        except (UnsupportedFeature, MissingPhysicalVolume) as exc:
            reason = str(exc)
        infos.append(
            LogicalVolumeInfo(
                name=lv.name,
                uuid=lv.id,
                size=size,
                segment_types=seg_types,
                status=lv.status,
                readable=reason is None,
                reason=reason,
            )
        )
        if reason is None and lv.visible:
            volumes.append(
                Volume(
                    name=name,
                    kind=VolumeKind.LOGICAL_VOLUME,
                    source=source,
                    disk=_first_disk(lv, devices),
                    grub_names=(grub_lvm_name(meta.name, lv.name), f"lvmid/{meta.id}/{lv.id}"),
                    type_code="+".join(seg_types),
                    type_name="LVM logical volume",
                    vg_name=meta.name,
                    lv_name=lv.name,
                    lv_uuid=lv.id,
                )
            )
    return infos, volumes


def _first_disk(lv: LvMeta, devices: dict[str, PvDevice]) -> int:
    for seg in lv.segments:
        for pv_name, _ in seg.stripes:
            if pv_name in devices:
                return devices[pv_name].disk
    return min((d.disk for d in devices.values()), default=0)
