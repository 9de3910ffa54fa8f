"""``virtkit inspect``: the volume tree of a guest - disks, partitions, LVM, MD - and its filesystems.

::

    virtkit inspect [IMAGE...] [--json] [--volumes-only]

For each disk: image format and virtual size, partition table (type, sector
size, disk id), each partition (number, start, size, type, GUID/name,
bootable flag) and what it holds; then the LVM volume groups with every LV
(unreadable ones with the reason), the MD arrays, and the notes discovery
made.  Each volume that may hold a filesystem is opened with the filesystem
readers and shows type, UUID and label - or, where no reader opens it, the
content found by magic and why.  ``--volumes-only`` skips that step.

Every guest string is passed through :func:`~virtkit.sanitize.sanitize_text`
before it reaches the terminal.  ``--json`` prints one object described in
``docs/inspect-json.md`` (``"schema_version": 1``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from virtkit.boot.pipeline import Guest, MountedVolume, open_guest
from virtkit.boot.volume.model import DiskLayout, LogicalVolumeInfo, MdArrayInfo, Storage, Volume, VolumeKind
from virtkit.cli._common import add_image_arguments, image_paths, limits_from_args
from virtkit.sanitize import sanitize_text

__all__ = ["JSON_SCHEMA_VERSION", "inspect_document", "register", "render_tree", "run_inspect"]

JSON_SCHEMA_VERSION = 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show a guest's disks, partitions, LVM and MD volumes and filesystems",
        description="Show the volume tree of a guest: image format and size, partition tables, partitions, "
        "LVM volume groups and logical volumes, MD arrays, and the filesystem on each volume.",
    )
    add_image_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (docs/inspect-json.md)")
    p.add_argument(
        "--volumes-only",
        action="store_true",
        help="do not open filesystems: show partitions and volumes with their content by magic only",
    )
    p.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``virtkit inspect``: print the volume tree (or its JSON)."""
    stream = out or sys.stdout
    paths = image_paths(args)
    limits = limits_from_args(args)
    with open_guest(
        paths, limits=limits, fmt=args.image_format, sector_size=args.sector_size, backing=args.backing
    ) as g:
        mounted = None if args.volumes_only else _mounted(g)
        if args.json:
            doc = inspect_document(g.storage, mounted)
            stream.write(json.dumps(doc, indent=2, ensure_ascii=True, default=str) + "\n")
        else:
            stream.write(render_tree(g.storage, mounted))
    return 0


def _mounted(g: Guest) -> dict[str, MountedVolume]:
    return {m.volume.name: m for m in g.filesystems()}


# -- JSON ---------------------------------------------------------------------------------


def _filesystem(m: MountedVolume | None) -> dict[str, Any] | None:
    if m is None or m.fs is None:
        return None
    return {"type": m.fs.fstype, "uuid": m.fs.uuid, "label": m.fs.label}


def _volume_doc(v: Volume, mounted: dict[str, MountedVolume] | None) -> dict[str, Any]:
    m = mounted.get(v.name) if mounted is not None else None
    return {
        "name": v.name,
        "kind": v.kind.value,
        "disk": v.disk,
        "grub_names": list(v.grub_names),
        "number": v.number,
        "scheme": v.scheme,
        "start": v.start,
        "size": v.size,
        "type_code": v.type_code,
        "type_name": v.type_name,
        "part_uuid": v.part_uuid,
        "part_label": v.part_label,
        "bootable": v.bootable,
        "content": v.content,
        "may_hold_filesystem": v.may_hold_filesystem,
        "vg_name": v.vg_name,
        "lv_name": v.lv_name,
        "lv_uuid": v.lv_uuid,
        "filesystem": _filesystem(m),
        "filesystem_error": m.error if m is not None and m.fs is None else None,
        "notes": list(v.notes),
    }


def _disk_doc(d: DiskLayout) -> dict[str, Any]:
    return {
        "name": d.name,
        "index": d.index,
        "grub_name": f"hd{d.index}",
        "path": d.path,
        "format": d.image_format,
        "virtual_size": d.size,
        "image_details": d.image_details,
        "sector_size": d.sector_size,
        "table": d.table,
        "disk_id": d.disk_id,
        "notes": list(d.notes),
    }


def _lv_doc(vg_name: str, lv: LogicalVolumeInfo) -> dict[str, Any]:
    return {
        "name": lv.name,
        "uuid": lv.uuid,
        "size": lv.size,
        "segment_types": list(lv.segment_types),
        "status": list(lv.status),
        "readable": lv.readable,
        "reason": lv.reason,
        "volume": f"{vg_name}/{lv.name}" if lv.readable else None,
    }


def _md_doc(a: MdArrayInfo) -> dict[str, Any]:
    return {
        "name": a.name,
        "uuid": a.uuid,
        "metadata": a.metadata,
        "level": a.level,
        "raid_disks": a.raid_disks,
        "members": list(a.members),
        "size": a.size,
        "readable": a.readable,
        "reason": a.reason,
        "volume": a.name if a.readable else None,
        "notes": list(a.notes),
    }


def inspect_document(storage: Storage, mounted: dict[str, MountedVolume] | None) -> dict[str, Any]:
    """The ``--json`` object (docs/inspect-json.md).

    Args:
        storage: what volume discovery found.
        mounted: volume name -> what the filesystem stage made of it; None when
            filesystems were not probed (``--volumes-only``).
    """
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "filesystems_probed": mounted is not None,
        "disks": [_disk_doc(d) for d in storage.disks],
        "volumes": [_volume_doc(v, mounted) for v in storage.volumes],
        "volume_groups": [
            {
                "name": vg.name,
                "uuid": vg.uuid,
                "extent_size": vg.extent_size,
                "seqno": vg.seqno,
                "pvs": list(vg.pvs),
                "missing_pvs": list(vg.missing_pvs),
                "lvs": [_lv_doc(vg.name, lv) for lv in vg.lvs],
                "notes": list(vg.notes),
            }
            for vg in storage.volume_groups
        ],
        "md_arrays": [_md_doc(a) for a in storage.md_arrays],
        "notes": list(storage.notes),
    }


# -- the human tree --------------------------------------------------------------------------


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``; exact binary units print without decimals (``4 MiB``)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024
        if value < 1024 or unit == "EiB":
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _s(text: object) -> str:
    return sanitize_text(str(text))


def _q(text: str) -> str:
    """A guest string, quoted and sanitised."""
    return '"' + sanitize_text(text) + '"'


def _content_line(v: Volume, mounted: dict[str, MountedVolume] | None, roles: dict[str, str]) -> str:
    if v.name in roles:
        return roles[v.name]
    if v.content == "extended":
        return "extended partition (holds the logical partitions)"
    if v.content in ("msdos", "gpt"):
        return f"{v.content} partition table"
    if mounted is None:  # --volumes-only
        return f"content: {_s(v.content) if v.content else 'nothing recognised'} (by magic)"
    m = mounted.get(v.name)
    if m is not None and m.fs is not None:
        return f"filesystem {_s(m.fs.fstype)}, uuid {_s(m.fs.uuid) or '-'}, label {_q(m.fs.label)}"
    found = _s(v.content) if v.content else "nothing recognised"
    if m is not None and m.error:
        if "unrecognised format" in m.error:  # no reader claimed it (the JSON keeps every reader's reason)
            return f"{found} (no filesystem reader recognises it)" if v.content else found
        return f"{found} (no filesystem opened: {_s(m.error)})"
    return found


def _roles(storage: Storage) -> dict[str, str]:
    """What a container volume is part of: "LVM physical volume of vg0", "member of md/root"."""
    out: dict[str, str] = {}
    for vg in storage.volume_groups:
        for pv in vg.pvs:
            out[pv] = f"LVM physical volume of {_s(vg.name)}"
    for a in storage.md_arrays:
        for member in a.members:
            out[member] = f"MD RAID member of {_s(a.name)} ({_s(a.level)})"
    return out


def _branch(lines: list[str], items: list[list[str]], indent: str) -> None:
    for i, block in enumerate(items):
        last = i == len(items) - 1
        lines.append(f"{indent}{'└── ' if last else '├── '}{block[0]}")
        for extra in block[1:]:
            lines.append(f"{indent}{'    ' if last else '│   '}{extra}")


def _volume_block(v: Volume, mounted: dict[str, MountedVolume] | None, roles: dict[str, str], ss: int) -> list[str]:
    head = _s(v.name)
    if v.grub_names and v.grub_names[0] != v.name:
        head += f"  ({_s(v.grub_names[0])})"
    block = [head]
    if v.kind is VolumeKind.PARTITION:
        start = f"start {human_size(v.start)} (LBA {v.start // ss})" if v.start else "start 0"
        block.append(f"{start}, size {human_size(v.size)} ({v.size // ss} sectors)")
        kind = f"type {_s(v.type_name)} ({_s(v.type_code)})"
        if v.part_label:
            kind += f", name {_q(v.part_label)}"
        if v.part_uuid:
            kind += f", uuid {_s(v.part_uuid)}"
        if v.bootable:
            kind += ", bootable" if v.scheme == "msdos" else ", legacy BIOS bootable"
        block.append(kind)
    block.append(_content_line(v, mounted, roles))
    block.extend(f"note: {_s(n)}" for n in v.notes)
    return block


def render_tree(storage: Storage, mounted: dict[str, MountedVolume] | None) -> str:
    """The human-readable volume tree (all guest strings sanitised)."""
    lines: list[str] = []
    roles = _roles(storage)
    by_disk: dict[int, list[Volume]] = {}
    for v in storage.volumes:
        if v.kind is VolumeKind.PARTITION:
            by_disk.setdefault(v.disk, []).append(v)
    disk_volumes = {v.disk: v for v in storage.volumes if v.kind is VolumeKind.DISK}
    for d in storage.disks:
        details = _details(d.image_details)
        lines.append(f"{d.name} (hd{d.index}): {_s(d.path)}")
        if d.image_format == "directory":
            lines.append("  a directory on the host, read as one filesystem root")
            continue
        lines.append(f"  image: {_s(d.image_format)}{details}, virtual size {human_size(d.size)} ({d.size} bytes)")
        if d.table is not None:
            lines.append(f"  partition table: {d.table}, {d.sector_size}-byte sectors, disk id {_s(d.disk_id)}")
        else:
            lines.append(f"  partition table: none ({d.sector_size}-byte sectors)")
        dv = disk_volumes.get(d.index)
        if dv is not None and (d.table is None or dv.content == "iso9660"):
            lines.append(f"  whole disk: {_content_line(dv, mounted, roles)}")
        for n in d.notes:
            lines.append(f"  note: {_s(n)}")
        parts = by_disk.get(d.index, [])
        _branch(lines, [_volume_block(v, mounted, roles, d.sector_size) for v in parts], "  ")
    volumes = {v.name: v for v in storage.volumes}
    for vg in storage.volume_groups:
        lines.append(
            f"LVM volume group {_s(vg.name)}: uuid {_s(vg.uuid)}, extent size {human_size(vg.extent_size)}, "
            f"seqno {vg.seqno}"
        )
        pvs = ", ".join(_s(p) for p in vg.pvs) or "none"
        lines.append(f"  physical volumes: {pvs}")
        if vg.missing_pvs:
            lines.append(f"  missing physical volumes: {', '.join(_s(p) for p in vg.missing_pvs)}")
        lines.extend(f"  note: {_s(n)}" for n in vg.notes)
        blocks = []
        for lv in vg.lvs:
            vol = volumes.get(f"{vg.name}/{lv.name}")
            if vol is not None and lv.readable:
                block = _volume_block(vol, mounted, roles, 512)
                block.insert(1, f"size {human_size(lv.size)}, {'+'.join(lv.segment_types)}, uuid {_s(lv.uuid)}")
            else:
                block = [
                    f"{_s(vg.name)}/{_s(lv.name)}  (unreadable)",
                    f"size {human_size(lv.size)}, {_s('+'.join(lv.segment_types))}, uuid {_s(lv.uuid)}",
                    f"not readable: {_s(lv.reason)}",
                ]
            blocks.append(block)
        _branch(lines, blocks, "  ")
    for a in storage.md_arrays:
        lines.append(
            f"MD array {_s(a.name)}: {_s(a.level)}, metadata {_s(a.metadata)}, uuid {_s(a.uuid)}, "
            f"{len(a.members)} of {a.raid_disks} members ({', '.join(_s(m) for m in a.members)})"
        )
        lines.extend(f"  note: {_s(n)}" for n in a.notes)
        vol = volumes.get(a.name)
        if vol is not None and a.readable:
            block = _volume_block(vol, mounted, roles, 512)
            block.insert(1, f"size {human_size(vol.size)}")
            _branch(lines, [block], "  ")
        else:
            lines.append(f"  not readable: {_s(a.reason)}")
    if storage.notes:
        lines.append("notes:")
        lines.extend(f"  {_s(n)}" for n in storage.notes)
    return "".join(line + "\n" for line in lines)


# Image facts worth a human's attention (the JSON has them all), in this order.
_SHOWN_DETAILS = (
    "version",
    "cluster_size",
    "compression_type",
    "extended_l2",
    "nb_snapshots",
    "dirty",
    "corrupt",
    "backing_file",
    "backing_used",
)


def _details(details: dict[str, Any]) -> str:
    shown = []
    for key in _SHOWN_DETAILS:
        value = details.get(key)
        if value in (None, False, "", 0):
            continue
        if key == "cluster_size" and isinstance(value, int):
            shown.append(f"{human_size(value)} clusters")
        elif value is True:
            shown.append(key.replace("_", " "))
        else:
            shown.append(f"{key.replace('_', ' ')} {_s(value)}")
    return f" ({', '.join(shown)})" if shown else ""
