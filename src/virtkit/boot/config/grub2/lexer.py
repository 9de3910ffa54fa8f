"""The GRUB 2 script lexer: prepared text -> tokens with words made of parts.

References:
    grub-core/script/yylex.l (GRUB 2.06): the flex rules this module reproduces.
    grub-core/script/lexer.c: line-at-a-time feeding (``grub_script_lexer_yywrap``).

Modes.  The parser asks for one token at a time in COMMAND mode; inside a word
the lexer switches mode as GRUB's flex start conditions do:

============  ===============================================================
mode          what is recognised
============  ===============================================================
COMMAND       blanks (space, tab), ``# comment`` where a token may start, newline,
              ``|| && ;; | & ; < > { }``, and words.  A word is a run of plain
              characters (anything but ``{ } | & $ ; < >``, blanks, quotes and
              backslash), ``\\c`` escapes, quoted strings and ``$`` references,
              glued together.  ``\\<newline>`` vanishes (line continuation).
              Reserved words (``if then elif else fi for in do done while until
              function case esac select``) and ``[[ ]]`` only when the whole
              token is exactly that text.
SQ            ``'...'``: everything literal up to the next ``'`` (newlines too).
DQ            ``"..."``: ``\\$ \\\\ \\"`` give the character, ``\\<newline>``
              vanishes, any other backslash stays; ``$name ${name} $N ${N}
              $? $# $* $@`` (and braced forms) are references.
VARNAME       after ``$``: a name ``[A-Za-z_][A-Za-z0-9_]*`` (greedy), digits
              (greedy: ``$10`` is the tenth argument), one of ``? # * @``, or
              one of those in braces.  Anything else is a lexical error.
I18N          ``$"..."``: like DQ but ``$`` is literal here (expanded at run time).
============  ===============================================================

Errors are BAD tokens (``Token.text`` is the message); the parser turns them
into syntax errors.  An unterminated quote runs to the end of the text, as it
swallows the rest of the file in GRUB.
"""

from __future__ import annotations

import enum
import re

from virtkit.boot.config.grub2.ast import I18n, Lit, Part, Var, Word
from virtkit.boot.config.grub2.tokens import KEYWORDS, ScriptText, Token, TokenKind

__all__ = ["SIMPLE_WORD_PATTERN", "LexMode", "Lexer"]


class LexMode(enum.Enum):
    """Lexer modes (see the module docstring)."""

    COMMAND = "command"
    SQ = "sq"
    DQ = "dq"
    VARNAME = "varname"
    I18N = "i18n"


_BLANKS = re.compile(r"[ \t]+")
_PLAIN = re.compile(r"[^{}|&$;<> \t\n'\"\\]+")  # yylex.l CHAR
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_FULL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[0-9]+")
_DQ_PLAIN = re.compile(r'[^"$\\]+')
_I18N_PLAIN = re.compile(r'[^"\\]+')
_BRACED_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#*@])\}")
_SPECIALS = frozenset("?#*@")
_VARREF = r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\}|[0-9]+|\{[0-9]+\}|[?#*@]|\{[?#*@]\})"
# A word made only of the easy parts (no backslash, no $"..."): its extent, for the cache.
_SIMPLE_WORD = re.compile(r"(?:[^{}|&$;<> \t\n'\"\\]++|'[^']*+'|\"(?:[^\"\\$]++|" + _VARREF + r")*+\"|" + _VARREF + ")++")  # possessive: no backtracking
SIMPLE_WORD_PATTERN = _SIMPLE_WORD.pattern
_FAST_WORD = re.compile(r"[ \t]*+(" + _SIMPLE_WORD.pattern + r")(?!['\"$\\])")
_WORD_CONTINUES = frozenset("'\"$\\")  # after a run of plain characters these extend the word
# Lines a parser skips between commands: blank, or blanks and a comment (NEWLINE tokens only).
_GAP = re.compile(r"(?:[ \t]*+(?:#[^\n]*+)?\n)*+")
# A command's first word when it is a simple word (not a comment).
_FIRST_WORD = re.compile(r"[ \t]*+(?!#)(" + _SIMPLE_WORD.pattern + r")(?!['\"$\\])")
# A run of such words after a command's first word, each after blanks, none a comment:
# exactly the tokens next_token would return one by one.
_SIMPLE_RUN = re.compile(r"(?:[ \t]++(?!#)(?:" + _SIMPLE_WORD.pattern + r")(?!['\"$\\]))*+")

_TWO_CHAR_OPS = {"||": TokenKind.OR, "&&": TokenKind.AND, ";;": TokenKind.SEMI2}
_ONE_CHAR_OPS = {
    "|": TokenKind.PIPE,
    "&": TokenKind.AMP,
    ";": TokenKind.SEMI,
    "<": TokenKind.LT,
    ">": TokenKind.GT,
    "{": TokenKind.LBR,
    "}": TokenKind.RBR,
}


class _WordError(Exception):
    def __init__(self, message: str, pos: int, end: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.end = end


class Lexer:
    """Turns a :class:`ScriptText` into tokens, one :meth:`next_token` call at a time.

    Attributes:
        pos: offset of the next unread character; the parser moves it to resync after errors.
    """

    # The batch readers (:meth:`command_start`, :meth:`simple_words`) are shortcuts that
    # must give the parser exactly what :meth:`next_token` alone gives; tests turn them off
    # to compare.
    batch = True

    def __init__(self, script: ScriptText) -> None:
        self.script = script
        self.text = script.text
        self.n = len(self.text)
        self.pos = 0
        # words repeat endlessly in generated configs: a word's parts depend on its text
        # alone, so equal words share one Word object
        self._words: dict[str, tuple[TokenKind, Word]] = {}

    def fork(self, pos: int) -> Lexer:
        """A lexer over the same script at ``pos``, sharing this one's word cache."""
        other = Lexer(self.script)
        other._words = self._words
        other.pos = pos
        return other

    def command_start(self) -> tuple[bool, Word | None, int]:
        """Skip the NEWLINE tokens that follow; then take a command's first word if it is simple.

        Returns:
            (whether a newline was skipped, the first word or None, its offset).  None
            when the next token is anything else (a reserved word, an operator, a word
            with harder parts, the end): :meth:`next_token` reads it then.
        """
        text = self.text
        p = self.pos
        gap = _GAP.match(text, p).end()  # type: ignore[union-attr]  # matches the empty string
        self.pos = gap
        m = _FIRST_WORD.match(text, gap)
        if m is None:
            return gap > p, None, 0
        raw = m.group(1)
        hit = self._words.get(raw)
        if hit is None:
            hit = self._word_of(raw)
        kind = hit[0]
        if kind is not TokenKind.WORD and kind is not TokenKind.NAME:
            return gap > p, None, 0
        self.pos = m.end()
        return gap > p, hit[1], m.start(1)

    def simple_words(self) -> list[Word] | None:
        """The run of simple words that follows, as one batch (None: there is none).

        Equivalent to calling :meth:`next_token` while it returns WORD/NAME/reserved-word
        tokens made only of easy parts (no backslash, no ``$"..."``), but with one
        regular-expression pass for the whole run; only what a command's arguments need
        (the words, not their positions) is produced.  A run holding ``[[`` or ``]]``
        (tokens of their own kind) is left to :meth:`next_token`.
        """
        text = self.text
        p = self.pos
        end = _SIMPLE_RUN.match(text, p).end()  # type: ignore[union-attr]  # matches the empty string
        if end == p:
            return None
        raws = _SIMPLE_WORD.findall(text, p, end)
        if "[[" in raws or "]]" in raws:
            return None
        cache = self._words
        out: list[Word] = []
        for raw in raws:
            hit = cache.get(raw)
            if hit is None:
                hit = self._word_of(raw)
            out.append(hit[1])
        self.pos = end
        return out

    def _word_of(self, raw: str) -> tuple[TokenKind, Word]:
        """(kind, word) for the text of one simple word, cached.

        A word's parts depend on its text alone, so it is read by a scratch lexer over
        just that text (the batch readers know the text of a word, not its offset).
        """
        scratch = Lexer.__new__(Lexer)
        scratch.text = raw
        scratch.n = len(raw)
        word, wend = scratch._read_word(0)
        assert wend == len(raw)
        kind = TokenKind.WORD
        if word.is_plain and raw == word.parts[0].text:  # type: ignore[union-attr]
            kind = KEYWORDS.get(raw) or (TokenKind.NAME if _NAME_FULL.match(raw) else TokenKind.WORD)
        hit = (kind, word)
        if len(self._words) < 65536:
            self._words[raw] = hit
        return hit

    def next_token(self, mode: LexMode = LexMode.COMMAND) -> Token:
        """The next token in COMMAND mode (the only mode a parser starts a token in)."""
        text = self.text
        n = self.n
        p = self.pos
        if p < n and text[p] == "\n":  # the commonest token: the end of a command's line
            self.pos = p + 1
            return Token(TokenKind.NEWLINE, p, p + 1, "\n")
        m = _FAST_WORD.match(text, p)  # the common case: blanks, then a cached word
        if m is not None:
            hit = self._words.get(m.group(1))
            if hit is not None:
                self.pos = end = m.end()
                return Token(hit[0], m.start(1), end, m.group(1), hit[1])
        while True:
            m = _BLANKS.match(text, p)
            if m:
                p = m.end()
            if p >= n:
                self.pos = p
                return Token(TokenKind.EOF, p, p)
            c = text[p]
            if c == "#":  # a comment: only here, where a token may start
                nl = text.find("\n", p)
                p = n if nl < 0 else nl
                continue
            break
        if c == "\n":
            self.pos = p + 1
            return Token(TokenKind.NEWLINE, p, p + 1, "\n")
        two = text[p : p + 2]
        if two in _TWO_CHAR_OPS:
            self.pos = p + 2
            return Token(_TWO_CHAR_OPS[two], p, p + 2, two)
        if c in _ONE_CHAR_OPS:
            self.pos = p + 1
            return Token(_ONE_CHAR_OPS[c], p, p + 1, c)
        m = _SIMPLE_WORD.match(text, p)
        if m is not None:
            end = m.end()
            if end >= n or text[end] not in _WORD_CONTINUES:
                raw = m.group()
                hit = self._words.get(raw)
                if hit is None:
                    hit = self._word_of(raw)
                self.pos = end
                return Token(hit[0], p, end, raw, hit[1])
        try:
            word, end = self._read_word(p)
        except _WordError as exc:
            self.pos = exc.end
            return Token(TokenKind.BAD, exc.pos, exc.end, exc.message)
        if end == p:  # a lone `$` that starts no valid reference
            self.pos = p + 1
            return Token(TokenKind.BAD, p, p + 1, "`$` must be followed by a variable name")
        self.pos = end
        raw = text[p:end]
        kind = TokenKind.WORD
        if word.is_plain and raw == word.parts[0].text:  # type: ignore[union-attr]
            plain = word.parts[0].text  # type: ignore[union-attr]
            kw = KEYWORDS.get(plain)
            if kw is not None:
                kind = kw
            elif _NAME_FULL.match(plain):
                kind = TokenKind.NAME
        return Token(kind, p, end, raw, word)

    # -- words -------------------------------------------------------------

    def _read_word(self, start: int) -> tuple[Word, int]:
        """Read one word starting at ``start``; return it and the offset after it."""
        text = self.text
        n = self.n
        p = start
        parts: list[Part] = []
        buf: list[str] = []  # pending unquoted text (raw, escapes kept)
        pending_error: _WordError | None = None

        def flush() -> None:
            if buf:
                parts.append(Lit("".join(buf)))
                buf.clear()

        while p < n:
            c = text[p]
            if c == "\\":
                if p + 1 >= n:
                    raise _WordError("backslash at the end of the file", p, n)
                if text[p + 1] == "\n":  # line continuation: vanishes
                    p += 2
                    if p >= n:
                        raise _WordError("line continuation at the end of the file", p - 2, n)
                    continue
                buf.append(text[p : p + 2])
                p += 2
            elif c == "'":
                close = text.find("'", p + 1)
                if close < 0:
                    raise _WordError("unterminated single-quoted string", p, n)
                flush()
                parts.append(Lit(text[p + 1 : close], "'"))
                p = close + 1
            elif c == '"':
                flush()
                p, err = self._read_dq(p, parts)
                if err is not None and pending_error is None:
                    pending_error = err
            elif c == "$":
                if p + 1 < n and text[p + 1] == '"':
                    flush()
                    p = self._read_i18n(p, parts)
                    continue
                ref, after = self._read_var(p + 1)
                if ref is None:
                    break  # the word ends before this `$`; the next token is BAD
                flush()
                parts.append(Var(ref, False))
                p = after
            else:
                m = _PLAIN.match(text, p)
                if not m:
                    break
                buf.append(m.group())
                p = m.end()
        flush()
        if pending_error is not None:
            raise _WordError(pending_error.message, pending_error.pos, p)
        return Word(tuple(parts), text[start:p]), p

    def _read_var(self, p: int) -> tuple[str | None, int]:
        """VARNAME mode at ``p`` (just after ``$``): the reference and the offset after it."""
        text = self.text
        if p >= self.n:
            return None, p
        c = text[p]
        if c == "{":
            m = _BRACED_VAR.match(text, p)
            if not m:
                return None, p
            return m.group(1), m.end()
        m = _NAME.match(text, p)
        if m:
            return m.group(), m.end()
        m = _DIGITS.match(text, p)
        if m:
            return m.group(), m.end()
        if c in _SPECIALS:
            return c, p + 1
        return None, p

    def _read_dq(self, start: int, parts: list[Part]) -> tuple[int, _WordError | None]:
        """DQ mode from the opening quote; appends parts, returns the offset after the close."""
        text = self.text
        n = self.n
        p = start + 1
        buf: list[str] = []
        error: _WordError | None = None
        while True:
            if p >= n:
                raise _WordError("unterminated double-quoted string", start, n)
            c = text[p]
            if c == '"':
                parts.append(Lit("".join(buf), '"'))
                return p + 1, error
            if c == "\\":
                if p + 1 >= n:
                    raise _WordError("unterminated double-quoted string", start, n)
                nxt = text[p + 1]
                if nxt in '$\\"':
                    buf.append(nxt)
                    p += 2
                elif nxt == "\n":
                    p += 2
                else:  # any other backslash stays, the next character is read normally
                    buf.append("\\")
                    p += 1
                continue
            if c == "$":
                ref, after = self._read_var(p + 1)
                if ref is None:
                    if error is None:
                        error = _WordError("`$` inside double quotes must be followed by a variable name", p, p + 1)
                    buf.append("$")
                    p += 1
                    continue
                parts.append(Lit("".join(buf), '"'))
                buf.clear()
                parts.append(Var(ref, True))
                p = after
                continue
            m = _DQ_PLAIN.match(text, p)
            assert m is not None
            buf.append(m.group())
            p = m.end()

    def _read_i18n(self, start: int, parts: list[Part]) -> int:
        """I18N mode from ``$"``; appends one I18n part, returns the offset after the close."""
        text = self.text
        n = self.n
        p = start + 2
        buf: list[str] = []
        while True:
            if p >= n:
                raise _WordError('unterminated $"..." string', start, n)
            c = text[p]
            if c == '"':
                parts.append(I18n("".join(buf)))
                return p + 1
            if c == "\\":
                if p + 1 >= n:
                    raise _WordError('unterminated $"..." string', start, n)
                nxt = text[p + 1]
                if nxt == "\\":
                    buf.append("\\\\")
                    p += 2
                elif nxt == '"':
                    buf.append('"')
                    p += 2
                elif nxt == "\n":
                    p += 2
                else:
                    buf.append("\\")
                    p += 1
                continue
            m = _I18N_PLAIN.match(text, p)
            assert m is not None
            buf.append(m.group())
            p = m.end()
