"""Shared helpers for the ext2/3/4 tests: fixture names, opening, patching, walking."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from helpers import fixture_path
from virtkit._streams import BytesSource, FileSource
from virtkit.boot.fs.base import FileType
from virtkit.boot.fs.ext4 import Ext4, Ext4Node
from virtkit.limits import Limits

# Every fixture of tests/tools/make_ext4_fixtures.sh -> entries in /big-dir (0: none).
FIXTURES: dict[str, int] = {
    "ext4-default": 0,
    "ext4-no64bit": 0,
    "ext4-noextent": 0,
    "ext2": 0,
    "ext2-nofiletype": 0,
    "ext3": 0,
    "ext4-1k": 0,
    "ext4-64k": 0,
    "ext4-inode128": 0,
    "ext4-inline": 0,
    "ext4-metabg": 0,
    "ext4-sparse2": 0,
    "ext4-bigalloc": 0,
    "ext4-bigdir": 3000,
    "ext4-kernel-inline": 0,
}

_FDS: dict[str, int] = {}
_BYTES: dict[str, bytes] = {}


def path_of(name: str) -> Path:
    return Path(fixture_path(f"ext4/{name}.img.gz"))


def open_ext4(name: str, limits: Limits | None = None) -> Ext4:
    """Open a committed fixture read-only (descriptors are kept for the session)."""
    if name not in _FDS:
        _FDS[name] = os.open(path_of(name), os.O_RDONLY)
    return Ext4.open(FileSource(_FDS[name], name), limits=limits or Limits())


def image(name: str) -> bytearray:
    """A private, patchable copy of a fixture's bytes."""
    if name not in _BYTES:
        _BYTES[name] = path_of(name).read_bytes()
    return bytearray(_BYTES[name])


def open_bytes(data: bytes | bytearray, limits: Limits | None = None, name: str = "patched") -> Ext4:
    return Ext4.open(BytesSource(bytes(data), name), limits=limits or Limits())


class PatchedSource:
    """A fixture with a few bytes replaced, without copying the whole image."""

    def __init__(self, base: bytes, patches: dict[int, int], name: str = "mutated") -> None:
        self.base = base
        self.patches = patches
        self.name = name
        self.size = len(base)

    def pread(self, offset: int, length: int) -> bytes:
        src = BytesSource(self.base, self.name)
        data = src.pread(offset, length)  # bounds check like every source
        hits = [o for o in self.patches if offset <= o < offset + length]
        if not hits:
            return data
        out = bytearray(data)
        for o in hits:
            out[o - offset] = self.patches[o]
        return bytes(out)


def base_bytes(name: str) -> bytes:
    if name not in _BYTES:
        _BYTES[name] = path_of(name).read_bytes()
    return _BYTES[name]


def put(data: bytearray, offset: int, fmt: str, *values: int) -> None:
    struct.pack_into(fmt, data, offset, *values)


def get(data: bytes | bytearray, offset: int, fmt: str) -> int:
    return int(struct.unpack_from(fmt, data, offset)[0])


def walk(fs: Ext4, *, max_nodes: int = 10_000) -> Iterator[tuple[str, Ext4Node]]:
    """Every (path, node) below the root, depth first, directories included."""
    stack: list[tuple[str, Ext4Node]] = [("/", fs.root())]
    seen = 0
    while stack:
        path, node = stack.pop()
        yield path, node
        if node.type is FileType.DIRECTORY:
            for entry in node.iter_dir():
                seen += 1
                assert seen <= max_nodes
                child = entry.node()
                assert isinstance(child, Ext4Node)
                stack.append((path.rstrip("/") + "/" + entry.name, child))
