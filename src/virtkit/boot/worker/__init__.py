"""The deprivileged parsing worker: spawn it, talk to it, trust nothing it says.

The privileged parent opens the guest images read-only and forks a worker
that receives only those descriptors and one end of a socketpair.  The worker
sandboxes itself (:mod:`.sandbox`) *before* it reads a byte of guest data,
then answers requests (:mod:`.channel`).  The parent validates every reply
(:mod:`.codec`) and writes every output file itself: no path chosen by the
guest or the worker ever becomes a host path.

Usage::

    with spawn_worker(make_handlers, keep_fds=[fd], limits=limits, isolation=plan) as ch:
        reply = ch.call({"op": "menu"})
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence

from virtkit.boot.worker.channel import Channel, Handler, LocalChannel, SocketChannel, serve
from virtkit.boot.worker.protocol import encode_json
from virtkit.boot.worker.sandbox import Isolation, enter_sandbox, pick_worker_uid
from virtkit.limits import Limits

__all__ = ["Channel", "Isolation", "default_isolation", "preload_modules", "spawn_worker", "sweep_stale_jails"]

EXIT_SETUP_FAILED = 71

# Encodings and stdlib modules a parser may need lazily; after chroot nothing can be imported.
_PRELOAD_STDLIB = (
    "encodings.utf_8", "encodings.utf_16", "encodings.utf_16_le", "encodings.utf_16_be",
    "encodings.latin_1", "encodings.ascii", "encodings.cp437", "encodings.cp850", "encodings.cp1252",
    "encodings.unicode_escape", "zlib", "lzma", "bz2", "json", "hashlib",
    "unicodedata", "fnmatch", "re", "bisect", "functools", "struct", "binascii", "traceback",
    "linecache", "tokenize", "fractions", "decimal",
)
_OPTIONAL = ("compression.zstd", "backports.zstd", "lzo")
_preloaded = False


def preload_modules() -> None:
    """Import everything the worker could import lazily, before the chroot hides the disk."""
    global _preloaded
    if _preloaded:
        return
    for name in _PRELOAD_STDLIB:
        importlib.import_module(name)
    for name in _OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import virtkit.boot

    skip = ("virtkit.boot.worker.", "virtkit.boot.menu.tui")
    for info in pkgutil.walk_packages(virtkit.boot.__path__, "virtkit.boot."):
        if not info.name.startswith(skip):
            importlib.import_module(info.name)
    _preloaded = True


def code_dirs() -> tuple[str, ...]:
    """Paths the worker may import from inside its jail: the standard library (and its
    extension modules), virtkit's package and the optional decompressors (a package directory,
    or the file of a single-file extension module).  Nothing else: an installed
    ``site-packages``/``dist-packages`` inside the standard library's directory is masked in
    the jail (see ``sandbox._bind_code``) and only these paths are bound back into it."""
    import sysconfig
    from importlib.util import find_spec

    import virtkit

    dirs = {os.path.dirname(os.__file__), os.path.dirname(virtkit.__file__)}
    dynload = os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload")
    if os.path.isdir(dynload):
        dirs.add(dynload)
    for name in ("backports", "lzo"):
        try:
            spec = find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            for loc in spec.submodule_search_locations or ([spec.origin] if spec.origin else []):
                dirs.add(loc)  # a package directory, or a single-file module (lzo's .so) itself
    return tuple(sorted(d for d in dirs if os.path.exists(d)))


_JAIL_PREFIX = "virtkit-jail-"
_LEGACY_JAIL_AGE = 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_jails(tmpdir: str | None = None) -> list[str]:
    """Remove empty jail directories whose parent process died without cleaning up (SIGKILL).

    A jail is ``virtkit-jail-<parent pid>-XXXXXXXX``: it is stale when that pid is gone.
    Names from before the pid was recorded (``virtkit-jail-XXXXXXXX``) are stale after an
    hour.  Only empty directories owned by this uid are removed (``rmdir``, never a tree).
    """
    base = tmpdir or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(base) if n.startswith(_JAIL_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for name in names[:1000]:
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        pid_text, dash, _rest = name[len(_JAIL_PREFIX):].partition("-")
        if dash and pid_text.isdigit():
            pid = int(pid_text)
            if pid == os.getpid() or _pid_alive(pid):
                continue
        elif now - st.st_mtime < _LEGACY_JAIL_AGE:
            continue
        try:
            os.rmdir(path)
            removed.append(path)
        except OSError:
            pass  # not empty, or in use: leave it
    return removed


def default_isolation(runas: int | None = None) -> Isolation:
    """The isolation plan: ``runas`` uid (or a per-worker uid), its own gid, a fresh jail dir."""
    uid = runas if runas is not None else pick_worker_uid()
    sweep_stale_jails()
    jail = tempfile.mkdtemp(prefix=f"{_JAIL_PREFIX}{os.getpid()}-")
    os.chmod(jail, 0o555)  # noqa: S103 - an empty, read-only chroot must be traversable by the worker uid
    return Isolation(uid=uid, gid=uid, jail=jail, code_dirs=code_dirs())


def spawn_worker(
    make_handlers: Callable[[], Mapping[str, Handler]],
    *,
    keep_fds: Sequence[int],
    limits: Limits,
    isolation: Isolation | None,
    in_process: bool = False,
) -> Channel:
    """Start a worker and return the parent's channel to it.

    Args:
        make_handlers: called in the worker *after* sandboxing; opens the guest from the
            kept descriptors and returns the request handlers.
        keep_fds: read-only image descriptors the worker may use.
        limits: bounds (rlimits, the wall-clock budget).
        isolation: the sandbox plan, or None for an unsandboxed worker process.
        in_process: no worker process at all (``--no-isolate``): handlers run here.

    Raises:
        WorkerError: the worker failed to start.
    """
    if in_process:
        return LocalChannel(make_handlers(), ["isolation: off (--no-isolate): parsing runs in this process"])
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (covered by subprocess-level tests)
        code = EXIT_SETUP_FAILED
        try:
            parent_sock.close()
            if isolation is not None:
                notes = enter_sandbox(isolation, limits=limits, keep_fds=[child_sock.fileno(), *keep_fds],
                                      preload=preload_modules)
            else:
                notes = ["isolation: off (worker process without a sandbox)"]
            handlers = make_handlers()
            code = serve(child_sock, handlers, {"notes": notes})
        except BaseException as exc:
            from virtkit.boot.worker.channel import _error_payload

            try:
                child_sock.sendall(encode_json({"op": "hello", "notes": [], "error": _error_payload(exc)}))
            except BaseException:  # noqa: S110 - the parent reports the exit status instead
                pass
        finally:
            os._exit(code)
    child_sock.close()
    jail = isolation.jail if isolation is not None else None

    def cleanup() -> None:
        if jail:
            shutil.rmtree(jail, ignore_errors=True)

    try:
        return SocketChannel(parent_sock, pid, budget=limits.worker_timeout, on_exit=cleanup)
    except BaseException:
        parent_sock.close()
        cleanup()
        raise
