"""The work of ``virtkit-pygrub`` once its command line is parsed (see cli/pygrub.py)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from virtkit.boot.extract.formats import BootTarget, render_pygrub
from virtkit.boot.extract.writer import write_output_record
from virtkit.boot.options import BootOptions
from virtkit.cli import _bootrun
from virtkit.cli._bootrun import BootRequest
from virtkit.cli.pygrub import DEFAULT_OUTPUT_DIRECTORY, PygrubArgs
from virtkit.errors import SelectionError, UsageError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

if TYPE_CHECKING:
    from virtkit.boot.config.model import BootMenu
    from virtkit.boot.menu.interactive import BootChoice
    from virtkit.boot.worker import Channel

__all__ = ["run"]

log = logging.getLogger("virtkit.pygrub")


def _limits(args: PygrubArgs) -> Limits:
    values: dict[str, int | float] = {}
    for item in args.limits:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--limit wants NAME=VALUE, got {item!r}")
        try:
            values[name.strip().replace("-", "_")] = float(value) if "." in value else int(value, 0)
        except ValueError:
            raise UsageError(f"--limit {name}: {value!r} is not a number") from None
    return Limits.from_mapping(values) if values else Limits()


def run(args: PygrubArgs) -> int:
    limits = _limits(args)
    options = BootOptions(config=args.config, platform=args.platform, flavour=args.flavour)
    if args.isconfig:
        return _run_isconfig(args, options, limits)
    if args.output_directory == DEFAULT_OUTPUT_DIRECTORY:
        os.makedirs(args.output_directory, 0o700, exist_ok=True)
    extras = [*args.extra, args.args] if args.args else list(args.extra)
    req = BootRequest(images=args.images, limits=limits, options=options, image_format=args.image_format,
                      offset=args.offset, isolate=args.isolate, runas=args.runas)
    with _bootrun.open_channel(req) as ch:
        path: tuple[int, ...] | None = None
        body: str | None = None
        if args.kernel is None:
            menu = _bootrun.fetch_menu(ch, options, limits).menu
            if args.list_entries:
                ch.close()  # the worker's exit status counts before anything is printed
                sys.stdout.write(_bootrun.render_list(menu))
                return 0
            if not menu.items:
                raise _bootrun.no_entries(menu)
            if args.interactive and _bootrun.stdin_is_terminal():
                choice = _interactive(ch, menu, options)
                if choice is None:
                    raise SelectionError("no entry was chosen")
                path, body = choice.path, choice.body
                if choice.extra_args:
                    extras.append(choice.extra_args)
            else:
                if args.interactive:
                    log.info("no terminal for the interactive menu: booting the default entry")
                path, _entry = _bootrun.choose_entry(menu, args.entry)
            log.debug("chose entry %s", ">".join(map(str, path)))
        elif args.list_entries:
            return 0
        kernel_args = " ".join(e for e in extras if e) if args.kernel is not None else ""
        if args.not_really:
            entry, ksize, rsize = _bootrun.resolve(ch, options, limits, path=path, body=body, kernel=args.kernel,
                                                   ramdisk=args.ramdisk, args=kernel_args)
            k = entry.kernel.display() if entry.kernel else "?"
            r = " ".join(ref.display() for ref in entry.initrds) or None
            cmdline = entry.cmdline if args.kernel is not None else _bootrun.join_args(entry.cmdline, extras)
            record = render_pygrub(BootTarget(k, r, cmdline), args.output_format)
            log.debug("would extract a %d-byte kernel and a %d-byte ramdisk", ksize, rsize)
            ch.close()  # the worker's exit status counts before the record is written
            write_output_record(args.output, record)
            return 0
        done = _bootrun.extract(ch, options, limits, args.output_directory, path=path, body=body, kernel=args.kernel,
                                ramdisk=args.ramdisk, args=kernel_args, extras=extras)
        try:
            record = render_pygrub(done.target, args.output_format)
            write_output_record(args.output, record)
            done.files.commit()
        finally:
            done.files.close()
        log.debug("booting %s: %s", sanitize_text(done.entry.title), sanitize_text(done.target.args))
    return 0


def _interactive(ch: Channel, menu: BootMenu, options: BootOptions) -> BootChoice | None:
    from virtkit.boot.menu.interactive import MenuSession
    from virtkit.cli.tui import run_menu

    def command(line: str) -> list[str]:
        reply = ch.call({"op": "command", "options": options.to_wire(), "line": line})
        lines = reply.message.get("lines")
        if not isinstance(lines, list):
            return ["error: malformed reply"]
        return [sanitize_text(str(x))[:400] for x in lines[:2000]]

    return run_menu(MenuSession(menu, run_command=command))


def _run_isconfig(args: PygrubArgs, options: BootOptions, limits: Limits) -> int:
    """``--isconfig``: IMAGE is a configuration file on the host; print the chosen entry."""
    from virtkit.boot.config import load_config_file

    path = args.images[0]
    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_config_bytes + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    limits.check("max_config_bytes", len(data), path)
    menu = load_config_file(path, data, limits=limits, platform=options.platform, flavour=options.flavour)
    _p, entry = _bootrun.choose_entry(menu, args.entry)
    extras = [*args.extra, args.args] if args.args else list(args.extra)
    print(f"  kernel: {entry.kernel.display() if entry.kernel else None}")
    if entry.initrds:
        print(f"  initrd: {' '.join(r.display() for r in entry.initrds)}")
    print(f"  args: {sanitize_text(_bootrun.join_args(entry.cmdline, extras))}")
    return 0
