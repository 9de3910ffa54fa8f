"""The interpreter's shortcuts give exactly what the general code gives.

* the lexer's batch readers (``Lexer.command_start``/``simple_words``: a command's
  first word and its run of simple arguments straight from the text) and the parser's
  skimmed blocks (``skim_block``: a block of the simple shape is recognised by one regular
  expression and parsed when first needed) against ``next_token`` and eager parsing alone:
  the same units, statements, words, errors and offsets;
* ``Word.lit`` (a word that needs no expansion is its own argument) against the full
  expansion in ``expand_argv``.

Inputs: every spec file and realistic config in the repository, and hypothesis text
made of the characters that matter to the lexer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import TESTS
from virtkit.boot.config.grub2.ast import Word
from virtkit.boot.config.grub2.expand import expand_argv
from virtkit.boot.config.grub2.lexer import Lexer
from virtkit.boot.config.grub2.parser import parse_all, skim_block
from virtkit.boot.config.grub2.tokens import ScriptText
from virtkit.boot.config.source import SourceFile


def _parse(text: str, batch: bool) -> list[object]:
    old = Lexer.batch
    Lexer.batch = batch
    try:
        return list(parse_all(ScriptText.from_file(SourceFile(None, "/grub.cfg", text))))
    finally:
        Lexer.batch = old


def _assert_same_parse(text: str) -> None:
    assert _parse(text, True) == _parse(text, False)


def _corpus() -> Iterator[Path]:
    yield from sorted((TESTS / "configs" / "grub2").rglob("*.cfg"))
    yield from sorted((TESTS / "spec" / "grub2").glob("*.test"))


@pytest.mark.parametrize("path", list(_corpus()), ids=lambda p: str(p.relative_to(TESTS)))
def test_batch_lexing_parses_the_corpus_identically(path: Path) -> None:
    _assert_same_parse(path.read_text(errors="surrogateescape"))


def test_batch_lexing_is_used_and_equal_on_a_generated_config() -> None:
    body = (
        "menuentry 'Debian' --class debian $menuentry_id_option 'gnulinux-x' {\n"
        "\tload_video\n\tinsmod gzio\n\tif [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi\n"
        "\tset root='hd0,msdos1'  # a comment\n\n\t# a comment line\n"
        "\tsearch --no-floppy --fs-uuid --set=root 2f4c8a0e  [[ ]] fi then\n"
        "\techo\t'Loading Linux ...'\n\tlinux\t/boot/vmlinuz root=UUID=x ro \\\n quiet\n"
        "\tinitrd /boot/initrd.img a\"b\"$c${d}e \\$x\n}\n"
    )
    text = "set default=0\n" + body * 3 + "submenu 'x' {\n" + body + "}\n"
    _assert_same_parse(text)
    lex = Lexer(ScriptText.from_file(SourceFile(None, "/g", "\n\n  insmod gzio x\n")))
    skipped, word, start = lex.command_start()
    assert skipped and word is not None and word.raw == "insmod" and start == 4
    run = lex.simple_words()
    assert run is not None and [w.raw for w in run] == ["gzio", "x"]


_ALPHABET = st.sampled_from([*"ab $'\"\\{};#|&<>[]\t\n=x1?*@", "if ", "fi", "then ", "else", "menuentry ", "[[", "]]", "${x}", "\r", "\0"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_batch_lexing_equals_next_token_on_any_text(text: str) -> None:
    _assert_same_parse(text)


def _expand(words: list[Word], fast: bool) -> list[str]:
    # a glob function that expands nothing forces the general path
    return expand_argv(words, {"v": "a b", "e": ""}.get, None, glob=None if fast else (lambda s: None))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "'q r'", '"d$v"', "$e", "''", "x*", "'*?'", "\\\\b", '"\\\\"', "$v", "\"\""]), min_size=1, max_size=6))
def test_literal_words_expand_as_the_general_code_does(raws: list[str]) -> None:
    text = " ".join(raws) + "\n"
    units = _parse(text, True)
    (unit,) = units
    (cmd,) = unit.stmts  # type: ignore[attr-defined]
    words = list(cmd.words)
    assert _expand(words, True) == _expand(words, False)


# Lines a grub-mkconfig body is made of, and near misses of each shape the skimmer accepts.
_LINES = [
    "\tload_video\n", "\tinsmod gzio\n", "\tset root='hd0,msdos1'\n", "\techo\t'Loading Linux 6.1 ...'\n",
    "\tlinux\t/boot/vmlinuz root=UUID=x ro  quiet\n", "\tinitrd\t/a /b\n", "\tsearch --set=root $u\n",
    "\tif [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi\n",
    "\tif [ x$f = xy ]; then\n", "\telse\n", "\tfi\n", "\t  # a comment\n", "\n", "   \n",
    "\tmenuentry 'E' --class os $o 'id' {\n", "\t}\n", "}\n",
]
_NEAR_MISSES = [  # each is something else to the parser
    "\tfi;\n", "\tthen\n", "\telif [ a ]; then\n", "\tif [ a ]\n", "\tif [ a ]; then x\n", "\techo a;\n",
    "\techo a # c\n", "\techo a#c\n", "\t[[ a ]]\n", "\techo [[\n", "\techo \\\n  b\n", "\techo 'a\nb'\n",
    "\techo $\n", "\techo \"a\n", "\tfor x in a; do echo $x; done\n", "\tfunction f { a; }\n",
    "\techo a | b\n", "\t{\n", "\techo }\n", "\techo a}\n", "\tdone\n", "\tif\n", "\tfi fi\n",
    "\tmenuentry 'E' {\n\t\tlinux /k\n\t}\n", "\tsubmenu 'S' { echo; }\n",
]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_LINES), st.sampled_from(_LINES), st.sampled_from(_NEAR_MISSES)), max_size=14),
       st.sampled_from(["menuentry 'T' --id t {", "submenu 'S' {", "if true; then x {"]))
def test_skimmed_blocks_parse_as_eager_ones(lines: list[str], opener: str) -> None:
    text = "set a=1\n" + opener + "\n" + "".join(lines) + "}\necho after\n"
    _assert_same_parse(text)


@pytest.mark.parametrize(("body", "skimmed"), [
    ("\n\tinsmod gzio\n\tlinux /k a b\n}", True),
    ("\n\tif [ a ]; then\n\t\tb\n\telse\n\t\tc\n\tfi\n}", True),
    ("\n\tmenuentry 'x' {\n\t\tlinux /k\n\t}\n}", True),
    ("\n}", False),  # commands1 needs a command: a syntax error, parsed at once
    ("\n\tfi\n}", False),
    ("\n\techo a;\n}", False),
    (" linux /k; }", False),
    ("\n\tfor x in a; do b; done\n}", False),
])
def test_skim_block_accepts_only_the_simple_shapes(body: str, skimmed: bool) -> None:
    text = "menuentry 'x' {" + body + "\n"
    end = skim_block(text, text.index("{") + 1)
    assert (end is not None) == skimmed
    if end is not None:
        assert text[end - 1] == "}" and end == len(text) - 1


def test_a_skimmed_block_is_parsed_only_when_needed() -> None:
    text = "menuentry 'x' {\n\tlinux /k\n}\n"
    (unit,) = _parse(text, True)
    block = unit.stmts[0].block  # type: ignore[attr-defined]
    assert block._build is not None  # deferred
    assert [w.raw for w in block.body[0].words] == ["linux", "/k"]
    assert block._build is None
