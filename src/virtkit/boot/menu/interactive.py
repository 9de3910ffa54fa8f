"""The interactive boot menu as a pure state machine (no curses, no clock, no I/O).

The curses shell (``virtkit/cli/tui.py``) feeds keys and elapsed time into a
:class:`MenuSession` and draws the lines it renders; tests drive the same
object directly.  Behaviour follows GRUB's menu where the operator expects it:

=============  ==============================================================
key            effect
=============  ==============================================================
Up/Down, k/j   move the highlight (stops the countdown, as any key does)
Home/End       first / last item
Enter, Right   boot the highlighted entry, or enter the highlighted submenu
Esc, Left      leave a submenu (Esc at the top does nothing)
e              edit the highlighted entry's commands; Ctrl-X/F10 boots the
               edited text (re-evaluated by the interpreter), Esc discards
c              a command line: ``ls [PATH]``, ``cat PATH``, ``set [VAR=VAL]``,
               ``boot``, ``help``; Esc leaves
a              append kernel arguments (pygrub's key); Enter boots, Esc cancels
=============  ==============================================================

The countdown starts from the menu's ``timeout``; ``timeout_style=hidden`` or
``countdown`` show only a one-line prompt until a key is pressed (Esc shows the
menu).  Every guest string is sanitised before it is rendered.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from virtkit.boot.config.model import BootEntry, BootMenu, MenuItem, Submenu, iter_entries
from virtkit.sanitize import sanitize_text

__all__ = ["BootChoice", "Key", "MenuSession", "Mode", "Screen"]


class Key(enum.Enum):
    UP = "up"
    DOWN = "down"
    LEFT = "left"
    RIGHT = "right"
    HOME = "home"
    END = "end"
    ENTER = "enter"
    ESC = "esc"
    BACKSPACE = "backspace"
    DELETE = "delete"
    BOOT = "boot"  # Ctrl-X / F10 in the editor
    PGUP = "pgup"
    PGDN = "pgdn"


class Mode(enum.Enum):
    MENU = "menu"
    HIDDEN = "hidden"  # timeout_style hidden/countdown: nothing drawn but a prompt
    EDIT = "edit"
    COMMAND = "command"
    APPEND = "append"


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _grub_quote(value: str) -> str:
    """A GRUB 2 word for ``value``: single-quoted, each ``'`` as ``'\\''``."""
    return "'" + value.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class BootChoice:
    """What the operator chose: an entry (by index path), maybe edited, maybe with extra args."""

    path: tuple[int, ...]
    body: str | None = None  # edited commands, to be re-evaluated
    extra_args: str = ""


@dataclass
class Screen:
    """A rendered frame: lines (each at most ``width`` chars) and the highlighted row."""

    lines: list[str]
    highlight: int | None = None
    cursor: tuple[int, int] | None = None  # (row, col) for editors


# A command-line backend: takes the command line, returns output lines.
CommandRunner = Callable[[str], list[str]]


@dataclass
class _Level:
    items: tuple[MenuItem, ...]
    title: str
    cursor: int
    prefix: tuple[int, ...]


@dataclass
class MenuSession:
    """The menu's state.  Feed :meth:`key` and :meth:`tick`; draw :meth:`render`.

    Args:
        menu: the boot menu.
        run_command: backend for the ``c`` command line (None disables it).
        width, height: the screen (the Xen PV console is 80x24).
    """

    menu: BootMenu
    run_command: CommandRunner | None = None
    width: int = 80
    height: int = 24
    mode: Mode = Mode.MENU
    remaining: float | None = None
    stack: list[_Level] = field(default_factory=list)
    edit_lines: list[str] = field(default_factory=list)
    edit_row: int = 0
    edit_col: int = 0
    input_text: str = ""
    output: list[str] = field(default_factory=list)
    message: str = ""
    # ``set NAME=VALUE`` typed at the command line: GRUB keeps it in the context the entry then
    # runs in; here it is prepended to the booted entry's commands, which the worker re-evaluates
    variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stack = [_Level(self.menu.items, "", 0, ())]
        default = self.menu.default or ()
        # Open the submenus on the way to the default, so it is highlighted where it lives.
        for depth, idx in enumerate(default):
            level = self.stack[-1]
            if not 0 <= idx < len(level.items):
                break
            level.cursor = idx
            item = level.items[idx]
            if isinstance(item, Submenu) and depth < len(default) - 1:
                self.stack.append(_Level(item.items, item.title, 0, (*level.prefix, idx)))
        t = self.menu.timeout
        self.remaining = None if t is None else max(0.0, float(t))
        if self.remaining is not None and self.menu.timeout_style in ("hidden", "countdown"):
            self.mode = Mode.HIDDEN

    # ------------------------------------------------------------ helpers

    @property
    def level(self) -> _Level:
        return self.stack[-1]

    def _current(self) -> MenuItem | None:
        lv = self.level
        return lv.items[lv.cursor] if 0 <= lv.cursor < len(lv.items) else None

    def _current_path(self) -> tuple[int, ...]:
        return (*self.level.prefix, self.level.cursor)

    def _default_choice(self) -> BootChoice | None:
        if self.menu.default is None:
            return None
        return BootChoice(self.menu.default)

    def _stop_countdown(self) -> None:
        self.remaining = None

    # ------------------------------------------------------------ input

    def tick(self, seconds: float) -> BootChoice | None:
        """Let ``seconds`` pass; returns the default entry when the countdown ends."""
        if self.remaining is None:
            return None
        self.remaining -= seconds
        if self.remaining <= 0:
            self.remaining = None
            return self._default_choice()
        return None

    def key(self, k: Key | str) -> BootChoice | None:
        """Handle one key (a Key or a printable character); returns a choice when booting."""
        self._stop_countdown()
        self.message = ""
        handler = {
            Mode.MENU: self._key_menu,
            Mode.HIDDEN: self._key_hidden,
            Mode.EDIT: self._key_edit,
            Mode.COMMAND: self._key_command,
            Mode.APPEND: self._key_append,
        }[self.mode]
        return self._with_variables(handler(k))

    def _with_variables(self, choice: BootChoice | None) -> BootChoice | None:
        """The choice with the command line's variables set before the entry's commands."""
        if choice is None or not self.variables:
            return choice
        body = choice.body
        if body is None:
            entry = next((e for p, e in iter_entries(self.menu.items) if p == choice.path), None)
            body = entry.body if entry is not None else None
        if body is None:  # an engine without GRUB commands (extlinux, legacy): nothing to set them in
            return choice
        prefix = "".join(f"set {name}={_grub_quote(value)}\n" for name, value in self.variables.items())
        return BootChoice(choice.path, body=prefix + body, extra_args=choice.extra_args)

    def _set_variable(self, args: str) -> list[str]:
        name, eq, value = args.strip().partition("=")
        if not eq or not _VAR_NAME.fullmatch(name):
            return ["error: usage: set NAME=VALUE (or set alone to list)"]
        if len(self.variables) >= 64 or len(value) > 4096:
            return ["error: too many or too long variables"]
        self.variables[name] = value
        return [sanitize_text(f"{name}={value}  (set for the entry booted from this menu)")]

    def _key_hidden(self, k: Key | str) -> BootChoice | None:
        if k == Key.ENTER:
            return self._default_choice()
        self.mode = Mode.MENU  # Esc (and any other key) shows the menu
        return None

    def _key_menu(self, k: Key | str) -> BootChoice | None:
        lv = self.level
        n = len(lv.items)
        if k in (Key.UP, "k"):
            lv.cursor = max(0, lv.cursor - 1)
        elif k in (Key.DOWN, "j"):
            lv.cursor = min(max(0, n - 1), lv.cursor + 1)
        elif k == Key.HOME:
            lv.cursor = 0
        elif k == Key.END:
            lv.cursor = max(0, n - 1)
        elif k == Key.PGUP:
            lv.cursor = max(0, lv.cursor - self._rows())
        elif k == Key.PGDN:
            lv.cursor = min(max(0, n - 1), lv.cursor + self._rows())
        elif k in (Key.ENTER, Key.RIGHT):
            item = self._current()
            if isinstance(item, Submenu):
                self.stack.append(_Level(item.items, item.title, 0, self._current_path()))
            elif isinstance(item, BootEntry):
                if not item.bootable:
                    self.message = f"not bootable: {item.kind.value} entry ({'; '.join(item.notes) or 'no Linux kernel'})"
                    return None
                return BootChoice(self._current_path())
        elif k in (Key.ESC, Key.LEFT):
            if len(self.stack) > 1:
                self.stack.pop()
        elif k == "e":
            item = self._current()
            if isinstance(item, BootEntry):
                self.mode = Mode.EDIT
                self.edit_lines = item.body.split("\n") if item.body else [""]
                self.edit_row = 0
                self.edit_col = 0
            else:
                self.message = "only menu entries can be edited"
        elif k == "c":
            if self.run_command is None:
                self.message = "the command line is not available"
            else:
                self.mode = Mode.COMMAND
                self.input_text = ""
                self.output = ["Command line: ls [PATH], cat PATH, set [VAR=VALUE], boot, help. Esc leaves."]
        elif k == "a":
            if isinstance(self._current(), BootEntry):
                self.mode = Mode.APPEND
                self.input_text = ""
            else:
                self.message = "select a menu entry to append arguments to"
        return None

    def _key_edit(self, k: Key | str) -> BootChoice | None:
        lines = self.edit_lines
        row, col = self.edit_row, self.edit_col
        line = lines[row]
        if k == Key.ESC:
            self.mode = Mode.MENU
            return None
        if k == Key.BOOT:
            self.mode = Mode.MENU
            return BootChoice(self._current_path(), body="\n".join(lines))
        if k == Key.UP:
            row = max(0, row - 1)
        elif k == Key.DOWN:
            row = min(len(lines) - 1, row + 1)
        elif k == Key.LEFT:
            col = max(0, col - 1)
        elif k == Key.RIGHT:
            col = min(len(line), col + 1)
        elif k == Key.HOME:
            col = 0
        elif k == Key.END:
            col = len(line)
        elif k == Key.ENTER:
            lines[row : row + 1] = [line[:col], line[col:]]
            row, col = row + 1, 0
        elif k == Key.BACKSPACE:
            if col > 0:
                lines[row] = line[: col - 1] + line[col:]
                col -= 1
            elif row > 0:
                col = len(lines[row - 1])
                lines[row - 1 : row + 1] = [lines[row - 1] + line]
                row -= 1
        elif k == Key.DELETE:
            if col < len(line):
                lines[row] = line[:col] + line[col + 1 :]
            elif row + 1 < len(lines):
                lines[row : row + 2] = [line + lines[row + 1]]
        elif (isinstance(k, str) and len(k) == 1 and k.isprintable()) or k == "\t":
            assert isinstance(k, str)
            lines[row] = line[:col] + k + line[col:]
            col += 1
        self.edit_row = row
        self.edit_col = min(col, len(lines[row]))
        return None

    def _key_line_input(self, k: Key | str) -> bool:
        """Shared single-line editing; returns True if the key was consumed."""
        if k == Key.BACKSPACE:
            self.input_text = self.input_text[:-1]
            return True
        if isinstance(k, str) and len(k) == 1 and k.isprintable():
            if len(self.input_text) < 4096:
                self.input_text += k
            return True
        return False

    def _key_command(self, k: Key | str) -> BootChoice | None:
        if k == Key.ESC:
            self.mode = Mode.MENU
            return None
        if self._key_line_input(k):
            return None
        if k == Key.ENTER:
            cmd = self.input_text.strip()
            self.input_text = ""
            self.output.append(f"grub> {cmd}")
            if cmd == "boot":
                choice = self._default_choice()
                if choice is not None:
                    self.mode = Mode.MENU
                    return choice
                self.output.append("error: no default entry to boot")
            elif cmd.startswith("set ") and cmd[4:].strip():
                self.output.extend(self._set_variable(cmd[4:]))
            elif cmd and self.run_command is not None:
                self.output.extend(self.run_command(cmd))
                if cmd == "set":
                    self.output.extend(sanitize_text(f"{n}={v}  (set here)") for n, v in self.variables.items())
            self.output = self.output[-500:]
        return None

    def _key_append(self, k: Key | str) -> BootChoice | None:
        if k == Key.ESC:
            self.mode = Mode.MENU
            return None
        if self._key_line_input(k):
            return None
        if k == Key.ENTER:
            self.mode = Mode.MENU
            return BootChoice(self._current_path(), extra_args=self.input_text.strip())
        return None

    # ------------------------------------------------------------ rendering

    def _rows(self) -> int:
        return max(1, self.height - 8)  # header 3, borders 2, help 2, message 1

    def _fit(self, text: str) -> str:
        text = sanitize_text(text)
        w = self.width - 1
        return text if len(text) <= w else text[: w - 1] + ">"

    def render(self) -> Screen:
        """The current frame, ``height`` lines at most, sanitised."""
        render = {
            Mode.MENU: self._render_menu,
            Mode.HIDDEN: self._render_hidden,
            Mode.EDIT: self._render_edit,
            Mode.COMMAND: self._render_command,
            Mode.APPEND: self._render_append,
        }[self.mode]
        screen = render()
        screen.lines = [self._fit(line) for line in screen.lines[: self.height]]
        return screen

    def _header(self) -> list[str]:
        cfg = self.menu.config
        where = f"({cfg.device}){cfg.path}" if cfg.device else cfg.path
        title = "virtkit boot menu"
        crumbs = " > ".join(lv.title for lv in self.stack[1:])
        return [title.center(self.width - 1).rstrip(), f"  {self.menu.loader}: {where}", f"  {crumbs}" if crumbs else ""]

    def _render_menu(self) -> Screen:
        lines = self._header()
        lines.append("+" + "-" * (self.width - 3) + "+")
        lv = self.level
        rows = self._rows()
        top = max(0, min(lv.cursor - rows + 1, len(lv.items) - rows)) if len(lv.items) > rows else 0
        top = min(top, lv.cursor)
        highlight = None
        default = self.menu.default
        for i in range(top, min(len(lv.items), top + rows)):
            item = lv.items[i]
            mark = "*" if default is not None and default == (*lv.prefix, i) else " "
            label = item.title_display + (" >" if isinstance(item, Submenu) else "")
            if isinstance(item, BootEntry) and not item.bootable:
                label += f"  [{item.kind.value}: not bootable]"
            if i == lv.cursor:
                highlight = len(lines)
            label = sanitize_text(label)
            inner = self.width - 4  # "|" mark label "|" fills width - 1 columns
            if len(label) > inner:
                label = label[: inner - 1] + ">"
            lines.append(f"|{mark}{label.ljust(inner)}|")
        while len(lines) < 4 + rows:
            lines.append("|" + " " * (self.width - 3) + "|")
        lines.append("+" + "-" * (self.width - 3) + "+")
        # Two help lines: one would not fit the 80-column Xen PV console.
        back = ", Esc goes back" if len(self.stack) > 1 else ""
        lines.append(f"  Up/Down (j/k) select, Enter boots{back}.")
        lines.append("  'e' edits the entry, 'a' appends kernel arguments, 'c' opens a command line.")
        if self.message:
            lines.append(f"  {self.message}")
        elif self.remaining is not None:
            lines.append(f"  The highlighted entry will boot automatically in {int(self.remaining + 0.999)}s.")
        else:
            lines.append("")
        return Screen(lines, highlight)

    def _render_hidden(self) -> Screen:
        secs = int((self.remaining or 0) + 0.999)
        if self.menu.timeout_style == "countdown":
            return Screen([f"Booting the default entry in {secs}s. Press Esc for the menu, Enter to boot now."])
        return Screen(["Press Esc for the boot menu, Enter to boot now."])

    def _render_edit(self) -> Screen:
        lines = ["  Edit the commands; Ctrl-X or F10 boots them, Esc discards.", ""]
        rows = self.height - 4
        top = max(0, self.edit_row - rows + 1)
        for line in self.edit_lines[top : top + rows]:
            lines.append("  " + line.expandtabs(4))
        cursor_col = 2 + len(self.edit_lines[self.edit_row][: self.edit_col].expandtabs(4))
        return Screen(lines, None, (2 + self.edit_row - top, min(cursor_col, self.width - 2)))

    def _render_command(self) -> Screen:
        rows = self.height - 1
        lines = [*self.output[-(rows - 1):], f"grub> {self.input_text}"]
        return Screen(lines, None, (len(lines) - 1, min(6 + len(self.input_text), self.width - 2)))

    def _render_append(self) -> Screen:
        item = self._current()
        cmd = item.cmdline if isinstance(item, BootEntry) else ""
        lines = [
            "  Append kernel arguments; Enter boots, Esc cancels.",
            "",
            "  Command line:",
            f"    {cmd}",
            "",
            f"  append> {self.input_text}",
        ]
        return Screen(lines, None, (5, min(11 + len(self.input_text), self.width - 2)))
