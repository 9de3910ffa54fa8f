"""Test harness for the entropy service: a real service on real sockets, and plain blocking EGD clients.

``ServiceThread`` runs :class:`~virtkit.entropy.server.EntropyService` (with
the runner's metrics and control handlers) on its own event loop in a
background thread; tests talk to it over unix/TCP sockets like QEMU does and
read its state through :meth:`ServiceThread.status` (run on the loop thread).

``spawn_service`` starts ``python -m virtkit.cli.main entropy serve`` as a
separate process (hand-over tests need real processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from virtkit.entropy.client import EgdClientConnection
from virtkit.entropy.listeners import Address
from virtkit.entropy.metrics import collect_status, fetch, serve_http
from virtkit.entropy.protocol import NEED_DATA, Reply, Request
from virtkit.entropy.server import EntropyService, ServiceConfig
from virtkit.entropy.sources import EntropySource

ROOT = Path(__file__).resolve().parents[3]


class ServiceThread:
    """An in-process service on a background loop.  Use as a context manager."""

    def __init__(self, config: ServiceConfig, source: EntropySource | None = None) -> None:
        self.events: list[tuple[str, str]] = []
        self.config = config
        self.source = source
        self.loop = asyncio.new_event_loop()
        self.service: EntropyService | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="egd-service", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by __enter__/stop
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        svc = EntropyService(self.config, self.source, on_event=lambda k, d: self.events.append((k, d)))
        svc.aux_handlers["metrics"] = lambda sock: serve_http(sock, svc)
        self.service = svc
        await svc.start()
        self._ready.set()
        await svc.run()
        await svc.close()

    def __enter__(self) -> ServiceThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.service is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.service.request_stop)
            self._thread.join(30)

    def call(self, fn: Callable[[EntropyService], Any]) -> Any:
        """Run ``fn(service)`` on the service's loop and return its result."""
        assert self.service is not None
        fut: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(self._call(fn), self.loop)  # type: ignore[arg-type]
        return fut.result(30)

    async def _call(self, fn: Callable[[EntropyService], Any]) -> Any:
        assert self.service is not None
        return fn(self.service)

    def status(self) -> dict[str, Any]:
        return self.call(collect_status)  # type: ignore[no-any-return]

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached in {timeout} s; status: {json.dumps(st)[:2000]}")
            time.sleep(0.02)


class EgdClient:
    """A blocking EGD client over a real socket (unix path or (host, port))."""

    def __init__(self, where: str | tuple[str, int], timeout: float = 20.0) -> None:
        if isinstance(where, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(where)
        self.proto = EgdClientConnection()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> EgdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, *requests: Request) -> None:
        self.sock.sendall(b"".join(self.proto.send(r) for r in requests))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def replies(self, count: int) -> list[Reply]:
        """Read until ``count`` complete replies arrived (for requests sent with :meth:`send`)."""
        out: list[Reply] = []
        while len(out) < count:
            while len(out) < count and (ev := self.proto.next_event()) is not NEED_DATA:
                out.append(ev)  # type: ignore[arg-type]
            if len(out) < count:
                data = self.sock.recv(65536)
                self.proto.receive_data(data)
                if not data:
                    raise ConnectionError(f"closed after {len(out)} of {count} replies")
        return out

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def config_for(tmp: Path, **kw: Any) -> ServiceConfig:
    """A config listening on ``tmp/egd.sock`` with metrics on ``tmp/metrics.sock`` (override anything)."""
    base: dict[str, Any] = {
        "listen": [Address("unix", path=str(tmp / "egd.sock"))],
        "metrics": [Address("unix", path=str(tmp / "metrics.sock"))],
        "guest_dir": str(tmp / "guests"),
    }
    base.update(kw)
    return ServiceConfig(**base)


# -- separate processes -------------------------------------------------------------------------------


def spawn_service(runtime: Path, *args: str, env: dict[str, str] | None = None,
                  pass_fds: tuple[int, ...] = (), log_name: str = "service.log",
                  prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
    """``virtkit entropy serve --runtime-dir RUNTIME ARGS`` as a child process, logging to RUNTIME/LOG_NAME."""
    log = open(runtime / log_name, "ab")  # noqa: SIM115 - the child owns it
    cmd = [*(prefix or []), sys.executable, "-m", "virtkit.cli.main", "entropy", "serve",
           "--runtime-dir", str(runtime), *args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            pass_fds=pass_fds, cwd=ROOT)
    log.close()
    return proc


def wait_status(metrics: str | Path, pred: Callable[[dict[str, Any]], bool] = lambda s: True,
                timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """Poll ``GET /status`` on a metrics socket until ``pred`` holds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"service exited with {proc.returncode}")
        try:
            st = json.loads(fetch(f"unix:{metrics}", "/status", timeout=2.0))
            if pred(st):
                return st  # type: ignore[no-any-return]
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"status condition not reached within {timeout} s (last error: {last})")


@contextlib.contextmanager
def reaped(procs: list[subprocess.Popen[bytes]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Make sure child services (also those appended to ``procs`` later) are gone at the end (SIGTERM, then SIGKILL)."""
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
