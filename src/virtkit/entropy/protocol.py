"""The EGD (Entropy Gathering Daemon) protocol, sans I/O, both ends.

References:
    ekeyd ``doc/README.egd-protocol`` (the command set and reply formats).
    QEMU ``backends/rng-egd.c`` (the client we must serve; its behaviour is
        paraphrased in ``/work/shared/reference/entropy.md`` §2.2 and §3.3).
    h11 (python-hyper) for the shape: ``receive_data()``, ``next_event()``,
        ``send()``; frozen event classes; one error type escapes from peer bytes.

Wire format (multi-byte integers are big-endian)::

    cmd   request                     reply
    0x00  00                          4 bytes: entropy level in bits (u32)
    0x01  01 NN                       MM + MM bytes, MM <= NN (may be 0)
    0x02  02 NN                       exactly NN raw bytes, no prefix (may arrive in pieces)
    0x03  03 HH LL NN + NN bytes      none (HHLL = claimed entropy bits, u16)
    0x04  04                          LL + LL ASCII characters (the daemon's pid)

QEMU's ``rng-egd`` sends only ``02 NN`` (NN <= 255), pipelines several
requests, consumes the reply bytes strictly in request order and accepts any
fragmentation.  So a server must answer every request in the order received,
never reply short and never close the stream.

Server side (:class:`EgdServerConnection`; the client end is :mod:`virtkit.entropy.client`)::

    conn.receive_data(bytes_from_peer)        # b"" = the peer closed its side
    ev = conn.next_event()                     # a request, NEED_DATA, PAUSED or ConnectionClosed
    wire = conn.send(BlockingData(b"..."))     # replies, validated against what is owed

Replies must follow the *owed queue*: the head request is answered first.
Consecutive ``0x02`` requests form one run of raw bytes, so one
:class:`BlockingData` may complete several of them (one write for a pipelined
batch).  :attr:`EgdServerConnection.completed` counts fully answered requests
(the shell uses it for latency accounting).

Connection states (the transition table is :data:`_TRANSITIONS`)::

    OPEN --eof--> PEER_CLOSED      the peer half-closed; owed replies may still be sent
    OPEN --bad byte--> ERROR       RemoteProtocolError; every later call raises it again
    any --close()--> CLOSED        the shell dropped the connection

``next_event()`` returns :data:`PAUSED` while at least ``max_pending_bytes`` are
owed: the shell must stop reading from the socket until replies drain (that is
the backpressure that bounds memory per client).  Only
:class:`~virtkit.errors.RemoteProtocolError` escapes from peer bytes;
misuse by the caller raises :class:`~virtkit.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final, NoReturn

from virtkit.entropy.events import (
    CMD_GET_LEVEL,
    CMD_GET_PID,
    CMD_NAMES,
    CMD_READ_BLOCKING,
    CMD_READ_NONBLOCKING,
    CMD_WRITE,
    MAX_LEVEL,
    MAX_READ,
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
    Reply,
    Request,
    Sentinel,
    WriteEntropy,
)
from virtkit.errors import LocalProtocolError, RemoteProtocolError
from virtkit.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "CMD_GET_LEVEL",
    "CMD_GET_PID",
    "CMD_READ_BLOCKING",
    "CMD_READ_NONBLOCKING",
    "CMD_WRITE",
    "MAX_LEVEL",
    "MAX_READ",
    "NEED_DATA",
    "PAUSED",
    "BlockingData",
    "ConnState",
    "ConnectionClosed",
    "ConnectionSnapshot",
    "EgdServerConnection",
    "GetLevel",
    "GetPid",
    "LevelReply",
    "NonBlockingData",
    "PidReply",
    "ReadBlocking",
    "ReadNonBlocking",
    "Reply",
    "Request",
    "WriteEntropy",
]

class ConnState(enum.Enum):
    """Where a server connection is (see the module docstring)."""

    OPEN = "open"
    PEER_CLOSED = "peer-closed"
    ERROR = "error"
    CLOSED = "closed"


# (state, input) -> next state.  Inputs: "request", "eof", "bad", "close".  Anything
# missing from the table is illegal in that state.
_TRANSITIONS: Final[dict[tuple[ConnState, str], ConnState]] = {
    (ConnState.OPEN, "request"): ConnState.OPEN,
    (ConnState.OPEN, "eof"): ConnState.PEER_CLOSED,
    (ConnState.OPEN, "bad"): ConnState.ERROR,
    (ConnState.OPEN, "close"): ConnState.CLOSED,
    (ConnState.PEER_CLOSED, "eof"): ConnState.PEER_CLOSED,
    (ConnState.PEER_CLOSED, "bad"): ConnState.ERROR,
    (ConnState.PEER_CLOSED, "close"): ConnState.CLOSED,
    (ConnState.ERROR, "close"): ConnState.CLOSED,
    (ConnState.CLOSED, "close"): ConnState.CLOSED,
}

# Which reply answers which owed request.
_REPLY_FOR: Final[dict[int, type]] = {
    CMD_GET_LEVEL: LevelReply,
    CMD_READ_NONBLOCKING: NonBlockingData,
    CMD_READ_BLOCKING: BlockingData,
    CMD_GET_PID: PidReply,
}


def reply_size(cmd: int, value: int, *, pid_max: bool = False) -> int:
    """Reply bytes owed for a request (for a pid reply: the prefix, or the most it can be)."""
    if cmd == CMD_READ_BLOCKING:
        return value
    if cmd == CMD_READ_NONBLOCKING:
        return 1 + value
    if cmd == CMD_GET_LEVEL:
        return 4
    return 1 + MAX_READ if pid_max else 1


@dataclass(frozen=True, slots=True)
class ConnectionSnapshot:
    """Everything a successor process needs to continue a server connection.

    Attributes:
        buffer: bytes received from the peer but not parsed yet (a partial request).
        owed: one ``(command, value)`` per unanswered request, oldest first;
            ``value`` is the byte count still owed for ``0x02``, the requested
            count for ``0x01`` and 0 otherwise.
        peer_closed: the peer had half-closed the stream.
    """

    buffer: bytes
    owed: tuple[tuple[int, int], ...]
    peer_closed: bool = False

    def to_json(self) -> dict[str, object]:
        return {"buffer": self.buffer.hex(), "owed": [list(o) for o in self.owed], "peer_closed": self.peer_closed}

    @classmethod
    def from_json(cls, obj: object) -> ConnectionSnapshot:
        """Rebuild a snapshot from :meth:`to_json` output.

        Raises:
            LocalProtocolError: the object is not a valid snapshot (our own state, so misuse).
        """
        try:
            assert isinstance(obj, dict)
            buffer = bytes.fromhex(obj["buffer"])
            owed = tuple((int(c), int(v)) for c, v in obj["owed"])
            peer_closed = bool(obj.get("peer_closed", False))
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise LocalProtocolError(f"bad EGD connection snapshot: {exc!r}") from None
        for cmd, value in owed:
            if cmd not in _REPLY_FOR or not 0 <= value <= MAX_READ or (cmd == CMD_READ_BLOCKING and value == 0):
                raise LocalProtocolError(f"bad EGD connection snapshot: owed entry {(cmd, value)!r}")
        return cls(buffer, owed, peer_closed)


class _Owed:
    """One owed queue entry: a request, or a run of consecutive blocking reads."""

    __slots__ = ("cmd", "parts", "value")

    def __init__(self, cmd: int, value: int, parts: deque[int] | None = None) -> None:
        self.cmd = cmd
        self.value = value  # 0x02: bytes the whole run still owes; 0x01: the count asked for
        self.parts = parts  # 0x02 only: bytes each request of the run still owes


class EgdServerConnection:
    """The daemon's end of one EGD stream.

    Args:
        limits: ``max_pending_bytes`` (owed bytes before :data:`PAUSED`) and
            ``max_egd_receive_buffer`` (unparsed bytes) are used.
        snapshot: continue a connection handed over by another process.
    """

    __slots__ = ("_base", "_buf", "_error", "_max_buffer", "_max_pending", "_pos", "_queue", "_state", "completed",
                 "owed_bytes")

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS, snapshot: ConnectionSnapshot | None = None) -> None:
        self._max_pending = limits.max_pending_bytes
        self._max_buffer = limits.max_egd_receive_buffer
        self._buf = bytearray()
        self._pos = 0
        self._base = 0  # stream offset of self._buf[0] (for error messages)
        self._error = ""  # the first RemoteProtocolError, repeated by every later call
        # Owed requests, oldest first; a run of blocking reads is one entry.
        self._queue: deque[_Owed] = deque()
        self._state = ConnState.OPEN
        self.completed = 0
        """Requests that owed a reply and were fully answered (0x03 and ``02 00`` owe none)."""
        self.owed_bytes = 0
        """Reply bytes owed to the peer right now."""
        if snapshot is not None:
            self._buf += snapshot.buffer
            for cmd, value in snapshot.owed:
                self._enqueue(cmd, value)
            if snapshot.peer_closed:
                self._state = ConnState.PEER_CLOSED

    # -- state ---------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return self._state

    def _transition(self, what: str) -> None:
        new = _TRANSITIONS.get((self._state, what))
        if new is None:
            raise LocalProtocolError(f"EGD connection: cannot {what} in state {self._state.value}")
        self._state = new

    @property
    def owed_requests(self) -> int:
        """Requests received and not yet fully answered."""
        return sum(len(item.parts) if item.parts is not None else 1 for item in self._queue)

    def head(self) -> int | None:
        """The command byte of the oldest unanswered request, or None."""
        return self._queue[0].cmd if self._queue else None

    def head_blocking_bytes(self) -> int:
        """Bytes owed by the leading run of ``0x02`` requests (0 if the head is another command)."""
        if self._queue and self._queue[0].cmd == CMD_READ_BLOCKING:
            return self._queue[0].value
        return 0

    def head_request(self) -> Request | None:
        """The oldest unanswered request as an event (for ``0x01``: its count)."""
        if not self._queue:
            return None
        item = self._queue[0]
        if item.parts is not None:
            return ReadBlocking(item.parts[0])
        if item.cmd == CMD_READ_NONBLOCKING:
            return ReadNonBlocking(item.value)
        return GetLevel() if item.cmd == CMD_GET_LEVEL else GetPid()

    @property
    def paused(self) -> bool:
        return self.owed_bytes >= self._max_pending

    @property
    def buffered(self) -> int:
        """Unparsed bytes from the peer."""
        return len(self._buf) - self._pos

    # -- input -----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means the peer closed its side.

        Raises:
            RemoteProtocolError: the connection is already broken, or more than
                ``max_egd_receive_buffer`` bytes would be buffered unparsed.
            LocalProtocolError: the connection was closed by us.
        """
        if self._state is ConnState.ERROR:
            raise RemoteProtocolError(self._error)
        if self._state is ConnState.CLOSED:
            raise LocalProtocolError("EGD connection: receive_data after close()")
        if not data:
            self._transition("eof")
            return
        if self._state is ConnState.PEER_CLOSED:
            raise LocalProtocolError("EGD connection: receive_data after the peer closed")
        if self._pos:  # drop what was parsed (what is left is at most one partial request)
            self._base += self._pos
            del self._buf[: self._pos]
            self._pos = 0
        if len(self._buf) - self._pos + len(data) > self._max_buffer:
            self._fail(
                f"EGD peer: {len(self._buf) - self._pos + len(data)} unparsed bytes exceed the "
                f"max_egd_receive_buffer limit of {self._max_buffer}"
            )
        self._buf += data

    def receive_blocking_reads(self, data: bytes) -> int:
        """Fast path for QEMU's traffic: take a chunk that is only complete ``02 NN`` requests.

        Applies only when the connection is open and idle (nothing buffered,
        nothing owed) and every request in ``data`` asks for at least one byte;
        the requests are then owed exactly as if :meth:`receive_data` and
        :meth:`next_event` had been called for each.

        Returns:
            the bytes now owed (answer them with one :class:`BlockingData`), or
            -1 if the fast path does not apply - then nothing was consumed.
        """
        if (self._state is not ConnState.OPEN or self._queue or self._pos != len(self._buf) or not data
                or len(data) & 1):
            return -1
        counts = data[1::2]
        if data[0::2].count(CMD_READ_BLOCKING) != len(counts) or 0 in counts:
            return -1
        total = sum(counts)
        if total >= self._max_pending:
            return -1
        self._base += self._pos + len(data)
        if self._pos:
            self._buf.clear()
            self._pos = 0
        self._queue.append(_Owed(CMD_READ_BLOCKING, total, deque(counts)))
        self.owed_bytes = total
        return total

    def next_event(self) -> Request | ConnectionClosed | Sentinel:
        """Parse the next request.

        Returns:
            a request event (already added to the owed queue when it needs a
            reply), :data:`NEED_DATA`, :data:`PAUSED`, or :class:`ConnectionClosed`
            once the peer has closed and every buffered request was returned.

        Raises:
            RemoteProtocolError: an unknown command byte (the connection is
                then broken for good), or the peer closed in the middle of a request.
        """
        state = self._state
        if state is ConnState.ERROR:
            raise RemoteProtocolError(self._error)
        if state is ConnState.CLOSED:
            return ConnectionClosed()
        if self.owed_bytes >= self._max_pending:
            return PAUSED
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail == 0:
            if state is ConnState.PEER_CLOSED:
                return ConnectionClosed()
            return NEED_DATA
        cmd = buf[pos]
        if cmd == CMD_READ_BLOCKING:
            if avail < 2:
                return self._incomplete(cmd)
            count = buf[pos + 1]
            self._pos = pos + 2
            if count:
                self._enqueue(CMD_READ_BLOCKING, count)
            return ReadBlocking(count)
        if cmd == CMD_GET_LEVEL:
            self._pos = pos + 1
            self._enqueue(CMD_GET_LEVEL, 0)
            return GetLevel()
        if cmd == CMD_READ_NONBLOCKING:
            if avail < 2:
                return self._incomplete(cmd)
            count = buf[pos + 1]
            self._pos = pos + 2
            self._enqueue(CMD_READ_NONBLOCKING, count)
            return ReadNonBlocking(count)
        if cmd == CMD_WRITE:
            if avail < 4:
                return self._incomplete(cmd)
            nbytes = buf[pos + 3]
            if avail < 4 + nbytes:
                return self._incomplete(cmd)
            bits = (buf[pos + 1] << 8) | buf[pos + 2]
            data = bytes(buf[pos + 4 : pos + 4 + nbytes])
            self._pos = pos + 4 + nbytes
            return WriteEntropy(bits, data)
        if cmd == CMD_GET_PID:
            self._pos = pos + 1
            self._enqueue(CMD_GET_PID, 0)
            return GetPid()
        self._fail(
            f"EGD peer: unknown command byte at stream offset {self._base + pos}, expected 0x00-0x04, got {cmd:#04x}"
        )

    def _fail(self, message: str) -> NoReturn:
        self._transition("bad")
        self._error = message
        raise RemoteProtocolError(message)

    def _incomplete(self, cmd: int) -> Sentinel:
        if self._state is ConnState.PEER_CLOSED:
            self._fail(
                f"EGD peer closed the stream in the middle of a {CMD_NAMES[cmd]} request "
                f"({len(self._buf) - self._pos} bytes of it received)"
            )
        return NEED_DATA

    def _enqueue(self, cmd: int, value: int) -> None:
        q = self._queue
        if cmd == CMD_READ_BLOCKING:
            self.owed_bytes += value
            parts = q[-1].parts if q else None
            if parts is not None:
                q[-1].value += value
                parts.append(value)
            else:
                q.append(_Owed(CMD_READ_BLOCKING, value, deque((value,))))
            return
        self.owed_bytes += reply_size(cmd, value)
        q.append(_Owed(cmd, value))

    # -- output ----------------------------------------------------------------

    def send(self, reply: Reply) -> bytes:
        """Encode a reply to the oldest unanswered request.

        Args:
            reply: must match the head of the owed queue (:data:`_REPLY_FOR`);
                :class:`BlockingData` may be any size up to
                :meth:`head_blocking_bytes`.

        Returns:
            the bytes to write to the peer, in order after everything sent before.

        Raises:
            LocalProtocolError: nothing is owed, the reply does not answer the
                head request, it is too long, or a value does not fit its field.
        """
        if self._state is ConnState.CLOSED:
            raise LocalProtocolError("EGD connection: send after close()")
        q = self._queue
        if not q:
            raise LocalProtocolError(f"EGD connection: {type(reply).__name__} sent but nothing is owed")
        head = q[0]
        cmd = head.cmd
        if type(reply) is not _REPLY_FOR[cmd]:
            raise LocalProtocolError(
                f"EGD connection: {type(reply).__name__} does not answer the owed {CMD_NAMES[cmd]} request"
            )
        if isinstance(reply, BlockingData):
            n = len(reply.data)
            total = head.value
            if n > total:
                raise LocalProtocolError(f"EGD connection: {n} bytes sent but the blocking reads owe {total}")
            if n == 0:
                return b""
            parts = head.parts
            assert parts is not None
            left = n
            while left and left >= parts[0]:
                left -= parts.popleft()
                self.completed += 1
            if left:
                parts[0] -= left
            if n == total:
                q.popleft()
            else:
                head.value = total - n
            self.owed_bytes -= n
            return reply.data
        q.popleft()
        if isinstance(reply, LevelReply):
            if not 0 <= reply.bits <= MAX_LEVEL:
                q.appendleft(head)
                raise LocalProtocolError(f"EGD connection: entropy level {reply.bits} does not fit in 32 bits")
            self.owed_bytes -= 4
            self.completed += 1
            return reply.bits.to_bytes(4, "big")
        if isinstance(reply, NonBlockingData):
            limit = head.value
            if len(reply.data) > limit:
                q.appendleft(head)
                raise LocalProtocolError(f"EGD connection: {len(reply.data)} bytes for a non-blocking read of {limit}")
            self.owed_bytes -= 1 + limit
            self.completed += 1
            return bytes((len(reply.data),)) + reply.data
        assert isinstance(reply, PidReply)
        try:
            text = reply.pid.encode("ascii")
        except UnicodeEncodeError:
            q.appendleft(head)
            raise LocalProtocolError(f"EGD connection: pid reply {reply.pid!r} is not ASCII") from None
        if len(text) > MAX_READ:
            q.appendleft(head)
            raise LocalProtocolError(f"EGD connection: pid reply of {len(text)} characters (at most 255)")
        self.owed_bytes -= 1
        self.completed += 1
        return bytes((len(text),)) + text

    def close(self) -> None:
        """Forget everything owed (the stream is gone or being dropped)."""
        self._transition("close")
        self._queue.clear()
        self.owed_bytes = 0

    def snapshot(self) -> ConnectionSnapshot:
        """The state a successor needs to continue this stream (see :mod:`virtkit.entropy.handover`).

        Raises:
            LocalProtocolError: the connection is broken or closed.
        """
        if self._state in (ConnState.ERROR, ConnState.CLOSED):
            raise LocalProtocolError(f"EGD connection: cannot snapshot in state {self._state.value}")
        owed: list[tuple[int, int]] = []
        for item in self._queue:
            if item.parts is not None:
                owed.extend((CMD_READ_BLOCKING, v) for v in item.parts)
            else:
                owed.append((item.cmd, item.value if item.cmd == CMD_READ_NONBLOCKING else 0))
        return ConnectionSnapshot(bytes(self._buf[self._pos :]), tuple(owed), self._state is ConnState.PEER_CLOSED)
