"""The LVM text metadata lexer and parser: exact trees, exact errors, every bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders.lvm import LvSpec, PvSpec, Seg, vg_text
from virtkit.boot.volume.lvm.metadata import parse_config, parse_metadata, parse_vg_metadata
from virtkit.boot.volume.lvm.metadata_lexer import TokenKind, tokenize
from virtkit.errors import CorruptStructure, LimitExceeded
from virtkit.limits import Limits

LIMITS = Limits()
DATA = Path(__file__).resolve().parents[2] / "data" / "volume"


def tokens(text: str) -> list[tuple[str, str, int, int]]:
    return [(t.kind.value, t.text, t.line, t.col) for t in tokenize(text, limits=LIMITS, where="w")]


def test_tokens_carry_line_and_column():
    assert tokens('vg {\n  id = "a\\"b\\\\c" # comment\n  s = [1, -2, 0.5]\n}') == [
        ("word", "vg", 1, 1),
        ("punct", "{", 1, 4),
        ("word", "id", 2, 3),
        ("punct", "=", 2, 6),
        ("string", 'a"b\\c', 2, 8),
        ("word", "s", 3, 3),
        ("punct", "=", 3, 5),
        ("punct", "[", 3, 7),
        ("word", "1", 3, 8),
        ("punct", ",", 3, 9),
        ("word", "-2", 3, 11),
        ("punct", ",", 3, 13),
        ("word", "0.5", 3, 15),
        ("punct", "]", 3, 18),
        ("punct", "}", 4, 1),
        (TokenKind.EOF.value, "", 4, 2),
    ]


def test_config_tree():
    root = parse_config('a = 1\nb = "x"\nc = []\nd = ["p", 3,]\ns {\n t { u = -7 }\n}\n', limits=LIMITS, where="w")
    assert root.values == {"a": 1, "b": "x", "c": [], "d": ["p", 3]}
    assert list(root.sections) == ["s"]
    assert root.sections["s"].sections["t"].values == {"u": -7}
    assert root.positions["d"] == (4, 1)
    assert root.sections["s"].sections["t"].line == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a = "open\n', "line 1:5: unterminated string"),
        ("a = $x", "line 1:5: unexpected character '$'"),
        ("a = 1\nb 2", "line 2:3: expected '=' or '{' after 'b', got '2'"),
        ("= 1", "line 1:1: expected a name, got '='"),
        ("a = ", "line 1:5: expected a value, got end of metadata"),
        ("a = [1 2]", "line 1:8: expected ',' or ']' in a list, got '2'"),
        ("a = [[1]]", "line 1:6: expected a value, got '['"),
        ("s {\n a = 1\n", "line 3:1: section 's' (line 1) is not closed"),
        ("a = 1\na = 2", "line 2:1: duplicate key 'a' in section ''"),
        ("s { }\ns = 1", "line 2:1: duplicate key 's' in section ''"),
        ("a = abc", "line 1:5: expected a number, got 'abc'"),
        ("a = 1" + "0" * 30, "line 1:5: expected a number, got '1000000000000000000000000000000'"),
        ("a = -", "line 1:5: expected a number, got '-'"),
        ("}", "line 1:1: expected a name, got '}'"),
    ],
)
def test_syntax_errors_name_line_and_column(text, message):
    with pytest.raises(CorruptStructure) as e:
        parse_config(text, limits=LIMITS, where="disk0p2, metadata area at 0x1000")
    assert str(e.value) == f"LVM metadata on disk0p2, metadata area at 0x1000: {message}"


def test_deep_nesting_is_bounded():
    text = "".join(f"s{i} {{ " for i in range(40)) + "}" * 40
    with pytest.raises(LimitExceeded) as e:
        parse_config(text, limits=LIMITS, where="w")
    assert e.value.name == "max_tree_depth"
    assert str(e.value).startswith("LVM metadata on w, line 1: 17 exceeds the max_tree_depth limit of 16")
    parse_config("".join(f"s{i} {{ " for i in range(16)) + "}" * 16, limits=LIMITS, where="w")


def test_token_count_is_bounded():
    text = "a = [" + "1," * 5000 + "]"
    with pytest.raises(LimitExceeded) as e:
        parse_config(text, limits=Limits(max_lvm_tokens=1000), where="w")
    assert e.value.name == "max_lvm_tokens"
    assert e.value.value == 1001


def test_a_million_token_list_is_refused_at_the_default_limit():
    text = "a = [" + "1," * 600_000 + "]"
    with pytest.raises(LimitExceeded, match="max_lvm_tokens"):
        parse_config(text, limits=LIMITS, where="w")


def test_metadata_over_the_size_limit():
    with pytest.raises(LimitExceeded, match="max_lvm_metadata_bytes"):
        parse_vg_metadata(b"x" * 2000, limits=Limits(max_lvm_metadata_bytes=1000), where="w")


def _vg(**kw) -> str:
    return vg_text(
        "vg-sys",
        pvs=[PvSpec("pv0", "pVUUIDabcdefghijklmnopqrstuvwxy0", pe_count=10)],
        lvs=[
            LvSpec("root", [Seg(0, 2, [("pv0", 0)]), Seg(2, 1, [("pv0", 5)])]),
            LvSpec("hidden", [Seg(0, 1, [("pv0", 3)])], status=("READ", "WRITE")),
            LvSpec("r1", [Seg(0, 1, type="raid1", extra='device_count = 2\nraids = ["a", "b", "c", "d"]')]),
        ],
        **kw,
    )


def test_vg_model():
    vg = parse_metadata(_vg(seqno=7), limits=LIMITS)
    assert (vg.name, vg.id, vg.seqno, vg.extent_size, vg.extent_bytes) == (
        "vg-sys",
        "vgUUID-0123-4567-89ab-cdef-ghij-klmnop",
        7,
        8192,
        4 << 20,
    )
    assert vg.status == ("RESIZEABLE", "READ", "WRITE")
    pv = vg.pvs["pv0"]
    assert (pv.id, pv.uuid_plain, pv.pe_start, pv.pe_count) == (
        "pVUUID-abcd-efgh-ijkl-mnop-qrst-uvwxy0",
        "pVUUIDabcdefghijklmnopqrstuvwxy0",
        2048,
        10,
    )
    root, hidden, r1 = vg.lvs
    assert [(s.start_extent, s.extent_count, s.type, s.stripe_count, s.stripes) for s in root.segments] == [
        (0, 2, "striped", 1, (("pv0", 0),)),
        (2, 1, "striped", 1, (("pv0", 5),)),
    ]
    assert root.visible and not hidden.visible and root.extent_count == 3
    assert r1.segments[0].type == "raid1" and r1.segments[0].settings["raids"] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("extent_size = 8192", "extent_size = 0"), "line 7:1: vg-sys/extent_size: expected at least 1, got 0"),
        (("seqno = 1", 'seqno = "one"'), "line 3:1: vg-sys/seqno: expected an integer, got 'one'"),
        (("pe_count = 10", ""), "line 14:1: vg-sys/physical_volumes/pv0/pe_count: missing"),
        (
            ("segment_count = 2", "segment_count = 3"),
            "vg-sys/logical_volumes/root/segment_count: says 3, but the segments are segment1, segment2",
        ),
        (
            ("start_extent = 2", "start_extent = 4"),
            "vg-sys/logical_volumes/root/segment2/start_extent: expected 2 (segments must be contiguous), got 4",
        ),
        (
            ('"pv0", 5', '"pv0", 5, "pv0"'),
            "vg-sys/logical_volumes/root/segment2/stripes: expected 1 (PV name, extent) pairs",
        ),
        (
            ('"pv0", 5', '5, "pv0"'),
            "vg-sys/logical_volumes/root/segment2/stripes: pair 1 is not (PV name, extent): 5, 'pv0'",
        ),
        (("physical_volumes {", "physical_volumez {"), "vg-sys/physical_volumes: missing"),
    ],
)
def test_semantic_errors_name_the_key(edit, message):
    text = _vg().replace(edit[0], edit[1], 1)
    with pytest.raises(CorruptStructure) as e:
        parse_metadata(text, limits=LIMITS, where="w")
    assert str(e.value).startswith("LVM metadata on w: ")
    assert message in str(e.value)


def test_exactly_one_vg_section():
    with pytest.raises(CorruptStructure, match="expected exactly one volume group section, found 'a', 'b'"):
        parse_metadata("a { }\nb { }\n", limits=LIMITS, where="w")
    with pytest.raises(CorruptStructure, match="found none"):
        parse_metadata("contents = 1\n", limits=LIMITS, where="w")


def test_segment_count_over_max_extents():
    segs = [Seg(i, 1, [("pv0", i)]) for i in range(30)]
    text = vg_text("vg", pvs=[PvSpec("pv0", "p" * 32, pe_count=100)], lvs=[LvSpec("lv", segs)])
    assert len(parse_metadata(text, limits=LIMITS).lvs[0].segments) == 30
    with pytest.raises(LimitExceeded, match="30 exceeds the max_extents limit of 20"):
        parse_metadata(text, limits=Limits(max_extents=20))


def test_metadata_written_by_lvm_itself():
    """tests/data/volume/vg-sys.lvmtext: the current copy of lvm.img's metadata, as LVM 2.03 wrote it."""
    vg = parse_vg_metadata((DATA / "vg-sys.lvmtext").read_bytes(), limits=LIMITS, where="vg-sys.lvmtext")
    assert vg.name == "vg-sys"
    assert vg.extent_size == 8192
    assert list(vg.pvs) == ["pv0"]
    assert vg.pvs["pv0"].id == "pVsys0-AAAA-BBBB-CCCC-DDDD-EEEE-FFFFFF"
    assert [lv.name for lv in vg.lvs] == [
        "root",
        "my-swap",
        "multi-seg",
        "mirror-r1",
        "snap",
        "pool",
        "thin1",
        "mirror-r1_rmeta_0",
        "mirror-r1_rimage_0",
        "mirror-r1_rmeta_1",
        "mirror-r1_rimage_1",
        "snapshot0",
        "pool_tmeta",
        "pool_tdata",
        "lvol0_pmspare",
    ]
    multi = vg.lvs[2]
    assert [(s.start_extent, s.extent_count, s.stripes) for s in multi.segments] == [
        (0, 1, (("pv0", 4),)),
        (1, 1, (("pv0", 6),)),
    ]
    assert [lv.name for lv in vg.lvs if lv.visible] == ["root", "my-swap", "multi-seg", "mirror-r1", "pool", "thin1"]
