"""VG assembly across PVs and disks, LV mapping, and the LVs that must be refused (builders only)."""

from __future__ import annotations

import random

import pytest

from builders.gpt import LINUX_LVM, GptDisk, GptPart
from builders.lvm import PV_UUID, PV_UUID_2, LvSpec, PvImage, PvSpec, Seg, dashed, vg_text
from builders.storage import discover
from virtkit._streams import BytesSource
from virtkit.boot.volume.lvm import grub_lvm_name
from virtkit.boot.volume.lvm.mapping import StripedSource
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

MiB = 1 << 20
EXT = 4 * MiB  # extent_size 8192 sectors
PV0 = PvSpec("pv0", PV_UUID, pe_count=6)
PV1 = PvSpec("pv1", PV_UUID_2, pe_count=6)


def pattern(tag: str, size: int) -> bytes:
    """Seeded random bytes: any mis-mapped read is caught."""
    return random.Random(tag).randbytes(size)


def pv_disk(uuid: str, text: str, size: int = 32 * MiB, fill: bytes = b"") -> bytearray:
    raw = PvImage(size=size, pv_uuid=uuid, text=text.encode()).build()
    raw[MiB : MiB + len(fill)] = fill  # pe_start = 2048 sectors
    return raw


def test_linear_lv_on_a_whole_disk_pv():
    data = pattern("pv0", 24 * MiB)
    text = vg_text("vg", pvs=[PV0], lvs=[LvSpec("root", [Seg(0, 2, [("pv0", 1)])])])
    s = discover(pv_disk(PV_UUID, text, fill=data))
    names = [(v.name, v.kind.value, v.content) for v in s.volumes]
    assert names == [("disk0", "disk", "LVM2_member"), ("vg/root", "lv", None)]
    lv = s.volumes[1]
    assert lv.grub_names == (
        "lvm/vg-root",
        f"lvmid/{dashed('vgUUID0123456789abcdefghijklmnop')}/{dashed('lv00' + 'x' * 28)}",
    )
    assert (lv.vg_name, lv.lv_name, lv.type_code, lv.size, lv.disk) == ("vg", "root", "linear", 2 * EXT, 0)
    assert lv.source.pread(0, 2 * EXT) == data[EXT : 3 * EXT]
    (vg,) = s.volume_groups
    assert (vg.name, vg.seqno, vg.extent_size, vg.pvs, vg.missing_pvs) == ("vg", 1, EXT, ("disk0",), ())
    assert [(i.name, i.size, i.segment_types, i.readable, i.reason) for i in vg.lvs] == [
        ("root", 2 * EXT, ("linear",), True, None)
    ]


def test_multi_segment_lv_reads_its_segments_in_order():
    data = pattern("pv0", 24 * MiB)
    text = vg_text("vg", pvs=[PV0], lvs=[LvSpec("lv", [Seg(0, 1, [("pv0", 4)]), Seg(1, 2, [("pv0", 0)])])])
    lv = discover(pv_disk(PV_UUID, text, fill=data)).volumes[1]
    assert lv.source.pread(0, 3 * EXT) == data[4 * EXT : 5 * EXT] + data[0 : 2 * EXT]
    assert lv.source.pread(EXT - 10, 20) == data[5 * EXT - 10 : 5 * EXT] + data[0:10]


def _striped_reference(areas: list[bytes], chunk: int) -> bytes:
    out = bytearray()
    rows = len(areas[0]) // chunk
    for r in range(rows):
        for a in areas:
            out += a[r * chunk : (r + 1) * chunk]
    return bytes(out)


def test_striped_lv_across_two_disks():
    d0, d1 = pattern("d0", 24 * MiB), pattern("d1", 24 * MiB)
    text = vg_text(
        "data",
        pvs=[PV0, PV1],
        lvs=[LvSpec("stripes", [Seg(0, 4, [("pv0", 1), ("pv1", 3)], stripe_size=128)])],
    )
    disk0 = pv_disk(PV_UUID, text, fill=d0)
    disk1 = pv_disk(PV_UUID_2, text, fill=d1)
    s = discover(disk0, disk1)
    lv = s.volumes[-1]
    assert lv.name == "data/stripes" and lv.type_code == "striped" and lv.size == 4 * EXT
    expected = _striped_reference([d0[EXT : 3 * EXT], d1[3 * EXT : 5 * EXT]], 64 * 1024)
    assert lv.source.pread(0, lv.size) == expected
    for off, n in [(0, 1), (65530, 12), (3 * 65536 + 5, 200000), (lv.size - 7, 7)]:
        assert lv.source.pread(off, n) == expected[off : off + n]
    assert s.volume_groups[0].pvs == ("disk0", "disk1")


def test_vg_on_gpt_partitions_of_two_disks_with_one_missing():
    text = vg_text(
        "data",
        pvs=[PV0, PV1],
        lvs=[
            LvSpec("a", [Seg(0, 1, [("pv0", 0)])]),
            LvSpec("b", [Seg(0, 1, [("pv1", 0)])]),
            LvSpec("c", [Seg(0, 2, [("pv0", 2), ("pv1", 2)])]),
        ],
    )
    pv = PvImage(size=30 * MiB, pv_uuid=PV_UUID, text=text.encode()).build()
    g = GptDisk(sectors=65536).add(GptPart(LINUX_LVM, 2048, 2048 + len(pv) // 512 - 1, name="pv"))
    raw = bytearray(g.build())
    raw[MiB : MiB + len(pv)] = pv
    s = discover(bytes(raw))
    assert [v.name for v in s.volumes] == ["disk0", "disk0p1", "data/a"]
    (vg,) = s.volume_groups
    assert vg.missing_pvs == (dashed(PV_UUID_2),)
    assert vg.notes == ("1 of 2 physical volumes are missing",)
    reasons = {i.name: i.reason for i in vg.lvs}
    assert reasons["a"] is None
    assert reasons["b"] == f"LV data/b needs PV pv1 (uuid {dashed(PV_UUID_2)}), which is not on the disks given"
    assert reasons["c"] == reasons["b"].replace("data/b", "data/c")


@pytest.mark.parametrize(
    ("seg", "reason"),
    [
        (
            Seg(0, 1, type="raid1", extra='raids = ["x_rmeta_0", "x_rimage_0"]'),
            "LV vg/x: 'raid1' segments are not supported (virtkit reads linear and striped LVs only)",
        ),
        (
            Seg(0, 1, type="thin", extra='thin_pool = "pool"\ntransaction_id = 0\ndevice_id = 1'),
            "LV vg/x: 'thin' segments",
        ),
        (Seg(0, 1, type="thin-pool", extra='metadata = "m"\npool = "p"'), "LV vg/x: 'thin-pool' segments"),
        (Seg(0, 1, type="cache", extra='cache_pool = "c"\norigin = "o"'), "LV vg/x: 'cache' segments"),
        (Seg(0, 1, type="vdo", extra='vdo_pool = "v"'), "LV vg/x: 'vdo' segments"),
        (Seg(0, 1, type="mirror", extra='mirror_count = 2\nmirrors = ["a", 0, "b", 0]'), "LV vg/x: 'mirror' segments"),
    ],
)
def test_unsupported_segment_types_leave_the_other_lvs_usable(seg, reason):
    text = vg_text("vg", pvs=[PV0], lvs=[LvSpec("ok", [Seg(0, 1, [("pv0", 0)])]), LvSpec("x", [seg])])
    s = discover(pv_disk(PV_UUID, text))
    assert [v.name for v in s.volumes] == ["disk0", "vg/ok"]
    info = {i.name: i for i in s.volume_groups[0].lvs}
    assert info["ok"].readable
    assert not info["x"].readable and info["x"].reason.startswith(reason)


def test_snapshot_cow_lv_is_listed_as_unreadable_and_its_origin_stays_readable():
    text = vg_text(
        "vg",
        pvs=[PV0],
        lvs=[
            LvSpec("origin", [Seg(0, 1, [("pv0", 0)])]),
            LvSpec("snap", [Seg(0, 1, [("pv0", 1)])], status=("READ", "WRITE")),
            LvSpec(
                "snapshot0",
                [Seg(0, 1, type="snapshot", extra='chunk_size = 8\norigin = "origin"\ncow_store = "snap"')],
                status=("READ",),
            ),
        ],
    )
    s = discover(pv_disk(PV_UUID, text))
    assert [v.name for v in s.volumes] == ["disk0", "vg/origin"]
    info = {i.name: i for i in s.volume_groups[0].lvs}
    assert list(info) == ["origin", "snap"]
    assert info["snap"].reason == (
        "LV vg/snap is a snapshot: reading it needs its origin merged with the copy-on-write store, "
        "which virtkit does not do"
    )


def test_hidden_lvs_are_not_listed():
    text = vg_text("vg", pvs=[PV0], lvs=[LvSpec("x_rimage_0", [Seg(0, 1, [("pv0", 0)])], status=("READ", "WRITE"))])
    s = discover(pv_disk(PV_UUID, text))
    assert [v.name for v in s.volumes] == ["disk0"]
    assert s.volume_groups[0].lvs == ()


@pytest.mark.parametrize(
    ("lv", "message"),
    [
        (
            LvSpec("x", [Seg(0, 2, [("pv0", 5)])]),
            "LV vg/x segment 1 (disk0, metadata area at 0x1000, line 37): extents 5..6 on pv0 lie beyond its 6 extents",
        ),
        (LvSpec("x", [Seg(0, 1, [("pv9", 0)])]), "refers to PV 'pv9', which the VG does not list"),
        (LvSpec("x", [Seg(0, 3, [("pv0", 0), ("pv0", 3)])]), "3 extents cannot be split over 2 stripes"),
        (LvSpec("x", [Seg(0, 2, [("pv0", 0), ("pv0", 3)], stripe_size=96)]), "stripe_size 96 is not a power of two"),
        (
            LvSpec("x", [Seg(0, 2, [("pv0", 0), ("pv0", 3)], stripe_size=1 << 20)]),
            "is not a whole number of 0x20000000-byte chunks",
        ),
    ],
)
def test_corrupt_mappings(lv, message):
    text = vg_text("vg", pvs=[PV0], lvs=[lv])
    with pytest.raises(CorruptStructure) as e:
        discover(pv_disk(PV_UUID, text))
    assert message in str(e.value)


def test_segment_beyond_the_end_of_the_pv_device():
    # The metadata claims 100 extents, the PV is 32 MiB: extent 10 would be past its end.
    text = vg_text("vg", pvs=[PvSpec("pv0", PV_UUID, pe_count=100)], lvs=[LvSpec("x", [Seg(0, 1, [("pv0", 10)])])])
    with pytest.raises(CorruptStructure) as e:
        discover(pv_disk(PV_UUID, text))
    assert str(e.value) == (
        "LV vg/x segment 1 (disk0, metadata area at 0x1000, line 37) at 0x2900000: extents 10..10 on pv0 end at "
        "0x2d00000, beyond the end of disk0 (size 0x2000000)"
    )


def test_lv_larger_than_max_image_bytes():
    text = vg_text("vg", pvs=[PV0], lvs=[LvSpec("x", [Seg(0, 2, [("pv0", 0)])])])
    with pytest.raises(LimitExceeded, match=r"LV vg/x: 8388608 exceeds the max_image_bytes limit of 4194304"):
        discover(pv_disk(PV_UUID, text), limits=Limits(max_image_bytes=4 * MiB))


def test_the_newest_copy_wins_and_the_stale_one_is_noted():
    old = vg_text("vg", pvs=[PV0, PV1], lvs=[LvSpec("old", [Seg(0, 1, [("pv0", 0)])])], seqno=3)
    new = vg_text("vg", pvs=[PV0, PV1], lvs=[LvSpec("new", [Seg(0, 1, [("pv1", 0)])])], seqno=4)
    s = discover(pv_disk(PV_UUID, old), pv_disk(PV_UUID_2, new))
    assert [v.name for v in s.volumes] == ["disk0", "disk1", "vg/new"]
    assert s.volume_groups[0].seqno == 4
    assert s.notes == ("disk0 holds old metadata of VG vg (seqno 3); used seqno 4 from disk1, metadata area at 0x1000",)


def test_same_seqno_different_text_is_noted():
    a = vg_text("vg", pvs=[PV0, PV1], lvs=[LvSpec("a", [Seg(0, 1, [("pv0", 0)])])], seqno=4)
    b = vg_text("vg", pvs=[PV0, PV1], lvs=[LvSpec("b", [Seg(0, 1, [("pv0", 0)])])], seqno=4)
    s = discover(pv_disk(PV_UUID, a), pv_disk(PV_UUID_2, b))
    assert [v.name for v in s.volumes][-1] == "vg/a"
    assert s.notes == (
        "VG vg: two different metadata copies have seqno 4; used the one on disk0, metadata area at 0x1000",
    )


def test_cloned_disks_and_duplicate_vg_names_are_noted():
    text = vg_text("vg", pvs=[PV0], lvs=[LvSpec("a", [Seg(0, 1, [("pv0", 0)])])])
    other = vg_text(
        "vg", pvs=[PvSpec("pv0", PV_UUID_2, pe_count=6)], lvs=[], vg_uuid="otherVGuuid0123456789abcdefghijk"
    )
    s = discover(pv_disk(PV_UUID, text), pv_disk(PV_UUID, text), pv_disk(PV_UUID_2, other))
    assert s.notes == (
        "two volume groups are called 'vg' (uuids vgUUID-0123-4567-89ab-cdef-ghij-klmnop and "
        "otherV-Guui-d012-3456-789a-bcde-fghijk); GRUB names such as lvm/vg-... are ambiguous",
        f"disk1 and disk0 carry the same PV uuid {PV_UUID} (a cloned disk?); using disk0",
    )


def test_orphan_pv_is_noted():
    raw = PvImage(size=8 * MiB, pv_uuid=PV_UUID, text=b"x", raw_flags=1).build()
    s = discover(raw)
    assert s.volume_groups == ()
    assert s.notes == ("disk0 is an LVM physical volume that belongs to no volume group found",)


@pytest.mark.parametrize(
    ("vg", "lv", "grub"),
    [("vg", "root", "lvm/vg-root"), ("my-vg", "vg-root", "lvm/my--vg-vg--root"), ("a--b", "-", "lvm/a----b---")],
)
def test_grub_lvm_names_double_dashes(vg, lv, grub):
    assert grub_lvm_name(vg, lv) == grub


def test_striped_source_checks_its_areas():
    a = BytesSource(b"a" * 8192, "a")
    with pytest.raises(CorruptStructure, match="stripe areas must be equal"):
        StripedSource([a, BytesSource(b"b" * 4096, "b")], 4096, "s")
    with pytest.raises(CorruptStructure, match="whole number of 0x3000-byte chunks"):
        StripedSource([a, a], 3 * 4096, "s")
    s = StripedSource([a, BytesSource(b"b" * 8192, "b")], 4096, "s")
    assert s.pread(4090, 12) == b"a" * 6 + b"b" * 6
    with pytest.raises(CorruptStructure, match="outside"):
        s.pread(16380, 8)
