"""HostDirectory: a host directory read like a filesystem, confined to itself."""

from __future__ import annotations

import gc
import os
import stat
from pathlib import Path

import pytest

from fs_contract import assert_boot_tree, boot_tree, sha256_of
from helpers import is_root
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.hostdir import HostDirectory
from virtkit.errors import CorruptStructure, FileNotFound, IsADirectory, LimitExceeded, NotADirectory, PathError
from virtkit.limits import Limits


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    root.mkdir()
    boot_tree.build(root)
    return root


@pytest.fixture
def fs(tree: Path) -> HostDirectory:
    return HostDirectory.open_directory(str(tree), limits=Limits())


def test_boot_tree(fs: HostDirectory) -> None:
    assert_boot_tree(fs)


def test_identity(fs: HostDirectory, tree: Path) -> None:
    assert fs.fstype == "directory"
    assert fs.uuid == "" and fs.label == ""
    assert fs.describe() == f"directory {tree}"
    assert not fs.case_insensitive


def test_stat(fs: HostDirectory, tree: Path) -> None:
    s = fs.lookup("/grub/grub.cfg").stat()
    real = os.lstat(tree / "grub/grub.cfg")
    assert (s.type, s.size, s.mode, s.inode, s.mtime) == (FileType.FILE, real.st_size, real.st_mode, real.st_ino, 1700000000.0)
    link = fs.lookup("/vmlinuz", follow=False).stat()
    assert link.type is FileType.SYMLINK and stat.S_ISLNK(link.mode)
    assert fs.root().stat().type is FileType.DIRECTORY


def test_listing_matches_os(fs: HostDirectory, tree: Path) -> None:
    ours = {(e.name, e.type, e.inode) for e in fs.root().iter_dir()}
    kinds = {True: FileType.SYMLINK}
    theirs = set()
    for entry in os.scandir(tree):
        kind = kinds.get(entry.is_symlink()) or (FileType.DIRECTORY if entry.is_dir() else FileType.FILE)
        theirs.add((entry.name, kind, entry.inode()))
    assert ours == theirs


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("abs-etc", "/etc/hostname"),  # absolute: restarts at the directory's root
        ("up-etc", "../../../../../../etc/hostname"),  # .. stops at the root
        ("root-dir", "/"),  # a link to / is this directory
    ],
)
def test_symlinks_never_leave_the_directory(tree: Path, link: str, target: str) -> None:
    os.symlink(target, tree / link)
    fs = HostDirectory.open_directory(str(tree), limits=Limits())
    if target == "/":
        assert fs.lookup(f"/{link}/grub/grub.cfg").stat().inode == os.stat(tree / "grub/grub.cfg").st_ino
        with pytest.raises(FileNotFound):
            fs.lookup(f"/{link}/etc/hostname")
        return
    with pytest.raises(FileNotFound):
        fs.lookup(f"/{link}")
    # A file of that name inside the directory is what the link reaches.
    (tree / "etc").mkdir()
    (tree / "etc/hostname").write_bytes(b"inside\n")
    assert fs.read_file(f"/{link}", limit=100) == b"inside\n"


def test_directory_swapped_for_a_symlink_is_not_followed(tree: Path, fs: HostDirectory) -> None:
    node = fs.lookup("/deep")  # looked up (lstat) as a directory ...
    os.rename(tree / "deep", tree / "deep.old")
    os.symlink("/", tree / "deep")  # ... then replaced by a link to the host's root
    with pytest.raises(PathError, match="cannot open directory"):
        list(node.iter_dir())


def test_file_swapped_for_a_symlink_is_not_followed(tree: Path, fs: HostDirectory) -> None:
    node = fs.lookup("/grub/grub.cfg")
    os.unlink(tree / "grub/grub.cfg")
    os.symlink("/etc/hostname", tree / "grub/grub.cfg")
    with pytest.raises(PathError):
        node.open()


def test_fifo_is_never_opened(tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    fs = HostDirectory.open_directory(str(tree), limits=Limits())
    node = fs.lookup("/fifo")
    assert node.type is FileType.OTHER
    with pytest.raises(PathError, match="not a regular file"):
        node.open()  # would block forever if the FIFO were opened for reading


@pytest.mark.skipif(not is_root(), reason="mknod needs root")
def test_device_node_is_never_opened(tree: Path) -> None:
    os.mknod(tree / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    fs = HostDirectory.open_directory(str(tree), limits=Limits())
    with pytest.raises(PathError, match="not a regular file"):
        fs.lookup("/null").open()


def test_non_utf8_name(tree: Path) -> None:
    raw = b"\xff\xfename.txt"
    with open(os.path.join(os.fsencode(tree), raw), "wb") as f:
        f.write(b"bytes\n")
    fs = HostDirectory.open_directory(str(tree), limits=Limits())
    name = raw.decode("utf-8", "surrogateescape")
    assert name in {e.name for e in fs.root().iter_dir()}
    assert fs.read_file("/" + name, limit=100) == b"bytes\n"


def test_errors(fs: HostDirectory) -> None:
    with pytest.raises(IsADirectory):
        fs.lookup("/grub").open()
    with pytest.raises(NotADirectory):
        list(fs.lookup("/grub/grub.cfg").iter_dir())
    with pytest.raises(NotADirectory):
        fs.lookup("/grub/grub.cfg/x")
    with pytest.raises(CorruptStructure, match="not a symbolic link"):
        fs.lookup("/grub/grub.cfg").readlink()
    root = fs.root()
    for bad in ["", ".", "..", "grub/grub.cfg", "a\0b"]:
        assert root.lookup_child(bad) is None


@pytest.mark.parametrize("what", ["missing", "file"])
def test_open_directory_errors(tmp_path: Path, what: str) -> None:
    path = tmp_path / "x"
    if what == "file":
        path.write_bytes(b"")
    with pytest.raises(PathError, match=f"directory {path}"):
        HostDirectory.open_directory(str(path), limits=Limits())


def test_limit_max_dir_entries(tree: Path) -> None:
    fs = HostDirectory.open_directory(str(tree), limits=Limits(max_dir_entries=3))
    with pytest.raises(LimitExceeded, match="max_dir_entries"):
        list(fs.root().iter_dir())


def test_limit_max_file_bytes(tree: Path) -> None:
    fs = HostDirectory.open_directory(str(tree), limits=Limits(max_file_bytes=1 << 20))
    with pytest.raises(LimitExceeded, match="max_file_bytes"):
        fs.lookup("/vmlinuz").open()


def test_file_that_shrinks_while_read(tree: Path, fs: HostDirectory) -> None:
    src = fs.lookup("/System.map-6.1.0-28-amd64").open()
    os.truncate(tree / "System.map-6.1.0-28-amd64", 10)
    with pytest.raises(CorruptStructure, match="did it shrink"):
        src.pread(0, src.size)


def test_descriptors_are_released(fs: HostDirectory) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        sha256_of(fs.lookup("/grub/grub.cfg"))
        list(fs.lookup("/deep/a/b").iter_dir())
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_never_writes(tree: Path, fs: HostDirectory) -> None:
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in tree.rglob("*") if not p.is_symlink()}
    assert_boot_tree(fs)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in tree.rglob("*") if not p.is_symlink()}
    assert before == after
