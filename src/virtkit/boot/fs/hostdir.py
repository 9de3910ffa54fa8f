"""A host directory as a read-only filesystem root (an exported guest ``/boot``).

``virtkit ls|cat|boot DIR`` treat a directory as one filesystem.  Its
*contents* are still guest-controlled (a copy of a guest's ``/boot``), so it
is read with the same confinement as an image:

* every access is relative to a descriptor of its parent directory, one
  component at a time, with ``O_NOFOLLOW``: the kernel never follows a symlink
  for us;
* symlinks are read with ``readlink(name, dir_fd=...)`` and resolved by
  :func:`~virtkit.boot.fs.base.resolve_path`, whose ``..`` and absolute targets
  stop at this directory: nothing outside it can be named;
* files are opened ``O_PATH`` first and checked to be regular files before
  being reopened for reading (through ``/proc/self/fd``), so a device node or
  FIFO in the directory is never opened;
* nothing is ever written.

References:
    openat(2), O_PATH/O_NOFOLLOW (Linux ``open(2)``), fstatat(2), readlinkat(2),
    proc(5) ``/proc/self/fd``.
"""

from __future__ import annotations

import errno
import functools
import os
import stat as st
import weakref
from collections.abc import Iterator

from virtkit._streams import ByteSource, BytesSource, FileSource
from virtkit.boot.fs.base import DirEntry, Filesystem, FileType, Node, Stat
from virtkit.errors import CorruptStructure, FileNotFound, IsADirectory, LimitExceeded, NotADirectory, PathError
from virtkit.limits import Limits

__all__ = ["HostDirectory", "HostNode"]

_O_PATH = getattr(os, "O_PATH", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROBE_FLAGS = (_O_PATH or os.O_RDONLY | os.O_NONBLOCK) | os.O_NOFOLLOW | os.O_CLOEXEC


def _kind(mode: int) -> FileType:
    if st.S_ISDIR(mode):
        return FileType.DIRECTORY
    if st.S_ISREG(mode):
        return FileType.FILE
    if st.S_ISLNK(mode):
        return FileType.SYMLINK
    return FileType.OTHER


class _Fd:
    """An owned descriptor, closed when the last node using it goes away (or on close())."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._finalizer = weakref.finalize(self, _close_quietly, fd)

    def close(self) -> None:
        self._finalizer()


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class _OwnedFileSource(FileSource):
    """A FileSource that owns (and eventually closes) its descriptor."""

    def __init__(self, fd: int, name: str, size: int) -> None:
        super().__init__(fd, name, size)
        self._owner = _Fd(fd)


class HostDirectory(Filesystem):
    """A directory of the host, read like a filesystem (``fstype`` "directory").

    Attributes:
        path: the directory as the operator named it.
    """

    fstype = "directory"

    def __init__(self, root_fd: int, path: str, *, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self.source = BytesSource(b"", f"directory {path}")
        self.uuid = ""
        self.label = ""
        self._root_fd = _Fd(root_fd)
        self._root_stat = os.fstat(root_fd)

    @classmethod
    def open_directory(cls, path: str, *, limits: Limits) -> HostDirectory:
        """Open ``path`` (a directory; a symlink to one is followed here, once) as a filesystem root.

        Raises:
            PathError: the directory cannot be opened (missing, not a directory, no permission).
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise PathError(f"directory {path}: {exc.strerror}", path=path) from None
        return cls(fd, path, limits=limits)

    def close(self) -> None:
        """Close the root descriptor (nodes still in use keep their own)."""
        self._root_fd.close()

    def describe(self) -> str:
        return f"directory {self.path}"

    def root(self) -> HostNode:
        return HostNode(self, None, "", "/", self._root_stat, own=self._root_fd)


class HostNode(Node):
    """A file, directory or symlink inside a :class:`HostDirectory`.

    ``parent`` holds the descriptor of the directory containing it (None for the root);
    every system call names the node relative to it.
    """

    def __init__(
        self, fs: HostDirectory, parent: _Fd | None, name: str, path: str, lstat: os.stat_result, *, own: _Fd | None = None
    ) -> None:
        self.fs = fs
        self._host = fs
        self._parent = parent
        self._name = name
        self.path = path
        self._lstat = lstat
        self._own = own  # this directory's descriptor, opened on first use

    def __repr__(self) -> str:
        return f"HostNode({self.path!r})"

    def _error(self, exc: OSError, doing: str) -> PathError:
        msg = f"{self._host.describe()}: {self.path}: {doing}: {exc.strerror}"
        if exc.errno == errno.ENOENT:
            return FileNotFound(msg, path=self.path)
        if exc.errno == errno.ENOTDIR:
            return NotADirectory(msg, path=self.path)
        return PathError(msg, path=self.path)

    @property
    def type(self) -> FileType:
        return _kind(self._lstat.st_mode)

    def stat(self) -> Stat:
        s = self._lstat
        return Stat(
            type=_kind(s.st_mode),
            size=s.st_size,
            mode=s.st_mode,
            inode=s.st_ino,
            nlink=s.st_nlink,
            uid=s.st_uid,
            gid=s.st_gid,
            mtime=s.st_mtime,
            atime=s.st_atime,
            ctime=s.st_ctime,
        )

    def _dir_fd(self) -> _Fd:
        if self.type is not FileType.DIRECTORY:
            raise NotADirectory(f"{self._host.describe()}: {self.path} is not a directory", path=self.path)
        if self._own is None:
            assert self._parent is not None
            try:
                fd = os.open(self._name, _DIR_FLAGS, dir_fd=self._parent.fd)
            except OSError as exc:  # replaced by a symlink or a file since it was listed
                raise self._error(exc, "cannot open directory") from None
            self._own = _Fd(fd)
        return self._own

    def _child(self, name: str) -> HostNode | None:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            return None
        own = self._dir_fd()
        try:
            lst = os.stat(name, dir_fd=own.fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, f"cannot stat {name!r}") from None
        return HostNode(self._host, own, name, f"{self.path.rstrip('/')}/{name}", lst)

    def _loaded(self, name: str) -> Node:
        node = self._child(name)
        if node is None:
            raise FileNotFound(f"{self._host.describe()}: {self.path}/{name} disappeared", path=self.path)
        return node

    def iter_dir(self) -> Iterator[DirEntry]:
        own = self._dir_fd()
        limit = self._host.limits.max_dir_entries
        count = 0
        try:
            with os.scandir(own.fd) as it:
                for entry in it:
                    count += 1
                    if count > limit:
                        raise LimitExceeded("max_dir_entries", count, limit, f"{self._host.describe()}: {self.path}")
                    if entry.is_symlink():
                        kind: FileType | None = FileType.SYMLINK
                    elif entry.is_dir(follow_symlinks=False):
                        kind = FileType.DIRECTORY
                    elif entry.is_file(follow_symlinks=False):
                        kind = FileType.FILE
                    else:
                        kind = FileType.OTHER
                    yield DirEntry(entry.name, kind, entry.inode(), functools.partial(self._loaded, entry.name))
        except OSError as exc:
            raise self._error(exc, "cannot list") from None

    def lookup_child(self, name: str) -> Node | None:
        if self.type is not FileType.DIRECTORY:
            return None
        return self._child(name)

    def readlink(self) -> str:
        if self.type is not FileType.SYMLINK or self._parent is None:
            raise CorruptStructure(f"{self._host.describe()}: {self.path}", "not a symbolic link")
        try:
            return os.readlink(self._name, dir_fd=self._parent.fd)
        except OSError as exc:
            raise self._error(exc, "cannot read link") from None

    def open(self) -> ByteSource:
        if self.type is FileType.DIRECTORY:
            raise IsADirectory(f"{self._host.describe()}: {self.path} is a directory", path=self.path)
        if self._parent is None:  # pragma: no cover - only the root has no parent, and it is a directory
            raise IsADirectory(f"{self._host.describe()}: / is a directory", path="/")
        try:
            probe = os.open(self._name, _PROBE_FLAGS, dir_fd=self._parent.fd)
        except OSError as exc:
            raise self._error(exc, "cannot open") from None
        try:
            s = os.fstat(probe)
            if not st.S_ISREG(s.st_mode):
                raise PathError(f"{self._host.describe()}: {self.path} is not a regular file", path=self.path)
            self._host.limits.check("max_file_bytes", s.st_size, f"{self._host.describe()}: {self.path}")
            if _O_PATH:
                try:
                    fd = os.open(f"/proc/self/fd/{probe}", os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise self._error(exc, "cannot reopen for reading") from None
            else:  # pragma: no cover - non-Linux: the probe descriptor itself is readable
                fd = os.dup(probe)
        except OSError as exc:
            raise self._error(exc, "cannot open") from None
        finally:
            os.close(probe)
        return _OwnedFileSource(fd, f"{self.path}", s.st_size)
