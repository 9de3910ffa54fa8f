"""Stage 5 of the boot pipeline: choosing from a BootMenu and showing it.

* :mod:`~virtkit.boot.menu.select` - ``--entry`` specs (index paths, title/id paths) and the
  boot target (the default, or the selection), refusing entries that are not bootable;
* :mod:`~virtkit.boot.menu.render` - the tree and the explanation as text, and the JSON form
  documented in ``docs/boot-json.md``.
"""

from __future__ import annotations

from virtkit.boot.menu.render import SCHEMA_VERSION, menu_to_json, render_explain, render_tree
from virtkit.boot.menu.select import (
    describe_choices,
    path_str,
    resolve_boot_target,
    resolve_selection,
    split_spec,
    why_not_bootable,
)

__all__ = [
    "SCHEMA_VERSION",
    "describe_choices",
    "menu_to_json",
    "path_str",
    "render_explain",
    "render_tree",
    "resolve_boot_target",
    "resolve_selection",
    "split_spec",
    "why_not_bootable",
]
