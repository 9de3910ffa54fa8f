"""UAPI Group rules systemd-boot sorts and matches entries with: version comparison and its glob.

References:
    UAPI Group "Version Format Specification" (segments of digits or letters; ``~`` pre-release,
    ``-`` version/release, ``^`` post-release, ``.`` point release; other characters separate).
    systemd ``src/fundamental/string-util-fundamental.c`` (``strverscmp_improved``, which also
    backs ``systemd-analyze compare-versions``) and ``src/boot/efi-string.c`` (``efi_fnmatch``:
    ``*``, ``?``, ``[...]`` with ranges and ``\\`` escapes, no negation, no backtracking blow-up).
    Read for facts only; no code was copied.
"""

from __future__ import annotations

__all__ = ["efi_fnmatch", "uapi_vercmp"]


def _valid_version_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "~-^.")


def uapi_vercmp(a: str | None, b: str | None) -> int:
    """Compare two versions by the UAPI Version Format Specification (systemd's ``strverscmp_improved``).

    Segments are runs of digits or letters, each optionally prefixed by ``~`` (pre-release:
    older than anything), ``-`` (version-release separator), ``^`` (post-release) or ``.``;
    characters outside ``[A-Za-z0-9~^.-]`` only separate segments.  Numbers compare by value
    (leading zeros ignored), a numeric segment is newer than an alphabetic one, and when one
    string runs out the longer one is newer (unless the other continues with ``~``).

    Returns:
        -1, 0 or 1.
    """
    x = a or ""
    y = b or ""
    i = j = 0
    nx, ny = len(x), len(y)

    def cmp(p: bool, q: bool) -> int:
        return (p > q) - (p < q)

    for _guard in range(nx + ny + 2):
        while i < nx and not _valid_version_char(x[i]):
            i += 1
        while j < ny and not _valid_version_char(y[j]):
            j += 1
        cx = x[i] if i < nx else ""
        cy = y[j] if j < ny else ""
        if cx == "~" or cy == "~":
            r = cmp(cx != "~", cy != "~")
            if r:
                return r
            i += 1
            j += 1
            cx = x[i] if i < nx else ""
            cy = y[j] if j < ny else ""
        if not cx or not cy:
            return (cx > cy) - (cx < cy)
        for sep in "-^.":
            if sep in (cx, cy):
                r = cmp(cx != sep, cy != sep)
                if r:
                    return r
                i += 1
                j += 1
                cx = x[i] if i < nx else ""
                cy = y[j] if j < ny else ""
        if (cx.isdigit() and cx.isascii()) or (cy.isdigit() and cy.isascii()):
            ei, ej = i, j
            while ei < nx and x[ei].isascii() and x[ei].isdigit():
                ei += 1
            while ej < ny and y[ej].isascii() and y[ej].isdigit():
                ej += 1
            r = cmp(ei != i, ej != j)
            if r:
                return r
            while i < ei and x[i] == "0":
                i += 1
            while j < ej and y[j] == "0":
                j += 1
            r = (ei - i > ej - j) - (ei - i < ej - j)
            if r:
                return r
            sx, sy = x[i:ei], y[j:ej]
            r = (sx > sy) - (sx < sy)
            if r:
                return r
        else:
            ei, ej = i, j
            while ei < nx and x[ei].isascii() and x[ei].isalpha():
                ei += 1
            while ej < ny and y[ej].isascii() and y[ej].isalpha():
                ej += 1
            m = min(ei - i, ej - j)
            sx, sy = x[i : i + m], y[j : j + m]
            r = (sx > sy) - (sx < sy)
            if r:
                return r
            r = (ei - i > ej - j) - (ei - i < ej - j)
            if r:
                return r
        i, j = ei, ej
    return 0


def _glob_tokens(pattern: str) -> list[tuple[str, object]] | None:
    """Pattern -> [("lit", c) | ("any", None) | ("set", [(lo, hi)...]) | ("star", None)]; None if malformed."""
    out: list[tuple[str, object]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(("star", None))
        elif c == "?":
            out.append(("any", None))
        elif c == "\\":
            i += 1
            if i >= n:
                return None
            out.append(("lit", pattern[i]))
        elif c == "[":
            ranges: list[tuple[str, str]] = []
            first = True
            can_range = True
            i += 1
            while True:
                if i >= n:
                    return None
                c = pattern[i]
                if c == "\\":
                    i += 1
                    if i >= n:
                        return None
                    ranges.append((pattern[i], pattern[i]))
                    can_range = True
                elif c == "]" and not first:
                    break
                elif c == "-" and can_range and not first and i + 1 < n and pattern[i + 1] != "]":
                    lo = ranges.pop()[0] if ranges else "-"
                    i += 1
                    if pattern[i] == "\\":
                        i += 1
                    if i >= n:
                        return None
                    ranges.append((lo, pattern[i]))
                    can_range = False
                else:
                    ranges.append((c, c))
                    can_range = True
                first = False
                i += 1
            out.append(("set", ranges))
        else:
            out.append(("lit", c))
        i += 1
    return out


def _match_one(tok: tuple[str, object], c: str) -> bool:
    kind, arg = tok
    if kind == "any":
        return True
    if kind == "lit":
        return arg == c
    assert isinstance(arg, list)
    return any(lo <= c <= hi for lo, hi in arg)


def efi_fnmatch(pattern: str, text: str) -> bool:
    """systemd-boot's glob: ``*``, ``?``, ``[a-z]`` sets and ``\\`` escapes (no ``!`` negation).

    Runs in O(len(pattern) * len(text)) without backtracking blow-ups.
    """
    toks = _glob_tokens(pattern)
    if toks is None:
        return False
    # Classic two-pointer wildcard match: remember the last star and retry from one further.
    p = t = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(toks) and toks[p][0] != "star" and _match_one(toks[p], text[t]):
            p += 1
            t += 1
        elif p < len(toks) and toks[p][0] == "star":
            star_p, star_t = p, t
            p += 1
        elif star_p >= 0:
            star_t += 1
            p, t = star_p + 1, star_t
        else:
            return False
    while p < len(toks) and toks[p][0] == "star":
        p += 1
    return p == len(toks)
