"""Metrics and status of the entropy service: Prometheus text, JSON, and the HTTP end point.

References:
    Prometheus "Exposition formats" (text format 0.0.4: ``# HELP``, ``# TYPE``,
        label values escaped as ``\\\\``, ``\\"``, ``\\n``; histograms as
        cumulative ``_bucket{le=...}`` series plus ``_sum`` and ``_count``).
    entropy.md §5 F7 (what operators need) - and what they must not get:
        the guest's ``entropy_avail`` is not a health signal, so it is not here.

``GET /metrics`` returns the text exposition, ``GET /status`` the JSON from
:func:`collect_status` (what ``virtkit entropy status`` prints).  The HTTP
side is deliberately tiny: one request per connection, request head capped at
8 KiB and 5 seconds, HTTP/1.0 replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from virtkit.entropy._conn import stats_to_json
from virtkit.entropy.listeners import Address, parse_address
from virtkit.errors import ServiceError

if TYPE_CHECKING:
    from virtkit.entropy.server import EntropyService

__all__ = ["METRICS", "collect_status", "fetch", "render_prometheus", "serve_http"]

MAX_REQUEST_HEAD = 8192
REQUEST_TIMEOUT = 5.0

# name -> (type, help).  Every series the service exports, in output order.
METRICS: dict[str, tuple[str, str]] = {
    "virtkit_entropy_bytes_served_total": ("counter", "Bytes of entropy sent to the guest."),
    "virtkit_entropy_requests_total": ("counter", "EGD requests received, by command."),
    "virtkit_entropy_request_latency_seconds": ("histogram", "Time from receiving a request to sending its last byte."),
    "virtkit_entropy_stalls_total": ("counter", "Requests that were owed longer than the watchdog threshold."),
    "virtkit_entropy_stalled_requests": ("gauge", "Requests owed longer than the watchdog threshold right now."),
    "virtkit_entropy_throttled_total": ("counter", "Times a guest had to wait for its rate limit."),
    "virtkit_entropy_owed_bytes": ("gauge", "Bytes owed to the guest right now (requested, not yet sent)."),
    "virtkit_entropy_connections": ("gauge", "Open EGD connections."),
    "virtkit_entropy_connections_total": ("counter", "EGD connections accepted."),
    "virtkit_entropy_write_bytes_total": ("counter", "Bytes guests offered with the write command (0x03)."),
    "virtkit_entropy_protocol_errors_total": ("counter", "Connections closed for a protocol violation."),
    "virtkit_entropy_rate_limit_bytes_per_second": ("gauge", "The guest's rate limit (absent: unlimited)."),
    "virtkit_entropy_source_healthy": ("gauge", "1 if the configured source is serving, 0 if not."),
    "virtkit_entropy_source_fallback": ("gauge", "1 while serving from getrandom because the source failed."),
    "virtkit_entropy_source_bytes_total": ("counter", "Bytes taken from the source (fallback included)."),
    "virtkit_entropy_health_samples_total": ("counter", "Bytes that passed SP 800-90B health tests, per monitor."),
    "virtkit_entropy_health_failures_total": ("counter", "SP 800-90B health test failures, per monitor and test."),
    "virtkit_entropy_alerts_total": ("counter", "Source alerts raised (health failures, source unavailable)."),
    "virtkit_entropy_connections_refused_total": ("counter", "Connections refused at max_egd_connections."),
    "virtkit_entropy_adopted_connections_total": ("counter", "Connections taken over from a predecessor process."),
    "virtkit_entropy_start_time_seconds": ("gauge", "When the service (its first process) started, Unix time."),
}


def collect_status(service: EntropyService) -> dict[str, Any]:
    """A JSON-able picture of the service (``GET /status``; input of :func:`render_prometheus`)."""
    assert service.loop is not None
    now = service.loop.time()
    stalled = service.stalled_now()
    owed: dict[str, int] = {}
    for conn in service.conns.values():
        owed[conn.guest] = owed.get(conn.guest, 0) + conn.core.owed_bytes
    guests = {}
    for name, st in sorted(service.stats.items()):
        policy = service.sched.policy_for(name)
        guests[name] = {
            **stats_to_json(st),
            "owed_bytes": owed.get(name, 0),
            "stalled_requests": stalled.get(name, 0),
            "rate": policy.rate,
            "burst": policy.burst if policy.rate is not None else None,
            "latency_p50": st.latency.quantile(0.5),
            "latency_p99": st.latency.quantile(0.99),
        }
    src = service.source
    monitors = {
        name: {"samples": m.samples, "failures": dict(m.failures), "healthy": m.healthy,
               "min_entropy": m.min_entropy, "rct_cutoff": m.rct.cutoff, "apt_cutoff": m.apt.cutoff}
        for name, m in src.monitors().items()
    }
    connections = []
    for c in service.conns.values():
        oldest = c.clock.oldest()
        connections.append({
            "id": c.id, "guest": c.guest, "how": c.identity.how, "pid": c.identity.pid,
            "owed_bytes": c.core.owed_bytes, "unsent_bytes": len(c.out), "owed_requests": c.clock.pending,
            "oldest_owed_seconds": None if oldest is None else round(now - oldest, 6),
        })
    return {
        "pid": os.getpid(),
        "uptime": time.time() - service.started_at,
        "started_at": service.started_at,
        "watchdog_seconds": service.config.watchdog,
        "source": {
            "name": src.name, "kind": src.kind, "state": src.state, "healthy": src.healthy,
            "fallback": bool(getattr(src, "using_fallback", False)),
            "bytes_out": src.bytes_out, "available": src.available(), "health": monitors,
        },
        "listeners": [{"name": lst.name, "role": lst.role, "address": lst.address, "guest": lst.guest}
                      for lst in service.listeners.values()],
        "connections": connections,
        "guests": guests,
        "counters": dict(service.counters),
        "alerts": [{"time": t, "kind": k, "message": m} for t, k, m in service.alerts],
    }


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: dict[str, object]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def render_prometheus(status: dict[str, Any]) -> str:
    """The Prometheus text exposition of a :func:`collect_status` result."""
    series: dict[str, list[str]] = {name: [] for name in METRICS}

    def add(name: str, labels: dict[str, object], value: float, suffix: str = "") -> None:
        series[name].append(f"{name}{suffix}{_labels(labels)} {_num(value)}")

    for guest, g in status["guests"].items():
        lg: dict[str, object] = {"guest": guest}
        add("virtkit_entropy_bytes_served_total", lg, g["bytes_served"])
        for cmd, n in g["requests"].items():
            add("virtkit_entropy_requests_total", {**lg, "command": cmd}, n)
        lat = g["latency"]
        running = 0
        for bound, count in zip([*lat["bounds"], math.inf], lat["counts"]):
            running += count
            add("virtkit_entropy_request_latency_seconds", {**lg, "le": _num(float(bound))}, running, "_bucket")
        add("virtkit_entropy_request_latency_seconds", lg, float(lat["sum"]), "_sum")
        add("virtkit_entropy_request_latency_seconds", lg, lat["count"], "_count")
        add("virtkit_entropy_stalls_total", lg, g["stalls"])
        add("virtkit_entropy_stalled_requests", lg, g["stalled_requests"])
        add("virtkit_entropy_throttled_total", lg, g["throttled"])
        add("virtkit_entropy_owed_bytes", lg, g["owed_bytes"])
        add("virtkit_entropy_connections", lg, g["connections_open"])
        add("virtkit_entropy_connections_total", lg, g["connections_total"])
        add("virtkit_entropy_write_bytes_total", lg, g["write_bytes"])
        add("virtkit_entropy_protocol_errors_total", lg, g["protocol_errors"])
        if g["rate"] is not None:
            add("virtkit_entropy_rate_limit_bytes_per_second", lg, float(g["rate"]))
    src = status["source"]
    ls: dict[str, object] = {"source": src["name"]}
    add("virtkit_entropy_source_healthy", {**ls, "state": src["state"]}, 1 if src["healthy"] else 0)
    add("virtkit_entropy_source_fallback", ls, 1 if src["fallback"] else 0)
    add("virtkit_entropy_source_bytes_total", ls, src["bytes_out"])
    for monitor, h in src["health"].items():
        add("virtkit_entropy_health_samples_total", {"monitor": monitor}, h["samples"])
        for test in ("repetition-count", "adaptive-proportion"):
            add("virtkit_entropy_health_failures_total", {"monitor": monitor, "test": test},
                h["failures"].get(test, 0))
    counters = status["counters"]
    add("virtkit_entropy_alerts_total", {}, counters.get("alerts", 0))
    add("virtkit_entropy_connections_refused_total", {}, counters.get("rejected", 0))
    add("virtkit_entropy_adopted_connections_total", {}, counters.get("adopted", 0))
    add("virtkit_entropy_start_time_seconds", {}, float(status["started_at"]))
    lines: list[str] = []
    for name, (kind, text) in METRICS.items():
        if not series[name]:
            continue
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(series[name])
    return "\n".join(lines) + "\n"


async def serve_http(sock: socket.socket, service: EntropyService) -> None:
    """Answer one HTTP request on an accepted metrics socket, then close it."""
    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
    else:
        reader, writer = await asyncio.open_connection(sock=sock)
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except asyncio.LimitOverrunError:
            head = b""
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        if len(head) > MAX_REQUEST_HEAD:
            head = b""
        parts = head.split(b"\r\n", 1)[0].split()
        method, target = (parts[0], parts[1]) if len(parts) >= 2 else (b"", b"")
        path = target.split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            code, ctype, body = "405 Method Not Allowed", "text/plain", b"only GET\n"
        elif path == b"/metrics":
            code, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
            body = render_prometheus(collect_status(service)).encode()
        elif path == b"/status":
            code, ctype = "200 OK", "application/json"
            body = json.dumps(collect_status(service), indent=1, sort_keys=True).encode() + b"\n"
        else:
            code, ctype, body = "404 Not Found", "text/plain", b"try /metrics or /status\n"
        header = f"HTTP/1.0 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(header.encode() + (body if method != b"HEAD" else b""))
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
    finally:
        writer.close()


def fetch(address: str | Address, path: str = "/status", *, timeout: float = 5.0,
          max_bytes: int = 64 << 20) -> bytes:
    """GET ``path`` from a running service's metrics socket (``virtkit entropy status``).

    Raises:
        ServiceError: cannot connect, a timeout, or a non-200 answer.
    """
    addr = address if isinstance(address, Address) else parse_address(address, allow_any_address=True)
    family = socket.AF_UNIX if addr.kind == "unix" else (socket.AF_INET6 if ":" in addr.host else socket.AF_INET)
    target: Any = addr.path if addr.kind == "unix" else (addr.host, addr.port)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(target)
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: virtkit\r\n\r\n".encode())
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise ServiceError(f"{addr}: reply larger than {max_bytes} bytes")
        except OSError as exc:
            raise ServiceError(f"cannot read {path} from {addr}: {exc.strerror or exc} "
                               "(is virtkit entropy serve running with --metrics there?)") from None
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status_line + " ":
        raise ServiceError(f"{addr}{path}: {status_line or 'no HTTP reply'}")
    return body
