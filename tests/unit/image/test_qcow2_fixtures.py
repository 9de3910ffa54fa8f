"""The qcow2 fixtures made by qemu-img/qemu-io (tests/tools/make_image_fixtures.sh): exact values.

Each fixture's virtual disk must hash to what ``qemu-img convert -O raw``
gave when the fixture was made (tests/data/image/SHA256SUMS), and where the
content is known (disk.raw's markers, qemu-io's patterns) the bytes are
checked one by one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from helpers import DATA, fixture_path
from virtkit._streams import iter_chunks
from virtkit.boot.image import Image, open_image
from virtkit.limits import DEFAULT_LIMITS

C = 64 * 1024
BACKING = {"overlay-raw.qcow2": "disk.raw", "overlay-qcow2.qcow2": "v3.qcow2"}
SUMS = dict(reversed(line.split()) for line in (DATA / "image" / "SHA256SUMS").read_text().splitlines())


def _path(name: str) -> Path:
    return fixture_path(f"image/{name}.gz")


def _open(name: str) -> Image:
    backing = str(_path(BACKING[name])) if name in BACKING else None
    return open_image(str(_path(name)), limits=DEFAULT_LIMITS, backing=backing)


def _sha256(img: Image, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    for part in iter_chunks(img.source, chunk=chunk):
        h.update(part)
    return h.hexdigest()


def _marker(cluster: int, sector: int) -> bytes:
    line = f"virtkit image fixture: cluster {cluster:04d} sector {sector:03d}\n".encode()
    return (line * (512 // len(line) + 1))[:512]


@pytest.mark.parametrize("name", sorted(SUMS))
def test_virtual_disk_hash(name: str) -> None:
    with _open(name) as img:
        assert img.virtual_size == 2 << 20
        assert _sha256(img) == SUMS[name]
        assert _sha256(img, chunk=65536 + 512 + 3) == SUMS[name]  # unaligned chunking


# name: (version, cluster_size, compression, extended_l2, dirty, lazy_refcounts, backing_file, backing_format)
DETAILS = {
    "v2.qcow2": (2, C, "zlib", False, False, False, None, None),
    "v3.qcow2": (3, C, "zlib", False, False, False, None, None),
    "v3-4k.qcow2": (3, 4096, "zlib", False, False, False, None, None),
    "v3-512.qcow2": (3, 512, "zlib", False, False, False, None, None),
    "zlib.qcow2": (3, C, "zlib", False, False, False, None, None),
    "zstd.qcow2": (3, C, "zstd", False, False, False, None, None),
    "extl2.qcow2": (3, C, "zlib", True, False, False, None, None),
    "zeroes.qcow2": (3, C, "zlib", False, False, False, None, None),
    "subclusters.qcow2": (3, C, "zlib", True, False, False, None, None),
    "overlay-raw.qcow2": (3, C, "zlib", False, False, False, "disk.raw", "raw"),
    "overlay-qcow2.qcow2": (3, C, "zlib", True, False, False, "v3.qcow2", "qcow2"),
    "dirty.qcow2": (3, C, "zlib", False, True, True, None, None),
}


@pytest.mark.parametrize("name", sorted(DETAILS))
def test_details(name: str) -> None:
    with _open(name) as img:
        d = img.details
        got = tuple(
            d[k]
            for k in (
                "version",
                "cluster_size",
                "compression_type",
                "extended_l2",
                "dirty",
                "lazy_refcounts",
                "backing_file",
                "backing_format",
            )
        )
        assert img.format == "qcow2"
        assert got == DETAILS[name]
        assert d["virtual_size"] == 2 << 20
        assert d["corrupt"] is False


@pytest.mark.parametrize("name", ["v2.qcow2", "v3-512.qcow2", "zlib.qcow2", "zstd.qcow2", "extl2.qcow2", "dirty.qcow2"])
def test_known_content(name: str) -> None:
    with _open(name) as img, open(_path("disk.raw"), "rb") as raw_file:
        src = img.source
        raw = raw_file.read()
        assert src.pread(0, 512) == _marker(0, 0)
        assert src.pread(3 * C + 5 * 512, 512) == _marker(3, 5)
        assert src.pread(5 * C, 3 * C) == bytes(3 * C)  # the hole (cluster 4 is written in dirty.qcow2)
        assert src.pread(8 * C, 16384) == raw[8 * C : 8 * C + 16384]  # random bytes
        assert src.pread(10 * C + 12288, 512) == _marker(10, 0)
        assert src.pread(30 * C, C) == b"\xff" * C
        assert src.pread(31 * C + 511 * 512 // 4, 7) == raw[31 * C + 511 * 512 // 4 :][:7]
        if name != "dirty.qcow2":
            assert b"".join(iter_chunks(src)) == raw
        else:  # the write that happened before the crash is there
            assert src.pread(256 * 1024, C) == b"\xd1" * C


def test_zero_clusters_fixture() -> None:
    with _open("zeroes.qcow2") as img:
        assert img.source.pread(C, C) == bytes(C)  # was cluster 1 markers
        assert img.source.pread(16 * C, 2 * C) == bytes(2 * C)
        assert img.source.pread(2 * C, 512) == _marker(2, 0)


def test_subclusters_fixture() -> None:
    with _open("subclusters.qcow2") as img:
        s = img.source
        assert s.pread(0, 4096) == b"\x11" * 4096
        assert s.pread(4096, 4096) == bytes(4096)
        assert s.pread(8192, 2048) == b"\x22" * 2048
        assert s.pread(C, 4096) == b"\x33" * 4096
        assert s.pread(C + 4096, 8192) == bytes(8192)  # zeroed subclusters
        assert s.pread(C + 12288, C - 12288) == b"\x33" * (C - 12288)
        assert s.pread(1 << 20, 6144) == b"\x44" * 6144
        assert s.pread((1 << 20) + 16384, 24576) == bytes(24576)


def test_overlay_on_raw() -> None:
    with _open("overlay-raw.qcow2") as img, open(_path("disk.raw"), "rb") as f:
        raw = f.read()
        s = img.source
        assert s.pread(0, 512) == b"\xa1" * 512
        assert s.pread(512, 512) == raw[512:1024]  # copied from the backing on write
        assert s.pread(2 * C, C) == b"\xa2" * C
        assert s.pread(16 * C, C) == bytes(C)  # write -z over backing data
        assert s.pread(17 * C, C) == raw[17 * C : 18 * C]
        assert img.details["backing_used"] == f"backing file of {_path('overlay-raw.qcow2')}"


def test_overlay_on_qcow2() -> None:
    with _open("overlay-qcow2.qcow2") as img, open(_path("disk.raw"), "rb") as f:
        raw = f.read()
        s = img.source
        assert s.pread(0, 4096) == raw[:4096]  # unallocated subcluster: from v3.qcow2
        assert s.pread(4096, 4096) == b"\xb1" * 4096
        assert s.pread(200 * 1024, 10 * 1024) == b"\xb2" * 10 * 1024
        assert s.pread(1088 * 1024, 16 * 1024) == bytes(16 * 1024)
        assert s.pread(1104 * 1024, 1024) == raw[1104 * 1024 : 1105 * 1024]


def test_overlay_without_backing_is_refused() -> None:
    from virtkit.errors import UnsupportedFeature

    with pytest.raises(UnsupportedFeature, match=r"overlay on backing file 'disk.raw'.*--backing FILE"):
        open_image(str(_path("overlay-raw.qcow2")), limits=DEFAULT_LIMITS)


def test_fixture_sizes_stay_small() -> None:
    for gz in (DATA / "image").glob("*.gz"):
        assert gz.stat().st_size < 300 * 1024, gz
