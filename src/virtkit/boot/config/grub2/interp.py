"""The GRUB 2 script evaluator: statements, commands, functions, contexts, budgets.

References:
    grub-core/script/execute.c (GRUB 2.06): ``grub_script_execute_cmd`` (``$?`` after every
    command), ``_cmdline`` (command lookup: command, then function, then assignment,
    else "can't find command" with status 0), ``_cmdif``, ``_cmdfor``, ``_cmdwhile``,
    ``grub_script_function_call``, ``grub_script_execute_sourcecode`` and ``_new_scope``,
    and the loop/return globals (``active_loops``, ``active_breaks``, ``is_continue``,
    ``function_return``) whose odd corners are reproduced on purpose.
    grub-core/normal/main.c ``read_config_file``: ``config_file``/``config_directory``,
    unit-at-a-time execution with error recovery.

No guest string is ever evaluated by Python: scripts are data walked by this
module.  Every statement costs one step of ``Limits.max_script_steps``; function
calls, entry bodies, ``eval`` and includes are bounded by ``max_call_depth`` and
``max_include_depth``; every variable and word by ``max_string_bytes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.ast import Command, For, FunctionDef, If, Lit, Stmt, Unit, Var, While, Word
from virtkit.boot.config.grub2.env import Context, MenuItemDef
from virtkit.boot.config.grub2.expand import Scope, expand_argv
from virtkit.boot.config.grub2.parser import iter_units
from virtkit.boot.config.grub2.tokens import ScriptText
from virtkit.boot.config.source import BootFiles, DeviceInfo, Location, SourceFile
from virtkit.errors import ConfigRuntimeError, LimitExceeded
from virtkit.limits import Limits

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.loaders import BootState

__all__ = ["CommandFn", "Interpreter", "MenuShown", "StopEvaluation"]

log = logging.getLogger(__name__)

CommandFn = Callable[["Interpreter", str, list[str], bool], int]


class StopEvaluation(Exception):
    """``halt``/``reboot``/``exit``/``normal_exit``: GRUB stops running the script."""

    def __init__(self, command: str, location: Location | None) -> None:
        super().__init__(command)
        self.command = command
        self.location = location


class MenuShown(Exception):
    """``configfile`` read a file with entries: GRUB now shows *that* menu."""

    def __init__(self, context: Context, path: str) -> None:
        super().__init__(path)
        self.context = context
        self.path = path


@dataclass
class Provenance:
    """Where a variable got its current value (for the default-selection trail)."""

    how: str  # "set", "assign", "load_env", "preset", "search", ...
    location: Location | None
    text: str = ""  # the words as written, e.g. "default=${saved_entry}"
    refs: tuple[str, ...] = ()  # variables the written text referenced
    detail: str = ""  # e.g. the grubenv file a value was loaded from
    ref_values: tuple[tuple[str, str | None, Provenance | None], ...] = ()  # refs as they were then


@dataclass
class FunctionRec:
    """A defined function; ``executing`` guards against redefining a running one."""

    fdef: FunctionDef
    script: ScriptText
    executing: int = 0


@dataclass
class Machine:
    """The mutable global state a menu entry's evaluation may change (snapshotted per entry)."""

    functions: dict[str, FunctionRec] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    env_blocks: dict[str, dict[str, str]] = field(default_factory=dict)  # grubenv views (after save_env)
    env_writes: dict[str, str | None] = field(default_factory=dict)
    search_cache: dict[tuple[str, str], str] = field(default_factory=dict)

    def snapshot(self) -> Machine:
        return Machine(
            dict(self.functions),
            set(self.modules),
            {k: dict(v) for k, v in self.env_blocks.items()},
            dict(self.env_writes),
            dict(self.search_cache),
        )


_TRACKED = frozenset({"default", "fallback", "timeout", "timeout_style", "saved_entry", "next_entry", "prev_saved_entry"})


# Commands registered with GRUB_COMMAND_FLAG_EXTRACTOR (kern/corecmd.c set, commands/test.c,
# commands/menuentry.c, commands/search*.c): the only ones extract_entries_* may run.
EXTRACTOR_COMMANDS = frozenset({"set", "test", "[", "menuentry", "submenu", "search", "search.file",
                                "search.fs_label", "search.fs_uuid"})

class Interpreter:
    """Runs GRUB 2 scripts against a guest's files.

    Args:
        files: the guest's files (read-only).
        limits: bounds.
        fedora: Fedora/RHEL rules (``\\xHH`` escapes, default rewrite, lookups).
        platform: ``grub_platform`` ("pc", "efi", "xen", ...).
        commands: the command table (name -> handler).
    """

    def __init__(
        self,
        files: BootFiles,
        *,
        limits: Limits,
        fedora: bool,
        platform: str,
        commands: dict[str, CommandFn],
        trace: bool = False,
    ) -> None:
        self.files = files
        self.limits = limits
        self.fedora = fedora
        self.platform = platform
        self.commands = commands
        self.trace = trace
        self.devices: list[DeviceInfo] = list(files.devices())
        self.ctx = Context(menu=[])
        self.contexts: list[Context] = [self.ctx]
        self.machine = Machine()
        self.scope: Scope | None = None
        self.active_loops = 0
        self.active_breaks = 0
        self.is_continue = False
        self.function_return = False
        self.steps = 0
        self.call_depth = 0
        self.include_depth = 0
        self.extractor_level = 0  # inside extract_entries_source/configfile
        self.out: list[str] = []
        self.warnings: list[str] = []
        self.pending: tuple[int, str] | None = None
        self.cur_script: ScriptText | None = None
        self.cur_pos = 0
        self.cur_how = ""
        self.boot: BootState | None = None  # set while an entry body runs
        self.provenance: dict[str, Provenance] = {}
        self.unit_cache: dict[str, list[Unit]] = {}
        self.blscfg_seen = False
        self.stop: StopEvaluation | None = None
        self.syntax_errors = 0
        self.total_items = 0
        self.printed_errors = 0
        self.bls_created: set[str] = set()
        self.bls_dir: str | None = None
        self.bls_sort = "name"
        self.bls_rhel8 = False
        self.cur_node: Stmt | None = None
        self.password_users: list[str] = []
        self.btrfs_relative_path: bool | None = None
        self.loaded_env: dict[str, str] | None = None
        self.env_file: str | None = None

    # -- locations, output, errors ----------------------------------------

    def location(self) -> Location | None:
        if self.cur_script is None:
            return None
        return self.cur_script.location(self.cur_pos)

    def warn(self, message: str, location: Location | None = None) -> None:
        loc = location if location is not None else self.location()
        prefix = f"{loc.render_prefix()}: " if loc is not None else ""
        chain = loc.render_chain() if loc is not None else ""  # a sourced file: which file read it, where
        if len(self.warnings) < 10000:
            self.warnings.append(prefix + message + chain)

    def write(self, text: str) -> None:
        """Text GRUB would print on the console."""
        self.out.append(text)

    def error(self, code: int, message: str) -> int:
        """``grub_error``: remember an error to print after the command; returns ``code``."""
        self.pending = (code, message)
        return code

    def print_error(self) -> None:
        """``grub_print_error``: print and forget the pending error."""
        if self.pending is None:
            return
        code, message = self.pending
        self.pending = None
        if code == E.GRUB_ERR_NONE:
            return
        self.printed_errors += 1
        self.write(f"error: {message}.\n")
        self.warn(f"GRUB error: {message}")

    # -- budgets -----------------------------------------------------------

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_script_steps:
            raise LimitExceeded("max_script_steps", self.steps, self.limits.max_script_steps, self._where(), location=self.location())

    def refused_in_extractor(self, name: str) -> int:
        """``grub_script_execute_cmdline``: inside extract_entries_* only GRUB_COMMAND_FLAG_EXTRACTOR
        commands run (functions and assignments are not commands); the error code, or 0."""
        if self.extractor_level and name not in EXTRACTOR_COMMANDS:
            return self.error(E.GRUB_ERR_EXTRACTOR, f"{name} isn't allowed to execute in an extractor")
        return 0

    def _where(self) -> str:
        loc = self.location()
        return loc.render_prefix() if loc is not None else "grub.cfg"

    def check_string(self, size: int) -> None:
        if size > self.limits.max_string_bytes:
            raise LimitExceeded("max_string_bytes", size, self.limits.max_string_bytes, self._where(), location=self.location())

    def enter_call(self) -> None:
        self.call_depth += 1
        if self.call_depth > self.limits.max_call_depth:
            self.call_depth -= 1
            raise LimitExceeded("max_call_depth", self.call_depth + 1, self.limits.max_call_depth, self._where(), location=self.location())

    # -- variables ---------------------------------------------------------

    def get(self, name: str) -> str | None:
        var = self.ctx.vars.get(name)
        return None if var is None else var.value

    def set(
        self, name: str, value: str, how: str = "set", text: str = "", *, refs: tuple[str, ...] = (), detail: str = ""
    ) -> None:
        if len(value) > self.limits.max_string_bytes:
            self.check_string(len(value))
        self.ctx.set(name, value)
        if name in _TRACKED:
            snap = tuple((r, self.get(r), self.provenance.get(r)) for r in refs)
            self.provenance[name] = Provenance(how, self.location(), text, refs, detail, snap)

    def unset(self, name: str) -> None:
        self.ctx.unset(name)
        if name in _TRACKED:
            self.provenance[name] = Provenance("unset", self.location())

    # -- expansion ---------------------------------------------------------

    def _limit(self, size: int) -> None:
        self.check_string(size)

    def expand(self, words: tuple[Word, ...] | list[Word]) -> list[str]:
        glob = None
        if "regexp" in self.machine.modules:
            from virtkit.boot.config.grub2.paths import glob_expand

            glob = lambda s: glob_expand(self, s)  # noqa: E731
        return expand_argv(
            words, self.get, self.scope, fedora=self.fedora, max_bytes=self.limits.max_string_bytes,
            glob=glob, on_limit=self._limit,
        )

    # -- running scripts ---------------------------------------------------

    def units(self, script: ScriptText) -> list[Unit]:
        cached = self.unit_cache.get(script.text)
        if cached is not None:
            return cached
        units = list(iter_units(script))
        if len(self.unit_cache) < 4096:
            self.unit_cache[script.text] = units
        return units

    def run_units(self, script: ScriptText, *, stop_on_error: bool) -> int:
        """Run a parsed script unit by unit (``read_config_file`` / ``execute_sourcecode``)."""
        ret = 0
        saved = (self.cur_script, self.cur_pos)
        try:
            for unit in self.units(script):
                self.cur_script = script
                self.cur_pos = unit.start
                for fdef in unit.functions:
                    self.define_function(fdef, script)
                if unit.error is not None:
                    self.syntax_errors += 1
                    self.printed_errors += 1
                    loc = script.location(unit.error_pos)
                    self.write("error: syntax error.\n")
                    err = unit.error if unit.error.startswith("syntax error") else f"syntax error: {unit.error}"
                    self.warn(f"{err} (GRUB skips to the next line)", loc)
                    if stop_on_error:
                        return E.GRUB_ERR_INVALID_COMMAND
                    continue
                ret = self.exec_list_cmd(unit.stmts)
                self.print_error()
        finally:
            self.cur_script, self.cur_pos = saved
        return ret

    def define_function(self, fdef: FunctionDef, script: ScriptText) -> None:
        old = self.machine.functions.get(fdef.name)
        if old is not None and old.executing:
            self.error(E.GRUB_ERR_BAD_ARGUMENT, "attempt to redefine a function being executed")
            self.print_error()
            return
        self.machine.functions[fdef.name] = FunctionRec(fdef, script)

    def exec_list(self, stmts: tuple[Stmt, ...]) -> int:
        """``grub_script_execute_cmdlist``."""
        ret = 0
        for stmt in stmts:
            if self.active_breaks:
                break
            ret = self.exec_cmd(stmt)
            if self.function_return:
                break
        return ret

    def exec_list_cmd(self, stmts: tuple[Stmt, ...]) -> int:
        """A command list run through ``grub_script_execute_cmd`` (sets ``$?``)."""
        ret = self.exec_list(stmts)
        self.ctx.set("?", str(ret))
        return ret

    def exec_cmd(self, stmt: Stmt) -> int:
        """``grub_script_execute_cmd``: run one statement, set ``$?``."""
        self.step()
        if isinstance(stmt, Command):
            ret = self.exec_command(stmt)
        elif isinstance(stmt, If):
            ret = self.exec_if(stmt, 0)
        elif isinstance(stmt, For):
            ret = self.exec_for(stmt)
        else:
            ret = self.exec_while(stmt)
        self.ctx.set("?", str(ret))
        return ret

    def exec_if(self, node: If, i: int) -> int:
        cond, body = node.branches[i]
        ret = self.exec_list_cmd(cond)
        if self.function_return:
            return ret
        if self.get("?") == "0":
            return self.exec_list_cmd(body)
        if i + 1 < len(node.branches):
            ret = self.exec_if(node, i + 1)
            self.ctx.set("?", str(ret))
            return ret
        if node.orelse is not None:
            return self.exec_list_cmd(node.orelse)
        return 0

    def exec_for(self, node: For) -> int:
        self.cur_pos = node.pos
        argv = self.expand(node.words)
        self.print_error()
        self.active_loops += 1
        result = 0
        for arg in argv:
            self.step()
            if self.is_continue and self.active_breaks == 1:
                self.active_breaks = 0
            if not self.active_breaks:
                self.set(node.var, arg)
                result = self.exec_list_cmd(node.body)
                if self.function_return:
                    break
        if self.active_breaks:
            self.active_breaks -= 1
        self.active_loops -= 1
        return result

    def exec_while(self, node: While) -> int:
        self.active_loops += 1
        result = 0
        while True:
            self.step()
            result = self.exec_list_cmd(node.cond)
            if self.function_return:
                break
            if (result == 0) if node.until else (result != 0):
                break
            result = self.exec_list_cmd(node.body)
            if self.function_return:
                break
            if self.active_breaks == 1 and self.is_continue:
                self.active_breaks = 0
            if self.active_breaks:
                break
        if self.active_breaks:
            self.active_breaks -= 1
        self.active_loops -= 1
        return result

    def exec_command(self, node: Command) -> int:
        """``grub_script_execute_cmdline``."""
        self.cur_pos = node.pos
        self.cur_node = node
        words = node.words
        if node.block is not None:
            words = (*words, Word((Lit("{" + node.block.text + "}", '"'),)))
        argv = self.expand(words)
        if not argv:
            return self.pending[0] if self.pending is not None else 0
        name = argv[0]
        args = argv[1:]
        invert = False
        if name == "!":
            if len(argv) < 2:
                return self.error(E.GRUB_ERR_BAD_ARGUMENT, "no command is specified")  # printed after the next command
            invert = True
            name = argv[1]
            args = argv[2:]
        cmd = self.commands.get(name)
        if cmd is None:
            frec = self.machine.functions.get(name)
            if frec is None:
                eq = name.find("=")
                if eq >= 0:
                    var = name[:eq]
                    if var[:1].isdigit() or var in ("#", "*", "@"):
                        self.error(E.GRUB_ERR_BAD_ARGUMENT, f"invalid variable name `{var}'")
                    else:
                        refs = tuple(p.name for p in words[0].parts if isinstance(p, Var))
                        self.set(var, name[eq + 1 :], "assign", words[0].raw, refs=refs)
                else:
                    self.error(E.GRUB_ERR_UNKNOWN_COMMAND, f"can't find command `{name}'")
                self.print_error()
                return 0
            ret = self.call_function(frec, args)
        elif self.extractor_level and (refused := self.refused_in_extractor(name)):  # cheap test first: hot path
            ret = refused
        else:
            self.cur_how = name
            ret = cmd(self, name, args, node.block is not None)
        if invert:
            if ret == E.GRUB_ERR_TEST_FAILURE:
                self.pending = None
                ret = 0
            elif ret == 0:
                ret = self.error(E.GRUB_ERR_TEST_FAILURE, "false")
            else:
                self.print_error()
                ret = 0
        if self.pending is not None and self.pending[0] == E.GRUB_ERR_TEST_FAILURE:
            self.pending = None
        self.print_error()
        return ret

    def call_function(self, frec: FunctionRec, args: list[str]) -> int:
        """``grub_script_function_call``."""
        self.enter_call()
        loops = self.active_loops
        self.active_loops = 0
        old_scope = self.scope
        self.scope = Scope(args)
        saved = (self.cur_script, self.cur_pos)
        self.cur_script = frec.script
        frec.executing += 1
        try:
            ret = self.exec_list_cmd(frec.fdef.body)
        finally:
            frec.executing -= 1
            self.cur_script, self.cur_pos = saved
            self.function_return = False
            self.active_loops = loops
            self.scope = old_scope
            self.call_depth -= 1
        return ret

    def execute_sourcecode(self, script: ScriptText) -> int:
        """``grub_script_execute_sourcecode``: a syntax error stops the rest of the code."""
        return self.run_units(script, stop_on_error=True)

    def execute_new_scope(self, script: ScriptText, args: list[str]) -> int:
        """``grub_script_execute_new_scope``: run code with its own positional parameters."""
        self.enter_call()
        old_scope = self.scope
        self.scope = Scope(args)
        try:
            return self.execute_sourcecode(script)
        finally:
            self.scope = old_scope
            self.call_depth -= 1

    # -- contexts ----------------------------------------------------------

    def push_context(self, ctx: Context) -> None:
        self.contexts.append(ctx)
        self.ctx = ctx

    def pop_context(self) -> Context:
        ctx = self.contexts.pop()
        self.ctx = self.contexts[-1]
        return ctx

    # -- files -------------------------------------------------------------

    def read_config_file(self, written: str, *, how: str) -> ScriptText | None:
        """Open a configuration file named as GRUB names files; None if it cannot be read."""
        from virtkit.boot.config.grub2.paths import read_text_file

        src = read_text_file(self, written, limit=self.limits.max_config_bytes)
        if src is None:
            return None
        return ScriptText.from_file(src, included_from=self.location(), how=how)

    def run_config(self, script: ScriptText, written: str) -> None:
        """``read_config_file``: set config_file/config_directory, run units, restore them."""
        self.include_depth += 1
        if self.include_depth > self.limits.max_include_depth:
            self.include_depth -= 1
            raise LimitExceeded("max_include_depth", self.include_depth + 1, self.limits.max_include_depth, self._where(), location=self.location())
        old_file = self.get("config_file")
        old_dir = self.get("config_directory")
        if written.startswith("("):
            cfile = written
        else:
            cfile = f"({self.get('root') or ''}){written}"
        self.ctx.set("config_file", cfile)
        slash = cfile.rfind("/")
        self.ctx.set("config_directory", cfile[:slash] if slash >= 0 else cfile)
        self.ctx.export("config_file")
        self.ctx.export("config_directory")
        try:
            self.run_units(script, stop_on_error=False)
        finally:
            self.include_depth -= 1
            for name, old in (("config_file", old_file), ("config_directory", old_dir)):
                if old is not None:
                    self.ctx.set(name, old)
                else:
                    self.ctx.unset(name)

    def make_code(self, code: str, *, origin: Location | None, how: str) -> ScriptText:
        """Script text for code run by GRUB from a string (entry bodies, eval, BLS)."""
        if origin is not None:
            src = origin.file
            return ScriptText.from_code(src, code, first_line=origin.line, included_from=origin.included_from, how=origin.how or how)
        return ScriptText.from_code(SourceFile(None, f"<{how}>", code), code)

    def raise_runtime(self, message: str) -> None:
        raise ConfigRuntimeError(message, self.location())

    # -- menus -------------------------------------------------------------

    def add_menu_item(self, item: MenuItemDef) -> int:
        menu = self.ctx.menu
        if menu is None:
            return self.error(E.GRUB_ERR_MENU, "no menu context")
        self.total_items += 1
        if self.total_items > self.limits.max_menu_entries:
            raise LimitExceeded("max_menu_entries", self.total_items, self.limits.max_menu_entries, self._where(), location=self.location())
        menu.append(item)
        return 0
