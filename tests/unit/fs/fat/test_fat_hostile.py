"""Hostile FAT images: damaged chains, directories and boot sectors -> one clear VirtkitError.

Each case patches a real mkfs.vfat image in memory.  One case per limit the
reader uses (max_chain_length, max_dir_entries, max_read, max_file_bytes,
max_extents), plus a hypothesis property: mutated images give a result or a
VirtkitError, never another exception or a hang.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import fixture_path
from virtkit._streams import BytesSource, iter_chunks
from virtkit.boot.fs.base import FileType, Node
from virtkit.boot.fs.fat import Fat, FatNode
from virtkit.errors import CorruptStructure, LimitExceeded, NotThisFormat, VirtkitError
from virtkit.limits import Limits

_CACHE: dict[str, bytes] = {}


def image(name: str) -> bytearray:
    if name not in _CACHE:
        _CACHE[name] = Path(fixture_path(f"fat/{name}.img.gz")).read_bytes()
    return bytearray(_CACHE[name])


def open_bytes(data: bytes | bytearray, limits: Limits | None = None) -> Fat:
    return Fat.open(BytesSource(bytes(data), "hostile"), limits=limits or Limits())


def set_fat(data: bytearray, fs: Fat, cluster: int, value: int) -> None:
    """Write FAT entry ``cluster`` of the FAT the reader uses."""
    g = fs.geometry
    if g.fat_type == 12:
        off = g.fat_offset + cluster + cluster // 2
        pair = data[off] | data[off + 1] << 8
        pair = (pair & 0x000F) | (value << 4) if cluster & 1 else (pair & 0xF000) | value
        data[off : off + 2] = pair.to_bytes(2, "little")
    elif g.fat_type == 16:
        struct.pack_into("<H", data, g.fat_offset + 2 * cluster, value)
    else:
        struct.pack_into("<I", data, g.fat_offset + 4 * cluster, value)


def entry_of(fs: Fat, path: str) -> tuple[int, int, int]:
    """(first cluster, size, volume offset of the short directory entry) of ``path``."""
    node = fs.lookup(path)
    assert isinstance(node, FatNode) and node.entry is not None
    return node.entry.first_cluster, node.entry.size, node.inode


def clean(name: str) -> tuple[bytearray, Fat]:
    data = image(name)
    return data, open_bytes(data)


def read_whole(fs: Fat, path: str) -> bytes:
    return b"".join(iter_chunks(fs.lookup(path).open()))


EOC16 = 0xFFFF

# -- cluster chains of files ---------------------------------------------------------

# (case, fat entry patch as a function of the file's first cluster and cluster count, message)
FILE_CHAINS = [
    ("cycle at the end", lambda c, n, fs: (c + n - 1, c), "goes on after the"),
    ("cycle in the middle", lambda c, n, fs: (c + 1, c), "goes on after the"),
    ("out of range", lambda c, n, fs: (c, fs.geometry.max_cluster + 5), "points outside the volume"),
    ("free cluster", lambda c, n, fs: (c, 0), "reaches a free cluster"),
    ("reserved value", lambda c, n, fs: (c, 1), "reaches the reserved value 1"),
    ("bad cluster mark", lambda c, n, fs: (c, 0xFFF7), "bad-cluster mark"),
    ("ends early", lambda c, n, fs: (c + 2, EOC16), "ends before the end of the file"),
]


@pytest.mark.parametrize(("case", "patch", "message"), FILE_CHAINS, ids=[c[0] for c in FILE_CHAINS])
def test_file_chain_damage(case: str, patch: object, message: str) -> None:
    data, fs = clean("fat16")
    first, size, _ = entry_of(fs, "/vmlinuz-6.1.0-28-amd64")
    n = -(-size // fs.geometry.cluster_size)
    cluster, value = patch(first, n, fs)  # type: ignore[operator]
    set_fat(data, fs, cluster, value)
    bad = open_bytes(data)
    with pytest.raises(CorruptStructure, match=message) as info:
        bad.lookup("/vmlinuz-6.1.0-28-amd64").open()
    assert "FAT16 on hostile: /vmlinuz-6.1.0-28-amd64" in str(info.value)


@pytest.mark.parametrize("name", ["fat12", "fat16", "fat32"])
def test_chain_through_the_last_cluster_to_one_past_it(name: str) -> None:
    # entry(max) == max + 1 looks like a contiguous link but points outside the volume.
    data, fs = clean(name)
    first, _, _ = entry_of(fs, "/initrd.img-5.10.0-30-amd64")
    top = fs.geometry.max_cluster
    set_fat(data, fs, first, top)
    set_fat(data, fs, top, top + 1)
    with pytest.raises(CorruptStructure, match="points outside the volume after cluster"):
        open_bytes(data).lookup("/initrd.img-5.10.0-30-amd64").open()


@pytest.mark.parametrize("name", ["fat12", "fat32"])
def test_file_cycle_other_widths(name: str) -> None:
    data, fs = clean(name)
    first, _, _ = entry_of(fs, "/initrd.img-5.10.0-30-amd64")
    set_fat(data, fs, first + 1, first)
    with pytest.raises(CorruptStructure, match="a cycle or cross-linked chain"):
        open_bytes(data).lookup("/initrd.img-5.10.0-30-amd64").open()


@pytest.mark.parametrize(("first_cluster", "message"), [(0xFFF0, "first cluster is outside"), (1, "first cluster is outside")])
def test_file_first_cluster_out_of_range(first_cluster: int, message: str) -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/grub/grub.cfg")
    struct.pack_into("<H", data, where + 26, first_cluster)  # DIR_FstClusLO
    with pytest.raises(CorruptStructure, match=message):
        open_bytes(data).lookup("/grub/grub.cfg").open()


def test_file_size_larger_than_chain() -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/grub/grub.cfg")
    struct.pack_into("<I", data, where + 28, 100_000)  # DIR_FileSize
    with pytest.raises(CorruptStructure, match="ends before the end of the file"):
        open_bytes(data).lookup("/grub/grub.cfg").open()


def test_empty_file_with_stray_cluster_reads_empty() -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/config-6.1.0-28-amd64")
    struct.pack_into("<H", data, where + 26, 0xFFF0)
    assert open_bytes(data).lookup("/config-6.1.0-28-amd64").open().size == 0


# -- directories ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fat12", "fat16", "fat32"])
def test_directory_self_cycle(name: str) -> None:
    data, fs = clean(name)
    first, _, _ = entry_of(fs, "/grub")
    set_fat(data, fs, first, first)
    with pytest.raises(CorruptStructure, match="cyclic cluster chain"):
        list(open_bytes(data).lookup("/grub").iter_dir())


def test_fat32_root_directory_cycle() -> None:
    data, fs = clean("fat32")
    root = fs.geometry.root_cluster
    set_fat(data, fs, root, root)
    with pytest.raises(CorruptStructure, match="cyclic cluster chain"):
        open_bytes(data)  # the root is read at open (the label lives there)


def test_directory_chain_out_of_range() -> None:
    data, fs = clean("fat16")
    first, _, _ = entry_of(fs, "/names")
    set_fat(data, fs, first, 0xFFF0)
    with pytest.raises(CorruptStructure, match="points outside the volume"):
        open_bytes(data).lookup("/names/lower.txt")


def test_directory_entry_first_cluster_zero_is_root() -> None:
    # GRUB: a directory entry with first cluster 0 points at the root.
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/empty-dir")
    struct.pack_into("<H", data, where + 26, 0)
    bad = open_bytes(data)
    assert {e.name for e in bad.lookup("/empty-dir").iter_dir()} == {e.name for e in bad.root().iter_dir()}


def test_end_marker_stops_listing() -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/names/UPPER.TXT")
    data[where] = 0x00
    names = [e.name for e in open_bytes(data).lookup("/names").iter_dir()]
    assert names == ["Ελληνικά.txt", "lowerb.TXT"]


# -- long names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "byte", "value"),
    [
        ("checksum", 13, 0x00),  # LDIR_Chksum of the entry right before the short entry
        ("ordinal", 0, 0x05),  # LDIR_Ord out of sequence
    ],
)
def test_broken_long_name_falls_back_to_short(case: str, byte: int, value: int) -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/names/MixedCase.Txt")
    data[where - 32 + byte] = value
    names = {e.name for e in open_bytes(data).lookup("/names").iter_dir()}
    assert "MIXEDC~1.TXT" in names and "MixedCase.Txt" not in names


def test_long_name_with_slash_falls_back_to_short() -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/names/MixedCase.Txt")
    data[where - 32 + 1 : where - 32 + 3] = "/".encode("utf-16-le")
    names = {e.name for e in open_bytes(data).lookup("/names").iter_dir()}
    assert "MIXEDC~1.TXT" in names


def test_deleted_long_name_part_falls_back_to_short() -> None:
    data, fs = clean("fat16")
    _, _, where = entry_of(fs, "/names/MixedCase.Txt")
    data[where - 32] = 0xE5
    names = {e.name for e in open_bytes(data).lookup("/names").iter_dir()}
    assert "MIXEDC~1.TXT" in names


# -- limits (one hostile input each) -------------------------------------------------


def test_limit_max_chain_length_file() -> None:
    data = image("fat16")
    fs = open_bytes(data, Limits(max_chain_length=100))
    with pytest.raises(LimitExceeded, match="max_chain_length"):
        fs.lookup("/vmlinuz-6.1.0-28-amd64").open()


def test_limit_max_chain_length_directory() -> None:
    with pytest.raises(LimitExceeded, match="max_chain_length"):
        open_bytes(image("fat32"), Limits(max_chain_length=1))  # the FAT32 root has 3 clusters


def test_limit_max_dir_entries() -> None:
    with pytest.raises(LimitExceeded, match="directory /: 4 exceeds the max_dir_entries limit of 3"):
        open_bytes(image("fat16"), Limits(max_dir_entries=3))  # the root is read at open (the label)
    fs = open_bytes(image("fat16"), Limits(max_dir_entries=16))  # the root has exactly 16
    assert len(list(fs.root().iter_dir())) == 16


def test_limit_max_read_directory() -> None:
    with pytest.raises(LimitExceeded, match="max_read"):
        open_bytes(image("fat16"), Limits(max_read=4096))  # the fixed root is 16 KiB


def test_limit_max_file_bytes() -> None:
    fs = open_bytes(image("fat16"), Limits(max_file_bytes=1 << 20))
    with pytest.raises(LimitExceeded, match="max_file_bytes"):
        fs.lookup("/vmlinuz-6.1.0-28-amd64").open()


def test_limit_max_extents() -> None:
    fs = open_bytes(image("fat16"), Limits(max_extents=1))
    with pytest.raises(LimitExceeded, match="max_extents"):
        fs.lookup("/frag.bin").open()


# -- boot sector recognition ---------------------------------------------------------


def put(data: bytearray, offset: int, fmt: str, value: int) -> bytearray:
    struct.pack_into(fmt, data, offset, value)
    return data


BPB_CASES = [
    ("jump", 0, "<B", 0x00, "jump instruction"),
    ("signature", 510, "<H", 0x0000, "no 0x55aa signature"),
    ("bytes per sector", 11, "<H", 768, "bytes per sector 768"),
    ("bytes per sector 0", 11, "<H", 0, "bytes per sector 0"),
    ("sectors per cluster", 13, "<B", 3, "sectors per cluster 3"),
    ("reserved", 14, "<H", 0, "no reserved sectors"),
    ("fat count", 16, "<B", 3, "FAT count 3"),
    ("media", 21, "<B", 0x12, "media byte 0x12"),
    ("total sectors", 19, "<H", 0, "total sector counts"),
    ("root entries", 17, "<H", 3, "fixed root directory of 3 entries"),
    ("FAT too small", 22, "<H", 2, "holds"),
    ("metadata too big", 22, "<H", 0x7FFF, "does not leave room"),
]


@pytest.mark.parametrize(("case", "offset", "fmt", "value", "message"), BPB_CASES, ids=[c[0] for c in BPB_CASES])
def test_not_a_fat_boot_sector(case: str, offset: int, fmt: str, value: int, message: str) -> None:
    data = put(image("fat16"), offset, fmt, value)
    with pytest.raises(NotThisFormat, match=message):
        open_bytes(data)


def test_media_byte_must_match_first_fat_entry() -> None:
    data, fs = clean("fat16")
    data[fs.geometry.fat_offset] = 0xF9
    with pytest.raises(NotThisFormat, match="FAT\\[0\\] is 0xfff9, not the media byte 0xf8"):
        open_bytes(data)
    data[fs.geometry.fat_offset] = 0xF0  # bit 3 is ignored, as GRUB does (BIOSes rewrite it)
    assert open_bytes(data).fat_type == 16


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (44, "<I", 1, "root cluster 1"),  # BPB_RootClus
        (42, "<H", 1, "FAT32 version"),  # BPB_FSVer
        (40, "<H", 0x83, "active FAT 3"),  # BPB_ExtFlags: no mirroring, FAT #3 of 2
    ],
)
def test_not_a_fat32_boot_sector(offset: int, fmt: str, value: int, message: str) -> None:
    with pytest.raises(NotThisFormat, match=message):
        open_bytes(put(image("fat32"), offset, fmt, value))


def test_fat32_active_fat_is_used() -> None:
    data, fs = clean("fat32")
    put(data, 40, "<H", 0x81)  # mirroring off, FAT #1 active
    assert open_bytes(data).geometry.fat_offset == fs.geometry.fat_offset + fs.geometry.fat_bytes


@pytest.mark.parametrize("blob", [b"", b"\0" * 4096, b"\xeb\x3c\x90" + b"\xff" * 4093])
def test_junk_is_not_fat(blob: bytes) -> None:
    with pytest.raises(NotThisFormat):
        open_bytes(blob)


def test_filesystem_larger_than_volume() -> None:
    data = image("fat16")
    with pytest.raises(CorruptStructure, match="larger than its volume"):
        open_bytes(data[: len(data) // 2])


# -- property: mutated images never escape as anything but VirtkitError ---------------


def walk(fs: Fat, node: Node, budget: list[int]) -> None:
    for e in node.iter_dir():
        budget[0] -= 1
        if budget[0] <= 0:
            return
        child = e.node()
        child.stat()
        if child.type is FileType.DIRECTORY:
            walk(fs, child, budget)
        else:
            src = child.open()
            if src.size:
                src.pread(0, min(src.size, 4096))
                src.pread(src.size - 1, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["fat12-4k", "fat16", "fat32"]),
    patches=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=24),
)
def test_mutated_images_fail_cleanly(name: str, patches: list[tuple[int, int]]) -> None:
    data = image(name)
    probe = open_bytes(data)
    meta_end = probe.geometry.data_offset + 64 * 1024  # boot sector, FATs, root, first directories
    for pos, value in patches:
        data[pos % meta_end] = value
    try:
        fs = open_bytes(data)
        walk(fs, fs.root(), [400])
    except VirtkitError:
        pass
