"""Content sniffing by magic, and discovery on whole disks (builders only; fixtures elsewhere)."""

from __future__ import annotations

import struct

import pytest

from builders.gpt import LINUX_FS, GptDisk, GptPart
from builders.mbr import DiskImage, Entry, chain_disk, mbr_sector
from builders.storage import discover, images
from virtkit._streams import BytesSource
from virtkit.boot.volume import discover_volumes
from virtkit.boot.volume.sniff import ext_flavour, is_fat_boot_sector, sniff_content
from virtkit.errors import LimitExceeded, UsageError
from virtkit.limits import Limits


def ext_sb(compat: int = 0, incompat: int = 0, ro: int = 0) -> bytes:
    sb = bytearray(0x100)
    sb[0x38:0x3A] = b"\x53\xef"
    struct.pack_into("<III", sb, 0x5C, compat, incompat, ro)
    return bytes(sb)


@pytest.mark.parametrize(
    ("compat", "incompat", "ro", "expected"),
    [
        (0, 0x2, 0x3, "ext2"),  # filetype, sparse_super + large_file
        (0, 0x12, 0x7, "ext2"),  # + meta_bg, btree_dir
        (0x4, 0x2, 0x3, "ext3"),  # has_journal
        (0x4, 0x6, 0x3, "ext3"),  # + recover (a journal needing replay)
        (0x4, 0x2C2, 0x46B, "ext4"),  # extent, 64bit, flex_bg; huge_file, dir_nlink, extra_isize
        (0x4, 0x2, 0x400, "ext4"),  # metadata_csum alone is enough
        (0, 0x40, 0, "ext4"),  # extents without a journal
        (0x4, 0x8, 0, "jbd"),  # an external journal device
    ],
)
def test_ext_flavours_as_blkid_decides(compat, incompat, ro, expected):
    assert ext_flavour(ext_sb(compat, incompat, ro)) == expected


def fat_boot_sector(**overrides) -> bytes:
    b = bytearray(512)
    b[0:3] = b"\xeb\x3c\x90"
    b[3:11] = b"mkfs.fat"
    fields = {"bps": 512, "spc": 4, "reserved": 1, "fats": 2, "media": 0xF8}
    fields.update(overrides)
    struct.pack_into("<HBHB", b, 11, fields["bps"], fields["spc"], fields["reserved"], fields["fats"])
    b[21] = fields["media"]
    b[0x36:0x3E] = b"FAT16   "
    b[510:512] = b"\x55\xaa"
    return bytes(b)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, True),
        ({"bps": 600}, False),
        ({"spc": 3}, False),
        ({"reserved": 0}, False),
        ({"fats": 3}, False),
        ({"media": 0x10}, False),
    ],
    ids=str,
)
def test_fat_boot_sector_checks(overrides, expected):
    assert is_fat_boot_sector(fat_boot_sector(**overrides)) is expected


def at(offset: int, magic: bytes, size: int = 1 << 20) -> bytes:
    b = bytearray(size)
    b[offset : offset + len(magic)] = magic
    return bytes(b)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (bytes(1 << 20), None),
        (b"", None),
        (at(0x10040, b"_BHRfS_M"), "btrfs"),
        (at(0, b"XFSB"), "xfs"),
        (at(0, b"LUKS\xba\xbe"), "crypto_LUKS"),
        (at(0x8001, b"CD001"), "iso9660"),
        (at(4096 - 10, b"SWAPSPACE2"), "swap"),
        (at(65536 - 10, b"SWAP-SPACE"), "swap"),
        (at(4096 - 10, b"S1SUSPEND"), "swsuspend"),
        (at(0, b"hsqs"), "squashfs"),
        (at(3, b"NTFS    "), "ntfs"),
        (at(3, b"EXFAT   "), "exfat"),
        (fat_boot_sector() + bytes(4096), "vfat"),
        (bytes(0x400) + ext_sb(0x4, 0x2C2, 0x46B) + bytes(4096), "ext4"),
        (at(0x10040, b"_BHRfS_M")[:0x10044], None),  # too small to hold the whole magic
    ],
    ids=lambda v: v if isinstance(v, str) or v is None else f"{len(v)}-bytes",
)
def test_sniff_content(raw, expected):
    assert sniff_content(BytesSource(raw, "v")) == expected


def test_whole_disk_filesystem_is_the_candidate():
    raw = bytes(0x400) + ext_sb(0x4, 0x2C2, 0x46B) + bytes(1 << 20)
    s = discover(raw)
    assert [(v.name, v.grub_names, v.content, v.may_hold_filesystem) for v in s.volumes] == [
        ("disk0", ("hd0",), "ext4", True)
    ]
    assert s.disks[0].table is None and s.disks[0].sector_size == 512


def test_a_fat_superfloppy_is_not_a_partition_table():
    raw = fat_boot_sector() + bytes(1 << 20)
    s = discover(raw)
    assert s.disks[0].table is None
    assert [v.content for v in s.volumes] == ["vfat"]


def test_an_empty_mbr_is_a_table_without_partitions():
    raw = mbr_sector([]) + bytes(1 << 20)
    s = discover(raw)
    assert s.disks[0].table == "msdos"
    assert [(v.name, v.content, v.may_hold_filesystem) for v in s.volumes] == [("disk0", "msdos", False)]


def test_partitions_past_the_end_are_clamped_or_dropped_with_notes():
    disk = DiskImage(4096).put(0, mbr_sector([Entry(0x83, 2048, 4096), Entry(0x83, 9000, 10)]))
    s = discover(disk.bytes())
    assert [(v.name, v.size) for v in s.volumes] == [("disk0", 4096 * 512), ("disk0p1", 2048 * 512)]
    assert s.disks[0].notes == (
        "disk0p1 ends at 0x300000, past the end of the disk (0x200000): truncated to 0x100000 bytes",
        "disk0p2 starts at 0x465000, past the end of the disk (0x200000): ignored",
    )


def test_enumeration_order_names_and_grub_names():
    mbr = chain_disk([(3000, 100, 0x83), (4000, 100, 0x82)], primaries=[Entry(0x83, 100, 50, boot=True)], sectors=8192)
    gpt = GptDisk(sectors=4096).add(GptPart(LINUX_FS, 2048, 2100, name="x", slot=2)).build()
    s = discover(mbr, gpt)
    assert [(v.name, v.grub_names) for v in s.volumes] == [
        ("disk0", ("hd0",)),
        ("disk0p1", ("hd0,msdos1", "hd0,1")),
        ("disk0p2", ()),  # the extended partition: GRUB does not name it
        ("disk0p5", ("hd0,msdos5", "hd0,5")),
        ("disk0p6", ("hd0,msdos6", "hd0,6")),
        ("disk1", ("hd1",)),
        ("disk1p3", ("hd1,gpt3", "hd1,3")),
    ]
    p1 = s.volumes[1]
    assert (p1.number, p1.scheme, p1.start, p1.type_code, p1.type_name, p1.part_uuid, p1.bootable) == (
        1,
        "msdos",
        51200,
        "0x83",
        "Linux",
        "5eed1234-01",
        True,
    )
    assert s.volumes[2].content == "extended" and not s.volumes[2].may_hold_filesystem
    g = s.volumes[-1]
    assert (g.scheme, g.type_code, g.type_name, g.part_label) == ("gpt", LINUX_FS, "Linux filesystem", "x")
    assert [d.table for d in s.disks] == ["msdos", "gpt"]
    assert s.find("hd1,3") is g and s.find("disk0p5").number == 5


def test_hybrid_mbr_and_gpt_without_protective_mbr_are_noted():
    hybrid = GptDisk(sectors=4096, pmbr=[Entry(0xEE, 1, 2047), Entry(0x0C, 2048, 100)])
    hybrid.add(GptPart(LINUX_FS, 2048, 2147))
    s = discover(hybrid.build())
    assert s.disks[0].table == "gpt"
    assert s.disks[0].notes == ("hybrid MBR: the MBR also lists partitions; GRUB and Linux use the GPT, as here",)
    bare = bytearray(GptDisk(sectors=4096).add(GptPart(LINUX_FS, 2048, 2147)).build())
    bare[510:512] = b"\0\0"
    s = discover(bytes(bare))
    assert s.disks[0].table is None
    assert s.disks[0].notes == (
        "a GPT header is present but there is no protective MBR: ignored, as GRUB and blkid do",
    )


def test_hybrid_iso_keeps_the_disk_as_a_candidate():
    raw = bytearray(DiskImage(4096).put(0, mbr_sector([Entry(0x17, 0, 4096, boot=True)])).bytes())
    raw[0x8001:0x8006] = b"CD001"
    s = discover(bytes(raw))
    assert (s.volumes[0].name, s.volumes[0].content) == ("disk0", "iso9660")
    assert s.disks[0].notes == ("hybrid ISO: the disk holds an iso9660 filesystem as well as a partition table",)


def test_forced_sector_size():
    d = GptDisk(sectors=1024, sector_size=4096).add(GptPart(LINUX_FS, 256, 511))
    s = discover(d.build())
    assert s.disks[0].sector_size == 4096 and s.volumes[1].start == 256 * 4096
    s = discover(d.build(), sector_size=4096)
    assert s.volumes[1].size == 256 * 4096
    with pytest.raises(UsageError, match="sector size must be 512 or 4096, not 1024"):
        discover(d.build(), sector_size=1024)


def test_max_disks():
    with pytest.raises(LimitExceeded, match="images given: 3 exceeds the max_disks limit of 2"):
        discover_volumes(images(b"", b"", b""), limits=Limits(max_disks=2))


def test_max_volumes():
    raw = chain_disk([(3000 + 10 * i, 5, 0x83) for i in range(20)])
    assert len(discover(raw).volumes) == 22
    with pytest.raises(LimitExceeded, match="volumes found: 11 exceeds the max_volumes limit of 10"):
        discover(raw, limits=Limits(max_volumes=10))


def test_tiny_and_empty_disks():
    for raw in (b"", b"\0" * 100, bytes(512), mbr_sector([Entry(0x83, 1, 1)])):
        s = discover(raw)
        assert s.volumes[0].name == "disk0"
