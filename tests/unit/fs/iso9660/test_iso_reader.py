"""iso9660 reader on images made by xorriso and genisoimage (tests/tools/make_fat_iso_fixtures.sh)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import isobuild
import pytest

from fs_contract import assert_boot_tree, sha256_of
from helpers import fixture_path
from virtkit._streams import BytesSource, FileSource, MappedSource, read_all
from virtkit.boot.fs import open_filesystem
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.iso9660 import Iso9660
from virtkit.errors import FileNotFound, IsADirectory, NotADirectory, NotThisFormat, PathError
from virtkit.limits import Limits

T0 = 1700000000.0


def open_iso(name: str) -> Iterator[Iso9660]:
    path = fixture_path(f"iso9660/{name}.iso.gz")
    fd = os.open(path, os.O_RDONLY)
    try:
        yield Iso9660.open(FileSource(fd, name), limits=Limits())
    finally:
        os.close(fd)


def one(name: str) -> Iso9660:
    return Iso9660.open(BytesSource(Path(fixture_path(f"iso9660/{name}.iso.gz")).read_bytes(), name), limits=Limits())


# fixture, names shown, case-insensitive, label; uuid is GRUB's date format of the descriptor in use
VOLUMES = [
    ("rr-joliet", "rockridge", False, "BOOT_RR_J", "2023-11-14-22-13-20-00"),
    ("joliet", "joliet", False, "BOOT_J", "2023-11-14-22-13-20-00"),
    ("plain", "iso9660", True, "PLAIN", "2023-11-14-22-13-20-00"),
    ("genisoimage-rr", "rockridge", False, "GENISO_RR", None),  # genisoimage stamps the build time
]


@pytest.mark.parametrize(("name", "names", "folds", "label", "uuid"), VOLUMES)
def test_volume(name: str, names: str, folds: bool, label: str, uuid: str | None) -> None:
    for fs in open_iso(name):
        assert fs.fstype == "iso9660"
        assert fs.names == names
        assert fs.case_insensitive is folds
        assert fs.label == label
        assert fs.block_size == 2048
        if uuid is not None:
            assert fs.uuid == uuid
        else:
            assert len(fs.uuid) == 22 and fs.uuid[4] == "-" and fs.uuid.replace("-", "").isdigit()


@pytest.mark.parametrize("name", ["rr-joliet", "genisoimage-rr"])
def test_boot_tree_rock_ridge(name: str) -> None:
    for fs in open_iso(name):
        assert_boot_tree(fs)


def test_boot_tree_joliet() -> None:
    for fs in open_iso("joliet"):
        assert_boot_tree(fs, check_symlinks=False)


def test_rock_ridge_is_case_sensitive() -> None:
    fs = one("rr-joliet")
    with pytest.raises(FileNotFound):
        fs.lookup("/GRUB/grub.cfg")
    with pytest.raises(FileNotFound):
        fs.lookup("/system.map-6.1.0-28-amd64")


def test_joliet_is_case_sensitive_and_keeps_case() -> None:
    fs = one("joliet")
    names = {e.name for e in fs.root().iter_dir()}
    assert "System.map-6.1.0-28-amd64" in names and "ünïcødé-名前.txt" in names
    with pytest.raises(FileNotFound):
        fs.lookup("/SYSTEM.MAP-6.1.0-28-AMD64")


def test_joliet_tree_has_no_symlinks() -> None:
    fs = one("joliet")  # xorriso leaves symlinks out of the Joliet tree (the ISO tree has empty files)
    names = {e.name for e in fs.root().iter_dir()}
    assert not names & {"vmlinuz", "initrd.img", "loop-a", "escape", "dangling", "long-link"}


PLAIN_ROOT = {  # level-1 8.3 names; --norock drops symlinks
    "config_6.0_2",
    "deep",
    "empty_di",
    "grub",
    "initrd_i.0_2",
    "initrd_i.0_3",
    "loader",
    "sparse.img",
    "system_m.0_2",
    "vmlinuz_.0_2",
    "vmlinuz_.0_3",
    "_n_c_d__.txt",
}


def test_plain_names_lowercased_without_version_and_dot() -> None:
    fs = one("plain")
    assert {e.name for e in fs.root().iter_dir()} == PLAIN_ROOT


@pytest.mark.parametrize("path", ["/grub/grub.cfg", "/GRUB/GRUB.CFG", "/Grub/Grub.Cfg"])
def test_plain_lookup_is_case_insensitive(path: str) -> None:
    fs = one("plain")
    assert fs.read_file(path, limit=4096).startswith(b"set default=0\n")


def test_plain_file_contents() -> None:
    plain, rr = one("plain"), one("rr-joliet")
    assert sha256_of(plain.lookup("/vmlinuz_.0_2")) == sha256_of(rr.lookup("/vmlinuz-6.1.0-28-amd64"))
    assert sha256_of(plain.lookup("/deep/a/b/c/d/e/f/g/h/i/j/file.txt")) == sha256_of(
        rr.lookup("/deep/a/b/c/d/e/f/g/h/i/j/file.txt")
    )


def test_plain_stat_defaults() -> None:
    fs = one("plain")
    f = fs.lookup("/grub/grub.cfg").stat()
    assert f.mode == stat.S_IFREG | 0o444 and f.mtime == T0 and f.nlink == 1
    d = fs.lookup("/grub").stat()
    assert d.mode == stat.S_IFDIR | 0o555 and d.size == 2048


def test_rock_ridge_stat() -> None:
    fs = one("rr-joliet")
    f = fs.lookup("/grub/grub.cfg").stat()
    assert (f.type, f.mode, f.size, f.mtime, f.atime, f.ctime) == (FileType.FILE, 0o100644, 152, T0, T0, T0)
    d = fs.lookup("/grub").stat()
    assert d.mode == 0o40755 and d.size == 2048
    s = fs.lookup("/long-link", follow=False).stat()
    assert s.type is FileType.SYMLINK and s.mode == 0o120777 and s.size == 113
    assert fs.root().stat().size == 4096  # the root spans two sectors


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/vmlinuz", "vmlinuz-6.1.0-28-amd64"),
        ("/initrd.img", "/initrd.img-6.1.0-28-amd64"),  # SL root component
        ("/grub/current-kernel", "../vmlinuz"),  # SL parent component
        ("/long-link", "deep/a/b/c/d/e/f/g/h/i/j/" + "/".join(["."] * 40) + "/file.txt"),  # SL current components
        ("/escape", "../../../../etc/hostname"),
    ],
)
@pytest.mark.parametrize("name", ["rr-joliet", "genisoimage-rr"])
def test_symlink_targets(name: str, path: str, target: str) -> None:
    assert one(name).lookup(path, follow=False).readlink() == target


def test_relocated_directories() -> None:
    fs = one("genisoimage-rr")
    # rr_moved shows, but its RE-marked children are hidden ...
    assert fs.lookup("/rr_moved").type is FileType.DIRECTORY
    assert list(fs.lookup("/rr_moved").iter_dir()) == []
    # ... and the CL record in the real parent leads to them.
    g = fs.lookup("/deep/a/b/c/d/e/f/g")
    assert g.type is FileType.DIRECTORY and g.stat().nlink == 3
    assert [e.name for e in g.iter_dir()] == ["h"]
    assert fs.read_file("/deep/a/b/c/d/e/f/g/h/i/j/file.txt", limit=100) == read_all(
        one("rr-joliet").lookup("/deep/a/b/c/d/e/f/g/h/i/j/file.txt").open(), limit=100
    )


def test_multi_extent_file() -> None:
    parts = [b"A" * 4096, b"B" * 2048, b"C" * 1000]
    fs = Iso9660.open(BytesSource(isobuild.multi_extent_iso(parts), "multi"), limits=Limits())
    assert [e.name for e in fs.root().iter_dir()] == ["multi.bin", "after.txt"]
    src = fs.lookup("/MULTI.BIN").open()
    assert isinstance(src, MappedSource) and len(src.runs) == 3
    assert read_all(src, limit=1 << 20) == b"".join(parts)
    assert src.pread(4090, 12) == b"A" * 6 + b"B" * 6
    assert fs.lookup("/multi.bin").stat().size == 7144
    assert fs.read_file("/after.txt", limit=100) == b"after\n"


def test_contiguous_file_is_one_run() -> None:
    src = one("rr-joliet").lookup("/initrd.img-6.1.0-28-amd64").open()
    assert isinstance(src, MappedSource) and len(src.runs) == 1


def test_errors() -> None:
    fs = one("rr-joliet")
    with pytest.raises(IsADirectory):
        fs.lookup("/grub").open()
    with pytest.raises(NotADirectory):
        list(fs.lookup("/grub/grub.cfg").iter_dir())
    with pytest.raises(PathError, match="not a regular file"):
        fs.lookup("/vmlinuz", follow=False).open()
    from virtkit.errors import CorruptStructure

    with pytest.raises(CorruptStructure, match="not a symbolic link"):
        fs.lookup("/grub/grub.cfg").readlink()
    assert fs.lookup("/grub/grub.cfg").lookup_child("x") is None


def test_inodes_unique() -> None:
    fs = one("rr-joliet")
    inodes = [e.inode for e in fs.root().iter_dir()]
    assert len(set(inodes)) == len(inodes)


@pytest.mark.parametrize("name", [v[0] for v in VOLUMES])
def test_probe_table_picks_iso(name: str) -> None:
    fs = open_filesystem(BytesSource(Path(fixture_path(f"iso9660/{name}.iso.gz")).read_bytes(), name), limits=Limits())
    assert isinstance(fs, Iso9660)


@pytest.mark.parametrize("blob", [b"", b"\0" * 40000, b"\0" * 32769 + b"CD002" + b"\0" * 4000])
def test_not_iso(blob: bytes) -> None:
    with pytest.raises(NotThisFormat):
        Iso9660.open(BytesSource(blob, "junk"), limits=Limits())


def test_iso_is_not_fat() -> None:
    from virtkit.boot.fs.fat import Fat

    with pytest.raises(NotThisFormat):
        Fat.open(one("rr-joliet").source, limits=Limits())
