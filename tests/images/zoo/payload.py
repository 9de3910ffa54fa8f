"""What every zoo guest boots: Debian's real kernel under distribution names, and a tiny initramfs.

References:
    Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` (initramfs: newc cpio
    archives, compressed or not, concatenated; the kernel unpacks them in order) and
    ``Documentation/arch/x86/microcode.rst`` (an early microcode cpio holds
    ``kernel/x86/microcode/GenuineIntel.bin`` and comes first, uncompressed).

The kernel is the one the ``linux-image-amd64`` package installed in the build host's
``/boot`` (``vmlinuz-6.1.0-*-amd64``), copied byte for byte under each guest's names
(``vmlinuz-3.10.0-1160.el7.x86_64``, ``vmlinuz-lts`` ...): every kernel file in the zoo is
the same real kernel, so an image really boots whatever entry is chosen.

Each initramfs is a newc cpio (GNU ``cpio``, gzip) holding the static busybox
(``busybox-static``) and an ``/init`` that mounts /proc and devtmpfs, prints

    VIRTKIT-ZOO-INIT marker=<guest>/<kernel version>
    VIRTKIT-ZOO-CMDLINE <the contents of /proc/cmdline>

on the serial port (``/dev/ttyS0``) and on ``/dev/console``, and powers off (``poweroff
-f``).  The marker differs per guest and kernel, so a wrong initrd is visible both by
hash and in a QEMU boot.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "BUSYBOX",
    "CMDLINE_PREFIX",
    "MARKER_PREFIX",
    "SOURCE_DATE_EPOCH",
    "build_initramfs",
    "build_microcode_cpio",
    "debian_kernel",
    "kernel_extras",
    "payload_identity",
    "sha256_file",
]

KERNEL_GLOB = "/boot/vmlinuz-6.1.0-*-amd64"  # linux-image-amd64 in Debian 12
BUSYBOX = Path("/bin/busybox")  # busybox-static replaces the dynamic one
MARKER_PREFIX = "VIRTKIT-ZOO-INIT marker="
CMDLINE_PREFIX = "VIRTKIT-ZOO-CMDLINE "
SOURCE_DATE_EPOCH = 1700000000  # every file time in the zoo (2023-11-14)

_INIT = """#!/bin/busybox sh
# virtkit zoo initramfs: say who we are and what the kernel was given, then power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
for t in /dev/ttyS0 /dev/console; do
  if [ -c "$t" ]; then
    {{
      echo "{marker_prefix}{marker}"
      echo "{cmdline_prefix}$(/bin/busybox cat /proc/cmdline)"
    }} > "$t" 2>/dev/null
  fi
done
/bin/busybox sync
/bin/busybox poweroff -f
"""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", os.path.basename(path)))


def debian_kernel() -> Path:
    """The newest ``/boot/vmlinuz-6.1.0-*-amd64`` of the build host.

    Raises:
        FileNotFoundError: linux-image-amd64 is not installed.
    """
    found = sorted(glob.glob(KERNEL_GLOB), key=_version_key)
    if not found:
        raise FileNotFoundError(f"no {KERNEL_GLOB}: install the linux-image-amd64 package")
    return Path(found[-1])


def kernel_extras(kernel: Path) -> dict[str, Path]:
    """The ``config-*``/``System.map-*`` files next to ``kernel`` (copied too, for realism)."""
    version = kernel.name.removeprefix("vmlinuz-")
    out: dict[str, Path] = {}
    for stem in ("config", "System.map"):
        p = kernel.parent / f"{stem}-{version}"
        if p.is_file():
            out[stem] = p
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def payload_identity() -> dict[str, str]:
    """What the payload is made of (part of every image's cache key)."""
    k = debian_kernel()
    return {"kernel": k.name, "kernel_sha256": sha256_file(k), "busybox_sha256": sha256_file(BUSYBOX)}


def _cpio(root: Path, dest: Path, *, compress: bool) -> None:
    """``find | sort | cpio -o -H newc`` with fixed owners and times, optionally gzipped."""
    for p in [root, *root.rglob("*")]:
        os.utime(p, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = ("\n".join([".", *names]) + "\n").encode()
    proc = subprocess.run(["cpio", "-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet"],
                          input=listing, cwd=root, capture_output=True, check=True)
    data = proc.stdout
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    dest.write_bytes(data)


def build_initramfs(marker: str, dest: Path, work: Path) -> None:
    """Write a gzipped newc initramfs whose /init prints ``marker`` and /proc/cmdline.

    Args:
        marker: ``guest/kernel-version`` (no newline, no shell metacharacters).
        dest: the output file.
        work: a scratch directory (a subdirectory is created and removed).
    """
    if not re.fullmatch(r"[A-Za-z0-9._/+@-]+", marker):
        raise ValueError(f"bad initramfs marker {marker!r}")
    root = work / f"initramfs-{hashlib.sha256(marker.encode()).hexdigest()[:12]}"
    if root.exists():
        shutil.rmtree(root)
    for d in ("bin", "dev", "proc", "sys", "etc"):
        (root / d).mkdir(parents=True)
    shutil.copyfile(BUSYBOX, root / "bin/busybox")
    (root / "bin/busybox").chmod(0o755)
    (root / "bin/sh").symlink_to("busybox")
    (root / "etc/virtkit-zoo-marker").write_text(marker + "\n")
    init = root / "init"
    init.write_text(_INIT.format(marker=marker, marker_prefix=MARKER_PREFIX, cmdline_prefix=CMDLINE_PREFIX))
    init.chmod(0o755)
    _cpio(root, dest, compress=True)
    shutil.rmtree(root)


def build_microcode_cpio(dest: Path, work: Path, *, vendor: str = "GenuineIntel") -> None:
    """An uncompressed early-microcode cpio (Arch's ``intel-ucode.img`` shape).

    The blob holds no real microcode (none may be redistributed here): the kernel's early
    loader finds no update for the CPU and carries on, as it does on a CPU the package has
    no update for.
    """
    root = work / "ucode"
    if root.exists():
        shutil.rmtree(root)
    (root / "kernel/x86/microcode").mkdir(parents=True)
    (root / f"kernel/x86/microcode/{vendor}.bin").write_bytes(b"virtkit zoo: no microcode\n")
    _cpio(root, dest, compress=False)
    shutil.rmtree(root)
