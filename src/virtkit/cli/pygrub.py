"""``virtkit-pygrub``: an exact drop-in for Xen's pygrub, minus its bugs.

The command line is pygrub's (GNU getopt, ``qilnh::`` plus the long options),
in any order, as libxl builds it (reference/pygrub.md §1.6)::

    virtkit-pygrub [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet]
                   --output=FILE --output-format=simple0 --output-directory=DIR
                   <bootloader_args...> DISK

The output records are pygrub's byte for byte; the temporary files are named
as pygrub names them.  The differences are fixes:

* the guest is parsed in a sandboxed worker whenever we run as root (the
  parent keeps root only to open the image and write the files it created);
* every failure exits non-zero with one line naming what failed, and leaves
  no file behind (pygrub leaks empty temp files and, with ``--runas``, exits 0
  on failure);
* ``--entry`` takes an index into the *real* menu tree, a title, an id or a GRUB
  path ``a>b``; a value that matches nothing is an error (pygrub ignores it);
* ``-n`` prints what would be booted (pygrub prints ``kernel None``);
* several initrds are concatenated into the one ramdisk Xen accepts;
* ``--runas`` takes a user name too and works with the interactive menu.

XenServer's ``--default_args=``/``--extra_args=`` are accepted and appended to
the command line after the entry's own arguments, like ``--args``.
"""

from __future__ import annotations

import getopt
import logging
import os
import pwd
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from virtkit.cli.main import report_error

__all__ = ["PygrubArgs", "main", "parse_args"]

log = logging.getLogger("virtkit.pygrub")

SHORT_OPTS = "qilnh::"
LONG_OPTS = [
    # pygrub's own (Xen 4.17 and upstream)
    "quiet", "interactive", "list-entries", "not-really", "help", "output=", "output-format=",
    "output-directory=", "offset=", "runas=", "entry=", "kernel=", "ramdisk=", "args=", "isconfig", "debug",
    # XenServer's (xapi passes them)
    "default_args=", "extra_args=",
    # virtkit's additions
    "no-isolate", "limit=", "image-format=", "platform=", "flavour=", "config=",
]
DEFAULT_OUTPUT_DIRECTORY = "/var/run/xen/pygrub/"
USAGE = (
    "Usage: %s [-q|--quiet] [-i|--interactive] [-l|--list-entries] [-n|--not-really] [--output=] "
    "[--kernel=] [--ramdisk=] [--args=] [--entry=] [--output-directory=] "
    "[--output-format=sxp|simple|simple0] [--runas=] [--offset=] [--isconfig] [--debug] "
    "[--no-isolate] [--limit=NAME=VALUE] [--image-format=raw|qcow2] [--platform=pc|xen|efi] "
    "[--flavour=upstream|fedora] [--config=DEVICE:PATH] <image> [<image>...]"
)


@dataclass
class PygrubArgs:
    images: list[str]
    interactive: bool = True
    list_entries: bool = False
    not_really: bool = False
    output: str | None = None
    output_format: str = "sxp"
    output_directory: str = DEFAULT_OUTPUT_DIRECTORY
    offset: int | None = None
    runas: int | None = None
    entry: str | None = None
    kernel: str | None = None
    ramdisk: str | None = None
    args: str = ""
    extra: list[str] = field(default_factory=list)
    isconfig: bool = False
    debug: bool = False
    isolate: bool = True
    limits: list[str] = field(default_factory=list)
    image_format: str | None = None
    platform: str | None = None
    flavour: str | None = None
    config: str | None = None


class _Exit(Exception):
    """Leave main() with a status after printing what pygrub prints."""

    def __init__(self, status: int) -> None:
        self.status = status


def _usage(prog: str) -> None:
    print(USAGE % prog, file=sys.stderr)


def parse_args(argv: Sequence[str], prog: str) -> PygrubArgs:
    """Parse pygrub's command line, with pygrub's exit behaviour for bad usage.

    Raises:
        _Exit: usage printed (status 1), or ``--help`` (status 0).
    """
    try:
        opts, args = getopt.gnu_getopt(list(argv), SHORT_OPTS, LONG_OPTS)
    except getopt.GetoptError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        _usage(prog)
        raise _Exit(1) from None
    if len(args) < 1:  # pygrub checks this before --help
        _usage(prog)
        raise _Exit(1)
    a = PygrubArgs(images=list(args))
    for o, v in opts:
        if o in ("-q", "--quiet"):
            a.interactive = False
        elif o in ("-i", "--interactive"):
            a.interactive = True
        elif o in ("-l", "--list-entries"):
            a.list_entries = True
        elif o in ("-n", "--not-really"):
            a.not_really = True
        elif o in ("-h", "--help"):
            _usage(prog)
            raise _Exit(0)
        elif o == "--output":
            a.output = None if v == "-" else v
        elif o == "--runas":
            a.runas = _parse_runas(v, prog)
        elif o == "--kernel":
            a.kernel = v
        elif o == "--ramdisk":
            a.ramdisk = v
        elif o == "--args":
            a.args = v
        elif o in ("--default_args", "--extra_args"):
            if v:
                a.extra.append(v)
        elif o == "--offset":
            try:
                a.offset = int(v)
            except ValueError:
                print("offset value must be an integer")
                _usage(prog)
                raise _Exit(1) from None
        elif o == "--entry":
            a.entry = v
            a.interactive = False  # pygrub: choosing an entry implies non-interactive
        elif o == "--isconfig":
            a.isconfig = True
        elif o == "--debug":
            a.debug = True
        elif o == "--output-format":
            if v not in ("sxp", "simple", "simple0"):
                print(f"unknown output format {v}")
                _usage(prog)
                raise _Exit(1)
            a.output_format = v
        elif o == "--output-directory":
            if not os.path.isdir(v):
                print(f"{v} is not an existing directory")
                raise _Exit(1)
            a.output_directory = v
        elif o == "--no-isolate":
            a.isolate = False
        elif o == "--limit":
            a.limits.append(v)
        elif o == "--image-format":
            a.image_format = v
        elif o == "--platform":
            a.platform = v
        elif o == "--flavour":
            a.flavour = v
        elif o == "--config":
            a.config = v
    return a


def _parse_runas(v: str, prog: str) -> int:
    try:
        uid = int(v)
    except ValueError:
        try:
            uid = pwd.getpwnam(v).pw_uid
        except KeyError:
            print("runas value must be an integer user id or a user name")
            _usage(prog)
            raise _Exit(1) from None
    if uid == 0:
        print("runas: refusing to run the parser as root (uid 0)")
        raise _Exit(1)
    return uid


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``virtkit-pygrub``; returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    prog = argv[0] if argv else "virtkit-pygrub"
    try:
        args = parse_args(argv[1:], prog)
    except _Exit as e:
        return e.status
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="virtkit-pygrub: %(message)s")
    try:
        from virtkit.cli.pygrub_run import run

        return run(args)
    except _Exit as e:
        return e.status
    except BaseException as exc:
        shown = os.path.basename(prog) or "virtkit-pygrub"
        status = report_error(exc, prog=shown, debug=args.debug, excerpt=False)
        detail = getattr(exc, "detail", "")
        if args.debug and isinstance(detail, str) and detail:
            from virtkit.sanitize import sanitize_text

            sys.stderr.write(sanitize_text(detail, keep_newlines=True) + "\n")
        return status



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
