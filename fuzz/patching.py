"""Patch programs: mutations of a fixture image without copying it (see fuzz/targets.py).

A program is a sequence of ``offset:u32 | length:u8 | bytes`` records.  The
offsets are *virtual*: they walk the image's metadata sectors
(:class:`MetadataMap`: every non-zero 512-byte sector that is not file data of
the shared /boot tree), so mutations land in superblocks, group descriptors,
inode tables, directory blocks, btree nodes, partition tables and LVM labels
wherever they live.  A record with length 0 and offset ``0xFFnnnnnn`` truncates
the (last) image to ``nnnnnn/4096`` of its size.
"""

from __future__ import annotations

import bisect
import gzip
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "src", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from virtkit._streams import ByteSource, BytesSource  # noqa: E402
from virtkit.errors import CorruptStructure  # noqa: E402

DATA = ROOT / "tests" / "data"
SAMPLE = ROOT / "src" / "virtkit" / "data" / "sample-guest.img.gz"
SECTOR = 512
MAX_PATCHES = 64


class PatchedSource:
    """A ByteSource that overlays byte patches on a base source (copy-on-write).

    Args:
        base: the unmodified bytes.
        patches: ``(offset, bytes)`` pairs, applied in order.
        size: a smaller size (truncation), or None.
    """

    def __init__(self, base: ByteSource, patches: Sequence[tuple[int, bytes]], size: int | None = None) -> None:
        self.base = base
        self.name = base.name
        self.size = base.size if size is None else max(0, min(size, base.size))
        self.patches = [(o, p) for o, p in patches if 0 <= o < self.size and p]

    def pread(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise CorruptStructure(self.name, "read past the end of the image", offset=offset,
                                   expected=f"<= {self.size}", got=offset + length)
        data = self.base.pread(offset, length)
        end = offset + length
        hits = [(o, p) for o, p in self.patches if o < end and o + len(p) > offset]
        if not hits:
            return data
        buf = bytearray(data)
        for o, p in hits:
            lo = max(o, offset)
            hi = min(o + len(p), end)
            buf[lo - offset : hi - offset] = p[lo - o : hi - o]
        return bytes(buf)


def decode_program(data: bytes) -> tuple[list[tuple[int, bytes]], int | None]:
    """Split a patch program into ``(virtual offset, bytes)`` patches and a truncation point."""
    out: list[tuple[int, bytes]] = []
    cut: int | None = None
    i = 0
    while i + 5 <= len(data) and len(out) < MAX_PATCHES:
        off, n = struct.unpack_from("<IB", data, i)
        i += 5
        chunk = data[i : i + n]
        i += n
        if n == 0 and off >> 24 == 0xFF:
            cut = off & 0xFFFFFF
            continue
        out.append((off, chunk))
    return out, cut


def encode_patches(patches: Sequence[tuple[int, bytes]], cut: int | None = None) -> bytes:
    """The patch program that :func:`decode_program` reads back."""
    out = b"".join(struct.pack("<IB", o, len(p)) + p for o, p in patches)
    if cut is not None:
        out += struct.pack("<IB", 0xFF000000 | (cut & 0xFFFFFF), 0)
    return out


def _is_file_data(sector: bytes) -> bool:
    """A sector of tests/tools/boot_tree.py file contents (a 32-byte digest repeated)."""
    return sector == sector[:32] * (len(sector) // 32)


class MetadataMap:
    """The sectors of an image worth mutating: non-zero and not /boot-tree file data.

    Args:
        source: the image.
    """

    def __init__(self, source: ByteSource) -> None:
        zero = bytes(SECTOR)
        sectors: list[int] = []
        chunk = 1 << 20
        for base in range(0, source.size, chunk):
            buf = source.pread(base, min(chunk, source.size - base))
            for i in range(0, len(buf) - SECTOR + 1, SECTOR):
                s = buf[i : i + SECTOR]
                if s != zero and not _is_file_data(s):
                    sectors.append((base + i) // SECTOR)
        self.sectors = sectors or [0]
        self.size = source.size

    def offset(self, virtual: int) -> int:
        """Map a virtual offset (sector index * 512 + byte) onto a metadata byte."""
        idx, byte = divmod(virtual, SECTOR)
        return self.sectors[idx % len(self.sectors)] * SECTOR + byte

    def virtual(self, real: int) -> int | None:
        """The virtual offset of a real byte offset, or None if it is not in a metadata sector."""
        s, byte = divmod(real, SECTOR)
        i = bisect.bisect_left(self.sectors, s)
        if i < len(self.sectors) and self.sectors[i] == s:
            return i * SECTOR + byte
        return None

    def __len__(self) -> int:
        return len(self.sectors)


@dataclass
class Base:
    """A base image for patch programs: one or more disks and their metadata maps."""

    disks: list[BytesSource]
    maps: list[MetadataMap]

    def patched(self, data: bytes) -> list[ByteSource]:
        """Apply a patch program; virtual offsets walk the disks' metadata sectors in order."""
        patches, cut = decode_program(data)
        total = sum(len(m) for m in self.maps) * SECTOR
        per: list[list[tuple[int, bytes]]] = [[] for _ in self.disks]
        for off, chunk in patches:
            v = off % total
            for d, m in enumerate(self.maps):
                span = len(m) * SECTOR
                if v < span:
                    per[d].append((m.offset(v), chunk))
                    break
                v -= span
        out: list[ByteSource] = []
        for d, disk in enumerate(self.disks):
            size = None
            if cut is not None and d == len(self.disks) - 1:
                size = disk.size * (cut % 4096) // 4096
            out.append(PatchedSource(disk, per[d], size) if per[d] or size is not None else disk)
        return out


def _load_gz(path: Path) -> bytes:
    with gzip.open(path, "rb") as f:
        return f.read()


@cache
def base_image(*names: str) -> Base:
    """The fixture images ``names`` (relative to tests/data, or 'sample', or 'md') as a Base."""
    disks: list[BytesSource] = []
    for name in names:
        if name == "sample":
            disks.append(BytesSource(_load_gz(SAMPLE), "sample-guest.img"))
        elif name.startswith("md:"):
            disks.append(BytesSource(_md_member(int(name[3:])), name))
        else:
            disks.append(BytesSource(_load_gz(DATA / name), name))
    return Base(disks, [MetadataMap(d) for d in disks])


def _md_member(role: int) -> bytes:
    from builders.md import UUID, md_member  # type: ignore[import-not-found]

    if role == 2:
        return bytes(md_member(2 << 20, version="0.90", uuid_words=(1, 2, 3, 4), raid_disk=0, raid_disks=1, level=1,
                               data=b"\x55" * 512))
    return bytes(md_member(3 << 20, version="1.2", uuid=UUID, dev_number=role, raid_disks=2, level=1,
                           name="fuzz:root", data=_raw_seed("volume/mbr-tiny.bin")))


@cache
def _raw_seed(name: str) -> bytes:
    return (DATA / name).read_bytes()


