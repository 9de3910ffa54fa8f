"""Who is on the other end of an EGD connection: guest names for accounting.

References:
    unix(7) ``SO_PEERCRED`` (struct ucred: pid, uid, gid as three ints; the
        credentials of the process that called connect()).
    proc(5) ``/proc/PID/cmdline`` (NUL-separated argv).
    QEMU ``-name guest=NAME[,process=...][,debug-threads=on]`` (libvirt always
        passes ``guest=``; a bare ``-name NAME`` means the same).

Order of trust, best first:

1. the per-guest socket the peer connected to (``guests/NAME.sock``): the
   service created it for that domain and only that QEMU is pointed at it;
2. ``SO_PEERCRED`` -> the peer's pid -> ``-name`` in its command line, when
   the peer is a QEMU process (shared unix listeners);
3. ``pid:N`` / ``uid:N`` when the peer is some other local process;
4. ``tcp:ADDRESS`` for TCP peers (no credentials exist; several guests
   behind one address share an account).

Names are checked (:func:`check_guest_name`) before they become socket
file names, and made safe (:func:`display_name`) before logs and labels.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from virtkit.entropy.qemuargs import QemuCommandLine, is_qemu
from virtkit.errors import UsageError
from virtkit.limits import DEFAULT_LIMITS, Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "MAX_GUEST_NAME",
    "PeerCredentials",
    "PeerIdentity",
    "check_guest_name",
    "display_name",
    "guest_for_pid",
    "identify_peer",
    "peer_credentials",
    "read_cmdline",
]

MAX_GUEST_NAME = 80  # bytes; leaves room for the directory in sun_path (108 bytes, unix(7))
_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


def check_guest_name(name: str) -> str:
    """Accept a domain name for use as a socket file name (``NAME.sock``).

    Raises:
        UsageError: empty, too long, ``.``/``..``-like, or containing ``/``,
            NUL or other control characters.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if not name or len(raw) > MAX_GUEST_NAME:
        raise UsageError(f"guest name {name!r}: must be 1-{MAX_GUEST_NAME} bytes")
    if name.startswith(".") or "/" in name or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise UsageError(f"guest name {name!r}: must not start with '.' or contain '/' or control characters")
    return name


def display_name(name: str) -> str:
    """A guest name safe for a terminal, a log line or a metrics label (escaped, at most 128 chars)."""
    text = sanitize_text(name)
    return text if len(text) <= 128 else text[:125] + "..."


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """``SO_PEERCRED`` of a unix-socket peer."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    """The peer's credentials, or None (not a unix socket, or the kernel said no)."""
    if sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid) if pid > 0 else None


def read_cmdline(pid: int, *, proc_root: str = "/proc", limits: Limits = DEFAULT_LIMITS) -> bytes | None:
    """``/proc/PID/cmdline`` (at most ``max_domain_xml_bytes``), or None if unreadable."""
    try:
        with open(os.path.join(proc_root, str(int(pid)), "cmdline"), "rb") as f:
            return f.read(limits.max_domain_xml_bytes)
    except (OSError, ValueError):
        return None


def guest_for_pid(pid: int, *, proc_root: str = "/proc", limits: Limits = DEFAULT_LIMITS) -> str | None:
    """The ``-name`` of process ``pid`` if it is a QEMU system emulator, else None."""
    raw = read_cmdline(pid, proc_root=proc_root, limits=limits)
    if not raw:
        return None
    cmd = QemuCommandLine.from_proc_bytes(raw)
    if not is_qemu(cmd.argv):
        return None
    return cmd.name


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The account a connection is charged to.

    Attributes:
        guest: the account name (a domain name, ``pid:N``, ``uid:N``, ``tcp:ADDR``, ``unknown``).
        how: ``"socket"``, ``"cmdline"``, ``"pid"``, ``"tcp"`` or ``"unknown"``.
        pid: the peer's pid when known.
        note: a warning for the log (e.g. the QEMU on a guest socket calls itself something else).
    """

    guest: str
    how: str
    pid: int | None = None
    note: str | None = None


def identify_peer(
    sock: socket.socket,
    *,
    socket_guest: str | None = None,
    proc_root: str = "/proc",
    limits: Limits = DEFAULT_LIMITS,
) -> PeerIdentity:
    """Decide which guest a freshly accepted connection belongs to.

    Args:
        sock: the accepted socket.
        socket_guest: the domain whose per-guest socket it arrived on, if any.
        proc_root: where proc(5) is mounted (tests pass a fake tree).
        limits: bounds the command line read.

    Returns:
        the identity (never raises: unknown peers get an ``unknown``-style account).
    """
    creds = peer_credentials(sock)
    pid = creds.pid if creds else None
    if socket_guest is not None:
        note = None
        if pid is not None:
            named = guest_for_pid(pid, proc_root=proc_root, limits=limits)
            if named is not None and named != socket_guest:
                note = (
                    f"QEMU pid {pid} calls itself {display_name(named)!r} but connected to the socket of "
                    f"{display_name(socket_guest)!r}; accounted to the socket's guest"
                )
        return PeerIdentity(socket_guest, "socket", pid, note)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            host = sock.getpeername()[0]
        except OSError:
            host = "?"
        return PeerIdentity(f"tcp:{host}", "tcp")
    if creds is None:
        return PeerIdentity("unknown", "unknown")
    named = guest_for_pid(creds.pid, proc_root=proc_root, limits=limits)
    if named:
        return PeerIdentity(named, "cmdline", creds.pid)
    if read_cmdline(creds.pid, proc_root=proc_root, limits=limits) is not None:
        return PeerIdentity(f"pid:{creds.pid}", "pid", creds.pid)
    return PeerIdentity(f"uid:{creds.uid}", "pid", creds.pid)
