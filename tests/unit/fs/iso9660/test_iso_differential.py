"""Differential: our iso9660 reader against isoinfo (listings with -f, contents with -x, volume id with -d)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import isobuild
import pytest

from helpers import fixture_path, is_root, require_tool
from virtkit._streams import BytesSource, iter_chunks
from virtkit.boot.fs.base import FileType, Node
from virtkit.boot.fs.iso9660 import Iso9660
from virtkit.limits import Limits

pytestmark = pytest.mark.differential

ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
# fixture -> isoinfo name option
MODES = {"rr-joliet": "-R", "genisoimage-rr": "-R", "joliet": "-J", "plain": ""}


def isoinfo(*args: str) -> bytes:
    return subprocess.run(["isoinfo", *[a for a in args if a]], check=True, capture_output=True, env=ENV, timeout=60).stdout


def walk(node: Node, prefix: str = "/") -> Iterator[tuple[str, Node]]:
    for e in node.iter_dir():
        child = e.node()
        yield prefix + e.name, child
        if child.type is FileType.DIRECTORY:
            yield from walk(child, prefix + e.name + "/")


def digest(node: Node) -> str:
    h = hashlib.sha256()
    for chunk in iter_chunks(node.open()):
        h.update(chunk)
    return h.hexdigest()


def plain_name(path: str) -> str:
    """isoinfo's raw ISO path -> the name we show (no ;version, no final dot, lower case)."""
    out = []
    for comp in path.split("/"):
        comp = comp.split(";")[0].lower()
        out.append(comp[:-1] if comp.endswith(".") else comp)
    return "/".join(out)


def joliet_as_isoinfo(path: str) -> str:
    """isoinfo prints Joliet names in ISO 8859-1, "_" for what it cannot map (it has no UTF-8)."""
    return "".join(c if ord(c) < 0x80 else chr(0xDC00 + ord(c)) if ord(c) < 0x100 else "_" for c in path)


def key(name: str, ours: str) -> str:
    return joliet_as_isoinfo(ours) if name == "joliet" else ours


@pytest.fixture(params=sorted(MODES))
def iso(request: pytest.FixtureRequest) -> tuple[str, str, Iso9660]:
    require_tool("isoinfo")
    path = str(fixture_path(f"iso9660/{request.param}.iso.gz"))
    fs = Iso9660.open(BytesSource(Path(path).read_bytes(), request.param), limits=Limits())
    return request.param, path, fs


def theirs_listing(name: str, img: str) -> dict[str, str]:
    """isoinfo's paths, mapped to ours -> isoinfo's path (to extract with)."""
    raw = isoinfo("-f", MODES[name], "-i", img).decode("utf-8", "surrogateescape").splitlines()
    out: dict[str, str] = {}
    for p in raw:
        ours = plain_name(p) if name == "plain" else p
        if name == "genisoimage-rr" and ours.startswith("/rr_moved/"):
            # isoinfo shows relocated directories where they are stored; a mount (and we)
            # show them through their CL record in the original parent.
            ours = "/deep/a/b/c/d/e/f/" + ours.removeprefix("/rr_moved/")
        out[ours] = p
    return out


def test_listing_matches_isoinfo(iso: tuple[str, str, Iso9660]) -> None:
    name, img, fs = iso
    assert {key(name, p) for p, _ in walk(fs.root())} == set(theirs_listing(name, img))


def test_contents_match_isoinfo(iso: tuple[str, str, Iso9660]) -> None:
    name, img, fs = iso
    theirs = theirs_listing(name, img)
    checked = 0
    for path, node in walk(fs.root()):
        if node.type is not FileType.FILE:
            continue
        data = isoinfo(MODES[name], "-x", theirs[key(name, path)], "-i", img)
        assert digest(node) == hashlib.sha256(data).hexdigest(), path
        checked += 1
    assert checked >= 13


def test_volume_id_matches_isoinfo(iso: tuple[str, str, Iso9660]) -> None:
    _, img, fs = iso
    m = re.search(r"^Volume id: (.*)$", isoinfo("-d", "-i", img).decode(), re.M)
    assert m is not None and fs.label == m.group(1).rstrip()


@pytest.mark.parametrize("name", ["rr-joliet", "genisoimage-rr"])
def test_symlinks_match_isoinfo_long_listing(name: str) -> None:
    require_tool("isoinfo")
    img = str(fixture_path(f"iso9660/{name}.iso.gz"))
    fs = Iso9660.open(BytesSource(Path(img).read_bytes(), name), limits=Limits())
    theirs = dict(re.findall(r" ([^ /]+) -> (.*)$", isoinfo("-l", "-R", "-i", img).decode(), re.M))
    ours = {p.rsplit("/", 1)[1]: n.readlink() for p, n in walk(fs.root()) if n.type is FileType.SYMLINK}
    assert ours == theirs


def test_multi_extent_matches_isoinfo(tmp_path: Path) -> None:
    require_tool("isoinfo")
    parts = [b"A" * 4096, b"B" * 2048, b"C" * 1000]
    img = tmp_path / "multi.iso"
    img.write_bytes(isobuild.multi_extent_iso(parts))
    fs = Iso9660.open(BytesSource(img.read_bytes(), "multi"), limits=Limits())
    theirs = isoinfo("-x", "/MULTI.BIN;1", "-i", str(img))
    assert digest(fs.lookup("/multi.bin")) == hashlib.sha256(theirs).hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


def tree_of_mount(top: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = "/" + os.path.relpath(dirpath, top).removeprefix(".").lstrip("/")
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            s = p.lstat()
            if p.is_symlink():
                out[os.path.join(rel, name)] = ("symlink", os.readlink(p))
            elif p.is_dir():
                out[os.path.join(rel, name)] = ("directory",)
            else:
                out[os.path.join(rel, name)] = ("file", s.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def tree_of_fs(fs: Iso9660) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for path, node in walk(fs.root()):
        if node.type is FileType.SYMLINK:
            out[path] = ("symlink", node.readlink())
        elif node.type is FileType.DIRECTORY:
            out[path] = ("directory",)
        else:
            out[path] = ("file", node.stat().size, digest(node))
    return out


@pytest.mark.root
def test_matches_kernel_loop_mount(iso: tuple[str, str, Iso9660], tmp_path: Path) -> None:
    if not is_root():
        pytest.skip("a loop mount needs root")
    _, img, fs = iso
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-o", "ro,loop", img, str(mnt)], capture_output=True, text=True, check=False)
    if r.returncode:
        pytest.skip(f"the kernel cannot loop-mount iso9660 here: {r.stderr.strip()}")
    try:
        assert tree_of_fs(fs) == tree_of_mount(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
