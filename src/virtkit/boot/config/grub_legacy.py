"""GRUB legacy (0.9x) ``menu.lst`` / ``grub.conf``, interpreted like GRUB 0.97's stage 2.

References:
    GNU GRUB Legacy manual (0.97), sections "Configuration", "Menu-specific commands"
    (default, fallback, hiddenmenu, timeout, title), "General commands" and "Command-line and
    menu entry commands" (root, rootnoverify, kernel, initrd, module, savedefault, chainloader,
    makeactive, map, lock, password).
    GRUB 0.97 ``stage2/stage2.c`` (``get_line_from_config``: CR dropped, TAB -> space,
    backslash-newline joins lines, ``#`` comments only at the start of a line; ``cmain``: the
    ``default`` file next to the config is read first, a ``title`` with no commands is dropped,
    a default past the last entry falls back), ``stage2/builtins.c`` (``default_func``: exactly
    ``saved`` or a number; ``fallback_func``: up to 8 numbers; ``timeout_func``; ``kernel_func``:
    ``--type=``/``--no-mem-option``), ``stage2/char_io.c`` (``safe_parse_maxint``: decimal or
    ``0x`` hex, stops at the first non-digit, fails on no digits or overflow past 2^31-1).
    Read for facts only; no code was copied.

What this engine does with each command:

==================  ================================================================
``default N``       entry N (``safe_parse_maxint``: "1abc" is 1, "-1" fails -> unchanged)
``default saved``   the number in the ``default`` file of the config's directory
                    (first 9 bytes, as GRUB's 10-byte buffer), else 0
``fallback N M``    fallback entries (GRUB keeps up to 8; numbers past the end dropped)
``timeout N``       seconds; absent = wait forever
``hiddenmenu``      ``timeout_style = "hidden"``
``title T``         starts an entry; an entry without any known command is dropped
``root (hd0,0)``    GRUB legacy numbers partitions from 0: ``(hd0,0)`` = ``hd0,msdos1``
``kernel F ARGS``   Linux kernel F on the root device; ARGS = the command line
``initrd F``        one initrd (a second replaces the first)
``module F ARGS``   multiboot module -> with a ``xen*`` kernel: a Xen entry (not bootable)
``chainloader``     another boot loader (not bootable)
``savedefault``     what a real boot would write to the ``default`` file (never written)
``password``        noted and ignored: it only locks interactive editing
==================  ================================================================

A ``root`` device that does not exist in the guest (a partition image whose menu.lst says
``(hd0,0)``) falls back to the device the configuration was read from, as pygrub and PV-GRUB
effectively do; the entry's notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from virtkit.boot.config._support import (
    MenuBuilder,
    StepBudget,
    join_path,
    posix_dirname,
    read_source,
)
from virtkit.boot.config.grub_legacy_boot import BootRun, Resolver, entry_from_boot, run_entry
from virtkit.boot.config.grub_legacy_lex import (
    DEFAULT_FILE_BYTES,
    KNOWN_COMMANDS,
    MAX_FALLBACK_ENTRIES,
    MENU_COMMANDS,
    LegacyEntry,
    LogicalLine,
    command_name,
    line_location,
    parse_maxint,
    skip_to,
    split_logical_lines,
)
from virtkit.boot.config.model import BootEntry, BootMenu, FileRef, MenuItem
from virtkit.boot.config.source import BootFiles, SourceFile
from virtkit.errors import FileNotFound, IsADirectory, LimitExceeded, NotADirectory
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "LOADER",
    "evaluate_grub_legacy_body",
    "load_grub_legacy_menu",
    "parse_maxint",
    "probe_grub_legacy",
    "split_logical_lines",
]

LOADER = "grub-legacy"


@dataclass
class _Globals:
    default: int = 0
    fallback: list[int] = field(default_factory=list)
    timeout: int | None = None
    hidden: bool = False
    trail: list[str] = field(default_factory=list)


def probe_grub_legacy(text: str) -> int:
    """Confidence (0-100) that ``text`` is a GRUB legacy menu: ``title`` + ``kernel``/``root`` lines."""
    names = {command_name(ln.text) for ln in split_logical_lines(text[:65536])}
    score = 0
    if "title" in names:
        score += 50
    if names & {"kernel", "root", "rootnoverify", "chainloader"}:
        score += 30
    if names & {"default", "timeout", "hiddenmenu", "splashimage"}:
        score += 10
    if "menuentry" in names:
        score -= 60
    return max(0, min(score, 100))


def _read_saved_default(files: BootFiles, device: str, cfg_path: str, *, limits: Limits,
                        b: MenuBuilder) -> tuple[int, str]:
    """GRUB's saved_entryno: the number at the start of ``<config dir>/default``, else 0."""
    path = join_path(posix_dirname(cfg_path), "default")
    shown = f"({device}){path}"
    try:
        data = files.read(device, path, limit=limits.max_config_bytes)
    except (FileNotFound, IsADirectory, NotADirectory):
        return 0, f"{shown} does not exist -> saved entry 0"
    except LimitExceeded:
        b.warn(f"{shown} is larger than max_config_bytes; GRUB reads only its first bytes")
        data = b""
    head = data[:DEFAULT_FILE_BYTES].split(b"\0", 1)[0].decode("latin-1")
    value, _rest, err = parse_maxint(head)
    if value is None:
        return 0, f"{shown} starts with '{sanitize_text(head)}': {err} -> saved entry 0"
    return value, f"{shown} says {value} (first {DEFAULT_FILE_BYTES} bytes '{sanitize_text(head)}')"


def _global_command(name: str, arg: str, ln: LogicalLine, *, src: SourceFile, g: _Globals,
                    saved: tuple[int, str], b: MenuBuilder) -> None:
    loc = line_location(src, ln)
    where = f"{src.path.rsplit('/', 1)[-1]}:{ln.lineno}"
    if name == "default":
        if arg == "saved":
            g.default = saved[0]
            g.trail = [f"`default saved` ({where})", saved[1]]
            return
        value, _rest, err = parse_maxint(arg)
        if value is None:
            b.warn(f"`default {sanitize_text(arg)}`: {err}; GRUB legacy keeps the previous default", loc)
            return
        g.default = value
        g.trail = [f"`default {sanitize_text(arg.rstrip())}` ({where}) -> entry {value}"]
    elif name == "fallback":
        got: list[int] = []
        rest = arg
        while rest:
            value, after, err = parse_maxint(rest)
            if value is None or value in got:
                why = err or f"{value} is repeated"
                b.warn(f"`fallback {sanitize_text(arg)}`: {why}; GRUB legacy rejects the command", loc)
                return
            got.append(value)
            if len(got) == MAX_FALLBACK_ENTRIES:
                break
            rest = skip_to(False, after)
        g.fallback = got
    elif name == "timeout":
        value, _rest, err = parse_maxint(arg)
        if value is None:
            b.warn(f"`timeout {sanitize_text(arg)}`: {err}; ignored", loc)
            return
        g.timeout = value
    elif name == "hiddenmenu":
        g.hidden = True
    elif name == "password":
        b.warn("`password` set: GRUB legacy locks interactive editing with it; ignored (nothing here needs it)", loc)
    # color, splashimage, serial, terminal ...: display settings with no effect on what boots.


# ----------------------------------------------------------------------------- entry point


def load_grub_legacy_menu(files: BootFiles, device: str | None, path: str, *, limits: Limits) -> BootMenu:
    """Interpret a GRUB legacy ``menu.lst``/``grub.conf`` like GRUB 0.97.

    Args:
        files: the guest's files.
        device: the GRUB device the config is on ("hd0,msdos1").
        path: its absolute path on that device ("/grub/menu.lst").
        limits: ``max_config_bytes``, ``max_menu_entries`` and ``max_script_steps`` apply.

    Returns:
        the menu, its default (with an explanation trail) and fallback list.

    Raises:
        FileNotFound: the config does not exist.
        LimitExceeded: the config or its menu is too large.
    """
    src = read_source(files, device, path, limits=limits)
    assert src.device is not None  # read_source refuses a missing device
    cfg_device = src.device
    b = MenuBuilder(limits, src.display)
    budget = StepBudget(limits, src.display)
    saved = _read_saved_default(files, cfg_device, src.path, limits=limits, b=b)
    g = _Globals()
    entries: list[LegacyEntry] = []
    current: LegacyEntry | None = None
    for ln in split_logical_lines(src.text):
        budget.step()
        name = command_name(ln.text)
        if name not in KNOWN_COMMANDS:
            b.warn(f"unknown command `{sanitize_text(name)}` skipped (as GRUB legacy does)", line_location(src, ln))
            continue
        if name == "title":
            if current is not None and current.lines:
                entries.append(current)
            elif current is not None:
                b.warn(f"entry '{sanitize_text(current.title)}' has no commands; GRUB legacy drops it",
                       line_location(src, current.start))
            current = LegacyEntry(title=skip_to(True, ln.text), start=ln)
            continue
        if current is None:
            if name in MENU_COMMANDS:
                _global_command(name, skip_to(True, ln.text), ln, src=src, g=g, saved=saved, b=b)
            else:
                b.warn(f"`{sanitize_text(name)}` before the first `title` is ignored", line_location(src, ln))
            continue
        current.lines.append(ln)
    if current is not None:
        if current.lines:
            entries.append(current)
        else:
            b.warn(f"entry '{sanitize_text(current.title)}' has no commands; GRUB legacy drops it",
                   line_location(src, current.start))

    items: list[MenuItem] = []
    boots: list[BootRun] = []
    resolver = Resolver(files)
    for e in entries:
        b.count_entry()
        boot = run_entry(files, e, src, cfg_device, b=b, res=resolver)
        boots.append(boot)
        items.append(entry_from_boot(e, boot, src))

    n = len(items)
    fallback = [f for f in g.fallback if f < n]
    trail = list(g.trail) or ["no `default` command -> entry 0"]
    default: int | None = g.default
    if n == 0:
        default = None
        trail.append("the menu has no entries (GRUB legacy drops to its command line)")
    elif g.default >= n:
        if fallback:
            default = fallback.pop(0)
            trail.append(f"entry {g.default} does not exist ({n} entries) -> first fallback entry {default}")
        else:
            default = 0
            trail.append(f"entry {g.default} does not exist ({n} entries) -> entry 0")
    env_writes: dict[str, str | None] = {}
    if default is not None:
        item = items[default]
        trail.append(f"entry [{default}] '{sanitize_text(item.title)}'")
        sd = boots[default].savedefault
        if sd is not None:
            target = str(default) if sd == "current" else sd
            env_writes[f"({cfg_device}){join_path(posix_dirname(src.path), 'default')}"] = target
    return BootMenu(
        loader=LOADER,
        config=FileRef(device=cfg_device, path=src.path, written=src.path),
        items=tuple(items),
        default=(default,) if default is not None else None,
        default_trail=tuple(trail),
        fallback=tuple((f,) for f in fallback),
        timeout=float(g.timeout) if g.timeout is not None else None,
        timeout_style="hidden" if g.hidden else "menu",
        env_writes=env_writes,
        warnings=tuple(b.warnings),
    )


def evaluate_grub_legacy_body(files: BootFiles, menu: BootMenu, entry: BootEntry, body: str, *,
                              limits: Limits) -> BootEntry:
    """Run an edited entry (its command lines, as GRUB legacy's ``e`` editor shows them).

    Returns:
        the entry as booting the edited commands would load it.
    """
    device = menu.config.device or ""
    src = SourceFile(device=menu.config.device, path=f"{menu.config.path} (edited)", text=body)
    b = MenuBuilder(limits, src.display)
    budget = StepBudget(limits, src.display)
    lines: list[LogicalLine] = []
    for ln in split_logical_lines(body):
        budget.step()
        if command_name(ln.text) in KNOWN_COMMANDS:
            lines.append(ln)
    e = LegacyEntry(title=entry.title, start=lines[0] if lines else LogicalLine(1, 1, ""), lines=lines)
    return entry_from_boot(e, run_entry(files, e, src, device, b=b, res=Resolver(files)), src)
