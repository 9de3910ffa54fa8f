"""Runs every case of tests/spec/grub2/*.test against our interpreter and against real GRUB.

* ``test_ours``: our console transcript and menu against the case's expectations;
* ``test_oracle_cache``: the recorded grub-emu results (``oracle-cache.json``, keyed by
  input hash) against the case's expectations, and our per-entry transcripts against
  grub-emu's (every entry booted through ``default``);
* ``test_grub_emu`` (differential): grub-emu run live; its output must equal the cache
  and our output (this is the CI re-verification); ``VIRTKIT_ORACLE_UPDATE=1`` rewrites
  the cache from live runs;
* ``test_script_check`` (differential): ``grub-script-check`` accepts exactly the scripts
  we parse without error, and stops at the same line;
* ``test_every_command_has_a_case``: each command the interpreter implements appears in
  some case.

New cases get their ``## stdout:``/``## boot:`` blocks from the oracle with
``python3 tests/spec/grub2_spec.py fill`` (only cases that have none yet).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from grub2_spec import (
    SPEC_DIR,
    SpecCase,
    all_cases,
    entry_facts,
    entry_override_paths,
    fmt_path,
    menu_shape,
    our_menu,
    our_transcript,
    split_phases,
)

from oracle.grub_emu import OracleCache, normalize_transcript, oracle_available, run_grub_emu
from virtkit.boot.config.grub2.builtins import NOOP_COMMANDS, build_command_table
from virtkit.boot.config.grub2.parser import iter_units
from virtkit.boot.config.grub2.tokens import ScriptText
from virtkit.boot.config.model import BootEntry
from virtkit.boot.config.source import SourceFile

CASES = all_cases()
CACHE_PATH = SPEC_DIR / "oracle-cache.json"


_CACHE = OracleCache(CACHE_PATH)


def _load_cache() -> dict[str, list[str]]:
    return _CACHE.load()


def _store_cache(key: str, lines: list[str]) -> None:
    _CACHE.store(key, lines)


def _ids(cases: list[SpecCase]) -> list[str]:
    return [c.id for c in cases]


def _expected(case: SpecCase, *, oracle: bool) -> tuple[list[str] | None, list[str] | None]:
    if oracle and case.ok_oracle is not None:
        return case.oracle_stdout if case.oracle_stdout is not None else case.stdout, case.oracle_boot if case.oracle_boot is not None else case.boot
    return case.stdout, case.boot


def _check_transcript(got: list[str], case: SpecCase, *, oracle: bool, who: str) -> None:
    cfg, boot = split_phases(got)
    exp_stdout, exp_boot = _expected(case, oracle=oracle)
    if exp_stdout is not None:
        assert cfg == exp_stdout, f"{who}: config output differs for {case.id} ({case.file}:{case.line})"
    if exp_boot is not None:
        assert boot == exp_boot, f"{who}: boot transcript differs for {case.id} ({case.file}:{case.line})"


def _check_asserts(case: SpecCase) -> None:
    menu = our_menu(case)
    for key, value in case.asserts:
        if key == "menu":
            assert menu_shape(menu.items) == json.loads(value), f"{case.id}: menu shape"
        elif key == "default":
            assert fmt_path(menu.default) == value, f"{case.id}: default {fmt_path(menu.default)} != {value}; trail: {menu.default_trail}"
        elif key.startswith("entry "):
            path = tuple(int(p) for p in key[6:].split(">"))
            item = menu.item_at(path)
            assert isinstance(item, BootEntry), f"{case.id}: {key} is not an entry"
            facts = entry_facts(item)
            want = json.loads(value)
            got = {k: facts[k] for k in want}
            assert got == want, f"{case.id}: {key}"
        elif key == "trail":
            assert value in menu.default_trail, f"{case.id}: trail {menu.default_trail} lacks {value!r}"
        elif key == "warning":
            assert any(value in w for w in menu.warnings), f"{case.id}: no warning containing {value!r} in {menu.warnings}"
        elif key == "env_writes":
            assert menu.env_writes == json.loads(value), f"{case.id}: env_writes {menu.env_writes}"
        elif key == "fallback":
            assert [fmt_path(p) for p in menu.fallback] == json.loads(value), f"{case.id}: fallback {menu.fallback}"
        elif key == "timeout":
            assert str(menu.timeout) == value, f"{case.id}: timeout {menu.timeout}"
        elif key == "flavour-used":
            assert menu.flavour == value, f"{case.id}: flavour {menu.flavour}"
        else:
            raise AssertionError(f"{case.file}:{case.line}: unknown annotation `## {key}:`")


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_ours(case: SpecCase) -> None:
    _check_transcript(our_transcript(case), case, oracle=False, who="virtkit")
    _check_asserts(case)


ORACLE_CASES = [c for c in CASES if c.not_oracle is None]


def _runs(case: SpecCase) -> list[str | None]:
    runs: list[str | None] = [None]
    if case.ok_oracle is None:
        runs += entry_override_paths(our_menu(case))
    return runs


@pytest.mark.parametrize("case", ORACLE_CASES, ids=_ids(ORACLE_CASES))
def test_oracle_cache(case: SpecCase) -> None:
    cache = _load_cache()
    for override in _runs(case):
        key = case.oracle_case(override).key()
        if key not in cache:
            pytest.fail(f"{case.id}: no recorded grub-emu result for default={override!r}; run VIRTKIT_ORACLE_UPDATE=1 pytest -m differential tests/spec")
        recorded = cache[key]
        if override is None:
            _check_transcript(recorded, case, oracle=True, who="grub-emu (recorded)")
        else:
            assert our_transcript(case, override) == recorded, f"{case.id}: booting default={override!r} differs from grub-emu"


@pytest.mark.differential
@pytest.mark.slow
@pytest.mark.parametrize("case", ORACLE_CASES, ids=_ids(ORACLE_CASES))
def test_grub_emu(case: SpecCase) -> None:
    reason = oracle_available()
    if reason is not None:
        pytest.skip(reason)
    update = os.environ.get("VIRTKIT_ORACLE_UPDATE") == "1"
    cache = _load_cache()
    for override in _runs(case):
        oc = case.oracle_case(override)
        live = normalize_transcript(run_grub_emu(oc))
        if update:
            _store_cache(oc.key(), live)
        else:
            assert cache.get(oc.key()) == live, f"{case.id}: oracle-cache.json is stale for default={override!r} (rerun with VIRTKIT_ORACLE_UPDATE=1)"
        if override is None:
            _check_transcript(live, case, oracle=True, who="grub-emu")
        else:
            assert our_transcript(case, override) == live, f"{case.id}: booting default={override!r} differs from grub-emu"


def _our_first_error_line(script: str) -> int | None:
    st = ScriptText.from_file(SourceFile(None, "t.cfg", script))
    for unit in iter_units(st):
        if unit.error is not None:
            return st.location(max(unit.error_end - 1, unit.error_pos)).line
    return None


_CHECK_LINE = re.compile(r"Syntax error at line (\d+)")


@pytest.mark.differential
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_script_check(case: SpecCase) -> None:
    if shutil.which("grub-script-check") is None:
        pytest.skip("grub-script-check is not installed (package grub-common)")
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(case.script)
        name = f.name
    try:
        r = subprocess.run(["grub-script-check", name], capture_output=True, text=True, timeout=30)
    finally:
        Path(name).unlink()
    ours = _our_first_error_line(case.script)
    if r.returncode == 0:
        assert ours is None, f"{case.id}: grub-script-check accepts the script, we report a syntax error at line {ours}"
    else:
        m = _CHECK_LINE.search(r.stdout + r.stderr)
        assert ours is not None, f"{case.id}: grub-script-check rejects it ({(r.stdout + r.stderr).strip()}), we accept it"
        if m:
            assert int(m.group(1)) == ours, f"{case.id}: first syntax error at line {ours}, grub-script-check says {m.group(1)}"


_TOKEN = re.compile(r"[^\s;{}]+|[;{}\n]")
_STARTERS = {";", "{", "}", "\n", "then", "do", "else", "if", "elif", "while", "until", "!"}


def _command_words(script: str) -> set[str]:
    """Words in command position (a rough scan, good enough to see which commands a case uses)."""
    used: set[str] = set()
    prev = "\n"
    for tok in _TOKEN.findall(script):
        if prev in _STARTERS and tok not in _STARTERS:
            used.add(tok)
        prev = tok
    return used


def test_every_command_has_a_case() -> None:
    table = build_command_table("pc")
    table.update(build_command_table("efi"))
    implemented = {n for n in table if n not in NOOP_COMMANDS}
    used: set[str] = set()
    for case in CASES:
        used |= _command_words(case.script)
    missing = sorted(n for n in implemented if n not in used and not n.startswith("extract_legacy_") and not n.startswith("xnu_") and n not in ("legacy_source", "legacy_configfile", "backtrace"))
    assert not missing, f"commands without a spec case: {missing}"


def test_spec_files_parse() -> None:
    assert CASES, "no spec cases found"
    names = [c.id for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
