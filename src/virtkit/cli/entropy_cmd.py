"""``virtkit entropy``: the EGD service for guests' virtio-rng, its status, hand-over, and the RNG audit.

::

    virtkit entropy serve   [--listen unix:PATH|tcp:HOST:PORT]... [--guest-dir DIR --guest NAME...]
                            [--metrics ADDR]... [--control PATH] [--source SPEC] [--rate R] ...
    virtkit entropy status  [--metrics ADDR] [--json | --prometheus]
    virtkit entropy handover [--control PATH]        start a successor and hand everything over
    virtkit entropy guest add|remove NAME [--control PATH]
    virtkit entropy audit   [XML-FILE|DIR]... [--connect URI] [--processes] [--json] [--fix] [--accounting]

See docs/entropy.md.  Errors go through ``virtkit.cli.main``'s single error mapping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import time
from typing import Any

from virtkit.errors import ServiceError, UsageError

__all__ = ["register"]

RUNTIME_DIR = "/run/virtkit/entropy"
DEFAULT_METRICS = f"unix:{RUNTIME_DIR}/metrics.sock"
DEFAULT_CONTROL = f"{RUNTIME_DIR}/control.sock"
EXIT_FINDINGS = 10  # audit: at least one warning or error

log = logging.getLogger("virtkit.entropy")


def register(subparsers: Any) -> None:
    """Add ``virtkit entropy`` and its actions (argparse set-up only)."""
    p = subparsers.add_parser(
        "entropy",
        help="feed guests' virtio-rng over EGD (serve), show its counters (status), audit VM RNG settings",
        description="An EGD service for QEMU's rng-egd with per-guest accounting, rate limits, health-tested "
        "sources and zero-downtime hand-over; and an audit of libvirt/QEMU RNG configuration.",
    )
    sub = p.add_subparsers(dest="entropy_action", metavar="ACTION")
    p.set_defaults(func=lambda args: _no_action(p))

    s = sub.add_parser("serve", help="run the EGD service")
    s.add_argument("--listen", action="append", default=[], metavar="ADDR",
                   help="shared EGD listener: unix:PATH, tcp:PORT (loopback) or tcp:HOST:PORT (repeatable); "
                        f"default unix:{RUNTIME_DIR}/egd.sock when no per-guest socket is configured")
    s.add_argument("--guest-dir", metavar="DIR", help=f"directory of per-guest sockets NAME.sock "
                   f"(default {RUNTIME_DIR}/guests when --guest or --guests-from is given)")
    s.add_argument("--guest", action="append", default=[], metavar="NAME", help="create a per-guest socket (repeatable)")
    s.add_argument("--guests-from", action="append", default=[], metavar="XML|DIR",
                   help="create sockets for the libvirt domains whose EGD backend points into --guest-dir "
                        "(re-read on SIGHUP)")
    s.add_argument("--metrics", action="append", default=None, metavar="ADDR",
                   help=f"serve /metrics and /status here (repeatable; default {DEFAULT_METRICS}; 'none' disables)")
    s.add_argument("--control", metavar="PATH", default=None,
                   help=f"control socket for hand-over and guest management (default {DEFAULT_CONTROL}; 'none' disables)")
    s.add_argument("--runtime-dir", metavar="DIR", default=RUNTIME_DIR,
                   help="base directory for the default socket paths")
    s.add_argument("--socket-group", metavar="GROUP", help="group owning the EGD sockets (e.g. libvirt-qemu, kvm)")
    s.add_argument("--socket-mode", default="0660", metavar="MODE", help="mode of the EGD sockets (default 0660)")
    s.add_argument("--allow-any-address", action="store_true", help="allow tcp:0.0.0.0 / tcp:[::] (EGD has no auth)")
    s.add_argument("--source", default="getrandom", metavar="SPEC",
                   help="getrandom (default), device:/dev/hwrng, egd:unix:PATH or egd:tcp:HOST:PORT")
    s.add_argument("--min-entropy", type=float, default=1.0, metavar="BITS",
                   help="claimed min-entropy per byte of a raw source, for the SP 800-90B health tests (default 1)")
    s.add_argument("--no-fallback", action="store_true", help="do not fall back to getrandom when a raw source fails")
    s.add_argument("--retry-interval", type=float, default=60.0, metavar="S",
                   help="seconds before a failed raw source is tried again")
    s.add_argument("--rate", default="unlimited", metavar="R[:BURST]",
                   help="default per-guest rate limit in bytes/s, e.g. 4k:512 (default unlimited)")
    s.add_argument("--guest-rate", action="append", default=[], metavar="NAME=R[:BURST]", help="one guest's limit")
    s.add_argument("--watchdog", type=float, default=5.0, metavar="S",
                   help="flag requests owed longer than this many seconds (default 5)")
    s.add_argument("--write-policy", choices=("discard", "mix", "credit"), default="discard",
                   help="what to do with bytes clients write (0x03): discard (default), mix into the host kernel "
                        "uncredited, or credit them (trusted writers only)")
    s.add_argument("--take-over", metavar="CONTROL", help="take every socket over from the service on this control "
                   "socket (zero-downtime restart)")
    s.add_argument("--proc", default="/proc", help=argparse.SUPPRESS)
    s.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="change a limit, e.g. max_egd_connections=10000")
    s.set_defaults(func=run_serve)

    st = sub.add_parser("status", help="show the running service's per-guest counters")
    st.add_argument("--metrics", default=DEFAULT_METRICS, metavar="ADDR", help="the service's metrics socket")
    mode = st.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print the raw /status JSON")
    mode.add_argument("--prometheus", action="store_true", help="print the /metrics text")
    st.set_defaults(func=run_status)

    h = sub.add_parser("handover", help="start a successor process and hand every socket over (zero downtime)")
    h.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH")
    h.add_argument("--timeout", type=float, default=30.0, metavar="S")
    h.set_defaults(func=run_handover)

    g = sub.add_parser("guest", help="add or remove a per-guest socket of the running service")
    g.add_argument("op", choices=("add", "remove"))
    g.add_argument("name")
    g.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH")
    g.set_defaults(func=run_guest)

    a = sub.add_parser("audit", help="check libvirt domains / running QEMUs for RNG problems")
    a.add_argument("paths", nargs="*", metavar="XML|DIR", help="domain XML files or directories of them")
    a.add_argument("--connect", metavar="URI", help="read every domain from live libvirt (needs libvirt-python)")
    a.add_argument("--processes", action="store_true", help="audit running QEMU command lines (/proc/*/cmdline)")
    a.add_argument("--proc", default="/proc", help=argparse.SUPPRESS)
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.add_argument("--fix", action="store_true", help="print the <rng> XML or QEMU arguments to use")
    a.add_argument("--accounting", action="store_true",
                   help="the fix uses rng-egd on this service's per-guest socket (accounting, limits)")
    a.add_argument("--guest-dir", default=f"{RUNTIME_DIR}/guests", metavar="DIR", help="where per-guest sockets live")
    a.add_argument("--rate-floor", type=int, default=1024, metavar="BYTES", help="report rates below this (bytes/s)")
    a.set_defaults(func=run_audit)

    c = sub.add_parser("config", help="print the RNG configuration for a new guest (libvirt XML or QEMU arguments)",
                       description="The RNG set-up virtkit recommends (entropy.md F2): rng-builtin by default; "
                       "rng-egd on the guest's own socket of `virtkit entropy serve` with --accounting; <genid/>.")
    c.add_argument("name", help="the guest (domain) name: names the per-guest socket")
    c.add_argument("--qemu", action="store_true", help="QEMU arguments instead of libvirt XML")
    c.add_argument("--accounting", action="store_true",
                   help="rng-egd on this service's per-guest socket (counters, limits), with reconnect")
    c.add_argument("--guest-dir", default=f"{RUNTIME_DIR}/guests", metavar="DIR", help="where per-guest sockets live")
    c.add_argument("--rate", metavar="BYTES[/MS]", help="a device rate limit: BYTES per MS milliseconds (default 1000)")
    c.add_argument("--no-genid", action="store_true", help="leave out <genid/> / -device vmgenid")
    c.add_argument("--no-builtin", action="store_true",
                   help="for libvirt < 6.1 / QEMU < 4.2: rng-random on /dev/urandom instead of rng-builtin")
    c.set_defaults(func=run_config)


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# -- serve -------------------------------------------------------------------------------------------


def _log_event(kind: str, detail: str) -> None:
    level = logging.INFO if kind in ("handover", "fdstore") else logging.WARNING
    log.log(level, "%s: %s", kind, detail)


def _successor_argv() -> list[str]:
    argv = list(sys.argv[1:])
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--take-over":
            skip = True
            continue
        if word.startswith("--take-over="):
            continue
        out.append(word)
    return [sys.executable, "-m", "virtkit.cli.main", *out]


def build_config(args: argparse.Namespace) -> tuple[Any, Any]:
    """``serve`` arguments -> (ServiceConfig, SourceSpec).

    Raises:
        UsageError: a bad address, rate, mode, group or name.
    """
    from virtkit.cli._common import limits_from_args
    from virtkit.entropy.accounting import parse_rate
    from virtkit.entropy.identity import check_guest_name
    from virtkit.entropy.listeners import parse_address, resolve_group
    from virtkit.entropy.server import ServiceConfig
    from virtkit.entropy.sources import parse_source

    try:
        mode = int(args.socket_mode, 8)
    except ValueError:
        raise UsageError(f"--socket-mode {args.socket_mode!r} is not an octal mode") from None
    if mode & ~0o777 or mode & 0o007:
        raise UsageError(f"--socket-mode {args.socket_mode}: must be at most 0770 (never world-accessible)")
    rt = args.runtime_dir.rstrip("/")
    guests = [check_guest_name(g) for g in args.guest]
    guest_dir = args.guest_dir or (f"{rt}/guests" if guests or args.guests_from else None)
    if guests and not guest_dir:
        raise UsageError("--guest needs --guest-dir")
    if guest_dir and args.guests_from:
        guests += _guests_from(args.guests_from, guest_dir)
    listen = [parse_address(a, allow_any_address=args.allow_any_address) for a in args.listen]
    if not listen and not guest_dir:
        listen = [parse_address(f"unix:{rt}/egd.sock")]
    metrics_args = args.metrics if args.metrics is not None else [f"unix:{rt}/metrics.sock"]
    metrics = [parse_address(m, allow_any_address=args.allow_any_address) for m in metrics_args if m != "none"]
    control = args.control if args.control is not None else f"{rt}/control.sock"
    rates = {}
    for item in args.guest_rate:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--guest-rate wants NAME=RATE[:BURST], got {item!r}")
        rates[check_guest_name(name)] = parse_rate(value)
    if args.watchdog <= 0:
        raise UsageError("--watchdog must be positive")
    config = ServiceConfig(
        listen=listen, guest_dir=guest_dir, guests=list(dict.fromkeys(guests)), metrics=metrics,
        control=None if control == "none" else control, socket_mode=mode, socket_gid=resolve_group(args.socket_group),
        default_rate=parse_rate(args.rate), guest_rates=rates, watchdog=args.watchdog,
        write_policy=args.write_policy, limits=limits_from_args(args), proc_root=args.proc,
    )
    spec = parse_source(args.source, min_entropy=args.min_entropy, fallback=not args.no_fallback)
    return config, spec


def _guests_from(paths: list[str], guest_dir: str) -> list[str]:
    from virtkit.entropy.domains import iter_xml_paths, load_xml_file

    prefix = guest_dir.rstrip("/") + "/"
    names = []
    for path in iter_xml_paths(paths):
        try:
            guest = load_xml_file(path)
        except UsageError as exc:
            log.warning("--guests-from: %s", exc)
            continue
        for rng in guest.rngs:
            if rng.backend == "egd" and rng.path and rng.path.startswith(prefix) and rng.path.endswith(".sock"):
                names.append(rng.path[len(prefix):-len(".sock")])
    return names


def run_serve(args: argparse.Namespace) -> int:
    from virtkit.entropy.runner import ServiceRunner
    from virtkit.entropy.sources import build_source

    config, spec = build_config(args)
    source = build_source(spec, retry_interval=args.retry_interval)
    rescan = (lambda: _guests_from(args.guests_from, config.guest_dir or "")) if args.guests_from else None
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("virtkit.entropy").setLevel(logging.INFO)
    runner = ServiceRunner(config, source, take_over_from=args.take_over, successor_argv=_successor_argv(),
                           rescan=rescan, on_event=_log_event)
    return asyncio.run(runner.run())


# -- status ------------------------------------------------------------------------------------------


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _fmt_latency(v: float | None) -> str:
    if v is None:
        return "-"
    if v == float("inf"):
        return ">30s"
    return f"<={v * 1000:g}ms" if v < 1 else f"<={v:g}s"


def render_status(st: dict[str, Any]) -> str:
    """The human view of ``GET /status``."""
    from virtkit.entropy.identity import display_name

    src = st["source"]
    lines = [
        f"virtkit entropy: pid {st['pid']}, up {st['uptime']:.0f} s, watchdog {st['watchdog_seconds']:g} s",
        f"source {src['name']}: {src['state']}" + (" (serving from getrandom: FALLBACK)" if src["fallback"] else "")
        + f", {_fmt_bytes(src['bytes_out'])} served",
    ]
    for name, h in src["health"].items():
        fails = ", ".join(f"{k} {v}" for k, v in sorted(h["failures"].items())) or "no failures"
        lines.append(f"  health {name}: {h['samples']} bytes tested, {fails} "
                     f"(H={h['min_entropy']:g}, cutoffs RCT {h['rct_cutoff']} APT {h['apt_cutoff']})")
    header = f"{'GUEST':<24} {'BYTES':>10} {'REQUESTS':>9} {'P50':>9} {'P99':>9} {'STALLS':>6} {'OWED':>8} {'CONN':>4} RATE"
    lines += ["", header]
    for name, g in st["guests"].items():
        reqs = sum(g["requests"].values())
        rate = "unlimited" if g["rate"] is None else f"{_fmt_bytes(g['rate'])}/s"
        lines.append(f"{display_name(name)[:24]:<24} {_fmt_bytes(g['bytes_served']):>10} {reqs:>9} "
                     f"{_fmt_latency(g['latency_p50']):>9} {_fmt_latency(g['latency_p99']):>9} {g['stalls']:>6} "
                     f"{_fmt_bytes(g['owed_bytes']):>8} {g['connections_open']:>4} {rate}")
    if not st["guests"]:
        lines.append("(no guest has connected yet)")
    for a in st["alerts"][-5:]:
        lines.append(f"alert {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(a['time']))} {a['kind']}: "
                     f"{a['message']}")
    return "\n".join(lines) + "\n"


def run_status(args: argparse.Namespace) -> int:
    from virtkit.entropy.metrics import fetch

    if args.prometheus:
        sys.stdout.write(fetch(args.metrics, "/metrics").decode("utf-8", "replace"))
        return 0
    body = fetch(args.metrics, "/status")
    if args.json:
        sys.stdout.write(body.decode("utf-8", "replace"))
        return 0
    try:
        status = json.loads(body)
    except ValueError:
        raise ServiceError(f"{args.metrics}: /status did not return JSON") from None
    sys.stdout.write(render_status(status))
    return 0


# -- control socket clients --------------------------------------------------------------------------


def control_request(path: str, request: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to the service's control socket and return its JSON answer.

    Raises:
        ServiceError: no service there, or no valid answer.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError as exc:
            raise ServiceError(f"control socket {path}: {exc.strerror or exc} (is virtkit entropy serve running?)") from None
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ServiceError(f"control socket {path}: no valid answer") from None
    if not isinstance(answer, dict):
        raise ServiceError(f"control socket {path}: no valid answer")
    return answer


def run_handover(args: argparse.Namespace) -> int:
    before = control_request(args.control, {"op": "status"})
    old_pid = before.get("status", {}).get("pid")
    answer = control_request(args.control, {"op": "reexec"})
    if not answer.get("ok"):
        raise ServiceError(f"the service refused: {answer.get('error')}")
    new_pid = answer.get("pid")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            now = control_request(args.control, {"op": "status"}, timeout=2.0)
        except ServiceError:
            continue
        pid = now.get("status", {}).get("pid")
        if pid == new_pid:
            st = now["status"]
            print(f"handed over from pid {old_pid} to pid {new_pid}: {len(st['connections'])} connections, "
                  f"{len(st['listeners'])} listeners kept")
            return 0
    raise ServiceError(f"successor pid {new_pid} did not take over within {args.timeout:g} s "
                       f"(pid {old_pid} keeps serving; see its log)")


def run_guest(args: argparse.Namespace) -> int:
    answer = control_request(args.control, {"op": f"{args.op}-guest", "guest": args.name})
    if not answer.get("ok"):
        raise ServiceError(f"{args.op} {args.name!r}: {answer.get('error') or 'no such guest socket'}")
    if answer.get("address"):
        print(answer["address"])
    return 0


# -- audit -------------------------------------------------------------------------------------------


def _host_has_rdrand(proc: str) -> bool | None:
    try:
        with open(os.path.join(proc, "cpuinfo"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "rdrand" in line.split(":", 1)[1].split()
    except OSError:
        return None
    return None


def _parse_rate(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    nbytes, _, period = text.partition("/")
    try:
        rate = (int(nbytes), int(period) if period else 1000)
    except ValueError:
        raise UsageError(f"--rate {text}: expected BYTES or BYTES/MILLISECONDS") from None
    if not (1 <= rate[0] <= 1 << 30 and 1 <= rate[1] <= 3_600_000):
        raise UsageError(f"--rate {text}: out of range")
    return rate


def run_config(args: argparse.Namespace) -> int:
    from virtkit.entropy.audit import generate_config

    try:
        text = generate_config(args.name, kind="qemu" if args.qemu else "libvirt", accounting=args.accounting,
                               guest_dir=args.guest_dir, rate=_parse_rate(args.rate), genid=not args.no_genid,
                               builtin=not args.no_builtin)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(text + "\n")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from virtkit.entropy.audit import AuditOptions, audit_guest, render_human, render_json
    from virtkit.entropy.domains import (
        GuestConfig,
        LoadProblem,
        iter_libvirt_domains,
        iter_qemu_processes,
        iter_xml_paths,
        load_xml_file,
    )

    if not args.paths and not args.connect and not args.processes:
        raise UsageError("nothing to audit: give domain XML files/directories (e.g. /etc/libvirt/qemu), "
                         "--connect qemu:///system, or --processes")
    guests: list[GuestConfig] = []
    problems: list[LoadProblem] = []
    for path in iter_xml_paths(args.paths):
        try:
            guests.append(load_xml_file(path))
        except UsageError as exc:
            problems.append(LoadProblem(path, str(exc)))
    if args.connect:
        guests.extend(iter_libvirt_domains(args.connect))
    if args.processes:
        for item in iter_qemu_processes(args.proc):
            if isinstance(item, LoadProblem):
                problems.append(item)
            else:
                guests.append(item)
    opts = AuditOptions(rate_floor=args.rate_floor, accounting=args.accounting, guest_dir=args.guest_dir,
                        host_rdrand=_host_has_rdrand(args.proc))
    reports = [audit_guest(g, opts) for g in guests]
    if args.json:
        sys.stdout.write(render_json(reports, problems, opts=opts))
    else:
        sys.stdout.write(render_human(reports, problems, fix=args.fix, opts=opts))
    bad = any(f.severity in ("error", "warning") for r in reports for f in r.findings) or problems
    return EXIT_FINDINGS if bad else 0
