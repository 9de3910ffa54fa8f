"""``initrd newc:NAME:FILE``: GRUB wraps FILE in a generated cpio member; virtkit says so and refuses to
extract a ramdisk that would differ, rather than hand over the bare file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import run_cli as _run

CFG = ("set timeout=0\n"
       "menuentry 'wrapped' { linux /vmlinuz ro; initrd newc:early/ucode.bin:/ucode.bin /initrd.img; }\n"
       "menuentry 'plain' { linux /vmlinuz ro; initrd /ucode.bin /initrd.img; }\n")


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text(CFG)
    for name, data in (("vmlinuz", b"kernel"), ("ucode.bin", b"ucode"), ("initrd.img", b"initrd")):
        (root / name).write_bytes(data)
    return root



def test_newc_entry_is_listed_with_the_reason(guest: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(["boot", "list", "--json", str(guest)], capfd)
    assert status == 0, err
    assert "GRUB packs it into a generated cpio as early/ucode.bin" in out
    assert "newc:early/ucode.bin:/ucode.bin" in out  # the reference keeps what the config wrote


def test_newc_entry_is_not_extracted(guest: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    status, out, err = _run(["boot", "extract", str(guest), "--to", str(out_dir), "--entry", "wrapped"], capfd)
    assert status != 0 and out == ""
    assert err.count("\n") == 1 and "generated cpio member" in err
    assert os.listdir(out_dir) == []
    status, out, err = _run(["boot", "extract", str(guest), "--to", str(out_dir), "--entry", "plain",
                             "--format", "json"], capfd)
    assert status == 0, err  # the same files without newc: extracted, concatenated
    ramdisk = next(p for p in out_dir.iterdir() if p.name.startswith("boot_ramdisk."))
    assert ramdisk.read_bytes() == b"ucode\0\0\0initrd"  # each initrd 4-byte aligned, as GRUB loads them
