"""Stage 2 of the boot pipeline: find every volume on the guest's disks.

``discover_volumes(images, *, limits)`` returns a
:class:`~virtkit.boot.volume.model.Storage`: per disk its partition table
(:mod:`.mbr`, :mod:`.gpt`), then MD RAID arrays (:mod:`.md`) and LVM
volume groups (:mod:`.lvm`) assembled across all disks, each volume with a
byte source, a stable name, its GRUB names and what it holds by magic
(:mod:`.sniff`).

Per disk::

    sector 0 is a FAT boot sector?      -> no table (a "superfloppy"); sniff the disk
    0x55AA and sane boot indicators?    -> MBR
        an entry of type 0xEE           -> GPT (sector size: LBA 1 at 512 or 4096 bytes)
        otherwise                       -> primaries + the logical-partition chain
    otherwise                           -> no table; the disk itself may hold a filesystem

Enumeration order (stable; documented in docs/inspect-json.md): for each disk
in the order given, the disk volume then its partitions in table order; then
the LVM logical volumes (VG by first PV seen, LVs in metadata order); then the
MD arrays.  Arrays are assembled before LVM is scanned, so PVs on RAID1 work.

Everything read is checked against the image and :class:`~virtkit.limits.Limits`;
bad structures raise a :class:`~virtkit.errors.VirtkitError` subclass.

References:
    - see the modules: UEFI 2.10 §5 (GPT, protective MBR), Linux/GRUB msdos
      partition code, LVM2 on-disk format, Linux ``md_p.h``, libblkid type names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from virtkit._streams import ByteSource, RangeSource
from virtkit.boot.image import Image
from virtkit.boot.volume.gpt import GptTable, detect_gpt_sector_size, parse_gpt
from virtkit.boot.volume.mbr import MbrTable, parse_mbr, probe_mbr
from virtkit.boot.volume.model import DiskLayout, MdArrayInfo, Storage, Volume, VolumeGroupInfo, VolumeKind
from virtkit.boot.volume.sniff import is_fat_boot_sector, sniff_content
from virtkit.errors import UsageError
from virtkit.limits import Limits

__all__ = ["discover_volumes", "scan_disk"]

CONTAINER_SIGNATURES = frozenset({"LVM2_member", "linux_raid_member", "crypto_LUKS"})


def discover_volumes(images: Sequence[Image], *, limits: Limits, sector_size: int | None = None) -> Storage:
    """Find the partitions, MD arrays and LVM logical volumes on the guest's disks.

    Args:
        images: the opened disks, in order (``hd0``, ``hd1`` ...).
        limits: bounds for tables, chains, metadata and counts.
        sector_size: force 512- or 4096-byte logical sectors for every disk
            (default: 512, or whatever sector size the GPT header is found at).

    Returns:
        the Storage, volumes in enumeration order.

    Raises:
        UsageError: a sector size other than 512 or 4096.
        CorruptStructure: a damaged table, EBR chain, LVM label/metadata or MD superblock.
        LimitExceeded: too many disks, partitions, volumes, tokens ...
    """
    if sector_size not in (None, 512, 4096):
        raise UsageError(f"sector size must be 512 or 4096, not {sector_size}")
    limits.check("max_disks", len(images), "images given")
    disks: list[DiskLayout] = []
    volumes: list[Volume] = []
    for index, img in enumerate(images):
        layout, vols = scan_disk(
            img.source,
            index=index,
            limits=limits,
            sector_size=sector_size,
            path=img.path,
            image_format=img.format,
            image_details=dict(img.details),
            volumes_so_far=len(volumes),
        )
        disks.append(layout)
        volumes.extend(vols)

    members = [v for v in volumes if v.content == "linux_raid_member"]
    arrays: list[Volume] = []
    md_arrays: tuple[MdArrayInfo, ...] = ()
    md_notes: tuple[str, ...] = ()
    if members:
        from virtkit.boot.volume.md import assemble_arrays  # only when a member was seen: start-up time

        md = assemble_arrays(members)
        arrays = [dataclasses.replace(v, content=sniff_content(v.source)) for v in md.volumes]
        md_arrays, md_notes = md.arrays, md.notes
    limits.check("max_volumes", len(volumes) + len(arrays), "volumes found")

    pv_candidates = [v for v in (*volumes, *arrays) if v.content == "LVM2_member"]
    lvs: list[Volume] = []
    groups: tuple[VolumeGroupInfo, ...] = ()
    lvm_notes: tuple[str, ...] = ()
    if pv_candidates:
        from virtkit.boot.volume.lvm import scan_lvm  # only when a PV was seen: start-up time

        scan = scan_lvm(pv_candidates, limits=limits)
        limits.check("max_volumes", len(volumes) + len(arrays) + len(scan.volumes), "volumes found")
        lvs = [dataclasses.replace(v, content=sniff_content(v.source)) for v in scan.volumes]
        groups = scan.groups
        lvm_notes = scan.notes
    return Storage(
        disks=tuple(disks),
        volumes=(*volumes, *lvs, *arrays),
        volume_groups=groups,
        notes=(*md_notes, *lvm_notes),
        md_arrays=md_arrays,
    )


def scan_disk(
    source: ByteSource,
    *,
    index: int,
    limits: Limits,
    sector_size: int | None = None,
    path: str = "",
    image_format: str = "raw",
    image_details: dict[str, object] | None = None,
    volumes_so_far: int = 0,
) -> tuple[DiskLayout, list[Volume]]:
    """One disk: its layout, its disk volume and its partitions (no LVM/MD assembly).

    Args:
        source: the disk's bytes.
        index: the disk's position (``diskN``, GRUB ``hdN``).
        limits: bounds for the tables.
        sector_size: forced logical sector size, or None to detect.
        path, image_format, image_details: copied into the DiskLayout.
        volumes_so_far: volumes already found on earlier disks (for ``max_volumes``).

    Raises:
        CorruptStructure, LimitExceeded: as :func:`discover_volumes`.
    """
    name = f"disk{index}"
    notes: list[str] = []
    sector0 = source.pread(0, 512) if source.size >= 512 else b""
    mbr: MbrTable | None = None
    gpt: GptTable | None = None
    ss = sector_size or 512
    if sector0 and not is_fat_boot_sector(sector0) and probe_mbr(sector0):
        mbr = parse_mbr(source, sector_size=ss, limits=limits, where=name)
        if mbr.protective:
            ss = sector_size or detect_gpt_sector_size(source) or 512
            gpt = parse_gpt(source, sector_size=ss, limits=limits, where=name)
            if mbr.hybrid:
                notes.append("hybrid MBR: the MBR also lists partitions; GRUB and Linux use the GPT, as here")
    elif sector_size is None and detect_gpt_sector_size(source) is not None:
        notes.append("a GPT header is present but there is no protective MBR: ignored, as GRUB and blkid do")

    disk_content = sniff_content(source)
    table: str | None = None
    disk_id: str | None = None
    parts: list[Volume] = []
    if gpt is not None:
        table, disk_id = "gpt", gpt.disk_guid
        notes.extend(gpt.notes)
        parts = _gpt_volumes(source, gpt, index=index, notes=notes, limits=limits, so_far=volumes_so_far)
    elif mbr is not None:
        table, disk_id = "msdos", mbr.disk_id
        notes.extend(mbr.notes)
        parts = _mbr_volumes(source, mbr, ss=ss, index=index, notes=notes, limits=limits, so_far=volumes_so_far)
    if table is not None:
        if disk_content == "iso9660":
            notes.append("hybrid ISO: the disk holds an iso9660 filesystem as well as a partition table")
        else:
            if disk_content in CONTAINER_SIGNATURES:
                notes.append(f"the disk also carries a {disk_content} signature; it was read as a partitioned disk")
            disk_content = table
    disk_vol = Volume(
        name=name,
        kind=VolumeKind.DISK,
        source=source,
        disk=index,
        grub_names=(f"hd{index}",),
        content=disk_content,
    )
    layout = DiskLayout(
        index=index,
        name=name,
        path=path,
        image_format=image_format,
        size=source.size,
        sector_size=ss,
        table=table,
        disk_id=disk_id,
        image_details=dict(image_details or {}),
        notes=tuple(notes),
    )
    return layout, [disk_vol, *parts]


def _window(source: ByteSource, name: str, start: int, size: int, notes: list[str]) -> RangeSource | None:
    """The partition's bytes, clamped to the disk (with a note), or None if it lies past the end."""
    if start >= source.size:
        notes.append(f"{name} starts at {start:#x}, past the end of the disk ({source.size:#x}): ignored")
        return None
    if start + size > source.size:
        notes.append(
            f"{name} ends at {start + size:#x}, past the end of the disk ({source.size:#x}): "
            f"truncated to {source.size - start:#x} bytes"
        )
        size = source.size - start
    return RangeSource(source, start, size, name)


def _mbr_volumes(
    source: ByteSource, mbr: MbrTable, *, ss: int, index: int, notes: list[str], limits: Limits, so_far: int
) -> list[Volume]:
    out: list[Volume] = []
    for p in mbr.partitions:
        name = f"disk{index}p{p.number}"
        window = _window(source, name, p.start_lba * ss, p.sectors * ss, notes)
        if window is None:
            continue
        limits.check("max_volumes", so_far + len(out) + 2, "volumes found")
        out.append(
            Volume(
                name=name,
                kind=VolumeKind.PARTITION,
                source=window,
                disk=index,
                grub_names=() if p.extended else (f"hd{index},msdos{p.number}", f"hd{index},{p.number}"),
                number=p.number,
                scheme="msdos",
                start=p.start_lba * ss,
                type_code=f"0x{p.sys_ind:02x}",
                type_name=p.type_name,
                part_uuid=mbr.part_uuid(p.number),
                bootable=p.bootable,
                content="extended" if p.extended else sniff_content(window),
            )
        )
    return out


def _gpt_volumes(
    source: ByteSource, gpt: GptTable, *, index: int, notes: list[str], limits: Limits, so_far: int
) -> list[Volume]:
    out: list[Volume] = []
    ss = gpt.sector_size
    for p in gpt.partitions:
        name = f"disk{index}p{p.number}"
        window = _window(source, name, p.first_lba * ss, p.sectors * ss, notes)
        if window is None:
            continue
        limits.check("max_volumes", so_far + len(out) + 2, "volumes found")
        out.append(
            Volume(
                name=name,
                kind=VolumeKind.PARTITION,
                source=window,
                disk=index,
                grub_names=(f"hd{index},gpt{p.number}", f"hd{index},{p.number}"),
                number=p.number,
                scheme="gpt",
                start=p.first_lba * ss,
                type_code=p.type_guid,
                type_name=p.type_name,
                part_uuid=p.unique_guid,
                part_label=p.name,
                bootable=p.legacy_bios_bootable,
                content=sniff_content(window),
            )
        )
    return out
