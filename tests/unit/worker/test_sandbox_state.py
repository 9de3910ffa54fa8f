"""The sandbox as the worker really lives in it, observed from inside and from the parent.

``test_sandbox_channel.py`` checks what the sandbox *refuses*; several layers were otherwise
checked only through the worker's log notes.  Here the worker is started exactly the way
``virtkit-pygrub`` starts it (``virtkit.cli._bootrun.open_channel``: two read-only image
descriptors, ``default_isolation``, ``spawn_worker``), with the handler table swapped for one
``facts`` handler that runs in the worker after the sandbox and reports what it sees.  While the
worker waits for its next request the parent reads ``/proc/<pid>/{status,limits,fd,ns}``, so
each layer is seen twice: from inside and from outside.

Two plans: the real one (``full``) and the same without seccomp (``no-seccomp``), so the
namespace, chroot and credential layers are each seen holding on their own and not only
because seccomp refuses the system call first.  A last test starts the worker from a non-root
parent (the user-namespace path), the only place where dropping capabilities is observable:
as root, the change of uid already clears them.

Nothing here is monkeypatched in ``src/``: ``virtkit.boot.worker.handlers.make_handlers`` (the
factory ``open_channel`` imports inside the worker) and ``_bootrun.default_isolation`` are
replaced with pytest's ``monkeypatch`` for the duration of one test.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import fcntl
import json
import os
import resource
import select
import socket
import stat
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import is_root
from virtkit.boot.worker import code_dirs
from virtkit.boot.worker.sandbox import Isolation
from virtkit.cli import _bootrun
from virtkit.cli._bootrun import BootRequest, open_channel
from virtkit.limits import Limits

pytestmark = pytest.mark.skipif(not is_root(), reason="the full sandbox (setuid, namespaces, chroot) needs root")

# Values no default has, so a layer that silently keeps the defaults fails.
LIMITS = Limits(worker_timeout=60.0, worker_cpu_seconds=123, worker_address_space=1536 << 20)

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21
PR_GET_NO_NEW_PRIVS = 39

RLIMITS = {
    "AS": resource.RLIMIT_AS, "CPU": resource.RLIMIT_CPU, "FSIZE": resource.RLIMIT_FSIZE,
    "NOFILE": resource.RLIMIT_NOFILE, "NPROC": resource.RLIMIT_NPROC, "CORE": resource.RLIMIT_CORE,
    "MEMLOCK": resource.RLIMIT_MEMLOCK, "MSGQUEUE": resource.RLIMIT_MSGQUEUE,
}
# /proc/<pid>/limits row names (fs/proc/base.c lnames[])
PROC_LIMIT_ROWS = {
    "AS": "Max address space", "CPU": "Max cpu time", "FSIZE": "Max file size", "NOFILE": "Max open files",
    "NPROC": "Max processes", "CORE": "Max core file size", "MEMLOCK": "Max locked memory",
    "MSGQUEUE": "Max msgqueue size",
}


# ----------------------------------------------------------------- runs in the worker


def _errno_of(fn: Callable[[], Any]) -> int:
    """0 when ``fn`` succeeded, else the errno it failed with."""
    try:
        fn()
    except OSError as exc:
        return exc.errno or -1
    return 0


def _try_create(path: str) -> int:
    def go() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)

    return _errno_of(go)


def _describe_fd(fd: int) -> list[Any] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    kind = ("sock" if stat.S_ISSOCK(st.st_mode) else "fifo" if stat.S_ISFIFO(st.st_mode)
            else "reg" if stat.S_ISREG(st.st_mode) else "other")
    return [kind, st.st_dev, st.st_ino, fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE]


def facts(image_fds: Sequence[int], req: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """Everything the worker can see about itself, as plain JSON."""
    libc = ctypes.CDLL(None, use_errno=True)
    fds = {str(fd): d for fd in range(int(req["probe_upto"])) if (d := _describe_fd(fd)) is not None}

    def connect() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(("127.0.0.1", int(req["port"])))
        finally:
            s.close()

    try:
        interfaces: Any = sorted(name for _i, name in socket.if_nameindex())
    except OSError as exc:
        interfaces = exc.errno
    dirs = [str(d) for d in req["code_dirs"]]
    return {
        "pid": os.getpid(),
        "resuid": list(os.getresuid()),
        "resgid": list(os.getresgid()),
        "groups": os.getgroups(),
        "no_new_privs": libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
        "dumpable": libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
        "seccomp_mode": libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0),
        "rlimits": {name: list(resource.getrlimit(res)) for name, res in RLIMITS.items()},
        "image_fds": list(image_fds),
        "fds": fds,
        "write_image": _errno_of(lambda: os.write(image_fds[0], b"x")),
        "proc_visible": os.path.exists("/proc/self/status"),
        "root_listing": sorted(os.listdir("/")),
        "package_listings": {os.path.join(d, sub): sorted(os.listdir(os.path.join(d, sub)))
                             for d in dirs for sub in ("site-packages", "dist-packages")
                             if os.path.isdir(os.path.join(d, sub))},
        "host_files": {p: os.path.exists(p) for p in ("/etc/passwd", "/etc", "/tmp", "/dev", "/proc", "/home")},
        "create": {p: _try_create(p) for p in ["/virtkit-probe", "/tmp/virtkit-probe",
                                               *(os.path.join(d, "virtkit-probe.py") for d in dirs if os.path.isdir(d))]},
        "mkdir": _errno_of(lambda: os.mkdir("/virtkit-probe-dir")),
        "interfaces": interfaces,
        "connect": _errno_of(connect),
    }, []


def fake_make_handlers(fds: Sequence[tuple[int, str]], **_kw: Any) -> Callable[[], Mapping[str, Any]]:
    """Stands in for ``virtkit.boot.worker.handlers.make_handlers`` (same call, same timing)."""
    image_fds = [fd for fd, _name in fds]

    def build() -> Mapping[str, Any]:
        return {"facts": lambda req: facts(image_fds, req)}

    return build


# ----------------------------------------------------------------- the parent side


@dataclass
class Observed:
    plan: str
    iso: Isolation
    notes: list[str]
    inside: dict[str, Any]
    pid: int
    status: str  # /proc/<pid>/status
    status_owner: int
    limits: str  # /proc/<pid>/limits
    proc_fds: dict[int, str] | None  # /proc/<pid>/fd -> readlink, None if the kernel refused
    ns: dict[str, tuple[str, str]] | None  # name -> (worker, parent)
    net_dev: str | None
    images: list[Path]
    extra_file: Path
    extra_fds: dict[str, int]
    listener: socket.socket
    pending_connection: bool


def _status_field(status: str, name: str) -> str:
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"{name} not in /proc/<pid>/status")


def _try_read(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except PermissionError:  # no CAP_SYS_PTRACE over a non-dumpable process: fall back on the inside view
        return None


@pytest.fixture(params=["full", "no-seccomp"])
def observed(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Observed]:
    plan = request.param
    images = [tmp_path / "disk0.img", tmp_path / "disk1.img"]
    for i, p in enumerate(images):
        p.write_bytes(bytes([i]) * 4096)
    extra_file = tmp_path / "host-secret"
    extra_file.write_bytes(b"not for the worker")

    # Descriptors the parent holds when it spawns: inheritable, some far above the kept ones.
    low = os.open(extra_file, os.O_RDONLY)
    high = os.dup2(low, 1500)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    lsock_high = os.dup2(listener.fileno(), 1501)
    r, w = os.pipe()
    extra_fds = {"file": low, "file_high": high, "listener": listener.fileno(), "listener_high": lsock_high,
                 "pipe_r": r, "pipe_w": w}
    for fd in extra_fds.values():
        os.set_inheritable(fd, True)

    import virtkit.boot.worker.handlers as worker_handlers

    monkeypatch.setattr(worker_handlers, "make_handlers", fake_make_handlers)
    plans: list[Isolation] = []
    real_default_isolation = _bootrun.default_isolation  # type: ignore[attr-defined]

    def recording_isolation(runas: int | None = None) -> Isolation:
        iso = real_default_isolation(runas)
        if plan == "no-seccomp":
            iso = dataclasses.replace(iso, seccomp=False)
        plans.append(iso)
        return iso

    monkeypatch.setattr(_bootrun, "default_isolation", recording_isolation)
    probe_upto = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 16)
    assert probe_upto > 1501
    ch = open_channel(BootRequest(images=[str(p) for p in images], limits=LIMITS))
    try:
        pid = ch.pid  # type: ignore[attr-defined]
        inside = ch.call({"op": "facts", "port": port, "probe_upto": probe_upto, "code_dirs": list(code_dirs())}).message
        # The worker now waits in recv() for the next request: read its /proc entries.
        proc = f"/proc/{pid}"
        status = Path(f"{proc}/status").read_text()
        owner = os.stat(f"{proc}/status").st_uid
        limits = Path(f"{proc}/limits").read_text()
        proc_fds = _try_read(lambda: {int(n): os.readlink(f"{proc}/fd/{n}") for n in os.listdir(f"{proc}/fd")})
        ns = _try_read(lambda: {n: (os.readlink(f"{proc}/ns/{n}"), os.readlink(f"/proc/self/ns/{n}"))
                                for n in ("net", "mnt", "ipc", "uts", "user", "pid")})
        net_dev = _try_read(lambda: Path(f"{proc}/net/dev").read_text())
        pending = bool(select.select([listener], [], [], 0)[0])
        assert len(plans) == 1
        yield Observed(plan, plans[0], list(ch.notes), inside, pid, status, owner, limits, proc_fds, ns, net_dev,
                       images, extra_file, extra_fds, listener, pending)
    finally:
        ch.close()
        listener.close()
        for fd in (low, high, lsock_high, r, w):
            os.close(fd)


# ----------------------------------------------------------------- the tests


def test_the_worker_is_the_process_the_parent_inspects(observed: Observed) -> None:
    assert observed.inside["pid"] == observed.pid  # no PID namespace: /proc/<pid> is the worker


def test_rlimits_are_the_ones_limits_asks_for(observed: Observed) -> None:
    got = observed.inside["rlimits"]
    kept = [int(fd) for fd in observed.inside["fds"] if int(fd) > 2]

    def capped(name: str, value: int) -> int:  # the sandbox never raises a hard limit it cannot
        hard = resource.getrlimit(RLIMITS[name])[1]
        return value if hard == resource.RLIM_INFINITY else min(value, hard)

    expected = {
        "AS": capped("AS", LIMITS.worker_address_space),
        "CPU": capped("CPU", LIMITS.worker_cpu_seconds),
        "FSIZE": 0,
        "NOFILE": capped("NOFILE", max(kept) + 8),
        "NPROC": 0, "CORE": 0, "MEMLOCK": 0, "MSGQUEUE": 0,
    }
    assert got == {name: [v, v] for name, v in expected.items()}  # soft == hard: the worker cannot raise them
    assert expected["AS"] == 1536 << 20 and expected["CPU"] == 123  # not the defaults
    # a handful above the highest kept descriptor, not the parent's limit
    assert expected["NOFILE"] <= max(kept) + 8 < resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # the same from outside
    rows = {line[:26].strip(): line[26:].split() for line in observed.limits.splitlines()[1:]}
    for name, row in PROC_LIMIT_ROWS.items():
        assert rows[row][:2] == [str(expected[name])] * 2, (row, rows[row])


def test_only_the_channel_and_the_images_are_open(observed: Observed) -> None:
    fds = {int(k): v for k, v in observed.inside["fds"].items()}
    image_fds = observed.inside["image_fds"]
    assert len(image_fds) == 2
    # 0, 1, 2: one pipe whose write end is closed (never the operator's terminal)
    assert {fds[i][0] for i in (0, 1, 2)} == {"fifo"}
    assert len({(fds[i][1], fds[i][2]) for i in (0, 1, 2)}) == 1
    # the images: read-only descriptors of exactly those files
    for fd, path in zip(image_fds, observed.images, strict=True):
        st = os.stat(path)
        assert fds[fd] == ["reg", st.st_dev, st.st_ino, os.O_RDONLY]
    assert observed.inside["write_image"] == errno.EBADF
    # and the channel: one socket; nothing else at all
    rest = sorted(set(fds) - {0, 1, 2, *image_fds})
    assert len(rest) == 1 and fds[rest[0]][0] == "sock", fds
    # none of the parent's other descriptors, by number or by identity
    for name, fd in observed.extra_fds.items():
        assert fd not in fds or fd in {0, 1, 2, *image_fds, *rest}, name
    leaked = {(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in observed.extra_fds.values()}
    assert not leaked & {(d[1], d[2]) for d in fds.values()}
    if observed.proc_fds is not None:  # the kernel's own list agrees
        assert sorted(observed.proc_fds) == sorted(fds)
        assert [observed.proc_fds[fd] for fd in image_fds] == [str(p) for p in observed.images]
        assert observed.proc_fds[rest[0]].startswith("socket:[")
        assert str(observed.extra_file) not in observed.proc_fds.values()


def test_identity_no_groups_no_capabilities(observed: Observed) -> None:
    iso = observed.iso
    assert iso.uid != 0 and iso.gid != 0
    assert observed.inside["resuid"] == [iso.uid] * 3
    assert observed.inside["resgid"] == [iso.gid] * 3
    assert observed.inside["groups"] == []
    status = observed.status
    assert _status_field(status, "Uid").split() == [str(iso.uid)] * 4  # real, effective, saved, fs
    assert _status_field(status, "Gid").split() == [str(iso.gid)] * 4
    assert _status_field(status, "Groups") == ""
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"):  # the bounding set is emptied too
        assert int(_status_field(status, cap), 16) == 0, cap
    assert "identity: uid" in "\n".join(observed.notes)


def test_no_new_privs_not_dumpable(observed: Observed) -> None:
    assert observed.inside["no_new_privs"] == 1
    assert _status_field(observed.status, "NoNewPrivs") == "1"
    assert observed.inside["dumpable"] == 0
    # a non-dumpable process's /proc entries belong to root, not to its own (non-root) uid
    assert observed.status_owner == 0 != observed.iso.uid


def test_seccomp_filter_mode(observed: Observed) -> None:
    notes = "\n".join(observed.notes)
    if observed.plan == "full":
        assert "seccomp: deny-list filter installed" in notes, notes
        assert observed.inside["seccomp_mode"] == 2  # SECCOMP_MODE_FILTER
        assert _status_field(observed.status, "Seccomp") == "2"
        assert int(_status_field(observed.status, "Seccomp_filters")) >= 1
    else:
        assert "seccomp: not requested" in notes
        assert observed.inside["seccomp_mode"] == 0
        assert _status_field(observed.status, "Seccomp") == "0"


def test_no_network(observed: Observed) -> None:
    inside = observed.inside
    if observed.plan == "no-seccomp":
        # the namespace alone: socket() works, but the only interface is a loopback that is down
        assert inside["interfaces"] == ["lo"]
        assert inside["connect"] in (errno.ENETUNREACH, errno.ECONNREFUSED), errno.errorcode.get(inside["connect"])
    else:
        assert inside["connect"] == errno.EPERM  # seccomp refuses socket() itself
    assert not observed.pending_connection  # nothing reached the parent's listener
    if observed.ns is not None:
        for name in ("net", "mnt", "ipc", "uts"):
            worker, parent = observed.ns[name]
            assert worker != parent, name
    if observed.net_dev is not None:  # /proc/<pid>/net is the worker's namespace
        names = [line.split(":")[0].strip() for line in observed.net_dev.splitlines()[2:]]
        assert names == ["lo"]


def test_root_is_the_read_only_jail(observed: Observed) -> None:
    inside = observed.inside
    allowed = {d.strip("/").split("/")[0] for d in code_dirs()}
    assert set(inside["root_listing"]) <= allowed, inside["root_listing"]
    # an installed site-packages inside a bound directory shows only the packages virtkit needs
    for pkgdir, names in inside["package_listings"].items():
        wanted = {os.path.relpath(q, pkgdir).split("/")[0] for q in code_dirs() if q.startswith(pkgdir + "/")}
        assert set(names) == wanted, (pkgdir, names)
    assert os.path.exists("/etc/passwd")  # the host has it; the worker must not
    # a host path may appear only as a directory on the way to bound code (a checkout under /tmp)
    ancestors = {str(a) for d in code_dirs() for a in Path(d).parents}
    assert not {q: v for q, v in inside["host_files"].items() if v and q not in ancestors}, inside["host_files"]
    assert inside["proc_visible"] is False
    # writing anywhere fails: EPERM from seccomp, and without it the read-only mounts / the uid
    for path, err in inside["create"].items():
        assert err != 0, f"the worker created {path}"
        if observed.plan == "no-seccomp":
            assert err in (errno.EROFS, errno.EACCES, errno.ENOENT), (path, errno.errorcode.get(err))
    assert inside["create"]["/virtkit-probe"] in ((errno.EPERM,) if observed.plan == "full" else (errno.EROFS,))
    assert inside["mkdir"] != 0
    assert "chroot: a read-only root" in "\n".join(observed.notes)


# ----------------------------------------------------------------- an unprivileged parent


def _as_nobody(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in a forked child of this test that first drops to uid/gid 65534: a non-root user
    running ``virtkit-pygrub`` itself.  Returns what ``fn`` returned (JSON over a pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            # Changing uid cleared "dumpable", so /proc/self/uid_map would belong to root; a user who
            # starts virtkit-pygrub gets a dumpable process from execve(): restore that state.
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            out = fn()
            code = 0
        except BaseException as exc:
            out = {"error": "".join(traceback.format_exception(exc))}
        finally:
            os.write(w, json.dumps(out).encode())
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(b"".join(chunks))
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


def _spawn_unprivileged() -> dict[str, Any]:
    from virtkit.boot.worker import default_isolation, spawn_worker

    def quick(_req: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        return {"resuid": list(os.getresuid())}, []

    # what open_channel does for a non-root caller: default_isolation(os.geteuid())
    ch = spawn_worker(lambda: {"quick": quick}, keep_fds=[], limits=LIMITS, isolation=default_isolation(os.geteuid()))
    try:
        inside = ch.call({"op": "quick"}).message
        pid = ch.pid  # type: ignore[attr-defined]
        status = Path(f"/proc/{pid}/status").read_text()
        # /proc/<pid>/ns needs ptrace rights over a non-dumpable process; these files do not
        uid_map = Path(f"/proc/{pid}/uid_map").read_text()
        net_dev = _try_read(lambda: Path(f"/proc/{pid}/net/dev").read_text())
    finally:
        ch.close()
    return {"notes": ch.notes, "inside": inside, "status": status, "uid_map": uid_map, "net_dev": net_dev}


def test_unprivileged_parent_worker_holds_no_capabilities_in_its_user_namespace() -> None:
    """Without root the worker gets a user namespace, where it starts with *every* capability:
    only the capability drop takes them away (as root, changing uid already clears them)."""
    # Import everything while still root: the interpreter's own files may be unreadable for uid 65534
    # (a per-user Python under /root), which has nothing to do with the sandbox.
    from virtkit.boot.worker import preload_modules

    code_dirs()  # warms sysconfig's caches
    preload_modules()
    got = _as_nobody(_spawn_unprivileged)
    notes = "\n".join(got["notes"])
    if "namespaces: new user" not in notes:
        pytest.skip(f"no user namespaces for an unprivileged user here: {notes}")
    status = got["status"]
    assert got["inside"]["resuid"] == [65534] * 3
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(_status_field(status, cap), 16) == 0, (cap, status)
    assert _status_field(status, "NoNewPrivs") == "1"
    assert _status_field(status, "Seccomp") == "2"
    assert got["uid_map"].split() == ["65534", "65534", "1"], got["notes"]  # a user namespace mapping only itself
    if got["net_dev"] is not None:
        assert [line.split(":")[0].strip() for line in got["net_dev"].splitlines()[2:]] == ["lo"]
