"""Hostile ext2/3/4 images: each damage ends in one VirtkitError naming the structure.

Every case patches bytes of a real fixture in memory (offsets found with the reader
itself, then checked against the fixture's known layout), opens it, does one thing,
and expects one exception type and message.  One case per Limits field the reader
uses: max_tree_depth, max_tree_nodes, max_extents, max_dir_entries, max_file_bytes,
max_symlink_hops.  A hypothesis property at the end flips bytes in the metadata of
several fixtures: opening and walking the tree gives a result or a VirtkitError.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Callable

import pytest
from ext4_support import PatchedSource, base_bytes, get, image, open_bytes, open_ext4, put
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtkit._streams import iter_chunks
from virtkit.boot.fs.base import FileType, Node
from virtkit.boot.fs.ext4 import Ext4, Ext4Node
from virtkit.boot.fs.ext4 import structs as S
from virtkit.errors import CorruptStructure, LimitExceeded, VirtkitError
from virtkit.limits import Limits

SB = 1024  # superblock offset
Patch = Callable[[bytearray, Ext4], None]


def node_of(fs: Ext4, path: str) -> Ext4Node:
    node = fs.lookup(path, follow=False)
    assert isinstance(node, Ext4Node)
    return node


def sb_field(name: str) -> int:
    return SB + S.SUPERBLOCK_FIELD_OFFSETS[name]


def iblock(fs: Ext4, path: str) -> int:
    """Volume offset of the inode's i_block (extent root or block pointers)."""
    return node_of(fs, path).inode.offset + 0x28


def data_block(fs: Ext4, path: str, index: int = 0) -> int:
    run = node_of(fs, path).runs()[index]
    assert run.physical is not None
    return run.physical * fs.sb.block_size


def root_block(fs: Ext4) -> int:
    return data_block(fs, "/")


# --- patches --------------------------------------------------------------------------


def depth_bomb(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 6, "<H", 0xFFFF)


def depth_six(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 6, "<H", 6)


def self_referencing_index(img: bytearray, fs: Ext4) -> None:
    """Root (depth 2) -> block B (depth 1) whose only index entry points at B again."""
    b = data_block(fs, "/grub/grub.cfg") // fs.sb.block_size
    root = iblock(fs, "/grub/grub.cfg")
    struct.pack_into("<HHHHI", img, root, S.EXT4_EXT_MAGIC, 1, 4, 2, 0)
    struct.pack_into("<IIHH", img, root + 12, 0, b, 0, 0)
    node = b * fs.sb.block_size
    struct.pack_into("<HHHHI", img, node, S.EXT4_EXT_MAGIC, 1, (fs.sb.block_size - 12) // 12, 1, 0)
    struct.pack_into("<IIHH", img, node + 12, 0, b, 0, 0)


def depth_not_decreasing(img: bytearray, fs: Ext4) -> None:
    """Root depth 1 -> a child block whose header also says depth 1."""
    b = data_block(fs, "/grub/grub.cfg") // fs.sb.block_size
    root = iblock(fs, "/grub/grub.cfg")
    struct.pack_into("<HHHHI", img, root, S.EXT4_EXT_MAGIC, 1, 4, 1, 0)
    struct.pack_into("<IIHH", img, root + 12, 0, b, 0, 0)
    struct.pack_into("<HHHHI", img, b * fs.sb.block_size, S.EXT4_EXT_MAGIC, 0, 4, 1, 0)


def bad_extent_magic(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg"), "<H", 0x1234)


def entries_over_max(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 2, "<H", 5)  # eh_entries 5 > eh_max 4


def max_over_capacity(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 4, "<H", 5)  # 5 entries do not fit in i_block


def extent_beyond_fs(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 12 + 8, "<I", 0x7FFFFFFF)


def extent_in_superblock(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 12 + 8, "<I", 0)


def zero_length_extent(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/grub/grub.cfg") + 12 + 4, "<H", 0)


def overlapping_extents(img: bytearray, fs: Ext4) -> None:
    root = iblock(fs, "/sparse.img")
    put(img, root + 24, "<I", 0)  # second extent starts at logical 0 too


def indirect_loop(img: bytearray, fs: Ext4) -> None:
    dind = get(img, iblock(fs, "/sparse.img") + 4 * S.EXT4_DIND_BLOCK, "<I")
    put(img, dind * fs.sb.block_size, "<I", dind)  # DIND[0] -> DIND


def indirect_beyond_fs(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/sparse.img") + 4 * S.EXT4_DIND_BLOCK, "<I", 0xFFFFFF00)


def dirent_rec_len_zero(img: bytearray, fs: Ext4) -> None:
    put(img, root_block(fs) + 4, "<H", 0)


def rec_len_to_disk(length: int, block_size: int) -> int:
    """The kernel's ext4_rec_len_to_disk (64 KiB blocks keep 2 high bits in the low bits)."""
    if block_size < 65536:
        return length
    return (length & 65532) | ((length >> 16) & 3)


def dirent_overrun(img: bytearray, fs: Ext4) -> None:
    bs = fs.sb.block_size
    put(img, root_block(fs) + 12 + 4, "<H", rec_len_to_disk(2 * bs - 12, bs))  # ".." runs past the block


def dirent_rec_len_unaligned(img: bytearray, fs: Ext4) -> None:
    put(img, root_block(fs) + 4, "<H", 13)


def dirent_name_past_rec_len(img: bytearray, fs: Ext4) -> None:
    put(img, root_block(fs) + 6, "<B", 200)  # "." with name_len 200 in a 12-byte record


def dirent_inode_out_of_range(img: bytearray, fs: Ext4) -> None:
    put(img, root_block(fs) + 24, "<I", 0x7FFFFFFF)  # lost+found's entry


def dirent_reserved_inode(img: bytearray, fs: Ext4) -> None:
    off = root_block(fs)
    while img[off + 8 : off + 8 + img[off + 6]] != b"grub":
        off += get(img, off + 4, "<H")
    put(img, off, "<I", 8)  # the journal inode


def dirent_empty_name(img: bytearray, fs: Ext4) -> None:
    put(img, root_block(fs) + 24 + 6, "<B", 0)  # lost+found with name_len 0


def directory_hole(img: bytearray, fs: Ext4) -> None:
    put(img, iblock(fs, "/"), "<I", 0)  # ext2 root directory: block 0 is a hole


def huge_size(img: bytearray, fs: Ext4) -> None:
    put(img, node_of(fs, "/vmlinuz-6.1.0-28-amd64").inode.offset + 0x6C, "<I", 0x7FFFFFFF)


def bad_extra_isize(img: bytearray, fs: Ext4) -> None:
    put(img, node_of(fs, "/grub/grub.cfg").inode.offset + 0x80, "<H", 0x7FFF)


def bad_mode(img: bytearray, fs: Ext4) -> None:
    put(img, node_of(fs, "/grub/grub.cfg").inode.offset, "<H", 0)


def root_not_a_directory(img: bytearray, fs: Ext4) -> None:
    put(img, fs.root().inode.offset, "<H", 0o100644)


def symlink_empty(img: bytearray, fs: Ext4) -> None:
    put(img, node_of(fs, "/vmlinuz").inode.offset + 4, "<I", 0)


def symlink_huge(img: bytearray, fs: Ext4) -> None:
    put(img, node_of(fs, "/long-link").inode.offset + 4, "<I", 1 << 20)


def inline_size_lies(img: bytearray, fs: Ext4) -> None:
    put(img, node_of(fs, "/deep/a/b/c/d/e/f/g/h/i/j/file.txt").inode.offset + 4, "<I", 500)


def inline_xattr_overrun(img: bytearray, fs: Ext4) -> None:
    inode = node_of(fs, "/long-link").inode
    area = inode.offset + 128 + inode.extra["i_extra_isize"]
    put(img, area + 4 + 2, "<H", 0x7000)  # e_value_offs far past the inode


def inode_table_beyond_fs(img: bytearray, fs: Ext4) -> None:
    gdt = (fs.sb.first_data_block + 1) * fs.sb.block_size
    put(img, gdt + 8, "<I", 0xFFFFFF00)


def sb_block_size(img: bytearray, fs: Ext4) -> None:
    put(img, sb_field("s_log_block_size"), "<I", 7)


def sb_inodes_count(img: bytearray, fs: Ext4) -> None:
    put(img, sb_field("s_inodes_count"), "<I", fs.sb.inodes_count + 1)


def sb_desc_size(img: bytearray, fs: Ext4) -> None:
    put(img, sb_field("s_desc_size"), "<H", 48)


def sb_inode_size(img: bytearray, fs: Ext4) -> None:
    put(img, sb_field("s_inode_size"), "<H", 100)


def sb_blocks_per_group(img: bytearray, fs: Ext4) -> None:
    put(img, sb_field("s_blocks_per_group"), "<I", 0)


def sb_first_meta_bg(img: bytearray, fs: Ext4) -> None:
    put(img, sb_field("s_first_meta_bg"), "<I", 1000)


def read_file(path: str) -> Callable[[Ext4], object]:
    return lambda fs: b"".join(iter_chunks(fs.lookup(path).open()))


def list_dir(path: str) -> Callable[[Ext4], object]:
    return lambda fs: [e.node() for e in fs.lookup(path).iter_dir()]


def resolve(path: str) -> Callable[[Ext4], object]:
    return lambda fs: fs.lookup(path)


def readlink(path: str) -> Callable[[Ext4], object]:
    return lambda fs: fs.lookup(path, follow=False).readlink()


def nothing(fs: Ext4) -> object:
    return fs


# fixture, patch, action after opening, exception, message fragment
CASES: list[tuple[str, Patch, Callable[[Ext4], object], type[Exception], str]] = [
    ("ext4-default", depth_bomb, read_file("/grub/grub.cfg"), LimitExceeded, "max_tree_depth"),
    ("ext4-default", depth_six, read_file("/grub/grub.cfg"), CorruptStructure, "eh_depth deeper than ext4 allows, expected <= 5, got 6"),
    ("ext4-default", self_referencing_index, read_file("/grub/grub.cfg"), CorruptStructure, r"referenced twice \(a cycle\)"),
    ("ext4-default", depth_not_decreasing, read_file("/grub/grub.cfg"), CorruptStructure, "eh_depth does not decrease"),
    ("ext4-default", bad_extent_magic, read_file("/grub/grub.cfg"), CorruptStructure, "bad extent header magic, expected 0xf30a"),
    ("ext4-default", entries_over_max, read_file("/grub/grub.cfg"), CorruptStructure, "eh_entries larger than eh_max"),
    ("ext4-default", max_over_capacity, read_file("/grub/grub.cfg"), CorruptStructure, "eh_max larger than the node"),
    ("ext4-default", extent_beyond_fs, read_file("/grub/grub.cfg"), CorruptStructure, "extent 0x7fffffff.1 outside the filesystem"),
    ("ext4-default", extent_in_superblock, read_file("/grub/grub.cfg"), CorruptStructure, "extent 0x0.1 outside the filesystem"),
    ("ext4-default", zero_length_extent, read_file("/grub/grub.cfg"), CorruptStructure, "zero-length extent"),
    ("ext4-default", overlapping_extents, read_file("/sparse.img"), CorruptStructure, "out of order or overlapping"),
    ("ext2", indirect_loop, read_file("/sparse.img"), CorruptStructure, r"used twice \(a loop\)"),
    ("ext2", indirect_beyond_fs, read_file("/sparse.img"), CorruptStructure, "indirect block 0xffffff00.1 outside"),
    ("ext4-default", dirent_rec_len_zero, list_dir("/"), CorruptStructure, "rec_len smaller than the minimum of 12"),
    ("ext4-default", dirent_overrun, list_dir("/"), CorruptStructure, "directory entry overrun"),
    ("ext4-64k", dirent_overrun, list_dir("/"), CorruptStructure, "directory entry overrun"),
    ("ext4-default", dirent_rec_len_unaligned, list_dir("/"), CorruptStructure, "not a multiple of 4"),
    ("ext4-default", dirent_name_past_rec_len, list_dir("/"), CorruptStructure, "name_len 200 does not fit in rec_len 12"),
    ("ext4-default", dirent_inode_out_of_range, list_dir("/"), CorruptStructure, "beyond s_inodes_count"),
    ("ext4-default", dirent_reserved_inode, resolve("/grub/grub.cfg"), CorruptStructure, "names a reserved inode"),
    ("ext4-default", dirent_empty_name, list_dir("/"), CorruptStructure, "live entry with an empty name"),
    ("ext2", directory_hole, list_dir("/"), CorruptStructure, "hole in the directory at block 0"),
    ("ext4-default", huge_size, read_file("/vmlinuz-6.1.0-28-amd64"), LimitExceeded, "max_file_bytes"),
    ("ext4-default", bad_extra_isize, resolve("/grub/grub.cfg"), CorruptStructure, "i_extra_isize: bad size"),
    ("ext4-default", bad_mode, resolve("/grub/grub.cfg"), CorruptStructure, "unknown file type"),
    ("ext4-default", root_not_a_directory, resolve("/grub"), CorruptStructure, "root inode 2 is not a directory"),
    ("ext4-default", symlink_empty, readlink("/vmlinuz"), CorruptStructure, "symlink length out of range"),
    ("ext4-default", symlink_huge, readlink("/long-link"), CorruptStructure, "symlink length out of range"),
    ("ext4-inline", inline_size_lies, read_file("/deep/a/b/c/d/e/f/g/h/i/j/file.txt"), CorruptStructure, "exceeds the 60 bytes of inline data"),
    ("ext4-inline", inline_xattr_overrun, readlink("/long-link"), CorruptStructure, "overruns the inode"),
    ("ext4-default", inode_table_beyond_fs, resolve("/grub"), CorruptStructure, "bg_inode_table outside the filesystem"),
    ("ext4-default", sb_block_size, nothing, CorruptStructure, "s_log_block_size: block size out of range"),
    ("ext4-default", sb_inodes_count, nothing, CorruptStructure, "s_inodes_count: does not match"),
    ("ext4-default", sb_desc_size, nothing, CorruptStructure, "s_desc_size"),
    ("ext4-default", sb_inode_size, nothing, CorruptStructure, "s_inode_size"),
    ("ext4-default", sb_blocks_per_group, nothing, CorruptStructure, "s_blocks_per_group: out of range"),
    ("ext4-metabg", sb_first_meta_bg, nothing, CorruptStructure, "s_first_meta_bg: beyond the descriptor blocks"),
]


@pytest.mark.parametrize(
    ("fixture", "patch", "action", "error", "match"),
    CASES,
    ids=[f"{c[0]}-{c[1].__name__}" for c in CASES],
)
def test_hostile(fixture: str, patch: Patch, action: Callable[[Ext4], object], error: type[Exception], match: str) -> None:
    img = image(fixture)
    patch(img, open_bytes(img))
    with pytest.raises(error, match=match) as info:
        action(open_bytes(img))
    assert "\n" not in str(info.value)
    assert "patched" in str(info.value) or isinstance(info.value, LimitExceeded)


def test_every_hostile_patch_is_used() -> None:
    used = {c[1] for c in CASES}
    defined = {
        v
        for v in globals().values()
        if inspect.isfunction(v) and v.__module__ == __name__ and list(inspect.signature(v).parameters) == ["img", "fs"]
    }
    assert defined <= used, defined - used


# --- limits with otherwise valid input -----------------------------------------------

LIMIT_CASES = [
    ("ext4-bigdir", Limits(max_tree_nodes=2), read_file("/big-dir/entry-000001-x"), "max_tree_nodes"),  # root + 2 leaf blocks
    ("ext2-nofiletype", Limits(max_tree_nodes=3), read_file("/vmlinuz-6.1.0-28-amd64"), "max_tree_nodes"),  # IND, DIND, IND...
    ("ext4-default", Limits(max_extents=1), read_file("/sparse.img"), "max_extents"),
    ("ext4-noextent", Limits(max_extents=1), read_file("/sparse.img"), "max_extents"),
    ("ext4-bigdir", Limits(max_dir_entries=100), list_dir("/big-dir"), "max_dir_entries"),
    ("ext4-default", Limits(max_file_bytes=1 << 20), read_file("/vmlinuz-6.1.0-28-amd64"), "max_file_bytes"),
    ("ext4-default", Limits(max_tree_depth=1), read_file("/grub/grub.cfg"), ""),  # depth 0 is fine
    ("ext4-default", Limits(max_symlink_hops=1), resolve("/grub/current-kernel"), "max_symlink_hops"),
]


@pytest.mark.parametrize(("fixture", "limits", "action", "name"), LIMIT_CASES)
def test_limits(fixture: str, limits: Limits, action: Callable[[Ext4], object], name: str) -> None:
    fs = open_ext4(fixture, limits)
    if not name:
        action(fs)
        return
    with pytest.raises(LimitExceeded, match=name):
        action(fs)
    action(open_ext4(fixture))  # the same thing is fine with the default limits


def test_inode_numbers_out_of_range() -> None:
    fs = open_ext4("ext4-default")
    for ino in (0, fs.sb.inodes_count + 1, 1 << 40):
        with pytest.raises(CorruptStructure, match="inode number out of range"):
            fs.inode(ino)


def test_huge_size_with_raised_limit_reads_zeros_past_the_data() -> None:
    img = image("ext4-default")
    huge_size(img, open_bytes(img))
    fs = open_bytes(img, Limits(max_file_bytes=1 << 63))
    src = fs.lookup("/vmlinuz-6.1.0-28-amd64").open()
    assert src.size == (0x7FFFFFFF << 32) | 2097275
    assert src.pread(src.size - 4096, 4096) == bytes(4096)


def test_truncated_volume() -> None:
    img = image("ext4-default")
    with pytest.raises(CorruptStructure, match="group descriptor table"):
        open_bytes(img[:6000])
    fs = open_bytes(img[: 3 * 1024 * 1024])
    with pytest.raises(CorruptStructure):
        b"".join(iter_chunks(fs.lookup("/vmlinuz-6.1.0-28-amd64").open()))


# --- property: mutated metadata -> a result or a VirtkitError ------------------------

MUTATION_FIXTURES = ["ext4-default", "ext4-1k", "ext2-nofiletype", "ext4-inline", "ext4-metabg"]


def _metadata_ranges(name: str) -> list[tuple[int, int]]:
    """Byte ranges worth flipping: superblock, descriptors, the used inodes, the root's blocks."""
    fs = open_ext4(name)
    bs = fs.sb.block_size
    ranges = [(1024, 2048), ((fs.sb.first_data_block + 1) * bs, (fs.sb.first_data_block + 2) * bs)]
    first = fs.inode_offset(1)
    ranges.append((first, first + 64 * fs.sb.inode_size))
    for run in fs.root().runs():
        if run.physical is not None:
            ranges.append((run.physical * bs, (run.physical + run.count) * bs))
    for path in ("/grub", "/deep/a"):
        for run in fs.lookup(path).runs():  # type: ignore[attr-defined]
            if run.physical is not None:
                ranges.append((run.physical * bs, (run.physical + run.count) * bs))
    ranges.append((0, 65536))
    return ranges


_RANGES: dict[str, list[tuple[int, int]]] = {}


def _walk_everything(fs: Ext4) -> None:
    budget = 300
    stack: list[Node] = [fs.root()]
    while stack and budget:
        node = stack.pop()
        budget -= 1
        st_ = node.stat()
        if st_.type is FileType.DIRECTORY:
            for entry in node.iter_dir():
                stack.append(entry.node())
        elif st_.type is FileType.SYMLINK:
            node.readlink()
        else:
            src = node.open()
            src.pread(0, min(src.size, 65536))
            if src.size > 65536:
                src.pread(src.size - 4096, 4096)
    for path in ("/vmlinuz", "/grub/grub.cfg", "/long-link"):
        fs.lookup(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(MUTATION_FIXTURES),
    picks=st.lists(st.tuples(st.integers(0, 10**6), st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_mutated_metadata_gives_result_or_virtkit_error(which: str, picks: list[tuple[int, float, int]]) -> None:
    if which not in _RANGES:
        _RANGES[which] = _metadata_ranges(which)
    ranges = _RANGES[which]
    base = base_bytes(which)
    patches: dict[int, int] = {}
    for sel, where, xor in picks:
        lo, hi = ranges[sel % len(ranges)]
        off = lo + int(where * (hi - lo))
        patches[off] = base[off] ^ xor
    try:
        fs = Ext4.open(PatchedSource(base, patches), limits=Limits(max_file_bytes=1 << 30, max_dir_entries=20_000))
        _walk_everything(fs)
    except VirtkitError:
        pass
