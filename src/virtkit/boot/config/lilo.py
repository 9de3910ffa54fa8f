"""LILO ``/etc/lilo.conf``: the images the map installer would have recorded, and the one that boots.

References:
    ``lilo.conf(5)`` (global options; ``image=``/``other=`` sections; ``label=`` defaulting to
    the image's file name; ``alias=``; ``append=``, ``addappend=``, ``literal=``, ``root=``,
    ``read-only``/``read-write``, ``initrd=``; ``default=`` else the first image;
    ``timeout=`` and ``delay=`` in tenths of a second, ``timeout`` only with ``prompt``).
    LILO's ``cfg.c`` tokeniser as documented by its derivatives (quik/yaboot): ``#`` comments,
    ``name = value`` with optional blanks around ``=``, double-quoted values with ``\\"``,
    ``\\\\`` and backslash-newline escapes, a backslash escaping the next character outside
    quotes.  Read for facts only.

The kernel command line.  LILO's second stage passes ``BOOT_IMAGE=<label>`` (and ``auto`` when
nobody typed anything) followed by ``ro``/``rw``, ``root=...`` and the ``append`` text; like
GRUB's ``BOOT_IMAGE`` those loader-made prefixes are left out here.  The map installer turns
``root=/dev/sda1`` into a device number (``root=801``) using the *installing* host's devices;
we pass the name as written, which the kernel accepts as well, and say so in the entry's notes.

Paths: ``image=``/``initrd=`` name files in the installed system's namespace.  When ``/boot`` is
its own partition, ``/boot/vmlinuz`` is ``/vmlinuz`` on that partition; the engine looks for the
file on the configuration's filesystem first, then for the part after ``/boot`` on the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from virtkit.boot.config._support import MenuBuilder, StepBudget, file_exists, read_source
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem
from virtkit.boot.config.source import BootFiles, Location, SourceFile, normalise_path
from virtkit.errors import ConfigSyntaxError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["LOADER", "LiloToken", "evaluate_lilo_body", "load_lilo_menu", "probe_lilo", "tokenize_lilo"]

LOADER = "lilo"

# Options that belong to an image/other section (everything else is global).
_SECTION_KEYS = frozenset(
    {
        "label", "alias", "append", "addappend", "literal", "root", "read-only", "read-write", "initrd",
        "ramdisk", "vga", "password", "restricted", "mandatory", "optional", "lock", "single-key", "fallback",
        "table", "loader", "map-drive", "to", "boot-as", "master-boot", "change", "unsafe", "bypass", "nodevfs",
        "vmwarn", "vmdisable", "vmdefault", "bmp-retain", "noinitrd",
    }
)


_BLANKS = re.compile(r"[ \t\r]+")
_QUOTED_RUN = re.compile(r'[^"\\\n\r]+')
_WORD_RUN = re.compile(r"[^ \t\n\r#=\\]+")


@dataclass(frozen=True)
class LiloToken:
    """``name`` or ``name=value`` with where it was written."""

    name: str
    value: str | None
    line: int
    col: int


def tokenize_lilo(src: SourceFile, budget: StepBudget) -> list[LiloToken]:
    """Split lilo.conf into ``name[=value]`` items.

    Raises:
        ConfigSyntaxError: an unterminated quoted string, a bad escape, ``=`` without a name
            or value.
    """
    text = src.text
    n = len(text)
    i = 0
    line = 1
    col_of = 0  # index of the current line's first character
    words: list[tuple[str, int, int, bool]] = []  # (text, line, col, is "=")

    def loc_at(pos: int, ln: int, start: int) -> Location:
        return Location(src, ln, pos - start + 1)

    while i < n:
        budget.step()
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            col_of = i
            continue
        if c in " \t\r":
            m = _BLANKS.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        start_line, start_col = line, i - col_of + 1
        if c == "=":
            words.append(("=", start_line, start_col, True))
            i += 1
            continue
        buf: list[str] = []
        if c == '"':
            i += 1
            while True:
                if i >= n:
                    raise ConfigSyntaxError("unterminated quoted string", loc_at(i, line, col_of))
                m = _QUOTED_RUN.match(text, i)
                if m:
                    buf.append(m.group(0))
                    i = m.end()
                    continue
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    nxt = text[i + 1] if i + 1 < n else ""
                    if nxt in ('"', "\\"):
                        buf.append(nxt)
                        i += 2
                    elif nxt == "n":
                        buf.append("\n")
                        i += 2
                    elif nxt in ("\n", "\r"):
                        i += 2 if text[i + 1 : i + 3] != "\r\n" else 3
                        line += 1
                        col_of = i
                        while i < n and text[i] in " \t":
                            i += 1
                        buf.append(" ")
                    else:
                        raise ConfigSyntaxError(f"bad use of \\ in a quoted string (\\{sanitize_text(nxt)})",
                                                loc_at(i, line, col_of))
                    continue
                if c in "\n\r":
                    raise ConfigSyntaxError("newline in a quoted string", loc_at(i, line, col_of))
                buf.append(c)
                i += 1
            words.append(("".join(buf), start_line, start_col, False))
            continue
        while i < n:
            m = _WORD_RUN.match(text, i)
            if m:
                buf.append(m.group(0))
                i = m.end()
                continue
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    raise ConfigSyntaxError("\\ at the end of the file", loc_at(i, line, col_of))
                nxt = text[i + 1]
                i += 2
                if nxt == "\n":
                    line += 1
                    col_of = i
                else:
                    buf.append(" " if nxt == "\t" else nxt)
                continue
            if c in " \t\n\r#=":
                break
            buf.append(c)
            i += 1
        words.append(("".join(buf), start_line, start_col, False))

    tokens: list[LiloToken] = []
    k = 0
    while k < len(words):
        w, ln, cl, is_eq = words[k]
        if is_eq:
            raise ConfigSyntaxError("'=' without an option name before it", Location(src, ln, cl))
        if k + 1 < len(words) and words[k + 1][3]:
            if k + 2 >= len(words) or words[k + 2][3]:
                raise ConfigSyntaxError(f"'{sanitize_text(w)}=' without a value", Location(src, ln, cl))
            tokens.append(LiloToken(w.lower(), words[k + 2][0], ln, cl))
            k += 3
        else:
            tokens.append(LiloToken(w.lower(), None, ln, cl))
            k += 1
    return tokens


@dataclass
class _Section:
    kind: str  # "image" or "other"
    target: str
    token: LiloToken
    opts: dict[str, str | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def probe_lilo(text: str) -> int:
    """Confidence (0-100) that ``text`` is a lilo.conf."""
    score = 0
    for raw in text[:65536].split("\n")[:2000]:
        s = raw.strip().lower().replace(" ", "")
        if s.startswith(("image=", "other=")):
            score += 40
        elif s.startswith(("boot=", "map=", "install=", "lba32", "compact", "prompt", "label=", "read-only")):
            score += 10
        if s.startswith(("menuentry", "title", "label ")):
            score -= 30
        if score >= 100:
            break
    return max(0, min(score, 100))


def _find_file(files: BootFiles, device: str, written: str) -> tuple[str, str, str | None]:
    """(device, path, note) for a file named in the installed system's namespace."""
    path = normalise_path(written)
    if file_exists(files, device, path):
        return device, path, None
    if path.startswith("/boot/"):
        inner = path[len("/boot") :]
        for info in files.devices():
            if info.name != device and file_exists(files, info.name, inner):
                return info.name, inner, f"{written} found as {inner} on ({info.name}): a separate /boot partition"
    return device, path, None


def _labels(sec: _Section) -> tuple[str, list[str]]:
    label = sec.opts.get("label") or sec.target.rsplit("/", 1)[-1]
    names = [label] + ([sec.opts["alias"] or ""] if sec.opts.get("alias") else [])
    return label, names


def _section_body(sec: _Section) -> str:
    """The section as lilo.conf text (what the interactive editor shows and re-reads)."""
    def item(k: str, v: str | None) -> str:
        if v is None:
            return k
        if not v or any(c in v for c in " \t#=\"\\"):
            v = '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        return f"{k}={v}"

    return "\n".join([item(sec.kind, sec.target), *("    " + item(k, v) for k, v in sec.opts.items())])


def _section_entry(files: BootFiles, cfg_device: str, sec: _Section, glob: dict[str, str | None], *,
                   src: SourceFile, b: MenuBuilder) -> BootEntry:
    loc = Location(src, sec.token.line, sec.token.col)
    label, _names = _labels(sec)
    body = _section_body(sec)
    notes: list[str] = []
    if sec.kind == "other":
        return BootEntry(title=label, id=label, kind=EntryKind.CHAINLOAD, origin=loc, body=body,
                         notes=(f"other={sec.target}: chain-loads the boot sector of another partition, not a kernel",))
    dev, kpath, note = _find_file(files, cfg_device, sec.target)
    if note:
        notes.append(note)
    kernel = b.file_ref(files, dev, kpath, sec.target, what="image", location=loc)
    initrds: tuple[FileRef, ...] = ()
    initrd = sec.opts.get("initrd", glob.get("initrd"))
    if initrd and "noinitrd" not in sec.opts:
        idev, ipath, inote = _find_file(files, cfg_device, initrd)
        if inote:
            notes.append(inote)
        initrds = (b.file_ref(files, idev, ipath, initrd, what="initrd", location=loc),)
    literal = sec.opts.get("literal", glob.get("literal"))
    if literal is not None:
        cmdline = literal
        notes.append("literal= replaces the whole command line (no ro/root/append)")
    else:
        parts: list[str] = []
        if "read-only" in sec.opts or ("read-only" in glob and "read-write" not in sec.opts):
            parts.append("ro")
        elif "read-write" in sec.opts or "read-write" in glob:
            parts.append("rw")
        root = sec.opts.get("root", glob.get("root"))
        if root:
            if root.lower() == "current":
                notes.append("root=current: LILO uses the root device of the installing system (unknown here)")
            else:
                parts.append(f"root={root}")
                if root.startswith("/dev/"):
                    notes.append(f"LILO's map installer passes root={root} as a device number (e.g. root=801); "
                                 "the name is kept here")
        append = sec.opts.get("append", glob.get("append"))
        if append:
            parts.append(append)
        add = sec.opts.get("addappend")
        if add:
            parts.append(add)
        cmdline = " ".join(parts)
    if sec.opts.get("vga") or glob.get("vga"):
        notes.append("vga= sets the video mode in the kernel header, not on the command line")
    if "password" in sec.opts or "password" in glob:
        notes.append("password=: LILO asks for a password at its prompt; not enforced here")
    return BootEntry(title=label, id=label, kind=EntryKind.LINUX, kernel=kernel, initrds=initrds, cmdline=cmdline,
                     origin=loc, body=body, notes=tuple(notes))


def _split_sections(tokens: list[LiloToken], src: SourceFile,
                    b: MenuBuilder) -> tuple[dict[str, str | None], list[_Section]]:
    glob: dict[str, str | None] = {}
    sections: list[_Section] = []
    for tok in tokens:
        loc = Location(src, tok.line, tok.col)
        if tok.name in ("image", "other"):
            if not tok.value:
                raise ConfigSyntaxError(f"`{tok.name}` needs a value ({tok.name}=...)", loc)
            b.count_entry()
            sections.append(_Section(tok.name, tok.value, tok))
            continue
        if sections and tok.name in _SECTION_KEYS:
            sections[-1].opts[tok.name] = tok.value
        else:
            glob[tok.name] = tok.value  # before the first image, or a global-only option after it
    return glob, sections


def evaluate_lilo_body(files: BootFiles, menu: BootMenu, entry: BootEntry, body: str, *,
                       limits: Limits) -> BootEntry:
    """Re-read an edited section (``image=...`` and its options) as LILO would.

    Global options of the original file are not re-applied: the edited text is the whole
    description of the image.

    Raises:
        ConfigSyntaxError: the text does not tokenise or holds no ``image=``/``other=``.
    """
    device = menu.config.device or ""
    src = SourceFile(device=menu.config.device, path=f"{menu.config.path} (edited)", text=body)
    b = MenuBuilder(limits, src.display)
    glob, sections = _split_sections(tokenize_lilo(src, StepBudget(limits, src.display)), src, b)
    if not sections:
        raise ConfigSyntaxError("the edited entry has no image= or other= line", Location(src, 1))
    return _section_entry(files, device, sections[0], glob, src=src, b=b)


def load_lilo_menu(files: BootFiles, device: str | None, path: str, *, limits: Limits) -> BootMenu:
    """Interpret ``/etc/lilo.conf``.

    Args:
        files: the guest's files.
        device: the GRUB device of the root filesystem holding ``/etc/lilo.conf``.
        path: the config's path ("/etc/lilo.conf").
        limits: ``max_config_bytes``, ``max_menu_entries``, ``max_script_steps`` apply.

    Returns:
        the images as entries, the default (``default=`` or the first image) and why.

    Raises:
        FileNotFound: no such config.
        ConfigSyntaxError: bad quoting or ``=`` use.
        LimitExceeded: a bound was broken.
    """
    src = read_source(files, device, path, limits=limits)
    assert src.device is not None
    cfg_device = src.device
    b = MenuBuilder(limits, src.display)
    tokens = tokenize_lilo(src, StepBudget(limits, src.display))
    glob, sections = _split_sections(tokens, src, b)
    items: list[MenuItem] = []
    labels: list[list[str]] = []
    for sec in sections:
        labels.append(_labels(sec)[1])
        items.append(_section_entry(files, cfg_device, sec, glob, src=src, b=b))

    trail: list[str] = []
    default: tuple[int, ...] | None = None
    want = glob.get("default")
    if not items:
        trail.append("no image= or other= sections: nothing to boot")
    elif want:
        match = [i for i, names in enumerate(labels) if want in names]
        if not match:
            match = [i for i, names in enumerate(labels) if want.lower() in (x.lower() for x in names)]
            if match:
                trail.append(f"`default={sanitize_text(want)}` matches a label only ignoring case")
        if match:
            default = (match[0],)
            trail.insert(0, f"`default={sanitize_text(want)}` -> entry [{match[0]}] '{sanitize_text(items[match[0]].title)}'")
        else:
            default = (0,)
            trail.append(f"`default={sanitize_text(want)}` names no label (the lilo installer would have refused "
                         "this file) -> the first image")
            b.warn(f"default={sanitize_text(want)} names no image label")
    else:
        default = (0,)
        trail.append(f"no `default=` -> the first image, entry [0] '{sanitize_text(items[0].title)}'")

    prompt = "prompt" in glob
    timeout: float | None
    if prompt:
        t = glob.get("timeout")
        timeout = _tenths(t, b) if t else None
        trail.append("`prompt`: LILO waits at boot: " + (f"{timeout:g} s (timeout= is in tenths of a second)"
                                                        if timeout is not None else "forever (no timeout=)"))
    else:
        d = glob.get("delay")
        delay = _tenths(d, b) if d else None
        timeout = delay if delay is not None else 0.0
        trail.append(f"no `prompt`: boots after delay={timeout:g} s unless Shift is held")
    return BootMenu(
        loader=LOADER,
        config=FileRef(device=cfg_device, path=src.path, written=src.path),
        items=tuple(items),
        default=default,
        default_trail=tuple(trail),
        timeout=timeout,
        warnings=tuple(b.warnings),
    )


def _tenths(value: str, b: MenuBuilder) -> float | None:
    v = value.strip()
    if not v.isdigit() or len(v) > 9:
        b.warn(f"'{sanitize_text(value)}' is not a number of tenths of a second; ignored")
        return None
    return int(v) / 10
