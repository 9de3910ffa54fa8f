"""helpers.assert_golden: a golden changes only with ``pytest --regenerate-golden``.

Without the switch a difference fails and leaves the file as it was; a missing golden is
written for review but the test still fails, so no new golden is accepted silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers
from helpers import assert_golden


@pytest.fixture
def golden_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(helpers, "GOLDEN", tmp_path)
    monkeypatch.setitem(helpers._REGEN, "on", False)
    return tmp_path


def test_equal_output_passes(golden_dir: Path) -> None:
    (golden_dir / "a.txt").write_bytes(b"kernel X\0\0")
    assert_golden("kernel X\0\0", "a.txt")


def test_difference_fails_and_keeps_the_golden(golden_dir: Path) -> None:
    (golden_dir / "a.txt").write_text("old\n")
    with pytest.raises(AssertionError, match=r"run pytest --regenerate-golden to accept"):
        assert_golden("new\n", "a.txt")
    assert (golden_dir / "a.txt").read_text() == "old\n"


def test_missing_golden_is_written_but_fails(golden_dir: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"did not exist; written now"):
        assert_golden(b"\x00bytes", "sub/new.bin")
    assert (golden_dir / "sub" / "new.bin").read_bytes() == b"\x00bytes"


def test_regenerate_switch_rewrites(golden_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (golden_dir / "a.txt").write_text("old\n")
    monkeypatch.setitem(helpers._REGEN, "on", True)
    assert_golden("new\n", "a.txt")
    assert (golden_dir / "a.txt").read_text() == "new\n"


def test_switch_is_off_unless_given(request: pytest.FixtureRequest) -> None:
    assert helpers._REGEN["on"] is bool(request.config.getoption("--regenerate-golden"))
