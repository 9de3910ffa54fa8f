"""FAT12/16/32 reader on images made by mkfs.vfat + mcopy (tests/tools/make_fat_iso_fixtures.sh)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fs_contract import assert_boot_tree, sha256_of
from helpers import fixture_path
from virtkit._streams import BytesSource, FileSource, MappedSource, read_all
from virtkit.boot.fs import open_filesystem
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.fat import Fat
from virtkit.boot.fs.fat.dirent import fat_time, lfn_checksum
from virtkit.errors import FileNotFound, IsADirectory, NotADirectory
from virtkit.limits import Limits

FIXTURES = ["fat12", "fat16", "fat32"]
T0 = 1700000000.0  # every fixture file's mtime (boot_tree.py and the fixture script pin it)


def open_fat(name: str, limits: Limits | None = None) -> Iterator[Fat]:
    path = fixture_path(f"fat/{name}.img.gz")
    fd = os.open(path, os.O_RDONLY)
    try:
        yield Fat.open(FileSource(fd, name), limits=limits or Limits())
    finally:
        os.close(fd)


@pytest.fixture(params=FIXTURES)
def fat(request: pytest.FixtureRequest) -> Iterator[Fat]:
    yield from open_fat(request.param)


@pytest.fixture
def fat16() -> Iterator[Fat]:
    yield from open_fat("fat16")


# name, fat_type, uuid (GRUB's %04X-%04X of BS_VolID), label (root-dir volume label), clusters
GEOMETRY = [
    ("fat12", 12, "1A2B-3C4D", "BOOTFAT12", 2555),
    ("fat16", 16, "0BAD-CAFE", "BOOTFAT16", 12255),
    ("fat32", 32, "DEAD-BEEF", "BOOTFAT32", 72562),
    ("fat12-4k", 12, "00C0-FFEE", "", 1017),
]


@pytest.mark.parametrize(("name", "fat_type", "uuid", "label", "clusters"), GEOMETRY)
def test_geometry_uuid_label(name: str, fat_type: int, uuid: str, label: str, clusters: int) -> None:
    for fs in open_fat(name):
        assert fs.fstype == "vfat"
        assert fs.fat_type == fat_type
        assert fs.uuid == uuid
        assert fs.label == label
        assert fs.geometry.cluster_count == clusters
        assert fs.case_insensitive


def test_4k_sectors() -> None:
    for fs in open_fat("fat12-4k"):
        assert fs.geometry.bytes_per_sector == 4096
        assert fs.read_file("/grub/grub.cfg", limit=4096).startswith(b"set default=0\n")


def test_boot_tree(fat: Fat) -> None:
    assert_boot_tree(fat, check_symlinks=False)


def test_symlinks_are_absent(fat: Fat) -> None:
    # The fixture script removes symlinks before mcopy (which would dereference them).
    names = {e.name for e in fat.root().iter_dir()}
    assert not names & {"vmlinuz", "initrd.img", "loop-a", "escape", "dangling"}


# path -> expected listing name: long names, NT lower-case flags, plain 8.3, non-ASCII.
NAMES = {
    "MixedCase.Txt": b"mixed\n",
    "lower.txt": b"lower\n",  # 8.3 "LOWER   TXT" + NT flags 0x18
    "lowerb.TXT": b"lowerb\n",  # NT flag 0x08 only: base lower, extension upper
    "UPPER.TXT": b"upper\n",
    "a-name-that-is-longer-than-twenty-six-characters-to-need-several-lfn-slots.cfg": b"long\n",
    "Ελληνικά.txt": b"greek\n",
}


def test_names_listing_exact(fat: Fat) -> None:
    assert sorted(e.name for e in fat.lookup("/names").iter_dir()) == sorted(NAMES)


@pytest.mark.parametrize(("name", "content"), sorted(NAMES.items()))
def test_names_read(fat: Fat, name: str, content: bytes) -> None:
    assert fat.read_file(f"/names/{name}", limit=100) == content


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/GRUB/GRUB.CFG", "/grub/grub.cfg"),
        ("/names/mixedcase.txt", "/names/MixedCase.Txt"),
        ("/NAMES/LOWER.TXT", "/names/lower.txt"),
        ("/names/ελληνικά.TXT", "/names/Ελληνικά.txt"),
        ("/ÜNÏCØDÉ-名前.TXT", "/ünïcødé-名前.txt"),
    ],
)
def test_case_insensitive_lookup(fat: Fat, path: str, found: str) -> None:
    assert sha256_of(fat.lookup(path)) == sha256_of(fat.lookup(found))


@pytest.mark.parametrize("path", ["/MIXEDC~1.TXT", "/names/MIXEDC~1.TXT", "/VMLINU~1"])
def test_short_alias_of_long_name_is_not_matched(fat: Fat, path: str) -> None:
    # GRUB matches only the displayed (long) name; so do we.
    with pytest.raises(FileNotFound):
        fat.lookup(path)


def test_deleted_entry_not_listed(fat: Fat) -> None:
    with pytest.raises(FileNotFound):
        fat.lookup("/names/deleted-file.txt")


def test_stat_file_and_dir(fat: Fat) -> None:
    s = fat.lookup("/grub/grub.cfg").stat()
    assert s.type is FileType.FILE
    assert stat.S_ISREG(s.mode) and stat.S_IMODE(s.mode) == 0o755
    assert s.mtime == T0 and s.ctime == T0
    assert s.atime == T0 - T0 % 86400  # access date only
    d = fat.lookup("/grub").stat()
    assert d.type is FileType.DIRECTORY
    assert stat.S_ISDIR(d.mode) and stat.S_IMODE(d.mode) == 0o755
    assert d.size % fat.geometry.cluster_size == 0 and d.size > 0
    root = fat.root().stat()
    assert root.type is FileType.DIRECTORY and root.mtime is None


def test_inodes_are_unique(fat: Fat) -> None:
    entries = list(fat.root().iter_dir())
    inodes = [e.inode for e in entries]
    assert len(set(inodes)) == len(inodes)
    for e in entries:
        assert e.node().stat().inode == e.inode


def test_contiguous_file_is_one_run(fat: Fat) -> None:
    src = fat.lookup("/vmlinuz-6.1.0-28-amd64").open()
    assert isinstance(src, MappedSource)
    assert len(src.runs) == 1


def test_fragmented_file(fat16: Fat) -> None:
    src = fat16.lookup("/frag.bin").open()
    assert isinstance(src, MappedSource)
    assert len(src.runs) == 2  # mshowfat: <7269-7278> <7289-7310>
    expected = b"".join(hashlib.sha256(b"frag%d" % i).digest() for i in range(2000))
    assert read_all(src, limit=1 << 20) == expected
    # Reads that straddle the fragment boundary.
    boundary = src.runs[1].start
    assert src.pread(boundary - 10, 20) == expected[boundary - 10 : boundary + 10]


def test_root_has_holes_where_files_were_deleted(fat16: Fat) -> None:
    names = [e.name for e in fat16.root().iter_dir()]
    assert "hole1.bin" in names and "hole3.bin" in names and "hole2.bin" not in names
    assert fat16.read_file("/hole3.bin", limit=1 << 20) == b"3" * 20000


def test_empty_file(fat: Fat) -> None:
    node = fat.lookup("/config-6.1.0-28-amd64")
    assert node.stat().size == 0
    assert node.open().size == 0


def test_errors(fat: Fat) -> None:
    with pytest.raises(IsADirectory):
        fat.lookup("/grub").open()
    with pytest.raises(NotADirectory):
        list(fat.lookup("/grub/grub.cfg").iter_dir())
    with pytest.raises(NotADirectory):
        fat.lookup("/grub/grub.cfg/x")
    assert fat.lookup("/grub/grub.cfg").lookup_child("x") is None


def test_probe_table_picks_fat(fat: Fat) -> None:
    fs = open_filesystem(fat.source, limits=Limits())
    assert isinstance(fs, Fat)
    assert fs.uuid == fat.uuid


def test_describe_names_type_and_volume(fat: Fat) -> None:
    assert fat.describe() == f"FAT{fat.fat_type} on {fat.source.name}"


def test_lfn_checksum_matches_mcopy() -> None:
    # mcopy stored the checksum of the short name in each long-name entry before it.
    data = Path(fixture_path("fat/fat16.img.gz")).read_bytes()
    pos = data.find(b"MIXEDC~1TXT")
    assert pos > 32 and data[pos - 32 + 11] == 0x0F
    assert data[pos - 32 + 13] == lfn_checksum(b"MIXEDC~1TXT")
    pos = data.find(b"LOWER   TXT")
    assert pos > 32 and data[pos - 32 + 11] != 0x0F  # lower.txt: 8.3 + NT flags, no long name
    assert data[pos + 12] == 0x18


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        (0, 0, None),
        ((43 << 9) | (11 << 5) | 14, (22 << 11) | (13 << 5) | 10, T0),  # 2023-11-14 22:13:20
        ((43 << 9) | (13 << 5) | 1, 0, None),  # month 13
        ((43 << 9) | (2 << 5) | 30, 0, None),  # 30 February
        ((43 << 9) | (11 << 5) | 14, (24 << 11), None),  # hour 24
        ((43 << 9) | (11 << 5) | 14, 30, None),  # 60 seconds
    ],
)
def test_fat_time(date: int, time: int, expected: float | None) -> None:
    assert fat_time(date, time) == expected


def test_in_memory_source_equals_file_source() -> None:
    path = fixture_path("fat/fat12.img.gz")
    fs = Fat.open(BytesSource(Path(path).read_bytes(), "mem"), limits=Limits())
    assert_boot_tree(fs, check_symlinks=False)
