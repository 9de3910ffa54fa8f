"""The engine table: one entry per configuration language, and how a candidate is loaded.

Engines are looked up in :data:`ENGINES` by their ``loader`` name (a table, not an if-chain);
each has a loader, a content probe, the file names it owns and an evaluator for edited entries.
The GRUB 2 interpreter is imported lazily (it is large, and other engines do not need it).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from virtkit.boot.config.model import BootEntry, BootMenu
from virtkit.boot.config.source import BootFiles
from virtkit.errors import ConfigError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "ENGINES",
    "FLAVOURS",
    "PLATFORMS",
    "ConfigCandidate",
    "ConfigEngine",
    "LoadRequest",
    "MenuOptions",
    "engine_for",
    "load_menu",
]

log = logging.getLogger(__name__)


PLATFORMS = ("pc", "xen", "efi")
FLAVOURS = ("upstream", "fedora")


@dataclass(frozen=True)
class ConfigCandidate:
    """One configuration a boot loader could use.

    Attributes:
        loader: "grub2", "grub-legacy", "extlinux", "lilo" or "systemd-boot".
        device: GRUB device name of the filesystem holding it.
        path: absolute path there ("/loader/entries" names the systemd-boot directory).
        why: one line saying what it is and why it ranks where it does.
        rank: preference (lower first), see the module docstring.
        platform: "efi" when the file sits on an EFI system partition, else None.
        stub: an EFI stub that only hands over to another grub.cfg.
    """

    loader: str
    device: str
    path: str
    why: str
    rank: int = 0
    platform: str | None = None
    stub: bool = False

    @property
    def display(self) -> str:
        return sanitize_text(f"({self.device}){self.path}")


@dataclass(frozen=True)
class MenuOptions:
    """Operator choices that change how a configuration is interpreted.

    Attributes:
        platform: "pc", "xen" or "efi" (GRUB's ``grub_platform``; also the discovery preference).
        flavour: GRUB 2 default rules, "upstream" or "fedora" (None: decided by the config).
        variables: GRUB variables to set before the config runs (``--set VAR=VALUE``).
    """

    platform: str | None = None
    flavour: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadRequest:
    """Everything an engine gets: where the configuration is and how to read it."""

    files: BootFiles
    device: str | None
    path: str
    limits: Limits
    options: MenuOptions
    candidate: ConfigCandidate | None = None


Loader = Callable[[LoadRequest], BootMenu]


Evaluator = Callable[[BootFiles, BootMenu, tuple[int, ...], str, Limits], BootEntry]


@dataclass(frozen=True)
class ConfigEngine:
    """A configuration language: how to load it, recognise it, and re-run an edited entry."""

    loader: str
    load: Loader
    probe: Callable[[str], int]
    basenames: tuple[str, ...]
    evaluate: Evaluator


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported on first call: an engine's module is loaded only when a
    configuration of its kind is met (start-up time of every run)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = name
    return call


_LEGACY = "virtkit.boot.config.grub_legacy"
_EXTLINUX = "virtkit.boot.config.extlinux"
_EXTLINUX_BOOT = "virtkit.boot.config.extlinux_boot"
_LILO = "virtkit.boot.config.lilo"
_SDBOOT = "virtkit.boot.config.sdboot"


def _simple(fn: Callable[..., BootMenu]) -> Loader:
    def load(req: LoadRequest) -> BootMenu:
        return fn(req.files, req.device, req.path, limits=req.limits)

    return load


def _simple_eval(fn: Callable[..., BootEntry]) -> Evaluator:
    def evaluate(files: BootFiles, menu: BootMenu, path: tuple[int, ...], body: str, limits: Limits) -> BootEntry:
        item = menu.item_at(path)
        assert isinstance(item, BootEntry)
        return fn(files, menu, item, body, limits=limits)

    return evaluate


def _eval_grub2(files: BootFiles, menu: BootMenu, path: tuple[int, ...], body: str, limits: Limits) -> BootEntry:
    from virtkit.boot.config.grub2 import evaluate_entry_body

    return evaluate_entry_body(files, menu, path, body, limits=limits)


def _load_grub2(req: LoadRequest) -> BootMenu:
    from virtkit.boot.config._support import find_device
    from virtkit.boot.config.grub2 import Grub2Options, load_grub2_menu

    options, cand = req.options, req.candidate
    platform = options.platform or (cand.platform if cand is not None else None) or "pc"
    path, relative = req.path, None
    # A grub.cfg inside a btrfs default subvolume other than the top level is an openSUSE-style
    # install: its core image reads $prefix relative to the default subvolume (grub2-install
    # embeds ``btrfs_relative_path`` and a subvolume-relative prefix), so run it that way.
    info = find_device(req.files, req.device) if req.device is not None else None
    sub = "/" + info.default_subvolume.strip("/") if info is not None and info.default_subvolume.strip("/") else ""
    if info is not None and info.fs_type == "btrfs" and sub and path.startswith(sub + "/"):
        path, relative = path[len(sub):], True
    grub_options = Grub2Options(platform=platform, flavour=options.flavour or "auto",
                                variables=dict(options.variables), btrfs_relative_path=relative)
    return load_grub2_menu(req.files, req.device, path, limits=req.limits, options=grub_options)


def _probe_grub2(text: str) -> int:
    head = text[:65536]
    score = 0
    for word, weight in (("menuentry", 50), ("submenu", 30), ("blscfg", 50), ("insmod", 20), ("search ", 20),
                         ("configfile", 20), ("set root=", 20), ("linux16 ", 20)):
        if word in head:
            score += weight
    return min(score, 100)


ENGINES: tuple[ConfigEngine, ...] = (
    ConfigEngine("grub2", _load_grub2, _probe_grub2, ("grub.cfg",), _eval_grub2),
    ConfigEngine("grub-legacy", _simple(_lazy(_LEGACY, "load_grub_legacy_menu")), _lazy(_LEGACY, "probe_grub_legacy"),
                 ("menu.lst", "grub.conf"), _simple_eval(_lazy(_LEGACY, "evaluate_grub_legacy_body"))),
    ConfigEngine("extlinux", _simple(_lazy(_EXTLINUX, "load_extlinux_menu")), _lazy(_EXTLINUX, "probe_extlinux"),
                 ("extlinux.conf", "syslinux.cfg", "isolinux.cfg", "pxelinux.cfg"),
                 _simple_eval(_lazy(_EXTLINUX_BOOT, "evaluate_extlinux_body"))),
    ConfigEngine("lilo", _simple(_lazy(_LILO, "load_lilo_menu")), _lazy(_LILO, "probe_lilo"), ("lilo.conf",),
                 _simple_eval(_lazy(_LILO, "evaluate_lilo_body"))),
    ConfigEngine("systemd-boot", _simple(_lazy(_SDBOOT, "load_sdboot_menu")), _lazy(_SDBOOT, "probe_sdboot"),
                 ("loader.conf", "entries"), _simple_eval(_lazy(_SDBOOT, "evaluate_sdboot_body"))),
)


def engine_for(loader: str) -> ConfigEngine:
    for e in ENGINES:
        if e.loader == loader:
            return e
    raise ConfigError(f"unknown boot loader {sanitize_text(loader)!r}; known: {', '.join(e.loader for e in ENGINES)}")


def load_menu(files: BootFiles, candidate: ConfigCandidate, *, limits: Limits,
              options: MenuOptions | None = None) -> BootMenu:
    """Interpret one configuration with its engine.

    Args:
        files: the guest's files.
        candidate: from :func:`find_boot_configs` or :func:`candidate_for`.
        limits: bounds for the engine.
        options: platform, GRUB flavour and variable overrides.

    Returns:
        the boot menu with its default and explanation trail.

    Raises:
        ConfigError: the configuration is unusable (syntax, include loops, no interpreter).
        FileNotFound: the configuration vanished.
        LimitExceeded: a bound was broken.
    """
    engine = engine_for(candidate.loader)
    opts = options or MenuOptions()
    log.debug("loading %r with %s", candidate.display, engine.loader)
    return engine.load(LoadRequest(files, candidate.device, candidate.path, limits, opts, candidate))
