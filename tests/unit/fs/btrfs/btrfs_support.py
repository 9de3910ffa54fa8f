"""Shared helpers for the btrfs tests: the fixture table, opening images, and patching them.

Hostile inputs are made from the real fixtures: :class:`PatchedImage` overlays
byte patches on read-only copies and can rewrite a tree block (or the
superblock) and recompute its checksum, so the damage reaches the parser
instead of stopping at the checksum check.
"""

from __future__ import annotations

import atexit
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from helpers import fixture_path
from virtkit._streams import ByteSource, FileSource, check_range
from virtkit.boot.fs.btrfs import Btrfs
from virtkit.boot.fs.btrfs.checksum import crc32c
from virtkit.boot.fs.btrfs.structs import BTRFS_SUPER_INFO_OFFSET
from virtkit.boot.fs.btrfs.tree import Key
from virtkit.limits import Limits


@dataclass(frozen=True)
class Variant:
    """One fixture: its device images, where the boot tree lives, and exact identity."""

    devices: tuple[str, ...]
    tree: str  # path of the boot tree from the top level
    uuid: str
    label: str
    big_dir: int = 0


VARIANTS: dict[str, Variant] = {
    "rootdir": Variant(("rootdir",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000001", "vk-btrfs"),
    "csum-xxhash": Variant(("csum-xxhash",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000011", "csum-xxhash"),
    "csum-sha256": Variant(("csum-sha256",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000012", "csum-sha256"),
    "csum-blake2": Variant(("csum-blake2",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000013", "csum-blake2"),
    "bigdir-4k": Variant(("bigdir-4k",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000004", "bigdir-4k", big_dir=1200),
    "compress-zlib": Variant(("compress-zlib",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000021", "compress-zlib"),
    "compress-lzo": Variant(("compress-lzo",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000022", "compress-lzo"),
    "compress-zstd": Variant(("compress-zstd",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000023", "compress-zstd"),
    "layout-opensuse": Variant(
        ("layout-opensuse",), "/@/.snapshots/1/snapshot/boot", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000031", "opensuse"
    ),
    "layout-fedora": Variant(
        ("layout-fedora",), "/root/boot", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000032", "fedora_localhost-live"
    ),
    "features": Variant(("features",), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000041", "features"),
    "raid1": Variant(("raid1-dev1", "raid1-dev2"), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000051", "vk-raid1"),
    "raid0": Variant(("raid0-dev1", "raid0-dev2"), "/", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000052", "vk-raid0"),
}

_FDS: dict[str, int] = {}


def image_path(device: str) -> str:
    """Path of the decompressed fixture image ``tests/data/btrfs/DEVICE.img.gz``."""
    return str(fixture_path(f"btrfs/{device}.img.gz"))


def device_source(device: str) -> FileSource:
    """A read-only source over one fixture image (descriptors shared for the session)."""
    if device not in _FDS:
        _FDS[device] = os.open(image_path(device), os.O_RDONLY)
    return FileSource(_FDS[device], device)


@atexit.register
def _close_all() -> None:
    for fd in _FDS.values():
        os.close(fd)


def open_variant(name: str, *, limits: Limits | None = None, devices: Sequence[str] | None = None) -> Btrfs:
    """Open a fixture; ``devices`` overrides which of its device images are given (first = opened)."""
    devs = list(VARIANTS[name].devices if devices is None else devices)
    srcs = [device_source(d) for d in devs]
    return Btrfs.open(srcs[0], limits=limits or Limits(), devices=srcs[1:])


def pattern(name: str, size: int) -> bytes:
    """make_btrfs_fixtures.sh's ``pattern``: each 4 KiB block one sha256 digest repeated."""
    import hashlib

    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{name}:{i}".encode()).digest() * 128
        i += 1
    return bytes(out[:size])


class PatchedSource:
    """A ByteSource: a base source with byte patches laid over it."""

    def __init__(self, base: ByteSource, patches: dict[int, bytes]) -> None:
        self.base = base
        self.patches = patches
        self.name = base.name
        self.size = base.size

    def pread(self, offset: int, length: int) -> bytes:
        check_range(self.name, self.size, offset, length)
        data = self.base.pread(offset, length)
        hits = [(o, p) for o, p in self.patches.items() if o < offset + length and o + len(p) > offset]
        if not hits:
            return data
        buf = bytearray(data)
        for o, p in hits:
            lo = max(o, offset)
            hi = min(o + len(p), offset + length)
            buf[lo - offset : hi - offset] = p[lo - o : hi - o]
        return bytes(buf)


class PatchedImage:
    """A fixture with patches: rewrite tree blocks, superblocks or raw bytes, then reopen.

    Args:
        variant: a key of :data:`VARIANTS`.
    """

    def __init__(self, variant: str, devices: Sequence[str] | None = None) -> None:
        self.variant = variant
        self.device_names = list(VARIANTS[variant].devices if devices is None else devices)
        self.patches: dict[str, dict[int, bytes]] = {d: {} for d in self.device_names}
        self.clean = open_variant(variant, devices=self.device_names)  # for addresses

    def sources(self) -> list[PatchedSource]:
        return [PatchedSource(device_source(d), self.patches[d]) for d in self.device_names]

    def open(self, *, limits: Limits | None = None) -> Btrfs:
        srcs = self.sources()
        return Btrfs.open(srcs[0], limits=limits or Limits(), devices=srcs[1:])

    def _devname(self, devid: int) -> str:
        return self.clean.devices[devid].name  # device_source names each source after its image

    def write_physical(self, device: str, offset: int, data: bytes) -> None:
        self.patches[device][offset] = data

    def write_logical(self, logical: int, data: bytes, *, copies: Sequence[int] | None = None) -> None:
        """Write ``data`` at a logical address, on every copy (or only ``copies``)."""
        chunk = self.clean.chunks.find(logical)
        for mirror in range(chunk.copies) if copies is None else copies:
            pos = 0
            for stripe, physical, n in chunk.map(logical - chunk.logical, len(data), mirror):
                self.write_physical(self._devname(stripe.devid), physical, data[pos : pos + n])
                pos += n

    def read_logical(self, logical: int, length: int) -> bytes:
        srcs = {d: PatchedSource(device_source(d), self.patches[d]) for d in self.device_names}
        chunk = self.clean.chunks.find(logical)
        out = b""
        for stripe, physical, n in chunk.map(logical - chunk.logical, length, 0):
            out += srcs[self._devname(stripe.devid)].pread(physical, n)
        return out

    def mutate_node(
        self,
        logical: int,
        mutate: Callable[[bytearray], None],
        *,
        fix_csum: bool = True,
        copies: Sequence[int] | None = None,
    ) -> None:
        """Apply ``mutate`` to the tree block at ``logical`` and (by default) fix its crc32c."""
        raw = bytearray(self.read_logical(logical, self.clean.nodesize))
        mutate(raw)
        if fix_csum:
            raw[0:4] = struct.pack("<I", crc32c(bytes(raw[32:])))
        self.write_logical(logical, bytes(raw), copies=copies)

    def mutate_super(self, mutate: Callable[[bytearray], None], *, device: str | None = None, offset: int = BTRFS_SUPER_INFO_OFFSET, fix_csum: bool = True) -> None:
        """Apply ``mutate`` to a superblock copy (4 KiB) and fix its crc32c."""
        dev = device or self.device_names[0]
        raw = bytearray(device_source(dev).pread(offset, 4096))
        mutate(raw)
        if fix_csum:
            raw[0:4] = struct.pack("<I", crc32c(bytes(raw[32:4096])))
        self.write_physical(dev, offset, bytes(raw))

    # -- finding things to break ---------------------------------------------

    def leaf_of(self, tree_id: int, key: Key) -> tuple[int, int]:
        """``(leaf logical, slot)`` of the item with ``key`` in subvolume ``tree_id``'s tree (0: the root tree)."""
        fs = self.clean
        root = fs.root_tree if tree_id == 0 else fs.subvolume(tree_id).tree
        item = fs.tree.first(root, key, key)
        assert item is not None, key
        node = fs.tree.read_node(item.leaf, level=0, tree="test")
        return item.leaf, node.keys.index(key)

    def item_span(self, leaf: int, slot: int) -> tuple[int, int]:
        """``(start, end)`` of an item's data inside its leaf block."""
        node = self.clean.tree.read_node(leaf, level=0, tree="test")
        return node.spans[slot]


ITEM_HEADER = 101  # sizeof(struct btrfs_header)
ITEM_SIZE = 25  # sizeof(struct btrfs_item)
KEY_PTR_SIZE = 33  # sizeof(struct btrfs_key_ptr)


def all_tree_blocks(fs: Btrfs) -> list[int]:
    """Logical addresses of every block of the chunk tree, the root tree and every subvolume tree."""
    from virtkit.boot.fs.btrfs.tree import TreeRoot

    roots = [
        TreeRoot(int(fs.superblock.fields.chunk_root), int(fs.superblock.fields.chunk_root_level), "chunk tree"),
        fs.root_tree,
        fs.root().tree,
    ]
    roots += [fs.subvolume(sid).tree for sid, _ in fs.list_subvolumes()]
    out: list[int] = []
    for r in roots:
        stack = [(r.bytenr, r.level)]
        while stack:
            bytenr, level = stack.pop()
            if bytenr in out:
                continue
            out.append(bytenr)
            node = fs.tree.read_node(bytenr, level=level, tree=r.name)
            stack.extend((c, level - 1) for c in node.children)
    return out


def exercise(fs: Btrfs, *, read_bytes: int = 65536) -> int:
    """Touch everything: subvolumes, every directory from both roots, stat, readlink, file heads."""
    from virtkit.boot.fs.base import FileType

    fs.default_subvolume_path()
    fs.list_subvolumes()
    seen = 0
    for top in (fs.root(), fs.default_root()):
        stack = [top]
        while stack and seen < 5000:
            node = stack.pop()
            for entry in node.iter_dir():
                seen += 1
                child = entry.node()
                st = child.stat()
                if st.type is FileType.DIRECTORY:
                    stack.append(child)
                elif st.type is FileType.SYMLINK:
                    child.readlink()
                elif st.type is FileType.FILE:
                    src = child.open()
                    src.pread(0, min(src.size, read_bytes))
                    if src.size > read_bytes:
                        src.pread(src.size - 4096, 4096)
    return seen
