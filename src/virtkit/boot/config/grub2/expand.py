"""Word expansion exactly as GRUB 2 builds a command's argument list.

References:
    grub-core/script/execute.c (GRUB 2.06) ``grub_script_arglist_to_argv``,
    ``grub_script_env_get``, ``wildcard_escape``/``wildcard_unescape``, ``parse_string``
    (for ``$"..."``); grub-core/script/argv.c ``grub_script_argv_next``/``_append``/
    ``_split_append``.

How an argument list is built (the rules that surprise shell users):

* every word opens a new slot, but a slot that is still *empty-and-unset* (NULL in
  GRUB) is reused, and a trailing NULL slot is dropped: so a word made only of
  unset/empty unquoted variables produces no argument, while ``""`` or ``"$v"``
  produce an empty one;
* an unquoted variable is split on whitespace (space, tab, newline, CR, FF, VT);
  leading and trailing whitespace never opens a slot, inner runs do;
* ``"$@"`` gives one argument per positional argument; with none it still gives one
  empty argument (the quotes around it are a non-NULL empty string);
* quoted text and variable values are stored wildcard-escaped and unescaped at the
  end, so a backslash in a value survives; unquoted ``\\c`` becomes ``c``
  (Fedora keeps ``\\xHH`` whole).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from virtkit.boot.config.grub2.ast import Lit, Var, Word

__all__ = ["Scope", "expand_argv", "split_value", "wildcard_escape", "wildcard_unescape"]

_SPACE = " \t\n\r\f\v"  # grub_isspace
_HEX = frozenset("0123456789abcdefABCDEF")


class Scope:
    """Positional parameters of a function call or menu entry body."""

    __slots__ = ("args",)

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)


def _is_hex_escape(s: str, i: int) -> bool:
    return s[i] == "\\" and i + 3 < len(s) and s[i + 1] == "x" and s[i + 2] in _HEX and s[i + 3] in _HEX


def wildcard_escape(s: str, fedora: bool = False) -> str:
    """Backslash ``* ? \\`` (Fedora leaves ``\\xHH`` alone)."""
    if "\\" not in s and "*" not in s and "?" not in s:
        return s
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if fedora and _is_hex_escape(s, i):
            out.append(s[i : i + 4])
            i += 4
            continue
        if ch in "*\\?":
            out.append("\\")
        out.append(ch)
        i += 1
    return "".join(out)


def wildcard_unescape(s: str, fedora: bool = False) -> str:
    """``\\c`` -> ``c`` (Fedora keeps ``\\xHH``); a trailing lone backslash vanishes."""
    if "\\" not in s:
        return s
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == "\\":
            if fedora and _is_hex_escape(s, i):
                out.append(s[i : i + 4])
                i += 4
                continue
            if i + 1 < n:
                out.append(s[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _var_escape(v: str) -> str:
    """The unquoted-variable escaping of ``grub_script_arglist_to_argv``."""
    if "\\" not in v:
        return v
    out: list[str] = []
    n = len(v)
    for i, ch in enumerate(v):
        if ch == "\\":
            out.append("\\")
            if i + 1 < n and v[i + 1] in "?*":
                out.append("\\")
        out.append(ch)
    return "".join(out)


def split_value(v: str) -> list[str]:
    """``grub_script_argv_split_append``: whitespace-separated pieces (none for blank)."""
    return v.split()


def _special_values(name: str, quoted: bool, scope: Scope | None) -> list[str]:
    """``grub_script_env_get`` for ``#``, ``*``, ``@`` and digits."""
    if scope is None:
        return []
    args = scope.args
    if name == "#":
        return [str(len(args))]
    if name == "*":
        if quoted:
            return [" ".join(args)]
        out: list[str] = []
        for a in args:
            out.extend(a.split())
        return out
    if name == "@":
        if quoted:
            return list(args)
        pieces: list[str] = []
        for a in args:
            pieces.extend(a.split())
        return pieces
    num = int(name[:18]) if len(name) <= 18 else 10**18
    if 1 <= num <= len(args):
        a = args[num - 1]
        return a.split() if not quoted else ([a] if a else [])
    return []


def _i18n_expand(text: str, get: Callable[[str], str | None], scope: Scope | None, fedora: bool) -> str:
    """``gettext_append`` without a catalog: expand the ``$`` references of ``text``."""
    out: list[str] = []
    escaped = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if not escaped and fedora and _is_hex_escape(text, i):
                out.append(text[i : i + 4])
                i += 4
                continue
            escaped = not escaped
            if not escaped:
                out.append("\\")
            i += 1
            continue
        if ch == "$":
            if escaped:
                escaped = False
                out.append("$")
                i += 1
                continue
            i += 1
            c = text[i] if i < n else ""
            if c == "{":
                close = text.find("}", i + 1)
                if close < 0:
                    break
                out.append(_i18n_var(text[i + 1 : close], get, scope))
                i = close + 1
            elif c.isdigit() and c.isascii():
                j = i
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
                out.append(_i18n_var(text[i:j], get, scope))
                i = j
            elif c and (c == "_" or (c.isascii() and c.isalpha())):
                j = i
                while j < n and (text[j] == "_" or (text[j].isascii() and text[j].isalnum())):
                    j += 1
                out.append(_i18n_var(text[i:j], get, scope))
                i = j
            elif c in ("?", "#"):
                out.append(_i18n_var(c, get, scope))
                i += 1
            else:
                out.append("$")
            continue
        if escaped:
            out.append("\\")
        escaped = False
        out.append(ch)
        i += 1
    return "".join(out)


def _i18n_var(name: str, get: Callable[[str], str | None], scope: Scope | None) -> str:
    if name == "#":
        return str(len(scope.args)) if scope is not None else "0"
    return get(name) or ""


def expand_argv(
    words: Sequence[Word],
    get: Callable[[str], str | None],
    scope: Scope | None,
    *,
    fedora: bool = False,
    max_bytes: int = 1 << 20,
    glob: Callable[[str], list[str] | None] | None = None,
    on_limit: Callable[[int], None] | None = None,
) -> list[str]:
    """Expand ``words`` into GRUB's argv.

    Args:
        words: the command's words (a block is passed by the caller as its own word).
        get: variable lookup (None if unset).
        scope: positional parameters, or None at top level.
        fedora: keep ``\\xHH`` escapes as Fedora's GRUB does.
        max_bytes: the largest argument allowed (``max_string_bytes``).
        glob: wildcard expander for an escaped argument (None: globbing off).
        on_limit: called with the offending size when an argument grows past ``max_bytes``.

    Returns:
        The arguments.
    """
    if glob is None:  # the common case: words that need no expansion are their own argument
        fast: list[str] = []
        for word in words:
            lit = word.lit
            if lit is None or len(lit) > max_bytes:
                break
            fast.append(lit)
        else:
            return fast
    slots: list[str | None] = []
    for word in words:
        lit = word.lit
        if lit is not None and glob is None and len(lit) <= max_bytes:  # its own argument, as above
            if slots and slots[-1] is None:
                slots[-1] = lit
            else:
                slots.append(lit)
            continue
        if not slots or slots[-1] is not None:
            slots.append(None)
        for part in word.parts:
            if isinstance(part, Lit):
                if part.q == "":
                    if not part.text:
                        continue
                    piece: str = part.text
                else:
                    piece = wildcard_escape(part.text, fedora)
                cur = slots[-1]
                slots[-1] = piece if cur is None else cur + piece
            elif isinstance(part, Var):
                name = part.name
                c0 = name[0]
                if c0.isdigit() or name in ("#", "*", "@"):
                    values = _special_values(name, part.quoted, scope)
                else:
                    v = get(name)
                    if not v:
                        values = []
                    elif part.quoted:
                        values = [v]
                    else:
                        values = v.split()
                for i, v in enumerate(values):
                    if i and slots[-1] is not None:
                        slots.append(None)
                    piece = wildcard_escape(v, fedora) if part.quoted else _var_escape(v)
                    cur = slots[-1]
                    slots[-1] = piece if cur is None else cur + piece
            else:  # I18n
                piece = wildcard_escape(_i18n_expand(part.text, get, scope, fedora), fedora)
                cur = slots[-1]
                slots[-1] = piece if cur is None else cur + piece
            last = slots[-1]
            if last is not None and len(last) > max_bytes and on_limit is not None:
                on_limit(len(last))
    if slots and slots[-1] is None:
        slots.pop()
    out: list[str] = []
    for s in slots:
        if s is None:  # cannot happen: NULL slots are reused; kept for safety
            continue
        if glob is not None:
            expanded = glob(s)
            if expanded is not None:
                out.extend(expanded)
                continue
        out.append(wildcard_unescape(s, fedora))
    return out
