"""``virtkit ls`` and ``virtkit cat``: libguestfs' virt-ls and virt-cat, without an appliance.

::

    virtkit ls  [IMAGE...] [VOLUME:]PATH [-l] [--json]
    virtkit cat [IMAGE...] [VOLUME:]PATH

The last argument is the path; the others are images (none: the bundled
sample guest; one directory: that directory is the filesystem).  VOLUME picks
a filesystem by partition number, virtkit volume name (``disk0p2``), ``vg/lv``,
GRUB device name (``hd0,gpt2``, also written ``(hd0,gpt2)/PATH``), label or
UUID; without it, the first volume whose filesystem has the path is used.

Guest names are sanitised before they reach the terminal; ``cat`` writes the
file's raw bytes (as ``cat`` does), in chunks, refusing files over
``max_file_bytes``.  ``--json`` output is documented in ``docs/ls-json.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from virtkit._streams import iter_chunks
from virtkit.boot.fs.base import FileType, Node, encode_name
from virtkit.boot.pipeline import Guest, MountedVolume, open_guest
from virtkit.cli._common import add_image_arguments, image_paths, limits_from_args
from virtkit.errors import FileNotFound, ImageError, IsADirectory, PathError, UsageError
from virtkit.sanitize import sanitize_text

__all__ = ["JSON_SCHEMA_VERSION", "PathSpec", "parse_path_spec", "register", "run_cat", "run_ls"]

JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PathSpec:
    """``[VOLUME:]PATH`` split: ``volume`` None means "the first volume that has the path"."""

    volume: str | None
    path: str


def parse_path_spec(spec: str) -> PathSpec:
    """Split ``[VOLUME:]PATH`` (or GRUB's ``(DEVICE)PATH``).

    A spec starting with ``/`` is a path only (so ``/a:b`` is a path with a colon).
    ``disk0p2:`` and ``(hd0,gpt2)`` name the volume's root.

    Raises:
        UsageError: an empty spec, an empty volume name, or an unclosed ``(``.
    """
    if not spec:
        raise UsageError("the path is empty (give [VOLUME:]PATH, e.g. /boot or 2:/grub/grub.cfg)")
    if spec.startswith("/"):
        return PathSpec(None, spec)
    if spec.startswith("("):
        close = spec.find(")")
        if close < 0:
            raise UsageError(f"{spec!r}: unclosed '(' in a GRUB device name")
        volume, path = spec[1:close], spec[close + 1 :]
    elif ":" in spec:
        volume, path = spec.split(":", 1)
    else:
        return PathSpec(None, "/" + spec)
    if not volume:
        raise UsageError(f"{spec!r}: the volume name before the path is empty")
    return PathSpec(volume, path if path.startswith("/") else "/" + path)


def _split_args(args: argparse.Namespace) -> tuple[list[str], PathSpec]:
    words = list(args.images)
    spec = parse_path_spec(words.pop())
    args.images = words
    return image_paths(args), spec


def _describe(m: MountedVolume) -> str:
    fstype = m.fs.fstype if m.fs is not None else "no filesystem"
    return f"{m.volume.name} ({fstype})"


def _start(m: MountedVolume, mounted: bool) -> Node | None:
    """Where paths start: the filesystem's root, or with ``mounted`` what a plain mount shows
    (btrfs: the default subvolume; the same root elsewhere)."""
    assert m.fs is not None
    return m.fs.default_root() if mounted else None


def resolve(guest: Guest, spec: PathSpec, *, follow: bool = True, mounted: bool = False) -> tuple[MountedVolume, Node]:
    """The volume and node ``spec`` names (``mounted``: paths as a plain mount shows them).

    Raises:
        ImageError: the named volume does not exist or holds no readable filesystem, or
            (no VOLUME) no volume holds a readable filesystem.
        FileNotFound: no filesystem (or not the named one) has the path.
        PathError, LimitExceeded, CorruptStructure: from the lookup.
    """
    if spec.volume is not None:
        m = guest.find_filesystem(spec.volume)
        assert m.fs is not None
        return m, m.fs.lookup(spec.path, follow=follow, root=_start(m, mounted))
    tried: list[str] = []
    unreadable: list[MountedVolume] = []
    for m in guest.filesystems():
        if m.fs is None:
            unreadable.append(m)
            continue
        try:
            return m, m.fs.lookup(spec.path, follow=follow, root=_start(m, mounted))
        except PathError:
            tried.append(_describe(m))
    if not tried:
        why = "; ".join(f"{m.volume.name}: {m.error}" for m in unreadable) or "no volumes"
        raise ImageError(f"no readable filesystem in the guest ({why})")
    skipped = f"; unreadable: {', '.join(m.volume.name for m in unreadable)}" if unreadable else ""
    raise FileNotFound(
        f"{spec.path}: no such file or directory on any volume (searched {', '.join(tried)}{skipped})", path=spec.path
    )


# -- ls -------------------------------------------------------------------------


def _entry(name: str, node: Node) -> dict[str, Any]:
    """One listed entry as the ``--json`` object (docs/ls-json.md)."""
    s = node.stat()
    raw = encode_name(name)
    try:
        text, utf8 = raw.decode("utf-8"), True
    except UnicodeDecodeError:
        text, utf8 = raw.decode("utf-8", "replace"), False
    out: dict[str, Any] = {
        "name": text,
        "type": s.type.value,
        "size": s.size,
        "mode": s.mode,
        "mode_text": stat.filemode(s.mode),
        "mtime": s.mtime,
        "inode": s.inode,
        "nlink": s.nlink,
        "uid": s.uid,
        "gid": s.gid,
        "target": None,
    }
    if not utf8:
        out["name_hex"] = raw.hex()
    if s.type is FileType.SYMLINK:
        target = node.readlink()
        out["target"] = encode_name(target).decode("utf-8", "replace")
    return out


def _ls_entries(m: MountedVolume, path: str, node: Node, *, long: bool, mounted: bool = False) -> list[tuple[str, Node]]:
    """What to list for ``node`` (looked up without following a final symlink).

    A directory lists its children, sorted by name bytes.  A symlink is shown itself
    with ``-l``/``--json`` and followed otherwise (as GNU ls does); anything else is
    shown itself.
    """
    assert m.fs is not None
    own_name = path.rstrip("/").rsplit("/", 1)[-1] or "/"
    if node.type is FileType.SYMLINK:
        if long:
            return [(own_name, node)]
        node = m.fs.lookup(path, root=_start(m, mounted))
    if node.type is not FileType.DIRECTORY:
        return [(own_name, node)]
    children = sorted(node.iter_dir(), key=lambda e: encode_name(e.name))
    return [(e.name, e.node()) for e in children]


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-               "
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return "?               "


def render_long(rows: list[dict[str, Any]]) -> str:
    """``ls -l``-style lines: mode, size, mtime (UTC), name [-> target], all sanitised."""
    width = max((len(str(r["size"])) for r in rows), default=1)
    lines = []
    for r in rows:
        name = sanitize_text(r["name"])
        if r["target"] is not None:
            name += " -> " + sanitize_text(r["target"])
        lines.append(f"{r['mode_text']} {r['size']:>{width}} {_fmt_time(r['mtime'])} {name}")
    return "".join(line + "\n" for line in lines)


def run_ls(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``virtkit ls``: list a directory (or show one file) inside a guest."""
    stream = out or sys.stdout
    paths, spec = _split_args(args)
    limits = limits_from_args(args)
    with open_guest(paths, limits=limits, fmt=args.image_format, sector_size=args.sector_size, backing=args.backing) as guest:
        m, node = resolve(guest, spec, follow=False, mounted=args.default_subvolume)
        assert m.fs is not None
        rows = [_entry(name, child)
                for name, child in _ls_entries(m, spec.path, node, long=args.long or args.json,
                                               mounted=args.default_subvolume)]
        if args.json:
            doc = {
                "schema_version": JSON_SCHEMA_VERSION,
                "volume": m.volume.name,
                "fstype": m.fs.fstype,
                "uuid": m.fs.uuid,
                "label": m.fs.label,
                "path": spec.path,
                "entries": rows,
            }
            stream.write(json.dumps(doc, indent=2, ensure_ascii=True) + "\n")
        elif args.long:
            stream.write(render_long(rows))
        else:
            stream.write("".join(sanitize_text(r["name"]) + "\n" for r in rows))
    return 0


# -- cat ------------------------------------------------------------------------


def run_cat(args: argparse.Namespace, *, out: BinaryIO | None = None) -> int:
    """``virtkit cat``: write a guest file's bytes to stdout."""
    stream = out or sys.stdout.buffer
    paths, spec = _split_args(args)
    limits = limits_from_args(args)
    with open_guest(paths, limits=limits, fmt=args.image_format, sector_size=args.sector_size, backing=args.backing) as guest:
        m, node = resolve(guest, spec, mounted=args.default_subvolume)
        if node.type is FileType.DIRECTORY:
            raise IsADirectory(f"{_describe(m)}: {spec.path} is a directory (use virtkit ls)", path=spec.path)
        src = node.open()  # refuses files over max_file_bytes
        try:
            for chunk in iter_chunks(src):
                stream.write(chunk)
            stream.flush()
        except BrokenPipeError:
            _silence_stdout()
    return 0


def _silence_stdout() -> None:
    """After EPIPE (``virtkit cat ... | head``), stop quietly as cat does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # pragma: no cover - stdout is not a real descriptor
        pass


# -- registration ---------------------------------------------------------------

_EPILOG = (
    "The last argument is the path, optionally prefixed by a volume: a partition number (2:/grub), "
    "a volume name (disk0p2:/EFI), vg/lv (vg0/boot:/grub), a GRUB device ((hd0,gpt2)/EFI), "
    "a filesystem label or UUID. Without a volume, the first volume that has the path is used. "
    "A directory given as IMAGE is read as one filesystem."
)


def _add_subvolume_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--default-subvolume", action="store_true",
                   help="btrfs: paths start in the default subvolume, as a plain mount (and virt-ls) shows them; "
                   "without it they start at the top level, as GRUB and `virtkit boot` name them "
                   "(/@/.snapshots/1/snapshot/boot)")


def register(subparsers: Any) -> None:
    """Add the ``ls`` and ``cat`` subcommands."""
    ls = subparsers.add_parser(
        "ls",
        help="list a directory inside a guest image (like virt-ls)",
        usage="virtkit ls [options] [IMAGE ...] [VOLUME:]PATH",
        description="List a directory (or show one file) inside a guest image, without mounting it.",
        epilog=_EPILOG,
    )
    add_image_arguments(ls, nargs="+")
    ls.add_argument("-l", "--long", action="store_true", help="show mode, size, modification time (UTC) and link targets")
    ls.add_argument("--json", action="store_true", help="machine-readable output (docs/ls-json.md)")
    _add_subvolume_argument(ls)
    ls.set_defaults(func=run_ls)

    cat = subparsers.add_parser(
        "cat",
        help="print a file from inside a guest image (like virt-cat)",
        usage="virtkit cat [options] [IMAGE ...] [VOLUME:]PATH",
        description="Write a file from inside a guest image to standard output, without mounting it.",
        epilog=_EPILOG,
    )
    add_image_arguments(cat, nargs="+")
    _add_subvolume_argument(cat)
    cat.set_defaults(func=run_cat)
