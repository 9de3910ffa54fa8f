"""Tokens of the LVM2 text metadata format (our own lexer; never ``eval``).

The format is LVM's configuration syntax::

    vg0 {                                  # a section: WORD "{" ... "}"
        id = "Zx1b2C-..."                   # WORD "=" STRING
        seqno = 7                          # WORD "=" WORD (a number)
        status = ["RESIZEABLE", "READ"]    # WORD "=" "[" value ("," value)* "]"
        ...
    }
    contents = "Text Format Volume Group"  # top-level settings after the VG section

Token kinds (one mode; there is nothing context-dependent in this format):

    WORD     a run of ``[A-Za-z0-9_.+-]`` and a few other name characters: section
             and key names, numbers ("7", "-1", "0.5").  The parser decides which.
    STRING   "..." with backslash escapes (``\\"`` and ``\\\\``); may not span lines.
    PUNCT    one of ``= { } [ ] ,``
    EOF      end of text

``#`` starts a comment that runs to the end of the line.  Every token carries
its 1-based line and column, and every error names them.  The number of
tokens is bounded by ``Limits.max_lvm_tokens``.

References:
    - LVM2 ``libdm/libdm-config.c`` (tokenizer: identifiers, strings with backslash
      escapes, ``#`` comments); read for facts.
    - ``lvm.conf(5)``, section "SYNTAX".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass

from virtkit.errors import CorruptStructure
from virtkit.limits import Limits

__all__ = ["Token", "TokenKind", "tokenize"]


class TokenKind(enum.Enum):
    WORD = "word"
    STRING = "string"
    PUNCT = "punct"
    EOF = "end of metadata"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # WORD: as written; STRING: unescaped contents; PUNCT: the character
    line: int
    col: int

    def describe(self) -> str:
        if self.kind is TokenKind.EOF:
            return "end of metadata"
        if self.kind is TokenKind.STRING:
            return f"string {self.text[:40]!r}"
        return repr(self.text[:40])


# One alternative per token kind; whitespace and comments are skipped.
_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t\r\n\f\v]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\[^\n])*")
  | (?P<word>[A-Za-z0-9_.+\-/:@]+)
  | (?P<punct>[={}\[\],])
    """,
    re.VERBOSE,
)
_UNESCAPE_RE = re.compile(r"\\(.)")


def tokenize(text: str, *, limits: Limits, where: str) -> Iterator[Token]:
    """Yield the tokens of ``text``, ending with one EOF token.

    Args:
        text: the metadata text.
        limits: ``max_lvm_tokens`` bounds the count.
        where: the metadata copy's location for messages.

    Raises:
        CorruptStructure: an unterminated string or a character outside the syntax,
            with line and column.
        LimitExceeded: more than ``max_lvm_tokens`` tokens.
    """
    pos = 0
    line = 1
    line_start = 0
    count = 0
    n = len(text)
    maximum = limits.max_lvm_tokens
    match = _TOKEN_RE.match
    while pos < n:
        m = match(text, pos)
        col = pos - line_start + 1
        if m is None:
            ch = text[pos]
            msg = "unterminated string" if ch == '"' else f"unexpected character {ch!r}"
            raise CorruptStructure(f"LVM metadata on {where}", f"line {line}:{col}: {msg}")
        kind = m.lastgroup
        end = m.end()
        if kind == "space":
            nl = text.count("\n", pos, end)
            if nl:
                line += nl
                line_start = text.rfind("\n", pos, end) + 1
        elif kind != "comment":
            count += 1
            if count > maximum:
                limits.check("max_lvm_tokens", count, f"LVM metadata on {where}")
            raw = m.group()
            if kind == "string":
                body = raw[1:-1]
                yield Token(TokenKind.STRING, _UNESCAPE_RE.sub(r"\1", body) if "\\" in body else body, line, col)
            elif kind == "word":
                yield Token(TokenKind.WORD, raw, line, col)
            else:
                yield Token(TokenKind.PUNCT, raw, line, col)
        pos = end
    yield Token(TokenKind.EOF, "", line, pos - line_start + 1)
