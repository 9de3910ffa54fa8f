"""Stage 4 of the boot pipeline: find the guest's boot-loader configuration and interpret it.

``find_boot_configs(files, limits=...)`` looks at every filesystem the guest has, in GRUB's
device order, for every configuration file a boot loader could use, and returns them as
:class:`ConfigCandidate` s, best first.  ``load_menu(files, candidate, ...)`` hands one to
its engine and returns the :class:`~virtkit.boot.config.model.BootMenu`.

Engines (a table, :data:`ENGINES`, not an if-chain):

============== ========================================= =====================================
loader         module                                    files
============== ========================================= =====================================
grub2          ``config/grub2`` (imported lazily)        grub.cfg
grub-legacy    :mod:`~virtkit.boot.config.grub_legacy`   menu.lst, grub.conf
extlinux       :mod:`~virtkit.boot.config.extlinux`      extlinux.conf, syslinux.cfg, isolinux.cfg
lilo           :mod:`~virtkit.boot.config.lilo`          lilo.conf
systemd-boot   :mod:`~virtkit.boot.config.sdboot`        /loader/loader.conf, /loader/entries
============== ========================================= =====================================

Where configurations are looked for, and which one wins, is documented in
:mod:`virtkit.boot.config.discovery`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtkit.boot.config.discovery import candidate_for, find_boot_configs, summarise_candidates
    from virtkit.boot.config.guest import (
        GuestMenu,
        check_options,
        discover_menu,
        evaluate_edited_entry,
        load_config_file,
        load_guest_menu,
        parse_config_spec,
    )
    from virtkit.boot.config.registry import (
        ENGINES,
        FLAVOURS,
        PLATFORMS,
        ConfigCandidate,
        ConfigEngine,
        LoadRequest,
        MenuOptions,
        engine_for,
        load_menu,
    )

# name -> submodule.  Exported lazily (PEP 562): importing ``virtkit.boot.config.model`` (as the
# parent process does to validate the worker's menu) must not load every engine.
_EXPORTS = {
    **dict.fromkeys(("candidate_for", "find_boot_configs", "summarise_candidates"), "discovery"),
    **dict.fromkeys(("GuestMenu", "check_options", "discover_menu", "evaluate_edited_entry", "load_config_file",
                     "load_guest_menu", "parse_config_spec"), "guest"),
    **dict.fromkeys(("ENGINES", "FLAVOURS", "PLATFORMS", "ConfigCandidate", "ConfigEngine", "LoadRequest",
                     "MenuOptions", "engine_for", "load_menu"), "registry"),
}

__all__ = [
    "ENGINES",
    "FLAVOURS",
    "PLATFORMS",
    "ConfigCandidate",
    "ConfigEngine",
    "GuestMenu",
    "LoadRequest",
    "MenuOptions",
    "candidate_for",
    "check_options",
    "discover_menu",
    "engine_for",
    "evaluate_edited_entry",
    "find_boot_configs",
    "load_config_file",
    "load_guest_menu",
    "load_menu",
    "parse_config_spec",
    "summarise_candidates",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'virtkit.boot.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"virtkit.boot.config.{module}"), name)
    globals()[name] = value
    return value
