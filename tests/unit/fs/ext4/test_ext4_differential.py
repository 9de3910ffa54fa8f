"""The ext2/3/4 reader against real tools, on every fixture.

* ``debugfs`` (e2fsprogs): directory listings (``ls -p``), file contents (``dump``),
  inode fields, times and symlink targets (``stat``, ``cat``);
* ``dumpe2fs``: superblock fields, feature names, and every group's inode table
  (which exercises meta_bg descriptor placement on all 64 groups of ext4-metabg);
* the Linux kernel, through a read-only loop mount (root only; skipped with the
  reason otherwise): listings, ``lstat`` fields, symlink targets and contents.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ext4_support import FIXTURES, open_ext4, path_of, walk

from helpers import is_root, require_tool
from virtkit._streams import iter_chunks
from virtkit.boot.fs.base import FileType, encode_name
from virtkit.boot.fs.ext4 import Ext4, Ext4Node
from virtkit.boot.fs.ext4 import structs as S

pytestmark = pytest.mark.differential

NAMES = sorted(FIXTURES)
BIG = 64 << 20  # files larger than this are compared by ranges, not whole (the 4 GB sparse one)


def _debugfs(img: Path, commands: list[bytes]) -> list[bytes]:
    """Run ``commands`` in one debugfs session; return each command's output."""
    require_tool("debugfs")
    with tempfile.NamedTemporaryFile("wb", suffix=".cmds") as f:
        f.write(b"".join(c + b"\n" for c in commands))
        f.flush()
        out = subprocess.run(
            ["debugfs", "-f", f.name, str(img)],
            env={**os.environ, "TZ": "UTC"},
            capture_output=True,
            check=True,
        ).stdout
    sections: list[bytes] = []
    pending = list(commands)
    current: list[bytes] | None = None
    for line in out.split(b"\n"):
        if pending and line == b"debugfs: " + pending[0]:
            pending.pop(0)
            current = []
            sections.append(b"")
            continue
        if current is not None:
            sections[-1] += line + b"\n"
    assert not pending, f"debugfs did not run {pending[:3]}"
    return sections


def _quote(path: str) -> bytes:
    raw = encode_name(path)
    assert b'"' not in raw and b" " not in raw
    return raw


def _nodes(fs: Ext4) -> list[tuple[str, Ext4Node]]:
    return [(p, n) for p, n in walk(fs) if not p.startswith("/lost+found/")]


def _sha(node: Ext4Node) -> str:
    h = hashlib.sha256()
    for chunk in iter_chunks(node.open()):
        h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_listings_vs_debugfs(name: str) -> None:
    fs = open_ext4(name)
    dirs = [(p, n) for p, n in _nodes(fs) if n.type is FileType.DIRECTORY]
    outputs = _debugfs(path_of(name), [b"ls -p " + _quote(p) for p, _ in dirs])
    for (path, node), out in zip(dirs, outputs):
        theirs = set()
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            if not line:
                continue
            m = re.fullmatch(r"/(\d+)/(\d+)/\d+/\d+/(.*)/(\d*)/", line)
            assert m, (path, line)
            if m[3] not in (".", "..") and m[1] != "0":  # debugfs also shows empty records
                theirs.add((int(m[1]), int(m[2], 8), m[3], m[4]))
        ours = set()
        for e in node.iter_dir():
            child = e.node()
            st = child.stat()
            size = "" if st.type is FileType.DIRECTORY else str(st.size)
            ours.add((e.inode, st.mode, e.name, size))
        assert ours == theirs, path


@pytest.mark.parametrize("name", NAMES)
def test_contents_vs_debugfs(name: str) -> None:
    fs = open_ext4(name)
    files = [(p, n) for p, n in _nodes(fs) if n.type is FileType.FILE and n.size <= BIG]
    with tempfile.TemporaryDirectory() as tmp:
        cmds = [b"dump " + _quote(p) + b" " + f"{tmp}/{i}".encode() for i, (p, _) in enumerate(files)]
        _debugfs(path_of(name), cmds)
        for i, (path, node) in enumerate(files):
            dumped = Path(f"{tmp}/{i}").read_bytes()
            if node.inode.has_flag(S.EXT4_INLINE_DATA_FL):
                # debugfs 1.47 dumps the whole inline area (60 bytes and more), not i_size.
                assert len(dumped) >= node.size, path
                dumped = dumped[: node.size]
            assert _sha(node) == hashlib.sha256(dumped).hexdigest(), path
    assert len(files) >= 14  # the whole shared tree


_STAT_LINE = re.compile(rb"Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)\s+Flags: 0x([0-9a-f]+)")
_TIME = re.compile(rb"^\s*(mtime|crtime): 0x([0-9a-f]{8})(?::([0-9a-f]{8}))? -- (.*)$", re.M)


@pytest.mark.parametrize("name", NAMES)
def test_stat_and_symlinks_vs_debugfs(name: str) -> None:
    fs = open_ext4(name)
    nodes = _nodes(fs)
    stats = _debugfs(path_of(name), [b"stat " + _quote(p) for p, _ in nodes])
    for (path, node), out in zip(nodes, stats):
        i = node.inode
        m = _STAT_LINE.search(out)
        assert m, (path, out[:200])
        assert int(m[1]) == i.ino, path
        assert int(m[3], 8) == i.mode & 0o7777, path
        assert int(m[4], 16) == i.flags, path
        assert re.search(rb"Size: %d\n" % i.size, out), path
        assert re.search(rb"Links: %d " % i.links_count, out), path
        times = {t[0]: t for t in _TIME.findall(out)}
        for field, ns in ((b"mtime", i.mtime_ns), (b"crtime", i.crtime_ns)):
            if ns is None:
                assert field not in times, path
                continue
            _, secs, extra, date = times[field]
            raw_secs = i.raw.i_mtime if field == b"mtime" else i.extra["i_crtime"]
            raw_extra = i.extra.get("i_mtime_extra" if field == b"mtime" else "i_crtime_extra", 0)
            assert (int(secs, 16), int(extra or b"0", 16)) == (raw_secs, raw_extra), (path, field)
            assert date.decode() == time.asctime(time.gmtime(ns // 10**9)), (path, field)
    # Symlink targets: debugfs prints fast (and inline) ones in stat; slow ones are dumped.
    slow = []
    for (path, node), out in zip(nodes, stats):
        if node.type is FileType.SYMLINK:
            fast = re.search(rb'Fast link dest: "(.*)"\n', out)
            if fast:
                assert fast[1] == encode_name(node.readlink()), path
            else:
                slow.append((path, node))
    with tempfile.TemporaryDirectory() as tmp:
        _debugfs(path_of(name), [b"dump " + _quote(p) + f" {tmp}/{i}".encode() for i, (p, _) in enumerate(slow)])
        for i, (path, node) in enumerate(slow):
            assert Path(f"{tmp}/{i}").read_bytes() == encode_name(node.readlink()), path
    assert slow or name == "ext4-inline"  # /long-link is a slow symlink except with inline_data


def _dumpe2fs(img: Path, *args: str) -> str:
    require_tool("dumpe2fs")
    return subprocess.run(["dumpe2fs", *args, str(img)], capture_output=True, check=True, text=True).stdout


@pytest.mark.parametrize("name", NAMES)
def test_superblock_vs_dumpe2fs(name: str) -> None:
    fs = open_ext4(name)
    full = _dumpe2fs(path_of(name))
    field = dict(re.findall(r"^([A-Z][^:\n]*):\s*(.*)$", full.split("\n\n")[0], re.M))
    assert field["Filesystem UUID"] == fs.uuid
    assert field["Filesystem volume name"] == (fs.label or "<none>")
    assert field["Filesystem features"].split() == fs.sb.features
    assert int(field["Block size"]) == fs.sb.block_size
    assert int(field["Inode count"]) == fs.sb.inodes_count
    assert int(field["Block count"]) == fs.sb.blocks_count
    assert int(field["Inode size"]) == fs.sb.inode_size
    assert int(field["First inode"]) == fs.sb.first_ino
    assert int(field.get("Group descriptor size", "32")) == fs.sb.desc_size
    tables = [int(t) for t in re.findall(r"Inode table at (\d+)-", full)]
    assert len(tables) == fs.sb.group_count
    assert [fs.inode_table(g) for g in range(fs.sb.group_count)] == tables


# --- the kernel ----------------------------------------------------------------------


@contextlib.contextmanager
def _mounted(name: str) -> Iterator[Path]:
    if not is_root():
        pytest.skip("loop-mount comparison needs root")
    require_tool("mount")
    with tempfile.TemporaryDirectory() as tmp:
        # noload: never replay a journal; the fixtures are clean anyway.
        opts = "ro,loop" if name.startswith("ext2") else "ro,loop,noload"
        r = subprocess.run(["mount", "-o", opts, str(path_of(name)), tmp], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot loop-mount {name} here: {r.stderr.strip()}")
        try:
            yield Path(tmp)
        finally:
            subprocess.run(["umount", tmp], check=True)


def _kernel_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_vs_loop_mount(name: str) -> None:
    fs = open_ext4(name)
    with _mounted(name) as mnt:
        for path, node in _nodes(fs):
            real = mnt / encode_name(path.lstrip("/")).decode("utf-8", "surrogateescape") if path != "/" else mnt
            st = os.lstat(real)
            ours = node.stat()
            assert (st.st_ino, st.st_mode, st.st_size, st.st_nlink) == (ours.inode, ours.mode, ours.size, ours.nlink), path
            assert st.st_mtime_ns == node.inode.mtime_ns, path
            if node.type is FileType.DIRECTORY:
                assert sorted(os.listdir(real)) == sorted(e.name for e in node.iter_dir()), path
            elif node.type is FileType.SYMLINK:
                assert os.readlink(real) == node.readlink(), path
            elif node.size <= BIG:
                assert _kernel_sha(real) == _sha(node), path
            else:  # a huge sparse file: its first bytes, its last, and each mapped run
                src = node.open()
                bs = fs.sb.block_size
                offsets = [0, node.size - 4096] + [r.logical * bs for r in node.runs()]
                with open(real, "rb") as f:
                    for off in offsets:
                        f.seek(off)
                        assert f.read(4096) == src.pread(off, min(4096, node.size - off)), (path, off)
