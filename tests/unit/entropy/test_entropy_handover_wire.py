"""Hand-over plumbing without processes: the wire format, state memfds, sd_notify and LISTEN_FDS parsing, limits."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from virtkit.entropy.handover import (
    SystemdNotifier,
    listen_fds,
    read_state_fd,
    recv_handover,
    send_handover,
    write_state_memfd,
)
from virtkit.errors import ServiceError
from virtkit.limits import Limits


def test_state_and_descriptors_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    pipes = [os.pipe() for _ in range(250)]  # more than one SCM_RIGHTS batch
    fds = [r for r, _ in pipes]
    state = {"version": 1, "blob": "x" * 300_000}
    t = threading.Thread(target=send_handover, args=(a, state, fds))
    t.start()
    got_state, got_fds = recv_handover(b)
    t.join()
    assert got_state == state and len(got_fds) == 250
    for (_, w), fd in zip(pipes, got_fds):  # each received descriptor is the same pipe
        os.write(w, b"k")
        assert os.read(fd, 1) == b"k"
    for r, w in pipes:
        os.close(r)
        os.close(w)
    for fd in got_fds:
        os.close(fd)
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"ok": False, "error": "busy"}, "refused the hand-over: busy"),
        ({"ok": True, "state_bytes": 2000, "fds": 0}, "max_handover_state_bytes is 1000"),
        ({"ok": True, "state_bytes": 10, "fds": 10**9}, "announces 1000000000 descriptors"),
    ],
)
def test_hostile_or_refused_handover_headers(header: dict[str, object], message: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(json.dumps(header).encode() + b"\n")
        with pytest.raises(ServiceError, match=message):
            recv_handover(b, limits=Limits(max_handover_state_bytes=1000))


def test_state_memfd_round_trip_is_sealed_and_bounded() -> None:
    fd = write_state_memfd({"version": 1, "connections": [1, 2, 3]})
    try:
        assert read_state_fd(fd) == {"version": 1, "connections": [1, 2, 3]}
        with pytest.raises(OSError):
            os.pwrite(fd, b"x", 0)  # sealed against writes
        with pytest.raises(ServiceError, match="max_handover_state_bytes"):
            read_state_fd(fd, limits=Limits(max_handover_state_bytes=10))
    finally:
        os.close(fd)


def test_sd_notify_sends_text_and_descriptors() -> None:
    path = f"/tmp/vk-notify-{os.getpid()}.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    try:
        n = SystemdNotifier(path)
        r, w = os.pipe()
        assert n.store(r, "vk-conn-7")
        msg, fds, _flags, _addr = socket.recv_fds(srv, 4096, 4)
        assert msg == b"FDSTORE=1\nFDNAME=vk-conn-7" and len(fds) == 1
        os.write(w, b"z")
        assert os.read(fds[0], 1) == b"z"
        assert n.remove("vk-conn-7")
        assert srv.recv(4096) == b"FDSTOREREMOVE=1\nFDNAME=vk-conn-7"
        for fd in (r, w, *fds):
            os.close(fd)
        assert not SystemdNotifier("").send("READY=1")
    finally:
        srv.close()
        os.unlink(path)


def test_listen_fds_only_for_this_pid() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2"}
    assert listen_fds(env) == []
    env = {"LISTEN_PID": "junk", "LISTEN_FDS": "2"}
    assert listen_fds(env) == []
