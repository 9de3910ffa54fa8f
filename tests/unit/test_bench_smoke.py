"""Every benchmark still runs: ``--quick --no-write`` (small inputs, one run, docs untouched).

Nothing is timed here (no wall-clock asserts); this only catches a benchmark broken by a
change elsewhere (an API it calls, a test helper it borrows).  bench_zoo needs the built
zoo and root and is run by ``make bench``; the entropy benchmark's quick mode takes ~20 s.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT

QUICK = ["btrfs_read", "config_engines", "entropy", "ext4_read", "fs_read", "grub2", "image_read", "volume_read", "xfs_read"]


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK)
def test_benchmark_runs(name: str) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / f"bench_{name}.py"), "--quick", "--no-write"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "updated docs/benchmarks.md" not in r.stdout


def test_every_benchmark_is_listed() -> None:
    found = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py"))
    assert [n for n in found if n != "zoo"] == QUICK
