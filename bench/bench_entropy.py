#!/usr/bin/env python3
"""Benchmark ``virtkit entropy serve``: EGD requests per second and latency, and guest throughput under QEMU.

    python3 bench/bench_entropy.py            # everything, writes its section of docs/benchmarks.md
    python3 bench/bench_entropy.py --quick    # shorter runs (a smoke test)
    python3 bench/bench_entropy.py --no-guest # skip the QEMU part

Peers measured in the same run:

* request rate: a *floor* EGD server - 20 lines of asyncio ``add_reader`` that
  answers ``02 NN`` with ``os.getrandom`` and does nothing else (no parsing
  state, no accounting, no limits).  It bounds what any single-process
  asyncio server can do here; ours is one process too (one core), the load
  generator runs in separate processes;
* guest throughput: QEMU's own ``-object rng-random,filename=/dev/urandom``
  (no EGD hop at all), and the floor server behind ``rng-egd``, with a TCG
  guest (Debian's kernel, busybox initramfs; tests/tools/make_entropy_guest.py)
  reading ``/dev/hwrng`` with ``dd``, timed by the guest itself.

Load patterns (64-byte requests, ``02 40``, as QEMU sends them): one client
lock-step (QEMU with one outstanding buffer), one client with 16 in flight
(pipelined), and 32 clients at once (8 processes x 4 connections, 4 in flight each).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, format_ratio, machine_summary, markdown_table, update_benchmarks_md

FLOOR_SERVER = r"""
import asyncio, os, socket, sys
async def main(path):
    loop = asyncio.get_running_loop()
    if os.path.exists(path): os.unlink(path)
    srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(128); srv.setblocking(False)
    def accept():
        c, _ = srv.accept(); c.settimeout(5)
        def readable():
            try:
                d = c.recv(65536)
                if d:
                    c.sendall(os.getrandom(sum(d[1::2])))
                    return
            except OSError:
                pass
            loop.remove_reader(c.fileno()); c.close()
        loop.add_reader(c.fileno(), readable)
    loop.add_reader(srv.fileno(), accept)
    await asyncio.Event().wait()
asyncio.run(main(sys.argv[1]))
"""

REQ = b"\x02\x40"


def _worker(path: str, conns: int, inflight: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    socks = []
    for _ in range(conns):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        socks.append(s)
    sel = selectors.DefaultSelector()
    pending = {}
    got = {}
    sent_at: dict[int, list[float]] = {}
    lat: list[float] = []
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        pending[s] = inflight
        got[s] = 0
        sent_at[s.fileno()] = [time.perf_counter()] * inflight
        s.sendall(REQ * inflight)
    done = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(timeout=end - now):
            s = key.fileobj
            data = s.recv(65536)  # type: ignore[union-attr]
            if not data:
                raise SystemExit("server closed a connection")
            got[s] += len(data)
            complete, got[s] = divmod(got[s], 64)
            if complete:
                t = time.perf_counter()
                times = sent_at[s.fileno()]  # type: ignore[union-attr]
                if inflight == 1 and conns == 1:
                    lat.append(t - times[0])
                del times[:complete]
                times.extend([t] * complete)
                done += complete
                s.sendall(REQ * complete)  # type: ignore[union-attr]
    out.put((done, time.perf_counter() - start, lat))
    for s in socks:
        s.close()


def measure(path: str, *, procs: int, conns: int, inflight: int, seconds: float) -> tuple[float, list[float]]:
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    ps = [mp.Process(target=_worker, args=(path, conns, inflight, seconds, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    results = [q.get(timeout=seconds + 60) for _ in ps]
    for p in ps:
        p.join(30)
    total = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results)
    lat = [x for r in results for x in r[2]]
    return total / elapsed, lat


def start_ours(rt: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "virtkit.cli.main", "entropy", "serve", "--runtime-dir", str(rt),
                             "--listen", f"unix:{rt}/egd.sock", "--guest-dir", str(rt / "g"), "--guest", "bench"],
                            stdout=subprocess.DEVNULL, stderr=open(rt / "svc.log", "wb"), cwd=ROOT)  # noqa: SIM115
    wait_socket(rt / "egd.sock")
    return proc, str(rt / "egd.sock"), str(rt / "g" / "bench.sock")


def start_floor(rt: Path) -> tuple[subprocess.Popen[bytes], str]:
    path = rt / "floor.sock"
    proc = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(path)])
    wait_socket(path)
    return proc, str(path)


def wait_socket(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(path))
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise SystemExit(f"{path} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


PATTERNS = [
    ("1 client, lock-step (QEMU-like)", 1, 1, 1),
    ("1 client, 16 in flight (pipelined)", 1, 1, 16),
    ("32 clients (8 procs x 4 conns), 4 in flight", 8, 4, 4),
]


def bench_requests(rt: Path, seconds: float, repeat: int) -> tuple[list[list[object]], dict[str, float]]:
    ours_proc, ours, _ = start_ours(rt)
    try:
        floor_proc, floor = start_floor(rt)
    except BaseException:
        stop(ours_proc)
        raise
    rows: list[list[object]] = []
    key: dict[str, float] = {}
    try:
        measure(ours, procs=1, conns=1, inflight=16, seconds=0.5)  # warm-up
        measure(floor, procs=1, conns=1, inflight=16, seconds=0.5)
        for label, procs, conns, inflight in PATTERNS:
            o_rates, f_rates, o_lat, f_lat = [], [], [], []
            for _ in range(repeat):
                r, lat = measure(ours, procs=procs, conns=conns, inflight=inflight, seconds=seconds)
                o_rates.append(r)
                o_lat += lat
                r, lat = measure(floor, procs=procs, conns=conns, inflight=inflight, seconds=seconds)
                f_rates.append(r)
                f_lat += lat
            o, f = statistics.median(o_rates), statistics.median(f_rates)
            key[label] = o
            lat_cell = "-"
            if o_lat:
                q = statistics.quantiles(o_lat, n=100)
                fq = statistics.quantiles(f_lat, n=100)
                lat_cell = f"{q[49] * 1e6:.0f} / {q[98] * 1e6:.0f} µs (floor {fq[49] * 1e6:.0f} / {fq[98] * 1e6:.0f})"
            rows.append([label, f"{o:,.0f}", f"{f:,.0f}", format_ratio(o / f), lat_cell])
            print(f"{label}: ours {o:,.0f} req/s, floor {f:,.0f} req/s ({format_ratio(o / f)}) {lat_cell}")
    finally:
        stop(ours_proc)
        stop(floor_proc)
    return rows, key


# -- the guest ----------------------------------------------------------------------------------------

QEMU_BASE = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "256", "-display", "none",
             "-no-reboot", "-nodefaults", "-serial", "stdio", "-net", "none"]


def boot(kernel: Path, initrd: Path, rng_args: list[str], mib: int, runs: int) -> list[float]:
    """Boot once, read ``mib`` MiB from /dev/hwrng ``runs`` times; the guest's own seconds per run."""
    cmd = [*QEMU_BASE, "-kernel", str(kernel), "-initrd", str(initrd), "-append",
           f"console=ttyS0 panic=-1 quiet vk.bytes={mib << 20} vk.runs={runs}", *rng_args]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300).stdout
    times = [int(m) / 100 for m in re.findall(r"VK-DONE \d+ bytes=\d+ centis=(\d+)", out)]
    if len(times) != runs:
        raise SystemExit(f"guest run failed: {out[-2000:]}")
    return times


def bench_guest(rt: Path, boots: int, mib: int, runs: int) -> tuple[list[list[object]], float]:
    sys.path.insert(0, str(ROOT / "tests" / "tools"))
    from make_entropy_guest import build

    kernel, initrd = build()
    ours_proc, _, guest_sock = start_ours(rt)
    try:
        floor_proc, floor = start_floor(rt)
    except BaseException:
        stop(ours_proc)
        raise
    peers = {
        "virtkit entropy (rng-egd, per-guest socket)":
            ["-chardev", f"socket,id=c,path={guest_sock},reconnect=1", "-object", "rng-egd,id=r,chardev=c",
             "-device", "virtio-rng-pci,rng=r"],
        "floor EGD server (rng-egd)":
            ["-chardev", f"socket,id=c,path={floor}", "-object", "rng-egd,id=r,chardev=c",
             "-device", "virtio-rng-pci,rng=r"],
        "QEMU rng-random /dev/urandom":
            ["-object", "rng-random,id=r,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=r"],
    }
    samples: dict[str, list[float]] = {k: [] for k in peers}
    try:
        for _ in range(boots):  # interleaved, so load changes hit every peer alike
            for name, args in peers.items():
                samples[name] += boot(kernel, initrd, args, mib, runs)
    finally:
        stop(ours_proc)
        stop(floor_proc)
    base = statistics.median(samples["QEMU rng-random /dev/urandom"])
    rows: list[list[object]] = []
    ratio = 0.0
    for name, ts in samples.items():
        med = statistics.median(ts)
        mbs = mib / med
        rel = base / med
        if name.startswith("virtkit"):
            ratio = rel
        rows.append([name, f"{med:.2f} s", f"{min(ts):.2f}-{max(ts):.2f} s", f"{mbs:.2f} MiB/s", f"{rel * 100:.0f} %"])
        print(f"{name}: {med:.2f} s per {mib} MiB ({mbs:.2f} MiB/s, {rel * 100:.0f} % of rng-random)")
    return rows, ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-guest", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    seconds, repeat, boots, mib, runs = (1.0, 1, 1, 1, 1) if args.quick else (3.0, 3, 4, 1, 3)
    rt = Path(tempfile.mkdtemp(prefix="vk-bench-", dir="/tmp"))
    load = os.getloadavg()[0]
    print(machine_summary(), f"load average {load:.1f}")
    try:
        req_rows, key = bench_requests(rt, seconds, repeat)
        guest_rows: list[list[object]] = []
        ratio = None
        if not args.no_guest and shutil.which("qemu-system-x86_64"):
            guest_rows, ratio = bench_guest(rt, boots, mib, runs)
    finally:
        shutil.rmtree(rt, ignore_errors=True)
    pipelined = key["1 client, 16 in flight (pipelined)"]
    md = [
        "## Entropy service: EGD request rate and guest throughput (`bench/bench_entropy.py`)",
        "",
        f"Machine: {machine_summary()}; load average at start {load:.1f} (the host is shared, so absolute "
        "numbers move; compare within a row).",
        "",
        "### Requests per second, 64-byte `02 40` requests",
        "",
        "`virtkit entropy serve` (one process, so one core; getrandom source, per-guest accounting on) against "
        "the *floor*: a 20-line asyncio server that only answers `02 NN` with `os.getrandom` - no state, no "
        f"accounting. Load from separate processes over unix sockets; median of {repeat} runs of {seconds:g} s. "
        "Latency: lock-step round trip, p50 / p99, as seen by the client.",
        "",
        markdown_table(["pattern", "virtkit req/s", "floor req/s", "rate virtkit / floor", "latency p50 / p99"],
                       req_rows),
        "",
        f"Goal: >= 50,000 requests/s on one core, pipelined as QEMU does: **{pipelined:,.0f} req/s** "
        f"({'met' if pipelined >= 50_000 else 'missed'}).",
    ]
    if guest_rows:
        md += [
            "",
            f"### Guest throughput (TCG): `dd if=/dev/hwrng` of {mib} MiB, timed by the guest",
            "",
            f"Debian 12's kernel under `-accel tcg` with a busybox initramfs; {boots} boots per backend, "
            f"{runs} reads per boot, interleaved; median guest-timed seconds. Each 64-byte virtio-rng request is "
            "one EGD round trip (QEMU writes `02 40`, waits for the socket, copies the reply).",
            "",
            markdown_table(["backend", f"median time per {mib} MiB", "spread", "throughput", "of rng-random"],
                           guest_rows),
            "",
            f"Goal: >= 80 % of rng-random: **{(ratio or 0) * 100:.0f} %** "
            f"({'met' if (ratio or 0) >= 0.8 else 'missed'}). With the host this loaded, single boots move by "
            "tens of percent (see the spread) and ours and the floor trade places between runs; the floor server "
            "shows where the cost is: "
            "every `rng-egd` request needs another process to wake up and answer over a socket before QEMU's main "
            "loop can complete it, which `rng-random` (a read on an always-readable fd in QEMU itself) never "
            "pays. On this 2-vCPU (nested, shared) host that hop costs more than the guest's own work per "
            "request, for any EGD server. Real demand is far below either figure: an idle guest draws ~1 byte/s "
            "and a boot a few hundred bytes (entropy.md §3.7), so the EGD path is for accounting, limits and "
            "mediation, and `rng-builtin` stays the default where none of that is wanted (`virtkit entropy "
            "audit --fix`).",
        ]
    text = "\n".join(md)
    print()
    print(text)
    if not args.no_write:
        update_benchmarks_md("entropy", text)
    return 0


if __name__ == "__main__":
    mp.set_start_method("fork")
    sys.exit(main())
