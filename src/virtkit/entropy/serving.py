"""Serving one EGD connection: read, parse, answer in order, share a limited source fairly, write.

References:
    entropy.md §2.2 (QEMU's ``rng-egd`` client: only ``02 NN``, replies in
        order, any fragmentation), §6 (read in chunks, keep a FIFO of owed
        bytes, serve from a buffered source, respect backpressure).
    :mod:`virtkit.entropy.protocol` (the sans-I/O core driven here).

:class:`ServingCore` is the part of :class:`~virtkit.entropy.server.EntropyService`
that touches connections once they exist; the service adds listeners,
accepting, the watchdog and hand-over.  Per connection::

    readable -> recv -> core.receive_data -> core.next_event()*  -> requests queued
             -> serve heads: level/pid/non-blocking at once; blocking reads:
                  unlimited guest + unlimited source -> bytes now (fast path)
                  otherwise -> FairScheduler demand -> grants on the next pump
             -> send what we can; keep the rest in ``conn.out``

Backpressure (what ``StreamWriter.drain()`` gives a streams program): while a
connection's unsent output is over ``out_high_water`` it is granted nothing
and not read; while it is owed ``max_pending_bytes`` it is not read either
(the core returns PAUSED).  So a client that never reads its replies costs a
bounded amount of memory and affects nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable

from virtkit.entropy._conn import Connection, ServiceConfig
from virtkit.entropy.accounting import FairScheduler, GuestStats
from virtkit.entropy.identity import display_name
from virtkit.entropy.protocol import (
    CMD_GET_LEVEL,
    CMD_GET_PID,
    CMD_READ_BLOCKING,
    CMD_READ_NONBLOCKING,
    MAX_LEVEL,
    NEED_DATA,
    PAUSED,
    BlockingData,
    ConnectionClosed,
    GetLevel,
    GetPid,
    LevelReply,
    NonBlockingData,
    PidReply,
    ReadBlocking,
    ReadNonBlocking,
    WriteEntropy,
)
from virtkit.entropy.sources import EntropySource, GetrandomSource, credit_kernel
from virtkit.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["RECV_SIZE", "ServingCore"]

log = logging.getLogger("virtkit.entropy.server")

RECV_SIZE = 65536


class ServingCore:
    """Connections, the scheduler and the source; no listeners (see the module docstring)."""

    def __init__(self, config: ServiceConfig, source: EntropySource | None = None,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.limits = config.limits
        self.source = source or GetrandomSource()
        self.sched = FairScheduler(config.default_rate, dict(config.guest_rates))
        self.conns: dict[int, Connection] = {}
        self.stats: dict[str, GuestStats] = {}
        self.counters: dict[str, int] = {
            "accepted": 0, "rejected": 0, "protocol_errors": 0, "adopted": 0, "handovers_in": 0, "alerts": 0,
        }
        self.alerts: deque[tuple[float, str, str]] = deque(maxlen=64)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_event = on_event
        self.hooks: dict[str, Callable[..., None]] = {}  # fd store bookkeeping (runner.py)
        self._pump_handle: asyncio.TimerHandle | None = None
        self._pump_at: float | None = None
        self._pump_soon = False
        self._frozen = False
        self._pid_text = str(os.getpid())

    # -- events and alerts ------------------------------------------------------------------------

    def event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)
        else:
            log.warning("%s: %s", kind, detail)

    def _alert(self, kind: str, message: str) -> None:
        self.counters["alerts"] += 1
        self.alerts.append((time.time(), kind, message))
        self.event(f"source-{kind}", message)

    def _source_notify(self) -> None:
        self._kick()

    def guest_stats(self, guest: str) -> GuestStats:
        st = self.stats.get(guest)
        if st is None:
            st = self.stats[guest] = GuestStats()
        return st

    # -- reading --------------------------------------------------------------------------------

    def _set_reading(self, conn: Connection, on: bool) -> None:
        if self.loop is None or on == conn.reading:
            return
        if on:
            if self._frozen:
                return
            self.loop.add_reader(conn.fd, self._on_readable, conn)
        else:
            self.loop.remove_reader(conn.fd)
        conn.reading = on

    def _on_readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(conn, f"receive failed: {exc.strerror}")
            return
        if (data and not conn.out and not self._frozen and self.source.available() is None
                and self.sched.policy_for(conn.guest).rate is None):
            owed = conn.core.receive_blocking_reads(data)
            if owed > 0:  # QEMU's pattern on an unlimited guest: answer in one go (same accounting)
                self._answer_now(conn, owed, len(data) >> 1)
                return
        try:
            conn.core.receive_data(data)
        except RemoteProtocolError as exc:
            self._protocol_error(conn, exc)
            return
        self._process(conn)

    def _answer_now(self, conn: Connection, owed: int, nreq: int) -> None:
        core = conn.core
        stats = conn.stats
        stats.requests[2] = stats.requests.get(2, 0) + nreq
        conn.out += core.send(BlockingData(self.source.take(owed)))
        stats.bytes_served += owed
        stats.latency.observe(0.0, core.completed - conn.done_seen)  # answered in the same instant
        conn.done_seen = core.completed
        self._flush(conn)

    def _process(self, conn: Connection) -> None:
        if conn.id not in self.conns:
            return
        assert self.loop is not None
        now = self.loop.time()
        core = conn.core
        stats = conn.stats
        requests = stats.requests
        arrived = 0
        nblock = 0
        while True:
            try:
                ev = core.next_event()
            except RemoteProtocolError as exc:
                if arrived:
                    conn.clock.arrived(now, arrived)
                self._serve(conn, now)  # answer what was validly asked before the bad byte, if we can now
                self._flush(conn)
                self._protocol_error(conn, exc)
                return
            t = type(ev)
            if t is ReadBlocking:
                nblock += 1
                if ev.count:  # type: ignore[union-attr]
                    arrived += 1
                continue
            if ev is NEED_DATA:
                break
            if ev is PAUSED:
                self._set_reading(conn, False)
                break
            if t is ConnectionClosed:
                conn.peer_closed = True
                self._set_reading(conn, False)
                break
            if t is WriteEntropy:
                self._on_write(conn, ev)  # type: ignore[arg-type]
                requests[3] = requests.get(3, 0) + 1
                continue
            arrived += 1
            cmd = CMD_GET_LEVEL if t is GetLevel else CMD_GET_PID if t is GetPid else CMD_READ_NONBLOCKING
            requests[cmd] = requests.get(cmd, 0) + 1
        if nblock:
            requests[2] = requests.get(2, 0) + nblock
        if arrived:
            conn.clock.arrived(now, arrived)
        self._serve(conn, now)
        self._flush(conn)
        if conn.peer_closed and core.head() is None and not conn.out and conn.id in self.conns:
            self._drop(conn, "peer closed the stream", quiet=True)
        if self._pump_soon:
            self._pump_soon = False
            self._pump()

    def _on_write(self, conn: Connection, ev: WriteEntropy) -> None:
        conn.stats.write_bytes += len(ev.data)
        conn.stats.write_bits_claimed += min(ev.bits, 8 * len(ev.data))
        policy = self.config.write_policy
        if policy == "discard" or not ev.data:
            return
        try:
            if policy == "mix":
                fd = os.open("/dev/urandom", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, ev.data)
                finally:
                    os.close(fd)
            elif policy == "credit":
                credit_kernel(ev.data, min(ev.bits, 8 * len(ev.data)))
        except OSError as exc:
            self.event("write-policy", f"guest {display_name(conn.guest)!r}: cannot {policy} written bytes: {exc}")

    def _protocol_error(self, conn: Connection, exc: RemoteProtocolError) -> None:
        conn.stats.protocol_errors += 1
        self.counters["protocol_errors"] += 1
        self._drop(conn, f"protocol error: {exc}")

    # -- serving --------------------------------------------------------------------------------

    def _level_bits(self, guest: str, now: float) -> int:
        avail = self.source.available()
        tokens = self.sched.tokens(guest, now)
        n = tokens if avail is None else min(avail, tokens)
        return min(MAX_LEVEL, 8 * n)

    def _serve(self, conn: Connection, now: float) -> None:
        """Answer what can be answered now; register blocking demand with the scheduler."""
        core = conn.core
        source = self.source
        out = conn.out
        while not self._frozen:
            head = core.head()
            if head is None:
                self.sched.remove(conn.id)
                break
            if head == CMD_READ_BLOCKING:
                if conn.blocked:
                    self.sched.remove(conn.id)
                    break
                want = core.head_blocking_bytes()
                if source.available() is None and self.sched.policy_for(conn.guest).rate is None:
                    out += core.send(BlockingData(source.take(want)))  # the fast path
                    conn.stats.bytes_served += want
                    continue
                if self.sched.tokens(conn.guest, now) < want:
                    conn.stats.throttled += 1
                self.sched.set_demand(conn.id, conn.guest, want, now)
                self._pump_soon = True
                break
            if head == CMD_GET_LEVEL:
                out += core.send(LevelReply(self._level_bits(conn.guest, now)))
            elif head == CMD_GET_PID:
                out += core.send(PidReply(self._pid_text))
            else:
                req = core.head_request()
                assert isinstance(req, ReadNonBlocking)
                avail = source.available()
                n = min(req.count, self.sched.tokens(conn.guest, now), req.count if avail is None else avail)
                data = source.take(n) if n else b""
                if n:
                    self.sched.charge(conn.guest, n, now)
                out += core.send(NonBlockingData(data))
                conn.stats.bytes_served += n
        done = core.completed - conn.done_seen
        if done:
            conn.done_seen = core.completed
            conn.clock.completed(done, now, conn.stats.latency)
        if (not conn.reading and not conn.peer_closed and not conn.blocked and not self._frozen
                and core.owed_bytes <= self.limits.max_pending_bytes // 2):
            self._set_reading(conn, True)
            if core.buffered:
                assert self.loop is not None
                self.loop.call_soon(self._process, conn)

    def _kick(self) -> None:
        """Run a pump soon (new demand, new source bytes)."""
        if self.loop is None or self._frozen:
            return
        self._pump_soon = False
        self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Hand out scheduler grants and arm the timer for the next one."""
        if self.loop is None or self._frozen:
            return
        now = self.loop.time()
        grants = self.sched.allocate(now, self.source.available())
        touched: list[Connection] = []
        for cid, n in grants:
            conn = self.conns.get(cid)  # type: ignore[call-overload]
            if conn is None:
                continue
            data = self.source.take(n)
            conn.out += conn.core.send(BlockingData(data))
            conn.stats.bytes_served += n
            touched.append(conn)
        for conn in touched:
            self._serve(conn, now)
            self._flush(conn)
        wake = self.sched.next_wakeup(now)
        if self._pump_handle is not None and (wake is None or self._pump_at != wake):
            self._pump_handle.cancel()
            self._pump_handle = None
        if wake is not None and self._pump_handle is None:
            self._pump_at = wake
            self._pump_handle = self.loop.call_at(max(wake, now + 0.0005), self._timer_pump)

    def _timer_pump(self) -> None:
        self._pump_handle = None
        self._pump()

    # -- writing --------------------------------------------------------------------------------

    def _flush(self, conn: Connection) -> None:
        out = conn.out
        if not out or conn.id not in self.conns:
            return
        try:
            sent = conn.sock.send(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._drop(conn, f"send failed: {exc.strerror}")
            return
        if sent:
            del out[:sent]
        if out:
            if not conn.writing and self.loop is not None:
                self.loop.add_writer(conn.fd, self._on_writable, conn)
                conn.writing = True
            if len(out) > self.config.out_high_water and not conn.blocked:
                conn.blocked = True
                self.sched.remove(conn.id)
                self._set_reading(conn, False)
        elif conn.writing and self.loop is not None:
            self.loop.remove_writer(conn.fd)
            conn.writing = False

    def _on_writable(self, conn: Connection) -> None:
        self._flush(conn)
        if conn.id not in self.conns:
            return
        if conn.blocked and len(conn.out) <= self.config.out_high_water // 2:
            conn.blocked = False
            assert self.loop is not None
            self._serve(conn, self.loop.time())
            self._flush(conn)
            self._pump()
        if conn.peer_closed and conn.core.head() is None and not conn.out:
            self._drop(conn, "peer closed the stream", quiet=True)

    # -- closing --------------------------------------------------------------------------------

    def _drop(self, conn: Connection, reason: str, *, quiet: bool = False) -> None:
        if self.conns.pop(conn.id, None) is None:
            return
        if self.loop is not None:
            if conn.reading:
                self.loop.remove_reader(conn.fd)
            if conn.writing:
                self.loop.remove_writer(conn.fd)
        self.sched.remove(conn.id)
        with contextlib.suppress(LocalProtocolError):
            conn.core.close()
        conn.stats.connections_open -= 1
        if "closed" in self.hooks:
            self.hooks["closed"](conn)
        conn.sock.close()
        owed = conn.clock.pending
        msg = f"connection {conn.id} of guest {display_name(conn.guest)!r} closed: {reason}"
        if owed:
            msg += f" ({owed} requests were still owed)"
        if quiet and not owed:
            log.info("%s", msg)
        else:
            self.event("connection-closed", msg)
