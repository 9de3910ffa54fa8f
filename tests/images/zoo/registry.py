"""The zoo's table: every guest, what it needs to build, and its qcow2 variants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.guest import GuestBuild
from zoo.guests_deb import build_debian12, build_debian12_2disk, build_ubuntu2404
from zoo.guests_misc import build_alpine319, build_arch, build_opensuse_tw
from zoo.guests_rh import build_alma9, build_centos5, build_centos7, build_fedora39, build_rocky8

__all__ = ["GUESTS", "VARIANTS", "GuestSpec", "Variant", "all_names"]


@dataclass(frozen=True)
class GuestSpec:
    """One guest.

    Attributes:
        name: image name (also the truth file's stem).
        build: the builder; returns the disk images in disk order.
        root_for: why the builder needs root, or "" (LVM on loop devices, btrfs subvolumes).
    """

    name: str
    build: Callable[[GuestBuild], list[Path]]
    root_for: str = ""


@dataclass(frozen=True)
class Variant:
    """A qcow2 copy of a guest (``qemu-img convert``; ``compress``: deflate clusters)."""

    name: str
    base: str
    compress: bool = False


_LVM = "LVM physical volumes are made with pvcreate/vgcreate/lvcreate on a loop device"
_BTRFS = "btrfs subvolumes and the default subvolume need a loop mount (btrfs-progs 6.2 cannot make them offline)"

GUESTS: tuple[GuestSpec, ...] = (
    GuestSpec("centos5", build_centos5, _LVM),
    GuestSpec("centos7", build_centos7, _LVM),
    GuestSpec("rocky8", build_rocky8, _LVM),
    GuestSpec("alma9", build_alma9),
    GuestSpec("fedora39", build_fedora39, _BTRFS),
    GuestSpec("debian12", build_debian12),
    GuestSpec("debian12-2disk", build_debian12_2disk),
    GuestSpec("ubuntu2404", build_ubuntu2404),
    GuestSpec("opensuse-tw", build_opensuse_tw, _BTRFS),
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
