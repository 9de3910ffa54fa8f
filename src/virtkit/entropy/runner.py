"""Running the entropy service as a process: start-up paths, signals, the control socket.

References:
    :mod:`virtkit.entropy.handover` (state format, systemd protocol, wire format).

Start-up, in order of preference:

1. ``--take-over CONTROL``: receive everything from a running service;
2. systemd passed descriptors (``LISTEN_FDS``): socket units and the fd store;
3. otherwise bind the configured addresses.

Signals: SIGTERM/SIGINT stop the service - under systemd (``NOTIFY_SOCKET``
set) the state is saved to the fd store first so that a restart continues
every stream; SIGUSR2 starts a successor (``--take-over``) and hands over;
SIGHUP re-reads ``--guests-from`` and adds sockets for new domains.

Control socket requests (one JSON line each; the socket is mode 0600)::

    {"op": "handover"}            a successor takes everything (handover.py)
    {"op": "reexec"}              start a successor with the same arguments
    {"op": "add-guest", "guest": "vm1"} / {"op": "remove-guest", "guest": "vm1"}
    {"op": "status"}              the same JSON as GET /status
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from virtkit.entropy.handover import (
    STATE_FDNAME,
    SystemdNotifier,
    adopt_state,
    export_state,
    listen_fds,
    release,
    send_handover,
    state_from_fdstore,
    take_over,
    wait_readable_line,
    write_state_memfd,
)
from virtkit.entropy.metrics import collect_status, serve_http
from virtkit.entropy.server import Connection, EntropyService, Listener, ServiceConfig
from virtkit.entropy.sources import EntropySource
from virtkit.errors import ServiceError, VirtkitError

__all__ = ["ServiceRunner"]

log = logging.getLogger(__name__)


class ServiceRunner:
    """One service process from start to exit.

    Args:
        config: the service configuration.
        source: the entropy source.
        take_over_from: a control socket to take everything over from.
        successor_argv: the command that starts a successor (for ``reexec``/SIGUSR2);
            ``--take-over CONTROL`` is appended.
        rescan: called on SIGHUP; returns guest names that should have sockets.
        on_event: operator-visible events (kind, detail).
    """

    def __init__(self, config: ServiceConfig, source: EntropySource, *, take_over_from: str | None = None,
                 successor_argv: Sequence[str] | None = None, rescan: Callable[[], list[str]] | None = None,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.service = EntropyService(config, source, on_event=on_event)
        self.take_over_from = take_over_from
        self.successor_argv = list(successor_argv) if successor_argv else None
        self.rescan = rescan
        self.notifier = SystemdNotifier()
        self.mode = "close"  # how run() ends: "close", "store" (systemd), "handed-over"
        self._inherited: set[str] = set()
        self._handover_busy = False
        self.service.aux_handlers["metrics"] = lambda sock: serve_http(sock, self.service)
        self.service.aux_handlers["control"] = self._handle_control
        self.ready = asyncio.Event()

    # -- start-up -----------------------------------------------------------------------------------

    def _install_fdstore_hooks(self) -> None:
        if not self.notifier.enabled:
            return
        n = self.notifier

        def accepted(conn: Connection) -> None:
            n.store(conn.fd, conn.name)

        def closed(conn: Connection) -> None:
            n.remove(conn.name)

        def listener(lst: Listener) -> None:
            if lst.name not in self._inherited and lst.name.startswith("vk-"):
                n.store(lst.sock.fileno(), lst.name)

        def listener_closed(lst: Listener) -> None:
            if lst.name.startswith("vk-"):
                n.remove(lst.name)

        self.service.hooks.update(accepted=accepted, closed=closed, listener=listener,
                                  **{"listener-closed": listener_closed})

    async def run(self) -> int:
        """Start, serve until told to stop, and stop the way the signal asked.  Returns an exit status."""
        svc = self.service
        control_sock: socket.socket | None = None
        if self.take_over_from:
            loop = asyncio.get_running_loop()
            csock, state, fds = await loop.run_in_executor(
                None, lambda: take_over(self.take_over_from or "", limits=self.config.limits))
            control_sock = csock
            try:
                for w in adopt_state(svc, state, fds):
                    svc.event("handover", w)
            except VirtkitError:
                csock.close()
                raise
            svc.event("handover", f"took over {len(svc.listeners)} listeners and {len(svc.conns)} connections "
                       f"from pid {state.get('pid')}")
        else:
            named = listen_fds()
            if named:
                roles = {str(m): "metrics" for m in self.config.metrics}
                if self.config.control:
                    roles[f"unix:{self.config.control}"] = "control"
                state, fds, notes = state_from_fdstore(named, guest_dir=self.config.guest_dir, roles=roles,
                                                       proc_root=self.config.proc_root, limits=self.config.limits)
                for note in notes:
                    svc.event("fdstore", note)
                adopt_state(svc, state, fds)
                self._inherited = {lst.name for lst in svc.listeners.values()}
                self.notifier.remove(STATE_FDNAME)
                if svc.conns:
                    svc.event("fdstore", f"continuing {len(svc.conns)} connections kept by systemd")
        self._install_fdstore_hooks()
        try:
            await svc.start()
        except BaseException:
            if control_sock is not None:
                with contextlib.suppress(OSError):
                    control_sock.sendall(b'{"op": "abort"}\n')
                control_sock.close()
            raise
        if control_sock is not None:
            with contextlib.suppress(OSError):
                control_sock.sendall(b'{"op": "adopted"}\n')
            control_sock.close()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        loop.add_signal_handler(signal.SIGUSR2, self._on_usr2)
        self.notifier.send(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving {len(svc.listeners)} listeners")
        self.ready.set()
        try:
            await svc.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
                loop.remove_signal_handler(sig)
        return await self._finish()

    async def _finish(self) -> int:
        svc = self.service
        if self.mode == "handed-over":
            return 0
        if self.mode == "store":
            await svc.quiesce()
            state, _fds = export_state(svc)
            fd = write_state_memfd(state)
            self.notifier.store(fd, STATE_FDNAME)
            os.close(fd)
            self.notifier.send("STOPPING=1\nSTATUS=state saved to the fd store")
            log.info("saved %d connections to the systemd fd store", len(svc.conns))
            release(svc)  # our copies only; systemd keeps the sockets open
            await svc.source.close()
            return 0
        self.notifier.send("STOPPING=1")
        await svc.close(unlink=True)
        return 0

    # -- signals ----------------------------------------------------------------------------------

    def _on_stop_signal(self) -> None:
        self.mode = "store" if self.notifier.enabled else "close"
        self.service.request_stop()

    def _on_hup(self) -> None:
        if self.rescan is None:
            return
        try:
            for guest in self.rescan():
                self.service.add_guest(guest)
        except VirtkitError as exc:
            self.service.event("rescan", str(exc))

    def _on_usr2(self) -> None:
        try:
            pid = self.spawn_successor()
            self.service.event("handover", f"started successor pid {pid}")
        except VirtkitError as exc:
            self.service.event("handover", str(exc))

    def spawn_successor(self) -> int:
        """Start ``successor_argv --take-over CONTROL``; it will connect back and take over.

        Raises:
            ServiceError: no control socket or no successor command configured.
        """
        if not self.config.control or not self.successor_argv:
            raise ServiceError("cannot start a successor: the service has no --control socket or command line")
        proc = subprocess.Popen([*self.successor_argv, "--take-over", self.config.control], close_fds=True)
        return proc.pid

    # -- the control socket -----------------------------------------------------------------------

    async def _reply(self, sock: socket.socket, obj: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(loop.sock_sendall(sock, json.dumps(obj).encode() + b"\n"), 5)

    async def _handle_control(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            try:
                line = await wait_readable_line(sock, 10.0)
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except (TimeoutError, ValueError, OSError, ServiceError) as exc:
                await self._reply(sock, {"ok": False, "error": f"bad control request: {exc}"})
                return
            op = req.get("op")
            try:
                if op == "handover":
                    await self._handover(sock)
                    return
                if op == "reexec":
                    await self._reply(sock, {"ok": True, "pid": self.spawn_successor()})
                elif op == "add-guest":
                    lst = self.service.add_guest(str(req.get("guest", "")))
                    await self._reply(sock, {"ok": True, "address": lst.address})
                elif op == "remove-guest":
                    await self._reply(sock, {"ok": self.service.remove_guest(str(req.get("guest", "")))})
                elif op == "status":
                    await self._reply(sock, {"ok": True, "status": collect_status(self.service)})
                else:
                    await self._reply(sock, {"ok": False, "error": f"unknown op {op!r}"})
            except VirtkitError as exc:
                await self._reply(sock, {"ok": False, "error": str(exc)})
        finally:
            sock.close()

    async def _handover(self, sock: socket.socket) -> None:
        svc = self.service
        if self._handover_busy or self.mode == "handed-over":
            await self._reply(sock, {"ok": False, "error": "a hand-over is already in progress"})
            return
        self._handover_busy = True
        loop = asyncio.get_running_loop()
        try:
            await svc.quiesce()
            state, fds = export_state(svc)
            sock.setblocking(True)

            def transfer() -> bytes:
                send_handover(sock, state, fds)
                sock.settimeout(30.0)
                buf = b""
                while not buf.endswith(b"\n"):
                    b = sock.recv(1)
                    if not b:
                        break
                    buf += b
                return buf

            try:
                answer = await loop.run_in_executor(None, transfer)
            except OSError as exc:
                answer = b""
                svc.event("handover", f"hand-over failed while sending: {exc}")
            try:
                ok = json.loads(answer or b"{}").get("op") == "adopted"
            except ValueError:
                ok = False
            if not ok:
                svc.event("handover", "the successor did not confirm; serving again")
                svc.thaw()
                return
            svc.event("handover", f"handed over {len(svc.listeners)} listeners and {len(svc.conns)} connections")
            release(svc)  # the successor announces MAINPID itself (NotifyAccess=all in the unit)
            self.mode = "handed-over"
            svc.request_stop()
        finally:
            self._handover_busy = False
