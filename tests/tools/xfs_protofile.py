#!/usr/bin/env python3
"""Write an ``mkfs.xfs -p`` prototype file describing a directory tree.

Usage:
    xfs_protofile.py DIR > proto.txt
    mkfs.xfs -p proto.txt image.img

The protofile format (mkfs.xfs(8), "-p protofile") is a token stream:

    <dummy line>
    <blocks> <inodes>                 (ignored numbers)
    d--755 0 0                        the root directory
    name  ---644 uid gid /src/path    a regular file, contents copied from /src/path
    name  l--777 uid gid target       a symbolic link
    name  p--644 uid gid              a fifo
    name  c--666 uid gid major minor  a character device (b-- for a block device)
    name  d--755 uid gid              a directory; its entries follow, then "$"
    $                                 end of the root directory

Its limits, which the generator refuses rather than silently breaking:

* tokens are split on whitespace, so names and symlink targets cannot contain
  whitespace; ``:`` starts a comment, so no name may contain it; a name ``$``
  would end a directory.  Names are bytes: non-UTF-8 names pass through;
* regular files are copied byte for byte with their size, so sparse files
  become dense in xfsprogs 6.1 (holes are written as zero blocks);
* xfsprogs 6.1 allocates each file inside one AG: a file larger than an AG's
  free space keeps its full size but only the blocks that fit, the rest reads as
  a hole (silently; xfs_repair does not mind).  Make AGs larger than the
  largest file (``-d agcount=``, a bigger image);
* sockets and hard links cannot be described;
* only the permission bits plus setuid/setgid are kept (no sticky bit), and
  times are the time mkfs ran.

Entries are emitted in sorted name order so the same tree always gives the
same protofile (and the same directory layout).
"""

from __future__ import annotations

import os
import stat
import sys


class ProtoError(Exception):
    """The tree holds something the protofile format cannot express."""


def _check_token(text: bytes, what: str) -> None:
    if not text or any(c in b" \t\n\r\v\f" for c in text) or b":" in text or text == b"$":
        raise ProtoError(f"{what} {text!r} cannot be written in an mkfs.xfs protofile")


def _mode_token(st: os.stat_result, kind: str) -> bytes:
    suid = "u" if st.st_mode & stat.S_ISUID else "-"
    sgid = "g" if st.st_mode & stat.S_ISGID else "-"
    return f"{kind}{suid}{sgid}{stat.S_IMODE(st.st_mode) & 0o777:03o}".encode()


def _emit_dir(path: bytes, depth: int, out: list[bytes]) -> None:
    pad = b"  " * depth
    for entry in sorted(os.listdir(path)):
        _check_token(entry, "name")
        full = os.path.join(path, entry)
        st = os.lstat(full)
        owner = f"{st.st_uid} {st.st_gid}".encode()
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(full)
            _check_token(target, "symlink target")
            out.append(b" ".join([pad + entry, _mode_token(st, "l"), owner, target]))
        elif stat.S_ISDIR(mode):
            out.append(b" ".join([pad + entry, _mode_token(st, "d"), owner]))
            _emit_dir(full, depth + 1, out)
            out.append(pad + b"$")
        elif stat.S_ISREG(mode):
            source = os.path.realpath(full)
            _check_token(source, "source path")
            out.append(b" ".join([pad + entry, _mode_token(st, "-"), owner, source]))
        elif stat.S_ISFIFO(mode):
            out.append(b" ".join([pad + entry, _mode_token(st, "p"), owner]))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "c" if stat.S_ISCHR(mode) else "b"
            dev = f"{os.major(st.st_rdev)} {os.minor(st.st_rdev)}".encode()
            out.append(b" ".join([pad + entry, _mode_token(st, kind), owner, dev]))
        else:
            raise ProtoError(f"{full!r}: sockets cannot be described in a protofile")


def render(root: str | os.PathLike[str]) -> bytes:
    """The protofile for the tree under ``root``."""
    top = os.fsencode(root)
    st = os.stat(top)
    out = [b"virtkit-xfs-fixture", b"0 0", _mode_token(st, "d") + f" {st.st_uid} {st.st_gid}".encode()]
    _emit_dir(top, 1, out)
    out.append(b"$")
    return b"\n".join(out) + b"\n"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        sys.stdout.buffer.write(render(sys.argv[1]))
    except ProtoError as exc:
        print(f"xfs_protofile.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
