"""MBR tables and EBR chains, built byte by byte (tests/builders/mbr.py)."""

from __future__ import annotations

import pytest

from builders.mbr import DiskImage, Entry, chain_disk, ebr_sector, mbr_sector
from virtkit._streams import BytesSource
from virtkit.boot.volume.mbr import parse_mbr, probe_mbr
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

LIMITS = Limits()


def parse(raw: bytes, limits: Limits = LIMITS, ss: int = 512):
    return parse_mbr(BytesSource(raw, "disk0"), sector_size=ss, limits=limits, where="disk0")


def summary(table) -> list[tuple[int, int, int, int, bool]]:
    return [(p.number, p.start_lba, p.sectors, p.sys_ind, p.bootable) for p in table.partitions]


def test_primaries_keep_their_slot_numbers():
    disk = DiskImage(8192).put(0, mbr_sector([Entry(0x83, 2048, 100, boot=True), None, Entry(0x0C, 4096, 50)]))
    t = parse(disk.bytes())
    assert summary(t) == [(1, 2048, 100, 0x83, True), (3, 4096, 50, 0x0C, False)]
    assert t.disk_id == "0x5eed1234"
    assert t.part_uuid(3) == "5eed1234-03"
    assert [p.type_name for p in t.partitions] == ["Linux", "W95 FAT32 (LBA)"]
    assert not t.protective and not t.hybrid and t.notes == ()


def test_logical_partitions_count_from_five_in_chain_order():
    raw = chain_disk([(3000, 100, 0x83), (4000, 200, 0x82), (5000, 300, 0x8E)], primaries=[Entry(0x83, 100, 50)])
    t = parse(raw)
    assert summary(t) == [
        (1, 100, 50, 0x83, False),
        (2, 2048, 65536 - 2048, 0x05, False),
        (5, 3000, 100, 0x83, False),
        (6, 4000, 200, 0x82, False),
        (7, 5000, 300, 0x8E, False),
    ]
    assert [p.logical for p in t.partitions] == [False, False, True, True, True]
    assert [p.ebr_lba for p in t.partitions[2:]] == [2048, 3999, 4999]
    assert t.part_uuid(7) == "5eed1234-07"


def test_ebr_with_an_empty_data_entry_takes_no_number():
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 7000)]))
    disk.put(1000, ebr_sector(None, Entry(0x05, 1000, 500)))  # nothing here, link onward
    disk.put(2000, ebr_sector(Entry(0x83, 10, 20), None))
    assert summary(parse(disk.bytes()))[1:] == [(5, 2010, 20, 0x83, False)]


def test_data_entries_in_ebr_slots_three_and_four_are_logicals_too():
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x0F, 1000, 7000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), None, extra=[Entry(0x82, 20, 5)]))
    assert summary(parse(disk.bytes()))[1:] == [(5, 1001, 9, 0x83, False), (6, 1020, 5, 0x82, False)]


def test_only_the_first_extended_partition_is_followed():
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 1000), Entry(0x85, 3000, 1000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), None))
    disk.put(3000, ebr_sector(Entry(0x83, 1, 9), None))
    t = parse(disk.bytes())
    assert [p.number for p in t.partitions] == [1, 2, 5]
    assert t.notes == ("partition 2 is a second extended partition; its logical partitions are ignored (as GRUB does)",)


def test_an_ebr_without_signature_ends_the_chain_with_a_note():
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 7000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), Entry(0x05, 1000, 100)))
    disk.put(2000, mbr_sector([Entry(0x83, 1, 9)], magic=b"\0\0"))
    t = parse(disk.bytes())
    assert [p.number for p in t.partitions] == [1, 5]
    assert t.notes == (
        "EBR of disk0 at LBA 2000 has no 0x55AA signature: the logical partitions from there on are ignored",
    )


def test_ebr_self_loop_is_corrupt():
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 7000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), Entry(0x05, 0, 10)))  # links to itself
    with pytest.raises(CorruptStructure) as e:
        parse(disk.bytes())
    assert str(e.value) == (
        "extended partition chain of disk0 at 0x7d000: the EBR at LBA 1000 links back to LBA 1000, "
        "already visited (a loop)"
    )


def test_ebr_two_step_loop_is_corrupt():
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 7000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), Entry(0x05, 500, 10)))
    disk.put(1500, ebr_sector(Entry(0x83, 1, 9), Entry(0x05, 0, 10)))
    with pytest.raises(CorruptStructure, match="the EBR at LBA 1500 links back to LBA 1000"):
        parse(disk.bytes())


def test_ebr_chain_longer_than_max_partitions():
    logicals = [(3000 + 10 * i, 5, 0x83) for i in range(40)]
    raw = chain_disk(logicals)
    assert len(parse(raw).partitions) == 41
    with pytest.raises(LimitExceeded) as e:
        parse(raw, Limits(max_partitions=16))
    assert e.value.name == "max_partitions"
    assert str(e.value).startswith("extended partition chain of disk0: 17 exceeds the max_partitions limit of 16")


def test_ebr_link_past_the_end_of_the_disk():
    disk = DiskImage(4096)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 3000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), Entry(0x05, 0x7FFFFFFF, 10)))
    with pytest.raises(
        CorruptStructure,
        match=r"the EBR at LBA 1000 points at LBA 2147484647, past the end of the disk \(4096 sectors\)",
    ):
        parse(disk.bytes())


def test_extended_entry_past_the_end_of_the_disk():
    disk = DiskImage(4096).put(0, mbr_sector([Entry(0x05, 90000, 10)]))
    with pytest.raises(CorruptStructure, match="the MBR's extended entry points at LBA 90000"):
        parse(disk.bytes())


def test_protective_and_hybrid_mbr():
    pmbr = DiskImage(100).put(0, mbr_sector([Entry(0xEE, 1, 99)])).bytes()
    t = parse(pmbr)
    assert t.protective and not t.hybrid and t.partitions == ()
    hybrid = DiskImage(100).put(0, mbr_sector([Entry(0xEE, 1, 30), Entry(0x0C, 40, 20)])).bytes()
    t = parse(hybrid)
    assert t.protective and t.hybrid


@pytest.mark.parametrize(
    ("sector", "expected"),
    [
        (mbr_sector([Entry(0x83, 1, 2)]), True),
        (mbr_sector([]), True),  # a signature and no entries: an empty table
        (mbr_sector([Entry(0x83, 1, 2, boot_ind=0x12)]), False),  # libblkid: boot indicator must be 0 or 0x80
        (mbr_sector([Entry(0x83, 1, 2)], magic=b"\x55\xab"), False),
        (bytes(512), False),
        (b"\x55\xaa", False),
    ],
)
def test_probe_mbr(sector, expected):
    assert probe_mbr(sector) is expected


def test_4096_byte_sectors_scale_every_lba():
    disk = DiskImage(1024, sector_size=4096)
    disk.put(0, mbr_sector([Entry(0x05, 100, 900)]))
    disk.put(100, ebr_sector(Entry(0x83, 1, 9), None))
    t = parse(disk.bytes(), ss=4096)
    assert summary(t) == [(1, 100, 900, 0x05, False), (5, 101, 9, 0x83, False)]
