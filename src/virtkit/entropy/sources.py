"""Where the served bytes come from: getrandom, a hardware RNG device, an upstream EGD daemon.

References:
    getrandom(2) (blocks only until the kernel CRNG is seeded; after that it
        never blocks and is the right default, entropy.md §1.1).
    Linux ``drivers/char/hw_random/core.c``: ``/dev/hwrng`` is a raw device
        (reads block until the driver has data).
    ekeyd ``doc/README.egd-protocol``: an upstream EGD daemon (an Entropy Key's
        ekeyd in EGD mode) is read with ``02 NN`` requests.
    SP 800-90B §4.3/§4.4 via :mod:`virtkit.entropy.health`.

Every source exposes the same small interface to the service:

* :meth:`EntropySource.available` -> bytes that can be taken now (None = unlimited);
* :meth:`EntropySource.take` -> exactly that many bytes (never more than available);
* a ``notify`` callback the source calls when new bytes arrive (slow sources).

Raw sources (:class:`DeviceSource`, :class:`UpstreamEgdSource`) are
health-tested: start-up tests on the first 1024 bytes (discarded), then
continuous tests on every chunk; a chunk that fails is discarded, the source
is marked failed, an alert is raised, and :class:`FallbackSource` serves from
getrandom until a later retry passes the start-up tests again.  getrandom's
output is conditioned by the kernel, so the same tests on it are only a smoke
test (they catch a stuck or broken stream, nothing subtler).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from virtkit.entropy.client import EgdClientConnection
from virtkit.entropy.health import HealthFailure, HealthMonitor
from virtkit.entropy.protocol import NEED_DATA, BlockingData, ConnectionClosed, ReadBlocking
from virtkit.errors import RemoteProtocolError, ServiceError, UsageError

__all__ = [
    "DeviceSource",
    "EntropySource",
    "FallbackSource",
    "GetrandomSource",
    "PoolSource",
    "SourceSpec",
    "UpstreamEgdSource",
    "build_source",
    "credit_kernel",
    "parse_source",
]

log = logging.getLogger(__name__)

REFILL = 64 * 1024  # bytes per getrandom() call (entropy.md §6: cut syscalls)
POOL_SIZE = 64 * 1024  # bytes a raw source may buffer ahead
RETRY_INTERVAL = 60.0  # seconds before a failed raw source is tried again

Notify = Callable[[], None]
Alert = Callable[[str, str], None]  # (kind, message)


class EntropySource:
    """Base class; see the module docstring for the interface."""

    kind = "abstract"

    def __init__(self, name: str) -> None:
        self.name = name
        self.bytes_out = 0
        self.notify: Notify = lambda: None
        self.alert: Alert = lambda kind, msg: None

    def available(self) -> int | None:
        raise NotImplementedError

    def take(self, n: int) -> bytes:
        raise NotImplementedError

    @property
    def state(self) -> str:
        return "ok"

    @property
    def healthy(self) -> bool:
        return self.state == "ok"

    def monitors(self) -> dict[str, HealthMonitor]:
        """Health monitors by source name (for metrics)."""
        return {}

    async def start(self) -> None:
        """Begin producing (open devices, connect upstream)."""

    async def close(self) -> None:
        """Stop producing and release resources."""


class GetrandomSource(EntropySource):
    """The kernel CRNG via getrandom(2), read 64 KiB at a time, smoke-tested."""

    kind = "getrandom"

    def __init__(self, name: str = "getrandom") -> None:
        super().__init__(name)
        self.monitor = HealthMonitor(min_entropy=1.0)
        self._buf = b""
        self._pos = 0

    def available(self) -> int | None:
        return None

    def _fresh(self, n: int) -> bytes:
        for _ in range(3):
            data = os.getrandom(n)
            failure = self.monitor.check(data)
            if failure is None:
                return data
            self.alert("health", f"getrandom smoke test: {failure.detail}")
            self.monitor.reset()
        raise ServiceError("getrandom output failed the smoke test three times in a row; refusing to serve")

    def take(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            self.bytes_out += n
            return self._buf[pos:end]
        if n > REFILL // 2:
            self.bytes_out += n
            return self._fresh(n)
        head = self._buf[pos:]
        self._buf = self._fresh(REFILL)
        self._pos = n - len(head)
        self.bytes_out += n
        return head + self._buf[: self._pos]

    def monitors(self) -> dict[str, HealthMonitor]:
        return {self.name: self.monitor}


class PoolSource(EntropySource):
    """A raw source that delivers bytes asynchronously into a bounded, health-tested pool.

    Subclasses call :meth:`feed` with what they read and :meth:`set_unavailable`
    when their device or daemon goes away.
    """

    kind = "raw"

    def __init__(self, name: str, *, min_entropy: float = 1.0, pool_size: int = POOL_SIZE,
                 retry_interval: float = RETRY_INTERVAL) -> None:
        super().__init__(name)
        self.monitor = HealthMonitor(min_entropy=min_entropy)
        self.pool_size = pool_size
        self.retry_interval = retry_interval
        self._pool = bytearray()
        self._state = "starting"
        self.reason = ""
        self.bytes_in = 0
        self.bytes_discarded = 0
        self.failed_at: float | None = None
        self.room = threading.Event()  # set while the pool has room
        self.room.set()

    @property
    def state(self) -> str:
        return self._state

    def monitors(self) -> dict[str, HealthMonitor]:
        return {self.name: self.monitor}

    def available(self) -> int | None:
        return len(self._pool) if self._state == "ok" else 0

    def take(self, n: int) -> bytes:
        if n > len(self._pool) or self._state != "ok":
            raise UsageError(f"source {self.name}: {n} bytes asked, {len(self._pool)} available")
        out = bytes(self._pool[:n])
        del self._pool[:n]
        self.bytes_out += n
        if len(self._pool) < self.pool_size // 2:
            self.room.set()
        return out

    def feed(self, data: bytes) -> None:
        """Health-test bytes read from the raw source and keep those that pass."""
        if not data:
            return
        self.bytes_in += len(data)
        if self._state in ("failed", "unavailable"):
            self.bytes_discarded += len(data)
            return
        failure = self.monitor.check(data)
        if failure is not None:
            self._fail(failure)
            return
        if self._state == "starting":
            self.bytes_discarded += len(data)  # start-up samples are never served
            if self.monitor.ready:
                self._state = "ok"
                self.reason = ""
                log.info("entropy source %s passed its start-up health tests", self.name)
                self.notify()
            return
        room = self.pool_size - len(self._pool)
        if room < len(data):
            self.bytes_discarded += len(data) - room
            data = data[:room]
        self._pool += data
        if len(self._pool) >= self.pool_size:
            self.room.clear()
        self.notify()

    def _fail(self, failure: HealthFailure) -> None:
        self._state = "failed"
        self.reason = failure.detail
        self.failed_at = time.monotonic()
        self.bytes_discarded += len(self._pool)
        self._pool.clear()
        self.room.set()
        self.alert("health", f"source {self.name}: {failure.detail}")
        self.notify()

    def set_unavailable(self, reason: str) -> None:
        """The device or daemon went away: stop serving from it (an alert is raised once)."""
        if self._state != "unavailable":
            self.alert("unavailable", f"source {self.name}: {reason}")
        self._state = "unavailable"
        self.reason = reason
        self.failed_at = time.monotonic()
        self._pool.clear()
        self.room.set()
        self.notify()

    def restart_tests(self) -> None:
        """Begin a fresh start-up test (after a retry interval or a reconnect)."""
        self.monitor.reset()
        self._state = "starting"

    def retry_due(self, now: float) -> bool:
        return self._state in ("failed", "unavailable") and (
            self.failed_at is None or now - self.failed_at >= self.retry_interval
        )


class DeviceSource(PoolSource):
    """A hardware RNG character device (``/dev/hwrng``) or any readable file, read by a thread.

    The reads block in a daemon thread (a device with no data blocks; regular
    files and FIFOs are supported for testing), so the event loop never waits.
    End of file or a read error makes the source unavailable.
    """

    kind = "device"
    CHUNK = 4096

    def __init__(self, path: str, *, min_entropy: float = 1.0, retry_interval: float = RETRY_INTERVAL) -> None:
        super().__init__(f"device:{path}", min_entropy=min_entropy, retry_interval=retry_interval)
        self.path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn()

    def _spawn(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"virtkit-entropy {self.name}", daemon=True)
        self._thread.start()

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                self._post(self.set_unavailable, f"cannot open {self.path}: {exc.strerror}")
                if self._stop.wait(self.retry_interval):
                    return
                continue
            try:
                self._post(self.restart_tests)
                while not self._stop.is_set():
                    self.room.wait(1.0)
                    if not self.room.is_set():
                        continue
                    data = os.read(fd, self.CHUNK)
                    if not data:
                        self._post(self.set_unavailable, f"{self.path}: end of file")
                        break
                    self._post(self._feed_and_retry, data)
            except OSError as exc:
                self._post(self.set_unavailable, f"reading {self.path}: {exc.strerror}")
            finally:
                os.close(fd)
            if self._stop.wait(self.retry_interval):
                return

    def _feed_and_retry(self, data: bytes) -> None:
        if self.retry_due(time.monotonic()) and self.state == "failed":
            self.restart_tests()
        self.feed(data)

    async def close(self) -> None:
        self._stop.set()
        self.room.set()


class UpstreamEgdSource(PoolSource):
    """Another EGD daemon (``unix:PATH`` or ``tcp:HOST:PORT``), read with pipelined ``02 ff`` requests."""

    kind = "egd"
    INFLIGHT = 4

    def __init__(self, address: str, *, min_entropy: float = 1.0, retry_interval: float = RETRY_INTERVAL) -> None:
        super().__init__(f"egd:{address}", min_entropy=min_entropy, retry_interval=retry_interval)
        self.address = address
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    def take(self, n: int) -> bytes:
        out = super().take(n)
        self._wakeup.set()
        return out

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kind, _, rest = self.address.partition(":")
        if kind == "unix":
            return await asyncio.open_unix_connection(rest)
        host, _, port = rest.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                reader, writer = await asyncio.wait_for(self._connect(), 10)
            except (TimeoutError, OSError, ValueError) as exc:
                self.set_unavailable(f"cannot connect to {self.address}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            self.restart_tests()
            try:
                await self._pump(reader, writer)
                self.set_unavailable(f"{self.address} closed the connection")
            except (OSError, RemoteProtocolError) as exc:
                self.set_unavailable(f"{self.address}: {exc}")
            finally:
                writer.close()
            await asyncio.sleep(delay)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Keep up to INFLIGHT ``02 ff`` requests out while the pool has room; always watch for EOF."""
        client = EgdClientConnection()
        loop = asyncio.get_running_loop()
        reading: asyncio.Task[bytes] = loop.create_task(reader.read(65536))
        try:
            while True:
                want = self.pool_size - len(self._pool) - client.outstanding * 255
                while client.outstanding < self.INFLIGHT and want >= 255:
                    writer.write(client.send(ReadBlocking(255)))
                    want -= 255
                await writer.drain()
                self._wakeup.clear()
                waking = loop.create_task(self._wakeup.wait())
                done, _ = await asyncio.wait({reading, waking}, return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
                if reading not in done:
                    continue  # room in the pool: ask for more
                data = reading.result()
                client.receive_data(data)
                while True:
                    ev = client.next_event()
                    if ev is NEED_DATA or isinstance(ev, ConnectionClosed):
                        break
                    if isinstance(ev, BlockingData):
                        if self.state == "failed" and self.retry_due(time.monotonic()):
                            self.restart_tests()
                        self.feed(ev.data)
                if not data:
                    return
                reading = loop.create_task(reader.read(65536))
        finally:
            reading.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class FallbackSource(EntropySource):
    """Serve from a raw source while it is healthy, from getrandom otherwise."""

    kind = "fallback"

    def __init__(self, primary: PoolSource, fallback: GetrandomSource | None = None) -> None:
        super().__init__(primary.name)
        self.primary = primary
        self.fallback = fallback or GetrandomSource()
        self.fallback_bytes = 0

    @property
    def using_fallback(self) -> bool:
        return self.primary.state != "ok"

    @property
    def state(self) -> str:
        return self.primary.state

    def available(self) -> int | None:
        return None if self.using_fallback else self.primary.available()

    def take(self, n: int) -> bytes:
        if self.using_fallback:
            self.fallback_bytes += n
            self.bytes_out += n
            return self.fallback.take(n)
        self.bytes_out += n
        return self.primary.take(n)

    def monitors(self) -> dict[str, HealthMonitor]:
        return {**self.primary.monitors(), **self.fallback.monitors()}

    async def start(self) -> None:
        self.primary.notify = self.notify
        self.primary.alert = self.alert
        self.fallback.alert = self.alert
        await self.primary.start()

    async def close(self) -> None:
        await self.primary.close()


@dataclass(frozen=True)
class SourceSpec:
    """``--source``: ``getrandom``, ``device:PATH`` or ``egd:unix:PATH`` / ``egd:tcp:HOST:PORT``."""

    kind: str
    target: str = ""
    min_entropy: float = 1.0
    fallback: bool = True


def parse_source(text: str, *, min_entropy: float = 1.0, fallback: bool = True) -> SourceSpec:
    """Parse a ``--source`` value.

    Raises:
        UsageError: an unknown kind or a malformed address.
    """
    kind, _, target = text.partition(":")
    if kind == "getrandom" and not target:
        return SourceSpec("getrandom")
    if kind == "device" and target.startswith("/"):
        return SourceSpec("device", target, min_entropy, fallback)
    if kind == "egd" and (target.startswith("unix:/") or (target.startswith("tcp:") and ":" in target[4:])):
        return SourceSpec("egd", target, min_entropy, fallback)
    raise UsageError(
        f"--source {text!r}: want getrandom, device:/dev/hwrng, egd:unix:/path/to/socket or egd:tcp:HOST:PORT"
    )


def build_source(spec: SourceSpec, *, retry_interval: float = RETRY_INTERVAL) -> EntropySource:
    """Instantiate a source (raw ones wrapped in :class:`FallbackSource` unless fallback is off)."""
    if spec.kind == "getrandom":
        return GetrandomSource()
    raw: PoolSource
    if spec.kind == "device":
        raw = DeviceSource(spec.target, min_entropy=spec.min_entropy, retry_interval=retry_interval)
    else:
        raw = UpstreamEgdSource(spec.target, min_entropy=spec.min_entropy, retry_interval=retry_interval)
    return FallbackSource(raw) if spec.fallback else raw


RNDADDENTROPY = 0x40085203  # _IOW('R', 0x03, int[2]), include/uapi/linux/random.h


def credit_kernel(data: bytes, bits: int, *, device: str = "/dev/random") -> None:
    """Add ``data`` to the host kernel's input pool, crediting ``bits`` (needs CAP_SYS_ADMIN).

    Used only for ``--write-policy credit`` (trusted EGD writers such as a
    hardware feeder); guests' written bytes are never credited by default.

    Raises:
        OSError: not permitted, or no such device.
    """
    bits = max(0, min(bits, 8 * len(data)))
    # struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    padded = data + b"\0" * (-len(data) % 4)
    arg = struct.pack("ii", bits, len(data)) + padded
    fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, RNDADDENTROPY, arg)
    finally:
        os.close(fd)
