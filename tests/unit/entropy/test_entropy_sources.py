"""Sources (getrandom buffering, the health-tested pool, fallback), listen addresses, Prometheus rendering."""

from __future__ import annotations

import os
import re

import pytest

from virtkit.entropy.listeners import Address, guest_socket_path, parse_address
from virtkit.entropy.metrics import METRICS, render_prometheus
from virtkit.entropy.sources import (
    REFILL,
    FallbackSource,
    GetrandomSource,
    PoolSource,
    parse_source,
)
from virtkit.errors import UsageError


def test_getrandom_source_hands_out_each_byte_once() -> None:
    src = GetrandomSource()
    sizes = [64] * 1000 + [255] * 300 + [1] * 70 + [REFILL // 2 + 1, 7, REFILL - 3, 64]
    chunks = [src.take(n) for n in sizes]
    assert [len(c) for c in chunks] == sizes
    assert src.bytes_out == sum(sizes)
    blob = b"".join(chunks)
    # no region was served twice (a refill bug would repeat a 64 KiB buffer)
    assert len({blob[i : i + 32] for i in range(0, len(blob) - 32, 32)}) == len(range(0, len(blob) - 32, 32))
    assert src.available() is None
    assert src.monitor.samples >= REFILL  # every refill went through the smoke test


class Pool(PoolSource):
    def __init__(self, **kw: object) -> None:
        super().__init__("test", **kw)  # type: ignore[arg-type]
        self.alerts: list[tuple[str, str]] = []
        self.alert = lambda kind, msg: self.alerts.append((kind, msg))


def test_pool_discards_startup_bytes_then_serves() -> None:
    p = Pool(pool_size=4096)
    p.feed(os.urandom(1000))
    assert p.state == "starting" and p.available() == 0
    p.feed(os.urandom(100))  # passes 1024 samples: ready, but these bytes were start-up samples too
    assert p.state == "ok" and p.available() == 0 and p.bytes_discarded == 1100
    p.feed(os.urandom(3000))
    assert p.available() == 3000
    p.feed(os.urandom(3000))  # over the pool size: the excess is dropped, the reader waits for room
    assert p.available() == 4096 and not p.room.is_set()
    first = p.take(3000)
    assert len(first) == 3000 and p.available() == 1096 and p.room.is_set()
    with pytest.raises(UsageError, match="2000 bytes asked, 1096 available"):
        p.take(2000)


def test_pool_failure_alerts_discards_and_retries() -> None:
    p = Pool(pool_size=4096, retry_interval=10.0)
    p.feed(os.urandom(2048))
    p.feed(os.urandom(1000))
    assert p.available() == 1000
    p.feed(b"\x00" * 64)  # stuck
    assert p.state == "failed" and p.available() == 0
    assert p.alerts and p.alerts[0][0] == "health" and "repetition-count" in p.alerts[0][1]
    assert p.monitor.failures == {"repetition-count": 1}
    p.feed(os.urandom(500))
    assert p.available() == 0  # nothing is served from a failed source
    assert not p.retry_due(p.failed_at + 5)  # type: ignore[operator]
    assert p.retry_due(p.failed_at + 10)  # type: ignore[operator]
    p.restart_tests()
    p.feed(os.urandom(1100))
    assert p.state == "ok"


def test_fallback_source_switches_on_failure() -> None:
    raw = Pool(pool_size=4096)
    fb = FallbackSource(raw)
    assert fb.using_fallback and fb.available() is None  # raw source still starting: getrandom serves
    assert len(fb.take(100)) == 100 and fb.fallback_bytes == 100
    raw.feed(os.urandom(1100))
    raw.feed(os.urandom(500))
    assert not fb.using_fallback and fb.available() == 500
    fb.take(500)
    raw.set_unavailable("device went away")
    assert fb.using_fallback and fb.state == "unavailable"
    assert ("unavailable", "source test: device went away") in raw.alerts
    assert set(fb.monitors()) == {"test", "getrandom"}


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [("getrandom", "getrandom", ""), ("device:/dev/hwrng", "device", "/dev/hwrng"),
     ("egd:unix:/run/ekeyd.sock", "egd", "unix:/run/ekeyd.sock"), ("egd:tcp:127.0.0.1:8888", "egd", "tcp:127.0.0.1:8888")],
)
def test_parse_source(text: str, kind: str, target: str) -> None:
    spec = parse_source(text)
    assert (spec.kind, spec.target) == (kind, target)


@pytest.mark.parametrize("text", ["", "rdrand", "device:hwrng", "egd:/x", "egd:tcp:nohost", "getrandom:x"])
def test_parse_source_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--source"):
        parse_source(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:/run/x.sock", Address("unix", path="/run/x.sock")),
        ("tcp:708", Address("tcp", host="127.0.0.1", port=708)),
        ("tcp:192.168.122.1:708", Address("tcp", host="192.168.122.1", port=708)),
        ("tcp:[::1]:708", Address("tcp", host="::1", port=708)),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    got = parse_address(text)
    assert got == expected
    assert parse_address(str(got)) == got


def test_guest_socket_path() -> None:
    assert guest_socket_path("/run/g", "web01") == "/run/g/web01.sock"
    with pytest.raises(UsageError, match="shorter --guest-dir"):
        guest_socket_path("/" + "d" * 60, "n" * 60)


def _status() -> dict[str, object]:
    lat = {"bounds": [0.001, 0.01], "counts": [3, 1, 1], "sum": 0.5, "count": 5}
    guest = {"bytes_served": 320, "requests": {"read-blocking": 5}, "latency": lat, "stalls": 1, "stalled_requests": 0,
             "throttled": 2, "owed_bytes": 64, "connections_open": 1, "connections_total": 3, "write_bytes": 0,
             "protocol_errors": 0, "rate": 4096.0}
    return {
        "guests": {"web01": guest, 'odd"name\\\n': {**guest, "rate": None}},
        "source": {"name": "getrandom", "state": "ok", "healthy": True, "fallback": False, "bytes_out": 640,
                   "health": {"getrandom": {"samples": 65536, "failures": {}}}},
        "counters": {"alerts": 0, "rejected": 0, "adopted": 1},
        "started_at": 1700000000.5,
    }


def test_prometheus_text_format() -> None:
    text = render_prometheus(_status())
    lines = text.splitlines()
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\["\\n])*",?)*\})? (-?[0-9.e+]+|\+Inf)$')
    declared: set[str] = set()
    for line in lines:
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
        elif not line.startswith("# HELP "):
            assert sample.match(line), line
            base = re.sub(r"_(bucket|sum|count)$", "", line.split("{")[0].split(" ")[0])
            assert base in declared or line.split("{")[0].split(" ")[0] in declared, line
    assert 'virtkit_entropy_bytes_served_total{guest="odd\\"name\\\\\\n"} 320' in lines
    assert 'virtkit_entropy_request_latency_seconds_bucket{guest="web01",le="0.001"} 3' in lines
    assert 'virtkit_entropy_request_latency_seconds_bucket{guest="web01",le="+Inf"} 5' in lines
    assert 'virtkit_entropy_rate_limit_bytes_per_second{guest="web01"} 4096.0' in lines
    assert not any(line.startswith('virtkit_entropy_rate_limit_bytes_per_second{guest="odd') for line in lines)
    assert "virtkit_entropy_start_time_seconds 1700000000.5" in lines
    assert declared <= set(METRICS)
