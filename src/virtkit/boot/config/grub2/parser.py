"""The GRUB 2 script parser: tokens -> units of statements, with GRUB's error recovery.

References:
    grub-core/script/parser.y (GRUB 2.06): the grammar, quoted rule by rule below.
    grub-core/script/lexer.c ``grub_script_lexer_yywrap``: a parse ends at the end of
    a line unless a construct is open (``lexerstate->refs``) or a quote is unfinished.
    grub-core/normal/main.c ``read_config_file``: parse one unit, run it, read the next.

GRUB does not parse a file as a whole.  It reads one line, parses it - pulling in
more lines only while an ``if``/``for``/``while``/``until``/``function``/``{`` is
open - runs what it parsed, and goes on with the next line.  A :class:`Unit` is
that piece.  A syntax error makes the whole unit fail; the lexer stops reading
at the line where the error was detected, so parsing resumes on the *next*
physical line: the rest of a broken block then runs as top-level statements.

Grammar (parser.y, simplified to what is accepted)::

    script     : newlines0 | script statement delimiter newlines0
    statement  : command | function
    command    : grubcmd | ifcmd | forcmd | whilecmd | untilcmd
    grubcmd    : word arguments0 block0          word: NAME | WORD
    argument   : word | any reserved word except [[ ]]
    block      : "{" commands1 delimiters0 "}"
    commands1  : newlines0 command | commands1 delimiters1 command
    delimiter  : ";" | "\\n"          delimiters1: delimiter "\\n"*
    function   : "function" NAME newlines0 "{" commands1 delimiters1 "}"
    ifcmd      : "if" ifclause "fi"
    ifclause   : commands1 delimiters1 "then" commands1 delimiters1
                 [ "else" commands1 delimiters1 | "elif" ifclause ]
    forcmd     : "for" NAME "in" arguments0 delimiters1 "do" commands1 delimiters1 "done"
    whilecmd   : "while" commands1 delimiters1 "do" commands1 delimiters1 "done"
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from virtkit.boot.config.grub2.ast import Block, Command, For, FunctionDef, If, Stmt, Unit, While, Word
from virtkit.boot.config.grub2.lexer import SIMPLE_WORD_PATTERN, Lexer
from virtkit.boot.config.grub2.tokens import ScriptText, Token, TokenKind
from virtkit.errors import ConfigSyntaxError

__all__ = ["describe_token", "iter_units", "parse_all", "skim_block"]

_ARG_KINDS = frozenset(
    {
        TokenKind.WORD, TokenKind.NAME, TokenKind.CASE, TokenKind.DO, TokenKind.DONE,
        TokenKind.ELIF, TokenKind.ELSE, TokenKind.ESAC, TokenKind.FI, TokenKind.FOR,
        TokenKind.IF, TokenKind.IN, TokenKind.SELECT, TokenKind.THEN, TokenKind.UNTIL,
        TokenKind.WHILE, TokenKind.FUNCTION,
    }
)
_CMD_START = frozenset({TokenKind.WORD, TokenKind.NAME, TokenKind.IF, TokenKind.FOR, TokenKind.WHILE, TokenKind.UNTIL})
_DELIMS = frozenset({TokenKind.SEMI, TokenKind.NEWLINE})

# Nesting of if/for/while/blocks the recursive-descent parser accepts.  GRUB's bison
# parser has a stack bound too (YYMAXDEPTH); real configs nest three or four deep.
MAX_NESTING = 64

_NO_GRAMMAR = {
    TokenKind.SEMI2: "`;;` is not GRUB syntax",
    TokenKind.AND: "`&&` is not GRUB syntax (GRUB has no && or ||; use if/then)",
    TokenKind.OR: "`||` is not GRUB syntax (GRUB has no && or ||; use if/then)",
    TokenKind.PIPE: "unquoted `|`: GRUB has no pipes (quote it)",
    TokenKind.AMP: "unquoted `&`: GRUB has no background jobs (quote it)",
    TokenKind.LT: "unquoted `<`: GRUB has no redirection (quote it: \"<\")",
    TokenKind.GT: "unquoted `>`: GRUB has no redirection (quote it: \">\")",
    TokenKind.LSQBR2: "`[[` is not GRUB syntax (use `[`)",
    TokenKind.RSQBR2: "`]]` is not GRUB syntax (use `]`)",
    TokenKind.CASE: "`case` is not supported by GRUB",
    TokenKind.ESAC: "`esac` is not supported by GRUB",
    TokenKind.SELECT: "`select` is not supported by GRUB",
}


# -- skimming a block --------------------------------------------------------------
#
# The bodies grub-mkconfig writes are lines of simple commands and if/else/fi, and a
# submenu's body is such lines and menuentry blocks.  One regular expression (C speed,
# possessive, no backtracking) recognises exactly that much of the grammar; a block it
# matches is certainly accepted by the parser above, ends at the same `}`, and is parsed
# only when its statements are needed.  Anything else (an operator, a `for`, a backslash,
# a block on one line, a syntax error) does not match and is parsed at once as usual.
_W = "(?:" + SIMPLE_WORD_PATTERN + r")(?!['\"$\\])"  # a word of simple parts, whole
_KW = r"(?:if|then|elif|else|fi|for|in|do|done|while|until|function|case|esac|select|\[\[|\]\])"
_END = r"[{}|&;<> \t\n]"  # what may follow a word (a keyword is one only when whole)
_FIRST = rf"(?!{_KW}{_END}){_W}"  # a command name: a WORD/NAME token, never a reserved word
_ARG = rf"(?!(?:\[\[|\]\]){_END}){_W}"  # an argument: reserved words too, but not [[ ]]
_CMD = rf"{_FIRST}(?:[ \t]++(?!#){_ARG})*+"
_EOL = r"(?:[ \t]++#[^\n]*+|[ \t]*+)\n"  # a comment only after a blank
_GAP = r"(?:[ \t]*+(?:#[^\n]*+)?\n)*+"
_SIMPLE_LINE = rf"[ \t]*+{_CMD}{_EOL}"
_IF_ONE_LINE = rf"[ \t]*+if[ \t]++{_CMD}[ \t]*+;[ \t]*+then[ \t]++{_CMD}(?:[ \t]*+;[ \t]*+{_CMD})*+[ \t]*+;[ \t]*+fi(?=[ \t\n]){_EOL}"
_LINES = rf"(?:{_GAP}(?>{_SIMPLE_LINE}|{_IF_ONE_LINE}))++"
_IF_BLOCK = (rf"[ \t]*+if[ \t]++{_CMD}[ \t]*+;[ \t]*+then(?=[ \t\n]){_EOL}{_LINES}"
             rf"(?:{_GAP}[ \t]*+else(?=[ \t\n]){_EOL}{_LINES})?+{_GAP}[ \t]*+fi(?=[ \t\n]){_EOL}")
_BODY = rf"(?:{_GAP}(?>{_SIMPLE_LINE}|{_IF_ONE_LINE}|{_IF_BLOCK}))++"
_NESTED = rf"[ \t]*+{_CMD}[ \t]*+\{{[ \t]*+\n{_BODY}{_GAP}[ \t]*+\}}{_EOL}"
_SKIM = re.compile(rf"[ \t]*+\n(?:{_GAP}(?>{_SIMPLE_LINE}|{_IF_ONE_LINE}|{_IF_BLOCK}|{_NESTED}))++{_GAP}[ \t]*+\}}")


def skim_block(text: str, start: int) -> int | None:
    """The offset just past the ``}`` closing the block whose ``{`` ends at ``start``, if the
    block is of the simple shape the parser certainly accepts (see above); None otherwise."""
    m = _SKIM.match(text, start)
    return m.end() if m is not None else None


def _parse_deferred_block(lex: Lexer, lbr: int, depth: int, open_depth: int) -> Block:
    """Parse the block whose ``{`` is at ``lbr`` as :meth:`_UnitParser.block` would have.

    ``lex`` is the lexer that skimmed it: its word cache is shared, not its position.
    """
    script = lex.script
    lexer = lex.fork(lbr)
    parser = _UnitParser(lexer)
    parser.depth = depth
    parser.open = [("`{`", lbr)] * open_depth
    parser.skim = False  # its inner blocks too: whoever needs this block runs what is in it
    try:
        return parser.block()
    except _SyntaxError as exc:  # skim_block passes only blocks the parser accepts
        raise ConfigSyntaxError(f"internal error: a skimmed block does not parse: {exc.message}",
                                script.location(exc.tok.start)) from None


def describe_token(tok: Token) -> str:
    """How an error message names a token."""
    if tok.kind is TokenKind.NEWLINE:
        return "end of line"
    if tok.kind is TokenKind.EOF:
        return "end of input"
    text = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
    return f"`{text}`"


class _SyntaxError(Exception):
    def __init__(self, message: str, tok: Token, *, unit_eof: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.tok = tok
        self.unit_eof = unit_eof


class _UnitParser:
    """Recursive descent over one unit; ``depth`` plays the role of GRUB's ``refs``."""

    def __init__(self, lexer: Lexer) -> None:
        self.lex = lexer
        self.text = lexer.text
        self.la: Token | None = None
        self.after_newline = False
        self.depth = 0
        self.functions: list[FunctionDef] = []
        self.open: list[tuple[str, int]] = []  # constructs open, for EOF messages
        self.skim = True  # blocks of the simple shape are recognised and parsed when needed

    # -- token plumbing ------------------------------------------------------

    def peek(self) -> Token:
        if self.la is None:
            if self.after_newline and self.depth == 0:
                p = self.lex.pos
                self.la = Token(TokenKind.EOF, p, p, "unit")
            else:
                tok = self.lex.next_token()
                self.after_newline = tok.kind is TokenKind.NEWLINE
                self.la = tok
        return self.la

    def advance(self) -> Token:
        tok = self.peek()
        self.la = None
        return tok

    def fail(self, tok: Token, expected: str = "") -> _SyntaxError:
        if tok.kind is TokenKind.BAD:
            return _SyntaxError(tok.text, tok)
        if tok.kind is TokenKind.EOF:
            if tok.text == "unit":
                return _SyntaxError(f"unexpected end of line{', expected ' + expected if expected else ''}", tok, unit_eof=True)
            if self.open:
                what, pos = self.open[-1]
                line = self.lex.script.location(pos).line
                return _SyntaxError(f"unexpected end of file: {what} opened at line {line} is never closed", tok)
            return _SyntaxError("unexpected end of file", tok)
        if tok.kind in _NO_GRAMMAR:
            return _SyntaxError(_NO_GRAMMAR[tok.kind], tok)
        if tok.kind is TokenKind.LBR and expected == "a command":
            return _SyntaxError("syntax error: a block `{` must start on the line of its command (GRUB ended that command at the line before)", tok)
        msg = f"syntax error: unexpected {describe_token(tok)}"
        if expected:
            msg += f", expected {expected}"
        return _SyntaxError(msg, tok)

    def check_nesting(self, tok: Token) -> None:
        if len(self.open) > MAX_NESTING:
            raise _SyntaxError(f"constructs nested more than {MAX_NESTING} deep", tok)

    def expect(self, kind: TokenKind, expected: str) -> Token:
        tok = self.peek()
        if tok.kind is not kind:
            raise self.fail(tok, expected)
        return self.advance()

    def skip_newlines(self) -> None:
        while self.peek().kind is TokenKind.NEWLINE:
            self.advance()

    # -- grammar -------------------------------------------------------------

    def script(self) -> list[Stmt]:
        stmts: list[Stmt] = []
        self.skip_newlines()
        while True:
            tok = self.peek()
            if tok.kind is TokenKind.EOF:
                if tok.text != "unit" and self.depth:
                    raise self.fail(tok)
                return stmts
            if tok.kind is TokenKind.FUNCTION:
                self.function()
            else:
                stmts.append(self.command())
            tok = self.peek()
            if tok.kind not in _DELIMS:
                raise self.fail(tok, "`;` or end of line")
            self.advance()
            self.skip_newlines()

    def command(self) -> Stmt:
        tok = self.peek()
        kind = tok.kind
        if kind is TokenKind.WORD or kind is TokenKind.NAME:
            return self.simple()
        if kind is TokenKind.IF:
            return self.if_cmd()
        if kind is TokenKind.FOR:
            return self.for_cmd()
        if kind is TokenKind.WHILE or kind is TokenKind.UNTIL:
            return self.while_cmd()
        raise self.fail(tok, "a command")

    def simple(self) -> Command:
        first = self.advance()
        return self.simple_rest(first.word, first.start)  # type: ignore[arg-type]

    def simple_rest(self, first: Word, start: int) -> Command:
        """A simple command whose first word has been read (``la`` is empty)."""
        words: list[Word] = [first]
        # hot loop: a word was just read, so no unit boundary can come before the next token
        lex = self.lex
        next_token = lex.next_token
        if lex.batch:
            run = lex.simple_words()
            if run is not None:
                words += run
        tok = next_token()
        while tok.kind in _ARG_KINDS:
            words.append(tok.word)  # type: ignore[arg-type]
            tok = next_token()
        self.la = tok
        self.after_newline = tok.kind is TokenKind.NEWLINE
        block = None
        if tok.kind is TokenKind.LBR:
            block = self.block()
        return Command(tuple(words), block, start)

    def block(self) -> Block:
        lbr = self.advance()
        if self.skim and self.lex.batch and len(self.open) < MAX_NESTING - 4:  # the skimmed shapes nest at most 3 deep
            end = skim_block(self.text, lbr.end)
            if end is not None:
                self.lex.pos = end
                self.after_newline = False
                build = functools.partial(_parse_deferred_block, self.lex, lbr.start, self.depth, len(self.open))
                return Block.deferred(self.text[lbr.end : end - 1], lbr.start, build)
        self.depth += 1
        self.open.append(("`{`", lbr.start))
        self.check_nesting(lbr)
        breaks: list[int] = []
        body, _ = self.commands1(breaks)
        tok = self.peek()
        if tok.kind is not TokenKind.RBR:
            raise self.fail(tok, "`}`")
        rbr = self.advance()
        self.depth -= 1
        self.open.pop()
        groups: list[tuple[Stmt, ...]] = []
        last = 0
        for b in [*breaks, len(body)]:
            if b > last:
                groups.append(tuple(body[last:b]))
            last = b
        return Block(self.text[lbr.end : rbr.start], tuple(body), lbr.start, tuple(groups))

    def commands1(self, breaks: list[int] | None = None) -> tuple[list[Stmt], bool]:
        """``commands1``; also says whether ``delimiters1`` followed the last command.

        ``breaks`` collects the indexes of commands that start after a newline (unit
        boundaries when the block's text runs on its own).
        """
        _, first = self.command_after_newlines()
        if first is None:
            raise self.fail(self.peek(), "a command")
        cmds = [first]
        while True:
            tok = self.peek()
            if tok.kind not in _DELIMS:
                return cmds, False
            newline = tok.kind is TokenKind.NEWLINE
            self.advance()
            skipped, cmd = self.command_after_newlines()
            if cmd is None:
                return cmds, True
            if (newline or skipped) and breaks is not None:
                breaks.append(len(cmds))
            cmds.append(cmd)

    def command_after_newlines(self) -> tuple[bool, Stmt | None]:
        """Skip NEWLINE tokens, then parse a command if one starts there.

        Only used inside a construct (``depth`` > 0), where a newline never ends the
        unit.  Returns (whether a newline was skipped, the command or None).
        """
        skipped = False
        if self.la is None and self.lex.batch:  # the fast path: a simple first word read straight from the text
            skipped, word, start = self.lex.command_start()
            if word is not None:
                return skipped, self.simple_rest(word, start)
        while self.peek().kind is TokenKind.NEWLINE:
            self.advance()
            skipped = True
        if self.peek().kind in _CMD_START:
            return skipped, self.command()
        return skipped, None

    def delimited_list(self, expected: str) -> list[Stmt]:
        cmds, delimited = self.commands1()
        if not delimited:
            raise self.fail(self.peek(), expected)
        return cmds

    def if_cmd(self) -> If:
        tok = self.advance()
        self.depth += 1
        self.open.append(("`if`", tok.start))
        self.check_nesting(tok)
        branches, orelse = self.if_clause()
        self.expect(TokenKind.FI, "`fi`")
        self.depth -= 1
        self.open.pop()
        return If(tuple(branches), orelse, tok.start)

    def if_clause(self) -> tuple[list[tuple[tuple[Stmt, ...], tuple[Stmt, ...]]], tuple[Stmt, ...] | None]:
        branches: list[tuple[tuple[Stmt, ...], tuple[Stmt, ...]]] = []
        while True:
            cond = self.delimited_list("`;` or end of line before `then`")
            self.expect(TokenKind.THEN, "`then`")
            body = self.delimited_list("`;` or end of line")
            branches.append((tuple(cond), tuple(body)))
            tok = self.peek()
            if tok.kind is TokenKind.ELSE:
                self.advance()
                orelse = self.delimited_list("`;` or end of line before `fi`")
                return branches, tuple(orelse)
            if tok.kind is TokenKind.ELIF:
                self.advance()
                continue
            if tok.kind is TokenKind.FI:
                return branches, None
            raise self.fail(tok, "`fi`, `else` or `elif`")

    def for_cmd(self) -> For:
        tok = self.advance()
        name = self.expect(TokenKind.NAME, "a variable name after `for`")
        self.depth += 1
        self.open.append(("`for`", tok.start))
        self.check_nesting(tok)
        self.expect(TokenKind.IN, "`in`")
        words: list[Word] = []
        while self.peek().kind in _ARG_KINDS:
            words.append(self.advance().word)  # type: ignore[arg-type]
        delim = self.peek()
        if delim.kind not in _DELIMS:
            raise self.fail(delim, "`;` or end of line before `do`")
        self.advance()
        self.skip_newlines()
        self.expect(TokenKind.DO, "`do`")
        body = self.delimited_list("`;` or end of line before `done`")
        self.expect(TokenKind.DONE, "`done`")
        self.depth -= 1
        self.open.pop()
        return For(name.text, tuple(words), tuple(body), tok.start)

    def while_cmd(self) -> While:
        tok = self.advance()
        until = tok.kind is TokenKind.UNTIL
        self.depth += 1
        self.open.append((f"`{tok.text}`", tok.start))
        self.check_nesting(tok)
        cond = self.delimited_list("`;` or end of line before `do`")
        self.expect(TokenKind.DO, "`do`")
        body = self.delimited_list("`;` or end of line before `done`")
        self.expect(TokenKind.DONE, "`done`")
        self.depth -= 1
        self.open.pop()
        return While(tuple(cond), tuple(body), until, tok.start)

    def function(self) -> None:
        tok = self.advance()
        name = self.expect(TokenKind.NAME, "a function name (letters, digits, `_`)")
        self.depth += 1
        self.open.append(("`function`", tok.start))
        self.check_nesting(tok)
        self.skip_newlines()
        self.expect(TokenKind.LBR, "`{`")
        body = self.delimited_list("`;` or end of line before the closing `}` of a function")
        self.expect(TokenKind.RBR, "`}`")
        self.depth -= 1
        self.open.pop()
        self.functions.append(FunctionDef(name.text, tuple(body), tok.start))


def iter_units(script: ScriptText) -> Iterator[Unit]:
    """Parse ``script`` unit by unit, recovering from syntax errors as GRUB does.

    Yields:
        Each :class:`Unit` in order; failed units carry ``error`` and no statements.
    """
    lexer = Lexer(script)
    text = script.text
    n = len(text)
    while lexer.pos < n:
        start = lexer.pos
        parser = _UnitParser(lexer)
        try:
            stmts = parser.script()
        except _SyntaxError as exc:
            tok = exc.tok
            if exc.unit_eof or tok.kind is TokenKind.EOF:
                resume = max(lexer.pos, tok.start)
            else:
                resume = script.line_end(max(tok.start, tok.end - 1))
            lexer.pos = max(resume, start + 1)
            yield Unit((), tuple(parser.functions), exc.message, tok.start, start, lexer.pos, max(tok.start, tok.end))
            continue
        yield Unit(tuple(stmts), tuple(parser.functions), None, 0, start, lexer.pos)


def parse_all(script: ScriptText) -> list[Unit]:
    """All units of ``script`` (see :func:`iter_units`)."""
    return list(iter_units(script))
