"""A boot session: one guest, its boot menu, and the files of a chosen entry.

This is wiring (like ``pipeline.py``): it joins the config, menu and extract
stages for one opened :class:`~virtkit.boot.pipeline.Guest`.  It runs where
guest data is parsed - inside the deprivileged worker - and is what the
worker's request handlers call.
"""

from __future__ import annotations

import shlex
from functools import cached_property

from virtkit.boot.bootfiles import FilesystemBootFiles
from virtkit.boot.config import GuestMenu, MenuOptions, discover_menu, evaluate_edited_entry
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef
from virtkit.boot.config.source import normalise_path
from virtkit.boot.extract.payload import Payload, open_payload
from virtkit.boot.options import BootOptions
from virtkit.boot.pipeline import Guest
from virtkit.errors import FileNotFound, SelectionError, VirtkitError
from virtkit.sanitize import sanitize_text

__all__ = ["BootOptions", "BootSession"]


class BootSession:
    """The boot menu of one guest and the files of its entries."""

    def __init__(self, guest: Guest, options: BootOptions | None = None) -> None:
        self.guest = guest
        self.options = options or BootOptions()
        self.limits = guest.limits

    @cached_property
    def files(self) -> FilesystemBootFiles:
        return self.guest.boot_files()

    @cached_property
    def guest_menu(self) -> GuestMenu:
        """The guest's boot menu as its own boot loader would build it, with every
        configuration found and the one used.

        Raises:
            ConfigError, ImageError, UsageError, LimitExceeded: no usable configuration.
        """
        o = self.options
        opts = MenuOptions(platform=o.platform, flavour=o.flavour, variables=dict(o.variables))
        return discover_menu(self.files, limits=self.limits, options=opts, config=o.config)

    @property
    def menu(self) -> BootMenu:
        return self.guest_menu.menu

    def entry(self, path: tuple[int, ...], body: str | None = None) -> BootEntry:
        """The entry at ``path``; with ``body``, that entry re-evaluated with edited commands.

        Raises:
            SelectionError: the path is not an entry of the menu.
        """
        try:
            item = self.menu.item_at(path)
        except IndexError:
            raise SelectionError(f"no menu entry at {'>'.join(map(str, path))}") from None
        if not isinstance(item, BootEntry):
            raise SelectionError(f"{item.title_display!r} is a submenu, not an entry")
        if body is None:
            return item
        return evaluate_edited_entry(self.files, self.menu, path, body, limits=self.limits)

    def payload(self, entry: BootEntry) -> Payload:
        return open_payload(self.files, entry, limits=self.limits)

    def entry_for_paths(self, kernel: str, ramdisk: str | None, args: str) -> BootEntry:
        """An entry for pygrub's ``--kernel``/``--ramdisk`` (no configuration read).

        ``PATH`` may be ``(DEVICE)/path``; otherwise the first filesystem that has the
        kernel is used (pygrub: the first that opens at all), and the ramdisk is looked
        for on the same filesystem.

        Raises:
            FileNotFound: no filesystem holds the kernel.
        """
        kdev, kpath = _split_device(kernel)
        if kdev is None:
            for info in self.files.devices():
                st = self.files.stat(info.name, kpath)
                if st is not None and not st.is_dir:
                    kdev = info.name
                    break
            else:
                raise FileNotFound(f"kernel {sanitize_text(kernel)} is on none of the guest's filesystems", path=kernel)
        initrds: tuple[FileRef, ...] = ()
        if ramdisk:
            rdev, rpath = _split_device(ramdisk)
            initrds = (FileRef(rdev or kdev, rpath, ramdisk),)
        return BootEntry(
            title=f"--kernel={kernel}",
            kind=EntryKind.LINUX,
            kernel=FileRef(kdev, kpath, kernel),
            initrds=initrds,
            cmdline=args,
        )

    def command(self, line: str) -> list[str]:
        """The interactive menu's command line: ``ls [PATH]``, ``cat PATH``, ``set``, ``help``."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            return [f"error: {exc}"]
        if not words:
            return []
        cmd, args = words[0], words[1:]
        try:
            if cmd == "ls":
                return self._ls(args[0] if args else "")
            if cmd == "cat" and args:
                return self._cat(args[0])
            if cmd == "set":
                return [sanitize_text(f"{k}={v}") for k, v in sorted(self.menu.env.items())] or ["(no environment)"]
            if cmd == "help":
                return ["ls [(DEVICE)][PATH]   list devices or a directory", "cat (DEVICE)PATH     show a text file", "set [NAME=VALUE]     show the environment block; set a variable for the entry booted", "boot                 boot the default entry"]
        except VirtkitError as exc:
            return [f"error: {sanitize_text(str(exc))}"]
        return [f"error: can't find command `{sanitize_text(cmd)}'."]

    def _ls(self, spec: str) -> list[str]:
        if not spec:
            out = []
            for info in self.files.devices():
                label = f" label {info.label!r}" if info.label else ""
                out.append(sanitize_text(f"({info.name}) {info.fs_type or '?'} uuid {info.uuid or '-'}{label}"))
            return out
        dev, path = _split_device(spec)
        devices = [dev] if dev else [d.name for d in self.files.devices()[:1]]
        out = []
        for d in devices:
            for name, is_dir in self.files.listdir(d, path):
                out.append(sanitize_text(name + ("/" if is_dir else "")))
        return out[:1000]

    def _cat(self, spec: str) -> list[str]:
        dev, path = _split_device(spec)
        if dev is None:
            dev = self.files.devices()[0].name
        data = self.files.read(dev, path, limit=256 * 1024)
        return [sanitize_text(line) for line in data.decode("utf-8", "surrogateescape").split("\n")[:2000]]


def _split_device(spec: str) -> tuple[str | None, str]:
    """``(hd0,msdos1)/boot/x`` -> ("hd0,msdos1", "/boot/x"); ``/x`` -> (None, "/x")."""
    if spec.startswith("("):
        end = spec.find(")")
        if end > 0:
            return spec[1:end], normalise_path(spec[end + 1 :])
    return None, normalise_path(spec)
