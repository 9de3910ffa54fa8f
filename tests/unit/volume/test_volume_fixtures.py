"""Volume discovery on disks made by real tools (tests/tools/make_volume_fixtures.sh), exact values.

Every volume that holds a filesystem is checked byte for byte against
SHA256SUMS, the hashes of the files the fixture script wrote into it (via
sfdisk's/LVM's own idea of where the volume lives), so a wrong offset, a
wrong stripe order or a wrong segment join fails here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from helpers import fixture_path
from virtkit._streams import iter_chunks
from virtkit.boot.pipeline import open_guest
from virtkit.limits import Limits

DATA = Path(__file__).resolve().parents[2] / "data" / "volume"
SUMS = {
    name: digest
    for digest, name in (line.split("  ", 1) for line in (DATA / "SHA256SUMS").read_text().splitlines() if line)
}


def guest(*names: str):
    return open_guest([str(fixture_path(f"volume/{n}.gz")) for n in names], limits=Limits())


def table(storage) -> list[tuple]:
    return [
        (v.name, v.grub_names, v.start, v.size, v.type_code, v.part_uuid, v.part_label, v.bootable, v.content)
        for v in storage.volumes
    ]


def sha256(src) -> str:
    h = hashlib.sha256()
    for chunk in iter_chunks(src):
        h.update(chunk)
    return h.hexdigest()


def check_sums(storage, prefix: str) -> int:
    checked = 0
    for v in storage.volumes:
        key = f"{prefix}:{v.name}"
        if key in SUMS:
            assert sha256(v.source) == SUMS[key], key
            checked += 1
    return checked


MiB = 1 << 20


def test_mbr_with_logical_partitions():
    with guest("mbr-logical.img") as g:
        s = g.storage
        assert table(s) == [
            ("disk0", ("hd0",), 0, 24 * MiB, "", None, None, False, "msdos"),
            ("disk0p1", ("hd0,msdos1", "hd0,1"), 1 * MiB, 4 * MiB, "0x83", "5eed1234-01", None, True, "ext4"),
            ("disk0p2", ("hd0,msdos2", "hd0,2"), 5 * MiB, 2 * MiB, "0x0c", "5eed1234-02", None, False, "vfat"),
            ("disk0p3", (), 7 * MiB, 15 * MiB, "0x05", "5eed1234-03", None, False, "extended"),
            ("disk0p5", ("hd0,msdos5", "hd0,5"), 8 * MiB, 4 * MiB, "0x83", "5eed1234-05", None, False, "ext3"),
            ("disk0p6", ("hd0,msdos6", "hd0,6"), 13 * MiB, 2 * MiB, "0x82", "5eed1234-06", None, False, "swap"),
            ("disk0p7", ("hd0,msdos7", "hd0,7"), 16 * MiB, 4 * MiB, "0x83", "5eed1234-07", None, False, "ext2"),
        ]
        (d,) = s.disks
        assert (d.table, d.sector_size, d.disk_id, d.notes, d.image_format) == ("msdos", 512, "0x5eed1234", (), "raw")
        assert check_sums(s, "mbr-logical.img") == 5


def test_gpt_with_names_attributes_and_an_unused_slot():
    with guest("gpt.img") as g:
        s = g.storage
        assert table(s) == [
            ("disk0", ("hd0",), 0, 24 * MiB, "", None, None, False, "gpt"),
            (
                "disk0p1",
                ("hd0,gpt1", "hd0,1"),
                1 * MiB,
                1 * MiB,
                "21686148-6449-6E6F-744E-656564454649",
                "A1A1A1A1-0001-4000-8000-000000000001",
                "bios",
                False,
                None,
            ),
            (
                "disk0p2",
                ("hd0,gpt2", "hd0,2"),
                2 * MiB,
                4 * MiB,
                "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                "A1A1A1A1-0002-4000-8000-000000000002",
                "EFI System Partition",
                False,
                "vfat",
            ),
            (
                "disk0p3",
                ("hd0,gpt3", "hd0,3"),
                6 * MiB,
                6 * MiB,
                "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                "A1A1A1A1-0003-4000-8000-000000000003",
                "boot ✓ ünïcødé",
                True,
                "ext4",
            ),
            (
                "disk0p5",
                ("hd0,gpt5", "hd0,5"),
                12 * MiB,
                2 * MiB,
                "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
                "A1A1A1A1-0005-4000-8000-000000000005",
                "swap",
                False,
                "swap",
            ),
            (
                "disk0p6",
                ("hd0,gpt6", "hd0,6"),
                14 * MiB,
                4 * MiB,
                "E6D6D379-F507-44C2-A23C-238F2A3DF928",
                "A1A1A1A1-0006-4000-8000-000000000006",
                "empty lvm",
                False,
                None,
            ),
            (
                "disk0p7",
                ("hd0,gpt7", "hd0,7"),
                18 * MiB,
                24 * MiB - 18 * MiB - 33 * 512,
                "A19D880F-05FC-4D3B-A006-743F0F84911E",
                "A1A1A1A1-0007-4000-8000-000000000007",
                "raid",
                False,
                None,
            ),
        ]
        assert [v.type_name for v in s.volumes[1:]] == [
            "BIOS boot",
            "EFI System",
            "Linux filesystem",
            "Linux swap",
            "Linux LVM",
            "Linux RAID",
        ]
        (d,) = s.disks
        assert (d.table, d.sector_size, d.disk_id, d.notes) == ("gpt", 512, "7A3B9C1D-2E4F-4A5B-8C6D-7E8F9A0B1C2D", ())
        assert check_sums(s, "gpt.img") == 3


def test_gpt_on_a_4k_sector_disk_is_detected():
    with guest("gpt-4k.img") as g:
        s = g.storage
        assert s.disks[0].sector_size == 4096
        assert table(s)[1:] == [
            (
                "disk0p1",
                ("hd0,gpt1", "hd0,1"),
                1 * MiB,
                4 * MiB,
                "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                "4B4B4B4B-0001-4000-8000-000000000001",
                "esp-4k",
                False,
                "vfat",
            ),
            (
                "disk0p2",
                ("hd0,gpt2", "hd0,2"),
                5 * MiB,
                6 * MiB,
                "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                "4B4B4B4B-0002-4000-8000-000000000002",
                "root-4k",
                False,
                "ext4",
            ),
        ]
        assert check_sums(s, "gpt-4k.img") == 2


def test_4k_disk_read_with_512_byte_sectors_finds_no_gpt():
    from virtkit.errors import CorruptStructure

    with pytest.raises(
        CorruptStructure, match=r"GPT of disk0 at 0x200: the primary header at LBA 1 .* are both damaged"
    ):
        open_guest([str(fixture_path("volume/gpt-4k.img.gz"))], limits=Limits(), sector_size=512)


VG_SYS = "lMFD69-J9N2-RrTb-od6H-aZiN-kKkf-fdT9od"


def test_lvm_on_an_mbr_partition_with_refused_lvs():
    with guest("lvm.img") as g:
        s = g.storage
        assert [(v.name, v.kind.value, v.size, v.type_code, v.content) for v in s.volumes] == [
            ("disk0", "disk", 96 * MiB, "", "msdos"),
            ("disk0p1", "partition", 8 * MiB, "0x83", "ext4"),
            ("disk0p2", "partition", 87 * MiB, "0x8e", "LVM2_member"),
            ("vg-sys/root", "lv", 12 * MiB, "linear", "ext4"),
            ("vg-sys/my-swap", "lv", 4 * MiB, "linear", "swap"),
            ("vg-sys/multi-seg", "lv", 8 * MiB, "linear", "ext2"),
        ]
        root = s.volumes[3]
        assert root.grub_names == ("lvm/vg--sys-root", f"lvmid/{VG_SYS}/AUhI7H-OsMm-QxpE-6nlF-DoTF-XVRq-TQrqIB")
        assert s.volumes[4].grub_names[0] == "lvm/vg--sys-my--swap"
        (vg,) = s.volume_groups
        assert (vg.name, vg.uuid, vg.extent_size, vg.pvs, vg.missing_pvs, vg.notes) == (
            "vg-sys",
            VG_SYS,
            4 * MiB,
            ("disk0p2",),
            (),
            (),
        )
        assert [(lv.name, lv.size, lv.segment_types, lv.readable) for lv in vg.lvs] == [
            ("root", 12 * MiB, ("linear",), True),
            ("my-swap", 4 * MiB, ("linear",), True),
            ("multi-seg", 8 * MiB, ("linear",), True),
            ("mirror-r1", 4 * MiB, ("raid1",), False),
            ("snap", 4 * MiB, ("linear",), False),
            ("pool", 4 * MiB, ("thin-pool",), False),
            ("thin1", 8 * MiB, ("thin",), False),
        ]
        reasons = {lv.name: lv.reason for lv in vg.lvs if lv.reason}
        assert reasons == {
            "mirror-r1": "LV vg-sys/mirror-r1: 'raid1' segments are not supported (virtkit reads linear and striped LVs only)",
            "snap": "LV vg-sys/snap is a snapshot: reading it needs its origin merged with the copy-on-write store, "
            "which virtkit does not do",
            "pool": "LV vg-sys/pool: 'thin-pool' segments are not supported (virtkit reads linear and striped LVs only)",
            "thin1": "LV vg-sys/thin1: 'thin' segments are not supported (virtkit reads linear and striped LVs only)",
        }
        assert s.notes == ()
        assert check_sums(s, "lvm.img") == 4


def test_vg_striped_across_two_disks():
    with guest("lvm-striped-0.img", "lvm-striped-1.img") as g:
        s = g.storage
        assert [(v.name, v.size, v.type_code, v.content, v.disk) for v in s.volumes] == [
            ("disk0", 32 * MiB, "", "gpt", 0),
            ("disk0p1", 32 * MiB - MiB - 33 * 512, "E6D6D379-F507-44C2-A23C-238F2A3DF928", "LVM2_member", 0),
            ("disk1", 32 * MiB, "", "gpt", 1),
            ("disk1p1", 32 * MiB - MiB - 33 * 512, "E6D6D379-F507-44C2-A23C-238F2A3DF928", "LVM2_member", 1),
            ("data/stripes", 16 * MiB, "striped", "ext4", 0),
            ("data/span", 20 * MiB, "linear", "ext4", 0),
        ]
        (vg,) = s.volume_groups
        assert (vg.name, vg.extent_size, vg.pvs) == ("data", MiB, ("disk0p1", "disk1p1"))
        assert check_sums(s, "lvm-striped") == 2


def test_vg_with_one_of_two_disks_missing():
    with guest("lvm-striped-0.img") as g:
        s = g.storage
        assert [v.name for v in s.volumes] == ["disk0", "disk0p1"]
        (vg,) = s.volume_groups
        assert vg.missing_pvs == ("pVdata-1111-AAAA-BBBB-CCCC-DDDD-111111",)
        assert [(lv.name, lv.readable) for lv in vg.lvs] == [("stripes", False), ("span", False)]
        assert vg.lvs[0].reason.startswith("LV data/stripes needs PV pv1 (uuid pVdata-1111-AAAA-BBBB-CCCC-DDDD-111111)")


def test_pv_on_a_whole_disk_with_a_cycled_metadata_ring():
    with guest("lvm-wholedisk.img") as g:
        s = g.storage
        assert [(v.name, v.grub_names[0], v.content) for v in s.volumes] == [
            ("disk0", "hd0", "LVM2_member"),
            ("wrap-vg/lv-one", "lvm/wrap--vg-lv--one", "ext4"),
        ]
        assert s.disks[0].table is None
        assert s.volume_groups[0].seqno == 48
        assert check_sums(s, "lvm-wholedisk.img") == 1


def test_the_bundled_sample_guest():
    with open_guest([], limits=Limits()) as g:
        s = g.storage
        assert [(v.name, v.grub_names[0], v.part_label, v.content) for v in s.volumes] == [
            ("disk0", "hd0", None, "gpt"),
            ("disk0p1", "hd0,gpt1", "bios", None),
            ("disk0p2", "hd0,gpt2", "EFI System Partition", "vfat"),
            ("disk0p3", "hd0,gpt3", "boot", "ext4"),
            ("disk0p4", "hd0,gpt4", "root", "ext4"),
        ]
