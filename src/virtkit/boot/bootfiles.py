"""Adapter: the opened filesystems of a guest, as the configuration stage's ``BootFiles``.

The config stage names files by GRUB device and path and never sees a
filesystem object (import-linter enforces it).  This module, like
``pipeline.py``, sits above the stages and translates: GRUB device names come
from each volume's ``grub_names``; lookups go through the filesystem's
``resolve_path`` (symlinks followed, bounded, confined to the filesystem).

btrfs paths resolve from the top-level subvolume, as upstream GRUB does; the
default subvolume is reported in ``DeviceInfo.default_subvolume`` so the
interpreter can resolve relative to it where the guest's GRUB does
(openSUSE's ``btrfs_relative_path``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from virtkit._streams import ByteSource, read_all
from virtkit.boot.config.source import DeviceInfo, FileStat, normalise_path
from virtkit.boot.fs.base import Filesystem, FileType, Node
from virtkit.errors import FileNotFound, IsADirectory, NotADirectory, PathError, VirtkitError
from virtkit.limits import Limits

if TYPE_CHECKING:
    from virtkit.boot.pipeline import MountedVolume

__all__ = ["FilesystemBootFiles", "device_info"]


def device_info(m: MountedVolume) -> DeviceInfo:
    """The DeviceInfo GRUB would see for one mounted volume."""
    v = m.volume
    fs = m.fs
    names = v.grub_names or (v.name,)
    default_sub = ""
    if fs is not None and hasattr(fs, "default_subvolume_path"):
        default_sub = str(fs.default_subvolume_path())
    return DeviceInfo(
        name=names[0],
        aliases=tuple(names[1:]),
        volume=v.name,
        fs_type=fs.fstype if fs is not None else None,
        uuid=fs.uuid if fs is not None else None,
        label=fs.label if fs is not None else None,
        part_uuid=v.part_uuid,
        part_label=v.part_label,
        default_subvolume=default_sub,
    )


class FilesystemBootFiles:
    """``BootFiles`` over a guest's mounted volumes (only those with a readable filesystem)."""

    def __init__(self, mounted: Sequence[MountedVolume], *, limits: Limits) -> None:
        self.limits = limits
        self._entries: list[tuple[DeviceInfo, Filesystem]] = [
            (device_info(m), m.fs) for m in mounted if m.fs is not None
        ]

    def devices(self) -> Sequence[DeviceInfo]:
        return [info for info, _ in self._entries]

    def filesystem(self, device: str) -> Filesystem:
        for info, fs in self._entries:
            if info.matches(device):
                return fs
        raise FileNotFound(f"no such device ({device.strip('()')})", path=device)

    def _node(self, device: str, path: str) -> Node:
        return self.filesystem(device).lookup(normalise_path(path))

    def open(self, device: str, path: str) -> ByteSource:
        """A regular file's contents as a stream (extraction)."""
        node = self._node(device, path)
        if node.type is FileType.DIRECTORY:
            raise IsADirectory(f"({device}){path} is a directory", path=path)
        return node.open()

    def read(self, device: str, path: str, *, limit: int) -> bytes:
        node = self._node(device, path)
        if node.type is FileType.DIRECTORY:
            raise IsADirectory(f"({device}){path} is a directory", path=path)
        return read_all(node.open(), limit=limit)

    def stat(self, device: str, path: str) -> FileStat | None:
        try:
            st = self._node(device, path).stat()
        except (PathError, NotADirectory):
            return None
        return FileStat(is_dir=st.type is FileType.DIRECTORY, size=st.size, mtime=st.mtime)

    def listdir(self, device: str, path: str) -> list[tuple[str, bool]]:
        node = self._node(device, path)
        if node.type is not FileType.DIRECTORY:
            raise NotADirectory(f"({device}){path} is not a directory", path=path)
        out: list[tuple[str, bool]] = []
        for i, entry in enumerate(node.iter_dir()):
            self.limits.check("max_dir_entries", i + 1, f"({device}){path}")
            etype = entry.type
            if etype is None or etype is FileType.SYMLINK:
                try:
                    etype = self._node(device, normalise_path(path + "/" + entry.name)).type
                except VirtkitError:  # a dangling or looping link is simply "not a directory"
                    etype = FileType.OTHER
            out.append((entry.name, etype is FileType.DIRECTORY))
        return out
