"""The zoo's table: every guest, what it needs to build, and its qcow2 variants."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.guest import GuestBuild
from zoo.guests_deb import build_debian12, build_debian12_2disk, build_ubuntu2404
from zoo.guests_misc import build_alpine319, build_arch, build_opensuse_tw
from zoo.guests_rh import C7_MID, build_alma9, build_centos5, build_centos7, build_fedora39, build_rocky8

__all__ = ["GUESTS", "VARIANTS", "GuestSpec", "Variant", "all_names"]


@dataclass(frozen=True)
class GuestSpec:
    """One guest.

    Attributes:
        name: image name (also the truth file's stem).
        build: the builder; returns the disk images in disk order.
        root_for: why the builder needs root, or "" (LVM on loop devices, btrfs subvolumes).
        tools: executables needed beyond :data:`COMMON_TOOLS`.
    """

    name: str
    build: Callable[[GuestBuild], list[Path]]
    root_for: str = ""
    tools: tuple[str, ...] = ()

    def missing_tools(self) -> list[str]:
        """Executables (and the Debian package holding each) this builder needs but cannot find."""
        return [f"{t} ({TOOL_PACKAGES.get(t, t)})" for t in (*COMMON_TOOLS, *self.tools) if shutil.which(t) is None]


@dataclass(frozen=True)
class Variant:
    """A qcow2 copy of a guest (``qemu-img convert``; ``compress``: deflate clusters)."""

    name: str
    base: str
    compress: bool = False


COMMON_TOOLS = ("mke2fs", "sfdisk", "sgdisk", "mkswap", "mkfs.vfat", "mcopy", "cpio", "qemu-img")
TOOL_PACKAGES = {"mke2fs": "e2fsprogs", "sfdisk": "fdisk", "sgdisk": "gdisk", "mkswap": "util-linux",
                 "mkfs.vfat": "dosfstools", "mcopy": "mtools", "cpio": "cpio", "qemu-img": "qemu-utils",
                 "mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs", "lvm": "lvm2",
                 "losetup": "mount"}
_XFS = ("mkfs.xfs",)
_LVM_TOOLS = ("lvm", "losetup")
_BTRFS_TOOLS = ("mkfs.btrfs", "btrfs", "losetup")

_LVM = "LVM physical volumes are made with pvcreate/vgcreate/lvcreate on a loop device"
_BTRFS = "btrfs subvolumes and the default subvolume need a loop mount (btrfs-progs 6.2 cannot make them offline)"

GUESTS: tuple[GuestSpec, ...] = (
    GuestSpec("centos5", build_centos5, _LVM, _LVM_TOOLS),
    GuestSpec("centos7", build_centos7, _LVM, _LVM_TOOLS + _XFS),
    GuestSpec("centos7-reboot", functools.partial(build_centos7, next_entry=f"CentOS Linux (0-rescue-{C7_MID}) 7 (Core)"),
              _LVM, _LVM_TOOLS + _XFS),
    GuestSpec("rocky8", build_rocky8, _LVM, _LVM_TOOLS + _XFS),
    GuestSpec("alma9", build_alma9, "", _XFS),
    GuestSpec("fedora39", build_fedora39, _BTRFS, _BTRFS_TOOLS),
    GuestSpec("debian12", build_debian12),
    GuestSpec("debian12-2disk", build_debian12_2disk),
    GuestSpec("ubuntu2404", build_ubuntu2404),
    GuestSpec("opensuse-tw", build_opensuse_tw, _BTRFS, _BTRFS_TOOLS),
    GuestSpec("alpine319", build_alpine319),
    GuestSpec("arch", build_arch),
)

VARIANTS: tuple[Variant, ...] = (
    Variant("centos7-qcow2", "centos7"),
    Variant("rocky8-qcow2", "rocky8"),
    Variant("debian12-qcow2", "debian12"),
    Variant("fedora39-qcow2", "fedora39", compress=True),
)


def all_names() -> list[str]:
    return [g.name for g in GUESTS] + [v.name for v in VARIANTS]
