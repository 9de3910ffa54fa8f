"""Choosing and loading a guest's configuration: the functions re-exported by ``virtkit.boot.config``."""


from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from virtkit.boot.config._support import find_device
from virtkit.boot.config.discovery import candidate_for, find_boot_configs
from virtkit.boot.config.model import BootEntry, BootMenu
from virtkit.boot.config.registry import (
    FLAVOURS,
    PLATFORMS,
    ConfigCandidate,
    MenuOptions,
    engine_for,
    load_menu,
)
from virtkit.boot.config.source import BootFiles, MemoryFiles, normalise_path
from virtkit.errors import (
    ConfigError,
    FileNotFound,
    IsADirectory,
    LimitExceeded,
    NotADirectory,
    PathError,
    SelectionError,
    UsageError,
)
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "GuestMenu",
    "check_options",
    "discover_menu",
    "evaluate_edited_entry",
    "load_config_file",
    "load_guest_menu",
    "parse_config_spec",
]



@dataclass(frozen=True)
class GuestMenu:
    """The menu a guest boots from, the configuration it came from, and every one found."""

    menu: BootMenu
    used: ConfigCandidate
    candidates: tuple[ConfigCandidate, ...]


def check_options(options: MenuOptions) -> None:
    """Raises UsageError for an unknown platform or flavour."""
    if options.platform is not None and options.platform not in PLATFORMS:
        raise UsageError(f"--platform {sanitize_text(options.platform)}: expected one of {', '.join(PLATFORMS)}")
    if options.flavour is not None and options.flavour not in FLAVOURS:
        raise UsageError(f"--flavour {sanitize_text(options.flavour)}: expected one of {', '.join(FLAVOURS)}")


def parse_config_spec(files: BootFiles, spec: str) -> tuple[str, str]:
    """``--config`` value -> (device, path).

    Accepts ``DEVICE:PATH`` (``hd0,msdos1:/grub/menu.lst``), GRUB's ``(DEVICE)/PATH``, or a
    bare ``PATH`` (the first device, in GRUB order, that has it).

    Raises:
        UsageError: an unknown device, or a bare path no device has.
    """
    devices = files.devices()
    names = ", ".join(d.name for d in devices) or "none"
    if spec.startswith("("):
        close = spec.find(")")
        if close > 0:
            dev, path = spec[1:close], spec[close + 1 :] or "/"
            info = find_device(files, dev)
            if info is None:
                raise UsageError(f"--config {sanitize_text(spec)}: no device ({sanitize_text(dev)}); devices: {names}")
            return info.name, normalise_path(path)
    if ":" in spec:
        dev, _sep, path = spec.rpartition(":")
        info = find_device(files, dev)
        if info is not None:
            return info.name, normalise_path(path)
        if not spec.startswith("/"):
            raise UsageError(f"--config {sanitize_text(spec)}: no device {sanitize_text(dev)!r}; devices: {names}")
    path = normalise_path(spec)
    for info in devices:
        try:
            if files.stat(info.name, path) is not None:
                return info.name, path
        except PathError:
            continue
    raise UsageError(f"--config {sanitize_text(spec)}: no device has {sanitize_text(path)} (devices: {names})")


def discover_menu(files: BootFiles, *, limits: Limits, options: MenuOptions | None = None,
                  config: str | None = None) -> GuestMenu:
    """Find the guest's configurations, pick the preferred one and interpret it.

    When the preferred configuration cannot be used (a configuration error, a missing file)
    or yields no entries at all, the next candidate is tried, and the menu says so in its
    warnings; a broken limit always stops (hostile input must not be papered over).

    Args:
        files: the guest's files.
        limits: bounds.
        options: platform, flavour, GRUB variables.
        config: ``--config`` (see :func:`parse_config_spec`); only that file is used.

    Returns:
        the menu, the candidate used and all candidates found.

    Raises:
        ConfigError: no configuration found, or none usable.
        UsageError: bad ``--config``, ``--platform`` or ``--flavour``.
        LimitExceeded: a bound was broken.
    """
    opts = options or MenuOptions()
    check_options(opts)
    if config is not None:
        device, path = parse_config_spec(files, config)
        cand = candidate_for(files, device, path, limits=limits)
        return GuestMenu(load_menu(files, cand, limits=limits, options=opts), cand, (cand,))
    candidates = tuple(find_boot_configs(files, limits=limits, platform=opts.platform))
    if not candidates:
        if not files.devices():
            raise ConfigError("the guest has no readable filesystem, so no boot-loader configuration")
        devs = ", ".join(f"({d.name}) {d.fs_type or '?'}" for d in files.devices())
        raise ConfigError(f"no boot-loader configuration found on the guest's filesystems ({devs}); looked for "
                          "grub.cfg, menu.lst/grub.conf, extlinux.conf/syslinux.cfg/isolinux.cfg, /etc/lilo.conf, "
                          "/loader (systemd-boot) and /EFI/*/grub.cfg")
    skipped: list[str] = []
    empty: list[tuple[BootMenu, ConfigCandidate, str]] = []
    first_error: Exception | None = None
    for cand in candidates:
        try:
            menu = load_menu(files, cand, limits=limits, options=opts)
        except LimitExceeded:
            raise
        except (ConfigError, FileNotFound, IsADirectory, NotADirectory) as exc:
            first_error = first_error or exc
            skipped.append(f"{cand.display} ({cand.loader}) could not be used: {exc}")
            continue
        if menu.items:
            notes = [*skipped, *(note for _m, _c, note in empty)]
            if notes:
                menu = dataclasses.replace(menu, warnings=(*notes, *menu.warnings))
            return GuestMenu(menu, cand, candidates)
        empty.append((menu, cand, f"{cand.display} ({cand.loader}) has no menu entries; tried the next configuration"))
    if empty:
        menu, cand, _note = empty[0]
        notes = [*skipped, *(note for _m, _c, note in empty[1:])]
        return GuestMenu(dataclasses.replace(menu, warnings=(*notes, *menu.warnings)), cand, candidates)
    assert first_error is not None
    raise first_error


def load_guest_menu(files: BootFiles, *, limits: Limits, config: str | None = None, platform: str | None = None,
                    flavour: str | None = None, variables: Mapping[str, str] | None = None) -> BootMenu:
    """The boot menu of a guest, as its own boot loader would build it (see :func:`discover_menu`).

    Raises:
        ConfigError, UsageError, LimitExceeded: as :func:`discover_menu`.
    """
    opts = MenuOptions(platform=platform, flavour=flavour, variables=dict(variables or {}))
    return discover_menu(files, limits=limits, options=opts, config=config).menu


def load_config_file(path: str, data: bytes, *, limits: Limits, platform: str | None = None,
                     flavour: str | None = None) -> BootMenu:
    """Interpret a configuration file given as bytes (pygrub's ``--isconfig``).

    The file is seen as ``PATH`` on a device named ``host``; files it refers to do not exist.

    Raises:
        ConfigError: the content is no configuration language we know.
        LimitExceeded: ``data`` is larger than ``max_config_bytes``.
    """
    limits.check("max_config_bytes", len(data), path)
    p = normalise_path(path)
    files = MemoryFiles({"host": {p: data}})
    opts = MenuOptions(platform=platform, flavour=flavour)
    check_options(opts)
    cand = candidate_for(files, "host", p, limits=limits)
    return load_menu(files, cand, limits=limits, options=opts)


def evaluate_edited_entry(files: BootFiles, menu: BootMenu, path: tuple[int, ...], body: str, *,
                          limits: Limits) -> BootEntry:
    """Re-run an entry whose body the operator edited in the interactive menu.

    ``body`` is what :attr:`BootEntry.body` held, edited: GRUB's script block, GRUB legacy's
    command lines, syslinux's command line, a lilo section, a BLS entry's text.

    Raises:
        SelectionError: ``path`` is not an entry of ``menu``.
        ConfigError: the edited text cannot be used.
        LimitExceeded: a bound was broken.
    """
    try:
        item = menu.item_at(path)
    except IndexError:
        raise SelectionError(f"no menu entry at {'>'.join(map(str, path))}") from None
    if not isinstance(item, BootEntry):
        raise SelectionError(f"'{item.title_display}' is a submenu, not an entry")
    limits.check("max_config_bytes", len(body.encode("utf-8", "surrogateescape")), "edited entry")
    return engine_for(menu.loader).evaluate(files, menu, path, body, limits)
