"""fuzz/corpus_coverage.py: the line-coverage report of a campaign corpus counts what ran, and only that."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))

import corpus_coverage  # noqa: E402
import targets  # noqa: E402


def test_executable_lines_are_function_bodies_only(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("X = 1\n\n\ndef f(a):\n    if a:\n        return 1\n    return 2\n\n\nclass C:\n    y = 2\n\n    def g(self):\n        return [i for i in range(3)]\n")
    lines = corpus_coverage.executable_lines(src)
    assert {5, 6, 7, 14} <= lines
    assert not lines & {1, 10, 11}  # module and class bodies run at import, whatever the input


def test_every_target_has_a_real_scope() -> None:
    for t in targets.TARGETS.values():
        files = corpus_coverage.package_files(t.coverage_scope)
        assert files, t.name
        for name in t.coverage_scope:
            importlib.import_module(name)


@pytest.mark.parametrize("name", ["grubenv", "lilo"])
def test_replay_counts_lines_the_inputs_reach(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(corpus_coverage, "HERE", tmp_path)  # no corpus: the seeds alone
    cov = corpus_coverage.measure(name)
    assert 0 < int(cov["covered"]) < int(cov["lines"])  # type: ignore[call-overload]
    assert cov["files_reached"] == 1 and cov["inputs"] == len(targets.TARGETS[name].seeds())

    # an empty input stops at the first checks: it reaches fewer lines than the seeds
    files = corpus_coverage.package_files(targets.TARGETS[name].coverage_scope)
    seeds = corpus_coverage.replay(name, files, targets.TARGETS[name].seeds())
    empty = corpus_coverage.replay(name, files, [b""])
    assert sum(map(len, empty.values())) < sum(map(len, seeds.values()))
