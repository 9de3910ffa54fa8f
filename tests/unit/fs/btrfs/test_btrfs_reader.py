"""The btrfs reader on real images: every variant holds the shared /boot tree; exact values."""

from __future__ import annotations

import stat

import pytest
from btrfs_support import VARIANTS, PatchedImage, device_source, open_variant, pattern

from fs_contract import assert_boot_tree
from virtkit._streams import MappedSource
from virtkit.boot.fs import open_filesystem
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.btrfs import Btrfs, btrfs_device_info
from virtkit.boot.fs.btrfs.checksum import name_hash
from virtkit.boot.fs.btrfs.items import parse_file_extent
from virtkit.boot.fs.btrfs.structs import COMPRESSION_NAMES
from virtkit.errors import FileNotFound, ImageError, IsADirectory, NotADirectory, NotThisFormat
from virtkit.limits import Limits


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_boot_tree_on_every_variant(name: str) -> None:
    v = VARIANTS[name]
    fs = open_variant(name)
    assert (fs.fstype, fs.uuid, fs.label) == ("btrfs", v.uuid, v.label)
    assert_boot_tree(fs, root=fs.lookup(v.tree), big_dir=v.big_dir)
    assert fs.notes == []


# variant -> (csum_type, nodesize, {chunk type bits: profile}, fs tree root level)
LAYOUT = {
    "rootdir": (0, 16384, {"data": "single", "metadata": "dup", "system": "dup"}, 1),
    "csum-xxhash": (1, 16384, {"data": "single", "metadata": "single", "system": "single"}, 1),
    "csum-sha256": (2, 16384, {"data": "single", "metadata": "single", "system": "single"}, 1),
    "csum-blake2": (3, 16384, {"data": "single", "metadata": "single", "system": "single"}, 1),
    "bigdir-4k": (0, 4096, {"data": "single", "metadata": "single", "system": "single"}, 2),
    "compress-zstd": (0, 4096, {"data+metadata": "single", "system": "single"}, 1),  # mixed: nodesize = sectorsize
    "features": (0, 16384, {"data": "single", "metadata": "dup", "system": "dup"}, 1),
    "raid1": (0, 16384, {"data": "raid1", "metadata": "raid1", "system": "raid1"}, 1),
    "raid0": (0, 16384, {"data": "raid0", "metadata": "raid0", "system": "raid0"}, 1),
}


def _kind(chunk_type: int) -> str:
    names = [n for bit, n in ((1, "data"), (4, "metadata"), (2, "system")) if chunk_type & bit]
    return "+".join(names)


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_layout(name: str) -> None:
    csum_type, nodesize, profiles, level = LAYOUT[name]
    fs = open_variant(name)
    assert fs.superblock.csum_type == csum_type
    assert fs.nodesize == nodesize
    assert fs.sectorsize == 4096
    assert {_kind(c.type): c.profile for c in fs.chunks.chunks} == profiles
    assert fs.root().tree.level == level


def test_superblock_fields() -> None:
    fs = open_variant("rootdir")
    sb = fs.superblock
    assert sb.offset == 0x10000
    assert sb.devid == 1
    assert sb.fields.num_devices == 1
    assert sb.metadata_fsid == sb.fsid
    assert btrfs_device_info(device_source("rootdir")) == ("0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000001", 1, 1)
    assert btrfs_device_info(device_source("raid1-dev2")) == ("0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000051", 2, 2)


def test_not_btrfs() -> None:
    from virtkit._streams import BytesSource

    for data in (b"", bytes(0x20000)):
        with pytest.raises(NotThisFormat):
            Btrfs.open(BytesSource(data, "zeros"), limits=Limits())
        assert btrfs_device_info(BytesSource(data, "zeros")) is None


def test_probe_table_and_peers() -> None:
    fs = open_filesystem(device_source("raid0-dev1"), limits=Limits(), peers=[device_source("raid0-dev2")])
    assert isinstance(fs, Btrfs)
    assert sorted(fs.devices) == [1, 2]
    assert fs.read_file("/grub/grub.cfg", limit=4096).startswith(b"set default=0\n")


def test_stat_and_listing() -> None:
    fs = open_variant("rootdir")
    st = fs.lookup("/grub/grub.cfg").stat()
    assert (st.type, st.size, stat.S_IMODE(st.mode), st.nlink, st.mtime) == (FileType.FILE, 152, 0o644, 1, 1700000000.0)
    link = fs.lookup("/vmlinuz", follow=False).stat()
    assert (link.type, link.size, stat.S_IFMT(link.mode)) == (FileType.SYMLINK, len("vmlinuz-6.1.0-28-amd64"), stat.S_IFLNK)
    names = {e.name: e.type for e in fs.lookup("/grub").iter_dir()}
    assert names == {
        "i386-pc": FileType.DIRECTORY,
        "fonts": FileType.DIRECTORY,
        "grub.cfg": FileType.FILE,
        "grubenv": FileType.FILE,
        "current-kernel": FileType.SYMLINK,
    }
    with pytest.raises(IsADirectory):
        fs.lookup("/grub").open()
    with pytest.raises(NotADirectory):
        list(fs.lookup("/grub/grub.cfg").iter_dir())
    with pytest.raises(FileNotFound):
        fs.lookup("/grub/nope")
    assert fs.root().lookup_child("x" * 300) is None


@pytest.mark.parametrize("name", ["features", "layout-fedora", "rootdir"])
def test_sparse_file_holes(name: str) -> None:
    """features: explicit hole extents (no NO_HOLES); layout-fedora: implicit holes;
    rootdir: mkfs --rootdir (btrfs-progs 6.2) writes the zeros as data."""
    fs = open_variant(name)
    src = fs.lookup(VARIANTS[name].tree.rstrip("/") + "/sparse.img").open()
    assert isinstance(src, MappedSource)
    covered = sum(r.length for r in src.runs if r.source is not None)
    assert covered == (8 << 20 if name == "rootdir" else 4096 + 8192)
    assert src.pread(4096, 8192) == bytes(8192)


def test_opensuse_layout() -> None:
    fs = open_variant("layout-opensuse")
    assert fs.default_subvolume_id() == 258
    assert fs.default_subvolume_path() == "@/.snapshots/1/snapshot"
    assert fs.list_subvolumes() == [
        (256, "@"),
        (257, "@/.snapshots"),
        (258, "@/.snapshots/1/snapshot"),
        (259, "@/boot/grub2/i386-pc"),
        (260, "@/home"),
        (261, "@/.snapshots/2/snapshot"),
    ]
    # openSUSE's GRUB resolves from the default subvolume; upstream GRUB from the top level.
    default = fs.default_root()
    assert fs.read_file("/boot/only-in-1.txt", limit=100, root=default) == b"written after snapshot 2 was taken\n"
    assert fs.read_file("/@/.snapshots/1/snapshot/boot/only-in-1.txt", limit=100) == b"written after snapshot 2 was taken\n"
    assert_boot_tree(fs, root=fs.lookup("/boot", root=default))
    assert_boot_tree(fs, root=fs.lookup("/@/.snapshots/2/snapshot/boot"))
    with pytest.raises(FileNotFound):
        fs.lookup("/@/.snapshots/2/snapshot/boot/only-in-1.txt")
    assert fs.read_file("/@/boot/grub2/i386-pc/README", limit=100) == b"i386-pc module directory (own subvolume)\n"
    info = fs.read_file("/@/.snapshots/1/info.xml", limit=1000)
    assert b"<num>1</num>" in info
    # '..' out of a subvolume stays inside the filesystem
    assert fs.lookup("/@/.snapshots/1/snapshot/../../../../@/home").type is FileType.DIRECTORY
    top = {e.name: e.type for e in fs.root().iter_dir()}
    assert top == {"@": FileType.DIRECTORY}


def test_fedora_layout() -> None:
    fs = open_variant("layout-fedora")
    assert fs.default_subvolume_id() == 5
    assert fs.default_subvolume_path() == ""
    assert fs.list_subvolumes() == [(256, "root"), (257, "home")]
    assert fs.read_file("/home/user/notes.txt", limit=100) == b"hello from /home\n"
    assert fs.default_root().ino == fs.root().ino == 256
    assert fs.default_root().tree_id == 5


def test_features_prealloc_and_holes() -> None:
    fs = open_variant("features")
    data = fs.read_file("/prealloc.bin", limit=4 << 20)
    assert len(data) == 3 << 20
    assert data[256 << 10 : (256 << 10) + 4096] == pattern("prealloc", 4096)
    assert data.count(0) == len(data) - 4096 + pattern("prealloc", 4096).count(0)


@pytest.mark.parametrize("name", ["features", "compress-zlib", "compress-lzo", "compress-zstd"])
def test_split_extents(name: str) -> None:
    """overwrite.bin: 512 KiB, then 8 KiB overwritten at 180 KiB (extents with offset != 0)."""
    fs = open_variant(name)
    want = bytearray(pattern("overwrite", 512 << 10))
    want[45 * 4096 : 47 * 4096] = pattern("patch", 8192)
    assert fs.read_file("/overwrite.bin", limit=1 << 20) == bytes(want)
    # reading across run boundaries piecewise gives the same bytes
    src = fs.lookup("/overwrite.bin").open()
    pieces = b"".join(src.pread(off, min(12345, src.size - off)) for off in range(0, src.size, 12345))
    assert pieces == bytes(want)


@pytest.mark.parametrize(("name", "compression"), [("compress-zlib", "zlib"), ("compress-lzo", "lzo"), ("compress-zstd", "zstd")])
def test_compressed_extents_are_really_compressed(name: str, compression: str) -> None:
    fs = open_variant(name)
    src = fs.lookup("/vmlinuz-6.1.0-28-amd64").open()
    assert isinstance(src, MappedSource)
    kinds = [type(r.source).__name__ for r in src.runs]
    # 2 MiB + 123 bytes: sixteen 128 KiB compressed extents; the 123-byte tail does not
    # shrink below a sector, so the kernel stored it uncompressed.
    assert kinds == ["_CompressedExtent"] * 16 + ["LogicalSource"]
    assert all(compression in r.source.name for r in src.runs[:16] if r.source is not None)
    # a small file is a compressed inline extent
    (item,) = fs.tree.search(fs.root().tree, (fs.lookup("/grub/grub.cfg").ino, 108, 0), (fs.lookup("/grub/grub.cfg").ino, 108, 2**64 - 1))
    fe = parse_file_extent(item, "test")
    assert (fe.type, COMPRESSION_NAMES[fe.compression]) == (0, compression)
    assert fs.read_file("/grub/grub.cfg", limit=4096).startswith(b"set default=0\n")


def test_hash_collision_directory_item() -> None:
    fs = open_variant("features")
    assert name_hash(b"collide-1371838") == name_hash(b"collide-2000402") == 0x4484DE16
    d = fs.lookup("/collisions")
    assert sorted(e.name for e in d.iter_dir()) == ["collide-1371838", "collide-2000402"]
    assert fs.read_file("/collisions/collide-1371838", limit=100) == b"first\n"
    assert fs.read_file("/collisions/collide-2000402", limit=100) == b"second\n"
    with pytest.raises(FileNotFound):
        fs.lookup("/collisions/collide-9999999")


def test_nested_subvolume_in_snapshot_is_an_empty_placeholder() -> None:
    fs = open_variant("features")
    assert fs.read_file("/sub/nested/file", limit=100) == b"inside nested\n"
    assert fs.read_file("/sub-snap/file", limit=100) == b"inside sub\n"
    placeholder = fs.lookup("/sub-snap/nested")
    assert placeholder.stat().type is FileType.DIRECTORY
    assert list(placeholder.iter_dir()) == []
    assert fs.list_subvolumes() == [(256, "sub"), (257, "sub/nested"), (258, "sub-snap")]


def test_xattrs_are_not_directory_entries() -> None:
    fs = open_variant("features")
    assert "user.virtkit" not in {e.name for e in fs.lookup("/grub").iter_dir()}
    assert fs.lookup("/grub/grub.cfg").stat().type is FileType.FILE


def test_raid1_reads_with_either_device_alone() -> None:
    for devices in (["raid1-dev1"], ["raid1-dev2"]):
        fs = open_variant("raid1", devices=devices)
        assert_boot_tree(fs)
        assert fs.notes == [f"1 of 2 devices present (have devid {1 if devices == ['raid1-dev1'] else 2})"]


def test_raid0_needs_both_devices() -> None:
    with pytest.raises(ImageError, match=r"needs devid 2, which was not given \(give every device of filesystem 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000052\)"):
        fs = open_variant("raid0", devices=["raid0-dev1"])
        fs.read_file("/vmlinuz-6.1.0-28-amd64", limit=4 << 20)


def test_foreign_and_duplicate_peers_are_ignored_with_a_note() -> None:
    fs = open_variant("raid1", devices=["raid1-dev1", "rootdir", "raid1-dev1", "raid0-dev2"])
    assert sorted(fs.devices) == [1]
    assert fs.notes[0] == "rootdir belongs to btrfs 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000001, not 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000051; ignored"


def test_dup_metadata_falls_back_to_the_second_copy() -> None:
    img = PatchedImage("rootdir")
    root_leaf = img.clean.root().tree.bytenr
    img.mutate_node(root_leaf, lambda raw: raw.__setitem__(200, raw[200] ^ 0xFF), fix_csum=False, copies=[0])
    fs = img.open()
    assert_boot_tree(fs)
    assert len(fs.notes) == 1
    assert fs.notes[0].startswith(f"fs tree 5 block {root_leaf:#x}: copy 0 bad (btrfs fs tree 5 block on rootdir at {root_leaf:#x}: checksum mismatch")
    assert fs.notes[0].endswith("; used copy 1")


def test_raid1_metadata_falls_back_to_the_other_device() -> None:
    img = PatchedImage("raid1")
    leaf = img.clean.root().tree.bytenr
    img.mutate_node(leaf, lambda raw: raw.__setitem__(40, raw[40] ^ 1), fix_csum=False, copies=[0])
    fs = img.open()
    assert fs.read_file("/grub/grub.cfg", limit=4096).startswith(b"set default=0")
    assert "used copy 1" in fs.notes[-1]


def test_superblock_mirror_fallback() -> None:
    import struct

    from virtkit.boot.fs.btrfs.checksum import crc32c

    img = PatchedImage("rootdir")
    img.mutate_super(lambda raw: raw.__setitem__(0x100, raw[0x100] ^ 1), fix_csum=False)
    damaged = device_source("rootdir").pread(0x10000, 4096)
    damaged = damaged[:0x100] + bytes([damaged[0x100] ^ 1]) + damaged[0x101:]
    computed = struct.pack("<I", crc32c(damaged[32:])).hex()
    fs = img.open()
    assert fs.superblock.offset == 64 << 20
    assert fs.notes == [
        "primary superblock unusable (btrfs superblock on rootdir at 0x10000: crc32c checksum mismatch, "
        f"expected 0x{computed}, got 0x{damaged[:4].hex()}); used the mirror at 0x4000000"
    ]
    assert_boot_tree(fs)


def test_superblock_all_copies_bad() -> None:
    from virtkit.errors import CorruptStructure

    img = PatchedImage("rootdir")
    img.mutate_super(lambda raw: raw.__setitem__(0x100, raw[0x100] ^ 1), fix_csum=False)
    img.mutate_super(lambda raw: raw.__setitem__(0x100, raw[0x100] ^ 1), fix_csum=False, offset=64 << 20)
    with pytest.raises(CorruptStructure, match=r"^btrfs superblock on rootdir at 0x10000: crc32c checksum mismatch"):
        img.open()


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure-python-lzo", "python-lzo"])
def test_lzo_fixture_with_and_without_the_accelerator(accelerated: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from virtkit.boot.fs.btrfs import compression

    if accelerated:
        pytest.importorskip("lzo", reason="python-lzo (the optional virtkit[lzo] accelerator) is not installed")
        monkeypatch.delitem(compression._zstd_cache, "lzo", raising=False)
        assert compression._lzo_accelerator() is not None
    else:
        monkeypatch.setitem(compression._zstd_cache, "lzo", None)
    fs = open_variant("compress-lzo")
    assert_boot_tree(fs)
    want = bytearray(pattern("overwrite", 512 << 10))
    want[45 * 4096 : 47 * 4096] = pattern("patch", 8192)
    assert fs.read_file("/overwrite.bin", limit=1 << 20) == bytes(want)


def test_max_read_bounds_metadata_not_file_data_the_caller_bounded() -> None:
    """A 2 MiB extent read whole with max_read=1 MiB: read_file's own limit decides."""
    fs = open_variant("features", limits=Limits(max_read=1 << 20))  # the kernel wrote one 2 MiB extent
    assert [r.length for r in fs.lookup("/vmlinuz-6.1.0-28-amd64").open().runs] == [2 * 1024 * 1024 + 123]  # type: ignore[attr-defined]
    data = fs.read_file("/vmlinuz-6.1.0-28-amd64", limit=4 << 20, limit_name="max_kernel_bytes")
    assert len(data) == 2 * 1024 * 1024 + 123
