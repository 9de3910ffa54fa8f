"""``virtkit entropy serve|status|guest|handover`` as commands: a table of bad invocations, and a live service."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from egd_harness import ROOT, EgdClient, reaped, spawn_service, wait_status

from virtkit.cli.main import build_parser, main
from virtkit.entropy.protocol import ReadBlocking

# (arguments after "entropy serve", exit status, text the error must contain)
SERVE_ERRORS = [
    (["--listen", "tcp:0.0.0.0:7000"], 2, "refusing to listen on every address"),
    (["--listen", "tcp:[::]:7000"], 2, "refusing to listen on every address"),
    (["--listen", "tcp:localhost:7000"], 2, "give a numeric IP address"),
    (["--listen", "tcp:127.0.0.1:99999"], 2, "port out of range"),
    (["--listen", "unix:relative.sock"], 2, "must be absolute"),
    (["--listen", "udp:1"], 2, "want unix:/path"),
    (["--listen", "unix:/" + "x" * 120], 2, "limited to 107 bytes"),
    (["--rate", "fast"], 2, "bad rate 'fast'"),
    (["--guest-rate", "vm1"], 2, "--guest-rate wants NAME=RATE"),
    (["--guest", "../etc"], 2, "must not start with '.' or contain '/'"),
    (["--socket-mode", "0666"], 2, "never world-accessible"),
    (["--socket-mode", "rw"], 2, "not an octal mode"),
    (["--socket-group", "no-such-group-here"], 2, "no such group"),
    (["--source", "hwrng"], 2, "want getrandom, device:/dev/hwrng"),
    (["--source", "device:/dev/hwrng", "--min-entropy", "9"], 2, "claimed min-entropy must be in (0, 8]"),
    (["--watchdog", "0"], 2, "--watchdog must be positive"),
    (["--limit", "max_egd_connections=0"], 2, "must be a positive number"),
]


@pytest.mark.parametrize(("args", "code", "text"), SERVE_ERRORS, ids=[" ".join(a)[:40] for a, _, _ in SERVE_ERRORS])
def test_serve_refuses_bad_arguments(args: list[str], code: int, text: str, rundir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["entropy", "serve", "--runtime-dir", str(rundir), *args]) == code
    err = capsys.readouterr().err
    assert err.startswith("virtkit: error: ") and text in err, err


def test_explicit_wildcard_is_allowed(rundir: Path) -> None:
    from virtkit.cli.entropy_cmd import build_config

    args = build_parser().parse_args(["entropy", "serve", "--runtime-dir", str(rundir), "--listen", "tcp:0.0.0.0:0",
                                      "--allow-any-address", "--rate", "4k:512"])
    config, spec = build_config(args)
    assert str(config.listen[0]) == "tcp:0.0.0.0:0" and config.default_rate.rate == 4096 and spec.kind == "getrandom"


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["entropy", "status", "--metrics", "unix:/nonexistent/metrics.sock"], 9, "is virtkit entropy serve running"),
        (["entropy", "handover", "--control", "/nonexistent/control.sock"], 9, "control socket /nonexistent"),
        (["entropy", "guest", "add", "vm1", "--control", "/nonexistent/c.sock"], 9, "is virtkit entropy serve running"),
        (["entropy"], 2, ""),
    ],
)
def test_commands_without_a_service(argv: list[str], code: int, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    assert text in capsys.readouterr().err


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtkit.cli.main", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_status_and_guest_management_against_a_live_service(rundir: Path) -> None:
    rt = rundir
    with reaped([]) as procs:
        svc = spawn_service(rt, "--guest-dir", str(rt / "g"), "--guest", "web01", "--guest-rate", "web01=64k:4k")
        procs.append(svc)
        wait_status(rt / "metrics.sock", proc=svc)
        with EgdClient(str(rt / "g" / "web01.sock")) as c:
            c.send(ReadBlocking(200))
            c.replies(1)
        metrics = f"unix:{rt}/metrics.sock"
        out = run("entropy", "status", "--metrics", metrics)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith(f"virtkit entropy: pid {svc.pid}, up ")
        assert lines[1].startswith("source getrandom: ok")
        row = next(line for line in lines if line.startswith("web01"))
        assert row.split()[1:3] == ["200", "B"] and row.endswith("64.0 KiB/s")
        doc = json.loads(run("entropy", "status", "--metrics", metrics, "--json").stdout)
        assert doc["guests"]["web01"]["bytes_served"] == 200
        prom = run("entropy", "status", "--metrics", metrics, "--prometheus").stdout
        assert 'virtkit_entropy_rate_limit_bytes_per_second{guest="web01"} 65536.0' in prom

        control = str(rt / "control.sock")
        added = run("entropy", "guest", "add", "db02", "--control", control)
        assert added.returncode == 0 and added.stdout.strip() == f"unix:{rt}/g/db02.sock"
        with EgdClient(str(rt / "g" / "db02.sock")) as c:
            c.send(ReadBlocking(10))
            assert len(c.replies(1)[0].data) == 10  # type: ignore[union-attr]
        bad = run("entropy", "guest", "add", "a/b", "--control", control)
        assert bad.returncode == 9 and "must not start with '.' or contain '/'" in bad.stderr
        assert run("entropy", "guest", "remove", "db02", "--control", control).returncode == 0
        assert not (rt / "g" / "db02.sock").exists()
        gone = run("entropy", "guest", "remove", "db02", "--control", control)
        assert gone.returncode == 9 and "no such guest socket" in gone.stderr

        svc.send_signal(signal.SIGTERM)  # a final stop (no systemd): exit 0, socket files removed
        assert svc.wait(15) == 0
        for name in ("g/web01.sock", "metrics.sock", "control.sock"):
            assert not (rt / name).exists(), name


UNITS = ROOT / "contrib" / "systemd"


def test_unit_files_run_a_valid_command_line() -> None:
    unit = (UNITS / "virtkit-entropy.service").read_text()
    assert "\nType=notify\n" in unit and "\nFileDescriptorStoreMax=" in unit and "\nNotifyAccess=all\n" in unit
    exec_start = unit.split("\nExecStart=", 1)[1].split("\n# ", 1)[0].replace("\\\n", " ")
    argv = shlex.split(exec_start.splitlines()[0] if "\n" in exec_start.strip() else exec_start)
    assert argv[0].endswith("/virtkit")
    args = build_parser().parse_args(argv[1:])  # every flag the unit uses exists
    assert args.entropy_action == "serve" and args.socket_group == "libvirt-qemu"
    sock = (UNITS / "virtkit-entropy.socket").read_text()
    assert "ListenStream=/run/virtkit/entropy/egd.sock" in sock and "--listen unix:/run/virtkit/entropy/egd.sock" in unit


@pytest.mark.differential
def test_unit_files_pass_systemd_analyze(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    for f in UNITS.iterdir():
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(UNITS / "virtkit-entropy-guest@.socket", tmp_path / "virtkit-entropy-guest@vm1.socket")
    done = subprocess.run(["systemd-analyze", "verify", "virtkit-entropy.service", "virtkit-entropy.socket",
                           "virtkit-entropy-guest@vm1.socket"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in done.stderr.splitlines() if "/usr/local/bin/virtkit" not in line]
    assert problems == []
