"""syslinux menus -> BootMenu: what each entry's command line loads, and which entry boots by itself.

The parser in :mod:`virtkit.boot.config.extlinux` records entries the way syslinux's
``record()`` does (one command line per label: ``KERNEL [APPEND] [initrd=...]``, or a typed
``.linux``/``.com32``/... line).  This module interprets those command lines like ldlinux's
``execute()``/``new_linux_kernel()`` and applies the default rules described in the parser's
module docstring.

References:
    syslinux ``com32/elflink/ldlinux/ldlinux.c`` (``parse_kernel_type``: the type of a
    ``KERNEL`` file comes from its extension - .c32 COM32, .0 PXE, .bs/.bin boot sector,
    .bss, .img floppy image, .com/.cbt COMBOOT, anything else a Linux kernel), ``execute.c``
    and ``kernel.c`` (the first ``initrd=`` option, comma-separated), ``readconfig.c``
    (``find_label``, ``unlabel``: ONTIMEOUT's extra words are appended to the label's line).
    Xen ``mboot.c32`` usage: ``APPEND xen.gz ARGS --- vmlinuz ARGS --- initrd``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from virtkit.boot.config._support import MenuBuilder, join_path
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem, Submenu
from virtkit.boot.config.source import BootFiles, Location, SourceFile
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

if TYPE_CHECKING:
    from virtkit.boot.config.extlinux import Syslinux

__all__ = [
    "MENU_MODULES",
    "SyslinuxEntry",
    "SyslinuxMenu",
    "build_items",
    "compute_default",
    "evaluate_extlinux_body",
    "interpret_cmdline",
]

MENU_MODULES = frozenset({"menu.c32", "vesamenu.c32"})
_TYPE_BY_EXTENSION = (
    (".c32", "com32"),
    (".0", "pxe"),
    (".bs", "boot"),
    (".img", "fdimage"),
    (".bin", "boot"),
    (".bss", "bss"),
    (".com", "comboot"),
    (".cbt", "comboot"),
)
_TYPE_SPECIFIERS = frozenset(
    {"localboot", "kernel", "linux", "boot", "bss", "pxe", "fdimage", "comboot", "com32", "config"}
)  # execute.c image_boot_types
_MAX_MENU_DEPTH = 64  # submenus nest only as deep as the file says; a cycle is impossible, this is a guard


@dataclass(eq=False)
class SyslinuxMenu:
    """One syslinux menu (the top menu, a MENU BEGIN submenu, or the hidden menu)."""

    label: str
    title: str = ""
    entries: list[SyslinuxEntry] = field(default_factory=list)
    parent: SyslinuxMenu | None = None
    parent_entry: SyslinuxEntry | None = None
    defentry: int | None = None
    location: Location | None = None


@dataclass(eq=False)
class SyslinuxEntry:
    """One recorded entry (``struct menu_entry``).

    ``action`` is "cmd", "submenu", "separator", "disabled", "goto", "exit" or "quit".
    """

    label: str | None
    display: str | None
    action: str
    location: Location | None
    menu: SyslinuxMenu | None = None
    index: int = 0
    cmdline: str | None = None
    target: str | None = None
    submenu: SyslinuxMenu | None = None
    hidden: bool = False
    body: str = ""
    notes: list[str] = field(default_factory=list)


_WORD = re.compile(r"[^\x00-\x20]*")
_SPACES = re.compile(r"[\x00-\x20]*")


def _first_word(s: str) -> str:
    m = _WORD.match(s)
    return m.group(0) if m else ""


def _skipspace(s: str) -> str:
    m = _SPACES.match(s)
    return s[m.end() :] if m else s


def _strip_caret(text: str) -> tuple[str, str | None]:
    """Menu display text without ``^`` hotkey markers, and the hotkey."""
    hotkey = None
    pos = text.find("^")
    if 0 <= pos < len(text) - 1:
        hotkey = text[pos + 1].upper()
    return text.replace("^", ""), hotkey


def kernel_type(word: str) -> str:
    """``parse_kernel_type``: the image type from the file name's extension."""
    for ext, kind in _TYPE_BY_EXTENSION:
        if word.endswith(ext):
            return kind
    return "kernel"


@dataclass
class _Loaded:
    kind: EntryKind
    kernel: FileRef | None = None
    initrds: tuple[FileRef, ...] = ()
    cmdline: str = ""
    notes: list[str] = field(default_factory=list)


def _initrds(full: str, *, files: BootFiles, device: str, cfg_dir: str, b: MenuBuilder,
             loc: Location | None) -> tuple[FileRef, ...]:
    """The files named by the first ``initrd=`` in the command line (``strstr`` semantics)."""
    pos = full.find("initrd=")
    if pos < 0:
        return ()
    refs: list[FileRef] = []
    i = pos + len("initrd")
    while i < len(full) and full[i] in "=,":
        i += 1
        j = i
        while j < len(full) and full[j] not in " ,":
            j += 1
        name = full[i:j]
        if not name:
            b.warn("an empty name in initrd= (syslinux fails to load it)", loc)
        else:
            path = join_path(cfg_dir, name)
            refs.append(b.file_ref(files, device, path, name, what="initrd", location=loc))
        i = j
        if len(refs) > b.limits.max_menu_entries:  # a pathological comma list
            break
    return tuple(refs)


def interpret_cmdline(cmdline: str, *, files: BootFiles, device: str, cfg_dir: str, b: MenuBuilder,
                      loc: Location | None) -> _Loaded:
    """What syslinux's ``execute()`` would load for one command line."""
    if cmdline.startswith("."):
        # execute(): ".linux", ".com32" ... are type specifiers; any other word starting with a
        # dot ("../vmlinuz") is a file, and load_kernel() then boots it as a Linux kernel.
        first = _first_word(cmdline)
        if first[1:] in _TYPE_SPECIFIERS:
            ktype = first[1:]
            rest = _skipspace(cmdline[len(first) :])
            if ktype == "com32" and not _first_word(rest).endswith(".c32"):
                w = _first_word(rest)
                rest = f"{w}.c32{rest[len(w):]}"  # apply_extension()
        else:
            ktype = "linux"
            rest = cmdline
    else:
        ktype = kernel_type(_first_word(cmdline))
        rest = cmdline
    word = _first_word(rest)
    args = _skipspace(rest[len(word) :])
    if not word:
        return _Loaded(EntryKind.NONE, notes=["the entry names no kernel or module"])
    if ktype in ("kernel", "linux"):
        kernel = b.file_ref(files, device, join_path(cfg_dir, word), word, what="kernel", location=loc)
        initrds = _initrds(f"BOOT_IMAGE={word} {args}", files=files, device=device, cfg_dir=cfg_dir, b=b, loc=loc)
        return _Loaded(EntryKind.LINUX, kernel=kernel, initrds=initrds, cmdline=args)
    module = word.rsplit("/", 1)[-1].lower()
    ref = FileRef(device=device, path=join_path(cfg_dir, word), written=word)
    if ktype == "com32" and module == "mboot.c32":
        return _mboot(args, files=files, device=device, cfg_dir=cfg_dir, b=b, loc=loc)
    if ktype == "com32" and module == "linux.c32":
        kword = _first_word(args)
        kargs = _skipspace(args[len(kword) :])
        if not kword:
            return _Loaded(EntryKind.NONE, notes=["linux.c32 without a kernel"])
        kernel = b.file_ref(files, device, join_path(cfg_dir, kword), kword, what="kernel", location=loc)
        initrds = _initrds(kargs, files=files, device=device, cfg_dir=cfg_dir, b=b, loc=loc)
        return _Loaded(EntryKind.LINUX, kernel=kernel, initrds=initrds, cmdline=kargs,
                       notes=["booted through linux.c32"])
    if ktype == "com32" and module == "chain.c32":
        return _Loaded(EntryKind.CHAINLOAD, kernel=ref, cmdline=args,
                       notes=[f"chain.c32 {sanitize_text(args)}: boots another boot loader"])
    if ktype == "com32" and module in MENU_MODULES:
        return _Loaded(EntryKind.OTHER, kernel=ref, cmdline=args, notes=[f"{module} opens another menu"])
    notes = {
        "com32": f"COM32 module {sanitize_text(word)}: not a Linux kernel",
        "localboot": f"LOCALBOOT {sanitize_text(word)}: boots from the next local device, not a kernel",
        "boot": f"{sanitize_text(word)} is a boot sector: another boot loader",
        "bss": f"{sanitize_text(word)} is a boot sector: another boot loader",
        "pxe": f"{sanitize_text(word)} is a PXE network boot program",
        "fdimage": f"{sanitize_text(word)} is a floppy image",
        "comboot": f"COMBOOT program {sanitize_text(word)}: not a Linux kernel",
        "config": f"CONFIG {sanitize_text(word)}: loads another configuration file (not followed)",
    }
    kind = EntryKind.CHAINLOAD if ktype in ("localboot", "boot", "bss") else EntryKind.OTHER
    note = notes.get(ktype, f"unknown image type .{sanitize_text(ktype)}: syslinux refuses it")
    if ktype not in notes:
        kind = EntryKind.NONE
    return _Loaded(kind, kernel=None if ktype == "localboot" else ref, cmdline=args, notes=[note])


def _mboot(args: str, *, files: BootFiles, device: str, cfg_dir: str, b: MenuBuilder,
           loc: Location | None) -> _Loaded:
    groups: list[list[str]] = [[]]
    for tok in args.split():
        if tok == "---":
            groups.append([])
        else:
            groups[-1].append(tok)
    if not groups[0]:
        return _Loaded(EntryKind.NONE, notes=["mboot.c32 without a hypervisor"])
    hv = groups[0][0]
    kernel = b.file_ref(files, device, join_path(cfg_dir, hv), hv, what="hypervisor", location=loc)
    notes = ["Xen hypervisor entry (mboot.c32): the first module is the hypervisor, the next the dom0 kernel; "
             "it cannot boot as a PV guest (pygrub would boot the dom0 kernel from it)"]
    for i, g in enumerate(groups[1:], 1):
        if not g:
            continue
        role = " (the dom0 kernel)" if i == 1 else ""
        path = join_path(cfg_dir, g[0])
        notes.append(f"module {i}: ({device}){sanitize_text(path)} {sanitize_text(' '.join(g[1:]))}".rstrip() + role)
    return _Loaded(EntryKind.XEN, kernel=kernel, cmdline=" ".join(groups[0][1:]), notes=notes)


# ----------------------------------------------------------------------------- tree


def _entry(e: SyslinuxEntry, *, files: BootFiles, device: str, cfg_dir: str, b: MenuBuilder) -> BootEntry:
    title, hotkey = _strip_caret(e.display if e.display is not None else (e.label or ""))
    notes = list(e.notes)
    if e.hidden:
        notes.insert(0, "MENU HIDE: not shown in the menu; bootable by typing its label")
    if e.action == "disabled":
        return BootEntry(title=title, id=None, kind=EntryKind.NONE, origin=e.location, body=e.body,
                         notes=(*notes, "MENU DISABLE: shown but cannot be selected"))
    if e.action in ("goto", "exit", "quit"):
        what = {"goto": f"MENU GOTO {e.target}", "exit": "MENU EXIT", "quit": "MENU QUIT"}[e.action]
        return BootEntry(title=title, id=e.label, kind=EntryKind.NONE, origin=e.location, body=e.body,
                         hotkey=hotkey, notes=(*notes, f"{sanitize_text(what)}: menu navigation, boots nothing"))
    loaded = interpret_cmdline(e.cmdline or "", files=files, device=device, cfg_dir=cfg_dir, b=b, loc=e.location)
    # The body is the command line, which is what syslinux's Tab editor shows and boots.
    return BootEntry(title=title, id=e.label, kind=loaded.kind, kernel=loaded.kernel, initrds=loaded.initrds,
                     cmdline=loaded.cmdline, origin=e.location, body=e.cmdline or "", hotkey=hotkey,
                     notes=tuple(notes + loaded.notes))


def evaluate_extlinux_body(files: BootFiles, menu: BootMenu, entry: BootEntry, body: str, *,
                           limits: Limits) -> BootEntry:
    """Boot an edited command line (``vmlinuz ARGS initrd=...``), as syslinux's Tab editor does."""
    device = menu.config.device or ""
    cfg_dir = menu.config.path.rsplit("/", 1)[0] or "/"
    b = MenuBuilder(limits, f"({device}){menu.config.path} (edited)")
    line = body.replace("\r", " ").replace("\n", " ").strip()
    loaded = interpret_cmdline(line, files=files, device=device, cfg_dir=cfg_dir, b=b, loc=None)
    return BootEntry(title=entry.title, id=entry.id, kind=loaded.kind, kernel=loaded.kernel, initrds=loaded.initrds,
                     cmdline=loaded.cmdline, origin=entry.origin, body=line, hotkey=entry.hotkey,
                     notes=(*loaded.notes, *(f"warning: {w}" for w in b.warnings)))


def build_items(root: SyslinuxMenu, hidden: SyslinuxMenu, *, files: BootFiles, device: str, cfg_dir: str,
                b: MenuBuilder) -> tuple[tuple[MenuItem, ...], dict[SyslinuxEntry, tuple[int, ...]]]:
    """The BootMenu items (separators dropped, hidden entries appended) and each entry's index path."""
    index_map: dict[SyslinuxEntry, tuple[int, ...]] = {}

    def convert(menu: SyslinuxMenu, prefix: tuple[int, ...], depth: int) -> list[MenuItem]:
        out: list[MenuItem] = []
        if depth > _MAX_MENU_DEPTH:
            b.limits.check("max_include_depth", depth, "MENU BEGIN nesting")
        for e in menu.entries:
            if e.action == "separator":
                continue
            path = (*prefix, len(out))
            index_map[e] = path
            if e.action == "submenu" and e.submenu is not None:
                sub = e.submenu
                title, _hot = _strip_caret(e.display or sub.title or sub.label)
                out.append(Submenu(title=title, items=tuple(convert(sub, path, depth + 1)), id=sub.label or None,
                                   origin=e.location))
            else:
                out.append(_entry(e, files=files, device=device, cfg_dir=cfg_dir, b=b))
        return out

    items = convert(root, (), 0)
    for e in hidden.entries:
        index_map[e] = (len(items),)
        items.append(_entry(e, files=files, device=device, cfg_dir=cfg_dir, b=b))
    return tuple(items), index_map


# ----------------------------------------------------------------------------- default


def _at(loc: Location | None) -> str:
    if loc is None:
        return ""
    return f" ({loc.file.path.rsplit('/', 1)[-1]}:{loc.line})"


def _find_label(st: Syslinux, cmd: str) -> SyslinuxEntry | None:
    word = _first_word(cmd)
    for e in st.all_entries:
        if e.label is not None and e.label == word:
            return e
    return None


def _selectable(menu: SyslinuxMenu, start: int) -> int | None:
    """The entry the menu highlights: ``start`` or the next selectable one after it."""
    n = len(menu.entries)
    for k in range(n):
        i = (start + k) % n
        if menu.entries[i].action not in ("separator", "disabled"):
            return i
    return None


def _command_target(st: Syslinux, cmd: str, keyword: str, *, keep_extra: bool, n_top: int,
                    index_map: dict[SyslinuxEntry, tuple[int, ...]], src: SourceFile,
                    trail: list[str]) -> tuple[tuple[int, ...] | None, BootEntry | None]:
    """Resolve a DEFAULT/ONTIMEOUT command line to a menu path or an implicit entry."""
    e = _find_label(st, cmd)
    extra = _skipspace(cmd[len(_first_word(cmd)) :])
    if e is not None:
        if extra and keep_extra:
            trail.append(f"{keyword} '{sanitize_text(cmd)}' = label '{sanitize_text(e.label or '')}' plus "
                         f"'{sanitize_text(extra)}' (syslinux appends the extra words)")
            full = f"{e.cmdline or ''} {extra}"
            return _implicit(st, full, keyword, n_top=n_top, src=src, trail=trail)
        if extra:
            trail.append(f"{keyword} names label '{sanitize_text(e.label or '')}'; the extra words "
                         f"'{sanitize_text(extra)}' are ignored by syslinux 5+")
        else:
            trail.append(f"{keyword} names label '{sanitize_text(e.label or '')}'")
        path = index_map.get(e)
        if path is None:
            trail.append("that label is a menu separator: nothing to boot")
        else:
            shown = _strip_caret(e.display or e.label or "")[0]
            trail.append(f"-> entry [{'>'.join(map(str, path))}] '{sanitize_text(shown)}'")
        return path, None
    trail.append(f"{keyword} '{sanitize_text(cmd)}' names no label")
    return _implicit(st, cmd, keyword, n_top=n_top, src=src, trail=trail)


def _implicit(st: Syslinux, cmd: str, keyword: str, *, n_top: int, src: SourceFile,
              trail: list[str]) -> tuple[tuple[int, ...] | None, BootEntry | None]:
    if not st.implicit:
        trail.append("IMPLICIT 0 forbids booting a command line that is not a label: no default")
        return None, None
    assert src.device is not None
    loaded = interpret_cmdline(cmd, files=st.files, device=st.device, cfg_dir=st.cfg_dir, b=st.b, loc=None)
    trail.append(f"syslinux runs it as a command line (an implicit entry, listed last as [{n_top}])")
    entry = BootEntry(title=f"{keyword} {cmd}", id=None, kind=loaded.kind, kernel=loaded.kernel,
                      initrds=loaded.initrds, cmdline=loaded.cmdline,
                      notes=(f"not a menu entry: syslinux runs the {keyword} command line itself", *loaded.notes))
    return (n_top,), entry


def compute_default(st: Syslinux, index_map: dict[SyslinuxEntry, tuple[int, ...]], src: SourceFile,
                    b: MenuBuilder) -> tuple[tuple[int, ...] | None, tuple[str, ...], float | None, str,
                                             BootEntry | None]:
    """(default path, trail, timeout seconds, timeout style, implicit entry to append)."""
    n_top = 1 + max((p[0] for p in index_map.values() if len(p) == 1), default=-1)
    trail: list[str] = []
    gd = st.globaldefault
    ui_module = _first_word(st.ui).rsplit("/", 1)[-1].lower() if st.ui else ""
    gd_module = _first_word(gd).rsplit("/", 1)[-1].lower() if gd else ""
    timeout_tenths = st.timeout if st.timeout > 0 else st.totaltimeout if st.totaltimeout > 0 else 0
    if st.timeout < 0 or st.totaltimeout < 0:
        b.warn("a negative TIMEOUT wraps around in syslinux: effectively no timeout")
        timeout_tenths = 0
    if st.ui is not None or gd_module in MENU_MODULES:
        has_ui = st.ui is not None
        if has_ui:
            trail.append(f"UI {sanitize_text(st.ui or '')}{_at(st.ui_loc)}: the menu module picks the entry")
            if ui_module not in MENU_MODULES:
                trail.append(f"{sanitize_text(ui_module)} is not menu.c32/vesamenu.c32; assuming it follows the "
                             "same labels and DEFAULT")
        else:
            trail.append(f"DEFAULT {sanitize_text(gd or '')}{_at(st.default_loc)} starts the menu module, "
                         "so DEFAULT names no label")
        start = st.start_menu or st.root
        if st.start_menu is not None and st.start_menu is not st.root:
            trail.append(f"MENU START: the menu opens at submenu '{sanitize_text(st.start_menu.label)}'")
        if has_ui and gd:
            e = _find_label(st, gd)
            if e is not None and not e.hidden and e.menu is not None:
                e.menu.defentry = e.index
                start = e.menu
                trail.append(f"DEFAULT {sanitize_text(gd)}{_at(st.default_loc)} names label "
                             f"'{sanitize_text(e.label or '')}'")
            elif e is not None:
                trail.append(f"DEFAULT {sanitize_text(gd)} names a hidden label; the menu ignores it")
            else:
                trail.append(f"DEFAULT {sanitize_text(gd)}{_at(st.default_loc)} names no label")
        style = "hidden" if st.menu_hidden else "menu"
        if timeout_tenths > 0:
            timeout: float | None = timeout_tenths / 10
            which = "TIMEOUT" if st.timeout > 0 else "TOTALTIMEOUT"
            trail.append(f"{which} {timeout_tenths} = {timeout:g} s (tenths of a second)")
            if st.ontimeout:
                trail.append("when it expires syslinux runs ONTIMEOUT, not the highlighted entry")
                p2, extra = _command_target(st, st.ontimeout, "ONTIMEOUT", keep_extra=True, n_top=n_top,
                                            index_map=index_map, src=src, trail=trail)
                return p2, tuple(trail), timeout, style, extra
            path = _menu_default(start, index_map, trail, timed=True)
        else:
            timeout = None
            trail.append("no TIMEOUT: the menu waits for a key; Enter boots the highlighted entry")
            path = _menu_default(start, index_map, trail, timed=False)
        return path, tuple(trail), timeout, "hidden" if st.menu_hidden else "menu", None
    if gd is None:
        trail.append("neither DEFAULT nor UI: syslinux stops at its boot: prompt, nothing boots by itself")
        return None, tuple(trail), None, "menu", None
    trail.append(f"DEFAULT {sanitize_text(gd)}{_at(st.default_loc)} is the command line syslinux boots")
    if st.prompt:
        if timeout_tenths > 0:
            timeout = timeout_tenths / 10
            trail.append(f"PROMPT 1: the boot: prompt waits {timeout:g} s (TIMEOUT in tenths of a second)")
            if st.ontimeout:
                trail.append("when it expires syslinux runs ONTIMEOUT instead of DEFAULT")
                p2, extra = _command_target(st, st.ontimeout, "ONTIMEOUT", keep_extra=True, n_top=n_top,
                                            index_map=index_map, src=src, trail=trail)
                return p2, tuple(trail), timeout, "menu", extra
        else:
            timeout = None
            trail.append("PROMPT 1 and no TIMEOUT: the boot: prompt waits for a key; Enter boots DEFAULT")
    else:
        timeout = 0.0
        trail.append("no PROMPT 1 and no UI: syslinux boots it at once")
    p1, extra = _command_target(st, gd, "DEFAULT", keep_extra=False, n_top=n_top, index_map=index_map, src=src,
                                trail=trail)
    return p1, tuple(trail), timeout, "menu", extra


def _menu_default(start: SyslinuxMenu, index_map: dict[SyslinuxEntry, tuple[int, ...]], trail: list[str], *,
                  timed: bool) -> tuple[int, ...] | None:
    """The entry menu.c32 boots by itself (``timed``) or highlights for Enter (no timeout).

    menumain.c: on timeout it runs ``menu_entries[defentry]->cmdline`` - a submenu, separator or
    disabled entry has none, so menu.c32 exits to the ``boot:`` prompt; and when the cursor has to
    skip a disabled first entry, moving it cancels the timeout.  Without a timeout, Enter on the
    highlighted entry boots it, or opens the submenu it is.
    """
    menu = start
    for _depth in range(_MAX_MENU_DEPTH):
        if not menu.entries:
            trail.append("the menu is empty: nothing to boot")
            return None
        where = "the menu" if menu.parent is None else f"submenu '{sanitize_text(menu.label)}'"
        defentry = menu.defentry if menu.defentry is not None else 0
        e = menu.entries[defentry]
        if menu.defentry is None:
            trail.append(f"no MENU DEFAULT in {where} -> its first entry")
        elif e.action in {"cmd", "submenu"}:
            trail.append(f"MENU DEFAULT on label '{sanitize_text(e.label or e.display or '')}'{_at(e.location)}")
        if timed:
            if e.action == "submenu":
                trail.append(f"it is submenu '{sanitize_text(e.display or '')}': on timeout menu.c32 has no command "
                             "line for it and exits to the boot: prompt - nothing boots by itself")
                return None
            if e.action != "cmd":
                trail.append("it cannot be selected (a separator or MENU DISABLE), so menu.c32 moves the cursor, "
                             "which cancels the timeout - nothing boots by itself")
                return None
            chosen = e
        else:
            idx = _selectable(menu, defentry)
            if idx is None:
                trail.append("no selectable entry")
                return None
            chosen = menu.entries[idx]
            if chosen.action == "submenu" and chosen.submenu is not None:
                trail.append(f"it is submenu '{sanitize_text(chosen.display or chosen.submenu.label)}': "
                             "Enter opens it and highlights its default")
                menu = chosen.submenu
                continue
        path = index_map.get(chosen)
        if path is not None:
            shown = _strip_caret(chosen.display or chosen.label or "")[0]
            trail.append(f"-> entry [{'>'.join(map(str, path))}] '{sanitize_text(shown)}'")
        return path
    return None
