"""Helpers shared by the non-GRUB-2 configuration engines (legacy GRUB, extlinux, lilo, systemd-boot).

Every engine reads its configuration through :class:`~virtkit.boot.config.source.BootFiles`
(never a filesystem), decodes it the same way, names files with
:class:`~virtkit.boot.config.model.FileRef` and builds a
:class:`~virtkit.boot.config.model.BootMenu`.  What they share lives here:

* :func:`read_source` - one configuration file, bounded by ``max_config_bytes``;
* :func:`posix_dirname` / :func:`join_path` - path arithmetic on guest paths
  (never ``os.path``: guest paths are not host paths);
* :class:`MenuBuilder` - collects warnings and checks ``max_menu_entries``;
* :class:`StepBudget` - the ``max_script_steps`` bound on lines processed
  (including every ``INCLUDE``), so a config that includes one file a million
  times still ends quickly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from virtkit.boot.config.model import FileRef
from virtkit.boot.config.source import BootFiles, DeviceInfo, Location, SourceFile, normalise_path
from virtkit.errors import FileNotFound, IsADirectory, LimitExceeded, NotADirectory, PathError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "MenuBuilder",
    "StepBudget",
    "decode_text",
    "device_display",
    "file_exists",
    "find_device",
    "join_path",
    "posix_dirname",
    "quote_list",
    "read_source",
    "try_read_source",
]

log = logging.getLogger(__name__)


def decode_text(data: bytes) -> str:
    """Guest bytes as text: UTF-8 with undecodable bytes kept as surrogates (sanitised on display)."""
    return data.decode("utf-8", "surrogateescape")


def read_source(files: BootFiles, device: str | None, path: str, *, limits: Limits) -> SourceFile:
    """Read one configuration file.

    Args:
        files: the guest's files.
        device: GRUB device name ("hd0,msdos1").
        path: absolute path on that device.
        limits: ``max_config_bytes`` bounds the file.

    Returns:
        the decoded file.

    Raises:
        FileNotFound: no such file or device.
        IsADirectory: the path is a directory.
        LimitExceeded: the file is larger than ``max_config_bytes``.
    """
    p = normalise_path(path)
    if device is None:
        raise FileNotFound(f"{p}: no device given", path=p)
    try:
        data = files.read(device, p, limit=limits.max_config_bytes)
    except LimitExceeded as exc:
        # Re-label whatever limit the provider named: for a config file it is max_config_bytes.
        raise LimitExceeded("max_config_bytes", exc.value, limits.max_config_bytes, f"({device}){p}") from None
    if len(data) > limits.max_config_bytes:  # a provider that ignored ``limit``
        raise LimitExceeded("max_config_bytes", len(data), limits.max_config_bytes, f"({device}){p}")
    return SourceFile(device=device, path=p, text=decode_text(data))


def try_read_source(files: BootFiles, device: str | None, path: str, *, limits: Limits) -> SourceFile | None:
    """Like :func:`read_source` but None when the file does not exist (limits still raise)."""
    try:
        return read_source(files, device, path, limits=limits)
    except (FileNotFound, IsADirectory, NotADirectory):
        return None


def file_exists(files: BootFiles, device: str | None, path: str) -> bool:
    """True if ``path`` is a regular file on ``device``."""
    if device is None:
        return False
    try:
        st = files.stat(device, normalise_path(path))
    except PathError:
        return False
    return st is not None and not st.is_dir


def posix_dirname(path: str) -> str:
    """Directory part of an absolute guest path ("/boot/grub/menu.lst" -> "/boot/grub")."""
    p = normalise_path(path)
    head = p.rsplit("/", 1)[0]
    return head or "/"


def join_path(directory: str, name: str) -> str:
    """``name`` relative to ``directory`` unless it is absolute; normalised."""
    if name.startswith("/"):
        return normalise_path(name)
    return normalise_path(directory.rstrip("/") + "/" + name)


def device_display(device: str | None) -> str:
    return f"({device})" if device else "(no device)"


def find_device(files: BootFiles, name: str) -> DeviceInfo | None:
    """The DeviceInfo whose name or alias is ``name`` (parentheses optional)."""
    for info in files.devices():
        if info.matches(name):
            return info
    return None


@dataclass
class StepBudget:
    """Counts lines processed across a configuration and its includes (``max_script_steps``)."""

    limits: Limits
    where: str
    used: int = 0

    def step(self, n: int = 1) -> None:
        self.used += n
        if self.used > self.limits.max_script_steps:
            raise LimitExceeded("max_script_steps", self.used, self.limits.max_script_steps, self.where)


@dataclass
class MenuBuilder:
    """Warnings and the entry count shared by one engine run.

    Attributes:
        limits: the bounds in force.
        where: display name of the configuration ("(hd0,msdos1)/grub/menu.lst").
        warnings: operator notes, in the order found.
    """

    limits: Limits
    where: str
    warnings: list[str] = field(default_factory=list)
    entries: int = 0

    def warn(self, message: str, location: Location | None = None) -> None:
        text = f"{location.render_prefix()}: {message}" if location is not None else message
        log.debug("%s", sanitize_text(text))
        self.warnings.append(text)

    def count_entry(self) -> None:
        self.entries += 1
        self.limits.check("max_menu_entries", self.entries, self.where)

    def file_ref(self, files: BootFiles, device: str | None, path: str, written: str, *, what: str,
                 location: Location | None = None) -> FileRef:
        """A FileRef, with a warning when the file does not exist (the loader would fail at boot)."""
        ref = FileRef(device=device, path=normalise_path(path), written=written)
        st = None
        if device is not None:
            try:
                st = files.stat(device, ref.path)
            except PathError:
                st = None
        if st is None or st.is_dir:
            self.warn(f"{what} {ref.display()} does not exist (booting this entry would fail)", location)
        return ref


def quote_list(values: Sequence[str], limit: int = 20) -> str:
    """``'a', 'b', ...`` sanitised, at most ``limit`` shown."""
    shown = [f"'{sanitize_text(v)}'" for v in values[:limit]]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(shown) + more
