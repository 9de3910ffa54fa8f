"""The client end of the EGD protocol, sans I/O (upstream sources, tests, benchmarks).

References:
    ekeyd ``doc/README.egd-protocol``; :mod:`virtkit.entropy.protocol` for the
    wire format and the server end.
"""

from __future__ import annotations

from collections import deque
from typing import NoReturn

from virtkit.entropy.events import (
    CMD_GET_LEVEL,
    CMD_GET_PID,
    CMD_NAMES,
    CMD_READ_BLOCKING,
    CMD_READ_NONBLOCKING,
    CMD_WRITE,
    MAX_READ,
    NEED_DATA,
    BlockingData,
    ConnectionClosed,
    GetLevel,
    GetPid,
    LevelReply,
    NonBlockingData,
    PidReply,
    ReadBlocking,
    ReadNonBlocking,
    Reply,
    Request,
    Sentinel,
    WriteEntropy,
)
from virtkit.entropy.protocol import ConnState, reply_size
from virtkit.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["EgdClientConnection"]


class EgdClientConnection:
    """The client's end of one EGD stream (upstream sources, tests, benchmarks).

    ``send(request)`` returns the bytes to write and remembers which reply to
    expect; ``receive_data()`` + ``next_event()`` turn the server's bytes into
    complete replies, in request order.
    """

    __slots__ = ("_buf", "_error", "_expect", "_state")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._expect: deque[tuple[int, int]] = deque()  # (command, count)
        self._state = ConnState.OPEN
        self._error = ""

    @property
    def outstanding(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._expect)

    def send(self, request: Request) -> bytes:
        """Encode a request.

        Raises:
            LocalProtocolError: a count or length outside 0-255, bits outside 0-65535.
        """
        if isinstance(request, GetLevel):
            self._expect.append((CMD_GET_LEVEL, 0))
            return b"\x00"
        if isinstance(request, GetPid):
            self._expect.append((CMD_GET_PID, 0))
            return b"\x04"
        if isinstance(request, (ReadBlocking, ReadNonBlocking)):
            if not 0 <= request.count <= MAX_READ:
                raise LocalProtocolError(f"EGD request: count {request.count} outside 0-255")
            cmd = CMD_READ_BLOCKING if isinstance(request, ReadBlocking) else CMD_READ_NONBLOCKING
            if cmd == CMD_READ_NONBLOCKING or request.count:
                self._expect.append((cmd, request.count))
            return bytes((cmd, request.count))
        if isinstance(request, WriteEntropy):
            if not 0 <= request.bits <= 0xFFFF or len(request.data) > MAX_READ:
                raise LocalProtocolError("EGD request: write wants bits 0-65535 and at most 255 bytes")
            return bytes((CMD_WRITE, request.bits >> 8, request.bits & 0xFF, len(request.data))) + request.data
        raise LocalProtocolError(f"EGD request: {request!r} is not a request")

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server (``b""``: it closed the stream).

        Raises:
            RemoteProtocolError: the server sent more than was asked for.
        """
        if self._state is ConnState.ERROR:
            raise RemoteProtocolError(self._error)
        if not data:
            self._state = ConnState.PEER_CLOSED
            return
        self._buf += data
        if len(self._buf) > self._max_expected():
            self._fail(
                f"EGD server sent {len(self._buf)} bytes while at most {self._max_expected()} were owed"
            )

    def _max_expected(self) -> int:
        return sum(reply_size(cmd, count, pid_max=True) for cmd, count in self._expect)

    def next_event(self) -> Reply | ConnectionClosed | Sentinel:
        """The next complete reply, :data:`NEED_DATA`, or :class:`ConnectionClosed`.

        Raises:
            RemoteProtocolError: a reply is malformed (a length over the count
                asked for, a non-ASCII pid) or the server closed mid-reply.
        """
        if self._state is ConnState.ERROR:
            raise RemoteProtocolError(self._error)
        buf = self._buf
        if not self._expect:
            return ConnectionClosed() if self._state is ConnState.PEER_CLOSED else NEED_DATA
        cmd, count = self._expect[0]
        event: Reply | None = None
        used = 0
        if cmd == CMD_GET_LEVEL and len(buf) >= 4:
            event, used = LevelReply(int.from_bytes(buf[:4], "big")), 4
        elif cmd == CMD_READ_BLOCKING and len(buf) >= count:
            event, used = BlockingData(bytes(buf[:count])), count
        elif cmd in (CMD_READ_NONBLOCKING, CMD_GET_PID) and buf:
            n = buf[0]
            if cmd == CMD_READ_NONBLOCKING and n > count:
                self._fail(f"EGD server: non-blocking reply of {n} bytes to a request for {count}")
            if len(buf) >= 1 + n:
                body = bytes(buf[1 : 1 + n])
                if cmd == CMD_READ_NONBLOCKING:
                    event = NonBlockingData(body)
                else:
                    if not body.isascii():
                        self._fail(f"EGD server: pid reply {body!r} is not ASCII")
                    event = PidReply(body.decode("ascii"))
                used = 1 + n
        if event is None:
            if self._state is ConnState.PEER_CLOSED:
                self._fail(f"EGD server closed the stream in the middle of a {CMD_NAMES[cmd]} reply")
            return NEED_DATA
        del buf[:used]
        self._expect.popleft()
        return event

    def _fail(self, message: str) -> NoReturn:
        self._state = ConnState.ERROR
        self._error = message
        raise RemoteProtocolError(message)
