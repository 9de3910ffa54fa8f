"""The btrfs superblock: the primary copy, its mirrors, and what a device says about itself.

References:
    fs/btrfs/disk-io.c (``btrfs_validate_super``, ``btrfs_read_dev_one_super``,
    ``btrfs_sb_offset``: copy i lives at 64 KiB, 64 MiB, 256 GiB),
    include/uapi/linux/btrfs_tree.h (``btrfs_super_block``, ``btrfs_dev_item``),
    grub-core/fs/btrfs.c (``grub_btrfs_uuid``/``grub_btrfs_label``: how GRUB prints them; facts only).

The superblock checksum covers bytes 32..4096 of the 4 KiB block with the
algorithm ``csum_type`` names.  A primary copy that carries the magic but fails
a check is replaced by the newest valid mirror (and the reader says so in its
notes); a primary without the magic means "not btrfs".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from virtkit._streams import ByteSource
from virtkit.boot.fs.btrfs.checksum import CSUM_NAMES, CSUM_SIZES, csum_function
from virtkit.boot.fs.btrfs.structs import (
    BTRFS_CSUM_SIZE,
    BTRFS_DEV_ITEM,
    BTRFS_FEATURE_INCOMPAT_METADATA_UUID,
    BTRFS_MAGIC,
    BTRFS_SUPER_BLOCK,
    BTRFS_SUPER_INFO_OFFSET,
    BTRFS_SUPER_INFO_SIZE,
    BTRFS_SUPER_MIRROR_MAX,
    BTRFS_SUPER_MIRROR_SHIFT,
    BTRFS_SYSTEM_CHUNK_ARRAY_SIZE,
    UNREADABLE_INCOMPAT,
    format_uuid,
)
from virtkit.errors import CorruptStructure, NotThisFormat, UnsupportedFeature, VirtkitError

__all__ = ["Superblock", "device_info", "parse_superblock", "read_superblock", "superblock_offsets"]

_MAGIC_OFFSET = 0x40  # offsetof(struct btrfs_super_block, magic)


def superblock_offsets() -> list[int]:
    """Byte offsets of the superblock copies: 64 KiB, 64 MiB, 256 GiB (``btrfs_sb_offset``)."""
    out = [BTRFS_SUPER_INFO_OFFSET]
    for i in range(1, BTRFS_SUPER_MIRROR_MAX):
        out.append((16 * 1024) << (BTRFS_SUPER_MIRROR_SHIFT * i))
    return out


@dataclass(frozen=True)
class Superblock:
    """A validated superblock.

    Attributes:
        fields: the parsed ``btrfs_super_block`` (kernel field names).
        dev_item: the parsed embedded ``btrfs_dev_item`` of the device it was read from.
        offset: where this copy was read.
        raw: the 4 KiB block.
    """

    fields: Any
    dev_item: Any
    offset: int
    raw: bytes

    @property
    def fsid(self) -> bytes:
        return bytes(self.fields.fsid)

    @property
    def metadata_fsid(self) -> bytes:
        """The fsid tree block headers carry (``metadata_uuid`` when that feature is on)."""
        if self.fields.incompat_flags & BTRFS_FEATURE_INCOMPAT_METADATA_UUID:
            return bytes(self.fields.metadata_uuid)
        return self.fsid

    @property
    def uuid(self) -> str:
        return format_uuid(self.fsid)

    @property
    def label(self) -> str:
        raw = bytes(self.fields.label)
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    @property
    def generation(self) -> int:
        return int(self.fields.generation)

    @property
    def nodesize(self) -> int:
        return int(self.fields.nodesize)

    @property
    def sectorsize(self) -> int:
        return int(self.fields.sectorsize)

    @property
    def csum_type(self) -> int:
        return int(self.fields.csum_type)

    @property
    def devid(self) -> int:
        return int(self.dev_item.devid)

    @property
    def sys_chunk_array(self) -> bytes:
        return bytes(self.fields.sys_chunk_array[: self.fields.sys_chunk_array_size])


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def parse_superblock(raw: bytes, *, offset: int, where: str) -> Superblock:
    """Parse and validate one superblock copy.

    Args:
        raw: the 4 KiB block.
        offset: where it was read (the ``bytenr`` field must say the same).
        where: "btrfs on disk0p2" for messages.

    Returns:
        the validated superblock.

    Raises:
        NotThisFormat: no btrfs magic.
        CorruptStructure: a bad checksum, field or size.
        UnsupportedFeature: an unknown checksum type or a layout-changing incompat feature.
    """
    what = f"btrfs superblock on {where}"
    sb = BTRFS_SUPER_BLOCK.parse(raw, 0, where=where)
    if sb.magic != BTRFS_MAGIC:
        raise NotThisFormat(f"no btrfs magic at {offset + _MAGIC_OFFSET:#x}")
    if sb.csum_type not in CSUM_NAMES:
        raise UnsupportedFeature(f"{what} at {offset:#x}: unknown checksum type {sb.csum_type}")
    func = csum_function(sb.csum_type, what)
    size = CSUM_SIZES[sb.csum_type]
    want = func(memoryview(raw)[BTRFS_CSUM_SIZE:BTRFS_SUPER_INFO_SIZE])
    if bytes(sb.csum[:size]) != want:
        raise CorruptStructure(
            what,
            f"{CSUM_NAMES[sb.csum_type]} checksum mismatch",
            offset=offset,
            expected="0x" + want.hex(),
            got="0x" + bytes(sb.csum[:size]).hex(),
        )
    if sb.bytenr != offset:
        raise CorruptStructure(what, "bytenr field does not match the copy's location", offset=offset, expected=offset, got=sb.bytenr)
    if not _power_of_two(sb.sectorsize) or not 512 <= sb.sectorsize <= 65536:
        raise CorruptStructure(what, "bad sectorsize", offset=offset, got=sb.sectorsize)
    if not _power_of_two(sb.nodesize) or not sb.sectorsize <= sb.nodesize <= 65536:
        raise CorruptStructure(what, "bad nodesize", offset=offset, got=sb.nodesize)
    if sb.sys_chunk_array_size > BTRFS_SYSTEM_CHUNK_ARRAY_SIZE:
        raise CorruptStructure(what, "sys_chunk_array_size too large", offset=offset, expected=BTRFS_SYSTEM_CHUNK_ARRAY_SIZE, got=sb.sys_chunk_array_size)
    for name in ("root", "chunk_root"):
        value = getattr(sb, name)
        if value == 0 or value % sb.sectorsize:
            raise CorruptStructure(what, f"{name} {value:#x} is not a sector-aligned address", offset=offset)
    if sb.num_devices == 0:
        raise CorruptStructure(what, "num_devices is 0", offset=offset)
    for bit, name in UNREADABLE_INCOMPAT.items():
        if sb.incompat_flags & bit:
            raise UnsupportedFeature(f"{what}: incompat feature {name} is not supported")
    dev = BTRFS_DEV_ITEM.parse(bytes(sb.dev_item), 0, where=where)
    return Superblock(fields=sb, dev_item=dev, offset=offset, raw=bytes(raw[:BTRFS_SUPER_INFO_SIZE]))


def read_superblock(source: ByteSource, *, notes: list[str] | None = None) -> Superblock:
    """Read the primary superblock of ``source``, falling back to a valid mirror.

    Args:
        source: the device.
        notes: if given, receives a line when a mirror had to be used.

    Returns:
        the primary superblock when it is valid, else the valid mirror with the
        highest generation.

    Raises:
        NotThisFormat: the device is too small or the primary has no btrfs magic.
        CorruptStructure, UnsupportedFeature: the primary is damaged and no mirror is valid
            (the primary's error is raised).
    """
    where = source.name
    primary = BTRFS_SUPER_INFO_OFFSET
    if source.size < primary + BTRFS_SUPER_INFO_SIZE:
        raise NotThisFormat(f"{source.size} bytes is too small for a btrfs superblock at {primary:#x}")
    raw = source.pread(primary, BTRFS_SUPER_INFO_SIZE)
    if raw[_MAGIC_OFFSET : _MAGIC_OFFSET + 8] != BTRFS_MAGIC:
        raise NotThisFormat(f"no btrfs magic at {primary + _MAGIC_OFFSET:#x}")
    try:
        return parse_superblock(raw, offset=primary, where=where)
    except (CorruptStructure, UnsupportedFeature) as exc:
        first_error: VirtkitError = exc
    best: Superblock | None = None
    for off in superblock_offsets()[1:]:
        if off + BTRFS_SUPER_INFO_SIZE > source.size:
            continue
        try:
            sb = parse_superblock(source.pread(off, BTRFS_SUPER_INFO_SIZE), offset=off, where=where)
        except VirtkitError:
            continue
        if best is None or sb.generation > best.generation:
            best = sb
    if best is None:
        raise first_error
    if notes is not None:
        notes.append(f"primary superblock unusable ({first_error}); used the mirror at {best.offset:#x}")
    return best


def device_info(source: ByteSource) -> tuple[str, int, int] | None:
    """``(fsid, devid, num_devices)`` of a btrfs device, or None if ``source`` is not one.

    Cheap (one 4 KiB read when the primary superblock is good) and never raises:
    the pipeline calls it on every volume to group the devices of a filesystem.
    """
    try:
        sb = read_superblock(source)
    except VirtkitError:
        return None
    return sb.uuid, sb.devid, int(sb.fields.num_devices)
