"""GUID partition tables, built byte by byte (tests/builders/gpt.py)."""

from __future__ import annotations

import pytest

from builders.gpt import BIOS_BOOT, EFI_SYSTEM, LINUX_FS, GptDisk, GptPart
from virtkit._streams import BytesSource
from virtkit.boot.volume.gpt import detect_gpt_sector_size, parse_gpt
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

LIMITS = Limits()


def disk(**kw) -> GptDisk:
    d = GptDisk(sectors=4096, **kw)
    d.add(GptPart(BIOS_BOOT, 2048, 2303, unique_guid="A1A1A1A1-0001-4000-8000-000000000001", name="bios"))
    d.add(GptPart(EFI_SYSTEM, 2304, 2815, unique_guid="A1A1A1A1-0002-4000-8000-000000000002", name="EFI ✓"))
    d.add(
        GptPart(
            LINUX_FS,
            2816,
            4000,
            unique_guid="A1A1A1A1-0005-4000-8000-000000000005",
            name="root",
            attributes=(1 << 2) | (1 << 60),
            slot=4,
        )
    )
    return d


def parse(raw: bytes, ss: int = 512, limits: Limits = LIMITS):
    return parse_gpt(BytesSource(raw, "disk0"), sector_size=ss, limits=limits, where="disk0")


def rows(t):
    return [
        (p.number, p.first_lba, p.last_lba, p.type_name, p.unique_guid, p.name, p.legacy_bios_bootable)
        for p in t.partitions
    ]


EXPECTED = [
    (1, 2048, 2303, "BIOS boot", "A1A1A1A1-0001-4000-8000-000000000001", "bios", False),
    (2, 2304, 2815, "EFI System", "A1A1A1A1-0002-4000-8000-000000000002", "EFI ✓", False),
    (5, 2816, 4000, "Linux filesystem", "A1A1A1A1-0005-4000-8000-000000000005", "root", True),
]


def test_a_valid_table():
    t = parse(disk().build())
    assert rows(t) == EXPECTED
    assert t.disk_guid == "6D1E3A2B-4C5D-4E6F-8A9B-0C1D2E3F4A5B"
    assert (t.header_lba, t.first_usable_lba, t.last_usable_lba, t.entry_count) == (1, 34, 4062, 128)
    assert t.partitions[2].type_guid == LINUX_FS
    assert t.partitions[2].attributes == (1 << 2) | (1 << 60)
    assert t.notes == ()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ({"corrupt_primary_header": True}, "header CRC32 mismatch, expected 0x"),
        ({"corrupt_primary_array": True}, "entry array CRC32 mismatch, expected 0x"),
        ({"primary_header": {"signature": b"EFI PARX"}}, "no 'EFI PART' signature (got b'EFI PARX')"),
        ({"primary_header": {"header_size": 91}}, "header_size 91 is outside 92..512"),
        ({"primary_header": {"my_lba": 7}}, "my_lba is 7, but the header was read from LBA 1"),
        ({"primary_header": {"size_of_partition_entry": 100}}, "size_of_partition_entry 100 is not 128 * 2^n"),
        (
            {"primary_header": {"partition_entry_lba": 1}},
            "entry array at LBA 1 (16384 bytes) is outside the disk or overlaps",
        ),
        ({"primary_header": {"partition_entry_lba": 4090}}, "entry array at LBA 4090"),
    ],
)
def test_a_damaged_primary_falls_back_to_the_backup_and_says_so(damage, reason):
    t = parse(disk(**damage).build())
    assert rows(t) == EXPECTED
    assert t.header_lba == 4095
    assert len(t.notes) == 1
    assert t.notes[0].startswith(f"primary GPT header at LBA 1 is damaged ({reason}")
    assert t.notes[0].endswith("): used the backup at LBA 4095")


def test_both_headers_damaged():
    with pytest.raises(CorruptStructure) as e:
        parse(disk(corrupt_primary_header=True, corrupt_backup_array=True).build())
    msg = str(e.value)
    assert msg.startswith("GPT of disk0 at 0x200: the primary header at LBA 1 (header CRC32 mismatch")
    assert "and the backup header at LBA 4095 (entry array CRC32 mismatch" in msg
    assert msg.endswith("are both damaged")


def test_no_backup_at_all_and_a_damaged_primary():
    with pytest.raises(CorruptStructure, match=r"backup header at LBA 4095 \(no 'EFI PART' signature"):
        parse(disk(corrupt_primary_header=True, write_backup=False).build())


def test_a_damaged_backup_is_noted():
    t = parse(disk(corrupt_backup_header=True).build())
    assert rows(t) == EXPECTED and t.header_lba == 1
    assert len(t.notes) == 1
    assert t.notes[0].startswith("backup GPT header at LBA 4095 is damaged (header CRC32 mismatch")
    assert t.notes[0].endswith("; the primary is intact")


def test_a_truncated_image_is_noted():
    raw = disk().build()[: 3000 * 512]
    t = parse(raw)
    assert rows(t) == EXPECTED
    assert t.notes == (
        "the backup GPT header should be at LBA 4095, past the end of the disk (3000 sectors): the image may be truncated",
    )


def test_two_to_the_32_entries_fail_fast_without_reading_them():
    d = disk()
    d.primary_header["number_of_partition_entries"] = 2**32 - 1
    raw = d.build()
    with pytest.raises(LimitExceeded) as e:  # before any entry is read: 2^32 * 128 bytes would be 512 GiB
        parse(raw)
    assert e.value.name == "max_partitions"
    assert str(e.value) == (
        "GPT header at LBA 1 of disk0: 4294967295 exceeds the max_partitions limit of 256 "
        "(raise it with --limit max_partitions=N)"
    )


def test_entry_count_limit_applies_to_ordinary_tables():
    with pytest.raises(LimitExceeded, match="128 exceeds the max_partitions limit of 64"):
        parse(disk().build(), limits=Limits(max_partitions=64))


def test_an_entry_that_ends_before_it_starts_is_ignored_with_a_note():
    d = disk()
    d.add(GptPart(LINUX_FS, 3000, 2999, name="backwards", slot=9))
    t = parse(d.build())
    assert rows(t) == EXPECTED
    assert t.notes == ("GPT entry 10 ends (LBA 2999) before it starts (LBA 3000); ignored",)


def test_larger_entries_and_fewer_of_them():
    t = parse(disk(entries=16, entry_size=256).build())
    assert rows(t) == EXPECTED and t.entry_count == 16


def test_name_stops_at_the_first_nul_and_bad_utf16_is_replaced():
    d = GptDisk(sectors=4096)
    d.add(GptPart(LINUX_FS, 2048, 2100, name="ab\0cd"))
    d.add(GptPart(LINUX_FS, 2200, 2300, name="\ud800x", unique_guid="A1A1A1A1-0009-4000-8000-000000000009"))
    names = [p.name for p in parse(d.build()).partitions]
    assert names == ["ab", "\ufffdx"]


def test_4096_byte_sectors():
    d = GptDisk(sectors=1024, sector_size=4096, entries=128)
    d.add(GptPart(LINUX_FS, 256, 511, name="4k"))
    raw = d.build()
    src = BytesSource(raw, "disk0")
    assert detect_gpt_sector_size(src) == 4096
    t = parse(raw, ss=4096)
    assert [(p.first_lba, p.last_lba, p.name) for p in t.partitions] == [(256, 511, "4k")]
    assert (t.first_usable_lba, t.last_usable_lba) == (6, 1018)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (GptDisk(sectors=4096).build(), 512),
        (GptDisk(sectors=512, sector_size=4096).build(), 4096),
        (GptDisk(sectors=4096, corrupt_primary_header=True).build(), 512),  # still has the signature
        (GptDisk(sectors=4096, primary_header={"signature": b"XXXXXXXX"}).build(), 512),  # backup at the end
        (bytes(1 << 20), None),
    ],
)
def test_detect_sector_size(raw, expected):
    assert detect_gpt_sector_size(BytesSource(raw, "d")) == expected


def test_entry_array_larger_than_max_read():
    # 256 entries of 4096 bytes: a 1 MiB array, refused before it is read.
    d = GptDisk(sectors=8192, entries=256, entry_size=4096).add(GptPart(LINUX_FS, 4096, 5000))
    raw = d.build()
    assert len(parse(raw).partitions) == 1
    with pytest.raises(LimitExceeded) as e:
        parse(raw, limits=Limits(max_read=65536))
    assert e.value.name == "max_read"
    assert str(e.value).startswith("GPT entry array of disk0: 1048576 exceeds the max_read limit of 65536")
