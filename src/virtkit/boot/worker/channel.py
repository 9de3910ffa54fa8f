"""Both ends of the worker channel: the worker's request loop and the parent's client.

The worker (forked, sandboxed) answers requests::

    parent -> worker   J {"op": "menu", ...}
    worker -> parent   J {"ok": true, ...reply..., "streams": N}
                       then N data streams: D chunk ... E

An error in guest data is a reply ``{"ok": false, "error": {...}}``; the
parent re-raises it as the same VirtkitError class (chosen from a fixed list,
message length capped).  A worker that dies, hangs past the wall-clock budget
(the parent kills it), sends a malformed frame, or exits non-zero makes the
parent raise :class:`~virtkit.errors.WorkerError`.  Never a silent success.

``LocalChannel`` runs the same handlers in-process for ``--no-isolate``
(debugging: real tracebacks, pdb).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from virtkit import errors
from virtkit.boot.worker.protocol import (
    FRAME_DATA,
    FRAME_END,
    FRAME_JSON,
    Frame,
    FrameDecoder,
    encode_data,
    encode_end,
    encode_json,
)
from virtkit.errors import LimitExceeded, RemoteProtocolError, VirtkitError, WorkerError

__all__ = ["Channel", "Handler", "LocalChannel", "Reply", "SocketChannel", "serve"]

# A handler gets the request and returns the reply object plus the data streams to send.
Handler = Callable[[dict[str, Any]], tuple[dict[str, Any], list[Iterable[bytes]]]]

EXIT_OK = 0
EXIT_BUG = 70
_MAX_ERROR_TEXT = 8192


@dataclass
class Reply:
    """A successful reply and its data streams (consume them in order)."""

    message: dict[str, Any]
    streams: list[Iterator[bytes]]


def _error_payload(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, VirtkitError):
        detail = ""
        loc = getattr(exc, "location", None)
        if loc is not None and hasattr(loc, "render_excerpt"):
            try:
                detail = loc.render_excerpt()
            except Exception:
                detail = ""
        return {
            "class": type(exc).__name__,
            "message": str(exc)[:_MAX_ERROR_TEXT],
            "exit_status": exc.exit_status,
            "detail": detail[:_MAX_ERROR_TEXT],
        }
    return {
        "class": "InternalError",
        "message": f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT],
        "exit_status": EXIT_BUG,
        "detail": "".join(traceback.format_exception(exc))[-_MAX_ERROR_TEXT:],
    }


# ----------------------------------------------------------------- worker side


def serve(sock: socket.socket, handlers: Mapping[str, Handler], hello: dict[str, Any]) -> int:
    """Answer requests on ``sock`` until the parent says bye or closes.

    Returns:
        the exit status for the worker process (0, or 70 after an internal error).
    """
    decoder = FrameDecoder()
    sock.sendall(encode_json({"op": "hello", **hello}))
    status = EXIT_OK
    while True:
        frame = _read_frame(sock, decoder)
        if frame is None or frame.message is None:
            return status
        request = frame.message
        op = request.get("op")
        if op == "bye":
            return status
        handler = handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            sock.sendall(encode_json({"ok": False, "error": {"class": "UsageError", "message": f"unknown op {op!r}", "exit_status": 2, "detail": ""}}))
            continue
        try:
            reply, streams = handler(request)
        except VirtkitError as exc:
            sock.sendall(encode_json({"ok": False, "error": _error_payload(exc)}))
            continue
        except Exception as exc:  # a bug: report it, then stop serving
            sock.sendall(encode_json({"ok": False, "error": _error_payload(exc)}))
            return EXIT_BUG
        sock.sendall(encode_json({"ok": True, "streams": len(streams), **reply}))
        for stream in streams:
            try:
                for chunk in stream:
                    for i in range(0, len(chunk), 1 << 20):
                        sock.sendall(encode_data(chunk[i : i + (1 << 20)]))
            except VirtkitError as exc:
                # The parent sees an error frame instead of the end marker.
                sock.sendall(encode_json({"ok": False, "error": _error_payload(exc)}))
                break
            sock.sendall(encode_end())


def _read_frame(sock: socket.socket, decoder: FrameDecoder) -> Frame | None:
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            return frame
        if decoder.at_eof:
            return None
        data = sock.recv(1 << 20)
        decoder.receive_data(data)


# ----------------------------------------------------------------- parent side


_ERROR_CLASSES: dict[str, type[VirtkitError]] = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, VirtkitError) and cls is not errors.ProtocolError
}


def rebuild_error(payload: Any) -> VirtkitError:
    """Turn a worker's error reply into an exception (class from a fixed list)."""
    if not isinstance(payload, dict):
        return WorkerError("worker sent a malformed error reply")
    name = payload.get("class")
    message = payload.get("message")
    status = payload.get("exit_status")
    detail = payload.get("detail")
    if not isinstance(message, str):
        return WorkerError("worker sent a malformed error reply")
    message = message[:_MAX_ERROR_TEXT]
    if name == "InternalError":
        err: VirtkitError = WorkerError(f"the worker hit an internal error (a bug in virtkit, please report): {message}")
        err.detail = detail if isinstance(detail, str) else ""  # type: ignore[attr-defined]
        return err
    cls = _ERROR_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        return WorkerError(f"worker reported an unknown error class: {message}")
    err = cls.__new__(cls)
    VirtkitError.__init__(err, message)
    # The subclass __init__ is bypassed: give the attributes it sets neutral values, so code
    # that reads them (report_error reads ConfigError.location) works on a rebuilt error.
    if isinstance(err, errors.ConfigError):
        err.location = None
        err.bare_message = message
    if isinstance(err, errors.PathError):
        err.path = ""
    if isinstance(status, int) and 1 <= status < 64:
        err.exit_status = status
    err.detail = detail[:_MAX_ERROR_TEXT] if isinstance(detail, str) else ""  # type: ignore[attr-defined]
    return err


class Channel:
    """What the parent talks to: ``call(request) -> Reply``; ``close()``."""

    notes: list[str]

    def call(self, request: dict[str, Any]) -> Reply:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalChannel(Channel):
    """In-process handlers (``--no-isolate``): same interface, real tracebacks."""

    def __init__(self, handlers: Mapping[str, Handler], notes: list[str]) -> None:
        self.handlers = handlers
        self.notes = notes

    def call(self, request: dict[str, Any]) -> Reply:
        reply, streams = self.handlers[request["op"]](request)
        return Reply(reply, [iter(s) for s in streams])

    def close(self) -> None:
        pass


class SocketChannel(Channel):
    """The parent's end of a forked worker.

    Args:
        sock: the parent's end of the socketpair.
        pid: the worker's pid.
        budget: wall-clock seconds the worker may spend answering, in total.
        on_exit: called once the worker has been reaped (removes the jail dir).
    """

    def __init__(self, sock: socket.socket, pid: int, *, budget: float, on_exit: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.pid = pid
        self.budget = budget
        self.spent = 0.0
        self.decoder = FrameDecoder()
        self.on_exit = on_exit
        self._status: int | None = None
        self._pending: list[Iterator[bytes]] = []
        hello = self._frame()
        if hello.message is None or hello.message.get("op") != "hello":
            self._kill()
            raise WorkerError("worker did not start properly (no hello)")
        if "error" in hello.message:
            self._reap()
            raise rebuild_error(hello.message["error"])
        notes = hello.message.get("notes", [])
        self.notes = [str(n)[:500] for n in notes][:64] if isinstance(notes, list) else []

    # -- low level

    def _kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def _reap(self) -> int:
        if self._status is None:
            while True:
                try:
                    _, status = os.waitpid(self.pid, 0)
                    break
                except ChildProcessError:
                    status = 0
                    break
                except InterruptedError:  # pragma: no cover
                    continue
            self._status = status
            if self.on_exit is not None:
                self.on_exit()
        return self._status

    def _exit_reason(self) -> str:
        status = self._reap()
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            names = {int(signal.SIGXCPU): "CPU time limit", int(signal.SIGKILL): "killed", int(signal.SIGSYS): "seccomp violation"}
            name = names.get(sig, signal.Signals(sig).name)
            return f"worker died from signal {sig} ({name})"
        return f"worker exited with status {os.WEXITSTATUS(status)}"

    def _next_frame(self) -> Frame:
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return frame
            if self.decoder.at_eof:
                raise WorkerError(f"the worker closed the channel unexpectedly: {self._exit_reason()}")
            remaining = self.budget - self.spent
            if remaining <= 0:
                self._kill()
                raise WorkerError(f"worker timed out after {self.budget:g} s (raise the worker_timeout limit)")
            start = time.monotonic()
            try:
                ready, _, _ = select.select([self.sock], [], [], remaining)
            except InterruptedError:  # pragma: no cover
                ready = []
            self.spent += time.monotonic() - start
            if not ready:
                continue
            try:
                data = self.sock.recv(1 << 20)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):  # pragma: no cover
                    continue
                data = b""
            try:
                self.decoder.receive_data(data)
            except RemoteProtocolError as exc:
                self._kill()
                raise WorkerError(f"worker broke the channel protocol: {exc}") from None

    def _frame(self) -> Frame:
        try:
            return self._next_frame()
        except RemoteProtocolError as exc:
            self._kill()
            raise WorkerError(f"worker broke the channel protocol: {exc}") from None

    # -- API

    def call(self, request: dict[str, Any]) -> Reply:
        """Send a request; return the reply and an iterator per data stream.

        Raises:
            VirtkitError: the worker reported one (re-raised with its class).
            WorkerError: the worker died, hung, or broke the protocol.
        """
        self._drain()
        try:
            self.sock.sendall(encode_json(request))
        except OSError:
            raise WorkerError(f"cannot talk to the worker: {self._exit_reason()}") from None
        frame = self._frame()
        if frame.kind != FRAME_JSON or frame.message is None:
            self._kill()
            raise WorkerError("worker sent data where a reply was expected")
        msg = frame.message
        if msg.get("ok") is not True:
            raise rebuild_error(msg.get("error"))
        n = msg.get("streams", 0)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 64:
            self._kill()
            raise WorkerError("worker sent an invalid stream count")
        streams = [self._stream() for _ in range(n)]
        self._pending = list(streams)
        return Reply(msg, streams)

    def _drain(self) -> None:
        """Consume (and drop) data streams the caller did not read, in order."""
        pending, self._pending = self._pending, []
        for stream in pending:
            for _ in stream:
                pass

    def _stream(self) -> Iterator[bytes]:
        # Streams are consumed lazily but strictly in order by the caller.
        def gen() -> Iterator[bytes]:
            while True:
                frame = self._frame()
                if frame.kind == FRAME_DATA:
                    yield frame.payload
                elif frame.kind == FRAME_END:
                    return
                elif frame.message is not None and frame.message.get("ok") is False:
                    # The worker stops the reply here: the streams after this one never come.
                    self._pending = []
                    raise rebuild_error(frame.message.get("error"))
                else:
                    self._kill()
                    raise WorkerError("worker sent a reply in the middle of a data stream")

        return gen()

    def close(self) -> None:
        """Say bye, wait briefly, then make sure the worker is gone; check its exit status.

        Raises:
            WorkerError: the worker exited non-zero or by a signal.
        """
        if self._status is not None:
            return
        try:
            self._drain()
            self.sock.sendall(encode_json({"op": "bye"}))
        except (OSError, VirtkitError):
            pass
        deadline = time.monotonic() + 5
        while self._status is None and time.monotonic() < deadline:  # already reaped if _drain killed it
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = status
                if self.on_exit is not None:
                    self.on_exit()
                break
            time.sleep(0.005)
        if self._status is None:
            self._kill()
        self.sock.close()
        status = self._status or 0
        if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0:
            raise WorkerError(self._exit_reason())


def check_stream_limit(total: int, limit: int, name: str, where: str) -> None:
    if total > limit:
        raise LimitExceeded(name, total, limit, where)
