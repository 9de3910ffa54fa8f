"""Hostile iso9660 images -> one clear VirtkitError, never a hang or another exception.

The five XSA-497 findings in Xen's iso9660 reader each have a regression test
here (``test_xsa497_*``), made by patching real xorriso/genisoimage images.
Plus one case per limit the reader uses and a hypothesis property.
"""

from __future__ import annotations

import struct
from pathlib import Path

import isobuild
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import fixture_path
from virtkit._streams import BytesSource
from virtkit.boot.fs.base import FileType, Node
from virtkit.boot.fs.iso9660 import Iso9660, IsoNode
from virtkit.errors import CorruptStructure, LimitExceeded, NotThisFormat, UnsupportedFeature, VirtkitError
from virtkit.limits import Limits

SECTOR = 2048
_CACHE: dict[str, bytes] = {}


def image(name: str = "rr-joliet") -> bytearray:
    if name not in _CACHE:
        _CACHE[name] = Path(fixture_path(f"iso9660/{name}.iso.gz")).read_bytes()
    return bytearray(_CACHE[name])


def open_bytes(data: bytes | bytearray, limits: Limits | None = None) -> Iso9660:
    return Iso9660.open(BytesSource(bytes(data), "hostile"), limits=limits or Limits())


def record_at(name: str, path: str) -> tuple[bytearray, int]:
    """A fresh copy of image ``name`` and the volume offset of ``path``'s directory record."""
    data = image(name)
    node = open_bytes(data).lookup(path, follow=False)
    assert isinstance(node, IsoNode)
    return data, node.entry.inode


def su_entry(data: bytearray, rec: int, sig: bytes) -> int:
    """Volume offset of the SUSP entry ``sig`` inside the record at ``rec`` (SUSP skip 0)."""
    length, name_len = data[rec], data[rec + 32]
    pos = rec + 33 + name_len + (1 - name_len % 2)
    while pos + 4 <= rec + length:
        if bytes(data[pos : pos + 2]) == sig:
            return pos
        pos += data[pos + 2]
    raise AssertionError(f"no {sig!r} entry")


def list_root(data: bytes | bytearray, limits: Limits | None = None) -> list[str]:
    return [e.name for e in open_bytes(data, limits).root().iter_dir()]


def ce_entry(block: int, offset: int, length: int) -> bytes:
    both = isobuild.both32
    return b"CE\x1c\x01" + both(block) + both(offset) + both(length)


def with_ce(block: int, offset: int, length: int) -> tuple[bytearray, int]:
    """rr-joliet with /grub's 36-byte PX entry replaced by a CE entry (28 bytes) and an 8-byte filler.

    Returns the image and the PX entry's bytes' original offset (its bytes are kept so
    a continuation area can hold them).
    """
    data, rec = record_at("rr-joliet", "/grub")
    px = su_entry(data, rec, b"PX")
    assert data[px + 2] == 36
    data[px : px + 36] = ce_entry(block, offset, length) + b"XX\x08\x01" + b"\0" * 4
    return data, px


def original_px() -> bytes:
    data, rec = record_at("rr-joliet", "/grub")
    px = su_entry(data, rec, b"PX")
    return bytes(data[px : px + 36])


# -- the five XSA-497 findings -------------------------------------------------------


@pytest.mark.parametrize(("length", "message"), [(0x14, "shorter than the header"), (33, "shorter than the header")])
def test_xsa497_directory_record_length_not_validated(length: int, message: str) -> None:
    data, rec = record_at("rr-joliet", "/grub")
    data[rec] = length
    with pytest.raises(CorruptStructure, match=message) as info:
        list_root(data)
    assert f"at {rec:#x}" in str(info.value)


def test_xsa497_directory_record_crossing_its_sector() -> None:
    fs = open_bytes(image())
    offsets = sorted(e.inode for e in fs.root().iter_dir())
    root_start = fs.root().entry.inode
    last_in_first_sector = max(o for o in offsets if o < root_start + SECTOR)
    data = image()
    data[last_in_first_sector] = 255
    with pytest.raises(CorruptStructure, match="crosses the end of its sector"):
        list_root(data)


@pytest.mark.parametrize("how", ["LEN_SKP", "identifier length"])
def test_xsa497_system_use_length_underflow(how: str) -> None:
    data, rec = record_at("rr-joliet", "/grub")
    if how == "LEN_SKP":
        fs = open_bytes(image())
        dot = fs.root().entry.records[0].extent * SECTOR  # the root's "." record, which holds SP
        assert bytes(data[dot + 34 : dot + 36]) == b"SP"
        data[dot + 34 + 6] = 250  # every record's System Use area would start past its end
    else:
        # An odd record length whose even identifier fills it: the padding byte, and so
        # the System Use area, would lie past the record's end.
        data[rec] -= 1
        data[rec + 32] = data[rec] - 33
        assert data[rec + 32] % 2 == 0
    with pytest.raises(CorruptStructure, match="System Use area would start"):
        list_root(data)


@pytest.mark.parametrize(("length", "message"), [(0, "shorter than the 4-byte header"), (2, "shorter than the 4-byte header"), (250, "overruns the System Use area")])
def test_xsa497_susp_entry_length(length: int, message: str) -> None:
    data, rec = record_at("rr-joliet", "/grub")
    data[su_entry(data, rec, b"TF") + 2] = length
    with pytest.raises(CorruptStructure, match=message):
        list_root(data)


@pytest.mark.parametrize("length", [4, 3])
def test_xsa497_nm_length_underflow(length: int) -> None:
    data, rec = record_at("rr-joliet", "/grub")
    data[su_entry(data, rec, b"NM") + 2] = length
    with pytest.raises(CorruptStructure):
        list_root(data)
    if length == 4:
        with pytest.raises(CorruptStructure, match=r"NM.*shorter than 5"):
            list_root(data)


@pytest.mark.parametrize(
    ("block", "offset", "length"),
    [
        (1, 2000, 100),  # crosses the end of its block
        (1, 0xFFFFFFF0, 0x20),  # offset far past the block
        (1, 0, 0xFFFFFFFF),  # unbounded size
        (0x7FFFFFFF, 0, 36),  # block outside the volume
    ],
)
def test_xsa497_ce_continuation_unbounded(block: int, offset: int, length: int) -> None:
    data, _ = with_ce(block, offset, length)
    with pytest.raises(CorruptStructure, match="does not fit in one 2048-byte block of the volume"):
        list_root(data)


# -- continuation areas: followed, looped, bounded ------------------------------------


def test_ce_is_followed() -> None:
    data, _ = with_ce(1, 100, 36)
    data[SECTOR + 100 : SECTOR + 136] = original_px()  # the PX now lives in the system area, block 1
    fs = open_bytes(data)
    assert fs.lookup("/grub").stat().mode == 0o40755


def test_ce_loop() -> None:
    data, _ = with_ce(1, 0, 36 + 28)
    data[SECTOR : SECTOR + 64] = original_px() + ce_entry(1, 0, 64)  # points back at itself
    with pytest.raises(CorruptStructure, match="continuation areas form a loop at block 1 offset 0"):
        list_root(data)


def test_limit_max_chain_length_ce() -> None:
    data, _ = with_ce(1, 0, 28)
    for block in (1, 2, 3):
        data[block * SECTOR : block * SECTOR + 28] = ce_entry(block + 1, 0, 36 if block == 3 else 28)
    data[4 * SECTOR : 4 * SECTOR + 36] = original_px()
    assert open_bytes(data).lookup("/grub").stat().mode == 0o40755  # 4 hops are fine by default
    with pytest.raises(LimitExceeded, match="max_chain_length"):
        list_root(data, Limits(max_chain_length=3))


# -- other SUSP / Rock Ridge damage --------------------------------------------------


def test_symlink_component_overrun() -> None:
    data, rec = record_at("rr-joliet", "/vmlinuz")
    sl = su_entry(data, rec, b"SL")
    data[sl + 6] = 200  # first component's length
    with pytest.raises(CorruptStructure, match="symlink component of 200 bytes overruns"):
        list_root(data)


def test_px_too_short() -> None:
    data, rec = record_at("rr-joliet", "/grub")
    data[su_entry(data, rec, b"PX") + 2] = 20
    with pytest.raises(CorruptStructure):
        list_root(data)


def test_zisofs_file_is_unsupported() -> None:
    data, rec = record_at("rr-joliet", "/grub/grub.cfg")
    tf = su_entry(data, rec, b"TF")
    data[tf : tf + 2] = b"ZF"
    with pytest.raises(UnsupportedFeature, match="zisofs"):
        open_bytes(data).lookup("/grub/grub.cfg").open()


def test_interleaved_file_is_unsupported() -> None:
    data, rec = record_at("rr-joliet", "/grub/grub.cfg")
    data[rec + 26] = 1  # file unit size
    with pytest.raises(UnsupportedFeature, match="interleaved"):
        open_bytes(data).lookup("/grub/grub.cfg").open()


@pytest.mark.parametrize(("target", "message"), [(0x7FFFFFF0, "points outside the volume"), (1, "finds no directory record")])
def test_child_link_damage(target: int, message: str) -> None:
    data = image("genisoimage-rr")
    fs = open_bytes(data)
    node = fs.lookup("/deep/a/b/c/d/e/f/g")
    assert isinstance(node, IsoNode) and node.entry.rr is not None and node.entry.rr.child_link is not None
    rec = node.entry.inode
    cl = su_entry(data, rec, b"CL")
    data[cl + 4 : cl + 12] = isobuild.both32(target)
    with pytest.raises(CorruptStructure, match=message):
        list(open_bytes(data).lookup("/deep/a/b/c/d/e/f/g").iter_dir())


def test_child_link_to_a_file_extent() -> None:
    data = image("genisoimage-rr")
    fs = open_bytes(data)
    node = fs.lookup("/deep/a/b/c/d/e/f/g")
    assert isinstance(node, IsoNode)
    cl = su_entry(data, node.entry.inode, b"CL")
    file_block = fs.lookup("/grub/grub.cfg").entry.records[0].extent  # type: ignore[attr-defined]
    data[cl + 4 : cl + 12] = isobuild.both32(file_block)
    with pytest.raises(CorruptStructure, match="relocated directory /deep/a/b/c/d/e/f/g"):
        list(open_bytes(data).lookup("/deep/a/b/c/d/e/f/g").iter_dir())


# -- multi-extent --------------------------------------------------------------------


def test_multi_extent_without_final_extent() -> None:
    records = [isobuild.dir_record(b"M.BIN;1", 19, 2048, 0x80)]
    with pytest.raises(CorruptStructure, match="no final extent"):
        list_root(isobuild.build_iso(records, {19: b"x" * 2048}))


def test_multi_extent_continued_by_another_name() -> None:
    records = [isobuild.dir_record(b"M.BIN;1", 19, 2048, 0x80), isobuild.dir_record(b"N.BIN;1", 20, 10)]
    with pytest.raises(CorruptStructure, match="continues with a record of another name"):
        list_root(isobuild.build_iso(records, {19: b"x" * 2048, 20: b"y" * 10}))


def test_limit_max_extents() -> None:
    iso = isobuild.multi_extent_iso([b"a" * 2048, b"b" * 2048, b"c"])
    assert list_root(iso, Limits(max_extents=3)) == ["multi.bin", "after.txt"]
    with pytest.raises(LimitExceeded, match="max_extents"):
        list_root(iso, Limits(max_extents=2))


# -- volume descriptors and the root -------------------------------------------------


def test_no_terminator() -> None:
    data = image()
    fs = open_bytes(data)
    assert fs.names == "rockridge"
    # Find the terminator and break its identifier: the set then runs into a non-descriptor.
    i = 16
    while data[i * SECTOR] != 255:
        i += 1
    data[i * SECTOR + 1 : i * SECTOR + 6] = b"CD002"
    with pytest.raises(CorruptStructure, match="no CD001 standard identifier"):
        open_bytes(data)


def test_descriptor_set_truncated() -> None:
    with pytest.raises(CorruptStructure, match="ends without a terminator"):
        open_bytes(image()[: 17 * SECTOR])


def test_no_primary_descriptor() -> None:
    data = image()
    data[16 * SECTOR] = 3  # volume partition descriptor
    with pytest.raises(CorruptStructure, match="no primary volume descriptor"):
        open_bytes(data)


def test_bad_block_size() -> None:
    data = image()
    struct.pack_into("<H", data, 16 * SECTOR + 128, 4096)
    with pytest.raises(CorruptStructure, match="logical block size"):
        open_bytes(data)


def test_root_not_a_directory() -> None:
    data = image()
    data[16 * SECTOR + 156 + 25] = 0
    with pytest.raises(CorruptStructure, match="not a directory"):
        open_bytes(data)


def test_root_extent_outside_volume() -> None:
    data = image()
    data[16 * SECTOR + 156 + 2 : 16 * SECTOR + 156 + 10] = isobuild.both32(0x7FFFFFF0)
    with pytest.raises(CorruptStructure, match="lies outside the volume"):
        open_bytes(data)


def test_descriptor_only_is_not_iso() -> None:
    with pytest.raises(NotThisFormat):
        open_bytes(b"\0" * (16 * SECTOR) + b"\x01CD00")


# -- limits ----------------------------------------------------------------------------


def test_limit_max_dir_entries() -> None:
    assert len(list_root(image(), Limits(max_dir_entries=19))) == 19
    with pytest.raises(LimitExceeded, match="max_dir_entries"):
        list_root(image(), Limits(max_dir_entries=18))


def test_limit_max_read() -> None:
    with pytest.raises(LimitExceeded, match="max_read"):
        list_root(image(), Limits(max_read=2048))  # the root directory is 4096 bytes


def test_limit_max_file_bytes() -> None:
    fs = open_bytes(image(), Limits(max_file_bytes=1 << 20))
    with pytest.raises(LimitExceeded, match="max_file_bytes"):
        fs.lookup("/vmlinuz-6.1.0-28-amd64").open()


def test_limit_max_name_bytes() -> None:
    with pytest.raises(LimitExceeded, match="max_name_bytes"):
        list_root(image(), Limits(max_name_bytes=16))


def test_limit_max_string_bytes_symlink() -> None:
    fs = open_bytes(image(), Limits(max_string_bytes=64))
    with pytest.raises(LimitExceeded, match="max_string_bytes"):
        list(fs.root().iter_dir())  # /long-link's target is 113 bytes


# -- property ----------------------------------------------------------------------------


def walk(node: Node, budget: list[int]) -> None:
    for e in node.iter_dir():
        budget[0] -= 1
        if budget[0] <= 0:
            return
        child = e.node()
        child.stat()
        if child.type is FileType.DIRECTORY:
            walk(child, budget)
        elif child.type is FileType.SYMLINK:
            child.readlink()
        else:
            src = child.open()
            if src.size:
                src.pread(0, min(src.size, 4096))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["rr-joliet", "genisoimage-rr", "joliet", "plain"]),
    patches=st.lists(st.tuples(st.integers(16 * SECTOR, 100 * SECTOR), st.integers(0, 255)), min_size=1, max_size=24),
)
def test_mutated_images_fail_cleanly(name: str, patches: list[tuple[int, int]]) -> None:
    data = image(name)
    for pos, value in patches:
        data[pos] = value
    try:
        fs = open_bytes(data)
        walk(fs.root(), [300])
    except VirtkitError:
        pass


def test_limit_max_chain_length_descriptor_set() -> None:
    # rr-joliet has a primary and a Joliet descriptor before its terminator.
    assert open_bytes(image(), Limits(max_chain_length=2)).names == "rockridge"
    with pytest.raises(LimitExceeded, match="volume descriptor set"):
        open_bytes(image(), Limits(max_chain_length=1))
