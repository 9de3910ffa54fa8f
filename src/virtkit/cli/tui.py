"""The curses shell of the interactive boot menu (the state machine is boot/menu/interactive.py).

Written for the Xen PV console: an 80x24 vt100 with no colour, reached by
libxl through a pty (``TERM=vt100``).  Highlighting uses reverse video only;
borders are plain ASCII.  Everything drawn was rendered (and sanitised) by
:class:`~virtkit.boot.menu.interactive.MenuSession`.
"""

from __future__ import annotations

import curses
import os
import time

from virtkit.boot.menu.interactive import BootChoice, Key, MenuSession, Mode

__all__ = ["run_menu"]

_KEYS: dict[int, Key] = {
    curses.KEY_UP: Key.UP,
    curses.KEY_DOWN: Key.DOWN,
    curses.KEY_LEFT: Key.LEFT,
    curses.KEY_RIGHT: Key.RIGHT,
    curses.KEY_HOME: Key.HOME,
    curses.KEY_END: Key.END,
    curses.KEY_PPAGE: Key.PGUP,
    curses.KEY_NPAGE: Key.PGDN,
    curses.KEY_ENTER: Key.ENTER,
    curses.KEY_BACKSPACE: Key.BACKSPACE,
    curses.KEY_DC: Key.DELETE,
    curses.KEY_F10: Key.BOOT,
}
_CHARS: dict[str, Key] = {
    "\n": Key.ENTER,
    "\r": Key.ENTER,
    "\x1b": Key.ESC,
    "\x7f": Key.BACKSPACE,
    "\x08": Key.BACKSPACE,
    "\x18": Key.BOOT,  # Ctrl-X, as in GRUB's editor
}


def _translate(ch: int | str) -> Key | str | None:
    if isinstance(ch, int):
        return _KEYS.get(ch)
    if ch in _CHARS:
        return _CHARS[ch]
    if ch == "\x03":
        raise KeyboardInterrupt
    return ch if ch.isprintable() or ch == "\t" else None


def _draw(stdscr: curses.window, session: MenuSession) -> None:
    screen = session.render()
    stdscr.erase()
    h, w = stdscr.getmaxyx()
    for row, line in enumerate(screen.lines[: h]):
        attr = curses.A_REVERSE if row == screen.highlight else curses.A_NORMAL
        text = line[: max(0, w - 1)]
        if row == screen.highlight:
            text = text.ljust(max(0, w - 1))
        try:
            stdscr.addstr(row, 0, text, attr)
        except curses.error:
            pass
    if screen.cursor is not None:
        try:
            curses.curs_set(1)
        except curses.error:
            pass
        r, c = screen.cursor
        try:
            stdscr.move(min(r, h - 1), min(c, w - 1))
        except curses.error:
            pass
    else:
        try:
            curses.curs_set(0)
        except curses.error:
            pass
    stdscr.refresh()


def _loop(stdscr: curses.window, session: MenuSession) -> BootChoice | None:
    stdscr.keypad(True)
    stdscr.timeout(100)
    h, w = stdscr.getmaxyx()
    session.height, session.width = max(10, h), max(40, w)
    last = time.monotonic()
    while True:
        _draw(stdscr, session)
        try:
            ch = stdscr.get_wch()
        except curses.error:
            ch = None
        now = time.monotonic()
        if ch is None:
            choice = session.tick(now - last)
            last = now
            if choice is not None:
                return choice
            continue
        last = now
        if ch == curses.KEY_RESIZE:
            h, w = stdscr.getmaxyx()
            session.height, session.width = max(10, h), max(40, w)
            continue
        key = _translate(ch)
        if key is None:
            continue
        choice = session.key(key)
        if choice is not None:
            return choice


def run_menu(session: MenuSession) -> BootChoice | None:
    """Show the menu on the terminal until the operator boots something (or the countdown ends).

    Returns:
        the choice, or None when there is nothing to boot.

    Raises:
        KeyboardInterrupt: Ctrl-C.
    """
    os.environ.setdefault("ESCDELAY", "25")
    if session.remaining == 0 and session.mode in (Mode.MENU, Mode.HIDDEN):
        return session.tick(0)  # timeout=0: boot at once, draw nothing (GRUB)
    return curses.wrapper(_loop, session)
