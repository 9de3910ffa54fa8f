"""The ``virtkit`` command: subcommand dispatch and the one place errors become exit codes.

Each subcommand lives in its own module under ``virtkit.cli`` and exposes
``register(subparsers)`` (argparse set-up only: cheap, no heavy imports) and
sets ``func`` on its parser to a ``run(args) -> int`` callable.

Error handling (STYLE.md, idea 4): :func:`run_cli` is the only ``except``
that turns a :class:`~virtkit.errors.VirtkitError` into one line on stderr and
its ``exit_status``; configuration errors add the quoted source line.  Any
other exception is a bug: traceback plus "please report", exit 70.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TextIO

from virtkit import __version__
from virtkit.errors import ConfigError, LimitExceeded, VirtkitError
from virtkit.sanitize import sanitize_text

__all__ = ["EXIT_INTERNAL", "main", "report_error", "run_cli"]

EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130

# name -> module; each module has register(subparsers).  Order = order in --help.
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("boot", "virtkit.cli.boot_cmd"),
    ("inspect", "virtkit.cli.inspect_cmd"),
    ("ls", "virtkit.cli.fs_cmds"),
    ("cat", "virtkit.cli.fs_cmds"),
    ("entropy", "virtkit.cli.entropy_cmd"),
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtkit",
        description="Tools for Xen and KVM hosts: take kernels out of guest images safely "
        "(virtkit boot, virtkit-pygrub), inspect guest disks, feed guests entropy.",
    )
    parser.add_argument("--version", action="version", version=f"virtkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for _name, module_name in SUBCOMMANDS:
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a subcommand not built yet
        module.register(sub)
    return parser


def _write_excerpt(exc: VirtkitError, out: TextIO) -> None:
    """A configuration error (or a limit a configuration hit): the source line, a caret and the
    include chain; an error rebuilt from the worker carries that excerpt as its detail."""
    loc = getattr(exc, "location", None)
    if loc is not None and hasattr(loc, "render_excerpt"):
        out.write(loc.render_excerpt() + "\n")
    elif isinstance(exc, (ConfigError, LimitExceeded)):
        detail = str(exc.__dict__.get("detail") or "")
        if detail:
            out.write("\n".join(sanitize_text(line) for line in detail.splitlines()[:40]) + "\n")


def report_error(exc: BaseException, *, prog: str, debug: bool, stream: TextIO | None = None,
                 excerpt: bool = True) -> int:
    """Print ``exc`` the way virtkit reports errors and return the exit status.

    ``excerpt``: after the one error line, show a configuration error's source line, caret and
    include chain (``virtkit-pygrub`` keeps to one line, as libxl logs it, unless ``--debug``).
    """
    out = stream or sys.stderr
    if isinstance(exc, VirtkitError):
        out.write(f"{prog}: error: {sanitize_text(str(exc))}\n")
        if excerpt or debug:
            _write_excerpt(exc, out)
        if debug:
            traceback.print_exception(exc, file=out)
        return exc.exit_status
    if isinstance(exc, KeyboardInterrupt):
        out.write(f"{prog}: interrupted\n")
        return EXIT_INTERRUPTED
    out.write(f"{prog}: internal error: {type(exc).__name__}: {exc}\nthis is a bug in virtkit, please report it with the traceback below\n")
    traceback.print_exception(exc, file=out)
    return EXIT_INTERNAL


def run_cli(func: Callable[[], int], *, prog: str, debug: bool) -> int:
    """Run ``func`` and map every failure to an exit status (the one conversion point)."""
    try:
        return func()
    except SystemExit:
        raise
    except BaseException as exc:
        return report_error(exc, prog=prog, debug=debug)


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``, letting options and IMAGE words of a subcommand come in any order.

    argparse gives a ``nargs='*'`` positional only the words before the first option, so
    ``virtkit boot extract --to DIR IMAGE`` would be refused; a subcommand is therefore
    re-parsed with ``parse_intermixed_args`` (subcommands with nested subcommands, which
    argparse cannot intermix, keep the ordinary parse).
    """
    subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if subparsers is None:
        return parser.parse_args(argv)
    for i, word in enumerate(argv):
        if word in subparsers.choices:
            sub = subparsers.choices[word]
            if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                break
            ns = parser.parse_args(argv[:i])
            ns.command = word
            parsed: argparse.Namespace = sub.parse_intermixed_args(argv[i + 1 :], namespace=ns)
            return parsed
        if not word.startswith("-"):
            break
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parse_command_line(parser, args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="virtkit: %(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return run_cli(lambda: int(args.func(args) or 0), prog="virtkit", debug=args.debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
