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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from virtkit.boot.config._support import (
    MenuBuilder,
    StepBudget,
    join_path,
    posix_dirname,
    read_source,
)
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem
from virtkit.boot.config.source import BootFiles, DeviceInfo, Location, SourceFile, normalise_path
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

MAXINT = 0x7FFFFFFF  # stage2/shared.h MAXINT
MAX_FALLBACK_ENTRIES = 8  # stage2/shared.h
DEFAULT_FILE_BYTES = 9  # stage2.c: char buf[10]; buf[9] = 0

# Every command name GRUB 0.97 (plus the common distribution patches) knows.  A line whose first
# word is not one of these is skipped silently by GRUB (``find_command`` fails).
KNOWN_COMMANDS = frozenset(
    {
        "background", "blocklist", "boot", "bootfs", "bootp", "cat", "chainloader", "cmp", "color", "configfile",
        "debug", "default", "device", "dhcp", "displayapm", "displaymem", "dump", "embed", "fallback", "find",
        "findroot", "foreground", "fstest", "geometry", "gfxmenu", "halt", "help", "hiddenmenu", "hide",
        "ifconfig", "impsprobe", "initrd", "install", "ioprobe", "kernel", "kernel$", "lock", "makeactive", "map",
        "md5crypt", "module", "module$", "modulenounzip", "pager", "partnew", "parttype", "password", "pause",
        "quit", "rarp", "read", "reboot", "root", "rootnoverify", "savedefault", "serial", "setkey", "setup",
        "splashimage", "terminal", "terminfo", "testload", "testvbe", "tftpserver", "timeout", "title", "unhide",
        "uppermem", "uuid", "vbeprobe",
    }
)
# Commands flagged BUILTIN_MENU: the only ones run before the first ``title``.
MENU_COMMANDS = frozenset(
    {
        "background", "bootp", "color", "default", "dhcp", "fallback", "foreground", "gfxmenu", "hiddenmenu",
        "hide", "ifconfig", "pager", "password", "rarp", "serial", "setkey", "splashimage", "terminal", "terminfo",
        "tftpserver", "timeout", "title", "unhide",
    }
)

_DEVICE_RE = re.compile(r"^\((?P<drive>hd|fd|cd|nd)(?P<num>\d*)(?:,(?P<part>\d+))?(?:,(?P<bsd>[a-h]))?\)")


# ----------------------------------------------------------------------------- lexing


@dataclass(frozen=True)
class LogicalLine:
    """One command line as GRUB's ``get_line_from_config`` returns it."""

    lineno: int  # physical line where it starts (1-based)
    col: int  # column of its first character
    text: str


def split_logical_lines(text: str) -> list[LogicalLine]:
    """Split a menu.lst into command lines exactly as GRUB legacy reads them.

    CR is dropped, TAB becomes a space, leading spaces are skipped, ``#`` as the first
    non-space character makes the rest a comment, and a line ending in a backslash continues
    on the next line (the backslash becomes a space) - in comments too.  A NUL ends the
    command (GRUB works on C strings).
    """
    out: list[LogicalLine] = []
    parts: list[str] = []
    start_line = 0
    start_col = 1
    in_comment = False
    for lineno, raw in enumerate(text.split("\n"), 1):
        s = raw
        if "\r" in s:
            s = s.replace("\r", "")
        if "\t" in s:
            s = s.replace("\t", " ")
        cont = s.endswith("\\")
        if in_comment:
            in_comment = cont
            continue
        if not parts:
            stripped = s.lstrip(" ")
            if not stripped or (cont and stripped == "\\"):
                continue  # empty line, or a lone continuation at pos 0 (its space is dropped)
            if stripped.startswith("#"):
                in_comment = cont
                continue
            start_line = lineno
            start_col = len(s) - len(stripped) + 1
            s = stripped
        if cont:
            parts.append(s[:-1] + " ")
            continue
        if parts:
            parts.append(s)
            line = "".join(parts)
            parts = []
        else:
            line = s
        if "\0" in line:
            line = line.split("\0", 1)[0]
        if line:
            out.append(LogicalLine(start_line, start_col, line))
    if parts:
        line = "".join(parts).split("\0", 1)[0]
        if line.strip(" "):
            out.append(LogicalLine(start_line, start_col, line))
    return out


_SKIP_WORD_EQ = re.compile(r"[^ \t=]*[ \t=]*")
_SKIP_WORD = re.compile(r"[^ \t]*[ \t]*")


def skip_to(after_equal: bool, s: str) -> str:
    """GRUB's ``skip_to``: skip the current word, then the blanks (and ``=`` if asked) after it."""
    m = (_SKIP_WORD_EQ if after_equal else _SKIP_WORD).match(s)
    return s[m.end() :] if m else s


_COMMAND_RE = re.compile(r"[^ \t=]*")


def command_name(line: str) -> str:
    """The command word: up to the first blank or ``=`` (``find_command``)."""
    m = _COMMAND_RE.match(line)
    return m.group(0) if m else ""


def parse_maxint(s: str) -> tuple[int | None, str, str | None]:
    """GRUB legacy's ``safe_parse_maxint``.

    Returns:
        ``(value, rest, error)``: value None with an error text when no digit was read or the
        number overflows 2^31-1; ``rest`` is the text after the digits.
    """
    i = 0
    base = 10
    if len(s) >= 2 and s[0] == "0" and s[1] in "xX":
        i = 2
        base = 16
    value = 0
    found = False
    while i < len(s):
        c = s[i].lower()
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif base == 16 and "a" <= c <= "f":
            d = ord(c) - 87
        else:
            break
        found = True
        if value > (MAXINT - d) // base:
            return None, s[i:], "number overflow"
        value = value * base + d
        i += 1
    if not found:
        return None, s, "not a number"
    return value, s[i:], None


# ----------------------------------------------------------------------------- parsing


@dataclass
class _Entry:
    title: str
    start: LogicalLine
    lines: list[LogicalLine] = field(default_factory=list)


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


def _loc(src: SourceFile, ln: LogicalLine) -> Location:
    return Location(file=src, line=ln.lineno, col=ln.col)



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
    loc = _loc(src, ln)
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


# ----------------------------------------------------------------------------- entries


@dataclass
class _Boot:
    """What running an entry's commands loads."""

    root: str | None
    root_note: str | None = None
    kernel: FileRef | None = None
    kernel_args: str = ""
    kernel_type: str = ""  # "linux", "multiboot", "other"
    initrd: FileRef | None = None
    modules: list[tuple[FileRef, str]] = field(default_factory=list)
    chainload: FileRef | None = None
    chain_written: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    savedefault: str | None = None


class _Resolver:
    """GRUB legacy device names -> our devices, computed once per name per load."""

    def __init__(self, files: BootFiles) -> None:
        self.devices = list(files.devices())
        self.cache: dict[str, tuple[str | None, str | None]] = {}

    def resolve(self, dev: str) -> tuple[str | None, str | None]:
        hit = self.cache.get(dev)
        if hit is None:
            hit = self.cache[dev] = _resolve_device(self.devices, dev)
        return hit


def _resolve_device(devices: Sequence[DeviceInfo], dev: str) -> tuple[str | None, str | None]:
    """Map a GRUB legacy device ("hd0,0") to one of our devices; (name, problem)."""
    m = _DEVICE_RE.match(f"({dev})")
    if not m:
        return None, f"({dev}) is not a GRUB legacy device name"
    drive, num, part, bsd = m.group("drive"), m.group("num"), m.group("part"), m.group("bsd")
    if drive != "hd":
        return None, f"({dev}) is a {'floppy' if drive == 'fd' else 'CD/network'} device, not a guest disk"
    disk = f"hd{num or '0'}"
    if bsd:
        return None, f"({dev}) names a BSD disklabel slice, which virtkit does not read"
    if part is None:
        names = [disk]
    else:
        n = int(part) + 1  # legacy counts partitions from 0
        names = [f"{disk},msdos{n}", f"{disk},gpt{n}", f"{disk},{n}"]
    for name in names:
        info = next((d for d in devices if d.matches(name)), None)
        if info is not None:
            return info.name, None
    if part is None:
        return None, f"({dev}) is not a device of this guest"
    return None, f"({dev}) is not a device of this guest (legacy partition {part} = GRUB 2 ({names[0]}))"


def _split_device(path: str) -> tuple[str | None, str]:
    """"(hd0,1)/vmlinuz" -> ("hd0,1", "/vmlinuz"); "/vmlinuz" -> (None, "/vmlinuz")."""
    if path.startswith("("):
        close = path.find(")")
        if close > 0:
            return path[1:close], path[close + 1 :]
    return None, path


def _file(res: _Resolver, boot: _Boot, written: str, cfg_device: str) -> tuple[str | None, str, str | None]:
    """Resolve a file argument against the entry's root: (device, path, error)."""
    dev_text, path = _split_device(written)
    device = boot.root
    if dev_text is not None:
        device, problem = res.resolve(dev_text)
        if device is None:
            device = cfg_device
            boot.notes.append(f"{problem}; looked on the config's device ({cfg_device}) instead")
    if path.startswith("+") or re.match(r"^\d+\+", path):
        return device, path, "blocklist"
    if not path.startswith("/"):
        return device, path, f"'{sanitize_text(written)}': GRUB legacy needs an absolute path or a blocklist"
    return device, normalise_path(path), None


def _run_entry(files: BootFiles, e: _Entry, src: SourceFile, cfg_device: str, *, b: MenuBuilder,
               res: _Resolver) -> _Boot:
    boot = _Boot(root=cfg_device)
    for ln in e.lines:
        name = command_name(ln.text)
        arg = skip_to(True, ln.text)
        loc = _loc(src, ln)
        if boot.error:
            break
        if name in ("root", "rootnoverify"):
            dev_text = arg.split(" ", 1)[0]
            if not dev_text.startswith("(") or ")" not in dev_text:
                boot.error = f"`{name} {arg.strip()}`: a device must be written in parentheses"
                break
            dev, problem = res.resolve(dev_text[1 : dev_text.index(")")])
            if dev is None:
                boot.root = cfg_device
                boot.root_note = f"`{name} {dev_text}`: {problem}; using the device the config was read from " \
                                 f"({cfg_device}), as pygrub and PV-GRUB do with partition images"
            else:
                boot.root = dev
        elif name == "uuid":
            want = arg.strip().lower()
            match = [d for d in res.devices if d.uuid and d.uuid.lower() == want]
            if match:
                boot.root = match[0].name
            else:
                boot.error = f"`uuid {arg.strip()}`: no filesystem with that UUID"
        elif name in ("kernel", "kernel$"):
            rest = arg
            ktype = ""
            while rest.startswith("--type=") or rest.startswith("--no-mem-option"):
                if rest.startswith("--type="):
                    ktype = rest[7:].split(" ", 1)[0]
                rest = skip_to(False, rest)
            written = rest.split(" ", 1)[0]
            if not written:
                boot.error = "`kernel` without a file"
                break
            device, path, err = _file(res, boot, written, cfg_device)
            if err:
                boot.error = f"kernel {err}"
                break
            boot.kernel = b.file_ref(files, device, path, written, what="kernel", location=loc)
            boot.kernel_args = skip_to(False, rest)
            boot.initrd = None
            boot.modules = []
            boot.chainload = None
            base = path.rsplit("/", 1)[-1].lower()
            if ktype == "multiboot" or base.startswith("xen"):
                boot.kernel_type = "multiboot"
            elif ktype in ("", "linux", "biglinux"):
                boot.kernel_type = "linux"
            else:
                boot.kernel_type = "other"
                boot.notes.append(f"kernel --type={ktype}: not a Linux kernel")
        elif name == "initrd":
            if boot.kernel is None or boot.kernel_type != "linux":
                boot.error = "`initrd` before a Linux `kernel` (GRUB legacy: \"Linux kernel must be loaded before initrd\")"
                break
            written = arg.split(" ", 1)[0]
            device, path, err = _file(res, boot, written, cfg_device)
            if err:
                boot.error = f"initrd {err}"
                break
            boot.initrd = b.file_ref(files, device, path, written, what="initrd", location=loc)
        elif name in ("module", "module$", "modulenounzip"):
            if boot.kernel is None:
                boot.error = "`module` before `kernel` (GRUB legacy: \"Multiboot kernel must be loaded before modules\")"
                break
            boot.kernel_type = "multiboot"
            written = arg.split(" ", 1)[0]
            device, path, err = _file(res, boot, written, cfg_device)
            if err:
                boot.error = f"module {err}"
                break
            ref = FileRef(device=device, path=path, written=written)
            boot.modules.append((ref, skip_to(False, arg)))
        elif name == "chainloader":
            rest = skip_to(False, arg) if arg.startswith("--force") else arg
            written = rest.split(" ", 1)[0]
            device, path, _err = _file(res, boot, written, cfg_device)
            boot.chainload = FileRef(device=device, path=path, written=written)
            boot.chain_written = written
            boot.kernel = None
        elif name == "savedefault":
            boot.savedefault = arg.strip() or "current"
        elif name in ("lock", "password"):
            boot.notes.append(f"`{name}`: GRUB legacy asks for the menu password before booting this entry; "
                              "not enforced here")
        elif name in ("makeactive", "map", "hide", "unhide", "parttype"):
            boot.notes.append(f"`{name}` changes partition tables or drive mapping at boot; ignored")
        elif name == "configfile":
            boot.notes.append(f"`configfile {arg.strip()}` loads another menu; not followed")
            boot.kernel_type = "configfile"
        elif name in ("findroot", "bootfs"):
            boot.error = f"`{name}` (Solaris GRUB) is not supported"
        elif name in MENU_COMMANDS and name not in ("hide", "unhide"):
            boot.notes.append(f"`{name}` inside an entry has no effect on what boots")
    return boot


def _entry_from_boot(e: _Entry, boot: _Boot, src: SourceFile) -> BootEntry:
    notes = list(boot.notes)
    if boot.root_note:
        notes.insert(0, boot.root_note)
    body = "\n".join(ln.text for ln in e.lines)
    origin = _loc(src, e.start)
    base = BootEntry(title=e.title, origin=origin, body=body)
    if boot.error:
        notes.append(f"GRUB legacy stops this entry with an error: {boot.error}")
        return _replace(base, kind=EntryKind.NONE, notes=tuple(notes))
    if boot.chainload is not None:
        notes.append(f"chainloader {boot.chain_written}: boots another boot loader, not a kernel")
        return _replace(base, kind=EntryKind.CHAINLOAD, notes=tuple(notes))
    if boot.kernel is None:
        if boot.kernel_type == "configfile":
            return _replace(base, kind=EntryKind.OTHER, notes=tuple(notes))
        notes.append("the entry loads no kernel")
        return _replace(base, kind=EntryKind.NONE, notes=tuple(notes))
    if boot.kernel_type == "multiboot":
        is_xen = boot.kernel.path.rsplit("/", 1)[-1].lower().startswith("xen")
        for i, (ref, args) in enumerate(boot.modules, 1):
            role = " (the dom0 kernel)" if is_xen and i == 1 else ""
            notes.append(f"module {i}: {ref.display()} {sanitize_text(args)}".rstrip() + role)
        if is_xen:
            notes.insert(0, "Xen hypervisor entry: `kernel` loads the hypervisor and `module` the dom0 kernel; "
                            "it cannot boot as a PV guest (pygrub would hand xen.gz to the domain builder)")
            kind = EntryKind.XEN
        else:
            notes.insert(0, "multiboot kernel: not a Linux kernel")
            kind = EntryKind.OTHER
        return _replace(base, kind=kind, kernel=boot.kernel, cmdline=boot.kernel_args, notes=tuple(notes))
    if boot.kernel_type == "other":
        return _replace(base, kind=EntryKind.OTHER, kernel=boot.kernel, cmdline=boot.kernel_args, notes=tuple(notes))
    initrds = (boot.initrd,) if boot.initrd is not None else ()
    return _replace(base, kind=EntryKind.LINUX, kernel=boot.kernel, initrds=initrds, cmdline=boot.kernel_args,
                    notes=tuple(notes))


def _replace(e: BootEntry, **kw: object) -> BootEntry:
    # BootEntry(**...) directly: dataclasses.replace() costs more than the whole entry otherwise.
    return BootEntry(title=e.title, origin=e.origin, body=e.body, **kw)  # type: ignore[arg-type]


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
    entries: list[_Entry] = []
    current: _Entry | None = None
    for ln in split_logical_lines(src.text):
        budget.step()
        name = command_name(ln.text)
        if name not in KNOWN_COMMANDS:
            b.warn(f"unknown command `{sanitize_text(name)}` skipped (as GRUB legacy does)", _loc(src, ln))
            continue
        if name == "title":
            if current is not None and current.lines:
                entries.append(current)
            elif current is not None:
                b.warn(f"entry '{sanitize_text(current.title)}' has no commands; GRUB legacy drops it",
                       _loc(src, current.start))
            current = _Entry(title=skip_to(True, ln.text), start=ln)
            continue
        if current is None:
            if name in MENU_COMMANDS:
                _global_command(name, skip_to(True, ln.text), ln, src=src, g=g, saved=saved, b=b)
            else:
                b.warn(f"`{sanitize_text(name)}` before the first `title` is ignored", _loc(src, ln))
            continue
        current.lines.append(ln)
    if current is not None:
        if current.lines:
            entries.append(current)
        else:
            b.warn(f"entry '{sanitize_text(current.title)}' has no commands; GRUB legacy drops it",
                   _loc(src, current.start))

    items: list[MenuItem] = []
    boots: list[_Boot] = []
    resolver = _Resolver(files)
    for e in entries:
        b.count_entry()
        boot = _run_entry(files, e, src, cfg_device, b=b, res=resolver)
        boots.append(boot)
        items.append(_entry_from_boot(e, boot, src))

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
    e = _Entry(title=entry.title, start=lines[0] if lines else LogicalLine(1, 1, ""), lines=lines)
    return _entry_from_boot(e, _run_entry(files, e, src, device, b=b, res=_Resolver(files)), src)
