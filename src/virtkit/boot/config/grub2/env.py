"""GRUB 2 variables and contexts.

References:
    grub-core/kern/env.c (GRUB 2.06): ``grub_env_set``/``grub_env_unset``/``grub_env_export``;
    unsetting a variable that has a hook sets it to "" instead.
    grub-core/normal/context.c: a new context (``configfile``, a submenu) starts with
    copies of the *exported* variables only, with their hooks; each context has
    its own menu.
    grub-core/kern/main.c ``grub_env_write_root``: writing ``root`` strips one pair of
    surrounding parentheses.

A :class:`Context` is a plain dict of :class:`Variable` plus the menu being built
in it.  Copies are cheap (one dict copy), which is how every menu entry gets its
own snapshot of the variables it runs with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["HOOKED", "Context", "MenuItemDef", "Variable"]

# Variables GRUB registers a write/read hook for (kern/main.c, normal/main.c,
# gettext): unset sets them to "" instead of deleting them.
HOOKED = frozenset(
    {"root", "prefix", "pager", "color_normal", "color_highlight", "lang", "locale_dir", "secondary_locale_dir"}
)


@dataclass(slots=True)
class Variable:
    """One variable: its value, whether it is exported, whether GRUB hooks it."""

    value: str
    exported: bool = False
    hooked: bool = False


@dataclass(slots=True)
class MenuItemDef:
    """A menu item as ``menuentry``/``submenu`` (or ``blscfg``) recorded it.

    Attributes:
        title: first positional argument.
        id: ``--id`` or the title.
        args: all positional arguments (title first), what ``$1...`` are in the body.
        classes: ``--class`` values.
        users: ``--users`` value; None for ``--unrestricted``; "" for restricted-without-users.
        hotkey: ``--hotkey`` value as written.
        source: the body GRUB stores: ``setparams 'TITLE' ...`` line + raw block text.
        submenu: True for ``submenu``.
        origin: Location of the defining command.
        body_line: the line the body text starts on (0: the origin's line).
        raw_body: the block text alone (for the editor and BootEntry.body).
        bls_id: the BLS file id when blscfg made it.
        body_block: the parsed block (its ``groups`` are the body as GRUB's units; None:
            parse ``source``).
        body_script: the ScriptText those statements' offsets point into.
    """

    title: str
    id: str
    args: tuple[str, ...]
    classes: tuple[str, ...]
    users: str | None
    hotkey: str | None
    source: str
    submenu: bool
    origin: Any = None
    body_line: int = 0
    raw_body: str = ""
    bls_id: str | None = None
    body_block: Any = None
    body_script: Any = None


@dataclass(slots=True)
class Context:
    """A variable context and the menu that belongs to it."""

    vars: dict[str, Variable] = field(default_factory=dict)
    menu: list[MenuItemDef] | None = None

    def get(self, name: str) -> str | None:
        var = self.vars.get(name)
        return None if var is None else var.value

    def set(self, name: str, value: str) -> None:
        """``grub_env_set``: create (not exported) or overwrite, applying the root hook."""
        var = self.vars.get(name)
        if var is not None and var.hooked and name == "root" and len(value) >= 2 and value[0] == "(" and value[-1] == ")":
            value = value[1:-1]
        if var is None:
            self.vars[name] = Variable(value, False, name in HOOKED)
        else:
            var.value = value

    def unset(self, name: str) -> None:
        """``grub_env_unset``: hooked variables become "" instead of disappearing."""
        var = self.vars.get(name)
        if var is None:
            return
        if var.hooked:
            var.value = ""
            return
        del self.vars[name]

    def export(self, name: str) -> None:
        """``grub_env_export``: exporting an unset name creates it empty."""
        var = self.vars.get(name)
        if var is None:
            self.vars[name] = Variable("", True, name in HOOKED)
        else:
            var.exported = True

    def new_child(self, *, export_all: bool = False) -> Context:
        """A new context: copies of the exported variables (all of them with ``export_all``, as
        ``grub_env_new_context`` does for extract_entries_source), with their hooks; no menu yet."""
        return Context({k: Variable(v.value, True, v.hooked) for k, v in self.vars.items() if v.exported or export_all},
                       None)

    def copy(self) -> Context:
        """An independent copy of the variables (same menu list object)."""
        return Context({k: Variable(v.value, v.exported, v.hooked) for k, v in self.vars.items()}, self.menu)

    def values(self) -> dict[str, str]:
        return {k: v.value for k, v in self.vars.items()}
