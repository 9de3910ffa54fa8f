"""Shared test helpers (import them: ``from helpers import fixture_path``): fixtures from tests/data, golden files, external tools.

* ``fixture_path("ext4-basic.img.gz")`` decompresses a committed gzipped
  fixture once per session and returns the path of the raw copy.
* ``assert_golden(actual, "name.json")`` compares with ``tests/golden/name.json``;
  ``pytest --regenerate-golden`` rewrites goldens (review the diff!).
* ``require_tool("mkfs.xfs")`` skips with a clear reason when an external tool
  is missing.  ``scripts/test`` installs every tool, so a skip on CI means the
  package truly could not be had, and the reason says which.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path
from typing import AnyStr

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
GOLDEN = TESTS / "golden"
ROOT = TESTS.parent


_REGEN = {"on": False}


def assert_golden(actual: str | bytes, name: str) -> None:
    """Compare ``actual`` with tests/golden/NAME; write it when missing or regenerating."""
    path = GOLDEN / name
    data = actual.encode() if isinstance(actual, str) else actual
    if _REGEN["on"] or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if not _REGEN["on"]:
            pytest.fail(f"golden file {path} did not exist; written now - review and commit it")
        return
    expected = path.read_bytes()
    if expected != data:
        exp_s = expected.decode("utf-8", "replace")
        act_s = data.decode("utf-8", "replace")
        assert act_s == exp_s, f"output differs from golden {path} (run pytest --regenerate-golden to accept)"


_CACHE = Path(os.environ.get("VIRTKIT_TEST_CACHE", "/tmp/virtkit-test-cache"))


def fixture_path(name: str) -> Path:
    """Path of a decompressed copy of tests/data/NAME (a .gz), cached by content hash."""
    src = DATA / name
    if not src.exists():
        raise FileNotFoundError(f"fixture {src} missing (see tests/data/README.md for how to build it)")
    if not name.endswith(".gz"):
        return src
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = _CACHE / f"{digest}-{name[:-3].replace('/', '--')}"  # "area/x.img.gz" -> one flat file
    if not out.exists():
        _CACHE.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + f".tmp{os.getpid()}")
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, out)
        out.chmod(0o444)
    return out


def require_tool(*names: str) -> None:
    """Skip the test if any of the named executables is missing."""
    for n in names:
        if shutil.which(n) is None and not Path(n).exists():
            pytest.skip(f"external tool {n!r} is not installed (scripts/test installs it via apt as root)")


def is_root() -> bool:
    return os.geteuid() == 0


def run_cli(argv: list[str], capfd: pytest.CaptureFixture[AnyStr]) -> tuple[int, AnyStr, AnyStr]:
    """Run ``virtkit ARGV`` in-process: (exit status, stdout, stderr); argparse exits count too.

    ``capfd`` or ``capfdbinary``: the output comes back as text or bytes accordingly.
    """
    from virtkit.cli.main import main

    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capfd.readouterr()
    return status, out, err
