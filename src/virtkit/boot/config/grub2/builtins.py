"""GRUB 2's script commands: variables, control flow, menus, includes, and the harmless rest.

References:
    grub-core/kern/corecmd.c (GRUB 2.06): ``set`` ("not an assignment"), ``unset``, ``insmod``.
    grub-core/normal/context.c: ``export``.  grub-core/commands/echo.c: ``echo -n -e``.
    grub-core/script/execute.c: ``break``/``continue``/``shift``/``setparams``/``return``.
    grub-core/commands/menuentry.c: options, ``setparams`` prefix, default id = title.
    grub-core/commands/configfile.c: ``source``/``.`` (same context and menu),
    ``configfile`` (new context, new menu, shown at once); missing files are silent.
    grub-core/commands/eval.c, minicmd.c, sleep.c, keystatus.c, loadenv.c, hwmatch.c.

Each command is ``fn(interp, name, args, has_block) -> status``; errors go through
``interp.error(code, message)`` so they print as ``error: MESSAGE.`` the way GRUB does.
:func:`build_command_table` makes the table the interpreter looks commands up in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.argopts import ArgError, HelpRequested, Opt, parse_args
from virtkit.boot.config.grub2.ast import Command, Var
from virtkit.boot.config.grub2.env import MenuItemDef
from virtkit.boot.config.grub2.interp import MenuShown, StopEvaluation
from virtkit.boot.config.grub2.loaders import LOADER_COMMANDS, trace_marker
from virtkit.boot.config.grub2.paths import open_error, read_bytes
from virtkit.boot.config.grub2.test_cmd import cmd_test, grub_strtoul

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import CommandFn, Interpreter
    from virtkit.boot.config.grub2.tokens import ScriptText

__all__ = ["NOOP_COMMANDS", "build_command_table", "setparams_prefix"]


def _usage(interp: Interpreter, name: str) -> int:
    interp.write(f"Usage: {name}\n")
    return 0


def _words_raw(interp: Interpreter) -> str:
    node = getattr(interp, "cur_node", None)
    if isinstance(node, Command):
        return " ".join(w.raw for w in node.words)
    return ""


def _arg_refs(interp: Interpreter, index: int) -> tuple[str, tuple[str, ...]]:
    """The raw text and referenced variables of word ``index`` of the current command."""
    node = getattr(interp, "cur_node", None)
    if isinstance(node, Command) and index < len(node.words):
        w = node.words[index]
        return w.raw, tuple(p.name for p in w.parts if isinstance(p, Var))
    return "", ()


# -- variables -----------------------------------------------------------------


def cmd_set(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if not args:
        for k in sorted(interp.ctx.vars):
            interp.write(f"{k}={interp.ctx.vars[k].value}\n")
        return 0
    eq = args[0].find("=")
    if eq < 0:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "not an assignment")
    raw, refs = _arg_refs(interp, 1)
    interp.set(args[0][:eq], args[0][eq + 1 :], "set", raw, refs=refs)
    return 0


def cmd_unset(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "one argument expected")
    interp.unset(args[0])
    return 0


def cmd_export(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "one argument expected")
    for a in args:
        interp.ctx.export(a)
    return 0


_ECHO_OPTS = (Opt(None, "n"), Opt(None, "e"))
_ECHO_ESC = {"\\": "\\", "a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def cmd_echo(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, words = parse_args(_ECHO_OPTS, args, accept_dash=True, options_at_start=True)
    except HelpRequested:
        return _usage(interp, "echo [-e|-n] STRING")
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    newline = "n" not in state
    escapes = "e" in state
    out: list[str] = []
    for i, arg in enumerate(words):
        if escapes and "\\" in arg:
            buf: list[str] = []
            j = 0
            while j < len(arg):
                ch = arg[j]
                if ch == "\\":
                    j += 1
                    if j >= len(arg):
                        break
                    c = arg[j]
                    if c == "c":
                        newline = False
                    elif c in _ECHO_ESC:
                        buf.append(_ECHO_ESC[c])
                    j += 1
                    continue
                buf.append(ch)
                j += 1
            arg = "".join(buf)
        out.append(arg)
        if i != len(words) - 1:
            out.append(" ")
    if newline:
        out.append("\n")
    interp.write("".join(out))
    return 0


def cmd_true(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    return 0


def cmd_false(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    return interp.error(E.GRUB_ERR_TEST_FAILURE, "false")


# -- control flow --------------------------------------------------------------


def cmd_break(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if not args:
        count = 1
    elif len(args) > 1:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "one argument expected")
    else:
        count, end, err = grub_strtoul(args[0], 10)
        if err is not None:
            return interp.error(E.GRUB_ERR_BAD_NUMBER if end == 0 else E.GRUB_ERR_OUT_OF_RANGE, err)
        if end != len(args[0]):
            return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "unrecognized number")
        if count == 0:
            return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "can't break 0 loops")
    interp.is_continue = name != "break"
    interp.active_breaks = min(count, interp.active_loops)
    return 0


def cmd_shift(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    scope = interp.scope
    if scope is None:
        return 0
    if not args:
        n = 1
    elif len(args) > 1:
        return E.GRUB_ERR_BAD_ARGUMENT
    else:
        n, end, err = grub_strtoul(args[0], 10)
        if err is not None:
            interp.error(E.GRUB_ERR_BAD_NUMBER, err)
            return E.GRUB_ERR_BAD_ARGUMENT
        if end != len(args[0]):
            return E.GRUB_ERR_BAD_ARGUMENT
    if n > len(scope.args):
        return E.GRUB_ERR_BAD_ARGUMENT
    del scope.args[:n]
    return 0


def cmd_setparams(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if interp.scope is None:
        return E.GRUB_ERR_INVALID_COMMAND
    interp.scope.args = list(args)
    return 0


def cmd_return(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if interp.scope is None or len(args) > 1:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "not in function body")
    if not args:
        interp.function_return = True
        q = interp.get("?")
        if q is None:
            return 0
        v, _, _ = grub_strtoul(q, 10)
        return v & 0x7FFFFFFF
    n, end, err = grub_strtoul(args[0], 10)
    if err is not None:
        return interp.error(E.GRUB_ERR_BAD_NUMBER, err)
    if end != len(args[0]):
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "unrecognized number")
    interp.function_return = True
    n &= 0x7FFFFFFF
    return interp.error(n, "false") if n else 0


def cmd_eval(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    code = " ".join(args)
    interp.check_string(len(code))
    script = interp.make_code(code, origin=interp.location(), how="eval")
    interp.enter_call()
    try:
        return interp.execute_sourcecode(script)
    finally:
        interp.call_depth -= 1


def cmd_stop(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    raise StopEvaluation(name, interp.location())


def cmd_boot(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.warn("`boot` inside the configuration is not run (nothing is booted while reading a menu)")
    return 0


# -- menus ---------------------------------------------------------------------

_MENU_OPTS = (
    Opt("class", "\x01", value=True, repeatable=True),
    Opt("users", "\x02", value=True),
    Opt("hotkey", "\x03", value=True),
    Opt("source", "\x04", value=True),
    Opt("id", None, value=True),
    Opt("unrestricted", None),
)

_HOTKEYS = frozenset(["backspace", "tab", "delete", "insert"] + [f"f{i}" for i in range(1, 13)])


def setparams_prefix(args: list[str] | tuple[str, ...]) -> str:
    """The ``setparams 'TITLE' 'ARG'...`` line GRUB puts before an entry's body."""
    quoted = "".join(" '" + a.replace("'", "'\\''") + "'" for a in args)
    return f"setparams{quoted}\n"


def cmd_menuentry(interp: Interpreter, name: str, args: list[str], has_block: bool) -> int:
    try:
        state, pos = parse_args(_MENU_OPTS, args, accept_dash=True)
    except HelpRequested:
        return _usage(interp, f"{name} BLOCK")
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    if not pos:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "missing arguments")
    if "source" in state and has_block:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "multiple menuentry definitions")
    if "source" not in state and not has_block:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "no menuentry definition")
    if "users" in state:
        users: str | None = state["users"]
    elif "unrestricted" in state:
        users = None
    else:
        users = ""
    classes = tuple(state.get("class") or ())
    hotkey = state.get("hotkey")
    node = getattr(interp, "cur_node", None)
    origin = interp.location()
    body_line = 0
    if isinstance(node, Command) and node.block is not None and interp.cur_script is not None:
        body_line = interp.cur_script.location(node.block.pos).line
    if not has_block:
        titles = pos
        source = state["source"] or ""
        raw_body = source
    else:
        src = pos[-1]
        titles = pos[:-1]
        raw_body = src[1:-1]
        source = setparams_prefix(titles) + raw_body
    if not titles:
        return interp.error(E.GRUB_ERR_MENU, "menuentry is missing title")
    title = titles[0]
    item = MenuItemDef(
        title=title,
        id=state["id"] if state.get("id") is not None else title,
        args=tuple(titles),
        classes=classes,
        users=users,
        hotkey=hotkey,
        source=source,
        submenu=name == "submenu",
        origin=origin,
        body_line=body_line,
        raw_body=raw_body,
    )
    if has_block and isinstance(node, Command) and node.block is not None and node.block.text == raw_body:
        item.body_block = node.block  # its statements are parsed when the entry first runs
        item.body_script = interp.cur_script
    return interp.add_menu_item(item)


# -- includes ------------------------------------------------------------------


def cmd_source(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if len(args) != 1:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    extractor = name.startswith("extract_entries_")
    new_env = name in ("configfile", "normal", "extract_entries_configfile")
    how = _words_raw(interp) or f"{name} {args[0]}"
    script = interp.read_config_file(args[0], how=how)
    if extractor:
        return _extract_entries(interp, script, args[0], new_env=new_env)
    if not new_env:
        if script is not None:
            interp.run_config(script, args[0])
        return 0
    if name == "normal":
        interp.warn("`normal FILE` starts a nested normal mode; treated like `configfile`")
    child = interp.ctx.new_child()
    interp.push_context(child)
    try:
        if script is not None:
            child.menu = []
            interp.run_config(script, args[0])
    finally:
        interp.pop_context()
    if child.menu:
        raise MenuShown(child, args[0])
    return 0


def _extract_entries(interp: Interpreter, script: ScriptText | None, written: str, *, new_env: bool) -> int:
    """``extract_entries_source``/``extract_entries_configfile`` (grub_env_extractor_open/close).

    The file runs in a new context (every variable copied for _source, exported ones for
    _configfile) with a new menu, and only extractor commands run: set, test, menuentry,
    submenu, search.  _source then appends the entries to the current menu and drops the
    context (its variables do not leak); _configfile shows the new menu, as configfile does.
    """
    child = interp.ctx.new_child(export_all=not new_env)
    child.menu = []
    interp.push_context(child)
    interp.extractor_level += 1
    try:
        if script is not None:
            interp.run_config(script, written)
    except BaseException:
        interp.extractor_level -= 1
        raise
    finally:
        interp.pop_context()
    if new_env and child.menu:
        # GRUB shows this menu from inside the extractor, so the level stays raised: the
        # entries' bodies run under the same restriction (and cannot boot)
        raise MenuShown(child, written)
    interp.extractor_level -= 1
    if interp.ctx.menu is not None:
        interp.ctx.menu.extend(child.menu)
    return 0


# -- modules, display and the harmless rest ---------------------------------------


def cmd_insmod(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "one argument expected")
    interp.machine.modules.add(args[0])
    return 0


def cmd_noop(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    return 0


def cmd_not_interpreted(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.warn(f"`{name}` is a GRUB command virtkit does not interpret (treated as success)")
    return 0


def cmd_read(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.warn("`read` waits for the keyboard on a real console; taken as an empty line")
    for a in args:
        interp.set(a, "")
    return 0


_KEY_OPTS = (Opt("shift", "s"), Opt("ctrl", "c"), Opt("alt", "a"))


def cmd_keystatus(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, _ = parse_args(_KEY_OPTS, args)
    except HelpRequested:
        return _usage(interp, name)
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    del state  # no modifier key is held during an unattended boot; GRUB says false then, and without options too
    return E.GRUB_ERR_TEST_FAILURE


def cmd_cmostest(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    return E.GRUB_ERR_TEST_FAILURE


def cmd_hwmatch(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.set("match", "0")  # a virtual machine's devices are on no blacklist
    return 0


def cmd_fwsetup(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if "--is-supported" in args:
        return 0
    trace_marker(interp, name, args)  # the oracle harness's stand-in prints one, as for loaders
    if interp.boot is not None:
        interp.boot.note("fwsetup: reboots into the firmware setup; not bootable as a PV guest")
        from virtkit.boot.config.model import EntryKind

        interp.boot.kind = EntryKind.OTHER
    return 0


def cmd_loadfont(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if not args:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "filename expected")
    for a in args:
        path = a if a[:1] in ("(", "/", "+") else f"{interp.get('prefix') or ''}/fonts/{a}.pf2"
        rp, err = open_error(interp, path)
        if err is not None:
            return interp.error(*err)
        head = read_bytes(interp, rp, limit=16 << 20)
        if head is not None and not head.startswith(_PFF2_MAGIC):
            return interp.error(E.GRUB_ERR_BAD_FONT, "font file format error: 1st section must be FILE")
    return 0


_PFF2_MAGIC = b"FILE\0\0\0\x04PFF2"  # grub-core/font/font.c: the FILE section holding "PFF2"


def cmd_increment(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if len(args) != 1:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "Invalid number of arguments")
    old = interp.get(args[0])
    if old is None:
        return interp.error(E.GRUB_ERR_FILE_NOT_FOUND, f"No such variable \"{args[0]}\"")
    v, _, err = grub_strtoul(old, 0)
    if err is not None:
        return interp.error(E.GRUB_ERR_BAD_NUMBER, err)
    v = v + 1 if name == "increment" else v - 1
    interp.set(args[0], str(max(v, 0) if name == "decrement" else v))
    return 0


def cmd_lsmod(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.write("Name\tRef Count\tDependencies\n")  # the modules of a running GRUB are unknowable here
    return 0


def cmd_password(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    if len(args) != 2:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "two arguments expected")
    users = getattr(interp, "password_users", None)
    if isinstance(users, list) and args[0] not in users:
        users.append(args[0])
    return 0


# Presentation and hardware commands that change nothing a boot depends on.
NOOP_COMMANDS = ["terminal_output", "terminal_input", "terminfo", "serial", "gfxterm", "background_image", "background_color", "videoinfo", "videotest", "play", "clear", "rmmod", "dl_dependencies", "lsfonts", "lsapm", "lspci", "lsacpi", "set_video", "gfxmode_set", "tr", "date", "sleep", "cmosclean", "badram", "cutmem", "smbios", "tpm_measure", "authenticate", "nativedisk", "usb", "efi_gop", "efi_uga", "vbeinfo", "vbetest", "multiboot_init", "gettext", "cryptomount", "loopback", "drivemap", "parttool", "hdparm", "setpci", "outb", "outw", "outl", "inb", "inw", "inl", "connectefi", "bli", "ls", "cat", "hexdump", "help", "lsefi", "lsefimmap", "lsefisystab", "lssal", "cbmemc", "net_bootp", "net_dhcp", "net_ls_addr", "net_ls_cards", "net_ls_routes", "net_nslookup"]

_NOT_INTERPRETED = ["xnu_kernel", "xnu_kernel64", "xnu_mkext", "xnu_kext", "xnu_kextdir", "xnu_ramdisk", "xnu_resume", "xnu_splash", "legacy_source", "legacy_configfile", "extract_legacy_entries_source", "extract_legacy_entries_configfile", "backtrace"]


def build_command_table(platform: str) -> dict[str, CommandFn]:
    """The commands registered on a GRUB for ``platform`` (module commands autoload)."""
    from virtkit.boot.config.grub2.blscmd import cmd_blscfg
    from virtkit.boot.config.grub2.envcmds import cmd_list_env, cmd_load_env, cmd_save_env
    from virtkit.boot.config.grub2.regexp import cmd_regexp
    from virtkit.boot.config.grub2.search import cmd_probe, cmd_search, cmd_search_short

    table: dict[str, CommandFn] = {
        "set": cmd_set,
        "unset": cmd_unset,
        "export": cmd_export,
        "echo": cmd_echo,
        "true": cmd_true,
        "false": cmd_false,
        "test": cmd_test,
        "[": cmd_test,
        "break": cmd_break,
        "continue": cmd_break,
        "shift": cmd_shift,
        "setparams": cmd_setparams,
        "return": cmd_return,
        "eval": cmd_eval,
        "menuentry": cmd_menuentry,
        "submenu": cmd_menuentry,
        "source": cmd_source,
        ".": cmd_source,
        "configfile": cmd_source,
        "extract_entries_source": cmd_source,
        "extract_entries_configfile": cmd_source,
        "normal": cmd_source,
        "insmod": cmd_insmod,
        "halt": cmd_stop,
        "reboot": cmd_stop,
        "exit": cmd_stop,
        "normal_exit": cmd_stop,
        "boot": cmd_boot,
        "read": cmd_read,
        "keystatus": cmd_keystatus,
        "hwmatch": cmd_hwmatch,
        "loadfont": cmd_loadfont,
        "increment": cmd_increment,
        "decrement": cmd_increment,
        "password": cmd_password,
        "lsmod": cmd_lsmod,
        "password_pbkdf2": cmd_password,
        "load_env": cmd_load_env,
        "save_env": cmd_save_env,
        "list_env": cmd_list_env,
        "search": cmd_search,
        "search.fs_uuid": cmd_search_short,
        "search.fs_label": cmd_search_short,
        "search.file": cmd_search_short,
        "probe": cmd_probe,
        "regexp": cmd_regexp,
        "blscfg": cmd_blscfg,
        "bls_import": cmd_blscfg,
    }
    for n in NOOP_COMMANDS:
        table.setdefault(n, cmd_noop)
    for n in _NOT_INTERPRETED:
        table.setdefault(n, cmd_not_interpreted)
    table.update(LOADER_COMMANDS)
    if platform in ("pc", "coreboot", "qemu", "multiboot"):
        table["cmostest"] = cmd_cmostest
    if platform == "efi":
        table["fwsetup"] = cmd_fwsetup
    return table

