"""Block devices as images: a read-only loop device reads exactly like the image file it maps.

Operators point virtkit at /dev/vg/guest-disk or /dev/sdX as often as at files; the image
layer opens block devices read-only (never written) and sizes them by seeking.  Needs root
and loop devices (both available on the CI machine); skipped, saying why, otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src" / "virtkit" / "data" / "sample-guest.img.gz"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if os.geteuid() != 0:
        pytest.skip("block-device test needs root (losetup)")
    image = tmp_path_factory.mktemp("blockdev") / "sample.img"
    image.write_bytes(gzip.decompress(SAMPLE.read_bytes()))
    proc = subprocess.run(["losetup", "--find", "--show", "--read-only", str(image)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"no loop device here: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        yield dev, image
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)


def _virtkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtkit.cli.main", *args], capture_output=True, text=True, check=False)


def test_inspect_a_block_device_as_its_image(loop: tuple[str, Path]) -> None:
    dev, image = loop
    got, want = _virtkit("inspect", "--json", dev), _virtkit("inspect", "--json", str(image))
    assert got.returncode == 0 and want.returncode == 0, got.stderr + want.stderr
    a, b = json.loads(got.stdout), json.loads(want.stdout)
    assert a["disks"][0]["path"] == dev and a["disks"][0]["virtual_size"] == image.stat().st_size
    for doc in (a, b):
        doc["disks"][0].pop("path")
    assert a == b


def test_boot_from_a_block_device_never_writes_it(loop: tuple[str, Path], tmp_path: Path) -> None:
    dev, image = loop
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    record = tmp_path / "record"
    record.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "virtkit.cli.pygrub", "-q", f"--output={record}",
                           "--output-format=simple0", f"--output-directory={out}", dev],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    fields = dict(f.split(" ", 1) for f in record.read_text().split("\0") if f)
    kernel = Path(fields["kernel"])
    assert kernel.parent == out and kernel.stat().st_size > 0
    assert fields["args"] == "root=UUID=3f2e1d0c-b9a8-4765-8432-10fedcba9876 ro quiet"
    cat = subprocess.run([sys.executable, "-m", "virtkit.cli.main", "cat", dev, "(hd0,gpt3)/vmlinuz-5.10.0-30-amd64"],
                         capture_output=True, check=False)
    assert cat.returncode == 0 and cat.stdout == kernel.read_bytes()
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before
