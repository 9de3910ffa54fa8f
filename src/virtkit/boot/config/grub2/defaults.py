"""How GRUB turns ``default``, ``fallback`` and ``timeout`` into menu positions.

References:
    grub-core/normal/menu.c, GRUB 2.06 (upstream: Debian, Ubuntu, SUSE, RHEL 7):
    ``get_entry_number`` (``strtoul`` base 0 first - trailing text ignored, so "1>2" is
    1 and "3b8f..." is 3 - then titles/ids in menu order with ``menuentry_eq``),
    ``get_and_remove_first_entry_number`` (``fallback``: numbers only),
    ``grub_menu_get_timeout``, ``grub_menu_execute_entry`` (the ``default`` rewrite when
    an entry runs: the text after the first single ``>``, else unset).
    rhboot/grub2 grub-core/normal/menu.c (Fedora, RHEL 8/9):
    ``get_entry_number_helper`` (ids first up to the first blank, then titles, then a
    number only if nothing but blanks follows), ``menuentry_eq`` with a length limit,
    and the rewrite that leaves ``default`` alone.
    ../shared/reference/grub2-semantics.md section 7.

In both, ``>>`` stands for a literal ``>`` in a title or id, and a single ``>``
ends the part that names an entry of the current menu.
"""

from __future__ import annotations

from dataclasses import dataclass

from virtkit.boot.config.grub2.test_cmd import grub_strtoul

__all__ = [
    "Resolution",
    "default_remainder",
    "fallback_order",
    "parse_timeout",
    "resolve_entry",
]

_SPACE = " \t\n\r\f\v"


@dataclass(frozen=True)
class Resolution:
    """The result of looking a value up in one menu.

    Attributes:
        index: the entry GRUB picks (always valid when the menu is non-empty).
        how: "title", "id", "number", "unset", "not-found", "out-of-range" or "invalid".
        raw_index: the index the lookup produced before the fall back to entry 0 (-1: none).
    """

    index: int
    how: str
    raw_index: int


def _to_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _eq_upstream(name: str, spec: str) -> bool:
    """Upstream ``menuentry_eq``: ``name`` equals ``spec`` up to its first single ``>``."""
    a = name + "\0"
    b = spec + "\0"
    i = j = 0
    while True:
        if b[j] == ">" and b[j + 1] != ">" and a[i] == "\0":
            return True
        if b[j] == ">" and b[j + 1] != ">":
            return False
        if b[j] == ">":
            j += 1
        if a[i] != b[j]:
            return False
        if a[i] == "\0":
            return True
        i += 1
        j += 1


def _eq_fedora(name: str, spec: str, limit: int) -> int:
    """Fedora's ``menuentry_eq``; a non-zero return means "matches"."""
    a = name + "\0"
    b = spec + "\0"
    i = j = 0
    while limit == -1 or i <= limit:
        if b[j] == ">" and b[j + 1] != ">" and a[i] == "\0":
            return j
        if b[j] == ">" and b[j + 1] != ">":
            return 0
        if b[j] == ">":
            j += 1
        if a[i] != b[j]:
            if limit > -1 and i == limit and a[i] == "\0" and b[j] in _SPACE and b[j] != "\0":
                return i - 1
            return 0
        if a[i] == "\0":
            return i
        i += 1
        j += 1
    return 0


def _clamp(entry: int, size: int, how: str) -> Resolution:
    if entry < 0:
        return Resolution(0, how if how != "number" else "invalid", entry)
    if entry >= size:
        return Resolution(0, "out-of-range", entry)
    return Resolution(entry, how, entry)


def resolve_entry(value: str | None, titles: list[str], ids: list[str], *, fedora: bool) -> Resolution:
    """``get_entry_number`` for a menu of ``len(titles)`` entries (never empty)."""
    size = len(titles)
    if value is None:
        return Resolution(0, "unset", -1)
    if not fedora:
        num, end, err = grub_strtoul(value, 0)
        if err is None:
            return _clamp(_to_int32(num), size, "number")
        if err != "unrecognized number":
            return Resolution(0, "invalid", -1)
        for i in range(size):
            if _eq_upstream(titles[i], value):
                return Resolution(i, "title", i)
            if _eq_upstream(ids[i], value):
                return Resolution(i, "id", i)
        return Resolution(0, "not-found", -1)
    # Fedora: ids first (up to the first blank), then titles, then a bare number
    limit = 0
    while limit < len(value) and value[limit] not in _SPACE:
        limit += 1
    for i in range(size):
        if _eq_fedora(ids[i], value, limit):
            if limit < len(value):
                return Resolution(0, "invalid", -1)  # text after the id
            return Resolution(i, "id", i)
    for i in range(size):
        if _eq_fedora(titles[i], value, -1):
            return Resolution(i, "title", i)
    num, end, err = grub_strtoul(value, 0)
    if err == "unrecognized number":
        return Resolution(0, "not-found", -1)
    if err is not None or end < len(value):
        return Resolution(0, "invalid", -1)
    return _clamp(_to_int32(num), size, "number")


def fallback_order(value: str | None, titles: list[str], ids: list[str], *, fedora: bool, limit: int = 1000) -> list[int]:
    """The entries ``fallback`` names, in the order GRUB tries them.

    Upstream reads only numbers (``get_and_remove_first_entry_number``): a non-number
    ends the list.  Fedora also accepts ids and titles.  Out-of-range numbers end it
    too (upstream GRUB would follow a missing entry).
    """
    out: list[int] = []
    val = value
    size = len(titles)
    while val is not None and len(out) < limit:
        if not fedora:
            num, end, err = grub_strtoul(val, 0)
            if err is not None:
                break
            entry = _to_int32(num)
            rest = val[end:].lstrip(_SPACE)
        else:
            lim = 0
            while lim < len(val) and val[lim] not in _SPACE:
                lim += 1
            entry = -1
            rest = ""
            for i in range(size):
                if _eq_fedora(ids[i], val, lim):
                    entry, rest = i, val[lim:]
                    break
            else:
                for i in range(size):
                    if _eq_fedora(titles[i], val, -1):
                        entry, rest = i, ""
                        break
                else:
                    num, end, err = grub_strtoul(val, 0)
                    if err is not None or (end < len(val) and val[end] not in _SPACE):
                        break
                    entry, rest = _to_int32(num), val[end:]
            rest = rest.lstrip(_SPACE)
        if entry < 0 or entry >= size:
            break
        out.append(entry)
        val = rest if rest else (None if fedora else "")
    return out


def default_remainder(value: str | None) -> str | None:
    """What ``default`` becomes inside an entry: the text after its first single ``>`` (or None)."""
    if value is None:
        return None
    i = 0
    n = len(value)
    while i < n:
        if value[i] == ">":
            if i + 1 < n and value[i + 1] == ">":
                i += 2
                continue
            rest = value[i + 1 :]
            return rest if rest else None
        i += 1
    return None


def parse_timeout(value: str | None) -> int:
    """``grub_menu_get_timeout``: -1 means wait forever."""
    if value is None:
        return -1
    num, _, err = grub_strtoul(value, 0)
    if err is not None:
        return -1
    return _to_int32(num)
