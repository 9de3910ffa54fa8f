"""A real QEMU guest (TCG) reading /dev/hwrng through ``rng-egd`` on our per-guest socket.

The guest is Debian's kernel with a busybox initramfs (tests/tools/make_entropy_guest.py).
Checks: the guest gets its bytes and our per-guest counters match what it
read; a rate limit holds as the guest sees it; a hand-over during reads does
not wedge the guest - and, as the control that shows the test can fail, a
plain restart without hand-over does wedge it (entropy.md §3.8).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from egd_harness import reaped, spawn_service, wait_status

from helpers import TESTS, require_tool

pytestmark = pytest.mark.slow

sys.path.insert(0, str(TESTS / "tools"))


@pytest.fixture(scope="module")
def guest() -> tuple[Path, Path]:
    require_tool("qemu-system-x86_64", "busybox")
    from make_entropy_guest import build

    try:
        return build()
    except FileNotFoundError as exc:
        pytest.skip(f"cannot build the test guest: {exc} (scripts/test installs linux-image-amd64, busybox-static)")


class Qemu:
    """A TCG guest whose serial console is collected line by line."""

    def __init__(self, kernel: Path, initrd: Path, sock: Path, *, nbytes: int, runs: int = 1, name: str = "vm1") -> None:
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "256", "-display", "none",
               "-no-reboot", "-nodefaults", "-serial", "stdio", "-net", "none", "-name", f"guest={name}",
               "-kernel", str(kernel), "-initrd", str(initrd),
               "-append", f"console=ttyS0 panic=-1 quiet vk.bytes={nbytes} vk.runs={runs}",
               "-chardev", f"socket,id=chr0,path={sock},reconnect=1",
               "-object", "rng-egd,id=rng0,chardev=chr0", "-device", "virtio-rng-pci,rng=rng0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str] | None:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.5))

    def console(self) -> str:
        with self.cond:
            return "\n".join(self.lines[-40:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def args_for(rt: Path, rate: str | None = None) -> list[str]:
    out = ["--guest-dir", str(rt / "g"), "--guest", "vm1"]
    if rate:
        out += ["--guest-rate", f"vm1={rate}"]
    return out


def test_guest_reads_hwrng_and_our_counters_match(rundir: Path, guest: tuple[Path, Path]) -> None:
    rt = rundir
    with reaped([]) as procs:
        svc = spawn_service(rt, *args_for(rt))
        procs.append(svc)
        wait_status(rt / "metrics.sock", proc=svc)
        vm = Qemu(*guest, rt / "g" / "vm1.sock", nbytes=256 * 1024)
        try:
            assert vm.wait_line(r"VK-READY virtio_rng\.0", 120), vm.console()
            done = vm.wait_line(r"VK-DONE 1 bytes=(\d+) centis=(\d+)", 180)
            assert done, vm.console()
            assert int(done.group(1)) == 256 * 1024
            assert vm.wait_line("VK-END", 60)
            st = wait_status(rt / "metrics.sock")
            g = st["guests"]["vm1"]
            read = int(done.group(1))
            # every byte the guest read came from us; the rest went to the kernel's hwrng thread (a few refills)
            assert read <= g["bytes_served"] <= read + 64 * 64, g
            assert g["requests"] == {"read-blocking": g["bytes_served"] // 64}  # QEMU sends only 02 40
            assert g["bytes_served"] % 64 == 0
            assert g["connections_total"] == 1 and g["pid"] == vm.proc.pid  # SO_PEERCRED saw QEMU itself
            assert g["stalls"] == 0 and g["protocol_errors"] == 0
        finally:
            vm.stop()


def test_rate_limit_holds_in_the_guest(rundir: Path, guest: tuple[Path, Path]) -> None:
    rt = rundir
    rate, burst, nbytes = 4096, 512, 16 * 1024
    with reaped([]) as procs:
        svc = spawn_service(rt, *args_for(rt, f"{rate}:{burst}"))
        procs.append(svc)
        wait_status(rt / "metrics.sock", proc=svc)
        vm = Qemu(*guest, rt / "g" / "vm1.sock", nbytes=nbytes)
        try:
            done = vm.wait_line(r"VK-DONE 1 bytes=(\d+) centis=(\d+)", 240)
            assert done, vm.console()
            assert int(done.group(1)) == nbytes
            # the guest's own clock: at least (bytes - burst) / rate seconds (a lower bound, never flaky)
            assert int(done.group(2)) / 100 >= (nbytes - burst) / rate * 0.95
            g = wait_status(rt / "metrics.sock")["guests"]["vm1"]
            assert g["throttled"] >= 1 and g["rate"] == rate
            assert g["stalls"] == 0  # throttled, never stuck: each 64-byte request waits ~16 ms
        finally:
            vm.stop()


def test_handover_during_reads_does_not_wedge_the_guest(rundir: Path, guest: tuple[Path, Path]) -> None:
    rt = rundir
    args = args_for(rt, "16k:1k")
    with reaped([]) as procs:
        a = spawn_service(rt, *args, log_name="a.log")
        procs.append(a)
        wait_status(rt / "metrics.sock", proc=a)
        vm = Qemu(*guest, rt / "g" / "vm1.sock", nbytes=64 * 1024, runs=2)
        try:
            assert vm.wait_line("VK-START 1", 120), vm.console()
            wait_status(rt / "metrics.sock", lambda s: s["guests"].get("vm1", {}).get("bytes_served", 0) >= 8192)
            b = spawn_service(rt, *args, "--take-over", str(rt / "control.sock"), log_name="b.log")
            procs.append(b)
            assert a.wait(60) == 0
            first = vm.wait_line(r"VK-DONE 1 bytes=(\d+)", 120)
            second = vm.wait_line(r"VK-DONE 2 bytes=(\d+)", 120)
            assert first and second, vm.console()
            assert int(first.group(1)) == int(second.group(1)) == 64 * 1024
            assert vm.wait_line("VK-END", 60)
            st = wait_status(rt / "metrics.sock", proc=b)
            g = st["guests"]["vm1"]
            assert st["pid"] == b.pid
            assert st["counters"]["adopted"] == 1
            assert g["connections_total"] == 1  # QEMU never reconnected: the same stream went on
            assert 128 * 1024 <= g["bytes_served"] <= 128 * 1024 + 64 * 64
        finally:
            vm.stop()


def test_control_a_restart_without_handover_wedges_the_guest(rundir: Path, guest: tuple[Path, Path]) -> None:
    """entropy.md §3.8 reproduced: kill the service mid-read, start a fresh one; QEMU reconnects, sends nothing."""
    rt = rundir
    args = args_for(rt, "16k:1k")
    with reaped([]) as procs:
        a = spawn_service(rt, *args, log_name="a.log")
        procs.append(a)
        wait_status(rt / "metrics.sock", proc=a)
        vm = Qemu(*guest, rt / "g" / "vm1.sock", nbytes=64 * 1024)
        try:
            assert vm.wait_line("VK-START 1", 120), vm.console()
            wait_status(rt / "metrics.sock", lambda s: s["guests"].get("vm1", {}).get("bytes_served", 0) >= 8192)
            a.send_signal(signal.SIGKILL)
            a.wait(30)
            b = spawn_service(rt, *args, log_name="b.log")
            procs.append(b)
            wait_status(rt / "metrics.sock", lambda s: s["guests"].get("vm1", {}).get("connections_total", 0) >= 1,
                        timeout=30, proc=b)  # QEMU's reconnect=1 found the new service
            assert vm.wait_line("VK-DONE", 20) is None, vm.console()  # ... and the guest is stuck
            g = wait_status(rt / "metrics.sock")["guests"]["vm1"]
            assert g["requests"] == {} and g["bytes_served"] == 0  # the lost request is never re-sent
        finally:
            vm.stop()
