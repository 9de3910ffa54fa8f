"""Differential: every byte our qcow2 reader returns equals ``qemu-img convert -O raw`` (sha256).

Three sources of images: the committed fixtures, images qemu-img makes at test
time from pseudo-random disks with holes (every cluster size, compression,
extended L2, overlays written by qemu-io), and our byte builder's images (so
the builder, the test oracle of the unit tests, is checked against QEMU too).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from builders.qcow2 import Qcow2Builder
from helpers import DATA, fixture_path, require_tool
from virtkit._streams import iter_chunks
from virtkit.boot.image import open_image
from virtkit.limits import DEFAULT_LIMITS

pytestmark = pytest.mark.differential

MiB = 1 << 20


def _qemu_raw(path: Path, tmp: Path) -> bytes:
    out = tmp / (path.name + ".qemu.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(path), str(out)], check=True, capture_output=True)
    data = out.read_bytes()
    out.unlink()
    return data


def _ours(path: Path, backing: Path | None = None, chunk: int = MiB) -> bytes:
    with open_image(str(path), limits=DEFAULT_LIMITS, backing=str(backing) if backing else None) as img:
        return b"".join(iter_chunks(img.source, chunk=chunk))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _random_disk(path: Path, seed: int, size: int = 6 * MiB) -> bytes:
    """Pseudo-random content with holes, text runs, 0xff runs and odd-sized pieces."""
    rnd = random.Random(seed)
    disk = bytearray(size)
    pos = 0
    while pos < size:
        n = min(size - pos, rnd.choice([512, 3000, 4096, 65536, 70000, 200_000]))
        kind = rnd.random()
        if kind < 0.35:
            pass  # hole
        elif kind < 0.55:
            disk[pos : pos + n] = rnd.randbytes(n)
        elif kind < 0.85:
            line = f"seed {seed} offset {pos:#x} ".encode()
            disk[pos : pos + n] = (line * (n // len(line) + 1))[:n]
        else:
            disk[pos : pos + n] = b"\xff" * n
        pos += n
    path.write_bytes(disk)
    return bytes(disk)


# -- committed fixtures ------------------------------------------------------------------------

FIXTURES = sorted(p.name[:-3] for p in (DATA / "image").glob("*.qcow2.gz"))
BACKING = {"overlay-raw.qcow2": "disk.raw", "overlay-qcow2.qcow2": "v3.qcow2"}


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_qemu_img(name: str, tmp_path: Path) -> None:
    require_tool("qemu-img")
    # qemu-img resolves the stored backing name next to the overlay: copy both under their names.
    image = tmp_path / name
    shutil.copyfile(fixture_path(f"image/{name}.gz"), image)
    backing = None
    if name in BACKING:
        backing = tmp_path / BACKING[name]
        shutil.copyfile(fixture_path(f"image/{BACKING[name]}.gz"), backing)
    assert _sha(_ours(image, backing)) == _sha(_qemu_raw(image, tmp_path))


# -- images qemu-img makes now -----------------------------------------------------------------

VARIANTS = [
    pytest.param(["-o", "compat=0.10"], id="v2"),
    pytest.param([], id="v3"),
    pytest.param(["-o", "cluster_size=512"], id="c512"),
    pytest.param(["-o", "cluster_size=4k"], id="c4k"),
    pytest.param(["-o", "cluster_size=2M"], id="c2M"),
    pytest.param(["-c"], id="zlib"),
    pytest.param(["-c", "-o", "cluster_size=4k"], id="zlib-c4k"),
    pytest.param(["-c", "-o", "compression_type=zstd"], id="zstd"),
    pytest.param(["-o", "extended_l2=on"], id="extl2"),
    pytest.param(["-o", "extended_l2=on,cluster_size=16k"], id="extl2-c16k"),
    pytest.param(["-c", "-o", "extended_l2=on,compression_type=zstd"], id="extl2-zstd"),
]


@pytest.mark.parametrize("opts", VARIANTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_generated_image_matches_qemu_img(opts: list[str], seed: int, tmp_path: Path) -> None:
    require_tool("qemu-img")
    raw = tmp_path / "disk.raw"
    content = _random_disk(raw, seed)
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", *opts, str(raw), str(image)], check=True, capture_output=True)
    ours = _ours(image, chunk=MiB + 4096 + 17)
    assert _sha(ours) == _sha(_qemu_raw(image, tmp_path)) == _sha(content)
    rnd = random.Random(seed)
    with open_image(str(image), limits=DEFAULT_LIMITS) as img:
        for _ in range(100):
            off = rnd.randrange(len(content))
            n = rnd.randrange(min(len(content) - off, 300_000) + 1)
            assert img.source.pread(off, n) == content[off : off + n]


def _qemu_io(image: Path, commands: list[str]) -> None:
    argv = ["qemu-io", "-f", "qcow2"]
    for c in commands:
        argv += ["-c", c]
    subprocess.run([*argv, str(image)], check=True, capture_output=True)


def _random_writes(seed: int, size: int, count: int = 40) -> list[str]:
    rnd = random.Random(seed)
    cmds = []
    for _ in range(count):
        off = rnd.randrange(0, size // 512) * 512
        n = min(size - off, rnd.choice([512, 2048, 4096, 65536, 100 * 1024]))
        kind = rnd.random()
        if kind < 0.6:
            cmds.append(f"write -P {rnd.randrange(1, 256)} {off} {n}")
        elif kind < 0.85:
            cmds.append(f"write -z {off} {n}")
        else:
            cmds.append(f"discard {off} {n}")
    return cmds


@pytest.mark.parametrize(
    "create_opts",
    [
        pytest.param("cluster_size=64k", id="c64k"),
        pytest.param("cluster_size=4k", id="c4k"),
        pytest.param("extended_l2=on,cluster_size=64k", id="extl2"),
        pytest.param("extended_l2=on,cluster_size=32k", id="extl2-c32k"),
    ],
)
@pytest.mark.parametrize("backing_kind", ["raw", "qcow2", "none"])
def test_overlay_writes_match_qemu_img(create_opts: str, backing_kind: str, tmp_path: Path) -> None:
    require_tool("qemu-img", "qemu-io")
    size = 4 * MiB
    base_raw = tmp_path / "base.raw"
    _random_disk(base_raw, 11, size)
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", create_opts]
    backing = None
    if backing_kind == "raw":
        backing = base_raw
        argv += ["-b", "base.raw", "-F", "raw"]
    elif backing_kind == "qcow2":
        backing = tmp_path / "base.qcow2"
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-c", str(base_raw), str(backing)], check=True)
        argv += ["-b", "base.qcow2", "-F", "qcow2"]
    image = tmp_path / "overlay.qcow2"
    subprocess.run([*argv, str(image), str(size)], check=True, cwd=tmp_path)
    _qemu_io(image, _random_writes(zlib.crc32(f"{create_opts}/{backing_kind}".encode()), size))
    assert _sha(_ours(image, backing, chunk=777_777)) == _sha(_qemu_raw(image, tmp_path))


# -- our builder's images ----------------------------------------------------------------------


def _builder_image(cluster_bits: int, ext: bool, zstd: bool, seed: int) -> Qcow2Builder:
    rnd = random.Random(seed)
    cs = 1 << cluster_bits
    b = Qcow2Builder(size=cs * 40 + 1536 + 77, cluster_bits=cluster_bits, extended_l2=ext, compression_type=int(zstd))
    for c in range(41):
        r = rnd.random()
        if r < 0.3:
            alloc = rnd.getrandbits(32) if ext else 0xFFFFFFFF
            b.data(c, rnd.randbytes(cs), alloc=alloc, zero=rnd.getrandbits(32) & ~alloc if ext else 0)
        elif r < 0.5:
            b.compressed(c, bytes([c]) * (cs // 2) + rnd.randbytes(64))
        elif r < 0.65:
            if ext:
                b.zero(c, zero_mask=rnd.getrandbits(32))
            else:
                b.zero(c, preallocated=rnd.random() < 0.5)
    return b


@pytest.mark.parametrize(
    ("cluster_bits", "ext", "zstd"), [(9, False, False), (12, False, True), (14, True, False), (16, True, True)]
)
@pytest.mark.parametrize("seed", [5, 6])
def test_builder_images_match_qemu_img(cluster_bits: int, ext: bool, zstd: bool, seed: int, tmp_path: Path) -> None:
    require_tool("qemu-img")
    b = _builder_image(cluster_bits, ext, zstd, seed)
    image = tmp_path / "built.qcow2"
    image.write_bytes(b.build())
    check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    qemu = _qemu_raw(image, tmp_path)
    assert qemu == b.model()
    assert _ours(image, chunk=100_000) == qemu
