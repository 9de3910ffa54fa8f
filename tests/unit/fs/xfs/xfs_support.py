"""Shared helpers for the XFS tests: the fixture table, opening, patching, walking."""

from __future__ import annotations

import os
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import TESTS, fixture_path
from virtkit._binstruct import Record
from virtkit._streams import BytesSource, FileSource, check_range
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.xfs import Xfs, XfsNode
from virtkit.errors import VirtkitError
from virtkit.limits import Limits

sys.path.insert(0, str(TESTS / "tools"))

import xfs_extras


@dataclass(frozen=True)
class Fixture:
    """What each image of tests/tools/make_xfs_fixtures.sh (and the mounted one) is."""

    name: str
    profile: str  # xfs_extras profile ("v4"/"v5"), "" for the mounted image (no extras)
    big_dir: int
    version: int
    block_size: int
    inode_size: int
    ag_count: int
    ag_blocks: int
    dir_block_size: int
    root_ino: int
    ftype: bool
    ascii_ci: bool
    nrext64: bool
    uuid: str
    label: str
    incompat: tuple[str, ...]
    ro_compat: tuple[str, ...]


_V5_IN = ("ftype", "sparse", "bigtime")
_V5_RO = ("finobt", "reflink", "inobtcount")
_U = "5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f"

FIXTURES: dict[str, Fixture] = {
    f.name: f
    for f in (
        Fixture("v5-4k", "v5", 0, 5, 4096, 512, 2, 4096, 4096, 128, True, False, False, _U + "0", "virtkit-v5", _V5_IN, _V5_RO),
        Fixture("v5-2k", "v5", 300, 5, 2048, 512, 2, 8192, 4096, 64, True, False, False, _U + "1", "v5-2k", _V5_IN, _V5_RO),
        Fixture(
            "v5-nrext64", "v5", 0, 5, 1024, 512, 4, 16384, 4096, 64, True, False, True, _U + "2", "nrext64",
            (*_V5_IN, "nrext64"), ("finobt", "rmapbt", "reflink", "inobtcount"),
        ),
        Fixture("v4-ftype0", "v4", 300, 4, 1024, 256, 2, 16384, 4096, 64, False, False, False, _U + "3", "v4-ftype0", (), ()),
        Fixture("v4-ftype1-ci", "v4", 0, 4, 512, 256, 3, 43691, 4096, 32, True, True, False, _U + "4", "V4-CI", (), ()),
        Fixture("v5-mounted", "", 0, 5, 1024, 512, 4, 16384, 4096, 64, True, False, False, _U + "5", "mounted", _V5_IN, _V5_RO),
    )
}
PROTO = [n for n, f in FIXTURES.items() if f.profile]  # the mkfs -p images (with the extras)

_FDS: dict[str, int] = {}
_BYTES: dict[str, bytes] = {}


def field_offset(record: Record, field: str) -> int:
    """Byte offset of ``field`` inside ``record`` (from its struct format)."""
    codes = re.findall(r"(\d*)([a-zA-Z])", record.struct.format[1:])
    offset = 0
    for fname, (count, code) in zip(record.fields, codes):
        if fname == field:
            return offset
        offset += struct.calcsize(">" + count + code)
    raise KeyError(field)


def path_of(name: str) -> Path:
    return Path(fixture_path(f"xfs/xfs-{name}.img.gz"))


def open_xfs(name: str, limits: Limits | None = None) -> Xfs:
    """Open a committed fixture read-only (descriptors are kept for the session)."""
    if name not in _FDS:
        _FDS[name] = os.open(path_of(name), os.O_RDONLY)
    return Xfs.open(FileSource(_FDS[name], f"xfs-{name}"), limits=limits or Limits())


def image_bytes(name: str) -> bytes:
    if name not in _BYTES:
        _BYTES[name] = path_of(name).read_bytes()
    return _BYTES[name]


class PatchedSource:
    """A fixture with some byte ranges replaced, without copying the image.

    Args:
        base: the image bytes.
        patches: offset -> replacement bytes.
        size: pretend the image has this size (truncation tests).
    """

    def __init__(self, base: bytes, patches: dict[int, bytes], name: str = "patched", size: int | None = None) -> None:
        self.base = base
        self.patches = dict(patches)
        self.name = name
        self.size = len(base) if size is None else size

    def pread(self, offset: int, length: int) -> bytes:
        check_range(self.name, self.size, offset, length)
        data = self.base[offset : offset + length]
        hits = [(o, p) for o, p in self.patches.items() if o < offset + length and o + len(p) > offset]
        if not hits:
            return data
        out = bytearray(data)
        for o, p in hits:
            for i, b in enumerate(p):
                if offset <= o + i < offset + length:
                    out[o + i - offset] = b
        return bytes(out)


def open_patched(name: str, patches: dict[int, bytes], limits: Limits | None = None, size: int | None = None) -> Xfs:
    return Xfs.open(PatchedSource(image_bytes(name), patches, f"xfs-{name}-patched", size), limits=limits or Limits())


def open_bytes(data: bytes, limits: Limits | None = None) -> Xfs:
    return Xfs.open(BytesSource(data, "bytes"), limits=limits or Limits())


def extras(name: str) -> dict[str, object]:
    return xfs_extras.manifest(FIXTURES[name].profile)


def walk(fs: Xfs, *, budget: int = 20_000, read_bytes: int = 1 << 16) -> Iterator[tuple[str, XfsNode]]:
    """Visit every node under the root, reading a little of each file and each link.

    Stops after ``budget`` nodes.  Errors propagate (callers decide what is allowed).
    """
    stack: list[tuple[str, XfsNode, int]] = [("/", fs.root(), 0)]
    seen = 0
    while stack:
        path, node, depth = stack.pop()
        seen += 1
        if seen > budget:
            return
        yield path, node
        st = node.stat()
        if st.type is FileType.DIRECTORY and depth < 32:
            for entry in node.iter_dir():
                child = entry.node()
                assert isinstance(child, XfsNode)
                stack.append((path.rstrip("/") + "/" + entry.name, child, depth + 1))
        elif st.type is FileType.SYMLINK:
            node.readlink()
        elif st.type is FileType.FILE:
            src = node.open()
            src.pread(0, min(src.size, read_bytes))


def walk_tolerant(fs: Xfs, *, budget: int = 5_000, read_bytes: int = 4096) -> int:
    """Visit what can be visited; each damaged node may raise only VirtkitError.

    Returns:
        the number of nodes visited.
    """
    stack: list[tuple[XfsNode, int]] = [(fs.root(), 0)]
    seen = 0
    while stack and seen < budget:
        node, depth = stack.pop()
        seen += 1
        try:
            st = node.stat()
            if st.type is FileType.DIRECTORY and depth < 32:
                for entry in node.iter_dir():
                    child = entry.node()
                    assert isinstance(child, XfsNode)
                    stack.append((child, depth + 1))
                    node.lookup_child(entry.name)
            elif st.type is FileType.SYMLINK:
                node.readlink()
            elif st.type is FileType.FILE:
                src = node.open()
                src.pread(0, min(src.size, read_bytes))
                if src.size > read_bytes:
                    src.pread(src.size - read_bytes, read_bytes)
        except VirtkitError:
            continue
    return seen
