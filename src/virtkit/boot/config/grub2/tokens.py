"""Tokens of GRUB 2's script language, and the prepared text they point into.

References:
    grub-core/script/yylex.l (GRUB 2.06): token kinds, reserved words, the ``WORD`` regex.
    grub-core/normal/main.c ``read_config_file_getline``: whole lines starting with ``#``
    are dropped before the lexer sees them; ``grub_file_getline`` drops every ``\\r``.

A configuration file is first turned into a :class:`ScriptText`: the text the
lexer really sees (``\\r`` removed, ``#`` lines removed, every line ending in a
newline, each line cut at a NUL byte as GRUB's C strings are) plus a map back to
the physical lines of the original file, so every token and every error can
name ``file:line:col``.
"""

from __future__ import annotations

import bisect
import enum
import functools
import re
from collections.abc import Callable

from virtkit.boot.config.source import Location, SourceFile

__all__ = ["KEYWORDS", "ScriptText", "Token", "TokenKind"]


class TokenKind(enum.Enum):
    """Token kinds; the names follow GRUB's ``GRUB_PARSER_TOKEN_*``."""

    WORD = "word"
    NAME = "name"  # a word that is also a valid variable/function name
    NEWLINE = "\\n"
    SEMI = ";"
    SEMI2 = ";;"
    AND = "&&"
    OR = "||"
    PIPE = "|"
    AMP = "&"
    LT = "<"
    GT = ">"
    LBR = "{"
    RBR = "}"
    LSQBR2 = "[["
    RSQBR2 = "]]"
    # reserved words
    CASE = "case"
    DO = "do"
    DONE = "done"
    ELIF = "elif"
    ELSE = "else"
    ESAC = "esac"
    FI = "fi"
    FOR = "for"
    IF = "if"
    IN = "in"
    SELECT = "select"
    THEN = "then"
    UNTIL = "until"
    WHILE = "while"
    FUNCTION = "function"
    BAD = "bad"  # a lexical error; ``Token.text`` holds the message
    EOF = "end-of-input"

    # identity hash (C speed): the parser tests set membership once per token
    __hash__ = object.__hash__


# yylex.l: reserved words are recognised only when the whole token is exactly the word.
KEYWORDS: dict[str, TokenKind] = {
    k.value: k
    for k in (
        TokenKind.CASE, TokenKind.DO, TokenKind.DONE, TokenKind.ELIF, TokenKind.ELSE,
        TokenKind.ESAC, TokenKind.FI, TokenKind.FOR, TokenKind.IF, TokenKind.IN,
        TokenKind.SELECT, TokenKind.THEN, TokenKind.UNTIL, TokenKind.WHILE, TokenKind.FUNCTION,
    )
}
KEYWORDS["[["] = TokenKind.LSQBR2
KEYWORDS["]]"] = TokenKind.RSQBR2


class Token:
    """One token (a plain slotted class: the lexer makes hundreds of thousands).

    Attributes:
        kind: what it is.
        start: offset of its first character in the prepared text.
        end: offset just past its last character.
        text: the raw source text (for BAD: the error message).
        word: for WORD/NAME (and reserved words, which may be arguments): the parsed word.
    """

    __slots__ = ("end", "kind", "start", "text", "word")

    def __init__(self, kind: TokenKind, start: int, end: int, text: str = "", word: object = None) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.text = text
        self.word = word  # ast.Word; typed loosely to keep this module free of ast

    def __repr__(self) -> str:
        return f"Token({self.kind.name}, {self.start}, {self.end}, {self.text!r})"


_COMMENT_LINE = re.compile(r"(?m)^#[^\n]*\n")


def _file_maps(text: str) -> tuple[str, list[int], list[int]]:
    """``read_config_file``'s line handling: (prepared text, line starts, original line numbers)."""
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()  # text after the last newline is empty: no line
    parts: list[str] = []
    starts: list[int] = []
    numbers: list[int] = []
    pos = 0
    for i, line in enumerate(raw_lines):
        if "\r" in line:
            line = line.replace("\r", "")
        nul = line.find("\0")
        if nul >= 0:
            line = line[:nul]
        if line.startswith("#"):
            continue
        starts.append(pos)
        numbers.append(i + 1)
        parts.append(line)
        pos += len(line) + 1
    return ("\n".join(parts) + "\n" if parts else ""), starts, numbers


def _code_maps(code: str, first_line: int) -> tuple[str, list[int], list[int]]:
    """``grub_script_execute_sourcecode``'s line handling (only NUL cuts, no ``#``/``\\r`` removal)."""
    raw_lines = code.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    starts: list[int] = []
    numbers: list[int] = []
    pos = 0
    kept: list[str] = []
    for i, line in enumerate(raw_lines):
        nul = line.find("\0")
        if nul >= 0:
            line = line[:nul]
        starts.append(pos)
        numbers.append(first_line + i)
        kept.append(line)
        pos += len(line) + 1
    return ("\n".join(kept) + "\n" if kept else ""), starts, numbers


class ScriptText:
    """The text the GRUB lexer sees, with a map back to the original lines.

    The map (``line_starts``, ``line_numbers``) is only needed to name a location, so
    it is computed on first use: a clean file (no ``\\r``, no NUL) is prepared with one
    regular-expression pass and never split into lines unless something is reported.

    Args:
        source: the original file (for locations and excerpts).
        text: the prepared text (every line ends in ``\\n``).
        maps: computes (prepared text, line starts, original line numbers) again; called once,
            the first time a location is asked for.
        included_from: the location of the ``source``/``configfile`` that read this file.
        how: how it was included ("source ${config_directory}/custom.cfg").
    """

    __slots__ = ("_lines", "_maps", "how", "included_from", "source", "text")

    def __init__(
        self,
        source: SourceFile,
        text: str,
        *,
        maps: Callable[[], tuple[str, list[int], list[int]]],
        included_from: Location | None = None,
        how: str = "",
    ) -> None:
        self.source = source
        self.text = text
        self._maps = maps
        self._lines: tuple[list[int], list[int]] | None = None
        self.included_from = included_from
        self.how = how

    def _line_map(self) -> tuple[list[int], list[int]]:
        if self._lines is None:
            text, starts, numbers = self._maps()
            assert text == self.text, "the line map does not describe the prepared text"
            self._lines = (starts, numbers)
        return self._lines

    @property
    def line_starts(self) -> list[int]:
        """Offset in ``text`` where each prepared line starts."""
        return self._line_map()[0]

    @property
    def line_numbers(self) -> list[int]:
        """The original 1-based line number of each prepared line."""
        return self._line_map()[1]

    @classmethod
    def from_file(
        cls, source: SourceFile, *, included_from: Location | None = None, how: str = ""
    ) -> ScriptText:
        """Prepare a configuration file the way ``read_config_file`` reads it.

        ``\\r`` bytes vanish, a line is cut at a NUL, lines whose first byte is ``#``
        are dropped (even inside quotes or blocks), every kept line ends in ``\\n``.
        """
        raw = source.text
        maps = functools.partial(_file_maps, raw)
        if "\r" in raw or "\0" in raw:
            text = maps()[0]
        else:
            text = raw if not raw or raw.endswith("\n") else raw + "\n"
            if text.startswith("#") or "\n#" in text:
                text = _COMMENT_LINE.sub("", text)
        return cls(source, text, maps=maps, included_from=included_from, how=how)

    @classmethod
    def from_code(
        cls,
        source: SourceFile,
        code: str,
        *,
        first_line: int = 1,
        included_from: Location | None = None,
        how: str = "",
    ) -> ScriptText:
        """Prepare script text run by ``grub_script_execute_sourcecode`` (entry bodies, eval).

        Only splitting on ``\\n``: no ``#``-line or ``\\r`` removal happens there.
        """
        maps = functools.partial(_code_maps, code, first_line)
        if "\0" in code:
            text = maps()[0]
        else:
            text = code if not code or code.endswith("\n") else code + "\n"
        return cls(source, text, maps=maps, included_from=included_from, how=how)

    def line_index(self, offset: int) -> int:
        """0-based index of the prepared line holding ``offset``."""
        if not self.line_starts:
            return 0
        return max(0, bisect.bisect_right(self.line_starts, offset) - 1)

    def line_end(self, offset: int) -> int:
        """Offset just past the newline ending the line that holds ``offset``."""
        nl = self.text.find("\n", offset)
        return len(self.text) if nl < 0 else nl + 1

    def location(self, offset: int) -> Location:
        """The original ``file:line:col`` of a prepared-text offset."""
        if not self.line_starts:
            return Location(self.source, 1, 1, self.included_from, self.how)
        idx = self.line_index(min(offset, max(0, len(self.text) - 1)))
        col = offset - self.line_starts[idx] + 1
        return Location(self.source, self.line_numbers[idx], max(1, col), self.included_from, self.how)
