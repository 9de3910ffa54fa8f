"""A root filesystem with Boot Loader Specification entries in /boot/loader/entries and no
grub.cfg (what Fedora's kernel-install leaves when /boot is not a partition of its own): a
real ext4 image made by mkfs.ext4, read through the sandboxed worker; the entries are found,
sorted by version, and the newest kernel and its initrd are extracted."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import require_tool, run_cli

ENTRY = "title Fedora Linux ({v}) 39\nversion {v}\nlinux /boot/vmlinuz-{v}\ninitrd /boot/initramfs-{v}.img\noptions root=UUID=1 ro\n"
MID = "f39f39f39f39f39f39f39f39f39f39f3"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("mkfs.ext4")
    root = tmp_path_factory.mktemp("bls-boot")
    tree = root / "tree"
    (tree / "boot" / "loader" / "entries").mkdir(parents=True)
    for v in ("6.5.12-300.fc39.x86_64", "6.6.2-201.fc39.x86_64"):
        (tree / "boot" / "loader" / "entries" / f"{MID}-{v}.conf").write_text(ENTRY.format(v=v))
        (tree / "boot" / f"vmlinuz-{v}").write_bytes(b"kernel " + v.encode())
        (tree / "boot" / f"initramfs-{v}.img").write_bytes(b"initrd " + v.encode())
    (tree / "etc").mkdir()
    (tree / "etc" / "fstab").write_text("UUID=1 / ext4 defaults 0 1\n")
    img = root / "disk.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(img), "8M"], check=True,
                   env={**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000"})
    return img


def test_list_finds_and_sorts_the_entries(image: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(["boot", "list", str(image), "--json"], capfd)
    assert status == 0, err
    menu = json.loads(out)
    assert menu["config"]["path"] == "/boot/loader/entries"
    assert [i["title"] for i in menu["items"]] == ["Fedora Linux (6.6.2-201.fc39.x86_64) 39", "Fedora Linux (6.5.12-300.fc39.x86_64) 39"]


def test_extract_boots_the_newest(image: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    status, out, err = run_cli(["boot", "extract", str(image), "--to", str(out_dir), "--format", "json"], capfd)
    assert status == 0, err
    result = json.loads(out)
    kernel = Path(result["kernel"])
    assert kernel.read_bytes() == b"kernel 6.6.2-201.fc39.x86_64"
    assert Path(result["ramdisk"]).read_bytes() == b"initrd 6.6.2-201.fc39.x86_64"
    assert result["entry"]["kernel"]["path"] == "/boot/vmlinuz-6.6.2-201.fc39.x86_64"
