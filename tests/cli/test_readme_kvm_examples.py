"""The README's KVM examples work as written (the QEMU `eval` line and the libvirt hook).

The commands are taken from README.md itself, with the guest image path replaced by
the bundled sample image, so the README cannot drift from what virtkit accepts.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SAMPLE = ROOT / "src" / "virtkit" / "data" / "sample-guest.img.gz"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readme") / "guest1.qcow2"  # the README's name; raw content is detected
    path.write_bytes(gzip.decompress(SAMPLE.read_bytes()))
    return path


def test_qemu_eval_example_gives_qemu_its_arguments(image: Path, tmp_path: Path) -> None:
    line = next(x.strip() for x in README.splitlines() if x.strip().startswith('eval "set -- $(virtkit boot extract'))
    line = line.replace("/tmp/g1", str(tmp_path)).replace(" guest1.qcow2)", f" {image})")
    script = f'{line}\nprintf "%s\\n" "$@"\n'
    got = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert got == ["-kernel", f"{tmp_path}/vmlinuz", "-initrd", f"{tmp_path}/initrd.img",
                   "-append", "root=UUID=3f2e1d0c-b9a8-4765-8432-10fedcba9876 ro quiet"]


def test_libvirt_hook_example_refreshes_the_files(image: Path, tmp_path: Path) -> None:
    hook = re.search(r"```sh\n(#!/bin/sh\n# /etc/libvirt/hooks/qemu.*?)```", README, re.S)
    assert hook is not None, "the hook example is gone from README.md"
    text = hook.group(1).replace("/var/lib/libvirt/boot/guest1", str(tmp_path / "boot")).replace(
        "/var/lib/libvirt/images/guest1.qcow2", str(image))
    (tmp_path / "boot").mkdir()
    script = tmp_path / "qemu"
    script.write_text(text)
    os.chmod(script, 0o755)
    for args, files in ((["guest1", "start", "begin", "-"], []), (["other", "prepare", "begin", "-"], []),
                        (["guest1", "prepare", "begin", "-"], ["initrd.img", "vmlinuz"])):
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert sorted(os.listdir(tmp_path / "boot")) == files, args
    # a guest whose boot files cannot be read stops the start (non-zero exit)
    image_bad = tmp_path / "bad.img"
    image_bad.write_bytes(b"\0" * 1048576)
    script.write_text(text.replace(str(image), str(image_bad)))
    proc = subprocess.run([str(script), "guest1", "prepare", "begin", "-"], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
