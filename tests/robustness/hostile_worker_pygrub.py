"""``virtkit-pygrub`` whose worker misbehaves: a test-only wrapper (not a test module).

Usage (tests/robustness/test_cli_hostile_worker.py runs it the way libxl runs a bootloader)::

    python3 hostile_worker_pygrub.py MODE [virtkit-pygrub arguments...]

It replaces ``virtkit.boot.worker.handlers.make_handlers`` in *this* process, before
``virtkit-pygrub`` forks its worker, then calls the real ``virtkit.cli.pygrub.main``.  The
worker is forked and sandboxed exactly as usual (``_bootrun.open_channel``); only its
handler table differs: the real handlers, with one step turned hostile as MODE says (raw
frames written straight onto the channel, a reply that breaks the schema, or death in the
middle of a reply).  Nothing in ``src/`` is changed; the patch lives only in this process.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import virtkit.boot.worker.handlers as worker_handlers
from virtkit.boot.worker.protocol import encode_data, encode_end, encode_json
from virtkit.cli.pygrub import main

Reply = tuple[dict[str, Any], list[Iterable[bytes]]]
Handler = Callable[[dict[str, Any]], Reply]


def _channel_fd() -> int:
    """The worker's end of the socketpair: its only socket (the sandbox closed everything else)."""
    socks = []
    for fd in range(64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                socks.append(fd)
        except OSError:
            pass
    if len(socks) != 1:  # pragma: no cover - would mean the sandbox leaked a socket
        os._exit(99)
    return socks[0]


def send(*frames: bytes) -> None:
    data = b"".join(frames)
    fd = _channel_fd()
    while data:
        data = data[os.write(fd, data) :]


def raw(kind: bytes, payload: bytes, length: int | None = None) -> bytes:
    return struct.pack(">cI", kind, len(payload) if length is None else length) + payload


def wait_to_be_killed() -> None:
    """The parent must kill us on what we sent; if it does not, its wall-clock budget will."""
    time.sleep(60)
    os._exit(0)


def _reply_header(reply: dict[str, Any], streams: int) -> bytes:
    return encode_json({"ok": True, "streams": streams, **reply})


# ----------------------------------------------------------------- menu


def menu_mode(mode: str, real: Handler, req: dict[str, Any]) -> Reply:
    if mode == "menu-unknown-kind":
        send(raw(b"Z", b""))
    elif mode == "menu-bad-json":
        send(raw(b"J", b"{not json"))
    elif mode == "menu-json-array":
        send(raw(b"J", b"[1, 2]"))
    elif mode == "menu-json-nan":
        send(raw(b"J", b'{"ok": true, "streams": 0, "menu": NaN}'))
    elif mode == "menu-oversized-json":
        send(raw(b"J", b"{", length=0xFFFFFFFF))
        wait_to_be_killed()
    elif mode == "menu-data-instead-of-reply":
        send(encode_data(b"kernel bytes where a reply belongs"))
    elif mode == "menu-dies-mid-frame":
        send(raw(b"J", b'{"ok": true, "menu"', length=4096))
        os._exit(0)
    elif mode == "menu-dies-silently":
        os._exit(0)
    elif mode == "menu-abort":
        os.abort()
    reply, streams = real(req)
    if mode == "menu-schema-items":
        reply["menu"]["items"] = 5
    elif mode == "menu-schema-title":
        reply["menu"]["items"][0]["title"] = ["not", "a", "string"]
    elif mode == "menu-schema-missing":
        del reply["menu"]
    elif mode == "menu-schema-used":
        reply["used"] = "0"
    elif mode == "menu-stream-count":
        reply["streams"] = "0"
    return reply, streams


# ----------------------------------------------------------------- extract

KERNEL_CHUNK = b"\x7fELF-ish kernel bytes " * 64


def extract_mode(mode: str, real: Handler, req: dict[str, Any]) -> Reply:
    reply, streams = real(req)
    if mode == "extract-schema-entry":
        reply["entry"]["title"] = 42
        return reply, streams
    if mode == "extract-schema-count":
        reply["initrd_count"] = "1"
        return reply, streams
    if mode == "extract-one-stream":
        return reply, streams[:1]
    header = _reply_header(reply, 2)
    if mode == "extract-unknown-kind-mid-kernel":
        send(header, encode_data(KERNEL_CHUNK), raw(b"Z", b""))
        wait_to_be_killed()
    elif mode == "extract-reply-mid-kernel":
        send(header, encode_data(KERNEL_CHUNK), encode_json({"ok": True, "streams": 0}))
        wait_to_be_killed()
    elif mode == "extract-oversized-chunk":
        send(header, encode_data(KERNEL_CHUNK), raw(b"D", b"x", length=(1 << 20) + 1))
        wait_to_be_killed()
    elif mode == "extract-dies-mid-kernel":
        send(header, encode_data(KERNEL_CHUNK), encode_data(KERNEL_CHUNK))
        os._exit(0)
    elif mode == "extract-dies-mid-chunk":
        send(header, encode_data(KERNEL_CHUNK), raw(b"D", KERNEL_CHUNK[:100], length=len(KERNEL_CHUNK)))
        os._exit(0)
    elif mode == "extract-dies-mid-ramdisk":
        send(header, encode_data(KERNEL_CHUNK), encode_end(), encode_data(b"partial initrd"))
        os._exit(0)
    elif mode == "extract-abort-mid-ramdisk":
        send(header, encode_data(KERNEL_CHUNK), encode_end(), encode_data(b"partial initrd"))
        os.abort()
    raise SystemExit(f"unknown mode {mode!r}")


# ----------------------------------------------------------------- the patch


def install(mode: str) -> None:
    real_make_handlers = worker_handlers.make_handlers

    def make_handlers(*args: Any, **kwargs: Any) -> Callable[[], Mapping[str, Handler]]:
        build = real_make_handlers(*args, **kwargs)

        def hostile_build() -> Mapping[str, Handler]:  # runs in the worker, after the sandbox
            table = dict(build())
            if mode == "hello-garbage":
                send(raw(b"Z", b""))  # before the worker's hello
            elif mode.startswith("menu-"):
                real_menu = table["menu"]
                table["menu"] = lambda req: menu_mode(mode, real_menu, req)
            elif mode.startswith("extract-"):
                real_extract = table["extract"]
                table["extract"] = lambda req: extract_mode(mode, real_extract, req)
            return table

        return hostile_build

    worker_handlers.make_handlers = make_handlers


if __name__ == "__main__":
    install(sys.argv[1])
    sys.exit(main(["virtkit-pygrub", *sys.argv[2:]]))
