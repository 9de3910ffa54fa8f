"""GRUB's option parser for "extcmd" commands (``menuentry``, ``search``, ``echo``, ...).

References:
    grub-core/lib/arg.c (GRUB 2.06) ``grub_arg_parse``: short option groups, ``--opt=value``
    or the value as the next argument, ``--`` ends options, ``-h``/``-u``/``--help``/
    ``--usage`` unless the command defines them.  With ``GRUB_COMMAND_ACCEPT_DASH``
    unknown options become positional arguments; with ``GRUB_COMMAND_OPTIONS_AT_START``
    the first positional argument ends option parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ArgError", "HelpRequested", "Opt", "parse_args"]


@dataclass(frozen=True, slots=True)
class Opt:
    """One option: long name, short letter, whether it takes a value."""

    long: str | None
    short: str | None = None
    value: bool = False
    optional: bool = False
    repeatable: bool = False

    @property
    def key(self) -> str:
        return self.long or str(self.short)


class ArgError(Exception):
    """``grub_arg_parse`` failed; the message is GRUB's."""


class HelpRequested(Exception):
    """``-h``/``--help``/``-u``/``--usage``: GRUB prints help and does not run the command."""

    def __init__(self, usage: bool) -> None:
        super().__init__("usage" if usage else "help")
        self.usage = usage


_HELP = Opt("help", "h")
_USAGE = Opt("usage", "u")


def _find_short(options: tuple[Opt, ...], c: str) -> Opt | None:
    for o in options:
        if o.short == c:
            return o
    if c == "h":
        return _HELP
    if c == "u":
        return _USAGE
    return None


def _find_long(options: tuple[Opt, ...], name: str) -> Opt | None:
    for o in options:
        if o.long == name:
            return o
    if name == "help":
        return _HELP
    if name == "usage":
        return _USAGE
    return None


def _record(state: dict[str, Any], opt: Opt, value: str | None) -> None:
    if opt is _HELP:
        raise HelpRequested(False)
    if opt is _USAGE:
        raise HelpRequested(True)
    if opt.repeatable:
        state.setdefault(opt.key, []).append(value)
    else:
        state[opt.key] = value if opt.value else True


def parse_args(
    options: tuple[Opt, ...], argv: list[str], *, accept_dash: bool = False, options_at_start: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Split ``argv`` into option state and positional arguments.

    Returns:
        (state, positional): ``state[key]`` is True, the value, or a list for repeatable
        options; options not given are absent.

    Raises:
        ArgError: unknown option, missing or unexpected value (GRUB's message).
        HelpRequested: help or usage was asked for.
    """
    state: dict[str, Any] = {}
    pos: list[str] = []
    argc = len(argv)
    cur = 0
    while cur < argc:
        arg = argv[cur]
        if (pos and options_at_start) or not arg.startswith("-") or len(arg) == 1:
            pos.append(arg)
            cur += 1
            continue
        option: str | None = None
        opt: Opt | None
        if arg[1] != "-":
            if accept_dash and any(_find_short(options, c) is None for c in arg[1:]):
                pos.append(arg)
                cur += 1
                continue
            letters = arg[1:]
            opt = None
            for j, c in enumerate(letters):
                opt = _find_short(options, c)
                if opt is None:
                    raise ArgError(f"unknown argument `-{c}'")
                if j < len(letters) - 1:
                    if opt.value and not opt.optional:
                        raise ArgError(f"missing mandatory option for `{opt.long}'")
                    _record(state, opt, None)
                    continue
                if opt.value and cur + 1 < argc:
                    nxt = argv[cur + 1]
                    if not opt.optional or len(nxt) < 2 or nxt[0] != "-":
                        option = nxt
                        cur += 1
            assert opt is not None
        else:
            if len(arg) == 2:
                pos.extend(argv[cur + 1 :])
                break
            eq = arg.find("=")
            if eq >= 0:
                name = arg[2:eq]
                option = arg[eq + 1 :]
            else:
                name = arg[2:]
            opt = _find_long(options, name)
            if option is None and cur + 1 < argc and not argv[cur + 1].startswith("-") and opt is not None and opt.value:
                cur += 1
                option = argv[cur]
            if opt is None:
                if accept_dash:
                    pos.append(arg)
                    cur += 1
                    continue
                raise ArgError(f"unknown argument `{arg}'")
        if opt.value and not (option is None and opt.optional):
            if option is None:
                raise ArgError(f"missing mandatory option for `{opt.long}'")
            _record(state, opt, option)
        else:
            if option is not None:
                raise ArgError(f"a value was assigned to the argument `{arg}' while it doesn't require an argument")
            _record(state, opt, None)
            if opt.value:  # an optional value that was not given
                state[opt.key] = None if not opt.repeatable else state[opt.key]
        cur += 1
    return state, pos
