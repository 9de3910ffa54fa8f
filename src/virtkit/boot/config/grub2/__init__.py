"""GRUB 2: read a guest's ``grub.cfg`` the way the guest's own GRUB would.

References:
    ../shared/reference/grub2-semantics.md (the behaviour implemented, with its trap list)
    and the GRUB 2.06 / rhboot sources named in each module.

Layout (a pipeline of its own):

* :mod:`.tokens`, :mod:`.lexer`, :mod:`.parser`, :mod:`.ast` - text to units of statements;
* :mod:`.interp`, :mod:`.expand`, :mod:`.env` - running them;
* :mod:`.builtins`, :mod:`.loaders`, :mod:`.test_cmd`, :mod:`.search`, :mod:`.envcmds`,
  :mod:`.regexp`, :mod:`.blscmd`, :mod:`.paths` - the commands;
* :mod:`.defaults`, :mod:`.session` - the menu tree and GRUB's choice of default;
* :mod:`.autoboot` - what an unattended GRUB prints (compared with ``grub-emu`` in tests).

Entry points: :func:`load_grub2_menu` (the config stage calls it) and
:func:`evaluate_entry_body` (the interactive editor).
"""

from __future__ import annotations

import weakref

from virtkit._gcpause import gc_paused
from virtkit.boot.config.grub2.parser import iter_units
from virtkit.boot.config.grub2.session import Grub2Options, Grub2Session
from virtkit.boot.config.grub2.tokens import ScriptText
from virtkit.boot.config.model import BootEntry, BootMenu
from virtkit.boot.config.source import BootFiles, SourceFile
from virtkit.errors import ConfigSyntaxError, LimitExceeded
from virtkit.limits import Limits

__all__ = [
    "Grub2Options",
    "Grub2Session",
    "evaluate_entry_body",
    "load_grub2_menu",
    "open_grub2_session",
    "syntax_errors",
]


_SESSIONS: list[tuple[weakref.ref[BootMenu], Grub2Session]] = []
_MAX_SESSIONS = 8


def _remember(session: Grub2Session) -> None:
    menu = session.menu
    if menu is None:
        return
    _SESSIONS[:] = [(r, s) for r, s in _SESSIONS if r() is not None][-(_MAX_SESSIONS - 1) :]
    _SESSIONS.append((weakref.ref(menu), session))


def open_grub2_session(
    files: BootFiles, device: str | None, path: str, *, limits: Limits, options: Grub2Options | None = None
) -> Grub2Session:
    """Run a configuration and keep the session (menu plus per-entry contexts).

    Args:
        files: the guest's files.
        device: GRUB device holding the config ("hd0,msdos1"); None: the first device.
        path: the config's path on that device ("/boot/grub2/grub.cfg").
        limits: bounds (steps, call depth, includes, sizes, entries).
        options: platform, flavour, variable overrides (see :class:`Grub2Options`).

    Returns:
        The session; ``session.menu`` is the :class:`BootMenu`.

    Raises:
        FileNotFound: the configuration file does not exist.
        LimitExceeded: a bound of ``limits`` was reached (a ``while true`` config, a
            ``source`` loop, runaway recursion, a huge file, a string bomb ...).
        UsageError: bad options.
    """
    session = Grub2Session(files, device, path, limits=limits, options=options)
    try:
        with gc_paused():  # hundreds of thousands of small acyclic objects: see virtkit._gcpause
            ctx = session.run()
            session.menu = session.build(ctx)
    except RecursionError:
        # a safety net only: max_call_depth and the parser's nesting bound stop real configs first
        raise LimitExceeded(
            "max_call_depth", limits.max_call_depth + 1, limits.max_call_depth, f"({device}){path}: calls nested deeper than Python's stack"
        ) from None
    _remember(session)
    return session


def load_grub2_menu(
    files: BootFiles, device: str | None, path: str, *, limits: Limits, options: Grub2Options | None = None
) -> BootMenu:
    """The boot menu a guest's GRUB 2 would show, with the default it would boot.

    Syntax errors and failing commands do not stop GRUB; they become
    ``BootMenu.warnings``.  A configuration that defines no entries gives a menu
    with no items and ``default=None`` (GRUB would drop to its prompt).

    Args:
        files: the guest's files.
        device: GRUB device holding the config ("hd0,msdos1"); None: the first device.
        path: the config's path on that device ("/boot/grub2/grub.cfg").
        limits: bounds.
        options: see :class:`Grub2Options`.

    Returns:
        The menu.

    Raises:
        FileNotFound: the configuration file does not exist.
        LimitExceeded: a bound of ``limits`` was reached.
        UsageError: bad options.
    """
    menu = open_grub2_session(files, device, path, limits=limits, options=options).menu
    assert menu is not None
    return menu


def evaluate_entry_body(
    files: BootFiles,
    menu: BootMenu,
    path: tuple[int, ...],
    body: str,
    *,
    limits: Limits,
    options: Grub2Options | None = None,
) -> BootEntry:
    """Re-run the entry at ``path`` of ``menu`` with an edited ``body``, in that entry's saved context.

    The session that produced ``menu`` is reused when it is still alive (the usual
    case: the editor works on a menu just loaded); otherwise the configuration is
    run again with ``menu``'s flavour to rebuild the entry's context.

    Args:
        files: the guest's files (those ``menu`` was read from).
        menu: a menu from :func:`load_grub2_menu`.
        path: index path of a plain entry in ``menu``.
        body: the new body text (what the user typed in the editor).
        limits: bounds.
        options: the options ``menu`` was loaded with (only used to rebuild the session).

    Returns:
        The entry as GRUB would now boot it.

    Raises:
        UsageError: ``path`` is not a plain entry.
        LimitExceeded: the body exceeds a bound.
    """
    session: Grub2Session | None = None
    for ref, sess in _SESSIONS:
        if ref() is menu:
            session = sess
            break
    if session is None:
        opts = options or Grub2Options(flavour=menu.flavour or "auto")
        session = open_grub2_session(files, menu.config.device, menu.config.path, limits=limits, options=opts)
    return session.evaluate_entry_body(path, body)


def syntax_errors(source: SourceFile, *, limit: int = 100) -> list[ConfigSyntaxError]:
    """Every syntax error GRUB would report reading ``source`` (it skips each and goes on).

    Each error carries a Location; ``str(err)`` is ``file:line:col: message`` and
    ``err.location.render_excerpt()`` quotes the line with a caret.
    """
    script = ScriptText.from_file(source)
    out: list[ConfigSyntaxError] = []
    for unit in iter_units(script):
        if unit.error is not None:
            out.append(ConfigSyntaxError(unit.error, script.location(unit.error_pos)))
            if len(out) >= limit:
                break
    return out
