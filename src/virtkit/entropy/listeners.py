"""Listening addresses and sockets of the entropy service.

References:
    unix(7) (``sun_path`` is at most 108 bytes; a stale socket file refuses connections).
    entropy.md §5 F9 / §6: TCP listeners bind loopback by default; a wildcard
        address is refused unless the operator says so explicitly (EGD has no
        authentication).

Address syntax (``--listen``, ``--metrics``)::

    unix:/run/virtkit/entropy/egd.sock
    tcp:PORT                 loopback (127.0.0.1)
    tcp:HOST:PORT            a specific address; 0.0.0.0 / :: need allow_any_address
    tcp:[::1]:PORT
"""

from __future__ import annotations

import contextlib
import errno
import grp
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass

from virtkit.entropy.identity import check_guest_name
from virtkit.errors import ServiceError, UsageError

__all__ = [
    "Address",
    "bind_listener",
    "describe_socket",
    "guest_socket_path",
    "parse_address",
    "resolve_group",
]

SUN_PATH_MAX = 107  # 108 bytes including the terminating NUL (unix(7))
BACKLOG = 128


@dataclass(frozen=True)
class Address:
    """A parsed listen address."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_address(text: str, *, allow_any_address: bool = False) -> Address:
    """Parse ``unix:PATH`` / ``tcp:[HOST:]PORT``.

    Raises:
        UsageError: malformed, a relative or too long unix path, a bad port, or
            a wildcard TCP address without ``allow_any_address``.
    """
    kind, sep, rest = text.partition(":")
    if kind == "unix" and sep:
        if not rest.startswith("/"):
            raise UsageError(f"listen address {text!r}: the unix socket path must be absolute")
        if len(os.fsencode(rest)) > SUN_PATH_MAX:
            raise UsageError(f"listen address {text!r}: unix socket paths are limited to {SUN_PATH_MAX} bytes")
        return Address("unix", path=rest)
    if kind == "tcp" and sep:
        host, _, port_s = rest.rpartition(":")
        host = host.strip("[]") if host else "127.0.0.1"
        try:
            port = int(port_s)
        except ValueError:
            raise UsageError(f"listen address {text!r}: bad port {port_s!r}") from None
        if not 0 <= port <= 65535:
            raise UsageError(f"listen address {text!r}: port out of range")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"listen address {text!r}: give a numeric IP address, not {host!r}") from None
        if ip.is_unspecified and not allow_any_address:
            raise UsageError(
                f"listen address {text!r}: EGD has no authentication; refusing to listen on every address "
                "(give a loopback or host-only bridge address, or pass --allow-any-address)"
            )
        return Address("tcp", host=str(ip), port=port)
    raise UsageError(f"listen address {text!r}: want unix:/path, tcp:PORT or tcp:HOST:PORT")


def resolve_group(group: str | None) -> int | None:
    """A group name or number -> gid (None stays None).

    Raises:
        UsageError: no such group.
    """
    if group is None or group == "":
        return None
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UsageError(f"--socket-group {group!r}: no such group") from None


def guest_socket_path(directory: str, guest: str) -> str:
    """``DIRECTORY/NAME.sock`` for a per-guest socket.

    Raises:
        UsageError: a bad guest name, or the path would not fit in sun_path.
    """
    check_guest_name(guest)
    path = os.path.join(directory, guest + ".sock")
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise UsageError(f"per-guest socket path {path!r} is over {SUN_PATH_MAX} bytes; use a shorter --guest-dir")
    return path


def _remove_stale_unix_socket(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServiceError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            os.unlink(path)  # stale: nobody is listening
            return
        raise ServiceError(f"{path}: cannot check whether another service uses it: {exc.strerror}") from None
    finally:
        probe.close()
    raise ServiceError(f"{path} is in use by another running service (hand over to this one with --take-over)")


def bind_listener(address: Address, *, mode: int = 0o660, gid: int | None = None) -> socket.socket:
    """Create, bind and listen; the socket is non-blocking and close-on-exec.

    Unix sockets get ``mode`` and group ``gid``; a stale socket file left by a
    dead service is replaced, a live one is an error.

    Raises:
        ServiceError: the address is in use or cannot be bound.
    """
    if address.kind == "unix":
        parent = os.path.dirname(address.path)
        with contextlib.suppress(FileExistsError):
            os.makedirs(parent, mode=0o755)
        _remove_stale_unix_socket(address.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)  # never world-accessible, even for a moment
            try:
                sock.bind(address.path)
            finally:
                os.umask(old_umask)
            os.chmod(address.path, mode)
            if gid is not None:
                os.chown(address.path, -1, gid)
        except OSError as exc:
            sock.close()
            raise ServiceError(f"cannot listen on {address}: {exc.strerror}") from None
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address.host, address.port))
        except OSError as exc:
            sock.close()
            raise ServiceError(f"cannot listen on {address}: {exc.strerror}") from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def describe_socket(sock: socket.socket) -> str:
    """``unix:PATH`` or ``tcp:HOST:PORT`` for a bound socket (inherited ones included)."""
    try:
        name = sock.getsockname()
    except OSError:
        return "unknown"
    if sock.family == socket.AF_UNIX:
        if isinstance(name, bytes):
            return "unix:@" + name.lstrip(b"\0").decode("utf-8", "replace")
        return f"unix:{name}"
    host, port = name[0], name[1]
    return str(Address("tcp", host=host, port=port))
