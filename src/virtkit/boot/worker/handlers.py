"""The worker's request handlers: everything that touches guest data, behind the channel.

Each handler takes a request object (sent by the parent, so trusted in shape
but checked anyway) and returns ``(reply, streams)``.  Replies carry only
plain data; file contents travel as data streams which the parent writes into
files it created itself.

=============  =======================================================  ==========================
op             request                                                  reply (+ streams)
=============  =======================================================  ==========================
menu           options                                                  menu
resolve        path | kernel/ramdisk/args, body                         entry, sizes
extract        as resolve                                               entry, sizes + [kernel, ramdisk]
command        line                                                     lines
=============  =======================================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from virtkit._streams import iter_chunks
from virtkit.boot.config.model import BootEntry
from virtkit.boot.extract.payload import iter_payload_ramdisk
from virtkit.boot.options import BootOptions
from virtkit.boot.pipeline import Guest, open_guest_fds
from virtkit.boot.session import BootSession
from virtkit.boot.worker.channel import Handler
from virtkit.boot.worker.codec import candidates_to_wire, entry_to_wire, menu_to_wire
from virtkit.errors import UsageError
from virtkit.limits import Limits

__all__ = ["handlers_for", "make_handlers"]


def _path(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
        raise UsageError("request needs an index path")
    return tuple(v)


def _opt_str(req: dict[str, Any], key: str) -> str | None:
    v = req.get(key)
    if v is None or isinstance(v, str):
        return v
    raise UsageError(f"request field {key} must be a string")


class _Handlers:
    def __init__(self, open_guest: Callable[[], Guest]) -> None:
        self._open_guest = open_guest
        self._session: BootSession | None = None
        self._options: BootOptions | None = None

    def session(self, req: dict[str, Any]) -> BootSession:
        options = BootOptions.from_wire(req.get("options"))
        if self._session is None or options != self._options:
            guest = self._session.guest if self._session is not None else self._open_guest()
            self._session = BootSession(guest, options)
            self._options = options
        return self._session

    def menu(self, req: dict[str, Any]) -> tuple[dict[str, Any], list[Iterable[bytes]]]:
        gm = self.session(req).guest_menu
        used = gm.candidates.index(gm.used) if gm.used in gm.candidates else -1
        return {"menu": menu_to_wire(gm.menu), "candidates": candidates_to_wire(gm.candidates), "used": used}, []

    def _entry(self, req: dict[str, Any]) -> tuple[BootSession, BootEntry]:
        s = self.session(req)
        kernel = _opt_str(req, "kernel")
        if kernel is not None:
            return s, s.entry_for_paths(kernel, _opt_str(req, "ramdisk"), _opt_str(req, "args") or "")
        return s, s.entry(_path(req.get("path")), _opt_str(req, "body"))

    def resolve(self, req: dict[str, Any]) -> tuple[dict[str, Any], list[Iterable[bytes]]]:
        s, entry = self._entry(req)
        payload = s.payload(entry)
        return {"entry": entry_to_wire(entry), "kernel_size": payload.kernel.size, "ramdisk_size": payload.ramdisk_size,
                "initrd_count": len(payload.initrds)}, []

    def extract(self, req: dict[str, Any]) -> tuple[dict[str, Any], list[Iterable[bytes]]]:
        s, entry = self._entry(req)
        payload = s.payload(entry)
        reply = {"entry": entry_to_wire(entry), "kernel_size": payload.kernel.size, "ramdisk_size": payload.ramdisk_size,
                 "initrd_count": len(payload.initrds)}
        return reply, [iter_chunks(payload.kernel), iter_payload_ramdisk(payload)]

    def command(self, req: dict[str, Any]) -> tuple[dict[str, Any], list[Iterable[bytes]]]:
        line = _opt_str(req, "line") or ""
        return {"lines": self.session(req).command(line)}, []


def handlers_for(open_guest: Callable[[], Guest]) -> Mapping[str, Handler]:
    """The handler table over a guest opened (lazily) by ``open_guest``."""
    h = _Handlers(open_guest)
    return {"menu": h.menu, "resolve": h.resolve, "extract": h.extract, "command": h.command}


def make_handlers(
    fds: Sequence[tuple[int, str]],
    *,
    limits: Limits,
    image_format: str | None = None,
    sector_size: int | None = None,
    offset: int | None = None,
    backing: tuple[int, str] | None = None,
) -> Callable[[], Mapping[str, Handler]]:
    """A factory (called inside the worker, after sandboxing) for the handler table.

    The guest is opened lazily from the inherited read-only descriptors on the first
    request, so the sandbox is in place before a byte of guest data is read.
    """

    def build() -> Mapping[str, Handler]:
        return handlers_for(lambda: open_guest_fds(fds, limits=limits, fmt=image_format, sector_size=sector_size,
                                                   offset=offset, backing=backing))

    return build
