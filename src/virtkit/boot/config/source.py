"""What the configuration stage may see of the guest: files by GRUB device, and source locations.

The configuration engines never touch a filesystem or an image.  They get a
:class:`BootFiles` - read-only, bounded, confined to the guest's filesystems -
and name files by *GRUB device* ("hd0,msdos1", "lvm/vg-root") plus a path on
that device, exactly as GRUB does.  ``boot/bootfiles.py`` adapts the lower
stages to this protocol; tests use :class:`MemoryFiles`.

:class:`Location` points into a configuration file (file, line, column, the
include chain) so every configuration error can quote its source with a caret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from virtkit._streams import BytesSource
from virtkit.errors import FileNotFound, IsADirectory, LimitExceeded

__all__ = [
    "BootFiles",
    "DeviceInfo",
    "FileStat",
    "Location",
    "MemoryFiles",
    "SourceFile",
    "normalise_path",
]


@dataclass(frozen=True)
class DeviceInfo:
    """One guest filesystem as GRUB sees it.

    Attributes:
        name: GRUB's preferred device name, no parentheses ("hd0,msdos1", "hd0,gpt2",
            "lvm/vg-root", "hd0" for a whole-disk filesystem).
        aliases: other names that mean the same device ("hd0,1", "lvmid/VGUUID/LVUUID").
        volume: virtkit's volume name ("disk0p1", "vg/root").
        fs_type: "ext4", "xfs", "btrfs", "vfat", "iso9660", or None if unreadable.
        uuid: filesystem UUID formatted as GRUB prints it.
        label: filesystem label.
        part_uuid: partition GUID (GPT), for ``search --part-uuid`` style lookups.
        part_label: GPT partition name.
        default_subvolume: btrfs: the path of the default subvolume from the top level
            ("@/.snapshots/1/snapshot"), else "".
    """

    name: str
    aliases: tuple[str, ...] = ()
    volume: str = ""
    fs_type: str | None = None
    uuid: str | None = None
    label: str | None = None
    part_uuid: str | None = None
    part_label: str | None = None
    default_subvolume: str = ""

    def matches(self, device: str) -> bool:
        d = device.strip("()")
        return d == self.name or d in self.aliases


@dataclass(frozen=True)
class FileStat:
    """Enough of a stat for ``test -f/-d/-s/-nt`` and BLS sorting."""

    is_dir: bool
    size: int
    mtime: float | None = None


class BootFiles(Protocol):
    """Read-only access to the guest's files, by GRUB device and path.

    Paths are absolute on the device's filesystem root ("/grub2/grub.cfg"); callers
    normalise them.  Every method raises only VirtkitError subclasses.
    """

    def devices(self) -> Sequence[DeviceInfo]:
        """All readable filesystems, in GRUB's enumeration order."""
        ...

    def read(self, device: str, path: str, *, limit: int) -> bytes:
        """A regular file's contents.

        Raises:
            FileNotFound: no such file (or no such device).
            IsADirectory: the path is a directory.
            LimitExceeded: the file is larger than ``limit`` bytes.
        """
        ...

    def stat(self, device: str, path: str) -> FileStat | None:
        """Stat after following symlinks, or None if it does not exist."""
        ...

    def listdir(self, device: str, path: str) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` pairs of a directory.

        Raises:
            FileNotFound: no such directory.
        """
        ...


def normalise_path(path: str) -> str:
    """Make ``path`` absolute and collapse ``//``, ``.`` and ``..`` (never above ``/``)."""
    out: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if out:
                out.pop()
            continue
        out.append(comp)
    return "/" + "/".join(out)


@dataclass
class MemoryFiles:
    """A BootFiles over in-memory trees, for tests and for ``--isconfig``.

    Args:
        trees: device name -> {absolute path: bytes}.  Directories are implied by paths.
        infos: optional DeviceInfo per device (uuid, label ...); a bare one is made otherwise.
    """

    trees: Mapping[str, Mapping[str, bytes]]
    infos: Sequence[DeviceInfo] = field(default_factory=tuple)

    def devices(self) -> Sequence[DeviceInfo]:
        given = {i.name: i for i in self.infos}
        return [given.get(name, DeviceInfo(name=name, fs_type="memory")) for name in self.trees]

    def _tree(self, device: str) -> Mapping[str, bytes]:
        for info in self.devices():
            if info.matches(device):
                return self.trees[info.name]
        raise FileNotFound(f"no such device ({device})", path=device)

    def read(self, device: str, path: str, *, limit: int) -> bytes:
        tree = self._tree(device)
        p = normalise_path(path)
        if p in tree:
            data = tree[p]
            if len(data) > limit:
                raise LimitExceeded("max_read", len(data), limit, f"({device}){p}")
            return data
        if self._is_dir(tree, p):
            raise IsADirectory(f"({device}){p} is a directory", path=p)
        raise FileNotFound(f"({device}){p} not found", path=p)

    @staticmethod
    def _is_dir(tree: Mapping[str, bytes], p: str) -> bool:
        prefix = p.rstrip("/") + "/"
        return p == "/" or any(k.startswith(prefix) for k in tree)

    def open(self, device: str, path: str) -> BytesSource:
        """The file as a stream (for extraction tests)."""
        data = self.read(device, path, limit=1 << 62)
        return BytesSource(data, f"({device}){normalise_path(path)}")

    def stat(self, device: str, path: str) -> FileStat | None:
        try:
            tree = self._tree(device)
        except FileNotFound:
            return None
        p = normalise_path(path)
        if p in tree:
            return FileStat(is_dir=False, size=len(tree[p]))
        if self._is_dir(tree, p):
            return FileStat(is_dir=True, size=0)
        return None

    def listdir(self, device: str, path: str) -> list[tuple[str, bool]]:
        tree = self._tree(device)
        p = normalise_path(path)
        if not self._is_dir(tree, p):
            raise FileNotFound(f"({device}){p}: no such directory", path=p)
        prefix = "/" if p == "/" else p + "/"
        found: dict[str, bool] = {}
        for k in tree:
            if k.startswith(prefix):
                rest = k[len(prefix) :]
                head, sep, _ = rest.partition("/")
                found[head] = found.get(head, False) or bool(sep)
        return sorted(found.items())


@dataclass(frozen=True)
class SourceFile:
    """A configuration file's text and where it came from.

    Attributes:
        device: GRUB device it was read from (None for a host file, ``--isconfig``).
        path: absolute path on that device.
        text: the decoded text (UTF-8 with surrogateescape).
    """

    device: str | None
    path: str
    text: str

    @property
    def display(self) -> str:
        return f"({self.device}){self.path}" if self.device else self.path

    def line(self, lineno: int) -> str:
        """1-based source line without its newline ("" if out of range)."""
        lines = self.text.split("\n")
        if 1 <= lineno <= len(lines):
            return lines[lineno - 1].rstrip("\r")
        return ""


@dataclass(frozen=True)
class Location:
    """A point in a configuration file, with the chain of includes that led there.

    Attributes:
        file: the source file.
        line: 1-based line.
        col: 1-based column.
        included_from: the location of the ``source``/``configfile``/``INCLUDE`` that
            pulled ``file`` in, with ``how`` describing it.
        how: e.g. "source ${config_directory}/custom.cfg".
    """

    file: SourceFile
    line: int
    col: int = 1
    included_from: Location | None = None
    how: str = ""

    def render_prefix(self) -> str:
        """``/boot/grub2/grub.cfg:42:25``"""
        return f"{self.file.display}:{self.line}:{self.col}"

    def includes(self) -> list[tuple[Location, str]]:
        """The include chain, innermost first: (the location that read this file, how), at most 64."""
        out: list[tuple[Location, str]] = []
        loc: Location | None = self
        while loc is not None and loc.included_from is not None and len(out) < 64:
            out.append((loc.included_from, loc.how))
            loc = loc.included_from
        return out

    def render_chain(self) -> str:
        """`` (included from A:3:1 by `source ...`, from B:7:1 ...)``, or "" for a top-level file."""
        from virtkit.sanitize import sanitize_text  # local: avoid a cycle at import

        parts = [inc.render_prefix() + (f" by `{sanitize_text(how)}`" if how else "") for inc, how in self.includes()]
        return f" (included from {', from '.join(parts)})" if parts else ""

    def render_excerpt(self) -> str:
        """The source line, a caret under the column, and the include chain."""
        from virtkit.sanitize import sanitize_text  # local: avoid a cycle at import

        text = sanitize_text(self.file.line(self.line).expandtabs(1))
        out = [f"    {text}", "    " + " " * max(0, self.col - 1) + "^"]
        chain = [f"  included from {inc.render_prefix()}" + (f" ({sanitize_text(how)})" if how else "")
                 for inc, how in self.includes()]
        # an include loop repeats a cycle of lines: show the cycle once and say how often it repeats
        period = next((q for q in range(1, 9) if len(chain) > q and all(chain[k] == chain[k + q]
                                                                       for k in range(len(chain) - q))), 0)
        if period == 1:
            out.append(f"{chain[0]} [{len(chain)} times]")
        elif period:
            out += chain[:period]
            out.append(f"  [the {period} lines above repeat {(len(chain) + period - 1) // period} times]")
        else:
            out += chain
        return "\n".join(out)
