"""The sans-I/O EGD core: every command, whole and byte by byte, both ends; errors; fuzzing (h11-style)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.entropy.client import EgdClientConnection
from virtkit.entropy.protocol import (
    NEED_DATA,
    PAUSED,
    BlockingData,
    ConnectionClosed,
    ConnectionSnapshot,
    ConnState,
    EgdServerConnection,
    GetLevel,
    GetPid,
    LevelReply,
    NonBlockingData,
    PidReply,
    ReadBlocking,
    ReadNonBlocking,
    WriteEntropy,
)
from virtkit.errors import LocalProtocolError, RemoteProtocolError
from virtkit.limits import Limits

# (request bytes, event the server sees, reply the server sends, reply bytes on the wire)
CASES = [
    (b"\x00", GetLevel(), LevelReply(4096), b"\x00\x00\x10\x00"),
    (b"\x00", GetLevel(), LevelReply(0xFFFFFFFF), b"\xff\xff\xff\xff"),
    (b"\x01\x10", ReadNonBlocking(16), NonBlockingData(b"x" * 16), b"\x10" + b"x" * 16),
    (b"\x01\x10", ReadNonBlocking(16), NonBlockingData(b"abc"), b"\x03abc"),
    (b"\x01\x10", ReadNonBlocking(16), NonBlockingData(b""), b"\x00"),
    (b"\x01\x00", ReadNonBlocking(0), NonBlockingData(b""), b"\x00"),
    (b"\x02\x40", ReadBlocking(64), BlockingData(bytes(range(64))), bytes(range(64))),
    (b"\x02\xff", ReadBlocking(255), BlockingData(b"\xaa" * 255), b"\xaa" * 255),
    (b"\x02\x01", ReadBlocking(1), BlockingData(b"z"), b"z"),
    (b"\x04", GetPid(), PidReply("4242"), b"\x044242"),
    (b"\x04", GetPid(), PidReply("-1"), b"\x02-1"),  # ekeyd's answer
]
NO_REPLY = [
    (b"\x03\x00\x40\x08ABCDEFGH", WriteEntropy(64, b"ABCDEFGH")),
    (b"\x03\xff\xff\x00", WriteEntropy(65535, b"")),
    (b"\x03\x00\x08\x02hi", WriteEntropy(8, b"hi")),
    (b"\x02\x00", ReadBlocking(0)),
]


def events(conn: EgdServerConnection) -> list[object]:
    out = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA or ev is PAUSED:
            return out
        out.append(ev)
        if isinstance(ev, ConnectionClosed):
            return out


@pytest.mark.parametrize(("wire", "event", "reply", "reply_wire"), CASES)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_server_command_table(wire: bytes, event: object, reply: object, reply_wire: bytes, bytewise: bool) -> None:
    conn = EgdServerConnection()
    seen: list[object] = []
    chunks = [wire[i : i + 1] for i in range(len(wire))] if bytewise else [wire]
    for i, chunk in enumerate(chunks):
        conn.receive_data(chunk)
        got = events(conn)
        if i < len(chunks) - 1:
            assert got == [], f"event before the request was complete: {got}"
        seen += got
    assert seen == [event]
    assert conn.owed_requests == 1
    assert conn.send(reply) == reply_wire  # type: ignore[arg-type]
    assert conn.owed_requests == 0
    assert conn.owed_bytes == 0
    assert conn.completed == 1


@pytest.mark.parametrize(("wire", "event"), NO_REPLY)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_server_requests_without_reply(wire: bytes, event: object, bytewise: bool) -> None:
    conn = EgdServerConnection()
    seen: list[object] = []
    for chunk in ([wire[i : i + 1] for i in range(len(wire))] if bytewise else [wire]):
        conn.receive_data(chunk)
        seen += events(conn)
    assert seen == [event]
    assert conn.owed_requests == 0
    assert conn.head() is None
    with pytest.raises(LocalProtocolError, match="nothing is owed"):
        conn.send(BlockingData(b"x"))


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize("sizes", [[64], [64, 64, 64], [255, 255, 2], [1] * 20])
def test_qemu_pipelined_blocking_reads(bytewise: bool, sizes: list[int]) -> None:
    """QEMU writes ceil(S/255) headers back to back and consumes raw bytes in FIFO order."""
    wire = b"".join(bytes((2, n)) for n in sizes)
    conn = EgdServerConnection()
    got: list[object] = []
    for chunk in ([wire[i : i + 1] for i in range(len(wire))] if bytewise else [wire]):
        conn.receive_data(chunk)
        got += events(conn)
    assert got == [ReadBlocking(n) for n in sizes]
    total = sum(sizes)
    assert conn.head_blocking_bytes() == total
    assert conn.owed_bytes == total
    # answer in odd-sized pieces; completion counts follow request boundaries
    data = bytes(i % 251 for i in range(total))
    sent = b""
    boundaries = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    for piece in (7, 100, 1, 500):
        if len(sent) >= total:
            break
        chunk = data[len(sent) : len(sent) + piece]
        assert conn.send(BlockingData(chunk)) == chunk
        sent += chunk
        assert conn.completed == sum(1 for b in boundaries if b <= len(sent))
    if len(sent) < total:
        conn.send(BlockingData(data[len(sent) :]))
    assert conn.completed == len(sizes)
    assert conn.head() is None


def test_replies_strictly_in_order_across_mixed_commands() -> None:
    conn = EgdServerConnection()
    conn.receive_data(b"\x02\x04\x00\x02\x02\x04\x01\x05")
    assert events(conn) == [ReadBlocking(4), GetLevel(), ReadBlocking(2), GetPid(), ReadNonBlocking(5)]
    # the head is the blocking read: nothing else may be sent first
    for wrong in (LevelReply(1), PidReply("1"), NonBlockingData(b"")):
        with pytest.raises(LocalProtocolError, match="does not answer the owed read-blocking"):
            conn.send(wrong)
    with pytest.raises(LocalProtocolError, match="5 bytes sent but the blocking reads owe 4"):
        conn.send(BlockingData(b"12345"))  # may not spill into the next (non-blocking) request
    assert conn.send(BlockingData(b"abcd")) == b"abcd"
    assert conn.head_request() == GetLevel()
    assert conn.send(LevelReply(8)) == b"\x00\x00\x00\x08"
    assert conn.head_request() == ReadBlocking(2)
    assert conn.send(BlockingData(b"xy")) == b"xy"
    assert conn.send(PidReply("7")) == b"\x017"
    assert conn.head_request() == ReadNonBlocking(5)
    with pytest.raises(LocalProtocolError, match="6 bytes for a non-blocking read of 5"):
        conn.send(NonBlockingData(b"123456"))
    assert conn.send(NonBlockingData(b"12")) == b"\x0212"
    assert conn.completed == 5
    assert conn.owed_bytes == 0


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (LevelReply(1 << 32), "does not fit in 32 bits"),
        (LevelReply(-1), "does not fit in 32 bits"),
    ],
)
def test_level_reply_range(reply: LevelReply, message: str) -> None:
    conn = EgdServerConnection()
    conn.receive_data(b"\x00")
    events(conn)
    with pytest.raises(LocalProtocolError, match=message):
        conn.send(reply)
    assert conn.owed_requests == 1  # a refused reply leaves the queue as it was


@pytest.mark.parametrize(("pid", "message"), [("ü", "not ASCII"), ("9" * 256, "256 characters")])
def test_pid_reply_validation(pid: str, message: str) -> None:
    conn = EgdServerConnection()
    conn.receive_data(b"\x04")
    events(conn)
    with pytest.raises(LocalProtocolError, match=message):
        conn.send(PidReply(pid))
    assert conn.send(PidReply("1")) == b"\x011"


@pytest.mark.parametrize("bad", [0x05, 0x10, 0x7F, 0x80, 0xFF])
def test_unknown_command_is_a_remote_error_and_sticks(bad: int) -> None:
    conn = EgdServerConnection()
    conn.receive_data(b"\x02\x01\x00" + bytes((bad,)) + b"\x02\x01")
    assert events_until_error(conn) == [ReadBlocking(1), GetLevel()]
    assert conn.state is ConnState.ERROR
    with pytest.raises(RemoteProtocolError, match=f"stream offset 3, expected 0x00-0x04, got {bad:#04x}"):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"\x00")


def events_until_error(conn: EgdServerConnection) -> list[object]:
    out = []
    try:
        while (ev := conn.next_event()) is not NEED_DATA:
            out.append(ev)
    except RemoteProtocolError:
        return out
    raise AssertionError("no error raised")


def test_error_offset_counts_the_whole_stream() -> None:
    conn = EgdServerConnection()
    for _ in range(10):
        conn.receive_data(b"\x02\x40")
        events(conn)
        conn.send(BlockingData(b"\0" * 64))
    conn.receive_data(b"\x02")
    events(conn)
    conn.receive_data(b"\x01\x09")
    assert events_until_error(conn) == [ReadBlocking(1)]
    assert conn.state is ConnState.ERROR


@pytest.mark.parametrize("partial", [b"\x02", b"\x01", b"\x03\x00", b"\x03\x00\x08\x04ab"])
def test_eof_in_the_middle_of_a_request(partial: bytes) -> None:
    conn = EgdServerConnection()
    conn.receive_data(partial)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed the stream in the middle"):
        conn.next_event()


def test_eof_after_complete_requests_keeps_owed_replies() -> None:
    conn = EgdServerConnection()
    conn.receive_data(b"\x02\x02\x04")
    conn.receive_data(b"")
    assert events(conn) == [ReadBlocking(2), GetPid(), ConnectionClosed()]
    assert conn.state is ConnState.PEER_CLOSED
    assert conn.send(BlockingData(b"ab")) == b"ab"  # half-closed: replies still go out
    assert conn.send(PidReply("1")) == b"\x011"
    assert conn.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError, match="after the peer closed"):
        conn.receive_data(b"\x00")


def test_close_is_final() -> None:
    conn = EgdServerConnection()
    conn.receive_data(b"\x02\x10")
    events(conn)
    conn.close()
    assert conn.state is ConnState.CLOSED
    assert conn.owed_bytes == 0
    assert conn.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"\x00")
    with pytest.raises(LocalProtocolError):
        conn.send(BlockingData(b""))
    with pytest.raises(LocalProtocolError, match="cannot snapshot"):
        conn.snapshot()


def test_backpressure_pauses_at_max_pending_bytes() -> None:
    conn = EgdServerConnection(limits=Limits(max_pending_bytes=1000))
    conn.receive_data(b"\x02\xff" * 10)
    got = events(conn)
    assert got == [ReadBlocking(255)] * 4  # 1020 bytes owed >= 1000: the fifth is not parsed
    assert conn.next_event() is PAUSED
    assert conn.buffered == 12
    conn.send(BlockingData(b"\0" * 255))
    assert events(conn) == [ReadBlocking(255)]
    assert conn.next_event() is PAUSED


def test_receive_buffer_cap_is_a_remote_error() -> None:
    conn = EgdServerConnection(limits=Limits(max_egd_receive_buffer=64, max_pending_bytes=1))
    conn.receive_data(b"\x02\x01" * 32)  # 64 bytes: exactly at the cap
    with pytest.raises(RemoteProtocolError, match="max_egd_receive_buffer limit of 64"):
        conn.receive_data(b"\x02")
    assert conn.state is ConnState.ERROR


def test_endless_partial_requests_do_not_grow_the_buffer() -> None:
    """A peer that always ends a chunk mid-request must not make the buffer grow without bound."""
    conn = EgdServerConnection(limits=Limits(max_egd_receive_buffer=16))
    conn.receive_data(b"\x02")
    for _ in range(10_000):
        conn.receive_data(b"\x01\x02")  # completes the previous request, starts the next
        assert events(conn) == [ReadBlocking(1)]
        conn.send(BlockingData(b"z"))
    assert conn.buffered == 1


@pytest.mark.parametrize("cut", range(0, 14))
def test_snapshot_round_trip_continues_the_stream(cut: int) -> None:
    wire = b"\x02\x05\x00\x01\x03\x02\x10\x04\x02\x07"
    conn = EgdServerConnection()
    if cut:
        conn.receive_data(wire[:cut])
    first = events(conn)
    if conn.head_blocking_bytes() >= 2:
        conn.send(BlockingData(b"ab"))  # part of a reply already sent before the hand-over
    snap = ConnectionSnapshot.from_json(conn.snapshot().to_json())
    succ = EgdServerConnection(snapshot=snap)
    assert succ.owed_bytes == conn.owed_bytes
    assert succ.owed_requests == conn.owed_requests
    if wire[cut:]:
        succ.receive_data(wire[cut:])
    rest = events(succ)
    full = EgdServerConnection()
    full.receive_data(wire)
    assert first + rest == events(full)


@pytest.mark.parametrize(
    "obj",
    [None, [], {"buffer": "zz", "owed": []}, {"buffer": "", "owed": [[9, 0]]}, {"buffer": "", "owed": [[2, 0]]},
     {"buffer": "", "owed": [[2, 256]]}, {"owed": []}],
)
def test_bad_snapshots_are_local_errors(obj: object) -> None:
    with pytest.raises(LocalProtocolError, match="snapshot"):
        ConnectionSnapshot.from_json(obj)


# -- the client end ----------------------------------------------------------------------------------

CLIENT_CASES = [
    (GetLevel(), b"\x00", b"\x00\x01\x00\x00", LevelReply(65536)),
    (ReadNonBlocking(8), b"\x01\x08", b"\x03abc", NonBlockingData(b"abc")),
    (ReadBlocking(5), b"\x02\x05", b"hello", BlockingData(b"hello")),
    (GetPid(), b"\x04", b"\x05-1234", PidReply("-1234")),
]


@pytest.mark.parametrize(("request_", "wire", "reply_wire", "reply"), CLIENT_CASES)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_client_table(request_: object, wire: bytes, reply_wire: bytes, reply: object, bytewise: bool) -> None:
    c = EgdClientConnection()
    assert c.send(request_) == wire  # type: ignore[arg-type]
    got = []
    for chunk in ([reply_wire[i : i + 1] for i in range(len(reply_wire))] if bytewise else [reply_wire]):
        c.receive_data(chunk)
        while (ev := c.next_event()) is not NEED_DATA:
            got.append(ev)
    assert got == [reply]
    assert c.outstanding == 0


def test_client_write_and_zero_read_expect_nothing() -> None:
    c = EgdClientConnection()
    assert c.send(WriteEntropy(16, b"ab")) == b"\x03\x00\x10\x02ab"
    assert c.send(ReadBlocking(0)) == b"\x02\x00"
    assert c.outstanding == 0
    with pytest.raises(RemoteProtocolError, match="sent 1 bytes while at most 0 were owed"):
        c.receive_data(b"x")


@pytest.mark.parametrize(
    ("request_", "message"),
    [(ReadBlocking(256), "outside 0-255"), (ReadNonBlocking(-1), "outside 0-255"),
     (WriteEntropy(1 << 16, b""), "bits 0-65535"), (WriteEntropy(0, b"x" * 256), "at most 255")],
)
def test_client_refuses_unencodable_requests(request_: object, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        EgdClientConnection().send(request_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "reply_wire", "message"),
    [(ReadNonBlocking(2), b"\x05ab", "non-blocking reply of 5 bytes to a request for 2"),
     (GetPid(), b"\x02\xff\xfe", "not ASCII")],
)
def test_client_rejects_malformed_replies(request_: object, reply_wire: bytes, message: str) -> None:
    c = EgdClientConnection()
    c.send(request_)  # type: ignore[arg-type]
    c.receive_data(reply_wire)
    with pytest.raises(RemoteProtocolError, match=message):
        c.next_event()


def test_client_server_closed_mid_reply() -> None:
    c = EgdClientConnection()
    c.send(ReadBlocking(10))
    c.receive_data(b"abc")
    c.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="in the middle of a read-blocking reply"):
        c.next_event()


# -- the two ends joined (a fake wire), and fuzzing --------------------------------------------------

REQUESTS = st.one_of(
    st.just(GetLevel()),
    st.just(GetPid()),
    st.builds(ReadBlocking, st.integers(0, 255)),
    st.builds(ReadNonBlocking, st.integers(0, 255)),
    st.builds(WriteEntropy, st.integers(0, 0xFFFF), st.binary(max_size=40)),
)


@settings(max_examples=150, deadline=None)
@given(reqs=st.lists(REQUESTS, max_size=25), cuts=st.lists(st.integers(1, 7), min_size=1, max_size=8))
def test_client_and_server_agree_under_any_fragmentation(reqs: list[object], cuts: list[int]) -> None:
    client = EgdClientConnection()
    server = EgdServerConnection()
    wire = b"".join(client.send(r) for r in reqs)  # type: ignore[arg-type]
    seen: list[object] = []
    pos = 0
    i = 0
    while pos < len(wire):
        n = cuts[i % len(cuts)]
        server.receive_data(wire[pos : pos + n])
        pos += n
        i += 1
        seen += events(server)
    assert seen == reqs
    replies = b""
    expected: list[object] = []
    counter = 0
    while (req := server.head_request()) is not None:
        counter += 1
        if isinstance(req, ReadBlocking):
            data = bytes((counter + j) % 256 for j in range(server.head_blocking_bytes()))
            replies += server.send(BlockingData(data))
        elif isinstance(req, GetLevel):
            replies += server.send(LevelReply(counter))
        elif isinstance(req, GetPid):
            replies += server.send(PidReply(str(counter)))
        else:
            assert isinstance(req, ReadNonBlocking)
            replies += server.send(NonBlockingData(b"q" * min(req.count, counter)))
    got: list[object] = []
    pos = 0
    i = 0
    while pos < len(replies):
        n = cuts[i % len(cuts)] * 3
        client.receive_data(replies[pos : pos + n])
        pos += n
        i += 1
        while (ev := client.next_event()) is not NEED_DATA:
            got.append(ev)
    del expected
    assert client.outstanding == 0
    owing = [r for r in reqs if not isinstance(r, WriteEntropy) and r != ReadBlocking(0)]
    assert len(got) == len(owing)
    for r, ev in zip(owing, got):
        kind = {GetLevel: LevelReply, GetPid: PidReply, ReadBlocking: BlockingData, ReadNonBlocking: NonBlockingData}
        assert isinstance(ev, kind[type(r)])
        if isinstance(r, ReadBlocking):
            assert len(ev.data) == r.count  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), chunk=st.integers(1, 50))
def test_fuzz_server_only_remote_protocol_errors_escape(data: bytes, chunk: int) -> None:
    conn = EgdServerConnection(limits=Limits(max_pending_bytes=600, max_egd_receive_buffer=128))
    try:
        for i in range(0, len(data), chunk):
            conn.receive_data(data[i : i + chunk])
            while (ev := conn.next_event()) is not NEED_DATA and ev is not PAUSED:
                pass
            while conn.head_blocking_bytes():
                conn.send(BlockingData(b"\0" * conn.head_blocking_bytes()))
            while (req := conn.head_request()) is not None and not isinstance(req, ReadBlocking):
                if isinstance(req, GetLevel):
                    conn.send(LevelReply(0))
                elif isinstance(req, GetPid):
                    conn.send(PidReply("1"))
                else:
                    conn.send(NonBlockingData(b""))
        conn.receive_data(b"")
        conn.next_event()
    except RemoteProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(reqs=st.lists(REQUESTS, max_size=10), data=st.binary(max_size=200), chunk=st.integers(1, 40))
def test_fuzz_client_only_remote_protocol_errors_escape(reqs: list[object], data: bytes, chunk: int) -> None:
    c = EgdClientConnection()
    for r in reqs:
        c.send(r)  # type: ignore[arg-type]
    try:
        for i in range(0, len(data), chunk):
            c.receive_data(data[i : i + chunk])
            while c.next_event() is not NEED_DATA:
                if c.outstanding == 0:
                    break
        c.receive_data(b"")
        while not isinstance(c.next_event(), ConnectionClosed):
            pass
    except RemoteProtocolError:
        pass


# -- the fast path for QEMU's traffic ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "chunk", "owed"),
    [
        (b"", b"\x02\x40", 64),
        (b"", b"\x02\x40\x02\xff\x02\x01", 320),
        (b"", b"\x02\x00", -1),  # a zero-length read owes nothing: slow path
        (b"", b"\x02\x40\x00", -1),  # odd length
        (b"", b"\x02\x40\x04\x00", -1),  # another command
        (b"", b"\x01\x40", -1),
        (b"\x02", b"\x40", -1),  # a partial request is buffered
        (b"\x02\x08", b"\x02\x08", -1),  # something is owed already
        (b"", b"", -1),
    ],
)
def test_receive_blocking_reads_fast_path(prefix: bytes, chunk: bytes, owed: int) -> None:
    conn = EgdServerConnection()
    if prefix:
        conn.receive_data(prefix)
        events(conn)
    before = conn.owed_bytes
    assert conn.receive_blocking_reads(chunk) == owed
    if owed < 0:
        assert conn.owed_bytes == before  # nothing consumed
        return
    slow = EgdServerConnection()
    slow.receive_data(chunk)
    events(slow)
    assert conn.snapshot() == slow.snapshot()
    assert conn.send(BlockingData(b"x" * owed)) == b"x" * owed
    assert conn.completed == len(chunk) // 2
    conn.receive_data(b"\x07")  # stream offsets keep counting across the fast path
    with pytest.raises(RemoteProtocolError, match=f"stream offset {len(chunk)},"):
        conn.next_event()


def test_fast_path_respects_the_pending_cap() -> None:
    conn = EgdServerConnection(limits=Limits(max_pending_bytes=300))
    assert conn.receive_blocking_reads(b"\x02\xff\x02\xff") == -1
    assert conn.receive_blocking_reads(b"\x02\xff") == 255
