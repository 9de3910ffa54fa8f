#!/usr/bin/env python3
"""Build the tiny guest the entropy QEMU tests and benchmark boot: Debian's kernel + a busybox initramfs.

    python3 tests/tools/make_entropy_guest.py [OUTDIR]     # prints the kernel and initrd paths

What it makes (entropy.md §3.1-§3.2, the lab recipe):

* ``vmlinux``: the uncompressed kernel taken out of the host's
  ``/boot/vmlinuz-*`` (the XZ stream inside the bzImage, decompressed with
  Python's lzma).  QEMU boots it through the PVH entry point, which skips the
  in-guest decompressor - seconds saved per TCG boot;
* ``initramfs.cpio.gz``: a newc archive written here (so ``/dev/console`` is
  a real device node without root), holding busybox-static, the six modules
  virtio-rng needs (virtio_ring, virtio, virtio_pci_modern_dev,
  virtio_pci_legacy_dev, virtio_pci, virtio-rng) from the matching
  ``/lib/modules`` tree, and ``/init`` below.

The guest's ``/init`` is driven by the kernel command line::

    vk.bytes=N    read N bytes from /dev/hwrng with dd (bs=vk.bs, default 4096)
    vk.runs=K     repeat the read K times (default 1)

It prints ``VK-READY <rng_current>``, then per run ``VK-START n`` and
``VK-DONE n bytes=N centis=T`` (T: the guest's own /proc/uptime delta in
1/100 s), then powers off.  Nothing here is committed as a binary: the
kernel and modules must match, so the tests build it from what is installed
(``linux-image-amd64``, ``busybox-static``), once per kernel, in a cache.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import sys
from pathlib import Path

MODULES = (
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/char/hw_random/virtio-rng.ko",
)

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio-rng; do
    insmod /lib/modules/$m.ko || echo "VK-ERROR insmod $m"
done
BYTES=0; BS=4096; RUNS=1
for word in $(cat /proc/cmdline); do
    case "$word" in
        vk.bytes=*) BYTES=${word#vk.bytes=} ;;
        vk.bs=*) BS=${word#vk.bs=} ;;
        vk.runs=*) RUNS=${word#vk.runs=} ;;
    esac
done
i=0
while [ ! -c /dev/hwrng ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
echo "VK-READY $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
uptime_centis() { read up rest < /proc/uptime; echo "${up%.*}${up#*.}"; }
run=1
while [ $run -le $RUNS ]; do
    if [ "$BYTES" -gt 0 ]; then
        echo "VK-START $run"
        t0=$(uptime_centis)
        got=$(dd if=/dev/hwrng bs=$BS count=$((BYTES / BS)) iflag=fullblock 2>/dev/null | wc -c)
        t1=$(uptime_centis)
        echo "VK-DONE $run bytes=$got centis=$((t1 - t0))"
    fi
    run=$((run + 1))
done
echo "VK-END"
poweroff -f
"""


def find_kernel() -> tuple[Path, Path]:
    """The newest /boot/vmlinuz-* that has a matching /lib/modules tree."""
    for vmlinuz in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        version = vmlinuz.split("vmlinuz-", 1)[1]
        mods = Path("/lib/modules") / version
        if all((mods / m).exists() for m in MODULES):
            return Path(vmlinuz), mods
    raise FileNotFoundError("no /boot/vmlinuz-* with virtio-rng modules in /lib/modules (apt install linux-image-amd64)")


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage whose payload is XZ-compressed (Debian's)."""
    start = bzimage.find(b"\xfd7zXZ\x00")
    while start >= 0:
        try:
            dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            out = dec.decompress(bzimage[start:])
            if out.startswith(b"\x7fELF"):
                return out
        except lzma.LZMAError:
            pass
        start = bzimage.find(b"\xfd7zXZ\x00", start + 1)
    raise ValueError("no XZ-compressed ELF payload found in the bzImage")


def _newc(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 1) -> bytes:
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = head + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def build_initramfs(busybox: Path, modules: Path) -> bytes:
    entries: list[bytes] = []
    ino = 1

    def add(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nonlocal ino
        entries.append(_newc(name, mode, data, rdev, ino))
        ino += 1

    for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules", "tmp"):
        add(d, stat.S_IFDIR | 0o755)
    add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    add("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))
    add("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes())
    add("bin/sh", stat.S_IFLNK | 0o777, b"busybox")
    for m in MODULES:
        add(f"lib/modules/{Path(m).name}", stat.S_IFREG | 0o644, (modules / m).read_bytes())
    add("init", stat.S_IFREG | 0o755, INIT.encode())
    entries.append(_newc("TRAILER!!!", 0, ino=0))
    raw = b"".join(entries)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()


def build(outdir: Path | None = None) -> tuple[Path, Path]:
    """Build (or reuse) the guest; returns (vmlinux, initramfs).

    Raises:
        FileNotFoundError: no kernel with modules, or no static busybox.
    """
    vmlinuz, mods = find_kernel()
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox not found (apt install busybox-static)")
    key = hashlib.sha256(Path(__file__).read_bytes() + str(vmlinuz).encode()
                         + str(os.stat(vmlinuz).st_mtime_ns).encode() + busybox.encode()).hexdigest()[:16]
    out = outdir or Path(os.environ.get("VIRTKIT_TEST_CACHE", "/tmp/virtkit-test-cache")) / f"entropy-guest-{key}"
    kernel, initrd = out / "vmlinux", out / "initramfs.cpio.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    out.mkdir(parents=True, exist_ok=True)
    for path, data in ((kernel, extract_vmlinux(vmlinuz.read_bytes())),
                       (initrd, build_initramfs(Path(busybox), mods))):
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return kernel, initrd


if __name__ == "__main__":
    k, i = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(k)
    print(i)
