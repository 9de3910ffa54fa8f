"""The syntax tree of a GRUB 2 script: frozen dataclasses, no behaviour.

References:
    grub-core/script/parser.y (GRUB 2.06): the grammar these nodes mirror.
    grub-core/script/yylex.l: the argument part types (``GRUB_SCRIPT_ARG_TYPE_*``).

A :class:`Word` is a list of parts, kept as GRUB keeps them so expansion can
reproduce GRUB exactly:

=================  ==========================================================
part               GRUB arg type / meaning
=================  ==========================================================
``Lit(q="")``      TEXT: unquoted text, backslash escapes still in it
``Lit(q="'")``     SQSTR: single-quoted text, literal
``Lit(q='"')``     DQSTR: double-quoted text with ``\\$ \\\\ \\"`` already resolved
``Var(quoted=F)``  VAR: ``$x``/``${x}``, value split on whitespace
``Var(quoted=T)``  DQVAR: ``"$x"``, value kept whole
``I18n``           GETTEXT: ``$"..."``, expanded at run time
=================  ==========================================================

A command's trailing ``{ ... }`` is a :class:`Block`: its exact raw text (what
``menuentry`` stores and re-parses every time the entry runs) and the statements
it parsed to (only used to report syntax errors when it is defined).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Block",
    "Command",
    "For",
    "FunctionDef",
    "I18n",
    "If",
    "Lit",
    "Part",
    "Stmt",
    "Unit",
    "Var",
    "While",
    "Word",
]


@dataclass(frozen=True, slots=True)
class Lit:
    """Literal text.  ``q`` is "" (unquoted, raw escapes), "'" or '"'."""

    text: str
    q: str = ""


@dataclass(frozen=True, slots=True)
class Var:
    """A variable reference: a name, a positional number or one of ``? # * @``."""

    name: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class I18n:
    """A ``$"..."`` string (gettext); ``text`` as the lexer left it."""

    text: str


Part = Lit | Var | I18n


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a command: its parts and its raw source text (equal words are shared)."""

    parts: tuple[Part, ...]
    raw: str = ""
    # the word's one argument when it needs no expansion at all: only literal parts and no
    # backslash (escaping and unescaping are then the identity); None otherwise
    lit: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        texts = []
        for part in self.parts:
            if type(part) is not Lit or not (part.text or part.q):  # an empty unquoted text is no argument
                return
            texts.append(part.text)
        joined = "".join(texts)
        if texts and "\\" not in joined:
            object.__setattr__(self, "lit", joined)

    @property
    def is_plain(self) -> bool:
        """True if the word is unquoted literal text without escapes or variables."""
        return len(self.parts) == 1 and isinstance(self.parts[0], Lit) and self.parts[0].q == "" and "\\" not in self.parts[0].text


class Block:
    """A ``{ ... }`` block argument.

    Attributes:
        text: the raw text between the braces (what ``menuentry`` stores).
        body: its statements.
        pos: offset of the ``{``.
        groups: the statements split the way GRUB splits ``text`` into units when it runs
            it on its own (at newlines between top-level commands), so an entry body can
            run without being parsed again.

    A block whose text the parser has proved well-formed without building it (see
    ``parser.skim_block``) is *deferred*: ``body`` and ``groups`` are parsed from the same
    script text the first time they are asked for - GRUB parses every block of a file but
    runs only the entries it boots, so most bodies of a large menu are never needed.
    """

    __slots__ = ("_body", "_build", "_groups", "pos", "text")

    def __init__(self, text: str, body: tuple[Stmt, ...] = (), pos: int = 0, groups: tuple[tuple[Stmt, ...], ...] = ()) -> None:
        self.text = text
        self.pos = pos
        self._body: tuple[Stmt, ...] | None = body
        self._groups: tuple[tuple[Stmt, ...], ...] | None = groups
        self._build: Callable[[], Block] | None = None

    @classmethod
    def deferred(cls, text: str, pos: int, build: Callable[[], Block]) -> Block:
        """A block whose statements ``build()`` parses when first needed."""
        b = cls(text, (), pos, ())
        b._body = b._groups = None
        b._build = build
        return b

    def _force(self) -> None:
        build = self._build
        assert build is not None
        parsed = build()
        assert parsed.text == self.text and parsed.pos == self.pos, "a deferred block parsed to another block"
        self._body, self._groups, self._build = parsed.body, parsed.groups, None

    @property
    def body(self) -> tuple[Stmt, ...]:
        if self._body is None:
            self._force()
        assert self._body is not None
        return self._body

    @property
    def groups(self) -> tuple[tuple[Stmt, ...], ...]:
        if self._groups is None:
            self._force()
        assert self._groups is not None
        return self._groups

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Block):
            return NotImplemented
        return (self.text, self.pos, self.body, self.groups) == (other.text, other.pos, other.body, other.groups)

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside: never a dict key

    def __repr__(self) -> str:
        state = "deferred" if self._build is not None else f"{len(self.body)} statements"
        return f"Block({self.text[:30]!r}..., pos={self.pos}, {state})"


@dataclass(frozen=True, slots=True)
class Command:
    """A simple command: words, an optional trailing block, its source offset."""

    words: tuple[Word, ...]
    block: Block | None = None
    pos: int = 0


@dataclass(frozen=True, slots=True)
class If:
    """``if c1; then b1; elif c2; then b2; else b3; fi``: (condition, body) pairs + else."""

    branches: tuple[tuple[tuple[Stmt, ...], tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...] | None
    pos: int = 0


@dataclass(frozen=True, slots=True)
class For:
    """``for NAME in WORDS; do BODY; done``."""

    var: str
    words: tuple[Word, ...]
    body: tuple[Stmt, ...]
    pos: int = 0


@dataclass(frozen=True, slots=True)
class While:
    """``while COND; do BODY; done`` (``until`` when ``until`` is True)."""

    cond: tuple[Stmt, ...]
    body: tuple[Stmt, ...]
    until: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class FunctionDef:
    """``function NAME { BODY; }`` (only at the top level of a script)."""

    name: str
    body: tuple[Stmt, ...]
    pos: int = 0


Stmt = Command | If | For | While


@dataclass(frozen=True, slots=True)
class Unit:
    """What GRUB parses and then runs in one go: one line plus the lines an open construct pulls in.

    Attributes:
        stmts: the statements, in order (empty if the unit failed to parse).
        functions: functions defined while parsing (GRUB defines them even if a later
            part of the same unit is a syntax error).
        error: the syntax error message, or None.
        error_pos: offset of the token where the error was detected (an unterminated
            quote or block: where it was opened, which is what a person needs to see).
        start: offset of the unit's first character; end: just past its last line.
    """

    stmts: tuple[Stmt, ...]
    functions: tuple[FunctionDef, ...] = ()
    error: str | None = None
    error_pos: int = 0
    start: int = 0
    end: int = 0
    error_end: int = 0  # just past the token where GRUB detects the error (its line is GRUB's)
