"""Differential: our UAPI version comparison against systemd's own (``systemd-analyze compare-versions``).

systemd-boot sorts Boot Loader Specification entries with ``strverscmp_improved``; the same
function backs ``systemd-analyze compare-versions`` (systemd >= 252), so every answer here is
settled by the real implementation.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import require_tool
from virtkit.boot.config.sdboot import uapi_vercmp

pytestmark = pytest.mark.differential

_BY_STATUS = {0: 0, 11: 1, 12: -1}  # compare-versions exits 0 (==), 11 (>) or 12 (<)


def systemd_cmp(a: str, b: str) -> int:
    proc = subprocess.run(["systemd-analyze", "compare-versions", "--", a, b], capture_output=True, text=True,
                          check=False)
    assert proc.returncode in _BY_STATUS, proc.stderr
    return _BY_STATUS[proc.returncode]


@pytest.fixture(autouse=True)
def _tool() -> None:
    require_tool("systemd-analyze")
    probe = subprocess.run(["systemd-analyze", "compare-versions", "1", "2"], capture_output=True, check=False)
    if probe.returncode not in (0, 11, 12):
        pytest.skip("systemd-analyze has no compare-versions verb (systemd < 252)")


TABLE = [
    ("1.2", "1.10"), ("1.2~rc1", "1.2"), ("123-a", "123"), ("123a", "123.a"), ("5.11.0-0.rc5", "5.11.0-1"),
    ("1.0^post", "1.0-1"), ("abc", "abcd"), ("0001", "1"), ("1_a", "1a"), ("6.10.12-200.fc40.x86_64", "6.10.3-200.fc40"),
    ("0-rescue", "6.5.6-300.fc39.x86_64"), ("~", "~~"), ("1^", "1"), ("1.", "1"), ("1-", "1"), ("a1", "1a"),
    ("2.6.32-754.35.1.el6", "2.6.32-754.el6"), ("v1", "1"), ("1~", "1"), ("---", "..."), ("^^", "--"),
]


@pytest.mark.parametrize(("a", "b"), TABLE)
def test_table_agrees_with_systemd(a: str, b: str) -> None:
    assert uapi_vercmp(a, b) == systemd_cmp(a, b)


VERSION = st.text(alphabet="0123456789abcXY.-~^_+", min_size=0, max_size=12).filter(lambda s: not s.startswith("-"))


@settings(max_examples=150, deadline=None)
@given(VERSION, VERSION)
def test_random_versions_agree_with_systemd(a: str, b: str) -> None:
    if shutil.which("systemd-analyze") is None:  # pragma: no cover - the fixture skips first
        return
    assert uapi_vercmp(a, b) == systemd_cmp(a, b)
