"""Zero-downtime hand-over: a new service process takes over every socket and every owed byte.

References:
    entropy.md §3.8: QEMU never re-sends a request lost with a connection, and
        the guest's ``/dev/hwrng`` reader then hangs until the device is reset.
        So a restart must keep the *accepted* connections, not only the listeners.
    unix(7) ``SCM_RIGHTS`` (at most SCM_MAX_FD = 253 descriptors per message).
    sd_listen_fds(3) (``LISTEN_PID``, ``LISTEN_FDS``, ``LISTEN_FDNAMES``; the
        first descriptor is 3), sd_notify(3) (``READY=1``, ``STATUS=``,
        ``FDSTORE=1`` + ``FDNAME=`` with the descriptor as SCM_RIGHTS,
        ``FDSTOREREMOVE=1``, ``MAINPID=``, ``STOPPING=1``), systemd.service(5)
        ``FileDescriptorStoreMax=``.

Two ways, one state format (:func:`export_state` / :func:`adopt_state`):

*Explicit* (any supervisor): the running service listens on a control socket.
A successor started with ``--take-over CONTROL`` connects and sends
``{"op": "handover"}``.  The old process stops accepting, reading and
serving, lets unsent output drain briefly, and sends one JSON header line,
the state (listeners, connections with their owed requests, unparsed request
bytes, unsent reply bytes, arrival times, per-guest counters, token buckets)
and the descriptors in batches.  The successor adopts them, starts serving,
and answers ``{"op": "adopted"}``; only then does the old process close its
copies (closing one copy of a shared socket does not shut it down) and exit.
If the successor fails or goes silent, the old process resumes serving.

*systemd* (``Type=notify``, ``FileDescriptorStoreMax=``): each accepted
connection (and each socket the service creates itself) is put in the unit's
file descriptor store as it appears (``FDNAME=vk-conn-N``); on SIGTERM the
service quiesces and stores its state as a sealed memfd named ``vk-state``.
The restarted service receives everything through ``LISTEN_FDS`` and
continues.  After a crash the connections still come back from the store,
but requests read and not yet answered by the dead process are unknown - the
one window this cannot close (it is microseconds long unless a rate limit
holds replies back).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from virtkit.entropy.identity import PeerIdentity, identify_peer
from virtkit.entropy.listeners import describe_socket
from virtkit.entropy.protocol import ConnectionSnapshot, EgdServerConnection
from virtkit.errors import LocalProtocolError, ServiceError
from virtkit.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from virtkit.entropy.server import EntropyService

__all__ = [
    "FDS_PER_MESSAGE",
    "STATE_FDNAME",
    "SystemdNotifier",
    "adopt_state",
    "export_state",
    "listen_fds",
    "read_state_fd",
    "recv_handover",
    "release",
    "send_handover",
    "state_from_fdstore",
    "take_over",
    "write_state_memfd",
]

FDS_PER_MESSAGE = 200  # below SCM_MAX_FD (253)
STATE_FDNAME = "vk-state"
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3)
STATE_VERSION = 1
HANDOVER_TIMEOUT = 15.0


# -- the state ---------------------------------------------------------------------------------------


def export_state(service: EntropyService) -> tuple[dict[str, Any], list[int]]:
    """Everything a successor needs; call after ``service.quiesce()``.

    Returns:
        a JSON-able state and the descriptors it refers to: each listener and
        connection record has ``fd`` (an index into the list) and ``name``.
    """
    assert service.loop is not None
    fds: list[int] = []
    listeners = []
    for lst in service.listeners.values():
        listeners.append({"name": lst.name, "role": lst.role, "guest": lst.guest, "path": lst.path,
                          "address": lst.address, "fd": len(fds)})
        fds.append(lst.sock.fileno())
    conns = []
    for conn in service.conns.values():
        conns.append({
            "id": conn.id, "name": conn.name, "guest": conn.guest, "how": conn.identity.how,
            "pid": conn.identity.pid, "listener": conn.listener, "core": conn.core.snapshot().to_json(),
            "out": conn.out.hex(), "clock": conn.clock.export(), "fd": len(fds),
        })
        fds.append(conn.fd)
    from virtkit.entropy._conn import stats_to_json

    state = {
        "version": STATE_VERSION,
        "pid": os.getpid(),
        "exported_at": time.time(),
        "listeners": listeners,
        "connections": conns,
        "stats": {g: stats_to_json(s) for g, s in service.stats.items()},
        "counters": dict(service.counters),
        "buckets": service.sched.export_buckets(service.loop.time()),
        "started_at": service.started_at,
    }
    return state, fds


def adopt_state(service: EntropyService, state: Mapping[str, Any], fds: list[int]) -> list[str]:
    """Load a predecessor's state into a service that has not started yet.

    Args:
        service: the new service (before ``start()``).
        state: :func:`export_state` output (``fd`` indexes refer to ``fds``).
        fds: the received descriptors; each is owned by the service afterwards.

    Returns:
        warnings (records skipped because their descriptor is missing).

    Raises:
        ServiceError: not a version-1 state, or a malformed one.
    """
    from virtkit.entropy._conn import stats_from_json

    if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
        raise ServiceError(f"hand-over state is not a virtkit entropy state (version {STATE_VERSION})")
    warnings: list[str] = []
    used: set[int] = set()
    try:
        for gname, sj in state.get("stats", {}).items():
            service.stats[str(gname)] = stats_from_json(sj)
        for k, v in state.get("counters", {}).items():
            if k in service.counters:
                service.counters[k] = int(v)
        service.started_at = float(state.get("started_at", service.started_at))
        service.sched.import_buckets(state.get("buckets", {}), time.monotonic())
        for lj in state.get("listeners", []):
            idx = lj.get("fd")
            if idx is None or not 0 <= int(idx) < len(fds):
                warnings.append(f"listener {lj.get('name')} ({lj.get('address')}): descriptor missing")
                continue
            used.add(int(idx))
            sock = socket.socket(fileno=fds[int(idx)])
            service.add_listener(sock, str(lj["role"]), guest=lj.get("guest"), path=lj.get("path"),
                                 name=str(lj["name"]))
        for cj in state.get("connections", []):
            idx = cj.get("fd")
            if idx is None or not 0 <= int(idx) < len(fds):
                warnings.append(f"connection {cj.get('id')} of guest {cj.get('guest')!r}: descriptor missing")
                continue
            used.add(int(idx))
            sock = socket.socket(fileno=fds[int(idx)])
            sock.setblocking(False)
            core = EgdServerConnection(limits=service.limits, snapshot=ConnectionSnapshot.from_json(cj["core"]))
            identity = PeerIdentity(str(cj["guest"]), str(cj.get("how", "adopted")), cj.get("pid"))
            conn = service.register_connection(sock, identity, str(cj["listener"]), core, cid=int(cj["id"]))
            conn.out += bytes.fromhex(cj.get("out", ""))
            conn.clock.restore(cj.get("clock", []), core.owed_requests)
            service.counters["adopted"] += 1
    except (KeyError, TypeError, ValueError, OSError, LocalProtocolError) as exc:
        raise ServiceError(f"hand-over state is malformed: {exc!r}") from None
    for i, fd in enumerate(fds):  # descriptors the state does not mention
        if i not in used:
            with contextlib.suppress(OSError):
                os.close(fd)
    service.counters["handovers_in"] += 1
    for st in service.stats.values():
        st.connections_open = 0
    for conn in service.conns.values():
        conn.stats.connections_open += 1
    return warnings


def release(service: EntropyService) -> None:
    """After a successful hand-over: close our descriptors, shut nothing down, unlink nothing."""
    loop = service.loop
    for conn in service.conns.values():
        if loop is not None and conn.reading:
            loop.remove_reader(conn.fd)
        if loop is not None and conn.writing:
            loop.remove_writer(conn.fd)
        conn.sock.close()  # the successor holds its own descriptor for the same socket
    service.conns.clear()
    for lst in service.listeners.values():
        if loop is not None:
            loop.remove_reader(lst.sock.fileno())
        lst.sock.close()
    service.listeners.clear()


# -- the wire (explicit hand-over over the control socket) -------------------------------------------


def _send_all_blocking(sock: socket.socket, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        n = sock.send(view)
        view = view[n:]


def send_handover(sock: socket.socket, state: Mapping[str, Any], fds: list[int], *,
                  timeout: float = HANDOVER_TIMEOUT) -> None:
    """Old side: send the header line, the state and the descriptors (blocking, bounded by ``timeout``).

    Raises:
        OSError: the successor went away.
    """
    body = json.dumps(state, separators=(",", ":")).encode()
    header = json.dumps({"ok": True, "state_bytes": len(body), "fds": len(fds)}).encode() + b"\n"
    deadline = time.monotonic() + timeout
    _send_all_blocking(sock, header + body, deadline)
    for i in range(0, len(fds), FDS_PER_MESSAGE):
        batch = fds[i : i + FDS_PER_MESSAGE]
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", batch))])


def _recv_line(sock: socket.socket, limit: int) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise ServiceError("the running service closed the control connection")
        buf += b
        if len(buf) > limit:
            raise ServiceError("control reply line too long")
    return bytes(buf)


def recv_handover(sock: socket.socket, *, limits: Limits = DEFAULT_LIMITS) -> tuple[dict[str, Any], list[int]]:
    """New side: read the header, the state and the descriptors.

    Raises:
        ServiceError: the old side refused, sent something malformed, or the
            state is over ``max_handover_state_bytes``.
    """
    header_raw = _recv_line(sock, 64 * 1024)
    try:
        header = json.loads(header_raw)
    except ValueError:
        raise ServiceError(f"control socket: bad hand-over header {header_raw[:80]!r}") from None
    if not isinstance(header, dict) or not header.get("ok"):
        raise ServiceError(f"the running service refused the hand-over: {header.get('error') if isinstance(header, dict) else header}")
    size = int(header.get("state_bytes", -1))
    nfds = int(header.get("fds", -1))
    if not 0 <= size <= limits.max_handover_state_bytes:
        raise ServiceError(f"hand-over state of {size} bytes (max_handover_state_bytes is {limits.max_handover_state_bytes})")
    if not 0 <= nfds <= 4 * limits.max_egd_connections + 1024:
        raise ServiceError(f"hand-over announces {nfds} descriptors")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(65536, size - len(body)))
        if not chunk:
            raise ServiceError("the running service closed the control connection mid-state")
        body += chunk
    fds: list[int] = []
    try:
        while len(fds) < nfds:
            _data, got, _flags, _addr = socket.recv_fds(sock, 1, FDS_PER_MESSAGE)
            if not got and not _data:
                raise ServiceError(f"control connection closed after {len(fds)} of {nfds} descriptors")
            fds.extend(got)
        state = json.loads(body)
    except (ValueError, OSError) as exc:
        for fd in fds:
            os.close(fd)
        raise ServiceError(f"hand-over failed while receiving: {exc}") from None
    return state, fds


def take_over(control: str, *, timeout: float = HANDOVER_TIMEOUT,
              limits: Limits = DEFAULT_LIMITS) -> tuple[socket.socket, dict[str, Any], list[int]]:
    """Ask the service on ``control`` to hand everything over.

    Returns:
        the control connection (answer it with ``{"op": "adopted"}`` once
        serving, or close it to make the old process resume), the state and the descriptors.

    Raises:
        ServiceError: nobody is listening there, or the hand-over failed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(control)
        sock.sendall(json.dumps({"op": "handover", "pid": os.getpid()}).encode() + b"\n")
        state, fds = recv_handover(sock, limits=limits)
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot take over from {control}: {exc.strerror or exc}") from None
    except ServiceError:
        sock.close()
        raise
    return sock, state, fds


# -- systemd -----------------------------------------------------------------------------------------


def listen_fds(environ: dict[str, str] | None = None, *, unset: bool = True) -> list[tuple[int, str]]:
    """Descriptors passed by systemd (socket units and the fd store), with their names.

    Returns ``[]`` when ``LISTEN_PID`` is not this process.
    """
    env = os.environ if environ is None else environ
    try:
        if int(env.get("LISTEN_PID", "0")) != os.getpid():
            return []
        n = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
    out = []
    for i in range(max(0, n)):
        fd = SD_LISTEN_FDS_START + i
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, False)
        out.append((fd, names[i] if i < len(names) else "unknown"))
    if unset:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
    return out


class SystemdNotifier:
    """sd_notify(3) without libsystemd: datagrams to ``$NOTIFY_SOCKET``, descriptors as SCM_RIGHTS."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        self.enabled = bool(addr)

    def send(self, message: str, fds: list[int] | None = None) -> bool:
        """Send one notification; returns False (and never raises) if it could not be sent."""
        if not self.enabled:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
                s.sendmsg([message.encode()], anc, 0, self.address)
            return True
        except OSError:
            return False

    def store(self, fd: int, name: str) -> bool:
        return self.send(f"FDSTORE=1\nFDNAME={name}", [fd])

    def remove(self, name: str) -> bool:
        return self.send(f"FDSTOREREMOVE=1\nFDNAME={name}")


def write_state_memfd(state: Mapping[str, Any]) -> int:
    """The state as a sealed memfd (what goes into the fd store as ``vk-state``)."""
    data = json.dumps(state, separators=(",", ":")).encode()
    fd = os.memfd_create("virtkit-entropy-state", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    import fcntl

    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    return fd


def read_state_fd(fd: int, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Read a ``vk-state`` memfd from the start.

    Raises:
        ServiceError: too large or not JSON.
    """
    chunks = []
    total = 0
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        total += len(chunk)
        if total > limits.max_handover_state_bytes:
            raise ServiceError(f"stored state is over max_handover_state_bytes ({limits.max_handover_state_bytes})")
    try:
        state = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise ServiceError(f"stored state is not JSON: {exc}") from None
    if not isinstance(state, dict):
        raise ServiceError("stored state is not a JSON object")
    return state


def _is_listening(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def state_from_fdstore(
    named: list[tuple[int, str]], *, guest_dir: str | None, roles: Mapping[str, str] | None = None,
    proc_root: str = "/proc", limits: Limits = DEFAULT_LIMITS,
) -> tuple[dict[str, Any], list[int], list[str]]:
    """Turn systemd's descriptors into an :func:`adopt_state` input.

    * ``vk-state`` (a memfd) supplies the saved state; records refer to the
      other descriptors by name;
    * descriptors the state does not describe are classified: listening
      sockets are EGD listeners (``FileDescriptorName=guest-NAME`` marks a
      per-guest one; ``metrics``/``control`` set the role); connected ones are
      adopted as fresh connections (nothing known to be owed) and identified
      again through SO_PEERCRED.

    Args:
        roles: address (``unix:/run/.../metrics.sock``) -> role, from the
            configuration, for listeners that come back without a saved state.

    Returns:
        state, descriptors, notes for the log.
    """
    notes: list[str] = []
    by_name: dict[str, int] = {}
    extra: list[tuple[int, str]] = []
    state: dict[str, Any] = {"version": STATE_VERSION, "listeners": [], "connections": []}
    for fd, name in named:
        if name == STATE_FDNAME:
            try:
                state = read_state_fd(fd, limits=limits)
            except ServiceError as exc:
                notes.append(f"ignoring the stored state: {exc}")
            os.close(fd)
        elif name.startswith("vk-") and name not in by_name:
            by_name[name] = fd
        else:
            extra.append((fd, name))
    fds: list[int] = []
    listeners = []
    known: set[str] = set()
    for lj in state.get("listeners", []):
        lfd = by_name.get(str(lj.get("name")))
        if lfd is None:
            continue
        known.add(str(lj["name"]))
        listeners.append({**lj, "fd": len(fds)})
        fds.append(lfd)
    conns = []
    for cj in state.get("connections", []):
        cfd = by_name.get(str(cj.get("name", f"vk-conn-{cj.get('id')}")))
        if cfd is None:
            notes.append(f"connection {cj.get('id')} of guest {cj.get('guest')!r} was not in the fd store")
            continue
        known.add(str(cj.get("name", f"vk-conn-{cj.get('id')}")))
        conns.append({**cj, "fd": len(fds)})
        fds.append(cfd)
    for name, fd in by_name.items():
        if name not in known:
            extra.append((fd, name))
    next_id = 1 + max([int(c["id"]) for c in conns] + [0])
    for fd, name in extra:
        sock = socket.socket(fileno=fd)
        if _is_listening(sock):
            role, guest = "egd", None
            sock_path = describe_socket(sock)
            if name in ("metrics", "control"):
                role = name
            elif name.startswith("guest-"):
                guest = name[len("guest-"):]
            elif roles and sock_path in roles:
                role = roles[sock_path]
            if guest is None and guest_dir and sock_path.startswith(f"unix:{guest_dir.rstrip('/')}/") \
                    and sock_path.endswith(".sock"):
                guest = sock_path.rsplit("/", 1)[-1][: -len(".sock")]
            listeners.append({"name": name if name.startswith("vk-") else f"sd-{name}-{fd}", "role": role,
                              "guest": guest, "path": None, "address": sock_path, "fd": len(fds)})
        else:
            ident = identify_peer(sock, proc_root=proc_root, limits=limits)
            cid = int(name.rsplit("-", 1)[-1]) if name.startswith("vk-conn-") and name[8:].isdigit() else next_id
            next_id = max(next_id, cid + 1)
            conns.append({"id": cid, "name": f"vk-conn-{cid}", "guest": ident.guest, "how": ident.how,
                          "pid": ident.pid, "listener": "unknown",
                          "core": {"buffer": "", "owed": [], "peer_closed": False}, "out": "", "clock": [],
                          "fd": len(fds)})
            notes.append(f"connection {name} came back without saved state (after a crash?): "
                         "requests its old process had read but not answered are lost")
        sock.detach()
        fds.append(fd)
    state = {**state, "listeners": listeners, "connections": conns, "version": STATE_VERSION}
    return state, fds, notes


async def wait_readable_line(sock: socket.socket, timeout: float, limit: int = 64 * 1024) -> bytes:
    """Read one line from a non-blocking socket on the running loop (control requests)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    deadline = loop.time() + timeout
    while b"\n" not in buf:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), remaining)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ServiceError("control request too long")
    return bytes(buf.split(b"\n", 1)[0])
