"""BootMenu <-> JSON for the worker channel, with a strict schema check on the way in.

The parent rebuilds the menu from what the worker sent, and a compromised
worker could send anything.  :func:`menu_from_wire` therefore checks every
field's type, every string's length, list lengths and tree depth, and raises
:class:`~virtkit.errors.WorkerError` on the first violation.  It never
evaluates anything; it only builds frozen dataclasses.
"""

from __future__ import annotations

from typing import Any

from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem, Submenu
from virtkit.boot.config.registry import ConfigCandidate
from virtkit.boot.config.source import Location, SourceFile
from virtkit.errors import WorkerError
from virtkit.limits import Limits

__all__ = [
    "candidates_from_wire",
    "candidates_to_wire",
    "entry_from_wire",
    "entry_to_wire",
    "menu_from_wire",
    "menu_to_wire",
]

_MAX_TEXT = 1 << 20  # any one string
_MAX_LIST = 100_000


# ---------------------------------------------------------------- encoding


def _loc_to_wire(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    return {"device": loc.file.device, "path": loc.file.path, "line": loc.line, "col": loc.col}


def _ref_to_wire(ref: FileRef | None) -> dict[str, Any] | None:
    return None if ref is None else {"device": ref.device, "path": ref.path, "written": ref.written}


def entry_to_wire(e: BootEntry) -> dict[str, Any]:
    return {
        "type": "entry",
        "title": e.title,
        "id": e.id,
        "kind": e.kind.value,
        "kernel": _ref_to_wire(e.kernel),
        "initrds": [_ref_to_wire(r) for r in e.initrds],
        "cmdline": e.cmdline,
        "classes": list(e.classes),
        "origin": _loc_to_wire(e.origin),
        "body": e.body,
        "args": list(e.args),
        "users": e.users,
        "hotkey": e.hotkey,
        "notes": list(e.notes),
    }


def _item_to_wire(item: MenuItem) -> dict[str, Any]:
    if isinstance(item, Submenu):
        return {
            "type": "submenu",
            "title": item.title,
            "id": item.id,
            "classes": list(item.classes),
            "origin": _loc_to_wire(item.origin),
            "notes": list(item.notes),
            "items": [_item_to_wire(i) for i in item.items],
        }
    return entry_to_wire(item)


def menu_to_wire(menu: BootMenu) -> dict[str, Any]:
    return {
        "loader": menu.loader,
        "config": _ref_to_wire(menu.config),
        "items": [_item_to_wire(i) for i in menu.items],
        "default": list(menu.default) if menu.default is not None else None,
        "default_trail": list(menu.default_trail),
        "fallback": [list(p) for p in menu.fallback],
        "timeout": menu.timeout,
        "timeout_style": menu.timeout_style,
        "flavour": menu.flavour,
        "env": dict(menu.env),
        "env_writes": dict(menu.env_writes),
        "warnings": list(menu.warnings),
        "output": list(menu.output),
    }


# ---------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, limits: Limits, what: str) -> None:
        self.limits = limits
        self.items = 0
        self.what = what

    def fail(self, where: str, problem: str) -> WorkerError:
        # a worker that sends a malformed reply is a failed worker: WorkerError, exit status 8
        return WorkerError(f"worker sent a malformed {self.what}: {where}: {problem}")

    def obj(self, v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(where, "expected an object")
        return v

    def text(self, d: dict[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
        v = d.get(key)
        if v is None and optional:
            return None
        if not isinstance(v, str):
            raise self.fail(f"{where}.{key}", "expected a string")
        if len(v) > _MAX_TEXT:
            raise self.fail(f"{where}.{key}", "string too long")
        return v

    def texts(self, d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        v = d.get(key)
        if not isinstance(v, list) or len(v) > _MAX_LIST:
            raise self.fail(f"{where}.{key}", "expected a list of strings")
        out = []
        for i, s in enumerate(v):
            if not isinstance(s, str) or len(s) > _MAX_TEXT:
                raise self.fail(f"{where}.{key}[{i}]", "expected a string")
            out.append(s)
        return tuple(out)

    def integer(self, v: Any, where: str, *, lo: int = 0, hi: int = 1 << 31) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise self.fail(where, "expected an integer in range")
        return v

    def path(self, v: Any, where: str) -> tuple[int, ...] | None:
        if v is None:
            return None
        if not isinstance(v, list) or not 1 <= len(v) <= self.limits.max_call_depth:
            raise self.fail(where, "expected an index path")
        return tuple(self.integer(x, where, hi=self.limits.max_menu_entries) for x in v)

    def ref(self, v: Any, where: str) -> FileRef | None:
        if v is None:
            return None
        d = self.obj(v, where)
        return FileRef(
            device=self.text(d, "device", where, optional=True),
            path=self.text(d, "path", where),
            written=self.text(d, "written", where),
        )

    def loc(self, v: Any, where: str) -> Location | None:
        if v is None:
            return None
        d = self.obj(v, where)
        src = SourceFile(self.text(d, "device", where, optional=True), self.text(d, "path", where), "")
        return Location(src, self.integer(d.get("line"), f"{where}.line"), self.integer(d.get("col"), f"{where}.col"))

    def entry(self, d: dict[str, Any], where: str) -> BootEntry:
        try:
            kind = EntryKind(d.get("kind"))
        except ValueError:
            raise self.fail(f"{where}.kind", "unknown entry kind") from None
        initrds = d.get("initrds")
        if not isinstance(initrds, list) or len(initrds) > 256:
            raise self.fail(f"{where}.initrds", "expected a list")
        refs = []
        for i, r in enumerate(initrds):
            ref = self.ref(r, f"{where}.initrds[{i}]")
            if ref is None:
                raise self.fail(f"{where}.initrds[{i}]", "null initrd")
            refs.append(ref)
        return BootEntry(
            title=self.text(d, "title", where),
            id=self.text(d, "id", where, optional=True),
            kind=kind,
            kernel=self.ref(d.get("kernel"), f"{where}.kernel"),
            initrds=tuple(refs),
            cmdline=self.text(d, "cmdline", where),
            classes=self.texts(d, "classes", where),
            origin=self.loc(d.get("origin"), f"{where}.origin"),
            body=self.text(d, "body", where),
            args=self.texts(d, "args", where),
            users=self.text(d, "users", where, optional=True),
            hotkey=self.text(d, "hotkey", where, optional=True),
            notes=self.texts(d, "notes", where),
        )

    def item(self, v: Any, where: str, depth: int) -> MenuItem:
        self.items += 1
        if self.items > self.limits.max_menu_entries:
            raise self.fail(where, "too many menu items")
        if depth > self.limits.max_call_depth:
            raise self.fail(where, "submenus nested too deeply")
        d = self.obj(v, where)
        kind = d.get("type")
        if kind == "entry":
            return self.entry(d, where)
        if kind == "submenu":
            return Submenu(
                title=self.text(d, "title", where),
                id=self.text(d, "id", where, optional=True),
                classes=self.texts(d, "classes", where),
                origin=self.loc(d.get("origin"), f"{where}.origin"),
                notes=self.texts(d, "notes", where),
                items=self.item_list(d.get("items"), f"{where}.items", depth + 1),
            )
        raise self.fail(f"{where}.type", "expected 'entry' or 'submenu'")

    def item_list(self, v: Any, where: str, depth: int) -> tuple[MenuItem, ...]:
        if not isinstance(v, list):
            raise self.fail(where, "expected a list")
        return tuple(self.item(x, f"{where}[{i}]", depth) for i, x in enumerate(v))

    def str_map(self, v: Any, where: str, *, nullable: bool) -> dict[str, Any]:
        d = self.obj(v, where)
        if len(d) > _MAX_LIST:
            raise self.fail(where, "too many keys")
        for k, val in d.items():
            ok = isinstance(val, str) or (nullable and val is None)
            if not ok or len(k) > _MAX_TEXT or (isinstance(val, str) and len(val) > _MAX_TEXT):
                raise self.fail(f"{where}.{k[:40]}", "expected a string")
        return dict(d)


def entry_from_wire(v: Any, *, limits: Limits) -> BootEntry:
    r = _Reader(limits, "entry")
    d = r.obj(v, "entry")
    if d.get("type") != "entry":
        raise r.fail("entry.type", "expected 'entry'")
    return r.entry(d, "entry")


def menu_from_wire(v: Any, *, limits: Limits) -> BootMenu:
    """Rebuild and validate a BootMenu sent by the worker.

    Raises:
        WorkerError: any field is missing, mistyped, too long or too deep.
    """
    r = _Reader(limits, "menu")
    d = r.obj(v, "menu")
    config = r.ref(d.get("config"), "menu.config")
    if config is None:
        raise r.fail("menu.config", "missing")
    timeout = d.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 <= timeout < 1e9):
        raise r.fail("menu.timeout", "expected a number or null")
    fallback = d.get("fallback")
    if not isinstance(fallback, list) or len(fallback) > 1024:
        raise r.fail("menu.fallback", "expected a list")
    fb: list[tuple[int, ...]] = []
    for i, p in enumerate(fallback):
        path = r.path(p, f"menu.fallback[{i}]")
        if path is None:
            raise r.fail(f"menu.fallback[{i}]", "null path")
        fb.append(path)
    menu = BootMenu(
        loader=r.text(d, "loader", "menu"),
        config=config,
        items=r.item_list(d.get("items"), "menu.items", 0),
        default=r.path(d.get("default"), "menu.default"),
        default_trail=r.texts(d, "default_trail", "menu"),
        fallback=tuple(fb),
        timeout=float(timeout) if timeout is not None else None,
        timeout_style=r.text(d, "timeout_style", "menu"),
        flavour=r.text(d, "flavour", "menu"),
        env=r.str_map(d.get("env"), "menu.env", nullable=False),
        env_writes=r.str_map(d.get("env_writes"), "menu.env_writes", nullable=True),
        warnings=r.texts(d, "warnings", "menu"),
        output=r.texts(d, "output", "menu"),
    )
    if menu.default is not None:
        try:
            menu.item_at(menu.default)
        except IndexError:
            raise r.fail("menu.default", "path is not in the tree") from None
    return menu


def candidates_to_wire(cands: tuple[ConfigCandidate, ...]) -> list[dict[str, Any]]:
    return [{"loader": c.loader, "device": c.device, "path": c.path, "why": c.why, "rank": c.rank,
             "platform": c.platform, "stub": c.stub} for c in cands]


def candidates_from_wire(v: Any, *, limits: Limits) -> tuple[ConfigCandidate, ...]:
    """Rebuild the configuration candidates the worker found.

    Raises:
        WorkerError: malformed.
    """
    r = _Reader(limits, "list of configurations")
    if not isinstance(v, list) or len(v) > 4096:
        raise r.fail("candidates", "expected a list")
    out = []
    for i, c in enumerate(v):
        where = f"candidates[{i}]"
        d = r.obj(c, where)
        stub = d.get("stub")
        if not isinstance(stub, bool):
            raise r.fail(f"{where}.stub", "expected a boolean")
        out.append(ConfigCandidate(
            loader=r.text(d, "loader", where), device=r.text(d, "device", where), path=r.text(d, "path", where),
            why=r.text(d, "why", where), rank=r.integer(d.get("rank"), f"{where}.rank", lo=-(1 << 31)),
            platform=r.text(d, "platform", where, optional=True), stub=stub,
        ))
    return tuple(out)
