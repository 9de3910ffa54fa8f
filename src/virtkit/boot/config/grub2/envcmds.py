"""``load_env``, ``save_env``, ``list_env``: the grubenv, read from the guest, never written.

References:
    grub-core/commands/loadenv.c (GRUB 2.06): ``-f FILE`` (default ``$prefix/grubenv``),
    ``--skip-sig``; ``load_env NAME...`` loads only those names; variables are set in
    the current context and not exported.  ``save_env`` rewrites the block in place:
    a set variable is stored, an unset one deleted; "environment block too small"
    if it does not fit; it needs a plain disk (not LVM, RAID, crypto).

``save_env`` updates only an in-memory copy (``Machine.env_blocks``) and
records the write in ``env_writes`` so the report can say what a real boot
would have written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.argopts import ArgError, HelpRequested, Opt, parse_args
from virtkit.boot.config.grub2.paths import open_error, read_bytes
from virtkit.boot.config.grubenv import GRUBENV_SIGNATURE, parse_grubenv, render_grubenv
from virtkit.errors import CorruptStructure, LimitExceeded

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = ["cmd_list_env", "cmd_load_env", "cmd_save_env"]

_LOAD_OPTS = (Opt("file", "f", value=True), Opt("skip-sig", "s"))
_SAVE_OPTS = (Opt("file", "f", value=True),)


def _envfile(interp: Interpreter, state: dict[str, object]) -> str | None:
    f = state.get("file")
    if isinstance(f, str):
        return f
    prefix = interp.get("prefix")
    if prefix is None:
        return None
    return prefix + "/grubenv"


def _read_block(interp: Interpreter, written: str) -> tuple[str, dict[str, str] | None, int, int]:
    """(where, variables, size, status): the block as GRUB would read it now.

    A block changed by ``save_env`` earlier in this run is read back changed.  On error
    the variables are None and the status non-zero (already reported).
    """
    rp, err = open_error(interp, written)
    where = f"({rp.device_name}){rp.path}"
    if err is not None:
        return where, None, 0, interp.error(*err)
    try:
        data = read_bytes(interp, rp, limit=interp.limits.max_grubenv_bytes)
    except LimitExceeded as exc:
        raise LimitExceeded("max_grubenv_bytes", exc.value, interp.limits.max_grubenv_bytes, where) from None
    if data is None:
        return where, None, 0, interp.error(E.GRUB_ERR_FILE_READ_ERROR, f"cannot read `{written}'")
    try:
        env = parse_grubenv(data, limits=interp.limits, where=where)
    except CorruptStructure:
        return where, None, 0, interp.error(E.GRUB_ERR_BAD_FILE_TYPE, "invalid environment block")
    blocks = interp.machine.env_blocks
    if where not in blocks:
        for note in env.notes:
            interp.warn(note)
        blocks[where] = dict(env.variables)
        if interp.loaded_env is None:
            interp.loaded_env = dict(env.variables)
            interp.env_file = where
    return where, blocks[where], env.size, 0


def cmd_load_env(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, names = parse_args(_LOAD_OPTS, args)
    except HelpRequested:
        interp.write("Usage: load_env [-f FILE] [-s|--skip-sig] [variable_name_to_whitelist] [...]\n")
        return 0
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    written = _envfile(interp, state)
    if written is None:
        return interp.error(E.GRUB_ERR_FILE_NOT_FOUND, "variable `prefix' isn't set")
    where, variables, _size, status = _read_block(interp, written)
    if variables is None:
        return status
    for k, v in list(variables.items()):
        if names and k not in names:
            continue
        interp.set(k, v, "load_env", f"{k}={v}", detail=where)
    return 0


def cmd_save_env(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, names = parse_args(_SAVE_OPTS, args)
    except HelpRequested:
        interp.write("Usage: save_env [-f FILE] variable_name [...]\n")
        return 0
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    if not names:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "no variable is specified")
    written = _envfile(interp, state)
    if written is None:
        return interp.error(E.GRUB_ERR_FILE_NOT_FOUND, "variable `prefix' isn't set")
    where, variables, size, status = _read_block(interp, written)
    if variables is None:
        return status
    dev = where[1 : where.find(")")]
    if dev.startswith(("lvm/", "lvmid/", "md/", "mduuid/", "cryptouuid/")):
        interp.warn(f"save_env: a real GRUB cannot write {where} on {dev} (not a plain disk)")
    new = dict(variables)
    for n in names:
        v = interp.get(n)
        if v is None:
            new.pop(n, None)
        else:
            new[n] = v
    try:
        render_grubenv(new, size=max(size, len(GRUBENV_SIGNATURE)), warning_line=False)
    except ValueError:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "environment block too small")
    interp.machine.env_blocks[where] = new
    for n in names:
        key = n if where == interp.env_file else f"{where}:{n}"
        interp.machine.env_writes[key] = new.get(n)
    return 0


def cmd_list_env(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    try:
        state, _ = parse_args(_SAVE_OPTS, args)
    except HelpRequested:
        interp.write("Usage: list_env [-f FILE]\n")
        return 0
    except ArgError as exc:
        return interp.error(E.GRUB_ERR_BAD_ARGUMENT, str(exc))
    written = _envfile(interp, state)
    if written is None:
        return interp.error(E.GRUB_ERR_FILE_NOT_FOUND, "variable `prefix' isn't set")
    _where, variables, _size, status = _read_block(interp, written)
    if variables is None:
        return status
    for k, v in variables.items():
        interp.write(f"{k}={v}\n")
    return 0
