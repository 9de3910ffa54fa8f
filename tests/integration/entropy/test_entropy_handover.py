"""Zero-downtime restarts with real processes: explicit hand-over, re-exec, systemd socket activation and fd store.

The property under test (entropy.md §3.8): a client with requests outstanding
across a restart gets every byte it asked for, in order, on the same
connection - QEMU never re-sends a lost request.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from egd_harness import ROOT, EgdClient, reaped, spawn_service, wait_status

from helpers import require_tool
from virtkit.entropy.handover import recv_handover
from virtkit.entropy.protocol import BlockingData, GetPid, PidReply, ReadBlocking


def service_args(rt: Path, rate: str = "vm1=2048:256") -> list[str]:
    return ["--guest-dir", str(rt / "g"), "--guest", "vm1", "--listen", f"unix:{rt}/egd.sock", "--guest-rate", rate]


def log_of(rt: Path, name: str) -> str:
    p = rt / name
    return p.read_text() if p.exists() else ""


def test_explicit_handover_keeps_every_stream(rundir: Path) -> None:
    rt = rundir
    args = service_args(rt)
    with reaped([]) as procs:
        a = spawn_service(rt, *args, log_name="a.log")
        procs.append(a)
        wait_status(rt / "metrics.sock", proc=a)
        c = EgdClient(str(rt / "g" / "vm1.sock"))
        other = EgdClient(str(rt / "egd.sock"))  # a second, idle connection on the shared listener
        c.send(*[ReadBlocking(64)] * 40, GetPid())  # 2560 bytes at 2 KiB/s: still owed during the hand-over
        half = c.proto.send(ReadBlocking(64))
        c.send_raw(half[:1])  # half a request sits in the old process's buffer
        wait_status(rt / "metrics.sock", lambda s: s["guests"].get("vm1", {}).get("bytes_served", 0) >= 640)

        b = spawn_service(rt, *args, "--take-over", str(rt / "control.sock"), log_name="b.log")
        procs.append(b)
        assert a.wait(30) == 0, log_of(rt, "a.log")
        c.send_raw(half[1:])
        c.send(GetPid())
        replies = c.replies(43)
        assert [len(r.data) for r in replies if isinstance(r, BlockingData)] == [64] * 41
        pids = [r for r in replies if isinstance(r, PidReply)]
        assert pids[-1] == PidReply(str(b.pid))
        assert pids[0].pid in (str(a.pid), str(b.pid))  # whoever reached it in order
        assert isinstance(replies[40], PidReply) and isinstance(replies[42], PidReply)

        st = wait_status(rt / "metrics.sock", proc=b)
        assert st["pid"] == b.pid
        assert st["guests"]["vm1"]["bytes_served"] == 41 * 64  # counters continue across processes
        assert st["counters"]["adopted"] == 2 and st["counters"]["accepted"] == 2
        assert len(st["connections"]) == 2

        # and once more, B -> C, with the idle connection still open
        cproc = spawn_service(rt, *args, "--take-over", str(rt / "control.sock"), log_name="c.log")
        procs.append(cproc)
        assert b.wait(30) == 0, log_of(rt, "b.log")
        other.send(ReadBlocking(10), GetPid())
        got = other.replies(2)
        assert len(got[0].data) == 10 and got[1] == PidReply(str(cproc.pid))  # type: ignore[union-attr]
        st = wait_status(rt / "metrics.sock", proc=cproc)
        assert st["counters"]["handovers_in"] == 2
        c.close()
        other.close()
    assert "took over 4 listeners and 2 connections" in log_of(rt, "b.log")


def test_a_successor_that_does_not_confirm_leaves_the_old_process_serving(rundir: Path) -> None:
    rt = rundir
    with reaped([]) as procs:
        a = spawn_service(rt, *service_args(rt), log_name="a.log")
        procs.append(a)
        wait_status(rt / "metrics.sock", proc=a)
        c = EgdClient(str(rt / "g" / "vm1.sock"))
        c.send(*[ReadBlocking(255)] * 20)  # owed for a while
        c.replies(1)
        with socket.socket(socket.AF_UNIX) as ctl:  # a successor that takes everything and then dies
            ctl.settimeout(10)
            ctl.connect(str(rt / "control.sock"))
            ctl.sendall(json.dumps({"op": "handover"}).encode() + b"\n")
            state, fds = recv_handover(ctl)
            assert len(fds) == 5 and len(state["connections"]) == 1
            for fd in fds:
                os.close(fd)
        assert [len(r.data) for r in c.replies(19)] == [255] * 19  # type: ignore[union-attr]  # resumed: every byte
        assert a.poll() is None
        c.send(GetPid())
        assert c.replies(1) == [PidReply(str(a.pid))]  # type: ignore[comparison-overlap]
        c.close()
    assert "did not confirm; serving again" in log_of(rt, "a.log")


def test_handover_command_reexecs_the_service(rundir: Path) -> None:
    rt = rundir
    new_pid = None
    with reaped([]) as procs:
        a = spawn_service(rt, *service_args(rt, rate="vm1=8192:512"), log_name="a.log")
        procs.append(a)
        wait_status(rt / "metrics.sock", proc=a)
        c = EgdClient(str(rt / "g" / "vm1.sock"))
        c.send(*[ReadBlocking(255)] * 100)  # ~3 s at 8 KiB/s
        c.recv_exact(1000)
        try:
            done = subprocess.run([sys.executable, "-m", "virtkit.cli.main", "entropy", "handover", "--control",
                                   str(rt / "control.sock")], capture_output=True, text=True, timeout=60, cwd=ROOT)
            assert done.returncode == 0, done.stderr
            assert a.wait(30) == 0
            new_pid = wait_status(rt / "metrics.sock")["pid"]
            assert f"handed over from pid {a.pid} to pid {new_pid}: 1 connections" in done.stdout
            assert len(c.recv_exact(255 * 100 - 1000)) == 255 * 100 - 1000
        finally:
            if new_pid:
                os.kill(new_pid, signal.SIGTERM)
        c.close()


@pytest.mark.parametrize("first", ["client", "service"], ids=["client-first", "service-first"])
def test_systemd_socket_activation(rundir: Path, first: str) -> None:
    require_tool("systemd-socket-activate")
    rt = rundir
    with reaped([]) as procs:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(rt / "egd.sock"), "--fdname=egd",
             "-E", f"PYTHONPATH={ROOT / 'src'}", sys.executable, "-m", "virtkit.cli.main", "entropy", "serve",
             "--runtime-dir", str(rt), "--listen", f"unix:{rt}/egd.sock"],
            stdout=open(rt / "sa.log", "wb"), stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: SIM115
        procs.append(proc)
        deadline = time.monotonic() + 20
        while not (rt / "egd.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if first == "service":
            with EgdClient(str(rt / "egd.sock")) as poke:  # systemd-socket-activate starts it on first contact
                poke.send(ReadBlocking(1))
                poke.recv_exact(1)
        with EgdClient(str(rt / "egd.sock")) as c:
            c.send(ReadBlocking(64), GetPid())
            got = c.replies(2)
        st = wait_status(rt / "metrics.sock")
        assert got[1] == PidReply(str(st["pid"]))  # type: ignore[comparison-overlap]
        egd = [lst for lst in st["listeners"] if lst["role"] == "egd"]
        assert egd == [{"name": "sd-egd-3", "role": "egd", "address": f"unix:{rt}/egd.sock", "guest": None}]
    assert (rt / "egd.sock").exists() or True  # the inherited socket file belongs to the activator


# -- systemd's file descriptor store, emulated over the real sd_notify protocol ------------------------

LAUNCH = r"""
import fcntl, os, sys
src = [int(x) for x in sys.argv[1].split(",") if x]
names = sys.argv[2]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for fd in src]
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ.update(LISTEN_FDS=str(len(high)), LISTEN_FDNAMES=names, LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, "-m", "virtkit.cli.main", *sys.argv[3:]])
"""


class FakeSystemd:
    """The manager's side of sd_notify(3) FDSTORE/FDSTOREREMOVE and of sd_listen_fds(3), for one unit."""

    def __init__(self, rt: Path) -> None:
        self.path = rt / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.store: dict[str, int] = {}
        self.messages: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                msg, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(253 * 4))
            except OSError:
                return
            fds: list[int] = []
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(data[: len(data) - len(data) % 4])
                    fds.extend(arr)
            text = msg.decode()
            fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            with self.lock:
                self.messages.append(text)
                if fields.get("FDSTORE") == "1" and fds:
                    old = self.store.pop(fields.get("FDNAME", "stored"), None)
                    if old is not None:
                        os.close(old)
                    self.store[fields.get("FDNAME", "stored")] = fds[0]
                    for extra in fds[1:]:
                        os.close(extra)
                elif fields.get("FDSTOREREMOVE") == "1":
                    old = self.store.pop(fields.get("FDNAME", ""), None)
                    if old is not None:
                        os.close(old)
                else:
                    for fd in fds:
                        os.close(fd)

    def start(self, rt: Path, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with self.lock:
            names = list(self.store)
            fds = [self.store[n] for n in names]
        log = open(rt / log_name, "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, ",".join(map(str, fds)), ":".join(names),
             "entropy", "serve", "--runtime-dir", str(rt), *args],
            stdout=log, stderr=subprocess.STDOUT, pass_fds=fds, cwd=ROOT,
            env={**os.environ, "NOTIFY_SOCKET": str(self.path)})
        log.close()
        return proc

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for fd in self.store.values():
                os.close(fd)
            self.store.clear()


def test_systemd_fd_store_restart_keeps_owed_bytes(rundir: Path) -> None:
    rt = rundir
    sd = FakeSystemd(rt)
    args = service_args(rt)
    try:
        with reaped([]) as procs:
            a = sd.start(rt, args, "a.log")
            procs.append(a)
            wait_status(rt / "metrics.sock", proc=a)
            c = EgdClient(str(rt / "g" / "vm1.sock"))
            c.send(*[ReadBlocking(64)] * 40, GetPid())
            wait_status(rt / "metrics.sock", lambda s: s["guests"].get("vm1", {}).get("bytes_served", 0) >= 640)
            with sd.lock:
                assert "vk-conn-1" in sd.store and any(m.startswith("READY=1") for m in sd.messages)
            a.send_signal(signal.SIGTERM)  # systemctl restart: stop ...
            assert a.wait(30) == 0
            with sd.lock:
                assert "vk-state" in sd.store
            b = sd.start(rt, args, "b.log")  # ... and start, with the stored descriptors
            procs.append(b)
            c.send(GetPid())
            replies = c.replies(42)
            assert [len(r.data) for r in replies if isinstance(r, BlockingData)] == [64] * 40
            assert replies[-1] == PidReply(str(b.pid))
            st = wait_status(rt / "metrics.sock", proc=b)
            assert st["guests"]["vm1"]["bytes_served"] == 40 * 64
            assert st["counters"]["adopted"] == 1
            with sd.lock:
                assert "vk-state" not in sd.store  # consumed: a later crash cannot replay stale state
            c.close()
            time.sleep(0.3)
            with sd.lock:
                assert "vk-conn-1" not in sd.store  # closed connections leave the store
    finally:
        sd.close()
    assert "continuing 1 connections kept by systemd" in log_of(rt, "b.log")


def test_systemd_fd_store_after_a_crash(rundir: Path) -> None:
    """SIGKILL: no state is saved, but the connection itself survives in the store and keeps working."""
    rt = rundir
    sd = FakeSystemd(rt)
    args = service_args(rt, rate="vm1=unlimited")
    try:
        with reaped([]) as procs:
            a = sd.start(rt, args, "a.log")
            procs.append(a)
            wait_status(rt / "metrics.sock", proc=a)
            c = EgdClient(str(rt / "g" / "vm1.sock"))
            c.send(ReadBlocking(64))
            c.replies(1)
            time.sleep(0.2)
            a.kill()
            a.wait(10)
            b = sd.start(rt, args, "b.log")
            procs.append(b)
            c.send(ReadBlocking(64), GetPid())
            got = c.replies(2)
            assert len(got[0].data) == 64 and got[1] == PidReply(str(b.pid))  # type: ignore[union-attr]
            c.close()
    finally:
        sd.close()
    assert "came back without saved state (after a crash?)" in log_of(rt, "b.log")
