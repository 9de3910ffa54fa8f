"""Dropping everything before the worker reads a byte of guest data.

Called in the forked worker, before any guest byte is read.  Layers, each of
which stops something different (docs/security.md has the full table):

1. **closed descriptors** - only the read-only image descriptors and the
   channel to the parent survive: no host file, terminal or socket leaks in;
2. **namespaces** - new mount, network, IPC and UTS namespaces (as root), or a
   user namespace carrying them (not root): no network at all, and mounts made
   here never reach the host;
3. **an empty chroot** - a read-only, empty tmpfs: no host file can be opened
   by path (the worker needs none; every module was imported beforehand);
4. **credentials** - an unprivileged uid/gid with no supplementary groups
   (``--runas`` or a per-worker uid from a range no account uses, so two
   workers cannot signal each other); all capabilities dropped;
5. **no_new_privs** and non-dumpable: no setuid binary can regain privileges,
   nothing can ptrace the worker;
6. **rlimits** - address space, CPU seconds, file size 0, open files, no
   processes, no core dumps;
7. **seccomp** - a small deny-list filter (x86_64, aarch64): no exec, no new
   sockets, no mounts/namespaces/modules/bpf/ptrace/keyring/io_uring, no
   opening files for writing, no filesystem changes.  Built with ctypes, no
   dependency; libseccomp's Python binding is not packaged for pip.

Every step that the kernel refuses (a container without user namespaces, a
non-root user) is skipped and *reported*: :func:`enter_sandbox` returns the
notes, and ``--debug`` prints them.  The parent enforces the wall-clock
timeout by killing the worker.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from virtkit.errors import WorkerError
from virtkit.limits import Limits

__all__ = ["WORKER_UID_BASE", "Isolation", "enter_sandbox", "pick_worker_uid"]

# A uid range no distribution assigns (below 2^31, above every subuid default).
WORKER_UID_BASE = 0x7FFF0000
WORKER_UID_COUNT = 0xFFFE

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


@dataclass(frozen=True)
class Isolation:
    """What the worker should do to itself.

    Attributes:
        uid, gid: the unprivileged identity to switch to (root only).
        jail: an empty directory to chroot into (created by the parent), or None.
        namespaces: try new namespaces.
        seccomp: install the seccomp filter.
        code_dirs: directories of Python code (the standard library, virtkit's package)
            bind-mounted read-only into the jail at their own paths, so the worker imports
            only the modules a guest needs; when that is impossible every module is
            imported before the chroot instead.
    """

    uid: int
    gid: int
    jail: str | None
    namespaces: bool = True
    seccomp: bool = True
    code_dirs: tuple[str, ...] = ()


def pick_worker_uid() -> int:
    """A per-worker uid from the reserved range (two concurrent workers differ)."""
    return WORKER_UID_BASE + (os.getpid() % WORKER_UID_COUNT) + 1


# dlopen(NULL): the symbols already loaded, libc included (find_library would run ldconfig/gcc)
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg2: int | ctypes.c_void_p = 0) -> None:
    _check(_libc.prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def _close_other_fds(keep: Iterable[int]) -> None:
    kept = sorted(set(keep))
    lo = 3
    for fd in kept:
        if fd >= lo:
            os.closerange(lo, fd)
            lo = fd + 1
    os.closerange(lo, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    # stdin/stdout/stderr must not reach the operator's terminal (a compromised worker
    # could write escape sequences there): point them at a pipe with no other end.
    # Everything the worker says goes through the channel, where the parent checks it.
    r, w = os.pipe()
    os.close(w)
    for fd in (0, 1, 2):
        os.dup2(r, fd)
    os.close(r)


def _write_proc(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _enter_namespaces(notes: list[str]) -> bool:
    """New namespaces; returns True if a private mount namespace exists."""
    if os.geteuid() == 0:
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        if _libc.unshare(flags) == 0:
            notes.append("namespaces: new mount, network, IPC and UTS namespaces")
            return True
        notes.append(f"namespaces: unavailable ({os.strerror(ctypes.get_errno())}); continuing without")
        return False
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if _libc.unshare(flags) != 0:
        notes.append(f"namespaces: a user namespace is unavailable ({os.strerror(ctypes.get_errno())}); continuing without")
        return False
    try:
        _write_proc("/proc/self/setgroups", "deny")
        _write_proc("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_proc("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as exc:
        notes.append(f"namespaces: user namespace mapping failed ({exc.strerror})")
    notes.append("namespaces: new user, mount, network, IPC and UTS namespaces")
    return True


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    ret = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                      data.encode() if data else None)
    _check(ret, f"mount {target}")


_PACKAGE_DIRS = ("site-packages", "dist-packages")


def _bind_code(jail: str, code_dirs: tuple[str, ...]) -> None:
    """A read-only tmpfs holding read-only bind mounts of the code paths (raises OSError).

    A ``site-packages``/``dist-packages`` directory inside a bound directory (a pyenv or
    source-built Python keeps it inside the standard library's) is covered by an empty
    tmpfs, and the code paths under it (virtkit, the decompressors) are bound back: the
    worker sees those packages and no other installed one.
    """
    paths = sorted(set(code_dirs), key=lambda q: (q.count("/"), q))
    dirs = [q for q in paths if os.path.isdir(q)]
    masks = sorted({os.path.join(d, sub) for d in dirs for sub in _PACKAGE_DIRS
                    if os.path.isdir(os.path.join(d, sub))} - set(paths))

    def under_mask(q: str) -> bool:
        return any(q.startswith(m + "/") for m in masks)

    def bind(src: str) -> None:
        target = os.path.join(jail, src.lstrip("/"))
        if os.path.isdir(src):
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:  # a single-file module: bind it onto an empty file
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            if not os.path.exists(target):
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
        _mount(src, target, None, MS_BIND)
        _mount(src, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)

    _mount("virtkit-jail", jail, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=256,mode=0755")
    for q in paths:
        if not under_mask(q):
            bind(q)
    for m in masks:
        _mount("virtkit-mask", os.path.join(jail, m.lstrip("/")), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "size=16k,nr_inodes=64,mode=0755")
    for q in paths:
        if under_mask(q):
            bind(q)
    for m in masks:
        _mount("virtkit-mask", os.path.join(jail, m.lstrip("/")), None,
               MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("virtkit-jail", jail, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _enter_jail(iso: Isolation, private_mounts: bool, preload: Callable[[], None], notes: list[str]) -> None:
    jail = iso.jail
    if jail is None:
        preload()
        notes.append("chroot: none requested")
        return
    code_visible = False
    if private_mounts:
        _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        try:
            if iso.code_dirs:
                _bind_code(jail, iso.code_dirs)
                code_visible = True
            else:
                _mount("virtkit-jail", jail, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       "size=4k,nr_inodes=2,mode=0555")
        except OSError as exc:
            notes.append(f"chroot: mounts failed ({exc.strerror}); every module is imported first")
    if not code_visible:
        preload()
    try:
        os.chroot(jail)
        os.chdir("/")
    except OSError as exc:
        notes.append(f"chroot: not possible ({exc.strerror}); continuing without")
        return
    sys.dont_write_bytecode = True
    if code_visible:
        notes.append("chroot: a read-only root holding only read-only Python code (modules imported on demand)")
    else:
        notes.append("chroot: an empty, read-only root")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def _drop_capabilities() -> None:
    hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def _empty_bounding_set() -> int:
    """Drop every capability from the bounding set (needs CAP_SETPCAP: before the uid changes)."""
    dropped = 0
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            dropped += 1
            continue
        err = ctypes.get_errno()
        if err == errno.EINVAL:  # past CAP_LAST_CAP of this kernel
            break
        raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")
    return dropped


def _drop_identity(iso: Isolation, notes: list[str]) -> None:
    try:
        n = _empty_bounding_set()
        notes.append(f"capability bounding set: emptied ({n} capabilities)")
    except OSError as exc:
        notes.append(f"capability bounding set: not emptied ({exc.strerror})")
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(iso.gid, iso.gid, iso.gid)
        os.setresuid(iso.uid, iso.uid, iso.uid)
        if os.geteuid() == 0 or os.getegid() == 0:  # pragma: no cover - defensive
            raise WorkerError("worker: failed to drop root privileges")
        notes.append(f"identity: uid {iso.uid}, gid {iso.gid}, no supplementary groups")
    else:
        notes.append(f"identity: unchanged (not root: uid {os.geteuid()})")
    try:
        _drop_capabilities()
        notes.append("capabilities: all dropped")
    except OSError as exc:
        notes.append(f"capabilities: capset failed ({exc.strerror})")


def _set_rlimits(limits: Limits, nfiles: int, notes: list[str]) -> None:
    wanted = {
        resource.RLIMIT_AS: limits.worker_address_space,
        resource.RLIMIT_CPU: limits.worker_cpu_seconds,
        resource.RLIMIT_FSIZE: 0,
        resource.RLIMIT_NOFILE: nfiles,
        resource.RLIMIT_NPROC: 0,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_MEMLOCK: 0,
        resource.RLIMIT_MSGQUEUE: 0,
    }
    for res, value in wanted.items():
        _soft, hard = resource.getrlimit(res)
        v = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(res, (v, v))
        except (ValueError, OSError) as exc:
            notes.append(f"rlimit {res}: {exc}")
    notes.append(
        f"rlimits: address space {limits.worker_address_space >> 20} MiB, CPU {limits.worker_cpu_seconds} s, "
        f"file size 0, {nfiles} open files, no processes, no core dumps"
    )


# ----------------------------------------------------------------- seccomp

# Syscalls refused with EPERM.  Numbers: arch/x86/entry/syscalls/syscall_64.tbl and
# include/uapi/asm-generic/unistd.h (aarch64).
_DENY_X86_64 = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "ptrace": 101,
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "accept4": 288,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
    "request_key": 249, "userfaultfd": 323, "process_vm_readv": 310, "process_vm_writev": 311,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "personality": 135, "mknod": 133, "mknodat": 259, "acct": 163,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
    "iopl": 172, "ioperm": 173, "quotactl": 179, "creat": 85, "truncate": 76, "ftruncate": 77,
    "unlink": 87, "unlinkat": 263, "rename": 82, "renameat": 264, "renameat2": 316, "mkdir": 83,
    "mkdirat": 258, "rmdir": 84, "link": 86, "linkat": 265, "symlink": 88, "symlinkat": 266,
    "chmod": 90, "fchmod": 91, "fchmodat": 268, "chown": 92, "fchown": 93, "lchown": 94,
    "fchownat": 260, "utime": 132, "utimes": 235, "utimensat": 280, "setxattr": 188,
    "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198,
    "fremovexattr": 199, "fallocate": 285, "openat2": 437, "kill": 62, "tkill": 200,
}
_DENY_AARCH64 = {
    "execve": 221, "execveat": 281, "clone": 220, "clone3": 435, "ptrace": 117, "socket": 198,
    "connect": 203, "accept": 202, "bind": 200, "listen": 201, "accept4": 242, "mount": 40,
    "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "kexec_load": 104,
    "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218,
    "userfaultfd": 282, "process_vm_readv": 270, "process_vm_writev": 271,
    "open_by_handle_at": 265, "name_to_handle_at": 264, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "personality": 92, "mknodat": 33,
    "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142, "sethostname": 161,
    "setdomainname": 162, "quotactl": 60, "truncate": 45, "ftruncate": 46, "unlinkat": 35,
    "renameat": 38, "renameat2": 276, "mkdirat": 34, "linkat": 37, "symlinkat": 36,
    "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54, "utimensat": 88, "setxattr": 5,
    "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16,
    "fallocate": 47, "openat2": 437, "kill": 129, "tkill": 130,
}
# open(2)/openat(2): refuse write access and creation (flags argument index).
_OPEN_X86_64 = {2: 1, 257: 2}  # open: flags in arg1; openat: arg2
_OPEN_AARCH64 = {56: 2}  # openat
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_OFF_NR = 0
_OFF_ARCH = 4


def _args_off(i: int) -> int:
    return 16 + 8 * i  # low 32 bits of args[i] on little-endian


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def build_seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF program (as (code, jt, jf, k) tuples) for ``machine``.

    Raises:
        KeyError: an architecture without a table.
    """
    deny = {"x86_64": _DENY_X86_64, "aarch64": _DENY_AARCH64}[machine]
    opens = {"x86_64": _OPEN_X86_64, "aarch64": _OPEN_AARCH64}[machine]
    eperm = _SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, _AUDIT_ARCH[machine], 1, 0),
        _stmt(_RET_K, _SECCOMP_RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFF_NR),
    ]
    # x32 ABI syscalls on x86_64 have bit 30 set: refuse them all.
    if machine == "x86_64":
        prog += [_jump(_JSET_K, 0x40000000, 0, 1), _stmt(_RET_K, eperm)]
    for nr in sorted(set(deny.values())):
        prog += [_jump(_JEQ_K, nr, 0, 1), _stmt(_RET_K, eperm)]
    for nr, argi in sorted(opens.items()):
        # if nr matches: load flags, refuse write/create flags, else allow
        prog += [
            _jump(_JEQ_K, nr, 0, 4),
            _stmt(_LD_W_ABS, _args_off(argi)),
            _jump(_JSET_K, _WRITE_FLAGS, 0, 1),
            _stmt(_RET_K, eperm),
            _stmt(_RET_K, _SECCOMP_RET_ALLOW),
        ]
    prog.append(_stmt(_RET_K, _SECCOMP_RET_ALLOW))
    return prog


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _install_seccomp(notes: list[str]) -> None:
    machine = os.uname().machine
    if machine not in _AUDIT_ARCH:
        notes.append(f"seccomp: no filter for architecture {machine}")
        return
    prog = build_seccomp_program(machine)
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        notes.append(f"seccomp: filter refused ({os.strerror(ctypes.get_errno())})")
        return
    notes.append(f"seccomp: deny-list filter installed ({len(prog)} instructions)")


def enter_sandbox(iso: Isolation, *, limits: Limits, keep_fds: Iterable[int],
                  preload: Callable[[], None] = lambda: None) -> list[str]:
    """Apply every isolation layer to the current (forked worker) process.

    Args:
        iso: what to do.
        limits: source of the rlimits.
        keep_fds: descriptors to keep open (image fds and the channel).
        preload: imports every module the worker may need; called before the chroot
            unless the code directories could be made visible inside it.

    Returns:
        one note per layer, saying what was done or why it was skipped.

    Raises:
        WorkerError: a step that must not fail (dropping root) failed.
    """
    notes: list[str] = []
    keep = list(keep_fds)
    _close_other_fds(keep)
    private = _enter_namespaces(notes) if iso.namespaces else False
    if not iso.namespaces:
        notes.append("namespaces: not requested")
    if os.geteuid() == 0 or private:
        _enter_jail(iso, private, preload, notes)
    else:
        preload()
        notes.append("chroot: not possible without root or a user namespace")
    _drop_identity(iso, notes)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    notes.append("no_new_privs set; not dumpable")
    _set_rlimits(limits, nfiles=max(keep, default=2) + 8, notes=notes)
    if iso.seccomp:
        _install_seccomp(notes)
    else:
        notes.append("seccomp: not requested")
    return notes
