"""Jail directories a killed parent left behind are swept by the next run; live ones are not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from virtkit.boot.worker import default_isolation, sweep_stale_jails


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_only_stale_empty_jails(tmp_path: Path) -> None:
    dead = tmp_path / f"virtkit-jail-{_dead_pid()}-abcd1234"
    live = tmp_path / f"virtkit-jail-{os.getppid()}-abcd1234"
    mine = tmp_path / f"virtkit-jail-{os.getpid()}-abcd1234"
    full = tmp_path / f"virtkit-jail-{_dead_pid()}-full0000"
    legacy_old = tmp_path / "virtkit-jail-old12345"
    legacy_new = tmp_path / "virtkit-jail-new12345"
    other = tmp_path / "not-a-jail"
    for d in (dead, live, mine, full, legacy_old, legacy_new, other):
        d.mkdir()
    (full / "kept").write_text("x")
    two_hours_ago = time.time() - 7200
    os.utime(legacy_old, (two_hours_ago, two_hours_ago))

    removed = sweep_stale_jails(str(tmp_path))

    assert sorted(removed) == sorted([str(dead), str(legacy_old)])
    assert not dead.exists() and not legacy_old.exists()
    for d in (live, mine, full, legacy_new, other):
        assert d.exists(), d


def test_jail_names_carry_the_parent_pid() -> None:
    iso = default_isolation(65534)
    try:
        assert iso.jail is not None
        assert os.path.basename(iso.jail).startswith(f"virtkit-jail-{os.getpid()}-")
    finally:
        if iso.jail:
            os.rmdir(iso.jail)


def test_a_killed_parent_leaves_a_jail_the_next_run_removes(tmp_path: Path) -> None:
    code = (
        "import os, tempfile; tempfile.tempdir = os.environ['T']\n"
        "from virtkit.boot.worker import default_isolation\n"
        "iso = default_isolation(65534); print(iso.jail, flush=True); os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "T": str(tmp_path)},
                          capture_output=True, text=True, check=False)
    jail = proc.stdout.strip()
    assert proc.returncode == -9 and os.path.isdir(jail)  # SIGKILL: no cleanup ran
    assert sweep_stale_jails(str(tmp_path)) == [jail]
