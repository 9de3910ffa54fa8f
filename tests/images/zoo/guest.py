"""The context one guest is built in: staging trees, payload files and their manifest.

A guest builder fills staging directories (:class:`Tree`, one per filesystem), turns them
into filesystems and disks with :mod:`zoo.disk`, and returns its disk images.  Every kernel
and initrd it places is recorded in the manifest under ``DEVICE:PATH`` - the GRUB device of
the filesystem and the file's path from that filesystem's top - with its sha256, and a copy
is kept once in the zoo's ``payload/<sha256>``, so the end-to-end tests can check that what
virtkit extracted is byte for byte what the guest holds (several initrds: their exact
concatenation).

Guests with an upstream GRUB 2 configuration also describe an *oracle bundle*
(:meth:`GuestBuild.oracle_bundle`): the exact config and grubenv bytes, the config's path on
the boot filesystem, its UUID and table type, for the real-GRUB oracle
(``tests/oracle/grub_emu.py``) to evaluate.
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from zoo.payload import build_initramfs, build_microcode_cpio, debian_kernel, kernel_extras, sha256_file

__all__ = ["GuestBuild", "Tree"]


@dataclass
class GuestBuild:
    """One guest being built.

    Attributes:
        name: the guest's name (``centos7``).
        work: its scratch directory (removed afterwards).
        out: the zoo directory final images go to.
        files: manifest ``DEVICE:PATH`` -> sha256 of every kernel/initrd placed.
    """

    name: str
    work: Path
    out: Path
    files: dict[str, str] = field(default_factory=dict)
    oracle: dict[str, object] | None = None
    _payload: dict[str, Path] = field(default_factory=dict)

    def oracle_bundle(self, *, config_path: str, table: str, uuid: str, files: dict[str, str | bytes]) -> None:
        """Describe the boot filesystem for the grub-emu oracle (see the module docstring)."""
        self.oracle = {"config_path": config_path, "table": table, "uuid": uuid,
                       "files": {p: base64.b64encode(d.encode() if isinstance(d, str) else d).decode()
                                 for p, d in files.items()}}

    def keep_payload(self, src: Path, digest: str) -> None:
        """A copy of a placed kernel/initrd in ``<zoo>/payload/<sha256>`` (once per content)."""
        dest = self.out / "payload" / digest
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(f".tmp{os.getpid()}")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)

    def tree(self, label: str, *, device: str, prefix: str = "") -> Tree:
        """A new staging directory for the filesystem GRUB calls ``device``.

        Args:
            label: a directory name unique within this guest.
            device: GRUB device name of the filesystem (``hd0,msdos1``, ``lvm/centos-root``).
            prefix: where this tree will sit inside the filesystem (a btrfs subvolume path such
                as ``/root``), for the manifest keys.
        """
        root = self.work / "trees" / label
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        return Tree(self, root, device, prefix)

    def path(self, name: str) -> Path:
        """A scratch file path."""
        return self.work / name

    def cached_initramfs(self, marker: str) -> Path:
        if marker not in self._payload:
            dest = self.work / "payload" / f"{len(self._payload):03d}.cpio.gz"
            dest.parent.mkdir(parents=True, exist_ok=True)
            build_initramfs(marker, dest, self.work / "payload")
            self._payload[marker] = dest
        return self._payload[marker]


@dataclass
class Tree:
    """A staging directory that becomes one filesystem (or one subvolume of it)."""

    guest: GuestBuild
    root: Path
    device: str
    prefix: str

    def _dest(self, path: str) -> Path:
        if not path.startswith("/"):
            raise ValueError(f"tree paths are absolute: {path!r}")
        dest = self.root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def _record(self, path: str, dest: Path) -> None:
        digest = sha256_file(dest)
        self.guest.files[f"{self.device}:{self.prefix}{path}"] = digest
        self.guest.keep_payload(dest, digest)

    def write(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        dest = self._dest(path)
        if isinstance(data, str):
            data = data.encode()
        dest.write_bytes(data)
        dest.chmod(mode)

    def mkdir(self, *paths: str) -> None:
        for p in paths:
            self._dest(p.rstrip("/") + "/.").mkdir(parents=True, exist_ok=True)

    def symlink(self, path: str, target: str) -> None:
        dest = self._dest(path)
        if dest.exists() or dest.is_symlink():
            dest.unlink()
        dest.symlink_to(target)

    def kernel(self, path: str, *, extras_version: str | None = None) -> None:
        """Debian's kernel at ``path``; with ``extras_version`` also ``config-V``/``System.map-V`` beside it."""
        src = debian_kernel()
        dest = self._dest(path)
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
        self._record(path, dest)
        if extras_version is not None:
            directory = os.path.dirname(path)
            for stem, extra in kernel_extras(src).items():
                shutil.copyfile(extra, self._dest(f"{directory}/{stem}-{extras_version}".replace("//", "/")))

    def initramfs(self, path: str, marker: str, *, mode: int = 0o600) -> None:
        """A zoo initramfs printing ``marker`` (``guest/version``) at ``path``."""
        dest = self._dest(path)
        shutil.copyfile(self.guest.cached_initramfs(marker), dest)
        dest.chmod(mode)
        self._record(path, dest)

    def microcode(self, path: str) -> None:
        dest = self._dest(path)
        build_microcode_cpio(dest, self.guest.work / "payload")
        self._record(path, dest)

    def os_root(self, *, os_release: str | None, fstab: str, hostname: str, machine_id: str | None = None,
                extra: dict[str, str] | None = None, usrmerge: bool = True) -> None:
        """The bits of a root filesystem that libguestfs inspection looks at (release files, fstab)."""
        self.mkdir("/boot", "/dev", "/proc", "/sys", "/run", "/tmp", "/root", "/home", "/var/log", "/mnt",
                   "/usr/bin", "/usr/sbin", "/usr/lib", "/etc/sysconfig")
        if usrmerge:
            for d in ("bin", "sbin", "lib", "lib64"):
                self.symlink(f"/{d}", f"usr/{d}")
        else:
            self.mkdir("/bin", "/sbin", "/lib")
        if os_release is not None:  # CentOS 5 predates os-release
            self.write("/etc/os-release", os_release)
        self.write("/etc/fstab", fstab)
        self.write("/etc/hostname", hostname + "\n")
        if machine_id is not None:
            self.write("/etc/machine-id", machine_id + "\n", 0o444)
        for path, text in (extra or {}).items():
            self.write(path, text)
