"""``virtkit boot [ACTION] [IMAGE...]``: show a guest's boot menu and explain its default.

Actions (a table, :data:`ACTIONS`; more are added by registering a :class:`BootAction`):

=========  ==============================================================================
list       the menu tree with index paths, ``*`` on the default, kernel/initrds/cmdline
           (``--json``: the schema of ``docs/boot-json.md``); the default action
explain    which configuration was used and why, and how the default was chosen, step
           by step (``--json``: the same document as ``list --json``)
=========  ==============================================================================

``IMAGE`` may be disk images (raw, qcow2), block devices, or one directory (a filesystem
root, e.g. an exported ``/boot``); with none, the bundled sample guest is used.  The first
word is an ACTION only if it names one; ``./list`` is an image called ``list``.

The guest is read in this process through the pipeline (``boot.pipeline.open_guest`` ->
``boot_files()``); nothing is ever written to it.  Errors reach ``cli/main.py``'s single
error mapping.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from virtkit.boot.config import FLAVOURS, PLATFORMS, GuestMenu, MenuOptions, discover_menu
from virtkit.boot.config.source import BootFiles
from virtkit.boot.menu import menu_to_json, path_str, render_explain, render_tree, resolve_selection
from virtkit.cli._common import add_image_arguments, image_paths, limits_from_args
from virtkit.errors import UsageError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["ACTIONS", "BootAction", "register", "run", "run_on_files"]

_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class BootAction:
    """One ``virtkit boot`` action.

    Attributes:
        name: the word on the command line.
        help: one line for ``--help``.
        run: ``(args, guest_menu, out) -> exit status``; guest_menu is already loaded.
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace, GuestMenu, TextIO], int]


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


def _run_list(args: argparse.Namespace, gm: GuestMenu, out: TextIO) -> int:
    if args.json:
        _dump(_json_doc(args, gm), out)
        return 0
    sel = _selection(args, gm)  # a bad --entry fails before anything is printed
    out.write(render_tree(gm.menu))
    if sel is not None:
        out.write(f"selected by --entry: [{path_str(sel)}] '{gm.menu.item_at(sel).title_display}'\n")
    return 0


def _run_explain(args: argparse.Namespace, gm: GuestMenu, out: TextIO) -> int:
    if args.json:
        _dump(_json_doc(args, gm), out)
        return 0
    _selection(args, gm)
    out.write(render_explain(gm.menu, candidates=gm.candidates, used=gm.used, selection=args.entry))
    return 0


ACTIONS: dict[str, BootAction] = {
    a.name: a
    for a in (
        BootAction("list", "show the menu tree and its default (the default action)", _run_list),
        BootAction("explain", "show which configuration was used and how the default was chosen", _run_explain),
    )
}
DEFAULT_ACTION = "list"


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
        epilog="Options go before the ACTION or after the IMAGEs. The first word is an ACTION only if it names "
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
    p.add_argument("--json", action="store_true", help="print the menu as JSON (docs/boot-json.md)")
    p.set_defaults(func=run)


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


def run_on_files(args: argparse.Namespace, files: BootFiles, *, action: str = DEFAULT_ACTION, limits: Limits,
                 out: TextIO | None = None) -> int:
    """Run an action on already-opened guest files (the testable core of :func:`run`).

    Raises:
        VirtkitError subclasses: no configuration, bad options, a bad --entry, limits.
    """
    gm = discover_menu(files, limits=limits, options=_options(args), config=args.config)
    return ACTIONS[action].run(args, gm, out or sys.stdout)


def run(args: argparse.Namespace) -> int:
    """``virtkit boot``: open the guest, load its menu, run the action."""
    from virtkit.boot.pipeline import open_guest

    action, images = split_action(list(args.images or []))
    args.images = images
    limits = limits_from_args(args)
    _options(args)  # report usage errors before any image is opened
    paths = image_paths(args)
    with open_guest(paths, limits=limits, fmt=args.image_format, sector_size=args.sector_size,
                    backing=args.backing) as guest:
        return run_on_files(args, guest.boot_files(), action=action, limits=limits)
