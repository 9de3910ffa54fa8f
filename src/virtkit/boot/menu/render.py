"""Stage 5: a BootMenu as text for people (``list``, ``explain``) and as JSON for programs.

Every guest-controlled string (titles, command lines, paths, trail text, warnings) goes
through :func:`~virtkit.sanitize.sanitize_text` before it is put into text output, so no
escape sequence from a guest reaches the operator's terminal.  The JSON keeps the raw
strings (``json.dumps`` escapes control characters; the CLI also escapes non-ASCII), and its
schema is documented in ``docs/boot-json.md`` (``schema_version`` 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem, Submenu
from virtkit.boot.config.source import Location
from virtkit.boot.menu.select import path_str, why_not_bootable
from virtkit.sanitize import sanitize_text

if TYPE_CHECKING:
    from virtkit.boot.config import ConfigCandidate

__all__ = ["SCHEMA_VERSION", "menu_to_json", "render_explain", "render_tree"]

SCHEMA_VERSION = 1
_INCLUDE_CHAIN_MAX = 64


def _s(text: str) -> str:
    return sanitize_text(text)


def _timeout_text(menu: BootMenu) -> str:
    if menu.timeout is None:
        t = "waits for a key"
    elif menu.timeout == 0:
        t = "boots at once"
    else:
        t = f"{menu.timeout:g} s"
    return f"{t} ({menu.timeout_style})" if menu.timeout_style != "menu" else t


def _default_line(menu: BootMenu) -> str:
    entry = menu.default_entry()
    if menu.default is None:
        return "default: none"
    title = f" '{entry.title_display}'" if entry is not None else ""
    return f"default: [{path_str(menu.default)}]{title}"


def render_tree(menu: BootMenu) -> str:
    """The menu tree: index paths, ``*`` on the default, kernel/initrds/cmdline per entry.

    Returns:
        text ending in a newline; every guest string sanitised.
    """
    out = [
        f"{menu.loader} menu from {menu.config.display()}",
        f"{_default_line(menu)}    timeout: {_timeout_text(menu)}",
    ]
    _tree(menu.items, (), menu.default, 0, out)
    if not menu.items:
        out.append("  (no entries)")
    if menu.warnings:
        out.append(f"warnings: {len(menu.warnings)} (see `virtkit boot explain`)")
    return "\n".join(out) + "\n"


def _tree(items: tuple[MenuItem, ...], prefix: tuple[int, ...], default: tuple[int, ...] | None, depth: int,
          out: list[str]) -> None:
    pad = "  " * depth
    for i, item in enumerate(items):
        path = (*prefix, i)
        mark = "*" if default == path else " "
        ident = f"  (id {_s(item.id)})" if item.id and item.id != item.title else ""
        if isinstance(item, Submenu):
            out.append(f"{mark} {pad}[{path_str(path)}] {item.title_display}  >{ident}")
            _tree(item.items, path, default, depth + 1, out)
            continue
        tag = "" if item.kind is EntryKind.LINUX else f"  [{item.kind.value}]"
        if item.kind is EntryKind.LINUX and item.kernel is None:
            tag = "  [no kernel]"
        out.append(f"{mark} {pad}[{path_str(path)}] {item.title_display}{tag}{ident}")
        sub = pad + "      "
        if item.kernel is not None:
            label = "kernel " if item.kind is EntryKind.LINUX else "loads  "
            out.append(f"{sub}{label}  {item.kernel.display()}")
        for ref in item.initrds:
            out.append(f"{sub}initrd   {ref.display()}")
        if item.cmdline:
            out.append(f"{sub}cmdline  {item.cmdline_display}")
        why = None if item.bootable else why_not_bootable(item)
        if why:
            out.append(f"{sub}not bootable: {_s(why)}")
        for note in item.notes:
            if _s(note) not in (why or ""):
                out.append(f"{sub}note     {_s(note)}")


def render_explain(menu: BootMenu, *, candidates: Sequence[ConfigCandidate] = (),
                   used: ConfigCandidate | None = None, selection: str | None = None) -> str:
    """How the configuration was found and the default chosen, step by step.

    Args:
        menu: the interpreted menu.
        candidates: every configuration found (best first), if known.
        used: the candidate that produced ``menu``.
        selection: the ``--entry`` spec the operator gave, shown with what it resolves to.

    Returns:
        sanitised text ending in a newline.
    """
    out = [f"configuration: {menu.loader} {menu.config.display()}"]
    if used is not None:
        out.append(f"  chosen because: {_s(used.why)}" + (f" (platform {used.platform})" if used.platform else ""))
    others = [c for c in candidates if used is None or (c.device, c.path) != (used.device, used.path)]
    if others:
        out.append("other configurations found (less preferred):")
        out.extend(f"  {c.loader:<13} {c.display}  - {_s(c.why)}" for c in others)
    if menu.flavour:
        out.append(f"rules: {menu.flavour}")
    out.append(_default_line(menu))
    out.append("how the default was chosen:")
    if menu.default_trail:
        out.extend(f"  {n}. {_s(step)}" for n, step in enumerate(menu.default_trail, 1))
    else:
        out.append("  (no explanation recorded)")
    entry = menu.default_entry()
    if entry is not None and not entry.bootable:
        out.append(f"the default is not bootable: {_s(why_not_bootable(entry) or '')}")
    if selection is not None:
        from virtkit.boot.menu.select import resolve_selection

        p = resolve_selection(menu, selection)
        out.append(f"--entry '{_s(selection)}' -> [{path_str(p)}] '{menu.item_at(p).title_display}'")
    if menu.fallback:
        out.append("fallback: " + ", ".join(f"[{path_str(p)}]" for p in menu.fallback))
    out.append(f"timeout: {_timeout_text(menu)}")
    if menu.env:
        out.append("environment block:")
        out.extend(f"  {_s(k)}={_s(v)}" for k, v in sorted(menu.env.items()))
    if menu.env_writes:
        out.append("a real boot would write (virtkit never writes the image):")
        out.extend(f"  {_s(k)} = {_s(v) if v is not None else '(unset)'}" for k, v in sorted(menu.env_writes.items()))
    if menu.output:
        out.append("messages the boot loader would print:")
        out.extend(f"  {_s(line)}" for line in menu.output)
    if menu.warnings:
        out.append("warnings:")
        out.extend(f"  - {_s(w)}" for w in menu.warnings)
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- JSON


def _ref(ref: FileRef | None) -> dict[str, Any] | None:
    return None if ref is None else {"device": ref.device, "path": ref.path, "written": ref.written}


def _loc(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    chain: list[dict[str, Any]] = []
    cur = loc
    while cur.included_from is not None and len(chain) < _INCLUDE_CHAIN_MAX:
        inc = cur.included_from
        chain.append({"device": inc.file.device, "path": inc.file.path, "line": inc.line, "col": inc.col,
                      "how": cur.how})
        cur = inc
    return {"device": loc.file.device, "path": loc.file.path, "line": loc.line, "col": loc.col,
            "included_from": chain}


def _entry_json(e: BootEntry, path: tuple[int, ...], default: tuple[int, ...] | None) -> dict[str, Any]:
    return {
        "type": "entry",
        "path": list(path),
        "path_str": path_str(path),
        "is_default": path == default,
        "title": e.title,
        "id": e.id,
        "kind": e.kind.value,
        "bootable": e.bootable,
        "not_bootable_reason": why_not_bootable(e),
        "kernel": _ref(e.kernel),
        "initrds": [_ref(r) for r in e.initrds],
        "cmdline": e.cmdline,
        "classes": list(e.classes),
        "origin": _loc(e.origin),
        "body": e.body,
        "args": list(e.args),
        "users": e.users,
        "hotkey": e.hotkey,
        "notes": list(e.notes),
    }


def _items_json(items: tuple[MenuItem, ...], prefix: tuple[int, ...],
                default: tuple[int, ...] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        path = (*prefix, i)
        if isinstance(item, Submenu):
            out.append({
                "type": "submenu",
                "path": list(path),
                "path_str": path_str(path),
                "title": item.title,
                "id": item.id,
                "classes": list(item.classes),
                "origin": _loc(item.origin),
                "notes": list(item.notes),
                "items": _items_json(item.items, path, default),
            })
        else:
            out.append(_entry_json(item, path, default))
    return out


def _candidate_json(c: ConfigCandidate) -> dict[str, Any]:
    return {"loader": c.loader, "device": c.device, "path": c.path, "why": c.why, "rank": c.rank,
            "platform": c.platform, "stub": c.stub}


def menu_to_json(menu: BootMenu, *, candidates: Sequence[ConfigCandidate] = (),
                 used: ConfigCandidate | None = None) -> dict[str, Any]:
    """The menu as a JSON-ready dict (schema in ``docs/boot-json.md``, ``schema_version`` 1).

    Args:
        menu: the menu.
        candidates: every configuration found, best first (``"candidates"``; omitted if empty).
        used: the candidate the menu came from (``"used"``).

    Returns:
        plain dicts/lists/strings/numbers; guest strings are raw.
    """
    entry = menu.default_entry()
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "loader": menu.loader,
        "config": _ref(menu.config),
        "flavour": menu.flavour,
        "default": list(menu.default) if menu.default is not None else None,
        "default_path_str": path_str(menu.default) if menu.default is not None else None,
        "default_title": entry.title if entry is not None else None,
        "default_bootable": entry.bootable if entry is not None else False,
        "default_trail": list(menu.default_trail),
        "fallback": [list(p) for p in menu.fallback],
        "timeout": menu.timeout,
        "timeout_style": menu.timeout_style,
        "env": dict(menu.env),
        "env_writes": dict(menu.env_writes),
        "warnings": list(menu.warnings),
        "output": list(menu.output),
        "items": _items_json(menu.items, (), menu.default),
    }
    if used is not None:
        doc["used"] = _candidate_json(used)
    if candidates:
        doc["candidates"] = [_candidate_json(c) for c in candidates]
    return doc
