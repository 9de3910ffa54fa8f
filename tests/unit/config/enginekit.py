"""Table helpers for the non-GRUB-2 engine tests: build a guest in memory, state exact expectations.

``Expect`` lists what a case checks; fields left at None are not checked.  Every check is an
exact comparison except the ``*_contain`` ones, which look for a substring in one element.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from virtkit.boot.config.model import BootEntry, BootMenu, iter_entries
from virtkit.boot.config.source import DeviceInfo, MemoryFiles


def guest(trees: Mapping[str, Mapping[str, bytes | str]], **infos: dict[str, object]) -> MemoryFiles:
    """MemoryFiles from {device: {path: content}}; ``infos`` by device name with ',' written as '_'."""
    conv = {dev: {p: (c.encode() if isinstance(c, str) else c) for p, c in tree.items()} for dev, tree in trees.items()}
    dev_infos = []
    for dev in trees:
        fields = dict(infos.get(dev.replace(",", "_"), {}))
        dev_infos.append(DeviceInfo(name=dev, aliases=tuple(fields.pop("aliases", ())), **fields))  # type: ignore[arg-type]
    return MemoryFiles(conv, infos=dev_infos)


@dataclass(frozen=True)
class Expect:
    default: tuple[int, ...] | str | None = "skip"
    titles: Sequence[str] | None = None
    kinds: Sequence[str] | None = None
    kernels: Sequence[str | None] | None = None  # FileRef.display() per entry, None when no kernel
    initrds: Sequence[Sequence[str]] | None = None
    cmdlines: Sequence[str] | None = None
    ids: Sequence[str | None] | None = None
    timeout: float | str | None = "skip"
    timeout_style: str | None = None
    fallback: Sequence[tuple[int, ...]] | None = None
    env_writes: Mapping[str, str | None] | None = None
    trail_contain: Sequence[str] = ()
    warnings_contain: Sequence[str] = ()
    no_warnings: bool = False
    notes_contain: Mapping[int, Sequence[str]] = field(default_factory=dict)
    output: Sequence[str] | None = None
    extra: Callable[[BootMenu], None] | None = None


def entries(menu: BootMenu) -> list[BootEntry]:
    return [e for _p, e in iter_entries(menu.items)]


def check(menu: BootMenu, exp: Expect) -> None:
    es = entries(menu)
    if exp.default != "skip":
        assert menu.default == exp.default, (menu.default, menu.default_trail)
    if exp.titles is not None:
        assert [e.title for e in es] == list(exp.titles)
    if exp.kinds is not None:
        assert [e.kind.value for e in es] == list(exp.kinds)
    if exp.kernels is not None:
        assert [e.kernel.display() if e.kernel else None for e in es] == list(exp.kernels)
    if exp.initrds is not None:
        assert [[r.display() for r in e.initrds] for e in es] == [list(x) for x in exp.initrds]
    if exp.cmdlines is not None:
        assert [e.cmdline for e in es] == list(exp.cmdlines)
    if exp.ids is not None:
        assert [e.id for e in es] == list(exp.ids)
    if exp.timeout != "skip":
        assert menu.timeout == exp.timeout
    if exp.timeout_style is not None:
        assert menu.timeout_style == exp.timeout_style
    if exp.fallback is not None:
        assert list(menu.fallback) == list(exp.fallback)
    if exp.env_writes is not None:
        assert dict(menu.env_writes) == dict(exp.env_writes)
    for frag in exp.trail_contain:
        assert any(frag in step for step in menu.default_trail), (frag, menu.default_trail)
    for frag in exp.warnings_contain:
        assert any(frag in w for w in menu.warnings), (frag, menu.warnings)
    if exp.no_warnings:
        assert menu.warnings == (), menu.warnings
    for idx, frags in exp.notes_contain.items():
        for frag in frags:
            assert any(frag in n for n in es[idx].notes), (frag, es[idx].notes)
    if exp.output is not None:
        assert list(menu.output) == list(exp.output)
    if exp.extra is not None:
        exp.extra(menu)
