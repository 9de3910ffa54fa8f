"""``blscfg`` / ``bls_import``: Fedora/RHEL GRUB's menu entries from BLS snippets.

References:
    rhboot/grub2 grub-core/commands/blscfg.c ``grub_cmd_blscfg``, ``bls_load_entries``,
    ``find_entry``, ``bls_create_entries``, ``is_default_entry``:
    arguments none / ``default`` / ``non-default`` / an id / ``(dev)/dir`` / a ``.conf``
    path; the directory is ``$blsdir`` or ``/loader/entries/`` on ``$boot`` (else
    ``$root``), retried as ``/boot/loader/entries/``; files not starting with ``.``,
    longer than 5 characters, ending ``.conf``, at most 1 MiB; an entry is created once
    even if ``blscfg`` runs again.
    ../shared/reference/grub2-semantics.md section 13.

Upstream GRUB (Debian, Ubuntu, SUSE) has no ``blscfg``; a config that calls it is a
Fedora-family config, which is what makes the interpreter choose the Fedora rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtkit.boot.config.bls import BlsEntry, bls_menu_item, parse_bls_snippet, sort_bls_entries
from virtkit.boot.config.grub2 import errcodes as E
from virtkit.boot.config.grub2.env import MenuItemDef
from virtkit.boot.config.grub2.paths import find_device
from virtkit.boot.config.grub2.test_cmd import grub_strtoul
from virtkit.boot.config.source import Location, SourceFile, normalise_path
from virtkit.errors import LimitExceeded, VirtkitError

if TYPE_CHECKING:
    from virtkit.boot.config.grub2.interp import Interpreter

__all__ = ["cmd_blscfg"]

_MAX_SNIPPET = 1024 * 1024  # blscfg.c read_entry: files over 1 MiB are skipped


def _read_snippet(interp: Interpreter, dev: str, path: str, entry_id: str) -> BlsEntry | None:
    try:
        data = interp.files.read(dev, path, limit=min(_MAX_SNIPPET, interp.limits.max_config_bytes))
    except LimitExceeded:
        interp.warn(f"BLS snippet ({dev}){path} is larger than 1 MiB; blscfg skips it")
        return None
    except VirtkitError:
        return None
    entry = parse_bls_snippet(data.decode("utf-8", "surrogateescape"), entry_id, f"({dev}){path}")
    if entry.truncated_at is not None:
        interp.warn(f"({dev}){path}:{entry.truncated_at}: a line without a value ends the BLS snippet; later keys are ignored")
    return entry


def _load(interp: Interpreter, path: str | None) -> tuple[str, list[BlsEntry]] | int:
    """(device, snippets in directory order), or an error status."""
    if path is not None and path.endswith(".conf"):
        from virtkit.boot.config.grub2.paths import resolve

        rp = resolve(interp, path)
        if rp.device is None or rp.error is not None:
            return interp.error(*(rp.error or (E.GRUB_ERR_FILE_NOT_FOUND, f"file `{path}' not found")))
        name = rp.path.rsplit("/", 1)[-1]
        entry = _read_snippet(interp, rp.device.name, rp.path, name[:-5])
        return rp.device.name, [entry] if entry is not None else []
    dirname: str | None = None
    devid: str | None = None
    if path is not None and path.startswith("("):
        close = path.find(")")
        if close < 0:
            return interp.error(E.GRUB_ERR_BAD_ARGUMENT, "Filepath isn't correct")
        devid = path[1:close]
        dirname = path[close + 1 :] or "/"
    if devid is None:
        devid = interp.get("root") if interp.platform == "efi" else (interp.get("boot") or interp.get("root"))
        if not devid:
            return interp.error(E.GRUB_ERR_FILE_NOT_FOUND, "variable `boot' isn't set")
    dev = find_device(interp.devices, devid)
    if dev is None:
        return interp.error(E.GRUB_ERR_UNKNOWN_DEVICE, f"disk `{devid}' not found")
    if dev.fs_type is None:
        return interp.error(E.GRUB_ERR_UNKNOWN_FS, "unknown filesystem")
    candidates = [dirname] if dirname is not None else [interp.get("blsdir") or "/loader/entries/", "/boot/loader/entries/"]
    listing: list[tuple[str, bool]] | None = None
    used = ""
    for d in candidates:
        try:
            listing = interp.files.listdir(dev.name, normalise_path(d))
            used = normalise_path(d)
            break
        except VirtkitError:
            continue
    if listing is None:
        return dev.name, []
    interp.limits.check("max_dir_entries", len(listing), f"({dev.name}){used}")
    entries: list[BlsEntry] = []
    for fname, is_dir in listing:
        interp.step()
        if is_dir or fname.startswith(".") or len(fname) <= 5 or not fname.endswith(".conf"):
            continue
        entry = _read_snippet(interp, dev.name, f"{used.rstrip('/')}/{fname}", fname[:-5])
        if entry is not None:
            entries.append(entry)
    interp.bls_dir = f"({dev.name}){used}"
    return dev.name, entries


def _is_default(def_entry: str | None, entry: BlsEntry, idx: int) -> bool:
    if def_entry is None:
        return False
    if def_entry == entry.id:
        return True
    title = entry.get("title")
    if title is not None and def_entry == title:
        return True
    neg = def_entry.startswith("-")
    v, _, err = grub_strtoul(def_entry[1:] if neg else def_entry, 0)
    if err == "unrecognized number":
        return False
    return (-v if neg else v) == idx


def cmd_blscfg(interp: Interpreter, name: str, args: list[str], _b: bool) -> int:
    interp.blscfg_seen = True
    show_default = show_non_default = True
    path: str | None = None
    entry_id: str | None = None
    if len(args) == 1:
        a = args[0]
        if a == "default":
            show_non_default = False
        elif a == "non-default":
            show_default = False
        elif a.startswith("(") or a.endswith(".conf"):
            path = a
        else:
            entry_id = a
            show_default = show_non_default = False
    loaded = _load(interp, path)
    if isinstance(loaded, int):
        return loaded
    dev_name, entries = loaded
    mode = getattr(interp, "bls_sort", "name")
    ordered, dropped = sort_bls_entries(entries, mode)
    for d in dropped:
        interp.warn(f"BLS snippet {d.path} compares equal to another by version and is dropped, as blscfg does")
    def_entry = interp.get("default")
    created: set[str] = interp.bls_created
    for idx, entry in enumerate(ordered):
        if entry.id in created:
            continue
        is_def = _is_default(def_entry, entry, idx)
        if (show_default and is_def) or (show_non_default and not is_def) or (entry_id is not None and entry_id == entry.id):
            item = bls_menu_item(entry, interp.get, rhel8=getattr(interp, "bls_rhel8", False))
            created.add(entry.id)
            if item is None:
                interp.warn(f"BLS snippet {entry.path} has no `linux` key; blscfg skips it")
                continue
            src = SourceFile(dev_name, entry.path, "")
            item_def = MenuItemDef(
                title=item.title,
                id=item.id,
                args=item.args,
                classes=item.classes,
                users=item.users,
                hotkey=item.hotkey,
                source=item.body,
                submenu=False,
                origin=Location(src, 1, 1, interp.location()),
                raw_body=item.body,
                bls_id=entry.id,
            )
            status = interp.add_menu_item(item_def)
            if status:
                return status
    return 0
