"""Extracted files: exclusive creation, mode 0600, no symlink following, nothing left on failure."""

from __future__ import annotations

import os
import stat

import pytest

from virtkit.boot.extract import writer
from virtkit.boot.extract.writer import OutputFiles, write_output_record
from virtkit.errors import LimitExceeded, OutputError


def test_files_are_0600_and_named_like_pygrub(tmp_path) -> None:
    with OutputFiles(str(tmp_path)) as out:
        path, n = out.write_file("boot_kernel.", [b"abc", b"def"], limit=10, limit_name="max_kernel_bytes")
        out.commit()
    assert n == 6
    name = os.path.basename(path)
    assert name.startswith("boot_kernel.") and len(name) == len("boot_kernel.") + 8
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    with open(path, "rb") as f:
        assert f.read() == b"abcdef"


def test_uncommitted_files_are_removed(tmp_path) -> None:
    with OutputFiles(str(tmp_path)) as out:
        out.write_file("boot_kernel.", [b"k"], limit=10, limit_name="max_kernel_bytes")
        out.write_file("boot_ramdisk.", [b"r"], limit=10, limit_name="max_initrd_bytes")
    assert os.listdir(tmp_path) == []


def test_over_limit_raises_and_leaves_nothing(tmp_path) -> None:
    with pytest.raises(LimitExceeded, match="max_initrd_bytes"), OutputFiles(str(tmp_path)) as out:
        out.write_file("boot_ramdisk.", [b"x" * 6, b"y" * 6], limit=10, limit_name="max_initrd_bytes")
    assert os.listdir(tmp_path) == []


def test_existing_name_and_symlink_are_never_opened(tmp_path, monkeypatch) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    os.symlink(target, tmp_path / "boot_kernel.aaaaaaaa")
    names = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(writer, "_random_suffix", lambda: next(names))
    with OutputFiles(str(tmp_path)) as out:
        path, _ = out.write_file("boot_kernel.", [b"new"], limit=10, limit_name="max_kernel_bytes")
        out.commit()
    assert path.endswith("boot_kernel.bbbbbbbb")
    assert target.read_bytes() == b"precious"


def test_missing_directory(tmp_path) -> None:
    with pytest.raises(OutputError, match="output directory"):
        OutputFiles(str(tmp_path / "nope"))


def test_output_record_truncates(tmp_path) -> None:
    p = tmp_path / "bootloader.out"
    p.write_bytes(b"x" * 100)
    write_output_record(str(p), "kernel /k\0\0")
    assert p.read_bytes() == b"kernel /k\0\0"
