"""The one API every filesystem reader implements, and path resolution for all of them.

A reader subclasses :class:`Filesystem` and :class:`Node`.  Path lookup is
*not* per filesystem: :func:`resolve_path` does it once, for everybody, with
the guarantees the boot pipeline relies on:

* absolute paths; ``//``, ``.`` and ``..`` normalised *inside* the filesystem
  (``..`` at the root stays at the root, as in the kernel);
* symlinks followed with a hop limit (``Limits.max_symlink_hops``); absolute
  targets restart from the root the lookup started from, so a link can never
  lead outside the filesystem;
* case-insensitive comparison where the filesystem is (FAT, iso9660 without
  Rock Ridge).

Names are ``str``; bytes that are not UTF-8 are kept with ``surrogateescape``
(:func:`decode_name`), so every on-disk name round-trips.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from virtkit._streams import ByteSource, read_all
from virtkit.errors import FileNotFound, IsADirectory, LimitExceeded, NotADirectory
from virtkit.limits import Limits

__all__ = [
    "DirEntry",
    "FileType",
    "Filesystem",
    "Node",
    "Stat",
    "decode_name",
    "encode_name",
    "resolve_path",
    "split_path",
]


def decode_name(raw: bytes) -> str:
    """On-disk name bytes -> str; invalid UTF-8 survives as surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def encode_name(name: str) -> bytes:
    """Inverse of :func:`decode_name`."""
    return name.encode("utf-8", "surrogateescape")


class FileType(enum.Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"  # devices, fifos, sockets


@dataclass(frozen=True, slots=True)
class Stat:
    """What ``stat`` reports for a node.

    Times are POSIX seconds as floats (None when the filesystem has no such time).
    """

    type: FileType
    size: int
    mode: int  # permission bits plus S_IF* type bits, as in st_mode
    inode: int
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    mtime: float | None = None
    atime: float | None = None
    ctime: float | None = None


class DirEntry:
    """One directory entry: a name, the type if the directory records it, and a loader.

    ``node()`` builds the Node lazily so a listing does not read every inode.
    """

    __slots__ = ("_loader", "inode", "name", "type")

    def __init__(self, name: str, type: FileType | None, inode: int, loader: Callable[[], Node]) -> None:
        self.name = name
        self.type = type
        self.inode = inode
        self._loader = loader

    def node(self) -> Node:
        return self._loader()

    def __repr__(self) -> str:
        return f"DirEntry({self.name!r}, {self.type}, inode={self.inode})"


class Node(abc.ABC):
    """A file, directory or symlink inside a :class:`Filesystem` (a cheap, lazy handle)."""

    fs: Filesystem

    @abc.abstractmethod
    def stat(self) -> Stat:
        """Type, size, mode and times.  Raises CorruptStructure on a bad inode."""

    @property
    def type(self) -> FileType:
        return self.stat().type

    @property
    def size(self) -> int:
        return self.stat().size

    @abc.abstractmethod
    def iter_dir(self) -> Iterator[DirEntry]:
        """Entries of a directory, without ``.`` and ``..``.

        Raises:
            NotADirectory: this node is not a directory.
            LimitExceeded: more than ``max_dir_entries`` entries.
        """

    def lookup_child(self, name: str) -> Node | None:
        """The child called ``name``, or None.  Readers override this when the
        on-disk format allows a faster lookup than scanning (hashed dirs)."""
        if self.fs.case_insensitive:
            want = name.casefold()
            for entry in self.iter_dir():
                if entry.name.casefold() == want:
                    return entry.node()
            return None
        for entry in self.iter_dir():
            if entry.name == name:
                return entry.node()
        return None

    @abc.abstractmethod
    def readlink(self) -> str:
        """A symlink's target.  Raises CorruptStructure if not a symlink or damaged."""

    @abc.abstractmethod
    def open(self) -> ByteSource:
        """The file's contents as a bounded source (holes read as zeros).

        Raises:
            IsADirectory: this node is a directory.
            LimitExceeded: the file claims more than ``max_file_bytes``.
        """


class Filesystem(abc.ABC):
    """A read-only filesystem on a volume.

    Class (or instance) attributes:
        fstype: name as ``blkid``/GRUB report it ("ext4", "xfs", "btrfs", "vfat", "iso9660").
        case_insensitive: lookups fold case.

    Instance attributes (set by the reader's constructor):
        source: the volume's bytes.
        limits: the bounds in force.
        uuid: formatted exactly as GRUB's ``search --fs-uuid`` / ``probe -u`` prints it
            ("0d1c...-...", FAT "1234-ABCD", iso9660 "2024-05-01-12-00-00-00").
        label: volume label ("" if none).
    """

    fstype: str = "?"  # readers may refine it per instance (ext2/ext3/ext4, vfat)
    case_insensitive: bool = False

    source: ByteSource
    limits: Limits
    uuid: str = ""
    label: str = ""

    @abc.abstractmethod
    def root(self) -> Node:
        """The root directory (btrfs: the top-level subvolume, id 5)."""

    def default_root(self) -> Node:
        """The root a mount without options shows (btrfs: the default subvolume)."""
        return self.root()

    def lookup(self, path: str, *, follow: bool = True, root: Node | None = None) -> Node:
        """Resolve ``path`` from ``root`` (default: :meth:`root`); see :func:`resolve_path`."""
        return resolve_path(self, path, follow=follow, root=root)

    def read_file(self, path: str, *, limit: int, limit_name: str = "max_read", root: Node | None = None) -> bytes:
        """The whole contents of a regular file, refusing files over ``limit`` bytes.

        Raises:
            FileNotFound, NotADirectory, IsADirectory, LimitExceeded, CorruptStructure.
        """
        node = self.lookup(path, root=root)
        if node.type is FileType.DIRECTORY:
            raise IsADirectory(f"{self.describe()}: {path} is a directory", path=path)
        return read_all(node.open(), limit=limit, limit_name=limit_name)

    def describe(self) -> str:
        """"ext4 on disk0p1" for messages."""
        return f"{self.fstype} on {self.source.name}"


def split_path(path: str) -> list[str]:
    """``"//boot/./grub/"`` -> ``["boot", ".", "grub"]``: components, empty ones dropped."""
    return [c for c in path.split("/") if c]


def resolve_path(fs: Filesystem, path: str, *, follow: bool = True, root: Node | None = None) -> Node:
    """Resolve a path inside ``fs``; never escapes ``root``.

    Args:
        fs: the filesystem.
        path: an absolute or relative path (relative = from ``root``).
        follow: follow a symlink in the final component too.
        root: where ``/`` is (default ``fs.root()``); also the ceiling for ``..``.

    Returns:
        the node the path names.

    Raises:
        FileNotFound: a component does not exist.
        NotADirectory: a non-final component is not a directory.
        LimitExceeded: ``max_symlink_hops`` or ``max_path_components`` broken.
        CorruptStructure: on-disk damage met on the way.
    """
    limits = fs.limits
    top = root if root is not None else fs.root()
    stack: list[Node] = [top]  # stack[-1] is the current directory; stack[0] the root
    pending = split_path(path)
    pending.reverse()  # pop() from the end = next component
    hops = 0
    seen = 0
    while pending:
        seen += 1
        if seen > limits.max_path_components + limits.max_symlink_hops * limits.max_path_components:
            raise LimitExceeded("max_path_components", seen, limits.max_path_components, f"{fs.describe()}: {path}")
        comp = pending.pop()
        if comp == ".":
            continue
        if comp == "..":
            if len(stack) > 1:
                stack.pop()
            continue
        cur = stack[-1]
        if cur.type is not FileType.DIRECTORY:
            raise NotADirectory(f"{fs.describe()}: {path}: a component before {comp!r} is not a directory", path=path)
        child = cur.lookup_child(comp)
        if child is None:
            raise FileNotFound(f"{fs.describe()}: {path} not found (no {comp!r})", path=path)
        if child.type is FileType.SYMLINK and (pending or follow):
            hops += 1
            if hops > limits.max_symlink_hops:
                raise LimitExceeded("max_symlink_hops", hops, limits.max_symlink_hops, f"{fs.describe()}: {path}")
            target = child.readlink()
            parts = split_path(target)
            if len(parts) > limits.max_path_components:
                raise LimitExceeded("max_path_components", len(parts), limits.max_path_components, f"{fs.describe()}: {path}")
            if target.startswith("/"):
                del stack[1:]
            pending.extend(reversed(parts))
            continue
        stack.append(child)
    return stack[-1]
