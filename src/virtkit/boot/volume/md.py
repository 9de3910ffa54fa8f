"""Linux MD RAID members: superblocks 0.90 and 1.x, and RAID1 arrays read through one member.

Where the superblock lives on a member (sizes in 512-byte sectors, N = member size)::

    0.90   at ((N & ~127) - 128)          4 KiB, host-endian (little-endian here)
    1.0    at ((N - 16) & ~7)             near the end; data starts at 0
    1.1    at 0                           data after it (data_offset)
    1.2    at 8 (4 KiB)                   data after it (data_offset)

A RAID1 member holds a full copy of the array's data at ``data_offset``
(0 for 0.90 and 1.0), so the array is exposed as a window of one member:
the in-sync member with the most events.  Other levels are detected and
reported as unsupported; the members stay containers (never offered to the
filesystem stage, since a 0.90/1.0 RAID1 member would otherwise also look
like the filesystem it mirrors).

GRUB names an array ``md/NAME`` (the 1.x ``set_name`` with any ``homehost:``
prefix stripped; ``md/mdN`` for 0.90, from ``md_minor``) and
``mduuid/HEX``, the 16 UUID bytes in hex (for 0.90 each of the four
``set_uuid`` words printed big-endian).  mdadm prints the same hex as
four ``:``-separated groups.

References:
    - Linux ``include/uapi/linux/raid/md_p.h`` (``mdp_superblock_s``,
      ``mdp_superblock_1``, MD_SB_MAGIC, MD_NEW_SIZE_SECTORS).
    - mdadm ``super0.c``/``super1.c`` (checksums, 1.x locations, the UUID text);
      read for facts.
    - GRUB ``grub-core/disk/mdraid_linux.c``, ``mdraid1x_linux.c``, ``diskfilter.c``
      (names, homehost stripping, ``mduuid/``); read for facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from virtkit._binstruct import Record
from virtkit._streams import ByteSource, RangeSource
from virtkit.boot.volume.model import MdArrayInfo, Volume, VolumeKind
from virtkit.errors import CorruptStructure

__all__ = ["MdScan", "MdSuperblock", "assemble_arrays", "find_superblock", "md_level_name"]

MD_SB_MAGIC = 0xA92B4EFC  # md_p.h
MD_RESERVED_SECTORS = 128  # md_p.h: MD_RESERVED_BYTES / 512 (64 KiB)
MD_SB_BYTES = 4096  # md_p.h: size of a 0.90 superblock
MD_SB1_SIZE = 256  # md_p.h: sizeof(struct mdp_superblock_1) without dev_roles
MD_SB1_MAX_DEV = (MD_SB_BYTES - MD_SB1_SIZE) // 2  # dev_roles must fit in the 4 KiB superblock block
MD_DISK_FAULTY = 0  # md_p.h: bit numbers of mdp_disk_t.state
MD_DISK_ACTIVE = 1
MD_DISK_SYNC = 2
MD_FEATURE_RESHAPE_ACTIVE = 4  # md_p.h
MD_DISK_ROLE_SPARE = 0xFFFF  # md_p.h
MD_DISK_ROLE_FAULTY = 0xFFFE
MD_DISK_ROLE_JOURNAL = 0xFFFD
LEVEL_NAMES = {
    -1000000: "container",
    -5: "faulty",
    -4: "multipath",
    -1: "linear",
    0: "raid0",
    1: "raid1",
    4: "raid4",
    5: "raid5",
    6: "raid6",
    10: "raid10",
}

# md_p.h struct mdp_superblock_s, words 0-45 and 64-65 (the rest is not needed).
SB0_HEAD = Record(
    "MD v0 superblock",
    "<",
    [
        ("md_magic", "I"),
        ("major_version", "I"),
        ("minor_version", "I"),
        ("patch_version", "I"),
        ("gvalid_words", "I"),
        ("set_uuid0", "I"),
        ("ctime", "I"),
        ("level", "i"),
        ("size", "I"),  # KiB used on each member
        ("nr_disks", "I"),
        ("raid_disks", "I"),
        ("md_minor", "I"),
        ("not_persistent", "I"),
        ("set_uuid1", "I"),
        ("set_uuid2", "I"),
        ("set_uuid3", "I"),
        ("gstate_creserved", "64s"),
        ("utime", "I"),
        ("state", "I"),
        ("active_disks", "I"),
        ("working_disks", "I"),
        ("failed_disks", "I"),
        ("spare_disks", "I"),
        ("sb_csum", "I"),
        ("events_lo", "I"),
        ("events_hi", "I"),
    ],
)
SB0_LAYOUT_OFFSET = 64 * 4  # md_p.h: MD_SB_PERSONALITY_OFFSET words
SB0_THIS_DISK_OFFSET = 992 * 4  # md_p.h: MD_SB_DESCRIPTOR_OFFSET words
SB0_DISK = Record(
    "MD v0 disk descriptor", "<", [("number", "I"), ("major", "I"), ("minor", "I"), ("raid_disk", "I"), ("state", "I")]
)

# md_p.h struct mdp_superblock_1 (256 bytes; dev_roles follow).
SB1 = Record(
    "MD v1 superblock",
    "<",
    [
        ("magic", "I"),
        ("major_version", "I"),
        ("feature_map", "I"),
        ("pad0", "I"),
        ("set_uuid", "16s"),
        ("set_name", "32s"),
        ("ctime", "Q"),
        ("level", "i"),
        ("layout", "I"),
        ("size", "Q"),  # sectors used on each member
        ("chunksize", "I"),
        ("raid_disks", "I"),
        ("bitmap_offset", "I"),
        ("new_level", "I"),
        ("reshape_position", "Q"),
        ("delta_disks", "I"),
        ("new_layout", "I"),
        ("new_chunk", "I"),
        ("new_offset", "I"),
        ("data_offset", "Q"),
        ("data_size", "Q"),
        ("super_offset", "Q"),
        ("recovery_offset", "Q"),
        ("dev_number", "I"),
        ("cnt_corrected_read", "I"),
        ("device_uuid", "16s"),
        ("devflags", "B"),
        ("bblog_shift", "B"),
        ("bblog_size", "H"),
        ("bblog_offset", "I"),
        ("utime", "Q"),
        ("events", "Q"),
        ("resync_offset", "Q"),
        ("sb_csum", "I"),
        ("max_dev", "I"),
        ("pad3", "32s"),
    ],
)


def md_level_name(level: int) -> str:
    """mdadm's name for a RAID level number ("raid1", "linear", "level 42")."""
    return LEVEL_NAMES.get(level, f"level {level}")


@dataclass(frozen=True)
class MdSuperblock:
    """What one member's superblock says.

    Attributes:
        version: "0.90", "1.0", "1.1" or "1.2".
        offset: byte offset of the superblock on the member.
        uuid: the 16 array-UUID bytes in GRUB's order (``mduuid/`` is their hex).
        name: 1.x ``set_name`` as stored ("host:root"), None for 0.90.
        md_minor: 0.90 preferred minor (``md0``), None for 1.x.
        level: RAID level number.
        raid_disks: members of a complete array.
        role: this member's slot, or None for a spare/faulty/journal device.
        events: the event counter (the freshest member has the most).
        data_offset: byte offset of the data area on the member.
        data_size: bytes of array data on each member.
        checksum_ok: the superblock checksum matches.
        reshaping: a reshape is in progress (1.x feature bit).
    """

    version: str
    offset: int
    uuid: bytes
    name: str | None
    md_minor: int | None
    level: int
    raid_disks: int
    role: int | None
    events: int
    data_offset: int
    data_size: int
    checksum_ok: bool
    reshaping: bool = False

    @property
    def uuid_hex(self) -> str:
        return self.uuid.hex()

    @property
    def uuid_mdadm(self) -> str:
        """The UUID as mdadm prints it ("xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx")."""
        h = self.uuid_hex
        return ":".join(h[i : i + 8] for i in range(0, 32, 8))

    @property
    def array_name(self) -> str:
        """The GRUB/virtkit name: ``md/NAME`` (homehost stripped) or ``md/mdN``."""
        if self.name is None:
            return f"md/md{self.md_minor}"
        short = self.name.split(":", 1)[1] if ":" in self.name else self.name
        return f"md/{short}" if short else f"md/{self.uuid_hex}"


def _fold_csum(data: bytes) -> int:
    """mdadm's checksum: the sum of little-endian 32-bit words, carries folded once."""
    total = sum(int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data) - 3, 4))
    if len(data) % 4 == 2:
        total += int.from_bytes(data[-2:], "little")
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def _sb1_at(src: ByteSource, version: str, sector: int) -> MdSuperblock | None:
    offset = sector * 512
    if offset < 0 or offset + MD_SB1_SIZE > src.size:
        return None
    head = src.pread(offset, MD_SB1_SIZE)
    sb = SB1.parse(head)
    if sb.magic != MD_SB_MAGIC or sb.major_version != 1 or sb.super_offset != sector:
        return None
    if sb.max_dev > MD_SB1_MAX_DEV or offset + MD_SB1_SIZE + 2 * sb.max_dev > src.size:
        return None
    full = head + src.pread(offset + MD_SB1_SIZE, 2 * sb.max_dev)
    ok = _fold_csum(full[:216] + b"\0\0\0\0" + full[220:]) == sb.sb_csum
    role: int | None = None
    if sb.dev_number < sb.max_dev:
        r = int.from_bytes(full[MD_SB1_SIZE + 2 * sb.dev_number : MD_SB1_SIZE + 2 * sb.dev_number + 2], "little")
        if r not in (MD_DISK_ROLE_SPARE, MD_DISK_ROLE_FAULTY, MD_DISK_ROLE_JOURNAL):
            role = r
    return MdSuperblock(
        version=version,
        offset=offset,
        uuid=bytes(sb.set_uuid),
        name=sb.set_name.split(b"\0", 1)[0].decode("utf-8", "replace"),
        md_minor=None,
        level=sb.level,
        raid_disks=sb.raid_disks,
        role=role,
        events=sb.events,
        data_offset=sb.data_offset * 512,
        data_size=sb.size * 512,
        checksum_ok=ok,
        reshaping=bool(sb.feature_map & MD_FEATURE_RESHAPE_ACTIVE),
    )


def _sb0(src: ByteSource) -> MdSuperblock | None:
    sectors = src.size // 512
    sector = (sectors & ~(MD_RESERVED_SECTORS - 1)) - MD_RESERVED_SECTORS
    if sector <= 0:
        return None
    offset = sector * 512
    raw = src.pread(offset, MD_SB_BYTES)
    sb = SB0_HEAD.parse(raw)
    if sb.md_magic != MD_SB_MAGIC or sb.major_version != 0 or sb.minor_version != 90:
        return None
    ok = _fold_csum(raw[: 38 * 4] + b"\0\0\0\0" + raw[39 * 4 :]) == sb.sb_csum
    this = SB0_DISK.parse(raw, SB0_THIS_DISK_OFFSET)
    in_sync = this.state & (1 << MD_DISK_ACTIVE) and this.state & (1 << MD_DISK_SYNC)
    role = this.raid_disk if in_sync and not this.state & (1 << MD_DISK_FAULTY) else None
    uuid = b"".join(w.to_bytes(4, "big") for w in (sb.set_uuid0, sb.set_uuid1, sb.set_uuid2, sb.set_uuid3))
    data_size = sb.size * 1024 if sb.size else offset
    return MdSuperblock(
        version="0.90",
        offset=offset,
        uuid=uuid,
        name=None,
        md_minor=sb.md_minor,
        level=sb.level,
        raid_disks=sb.raid_disks,
        role=role,
        events=(sb.events_hi << 32) | sb.events_lo,
        data_offset=0,
        data_size=data_size,
        checksum_ok=ok,
    )


def find_superblock(src: ByteSource) -> MdSuperblock | None:
    """The MD superblock of ``src`` (1.2, 1.1, 1.0, then 0.90), or None.

    A superblock counts when its magic and version match and (1.x) it records
    its own position; the checksum is reported, not required.
    """
    sectors = src.size // 512
    for version, sector in (("1.2", 8), ("1.1", 0), ("1.0", (sectors - 16) & ~7)):
        if sector < 0:
            continue
        sb = _sb1_at(src, version, sector)
        if sb is not None:
            return sb
    return _sb0(src)


@dataclass(frozen=True)
class MdScan:
    """Arrays found: readable ones as volumes (content not yet sniffed), all as infos."""

    volumes: tuple[Volume, ...]
    arrays: tuple[MdArrayInfo, ...]
    notes: tuple[str, ...]


def assemble_arrays(members: Sequence[Volume]) -> MdScan:
    """Group RAID members by array UUID and expose each RAID1 array through one member.

    Args:
        members: volumes whose content is ``linux_raid_member``, in enumeration order.

    Returns:
        RAID1 arrays as volumes; every array as an :class:`MdArrayInfo`; notes.

    Raises:
        CorruptStructure: a superblock whose data area lies outside its member.
    """
    notes: list[str] = []
    groups: dict[bytes, list[tuple[Volume, MdSuperblock]]] = {}
    for vol in members:
        sb = find_superblock(vol.source)
        if sb is None:
            continue
        if not sb.checksum_ok:
            notes.append(f"{vol.name}: MD {sb.version} superblock at {sb.offset:#x} has a bad checksum; member ignored")
            continue
        groups.setdefault(sb.uuid, []).append((vol, sb))
    volumes: list[Volume] = []
    infos: list[MdArrayInfo] = []
    for group in groups.values():
        volume, info = _assemble(group)
        infos.append(info)
        if volume is not None:
            volumes.append(volume)
    return MdScan(tuple(volumes), tuple(infos), tuple(notes))


def _assemble(group: list[tuple[Volume, MdSuperblock]]) -> tuple[Volume | None, MdArrayInfo]:
    freshest = max(sb.events for _, sb in group)
    active = sorted(
        ((v, sb) for v, sb in group if sb.role is not None and sb.events == freshest),
        key=lambda m: m[1].role or 0,
    )
    ref = (active or group)[0][1]
    name = ref.array_name
    level = md_level_name(ref.level)
    member_names = tuple(v.name for v, _ in (active or group))
    notes: list[str] = []
    stale = [v.name for v, sb in group if sb.events != freshest]
    if stale:
        notes.append(f"members with old event counts ignored: {', '.join(stale)}")
    if len({sb.role for _, sb in active}) < ref.raid_disks:
        notes.append(f"degraded: {len({sb.role for _, sb in active})} of {ref.raid_disks} members present")
    size = ref.data_size if ref.level == 1 else 0

    def info(readable: bool, reason: str | None) -> MdArrayInfo:
        return MdArrayInfo(
            name=name,
            uuid=ref.uuid_mdadm,
            metadata=ref.version,
            level=level,
            raid_disks=ref.raid_disks,
            members=member_names,
            size=size,
            readable=readable,
            reason=reason,
            notes=tuple(notes),
        )

    if ref.level != 1:
        return None, info(False, f"array {name}: {level} arrays are not supported (virtkit reads RAID1 only)")
    if not active:
        return None, info(False, f"array {name}: no in-sync member found")
    if ref.reshaping:
        return None, info(False, f"array {name}: a reshape is in progress")
    vol, sb = active[0]
    if sb.data_offset + sb.data_size > vol.source.size or sb.data_size == 0:
        raise CorruptStructure(
            f"MD {sb.version} superblock on {vol.name}",
            f"data area {sb.data_offset:#x}+{sb.data_size:#x} lies outside the member (size {vol.source.size:#x})",
            offset=sb.offset,
        )
    source = RangeSource(vol.source, sb.data_offset, sb.data_size, name)
    volume = Volume(
        name=name,
        kind=VolumeKind.RAID,
        source=source,
        disk=vol.disk,
        grub_names=(name, f"mduuid/{sb.uuid_hex}"),
        type_code=level,
        type_name=f"MD {level} array (metadata {sb.version})",
        notes=tuple(notes),
    )
    return volume, info(True, None)
