"""btrfs through the boot pipeline: multi-device grouping by fsid and the default subvolume."""

from __future__ import annotations

from btrfs_support import image_path

from virtkit.boot.fs.btrfs import Btrfs
from virtkit.boot.pipeline import open_guest
from virtkit.limits import Limits


def test_two_device_raid0_guest_groups_its_devices() -> None:
    with open_guest([image_path("raid0-dev1"), image_path("raid0-dev2")], limits=Limits()) as guest:
        mounted = guest.filesystems()
        assert [m.volume.name for m in mounted] == ["disk0", "disk1"]
        for m in mounted:
            assert isinstance(m.fs, Btrfs), m.error
            assert sorted(m.fs.devices) == [1, 2]
            assert m.fs.read_file("/grub/grub.cfg", limit=4096).startswith(b"set default=0\n")
        assert guest.find_filesystem("0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000052").fs is mounted[0].fs


def test_raid0_device_alone_names_the_missing_device() -> None:
    with open_guest([image_path("raid0-dev1")], limits=Limits()) as guest:
        (m,) = guest.filesystems()
        assert m.fs is None
        assert m.error is not None
        assert "needs devid 2, which was not given" in m.error


def test_different_filesystems_are_not_grouped() -> None:
    with open_guest([image_path("rootdir"), image_path("raid1-dev1")], limits=Limits()) as guest:
        a, b = guest.filesystems()
        assert isinstance(a.fs, Btrfs) and isinstance(b.fs, Btrfs)
        assert sorted(a.fs.devices) == [1] and sorted(b.fs.devices) == [1]
        assert b.fs.notes == ["1 of 2 devices present (have devid 1)"]


def test_default_subvolume_reaches_the_config_stage() -> None:
    with open_guest([image_path("layout-opensuse")], limits=Limits()) as guest:
        (info,) = guest.boot_files().devices()
        assert (info.fs_type, info.uuid, info.label) == ("btrfs", "0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000031", "opensuse")
        assert info.default_subvolume == "@/.snapshots/1/snapshot"
