"""ext2/3/4 reader on real mke2fs (and one kernel-written) images: the shared /boot tree
on every variant, and exact values (UUIDs, labels, types, inode numbers, sizes, times,
block runs) checked against what debugfs reports for the committed fixtures.

Fixtures: tests/tools/make_ext4_fixtures.sh (see tests/data/README.md).
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from ext4_support import FIXTURES, image, open_bytes, open_ext4, put

from fs_contract import assert_boot_tree, boot_tree, sha256_of
from virtkit._streams import read_all
from virtkit.boot.fs import open_filesystem
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.ext4 import Ext4, Ext4Node
from virtkit.boot.fs.ext4 import structs as S
from virtkit.boot.fs.ext4.mapping import BlockRun
from virtkit.errors import FileNotFound, LimitExceeded, NotThisFormat, UnsupportedFeature
from virtkit.limits import Limits

T0 = 1_700_000_000 * 10**9  # boot_tree.py pins every mtime to this


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_boot_tree(name: str) -> None:
    assert_boot_tree(open_ext4(name), big_dir=FIXTURES[name])


# name, fstype, uuid, label, block size, groups, inode size, descriptor size
SUPERBLOCKS = [
    ("ext4-default", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a01", "boot-ext4", 4096, 1, 256, 64),
    ("ext4-no64bit", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a02", "no64bit", 4096, 1, 256, 32),
    ("ext4-noextent", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a03", "", 4096, 1, 256, 32),
    ("ext2", "ext2", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a04", "ext2 boot", 4096, 1, 256, 32),
    ("ext2-nofiletype", "ext2", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0e", "no filetype", 1024, 2, 256, 32),
    ("ext3", "ext3", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a05", "ext3", 4096, 1, 256, 32),
    ("ext4-1k", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a06", "one-k", 1024, 8, 256, 64),
    ("ext4-64k", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a07", "sixty-four-k", 65536, 1, 256, 64),
    ("ext4-inode128", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a08", "", 4096, 1, 128, 64),
    ("ext4-inline", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a09", "", 4096, 1, 256, 64),
    ("ext4-metabg", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0a", "", 1024, 64, 256, 64),
    ("ext4-sparse2", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0b", "", 1024, 16, 256, 64),
    ("ext4-bigalloc", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0f", "", 4096, 1, 1024, 64),
    ("ext4-bigdir", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0c", "", 1024, 3, 256, 64),
    ("ext4-kernel-inline", "ext4", "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0d", "", 4096, 1, 256, 64),
]


def test_superblock_table_covers_every_fixture() -> None:
    assert sorted(row[0] for row in SUPERBLOCKS) == sorted(FIXTURES)


@pytest.mark.parametrize(("name", "fstype", "uuid", "label", "bs", "groups", "isize", "dsize"), SUPERBLOCKS)
def test_superblock_values(name: str, fstype: str, uuid: str, label: str, bs: int, groups: int, isize: int, dsize: int) -> None:
    fs = open_ext4(name)
    assert (fs.fstype, fs.uuid, fs.label) == (fstype, uuid, label)
    assert (fs.sb.block_size, fs.sb.group_count, fs.sb.inode_size, fs.sb.desc_size) == (bs, groups, isize, dsize)
    assert fs.describe() == f"{fstype} on {name}"
    assert not fs.needs_recovery


def test_probe_table_opens_ext4() -> None:
    fs = open_filesystem(open_ext4("ext4-default").source, limits=Limits())
    assert isinstance(fs, Ext4)
    assert fs.uuid == "0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a01"


# fixture, path, inode, size, i_flags, block runs (logical, physical, count)
INODES = [
    ("ext4-default", "/vmlinuz-6.1.0-28-amd64", 51, 2097275, 0x80000, [(0, 2181, 513)]),
    ("ext4-default", "/grub/grub.cfg", 35, 152, 0x80000, [(0, 1135, 1)]),
    ("ext4-default", "/vmlinuz", 49, 22, 0, []),
    ("ext4-default", "/long-link", 45, 113, 0x80000, [(0, 2101, 1)]),
    ("ext4-default", "/sparse.img", 48, 8388608, 0x80000, [(0, 2102, 1), (1536, 2103, 2)]),
    ("ext4-noextent", "/vmlinuz-6.1.0-28-amd64", 49, 2097275, 0, [(0, 2186, 12), (12, 2199, 501)]),
    ("ext4-noextent", "/sparse.img", 46, 8388608, 0, [(0, 2104, 1), (1536, 2107, 2)]),
    ("ext2", "/sparse.img", 48, 8388608, 0, [(0, 1084, 1), (1536, 1087, 2)]),
    ("ext2-nofiletype", "/sparse.img", 46, 8388608, 0, [(0, 4161, 4), (6144, 4167, 8)]),
    ("ext4-1k", "/vmlinuz-6.1.0-28-amd64", 49, 2097275, 0x80000, [(0, 6071, 74), (74, 6403, 1975)]),
    ("ext4-64k", "/sparse.img", 46, 8388608, 0x80000, [(0, 94, 1), (96, 95, 1)]),
    ("ext4-metabg", "/vmlinuz-6.1.0-28-amd64", 49, 2097275, 0x80000, [(0, 5614, 787), (787, 6402, 511), (1298, 6914, 751)]),
    ("ext4-inline", "/deep/a/b/c/d/e/f/g/h/i/j/file.txt", 26, 13, 0x10000000, []),
    ("ext4-inline", "/long-link", 43, 113, 0x10000000, []),
    ("ext4-bigdir", "/vmlinuz-6.1.0-28-amd64", 3050, 2097275, 0x80000, [(0, 8805, 2049)]),
    ("ext4-bigalloc", "/sparse.img", 46, 8388608, 0x80000, [(0, 2576, 1), (1536, 2592, 2)]),
]


@pytest.mark.parametrize(("name", "path", "ino", "size", "flags", "runs"), INODES)
def test_inode_values(name: str, path: str, ino: int, size: int, flags: int, runs: list[tuple[int, int, int]]) -> None:
    node = open_ext4(name).lookup(path, follow=False)
    assert isinstance(node, Ext4Node)
    st = node.stat()
    assert (st.inode, st.size, node.inode.flags) == (ino, size, flags)
    assert [(r.logical, r.physical, r.count) for r in node.runs()] == runs
    assert node.inode.mtime_ns == T0
    assert st.mtime == 1_700_000_000.0


def test_stat_fields_default() -> None:
    fs = open_ext4("ext4-default")
    st = fs.lookup("/grub/grub.cfg").stat()
    assert (st.type, st.mode, st.nlink, st.uid, st.gid) == (FileType.FILE, 0o100644, 1, 0, 0)
    root = fs.root().stat()
    assert (root.type, root.mode, root.inode, root.nlink) == (FileType.DIRECTORY, 0o40755, 2, 8)
    link = fs.lookup("/vmlinuz", follow=False).stat()
    assert (link.type, link.mode, link.size) == (FileType.SYMLINK, 0o120777, 22)
    assert fs.lookup("/grub/grub.cfg").inode.crtime_ns == T0


def test_128_byte_inodes_have_no_extra_fields() -> None:
    node = open_ext4("ext4-inode128").lookup("/grub/grub.cfg")
    assert node.inode.extra == {} and node.inode.crtime_ns is None and node.inode.xattr_area == b""
    assert node.inode.mtime_ns == T0


def test_kernel_times_nanoseconds_and_epoch_bits() -> None:
    fs = open_ext4("ext4-kernel-inline")
    assert fs.lookup("/extras/inline-100").inode.mtime_ns == 1_700_000_000_987_654_321
    future = fs.lookup("/extras/future").inode
    assert future.mtime_ns == 4_102_444_800_123_456_789  # 2100-01-01: epoch bits 01
    assert future.raw.i_mtime == 4_102_444_800  # as int32 negative: 1963 without the epoch bits
    assert future.extra["i_mtime_extra"] & 3 == 1


def test_directory_types_match_inodes() -> None:
    fs = open_ext4("ext4-default")
    for entry in fs.root().iter_dir():
        assert entry.type is entry.node().type, entry.name


def test_no_filetype_feature_gives_untyped_entries() -> None:
    fs = open_ext4("ext2-nofiletype")
    entries = list(fs.root().iter_dir())
    assert entries and all(e.type is None for e in entries)
    assert {e.name for e in entries} >= {"grub", "vmlinuz", "ünïcødé-名前.txt"}


def test_prealloc_unwritten_extents_read_as_zeros() -> None:
    fs = open_ext4("ext4-default")
    node = fs.lookup("/extras/prealloc")
    assert isinstance(node, Ext4Node)
    runs = node.runs()
    # Blocks 1-15 are unwritten (holes); blocks 16-19 lie past the end of file and are dropped.
    assert [(r.logical, r.physical is None, r.count) for r in runs] == [(0, False, 1), (1, True, 15)]
    data = read_all(node.open(), limit=1 << 20)
    assert data == hashlib.sha256(b"prealloc").digest() * 128 + bytes(65536 - 4096)
    # Garbage in the unwritten blocks on disk must not show through.
    img = image("ext4-default")
    bs = fs.sb.block_size
    phys = node.inode.i_block  # the leaf in i_block: second extent
    start = struct.unpack_from("<HI", phys, 12 + 12 + 6)
    first_unwritten = start[0] << 32 | start[1]
    img[first_unwritten * bs : (first_unwritten + 19) * bs] = b"\xaa" * (19 * bs)
    patched = open_bytes(img).lookup("/extras/prealloc")
    assert read_all(patched.open(), limit=1 << 20) == data


def test_triple_indirect_block() -> None:
    fs = open_ext4("ext2")
    node = fs.lookup("/extras/triple")
    assert isinstance(node, Ext4Node)
    assert node.size == 1049613 * 4096 + 100
    assert node.runs() == [BlockRun(1049612, 105, 1)]
    src = node.open()
    assert src.pread(1049612 * 4096, 4096) == hashlib.sha256(b"triple").digest() * 128
    assert src.pread(0, 4096) == bytes(4096)
    assert src.pread(src.size - 100, 100) == bytes(100)


def test_inline_data_files_symlinks_and_directories() -> None:
    fs = open_ext4("ext4-inline")
    deep = fs.lookup("/deep/a")
    assert deep.inode.has_flag(S.EXT4_INLINE_DATA_FL)  # type: ignore[attr-defined]
    assert [e.name for e in deep.iter_dir()] == ["b"]
    link = fs.lookup("/long-link", follow=False)
    assert link.inode.has_flag(S.EXT4_INLINE_DATA_FL)  # type: ignore[attr-defined]
    assert link.readlink().endswith("/././file.txt") and len(link.readlink()) == 113
    assert read_all(fs.lookup("/long-link").open(), limit=100) == boot_tree.file_bytes("deep/a/b/c/d/e/f/g/h/i/j/file.txt", 13)


def test_kernel_inline_directory_spills_into_xattr() -> None:
    fs = open_ext4("ext4-kernel-inline")
    spill = fs.lookup("/extras/spill")
    assert isinstance(spill, Ext4Node)
    assert spill.inode.has_flag(S.EXT4_INLINE_DATA_FL) and spill.size > 60
    names = sorted(e.name for e in spill.iter_dir())
    assert names == ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    for n in names:
        assert read_all(fs.lookup(f"/extras/spill/{n}").open(), limit=100) == f"{n}\n".encode()
    hundred = fs.lookup("/extras/inline-100")
    assert hundred.inode.has_flag(S.EXT4_INLINE_DATA_FL)  # type: ignore[attr-defined]
    assert read_all(hundred.open(), limit=200) == "".join(chr(48 + i % 10) for i in range(100)).encode()


def test_htree_directory_read_linearly() -> None:
    fs = open_ext4("ext4-bigdir")
    big = fs.lookup("/big-dir")
    assert big.inode.has_flag(S.EXT4_INDEX_FL)  # type: ignore[attr-defined]
    names = [e.name for e in big.iter_dir()]
    assert len(names) == 3000 and len(set(names)) == 3000
    assert "entry-002999-" + "x" * (2999 % 40) in names


def test_symlink_loop_and_escape_stay_inside() -> None:
    fs = open_ext4("ext4-default")
    with pytest.raises(LimitExceeded, match="max_symlink_hops"):
        fs.lookup("/loop-a")
    assert sha256_of(fs.lookup("/grub/current-kernel")) == sha256_of(fs.lookup("/vmlinuz-6.1.0-28-amd64"))


def test_needs_recovery_is_reported_and_read_anyway() -> None:
    img = image("ext3")
    incompat = 1024 + S.SUPERBLOCK_FIELD_OFFSETS["s_feature_incompat"]
    put(img, incompat, "<I", struct.unpack_from("<I", img, incompat)[0] | S.INCOMPAT_RECOVER)
    fs = open_bytes(img)
    assert fs.needs_recovery and fs.fstype == "ext3"
    assert_boot_tree(fs)


@pytest.mark.parametrize(
    ("bits", "message"),
    [
        (S.INCOMPAT_COMPRESSION, "compression"),
        (S.INCOMPAT_DIRDATA, "dirdata"),
        (0x80000000, "FEATURE_I31"),
        (S.INCOMPAT_JOURNAL_DEV, "external journal device"),
    ],
)
def test_unreadable_incompat_features_are_refused_by_name(bits: int, message: str) -> None:
    img = image("ext4-default")
    off = 1024 + S.SUPERBLOCK_FIELD_OFFSETS["s_feature_incompat"]
    put(img, off, "<I", struct.unpack_from("<I", img, off)[0] | bits)
    with pytest.raises(UnsupportedFeature, match=message):
        open_bytes(img)


def test_blkid_naming_rules() -> None:
    # ext2 + a journal = ext3; ext3 + extents = ext4; a test_fs flag = ext4dev.
    img = image("ext2")
    compat = 1024 + S.SUPERBLOCK_FIELD_OFFSETS["s_feature_compat"]
    put(img, compat, "<I", struct.unpack_from("<I", img, compat)[0] | S.COMPAT_HAS_JOURNAL)
    assert open_bytes(img).fstype == "ext3"
    incompat = 1024 + S.SUPERBLOCK_FIELD_OFFSETS["s_feature_incompat"]
    put(img, incompat, "<I", struct.unpack_from("<I", img, incompat)[0] | S.INCOMPAT_EXTENTS)
    assert open_bytes(img).fstype == "ext4"
    put(img, 1024 + S.SUPERBLOCK_FIELD_OFFSETS["s_flags"], "<I", S.EXT2_FLAGS_TEST_FILESYS)
    assert open_bytes(img).fstype == "ext4dev"


def test_encrypted_inode_is_refused_by_name_but_stats() -> None:
    img = image("ext4-default")
    fs = open_bytes(img)
    node = fs.lookup("/grub/grub.cfg")
    put(img, node.inode.offset + 0x20, "<I", node.inode.flags | S.EXT4_ENCRYPT_FL)  # type: ignore[attr-defined]
    fs = open_bytes(img)
    node = fs.lookup("/grub/grub.cfg")
    assert node.stat().size == 152
    with pytest.raises(UnsupportedFeature, match="encrypted"):
        node.open()


def test_casefold_directories_fold_names() -> None:
    img = image("ext4-default")
    fs = open_bytes(img)
    for path in ("/", "/grub"):
        inode = fs.lookup(path).inode  # type: ignore[attr-defined]
        put(img, inode.offset + 0x20, "<I", inode.flags | S.EXT4_CASEFOLD_FL)
    incompat = 1024 + S.SUPERBLOCK_FIELD_OFFSETS["s_feature_incompat"]
    put(img, incompat, "<I", struct.unpack_from("<I", img, incompat)[0] | S.INCOMPAT_CASEFOLD)
    fs = open_bytes(img)
    assert fs.lookup("/GRUB/Grub.CFG").size == 152
    assert fs.lookup("/DEEP/a").type is FileType.DIRECTORY
    # A directory without the flag stays case-sensitive.
    with pytest.raises(FileNotFound):
        fs.lookup("/deep/A")


def test_not_ext4() -> None:
    with pytest.raises(NotThisFormat, match="bad magic"):
        open_bytes(bytes(8192))
    with pytest.raises(NotThisFormat, match="too small"):
        open_bytes(bytes(1500))


def test_devices_fifos_and_sockets_open_empty() -> None:
    img = image("ext4-default")
    fs = open_bytes(img)
    node = fs.lookup("/config-6.1.0-28-amd64")
    put(img, node.inode.offset, "<H", 0o020644)  # type: ignore[attr-defined]
    other = open_bytes(img).lookup("/config-6.1.0-28-amd64")
    assert other.type is FileType.OTHER and other.open().size == 0
