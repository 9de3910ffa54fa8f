"""Differential: our FAT reader against mtools (mdir, mtype, minfo, mlabel) on the same images."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import fixture_path, is_root, require_tool
from virtkit._streams import FileSource, iter_chunks
from virtkit.boot.fs.base import FileType, Node
from virtkit.boot.fs.fat import Fat
from virtkit.limits import Limits

pytestmark = pytest.mark.differential

FIXTURES = ["fat12", "fat16", "fat32", "fat12-4k"]
ENV = {**os.environ, "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}


def mtools(*args: str) -> bytes:
    return subprocess.run(list(args), check=True, capture_output=True, env=ENV, timeout=60).stdout


def walk(node: Node, prefix: str = "/") -> Iterator[tuple[str, Node]]:
    for e in node.iter_dir():
        child = e.node()
        if child.type is FileType.DIRECTORY:
            yield prefix + e.name + "/", child
            yield from walk(child, prefix + e.name + "/")
        else:
            yield prefix + e.name, child


@pytest.fixture(params=FIXTURES)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[str, Fat]]:
    require_tool("mdir", "mtype", "minfo", "mlabel")
    path = str(fixture_path(f"fat/{request.param}.img.gz"))
    fd = os.open(path, os.O_RDONLY)
    try:
        yield path, Fat.open(FileSource(fd, request.param), limits=Limits())
    finally:
        os.close(fd)


def test_listing_matches_mdir(pair: tuple[str, Fat]) -> None:
    img, fs = pair
    theirs = {line.removeprefix("::") for line in mtools("mdir", "-/", "-b", "-i", img, "::/").decode().splitlines()}
    ours = {path for path, _ in walk(fs.root())}
    assert ours == theirs


def test_contents_match_mtype(pair: tuple[str, Fat]) -> None:
    img, fs = pair
    for path, node in walk(fs.root()):
        if path.endswith("/"):
            continue
        ours = hashlib.sha256()
        for chunk in iter_chunks(node.open()):
            ours.update(chunk)
        theirs = hashlib.sha256(mtools("mtype", "-i", img, "::" + path)).hexdigest()
        assert ours.hexdigest() == theirs, path


def test_serial_and_label_match_minfo(pair: tuple[str, Fat]) -> None:
    img, fs = pair
    info = mtools("minfo", "-i", img, "::").decode()
    serial = re.search(r"serial number: ([0-9A-F]{8})", info)
    assert serial is not None
    assert fs.uuid == f"{serial.group(1)[:4]}-{serial.group(1)[4:]}"
    label = mtools("mlabel", "-s", "-i", img, "::").decode()
    # "Volume label is BOOTFAT16" / "Volume has no label"
    m = re.search(r"Volume label is (.*?)\s*$", label)
    assert fs.label == (m.group(1) if m else "")


def tree_of_mount(top: Path) -> dict[str, tuple[str, int | None, str | None]]:
    out: dict[str, tuple[str, int | None, str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = "/" + os.path.relpath(dirpath, top).removeprefix(".").lstrip("/")
        for d in dirnames:
            out[os.path.join(rel, d)] = ("directory", None, None)
        for f in filenames:
            data = Path(dirpath, f).read_bytes()
            out[os.path.join(rel, f)] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return out


def tree_of_fs(fs: Fat) -> dict[str, tuple[str, int | None, str | None]]:
    out: dict[str, tuple[str, int | None, str | None]] = {}
    for path, node in walk(fs.root()):
        if path.endswith("/"):
            out[path.rstrip("/")] = ("directory", None, None)
        else:
            h = hashlib.sha256()
            for chunk in iter_chunks(node.open()):
                h.update(chunk)
            out[path] = ("file", node.stat().size, h.hexdigest())
    return out


@pytest.mark.root
def test_matches_kernel_loop_mount(pair: tuple[str, Fat], tmp_path: Path) -> None:
    if not is_root():
        pytest.skip("a loop mount needs root")
    img, fs = pair
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-o", "ro,loop,utf8", img, str(mnt)], capture_output=True, text=True, check=False)
    if r.returncode:
        pytest.skip(f"the kernel cannot loop-mount vfat here: {r.stderr.strip()}")
    try:
        assert tree_of_fs(fs) == tree_of_mount(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
