"""LVM2 labels, PV headers, metadata-area headers and the ring buffer (tests/builders/lvm.py)."""

from __future__ import annotations

import pytest

from builders.lvm import PV_UUID, PvImage, calc_crc
from virtkit._streams import BytesSource
from virtkit.boot.volume.lvm.label import DiskLocn, find_label_sector, lvm_crc, read_metadata, read_pv_label
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

TEXT = b'vg0 {\nid = "x"\nseqno = 1\n}\n' + b"# padding\n" * 50
LIMITS = Limits()


def pv(**kw) -> PvImage:
    return PvImage(size=4 << 20, pv_uuid=PV_UUID, text=TEXT, **kw)


def src(p: PvImage) -> BytesSource:
    return BytesSource(bytes(p.build()), "disk0p2")


@pytest.mark.parametrize("data", [b"", b"a", b"LVM2 metadata", bytes(range(256)) * 3])
def test_crc_matches_an_independent_bitwise_implementation(data):
    assert lvm_crc(data) == calc_crc(data)
    assert lvm_crc(data[7:], lvm_crc(data[:7])) == calc_crc(data)


@pytest.mark.parametrize("sector", [0, 1, 2, 3])
def test_label_in_any_of_the_first_four_sectors(sector):
    s = src(pv(label_sector=sector))
    assert find_label_sector(s) == sector
    label = read_pv_label(s, where="disk0p2")
    assert label.sector == sector
    assert label.pv_uuid == PV_UUID
    assert label.device_size == 4 << 20
    assert label.data_areas == (DiskLocn(1 << 20, 0),)
    assert label.metadata_areas == (DiskLocn(4096, 1044480),)


def test_label_recording_another_sector_is_not_a_label():
    p = pv(label_sector=2)
    raw = bytearray(p.build())
    raw[2 * 512 + 8] = 1  # sector_xl says 1, but it is in sector 2
    assert find_label_sector(BytesSource(bytes(raw), "d")) is None


def test_reading_the_current_copy():
    copy = read_metadata(src(pv()), DiskLocn(4096, 1044480), limits=LIMITS, where="disk0p2")
    assert copy is not None
    assert copy.text == TEXT
    assert copy.where == "disk0p2, metadata area at 0x1000"


def test_a_copy_that_wraps_around_the_ring_buffer():
    # The text starts 100 bytes before the end of the area and continues after the mda header.
    area = 64 * 1024
    p = pv(mda_size=area, text_offset=area - 100, wrap_at=100)
    copy = read_metadata(src(p), DiskLocn(4096, area), limits=LIMITS, where="disk0p2")
    assert copy is not None and copy.text == TEXT


def test_a_wrapped_copy_that_would_overwrite_itself():
    area = 8 * 1024  # the copy wraps and would need more room than there is before it
    p = pv(mda_size=area, text_offset=600, raw_size=area)
    with pytest.raises(CorruptStructure, match=r"copy 0x258\+0x2000 wraps over itself in a 0x2000-byte area"):
        read_metadata(src(p), DiskLocn(4096, area), limits=LIMITS, where="disk0p2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label_crc": 0x1234}, "LVM label on disk0p2 at 0x200: checksum mismatch, expected 0x1234, got 0x"),
        (
            {"pv_header_offset": 480},
            "LVM label on disk0p2 at 0x200: PV header offset is outside the label sector (0x1e0)",
        ),
        ({"mda_crc": 7}, "LVM metadata area header on disk0p2 at 0x1000: checksum mismatch, expected 7, got 0x"),
        ({"mda_version": 2}, "LVM metadata area header on disk0p2 at 0x1000: unknown version, expected 1, got 2"),
        (
            {"mda_start_in_header": 8192},
            "LVM metadata area header on disk0p2 at 0x1000: start does not match the PV header, expected 0x1000, got 0x2000",
        ),
        (
            {"mda_size_in_header": 100},
            "LVM metadata area header on disk0p2 at 0x1000: size 0x64 is not within 0x200..0xff000",
        ),
        ({"raw_checksum": 99}, "LVM metadata on disk0p2 at 0x1200: checksum mismatch, expected 0x63, got 0x"),
        (
            {"text_offset": 100},
            "LVM metadata location on disk0p2 at 0x1028: copy 0x64+0x210 lies outside the text area 0x200..0xff000",
        ),
        (
            {"label_mda": (4 << 20, 1044480)},
            "LVM PV header on disk0p2 at 0x200: metadata area 0x400000+0xff000 lies outside the PV (size 0x400000)",
        ),
    ],
)
def test_damaged_structures(change, message):
    p = pv(**change)
    s = BytesSource(bytes(p.build()), "disk0p2")
    with pytest.raises(CorruptStructure) as e:
        label = read_pv_label(s, where="disk0p2")
        read_metadata(s, label.metadata_areas[0], limits=LIMITS, where="disk0p2")
    assert str(e.value).startswith(message)


def test_no_label():
    with pytest.raises(CorruptStructure, match="LVM label on disk0p2: no LABELONE label in sectors 0-3"):
        read_pv_label(BytesSource(bytes(8192), "d"), where="disk0p2")


def test_an_ignored_area_and_an_empty_area_hold_no_metadata():
    assert read_metadata(src(pv(raw_flags=1)), DiskLocn(4096, 1044480), limits=LIMITS, where="d") is None
    p = pv(text_offset=0, raw_size=0)
    raw = bytearray(p.build())
    raw[4096 + 40 : 4096 + 64] = bytes(24)  # raw_locn (0, 0, 0, 0)
    raw[4096 : 4096 + 4] = calc_crc(bytes(raw[4096 + 4 : 4096 + 512])).to_bytes(4, "little")
    assert read_metadata(BytesSource(bytes(raw), "d"), DiskLocn(4096, 1044480), limits=LIMITS, where="d") is None


def test_metadata_larger_than_the_limit():
    with pytest.raises(LimitExceeded) as e:
        read_metadata(src(pv()), DiskLocn(4096, 1044480), limits=Limits(max_lvm_metadata_bytes=100), where="disk0p2")
    assert e.value.name == "max_lvm_metadata_bytes"
    assert str(e.value).startswith("LVM metadata on disk0p2: 528 exceeds the max_lvm_metadata_bytes limit of 100")


def test_a_huge_claimed_size_is_refused_before_reading():
    with pytest.raises(LimitExceeded, match="max_lvm_metadata_bytes"):
        read_metadata(src(pv(raw_size=1 << 62)), DiskLocn(4096, 1044480), limits=LIMITS, where="disk0p2")


def test_too_many_area_descriptors():
    p = pv(extra_mdas=[(8192 + i, 512) for i in range(10)])
    with pytest.raises(CorruptStructure, match="more than 8 area descriptors"):
        read_pv_label(src(p), where="disk0p2")
