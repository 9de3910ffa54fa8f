"""Writing extracted kernels and initrds on the host: safely, or not at all.

Only the privileged parent writes, and only files it creates itself
(reference/pygrub.md §5.4: pygrub's parent trusts paths its child names).

* names are pygrub's: ``boot_kernel.XXXXXXXX`` / ``boot_ramdisk.XXXXXXXX``
  (8 random characters) inside the output directory;
* each file is created relative to a descriptor of the directory with
  ``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0600: never an existing file, never
  through a symlink;
* :class:`OutputFiles` is a transaction: unless :meth:`commit` is called,
  every file it created is removed - on any failure nothing is left behind;
* sizes are bounded while writing (``max_kernel_bytes``/``max_initrd_bytes``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

from virtkit.errors import LimitExceeded, OutputError

__all__ = ["OutputFiles", "write_output_record"]

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # as tempfile.mkstemp


def _random_suffix() -> str:
    """Eight characters from os.urandom, unbiased (rejection sampling; ``secrets`` costs ~4 ms to import)."""
    out: list[str] = []
    n = len(_NAME_CHARS)
    cutoff = 256 - 256 % n
    while len(out) < 8:
        out.extend(_NAME_CHARS[b % n] for b in os.urandom(16) if b < cutoff)
    return "".join(out[:8])


class OutputFiles:
    """Files created in one output directory; all removed unless committed.

    Args:
        directory: an existing directory (pygrub: ``--output-directory``).

    Raises:
        OutputError: the directory does not exist or is not a directory.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        try:
            self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(f"output directory {directory}: {exc.strerror}") from None
        self._created: list[str] = []
        self._committed = False

    def create(self, prefix: str) -> tuple[int, str]:
        """Create ``prefix + 8 random chars`` exclusively; returns (fd, host path)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for _ in range(100):
            name = prefix + _random_suffix()
            try:
                fd = os.open(name, flags, 0o600, dir_fd=self._dir_fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(f"cannot create {os.path.join(self.directory, name)}: {exc.strerror}") from None
            self._created.append(name)
            # absolute, as tempfile.mkstemp (and so pygrub) returns it
            return fd, os.path.abspath(os.path.join(self.directory, name))
        raise OutputError(f"cannot create a unique {prefix}XXXXXXXX in {self.directory}")

    def write_file(self, prefix: str, chunks: Iterable[bytes], *, limit: int, limit_name: str) -> tuple[str, int]:
        """Create a file and stream ``chunks`` into it, refusing more than ``limit`` bytes.

        Returns:
            (host path, bytes written).

        Raises:
            LimitExceeded: the data is larger than ``limit``.
            OutputError: a write failed (disk full ...).
        """
        fd, path = self.create(prefix)
        total = 0
        try:
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise LimitExceeded(limit_name, total, limit, f"writing {path}")
                view = memoryview(chunk)
                while view:
                    try:
                        n = os.write(fd, view)
                    except OSError as exc:
                        raise OutputError(f"writing {path}: {exc.strerror}") from None
                    view = view[n:]
        finally:
            os.close(fd)
        return path, total

    def commit(self, renames: Mapping[str, str] | None = None, *, drop: Iterable[str] = ()) -> None:
        """Keep the files (the caller hands their paths to the toolstack).

        Args:
            renames: created name -> final name in the same directory, each moved with one
                ``rename()`` (atomic: a reader sees the old file or the new one, never a mix);
                an existing file of that name is replaced.  Stable names let a libvirt domain
                refer to the same paths across kernel updates.
            drop: final names to remove if they are regular files (a stale initrd from an
                earlier run when the entry now has none).

        Raises:
            OutputError: a rename failed (the files are then removed, as on any failure).
        """
        for old, new in (renames or {}).items():
            if old not in self._created or not new or "/" in new or new in (".", ".."):
                raise OutputError(f"cannot rename {old!r} to {new!r} in {self.directory}")
            try:
                os.replace(old, new, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            except OSError as exc:
                raise OutputError(f"cannot rename {old} to {new} in {self.directory}: {exc.strerror}") from None
            self._created.remove(old)  # complete and in place: not ours to remove any more
        for name in drop:
            try:
                if stat.S_ISREG(os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=self._dir_fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise OutputError(f"cannot remove the stale {name} in {self.directory}: {exc.strerror}") from None
        self._committed = True

    def abort(self) -> None:
        """Remove every file created so far (idempotent)."""
        for name in self._created:
            try:
                os.unlink(name, dir_fd=self._dir_fd)
            except FileNotFoundError:
                pass
        self._created = []

    def close(self) -> None:
        if not self._committed:
            self.abort()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_output_record(path: str | None, text: str) -> None:
    """Write a result record to ``path`` (truncating it first) or to stdout when None/"-".

    libxl pre-creates the ``--output`` file; unlike pygrub we also create a missing
    one (mode 0600) and always truncate, so no stale tail survives.  The record is
    written with a single ``write()`` as pygrub does.

    Raises:
        OutputError: the file cannot be opened or written.
    """
    data = text.encode("utf-8", "surrogateescape")
    if path is None or path == "-":
        fd = 1
        close = False
    else:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot open output file {path}: {exc.strerror}") from None
        close = True
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISFIFO(st.st_mode) and not stat.S_ISCHR(st.st_mode):
            os.close(fd)
            raise OutputError(f"output {path} is not a regular file")
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        raise OutputError(f"writing output {path or 'stdout'}: {exc.strerror}") from None
    finally:
        if close:
            os.close(fd)
