"""The worker channel framing: exact bytes, incremental decoding, hostile input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.boot.worker.protocol import FrameDecoder, encode_data, encode_end, encode_json
from virtkit.errors import RemoteProtocolError


def frames(data: bytes, *, split: int | None = None) -> list:
    d = FrameDecoder(max_json=1024, max_chunk=64)
    out = []
    step = split or len(data) or 1
    for i in range(0, len(data), step):
        d.receive_data(data[i : i + step])
        while (f := d.next_frame()) is not None:
            out.append(f)
    d.receive_data(b"")
    while (f := d.next_frame()) is not None:
        out.append(f)
    return out


CASES = [
    (encode_json({"op": "menu"}), [(b"J", {"op": "menu"})]),
    (encode_data(b"abc") + encode_end(), [(b"D", b"abc"), (b"E", b"")]),
    (encode_json({}) + encode_json({"a": [1, 2]}), [(b"J", {}), (b"J", {"a": [1, 2]})]),
]


@pytest.mark.parametrize(("wire", "expected"), CASES)
@pytest.mark.parametrize("split", [None, 1, 3])
def test_frames_whole_and_byte_by_byte(wire: bytes, expected: list, split: int | None) -> None:
    got = [(f.kind, f.message if f.kind == b"J" else f.payload) for f in frames(wire, split=split)]
    assert got == expected


def test_exact_encoding() -> None:
    assert encode_json({"op": "bye"}) == b'J\x00\x00\x00\x0c{"op":"bye"}'
    assert encode_end() == b"E\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"X\x00\x00\x00\x00", "unknown frame kind"),
        (struct.pack(">cI", b"J", 5000), "exceeds"),
        (struct.pack(">cI", b"D", 65), "exceeds"),
        (b"E\x00\x00\x00\x01x", "end frame with a payload"),
        (struct.pack(">cI", b"J", 3) + b"[1]", "not an object"),
        (struct.pack(">cI", b"J", 3) + b"{x}", "invalid JSON"),
        (struct.pack(">cI", b"J", 2) + b"\xff\xfe", "invalid JSON"),
        (struct.pack(">cI", b"J", 9) + b'{"a":NaN}', "invalid JSON"),
        (b"J\x00\x00", "truncated frame header"),
        (b"J\x00\x00\x00\x05{}", "truncated frame"),
        (struct.pack(">cI", b"J", 1000) + b"[" * 500 + b"]" * 500, "not an object|invalid JSON"),
    ],
)
def test_hostile_frames(wire: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        frames(wire)


def test_data_after_eof_is_refused() -> None:
    d = FrameDecoder()
    d.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="after end"):
        d.receive_data(b"x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 17))
def test_any_bytes_give_frames_or_remote_protocol_error(data: bytes, split: int) -> None:
    try:
        frames(data, split=split)
    except RemoteProtocolError:
        pass
