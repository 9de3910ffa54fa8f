"""The bytes to hand over for a chosen entry: the kernel, and the initrds as one ramdisk.

Runs where guest data is read (the worker).  Sizes are checked before a byte
is copied (``max_kernel_bytes``, ``max_initrd_bytes``), so a guest cannot make
dom0 write a 100 GB "initrd".

Several initrds (GRUB's ``initrd /intel-ucode.img /initramfs.img``, BLS
``initrd`` lines, extlinux ``INITRD a,b``) become one ramdisk, because Xen and
QEMU accept one: they are concatenated in order, each padded with zeros to a
4-byte boundary as GRUB does when it loads several initrds
(``grub-core/loader/linux.c``, ``ALIGN_UP(size, 4)``), and the kernel's
initramfs unpacker reads concatenated (compressed) cpio archives one after the
other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from virtkit._streams import ByteSource, iter_chunks
from virtkit.boot.config.model import BootEntry, FileRef
from virtkit.errors import FileNotFound, LimitExceeded, SelectionError, UnsupportedFeature
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["INITRD_ALIGN", "Payload", "StreamingFiles", "iter_payload_ramdisk", "open_payload", "open_ref"]

INITRD_ALIGN = 4  # grub-core/loader/linux.c: each initrd starts 4-byte aligned


class StreamingFiles(Protocol):
    """What extraction needs from the guest's files: a stream per (device, path)."""

    def open(self, device: str, path: str) -> ByteSource: ...


@dataclass(frozen=True)
class Payload:
    """Sources for the kernel and each initrd of one entry."""

    kernel: ByteSource
    kernel_ref: FileRef
    initrds: tuple[ByteSource, ...]
    initrd_refs: tuple[FileRef, ...]

    @property
    def ramdisk_size(self) -> int:
        return ramdisk_size([s.size for s in self.initrds])


def ramdisk_size(sizes: Sequence[int]) -> int:
    total = 0
    for i, n in enumerate(sizes):
        total += n
        if i < len(sizes) - 1:
            total += -n % INITRD_ALIGN
    return total


def open_ref(files: StreamingFiles, ref: FileRef, what: str) -> ByteSource:
    """Open a FileRef, with an error naming what it was for.

    Raises:
        FileNotFound: the reference has no device, or the file does not exist.
    """
    if ref.device is None:
        raise FileNotFound(f"{what} {ref.written or ref.path}: no device holds it (is $root set?)", path=ref.path)
    try:
        return files.open(ref.device, ref.path)
    except FileNotFound as exc:
        raise FileNotFound(f"{what} ({ref.device}){ref.path} does not exist in the guest: {exc}", path=ref.path) from None


def open_payload(files: StreamingFiles, entry: BootEntry, *, limits: Limits) -> Payload:
    """Open the kernel and initrds of ``entry`` and check their sizes.

    Raises:
        SelectionError: the entry does not load a Linux kernel.
        UnsupportedFeature: an initrd GRUB would wrap in a generated cpio (``newc:NAME:FILE``).
        FileNotFound: a file is missing.
        LimitExceeded: the kernel or the ramdisk is over its limit.
    """
    if not entry.bootable or entry.kernel is None:
        raise SelectionError(f"entry {entry.title_display!r} loads no Linux kernel ({entry.kind.value})")
    for r in entry.initrds:
        if r.written.startswith("newc:"):
            raise UnsupportedFeature(f"initrd {sanitize_text(r.written)}: GRUB wraps this file in a generated cpio "
                                     "member; virtkit does not build that ramdisk, so it will not hand over a different one")
    kernel = open_ref(files, entry.kernel, "kernel")
    limits.check("max_kernel_bytes", kernel.size, f"kernel {entry.kernel.display()}")
    initrds = tuple(open_ref(files, r, "initrd") for r in entry.initrds)
    total = ramdisk_size([s.size for s in initrds])
    if total > limits.max_initrd_bytes:
        shown = ", ".join(r.display() for r in entry.initrds)
        raise LimitExceeded("max_initrd_bytes", total, limits.max_initrd_bytes, f"initrd {shown}")
    return Payload(kernel, entry.kernel, initrds, entry.initrds)


def iter_payload_ramdisk(payload: Payload, *, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The concatenated, 4-byte-aligned ramdisk bytes."""
    last = len(payload.initrds) - 1
    for i, src in enumerate(payload.initrds):
        yield from iter_chunks(src, chunk=chunk)
        pad = -src.size % INITRD_ALIGN
        if pad and i < last:
            yield b"\0" * pad
