"""The framing between the privileged parent and the deprivileged worker (sans-I/O).

The worker parses hostile guest data; the parent must treat everything the
worker sends as hostile too (a compromised worker is in the threat model).
So the channel is tiny and strict:

    frame := kind:1 byte | length:4 bytes big-endian | payload:length bytes

    kind  payload
    'J'   a UTF-8 JSON object (a request, a reply)          <= max_json bytes
    'D'   a chunk of file data                               <= max_chunk bytes
    'E'   end of one data stream; payload empty

:class:`FrameDecoder` is the h11-style core: ``receive_data(bytes)`` then
``next_frame()`` until it returns None (need more data).  Any violation -
unknown kind, oversized frame, invalid JSON, JSON that is not an object, data
after EOF - raises :class:`~virtkit.errors.RemoteProtocolError`; nothing else
escapes (a fuzz test checks it).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from virtkit.errors import RemoteProtocolError

__all__ = ["FRAME_DATA", "FRAME_END", "FRAME_JSON", "Frame", "FrameDecoder", "encode_data", "encode_end", "encode_json"]

FRAME_JSON = b"J"
FRAME_DATA = b"D"
FRAME_END = b"E"
_HEADER = struct.Struct(">cI")
MAX_CHUNK = 1 << 20


@dataclass(frozen=True)
class Frame:
    kind: bytes
    payload: bytes
    message: dict[str, Any] | None = None  # parsed JSON for 'J' frames


def encode_json(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode()
    return _HEADER.pack(FRAME_JSON, len(body)) + body


def encode_data(chunk: bytes) -> bytes:
    if len(chunk) > MAX_CHUNK:
        raise ValueError("data chunk too large")
    return _HEADER.pack(FRAME_DATA, len(chunk)) + chunk


def encode_end() -> bytes:
    return _HEADER.pack(FRAME_END, 0)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} not allowed")


class FrameDecoder:
    """Incremental decoder of the worker channel.

    Args:
        max_json: largest JSON payload accepted.
        max_chunk: largest data chunk accepted.
    """

    def __init__(self, *, max_json: int = 64 << 20, max_chunk: int = MAX_CHUNK) -> None:
        self._buf = bytearray()
        self._eof = False
        self.max_json = max_json
        self.max_chunk = max_chunk

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the channel; ``b""`` means the peer closed it."""
        if self._eof and data:
            raise RemoteProtocolError("worker channel: data after end of stream")
        if not data:
            self._eof = True
            return
        self._buf += data

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buf

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None if more data is needed.

        Raises:
            RemoteProtocolError: malformed framing or payload; a truncated frame at EOF.
        """
        if len(self._buf) < _HEADER.size:
            if self._eof and self._buf:
                raise RemoteProtocolError("worker channel: truncated frame header at end of stream")
            return None
        kind, length = _HEADER.unpack_from(self._buf, 0)
        if kind == FRAME_JSON:
            if length > self.max_json:
                raise RemoteProtocolError(f"worker channel: JSON frame of {length} bytes exceeds {self.max_json}")
        elif kind == FRAME_DATA:
            if length > self.max_chunk:
                raise RemoteProtocolError(f"worker channel: data frame of {length} bytes exceeds {self.max_chunk}")
        elif kind == FRAME_END:
            if length != 0:
                raise RemoteProtocolError("worker channel: end frame with a payload")
        else:
            raise RemoteProtocolError(f"worker channel: unknown frame kind {kind!r}")
        if len(self._buf) < _HEADER.size + length:
            if self._eof:
                raise RemoteProtocolError("worker channel: truncated frame at end of stream")
            return None
        payload = bytes(self._buf[_HEADER.size : _HEADER.size + length])
        del self._buf[: _HEADER.size + length]
        if kind != FRAME_JSON:
            return Frame(kind, payload)
        try:
            message = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RemoteProtocolError(f"worker channel: invalid JSON ({type(exc).__name__})") from None
        if not isinstance(message, dict):
            raise RemoteProtocolError("worker channel: JSON frame is not an object")
        return Frame(kind, b"", message)
