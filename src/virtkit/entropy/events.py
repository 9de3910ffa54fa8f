"""EGD command bytes and the events both ends of :mod:`virtkit.entropy.protocol` exchange.

References:
    ekeyd ``doc/README.egd-protocol`` (command numbers, reply formats).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CMD_GET_LEVEL",
    "CMD_GET_PID",
    "CMD_NAMES",
    "CMD_READ_BLOCKING",
    "CMD_READ_NONBLOCKING",
    "CMD_WRITE",
    "MAX_LEVEL",
    "MAX_READ",
    "NEED_DATA",
    "PAUSED",
    "BlockingData",
    "ConnectionClosed",
    "GetLevel",
    "GetPid",
    "LevelReply",
    "NonBlockingData",
    "PidReply",
    "ReadBlocking",
    "ReadNonBlocking",
    "Reply",
    "Request",
    "Sentinel",
    "WriteEntropy",
]

CMD_GET_LEVEL: Final = 0x00  # README.egd-protocol: "get entropy level"
CMD_READ_NONBLOCKING: Final = 0x01  # "read entropy nonblocking"
CMD_READ_BLOCKING: Final = 0x02  # "read entropy blocking"; the only command QEMU sends
CMD_WRITE: Final = 0x03  # "write entropy"
CMD_GET_PID: Final = 0x04  # "report PID"
MAX_READ: Final = 255  # the count is one byte
MAX_LEVEL: Final = 0xFFFFFFFF  # the level reply is a u32

CMD_NAMES: Final = {
    CMD_GET_LEVEL: "get-level",
    CMD_READ_NONBLOCKING: "read-nonblocking",
    CMD_READ_BLOCKING: "read-blocking",
    CMD_WRITE: "write",
    CMD_GET_PID: "get-pid",
}


class Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")
"""``next_event()``: no complete request is buffered; read more from the peer."""
PAUSED: Final = Sentinel("PAUSED")
"""``next_event()``: too much is owed; stop reading until replies are sent."""


# -- requests (client -> server) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetLevel:
    """``00``: how many bits of entropy are available."""


@dataclass(frozen=True, slots=True)
class ReadNonBlocking:
    """``01 NN``: up to ``count`` bytes, whatever is available now."""

    count: int


@dataclass(frozen=True, slots=True)
class ReadBlocking:
    """``02 NN``: exactly ``count`` bytes, however long it takes."""

    count: int


@dataclass(frozen=True, slots=True)
class WriteEntropy:
    """``03 HH LL NN data``: the client offers ``data`` claiming ``bits`` of entropy."""

    bits: int
    data: bytes


@dataclass(frozen=True, slots=True)
class GetPid:
    """``04``: the daemon's process id."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side of the stream."""


Request = GetLevel | ReadNonBlocking | ReadBlocking | WriteEntropy | GetPid


# -- replies (server -> client) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelReply:
    """Reply to ``00``: ``bits`` as a u32."""

    bits: int


@dataclass(frozen=True, slots=True)
class NonBlockingData:
    """Reply to ``01 NN``: ``data`` (at most NN bytes), sent with a one-byte length."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BlockingData:
    """Raw bytes towards the owed ``02`` requests at the head of the queue.

    On the server side ``data`` may be any length up to what the leading run
    of blocking reads still owes (a piece of one reply, or several whole
    replies).  On the client side each event is one complete reply.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class PidReply:
    """Reply to ``04``: ``pid`` as ASCII text (at most 255 characters)."""

    pid: str


Reply = LevelReply | NonBlockingData | BlockingData | PidReply
