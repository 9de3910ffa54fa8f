"""The plain-data boot menu every configuration engine produces.

GRUB 2, GRUB legacy, extlinux, lilo and systemd-boot all end in the same
:class:`BootMenu`: a tree of :class:`BootEntry` and :class:`Submenu` items, the
default the guest's own boot loader would pick (as a path of indices into the
*real* tree) and an explanation trail saying why.  Later stages (selection,
the interactive menu, extraction, the pygrub output) only read this model.

Guest-controlled strings (titles, command lines, paths) are stored raw; the
``*_display`` helpers sanitise them for terminals.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from virtkit.boot.config.source import Location
from virtkit.sanitize import sanitize_text

__all__ = [
    "BootEntry",
    "BootMenu",
    "EntryKind",
    "FileRef",
    "MenuItem",
    "Submenu",
    "iter_entries",
]


class EntryKind(enum.Enum):
    """What booting an entry would do."""

    LINUX = "linux"  # linux/linux16/linuxefi (+ initrd): bootable as a PV/direct kernel
    XEN = "xen"  # multiboot(2)/module: a Xen hypervisor entry, not bootable as a guest kernel
    CHAINLOAD = "chainload"  # chainloader/ntldr/...: another boot loader
    OTHER = "other"  # kfreebsd, knetbsd, fwsetup, ...
    NONE = "none"  # the body loads nothing (or failed)


@dataclass(frozen=True)
class FileRef:
    """A file named by a configuration, resolved to a device.

    Attributes:
        device: GRUB device name the file is on ("hd0,msdos1"); None if it could not be
            resolved (e.g. ``$root`` unset and no filesystem holds it).
        path: absolute path on that device's filesystem.
        written: the text as the configuration wrote it ("($root)/vmlinuz-6.1").
    """

    device: str | None
    path: str
    written: str = ""

    def display(self) -> str:
        dev = f"({self.device})" if self.device else ""
        return sanitize_text(dev + self.path)

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "path": self.path, "written": self.written}


@dataclass(frozen=True)
class BootEntry:
    """A bootable (or recognised non-bootable) menu entry.

    Attributes:
        title: the title exactly as the boot loader shows it (raw guest text).
        id: GRUB ``--id`` / BLS file id / extlinux LABEL; None if the loader has none.
        kind: see EntryKind.
        kernel: the kernel to load (LINUX entries).
        initrds: initrd files in load order (concatenated by the loader).
        cmdline: the command line exactly as the kernel would receive it, apart from
            GRUB's ``BOOT_IMAGE=...`` prefix.
        classes: GRUB ``--class`` / BLS ``grub_class`` values.
        origin: where the entry was defined.
        body: the entry's script text (GRUB: the block; others: the lines), for editing.
        args: extra positional args of a GRUB menuentry (``$2``...).
        users: GRUB ``--users`` value, None if unrestricted.
        hotkey: GRUB ``--hotkey``.
        notes: human notes ("multiboot entry: boots the Xen hypervisor, not bootable as a
            PV guest").
    """

    title: str
    id: str | None = None
    kind: EntryKind = EntryKind.NONE
    kernel: FileRef | None = None
    initrds: tuple[FileRef, ...] = ()
    cmdline: str = ""
    classes: tuple[str, ...] = ()
    origin: Location | None = None
    body: str = ""
    args: tuple[str, ...] = ()
    users: str | None = None
    hotkey: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def bootable(self) -> bool:
        return self.kind is EntryKind.LINUX and self.kernel is not None

    @property
    def title_display(self) -> str:
        return sanitize_text(self.title)

    @property
    def cmdline_display(self) -> str:
        return sanitize_text(self.cmdline)


@dataclass(frozen=True)
class Submenu:
    """A GRUB submenu: a titled list of items, itself one item of its parent."""

    title: str
    items: tuple[MenuItem, ...]
    id: str | None = None
    classes: tuple[str, ...] = ()
    origin: Location | None = None
    notes: tuple[str, ...] = ()

    @property
    def title_display(self) -> str:
        return sanitize_text(self.title)


MenuItem = BootEntry | Submenu


@dataclass(frozen=True)
class BootMenu:
    """A whole boot menu, its default and how that default was chosen.

    Attributes:
        loader: "grub2", "grub-legacy", "extlinux", "lilo" or "systemd-boot".
        config: the configuration file that produced it (device + path).
        items: top-level items.
        default: index path of the default entry into ``items`` ((1, 2) = 3rd entry of
            the 2nd item); None when no entry exists or none can be chosen.
        default_trail: human explanation, one step per element ("`default` =
            `${saved_entry}`", "grubenv saved_entry = 'x'", "matched title of [1]").
        fallback: index paths to try when the default fails, in order.
        timeout: seconds before the default boots; None = wait forever; 0 = at once.
        timeout_style: "menu", "countdown" or "hidden" (GRUB); "menu" elsewhere.
        flavour: rule set used for defaults ("upstream" or "fedora" for GRUB 2).
        env: the environment block the loader would see (grubenv), for reporting.
        env_writes: what a real boot would have written (``next_entry`` cleared ...),
            never applied to the image.
        warnings: notes for the operator (unknown commands, errors GRUB would print).
        output: what GRUB's ``echo`` would have printed while running the config.
    """

    loader: str
    config: FileRef
    items: tuple[MenuItem, ...]
    default: tuple[int, ...] | None = None
    default_trail: tuple[str, ...] = ()
    fallback: tuple[tuple[int, ...], ...] = ()
    timeout: float | None = None
    timeout_style: str = "menu"
    flavour: str = ""
    env: dict[str, str] = field(default_factory=dict)
    env_writes: dict[str, str | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    output: tuple[str, ...] = ()

    def item_at(self, path: tuple[int, ...]) -> MenuItem:
        """The item at an index path.  Raises IndexError if the path is not in the tree."""
        items = self.items
        item: MenuItem | None = None
        for depth, i in enumerate(path):
            if i < 0 or i >= len(items):
                raise IndexError(path)
            item = items[i]
            if depth < len(path) - 1:
                if not isinstance(item, Submenu):
                    raise IndexError(path)
                items = item.items
        if item is None:
            raise IndexError(path)
        return item

    def default_entry(self) -> BootEntry | None:
        if self.default is None:
            return None
        try:
            item = self.item_at(self.default)
        except IndexError:
            return None
        return item if isinstance(item, BootEntry) else None


def iter_entries(items: tuple[MenuItem, ...], prefix: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], BootEntry]]:
    """Every BootEntry in tree order with its index path (submenus descended)."""
    for i, item in enumerate(items):
        path = (*prefix, i)
        if isinstance(item, Submenu):
            yield from iter_entries(item.items, path)
        else:
            yield path, item
