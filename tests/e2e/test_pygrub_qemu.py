"""Issue 5 end to end: what virtkit-pygrub extracts from a realistic guest boots under QEMU.

The guest image is built now: Debian's real kernel (``/boot/vmlinuz-6.1.0-*-amd64``, package
linux-image-amd64) and a tiny busybox initramfs whose ``/init`` prints ``/proc/cmdline`` and
powers off (the guest zoo's payload, tests/images/zoo/payload.py), in an ext4 partition of an MBR
disk with Debian's grub.cfg.  virtkit-pygrub runs through tests/libxl_harness.py exactly as libxl
runs it, with ``--args=console=ttyS0`` (xl's ``extra``), so the record carries the console; then

    qemu-system-x86_64 -accel tcg -nographic -m 512 -kernel K -initrd R -append "ARGS"

boots the kernel, ramdisk and arguments of the record, and the command line the guest's init
prints must equal the record's ``args``.  Marked slow (a TCG boot takes seconds); both run in CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from libxl_harness import run_like_libxl
from pygrub_support import VIRTKIT_PYGRUB, Guest, ImageCache, concat_initrds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))  # the zoo builders' payload helpers
from zoo.payload import CMDLINE_PREFIX, MARKER_PREFIX, build_initramfs, build_microcode_cpio, debian_kernel

pytestmark = pytest.mark.slow

UUID = "6c2f6b0e-4f2b-4a64-9d1e-2b0c3e5a7d11"  # pygrub_support.FS_UUID


def grub_cfg(version: str, initrd_line: str) -> str:
    """Debian 12's grub-mkconfig output, shortened; the default is the first entry."""
    return f"""\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
if [ x"${{feature_menuentry_id}}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
terminal_output console
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-{UUID}' {{
	insmod gzio
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	search --no-floppy --fs-uuid --set=root {UUID}
	echo	'Loading Linux {version} ...'
	linux	/boot/vmlinuz-{version} root=UUID={UUID} ro quiet panic=-1
	echo	'Loading initial ramdisk ...'
	{initrd_line}
}}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-{UUID}' {{
	menuentry 'Debian GNU/Linux, with Linux {version} (recovery mode)' --class debian $menuentry_id_option 'gnulinux-{version}-recovery-{UUID}' {{
		linux	/boot/vmlinuz-{version} root=UUID={UUID} ro single
		initrd	/boot/initrd.img-{version}
	}}
}}
"""


def _require() -> None:
    for tool in ("qemu-system-x86_64", "cpio", "mke2fs", "sfdisk"):
        if shutil.which(tool) is None:
            pytest.skip(f"external tool {tool!r} is not installed (scripts/system-packages.txt)")
    try:
        debian_kernel()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    return ImageCache(tmp_path_factory.mktemp("pygrub-qemu"))


def qemu(kernel: Path, ramdisk: Path, args: str) -> str:
    """Boot under TCG; return the serial console output (init powers off, -no-reboot exits)."""
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-nographic", "-m", "512", "-no-reboot", "-monitor", "none",
            "-kernel", str(kernel), "-initrd", str(ramdisk), "-append", args]
    proc = subprocess.run(argv, capture_output=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    return proc.stdout.decode("utf-8", "replace").replace("\r", "")


def printed(output: str, prefix: str) -> str | None:
    for line in output.splitlines():
        i = line.find(prefix)
        if i >= 0:
            return line[i + len(prefix):].rstrip()
    return None


@pytest.mark.parametrize("ucode", [False, True], ids=["initrd", "microcode+initrd"])
def test_extracted_kernel_boots_with_the_record_args(ucode: bool, images: ImageCache, tmp_path: Path) -> None:
    """The second case boots ``initrd /boot/intel-ucode.img /boot/initrd.img-V`` (pygrub cannot: it
    looks for one file with a space in its name): the concatenated ramdisk must unpack in the kernel."""
    _require()
    kernel = debian_kernel()
    version = kernel.name.removeprefix("vmlinuz-")
    initramfs, ucode_img = tmp_path / "initrd.img", tmp_path / "intel-ucode.img"
    build_initramfs(f"pygrub-e2e/{version}", initramfs, tmp_path)
    files: dict[str, bytes | str] = {f"/boot/vmlinuz-{version}": kernel.read_bytes(),
                                     f"/boot/initrd.img-{version}": initramfs.read_bytes()}
    line = f"initrd\t/boot/initrd.img-{version}"
    if ucode:
        build_microcode_cpio(ucode_img, tmp_path)
        files["/boot/intel-ucode.img"] = ucode_img.read_bytes()
        line = f"initrd\t/boot/intel-ucode.img /boot/initrd.img-{version}"
    files["/boot/grub/grub.cfg"] = grub_cfg(version, line)
    image = images.get(Guest.make(files, disk="mbr"))

    res = run_like_libxl(VIRTKIT_PYGRUB, str(image), cmdline="console=ttyS0")
    assert res.status == 0, res.stderr
    assert res.leftovers == [] and res.warnings == []
    args = res.records["args"]
    assert args == f"root=UUID={UUID} ro quiet panic=-1 console=ttyS0"
    assert res.kernel == kernel.read_bytes()
    expected_ramdisk = concat_initrds([ucode_img.read_bytes(), initramfs.read_bytes()]) if ucode \
        else initramfs.read_bytes()
    assert res.ramdisk == expected_ramdisk

    k, r = tmp_path / "boot_kernel", tmp_path / "boot_ramdisk"
    k.write_bytes(res.kernel)
    r.write_bytes(res.ramdisk or b"")
    out = qemu(k, r, args)
    assert printed(out, MARKER_PREFIX) == f"pygrub-e2e/{version}", out[-3000:]
    assert printed(out, CMDLINE_PREFIX) == args, out[-3000:]
