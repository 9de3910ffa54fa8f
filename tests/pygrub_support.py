"""Guest images for the virtkit-pygrub drop-in tests, built at test time with real tools.

    g = Guest.make({"/boot/grub/grub.cfg": cfg, "/boot/vmlinuz-1": K1}, fs="ext4", disk="mbr")
    image = images.get(g)        # the session cache (``images`` fixture) builds each guest once

Filesystems come from ``mke2fs -d``, ``mkfs.vfat`` + ``mcopy``, ``mkfs.xfs -p protofile``,
``mkfs.btrfs --rootdir`` and ``xorriso``; disks from ``sfdisk``/``sgdisk`` (and real LVM on a
loop device, root only), qcow2 from ``qemu-img convert``.  The builders are the guest zoo's
(``tests/images/zoo/disk.py``), so both suites make disks the same way.  Nothing is mounted.

Also here: the two programs under test (Debian's Xen 4.17 ``pygrub`` and ``virtkit-pygrub``),
how to run either directly with its output normalised (temp-file names and the output directory
replaced by placeholders), and deterministic payload bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS / "images") not in sys.path:
    sys.path.insert(0, str(TESTS / "images"))

from zoo.disk import Lv, Partition, make_gpt, make_mbr, make_pv, mkfs_ext, mkfs_vfat, mkfs_xfs, qcow2  # noqa: E402
from zoo.tools import run, tool_env  # noqa: E402

PYGRUB = "/usr/lib/xen-4.17/bin/pygrub"  # Debian 12 xen-utils-4.17
_SCRIPT = Path(sysconfig.get_path("scripts")) / "virtkit-pygrub"  # the console script pip installed
# The installed entry point (so messages say "virtkit-pygrub: ..."), else the module.
VIRTKIT_PYGRUB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "virtkit.cli.pygrub"]
MiB = 1 << 20

_TEMP_NAME = re.compile(rb"boot_(kernel|ramdisk)\.[a-z0-9_]{8}")

__all__ = [
    "PYGRUB",
    "VIRTKIT_PYGRUB",
    "DirectResult",
    "Guest",
    "ImageCache",
    "concat_initrds",
    "payload",
    "require_pygrub",
    "run_direct",
]


def require_pygrub() -> None:
    """Skip when Debian's pygrub is missing (package xen-utils-4.17)."""
    if not Path(PYGRUB).exists():
        pytest.skip(f"Xen's pygrub ({PYGRUB}) is not installed: apt-get install xen-utils-4.17")


def payload(tag: str, size: int) -> bytes:
    """``size`` deterministic, incompressible-looking bytes that start with ``tag`` (a kernel, an initrd)."""
    out = bytearray(f"{tag}\n".encode())
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{tag}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def concat_initrds(parts: Sequence[bytes]) -> bytes:
    """What GRUB places in memory for ``initrd a b``: each one but the last padded with zeros to
    4 bytes (grub-core/loader/linux.c, ``ALIGN_UP (size, 4)`` between initrds)."""
    out = b""
    for i, p in enumerate(parts):
        out += p
        if i < len(parts) - 1:
            out += bytes(-len(p) % 4)
    return out


@dataclass(frozen=True)
class Guest:
    """One guest disk.

    Attributes:
        files: (path, content) pairs in the boot filesystem (paths absolute).
        fs: ``ext4``, ``vfat``, ``xfs4`` (v4, ftype=0: the only XFS pygrub reads), ``xfs5``
            (the mkfs default), ``btrfs`` or ``iso`` (iso9660 with Rock Ridge).
        disk: ``whole`` (the filesystem is the disk), ``mbr`` (primary partition 1 at 1 MiB),
            ``logical`` (MBR logical partition 5), ``gpt`` (BIOS boot + root), ``lvm`` (MBR
            partition 1 is an LVM PV; the filesystem is LV ``vg0/root``), ``4kn`` (GPT with
            4096-byte sectors).
        image_format: ``raw`` or ``qcow2``.
    """

    files: tuple[tuple[str, bytes], ...]
    fs: str = "ext4"
    disk: str = "whole"
    image_format: str = "raw"

    @classmethod
    def make(cls, files: Mapping[str, bytes | str], *, fs: str = "ext4", disk: str = "whole",
             image_format: str = "raw") -> Guest:
        items = tuple(sorted((p, v.encode() if isinstance(v, str) else v) for p, v in files.items()))
        return cls(items, fs, disk, image_format)

    def file(self, path: str) -> bytes:
        for p, v in self.files:
            if p == path:
                return v
        raise KeyError(path)

    @property
    def key(self) -> str:
        h = hashlib.sha256(repr((self.fs, self.disk, self.image_format)).encode())
        for p, v in self.files:
            h.update(p.encode() + b"\0" + hashlib.sha256(v).digest())
        return h.hexdigest()[:16]


def _tree(guest: Guest, root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for path, content in guest.files:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    return root


FS_UUID = "6c2f6b0e-4f2b-4a64-9d1e-2b0c3e5a7d11"


def _filesystem(guest: Guest, work: Path, *, block_size: int = 0) -> Path:
    tree = _tree(guest, work / "tree")
    img = work / "fs.img"
    if guest.fs == "ext4":
        opts = ["-b", str(block_size)] if block_size else []
        mkfs_ext(tree, img, 16, kind="ext4", uuid=FS_UUID, label="boot", options=opts)
    elif guest.fs == "vfat":
        mkfs_vfat(tree, img, 16, fat=16, volid="1234ABCD", label="BOOT")
    elif guest.fs in ("xfs4", "xfs5"):
        opts = ["-m", "crc=0", "-n", "ftype=0"] if guest.fs == "xfs4" else []
        if block_size:
            opts += ["-s", f"size={block_size}"]
        mkfs_xfs(tree, img, 300 if guest.fs == "xfs5" else 32, uuid=FS_UUID, label="boot", options=opts)
    elif guest.fs == "btrfs":
        run(["mkfs.btrfs", "-q", "-f", "-U", FS_UUID, "-m", "single", "-d", "single", "-b", str(128 * MiB),
             "--rootdir", tree, img])
    elif guest.fs == "iso":
        run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "BOOT", "-o", img, tree])
    else:
        raise ValueError(f"unknown filesystem {guest.fs!r}")
    shutil.rmtree(tree)
    return img


def _size_mib(path: Path) -> int:
    return -(-path.stat().st_size // MiB)


def _disk(guest: Guest, work: Path) -> Path:
    disk = work / "disk.img"
    fs = _filesystem(guest, work, block_size=4096 if guest.disk == "4kn" else 0)
    size = _size_mib(fs)
    if guest.disk == "whole":
        os.replace(fs, disk)
        return disk
    if guest.disk == "mbr":
        make_mbr(disk, size + 2, [Partition(1, size, "83", content=fs)], label_id="0x5eed0001")
    elif guest.disk == "logical":
        make_mbr(disk, size + 4, [Partition(2, size, "83", content=fs, logical=True)], label_id="0x5eed0002")
    elif guest.disk == "gpt":
        make_gpt(disk, size + 4, [Partition(1, 1, "EF02", name="bios"), Partition(2, size, "8300", content=fs,
                                                                           name="root")],
                 disk_guid="8e6f1b3a-51a4-4c5d-9a30-0c1d2e3f4a5b")
    elif guest.disk == "lvm":
        pv = work / "pv.img"
        make_pv(pv, size + 8, vg="vg0", lvs=[Lv("root", size + (-size % 4), content=fs)],
                pv_uuid="pvUUIDpygrubDropin0123456789abcd", work=work)
        make_mbr(disk, _size_mib(pv) + 2, [Partition(1, _size_mib(pv), "8e", content=pv)], label_id="0x5eed0003")
        pv.unlink()
    elif guest.disk == "4kn":
        _gpt_4kn(disk, fs, size)
    else:
        raise ValueError(f"unknown disk layout {guest.disk!r}")
    fs.unlink()
    return disk


def _gpt_4kn(disk: Path, fs: Path, size_mib: int) -> None:
    """A GPT disk with 4096-byte logical sectors, root at 1 MiB: ``sfdisk`` on a loop device made
    with ``losetup -b 4096`` (util-linux 2.38's sfdisk has no --sector-size for plain files)."""
    from zoo.disk import place

    with open(disk, "wb") as f:
        f.truncate((size_mib + 2) * MiB)
    dev = run(["losetup", "-b", "4096", "-f", "--show", disk]).strip()
    try:
        script = f"label: gpt\nunit: sectors\n\nstart=256, size={size_mib * 256}, type=L\n"
        run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev], input=script.encode())
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
    place(fs, disk, MiB)


class ImageCache:
    """Builds each :class:`Guest` once per session (per xdist worker) under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path] = {}

    def get(self, guest: Guest) -> Path:
        if guest.key in self._built:
            return self._built[guest.key]
        if guest.disk in ("lvm", "4kn") and os.geteuid() != 0:
            pytest.skip(f"building the {guest.disk} disk with real tools needs root (a loop device)")
        for tool in _TOOLS[guest.fs] + _DISK_TOOLS[guest.disk] + (["qemu-img"] if guest.image_format == "qcow2" else []):
            if shutil.which(tool) is None:
                pytest.skip(f"external tool {tool!r} is not installed (scripts/system-packages.txt)")
        work = self.root / guest.key
        work.mkdir(parents=True, exist_ok=True)
        disk = _disk(guest, work)
        if guest.image_format == "qcow2":
            disk = qcow2(disk, work / "disk.qcow2")
            (work / "disk.img").unlink()
        self._built[guest.key] = disk
        return disk


_TOOLS = {"ext4": ["mke2fs"], "vfat": ["mkfs.vfat", "mcopy"], "xfs4": ["mkfs.xfs"], "xfs5": ["mkfs.xfs"],
          "btrfs": ["mkfs.btrfs"], "iso": ["xorriso"]}
_DISK_TOOLS = {"whole": [], "mbr": ["sfdisk"], "logical": ["sfdisk"], "gpt": ["sgdisk"], "lvm": ["lvm", "losetup", "sfdisk"],
               "4kn": ["sfdisk", "losetup"]}


@dataclass
class DirectResult:
    """A run of either program with ``--output-directory``: status, streams, the files it left."""

    status: int
    stdout: bytes
    stderr: str
    files: dict[str, bytes]  # name -> content, for every file left in the output directory
    outdir: Path

    def normalised(self) -> bytes:
        """stdout with the output directory as ``<DIR>`` and temp names as ``boot_kernel.XXXXXXXX``."""
        return normalise(self.stdout, self.outdir)

    def file(self, kind: str) -> bytes | None:
        """The one ``boot_<kind>.*`` file left behind, or None."""
        found = [v for k, v in self.files.items() if k.startswith(f"boot_{kind}.")]
        assert len(found) <= 1, sorted(self.files)
        return found[0] if found else None


def normalise(data: bytes, outdir: Path | str) -> bytes:
    """Temp names as ``boot_kernel.XXXXXXXX``, ``outdir`` as ``<DIR>``, our program name as installed."""
    data = _TEMP_NAME.sub(rb"boot_\1.XXXXXXXX", data)
    data = re.sub(rb"(?m)^pygrub\.py: ", b"virtkit-pygrub: ", data)  # run as ``python -m virtkit.cli.pygrub``
    return data.replace(str(outdir).encode(), b"<DIR>")


def run_direct(prog: Sequence[str], image: Path | str, args: Sequence[str], outdir: Path, *,
               timeout: float = 120, stdin: int | None = subprocess.DEVNULL) -> DirectResult:
    """Run ``prog --output-directory=OUTDIR ARGS IMAGE`` with the result on stdout; collect what it left."""
    outdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*prog, f"--output-directory={outdir}", *args, str(image)], capture_output=True,
                          timeout=timeout, stdin=stdin, env=tool_env({"TERM": "vt100"}), check=False)
    files = {}
    for name in sorted(os.listdir(outdir)):
        files[name] = (outdir / name).read_bytes()
        os.unlink(outdir / name)
    return DirectResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"), files, outdir)
