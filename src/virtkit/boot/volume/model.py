"""Plain-data results of volume discovery: disks, partitions, LVM, MD.

``discover_volumes`` returns a :class:`Storage`.  Every place that may hold a
filesystem is a :class:`Volume` with a :class:`~virtkit._streams.ByteSource`,
a stable virtkit name and the names GRUB would give it, so the configuration
stage can resolve ``(hd0,msdos1)``, ``(lvm/vg-root)`` or ``search --fs-uuid``.

Naming (stable; documented in docs/inspect-json.md):

* disks: ``disk0``, ``disk1`` ... in the order the images were given
  (GRUB: ``hd0``, ``hd1``);
* partitions: ``disk0p1`` ... with the table's own numbering: MBR primaries are
  1-4 and logical partitions start at 5, GPT entries are numbered by slot
  (GRUB: ``hd0,msdos1`` / ``hd0,gpt2`` and the bare ``hd0,1``);
* LVM logical volumes: ``VG/LV`` (GRUB: ``lvm/VG-LV`` with ``-`` doubled inside
  names, and ``lvmid/VGUUID/LVUUID``);
* MD arrays: ``md/NAME`` (GRUB: ``md/NAME``, ``mduuid/HEX``); NAME is a 1.x array's
  name without its ``homehost:`` prefix, or ``mdN`` for a 0.90 array (``md/md0``, as
  GRUB 2.06 names it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from virtkit._streams import ByteSource
from virtkit.errors import ImageError

__all__ = [
    "DiskLayout",
    "LogicalVolumeInfo",
    "MdArrayInfo",
    "Storage",
    "Volume",
    "VolumeGroupInfo",
    "VolumeKind",
]


class VolumeKind(enum.Enum):
    DISK = "disk"
    PARTITION = "partition"
    LOGICAL_VOLUME = "lv"
    RAID = "md"


# Contents that are containers, not filesystems: never offered to the fs stage.
CONTAINER_CONTENTS = frozenset({"extended", "LVM2_member", "linux_raid_member", "gpt", "msdos"})


@dataclass(frozen=True)
class Volume:
    """A place that may hold a filesystem (or a container of more volumes).

    Attributes:
        name: virtkit's stable name ("disk0p1", "vg0/root").
        kind: disk, partition, LV or MD array.
        source: the volume's bytes.
        disk: index of the disk it lives on (LVs and arrays: their first member's disk).
        grub_names: GRUB device names, preferred first, without parentheses
            ("hd0,msdos1", "hd0,1").
        number: partition number (1-based; MBR logicals from 5).
        scheme: "msdos" or "gpt" for partitions.
        start: byte offset of a partition on its disk.
        type_code: "0x83" (MBR) or an upper-case GUID (GPT); LVM: the segment type.
        type_name: readable partition type ("Linux filesystem", "EFI System").
        part_uuid: GPT unique partition GUID; MBR: "SIGNATURE-NN" as blkid prints it.
        part_label: GPT partition name.
        bootable: MBR active flag / GPT legacy BIOS bootable attribute.
        content: what the first bytes look like ("ext4", "xfs", "btrfs", "vfat",
            "iso9660", "swap", "LVM2_member", "linux_raid_member", "extended"), or None.
        lv_uuid: for LVs, the LV's UUID.
        vg_name, lv_name: for LVs.
        notes: human notes for inspect ("primary GPT header damaged: used the backup").
    """

    name: str
    kind: VolumeKind
    source: ByteSource
    disk: int
    grub_names: tuple[str, ...] = ()
    number: int | None = None
    scheme: str | None = None
    start: int = 0
    type_code: str = ""
    type_name: str = ""
    part_uuid: str | None = None
    part_label: str | None = None
    bootable: bool = False
    content: str | None = None
    vg_name: str | None = None
    lv_name: str | None = None
    lv_uuid: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.source.size

    @property
    def may_hold_filesystem(self) -> bool:
        """False for containers (extended partitions, PVs, RAID members, tables)."""
        return self.content not in CONTAINER_CONTENTS


@dataclass(frozen=True)
class DiskLayout:
    """One disk: its image and partition table.

    Attributes:
        index: position in the image list (GRUB ``hdN``).
        name: "disk0".
        path: the image path given.
        image_format: "raw" / "qcow2".
        image_details: format facts from the image layer.
        size: virtual size in bytes.
        sector_size: logical sector size used for the table (512 or 4096).
        table: "msdos", "gpt" or None (whole-disk filesystem or empty).
        disk_id: MBR disk signature ("0x1234abcd") or GPT disk GUID.
        notes: warnings ("primary GPT header damaged: used the backup at LBA ...").
    """

    index: int
    name: str
    path: str
    image_format: str
    size: int
    sector_size: int = 512
    table: str | None = None
    disk_id: str | None = None
    image_details: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogicalVolumeInfo:
    """An LV as described by the metadata, whether or not it could be mapped."""

    name: str
    uuid: str
    size: int
    segment_types: tuple[str, ...]
    status: tuple[str, ...]
    readable: bool
    reason: str | None = None  # why it is not readable ("raid1 segments are not supported")


@dataclass(frozen=True)
class VolumeGroupInfo:
    """An LVM volume group found on the disks."""

    name: str
    uuid: str
    extent_size: int
    seqno: int
    pvs: tuple[str, ...]  # volume names of the PVs present ("disk0p2")
    missing_pvs: tuple[str, ...]  # PV uuids named in metadata but not found
    lvs: tuple[LogicalVolumeInfo, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MdArrayInfo:
    """An MD RAID array found on the disks, whether or not it could be assembled.

    Attributes:
        name: virtkit/GRUB name ("md/root", "md/md0" for metadata 0.90).
        uuid: the array UUID as mdadm prints it ("a1b2c3d4:...").
        metadata: superblock version ("0.90", "1.0", "1.1", "1.2").
        level: RAID level as mdadm names it ("raid1", "raid5", "linear").
        raid_disks: members the array should have.
        members: volume names of the members found, by role order.
        size: array size in bytes (0 when unknown).
        readable: a volume was made for it.
        reason: why it is not readable ("raid5 arrays are not supported").
        notes: warnings ("degraded: 1 of 2 members present").
    """

    name: str
    uuid: str
    metadata: str
    level: str
    raid_disks: int
    members: tuple[str, ...]
    size: int
    readable: bool
    reason: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Storage:
    """Everything ``discover_volumes`` found, in GRUB's enumeration order.

    Attributes:
        disks: one layout per image.
        volumes: disks, partitions, LVs and arrays (containers included).
        volume_groups: LVM volume groups.
        notes: warnings that concern no single volume.
        md_arrays: MD RAID arrays (readable ones also appear in ``volumes``).
    """

    disks: tuple[DiskLayout, ...]
    volumes: tuple[Volume, ...]
    volume_groups: tuple[VolumeGroupInfo, ...] = ()
    notes: tuple[str, ...] = ()
    md_arrays: tuple[MdArrayInfo, ...] = ()

    def iter_filesystem_candidates(self) -> Iterator[Volume]:
        """Volumes that may hold a filesystem, in enumeration order."""
        return (v for v in self.volumes if v.may_hold_filesystem)

    def find(self, spec: str) -> Volume:
        """Resolve a volume by virtkit name, partition number, GRUB name or ``vg/lv``.

        ``"1"`` means partition 1 of the first disk that has one.

        Raises:
            ImageError: nothing matches.
        """
        spec_n = spec.strip("()")
        for v in self.volumes:
            if v.name == spec_n or spec_n in v.grub_names:
                return v
        if spec_n.isdigit():
            for v in self.volumes:
                if v.kind is VolumeKind.PARTITION and v.number == int(spec_n):
                    return v
        known = ", ".join(v.name for v in self.volumes)
        raise ImageError(f"no volume {spec!r}; volumes are: {known}")
