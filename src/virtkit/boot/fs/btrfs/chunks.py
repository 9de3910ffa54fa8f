"""btrfs chunks: the logical address space and how it maps onto devices.

References:
    include/uapi/linux/btrfs_tree.h (``btrfs_chunk``, ``btrfs_stripe``,
    ``BTRFS_BLOCK_GROUP_*``), fs/btrfs/volumes.c (``btrfs_map_block`` and
    ``btrfs_raid_array``: stripe arithmetic per profile, devs_min/ncopies/nparity),
    fs/btrfs/tree-checker.c (``btrfs_check_chunk_valid``), fs/btrfs/volumes.c
    (``btrfs_read_sys_array``: the superblock's bootstrap chunk list).

Every tree block and data extent is addressed by a *logical* byte number.  A
chunk maps ``[logical, logical + length)`` onto stripes on devices:

* SINGLE, DUP, RAID1, RAID1C3, RAID1C4: stripe ``i`` is a full copy (mirror ``i``);
* RAID0: ``stripe_len`` units round-robin over the stripes;
* RAID10: RAID0 over groups of ``sub_stripes`` mirrors;
* RAID5/6: data units rotate with the parity; only data is read (no reconstruction).

A read picks the first copy whose device is present; :class:`ChunkMap` callers
retry the next copy when a checksum or bounds check fails.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from virtkit._streams import ByteSource
from virtkit.boot.fs.btrfs.structs import (
    BTRFS_BLOCK_GROUP_DUP,
    BTRFS_BLOCK_GROUP_PROFILE_MASK,
    BTRFS_BLOCK_GROUP_RAID0,
    BTRFS_BLOCK_GROUP_RAID1,
    BTRFS_BLOCK_GROUP_RAID1C3,
    BTRFS_BLOCK_GROUP_RAID1C4,
    BTRFS_BLOCK_GROUP_RAID5,
    BTRFS_BLOCK_GROUP_RAID6,
    BTRFS_BLOCK_GROUP_RAID10,
    BTRFS_BLOCK_GROUP_TYPE_MASK,
    BTRFS_CHUNK,
    BTRFS_CHUNK_ITEM_KEY,
    BTRFS_DISK_KEY,
    BTRFS_STRIPE,
)
from virtkit.errors import CorruptStructure, ImageError, LimitExceeded, VirtkitError
from virtkit.limits import Limits

__all__ = ["Chunk", "ChunkMap", "LogicalSource", "MissingDevice", "Stripe", "parse_chunk", "parse_sys_chunk_array"]

# profile bit -> (name, fixed stripe count or None, minimum stripes)  (volumes.c btrfs_raid_array)
_PROFILES: dict[int, tuple[str, int | None, int]] = {
    0: ("single", None, 1),
    BTRFS_BLOCK_GROUP_RAID0: ("raid0", None, 1),
    BTRFS_BLOCK_GROUP_RAID1: ("raid1", 2, 2),
    BTRFS_BLOCK_GROUP_DUP: ("dup", 2, 2),
    BTRFS_BLOCK_GROUP_RAID10: ("raid10", None, 2),
    BTRFS_BLOCK_GROUP_RAID5: ("raid5", None, 2),
    BTRFS_BLOCK_GROUP_RAID6: ("raid6", None, 3),
    BTRFS_BLOCK_GROUP_RAID1C3: ("raid1c3", 3, 3),
    BTRFS_BLOCK_GROUP_RAID1C4: ("raid1c4", 4, 4),
}
_MIRRORED = BTRFS_BLOCK_GROUP_DUP | BTRFS_BLOCK_GROUP_RAID1 | BTRFS_BLOCK_GROUP_RAID1C3 | BTRFS_BLOCK_GROUP_RAID1C4
_MAX_STRIPE_LEN = 1 << 30  # far above BTRFS_STRIPE_LEN (64 KiB); only guards the arithmetic


@dataclass(frozen=True, slots=True)
class Stripe:
    devid: int
    offset: int
    dev_uuid: bytes


@dataclass(frozen=True, slots=True)
class Chunk:
    """One ``btrfs_chunk`` item: ``length`` logical bytes from ``logical``."""

    logical: int
    length: int
    stripe_len: int
    type: int
    sub_stripes: int
    stripes: tuple[Stripe, ...]

    @property
    def end(self) -> int:
        return self.logical + self.length

    @property
    def profile_bits(self) -> int:
        return self.type & BTRFS_BLOCK_GROUP_PROFILE_MASK

    @property
    def profile(self) -> str:
        return _PROFILES[self.profile_bits][0]

    @property
    def copies(self) -> int:
        """How many independent copies a read can choose from."""
        bits = self.profile_bits
        if bits & _MIRRORED:
            return len(self.stripes)
        if bits & BTRFS_BLOCK_GROUP_RAID10:
            return self.sub_stripes
        return 1

    def map(self, offset: int, length: int, mirror: int) -> list[tuple[Stripe, int, int]]:
        """``[offset, offset+length)`` of this chunk as ``(stripe, physical, length)`` pieces for copy ``mirror``."""
        bits = self.profile_bits
        stripes = self.stripes
        if bits & _MIRRORED or bits == 0:
            s = stripes[mirror]
            return [(s, s.offset + offset, length)]
        out: list[tuple[Stripe, int, int]] = []
        sl = self.stripe_len
        n = len(stripes)
        while length > 0:
            stripe_nr, in_stripe = divmod(offset, sl)
            if bits & BTRFS_BLOCK_GROUP_RAID0:
                row, index = divmod(stripe_nr, n)
            elif bits & BTRFS_BLOCK_GROUP_RAID10:
                factor = n // self.sub_stripes
                row, group = divmod(stripe_nr, factor)
                index = group * self.sub_stripes + mirror
            else:  # RAID5/6: data stripes rotate with the parity (btrfs_map_block)
                nparity = 1 if bits & BTRFS_BLOCK_GROUP_RAID5 else 2
                row, data_index = divmod(stripe_nr, n - nparity)
                index = (row + data_index) % n
            take = min(length, sl - in_stripe)
            s = stripes[index]
            out.append((s, s.offset + row * sl + in_stripe, take))
            offset += take
            length -= take
        return out


def parse_chunk(logical: int, data: bytes, pos: int, *, where: str, item_size: int | None = None) -> tuple[Chunk, int]:
    """Parse a ``btrfs_chunk`` at ``data[pos:]``.

    Args:
        logical: the item key's offset (the chunk's logical start).
        data: the buffer (a leaf item or the sys_chunk_array).
        pos: where the chunk starts in ``data``.
        where: context for errors.
        item_size: for chunk tree items, the item's size (must match the stripe count).

    Returns:
        the chunk and the number of bytes it occupies.

    Raises:
        CorruptStructure: truncated, zero-length, bad stripe_len, more than one profile,
            or a stripe count the profile does not allow.
    """
    what = f"btrfs chunk {logical:#x} on {where}"
    c = BTRFS_CHUNK.parse(data, pos, where=where)
    size = BTRFS_CHUNK.size + c.num_stripes * BTRFS_STRIPE.size
    if item_size is not None and item_size != size:
        raise CorruptStructure(what, f"item size does not match {c.num_stripes} stripes", offset=logical, expected=size, got=item_size)
    if c.num_stripes == 0:
        raise CorruptStructure(what, "no stripes", offset=logical)
    if pos + size > len(data):
        raise CorruptStructure(what, f"{c.num_stripes} stripes do not fit ({len(data) - pos - BTRFS_CHUNK.size} bytes left)", offset=logical)
    if c.length == 0:
        raise CorruptStructure(what, "zero length", offset=logical)
    if logical + c.length > 1 << 64:
        raise CorruptStructure(what, f"length {c.length:#x} wraps the address space", offset=logical)
    if c.stripe_len == 0 or c.stripe_len & (c.stripe_len - 1) or c.stripe_len > _MAX_STRIPE_LEN:
        raise CorruptStructure(what, "bad stripe_len", offset=logical, got=c.stripe_len)
    if not c.type & BTRFS_BLOCK_GROUP_TYPE_MASK:
        raise CorruptStructure(what, "type has no data/metadata/system bit", offset=logical, got=c.type)
    bits = c.type & BTRFS_BLOCK_GROUP_PROFILE_MASK
    if bits not in _PROFILES:
        raise CorruptStructure(what, "more than one RAID profile", offset=logical, got=c.type)
    name, fixed, minimum = _PROFILES[bits]
    n = c.num_stripes
    if (fixed is not None and n != fixed) or n < minimum:
        want = fixed if fixed is not None else f"at least {minimum}"
        raise CorruptStructure(what, f"{name} chunk with {n} stripes", offset=logical, expected=want, got=n)
    if bits == 0 and n != 1:
        raise CorruptStructure(what, "single chunk with several stripes", offset=logical, expected=1, got=n)
    sub = c.sub_stripes
    if bits & BTRFS_BLOCK_GROUP_RAID10 and (sub < 2 or n % sub):
        raise CorruptStructure(what, f"raid10 with {n} stripes in groups of {sub}", offset=logical)
    stripes = tuple(
        Stripe(int(s.devid), int(s.offset), bytes(s.dev_uuid))
        for s in BTRFS_STRIPE.parse_array(data, pos + BTRFS_CHUNK.size, n, where=where)
    )
    return Chunk(int(logical), int(c.length), int(c.stripe_len), int(c.type), int(sub), stripes), size


def parse_sys_chunk_array(array: bytes, *, where: str) -> list[Chunk]:
    """The bootstrap chunks in ``btrfs_super_block.sys_chunk_array`` (key + chunk pairs).

    Raises:
        CorruptStructure: a key that is not a CHUNK_ITEM, or a truncated entry.
    """
    out: list[Chunk] = []
    pos = 0
    while pos < len(array):
        key = BTRFS_DISK_KEY.parse(array, pos, where=f"sys_chunk_array of {where}")
        if key.type != BTRFS_CHUNK_ITEM_KEY:
            raise CorruptStructure(f"btrfs sys_chunk_array on {where}", "entry is not a CHUNK_ITEM", offset=pos, expected=BTRFS_CHUNK_ITEM_KEY, got=key.type)
        pos += BTRFS_DISK_KEY.size
        chunk, size = parse_chunk(key.offset, array, pos, where=f"sys_chunk_array of {where}")
        out.append(chunk)
        pos += size
    return out


class ChunkMap:
    """Logical -> physical translation over the chunks and the devices present.

    Args:
        chunks: every chunk known (sorted and checked for overlaps here).
        devices: devid -> the device's bytes (the devices given; others are missing).
        where: "btrfs on disk0p2".
        fsid: the filesystem UUID, for the "missing device" message.
        limits: bounds (``max_read`` caps one logical read).

    Raises:
        CorruptStructure: overlapping chunks.
    """

    def __init__(self, chunks: Iterable[Chunk], devices: Mapping[int, ByteSource], *, where: str, fsid: str, limits: Limits) -> None:
        self.where = where
        self.fsid = fsid
        self.limits = limits
        self.devices = dict(devices)
        ordered = sorted(chunks, key=lambda c: c.logical)
        for a, b in itertools.pairwise(ordered):
            if b.logical < a.end:
                raise CorruptStructure(f"btrfs chunk tree on {where}", f"chunk {b.logical:#x} overlaps chunk {a.logical:#x}+{a.length:#x}", offset=b.logical)
        self.chunks = ordered
        self._starts = [c.logical for c in ordered]
        self.end = ordered[-1].end if ordered else 0

    def find(self, logical: int) -> Chunk:
        """The chunk holding ``logical``.

        Raises:
            CorruptStructure: no chunk maps it.
        """
        i = bisect.bisect_right(self._starts, logical) - 1
        if i >= 0:
            c = self.chunks[i]
            if logical < c.end:
                return c
        raise CorruptStructure(f"btrfs on {self.where}", "logical address is not in any chunk", offset=logical)

    def copies(self, logical: int) -> int:
        return self.find(logical).copies

    def read(self, logical: int, length: int, *, mirror: int | None = None, bounded: bool = True) -> bytes:
        """Read logical bytes, from copy ``mirror`` or (None) the first copy that reads.

        Args:
            logical: the logical address.
            length: bytes wanted.
            mirror: which copy; None tries each in turn.
            bounded: apply ``max_read`` (lengths taken from metadata); file data
                reads pass False, their callers bound the file size themselves.

        Raises:
            CorruptStructure: unmapped range, a stripe outside its device.
            ImageError: every copy needs a device that was not given.
            LimitExceeded: ``length`` over ``max_read``.
        """
        if bounded and length > self.limits.max_read:
            raise LimitExceeded("max_read", length, self.limits.max_read, f"btrfs logical read at {logical:#x} on {self.where}")
        parts: list[bytes] = []
        pos = logical
        end = logical + length
        while pos < end:
            chunk = self.find(pos)
            take = min(end, chunk.end) - pos
            if mirror is not None:
                parts.append(self._read_copy(chunk, pos, take, mirror))
            else:
                parts.append(self._read_any(chunk, pos, take))
            pos += take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_any(self, chunk: Chunk, logical: int, length: int) -> bytes:
        first: VirtkitError | None = None
        for m in range(chunk.copies):
            try:
                return self._read_copy(chunk, logical, length, m)
            except (CorruptStructure, ImageError) as exc:
                if first is None or (isinstance(first, MissingDevice) and not isinstance(exc, MissingDevice)):
                    first = exc
        assert first is not None
        raise first

    def _read_copy(self, chunk: Chunk, logical: int, length: int, mirror: int) -> bytes:
        if mirror >= chunk.copies:
            raise CorruptStructure(f"btrfs on {self.where}", f"copy {mirror} requested of a {chunk.profile} chunk with {chunk.copies}", offset=logical)
        pieces = chunk.map(logical - chunk.logical, length, mirror)
        out: list[bytes] = []
        for stripe, physical, n in pieces:
            dev = self.devices.get(stripe.devid)
            if dev is None:
                raise MissingDevice(
                    f"btrfs on {self.where}: logical {logical:#x} ({chunk.profile} chunk {chunk.logical:#x}) needs devid "
                    f"{stripe.devid}, which was not given (give every device of filesystem {self.fsid})"
                    + ("; RAID5/6 reconstruction from parity is not supported" if chunk.profile in ("raid5", "raid6") else "")
                )
            if physical + n > dev.size:
                raise CorruptStructure(
                    f"btrfs {chunk.profile} chunk {chunk.logical:#x} stripe on devid {stripe.devid} ({dev.name})",
                    f"physical range {physical:#x}+{n:#x} is beyond the device size {dev.size:#x}",
                    offset=logical,
                )
            out.append(dev.pread(physical, n))
        return out[0] if len(out) == 1 else b"".join(out)


class MissingDevice(ImageError):
    """A stripe lives on a device that was not given."""


class LogicalSource:
    """The filesystem's logical address space as a :class:`ByteSource` (for file data runs).

    Reads try each copy in turn (a missing device or a stripe beyond its device
    falls through to the next mirror).
    """

    def __init__(self, chunks: ChunkMap) -> None:
        self.chunks = chunks
        self.name = f"btrfs logical space on {chunks.where}"
        self.size = chunks.end

    def pread(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise CorruptStructure(self.name, f"read of {length} bytes at {offset:#x} is outside the address space", offset=offset)
        if length == 0:
            return b""
        return self.chunks.read(offset, length, bounded=False)
