"""A configuration error or a limit a configuration hits shows file:line:col, the source line with
a caret and the include chain - the same whether the guest is parsed in-process (a directory) or
by the sandboxed worker (a disk image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import require_tool

LOOP = "set x=1\nsource /boot/grub/custom.cfg\n"
CUSTOM = "menuentry 'a' { linux /vmlinuz; }\n  source /boot/grub/grub.cfg\n"


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool("mkfs.ext4")
    root = tmp_path_factory.mktemp("excerpt")
    tree = root / "tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(LOOP)
    (tree / "boot" / "grub" / "custom.cfg").write_text(CUSTOM)
    (tree / "vmlinuz").write_bytes(b"k")
    image = root / "disk.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "4M"], check=True,
                   env={**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000"})
    return tree, image


def _stderr(target: Path) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "virtkit.cli.main", "boot", "list", str(target)],
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stderr.splitlines()


@pytest.mark.parametrize("which", ["directory (in-process)", "image (sandboxed worker)"])
def test_include_loop_shows_line_caret_and_chain(guest: tuple[Path, Path], which: str) -> None:
    tree, image = guest
    status, lines = _stderr(tree if which.startswith("directory") else image)
    assert status == 3, lines
    assert lines[0].startswith("virtkit: error: (hd0)/boot/grub/custom.cfg:2:3: 17 exceeds the max_include_depth limit")
    assert lines[1:4] == ["      source /boot/grub/grub.cfg", "      ^",
                          "  included from (hd0)/boot/grub/grub.cfg:2:1 (source /boot/grub/custom.cfg)"]
    assert "Traceback" not in "\n".join(lines)
    assert lines[-1].endswith("times]")  # the loop's repeated lines are counted, not printed 16 times
    assert len(lines) <= 8


def test_worker_and_in_process_agree(guest: tuple[Path, Path]) -> None:
    tree, image = guest
    assert shutil.which("mkfs.ext4")
    assert _stderr(tree)[1] == _stderr(image)[1]


def test_virtkit_pygrub_keeps_to_one_line_unless_debug(guest: tuple[Path, Path]) -> None:
    _tree, image = guest
    argv = [sys.executable, "-m", "virtkit.cli.pygrub", "-n", str(image)]
    quiet = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert quiet.returncode == 3 and quiet.stderr.count("\n") == 1, quiet.stderr
    assert "custom.cfg:2:3: 17 exceeds the max_include_depth limit" in quiet.stderr
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, check=False)
    assert "  included from (hd0)/boot/grub/grub.cfg:2:1 (source /boot/grub/custom.cfg)" in debug.stderr
