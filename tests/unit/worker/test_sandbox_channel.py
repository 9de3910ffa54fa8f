"""The real worker: forked, sandboxed, killed on overrun, distrusted.

Each test spawns a genuine worker process with ``spawn_worker`` and small test
handlers, so the sandbox layers and the parent's checks are exercised exactly
as ``virtkit-pygrub`` uses them.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest

from helpers import is_root
from virtkit.boot.worker import code_dirs, default_isolation, spawn_worker
from virtkit.boot.worker.sandbox import build_seccomp_program
from virtkit.errors import CorruptStructure, ImageError, WorkerError
from virtkit.limits import Limits


def _try(fn: Any) -> str:
    try:
        fn()
    except OSError as exc:
        return f"denied:{exc.errno}"
    return "allowed"


def probe(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    out: dict[str, Any] = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "root_listing": sorted(os.listdir("/")),
        "open_passwd": _try(lambda: open("/etc/passwd", "rb").close()),
        "write_code": _try(lambda: os.open(os.path.join(os.path.dirname(os.__file__), "x.py"), os.O_RDONLY | os.O_CREAT)),
        "lazy_import": __import__("colorsys").__name__,  # not imported by anything before the fork
        "socket": _try(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
        "exec": _try(lambda: os.execv("/bin/true", ["true"])),
        "open_write": _try(lambda: os.open("/x", os.O_WRONLY | os.O_CREAT, 0o600)),
        "fork": _try(lambda: os.fork()),
    }
    return out, []


def echo(req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    return {"echo": req.get("value")}, [[b"abc", b"def"], [b"x" * (3 << 20)]]


def boom(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    raise ValueError("a bug")


def bad(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    raise CorruptStructure("ext4 superblock on disk0p1", "bad magic", offset=0x400, expected=0xEF53, got=0)


def hang(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    while True:
        pass


def die(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    os._exit(3)


def bad_stream(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    def gen():
        yield b"partial"
        raise ImageError("kernel read failed half way")

    return {}, [gen()]


HANDLERS = {"probe": probe, "echo": echo, "boom": boom, "bad": bad, "hang": hang, "die": die, "bad_stream": bad_stream}


def spawn(*, isolate: bool = True, timeout: float = 30.0) -> Any:
    iso = default_isolation() if isolate else None
    return spawn_worker(lambda: HANDLERS, keep_fds=[], limits=Limits(worker_timeout=timeout), isolation=iso)


@pytest.mark.skipif(not is_root(), reason="the full sandbox (setuid, namespaces, chroot) needs root")
def test_sandbox_layers_hold() -> None:
    ch = spawn()
    try:
        r = ch.call({"op": "probe"}).message
    finally:
        ch.close()
    assert r["uid"] != 0 and r["euid"] != 0 and r["gid"] != 0
    assert r["groups"] == []
    # the chroot holds nothing but read-only Python code (or nothing at all)
    allowed = {d.strip("/").split("/")[0] for d in code_dirs()}
    assert set(r["root_listing"]) <= allowed, r["root_listing"]
    assert r["open_passwd"].startswith("denied")
    assert r["write_code"].startswith("denied")
    assert r["lazy_import"] == "colorsys"  # a module not imported before the sandbox still imports
    assert r["socket"] == f"denied:{1}"  # EPERM from seccomp
    assert r["exec"].startswith("denied")
    assert r["open_write"].startswith("denied")
    assert r["fork"].startswith("denied")
    joined = "\n".join(ch.notes)
    for layer in ("namespaces:", "chroot: a read-only root holding only read-only Python code", "identity: uid",
                  "seccomp: deny-list", "rlimits:"):
        assert layer in joined, joined


def test_echo_and_streams_in_order() -> None:
    with spawn(isolate=is_root()) as ch:
        reply = ch.call({"op": "echo", "value": "héllo"})
        assert reply.message["echo"] == "héllo"
        assert b"".join(reply.streams[0]) == b"abcdef"
        assert b"".join(reply.streams[1]) == b"x" * (3 << 20)


def test_guest_errors_keep_their_class_and_message() -> None:
    with spawn(isolate=is_root()) as ch:
        with pytest.raises(CorruptStructure, match=r"at 0x400: bad magic, expected 0xef53"):
            ch.call({"op": "bad"})
        # the worker keeps serving after a guest error
        assert ch.call({"op": "echo", "value": 1}).message["echo"] == 1


def test_error_in_the_middle_of_a_stream() -> None:
    with spawn(isolate=is_root()) as ch:
        reply = ch.call({"op": "bad_stream"})
        with pytest.raises(ImageError, match="half way"):
            b"".join(reply.streams[0])


def test_internal_error_is_a_worker_error_and_nonzero_exit() -> None:
    ch = spawn(isolate=is_root())
    with pytest.raises(WorkerError, match="internal error"):
        ch.call({"op": "boom"})
    with pytest.raises(WorkerError, match="exited with status 70"):
        ch.close()


def test_hanging_worker_is_killed_at_the_budget() -> None:
    ch = spawn(isolate=is_root(), timeout=1.0)
    start = time.monotonic()
    with pytest.raises(WorkerError, match="timed out"):
        ch.call({"op": "hang"})
    assert time.monotonic() - start < 10
    ch.close()


def test_dying_worker_is_reported() -> None:
    ch = spawn(isolate=is_root())
    with pytest.raises(WorkerError, match="exited with status 3"):
        ch.call({"op": "die"})


def test_jail_directory_is_removed() -> None:
    iso = default_isolation()
    assert os.path.isdir(iso.jail)
    ch = spawn_worker(lambda: HANDLERS, keep_fds=[], limits=Limits(), isolation=iso)
    ch.close()
    assert not os.path.exists(iso.jail)


def test_seccomp_program_shape() -> None:
    prog = build_seccomp_program("x86_64")
    assert prog[0] == (0x20, 0, 0, 4)  # load arch
    assert prog[-1] == (0x06, 0, 0, 0x7FFF0000)  # default allow
    assert len(prog) < 4096  # BPF_MAXINSNS
    assert build_seccomp_program("aarch64")
