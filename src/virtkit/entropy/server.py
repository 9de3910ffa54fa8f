"""The EGD service: listeners, accepting, the stall watchdog, quiescing for hand-over (the asyncio shell).

References:
    entropy.md §3.8 (a dropped stream wedges the guest's hwrng, so nothing
        here closes a client stream except a protocol violation), §6.
    :mod:`virtkit.entropy.serving` (what happens on each connection),
    :mod:`virtkit.entropy.handover` (state export/adopt), :mod:`virtkit.entropy.runner`.

One process, one event loop.  Sockets are non-blocking and driven with
``loop.add_reader``/``add_writer`` rather than asyncio transports, so the
service owns each connection's unsent output: on a hand-over the bytes not
yet written travel to the successor with the rest of the connection's state.
Listeners have a role: ``egd`` (shared, or per-guest with the domain name),
``metrics`` and ``control`` (served by handlers the runner installs).

A protocol violation (an unknown command byte) closes only that connection.
QEMU never sends one.  The watchdog flags any request owed longer than
``watchdog`` seconds, with its likely cause (rate limit, source, a peer that
does not read).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from virtkit.entropy._conn import Connection, Listener, ServiceConfig
from virtkit.entropy.identity import PeerIdentity, display_name, identify_peer
from virtkit.entropy.listeners import Address, bind_listener, guest_socket_path
from virtkit.entropy.protocol import EgdServerConnection
from virtkit.entropy.serving import ServingCore
from virtkit.entropy.sources import EntropySource
from virtkit.errors import ServiceError

__all__ = ["Connection", "EntropyService", "Listener", "ServiceConfig"]

log = logging.getLogger(__name__)


class EntropyService(ServingCore):
    """The running service.  Create, :meth:`start`, then await :meth:`run`.

    Args:
        config: what to listen on and how to account.
        source: where bytes come from (default: getrandom).
        on_event: called with ``(kind, detail)`` for operator-visible events
            (alerts, stalls, hand-over); the CLI logs them.
    """

    def __init__(self, config: ServiceConfig, source: EntropySource | None = None,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        super().__init__(config, source, on_event)
        self.listeners: dict[str, Listener] = {}
        self.started_at = time.time()
        self._next_id = 1
        self._next_listener = 1
        self._watchdog_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._aux_tasks: set[asyncio.Task[Any]] = set()
        self.aux_handlers: dict[str, Callable[[socket.socket], Any]] = {}

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open configured listeners that were not inherited, start the source and the watchdog.

        Raises:
            ServiceError: a listener cannot be created.
        """
        self.loop = asyncio.get_running_loop()
        self.source.notify = self._source_notify
        self.source.alert = self._alert
        have = {(lst.role, lst.address) for lst in self.listeners.values()}
        cfg = self.config
        for addr in cfg.listen:
            if ("egd", str(addr)) not in have:
                self.add_listener(bind_listener(addr, mode=cfg.socket_mode, gid=cfg.socket_gid), "egd",
                                  path=addr.path or None)
        if cfg.guest_dir:
            for guest in cfg.guests:
                self.add_guest(guest)
        for addr in cfg.metrics:
            if ("metrics", str(addr)) not in have:
                self.add_listener(bind_listener(addr, mode=0o660, gid=cfg.socket_gid), "metrics",
                                  path=addr.path or None)
        if cfg.control and ("control", f"unix:{cfg.control}") not in have:
            self.add_listener(bind_listener(Address("unix", path=cfg.control), mode=0o600), "control",
                              path=cfg.control)
        await self.source.start()
        for lst in self.listeners.values():
            self._watch_listener(lst)
        for conn in self.conns.values():
            self._set_reading(conn, True)
            self._serve(conn, self.loop.time())
            self._flush(conn)
        self._watchdog_task = self.loop.create_task(self._watchdog_loop(), name="virtkit-entropy watchdog")
        self._kick()

    def add_guest(self, guest: str) -> Listener:
        """Create (or return) the per-guest socket ``guest_dir/NAME.sock``.

        Raises:
            UsageError: a bad name; ServiceError: no guest directory, or the socket cannot be made.
        """
        if not self.config.guest_dir:
            raise ServiceError("per-guest sockets need --guest-dir")
        for lst in self.listeners.values():
            if lst.role == "egd" and lst.guest == guest:
                return lst
        path = guest_socket_path(self.config.guest_dir, guest)
        sock = bind_listener(Address("unix", path=path), mode=self.config.socket_mode, gid=self.config.socket_gid)
        lst = self.add_listener(sock, "egd", guest=guest, path=path)
        if self.loop is not None and not self._frozen:
            self._watch_listener(lst)
        return lst

    def remove_guest(self, guest: str) -> bool:
        """Close a per-guest socket (existing connections stay).  Returns whether it existed."""
        for name, lst in list(self.listeners.items()):
            if lst.role == "egd" and lst.guest == guest:
                self._close_listener(name, unlink=True)
                return True
        return False

    def add_listener(self, sock: socket.socket, role: str, *, guest: str | None = None, path: str | None = None,
                     name: str | None = None) -> Listener:
        """Register a listening socket (created here, inherited, or handed over)."""
        sock.setblocking(False)
        if name is None:
            name = f"vk-listen-{self._next_listener}"
            self._next_listener += 1
        else:
            with contextlib.suppress(ValueError):
                self._next_listener = max(self._next_listener, int(name.rsplit("-", 1)[-1]) + 1)
        lst = Listener(sock, role, name, guest=guest, path=path)
        self.listeners[name] = lst
        if "listener" in self.hooks:
            self.hooks["listener"](lst)
        return lst

    def _watch_listener(self, lst: Listener) -> None:
        assert self.loop is not None
        self.loop.add_reader(lst.sock.fileno(), self._on_accept, lst)

    def _close_listener(self, name: str, *, unlink: bool) -> None:
        lst = self.listeners.pop(name)
        if self.loop is not None:
            self.loop.remove_reader(lst.sock.fileno())
        if "listener-closed" in self.hooks:
            self.hooks["listener-closed"](lst)
        if unlink:
            lst.unlink_if_ours()
        lst.sock.close()

    async def run(self) -> None:
        """Serve until :meth:`request_stop`."""
        await self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()

    async def close(self, *, unlink: bool = True) -> None:
        """Close everything (a final stop: connections are dropped, socket files removed)."""
        self._frozen = True
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog_task
        if self._pump_handle is not None:
            self._pump_handle.cancel()
        for task in list(self._aux_tasks):
            task.cancel()
        for conn in list(self.conns.values()):
            self._drop(conn, "service stopping", quiet=True)
        for name in list(self.listeners):
            self._close_listener(name, unlink=unlink)
        await self.source.close()

    # -- accepting ------------------------------------------------------------------------------

    def _on_accept(self, lst: Listener) -> None:
        for _ in range(64):
            try:
                sock, _addr = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.event("accept-failed", f"{lst.address}: {exc.strerror}")
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            if lst.role != "egd":
                self._spawn_aux(lst.role, sock)
                continue
            self._accept_egd(lst, sock)

    def _spawn_aux(self, role: str, sock: socket.socket) -> None:
        handler = self.aux_handlers.get(role)
        if handler is None:
            sock.close()
            return
        assert self.loop is not None
        task = self.loop.create_task(handler(sock))
        self._aux_tasks.add(task)
        task.add_done_callback(self._aux_tasks.discard)

    def _accept_egd(self, lst: Listener, sock: socket.socket) -> None:
        if len(self.conns) >= self.limits.max_egd_connections:
            self.counters["rejected"] += 1
            self.event("connection-refused",
                        f"{lst.address}: {len(self.conns)} connections open, max_egd_connections is "
                        f"{self.limits.max_egd_connections}")
            sock.close()
            return
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        identity = identify_peer(sock, socket_guest=lst.guest, proc_root=self.config.proc_root, limits=self.limits)
        if identity.note:
            self.event("identity", identity.note)
        conn = self.register_connection(sock, identity, lst.name, EgdServerConnection(limits=self.limits))
        self.counters["accepted"] += 1
        conn.stats.connections_total += 1
        log.info("connection %d from guest %r (%s, pid %s) on %s", conn.id, identity.guest, identity.how,
                 identity.pid, lst.address)
        if "accepted" in self.hooks:
            self.hooks["accepted"](conn)
        self._set_reading(conn, True)

    def register_connection(self, sock: socket.socket, identity: PeerIdentity, listener: str, core: EgdServerConnection,
                  cid: int | None = None) -> Connection:
        if cid is None:
            cid = self._next_id
        self._next_id = max(self._next_id, cid + 1)
        stats = self.guest_stats(identity.guest)
        conn = Connection(cid, sock, identity, listener=listener, stats=stats, core=core)
        stats.connections_open += 1
        if identity.pid is not None:
            stats.pid = identity.pid
        self.conns[cid] = conn
        return conn

    # -- watchdog -------------------------------------------------------------------------------

    async def _watchdog_loop(self) -> None:
        period = max(0.05, min(1.0, self.config.watchdog / 4))
        while True:
            await asyncio.sleep(period)
            if not self._frozen:
                self.check_stalls()

    def check_stalls(self) -> int:
        """Flag requests owed longer than the watchdog threshold; returns how many were newly flagged."""
        assert self.loop is not None
        now = self.loop.time()
        total = 0
        for conn in list(self.conns.values()):
            n = conn.clock.newly_stalled(now, self.config.watchdog)
            if not n:
                continue
            total += n
            conn.stats.stalls += n
            if conn.blocked:
                cause = "the client is not reading its replies"
            elif self.sched.policy_for(conn.guest).rate is not None and self.sched.tokens(conn.guest, now) < 64:
                cause = "its rate limit"
            elif not self.source.healthy or self.source.available() == 0:
                cause = f"the source ({self.source.name}, {self.source.state})"
            else:
                cause = "unknown"
            self.event(
                "stall",
                f"guest {display_name(conn.guest)!r} connection {conn.id}: {n} request(s) owed for more than "
                f"{self.config.watchdog:g} s ({conn.core.owed_bytes} bytes owed; cause: {cause})",
            )
        return total

    def stalled_now(self) -> dict[str, int]:
        """Guest -> requests currently owed longer than the watchdog threshold."""
        assert self.loop is not None
        now = self.loop.time()
        out: dict[str, int] = {}
        for conn in self.conns.values():
            oldest = conn.clock.oldest()
            if oldest is not None and now - oldest >= self.config.watchdog:
                out[conn.guest] = out.get(conn.guest, 0) + max(1, conn.clock.flagged)
        return out

    # -- hand-over ------------------------------------------------------------------------------

    async def quiesce(self, timeout: float = 2.0) -> None:
        """Stop accepting, reading and serving; give unsent output ``timeout`` seconds to drain."""
        assert self.loop is not None
        self._frozen = True
        for lst in self.listeners.values():
            self.loop.remove_reader(lst.sock.fileno())
        for conn in self.conns.values():
            self._set_reading(conn, False)
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None
        deadline = self.loop.time() + timeout
        while any(c.out for c in self.conns.values()) and self.loop.time() < deadline:
            await asyncio.sleep(0.005)
        for conn in self.conns.values():
            if conn.writing:
                self.loop.remove_writer(conn.fd)
                conn.writing = False

    def thaw(self) -> None:
        """Undo :meth:`quiesce` (a hand-over failed): serve again."""
        assert self.loop is not None
        self._frozen = False
        for lst in self.listeners.values():
            self._watch_listener(lst)
        now = self.loop.time()
        for conn in list(self.conns.values()):
            self._serve(conn, now)
            self._flush(conn)
            if not conn.blocked and not conn.peer_closed:
                self._set_reading(conn, True)
        self._kick()

