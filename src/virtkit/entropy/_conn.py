"""The entropy service's data: its configuration, listeners, connections, and per-guest counters as JSON.

References:
    :mod:`virtkit.entropy.server` (which drives these objects).
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

from virtkit.entropy.accounting import GuestStats, RatePolicy, RequestClock
from virtkit.entropy.identity import PeerIdentity
from virtkit.entropy.listeners import Address, describe_socket
from virtkit.entropy.protocol import EgdServerConnection
from virtkit.limits import DEFAULT_LIMITS, Limits

__all__ = ["CMD_NAMES", "OUT_HIGH_WATER", "Connection", "Listener", "ServiceConfig", "stats_from_json", "stats_to_json"]

OUT_HIGH_WATER = 256 * 1024  # unsent bytes per connection before it stops being served
CMD_NAMES = {0: "get-level", 1: "read-nonblocking", 2: "read-blocking", 3: "write", 4: "get-pid"}


@dataclass
class ServiceConfig:
    """What ``virtkit entropy serve`` was asked to do.

    Attributes:
        listen: shared EGD listeners (peers identified by SO_PEERCRED or address).
        guest_dir: directory of per-guest sockets (``NAME.sock``).
        guests: domains to create per-guest sockets for.
        metrics: where to serve ``GET /metrics`` and ``GET /status``.
        control: unix socket for hand-over and guest management (mode 0600).
        socket_mode: mode of EGD unix sockets (0660: QEMU's group can connect).
        socket_gid: group of EGD unix sockets (e.g. libvirt-qemu, kvm).
        default_rate: per-guest limit for guests without their own.
        guest_rates: per-guest limits.
        watchdog: seconds a request may be owed before it counts as a stall.
        write_policy: ``discard`` (default), ``mix`` (write to /dev/urandom,
            uncredited) or ``credit`` (RNDADDENTROPY with the claimed bits) for 0x03.
        limits: caps (receive buffer, owed bytes, connections).
        proc_root: proc(5) mount for peer identity.
        out_high_water: unsent bytes per connection before it stops being served.
    """

    listen: list[Address] = field(default_factory=list)
    guest_dir: str | None = None
    guests: list[str] = field(default_factory=list)
    metrics: list[Address] = field(default_factory=list)
    control: str | None = None
    socket_mode: int = 0o660
    socket_gid: int | None = None
    default_rate: RatePolicy = field(default_factory=RatePolicy)
    guest_rates: dict[str, RatePolicy] = field(default_factory=dict)
    watchdog: float = 5.0
    write_policy: str = "discard"
    limits: Limits = DEFAULT_LIMITS
    proc_root: str = "/proc"
    out_high_water: int = OUT_HIGH_WATER


class Listener:
    """A listening socket and what it is for.

    Attributes:
        role: ``"egd"``, ``"metrics"`` or ``"control"``.
        guest: for a per-guest EGD socket, its domain.
        name: stable identity across hand-overs (also the systemd FDNAME).
        path: the unix socket file we created (removed on a final shutdown only).
    """

    __slots__ = ("address", "file_id", "guest", "name", "path", "role", "sock")

    def __init__(self, sock: socket.socket, role: str, name: str, *, guest: str | None = None,
                 path: str | None = None) -> None:
        self.sock = sock
        self.role = role
        self.name = name
        self.guest = guest
        self.path = path
        self.address = describe_socket(sock)
        self.file_id = _file_id(path)

    def unlink_if_ours(self) -> bool:
        """Remove the socket file, unless another process has bound a new socket at that path since."""
        if not self.path or self.file_id is None or _file_id(self.path) != self.file_id:
            return False
        try:
            os.unlink(self.path)
        except OSError:
            return False
        return True


def _file_id(path: str | None) -> tuple[int, int] | None:
    if not path:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISSOCK(st.st_mode) else None


class Connection:
    """One EGD client stream."""

    __slots__ = (
        "blocked", "clock", "core", "done_seen", "fd", "guest", "id", "identity", "listener", "out",
        "peer_closed", "reading", "sock", "stats", "writing",
    )

    def __init__(self, cid: int, sock: socket.socket, identity: PeerIdentity, *, listener: str, stats: GuestStats,
                 core: EgdServerConnection) -> None:
        self.id = cid
        self.sock = sock
        self.fd = sock.fileno()
        self.identity = identity
        self.guest = identity.guest
        self.listener = listener
        self.stats = stats
        self.core = core
        self.clock = RequestClock()
        self.out = bytearray()
        self.done_seen = core.completed
        self.reading = False
        self.writing = False
        self.blocked = False
        self.peer_closed = False

    @property
    def name(self) -> str:
        return f"vk-conn-{self.id}"


def stats_to_json(st: GuestStats) -> dict[str, Any]:
    return {
        "bytes_served": st.bytes_served,
        "requests": {CMD_NAMES.get(k, str(k)): v for k, v in sorted(st.requests.items())},
        "latency": {"bounds": list(st.latency.bounds), "counts": list(st.latency.counts), "sum": st.latency.total,
                    "count": st.latency.count},
        "stalls": st.stalls,
        "throttled": st.throttled,
        "connections_open": st.connections_open,
        "connections_total": st.connections_total,
        "write_bytes": st.write_bytes,
        "write_bits_claimed": st.write_bits_claimed,
        "protocol_errors": st.protocol_errors,
        "pid": st.pid,
    }


def stats_from_json(obj: dict[str, Any]) -> GuestStats:
    st = GuestStats()
    names = {v: k for k, v in CMD_NAMES.items()}
    st.bytes_served = int(obj.get("bytes_served", 0))
    st.requests = {names[k]: int(v) for k, v in obj.get("requests", {}).items() if k in names}
    lat = obj.get("latency", {})
    if list(lat.get("bounds", [])) == list(st.latency.bounds) and len(lat.get("counts", [])) == len(st.latency.counts):
        st.latency.counts = [int(c) for c in lat["counts"]]
        st.latency.total = float(lat.get("sum", 0.0))
        st.latency.count = int(lat.get("count", 0))
    for key in ("stalls", "throttled", "connections_total", "write_bytes", "write_bits_claimed", "protocol_errors"):
        setattr(st, key, int(obj.get(key, 0)))
    pid = obj.get("pid")
    st.pid = int(pid) if pid is not None else None
    return st
