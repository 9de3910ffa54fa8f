"""Helpers for the zoo end-to-end tests: build/load the zoo, expected bytes, oracle and QEMU runs.

The zoo is built by ``tests/images/build`` into ``$VIRTKIT_ZOO`` (default
``/var/tmp/virtkit-zoo``); see ``tests/images/README.md``.  Everything here reads the
builder's outputs - the hand-written truth, the manifest of placed files and the kept
payload copies - and never virtkit's own view of the guest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
IMAGES = TESTS / "images"
BUILD = IMAGES / "build"
DEFAULT_ZOO = "/var/tmp/virtkit-zoo"
INITRD_ALIGN = 4  # GRUB loads several initrds each ALIGN_UP(size, 4) (grub-core/loader/linux.c)



def import_zoo() -> None:
    """Put tests/images on sys.path so ``import zoo`` finds the builder's package."""
    if str(IMAGES) not in sys.path:
        sys.path.insert(0, str(IMAGES))


import_zoo()
from zoo.payload import CMDLINE_PREFIX, MARKER_PREFIX  # noqa: E402
from zoo.registry import all_names  # noqa: E402

__all__ = [
    "CMDLINE_PREFIX",
    "MARKER_PREFIX",
    "Zoo",
    "all_names",
    "build_zoo",
    "expected_ramdisks",
    "import_zoo",
    "oracle_boot",
    "qemu_boot",
    "sha256",
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Zoo:
    """A built zoo directory and its index (``zoo.json``)."""

    dir: Path
    index: dict[str, Any]
    build_output: str

    def skip_reason(self, name: str) -> str | None:
        if name in self.index.get("images", {}):
            return None
        if name in self.index.get("skipped", {}):
            return f"zoo image {name} was not built: {self.index['skipped'][name]}"
        if name in self.index.get("failed", {}):
            return f"FAILED to build zoo image {name}: {self.index['failed'][name]}"
        return f"zoo image {name} is not in {self.dir}/zoo.json"

    def truth(self, name: str) -> dict[str, Any]:
        return json.loads((self.dir / f"{name}.truth.json").read_text())

    def manifest(self, name: str) -> dict[str, Any]:
        return json.loads((self.dir / f"{name}.manifest.json").read_text())

    def disks(self, name: str) -> list[str]:
        return [str(self.dir / d) for d in self.truth(name)["disks"]]

    def payload(self, digest: str) -> bytes:
        return (self.dir / "payload" / digest).read_bytes()

    def file_digest(self, name: str, ref: dict[str, str]) -> str:
        return self.manifest(name)["files"][f"{ref['device']}:{ref.get('fs_path', ref['path'])}"]

    def oracle_bundle(self, name: str) -> dict[str, Any]:
        base = self.truth(name).get("variant_of", name)
        return json.loads((self.dir / f"{base}.oracle.json").read_text())


def build_zoo() -> Zoo:
    """Run tests/images/build (a no-op for up-to-date images) and load the index."""
    out = Path(os.environ.get("VIRTKIT_ZOO") or DEFAULT_ZOO)
    proc = subprocess.run([sys.executable, str(BUILD), "--out", str(out)], capture_output=True, text=True,
                          timeout=1800, check=False)
    text = proc.stdout + proc.stderr
    index = json.loads((out / "zoo.json").read_text()) if (out / "zoo.json").exists() else {}
    return Zoo(out, index, text)


def expected_ramdisks(zoo: Zoo, name: str) -> list[bytes]:
    """The acceptable ramdisk bytes: the truth's initrds concatenated, each 4-byte aligned.

    GRUB pads every initrd (the last one too) to a multiple of 4; a loader that leaves the
    last one unpadded hands over the same archives, so both are accepted.
    """
    parts = [zoo.payload(zoo.file_digest(name, ref)) for ref in zoo.truth(name)["initrds"]]
    if not parts:
        return [b""]
    padded = [p + bytes(-len(p) % INITRD_ALIGN) for p in parts]
    full = b"".join(padded)
    return sorted({full, b"".join(padded[:-1]) + parts[-1]})


# ----------------------------------------------------------------------------- the GRUB oracle

_LOADER_LINE = re.compile(r"^@@(linux16|linuxefi|linux|initrd16|initrdefi|initrd) n=\d+ root=\[([^\]]*)\] "
                          r"chosen=\[([^\]]*)\](?: (.*))?$")


@dataclass
class OracleBoot:
    """What real GRUB ran for the default entry: chosen path, kernel, initrds, arguments."""

    chosen: str
    root: str
    kernel: str
    args: str
    initrds: list[str]
    transcript: str


def oracle_boot(bundle: dict[str, Any]) -> OracleBoot:
    """Evaluate an oracle bundle with tests/oracle/grub_emu.py and parse the first boot attempt.

    Raises:
        AssertionError: GRUB never reached a ``linux`` command.
    """
    sys.path.insert(0, str(TESTS))
    from oracle.grub_emu import OracleCase, OraclePartition, run_grub_emu

    files = tuple((p, base64.b64decode(d)) for p, d in sorted(bundle["files"].items()))
    case = OracleCase((OraclePartition(files, uuid=bundle["uuid"]),), config_path=bundle["config_path"], table=bundle["table"])
    text = run_grub_emu(case)
    after = text.split("@@END", 1)[-1]
    kernel = None
    for line in after.splitlines():
        m = _LOADER_LINE.match(line.rstrip())
        if not m:
            continue
        cmd, root, chosen, rest = m.group(1), m.group(2), m.group(3), (m.group(4) or "")
        words = rest.split(" ") if rest else []
        if cmd.startswith("linux"):
            if kernel is not None:
                break  # a second boot attempt: the fallback
            kernel = OracleBoot(chosen, root, words[0] if words else "", " ".join(words[1:]), [], text)
        elif kernel is not None and chosen == kernel.chosen:
            kernel.initrds = words
    assert kernel is not None, f"grub-emu never ran a linux command:\n{text[-3000:]}"
    return kernel


# ----------------------------------------------------------------------------- QEMU


@dataclass
class QemuBoot:
    marker: str | None
    cmdline: str | None
    output: str
    status: int


def qemu_boot(kernel: Path, ramdisk: Path | None, args: str, *, timeout: float = 240) -> QemuBoot:
    """Boot under TCG and read what the zoo initramfs printed on the serial console."""
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-nographic", "-serial", "stdio", "-monitor", "none", "-m", "512",
            "-no-reboot", "-kernel", str(kernel), "-append", args]
    if ramdisk is not None:
        argv += ["-initrd", str(ramdisk)]
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    out = proc.stdout.decode("utf-8", "replace").replace("\r", "")
    marker = cmdline = None
    for line in out.splitlines():
        i = line.find(MARKER_PREFIX)
        if i >= 0 and marker is None:
            marker = line[i + len(MARKER_PREFIX):].strip()
        i = line.find(CMDLINE_PREFIX)
        if i >= 0 and cmdline is None:
            cmdline = line[i + len(CMDLINE_PREFIX):].rstrip()
    return QemuBoot(marker, cmdline, out, proc.returncode)
