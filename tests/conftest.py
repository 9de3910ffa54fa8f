"""pytest hooks; the helpers themselves live in tests/helpers.py."""

from __future__ import annotations

import pytest

import helpers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regenerate-golden", action="store_true", help="rewrite golden files from actual output")


def pytest_configure(config: pytest.Config) -> None:
    helpers._REGEN["on"] = bool(config.getoption("--regenerate-golden"))
