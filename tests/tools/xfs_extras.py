#!/usr/bin/env python3
"""Extra content for the XFS fixtures, on top of the shared /boot tree (boot_tree.py).

XFS stores a directory in one of four forms (shortform, block, leaf, node) and
its data fork in one of two (extents, btree), chosen by size; symlinks are local
or remote by target length.  This tree holds one directory per wanted form plus
the odd files the reader must handle:

    forms/sf/      a few entries            -> shortform
    forms/block/   FORMS["block"] entries   -> block
    forms/leaf/    FORMS["leaf"] entries    -> leaf
    forms/node/    FORMS["node"] entries    -> node, extents fork
    forms/btree/   FORMS["btree"] entries with long names and data: their blocks
                   interleave with the directory's, so its fork fragments -> node, btree
    links/long     a 1000-byte relative target (remote symlink; v4 profiles only, see links())
    links/medium   a 200-byte target (local with 512-byte inodes, remote with 256-byte inodes)
    names/         a 255-byte name, a name that is not UTF-8, mixed case (for -n version=ci)
    special/       a fifo, a character device, a block device
    attrs/         odd modes and owners

Every fixture uses 4 KiB directory blocks (the minimum mkfs.xfs accepts), so the
same entry counts give the same forms; make_xfs_fixtures.sh checks the forms
with xfs_db and fails if one is not what the directory is named after.
PROFILE is "v4" or "v5" (only the symlinks differ, see links()).

Usage:
    xfs_extras.py DIR PROFILE          add the extras to DIR (an existing tree)
    xfs_extras.py --manifest PROFILE   print what a reader must find, as JSON
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

# entries per form directory, for 4 KiB directory blocks (mkfs.xfs's minimum and default)
FORMS: dict[str, int] = {"sf": 3, "block": 40, "leaf": 300, "node": 600, "btree": 600}

DEEP = "deep/a/b/c/d/e/f/g/h/i/j/"


def _link_target(length: int) -> str:
    """A relative target from /links of exactly ``length`` bytes resolving to the deep file."""
    head = "../" + DEEP
    tail = "file.txt"
    dots = length - len(head) - len(tail)
    assert dots >= 0 and dots % 2 == 0, length
    return head + "./" * (dots // 2) + tail


LINKS = {"links/long": _link_target(1000), "links/medium": _link_target(200)}


def links(profile: str) -> dict[str, str]:
    """Symlinks for a profile.  xfsprogs 6.1's protofile code writes remote symlink blocks
    without the v5 "XSLM" header (xfs_repair rejects them), so v5 images get only the
    200-byte link (local in 512-byte inodes); remote v5 links come from the mounted image."""
    if profile.startswith("v4"):
        return dict(LINKS)
    return {"links/medium": LINKS["links/medium"]}

LONG_NAME = "n" * 255
NAMES: dict[bytes, bytes] = {  # name under names/ -> contents
    LONG_NAME.encode(): b"longest name\n",
    b"latin1-\xe9t\xe9.txt": b"not utf-8\n",
    b"MixedCase.CFG": b"mixed case\n",
}

ATTRS = {  # name under attrs/ -> (mode, uid, gid, contents)
    "owned": (0o640, 1000, 1001, b"owned by 1000:1001\n"),
    "setuid": (0o4755, 0, 0, b"#!/bin/sh\n"),
    "private": (0o600, 0, 0, b""),
}


def form_names(form: str, count: int) -> list[str]:
    pad = 150 if form == "btree" else 0  # long names: fewer entries per directory block
    return [f"{form}-{i:05d}-{'y' * (pad + i % 23)}" for i in range(count)]


def _content(form: str, name: str) -> bytes:
    # btree-form entries carry data so their blocks interleave with the directory's
    # blocks and fragment its data fork; the other forms use empty files.
    return (name + "\n").encode() if form == "btree" else b""


def build(root: str | os.PathLike[str], profile: str) -> None:
    r = Path(root)
    for form, count in FORMS.items():
        d = r / "forms" / form
        d.mkdir(parents=True)
        for name in form_names(form, count):
            (d / name).write_bytes(_content(form, name))
    (r / "links").mkdir()
    for rel, target in links(profile).items():
        os.symlink(target, r / rel)
    names = os.fsencode(r / "names")
    os.mkdir(names)
    for name, data in NAMES.items():
        with open(os.path.join(names, name), "wb") as f:
            f.write(data)
    (r / "special").mkdir()
    os.mkfifo(r / "special" / "fifo")
    os.mknod(r / "special" / "null", 0o020000, os.makedev(1, 3))
    os.mknod(r / "special" / "loop0", 0o060000, os.makedev(7, 0))
    for name, mode in (("fifo", 0o666), ("null", 0o666), ("loop0", 0o660)):
        os.chmod(r / "special" / name, mode)  # not subject to the umask, unlike mknod
    (r / "attrs").mkdir()
    for name, (mode, uid, gid, data) in ATTRS.items():
        p = r / "attrs" / name
        p.write_bytes(data)
        os.chown(p, uid, gid)
        os.chmod(p, mode)


def manifest(profile: str) -> dict[str, object]:
    forms = {form: form_names(form, n) for form, n in FORMS.items()}
    files: dict[str, str] = {}
    for form, names in forms.items():
        for name in names:
            files[f"/forms/{form}/{name}"] = hashlib.sha256(_content(form, name)).hexdigest()
    for name, data in NAMES.items():
        files["/names/" + name.decode("utf-8", "surrogateescape")] = hashlib.sha256(data).hexdigest()
    for name, (_, _, _, data) in ATTRS.items():
        files["/attrs/" + name] = hashlib.sha256(data).hexdigest()
    return {
        "forms": forms,
        "files": files,
        "links": {"/" + k: v for k, v in links(profile).items()},
        "attrs": {"/attrs/" + k: {"mode": v[0], "uid": v[1], "gid": v[2]} for k, v in ATTRS.items()},
        "special": {"/special/fifo": 0o010666, "/special/null": 0o020666, "/special/loop0": 0o060660},
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--manifest":
        json.dump(manifest(sys.argv[2]), sys.stdout, indent=1)
        return 0
    if len(sys.argv) != 3 or sys.argv[2] not in ("v4", "v5"):
        print(__doc__, file=sys.stderr)
        return 2
    build(sys.argv[1], sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
