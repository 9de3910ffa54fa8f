"""The XFS reader on real images: exact values for every fixture and every directory form."""

from __future__ import annotations

import hashlib
import stat
import struct

import pytest
import xfs_support as xs

from fs_contract import assert_boot_tree, sha256_of
from virtkit._streams import BytesSource, iter_chunks, read_all
from virtkit.boot.fs import open_filesystem
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.xfs import Xfs, XfsNode
from virtkit.boot.fs.xfs import structs as s
from virtkit.errors import (
    CorruptStructure,
    FileNotFound,
    IsADirectory,
    LimitExceeded,
    NotThisFormat,
    UnsupportedFeature,
)
from virtkit.limits import Limits

ALL = list(xs.FIXTURES)


def node(fs: Xfs, path: str, *, follow: bool = True) -> XfsNode:
    n = fs.lookup(path, follow=follow)
    assert isinstance(n, XfsNode)
    return n


# -- superblock ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_superblock_facts(name: str) -> None:
    f = xs.FIXTURES[name]
    fs = xs.open_xfs(name)
    g = fs.geometry
    got = (
        g.version, g.block_size, g.inode_size, g.ag_count, g.ag_blocks, g.dir_block_size, g.root_ino,
        g.has_ftype, g.ascii_ci, g.has_nrext64, fs.uuid, fs.label, g.incompat, g.ro_compat,
    )
    want = (
        f.version, f.block_size, f.inode_size, f.ag_count, f.ag_blocks, f.dir_block_size, f.root_ino,
        f.ftype, f.ascii_ci, f.nrext64, f.uuid, f.label, f.incompat, f.ro_compat,
    )
    assert got == want
    assert fs.fstype == "xfs"
    assert fs.case_insensitive is f.ascii_ci
    assert fs.describe() == f"xfs on xfs-{name}"
    assert fs.root().ino == f.root_ino


def test_probe_table_finds_xfs() -> None:
    fs = open_filesystem(xs.PatchedSource(xs.image_bytes("v5-4k"), {}, "probe"), limits=Limits())
    assert isinstance(fs, Xfs)
    assert fs.uuid == xs.FIXTURES["v5-4k"].uuid


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too small"),
        (b"\0" * 4096, "no XFS magic at offset 0 (got 0x00000000)"),
        (b"XFSA" + b"\0" * 4092, "got 0x58465341"),
    ],
)
def test_not_xfs(data: bytes, reason: str) -> None:
    with pytest.raises(NotThisFormat, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Xfs.open(BytesSource(data, "x"), limits=Limits())


# -- the shared /boot tree -------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_boot_tree_contract(name: str) -> None:
    assert_boot_tree(xs.open_xfs(name), big_dir=xs.FIXTURES[name].big_dir)


@pytest.mark.parametrize("name", xs.PROTO)
def test_contiguous_files_are_one_run(name: str) -> None:
    # mkfs -p writes each file in one go; the reader must merge its extents into one pread.
    fs = xs.open_xfs(name)
    for path in ("/vmlinuz-6.1.0-28-amd64", "/initrd.img-6.1.0-28-amd64", "/sparse.img"):
        src = node(fs, path).open()
        assert len(src.runs) == 1, path  # type: ignore[attr-defined]


# -- directory forms -------------------------------------------------------------------

FORMS = {
    "sf": ("shortform", "local"),
    "block": ("block", "extents"),
    "leaf": ("leaf", "extents"),
    "node": ("node", "extents"),
    "btree": ("node", "btree"),
}


@pytest.mark.parametrize("name", xs.PROTO)
@pytest.mark.parametrize("form", list(FORMS))
def test_directory_form_lists_and_looks_up(name: str, form: str) -> None:
    fs = xs.open_xfs(name)
    m = xs.extras(name)
    d = node(fs, f"/forms/{form}")
    assert (d.directory().form, d.dinode.format_name) == FORMS[form]
    entries = list(d.iter_dir())
    names = [e.name for e in entries]
    assert sorted(names) == sorted(m["forms"][form])  # type: ignore[index]
    assert len(names) == len(set(names))
    files = m["files"]
    for e in entries:
        assert e.type is FileType.FILE
        found = d.lookup_child(e.name)  # the hashed (leaf/node) path, not the listing
        assert found is not None and found.ino == e.inode, e.name
        assert sha256_of(found) == files[f"/forms/{form}/{e.name}"]  # type: ignore[index]
    for missing in ("nope", f"{form}-99999-", names[0] + "x", names[-1][:-1]):
        assert d.lookup_child(missing) is None


def test_btree_directory_fork_is_a_real_bmbt() -> None:
    fs = xs.open_xfs("v5-4k")
    d = node(fs, "/forms/btree")
    level, numrecs = struct.unpack_from(">HH", d.dinode.data_fork, 0)
    assert (level, numrecs) == (1, 1)
    assert len(d.extents()) == d.dinode.nextents == 32


@pytest.mark.parametrize("name", xs.PROTO)
def test_big_dir_and_forms_agree_between_listing_and_hash_lookup(name: str) -> None:
    fs = xs.open_xfs(name)
    for path in ["/", "/grub", "/forms", "/names"] + (["/big-dir"] if xs.FIXTURES[name].big_dir else []):
        d = node(fs, path)
        for e in d.iter_dir():
            assert d.lookup_child(e.name).ino == e.inode  # type: ignore[union-attr]


# -- entry types without ftype ---------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_entry_types_match_the_inodes(name: str) -> None:
    fs = xs.open_xfs(name)
    types = {e.name: e.type for e in fs.root().iter_dir()}
    assert types["grub"] is FileType.DIRECTORY
    assert types["vmlinuz"] is FileType.SYMLINK
    assert types["vmlinuz-6.1.0-28-amd64"] is FileType.FILE
    for e in fs.root().iter_dir():
        assert e.type is e.node().stat().type, e.name


def test_ftype0_directories_record_no_type() -> None:
    fs = xs.open_xfs("v4-ftype0")
    raws = list(node(fs, "/forms/block").directory().iter_entries())
    assert raws and all(r.ftype is None for r in raws)
    raws = list(node(fs, "/forms/node").directory().iter_entries())
    assert raws and all(r.ftype is None for r in raws)
    fs5 = xs.open_xfs("v5-4k")
    assert {r.ftype for r in node(fs5, "/forms/node").directory().iter_entries()} == {s.XFS_DIR3_FT_REG_FILE}


# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", xs.PROTO)
def test_odd_names(name: str) -> None:
    fs = xs.open_xfs(name)
    listed = {e.name for e in node(fs, "/names").iter_dir()}
    assert listed == {"n" * 255, "latin1-\udce9t\udce9.txt", "MixedCase.CFG"}
    for n in listed:
        assert fs.read_file(f"/names/{n}", limit=100) == xs.xfs_extras.NAMES[n.encode("utf-8", "surrogateescape")]
    with pytest.raises(LimitExceeded, match="max_name_bytes"):
        xs.open_xfs(name, Limits(max_name_bytes=32)).lookup("/" + "n" * 33)
    assert node(fs, "/names").lookup_child("n" * 256) is None


@pytest.mark.parametrize(
    ("path", "ci_result"),
    [
        ("/names/mixedcase.cfg", "/names/MixedCase.CFG"),
        ("/NAMES/MIXEDCASE.CFG", "/names/MixedCase.CFG"),
        ("/GRUB/Grub.Cfg", "/grub/grub.cfg"),
        ("/Forms/Node/NODE-00042-" + "y" * 19, "/forms/node/node-00042-" + "y" * 19),
        ("/Forms/BTREE/Btree-00599-" + "y" * (150 + 599 % 23), "/forms/btree/btree-00599-" + "y" * (150 + 599 % 23)),
        ("/ÜNÏCØDÉ-名前.TXT", None),  # ASCII-only folding: non-ASCII letters must match exactly
    ],
)
def test_ascii_ci_lookup(path: str, ci_result: str | None) -> None:
    ci = xs.open_xfs("v4-ftype1-ci")
    plain = xs.open_xfs("v4-ftype0")
    with pytest.raises(FileNotFound):
        plain.lookup(path)
    if ci_result is None:
        with pytest.raises(FileNotFound):
            ci.lookup(path)
    else:
        assert node(ci, path).ino == node(ci, ci_result).ino


# -- symlinks, special files, attributes ------------------------------------------------


@pytest.mark.parametrize("name", xs.PROTO)
def test_symlinks_local_and_remote(name: str) -> None:
    fs = xs.open_xfs(name)
    links = xs.extras(name)["links"]
    for path, target in links.items():  # type: ignore[attr-defined]
        n = node(fs, path, follow=False)
        assert n.readlink() == target
        assert n.stat().size == len(target)
        remote = len(target) > fs.geometry.inode_size - (176 if fs.geometry.has_crc else 100)
        assert n.dinode.format_name == ("extents" if remote else "local"), path
        assert read_all(n.open(), limit=2048) == target.encode()
    deep = node(fs, "/deep/a/b/c/d/e/f/g/h/i/j/file.txt")
    assert node(fs, "/links/medium").ino == deep.ino
    if "/links/long" in links:
        with pytest.raises(LimitExceeded, match="max_path_components"):
            fs.lookup("/links/long")
        assert node(xs.open_xfs(name, Limits(max_path_components=1000)), "/links/long").ino == deep.ino


@pytest.mark.parametrize("name", xs.PROTO)
def test_special_files_and_attributes(name: str) -> None:
    fs = xs.open_xfs(name)
    m = xs.extras(name)
    for path, mode in m["special"].items():  # type: ignore[attr-defined]
        st = node(fs, path).stat()
        assert (st.type, st.mode, st.size) == (FileType.OTHER, mode, 0)
        with pytest.raises(UnsupportedFeature, match="device, fifo or socket"):
            node(fs, path).open()
    for path, want in m["attrs"].items():  # type: ignore[attr-defined]
        st = node(fs, path).stat()
        assert (stat.S_IMODE(st.mode), st.uid, st.gid, st.nlink) == (want["mode"], want["uid"], want["gid"], 1)
        assert stat.S_ISREG(st.mode)
    st = fs.root().stat()
    assert (st.type, stat.S_IMODE(st.mode), st.inode) == (FileType.DIRECTORY, 0o755, xs.FIXTURES[name].root_ino)
    with pytest.raises(IsADirectory):
        fs.root().open()


# -- the kernel-written (mounted) image ------------------------------------------------


@pytest.fixture(scope="module")
def mounted() -> Xfs:
    return xs.open_xfs("v5-mounted")


def test_real_holes(mounted: Xfs) -> None:
    src = node(mounted, "/sparse.img").open()
    assert [(r.start, r.length) for r in src.runs] == [(0, 4096), (6 << 20, 8192)]  # type: ignore[attr-defined]


def test_unwritten_extents_read_as_zeros(mounted: Xfs) -> None:
    n = node(mounted, "/prealloc")
    assert [(e.startoff, e.blockcount, e.unwritten) for e in n.extents()] == [(0, 16, True), (16, 4, False), (20, 44, True)]
    assert read_all(n.open(), limit=1 << 20) == bytes(16384) + b"\x5a" * 4096 + bytes(45056)
    k = node(mounted, "/keep-size")
    assert k.size == 4096
    assert [(e.startoff, e.blockcount, e.unwritten) for e in k.extents()] == [(0, 4, False), (4, 60, True)]
    assert read_all(k.open(), limit=1 << 20) == b"\x33" * 4096


def test_two_level_bmbt(mounted: Xfs) -> None:
    n = node(mounted, "/frag")
    assert n.dinode.format_name == "btree"
    assert struct.unpack_from(">H", n.dinode.data_fork, 0)[0] == 2  # root level: a two-level tree below the inode
    ext = n.extents()
    assert len(ext) == n.dinode.nextents == 3966
    written = [(e.startoff, e.blockcount) for e in ext if not e.unwritten]
    assert written == [(2 * i, 1) for i in range(2000)]
    want = b"".join(bytes([i % 251]) * 1024 + (bytes(1024) if i < 1999 else b"") for i in range(2000))
    assert n.size == len(want) == 4094976
    assert b"".join(iter_chunks(n.open(), chunk=300_000)) == want


def test_reflinked_files_share_blocks(mounted: Xfs) -> None:
    a, b = node(mounted, "/reflink/a"), node(mounted, "/reflink/b")
    assert a.ino != b.ino
    assert [e.startblock for e in a.extents()] == [e.startblock for e in b.extents()]
    assert read_all(a.open(), limit=1 << 20) == read_all(b.open(), limit=1 << 20) == b"\x77" * 262144


@pytest.mark.parametrize(("path", "mtime"), [("/times/future", 7258118400.5), ("/times/past", -616852800.0)])
def test_bigtime_timestamps(mounted: Xfs, path: str, mtime: float) -> None:
    n = node(mounted, path)
    assert n.dinode.di_flags2 & s.XFS_DIFLAG2_BIGTIME
    assert n.stat().mtime == mtime


def test_copied_times(mounted: Xfs) -> None:
    assert node(mounted, "/vmlinuz-6.1.0-28-amd64").stat().mtime == 1700000000.0
    assert node(mounted, "/grub").stat().mtime == 1700000000.0


def test_directory_after_deletions(mounted: Xfs) -> None:
    d = node(mounted, "/churn")
    assert d.directory().form == "leaf"
    want = {f"file-{i}-{'z' * (i % 17 + 1)}": i for i in range(0, 1000, 3)}
    listed = {e.name: e for e in d.iter_dir()}
    assert set(listed) == set(want)
    for name, i in want.items():
        assert d.lookup_child(name).ino == listed[name].inode  # type: ignore[union-attr]
        assert mounted.read_file(f"/churn/{name}", limit=16) == f"{i}\n".encode()
    deleted = "file-1-" + "z" * 2
    assert d.lookup_child(deleted) is None


def test_attribute_forks_shrink_the_data_fork(mounted: Xfs) -> None:
    d = node(mounted, "/xattr-dir")
    assert (d.dinode.format_name, d.directory().form) == ("local", "shortform")
    assert d.dinode.di_forkoff != 0 and len(d.dinode.data_fork) == d.dinode.di_forkoff * 8
    assert sorted(e.name for e in d.iter_dir()) == ["a", "b"]
    f = node(mounted, "/xattr-file")
    assert f.dinode.di_forkoff != 0
    assert read_all(f.open(), limit=8192) == b"\x44" * 3072


def test_remote_symlink_v5(mounted: Xfs) -> None:
    n = node(mounted, "/links/long", follow=False)
    target = "../deep/a/b/c/d/e/f/g/h/i/j/" + "./" * 482 + "file.txt"
    assert n.readlink() == target and len(target) == 1000
    assert [(e.startoff, e.blockcount) for e in n.extents()] == [(0, 2)]  # 1000 > 1024 - 56: two blocks
    deep = node(mounted, "/deep/a/b/c/d/e/f/g/h/i/j/file.txt")
    assert node(xs.open_xfs("v5-mounted", Limits(max_path_components=1000)), "/links/long").ino == deep.ino


# -- semantics checked by patching real images -----------------------------------------


def test_unwritten_flag_turns_an_extent_into_zeros() -> None:
    fs = xs.open_xfs("v5-4k")
    n = node(fs, "/grub/grub.cfg")
    assert n.dinode.format_name == "extents" and n.dinode.nextents == 1
    rec = n.dinode.data_fork_offset
    l0 = xs.image_bytes("v5-4k")[rec]
    patched = xs.open_patched("v5-4k", {rec: bytes([l0 | 0x80])})
    p = node(patched, "/grub/grub.cfg")
    assert p.extents()[0].unwritten
    assert read_all(p.open(), limit=4096) == bytes(n.size)


def test_node_cache_returns_the_same_node() -> None:
    fs = xs.open_xfs("v5-4k")
    assert fs.node(128) is fs.node(128)
    assert fs.lookup("/grub/../grub") is fs.lookup("/grub")


def test_file_reads_match_for_odd_ranges() -> None:
    fs = xs.open_xfs("v4-ftype1-ci")  # 512-byte blocks, AGs of 43691 blocks (not a power of two)
    n = node(fs, "/initrd.img-6.1.0-28-amd64")
    data = read_all(n.open(), limit=1 << 23)
    assert hashlib.sha256(data).hexdigest() == sha256_of(node(xs.open_xfs("v5-4k"), "/initrd.img-6.1.0-28-amd64"))
    src = n.open()
    for off, length in [(0, 1), (511, 2), (4095, 4097), (len(data) - 3, 3), (1 << 20, 12345)]:
        assert src.pread(off, length) == data[off : off + length]


def test_meta_uuid_keeps_metadata_readable_and_shows_the_new_uuid() -> None:
    # What "xfs_admin -U" does on v5: sb_uuid changes, metadata keeps the old one in sb_meta_uuid.
    sb = s.XFS_SB_RECORD
    new = bytes.fromhex("11111111222233334444555555555555")
    old = bytes.fromhex(xs.FIXTURES["v5-4k"].uuid.replace("-", ""))
    incompat = s.XFS_SB_FEAT_INCOMPAT_FTYPE | s.XFS_SB_FEAT_INCOMPAT_SPINODES | s.XFS_SB_FEAT_INCOMPAT_BIGTIME
    patches = {
        xs.field_offset(sb, "sb_uuid"): new,
        xs.field_offset(sb, "sb_meta_uuid"): old,
        xs.field_offset(sb, "sb_features_incompat"): struct.pack(">I", incompat | s.XFS_SB_FEAT_INCOMPAT_META_UUID),
    }
    fs = xs.open_patched("v5-4k", patches)
    assert fs.uuid == "11111111-2222-3333-4444-555555555555"
    assert "meta_uuid" in fs.geometry.incompat
    assert_boot_tree(fs)
    # Without the feature bit the inodes' di_uuid no longer matches: refused, not misread.
    del patches[xs.field_offset(sb, "sb_features_incompat")]
    with pytest.raises(CorruptStructure, match=r"inode belongs to another filesystem \(di_uuid differs\)"):
        xs.open_patched("v5-4k", patches).root().stat()


@pytest.mark.parametrize(
    "feature",
    ["NEEDSREPAIR", "EXCHRANGE", "PARENT", "METADIR", "ZONED"],
)
def test_readable_incompat_features_are_accepted(feature: str) -> None:
    # Newer kernels' incompatible features that do not change what a reader of the user tree
    # sees (log items, xattr parent pointers, the metadata directory, the realtime device).
    bit = getattr(s, f"XFS_SB_FEAT_INCOMPAT_{feature}")
    base = s.XFS_SB_FEAT_INCOMPAT_FTYPE | s.XFS_SB_FEAT_INCOMPAT_SPINODES | s.XFS_SB_FEAT_INCOMPAT_BIGTIME
    fs = xs.open_patched("v5-4k", {xs.field_offset(s.XFS_SB_RECORD, "sb_features_incompat"): struct.pack(">I", base | bit)})
    assert feature.lower() in fs.geometry.incompat
    assert fs.read_file("/grub/grub.cfg", limit=4096).startswith(b"set default=0")


def test_version_1_inodes_count_links_in_di_onlink() -> None:
    fs = xs.open_xfs("v4-ftype0")
    d = node(fs, "/grub").dinode
    patched = xs.open_patched(
        "v4-ftype0",
        {
            d.offset + xs.field_offset(s.XFS_DINODE_RECORD, "di_version"): b"\x01",
            d.offset + xs.field_offset(s.XFS_DINODE_RECORD, "di_onlink"): struct.pack(">H", 7),
        },
    )
    g = node(patched, "/grub")
    assert (g.dinode.di_version, g.stat().nlink) == (1, 7)
    assert sorted(e.name for e in g.iter_dir()) == sorted(e.name for e in node(fs, "/grub").iter_dir())
    assert node(fs, "/grub").stat().nlink == 4  # v2: di_nlink


def test_realtime_files_are_refused_by_name() -> None:
    fs = xs.open_xfs("v5-4k")
    d = node(fs, "/grub/grub.cfg").dinode
    flags = d.di_flags | s.XFS_DIFLAG_REALTIME
    patched = xs.open_patched("v5-4k", {d.offset + xs.field_offset(s.XFS_DINODE_RECORD, "di_flags"): struct.pack(">H", flags)})
    with pytest.raises(UnsupportedFeature, match=r"inode \d+ keeps its data on the realtime device"):
        patched.lookup("/grub/grub.cfg").open()


def test_only_small_extent_maps_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtkit.boot.fs.xfs import xfs as xfs_mod

    monkeypatch.setattr(xfs_mod, "_CACHED_EXTENTS", 100)
    fs = xs.open_xfs("v5-mounted")
    small, big = node(fs, "/prealloc"), node(fs, "/frag")
    assert small.extents() is small.extents()
    assert big.extents() is not big.extents()
    assert big.extents() == big.extents()
