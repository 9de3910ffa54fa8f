"""Fuzz targets for every parser that meets guest data, shared by hypothesis and atheris.

Invariant for every target (STYLE.md, idea 4): for any input, the parser
returns a result or raises a ``VirtkitError`` - never any other exception,
never a hang, never unbounded memory.  ``run_target(name, data)`` enforces
exactly that; the hypothesis suite (tests/fuzz) and the atheris campaigns
(fuzz/run_atheris.py, ``make fuzz``) both call it.

Binary targets on images do not fuzz the whole image: the input is a *patch
program* (fuzz/patching.py) applied to a fixture image copy-on-write, whose
offsets address the image's metadata sectors only.  Text targets take the input as UTF-8 text (surrogateescape).
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "src", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from patching import (  # noqa: E402
    SECTOR,
    Base,
    MetadataMap,
    PatchedSource,
    base_image,
    decode_program,
    encode_patches,
)

from virtkit._streams import ByteSource, BytesSource  # noqa: E402
from virtkit.errors import VirtkitError  # noqa: E402
from virtkit.limits import Limits  # noqa: E402

__all__ = ["FUZZ_LIMITS", "TARGETS", "Base", "MetadataMap", "PatchedSource", "Target", "base_image", "decode_program",
           "encode_patches", "iter_targets", "run_target", "run_target_strict", "walk_filesystem"]

# Tighter limits keep one execution cheap; they are still the real mechanism.
FUZZ_LIMITS = Limits(
    max_read=4 << 20, max_file_bytes=64 << 20, max_dir_entries=5000, max_tree_nodes=20000, max_extents=20000,
    max_chain_length=200000, max_script_steps=20000, max_config_bytes=1 << 20, max_menu_entries=2000,
    max_string_bytes=1 << 16, max_partitions=256, max_lvm_metadata_bytes=1 << 20, max_lvm_tokens=100000,
    max_call_depth=64,
)
MAX_WALK_NODES = 12
MAX_READ_PER_FILE = 4 << 10


# ------------------------------------------------------------------ walkers


def walk_filesystem(fs: object) -> None:
    """Touch what a boot needs: lookups, listings, symlinks, reads (all bounded and small)."""
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
                if i >= 16:
                    break
                if entry.name not in (".", ".."):
                    stack.append(entry.node())
        elif st.type is FileType.SYMLINK:
            node.readlink()
        elif st.type is FileType.FILE:
            src = node.open()
            n = min(src.size, MAX_READ_PER_FILE)
            if n:
                src.pread(0, n)
                if src.size > 2 * MAX_READ_PER_FILE:
                    src.pread(src.size - MAX_READ_PER_FILE, MAX_READ_PER_FILE)
    for path in ("/grub/grub.cfg", "/boot/grub/grub.cfg", "/vmlinuz-6.1.0-28-amd64", "/vmlinuz", "/grub/grubenv"):
        try:
            node = fs.lookup(path)
            if node.stat().type is FileType.FILE:
                src = node.open()
                src.pread(0, min(src.size, MAX_READ_PER_FILE))
        except VirtkitError:
            pass


@cache
def _memoise_btrfs_crc32c() -> None:
    """Remember CRC-32C results of blocks already seen (the same pure function, computed once).

    Verifying every tree block in pure Python dominates a btrfs execution; most
    blocks of a mutated image are the fixture's own, so the harness caches their
    checksums (bounded) instead of weakening the reader.
    """
    from virtkit.boot.fs.btrfs import checksum

    raw = checksum.crc32c_raw
    memo: dict[tuple[int, bytes], int] = {}

    def crc32c_raw(crc: int, data: bytes | bytearray | memoryview) -> int:
        key = (crc, bytes(data))
        got = memo.get(key)
        if got is None:
            if len(memo) >= 8192:
                memo.clear()
            got = memo[key] = raw(crc, data)
        return got

    checksum.crc32c_raw = crc32c_raw  # type: ignore[assignment]


def _fs_target(*fixtures: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        from virtkit.boot.fs import open_filesystem

        if fixtures[0].startswith("btrfs/"):
            _memoise_btrfs_crc32c()

        srcs = base_image(*fixtures).patched(data)
        walk_filesystem(open_filesystem(srcs[0], limits=FUZZ_LIMITS, peers=srcs[1:]))

    return run


def _images(sources: Sequence[ByteSource]) -> list[object]:
    from virtkit.boot.image import Image

    return [Image(name=f"disk{i}", path=f"disk{i}", format="raw", source=s, file=None)  # type: ignore[arg-type]
            for i, s in enumerate(sources)]


def _storage(sources: Sequence[ByteSource]) -> None:
    """Volumes, then every filesystem on them, then the boot configuration discovery."""
    from virtkit.boot.pipeline import Guest
    from virtkit.boot.volume import discover_volumes

    images = _images(sources)
    storage = discover_volumes(images, limits=FUZZ_LIMITS)  # type: ignore[arg-type]
    for v in storage.volumes:
        if v.source.size:
            v.source.pread(0, min(v.source.size, 4096))
            v.source.pread(v.source.size - min(v.source.size, 512), min(v.source.size, 512))
    guest = Guest(images=images, storage=storage, limits=FUZZ_LIMITS)  # type: ignore[arg-type]
    for m in guest.filesystems():
        if m.fs is not None:
            m.fs.root().stat()


def _disk_target(*fixtures: str) -> Callable[[bytes], None]:
    """Volume discovery only (tables, LVM, MD); what the volumes hold is the fs targets' job."""

    def run(data: bytes) -> None:
        from virtkit.boot.volume import discover_volumes

        storage = discover_volumes(_images(base_image(*fixtures).patched(data)), limits=FUZZ_LIMITS)  # type: ignore[arg-type]
        for v in storage.volumes:
            if v.source.size:
                v.source.pread(0, min(v.source.size, 4096))
                v.source.pread(v.source.size - min(v.source.size, 512), min(v.source.size, 512))

    return run


def _disk_raw(data: bytes) -> None:
    _storage([BytesSource(data, "fuzz-disk")])


def _qcow2(data: bytes) -> None:
    _qcow2_source(BytesSource(data, "fuzz.qcow2"))


def _qcow2_patch(fixture_name: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        _qcow2_source(base_image(fixture_name).patched(data)[0])

    return run


def _qcow2_source(src: ByteSource) -> None:
    from virtkit.boot.image.qcow2 import open_qcow2

    img = open_qcow2(src, limits=FUZZ_LIMITS, backing=None)
    img.details()
    for off in range(0, min(img.size, 1 << 20), 64 << 10):
        img.pread(off, min(4096, img.size - off))
    if img.size > 4096:
        img.pread(img.size - 4096, 4096)


def _lzo(data: bytes) -> None:
    """The btrfs LZO framing and the pure-Python LZO1X decompressor (first 2 bytes: ram_bytes/512)."""
    from virtkit.boot.fs.btrfs.compression import decompress_extent
    from virtkit.boot.fs.btrfs.lzo import LzoError, lzo1x_decompress

    if len(data) < 2:
        return
    ram = (data[0] | data[1] << 8) % 64 * 512 + 1
    decompress_extent(2, data[2:], ram, sectorsize=4096, what="fuzz lzo extent")
    try:
        lzo1x_decompress(data[2:], ram)
    except LzoError:
        pass  # the raw decompressor's own error, wrapped by decompress_extent


# ------------------------------------------------------------------ text targets


def _text_target(func: Callable[[str], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        func(data.decode("utf-8", "surrogateescape"))

    return run


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


_BOOT_FILES = {"/vmlinuz": b"k", "/boot/vmlinuz-6.1": b"k", "/initrd.img": b"i", "/boot/initrd.img-6.1": b"i"}


def _memory(path: str, text: str, extra: dict[str, bytes] | None = None) -> object:
    from virtkit.boot.config.source import MemoryFiles

    tree = {**_BOOT_FILES, path: _enc(text), **(extra or {})}
    return MemoryFiles({"hd0,msdos1": tree})


def _grub2_syntax(text: str) -> None:
    from virtkit.boot.config.grub2.parser import parse_all
    from virtkit.boot.config.grub2.tokens import ScriptText
    from virtkit.boot.config.source import SourceFile

    parse_all(ScriptText.from_file(SourceFile("hd0,msdos1", "/boot/grub/grub.cfg", text)))


def _grub2(text: str) -> None:
    from virtkit.boot.config.grub2 import load_grub2_menu

    cfg, _, env = text.partition("\n#ENV\n")
    extra = {"/boot/grub/grubenv": _enc("# GRUB Environment Block\n" + env)} if env else {}
    files = _memory("/boot/grub/grub.cfg", cfg, extra)
    load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=FUZZ_LIMITS)  # type: ignore[arg-type]


def _engine(func_name: str, path: str) -> Callable[[str], None]:
    def run(text: str) -> None:
        from virtkit.boot.config import extlinux, grub_legacy, lilo

        fn = {"grub-legacy": grub_legacy.load_grub_legacy_menu, "extlinux": extlinux.load_extlinux_menu,
              "lilo": lilo.load_lilo_menu}[func_name]
        fn(_memory(path, text), "hd0,msdos1", path, limits=FUZZ_LIMITS)  # type: ignore[arg-type]

    return run


def _split_parts(text: str) -> list[str]:
    return text.split("\n----\n")[:8]


def _sdboot(text: str) -> None:
    """systemd-boot: loader.conf, then entries (parts separated by a '----' line)."""
    from virtkit.boot.config.sdboot import load_sdboot_menu

    parts = _split_parts(text)
    extra = {f"/loader/entries/e{i}.conf": _enc(p) for i, p in enumerate(parts[1:])}
    files = _memory("/loader/loader.conf", parts[0], extra)
    load_sdboot_menu(files, "hd0,msdos1", "/loader/loader.conf", limits=FUZZ_LIMITS)  # type: ignore[arg-type]


def _bls(text: str) -> None:
    """BLS snippets through GRUB's blscfg (parse, sort, expand, build entries)."""
    from virtkit.boot.config.bls import parse_bls_snippet, sort_bls_entries
    from virtkit.boot.config.grub2 import load_grub2_menu

    parts = _split_parts(text)
    entries = [parse_bls_snippet(p, f"e{i}", f"/loader/entries/e{i}.conf") for i, p in enumerate(parts)]
    sort_bls_entries(entries)
    sort_bls_entries(entries, "version")
    extra = {f"/loader/entries/fuzz-{i}.conf": _enc(p) for i, p in enumerate(parts)}
    cfg = "set kernelopts='root=/dev/xvda1 ro'\ninsmod blscfg\nblscfg\n"
    files = _memory("/boot/grub/grub.cfg", cfg, extra)
    load_grub2_menu(files, "hd0,msdos1", "/boot/grub/grub.cfg", limits=FUZZ_LIMITS)  # type: ignore[arg-type]


def _grubenv(data: bytes) -> None:
    from virtkit.boot.config.grubenv import parse_grubenv

    parse_grubenv(data, limits=FUZZ_LIMITS)


def _lvm_metadata(text: str) -> None:
    from virtkit.boot.volume.lvm.metadata import parse_metadata

    parse_metadata(text, limits=FUZZ_LIMITS)


def _worker_frames(data: bytes) -> None:
    """The parent's decoder of the worker channel, fed in odd-sized pieces, then EOF."""
    from virtkit.boot.worker.protocol import FrameDecoder

    d = FrameDecoder(max_json=1 << 16, max_chunk=1 << 12)
    step = 1 + (data[0] % 13 if data else 0)
    for i in range(0, len(data), step):
        d.receive_data(data[i : i + step])
        while d.next_frame() is not None:
            pass
    d.receive_data(b"")
    while d.next_frame() is not None:
        pass


def _menu_codec(data: bytes) -> None:
    """``menu_from_wire`` on arbitrary JSON, then the menu's own walkers."""
    from virtkit.boot.config.model import iter_entries
    from virtkit.boot.worker.codec import entry_from_wire, menu_from_wire
    from virtkit.boot.worker.protocol import FrameDecoder, encode_data  # noqa: F401 - same decoder rules

    try:
        value = json.loads(data.decode("utf-8"), parse_constant=lambda name: 0)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return  # the frame decoder refuses these before the codec sees them (worker-frames target)
    if isinstance(value, dict) and value.get("type") == "entry":
        entry_from_wire(value, limits=FUZZ_LIMITS)
        return
    menu = menu_from_wire(value, limits=FUZZ_LIMITS)
    for _path, _entry in iter_entries(menu.items):
        pass


@dataclass(frozen=True)
class Target:
    """A fuzz target: ``run`` takes raw bytes; ``seeds`` gives the starting corpus."""

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    kind: str = "text"  # "text", "binary" (whole input is the data) or "patch" (a patch program)
    # Packages atheris instruments for coverage (the code under test; the rest runs uninstrumented).
    instrument: tuple[str, ...] = ("virtkit.boot",)
    # The parser this harness is for, for line-coverage reports (fuzz/corpus_coverage.py); () = ``instrument``.
    scope: tuple[str, ...] = ()

    @property
    def coverage_scope(self) -> tuple[str, ...]:
        return self.scope or self.instrument


def _no_seeds() -> list[bytes]:
    return [b""]


def _file_seeds(*patterns: str) -> Callable[[], list[bytes]]:
    def seeds() -> list[bytes]:
        out = []
        for p in patterns:
            for f in sorted(ROOT.glob(p)):
                if f.is_file():
                    data = f.read_bytes()
                    out.append(gzip.decompress(data) if f.suffix == ".gz" else data)
        return out or [b""]

    return seeds


def _const_seeds(*items: bytes) -> Callable[[], list[bytes]]:
    return lambda: list(items)


def _patch_seeds(*fixtures: str) -> Callable[[], list[bytes]]:
    """The unpatched image, a flipped byte in the first and the middle metadata sector, a truncation."""

    def seeds() -> list[bytes]:
        base = base_image(*fixtures)
        n = sum(len(m) for m in base.maps) * SECTOR
        return [b"", encode_patches([(0x38, b"\xff")]), encode_patches([(n // 2, b"\0" * 16)]),
                encode_patches([(n // 3 + 8, b"\x01\x00\x00\x00")]), encode_patches([], cut=2048)]

    return seeds


def _qcow2_seeds() -> list[bytes]:
    """Whole small qcow2 images (512-byte clusters: data, zero and compressed clusters; v2 and v3)."""
    from builders.qcow2 import Qcow2Builder  # type: ignore[import-not-found]

    out = []
    for version, kw in ((3, {}), (2, {}), (3, {"compression_type": 1})):
        b = Qcow2Builder(size=64 << 10, cluster_bits=9, version=version, **kw)
        b.data(0, b"virtkit qcow2 seed")
        if version == 3:
            b.zero(1)
        b.compressed(2, b"x" * 512)
        out.append(b.build())
    return out


def _frames_seeds() -> list[bytes]:
    from virtkit.boot.worker.protocol import encode_data, encode_end, encode_json

    return [b"", encode_json({"op": "menu", "x": [1, 2.5, None, "s"]}) + encode_data(b"abc") + encode_end()]


def _grub2_seeds() -> list[bytes]:
    """Realistic grub.cfg files, and every case of the GRUB 2 spec tests as its own script."""
    out = [_GRUB2_SEED, *_file_seeds("tests/golden/cli/fs/*grub.cfg")()]
    for f in sorted((ROOT / "tests" / "spec" / "grub2").glob("*.test")):
        case: list[str] = []
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("####"):
                case = []
            elif line.startswith("## "):
                if case:
                    out.append(("\n".join(case) + "\n").encode())
                case = []
            else:
                case.append(line)
    return [s for s in out if s.strip()][:200]


def _codec_seeds() -> list[bytes]:
    from virtkit.boot.config.grub2 import load_grub2_menu
    from virtkit.boot.worker.codec import menu_to_wire

    out = []
    for cfg in _grub2_seeds()[:40]:
        try:
            menu = load_grub2_menu(_memory("/boot/grub/grub.cfg", cfg.decode("utf-8", "surrogateescape")),  # type: ignore[arg-type]
                                   "hd0,msdos1", "/boot/grub/grub.cfg", limits=FUZZ_LIMITS)
        except VirtkitError:
            continue
        if menu.items:
            out.append(json.dumps(menu_to_wire(menu)).encode())
    return out[:10] or [b"{}"]


def _lzo_seeds() -> list[bytes]:
    """btrfs LZO extents: one and two segments of LZO1X literal runs (the fuzzer grows matches)."""

    def segment(payload: bytes) -> bytes:
        stream = bytes([17 + len(payload)]) + payload + b"\x11\x00\x00"  # literal run, end marker
        return struct.pack("<I", len(stream)) + stream

    one = segment(b"virtkit lzo seed " * 4)
    two = one + segment(b"second")
    return [b"\x01\x00" + struct.pack("<I", 4 + len(body)) + body for body in (one, two)]


def _text_seeds(*patterns: str, limit: int = 40) -> Callable[[], list[bytes]]:
    def seeds() -> list[bytes]:
        out = _file_seeds(*patterns)()
        return [s for s in out if len(s) <= 64 << 10][:limit] or [b""]

    return seeds


_GRUB2_SEED = (b"set default=\"${saved_entry}\"\nload_env\nset timeout=5\ninsmod part_msdos\ninsmod ext2\n"
               b"search --no-floppy --fs-uuid --set=root 1234-abcd\nfunction load_video { insmod all_video; }\n"
               b"menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {\n"
               b"\tload_video\n\tlinux /boot/vmlinuz-6.1 root=/dev/xvda1 ro quiet\n\tinitrd /boot/initrd.img-6.1\n}\n"
               b"submenu 'Advanced options' {\n\tmenuentry 'old' { linux /vmlinuz; initrd /initrd.img; }\n}\n"
               b"if [ \"${next_entry}\" ] ; then set default=\"${next_entry}\"; fi\n"
               b"for x in a b c; do if test -f /vmlinuz; then echo $x; fi; done\n#ENV\nsaved_entry=1\n")
_LEGACY_SEED = b"default 1\ntimeout 5\ntitle A\nroot (hd0,0)\nkernel /vmlinuz ro\ninitrd /initrd.img\ntitle B\nkernel /boot/vmlinuz-6.1\n"
_EXTLINUX_SEED = b"DEFAULT b\nTIMEOUT 50\nLABEL a\n  KERNEL /vmlinuz\n  APPEND ro\nLABEL b\n  LINUX /boot/vmlinuz-6.1\n  INITRD /initrd.img\n"
_LILO_SEED = b"boot=/dev/sda\ndefault=b\nimage=/vmlinuz\n  label=a\n  read-only\nimage=/boot/vmlinuz-6.1\n  label=b\n  initrd=/initrd.img\n  append=\"quiet\"\n"
_SDBOOT_SEED = (b"default b*\ntimeout 3\n----\ntitle A\nversion 1.2\nlinux /vmlinuz\ninitrd /initrd.img\n"
                b"----\ntitle B\nsort-key b\nversion 6.1\nlinux /boot/vmlinuz-6.1\noptions ro\n")
_BLS_SEED = (b"title A\nversion 5.14.0-1.el9\nlinux /vmlinuz\ninitrd /initrd.img\noptions $kernelopts\n"
             b"----\ntitle B\nversion 5.14.0-2.el9\nlinux /boot/vmlinuz-6.1\ngrub_users $u\ngrub_arg --unrestricted\n")
_LVM_SEED = (b'vg {\nid = "abc"\nseqno = 1\nformat = "lvm2"\nstatus = ["READ", "WRITE"]\nextent_size = 8192\n'
             b'physical_volumes {\npv0 {\nid = "x"\ndevice = "/dev/sda"\nstatus = ["ALLOCATABLE"]\npe_start = 2048\n'
             b'pe_count = 10\n}\n}\nlogical_volumes {\nroot {\nid = "y"\nstatus = ["READ", "WRITE", "VISIBLE"]\n'
             b'segment_count = 1\nsegment1 {\nstart_extent = 0\nextent_count = 4\ntype = "striped"\nstripe_count = 1\n'
             b'stripes = [\n"pv0", 0\n]\n}\n}\n}\n}\n')

_FS = {
    "ext4": ("ext4/ext4-default.img.gz",),
    "ext4-1k": ("ext4/ext4-1k.img.gz",),
    "xfs-v5": ("xfs/xfs-v5-4k.img.gz",),
    "xfs-v4": ("xfs/xfs-v4-ftype1-ci.img.gz",),
    "btrfs": ("btrfs/rootdir.img.gz",),
    "btrfs-lzo": ("btrfs/compress-lzo.img.gz",),
    "fat": ("fat/fat16.img.gz",),
    "fat32": ("fat/fat32.img.gz",),
    "iso9660": ("iso9660/rr-joliet.iso.gz",),
}
_FS_PACKAGE = {"ext4": "virtkit.boot.fs.ext4", "xfs": "virtkit.boot.fs.xfs", "btrfs": "virtkit.boot.fs.btrfs",
               "fat": "virtkit.boot.fs.fat", "fat32": "virtkit.boot.fs.fat", "iso9660": "virtkit.boot.fs.iso9660"}
_DISKS = {
    "disk-gpt": ("volume/gpt.img.gz",),
    "disk-mbr": ("volume/mbr-logical.img.gz",),
    "lvm-label": ("volume/lvm.img.gz",),
    "md": ("md:0", "md:1", "md:2"),
}

TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("worker-frames", _worker_frames, _frames_seeds, "binary", ("virtkit.boot.worker",),
           scope=("virtkit.boot.worker.protocol",)),
    Target("menu-codec", _menu_codec, _codec_seeds, "binary", ("virtkit.boot.worker", "virtkit.boot.config.model"),
           scope=("virtkit.boot.worker.codec",)),
    Target("qcow2-header", _qcow2, _qcow2_seeds, "binary", ("virtkit.boot.image",)),
    Target("qcow2", _qcow2_patch("image/zlib.qcow2.gz"), _patch_seeds("image/zlib.qcow2.gz"), "patch", ("virtkit.boot.image",)),
    Target("qcow2-subclusters", _qcow2_patch("image/subclusters.qcow2.gz"), _patch_seeds("image/subclusters.qcow2.gz"), "patch",
           ("virtkit.boot.image",)),
    Target("disk-raw", _disk_raw, _file_seeds("tests/data/volume/*.bin"), "binary", ("virtkit.boot.volume",)),
    *[Target(name, _disk_target(*fx), _patch_seeds(*fx), "patch", ("virtkit.boot.volume",)) for name, fx in _DISKS.items()],
    Target("lvm-metadata", _text_target(_lvm_metadata), lambda: [_LVM_SEED, *_file_seeds("tests/data/volume/*.lvmtext")()],
           scope=("virtkit.boot.volume.lvm.metadata", "virtkit.boot.volume.lvm.metadata_lexer")),
    *[Target(name, _fs_target(*fx), _patch_seeds(*fx), "patch", (_FS_PACKAGE[name.split("-")[0]],)) for name, fx in _FS.items()],
    Target("lzo", _lzo, _lzo_seeds, "binary", ("virtkit.boot.fs.btrfs.lzo", "virtkit.boot.fs.btrfs.compression")),
    Target("grubenv", _grubenv, _const_seeds(
        b"# GRUB Environment Block\nsaved_entry=1\nnext_entry=\\\\x\n" + b"#" * 970, b"# GRUB Environment Block\na=b"), "binary",
           scope=("virtkit.boot.config.grubenv",)),
    Target("grub2-syntax", _text_target(_grub2_syntax), _grub2_seeds, scope=("virtkit.boot.config.grub2.lexer", "virtkit.boot.config.grub2.parser")),
    Target("grub2", _text_target(_grub2), _grub2_seeds, scope=("virtkit.boot.config.grub2", "virtkit.boot.config.grubenv")),
    Target("bls", _text_target(_bls), lambda: [_BLS_SEED, *_text_seeds("tests/configs/**/entries/*.conf", limit=10)()],
           scope=("virtkit.boot.config.bls", "virtkit.boot.config.uapi")),
    Target("sdboot", _text_target(_sdboot), lambda: [_SDBOOT_SEED, *_text_seeds("tests/configs/**/loader.conf", limit=10)()],
           scope=("virtkit.boot.config.sdboot", "virtkit.boot.config.uapi")),
    Target("grub-legacy", _text_target(_engine("grub-legacy", "/boot/grub/menu.lst")),
           lambda: [_LEGACY_SEED, *_text_seeds("tests/configs/**/menu.lst", "tests/configs/**/grub.conf")()],
           scope=("virtkit.boot.config.grub_legacy", "virtkit.boot.config.grub_legacy_lex", "virtkit.boot.config.grub_legacy_boot")),
    Target("extlinux", _text_target(_engine("extlinux", "/boot/extlinux/extlinux.conf")),
           lambda: [_EXTLINUX_SEED, *_text_seeds("tests/configs/**/extlinux.conf", "tests/configs/**/*linux.cfg")()],
           scope=("virtkit.boot.config.extlinux", "virtkit.boot.config.extlinux_boot")),
    Target("lilo", _text_target(_engine("lilo", "/etc/lilo.conf")),
           lambda: [_LILO_SEED, *_text_seeds("tests/configs/**/lilo.conf")()], scope=("virtkit.boot.config.lilo",)),
]}


def run_target(name: str, data: bytes) -> None:
    """Run one input; re-raise anything that is not a VirtkitError (a finding)."""
    try:
        TARGETS[name].run(data)
    except VirtkitError:
        pass


def run_target_strict(name: str, data: bytes) -> None:
    """Run one input and let every exception through (seeds must succeed)."""
    TARGETS[name].run(data)


def iter_targets() -> Iterator[Target]:
    return iter(TARGETS.values())
