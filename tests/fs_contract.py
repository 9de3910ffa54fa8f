"""The contract every filesystem reader must meet on the shared /boot tree.

Use from a reader's tests::

    from fs_contract import assert_boot_tree
    assert_boot_tree(fs)                   # fs holds tests/tools/boot_tree.py's tree at its root
    assert_boot_tree(fs, root=fs.lookup("/boot"))   # ... or below some directory

It checks every file's bytes (sha256) and size, every directory, every symlink
target, path normalisation, symlink resolution, loops (LimitExceeded) and
paths that must not resolve (FileNotFound / NotADirectory).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))

import boot_tree

from virtkit._streams import iter_chunks
from virtkit.boot.fs.base import Filesystem, FileType, Node
from virtkit.errors import FileNotFound, LimitExceeded, NotADirectory


def sha256_of(node: Node) -> str:
    h = hashlib.sha256()
    for chunk in iter_chunks(node.open()):
        h.update(chunk)
    return h.hexdigest()


def assert_boot_tree(fs: Filesystem, *, root: Node | None = None, big_dir: int = 0, check_symlinks: bool = True) -> None:
    m = boot_tree.manifest(big_dir=big_dir)
    for path, digest in m["files"].items():  # type: ignore[union-attr]
        node = fs.lookup(path, root=root)
        st = node.stat()
        assert st.type is FileType.FILE, path
        assert st.size == m["sizes"][path], path  # type: ignore[index]
        assert sha256_of(node) == digest, f"{path}: contents differ"
    for path in m["dirs"]:  # type: ignore[union-attr]
        assert fs.lookup(path, root=root).type is FileType.DIRECTORY, path
    if not check_symlinks:  # FAT has no symlinks
        return
    for path, target in m["symlinks"].items():  # type: ignore[union-attr]
        node = fs.lookup(path, follow=False, root=root)
        assert node.type is FileType.SYMLINK, path
        assert node.readlink() == target, path
    for path, real in m["resolves"].items():  # type: ignore[union-attr]
        a = fs.lookup(path, root=root)
        b = fs.lookup(real, root=root)
        assert sha256_of(a) == sha256_of(b), path
    for path in m["loops"]:  # type: ignore[union-attr]
        with pytest.raises(LimitExceeded, match="max_symlink_hops"):
            fs.lookup(path, root=root)
    for path in m["missing"]:  # type: ignore[union-attr]
        with pytest.raises((FileNotFound, NotADirectory)):
            fs.lookup(path, root=root)
    # Directory listing of the root names everything the manifest puts there.
    top = {e.name for e in fs.lookup("/", root=root).iter_dir()}
    expected_top = {p.strip("/").split("/")[0] for p in [*m["files"], *m["symlinks"], *m["dirs"]] if p != "/"}  # type: ignore[misc]
    assert expected_top <= top, expected_top - top
