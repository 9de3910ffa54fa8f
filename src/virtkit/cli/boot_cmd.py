"""``virtkit boot [ACTION] [IMAGE...]``: a guest's boot menu, why its default, and its kernel.

Actions (a table, :data:`ACTIONS`; more are added by registering a :class:`BootAction`):

=========  ==============================================================================
run        the default action: the menu tree, then extract the entry the guest would
           boot (or ``--entry``, or the one chosen with ``-i``) into ``--to DIR`` (a new
           temporary directory by default) and print the result
list       the menu tree with index paths, ``*`` on the default, kernel/initrds/cmdline
           (``--json``: the schema of ``docs/boot-json.md``)
explain    which configuration was used and why, and how the default was chosen, step
           by step (``--json``: the same document as ``list --json``)
extract    extract only, printing the result in ``--format``: ``text``, ``json``,
           ``sxp``/``simple``/``simple0`` (pygrub's records), ``qemu`` (``-kernel ...
           -initrd ... -append ...``) or ``libvirt`` (an ``<os>`` fragment)
=========  ==============================================================================

``IMAGE`` may be disk images (raw, qcow2), block devices, or one directory (a filesystem
root, e.g. an exported ``/boot``); with none, the bundled sample guest is used.  The first
word is an ACTION only if it names one; ``./list`` is an image called ``list``.

The guest is parsed by the deprivileged worker (``cli/_bootrun.py``; a sandbox when run as
root, ``--no-isolate`` to debug in-process); a host directory is read in-process through
``HostDirectory``.  Nothing is ever written to the guest.  Errors reach ``cli/main.py``'s
single error mapping.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pwd
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from virtkit.boot.config import FLAVOURS, PLATFORMS, GuestMenu, MenuOptions, discover_menu
from virtkit.boot.config.source import BootFiles
from virtkit.boot.extract.formats import PYGRUB_FORMATS, BootTarget, render_libvirt, render_pygrub, render_qemu
from virtkit.boot.menu import (
    SCHEMA_VERSION,
    menu_to_json,
    path_str,
    render_explain,
    render_tree,
    resolve_boot_target,
    resolve_selection,
)
from virtkit.boot.options import BootOptions
from virtkit.boot.worker import Channel
from virtkit.cli._bootrun import BootRequest, Extracted, extract, fetch_menu, open_channel, stdin_is_terminal
from virtkit.cli._common import add_image_arguments, image_paths, limits_from_args
from virtkit.errors import SelectionError, UsageError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["ACTIONS", "BootAction", "BootContext", "register", "run", "run_on_files"]

_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class BootContext:
    """What an action works with: the guest's menu and (for extraction) the worker channel."""

    guest_menu: GuestMenu
    channel: Channel | None = None
    request: BootRequest | None = None


@dataclass(frozen=True)
class BootAction:
    """One ``virtkit boot`` action.

    Attributes:
        name: the word on the command line.
        help: one line for ``--help``.
        run: ``(args, context, out) -> exit status``; the menu is already loaded.
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace, BootContext, TextIO], int]


def _selection(args: argparse.Namespace, gm: GuestMenu) -> tuple[int, ...] | None:
    spec = getattr(args, "entry", None)
    return resolve_selection(gm.menu, spec) if spec is not None else None


def _json_doc(args: argparse.Namespace, gm: GuestMenu) -> dict[str, Any]:
    doc = menu_to_json(gm.menu, candidates=gm.candidates, used=gm.used)
    sel = _selection(args, gm)
    if sel is not None:
        doc["selection"] = {"spec": args.entry, "path": list(sel), "path_str": path_str(sel),
                            "title": gm.menu.item_at(sel).title}
    return doc


def _dump(doc: Mapping[str, Any], out: TextIO) -> None:
    # ensure_ascii: guest text cannot put raw control, bidi or non-ASCII bytes on the terminal.
    out.write(json.dumps(doc, indent=2, ensure_ascii=True) + "\n")


def _run_list(args: argparse.Namespace, ctx: BootContext, out: TextIO) -> int:
    gm = ctx.guest_menu
    if args.json:
        _dump(_json_doc(args, gm), out)
        return 0
    sel = _selection(args, gm)  # a bad --entry fails before anything is printed
    out.write(render_tree(gm.menu))
    if sel is not None:
        out.write(f"selected by --entry: [{path_str(sel)}] '{gm.menu.item_at(sel).title_display}'\n")
    return 0


def _run_explain(args: argparse.Namespace, ctx: BootContext, out: TextIO) -> int:
    gm = ctx.guest_menu
    if args.json:
        _dump(_json_doc(args, gm), out)
        return 0
    _selection(args, gm)
    out.write(render_explain(gm.menu, candidates=gm.candidates, used=gm.used, selection=args.entry))
    return 0


def _extract(args: argparse.Namespace, ctx: BootContext) -> tuple[Extracted, str]:
    if ctx.channel is None or ctx.request is None:
        raise UsageError("extraction needs a guest opened through the worker")
    gm = ctx.guest_menu
    body: str | None = None
    extras = [args.args] if args.args else []
    if args.interactive:
        if not stdin_is_terminal():
            raise SelectionError("no terminal for the interactive menu (-i needs a terminal on stdin and stdout)")
        from virtkit.boot.menu.interactive import MenuSession
        from virtkit.cli.tui import run_menu

        channel, options = ctx.channel, ctx.request.options

        def command(line: str) -> list[str]:
            lines = channel.call({"op": "command", "options": options.to_wire(), "line": line}).message.get("lines")
            return [sanitize_text(str(x))[:400] for x in lines[:2000]] if isinstance(lines, list) else []

        choice = run_menu(MenuSession(gm.menu, run_command=command))
        if choice is None:
            raise SelectionError("no entry was chosen")
        path, body = choice.path, choice.body
        if choice.extra_args:
            extras.append(choice.extra_args)
    else:
        path, _entry = resolve_boot_target(gm.menu, args.entry)
    if args.stable_names and not args.to:
        raise UsageError("--stable-names needs --to DIR (a directory kept for this guest)")
    out_dir = args.to or tempfile.mkdtemp(prefix="virtkit-boot-")
    try:
        done = extract(ctx.channel, ctx.request.options, ctx.request.limits, out_dir, path=path, body=body,
                       extras=extras)
    except BaseException:
        if not args.to:
            with contextlib.suppress(OSError):  # never hide the real error behind a cleanup failure
                os.rmdir(out_dir)  # our own temporary directory: nothing left behind
        raise
    return done, path_str(path)


def _render_result(fmt: str, done: Extracted, path: str) -> str:
    t = done.target
    if fmt in PYGRUB_FORMATS:
        return render_pygrub(t, fmt)
    if fmt == "qemu":
        return render_qemu(t) + "\n"
    if fmt == "libvirt":
        return render_libvirt(t) + "\n"
    e = done.entry
    if fmt == "json":
        doc = {
            "schema_version": SCHEMA_VERSION,
            "entry": {
                "path": [int(p) for p in path.split(">")],
                "path_str": path,
                "title": e.title,
                "id": e.id,
                "kernel": {"device": e.kernel.device, "path": e.kernel.path} if e.kernel else None,
                "initrds": [{"device": r.device, "path": r.path} for r in e.initrds],
                "cmdline": e.cmdline,
            },
            "kernel": t.kernel,
            "ramdisk": t.ramdisk,
            "args": t.args,
        }
        return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    kernel_from = e.kernel.display() if e.kernel else "?"
    lines = [f"extracted [{path}] '{e.title_display}'",
             f"  kernel   {sanitize_text(t.kernel)}  <- {kernel_from}"]
    if t.ramdisk:
        parts = " + ".join(r.display() for r in e.initrds)
        lines.append(f"  ramdisk  {sanitize_text(t.ramdisk)}  <- {parts}")
    lines.append(f"  cmdline  {sanitize_text(t.args)}")
    lines.append(f"  qemu     {sanitize_text(render_qemu(t))}")
    return "\n".join(lines) + "\n"


STABLE_KERNEL = "vmlinuz"
STABLE_INITRD = "initrd.img"


def _finish(args: argparse.Namespace, done: Extracted, path: str) -> str:
    """Render the result and commit the files (under their stable names with --stable-names)."""
    try:
        if not args.stable_names:
            text = _render_result(args.format, done, path)
            done.files.commit()
            return text
        t = done.target
        directory = os.path.dirname(t.kernel)
        renames = {os.path.basename(t.kernel): STABLE_KERNEL}
        ramdisk = None
        if t.ramdisk:
            renames[os.path.basename(t.ramdisk)] = STABLE_INITRD
            ramdisk = os.path.join(directory, STABLE_INITRD)
        stable = dataclasses.replace(done, target=BootTarget(os.path.join(directory, STABLE_KERNEL), ramdisk, t.args))
        text = _render_result(args.format, stable, path)
        done.files.commit(renames, drop=() if ramdisk else (STABLE_INITRD,))
        return text
    finally:
        done.files.close()


def _run_extract(args: argparse.Namespace, ctx: BootContext, out: TextIO) -> int:
    done, path = _extract(args, ctx)
    out.write(_finish(args, done, path))
    return 0


def _run_run(args: argparse.Namespace, ctx: BootContext, out: TextIO) -> int:
    if args.interactive:  # the menu itself is the tree
        return _run_extract(args, ctx, out)
    resolve_boot_target(ctx.guest_menu.menu, args.entry)  # a bad --entry fails before anything is printed
    done, path = _extract(args, ctx)
    text = _finish(args, done, path)
    # the menu tree is for people; a machine format (json, sxp, simple0, qemu, ...) stays parseable
    out.write(render_tree(ctx.guest_menu.menu) + "\n" + text if args.format == "text" else text)
    return 0


ACTIONS: dict[str, BootAction] = {
    a.name: a
    for a in (
        BootAction("run", "show the menu, then extract the entry the guest would boot (the default action)", _run_run),
        BootAction("list", "show the menu tree and its default", _run_list),
        BootAction("explain", "show which configuration was used and how the default was chosen", _run_explain),
        BootAction("extract", "extract the kernel and initrd(s) and print them in --format", _run_extract),
    )
}
DEFAULT_ACTION = "run"
READ_ONLY_ACTIONS = ("list", "explain")


def register(subparsers: Any) -> None:
    """Add the ``boot`` subcommand (argparse set-up only)."""
    actions = "\n".join(f"  {a.name:<9} {a.help}" for a in ACTIONS.values())
    p = subparsers.add_parser(
        "boot",
        help="show a guest's boot menu, its default entry and why",
        usage="virtkit boot [ACTION] [IMAGE ...] [options]",
        description="Read a guest's boot-loader configuration (GRUB 2, GRUB legacy, extlinux/syslinux, lilo, "
        "systemd-boot) the way its own boot loader would.\n\nactions:\n" + actions,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Options and IMAGEs may come in any order. The first word is an ACTION only if it names "
        "one (use ./list for an image called list). Exit statuses: 2 usage, 3 unreadable/hostile image or a limit, "
        "4 file missing, 5 no usable configuration, 6 --entry matches nothing.",
    )
    add_image_arguments(p)
    p.add_argument("--config", metavar="DEVICE:PATH",
                   help="use this configuration file, e.g. hd0,msdos1:/grub/menu.lst, (hd0,gpt2)/boot/grub/grub.cfg "
                        "or a bare path (the first device that has it)")
    p.add_argument("--platform", choices=PLATFORMS, help="GRUB's grub_platform, and which configurations are "
                   "preferred (efi prefers the EFI system partition); default: decided by the configuration")
    p.add_argument("--flavour", choices=FLAVOURS, help="GRUB 2 default-entry rules (default: fedora when the "
                   "config uses blscfg, else upstream)")
    p.add_argument("--set", dest="variables", action="append", default=[], metavar="VAR=VALUE",
                   help="set a GRUB variable before the configuration runs (repeatable)")
    p.add_argument("--entry", metavar="SPEC", help="an entry: index path (2, 1>2), title, id, or a title/id path "
                   "(A>B, with >> for a literal >)")
    p.add_argument("--json", action="store_true", help="list/explain: print the menu as JSON (docs/boot-json.md)")
    p.add_argument("--to", metavar="DIR", help="run/extract: write boot_kernel.XXXXXXXX and boot_ramdisk.XXXXXXXX "
                   "here (default: a new temporary directory)")
    p.add_argument("--stable-names", action="store_true",
                   help=f"run/extract: name the files {STABLE_KERNEL} and {STABLE_INITRD} in --to DIR, each replaced "
                   "atomically, so a libvirt domain's <kernel>/<initrd> paths stay valid across kernel updates")
    p.add_argument("--format", default="text", choices=("text", "json", *PYGRUB_FORMATS, "qemu", "libvirt"),
                   help="run/extract: how to print the result (default: text)")
    p.add_argument("--args", metavar="ARGS", help="run/extract: append these kernel arguments")
    p.add_argument("-i", "--interactive", action="store_true", help="run/extract: choose in the interactive menu")
    p.add_argument("--no-isolate", action="store_true", help="parse in this process instead of a sandboxed "
                   "worker (debugging only)")
    p.add_argument("--runas", type=_uid, metavar="USER", help="the worker's uid when run as root (default: a "
                   "fresh unprivileged uid)")
    p.set_defaults(func=run)


def _uid(value: str) -> int:
    try:
        uid = int(value)
    except ValueError:
        try:
            uid = pwd.getpwnam(value).pw_uid
        except KeyError:
            raise argparse.ArgumentTypeError(f"no such user: {value}") from None
    if uid == 0:
        raise argparse.ArgumentTypeError("the worker must not run as root (uid 0)")
    return uid


def parse_variables(items: list[str]) -> dict[str, str]:
    """``--set VAR=VALUE`` items -> dict.

    Raises:
        UsageError: no ``=`` or a name GRUB would not accept.
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _VAR_RE.match(name):
            raise UsageError(f"--set wants VAR=VALUE with a variable name of letters, digits and _, "
                             f"got '{sanitize_text(item)}'")
        out[name] = value
    return out


def split_action(words: list[str]) -> tuple[str, list[str]]:
    """``[ACTION] IMAGE...`` -> (action, images)."""
    if words and words[0] in ACTIONS:
        return words[0], words[1:]
    return DEFAULT_ACTION, words


def _options(args: argparse.Namespace) -> MenuOptions:
    return MenuOptions(platform=args.platform, flavour=args.flavour, variables=parse_variables(args.variables))


def run_on_files(args: argparse.Namespace, files: BootFiles, *, action: str = "list", limits: Limits,
                 out: TextIO | None = None) -> int:
    """Run a read-only action on already-opened guest files (the in-process core used by tests).

    Raises:
        VirtkitError subclasses: no configuration, bad options, a bad --entry, limits.
    """
    if action not in READ_ONLY_ACTIONS:
        raise UsageError(f"{action} needs a guest opened through the worker")
    gm = discover_menu(files, limits=limits, options=_options(args), config=args.config)
    return ACTIONS[action].run(args, BootContext(gm), out or sys.stdout)


def run(args: argparse.Namespace) -> int:
    """``virtkit boot``: open the guest in the worker, load its menu, run the action."""
    action, images = split_action(list(args.images or []))
    args.images = images
    limits = limits_from_args(args)
    opts = _options(args)  # report usage errors before any image is opened
    if args.to is not None and not os.path.isdir(args.to):
        raise UsageError(f"--to {args.to}: not an existing directory")
    paths = image_paths(args)
    if any(os.path.isdir(p) for p in paths) and len(paths) > 1:
        raise UsageError("a directory can only be given alone (it is treated as one filesystem root)")
    options = BootOptions(config=args.config, platform=opts.platform, flavour=opts.flavour,
                          variables=dict(opts.variables))
    req = BootRequest(images=paths, limits=limits, options=options, image_format=args.image_format,
                      sector_size=args.sector_size, backing=args.backing, isolate=not args.no_isolate,
                      runas=args.runas)
    with open_channel(req) as channel:
        gm = fetch_menu(channel, options, limits)
        return ACTIONS[action].run(args, BootContext(gm, channel, req), sys.stdout)
