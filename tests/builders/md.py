"""Byte builders for Linux MD RAID members (superblocks 0.90 and 1.0/1.1/1.2).

    member = md_member(8 << 20, version="1.2", uuid=UUID, name="host:root", role=0, raid_disks=2,
                       data=b"...")   # array data placed at the data offset

Written from ``include/uapi/linux/raid/md_p.h`` (field offsets) and mdadm's
checksum rule (sum of 32-bit little-endian words, carries folded), so
``mdadm --examine`` accepts the result - the differential tests check that.
"""

from __future__ import annotations

import struct

MD_SB_MAGIC = 0xA92B4EFC
UUID = bytes.fromhex("0123456789abcdef0011223344556677")


def _csum(data: bytes) -> int:
    total = sum(struct.unpack_from("<I", data, i)[0] for i in range(0, len(data) - 3, 4))
    if len(data) % 4 == 2:
        total += struct.unpack_from("<H", data, len(data) - 2)[0]
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def sb1(
    *,
    version: str,
    member_sectors: int,
    uuid: bytes = UUID,
    name: str = "builder:root",
    level: int = 1,
    raid_disks: int = 2,
    dev_number: int = 0,
    roles: list[int] | None = None,
    events: int = 10,
    data_sectors: int | None = None,
    data_offset: int | None = None,
    max_dev: int | None = None,
    feature_map: int = 0,
    csum: int | None = None,
) -> tuple[int, int, bytes]:
    """A 1.x superblock: returns (superblock byte offset, data byte offset, superblock bytes)."""
    if version == "1.0":
        sb_sector = (member_sectors - 16) & ~7
        doff = 0 if data_offset is None else data_offset
        avail = sb_sector - doff
    elif version == "1.1":
        sb_sector = 0
        doff = 2048 if data_offset is None else data_offset
        avail = member_sectors - doff
    else:
        sb_sector = 8
        doff = 2048 if data_offset is None else data_offset
        avail = member_sectors - doff
    size = avail if data_sectors is None else data_sectors
    roles = roles if roles is not None else list(range(raid_disks))
    md = max_dev if max_dev is not None else max(len(roles), 128)
    sb = bytearray(256 + 2 * md)
    struct.pack_into("<IIII", sb, 0, MD_SB_MAGIC, 1, feature_map, 0)
    sb[16:32] = uuid
    sb[32:64] = name.encode().ljust(32, b"\0")[:32]
    struct.pack_into("<QiIQII", sb, 64, 1700000000, level, 0, size, 128 if level != 1 else 0, raid_disks)
    struct.pack_into("<QQQQ", sb, 128, doff, avail, sb_sector, 0)
    struct.pack_into("<II", sb, 160, dev_number, 0)
    sb[168:184] = bytes(range(16))
    struct.pack_into("<QQQ", sb, 192, 1700000000, events, 0xFFFFFFFFFFFFFFFF)
    struct.pack_into("<I", sb, 220, md)
    for i in range(md):
        role = roles[i] if i < len(roles) else 0xFFFF
        struct.pack_into("<H", sb, 256 + 2 * i, role)
    struct.pack_into("<I", sb, 216, _csum(bytes(sb)) if csum is None else csum)
    return sb_sector * 512, doff * 512, bytes(sb)


def sb0(
    *,
    member_sectors: int,
    uuid_words: tuple[int, int, int, int] = (0x01234567, 0x89ABCDEF, 0x00112233, 0x44556677),
    level: int = 1,
    raid_disks: int = 2,
    md_minor: int = 0,
    raid_disk: int = 0,
    events: int = 10,
    size_kib: int | None = None,
    csum: int | None = None,
) -> tuple[int, bytes]:
    """A 0.90 superblock (little-endian): returns (byte offset, 4096 bytes)."""
    sector = (member_sectors & ~127) - 128
    size = sector // 2 if size_kib is None else size_kib
    words = [0] * 1024
    words[0:16] = [
        MD_SB_MAGIC,
        0,
        90,
        0,
        0,
        uuid_words[0],
        1700000000,
        level & 0xFFFFFFFF,
        size,
        raid_disks,
        raid_disks,
        md_minor,
        0,
        uuid_words[1],
        uuid_words[2],
        uuid_words[3],
    ]
    words[32:38] = [1700000000, 1, raid_disks, raid_disks, 0, 0]
    words[39] = events & 0xFFFFFFFF
    words[40] = events >> 32
    for d in range(raid_disks):  # disks[d]: number, major, minor, raid_disk, state (active|sync)
        base = 128 + 32 * d
        words[base : base + 5] = [d, 8, 16 * d, d, 6]
    words[992:997] = [raid_disk, 8, 16 * raid_disk, raid_disk, 6]
    raw = struct.pack("<1024I", *words)
    c = _csum(raw) if csum is None else csum
    raw = raw[: 38 * 4] + struct.pack("<I", c) + raw[39 * 4 :]
    return sector * 512, raw


def md_member(size: int, *, version: str, data: bytes = b"", **kw: object) -> bytearray:
    """A whole member device of ``size`` bytes with a superblock and ``data`` at the data offset."""
    buf = bytearray(size)
    sectors = size // 512
    if version == "0.90":
        off, raw = sb0(member_sectors=sectors, **kw)  # type: ignore[arg-type]
        doff = 0
    else:
        off, doff, raw = sb1(version=version, member_sectors=sectors, **kw)  # type: ignore[arg-type]
    buf[doff : doff + len(data)] = data
    buf[off : off + len(raw)] = raw
    return buf
