"""What an unattended GRUB prints when it boots the default entry and its fallbacks.

References:
    grub-core/normal/menu.c (GRUB 2.06): ``show_menu``, ``run_menu`` (``timeout=0``
    boots at once), ``grub_menu_execute_with_fallback`` ("Booting `%s'", "Falling
    back to `%s'", "Failed to boot both default and fallback entries."),
    ``grub_menu_execute_entry`` (entries run in the *current* context, one after the
    other, so a failed default leaves its changes behind for the fallback), and
    ``grub_wait_after_message`` ("Press any key to continue...").

This replays exactly that sequence with the loader commands replaced by the
oracle harness's markers (nothing is ever loaded, so every entry "fails" and the
fallbacks run), which is what ``grub-emu`` prints under the harness in
``tests/oracle/grub_emu.py``.  It exists to compare the two.
"""

from __future__ import annotations

import dataclasses

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.defaults import parse_timeout, resolve_entry
from virtkit.boot.config.grub2.env import Context, MenuItemDef
from virtkit.boot.config.grub2.interp import MenuShown, StopEvaluation
from virtkit.boot.config.grub2.session import Grub2Options, Grub2Session
from virtkit.boot.config.grub2.test_cmd import grub_strtoul
from virtkit.boot.config.source import BootFiles
from virtkit.limits import Limits

__all__ = ["autoboot_transcript"]


class _Done(Exception):
    """GRUB would now wait for a key forever (or has exited)."""


def _take_fallback(sess: Grub2Session, ctx: Context) -> int:
    """``get_and_remove_first_entry_number(menu, "fallback")``."""
    val = ctx.get("fallback")
    if val is None:
        return -1
    items = ctx.menu or []
    if sess.flavour != "fedora":
        num, end, err = grub_strtoul(val, 0)
        if err is not None:
            ctx.unset("fallback")
            return -1
        ctx.set("fallback", val[end:].lstrip(" \t\n\r\f\v"))
        entry = num & 0xFFFFFFFF
        return entry - (1 << 32) if entry >= 1 << 31 else entry
    from virtkit.boot.config.grub2.defaults import fallback_order

    order = fallback_order(val, [d.title for d in items], [d.id for d in items], fedora=True, limit=1)
    if not order:
        ctx.unset("fallback")
        return -1
    rest = val.split(None, 1)
    if len(rest) > 1:
        ctx.set("fallback", rest[1])
    else:
        ctx.unset("fallback")
    return order[0]


def _execute_entry(sess: Grub2Session, item: MenuItemDef, auto_boot: bool) -> int:
    i = sess.interp
    errs_before = i.printed_errors
    chosen = i.get("chosen")
    def_ = i.get("default")
    outer = i.ctx
    sub = sess._enter(item, auto_boot=auto_boot)
    if i.printed_errors != errs_before:
        i.write("\nPress any key to continue...\n")
    err = 0
    if sub is not None:
        if sub.menu:
            _show_menu(sess, sub, nested=True, autobooted=auto_boot)
        i.pop_context()
    assert i.ctx is outer
    if chosen is not None:
        i.ctx.set("chosen", chosen)
    else:
        i.ctx.unset("chosen")
    if def_ is not None:
        i.ctx.set("default", def_)
    else:
        i.ctx.unset("default")
    i.ctx.unset("timeout")
    return err


def _show_menu(sess: Grub2Session, ctx: Context, *, nested: bool, autobooted: bool) -> None:
    i = sess.interp
    items = ctx.menu or []
    while True:
        res = resolve_entry(ctx.get("default"), [d.title for d in items], [d.id for d in items], fedora=sess.flavour == "fedora")
        timeout = parse_timeout(ctx.get("timeout"))
        if timeout < 0:
            ctx.unset("timeout_style")
            raise _Done("menu waits for a key")
        ctx.unset("timeout")
        entry = items[res.index]
        if sess.flavour != "fedora":
            i.write(f"  Booting `{entry.title}'\n\n")
        err = _execute_entry(sess, entry, True)
        if not (sess.flavour == "fedora" and err == E.GRUB_ERR_NONE):
            while True:
                fb = _take_fallback(sess, ctx)
                if fb < 0:
                    break
                i.print_error()
                if fb >= len(items):
                    raise _Done("fallback names a missing entry")
                i.write(f"\n   Falling back to `{items[fb].title}'\n\n")
                err = _execute_entry(sess, items[fb], True)
                if sess.flavour == "fedora" and err == E.GRUB_ERR_NONE:
                    break
        if not autobooted:
            i.print_error()
            i.write("\n  Failed to boot both default and fallback entries.\n")
            i.write("\nPress any key to continue...\n")
        if autobooted:
            return
        raise _Done("back at the menu")


def autoboot_transcript(
    files: BootFiles,
    device: str | None,
    path: str,
    *,
    limits: Limits,
    options: Grub2Options | None = None,
    default_override: str | None = None,
) -> str:
    """Everything GRUB prints from reading the config through the failed automatic boot.

    Args:
        default_override: a value the harness assigns to ``default`` after the config
            (to boot one particular entry), or None.

    Returns:
        The console text (loader commands print ``@@name ...`` marker lines).
    """
    opts = dataclasses.replace(options or Grub2Options(), trace=True)
    sess = Grub2Session(files, device, path, limits=limits, options=opts)
    i = sess.interp
    try:
        script = sess._read_main()
        if opts.flavour == "auto":
            from virtkit.boot.config.grub2.session import mentions_blscfg

            if mentions_blscfg(script.text):
                sess.flavour = "fedora"
                sess.interp = i = sess._new_interp()
        written = f"({sess.device}){sess.path}"
        try:
            i.run_config(script, written)
        except MenuShown as shown:
            # GRUB shows a configfile's menu from inside that file's context: its entries
            # run there (with the variables the file set), not in the outer one
            i.push_context(shown.context)
            _show_menu(sess, shown.context, nested=True, autobooted=False)
            return "".join(i.out)
        ctx = i.ctx
        i.write("@@END\n")
        if not ctx.menu:
            return "".join(i.out)
        ctx.set("timeout", "0")
        if default_override is not None:
            ctx.set("default", default_override)
        _show_menu(sess, ctx, nested=False, autobooted=False)
    except (_Done, StopEvaluation):
        pass
    return "".join(i.out)
