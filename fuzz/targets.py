"""Fuzz targets for every parser that meets guest data, shared by hypothesis and atheris.

Invariant for every target (STYLE.md, idea 4): for any input, the parser
returns a result or raises a ``VirtkitError`` - never any other exception,
never a hang, never unbounded memory.  ``run_target(name, data)`` enforces
exactly that; the hypothesis suite (tests/fuzz) and the atheris campaigns
(fuzz/run_atheris.py, ``make fuzz``) both call it.

Binary targets on large images do not fuzz the whole image: the input is a
*patch program* applied to a fixture image through :class:`PatchedSource`
(copy-on-write, so an execution costs no image copy).  The program is a
sequence of ``offset:u32 | length:u8 | bytes`` records; offsets are taken
modulo the region of interest (the first ``region`` bytes, where metadata
lives).  Text targets take the input as UTF-8 text.
"""

from __future__ import annotations

import gzip
import importlib
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from virtkit._streams import ByteSource, BytesSource, iter_chunks  # noqa: E402
from virtkit.errors import VirtkitError  # noqa: E402
from virtkit.limits import Limits  # noqa: E402

DATA = ROOT / "tests" / "data"

# Tighter limits keep one execution cheap; they are still the real mechanism.
FUZZ_LIMITS = Limits(
    max_read=4 << 20, max_file_bytes=64 << 20, max_dir_entries=5000, max_tree_nodes=20000, max_extents=20000,
    max_chain_length=200000, max_script_steps=200000, max_config_bytes=1 << 20, max_menu_entries=2000,
    max_string_bytes=1 << 20, max_partitions=256, max_lvm_metadata_bytes=1 << 20,
)
MAX_WALK_NODES = 300
MAX_READ_PER_FILE = 256 << 10


class PatchedSource:
    """A ByteSource that overlays byte patches on a base source (copy-on-write)."""

    def __init__(self, base: ByteSource, patches: list[tuple[int, bytes]]) -> None:
        self.base = base
        self.name = base.name
        self.size = base.size
        self.patches = [(o, p) for o, p in patches if 0 <= o < base.size]

    def pread(self, offset: int, length: int) -> bytes:
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


def decode_patches(data: bytes, region: int) -> list[tuple[int, bytes]]:
    out = []
    i = 0
    while i + 5 <= len(data) and len(out) < 64:
        off, n = struct.unpack_from("<IB", data, i)
        i += 5
        chunk = data[i : i + n]
        i += n
        out.append((off % max(1, region), chunk))
    return out


def encode_patches(patches: list[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack("<IB", o, len(p)) + p for o, p in patches)


@cache
def fixture(name: str) -> BytesSource:
    with gzip.open(DATA / name, "rb") as f:
        return BytesSource(f.read(), name)


# ------------------------------------------------------------------ walkers


def walk_filesystem(fs: object) -> None:
    """Touch everything a boot needs: lookups, listings, symlinks, reads (all bounded)."""
    from virtkit.boot.fs.base import Filesystem, FileType

    assert isinstance(fs, Filesystem)
    _ = (fs.uuid, fs.label)
    seen = 0
    stack = [fs.root()]
    if fs.default_root() is not stack[0]:
        stack.append(fs.default_root())
    while stack and seen < MAX_WALK_NODES:
        node = stack.pop()
        seen += 1
        st = node.stat()
        if st.type is FileType.DIRECTORY:
            for i, entry in enumerate(node.iter_dir()):
                if i > 64:
                    break
                stack.append(entry.node())
        elif st.type is FileType.SYMLINK:
            node.readlink()
        elif st.type is FileType.FILE:
            src = node.open()
            n = 0
            for chunk in iter_chunks(src, chunk=64 << 10):
                n += len(chunk)
                if n >= MAX_READ_PER_FILE:
                    break
    for path in ("/boot/grub/grub.cfg", "/grub/grub.cfg", "/vmlinuz", "/boot/vmlinuz", "/loop-a", "/long-link"):
        try:
            fs.lookup(path)
        except VirtkitError:
            pass


def _fs_target(fixture_name: str, region: int) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        from virtkit.boot.fs import open_filesystem

        src = PatchedSource(fixture(fixture_name), decode_patches(data, region))
        walk_filesystem(open_filesystem(src, limits=FUZZ_LIMITS))  # type: ignore[arg-type]

    return run


def _disk_target(fixture_name: str | None, region: int) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        from virtkit.boot.image import open_image_fd  # noqa: F401 - import check
        from virtkit.boot.pipeline import Guest
        from virtkit.boot.volume import discover_volumes

        if fixture_name is None:
            src: ByteSource = BytesSource(data, "fuzz-disk")
        else:
            src = PatchedSource(fixture(fixture_name), decode_patches(data, region))  # type: ignore[assignment]
        img = _FakeImage(src)
        storage = discover_volumes([img], limits=FUZZ_LIMITS)  # type: ignore[list-item]
        for v in storage.volumes:
            v.source.pread(0, min(v.source.size, 4096))
        Guest(images=[], storage=storage, limits=FUZZ_LIMITS).filesystems()

    return run


@dataclass
class _FakeImage:
    """The image-layer result for a disk that is already a ByteSource."""

    source: ByteSource
    name: str = "disk0"
    path: str = "fuzz"
    format: str = "raw"

    @property
    def details(self) -> dict[str, object]:
        return {}

    @property
    def virtual_size(self) -> int:
        return self.source.size


def _qcow2(data: bytes) -> None:
    from virtkit.boot.image.qcow2 import open_qcow2

    img = open_qcow2(BytesSource(data, "fuzz.qcow2"), limits=FUZZ_LIMITS, backing=None)
    img.details()
    for off in range(0, min(img.size, 1 << 20), 64 << 10):
        img.pread(off, min(4096, img.size - off))


def _text_target(func: Callable[[str], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        func(data.decode("utf-8", "surrogateescape"))

    return run


def _grub2(text: str) -> None:
    from virtkit.boot.config.grub2 import load_grub2_menu
    from virtkit.boot.config.source import MemoryFiles

    files = MemoryFiles({"hd0,msdos1": {"/boot/grub/grub.cfg": text.encode("utf-8", "surrogateescape"), "/vmlinuz": b"k"}})
    load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=FUZZ_LIMITS)


def _engine(module: str, func: str, path: str) -> Callable[[str], None]:
    def run(text: str) -> None:
        from virtkit.boot.config.source import MemoryFiles

        mod = importlib.import_module(module)
        files = MemoryFiles({"hd0,msdos1": {path: text.encode("utf-8", "surrogateescape"), "/vmlinuz": b"k"}})
        getattr(mod, func)(files, "hd0,msdos1", path, limits=FUZZ_LIMITS)

    return run


def _grubenv(data: bytes) -> None:
    from virtkit.boot.config.grubenv import parse_grubenv

    parse_grubenv(data, limits=FUZZ_LIMITS)


def _bls(text: str) -> None:
    from virtkit.boot.config.bls import parse_bls_entry

    parse_bls_entry(text, "fuzz.conf")


def _lvm_metadata(text: str) -> None:
    from virtkit.boot.volume.lvm.metadata import parse_metadata

    parse_metadata(text, limits=FUZZ_LIMITS)


def _worker_frames(data: bytes) -> None:
    from virtkit.boot.worker.protocol import FrameDecoder

    d = FrameDecoder(max_json=1 << 20, max_chunk=1 << 16)
    for i in range(0, len(data), 7):
        d.receive_data(data[i : i + 7])
        while d.next_frame() is not None:
            pass


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


def _no_seeds() -> list[bytes]:
    return [b""]


def _file_seeds(*paths: str) -> Callable[[], list[bytes]]:
    def seeds() -> list[bytes]:
        out = []
        for p in paths:
            for f in sorted(ROOT.glob(p)):
                data = f.read_bytes()
                out.append(gzip.decompress(data) if f.suffix == ".gz" else data)
        return out or [b""]

    return seeds


def _patch_seeds() -> list[bytes]:
    return [b"", encode_patches([(0x400 + 0x38, b"\0\0")]), encode_patches([(4096, b"\xff" * 16)])]


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("worker-frames", _worker_frames, _no_seeds),
    Target("qcow2", _qcow2, _file_seeds("tests/data/image/*.qcow2.gz")),
    Target("disk-raw", _disk_target(None, 0), _file_seeds("tests/data/volume/*.bin")),
    Target("disk-sample", _disk_target("../../src/virtkit/data/sample-guest.img.gz", 1 << 20), _patch_seeds),
    Target("lvm-metadata", _text_target(_lvm_metadata), _file_seeds("tests/data/volume/*.lvmtext")),
    Target("ext4", _fs_target("ext4/ext4-default.img.gz", 1 << 20), _patch_seeds),
    Target("xfs", _fs_target("xfs/xfs-v5-4k.img.gz", 1 << 20), _patch_seeds),
    Target("btrfs", _fs_target("btrfs/btrfs-single.img.gz", 8 << 20), _patch_seeds),
    Target("fat", _fs_target("fat/fat32.img.gz", 1 << 20), _patch_seeds),
    Target("iso9660", _fs_target("iso9660/rr-joliet.iso.gz", 1 << 20), _patch_seeds),
    Target("grubenv", _grubenv, _no_seeds),
    Target("grub2", _text_target(_grub2), _file_seeds("tests/configs/grub2/*/grub.cfg", "tests/spec/grub2/*.test")),
    Target("bls", _text_target(_bls), _file_seeds("tests/configs/**/*.conf")),
    Target("grub-legacy", _text_target(_engine("virtkit.boot.config.grub_legacy", "load_grub_legacy_menu", "/boot/grub/menu.lst")),
           _file_seeds("tests/configs/**/menu.lst", "tests/configs/**/grub.conf")),
    Target("extlinux", _text_target(_engine("virtkit.boot.config.extlinux", "load_extlinux_menu", "/boot/extlinux/extlinux.conf")),
           _file_seeds("tests/configs/**/extlinux.conf", "tests/configs/**/isolinux.cfg")),
    Target("lilo", _text_target(_engine("virtkit.boot.config.lilo", "load_lilo_menu", "/etc/lilo.conf")),
           _file_seeds("tests/configs/**/lilo.conf")),
]}


def run_target(name: str, data: bytes) -> None:
    """Run one input; re-raise anything that is not a VirtkitError (a finding)."""
    try:
        TARGETS[name].run(data)
    except VirtkitError:
        pass


def iter_targets() -> Iterator[Target]:
    return iter(TARGETS.values())
