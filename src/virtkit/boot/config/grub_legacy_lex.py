"""GRUB legacy's reading of menu.lst: command lines, command words, numbers, device names.

References:
    GRUB 0.97 ``stage2/stage2.c`` (``get_line_from_config``), ``stage2/cmdline.c``
    (``find_command``, ``skip_to``), ``stage2/char_io.c`` (``safe_parse_maxint``) and the list of
    builtins in ``stage2/builtins.c`` (names and the BUILTIN_MENU flag); read for facts only.
    See :mod:`virtkit.boot.config.grub_legacy` for what the commands mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from virtkit.boot.config.source import Location, SourceFile

__all__ = [
    "DEFAULT_FILE_BYTES",
    "DEVICE_RE",
    "KNOWN_COMMANDS",
    "MAXINT",
    "MAX_FALLBACK_ENTRIES",
    "MENU_COMMANDS",
    "LegacyEntry",
    "LogicalLine",
    "command_name",
    "line_location",
    "parse_maxint",
    "skip_to",
    "split_logical_lines",
]

MAXINT = 0x7FFFFFFF  # stage2/shared.h MAXINT
MAX_FALLBACK_ENTRIES = 8  # stage2/shared.h
DEFAULT_FILE_BYTES = 9  # stage2.c: char buf[10]; buf[9] = 0

# Every command name GRUB 0.97 (plus the common distribution patches) knows.  A line whose first
# word is not one of these is skipped silently by GRUB (``find_command`` fails).
KNOWN_COMMANDS = frozenset(
    {
        "background", "blocklist", "boot", "bootfs", "bootp", "cat", "chainloader", "cmp", "color", "configfile",
        "debug", "default", "device", "dhcp", "displayapm", "displaymem", "dump", "embed", "fallback", "find",
        "findroot", "foreground", "fstest", "geometry", "gfxmenu", "halt", "help", "hiddenmenu", "hide",
        "ifconfig", "impsprobe", "initrd", "install", "ioprobe", "kernel", "kernel$", "lock", "makeactive", "map",
        "md5crypt", "module", "module$", "modulenounzip", "pager", "partnew", "parttype", "password", "pause",
        "quit", "rarp", "read", "reboot", "root", "rootnoverify", "savedefault", "serial", "setkey", "setup",
        "splashimage", "terminal", "terminfo", "testload", "testvbe", "tftpserver", "timeout", "title", "unhide",
        "uppermem", "uuid", "vbeprobe",
    }
)
# Commands flagged BUILTIN_MENU: the only ones run before the first ``title``.
MENU_COMMANDS = frozenset(
    {
        "background", "bootp", "color", "default", "dhcp", "fallback", "foreground", "gfxmenu", "hiddenmenu",
        "hide", "ifconfig", "pager", "password", "rarp", "serial", "setkey", "splashimage", "terminal", "terminfo",
        "tftpserver", "timeout", "title", "unhide",
    }
)

DEVICE_RE = re.compile(r"^\((?P<drive>hd|fd|cd|nd)(?P<num>\d*)(?:,(?P<part>\d+))?(?:,(?P<bsd>[a-h]))?\)")


@dataclass(frozen=True)
class LogicalLine:
    """One command line as GRUB's ``get_line_from_config`` returns it."""

    lineno: int  # physical line where it starts (1-based)
    col: int  # column of its first character
    text: str


def split_logical_lines(text: str) -> list[LogicalLine]:
    """Split a menu.lst into command lines exactly as GRUB legacy reads them.

    CR is dropped, TAB becomes a space, leading spaces are skipped, ``#`` as the first
    non-space character makes the rest a comment, and a line ending in a backslash continues
    on the next line (the backslash becomes a space) - in comments too.  A NUL ends the
    command (GRUB works on C strings).
    """
    out: list[LogicalLine] = []
    parts: list[str] = []
    start_line = 0
    start_col = 1
    in_comment = False
    for lineno, raw in enumerate(text.split("\n"), 1):
        s = raw
        if "\r" in s:
            s = s.replace("\r", "")
        if "\t" in s:
            s = s.replace("\t", " ")
        cont = s.endswith("\\")
        if in_comment:
            in_comment = cont
            continue
        if not parts:
            stripped = s.lstrip(" ")
            if not stripped or (cont and stripped == "\\"):
                continue  # empty line, or a lone continuation at pos 0 (its space is dropped)
            if stripped.startswith("#"):
                in_comment = cont
                continue
            start_line = lineno
            start_col = len(s) - len(stripped) + 1
            s = stripped
        if cont:
            parts.append(s[:-1] + " ")
            continue
        if parts:
            parts.append(s)
            line = "".join(parts)
            parts = []
        else:
            line = s
        if "\0" in line:
            line = line.split("\0", 1)[0]
        if line:
            out.append(LogicalLine(start_line, start_col, line))
    if parts:
        line = "".join(parts).split("\0", 1)[0]
        if line.strip(" "):
            out.append(LogicalLine(start_line, start_col, line))
    return out


_SKIP_WORD_EQ = re.compile(r"[^ \t=]*[ \t=]*")
_SKIP_WORD = re.compile(r"[^ \t]*[ \t]*")


def skip_to(after_equal: bool, s: str) -> str:
    """GRUB's ``skip_to``: skip the current word, then the blanks (and ``=`` if asked) after it."""
    m = (_SKIP_WORD_EQ if after_equal else _SKIP_WORD).match(s)
    return s[m.end() :] if m else s


_COMMAND_RE = re.compile(r"[^ \t=]*")


def command_name(line: str) -> str:
    """The command word: up to the first blank or ``=`` (``find_command``)."""
    m = _COMMAND_RE.match(line)
    return m.group(0) if m else ""


def parse_maxint(s: str) -> tuple[int | None, str, str | None]:
    """GRUB legacy's ``safe_parse_maxint``.

    Returns:
        ``(value, rest, error)``: value None with an error text when no digit was read or the
        number overflows 2^31-1; ``rest`` is the text after the digits.
    """
    i = 0
    base = 10
    if len(s) >= 2 and s[0] == "0" and s[1] in "xX":
        i = 2
        base = 16
    value = 0
    found = False
    while i < len(s):
        c = s[i].lower()
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif base == 16 and "a" <= c <= "f":
            d = ord(c) - 87
        else:
            break
        found = True
        if value > (MAXINT - d) // base:
            return None, s[i:], "number overflow"
        value = value * base + d
        i += 1
    if not found:
        return None, s, "not a number"
    return value, s[i:], None


@dataclass
class LegacyEntry:
    """A ``title`` and the command lines after it."""

    title: str
    start: LogicalLine
    lines: list[LogicalLine] = field(default_factory=list)


def line_location(src: SourceFile, ln: LogicalLine) -> Location:
    return Location(file=src, line=ln.lineno, col=ln.col)
