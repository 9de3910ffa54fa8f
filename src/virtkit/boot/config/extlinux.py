"""extlinux / syslinux / isolinux / pxelinux configurations, read like syslinux 6's ldlinux and menu.c32.

References:
    SYSLINUX ``doc/syslinux.txt`` (DEFAULT, UI, LABEL, KERNEL/LINUX/..., APPEND, APPEND -,
    INITRD, IPAPPEND, INCLUDE, TIMEOUT and TOTALTIMEOUT in 1/10 s, ONTIMEOUT, PROMPT,
    IMPLICIT, SAY) and ``doc/menu.txt`` (MENU LABEL/TITLE/DEFAULT/HIDE/DISABLE/SEPARATOR/
    BEGIN/END/GOTO/EXIT/INCLUDE/START/HIDDEN/SAVE).
    syslinux ``com32/elflink/ldlinux/readconfig.c`` (keyword order, ``looking_at``: keywords
    are case-insensitive and must be followed by a blank; ``record``: the entry command line is
    ``KERNEL [APPEND] [initrd=INITRD]``, ``APPEND -`` means none, a per-label APPEND replaces
    the global one; ``find_label`` matches the first word of DEFAULT exactly), ``ldlinux.c``
    (auto-boot: without UI and without PROMPT the DEFAULT command boots at once),
    ``kernel.c`` (the first ``initrd=`` in the command line names the initrds, separated by
    commas; the whole line, ``initrd=`` included, goes to the kernel after ``BOOT_IMAGE=``),
    ``com32/menu/readconfig.c`` (the menu module honours DEFAULT only when UI is set).
    Xen's ``mboot.c32``: ``APPEND xen.gz ARGS --- vmlinuz ARGS --- initrd``.
    Read for facts only; no code was copied.

Paths are relative to the directory of the main configuration file (syslinux changes its
working directory there), absolute ones are from the root of the same filesystem.  pygrub
got this wrong, as it did ``TIMEOUT`` (tenths of a second, not seconds), ``MENU DEFAULT``,
``LINUX``/``INITRD`` and comma-separated initrds.

Which entry boots by itself (``BootMenu.default``):

* ``UI menu.c32`` (or any UI module): the menu's highlighted entry - ``DEFAULT label`` if it
  names a visible label, else the last ``MENU DEFAULT``, else the first entry; when a timeout
  runs out, ``ONTIMEOUT`` wins if set.
* ``DEFAULT menu.c32``/``vesamenu.c32`` without UI: the menu, but ``DEFAULT`` cannot name a
  label then: ``MENU DEFAULT`` or the first entry.
* otherwise ``DEFAULT`` is a command line: a label (its first word) or an implicit kernel.
  Without ``PROMPT 1`` it boots at once; with it, ``ONTIMEOUT`` applies after ``TIMEOUT``.
* neither DEFAULT nor UI: syslinux stops at its ``boot:`` prompt - no default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from virtkit.boot.config._support import (
    MenuBuilder,
    StepBudget,
    join_path,
    posix_dirname,
    read_source,
    try_read_source,
)
from virtkit.boot.config.extlinux_boot import (
    SyslinuxEntry,
    SyslinuxMenu,
    build_items,
    compute_default,
)
from virtkit.boot.config.model import BootMenu, FileRef
from virtkit.boot.config.source import BootFiles, Location, SourceFile
from virtkit.errors import ConfigRuntimeError, LimitExceeded
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["LOADER", "Syslinux", "load_extlinux_menu", "looking_at", "probe_extlinux"]

LOADER = "extlinux"

MAX_LINE = 4096  # readconfig.c: fgets() buffer; longer lines are read in pieces
KERNEL_TYPES = ("none", "localboot", "kernel", "linux", "boot", "bss", "pxe", "fdimage", "comboot", "com32", "config")
_UBOOT_KEYWORDS = frozenset({"fdt", "fdtdir", "devicetree", "devicetreedir", "fdtoverlays"})


def _isspace(c: str) -> bool:
    return ord(c) <= 0x20  # my_isspace(): any control character or space


_SPACES = re.compile(r"[\x00-\x20]*")
_WORD = re.compile(r"[^\x00-\x20]*")


def skipspace(s: str) -> str:
    m = _SPACES.match(s)
    return s[m.end() :] if m else s


def looking_at(line: str, kwd: str) -> str | None:
    """syslinux's ``looking_at``: the text after ``kwd`` if ``line`` starts with it (any case, then a blank).

    The comparison ignores bit 0x20 of each character, exactly as syslinux does.
    """
    if len(line) < len(kwd):
        return None
    for a, b in zip(line, kwd):
        if (ord(a) ^ ord(b)) & ~0x20:
            return None
    rest = line[len(kwd) :]
    if rest and not _isspace(rest[0]):
        return None
    return rest


def first_word(s: str) -> str:
    m = _WORD.match(s)
    return m.group(0) if m else ""


def atoi(s: str) -> int:
    """C ``atoi``: leading blanks, a sign, digits; 0 when there are none."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?\d+)", s)
    return int(m.group(1)) if m else 0


@dataclass
class _LabelData:
    """The label being read (syslinux's ``struct labeldata``)."""

    label: str | None = None
    kernel: str = ""
    ktype: str = "kernel"
    append: str | None = None
    initrd: str | None = None
    menulabel: str | None = None
    passwd: bool = False
    menuhide: bool = False
    menudefault: bool = False
    menudisabled: bool = False
    menuseparator: bool = False
    action: str = "cmd"
    target: str | None = None
    ipappend: int = 0
    notes: list[str] = field(default_factory=list)
    location: Location | None = None
    body: list[str] = field(default_factory=list)


@dataclass
class Syslinux:
    """Parser state shared by the main file and every INCLUDE (syslinux keeps it global)."""

    files: BootFiles
    device: str
    cfg_dir: str
    limits: Limits
    b: MenuBuilder
    budget: StepBudget
    root: SyslinuxMenu = field(default_factory=lambda: SyslinuxMenu(label=".top"))
    hidden: SyslinuxMenu = field(default_factory=lambda: SyslinuxMenu(label=".hidden"))
    ld: _LabelData = field(default_factory=_LabelData)
    menus: list[SyslinuxMenu] = field(default_factory=list)
    all_entries: list[SyslinuxEntry] = field(default_factory=list)
    append: str | None = None
    globaldefault: str | None = None
    default_loc: Location | None = None
    ui: str | None = None
    ui_loc: Location | None = None
    ontimeout: str | None = None
    timeout: int = 0
    totaltimeout: int = 0
    prompt: int = 0
    implicit: int = 1
    menu_hidden: bool = False
    menusave: bool = False
    sysappend: int = 0
    start_menu: SyslinuxMenu | None = None
    output: list[str] = field(default_factory=list)
    include_stack: list[str] = field(default_factory=list)
    current: SyslinuxMenu = field(init=False)

    def __post_init__(self) -> None:
        self.menus = [self.root]
        self.current = self.root

    # ------------------------------------------------------------------ recording

    def record(self) -> None:
        """Turn the label being read into a menu entry (``record()``)."""
        ld = self.ld
        if ld.label is None:
            self.ld = _LabelData()
            return
        menu = self.hidden if ld.menuhide else self.current
        e = SyslinuxEntry(
            label=ld.label,
            display=ld.menulabel if ld.menulabel is not None else ld.label,
            action=ld.action,
            location=ld.location,
            body="\n".join(ld.body),
            hidden=ld.menuhide,
            notes=list(ld.notes),
            menu=menu,
        )
        if ld.passwd:
            e.notes.append("MENU PASSWD: syslinux asks for a password before booting this entry; not enforced here")
        if ld.menuseparator or ld.menudisabled:
            e.action = "disabled" if ld.menudisabled and not ld.menuseparator else "separator"
            e.label = None
        if e.action == "cmd":
            ipoptions = f" initrd={ld.initrd}" if ld.initrd is not None else ""
            if ld.ipappend:
                e.notes.append(f"IPAPPEND/SYSAPPEND {ld.ipappend}: syslinux adds network details to the command "
                               "line at boot; not known here")
            a = ld.append if ld.append is not None else self.append
            if a is None or a == "-":
                a = ""
            sep = " " if a else ""
            if ld.ktype == "kernel":
                e.cmdline = f"{ld.kernel}{sep}{a}{ipoptions}"
            else:
                e.cmdline = f".{ld.ktype} {ld.kernel}{sep}{a}{ipoptions}"
        elif e.action in ("goto", "exit"):
            e.target = ld.target
        e.index = len(menu.entries)
        menu.entries.append(e)
        self.all_entries.append(e)
        self.b.count_entry()
        if ld.menudefault and e.action == "cmd":
            menu.defentry = e.index
        self.ld = _LabelData()

    def begin_submenu(self, tag: str, loc: Location) -> None:
        e = SyslinuxEntry(label=None, display=tag or None, action="submenu", location=loc, menu=self.current)
        e.index = len(self.current.entries)
        self.current.entries.append(e)
        self.all_entries.append(e)
        self.b.count_entry()
        sub = SyslinuxMenu(label=tag, parent=self.current, parent_entry=e, location=loc)
        e.submenu = sub
        self.menus.append(sub)
        self.current = sub

    def end_submenu(self) -> None:
        self.current = self.current.parent or self.current

    # ------------------------------------------------------------------ files

    def include(self, rest: str, loc: Location, *, menu_tag: bool) -> None:
        p = skipspace(rest)
        name = first_word(p)
        tag = skipspace(p[len(name) :]) if menu_tag else ""
        path = join_path(self.cfg_dir, name)
        shown = f"({self.device}){path}"
        if path in self.include_stack:
            chain = " -> ".join([*self.include_stack, path])
            raise ConfigRuntimeError(f"INCLUDE loop: {sanitize_text(chain)} (syslinux would recurse until it crashes)",
                                     loc)
        if len(self.include_stack) >= self.limits.max_include_depth:
            raise LimitExceeded("max_include_depth", len(self.include_stack) + 1, self.limits.max_include_depth,
                                f"INCLUDE {sanitize_text(shown)}")
        src = try_read_source(self.files, self.device, path, limits=self.limits)
        if src is None:
            self.b.warn(f"INCLUDE {sanitize_text(name)}: {sanitize_text(shown)} does not exist; "
                        "syslinux skips it silently", loc)
            return
        if tag:
            self.record()
            self.begin_submenu(tag, loc)
        self.parse(src, included_from=loc, how=f"INCLUDE {name}")
        if tag:
            self.record()
            self.end_submenu()

    def parse(self, src: SourceFile, *, included_from: Location | None = None, how: str = "") -> None:
        self.include_stack.append(src.path)
        try:
            lines = _fgets_lines(src.text)
            i = 0
            while i < len(lines):
                lineno, text = lines[i]
                i += 1
                self.budget.step()
                p = skipspace(text)
                loc = Location(src, lineno, len(text) - len(p) + 1, included_from, how)
                if looking_at(p, "text") is not None:
                    # TEXT HELP ... ENDTEXT: help text shown by the menu; skipped up to ENDTEXT.
                    while i < len(lines):
                        self.budget.step()
                        i += 1
                        if looking_at(skipspace(lines[i - 1][1]), "endtext") is not None:
                            break
                    continue
                before = self.ld
                self.keyword(p, loc)
                if self.ld is before and before.label is not None and p:
                    before.body.append(p)
        finally:
            self.include_stack.pop()

    # ------------------------------------------------------------------ keywords

    def keyword(self, p: str, loc: Location) -> None:
        """One line of the main grammar (readconfig.c's ``parse_config_file``, in its order).

        ``looking_at`` for an all-letter keyword is "the first word, lower-cased, equals it" for
        ASCII words, which is how it is tested here (the per-character compare was the hot spot).
        """
        ld = self.ld
        word = first_word(p)
        key = word.lower() if word.isascii() else ""
        rest = p[len(word) :]
        if key == "menu":
            self.menu_keyword(skipspace(rest), loc)
            return
        if _is_fkey(p):
            return  # F1..F12 help screens
        if key == "include":
            self.include(rest, loc, menu_tag=False)
        elif key == "append":
            if ld.label is not None:
                ld.append = skipspace(rest)
            else:
                self.append = skipspace(rest)
        elif key == "initrd":
            if ld.label is not None:
                ld.initrd = skipspace(rest)
            else:
                self.b.warn("INITRD outside a LABEL is ignored by syslinux", loc)
        elif key == "label":
            self.record()
            label = first_word(skipspace(rest))
            self.ld = _LabelData(label=label, kernel=label, location=loc, ipappend=self.sysappend, body=[p])
        elif key in KERNEL_TYPES:
            if ld.label is not None:
                ld.kernel = skipspace(rest)
                ld.ktype = key
            else:
                self.b.warn(f"{key.upper()} outside a LABEL is ignored by syslinux", loc)
        elif key == "timeout":
            self.timeout = atoi(rest)
        elif key == "totaltimeout":
            self.totaltimeout = atoi(rest)
        elif key == "ontimeout":
            self.ontimeout = skipspace(rest)
        elif key in ("ipappend", "sysappend"):
            value = _strtoul0(skipspace(rest))
            if ld.label is not None:
                ld.ipappend = value
            else:
                self.sysappend = value
        elif key == "default":
            self.globaldefault = skipspace(rest)
            self.default_loc = loc
        elif key == "ui":
            self.ui = skipspace(rest)
            self.ui_loc = loc
        elif key == "implicit":
            self.implicit = atoi(rest)
        elif key == "prompt":
            self.prompt = atoi(rest)
        elif key == "say":
            self.output.append(p[4:] if len(p) > 4 else "")
        elif key in _UBOOT_KEYWORDS:
            if ld.label is not None:
                ld.notes.append(f"{word.upper()} {skipspace(rest)}: a U-Boot device-tree keyword; "
                                "syslinux ignores it (noted)")
            else:
                self.b.warn(f"{word.upper()}: a U-Boot device-tree keyword; noted and ignored", loc)
        elif key in IGNORED_KEYWORDS:
            pass  # display, serial, fonts, keyboard, network retries: nothing that changes what boots
        elif p and not p.startswith("#"):
            self.b.warn(f"unknown keyword `{sanitize_text(word)}` ignored (as syslinux does)", loc)

    def menu_keyword(self, p: str, loc: Location) -> None:
        ld = self.ld
        m = self.current
        word = first_word(p)
        key = word.lower() if word.isascii() else ""
        rest = p[len(word) :]
        if key == "label":
            if ld.label is not None:
                ld.menulabel = skipspace(rest)
            elif m.parent_entry is not None:
                m.parent_entry.display = skipspace(rest)
                if not m.title:
                    m.title = m.parent_entry.display
        elif key == "title":
            m.title = skipspace(rest)
            if m.parent_entry is not None and m.parent_entry.display == (m.label or None):
                m.parent_entry.display = m.title
        elif key == "default":
            if ld.label is not None:
                ld.menudefault = True
            elif m.parent is not None and m.parent_entry is not None:
                m.parent.defentry = m.parent_entry.index
        elif key == "hide":
            ld.menuhide = True
        elif key == "passwd":
            if ld.label is not None:
                ld.passwd = True
        elif key == "save":
            self.menusave = True
        elif key == "hidden":
            self.menu_hidden = True
        elif key == "include":
            self.include(rest, loc, menu_tag=True)
        elif key == "separator":
            self.record()
            self.ld = _LabelData(label="", menuseparator=True, location=loc)
            self.record()
        elif key in ("disable", "disabled"):
            ld.menudisabled = True
        elif key == "begin":
            self.record()
            self.begin_submenu(skipspace(rest).rstrip(), loc)
        elif key == "end":
            self.record()
            self.end_submenu()
        elif key == "quit":
            if ld.label is not None:
                ld.action = "quit"
        elif key == "goto":
            if ld.label is not None:
                ld.action = "goto"
                ld.target = skipspace(rest)
        elif key == "exit":
            if ld.label is not None and m.parent is not None:
                ld.action = "exit"
                ld.target = skipspace(rest) or None
        elif key == "start":
            self.start_menu = m
        # colours, layout, messages, background, shiftkey, master passwd ...: display only


IGNORED_KEYWORDS = frozenset({
    "display", "font", "kbdmap", "console", "allowoptions", "noescape", "nocomplete", "nohalt",
    "onerror", "pxeretry", "serial", "path", "sendcookies",
})


def _is_fkey(p: str) -> bool:
    """``is_fkey``: F, optional digits (strtoul), then a blank; F0 is F10, at most F12."""
    m = re.match(r"[fF](\d*)", p)
    if not m:
        return False
    rest = p[m.end() :]
    if rest and not _isspace(rest[0]):
        return False
    return not m.group(1) or int(m.group(1)) <= 12


def _strtoul0(s: str) -> int:
    m = re.match(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*", s)
    if not m:
        return 0
    t = m.group(0)
    if t[:2].lower() == "0x":
        return int(t, 16)
    return int(t, 8) if t.startswith("0") else int(t)


def _fgets_lines(text: str) -> list[tuple[int, str]]:
    """The lines ``fgets(line, 4096, f)`` returns, each cut at its first CR and NUL."""
    out: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        pieces = [raw[i : i + MAX_LINE - 1] for i in range(0, len(raw), MAX_LINE - 1)] or [""]
        for piece in pieces:
            out.append((lineno, piece.split("\r", 1)[0].split("\0", 1)[0]))
    if out and out[-1][1] == "" and text.endswith("\n"):
        out.pop()
    return out


def probe_extlinux(text: str) -> int:
    """Confidence (0-100) that ``text`` is a syslinux-style configuration."""
    score = 0
    for raw in text[:65536].split("\n")[:2000]:
        p = skipspace(raw)
        if looking_at(p, "label") is not None:
            score += 30
        elif any(looking_at(p, k) is not None for k in ("kernel", "linux", "append", "initrd")):
            score += 10
        elif any(looking_at(p, k) is not None for k in ("default", "ui", "prompt", "timeout", "menu")):
            score += 5
        if looking_at(p, "menuentry") is not None or looking_at(p, "title") is not None:
            score -= 40
        if score >= 100:
            break
    return max(0, min(score, 100))


def load_extlinux_menu(files: BootFiles, device: str | None, path: str, *, limits: Limits) -> BootMenu:
    """Interpret an extlinux.conf / syslinux.cfg / isolinux.cfg like syslinux 6.

    Args:
        files: the guest's files.
        device: the GRUB device the config is on.
        path: its absolute path there; relative paths in it are relative to its directory.
        limits: ``max_config_bytes``, ``max_include_depth``, ``max_menu_entries`` and
            ``max_script_steps`` (lines read, INCLUDEs counted) apply.

    Returns:
        the menu with the entry syslinux would boot by itself and why.

    Raises:
        FileNotFound: the config does not exist.
        ConfigRuntimeError: an INCLUDE loop.
        LimitExceeded: a bound was broken.
    """
    src = read_source(files, device, path, limits=limits)
    assert src.device is not None
    b = MenuBuilder(limits, src.display)
    st = Syslinux(files=files, device=src.device, cfg_dir=posix_dirname(src.path), limits=limits, b=b,
                  budget=StepBudget(limits, src.display))
    st.parse(src)
    st.record()
    items, index_map = build_items(st.root, st.hidden, files=files, device=src.device, cfg_dir=st.cfg_dir, b=b)
    default, trail, timeout, style, extra = compute_default(st, index_map, src, b)
    if extra is not None:
        items = (*items, extra)
    if st.menusave:
        trail = (*trail, "MENU SAVE: syslinux may override this with the label saved in its ADV "
                         "(ldlinux.sys), which virtkit does not read")
    return BootMenu(
        loader=LOADER,
        config=FileRef(device=src.device, path=src.path, written=src.path),
        items=items,
        default=default,
        default_trail=trail,
        timeout=timeout,
        timeout_style=style,
        warnings=tuple(b.warnings),
        output=tuple(st.output),
    )

