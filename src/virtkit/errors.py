"""The one error taxonomy of virtkit.

Two kinds of failure, told apart by type (STYLE.md, idea 4):

* a :class:`VirtkitError` subclass means bad input, a bad environment or bad
  usage.  The CLI prints its message as one line and exits non-zero;
* anything else is a bug in virtkit: the CLI prints a traceback and asks for a
  report.  Fuzz tests check that nothing but ``VirtkitError`` escapes a parser.

Tree::

    VirtkitError
    ├── UsageError                 bad flags or arguments
    ├── ImageError                 anything about guest storage
    │   ├── NotThisFormat          a probe said "not mine" (only probe tables catch it)
    │   ├── UnknownFormat          no probe said yes; carries every reason
    │   ├── CorruptStructure       (what, where, expected, got)
    │   ├── UnsupportedFeature     valid but not handled
    │   └── PathError              lookups inside a filesystem
    │       ├── FileNotFound
    │       ├── NotADirectory
    │       └── IsADirectory
    ├── LimitExceeded              (name, value, maximum): hostile or absurd input
    ├── ConfigError                boot-loader configuration, with a Location
    │   ├── ConfigSyntaxError
    │   └── ConfigRuntimeError
    ├── SelectionError             --entry matches nothing, no bootable default
    ├── OutputError                writing results on the host failed
    ├── WorkerError                the deprivileged worker failed or misbehaved
    ├── ProtocolError              (abstract, as in h11)
    │   ├── LocalProtocolError     we did something illegal: a bug in our caller
    │   └── RemoteProtocolError    the peer misbehaved
    └── ServiceError               sockets, timeouts, refused connections

``InternalError`` is *not* a ``VirtkitError``: it marks a broken invariant of
our own ("programming error: ...").
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ConfigRuntimeError",
    "ConfigSyntaxError",
    "CorruptStructure",
    "FileNotFound",
    "ImageError",
    "InternalError",
    "IsADirectory",
    "LimitExceeded",
    "LocalProtocolError",
    "NotADirectory",
    "NotThisFormat",
    "OutputError",
    "PathError",
    "ProtocolError",
    "RemoteProtocolError",
    "SelectionError",
    "ServiceError",
    "UnknownFormat",
    "UnsupportedFeature",
    "UsageError",
    "VirtkitError",
    "WorkerError",
]


class VirtkitError(Exception):
    """Bad input, environment or usage: one clear line, non-zero exit.

    Subclasses set :attr:`exit_status`; the CLI maps errors to exit codes in
    one place using it.
    """

    exit_status: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(VirtkitError):
    """Bad command-line flags or arguments."""

    exit_status = 2


class ImageError(VirtkitError):
    """Anything wrong with, or unsupported in, the guest's storage."""

    exit_status = 3


class NotThisFormat(ImageError):
    """A probe decided the bytes are not its format.

    Only probe tables catch this; anywhere else it is a normal ImageError.
    """


class UnknownFormat(ImageError):
    """No probe in a probe table recognised the bytes.

    Args:
        what: what was probed ("image disk0.img", "volume hd0,msdos1").
        reasons: one line per probe that said no.
    """

    def __init__(self, what: str, reasons: list[str]) -> None:
        self.what = what
        self.reasons = list(reasons)
        detail = "; ".join(self.reasons)
        super().__init__(f"{what}: unrecognised format ({detail})" if detail else f"{what}: unrecognised format")


def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}" if value > 9 else str(value)
    return str(value)


class CorruptStructure(ImageError):
    """An on-disk structure is malformed.

    Args:
        what: the structure and where it lives ("ext4 superblock on disk0p1").
        offset: byte offset of the structure within its container, if known.
        problem: what is wrong ("bad magic", "entry array CRC mismatch").
        expected: the expected value, if there is one.
        got: the value found.
    """

    def __init__(
        self,
        what: str,
        problem: str,
        *,
        offset: int | None = None,
        expected: Any = None,
        got: Any = None,
    ) -> None:
        self.what = what
        self.problem = problem
        self.offset = offset
        self.expected = expected
        self.got = got
        where = f" at {offset:#x}" if offset is not None else ""
        msg = f"{what}{where}: {problem}"
        if expected is not None:
            msg += f", expected {_fmt(expected)}, got {_fmt(got)}"
        elif got is not None:
            msg += f" ({_fmt(got)})"
        super().__init__(msg)


class UnsupportedFeature(ImageError):
    """Valid input that virtkit does not handle (LVM raid, ext4 encryption, ...)."""


class PathError(ImageError):
    """A path could not be resolved inside a guest filesystem."""

    exit_status = 4

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class FileNotFound(PathError, FileNotFoundError):
    """No such file or directory inside the guest filesystem."""


class NotADirectory(PathError, NotADirectoryError):
    """A path component is not a directory."""


class IsADirectory(PathError, IsADirectoryError):
    """A file was expected but a directory was found."""


class LimitExceeded(VirtkitError):
    """A bound from :class:`virtkit.limits.Limits` was broken.

    Args:
        name: the Limits field name (``max_symlink_hops``).
        value: the value that was reached or requested.
        maximum: the limit.
        where: what was being processed when it happened.
    """

    exit_status = 3

    def __init__(self, name: str, value: int, maximum: int, where: str = "", *, location: object = None) -> None:
        self.name = name
        self.value = value
        self.maximum = maximum
        self.where = where
        self.location = location  # a config Location (source line, caret, include chain), when there is one
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{value} exceeds the {name} limit of {maximum} (raise it with --limit {name}=N)")


class ConfigError(VirtkitError):
    """A boot-loader configuration problem.  ``location`` points into the source."""

    exit_status = 5

    def __init__(self, message: str, location: Any = None) -> None:
        self.location = location
        self.bare_message = message
        if location is not None and hasattr(location, "render_prefix"):
            message = f"{location.render_prefix()}: {message}"
        super().__init__(message)


class ConfigSyntaxError(ConfigError):
    """The configuration does not parse."""


class ConfigRuntimeError(ConfigError):
    """Evaluating the configuration failed (budget exhausted, bad command use)."""


class SelectionError(VirtkitError):
    """No entry matches the requested selection, or the choice is not bootable."""

    exit_status = 6


class OutputError(VirtkitError):
    """Writing a result on the host failed (output file, output directory)."""

    exit_status = 7


class WorkerError(VirtkitError):
    """The deprivileged worker failed, was killed, or sent something malformed."""

    exit_status = 8


class ProtocolError(VirtkitError):
    """Abstract root of wire-protocol errors; instantiate a subclass."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; use LocalProtocolError or RemoteProtocolError")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We tried something illegal: a bug in our caller."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal."""


class ServiceError(VirtkitError):
    """A service-level failure: sockets, timeouts, refused connections."""

    exit_status = 9


class InternalError(Exception):
    """A broken invariant inside virtkit itself.  Not a VirtkitError: it is a bug."""

    def __init__(self, message: str) -> None:
        super().__init__(f"programming error: {message}")
