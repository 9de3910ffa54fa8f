"""Filesystems from staging trees, partitioned disks and LVM physical volumes, with real tools.

References:
    ``mke2fs(8)`` (``-d`` populates from a directory), ``mkfs.xfs(8)`` (``-p`` protofile),
    ``mkfs.vfat(8)`` + ``mcopy(1)``, ``mkfs.btrfs(8)``, ``mkswap(8)``, ``sfdisk(8)`` (MBR
    scripts, extended + logical partitions), ``sgdisk(8)`` (GPT), ``lvm(8)``.

No mounting, except btrfs images with subvolumes (:func:`mkfs_btrfs_subvols`): btrfs-progs
6.2 (Debian 12) can neither create subvolumes offline (``mkfs.btrfs --rootdir`` copies plain
directories only) nor set the default subvolume, so those images are populated on a loop
mount with ``btrfs subvolume create/snapshot/set-default`` (root only).

Images are sparse: a filesystem is written into its partition chunk by chunk and all-zero
chunks are skipped (:func:`place`), so a 300 MiB guest occupies little more than its files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.payload import SOURCE_DATE_EPOCH
from zoo.tools import ToolError, loop_device, lvm, lvm_env, lvm_json, mounted, run

__all__ = [
    "Lv",
    "MiB",
    "Partition",
    "make_gpt",
    "make_mbr",
    "make_pv",
    "mkfs_btrfs_subvols",
    "mkfs_ext",
    "mkfs_swap",
    "mkfs_vfat",
    "mkfs_xfs",
    "place",
    "protofile",
    "sparse_file",
]

MiB = 1 << 20
_CHUNK = 1 << 20


def sparse_file(path: Path, size: int) -> Path:
    """Create (or truncate) ``path`` as an all-hole file of ``size`` bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def place(src: Path, dst: Path, offset: int) -> None:
    """Copy ``src`` into ``dst`` at byte ``offset``, leaving all-zero chunks as holes."""
    zero = bytes(_CHUNK)
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        pos = 0
        while chunk := fin.read(_CHUNK):
            if chunk != zero[: len(chunk)]:
                fout.seek(offset + pos)
                fout.write(chunk)
            pos += len(chunk)


def _touch_tree(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        os.utime(p, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)


# ----------------------------------------------------------------------------- filesystems


def mkfs_ext(tree: Path, img: Path, size_mib: int, *, kind: str, uuid: str, label: str,
             options: Sequence[str] = ()) -> Path:
    """``mke2fs -t KIND -d TREE`` (ext2/ext3/ext4), fixed UUID, label and hash seed."""
    _touch_tree(tree)
    sparse_file(img, size_mib * MiB)
    run(["mke2fs", "-q", "-F", "-t", kind, "-U", uuid, *(["-L", label] if label else []),
         "-E", f"root_owner=0:0,hash_seed={uuid}", *options, "-d", tree, img])
    return img


def protofile(tree: Path) -> str:
    """An ``mkfs.xfs -p`` prototype for ``tree`` (regular files, directories, symlinks)."""
    lines = ["virtkit-zoo", "0 0", "d--755 0 0"]

    def walk(d: Path, depth: int) -> None:
        for p in sorted(d.iterdir(), key=lambda q: q.name):
            name = p.name
            if any(c.isspace() for c in name) or ":" in name or name == "$":
                raise ValueError(f"name {name!r} cannot be written in an XFS protofile")
            pad = " " * depth
            if p.is_symlink():
                target = os.readlink(p)
                if any(c.isspace() for c in target):
                    raise ValueError(f"symlink target {target!r} cannot be written in an XFS protofile")
                lines.append(f"{pad}{name} l--777 0 0 {target}")
            elif p.is_dir():
                lines.append(f"{pad}{name} d--{p.stat().st_mode & 0o777:03o} 0 0")
                walk(p, depth + 1)
                lines.append(f"{pad}$")
            else:
                lines.append(f"{pad}{name} ---{p.stat().st_mode & 0o777:03o} 0 0 {p}")

    walk(tree, 1)
    lines.append("$")
    return "\n".join(lines) + "\n"


def mkfs_xfs(tree: Path, img: Path, size_mib: int, *, uuid: str, label: str, options: Sequence[str] = ()) -> Path:
    """``mkfs.xfs -p PROTOFILE`` with a fixed UUID and label (times are mkfs's own)."""
    proto = img.with_suffix(".proto")
    proto.write_text(protofile(tree))
    sparse_file(img, size_mib * MiB)
    run(["mkfs.xfs", "-q", "-f", "-m", f"uuid={uuid}", *(["-L", label] if label else []), *options, "-p", proto, img])
    proto.unlink()
    return img


def mkfs_vfat(tree: Path, img: Path, size_mib: int, *, fat: int, volid: str, label: str,
              options: Sequence[str] = ()) -> Path:
    """``mkfs.vfat -F FAT -i VOLID`` then ``mcopy -s -m`` every top-level entry of ``tree``."""
    _touch_tree(tree)
    if img.exists():
        img.unlink()
    run(["mkfs.vfat", "--invariant", "-F", str(fat), "-i", volid, *(["-n", label] if label else []), *options, "-C", img, str(size_mib * 1024)])
    entries = sorted(tree.iterdir())
    if entries:
        run(["mcopy", "-s", "-m", "-i", img, *entries, "::/"])
    return img


def mkfs_swap(img: Path, size_mib: int, *, uuid: str, label: str = "") -> Path:
    sparse_file(img, size_mib * MiB)
    run(["mkswap", "-U", uuid, *(["-L", label] if label else []), img])
    return img


def mkfs_btrfs_subvols(img: Path, size_mib: int, *, uuid: str, label: str, populate: Callable[[Path], None],
                       work: Path) -> Path:
    """A btrfs made with ``mkfs.btrfs`` and populated on a loop mount by ``populate(mountpoint)``.

    ``populate`` runs ``btrfs subvolume ...`` and copies trees; see the module docstring for
    why this one mounts.
    """
    sparse_file(img, size_mib * MiB)
    run(["mkfs.btrfs", "-q", "-f", "-U", uuid, "-L", label, "-m", "single", "-d", "single", img])
    mnt = work / f"mnt-{img.stem}"
    with mounted(img, mnt):
        populate(mnt)
        run(["sync", "-f", mnt])
    mnt.rmdir()
    return img


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a SRC/. DST`` with the zoo's fixed times."""
    _touch_tree(src)
    dst.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", f"{src}/.", dst])


# ----------------------------------------------------------------------------- partition tables


@dataclass
class Partition:
    """One partition.

    Attributes:
        start_mib: first MiB (1 MiB aligned, as installers do).
        size_mib: size in MiB.
        type: sfdisk MBR type (``83``, ``8e``, ``5``) or sgdisk GPT code (``EF02``, ``EF00``, ``8300``, ``8E00``).
        content: a filesystem/PV image written into the partition, or None.
        name: GPT partition name.
        uuid: GPT unique partition GUID.
        bootable: the MBR active flag.
        logical: an MBR logical partition (inside the extended one).
        sectors: (start, size) in 512-byte sectors, overriding the MiB fields.
        number: GPT partition number (default: position in the list).
    """

    start_mib: int
    size_mib: int
    type: str
    content: Path | None = None
    name: str = ""
    uuid: str = ""
    bootable: bool = False
    logical: bool = False
    sectors: tuple[int, int] | None = None
    number: int | None = None

    @property
    def start(self) -> int:
        """First sector (``sectors`` overrides the MiB fields, e.g. for cylinder-aligned tables)."""
        return self.sectors[0] if self.sectors else self.start_mib * 2048

    @property
    def size(self) -> int:
        return self.sectors[1] if self.sectors else self.size_mib * 2048


def make_mbr(disk: Path, size_mib: int, parts: Sequence[Partition], *, label_id: str) -> Path:
    """A DOS partition table written by ``sfdisk``; logical partitions get an extended container."""
    sparse_file(disk, size_mib * MiB)
    lines = ["label: dos", f"label-id: {label_id}", "unit: sectors", ""]
    logical = [p for p in parts if p.logical]
    primary = [p for p in parts if not p.logical]
    for p in primary:
        lines.append(f"start={p.start}, size={p.size}, type={p.type}" + (", bootable" if p.bootable else ""))
    if logical:
        first = min(p.start for p in logical) - 2048  # the EBR of the first logical partition, 1 MiB before it
        last = max(p.start + p.size for p in logical)
        lines.append(f"start={first}, size={last - first}, type=5")
        for p in logical:
            lines.append(f"start={p.start}, size={p.size}, type={p.type}")
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk], input=("\n".join(lines) + "\n").encode())
    for p in parts:
        if p.content is not None:
            place(p.content, disk, p.start * 512)
    return disk


def make_gpt(disk: Path, size_mib: int, parts: Sequence[Partition], *, disk_guid: str) -> Path:
    """A GPT written by ``sgdisk`` (partition numbers in list order, names and GUIDs fixed)."""
    sparse_file(disk, size_mib * MiB)
    argv: list[str] = ["sgdisk", "-o", "-U", disk_guid]
    for i, p in enumerate(parts, 1):
        n = p.number or i
        argv += ["-n", f"{n}:{p.start}:{p.start + p.size - 1}", "-t", f"{n}:{p.type}"]
        if p.name:
            argv += ["-c", f"{n}:{p.name}"]
        if p.uuid:
            argv += ["-u", f"{n}:{p.uuid}"]
    run([*argv, str(disk)])
    for p in parts:
        if p.content is not None:
            place(p.content, disk, p.start * 512)
    return disk


# ----------------------------------------------------------------------------- LVM


@dataclass
class Lv:
    """A logical volume: name, size in MiB, and the filesystem image written into it (or None)."""

    name: str
    size_mib: int
    content: Path | None = None


def make_pv(pv: Path, size_mib: int, *, vg: str, lvs: Sequence[Lv], pv_uuid: str, work: Path,
            extent_mib: int = 4) -> Path:
    """An LVM2 physical volume file holding VG ``vg`` with ``lvs`` (linear), made by real LVM.

    ``pvcreate``/``vgcreate``/``lvcreate -an -Zn`` run on a loop device over ``pv``; each
    LV's content goes where ``lvs --segments`` says its extents are (root only).

    Raises:
        ToolError: an LVM command failed, or an LV was not given one linear segment.
    """
    sparse_file(pv, size_mib * MiB)
    env = lvm_env(work)
    with loop_device(pv) as dev:
        devs = [dev]
        lvm(["pvcreate", "-q", "-u", pv_uuid, "--norestorefile", dev], devices=devs, env=env)
        lvm(["vgcreate", "-q", "-s", f"{extent_mib}m", vg, dev], devices=devs, env=env)
        for lv in lvs:
            lvm(["lvcreate", "-q", "-an", "-Zn", "-L", f"{lv.size_mib}m", "-n", lv.name, vg], devices=devs, env=env)
        pe_start = int(lvm_json(["pvs", "--units", "b", "--nosuffix", "-o", "pe_start", dev],
                                devices=devs, env=env)["report"][0]["pv"][0]["pe_start"])  # type: ignore[index]
        segs = lvm_json(["lvs", "--segments", "-o", "lv_name,seg_pe_ranges", vg], devices=devs, env=env)
        ranges: dict[str, list[str]] = {}
        for row in segs["report"][0]["seg"]:  # type: ignore[index]
            ranges.setdefault(row["lv_name"], []).append(row["seg_pe_ranges"])
    for lv in lvs:
        if lv.content is None:
            continue
        rs = ranges.get(lv.name, [])
        if len(rs) != 1 or ":" not in rs[0]:
            raise ToolError(f"LV {vg}/{lv.name}: expected one linear segment, got {rs}")
        first_pe = int(rs[0].rsplit(":", 1)[1].split("-")[0])
        if lv.content.stat().st_size > lv.size_mib * MiB:
            raise ToolError(f"{lv.content} is larger than LV {vg}/{lv.name}")
        place(lv.content, pv, pe_start + first_pe * extent_mib * MiB)
    return pv


def qcow2(src: Path, dst: Path, *, compress: bool = False) -> Path:
    """``qemu-img convert -O qcow2`` (``-c``: deflate-compressed clusters)."""
    if dst.exists():
        dst.unlink()
    run(["qemu-img", "convert", "-O", "qcow2", *(["-c"] if compress else []), src, dst])
    return dst


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
