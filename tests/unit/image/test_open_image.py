"""open_image: format by content (not by name), --format override, refused formats, --backing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builders.qcow2 import Qcow2Builder
from helpers import fixture_path
from virtkit.boot.image import detect_format, open_image, open_image_fd
from virtkit.errors import ImageError, LimitExceeded, NotThisFormat, UnsupportedFeature, UsageError
from virtkit.limits import DEFAULT_LIMITS, Limits


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _qcow2(data: bytes = b"inside qcow2") -> bytes:
    b = Qcow2Builder(size=1 << 20, cluster_bits=12)
    b.data(0, data)
    return b.build()


def test_raw_by_content_whatever_the_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "disk.qcow2", b"\xeb\x63\x90" + bytes(4093))
    with open_image(path, limits=DEFAULT_LIMITS) as img:
        assert (img.format, img.virtual_size, img.details) == ("raw", 4096, {})
        assert img.source.pread(0, 3) == b"\xeb\x63\x90"


def test_qcow2_by_content_whatever_the_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "disk.img", _qcow2())
    with open_image(path, limits=DEFAULT_LIMITS, name="disk1") as img:
        assert (img.format, img.name, img.virtual_size) == ("qcow2", "disk1", 1 << 20)
        assert img.details["version"] == 3
        assert img.source.pread(0, 12) == b"inside qcow2"


def test_fixture_raw_and_qcow2() -> None:
    with open_image(str(fixture_path("image/disk.raw.gz")), limits=DEFAULT_LIMITS) as raw:
        assert raw.format == "raw"
        with open_image(str(fixture_path("image/v3.qcow2.gz")), limits=DEFAULT_LIMITS) as q:
            assert q.format == "qcow2"
            assert q.source.pread(0, 1 << 20) == raw.source.pread(0, 1 << 20)


REFUSED = [
    ("vmdk", b"KDMV" + bytes(508), "this is a VMDK image"),
    ("vmdk-descriptor", b"# Disk DescriptorFile\nversion=1\n" + bytes(480), "this is a VMDK descriptor image"),
    ("vhdx", b"vhdxfile" + bytes(504), "this is a VHDX image"),
    ("vhd", b"conectix" + bytes(504), "this is a VHD (dynamic) image"),
    ("vdi", bytes(0x40) + b"\x7f\x10\xda\xbe" + bytes(444), "this is a VDI image"),
    ("luks", b"LUKS\xba\xbe\x00\x01" + bytes(504), "this is a LUKS-encrypted volume image"),
]


@pytest.mark.parametrize(("data", "fragment"), [pytest.param(d, f, id=i) for i, d, f in REFUSED])
def test_refused_formats(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = _write(tmp_path, "guest.img", data)
    with pytest.raises(UnsupportedFeature) as info:
        open_image(path, limits=DEFAULT_LIMITS)
    assert fragment in str(info.value)
    assert "qemu-img convert -O raw" in str(info.value)


@pytest.mark.parametrize(("data", "fmt"), [pytest.param(d, "raw", id=i) for i, d, _ in REFUSED])
def test_format_override_reads_refused_formats_raw(tmp_path: Path, data: bytes, fmt: str) -> None:
    path = _write(tmp_path, "guest.img", data)
    with open_image(path, limits=DEFAULT_LIMITS, fmt=fmt) as img:
        assert img.format == "raw"
        assert img.source.pread(0, len(data)) == data


def test_format_override_raw_on_qcow2_shows_the_container(tmp_path: Path) -> None:
    data = _qcow2()
    with open_image(_write(tmp_path, "d.qcow2", data), limits=DEFAULT_LIMITS, fmt="raw") as img:
        assert (img.format, img.virtual_size) == ("raw", len(data))
        assert img.source.pread(0, 4) == b"QFI\xfb"


def test_format_override_qcow2_on_raw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotThisFormat, match=r"not a qcow2 image \(no QFI\\xfb magic\)"):
        open_image(_write(tmp_path, "d.raw", bytes(4096)), limits=DEFAULT_LIMITS, fmt="qcow2")


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown image format 'vmdk'; use one of: raw, qcow2"):
        open_image(_write(tmp_path, "d.raw", bytes(512)), limits=DEFAULT_LIMITS, fmt="vmdk")


def test_detect_format_on_a_tiny_file(tmp_path: Path) -> None:
    from virtkit._streams import BytesSource

    assert detect_format(BytesSource(b"", "empty")) == "raw"
    assert detect_format(BytesSource(b"QFI", "short")) == "raw"
    assert detect_format(BytesSource(b"QFI\xfb", "magic only")) == "qcow2"


def test_backing_named_by_the_operator(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.raw", b"B" * 8192)
    over = Qcow2Builder(size=8192, cluster_bits=12, backing_file=b"../../etc/passwd")
    over.data(1, b"O" * 4096)
    path = _write(tmp_path, "over.qcow2", over.build())
    with pytest.raises(UnsupportedFeature, match=r"overlay on backing file '\.\./\.\./etc/passwd'"):
        open_image(path, limits=DEFAULT_LIMITS)
    with open_image(path, limits=DEFAULT_LIMITS, backing=base) as img:
        assert img.source.pread(0, 8192) == b"B" * 4096 + b"O" * 4096
        assert img.details["backing_file"] == "../../etc/passwd"
    with pytest.raises(UsageError, match="--backing only applies to qcow2 images"):
        open_image(base, limits=DEFAULT_LIMITS, backing=base)
    with pytest.raises(ImageError, match=r"cannot open image .*missing"):
        open_image(path, limits=DEFAULT_LIMITS, backing=str(tmp_path / "missing"))


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"cannot open image .*nothing-here: No such file or directory"):
        open_image(str(tmp_path / "nothing-here"), limits=DEFAULT_LIMITS)
    with pytest.raises(ImageError, match="is neither a regular file nor a block device"):
        open_image(str(tmp_path), limits=DEFAULT_LIMITS)


def test_raw_size_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.raw", bytes(8192))
    with pytest.raises(
        LimitExceeded,
        match=r"big.raw: 8192 exceeds the max_image_bytes limit of 4096 \(raise it with --limit max_image_bytes=N\)",
    ):
        open_image(path, limits=Limits(max_image_bytes=4096))


def test_open_image_fd_owns_the_descriptor(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.qcow2", _qcow2(b"fd"))
    fd = os.open(path, os.O_RDONLY)
    img = open_image_fd(fd, limits=DEFAULT_LIMITS)
    assert (img.path, img.format, img.source.pread(0, 2)) == (f"fd:{fd}", "qcow2", b"fd")
    img.close()
    with pytest.raises(OSError):
        os.fstat(fd)
