"""MD RAID members (tests/builders/md.py): detection of every superblock version, RAID1 arrays."""

from __future__ import annotations

import random

import pytest

from builders.lvm import PV_UUID, LvSpec, PvImage, PvSpec, Seg, vg_text
from builders.md import UUID, md_member
from builders.storage import discover
from virtkit._streams import BytesSource
from virtkit.boot.volume.md import find_superblock
from virtkit.errors import CorruptStructure

MiB = 1 << 20
DATA = random.Random(7).randbytes(MiB)


def member(version: str, role: int = 0, **kw) -> bytes:
    if version == "0.90":
        kw.setdefault("raid_disk", role)
    else:
        kw.setdefault("dev_number", role)
        kw.setdefault("name", "builder:root")
    return bytes(md_member(8 * MiB, version=version, data=kw.pop("data", DATA), **kw))


@pytest.mark.parametrize(
    ("version", "offset", "data_offset", "data_size"),
    [
        ("1.2", 4096, MiB, 7 * MiB),
        ("1.1", 0, MiB, 7 * MiB),
        ("1.0", 8 * MiB - 8192, 0, 8 * MiB - 8192),
        ("0.90", 8 * MiB - 65536, 0, 8 * MiB - 65536),
    ],
)
def test_superblock_versions(version, offset, data_offset, data_size):
    sb = find_superblock(BytesSource(member(version), "m"))
    assert sb is not None
    assert (sb.version, sb.offset, sb.data_offset, sb.data_size) == (version, offset, data_offset, data_size)
    assert sb.checksum_ok and sb.level == 1 and sb.raid_disks == 2 and sb.role == 0 and sb.events == 10
    assert sb.uuid == UUID
    assert sb.uuid_mdadm == "01234567:89abcdef:00112233:44556677"
    assert sb.array_name == ("md/md0" if version == "0.90" else "md/root")


@pytest.mark.parametrize("version", ["1.2", "1.1", "1.0", "0.90"])
def test_raid1_pair_is_one_readable_array(version):
    s = discover(member(version, 0), member(version, 1))
    names = [(v.name, v.kind.value, v.content) for v in s.volumes]
    name = "md/md0" if version == "0.90" else "md/root"
    assert names == [("disk0", "disk", "linux_raid_member"), ("disk1", "disk", "linux_raid_member"), (name, "md", None)]
    arr = s.volumes[-1]
    assert arr.grub_names == (name, "mduuid/0123456789abcdef0011223344556677")
    assert arr.source.pread(0, MiB) == DATA
    assert (arr.type_code, arr.type_name) == ("raid1", f"MD raid1 array (metadata {version})")
    (info,) = s.md_arrays
    assert (info.name, info.uuid, info.metadata, info.level, info.raid_disks, info.members, info.readable) == (
        name,
        "01234567:89abcdef:00112233:44556677",
        version,
        "raid1",
        2,
        ("disk0", "disk1"),
        True,
    )
    assert info.notes == ()


def test_degraded_array_is_readable_with_a_note():
    s = discover(member("1.2", 1))
    assert s.volumes[-1].source.pread(0, 100) == DATA[:100]
    assert s.md_arrays[0].notes == ("degraded: 1 of 2 members present",)


def test_the_member_with_the_most_events_wins():
    fresh = member("1.2", 1, events=12, data=b"new" * 100)
    stale = member("1.2", 0, events=9, data=b"old" * 100)
    s = discover(stale, fresh)
    assert s.volumes[-1].source.pread(0, 3) == b"new"
    assert s.md_arrays[0].members == ("disk1",)
    assert s.md_arrays[0].notes == ("members with old event counts ignored: disk0", "degraded: 1 of 2 members present")


def test_other_levels_are_detected_and_refused():
    s = discover(member("1.2", 0, level=5, raid_disks=3), member("1.2", 1, level=5, raid_disks=3))
    assert [v.name for v in s.volumes] == ["disk0", "disk1"]
    (info,) = s.md_arrays
    assert (info.level, info.readable, info.size) == ("raid5", False, 0)
    assert info.reason == "array md/root: raid5 arrays are not supported (virtkit reads RAID1 only)"


def test_a_bad_checksum_member_is_ignored_with_a_note():
    s = discover(member("1.2", 0, csum=1), member("1.2", 1))
    assert s.notes == ("disk0: MD 1.2 superblock at 0x1000 has a bad checksum; member ignored",)
    assert s.md_arrays[0].members == ("disk1",)


def test_spare_only_array_is_unreadable():
    s = discover(member("1.2", 0, roles=[0xFFFF, 1]))
    assert s.md_arrays[0].reason == "array md/root: no in-sync member found"


def test_data_area_outside_the_member_is_corrupt():
    with pytest.raises(
        CorruptStructure, match=r"MD 1.2 superblock on disk0 at 0x1000: data area 0x100000\+0x40000000 lies outside"
    ):
        discover(member("1.2", 0, data_sectors=1 << 21))


@pytest.mark.parametrize("max_dev", [1921, 1 << 31])
def test_absurd_max_dev_is_not_a_superblock(max_dev):
    raw = bytearray(member("1.2"))
    raw[4096 + 220 : 4096 + 224] = max_dev.to_bytes(4, "little")
    assert find_superblock(BytesSource(bytes(raw), "m")) is None


def test_homehost_is_stripped_and_a_nameless_array_uses_its_uuid():
    assert find_superblock(BytesSource(member("1.2", name="root"), "m")).array_name == "md/root"
    assert find_superblock(BytesSource(member("1.2", name="host:boot:x"), "m")).array_name == "md/boot:x"
    assert find_superblock(BytesSource(member("1.2", name=""), "m")).array_name == "md/0123456789abcdef0011223344556677"


def test_lvm_on_a_raid1_array():
    text = vg_text("vg", pvs=[PvSpec("pv0", PV_UUID, pe_count=1)], lvs=[LvSpec("lv", [Seg(0, 1, [("pv0", 0)])])])
    pv = bytes(PvImage(size=7 * MiB, pv_uuid=PV_UUID, text=text.encode()).build())
    s = discover(member("1.2", 0, data=pv), member("1.2", 1, data=pv))
    assert [(v.name, v.content) for v in s.volumes] == [
        ("disk0", "linux_raid_member"),
        ("disk1", "linux_raid_member"),
        ("vg/lv", None),
        ("md/root", "LVM2_member"),
    ]
    assert s.volume_groups[0].pvs == ("md/root",)


def test_a_raid1_member_with_a_filesystem_is_not_offered_as_one():
    # metadata 1.0: the data (here an ext4 magic) starts at 0, yet the member is a container.
    fs = bytearray(MiB)
    fs[0x438:0x43A] = b"\x53\xef"
    s = discover(member("1.0", 0, data=bytes(fs)), member("1.0", 1, data=bytes(fs)))
    assert [(v.name, v.content, v.may_hold_filesystem) for v in s.volumes] == [
        ("disk0", "linux_raid_member", False),
        ("disk1", "linux_raid_member", False),
        ("md/root", "ext2", True),
    ]
