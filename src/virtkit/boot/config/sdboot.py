"""systemd-boot: ``/loader/loader.conf`` and Boot Loader Specification Type #1 entries.

References:
    UAPI Group "Boot Loader Specification" (Type #1 entries in ``$BOOT/loader/entries/*.conf``:
    keys ``title``, ``version``, ``machine-id``, ``sort-key``, ``linux``, ``initrd`` (repeatable),
    ``options`` (repeatable, joined with spaces), ``devicetree``, ``efi``, ``architecture``;
    paths relative to the partition holding the entry; the ESP and the XBOOTLDR partition are
    both read; sorting by sort-key, machine-id, version, then file name).
    UAPI Group "Version Format Specification" (the version comparison).
    ``loader.conf(5)`` (``default`` glob, ``@saved``, ``timeout``, ``menu-force``/``menu-hidden``).
    systemd ``src/boot/boot.c`` (``line_get_key_value``: key and value split at the first blank,
    ``#`` comments, surrounding quotes removed; entry ids are the lower-cased file name
    *including* ``.conf`` since v245, with a ``+LEFT[-DONE]`` boot counter removed; entries
    whose ``linux``/``efi`` file is missing are dropped; ``boot_entry_compare``: no tries left
    last, entries with sort-key first, then sort-key, machine-id, version descending, id
    descending, tries; ``config_select_default_entry``; unique display titles).
    ``src/fundamental/string-util-fundamental.c`` (``strverscmp_improved``) and
    ``efi-string.c`` (``efi_fnmatch``: ``*``, ``?``, ``[...]`` with ranges, ``\\`` escapes).
    Read for facts only; no code was copied.

Where ``$BOOT/loader`` is: ``/loader`` on the ESP or an XBOOTLDR partition, or
``/boot/loader`` on a root filesystem without a separate ``/boot`` (Fedora's
kernel-install writes entries there, with paths that start ``/boot/``: entry paths are
always relative to the filesystem's root).  :func:`loader_dir` tells which from the
configuration path.

Not read: the EFI variables (``LoaderEntryDefault``, ``LoaderEntryOneShot``,
``LoaderEntryLastBooted``) - a guest image does not carry them - and Type #2 unified kernel
images in ``/EFI/Linux`` (listed as a warning).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from virtkit.boot.config._support import MenuBuilder, StepBudget, file_exists, try_read_source
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem
from virtkit.boot.config.source import BootFiles, Location, SourceFile, normalise_path
from virtkit.boot.config.uapi import efi_fnmatch, uapi_vercmp
from virtkit.errors import ConfigSyntaxError, FileNotFound, NotADirectory
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "LOADER",
    "efi_fnmatch",
    "evaluate_sdboot_body",
    "load_sdboot_menu",
    "parse_key_values",
    "parse_tries",
    "probe_sdboot",
    "uapi_vercmp",
]

LOADER = "systemd-boot"
EFI_MACHINE_TYPE = "x64"  # the guests virtkit boots are x86-64; entries for other architectures are skipped
TIMEOUT_TYPE_MAX = 0xFFFFFFFF - 3  # boot.h: larger values are reserved for menu-force & co


# ----------------------------------------------------------------------------- files


def parse_key_values(src: SourceFile, budget: StepBudget) -> list[tuple[str, str, int]]:
    """``line_get_key_value``: (key, value, line) per non-comment line with a blank-separated value."""
    out: list[tuple[str, str, int]] = []
    for lineno, raw in enumerate(src.text.replace("\r", "\n").split("\n"), 1):
        budget.step()
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        cut = next((k for k, ch in enumerate(line) if ch in " \t"), -1)
        if cut < 0:
            continue
        key = line[:cut]
        value = line[cut:].lstrip(" \t")
        if value.startswith('"') and line.endswith('"'):
            value = value[1:-1] if len(value) >= 2 else ""
        out.append((key, value, lineno))
    return out


def parse_tries(name: str) -> tuple[str, int | None, int | None]:
    """Boot counting: ``"arch+3-1.conf"`` -> (``"arch.conf"``, tries left 3, tries done 1)."""
    stem_end = len(name) - len(".conf")
    plus = name.rfind("+", 0, stem_end)
    if plus < 0:
        return name, None, None
    counter = name[plus + 1 : stem_end]
    left_s, dash, done_s = counter.partition("-")
    if not left_s.isdigit() or not left_s.isascii() or (dash and not (done_s.isdigit() and done_s.isascii())):
        return name, None, None
    left = int(left_s)
    done = int(done_s) if dash else 0
    if left > 0x7FFFFFFF or done > 0x7FFFFFFF:
        return name, None, None
    return name[:plus] + name[stem_end:], left, done


@dataclass
class _Entry:
    file: str
    device: str
    path: str
    id: str
    src: SourceFile
    title: str | None = None
    version: str | None = None
    machine_id: str | None = None
    sort_key: str | None = None
    linux: str | None = None
    efi: str | None = None
    uki: str | None = None
    kind: str = ""
    bad: str | None = None
    initrds: list[str] = field(default_factory=list)
    options: str | None = None
    devicetree: str | None = None
    tries_left: int | None = None
    tries_done: int | None = None
    title_show: str = ""
    notes: list[str] = field(default_factory=list)


def _compare(a: _Entry, b: _Entry) -> int:
    def c(x: int | str, y: int | str) -> int:
        return (x > y) - (x < y)  # type: ignore[operator]

    r = c(a.tries_left == 0, b.tries_left == 0)
    if r:
        return r
    r = c(a.sort_key is None, b.sort_key is None)
    if r:
        return r
    if a.sort_key is not None and b.sort_key is not None:
        r = c(a.sort_key, b.sort_key)
        if r:
            return r
        r = c(a.machine_id is not None, b.machine_id is not None) or c(a.machine_id or "", b.machine_id or "")
        if r:
            return r
        r = -uapi_vercmp(a.version, b.version)
        if r:
            return r
    r = -uapi_vercmp(a.id, b.id)
    if r:
        return r
    if a.tries_left is None or b.tries_left is None:
        return 0
    r = -c(a.tries_left, b.tries_left)
    if r:
        return r
    return c(a.tries_done or 0, b.tries_done or 0)


def loader_dir(path: str) -> str:
    """``/boot/loader`` for ``/boot/loader/entries`` or ``/boot/loader/loader.conf``; ``/loader`` otherwise."""
    p = path.rstrip("/")
    for tail in ("/entries", "/loader.conf"):
        if p.endswith("/loader" + tail):
            return p[: -len(tail)]
    return p if p.endswith("/loader") else "/loader"


def _read_entry(files: BootFiles, device: str, name: str, budget: StepBudget, *, limits: Limits, base: str) -> _Entry | None:
    path = f"{base}/entries/{name}"
    src = try_read_source(files, device, path, limits=limits)
    if src is None:
        return None
    ident, left, done = parse_tries(name)
    e = _Entry(file=name, device=device, path=path, id=ident.lower(), src=src, tries_left=left, tries_done=done)
    for key, value, lineno in parse_key_values(src, budget):
        if key == "title":
            e.title = value
        elif key == "sort-key":
            e.sort_key = value
        elif key == "version":
            e.version = value
        elif key == "machine-id":
            e.machine_id = value
        elif key in ("linux", "efi", "uki"):
            if e.kind and e.kind != key:
                e.bad = f"both `{e.kind}` and `{key}` (line {lineno}): systemd-boot rejects the entry"
                break
            e.kind = key
            setattr(e, key, value)
        elif key == "architecture":
            if value.lower() != EFI_MACHINE_TYPE:
                e.bad = f"architecture {sanitize_text(value)} is not {EFI_MACHINE_TYPE}: systemd-boot skips it"
                break
        elif key == "devicetree":
            e.devicetree = value
        elif key == "initrd":
            e.initrds.append(value)
        elif key == "options":
            e.options = value if e.options is None else f"{e.options} {value}"
        elif key == "uki-url":
            e.bad = "uki-url (network boot) entries are not supported"
            break
    return e


def probe_sdboot(text: str) -> int:
    """Confidence that ``text`` is a loader.conf or a Type #1 entry."""
    keys = {ln.strip().split(None, 1)[0] for ln in text[:65536].splitlines()[:500] if ln.strip()
            and not ln.strip().startswith("#")}
    score = 0
    if keys & {"linux", "efi", "uki"}:
        score += 50
    if keys & {"title", "version", "machine-id", "sort-key", "options"}:
        score += 20
    if keys & {"timeout", "default", "console-mode", "editor", "auto-entries"}:
        score += 30
    if keys & {"menuentry", "LABEL", "label", "image"}:
        score -= 50
    return max(0, min(score, 100))


def _entry_dirs(files: BootFiles, device: str, base: str) -> list[str]:
    """The ESP (the configuration's device) plus any other FAT filesystem with /loader/entries (XBOOTLDR).

    Entries under ``/boot/loader`` of a root filesystem are read from that filesystem only.
    """
    out = [device]
    if base != "/loader":
        return out
    for info in files.devices():
        if info.name == device or (info.fs_type or "").lower() != "vfat":
            continue
        st = files.stat(info.name, "/loader/entries")
        if st is not None and st.is_dir:
            out.append(info.name)
    return out


def load_sdboot_menu(files: BootFiles, device: str | None, path: str, *, limits: Limits) -> BootMenu:
    """Build systemd-boot's menu from loader.conf and the Type #1 entries.

    Args:
        files: the guest's files.
        device: the ESP (the device holding ``/loader``), or a root filesystem.
        path: ``/loader/loader.conf`` or ``/loader/entries`` (or the same under ``/boot``).
        limits: ``max_config_bytes`` (per file), ``max_menu_entries`` and ``max_script_steps`` apply.

    Returns:
        the sorted entries and the default systemd-boot would pick without EFI variables.

    Raises:
        FileNotFound: neither loader.conf nor an entries directory exists.
        LimitExceeded: a bound was broken.
    """
    if device is None:
        raise FileNotFound(f"{path}: no device given", path=path)
    base = loader_dir(path)
    shown = f"({device}){base}"
    b = MenuBuilder(limits, shown)
    budget = StepBudget(limits, shown)
    conf = try_read_source(files, device, f"{base}/loader.conf", limits=limits)
    pattern: str | None = None
    pattern_line = 0
    timeout: float | None = 0.0
    style = "hidden"
    timeout_note = "no `timeout` in loader.conf: the menu is skipped and the default boots at once"
    if conf is not None:
        for key, value, lineno in parse_key_values(conf, budget):
            if key == "default":
                if value.startswith("@") and value.lower() != "@saved":
                    b.warn(f"unsupported special entry identifier {sanitize_text(value)}; ignored",
                           Location(conf, lineno))
                    continue
                pattern, pattern_line = value, lineno
            elif key == "timeout":
                if value == "menu-force":
                    timeout, style, timeout_note = None, "menu", "timeout menu-force: the menu waits for a key"
                elif value in ("menu-hidden", "menu-disabled"):
                    timeout, style = 0.0, "hidden"
                    timeout_note = f"timeout {value}: the default boots at once"
                elif value.isascii() and value.isdigit() and int(value) <= TIMEOUT_TYPE_MAX:
                    secs = int(value)
                    timeout = float(secs)
                    style = "menu" if secs else "hidden"
                    timeout_note = f"timeout {secs}: " + ("the menu shows for that many seconds" if secs
                                                          else "the default boots at once")
                else:
                    b.warn(f"timeout {sanitize_text(value)}: not a number; ignored", Location(conf, lineno))
    entries: list[_Entry] = []
    found_dir = False
    for dev in _entry_dirs(files, device, base):
        try:
            listing = files.listdir(dev, f"{base}/entries")
        except (FileNotFound, NotADirectory):
            continue
        found_dir = True
        for name, is_dir in sorted(listing):
            budget.step()
            lname = name.lower()
            if is_dir or name.startswith(".") or not lname.endswith(".conf") or lname.startswith("auto-"):
                continue
            e = _read_entry(files, dev, name, budget, limits=limits, base=base)
            if e is None:
                continue
            b.count_entry()
            where = f"({dev}){e.path}"
            if e.bad:
                b.warn(f"{sanitize_text(where)}: {e.bad}")
                continue
            if not e.kind:
                b.warn(f"{sanitize_text(where)}: no `linux`, `efi` or `uki` line; systemd-boot ignores it")
                continue
            loader_file = e.linux or e.efi or e.uki or ""
            if not file_exists(files, dev, normalise_path(loader_file)):
                b.warn(f"{sanitize_text(where)}: {sanitize_text(loader_file)} does not exist on ({dev}); "
                       "systemd-boot hides the entry")
                continue
            entries.append(e)
    if conf is None and not found_dir:
        raise FileNotFound(f"({device}){base}: neither loader.conf nor entries/", path=base)
    if files.stat(device, "/EFI/Linux") is not None:
        b.warn("Type #2 unified kernel images in /EFI/Linux are not listed (not supported)")

    entries.sort(key=functools.cmp_to_key(_compare))
    _unique_titles(entries)
    items: list[MenuItem] = [_to_boot_entry(e, files, b) for e in entries]

    trail: list[str] = []
    default: tuple[int, ...] | None = None
    ids = [e.id for e in entries]
    if not entries:
        trail.append("no usable entries: systemd-boot shows an empty menu")
    elif pattern is not None and pattern.lower() == "@saved":
        trail.append(f"`default @saved` (loader.conf:{pattern_line}) uses the EFI variable LoaderEntryLastBooted, "
                     "which a disk image does not carry")
        default = (0,)
        trail.append(f"-> the first entry in sort order, [0] '{sanitize_text(entries[0].title_show)}'")
    elif pattern is not None:
        pat = pattern.lower()
        hit = next((i for i, ident in enumerate(ids) if efi_fnmatch(pat, ident)), None)
        if hit is not None:
            default = (hit,)
            trail.append(f"`default {sanitize_text(pattern)}` (loader.conf:{pattern_line}) matches entry id "
                         f"'{sanitize_text(ids[hit])}' -> [{hit}] '{sanitize_text(entries[hit].title_show)}'")
        else:
            default = (0,)
            trail.append(f"`default {sanitize_text(pattern)}` (loader.conf:{pattern_line}) matches no entry id")
            legacy = next((i for i, ident in enumerate(ids) if efi_fnmatch(pat, ident.removesuffix(".conf"))), None)
            if legacy is not None:
                trail.append(f"(it would match '{sanitize_text(ids[legacy])}' on systemd-boot before v245, whose "
                             "ids had no .conf)")
            trail.append(f"-> the first entry in sort order, [0] '{sanitize_text(entries[0].title_show)}'")
    else:
        default = (0,)
        trail.append(f"no `default` in loader.conf -> the first entry in sort order, "
                     f"[0] '{sanitize_text(entries[0].title_show)}'")
    if default is not None and entries and entries[default[0]].kind != "linux":
        trail.append("note: that entry is not a Linux kernel")
    trail.append(timeout_note)
    return BootMenu(
        loader=LOADER,
        config=FileRef(device=device, path=conf.path if conf is not None else f"{base}/entries",
                       written=conf.path if conf is not None else f"{base}/entries"),
        items=tuple(items),
        default=default,
        default_trail=tuple(trail),
        timeout=timeout,
        timeout_style=style,
        warnings=tuple(b.warnings),
    )


def _unique_titles(entries: list[_Entry]) -> None:
    """systemd-boot's ``generate_boot_entry_titles``: add version, machine-id, then id to duplicate titles."""
    for e in entries:
        e.title_show = e.title if e.title is not None else e.id

    def dupes() -> set[int]:
        seen: dict[str, list[int]] = {}
        for i, e in enumerate(entries):
            seen.setdefault(e.title_show, []).append(i)
        return {i for group in seen.values() if len(group) > 1 for i in group}

    for suffix in ("version", "machine_id", "id"):
        d = dupes()
        if not d:
            return
        for i in d:
            e = entries[i]
            value = getattr(e, suffix)
            if value is None:
                continue
            if suffix == "machine_id":
                value = value[:8]
            e.title_show = f"{e.title_show} ({value})"


def _linux_cmdline(e: _Entry) -> str:
    """What systemd-boot passes a Type #1 Linux entry: ``initrd=PATH`` per initrd line (for
    kernels without LINUX_INITRD_MEDIA; PATH with ``/`` turned into ``\\`` as it stores
    paths), then the entry's options (src/boot/boot.c ``initrd_prepare``)."""
    parts = [f"initrd={p.replace('/', chr(92))}" for p in e.initrds]
    if e.options:
        parts.append(e.options)
    return " ".join(parts)


def _to_boot_entry(e: _Entry, files: BootFiles, b: MenuBuilder) -> BootEntry:
    origin = Location(e.src, 1)
    notes = list(e.notes)
    if e.tries_left is not None:
        notes.append(f"boot counting: {e.tries_left} tries left, {e.tries_done} done"
                     + (" - marked bad, sorted last" if e.tries_left == 0 else ""))
    if e.devicetree:
        notes.append(f"devicetree {sanitize_text(e.devicetree)} (noted)")
    for key, value in (("sort-key", e.sort_key), ("version", e.version), ("machine-id", e.machine_id)):
        if value is not None:
            notes.append(f"{key} {sanitize_text(value)}")
    body = e.src.text
    if e.kind == "linux":
        assert e.linux is not None
        kernel = FileRef(device=e.device, path=normalise_path(e.linux), written=e.linux)
        initrds = tuple(b.file_ref(files, e.device, normalise_path(p), p, what="initrd", location=origin)
                        for p in e.initrds)
        return BootEntry(title=e.title_show, id=e.id, kind=EntryKind.LINUX, kernel=kernel, initrds=initrds,
                         cmdline=_linux_cmdline(e), origin=origin, body=body, notes=tuple(notes))
    target = e.efi or e.uki or ""
    ref = FileRef(device=e.device, path=normalise_path(target), written=target)
    if e.kind == "efi":
        notes.insert(0, f"efi {sanitize_text(target)}: runs another EFI program, not a Linux kernel")
        kind = EntryKind.CHAINLOAD
    else:
        notes.insert(0, f"uki {sanitize_text(target)}: a unified kernel image (not supported for extraction)")
        kind = EntryKind.OTHER
    return BootEntry(title=e.title_show, id=e.id, kind=kind, kernel=ref, cmdline=e.options or "", origin=origin,
                     body=body, notes=tuple(notes))


def evaluate_sdboot_body(files: BootFiles, menu: BootMenu, entry: BootEntry, body: str, *,
                         limits: Limits) -> BootEntry:
    """Re-read an edited Type #1 entry text (keys as in the entry file).

    Raises:
        ConfigSyntaxError: the text has no ``linux``/``efi``/``uki`` line, or conflicting ones.
    """
    device = (entry.kernel.device if entry.kernel is not None else None) or menu.config.device or ""
    name = entry.id or "edited.conf"
    src = SourceFile(device=device, path=f"{loader_dir(menu.config.path)}/entries/{name} (edited)", text=body)
    budget = StepBudget(limits, src.display)
    e = _Entry(file=name, device=device, path=src.path, id=name, src=src)
    for key, value, lineno in parse_key_values(src, budget):
        if key in ("linux", "efi", "uki"):
            if e.kind and e.kind != key:
                raise ConfigSyntaxError(f"both `{e.kind}` and `{key}`", Location(src, lineno))
            e.kind = key
            setattr(e, key, value)
        elif key in ("title", "version", "sort-key", "machine-id", "devicetree"):
            setattr(e, key.replace("-", "_"), value)
        elif key == "initrd":
            e.initrds.append(value)
        elif key == "options":
            e.options = value if e.options is None else f"{e.options} {value}"
    if not e.kind:
        raise ConfigSyntaxError("the edited entry has no `linux`, `efi` or `uki` line", Location(src, 1))
    e.title_show = e.title if e.title is not None else entry.title
    return _to_boot_entry(e, files, MenuBuilder(limits, src.display))
