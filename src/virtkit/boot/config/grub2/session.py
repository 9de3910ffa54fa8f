"""Run a guest's GRUB 2 configuration and turn it into a :class:`BootMenu`.

References:
    grub-core/normal/main.c ``grub_normal_execute`` (run the file, then show the menu).
    grub-core/normal/menu.c ``grub_menu_execute_entry`` (``chosen``, the ``default``
    rewrite, a submenu's new context with ``timeout=0`` when autobooting, the body
    run with the entry's arguments), ``run_menu``/``show_menu``/
    ``grub_menu_execute_with_fallback`` (what an unattended boot does).
    grub-core/kern/main.c, normal/main.c: the variables a core image and ``normal``
    set (``root``, ``prefix``, ``cmdpath``, ``grub_platform``, ``grub_cpu``, ``feature_*``).

A :class:`Grub2Session` keeps the interpreter and, for every menu level, the
variables the entries there run with, so one entry can be re-evaluated with an
edited body (the interactive menu's "e" editor) without running the file again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from virtkit.boot.config.grub2.builtins import build_command_table
from virtkit.boot.config.grub2.defaults import (
    Resolution,
    default_remainder,
    fallback_order,
    parse_timeout,
    resolve_entry,
)
from virtkit.boot.config.grub2.env import Context, MenuItemDef
from virtkit.boot.config.grub2.expand import Scope
from virtkit.boot.config.grub2.interp import Interpreter, Machine, MenuShown, Provenance, StopEvaluation
from virtkit.boot.config.grub2.loaders import BootState, quote_cmdline
from virtkit.boot.config.grub2.tokens import ScriptText
from virtkit.boot.config.model import BootEntry, BootMenu, EntryKind, FileRef, MenuItem, Submenu
from virtkit.boot.config.source import BootFiles, Location, SourceFile
from virtkit.errors import FileNotFound, LimitExceeded, UsageError
from virtkit.limits import Limits

__all__ = ["FEATURES", "Grub2Options", "Grub2Session"]

# grub-core/normal/main.c (2.06) ``features``: all set to "y" and exported.
FEATURES = (
    "feature_chainloader_bpb", "feature_ntldr", "feature_platform_search_hint",
    "feature_default_font_path", "feature_all_video_module", "feature_menuentry_id",
    "feature_menuentry_options", "feature_200_final", "feature_nativedisk_cmd",
    "feature_timeout_style",
)

_CPU = {"pc": "i386", "efi": "x86_64", "xen": "x86_64", "emu": "x86_64", "coreboot": "i386", "qemu": "i386", "ieee1275": "powerpc"}
_BLSCFG_RE = re.compile(r"(?m)(?:^|[\s;{])(?:blscfg|bls_import)(?:$|[\s;}])")


def mentions_blscfg(text: str) -> bool:
    """True if ``text`` calls ``blscfg``/``bls_import`` (Fedora's flavour of GRUB).

    A substring test first: the regular expression alone scans a 4 MB file for 75 ms.
    """
    return "bls" in text and _BLSCFG_RE.search(text) is not None


@dataclass(frozen=True)
class Grub2Options:
    """How to run the guest's GRUB.

    Attributes:
        platform: ``grub_platform``: "pc" (BIOS, the default), "efi" (entered through
            an ESP), "xen" (pvgrub2), ...
        cpu: ``grub_cpu``; None picks the usual one for the platform (i386 on pc).
        flavour: "auto" (Fedora rules when the config uses ``blscfg``), "upstream" or "fedora".
        variables: variable overrides set (and exported) before the config runs.
        btrfs_relative_path: force openSUSE's btrfs path rule on/off (None: follow the
            config's ``btrfs_relative_path`` variable).
        bls_sort: "name" (Fedora, RHEL 9) or "version" (RHEL 8) for ``blscfg``.
        trace: print oracle-harness markers from the loader commands (tests only).
    """

    platform: str = "pc"
    cpu: str | None = None
    flavour: str = "auto"
    variables: Mapping[str, str] = field(default_factory=dict)
    btrfs_relative_path: bool | None = None
    bls_sort: str = "name"
    trace: bool = False


@dataclass
class _Level:
    """The variables and global state the entries of one menu level run with."""

    ctx: Context
    machine: Machine
    depth: int


@dataclass
class _SubDefault:
    resolution: Resolution
    value: str | None
    provenance: Provenance | None


class Grub2Session:
    """One evaluation of a GRUB 2 configuration.

    Args:
        files: the guest's files.
        device: GRUB device holding the config ("hd0,msdos1"); None: the first device.
        path: the config's path on that device ("/grub2/grub.cfg").
        limits: bounds.
        options: see :class:`Grub2Options`.
    """

    def __init__(self, files: BootFiles, device: str | None, path: str, *, limits: Limits, options: Grub2Options | None = None) -> None:
        self.files = files
        self.limits = limits
        self.options = options or Grub2Options()
        if self.options.flavour not in ("auto", "upstream", "fedora"):
            raise UsageError(f"unknown GRUB flavour {self.options.flavour!r} (auto, upstream or fedora)")
        devices = list(files.devices())
        if device is None:
            if not devices:
                raise FileNotFound(f"no device holds {path}", path=path)
            device = devices[0].name
        self.device = device
        self.path = path
        self.flavour = "fedora" if self.options.flavour == "fedora" else "upstream"
        self.levels: dict[tuple[int, ...], _Level] = {}
        self.items: dict[tuple[int, ...], MenuItemDef] = {}
        self.sub_defaults: dict[tuple[int, ...], _SubDefault] = {}
        self.entry_writes: dict[tuple[int, ...], dict[str, str | None]] = {}
        self.entry_warnings: dict[str, None] = {}  # ordered set
        self.stopped: StopEvaluation | None = None
        self.shown_file: str | None = None
        self.source: SourceFile | None = None
        self.menu: BootMenu | None = None
        self.interp = self._new_interp()

    # -- set-up ---------------------------------------------------------------

    def _new_interp(self, *, trace: bool | None = None) -> Interpreter:
        opts = self.options
        interp = Interpreter(
            self.files,
            limits=self.limits,
            fedora=self.flavour == "fedora",
            platform=opts.platform,
            commands=build_command_table(opts.platform),
            trace=opts.trace if trace is None else trace,
        )
        interp.btrfs_relative_path = opts.btrfs_relative_path
        interp.bls_sort = opts.bls_sort
        ctx = interp.ctx
        dirname = self.path.rsplit("/", 1)[0] if "/" in self.path else ""
        disk = self.device.split(",")[0]

        def preset(name: str, value: str) -> None:
            ctx.set(name, value)
            ctx.export(name)
            ctx.vars[name].hooked = ctx.vars[name].hooked or name in ("root", "prefix")

        preset("root", self.device)
        preset("prefix", f"({self.device}){dirname}")
        preset("cmdpath", f"({self.device}){dirname}" if opts.platform == "efi" else f"({disk})")
        preset("grub_platform", opts.platform)
        preset("grub_cpu", opts.cpu or _CPU.get(opts.platform, "x86_64"))
        for f in FEATURES:
            preset(f, "y")
        preset("color_normal", "light-gray/black")
        preset("color_highlight", "black/light-gray")
        preset("pager", "")
        for name in ("lang", "locale_dir", "secondary_locale_dir"):
            preset(name, "")
        for k, v in opts.variables.items():
            preset(k, v)
            interp.provenance[k] = Provenance("preset", None, f"{k}={v}")
        return interp

    def _read_main(self) -> ScriptText:
        path = self.path
        if self.options.btrfs_relative_path:
            for dev in self.files.devices():
                if dev.matches(self.device) and dev.fs_type == "btrfs" and dev.default_subvolume:
                    path = "/" + dev.default_subvolume.strip("/") + "/" + path.lstrip("/")
        try:
            data = self.files.read(self.device, path, limit=self.limits.max_config_bytes)
        except LimitExceeded as exc:
            raise LimitExceeded("max_config_bytes", exc.value, self.limits.max_config_bytes, f"({self.device}){self.path}") from None
        self.source = SourceFile(self.device, self.path, data.decode("utf-8", "surrogateescape"))
        return ScriptText.from_file(self.source)

    # -- running the file -------------------------------------------------------

    def run(self) -> Context | None:
        """Run the configuration; the context whose menu GRUB would show (None: GRUB stops)."""
        script = self._read_main()
        if self.options.flavour == "auto" and mentions_blscfg(script.text):
            self.flavour = "fedora"
            self.interp = self._new_interp()
        ctx = self._run_file(script)
        if self.options.flavour == "auto" and self.flavour == "upstream" and self.interp.blscfg_seen:
            self.flavour = "fedora"
            self.interp = self._new_interp()
            ctx = self._run_file(script)
        return ctx

    def _run_file(self, script: ScriptText) -> Context | None:
        interp = self.interp
        written = f"({self.device}){self.path}"
        try:
            interp.run_config(script, written)
        except MenuShown as shown:
            self.shown_file = shown.path
            return shown.context
        except StopEvaluation as stop:
            self.stopped = stop
            interp.warn(f"`{stop.command}` stops GRUB while it reads the configuration; no menu is shown", stop.location)
            return interp.ctx
        return interp.ctx

    # -- isolation for per-entry evaluation ---------------------------------

    def _save(self) -> tuple[Any, ...]:
        i = self.interp
        return (
            i.contexts, i.ctx, i.machine, i.scope, i.active_loops, i.active_breaks, i.is_continue,
            i.function_return, i.boot, len(i.out), i.cur_script, i.cur_pos, dict(i.provenance), i.pending,
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        i = self.interp
        (i.contexts, i.ctx, i.machine, i.scope, i.active_loops, i.active_breaks, i.is_continue,
         i.function_return, i.boot, n_out, i.cur_script, i.cur_pos, i.provenance, i.pending) = saved
        del i.out[n_out:]

    def _isolate(self, level: _Level) -> Context:
        i = self.interp
        ctx = level.ctx.copy()
        ctx.menu = []
        i.contexts = [ctx]
        i.ctx = ctx
        i.machine = level.machine.snapshot()
        i.scope = None
        i.active_loops = 0
        i.active_breaks = 0
        i.is_continue = False
        i.function_return = False
        i.pending = None
        return ctx

    def _body_script(self, item: MenuItemDef, source: str) -> ScriptText:
        origin: Location | None = item.origin
        if origin is not None and item.body_line and not item.bls_id:
            origin = Location(origin.file, max(1, item.body_line - 1), 1, origin.included_from, origin.how)
        return self.interp.make_code(source, origin=origin, how=f"menuentry {item.title}")

    def _enter(self, item: MenuItemDef, *, auto_boot: bool, source: str | None = None) -> Context | None:
        """``grub_menu_execute_entry`` up to running the body; returns the submenu context."""
        i = self.interp
        chosen = i.get("chosen")
        def_ = i.get("default")
        sub: Context | None = None
        if item.submenu:
            sub = i.ctx.new_child()
            sub.menu = []
            i.push_context(sub)
            if auto_boot:
                i.ctx.set("timeout", "0")
        i.ctx.set("chosen", (chosen + ">" if chosen is not None else "") + item.id.replace(">", ">>"))
        i.ctx.export("chosen")
        rest = default_remainder(def_)
        if rest is not None:
            i.set("default", rest, "entry", f"the rest of the path `{def_}`")
        elif i.fedora:
            pass  # Fedora leaves `default` alone
        else:
            i.unset("default")
        i.boot = BootState()
        try:
            if source is None and item.body_block is not None:
                self._run_parsed_body(item)
            else:
                i.execute_new_scope(self._body_script(item, item.source if source is None else source), list(item.args))
        except StopEvaluation as stop:
            i.boot.note(f"`{stop.command}` in the entry body: booting it would {_STOP_VERB.get(stop.command, 'stop GRUB')}")
            if i.boot.kind is EntryKind.NONE:
                i.boot.kind = EntryKind.OTHER
        except MenuShown as shown:
            i.boot.note(f"the entry runs `configfile {shown.path}`: booting it shows that file's menu")
            if i.boot.kind is EntryKind.NONE:
                i.boot.kind = EntryKind.OTHER
        return sub

    def _run_parsed_body(self, item: MenuItemDef) -> None:
        """``execute_new_scope`` of ``setparams ARGS`` + the body, reusing the parse of the block."""
        i = self.interp
        i.enter_call()
        old_scope = i.scope
        i.scope = Scope(item.args)
        saved = (i.cur_script, i.cur_pos)
        try:
            i.step()  # the `setparams 'TITLE' ...` line: the same arguments again
            refused = i.refused_in_extractor("setparams")
            i.ctx.set("?", str(refused or 0))
            if refused:
                i.print_error()
            i.cur_script = item.body_script
            for group in item.body_block.groups:
                ret = i.exec_list_cmd(group)
                i.print_error()
                del ret
        finally:
            i.cur_script, i.cur_pos = saved
            i.scope = old_scope
            i.call_depth -= 1

    # -- the menu tree ----------------------------------------------------------

    def build(self, menu_ctx: Context | None) -> BootMenu:
        """Evaluate every item and compute the default; the result for ``menu_ctx``'s menu."""
        i = self.interp
        output = tuple("".join(i.out).split("\n"))
        if output and output[-1] == "":
            output = output[:-1]
        items_def = list(menu_ctx.menu or []) if menu_ctx is not None else []
        assert self.source is not None
        config = FileRef(self.device, self.path, f"({self.device}){self.path}")
        if menu_ctx is None:
            return BootMenu("grub2", config, (), warnings=tuple(i.warnings), output=output, flavour=self.flavour)
        top_level = _Level(menu_ctx, i.machine.snapshot(), 0)
        top_ctx_values = menu_ctx
        items = self._build_level(top_level, items_def, ())
        default: tuple[int, ...] | None = None
        trail: list[str] = []
        fallback: tuple[tuple[int, ...], ...] = ()
        if self.stopped is not None:
            trail.append(f"GRUB runs `{self.stopped.command}` while reading the configuration: it never shows this menu")
        elif not items:
            trail.append("the configuration defines no menu entries: GRUB would drop to its command line")
        else:
            default, trail = self._default_path(top_ctx_values, items_def, items)
            titles = [d.title for d in items_def]
            ids = [d.id for d in items_def]
            fb = fallback_order(top_ctx_values.get("fallback"), titles, ids, fedora=self.flavour == "fedora")
            fallback = tuple((x,) for x in fb)
        timeout_raw = top_ctx_values.get("timeout")
        timeout = parse_timeout(timeout_raw)
        style = top_ctx_values.get("timeout_style") or "menu"
        if style not in ("menu", "countdown", "hidden") or timeout < 0:
            style = "menu"
        env_writes = dict(i.machine.env_writes)
        if default is not None:
            env_writes.update(self.entry_writes.get(default, {}))
        warnings = list(dict.fromkeys([*i.warnings, *self.entry_warnings]))
        if self.shown_file is not None:
            warnings.insert(0, f"the configuration runs `configfile {self.shown_file}`: the menu shown is that file's")
        return BootMenu(
            loader="grub2",
            config=config,
            items=tuple(items),
            default=default,
            default_trail=tuple(trail),
            fallback=fallback,
            timeout=None if timeout < 0 else float(timeout),
            timeout_style=style,
            flavour=self.flavour,
            env=dict(i.loaded_env or {}),
            env_writes=env_writes,
            warnings=tuple(warnings),
            output=output,
        )

    def _build_level(self, level: _Level, defs: list[MenuItemDef], prefix: tuple[int, ...]) -> list[MenuItem]:
        out: list[MenuItem] = []
        for idx, item in enumerate(defs):
            path = (*prefix, idx)
            self.levels[path] = level
            self.items[path] = item
            if item.submenu:
                out.append(self._build_submenu(item, level, path))
            else:
                out.append(self._build_entry(item, level, path))
        return out

    def _build_entry(self, item: MenuItemDef, level: _Level, path: tuple[int, ...], source: str | None = None) -> BootEntry:
        i = self.interp
        saved = self._save()
        n_warn = len(i.warnings)
        try:
            self._isolate(level)
            writes_before = dict(i.machine.env_writes)
            i.enter_call()
            try:
                self._enter(item, auto_boot=True, source=source)
            finally:
                i.call_depth -= 1
            state = i.boot or BootState()
            writes = {k: v for k, v in i.machine.env_writes.items() if writes_before.get(k, object()) != v}
            if writes:
                self.entry_writes[path] = writes
            superusers = i.get("superusers")
        finally:
            new_warnings = i.warnings[n_warn:]
            del i.warnings[n_warn:]
            self._restore(saved)
        for w in new_warnings:
            if len(self.entry_warnings) < 10000:
                self.entry_warnings.setdefault(w, None)
        return self._entry_from_state(item, state, superusers, source)

    def _entry_from_state(self, item: MenuItemDef, state: BootState, superusers: str | None, source: str | None) -> BootEntry:
        notes = list(state.notes)
        kind = state.kind
        if kind is EntryKind.NONE:
            notes.append("the entry body loads no kernel")
        if item.users is not None and superusers:
            notes.append("restricted entry: with `superusers` set, a real console asks for a password")
        kernel = state.kernel if kind in (EntryKind.LINUX, EntryKind.XEN) else None
        cmdline = quote_cmdline(state.args) if kind in (EntryKind.LINUX, EntryKind.XEN) else ""
        if kind is EntryKind.XEN and state.modules:
            kernel = state.kernel
        return BootEntry(
            title=item.title,
            id=item.id,
            kind=kind,
            kernel=kernel,
            initrds=tuple(state.initrds if kind is EntryKind.LINUX else state.modules),
            cmdline=cmdline,
            classes=item.classes,
            origin=item.origin,
            body=item.raw_body if source is None else source,
            args=item.args[1:],
            users=item.users,
            hotkey=item.hotkey,
            notes=tuple(notes),
        )

    def _build_submenu(self, item: MenuItemDef, level: _Level, path: tuple[int, ...]) -> Submenu:
        i = self.interp
        saved = self._save()
        n_warn = len(i.warnings)
        try:
            self._isolate(level)
            i.enter_call()
            try:
                sub = self._enter(item, auto_boot=True)
                assert sub is not None
                inner_defs = list(sub.menu or [])
                value = sub.get("default")
                prov = i.provenance.get("default")
                inner_level = _Level(sub, i.machine.snapshot(), level.depth + 1)
                inner = self._build_level(inner_level, inner_defs, path)
            finally:
                i.call_depth -= 1
            if inner_defs:
                res = resolve_entry(value, [d.title for d in inner_defs], [d.id for d in inner_defs], fedora=i.fedora)
                self.sub_defaults[path] = _SubDefault(res, value, prov)
            notes: list[str] = []
            if i.boot is not None:
                notes.extend(i.boot.notes)
            if not inner_defs:
                notes.append("the submenu has no entries")
        finally:
            new_warnings = i.warnings[n_warn:]
            del i.warnings[n_warn:]
            self._restore(saved)
        for w in new_warnings:
            if len(self.entry_warnings) < 10000:
                self.entry_warnings.setdefault(w, None)
        return Submenu(item.title, tuple(inner), item.id, item.classes, item.origin, tuple(notes))

    # -- the default ------------------------------------------------------------

    def _default_path(self, ctx: Context, defs: list[MenuItemDef], items: list[MenuItem]) -> tuple[tuple[int, ...], list[str]]:
        i = self.interp
        value = ctx.get("default")
        trail: list[str] = []
        trail.extend(_provenance_lines("default", value, i.provenance.get("default"), i.provenance))
        res = resolve_entry(value, [d.title for d in defs], [d.id for d in defs], fedora=self.flavour == "fedora")
        trail.append(_resolution_line(value, res, defs, self.flavour, ()))
        path: tuple[int, ...] = (res.index,)
        item: MenuItem = items[res.index]
        while isinstance(item, Submenu):
            sd = self.sub_defaults.get(path)
            if sd is None:
                trail.append(f"item {_fmt(path)} is an empty submenu: nothing to boot")
                return path, trail
            inner_defs = [self.items[(*path, k)] for k in range(len(item.items))]
            where = f"inside submenu {_fmt(path)} {item.title!r}"
            if sd.value is None:
                trail.append(f"{where} `default` is unset")
            elif sd.provenance is not None and sd.provenance.how == "entry":
                trail.append(f"{where} `default` = {sd.value!r} ({sd.provenance.text})")
            else:
                trail.extend(f"{where}: {line}" for line in _provenance_lines("default", sd.value, sd.provenance, {}))
            trail.append(_resolution_line(sd.value, sd.resolution, inner_defs, self.flavour, path))
            path = (*path, sd.resolution.index)
            item = item.items[sd.resolution.index]
        return path, trail

    # -- the editor ---------------------------------------------------------------

    def evaluate_entry_body(self, path: tuple[int, ...], body: str) -> BootEntry:
        """Re-run entry ``path`` with an edited body, in that entry's saved context.

        Raises:
            UsageError: ``path`` is not a plain entry of this menu.
        """
        item = self.items.get(path)
        level = self.levels.get(path)
        if item is None or level is None or item.submenu:
            raise UsageError(f"no menu entry at {_fmt(path)}")
        from virtkit.boot.config.grub2.builtins import setparams_prefix

        source = body if item.bls_id else setparams_prefix(item.args) + body
        entry = self._build_entry(item, level, path, source=source)
        return BootEntry(**{**entry.__dict__, "body": body})


_STOP_VERB = {"reboot": "reboot the machine", "halt": "power the machine off", "exit": "leave GRUB", "normal_exit": "leave normal mode"}


def _fmt(path: tuple[int, ...]) -> str:
    return "[" + ">".join(str(p) for p in path) + "]"


def _provenance_lines(name: str, value: str | None, prov: Provenance | None, allprov: Mapping[str, Provenance]) -> list[str]:
    if value is None:
        return [f"`{name}` is unset"]
    lines: list[str] = []
    where = f" ({prov.location.render_prefix()})" if prov is not None and prov.location is not None else ""
    if prov is None:
        lines.append(f"`{name}` = {value!r}")
        return lines
    if prov.how == "load_env":
        lines.append(f"`{name}` = {value!r} from grubenv {prov.detail}{where}")
        return lines
    if prov.how == "preset":
        lines.append(f"`{name}` = {value!r} (set by the caller)")
        return lines
    written = prov.text.split("=", 1)[1] if "=" in prov.text else prov.text
    if written and written.strip("\"'") != value:
        lines.append(f"`{name}` = `{written}`{where}")
        lines.append(f"  which is {value!r}")
    else:
        lines.append(f"`{name}` = {value!r}{where}")
    for ref, ref_value, rp in prov.ref_values:
        if rp is not None and rp.how == "load_env":
            lines.append(f"grubenv {ref} = {ref_value!r} ({rp.detail})")
        elif rp is not None and rp.how in ("set", "assign") and rp.location is not None:
            lines.append(f"`{ref}` = {ref_value!r} ({rp.location.render_prefix()})")
    return lines


def _resolution_line(value: str | None, res: Resolution, defs: list[MenuItemDef], flavour: str, prefix: tuple[int, ...]) -> str:
    target = _fmt((*prefix, res.index))
    title = defs[res.index].title if defs else ""
    rules = "Fedora" if flavour == "fedora" else "upstream"
    if res.how == "unset":
        return f"no default: item {target} {title!r}"
    if res.how == "number":
        return f"{value!r} is the number {res.raw_index} ({rules} rules): item {target} {title!r}"
    if res.how == "title":
        return f"matched the title of item {target} {title!r}"
    if res.how == "id":
        return f"matched the id of item {target} {title!r}"
    if res.how == "out-of-range":
        return f"{value!r} is the number {res.raw_index}, past the end of the menu: GRUB uses item {target} {title!r}"
    if res.how == "invalid":
        return f"{value!r} names no entry ({rules} rules): GRUB uses item {target} {title!r}"
    return f"no entry has the title or id {value!r}: GRUB uses item {target} {title!r}"
