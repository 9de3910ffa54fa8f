"""The EGD service on real sockets: every command, QEMU's pattern, hostile clients, limits, fairness, sources."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from egd_harness import EgdClient, ServiceThread, config_for

from virtkit.entropy.accounting import RatePolicy
from virtkit.entropy.listeners import Address
from virtkit.entropy.metrics import fetch
from virtkit.entropy.protocol import (
    BlockingData,
    GetLevel,
    GetPid,
    LevelReply,
    NonBlockingData,
    PidReply,
    ReadBlocking,
    ReadNonBlocking,
    WriteEntropy,
)
from virtkit.entropy.sources import DeviceSource, FallbackSource, build_source, parse_source
from virtkit.limits import Limits


def test_every_command_over_a_unix_socket(rundir: Path) -> None:
    with ServiceThread(config_for(rundir)) as svc, EgdClient(str(rundir / "egd.sock")) as c:
        c.send(GetLevel(), ReadBlocking(64), ReadNonBlocking(16), WriteEntropy(64, b"12345678"), GetPid(),
               ReadBlocking(0), ReadBlocking(255))
        got = c.replies(5)
        assert got[0] == LevelReply(0xFFFFFFFF)  # getrandom, no limit: "plenty"
        assert isinstance(got[1], BlockingData) and len(got[1].data) == 64
        assert isinstance(got[2], NonBlockingData) and len(got[2].data) == 16
        assert got[3] == PidReply(str(os.getpid()))
        assert isinstance(got[4], BlockingData) and len(got[4].data) == 255
        assert len({got[1].data, got[2].data, got[4].data[:64]}) == 3  # fresh bytes every time
        st = svc.wait_for(lambda s: sum(s["guests"].get(f"pid:{os.getpid()}", {}).get("requests", {}).values()) == 7)
        g = st["guests"][f"pid:{os.getpid()}"]
        assert g["bytes_served"] == 64 + 16 + 255
        assert g["requests"] == {"get-level": 1, "read-nonblocking": 1, "read-blocking": 3, "write": 1, "get-pid": 1}
        assert g["write_bytes"] == 8 and g["write_bits_claimed"] == 64
        assert g["latency"]["count"] == 5  # every request that owed a reply is timed


def test_qemu_pattern_pipelined_and_byte_by_byte(rundir: Path) -> None:
    """What rng-egd does: ceil(S/255) headers back to back; here also split into single bytes."""
    with ServiceThread(config_for(rundir)), EgdClient(str(rundir / "egd.sock")) as c:
        wire = b"".join(bytes((2, n)) for n in (255, 255, 255, 235))  # a 1000-byte device request
        for b in wire:
            c.send_raw(bytes((b,)))
            time.sleep(0.001)
        assert len(c.recv_exact(1000)) == 1000
        c.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            c.sock.recv(1)  # never a byte more than asked


def test_tcp_listener_on_loopback(rundir: Path) -> None:
    cfg = config_for(rundir, listen=[Address("tcp", host="127.0.0.1", port=0)])
    with ServiceThread(cfg) as svc:
        port = int(svc.status()["listeners"][0]["address"].rsplit(":", 1)[1])
        with EgdClient(("127.0.0.1", port)) as c:
            c.send(ReadBlocking(64))
            assert len(c.recv_exact(64)) == 64
        st = svc.wait_for(lambda s: "tcp:127.0.0.1" in s["guests"])
        assert st["guests"]["tcp:127.0.0.1"]["bytes_served"] == 64


def test_per_guest_sockets_identify_the_guest(rundir: Path) -> None:
    cfg = config_for(rundir, listen=[], guests=["web01", "db02"], socket_mode=0o660, socket_gid=os.getgid())
    with ServiceThread(cfg) as svc:
        for name in ("web01", "db02"):
            st = os.stat(rundir / "guests" / f"{name}.sock")
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid()
        with EgdClient(str(rundir / "guests" / "web01.sock")) as a, EgdClient(str(rundir / "guests" / "db02.sock")) as b:
            a.send(ReadBlocking(100))
            b.send(ReadBlocking(30), ReadBlocking(30))
            a.recv_exact(100)
            b.recv_exact(60)
        st = svc.wait_for(lambda s: s["guests"].get("db02", {}).get("bytes_served") == 60)
        assert st["guests"]["web01"]["bytes_served"] == 100
        assert st["guests"]["web01"]["pid"] == os.getpid()
    assert not (rundir / "guests" / "web01.sock").exists()  # removed on a final stop


def test_stale_socket_file_is_replaced_and_a_live_one_refused(rundir: Path) -> None:
    path = rundir / "egd.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    with ServiceThread(config_for(rundir)):
        with EgdClient(str(path)) as c:
            c.send(ReadBlocking(1))
            c.recv_exact(1)
        with pytest.raises(Exception, match="in use by another running service"):
            ServiceThread(config_for(rundir, metrics=[])).__enter__()


# -- hostile clients: each affects only itself ---------------------------------------------------------


def assert_still_serving(path: Path) -> None:
    with EgdClient(str(path), timeout=10) as good:
        for _ in range(20):
            good.send(ReadBlocking(64))
            assert len(good.recv_exact(64)) == 64


def test_garbage_closes_only_that_connection(rundir: Path) -> None:
    with ServiceThread(config_for(rundir)) as svc, EgdClient(str(rundir / "egd.sock")) as bystander:
        bystander.send(ReadBlocking(8))
        bystander.recv_exact(8)
        with EgdClient(str(rundir / "egd.sock")) as bad:
            bad.send_raw(b"\x02\x10\xffgarbage")
            assert len(bad.recv_exact(16)) == 16  # what came before the bad byte is still answered
            assert bad.is_closed_by_peer()
        bystander.send(ReadBlocking(8))
        assert len(bystander.recv_exact(8)) == 8
        st = svc.status()
        assert st["counters"]["protocol_errors"] == 1
        assert any("unknown command byte at stream offset 2, expected 0x00-0x04, got 0xff" in d for _, d in svc.events)


def test_a_client_that_never_reads_is_paused_with_bounded_memory(rundir: Path) -> None:
    limits = Limits(max_pending_bytes=64 * 1024)
    cfg = config_for(rundir, limits=limits, out_high_water=32 * 1024)
    with ServiceThread(cfg) as svc, EgdClient(str(rundir / "egd.sock")) as hog:
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # push requests until the service stops reading them
            try:
                sent += hog.sock.send(b"\x02\xff" * 4096)
            except BlockingIOError:
                time.sleep(0.05)
                try:
                    sent += hog.sock.send(b"\x02\xff" * 4096)
                except BlockingIOError:
                    break
        assert sent >= 8192  # it really tried
        assert_still_serving(rundir / "egd.sock")
        st = svc.status()
        hogc = next(c for c in st["connections"] if c["unsent_bytes"] or c["owed_bytes"] > 1000)
        assert hogc["owed_bytes"] <= limits.max_pending_bytes + 255 * 2  # parsing stopped at the cap
        # output: at most the high-water mark plus one batch of owed bytes made at once
        assert hogc["unsent_bytes"] <= 32 * 1024 + limits.max_pending_bytes + 255 * 2


def test_a_client_vanishing_mid_reply(rundir: Path) -> None:
    with ServiceThread(config_for(rundir, default_rate=RatePolicy(rate=2000, burst=100))) as svc:
        for _ in range(5):
            c = EgdClient(str(rundir / "egd.sock"))
            c.send(*[ReadBlocking(255)] * 40)  # 10 KiB owed, served slowly
            c.recv_exact(50)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()  # RST with bytes still owed
        svc.wait_for(lambda s: not s["connections"])
        assert_still_serving(rundir / "egd.sock")
        closed = [d for k, d in svc.events if k == "connection-closed"]
        assert len(closed) == 5 and all("requests were still owed" in d for d in closed)


def test_endless_writes_and_slow_partial_requests(rundir: Path) -> None:
    with ServiceThread(config_for(rundir)) as svc:
        writer = EgdClient(str(rundir / "egd.sock"))
        writer.send_raw((b"\x03\x00\x00\xff" + b"w" * 255) * 2000)  # 0.5 MB of "entropy", discarded
        slow = EgdClient(str(rundir / "egd.sock"))
        slow.send_raw(b"\x02")  # half a request, then silence
        assert_still_serving(rundir / "egd.sock")
        st = svc.wait_for(lambda s: sum(g["write_bytes"] for g in s["guests"].values()) == 255 * 2000)
        assert st["counters"]["protocol_errors"] == 0
        slow.send_raw(b"\x05")
        assert len(slow.recv_exact(5)) == 5  # the request completes whenever its second byte arrives
        writer.close()
        slow.close()


def test_max_connections(rundir: Path) -> None:
    with ServiceThread(config_for(rundir, limits=Limits(max_egd_connections=3))) as svc:
        keep = [EgdClient(str(rundir / "egd.sock")) for _ in range(3)]
        for c in keep:
            c.send(ReadBlocking(1))
            c.recv_exact(1)
        extra = EgdClient(str(rundir / "egd.sock"))
        assert extra.is_closed_by_peer()
        assert svc.status()["counters"]["rejected"] == 1
        assert any("max_egd_connections is 3" in d for _, d in svc.events)
        for c in [*keep, extra]:
            c.close()


# -- rate limits and fairness -------------------------------------------------------------------------


def test_rate_limit_holds_on_real_sockets(rundir: Path) -> None:
    rate, burst = 8192.0, 1024
    with ServiceThread(config_for(rundir, default_rate=RatePolicy(rate=rate, burst=burst))) as svc, \
            EgdClient(str(rundir / "egd.sock")) as c:
        start = time.monotonic()
        c.send(*[ReadBlocking(255)] * 64)  # 16 KiB
        got = 0
        samples = []
        while got < 255 * 64:
            got += len(c.sock.recv(65536))
            samples.append((time.monotonic() - start, got))
        for t, n in samples:  # never more than the bucket allows, however fast or slow this machine is
            assert n <= burst + rate * t + 64, (t, n)
        st = svc.status()
        g = next(iter(st["guests"].values()))
        assert g["throttled"] >= 1 and g["rate"] == rate


class FifoFeeder:
    """Writes urandom into a FIFO at a fixed rate: a slow hardware RNG stand-in read by DeviceSource."""

    def __init__(self, path: Path, rate: int) -> None:
        os.mkfifo(path)
        self.path = path
        self.rate = rate
        self.written = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with open(self.path, "wb", buffering=0) as f:
            tick = 0.02
            while not self.stop.is_set():
                f.write(os.urandom(int(self.rate * tick)))
                self.written += int(self.rate * tick)
                time.sleep(tick)


def test_fair_sharing_of_a_slow_source(rundir: Path) -> None:
    """Source slower than demand: a guest with two greedy connections gets no more than one asking modestly."""
    feeder = FifoFeeder(rundir / "hwrng", rate=16_000)
    source = FallbackSource(DeviceSource(str(rundir / "hwrng"), min_entropy=1.0))
    cfg = config_for(rundir, listen=[], guests=["greedy", "modest-a", "modest-b"])
    try:
        with ServiceThread(cfg, source) as svc:
            svc.wait_for(lambda s: s["source"]["state"] == "ok")
            greedy = [EgdClient(str(rundir / "guests" / "greedy.sock")) for _ in range(2)]
            modest = [EgdClient(str(rundir / "guests" / f"modest-{x}.sock")) for x in "ab"]
            for g in greedy:
                g.send(*[ReadBlocking(255)] * 200)
            for m in modest:
                m.send(*[ReadBlocking(64)] * 4)
            got = {id(c): 0 for c in [*greedy, *modest]}
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                for m in modest:  # keep four requests outstanding, like a busy guest
                    m.sock.setblocking(False)
                    try:
                        n = len(m.sock.recv(65536))
                    except BlockingIOError:
                        n = 0
                    before = got[id(m)] // 64
                    got[id(m)] += n
                    if got[id(m)] // 64 > before:
                        m.send(*[ReadBlocking(64)] * (got[id(m)] // 64 - before))
                time.sleep(0.005)
            st = svc.status()
            for c in [*greedy, *modest]:
                c.close()
        served = {g: st["guests"][g]["bytes_served"] for g in ("greedy", "modest-a", "modest-b")}
        total = sum(served.values())
        assert total <= feeder.written
        assert total > 10_000  # the source was the bottleneck and it flowed
        for m in ("modest-a", "modest-b"):
            ratio = served[m] / served["greedy"]
            assert 0.6 <= ratio <= 1.6, served  # FIFO service would give the greedy guest ~99%
    finally:
        feeder.stop.set()


def test_watchdog_flags_requests_owed_too_long(rundir: Path) -> None:
    cfg = config_for(rundir, default_rate=RatePolicy(rate=64, burst=64), watchdog=0.3)
    with ServiceThread(cfg) as svc, EgdClient(str(rundir / "egd.sock")) as c:
        c.send(ReadBlocking(64), ReadBlocking(255))  # the second waits ~4 s for tokens
        c.recv_exact(64)
        st = svc.wait_for(lambda s: next(iter(s["guests"].values()))["stalls"] >= 1)
        g = next(iter(st["guests"].values()))
        assert g["stalled_requests"] >= 1
        stall = [d for k, d in svc.events if k == "stall"]
        assert stall and "owed for more than 0.3 s" in stall[0] and "cause: its rate limit" in stall[0]


# -- sources ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "test"),
    [(b"\x00" * 100_000, "repetition-count"), (bytes(0x41 if i % 10 < 7 else i % 256 for i in range(100_000)),
                                                  "adaptive-proportion")],
    ids=["stuck", "biased"],
)
def test_a_failing_device_falls_back_to_getrandom_with_an_alert(rundir: Path, content: bytes, test: str) -> None:
    dev = rundir / "bad-hwrng"
    dev.write_bytes(content)
    source = build_source(parse_source(f"device:{dev}", min_entropy=1.0))
    with ServiceThread(config_for(rundir), source) as svc, EgdClient(str(rundir / "egd.sock")) as c:
        st = svc.wait_for(lambda s: s["source"]["state"] in ("failed", "unavailable") and s["counters"]["alerts"])
        c.send(ReadBlocking(200))
        assert len(c.recv_exact(200)) == 200  # served anyway, from getrandom
        st = svc.status()
        assert st["source"]["fallback"] is True
        assert st["source"]["health"][f"device:{dev}"]["failures"].get(test) == 1
        alerts = [a["message"] for a in st["alerts"]]
        assert any(test in a for a in alerts)
        text = fetch(f"unix:{rundir / 'metrics.sock'}", "/metrics").decode()
        assert "virtkit_entropy_source_fallback{source=" in text and ' 1\n' in text


def test_a_healthy_device_is_served_after_its_startup_test(rundir: Path) -> None:
    feeder = FifoFeeder(rundir / "hwrng", rate=200_000)
    source = build_source(parse_source(f"device:{rundir / 'hwrng'}"))
    try:
        with ServiceThread(config_for(rundir), source) as svc, EgdClient(str(rundir / "egd.sock")) as c:
            svc.wait_for(lambda s: s["source"]["state"] == "ok")
            c.send(*[ReadBlocking(255)] * 20)
            c.recv_exact(255 * 20)
            st = svc.status()
            assert st["source"]["fallback"] is False
            mon = st["source"]["health"][f"device:{rundir / 'hwrng'}"]
            assert mon["samples"] >= 1024 and mon["failures"] == {}
            assert source.fallback_bytes == 0  # type: ignore[attr-defined]
    finally:
        feeder.stop.set()


def test_upstream_egd_daemon_as_source_and_its_loss(rundir: Path) -> None:
    up = rundir / "up"
    up.mkdir()
    down = rundir / "down"
    down.mkdir()
    upstream = ServiceThread(config_for(up, metrics=[]))
    upstream.__enter__()
    source = build_source(parse_source(f"egd:unix:{up / 'egd.sock'}"), retry_interval=0.5)
    try:
        with ServiceThread(config_for(down), source) as svc, EgdClient(str(down / "egd.sock")) as c:
            svc.wait_for(lambda s: s["source"]["state"] == "ok")
            c.send(ReadBlocking(255), ReadBlocking(255))
            assert len(c.recv_exact(510)) == 510
            upstream.stop()
            svc.wait_for(lambda s: s["source"]["state"] == "unavailable")
            c.send(ReadBlocking(100))
            assert len(c.recv_exact(100)) == 100  # fallback
            alerts = [a["message"] for a in svc.status()["alerts"]]
            assert any(a.startswith(f"source egd:unix:{up / 'egd.sock'}: ") for a in alerts), alerts
    finally:
        upstream.stop()


# -- metrics ------------------------------------------------------------------------------------------


def test_metrics_endpoint(rundir: Path) -> None:
    with ServiceThread(config_for(rundir, guests=["vm\"1"], listen=[])) as svc:
        with EgdClient(str(rundir / "guests" / 'vm"1.sock')) as c:
            c.send(ReadBlocking(64))
            c.recv_exact(64)
        svc.wait_for(lambda s: 'vm"1' in s["guests"])
        text = fetch(f"unix:{rundir / 'metrics.sock'}", "/metrics").decode()
        assert 'virtkit_entropy_bytes_served_total{guest="vm\\"1"} 64\n' in text
        assert '# TYPE virtkit_entropy_request_latency_seconds histogram' in text
        assert 'virtkit_entropy_request_latency_seconds_bucket{guest="vm\\"1",le="+Inf"} 1\n' in text
        assert "entropy_avail" not in text
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(rundir / "metrics.sock"))
            s.sendall(b"POST /metrics HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 405")
        with pytest.raises(Exception, match="404"):
            fetch(f"unix:{rundir / 'metrics.sock'}", "/nope")
        with socket.socket(socket.AF_UNIX) as s:  # an endless header: cut off, the service keeps going
            s.connect(str(rundir / "metrics.sock"))
            s.sendall(b"GET /" + b"a" * 100_000)
        assert fetch(f"unix:{rundir / 'metrics.sock'}", "/status")


@pytest.mark.skipif(os.geteuid() != 0, reason="RNDADDENTROPY needs CAP_SYS_ADMIN")
@pytest.mark.parametrize("policy", ["mix", "credit"])
def test_write_policies(rundir: Path, policy: str) -> None:
    with ServiceThread(config_for(rundir, write_policy=policy)) as svc, EgdClient(str(rundir / "egd.sock")) as c:
        c.send(WriteEntropy(64, os.urandom(8)), ReadBlocking(1))
        c.recv_exact(1)
        assert not [d for k, d in svc.events if k == "write-policy"]
        assert next(iter(svc.status()["guests"].values()))["write_bytes"] == 8
