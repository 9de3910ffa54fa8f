"""Lexer and parser tables: words and their parts, token kinds, units and GRUB's error recovery."""

from __future__ import annotations

import pytest

from virtkit.boot.config.grub2.ast import Command, For, I18n, If, Lit, Var, While
from virtkit.boot.config.grub2.lexer import Lexer
from virtkit.boot.config.grub2.parser import parse_all
from virtkit.boot.config.grub2.tokens import ScriptText, TokenKind
from virtkit.boot.config.source import SourceFile


def script(text: str) -> ScriptText:
    return ScriptText.from_file(SourceFile(None, "t.cfg", text))


def tokens(text: str) -> list[tuple[str, str]]:
    lx = Lexer(script(text))
    out = []
    while True:
        t = lx.next_token()
        if t.kind is TokenKind.EOF:
            return out
        out.append((t.kind.name, t.text))


LEX_CASES = [
    ("echo a b", [("NAME", "echo"), ("NAME", "a"), ("NAME", "b"), ("NEWLINE", "\n")]),
    ("if iffy fi2 2x", [("IF", "if"), ("NAME", "iffy"), ("NAME", "fi2"), ("WORD", "2x"), ("NEWLINE", "\n")]),
    ('"if" x', [("WORD", '"if"'), ("NAME", "x"), ("NEWLINE", "\n")]),
    ("a{b}", [("NAME", "a"), ("LBR", "{"), ("NAME", "b"), ("RBR", "}"), ("NEWLINE", "\n")]),
    ("a#b #c", [("WORD", "a#b"), ("NEWLINE", "\n")]),
    ("a;;b|c&&d||e&f<g>h", [("NAME", "a"), ("SEMI2", ";;"), ("NAME", "b"), ("PIPE", "|"), ("NAME", "c"), ("AND", "&&"), ("NAME", "d"), ("OR", "||"), ("NAME", "e"), ("AMP", "&"), ("NAME", "f"), ("LT", "<"), ("NAME", "g"), ("GT", ">"), ("NAME", "h"), ("NEWLINE", "\n")]),
    ("[[ x ]]", [("LSQBR2", "[["), ("NAME", "x"), ("RSQBR2", "]]"), ("NEWLINE", "\n")]),
    ("[ x ]", [("WORD", "["), ("NAME", "x"), ("WORD", "]"), ("NEWLINE", "\n")]),
    ("echo a$", [("NAME", "echo"), ("NAME", "a"), ("BAD", "`$` must be followed by a variable name"), ("NEWLINE", "\n")]),
    ("x\\\ny", [("WORD", "x\\\ny"), ("NEWLINE", "\n")]),
    ("'a\nb'", [("WORD", "'a\nb'"), ("NEWLINE", "\n")]),
    ("\tfunction\tf", [("FUNCTION", "function"), ("NAME", "f"), ("NEWLINE", "\n")]),
]


@pytest.mark.parametrize(("text", "want"), LEX_CASES, ids=[c[0] for c in LEX_CASES])
def test_lexer_tokens(text: str, want: list[tuple[str, str]]) -> None:
    assert tokens(text) == want


WORD_CASES = [
    ("a", (Lit("a"),)),
    ("'a $x'", (Lit("a $x", "'"),)),
    ('"a $x b"', (Lit("a ", '"'), Var("x", True), Lit(" b", '"'))),
    ('"\\$ \\\\ \\" \\a"', (Lit('$ \\ " \\a', '"'),)),
    ("$xy-z", (Var("xy"), Lit("-z"))),
    ("${x}y", (Var("x"), Lit("y"))),
    ("$10", (Var("10"),)),
    ("$? $# $* $@", (Var("?"),)),
    ('a"b"\'c\'\\ d', (Lit("a"), Lit("b", '"'), Lit("c", "'"), Lit("\\ d"))),
    ('$"t $x"', (I18n("t $x"),)),
    ('"x\\\ny"', (Lit("xy", '"'),)),
]


@pytest.mark.parametrize(("text", "parts"), WORD_CASES, ids=[c[0] for c in WORD_CASES])
def test_word_parts(text: str, parts: tuple[object, ...]) -> None:
    t = Lexer(script(text)).next_token()
    assert t.word.parts == parts  # type: ignore[attr-defined]


def test_lines_starting_with_hash_are_dropped_before_lexing() -> None:
    st = script('echo "a\n# gone\nb"\r\n#x\n  #kept comment\n')
    assert st.text == 'echo "a\nb"\n  #kept comment\n'
    assert st.line_numbers == [1, 3, 5]
    assert st.location(st.text.index("b")).line == 3


def test_nul_cuts_a_line() -> None:
    assert script("echo a\0b c\necho d\n").text == "echo a\necho d\n"


PARSE_CASES = [
    # text, number of units, error lines (1-based, None for ok units)
    ("echo a; echo b\necho c\n", [None, None]),
    ("if true; then\n echo a\nfi\n", [None]),
    ("echo a; echo \"$\"\necho b\n", ["1", None]),
    ("if true; then\necho \"$\"\necho still\nfi\n", ["2", None, "4"]),
    ("menuentry x\n{\n linux /k\n}\n", [None, "2", None, "4"]),
    ("function f { echo x }\necho after\n", ["1", None]),
    ("echo 'open\nnever\n", ["1"]),
    ("for x in a b; do\n echo $x\ndone\n", [None]),
    ("while false; do echo; done; until true; do echo; done\n", [None]),
    ("\n\n\necho x\n", [None, None, None, None]),
    ("echo a; ; echo b\necho c\n", ["1", None]),
]


@pytest.mark.parametrize(("text", "errors"), PARSE_CASES, ids=[c[0][:30] for c in PARSE_CASES])
def test_units_and_recovery(text: str, errors: list[str | None]) -> None:
    st = script(text)
    units = parse_all(st)
    got = [None if u.error is None else str(st.location(u.error_pos).line) for u in units]
    assert got == errors


def test_ast_shapes() -> None:
    st = script("if a; then b; elif c; then d; else e; fi\nfor v in 1 2; do x; done\nwhile p; do q; done\nmenuentry 'T' --id t { linux /k; }\n")
    units = parse_all(st)
    assert isinstance(units[0].stmts[0], If) and len(units[0].stmts[0].branches) == 2 and units[0].stmts[0].orelse is not None
    f = units[1].stmts[0]
    assert isinstance(f, For) and f.var == "v" and len(f.words) == 2
    assert isinstance(units[2].stmts[0], While)
    m = units[3].stmts[0]
    assert isinstance(m, Command) and m.block is not None and m.block.text == " linux /k; "


def test_functions_are_defined_even_when_the_unit_fails() -> None:
    units = parse_all(script('function f { echo x; }; echo "$"\n'))
    assert units[0].error is not None and [f.name for f in units[0].functions] == ["f"]


def test_block_text_keeps_comments_but_not_hash_lines() -> None:
    units = parse_all(script("menuentry x {\n  # comment line\n  linux /k # trailing\n}\n"))
    cmd = units[0].stmts[0]
    assert isinstance(cmd, Command) and cmd.block is not None
    assert cmd.block.text == "\n  # comment line\n  linux /k # trailing\n"
    units = parse_all(script("menuentry x {\n# dropped\n  linux /k\n}\n"))
    cmd = units[0].stmts[0]
    assert isinstance(cmd, Command) and cmd.block is not None and cmd.block.text == "\n  linux /k\n"


@pytest.mark.timeout(60)
def test_long_unterminated_strings_lex_in_linear_time() -> None:
    # the lexer's word regex must never backtrack (an unterminated quote once made it exponential)
    for opener in ('root="', "x='", 'a"$b ', "{ "):
        units = parse_all(script("linux /k " + opener + "word " * 40_000 + "\n" + "echo more\n" * 100))
        assert units[0].error is not None
