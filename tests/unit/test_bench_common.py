"""bench/_common.py: the docs/benchmarks.md section writer and the timing helpers (no wall-clock asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import _common


def test_update_creates_the_file_with_a_header(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "benchmarks.md"
    _common.update_benchmarks_md("image-read", "## Image\n\nnumbers\n", path=target)
    text = target.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "median of N runs" in text
    assert text.endswith("<!-- bench:image-read -->\n## Image\n\nnumbers\n<!-- /bench:image-read -->\n")


def test_update_replaces_only_its_section(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text(
        "# Benchmarks\n\nhand-written intro\n\n"
        "<!-- bench:a -->\nold a\n<!-- /bench:a -->\n\n"
        "<!-- bench:b -->\nold b\n<!-- /bench:b -->\n\ntrailing notes\n"
    )
    _common.update_benchmarks_md("a", "new a", path=target)
    _common.update_benchmarks_md("c", "new c", path=target)
    assert target.read_text() == (
        "# Benchmarks\n\nhand-written intro\n\n"
        "<!-- bench:a -->\nnew a\n<!-- /bench:a -->\n\n"
        "<!-- bench:b -->\nold b\n<!-- /bench:b -->\n\ntrailing notes\n\n"
        "<!-- bench:c -->\nnew c\n<!-- /bench:c -->\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmarks.md"]  # no temp or lock files left


@pytest.mark.parametrize("bad", ["", "a b", "x-->", "sec/tion"])
def test_bad_section_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="bad benchmark section name"):
        _common.update_benchmarks_md(bad, "x", path=tmp_path / "b.md")


def test_unterminated_section_is_not_guessed(tmp_path: Path) -> None:
    target = tmp_path / "b.md"
    target.write_text("<!-- bench:a -->\nno end marker\n")
    with pytest.raises(ValueError, match="has no matching <!-- /bench:a -->"):
        _common.update_benchmarks_md("a", "x", path=target)
    assert target.read_text() == "<!-- bench:a -->\nno end marker\n"


def test_timing_helpers() -> None:
    calls: list[int] = []
    t = _common.time_callable(lambda: calls.append(1), repeat=3, warmup=2, name="noop")
    assert (t.name, len(t.samples), len(calls)) == ("noop", 3, 5)
    assert t.best <= t.median
    c = _common.time_command(["true"], repeat=2, warmup=0)
    assert (c.name, len(c.samples)) == ("true", 2)
    with pytest.raises(Exception, match="returned non-zero exit status"):
        _common.time_command(["false"], repeat=1, warmup=0)


@pytest.mark.parametrize(
    ("fn", "args", "expected"),
    [
        (_common.format_ratio, (1.4249,), "1.42x"),
        (_common.format_seconds, (0.0123,), "12.3 ms"),
        (_common.format_seconds, (2.5,), "2.50 s"),
        (_common.format_seconds, (0.0000042,), "4 µs"),
        (_common.format_bytes, (256 << 20,), "256 MiB"),
        (_common.format_bytes, (1536,), "1.5 KiB"),
        (_common.format_throughput, (1 << 30, 0.5), "2.00 GiB/s"),
        (_common.format_throughput, (100 << 20, 1.0), "100 MiB/s"),
    ],
)
def test_formatting(fn: object, args: tuple[float, ...], expected: str) -> None:
    assert fn(*args) == expected  # type: ignore[operator]


def test_markdown_table() -> None:
    assert _common.markdown_table(["a", "b"], [[1, "x|y"]]) == "| a | b |\n| --- | --- |\n| 1 | x\\|y |"
