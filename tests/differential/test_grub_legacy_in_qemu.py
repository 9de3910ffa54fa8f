"""Differential: the real GRUB legacy (Debian's grub-legacy 0.97-80) decides, in QEMU, what boots.

GRUB legacy cannot be installed next to GRUB 2 on Debian (the package removes grub2-common), so the
test fetches it with ``apt-get download grub-legacy`` once into the test cache and unpacks it
with ``dpkg-deb -x``; without network or apt the test skips and says so.  Each scenario is an
El Torito CD (``xorriso -as mkisofs -b boot/grub/stage2_eltorito``): GRUB's stage2 reads
``/boot/grub/menu.lst`` (and ``/boot/grub/default`` for ``default saved``) from the CD and boots
the host's kernel with busybox initrds that report ``/proc/cmdline`` and which initrd was loaded
(see ``test_syslinux_in_qemu.py``).  ``timeout 0`` makes GRUB boot its default at once.

Our menu's default entry must have the command line the kernel received (GRUB legacy passes the
text after the kernel's file name verbatim, with no ``BOOT_IMAGE``) and the initrd it loaded.
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
from virtkit.boot.config.grub_legacy import load_grub_legacy_menu
from virtkit.boot.config.source import DeviceInfo, MemoryFiles
from virtkit.boot.menu import resolve_boot_target
from virtkit.limits import Limits

pytestmark = [pytest.mark.differential, pytest.mark.slow]

CACHE = Path(os.environ.get("VIRTKIT_TEST_CACHE", "/tmp/virtkit-test-cache")) / "grub-legacy"
STAGE2 = "usr/lib/grub/x86_64-pc/stage2_eltorito"
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
{
  echo "VIRTKIT-CMDLINE: $(/bin/busybox cat /proc/cmdline)"
  echo "VIRTKIT-LAST: $(/bin/busybox cat /last 2>/dev/null)"
} > /dev/ttyS0
/bin/busybox poweroff -f
"""
C = "console=ttyS0"
TWO = f"title one\nkernel /vmlinuz {C} x=1\ninitrd /i1\ntitle two\nkernel /vmlinuz {C} x=2\ninitrd /i2\n"


@dataclass(frozen=True)
class Scenario:
    id: str
    menu: str
    default_file: bytes | None = None


SCENARIOS = [
    Scenario("default-saved", "default saved\ntimeout 0\n" + TWO, b"1\n#\n#\n"),
    Scenario("default-saved-no-file", "default saved\ntimeout 0\n" + TWO),
    Scenario("default-saved-trailing-blank", "default saved \ntimeout 0\n" + TWO, b"1\n"),
    Scenario("default-number-with-garbage", "default 1abc\ntimeout 0\n" + TWO),
    Scenario("default-negative", "default -1\ntimeout 0\n" + TWO),
    Scenario("default-past-end-fallback", "default 5\nfallback 1\ntimeout 0\n" + TWO),
    Scenario("default-past-end", "default 5\ntimeout 0\n" + TWO),
    Scenario("empty-title-dropped", "default 1\ntimeout 0\ntitle empty\n" + TWO),
    Scenario("unknown-command-skipped", f"default 0\ntimeout 0\nfrobnicate now\ntitle one\nfoo\nkernel /vmlinuz {C} u=1\n"
             "initrd /i1\n"),
    Scenario("comment-continuation-swallows-line", "# note \\\ndefault 1\ntimeout 0\n" + TWO),
    Scenario("backslash-continuation-and-tabs", f"timeout 0\ntitle t\nkernel\t/vmlinuz\t{C} a=1 \\\n   b=2\ninitrd /i1\n"),
    Scenario("second-initrd-replaces-first", f"timeout 0\ntitle t\nkernel /vmlinuz {C} r=1\ninitrd /i1\ninitrd /i2\n"),
    Scenario("title-equals-and-default-equals", f"default=1\ntimeout=0\ntitle=one\nkernel=/vmlinuz {C} e=1\ninitrd /i1\n"
             f"title=two\nkernel=/vmlinuz {C} e=2\ninitrd /i2\n"),
]


def _grub_legacy() -> Path:
    stage2 = CACHE / "root" / STAGE2
    if stage2.exists():
        return stage2
    require_tool("apt-get", "dpkg-deb")
    CACHE.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", "grub-legacy"], cwd=CACHE, capture_output=True, text=True,
                         check=False, timeout=300)
    debs = sorted(CACHE.glob("grub-legacy_*.deb"))
    if got.returncode != 0 or not debs:
        pytest.skip(f"cannot fetch grub-legacy with apt-get download: {got.stderr.strip()[-200:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(CACHE / "root")], check=True, capture_output=True)
    if not stage2.exists():
        pytest.skip(f"{STAGE2} is not in {debs[-1].name}")
    return stage2


def _cpio(root: Path) -> bytes:
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    return subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                          input=("\n".join([".", *names]) + "\n").encode(), capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    require_tool("qemu-system-x86_64", "busybox", "cpio", "xorriso")
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels or not os.access(kernels[-1], os.R_OK):
        pytest.skip("no readable /boot/vmlinuz-* to boot (Debian package linux-image-amd64)")
    stage2 = _grub_legacy()
    tmp = tmp_path_factory.mktemp("grub-legacy-qemu")
    root = tmp / "root"
    for d in ("bin", "proc", "dev", "sys"):
        (root / d).mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    base = _cpio(root)
    initrds = {}
    for name in ("i1", "i2"):
        mk = tmp / f"m-{name}"
        mk.mkdir()
        (mk / "last").write_text(name)
        initrds[name] = base + _cpio(mk)
    return {"tmp": tmp, "stage2": stage2.read_bytes(), "kernel": Path(kernels[-1]).read_bytes(), "initrds": initrds}


def _boot(kit: dict[str, object], sc: Scenario) -> tuple[str, str]:
    tmp = kit["tmp"]
    assert isinstance(tmp, Path)
    iso_root = tmp / sc.id
    (iso_root / "boot" / "grub").mkdir(parents=True)
    (iso_root / "boot" / "grub" / "stage2_eltorito").write_bytes(kit["stage2"])  # type: ignore[arg-type]
    (iso_root / "boot" / "grub" / "menu.lst").write_text(sc.menu)
    if sc.default_file is not None:
        (iso_root / "boot" / "grub" / "default").write_bytes(sc.default_file)
    (iso_root / "vmlinuz").write_bytes(kit["kernel"])  # type: ignore[arg-type]
    for name, data in kit["initrds"].items():  # type: ignore[attr-defined]
        (iso_root / name).write_bytes(data)
    iso = tmp / f"{sc.id}.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-b", "boot/grub/stage2_eltorito", "-no-emul-boot",
                    "-boot-load-size", "4", "-boot-info-table", "-o", str(iso), str(iso_root)],
                   check=True, capture_output=True)
    log = tmp / f"{sc.id}.serial"
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
            "-monitor", "none", "-serial", f"file:{log}", "-cdrom", str(iso)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace") if log.exists() else ""
    cm = re.search(r"VIRTKIT-CMDLINE: (.*?)\r?\n", text)
    last = re.search(r"VIRTKIT-LAST: (.*?)\r?\n", text)
    assert cm and last, f"the guest did not report:\n{text[-2000:]}"
    return cm.group(1), last.group(1).strip()


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_grub_legacy_agrees(sc: Scenario, kit: dict[str, object]) -> None:
    cmdline, initrd = _boot(kit, sc)
    tree = {"/boot/grub/menu.lst": sc.menu.encode(), "/vmlinuz": b"", "/i1": b"", "/i2": b""}
    if sc.default_file is not None:
        tree["/boot/grub/default"] = sc.default_file
    files = MemoryFiles({"cd0": tree}, infos=[DeviceInfo("cd0", fs_type="iso9660")])
    menu = load_grub_legacy_menu(files, "cd0", "/boot/grub/menu.lst", limits=Limits())
    _path, entry = resolve_boot_target(menu)
    assert entry.cmdline == cmdline, menu.default_trail
    assert [r.path for r in entry.initrds] == [f"/{initrd}"], menu.default_trail
