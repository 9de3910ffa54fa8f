"""The one module that wires the boot stages together (image -> volume -> fs -> config -> menu -> extract).

Every command that reads a guest goes through :class:`Guest`:

    with open_guest(["disk.qcow2"], limits=Limits()) as guest:
        guest.storage                 # stage 2: the volume tree
        guest.filesystems()           # stage 3: every readable filesystem
        guest.boot_files()            # the config stage's view (BootFiles)

A directory given as an image is treated as one filesystem root (an exported
``/boot``), GRUB device ``hd0``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from virtkit._streams import ByteSource, BytesSource, RangeSource
from virtkit.boot.fs import open_filesystem
from virtkit.boot.fs.base import Filesystem
from virtkit.boot.fs.btrfs import btrfs_device_info
from virtkit.boot.image import Image, open_image, open_image_fd
from virtkit.boot.volume import discover_volumes
from virtkit.boot.volume.model import DiskLayout, Storage, Volume, VolumeKind
from virtkit.errors import ImageError, UsageError, VirtkitError
from virtkit.limits import Limits

if TYPE_CHECKING:
    from virtkit.boot.bootfiles import FilesystemBootFiles

__all__ = ["Guest", "MountedVolume", "open_guest", "open_guest_fds"]


@dataclass
class MountedVolume:
    """A volume and what stage 3 made of it.

    Attributes:
        volume: the volume.
        fs: the opened filesystem, or None.
        error: why it could not be opened ("unrecognised format (...)"), or None.
    """

    volume: Volume
    fs: Filesystem | None
    error: str | None = None


@dataclass
class Guest:
    """An opened guest: its images, volume tree and (lazily) filesystems."""

    images: list[Image]
    storage: Storage
    limits: Limits
    _mounted: list[MountedVolume] | None = field(default=None, repr=False)
    _directory_fs: Filesystem | None = field(default=None, repr=False)

    def filesystems(self) -> list[MountedVolume]:
        """Every volume that may hold a filesystem, opened if possible (cached).

        A volume whose filesystem is unrecognised, damaged or hostile (a broken
        limit included) is listed with its error instead of failing the whole
        guest: one bad partition must not hide the /boot next to it.  Callers
        report the recorded errors when nothing usable is found.
        """
        if self._mounted is None:
            out: list[MountedVolume] = []
            candidates = list(self.storage.iter_filesystem_candidates())
            peers = _btrfs_peers(candidates) if self._directory_fs is None else {}
            for vol in candidates:
                if self._directory_fs is not None:
                    out.append(MountedVolume(vol, self._directory_fs))
                    continue
                try:
                    fs = open_filesystem(vol.source, limits=self.limits, peers=peers.get(vol.name, ()))
                    out.append(MountedVolume(vol, fs))
                except VirtkitError as exc:
                    out.append(MountedVolume(vol, None, str(exc)))
            self._mounted = out
        return self._mounted

    def find_filesystem(self, spec: str) -> MountedVolume:
        """A filesystem by volume name/number/GRUB name, ``vg/lv``, label or UUID.

        Raises:
            ImageError: nothing matches, or the volume holds no readable filesystem.
        """
        mounted = self.filesystems()
        for m in mounted:
            v = m.volume
            if spec in (v.name, *v.grub_names) or spec.strip("()") in v.grub_names:
                return _readable(m)
        if spec.isdigit():
            for m in mounted:
                if m.volume.kind is VolumeKind.PARTITION and m.volume.number == int(spec):
                    return _readable(m)
        for m in mounted:
            if m.fs is not None and (spec == m.fs.label or spec.lower() == (m.fs.uuid or "").lower()):
                return m
        names = ", ".join(m.volume.name for m in mounted) or "none"
        raise ImageError(f"no volume {spec!r} (volumes that may hold a filesystem: {names})")

    def boot_files(self) -> FilesystemBootFiles:
        from virtkit.boot.bootfiles import FilesystemBootFiles

        return FilesystemBootFiles(self.filesystems(), limits=self.limits)

    def close(self) -> None:
        for img in self.images:
            img.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _btrfs_peers(volumes: Sequence[Volume]) -> dict[str, list[ByteSource]]:
    """For each btrfs device, the other volumes of the same filesystem (same fsid, other devid)."""
    info = {v.name: btrfs_device_info(v.source) for v in volumes}
    groups: dict[str, list[tuple[int, Volume]]] = {}
    for v in volumes:
        i = info[v.name]
        if i is not None:
            groups.setdefault(i[0], []).append((i[1], v))
    out: dict[str, list[ByteSource]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        for devid, v in members:
            out[v.name] = [w.source for d, w in members if d != devid]
    return out


def _readable(m: MountedVolume) -> MountedVolume:
    if m.fs is None:
        raise ImageError(f"volume {m.volume.name} holds no readable filesystem: {m.error}")
    return m


def open_guest(
    paths: Sequence[str],
    *,
    limits: Limits,
    fmt: str | None = None,
    sector_size: int | None = None,
    backing: str | None = None,
) -> Guest:
    """Open a guest from image paths, block devices, or one directory.

    Args:
        paths: images in disk order; empty = the bundled sample guest.
        limits: bounds for everything.
        fmt: force the image format.
        sector_size: force 512/4096-byte sectors.
        backing: an operator-named qcow2 backing file (first image only).

    Raises:
        UsageError: a directory mixed with images, too many disks.
        ImageError and friends: unreadable images.
    """
    if not paths:
        from virtkit.cli._common import sample_image_fd

        return open_guest_fds([(sample_image_fd(), "sample-guest.img")], limits=limits)
    limits.check("max_disks", len(paths), "images given")
    if any(os.path.isdir(p) for p in paths):
        if len(paths) != 1:
            raise UsageError("a directory can only be given alone (it is treated as one filesystem root)")
        return _open_directory(paths[0], limits=limits)
    images: list[Image] = []
    try:
        for i, p in enumerate(paths):
            images.append(open_image(p, limits=limits, name=f"disk{i}", fmt=fmt, backing=backing if i == 0 else None))
        storage = discover_volumes(images, limits=limits, sector_size=sector_size)
    except BaseException:
        for img in images:
            img.close()
        raise
    return Guest(images=images, storage=storage, limits=limits)


def open_guest_fds(
    fds: Sequence[tuple[int, str]],
    *,
    limits: Limits,
    fmt: str | None = None,
    sector_size: int | None = None,
    offset: int | None = None,
    backing: tuple[int, str] | None = None,
) -> Guest:
    """Like :func:`open_guest` from already-open read-only descriptors (the worker's way in).

    Args:
        fds: ``(fd, display name)`` per disk; the Guest owns the descriptors.
        offset: pygrub's ``--offset``: the only filesystem starts at this byte of the
            first disk; no partition table is read.
        backing: ``(fd, name)`` of an operator-named qcow2 backing file for the first disk.
    """
    images: list[Image] = []
    try:
        for i, (fd, shown) in enumerate(fds):
            bfd = backing[0] if backing is not None and i == 0 else None
            images.append(open_image_fd(fd, limits=limits, name=f"disk{i}", path=shown, fmt=fmt, backing_fd=bfd))
        if offset is not None:
            storage = _storage_at_offset(images[0], offset)
        else:
            storage = discover_volumes(images, limits=limits, sector_size=sector_size)
    except BaseException:
        for img in images:
            img.close()
        raise
    return Guest(images=images, storage=storage, limits=limits)


def _storage_at_offset(image: Image, offset: int) -> Storage:
    """pygrub's ``--offset``: one volume from ``offset`` to the end of the first disk."""
    if not 0 <= offset < image.source.size:
        raise UsageError(f"--offset {offset} is outside the {image.source.size}-byte disk")
    src = RangeSource(image.source, offset, image.source.size - offset, f"{image.name}@{offset}")
    vol = Volume(name=f"{image.name}@{offset}", kind=VolumeKind.PARTITION, source=src, disk=0, grub_names=("hd0",), start=offset)
    disk = DiskLayout(index=0, name=image.name, path=image.path, image_format=image.format, size=image.source.size)
    return Storage(disks=(disk,), volumes=(vol,), notes=(f"--offset {offset}: partition tables ignored",))


def _open_directory(path: str, *, limits: Limits) -> Guest:
    from virtkit.boot.fs.hostdir import HostDirectory

    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):  # pragma: no cover - checked by caller
        raise UsageError(f"{path} is not a directory")
    fs = HostDirectory.open_directory(path, limits=limits)
    empty = BytesSource(b"", f"directory {path}")
    vol = Volume(name="dir0", kind=VolumeKind.DISK, source=empty, disk=0, grub_names=("hd0",), content="directory")
    disk = DiskLayout(index=0, name="dir0", path=path, image_format="directory", size=0)
    storage = Storage(disks=(disk,), volumes=(vol,))
    return Guest(images=[], storage=storage, limits=limits, _directory_fs=fs)
