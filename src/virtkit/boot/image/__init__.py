"""Stage 1 of the boot pipeline: where the bytes come from.

``open_image(path, *, limits)`` opens a raw image file, a block device or a
qcow2 image read-only and returns an :class:`Image` whose ``source`` is the
guest's virtual disk as a :class:`~virtkit._streams.ByteSource`.  The format is
detected by content (a probe table, most specific magic first); ``fmt``
overrides it.  Nothing in this package ever writes.

References:
    qcow2: QEMU ``docs/interop/qcow2.txt``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from virtkit._streams import ByteSource, FileSource
from virtkit.errors import ImageError, UnsupportedFeature, UsageError
from virtkit.limits import Limits

__all__ = ["FORMATS", "Image", "detect_format", "open_image", "open_image_fd"]

FORMATS = ("raw", "qcow2")

# Magic numbers of formats we recognise.  Only raw and qcow2 are readable; the
# others are named so the operator gets "convert it" rather than garbage.
_QCOW_MAGIC = b"QFI\xfb"  # qcow2.txt: "QFI\xfb"
_REFUSED_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"KDMV", "VMDK"),  # VMware sparse extent header
    (0, b"# Disk DescriptorFile", "VMDK descriptor"),
    (0, b"vhdxfile", "VHDX"),
    (0, b"conectix", "VHD (dynamic)"),
    (0x40, b"\x7f\x10\xda\xbe", "VDI"),
    (0, b"LUKS\xba\xbe", "LUKS-encrypted volume"),
)


@dataclass
class Image:
    """One opened guest disk.

    Attributes:
        name: short name used in messages and volume names ("disk0").
        path: what the operator gave (a path, or ``fd:N``).
        format: "raw" or "qcow2".
        source: the virtual disk contents.
        file: the underlying file, read as-is.
        details: format facts for ``virtkit inspect`` (cluster size, version, ...).
    """

    name: str
    path: str
    format: str
    source: ByteSource
    file: FileSource
    details: dict[str, Any] = field(default_factory=dict)
    _fd: int | None = None
    _extra_fds: list[int] = field(default_factory=list)

    @property
    def virtual_size(self) -> int:
        return self.source.size

    def close(self) -> None:
        for fd in [self._fd, *self._extra_fds]:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = None
        self._extra_fds = []

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_format(file: ByteSource) -> str:
    """Return the format name of ``file`` by content.

    Raises:
        UnsupportedFeature: a known but unreadable format (VMDK, VHDX, VDI, LUKS).
    """
    head = file.pread(0, min(file.size, 512))
    if head.startswith(_QCOW_MAGIC):
        return "qcow2"
    for offset, magic, label in _REFUSED_MAGICS:
        if head[offset : offset + len(magic)] == magic:
            raise UnsupportedFeature(
                f"{file.name}: this is a {label} image, which virtkit does not read; "
                f"convert it with 'qemu-img convert -O raw' or attach it as a block device"
            )
    return "raw"


def open_image_fd(
    fd: int,
    *,
    limits: Limits,
    name: str = "disk0",
    path: str | None = None,
    fmt: str | None = None,
    backing_fd: int | None = None,
) -> Image:
    """Open an image from an already-open read-only descriptor (the worker's entry).

    Args:
        fd: descriptor opened read-only; owned by the returned Image.
        limits: the bounds to apply.
        name: the disk's short name.
        path: description for messages; defaults to ``fd:N``.
        fmt: force "raw" or "qcow2" instead of detecting.
        backing_fd: descriptor of an operator-named qcow2 backing file, if allowed.

    Raises:
        UsageError: unknown ``fmt``.
        ImageError: unreadable or unsupported image.
    """
    shown = path or f"fd:{fd}"
    file = FileSource(fd, shown)
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown image format {fmt!r}; use one of: {', '.join(FORMATS)}")
    kind = fmt or detect_format(file)
    opener = _OPENERS[kind]
    source, details = opener(file, limits, backing_fd)
    return Image(name=name, path=shown, format=kind, source=source, file=file, details=details, _fd=fd)


def open_image(
    path: str,
    *,
    limits: Limits,
    name: str = "disk0",
    fmt: str | None = None,
    backing: str | None = None,
) -> Image:
    """Open a guest image file or block device read-only.

    Args:
        path: image path (operator-supplied, so symlinks such as /dev/vg/lv are fine).
        limits: the bounds to apply.
        name: the disk's short name ("disk0").
        fmt: "raw" or "qcow2" to skip detection.
        backing: an operator-named backing file for a qcow2 overlay; without it
            overlays are refused (the path stored in the image is guest-controlled).

    Raises:
        ImageError: the file cannot be opened or is not a usable image.
        UsageError: bad ``fmt``.
    """
    fd = _open_readonly(path)
    backing_fd = _open_readonly(backing) if backing else None
    try:
        img = open_image_fd(fd, limits=limits, name=name, path=path, fmt=fmt, backing_fd=backing_fd)
    except BaseException:
        os.close(fd)
        if backing_fd is not None:
            os.close(backing_fd)
        raise
    if backing_fd is not None:
        img._extra_fds.append(backing_fd)
    return img


def _open_readonly(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageError(f"cannot open image {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        os.close(fd)
        raise ImageError(f"{path} is neither a regular file nor a block device")
    return fd


def _open_raw(file: FileSource, limits: Limits, backing_fd: int | None) -> tuple[ByteSource, dict[str, Any]]:
    if backing_fd is not None:
        raise UsageError("--backing only applies to qcow2 images")
    limits.check("max_image_bytes", file.size, file.name)
    return file, {}


def _open_qcow2(file: FileSource, limits: Limits, backing_fd: int | None) -> tuple[ByteSource, dict[str, Any]]:
    from virtkit.boot.image import qcow2  # local: keeps raw-only start-up fast

    backing = FileSource(backing_fd, f"backing file of {file.name}") if backing_fd is not None else None
    img = qcow2.open_qcow2(file, limits=limits, backing=backing)
    return img, img.details()


_OPENERS: dict[str, Callable[[FileSource, Limits, int | None], tuple[ByteSource, dict[str, Any]]]] = {
    "raw": _open_raw,
    "qcow2": _open_qcow2,
}
