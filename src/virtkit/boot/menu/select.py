"""Stage 5: choosing an entry of a BootMenu - ``--entry`` specs and the boot target.

``--entry SPEC`` forms, tried in this order:

1. **An index path** into the *real* tree (not a flattened list): ``2`` is the third
   top-level item, ``1>2`` the third item of the second item (which must be a submenu).
2. **A title/id path**: each ``>``-separated component names an item at its level by its
   **id** first (GRUB ``--id``, BLS file id, extlinux LABEL, lilo label), then by its
   **title**, exactly (case matters).  ``>>`` stands for a literal ``>`` in a title, as in
   GRUB's ``default``.  Components may mix forms: ``Advanced options for Debian>2``.
3. **A bare title or id anywhere in the tree**, when the path form finds nothing - so the
   leaf title pygrub users pass (pygrub flattened submenus) still works.

Ambiguity rules:

* a component made only of digits is an index if the level has that many items; otherwise
  it is matched as an id/title (a title "2019" at a level of three items);
* at one level, the first item whose id matches wins, else the first whose title matches
  (GRUB's own first-match rule; duplicate titles are legal);
* in form 3, a title or id that occurs more than once in the tree is refused with
  :class:`~virtkit.errors.SelectionError` listing every match - there is no silent choice.

No match raises SelectionError listing the choices (sanitised).  Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Iterator

from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, MenuItem, Submenu
from virtkit.errors import SelectionError
from virtkit.sanitize import sanitize_text

__all__ = [
    "describe_choices",
    "path_str",
    "resolve_boot_target",
    "resolve_selection",
    "split_spec",
    "why_not_bootable",
]

MAX_LISTED = 40  # choices shown in an error message


def path_str(path: tuple[int, ...]) -> str:
    """``(1, 2)`` -> ``"1>2"``."""
    return ">".join(str(i) for i in path)


def split_spec(spec: str) -> list[str]:
    """Split at single ``>``; ``>>`` is a literal ``>`` (GRUB's ``default`` path rule)."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c == ">":
            if i + 1 < len(spec) and spec[i + 1] == ">":
                cur.append(">")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _iter_items(items: tuple[MenuItem, ...], prefix: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...],
                                                                                          MenuItem]]:
    for i, item in enumerate(items):
        path = (*prefix, i)
        yield path, item
        if isinstance(item, Submenu):
            yield from _iter_items(item.items, path)


def _label(item: MenuItem) -> str:
    kind = "submenu" if isinstance(item, Submenu) else item.kind.value
    ident = f"  (id {sanitize_text(item.id)})" if item.id and item.id != item.title else ""
    return f"'{item.title_display}'{ident} [{kind}]"


def describe_choices(menu: BootMenu, *, bootable_only: bool = False, limit: int = MAX_LISTED) -> str:
    """The menu's items as ``[path] 'title' [kind]``, comma-separated on one line (errors are one line)."""
    parts: list[str] = []
    total = 0
    for path, item in _iter_items(menu.items):
        if bootable_only and not (isinstance(item, BootEntry) and item.bootable):
            continue
        total += 1
        if len(parts) < limit:
            parts.append(f"[{path_str(path)}] {_label(item)}")
    if total > limit:
        parts.append(f"... and {total - limit} more")
    return ", ".join(parts) if parts else "(none)"


def _match_level(items: tuple[MenuItem, ...], comp: str) -> int | None:
    if comp.isascii() and comp.isdigit():
        idx = int(comp)
        if idx < len(items):
            return idx
    for i, item in enumerate(items):
        if item.id is not None and item.id == comp:
            return i
    for i, item in enumerate(items):
        if item.title == comp:
            return i
    return None


def _walk(menu: BootMenu, parts: list[str]) -> tuple[tuple[int, ...] | None, str]:
    items = menu.items
    path: tuple[int, ...] = ()
    for depth, comp in enumerate(parts):
        idx = _match_level(items, comp)
        where = "the top level" if not path else f"submenu [{path_str(path)}]"
        if idx is None:
            if comp.isascii() and comp.isdigit():
                return None, f"{where} has {len(items)} item(s), no index {comp}"
            return None, f"nothing at {where} has the id or title '{sanitize_text(comp)}'"
        path = (*path, idx)
        item = items[idx]
        if depth < len(parts) - 1:
            if not isinstance(item, Submenu):
                return None, f"[{path_str(path)}] {_label(item)} is an entry, not a submenu"
            items = item.items
    return path, ""


def resolve_selection(menu: BootMenu, spec: str) -> tuple[int, ...]:
    """Resolve an ``--entry`` SPEC to an index path into ``menu`` (rules in the module docstring).

    Args:
        menu: the menu.
        spec: "2", "1>2", a title, an id, or a ``>`` path of titles/ids/indices.

    Returns:
        the index path of the item (an entry or a submenu).

    Raises:
        SelectionError: nothing matches, or a bare title/id matches several items.
    """
    if not spec:
        raise SelectionError("--entry: empty selection; choose one of: " + describe_choices(menu))
    parts = split_spec(spec)
    path, why = _walk(menu, parts)
    if path is not None:
        return path
    whole = spec.replace(">>", ">") if len(parts) > 1 else spec
    matches = [p for p, item in _iter_items(menu.items) if item.title == whole or (item.id is not None
                                                                                   and item.id == whole)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"[{path_str(p)}] {_label(menu.item_at(p))}" for p in matches[:MAX_LISTED])
        raise SelectionError(f"--entry '{sanitize_text(spec)}' is ambiguous: it names {len(matches)} items; "
                             f"use an index path instead: {listed}")
    raise SelectionError(f"--entry '{sanitize_text(spec)}' matches nothing: {why}; choose one of: "
                         + describe_choices(menu))


def why_not_bootable(item: MenuItem) -> str | None:
    """Why an item cannot be booted as a PV/direct kernel, or None if it can."""
    if isinstance(item, Submenu):
        return "it is a submenu; choose an entry inside it"
    if item.bootable:
        return None
    first_note = sanitize_text(item.notes[0]) if item.notes else ""
    if item.kind is EntryKind.XEN:
        return "it boots the Xen hypervisor (a multiboot entry), not a Linux kernel"
    if item.kind is EntryKind.CHAINLOAD:
        return "it hands over to another boot loader" + (f" ({first_note})" if first_note else "")
    if item.kind is EntryKind.OTHER:
        return first_note or "it does not load a Linux kernel"
    if item.kernel is None and item.kind is EntryKind.LINUX:
        return "it names no kernel"
    last = sanitize_text(item.notes[-1]) if item.notes else "it loads no kernel"
    return last


def resolve_boot_target(menu: BootMenu, spec: str | None = None) -> tuple[tuple[int, ...], BootEntry]:
    """The entry to boot: the selection ``spec`` if given, else the menu's default.

    Args:
        menu: the menu.
        spec: an ``--entry`` SPEC or None.

    Returns:
        ``(index path, entry)`` of a bootable (LINUX, with a kernel) entry.

    Raises:
        SelectionError: no default, no match, a submenu, or an entry that is not bootable
            (Xen hypervisor, chainloader, nothing loaded); the message says why and lists the
            bootable entries.
    """
    if spec is not None:
        path: tuple[int, ...] | None = resolve_selection(menu, spec)
        how = f"--entry '{sanitize_text(spec)}'"
    else:
        path = menu.default
        how = "the default entry"
    bootable = describe_choices(menu, bootable_only=True)
    if path is None:
        reason = sanitize_text(menu.default_trail[-1]) if menu.default_trail else "no entry could be chosen"
        raise SelectionError(f"{menu.loader} configuration {menu.config.display()} has no default entry "
                             f"({reason}); choose one with --entry; bootable entries: {bootable}")
    try:
        item = menu.item_at(path)
    except IndexError:
        raise SelectionError(f"{how} [{path_str(path)}] is not in the menu; bootable entries: {bootable}") from None
    why = why_not_bootable(item)
    if why is not None:
        if isinstance(item, Submenu):
            inner = ", ".join(f"[{path_str((*path, *p))}] {_label(it)}"
                              for p, it in list(_iter_items(item.items))[:MAX_LISTED])
            raise SelectionError(f"{how} [{path_str(path)}] '{item.title_display}' is a submenu; choose an entry "
                                 f"inside it: {inner or '(it is empty)'}")
        raise SelectionError(f"{how} [{path_str(path)}] '{item.title_display}' is not bootable: {why}; "
                             f"bootable entries: {bootable}")
    assert isinstance(item, BootEntry)
    return path, item
