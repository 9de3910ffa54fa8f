"""Differential: the real syslinux decides, in QEMU, which entry boots and with what - and we must agree.

Each scenario is a FAT disk made with ``mkfs.vfat`` + ``syslinux --install`` (syslinux 6, Debian's
``syslinux``/``syslinux-common``) holding a configuration, a real kernel (the host's
``/boot/vmlinuz-*``, copied under the names the configuration uses) and initrds.  Every initrd is a
tiny busybox initramfs plus a marker file named after it, so the guest can report which initrds the
boot loader loaded (the set, and which one came last: each archive also writes ``/last``).  The init prints ``/proc/cmdline`` and the markers to the serial port and powers
off.  QEMU runs under TCG (no KVM needed), one boot per scenario, about 15 s each.

For every scenario the default entry of our menu (:func:`resolve_boot_target`) must name the kernel
syslinux booted (``BOOT_IMAGE=``), the same command line (what follows ``BOOT_IMAGE=...``) and the
same initrds in the same order.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import require_tool
from virtkit.boot.config.extlinux import load_extlinux_menu
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.boot.menu import resolve_boot_target
from virtkit.errors import SelectionError
from virtkit.limits import Limits

pytestmark = [pytest.mark.differential, pytest.mark.slow]

MODULES = Path("/usr/lib/syslinux/modules/bios")
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
{
  echo "VIRTKIT-CMDLINE: $(/bin/busybox cat /proc/cmdline)"
  echo "VIRTKIT-MARKERS: $(/bin/busybox ls /markers 2>/dev/null | /bin/busybox tr '\\n' ' ')"
  echo "VIRTKIT-LAST: $(/bin/busybox cat /last 2>/dev/null)"
} > /dev/ttyS0
/bin/busybox poweroff -f
"""


@dataclass(frozen=True)
class Scenario:
    id: str
    files: dict[str, str]  # path -> config text (the *.cfg files)
    kernels: tuple[str, ...] = ("/vmlinuz",)
    initrds: tuple[str, ...] = ()
    config: str = "/syslinux.cfg"
    boots: bool = True  # False: syslinux boots nothing by itself (we must say "no default")


S = "console=ttyS0"
SCENARIOS = [
    Scenario("ui-menu-default-and-comma-initrds", {"/syslinux.cfg":
             f"UI menu.c32\nTIMEOUT 1\nLABEL one\n KERNEL vmlinuz\n APPEND {S} x=1\n INITRD i1\n"
             f"LABEL two\n MENU DEFAULT\n LINUX vmlinuz\n APPEND {S} x=2 initrd=i1,i2\n"}, initrds=("/i1", "/i2")),
    Scenario("default-label-no-ui", {"/syslinux.cfg":
             f"APPEND {S} global\nDEFAULT b\nLABEL a\n KERNEL vmlinuz\nLABEL b\n KERNEL vmlinuz\n INITRD i1\n"}, initrds=("/i1",)),
    Scenario("default-menu-c32-uses-menu-default", {"/syslinux.cfg":
             f"DEFAULT menu.c32\nTIMEOUT 1\nLABEL a\n KERNEL vmlinuz\n APPEND {S} a\n INITRD i1\n"
             f"LABEL b\n MENU DEFAULT\n KERNEL vmlinuz\n APPEND {S} b\n INITRD i2\n"}, initrds=("/i1", "/i2")),
    Scenario("ui-default-label-beats-menu-default", {"/syslinux.cfg":
             f"UI menu.c32\nTIMEOUT 1\nDEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND {S} a\n INITRD i1\n"
             f"LABEL b\n MENU DEFAULT\n KERNEL vmlinuz\n APPEND {S} b\n INITRD i1\n"}, initrds=("/i1",)),
    Scenario("ui-ontimeout-with-extra-words", {"/syslinux.cfg":
             f"UI menu.c32\nTIMEOUT 1\nONTIMEOUT b extra=1\nLABEL a\n KERNEL vmlinuz\n APPEND {S} a\n INITRD i1\n"
             f"LABEL b\n KERNEL vmlinuz\n APPEND {S} b\n INITRD i2\n"}, initrds=("/i1", "/i2")),
    Scenario("subdir-include-and-relative-paths", {
        "/boot/syslinux/syslinux.cfg": "DEFAULT main\nINCLUDE entries.cfg\n",
        "/boot/syslinux/entries.cfg": f"LABEL main\n KERNEL ../k\n APPEND {S} sub\n INITRD ../i1\n",
    }, kernels=("/boot/k",), initrds=("/boot/i1",), config="/boot/syslinux/syslinux.cfg"),
    Scenario("append-initrd-beats-initrd-keyword", {"/syslinux.cfg":
             f"DEFAULT a\nLABEL a\n KERNEL vmlinuz\n INITRD i1\n APPEND {S} initrd=i2\n"}, initrds=("/i1", "/i2")),
    Scenario("implicit-default-kernel", {"/syslinux.cfg":
             f"DEFAULT vmlinuz {S} initrd=i1 implicit=1\nLABEL other\n KERNEL vmlinuz\n"}, initrds=("/i1",)),
    Scenario("hidden-label-as-default", {"/syslinux.cfg":
             f"DEFAULT h\nLABEL a\n KERNEL vmlinuz\nLABEL h\n MENU HIDE\n KERNEL vmlinuz\n APPEND {S} hidden\n INITRD i1\n"},
             initrds=("/i1",)),
    Scenario("submenu-default", {"/syslinux.cfg":
             f"UI menu.c32\nTIMEOUT 1\nLABEL a\n KERNEL vmlinuz\n APPEND {S} a\n INITRD i1\nMENU BEGIN sub\n"
             f" MENU DEFAULT\n TIMEOUT 1\n LABEL x\n  KERNEL vmlinuz\n  APPEND {S} x\n  INITRD i1\n LABEL y\n  MENU DEFAULT\n"
             f"  KERNEL vmlinuz\n  APPEND {S} y\n  INITRD i2\nMENU END\n"}, initrds=("/i1", "/i2"), boots=False),
]


def _cpio(root: Path, out: Path) -> None:
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    proc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                          input=("\n".join([".", *names]) + "\n").encode(), capture_output=True, check=True)
    out.write_bytes(proc.stdout)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tool("qemu-system-x86_64", "busybox", "cpio", "mkfs.vfat", "mcopy", "mmd", "syslinux")
    if not (MODULES / "menu.c32").exists():
        pytest.skip(f"syslinux modules missing in {MODULES} (Debian package syslinux-common)")
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels or not os.access(kernels[-1], os.R_OK):
        pytest.skip("no readable /boot/vmlinuz-* to boot (Debian package linux-image-amd64)")
    tmp = tmp_path_factory.mktemp("syslinux-qemu")
    root = tmp / "root"
    for d in ("bin", "proc", "dev", "sys"):
        (root / d).mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    base = tmp / "base.cpio"
    _cpio(root, base)
    return {"tmp": tmp, "base": base, "kernel": Path(kernels[-1])}


def _initrd(kit: dict[str, Path], name: str) -> bytes:
    """The busybox initramfs plus /markers/<name>: the kernel unpacks concatenated archives in order."""
    mk = kit["tmp"] / f"marker-{name}"
    (mk / "markers").mkdir(parents=True, exist_ok=True)
    (mk / "markers" / name).write_text(name)
    (mk / "last").write_text(name)  # later archives overwrite it: the last initrd loaded
    out = kit["tmp"] / f"marker-{name}.cpio"
    _cpio(mk, out)
    return kit["base"].read_bytes() + out.read_bytes()


def _disk(kit: dict[str, Path], sc: Scenario) -> tuple[Path, dict[str, bytes]]:
    img = kit["tmp"] / f"{sc.id}.img"
    img.unlink(missing_ok=True)
    subprocess.run(["mkfs.vfat", "-C", str(img), "24576"], check=True, capture_output=True)
    subprocess.run(["syslinux", "--install", str(img)], check=True, capture_output=True)
    tree: dict[str, bytes] = {p: t.encode() for p, t in sc.files.items()}
    kernel = kit["kernel"].read_bytes()
    for k in sc.kernels:
        tree[k] = kernel
    for i in sc.initrds:
        tree[i] = _initrd(kit, i.rsplit("/", 1)[-1])
    cfg_dir = sc.config.rsplit("/", 1)[0] or "/"
    for mod in ("ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"):
        tree[f"{cfg_dir.rstrip('/')}/{mod}"] = (MODULES / mod).read_bytes()
    made: set[str] = set()
    for path in sorted(tree):
        parts = path.strip("/").split("/")[:-1]
        for n in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:n])
            if d not in made:
                subprocess.run(["mmd", "-i", str(img), f"::{d}"], check=True, capture_output=True)
                made.add(d)
        src = kit["tmp"] / "payload"
        src.write_bytes(tree[path])
        subprocess.run(["mcopy", "-o", "-i", str(img), str(src), f"::{path}"], check=True, capture_output=True)
    return img, tree


def _run_qemu(img: Path, seconds: float) -> str:
    """Boot the disk; return what the serial port printed (QEMU is killed after ``seconds``)."""
    log = img.with_suffix(".serial")
    log.unlink(missing_ok=True)
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
            "-monitor", "none", "-serial", f"file:{log}", "-drive", f"file={img},format=raw,if=ide"]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return log.read_text(errors="replace") if log.exists() else ""


def _boot(img: Path) -> tuple[str, str, list[str], str]:
    text = _run_qemu(img, 240)
    cm = re.search(r"VIRTKIT-CMDLINE: (.*)", text)
    mk = re.search(r"VIRTKIT-MARKERS: (.*)", text)
    last = re.search(r"VIRTKIT-LAST: (.*)", text)
    assert cm and mk and last, f"the guest did not report (syslinux chose nothing that booted?):\n{text[-2000:]}"
    m = re.match(r"BOOT_IMAGE=(\S+) ?(.*)", cm.group(1).rstrip("\r"))
    assert m, cm.group(1)
    return m.group(1), m.group(2), sorted(mk.group(1).split()), last.group(1).strip()


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_syslinux_agrees(sc: Scenario, kit: dict[str, Path]) -> None:
    img, tree = _disk(kit, sc)
    files = MemoryFiles({"hd0": tree}, infos=[DeviceInfo("hd0", fs_type="vfat")])
    menu = load_extlinux_menu(files, "hd0", sc.config, limits=Limits())
    if not sc.boots:
        # syslinux waits at its prompt; a kernel would report within ~20 s under TCG, give it 60.
        assert "VIRTKIT-CMDLINE" not in _run_qemu(img, 60)
        with pytest.raises(SelectionError, match="has no default entry"):
            resolve_boot_target(menu)
        return
    boot_image, cmdline, markers, last = _boot(img)
    _path, entry = resolve_boot_target(menu)
    assert entry.kernel is not None
    assert entry.kernel.written == boot_image, menu.default_trail
    assert entry.cmdline.rstrip() == cmdline.rstrip(), menu.default_trail
    names = [r.path.rsplit("/", 1)[-1] for r in entry.initrds]
    assert sorted(names) == markers, menu.default_trail  # the set the kernel unpacked
    assert names[-1] == last, menu.default_trail  # and which came last
