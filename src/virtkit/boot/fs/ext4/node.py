"""ext2/3/4 nodes: stat, file contents as runs, symlink targets, directory listings.

References:
    Linux ``fs/ext4/inode.c`` (ext4_inode_is_fast_symlink), ``fs/ext4/symlink.c``,
        ``fs/ext4/inline.c`` (inline files and directories), ``fs/ext4/dir.c`` and
        ``fs/ext4/namei.c`` (directories; htree read linearly), ``fs/unicode`` (casefold:
        NFD plus case folding).

A node holds its parsed inode; its block runs are computed once, on first use, and
file contents come back as a :class:`~virtkit._streams.MappedSource` of long runs over
the volume (holes and unwritten extents read as zeros).
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from collections.abc import Iterator
from typing import TYPE_CHECKING

from virtkit._streams import ByteSource, BytesSource, MappedSource, Run
from virtkit.boot.fs.base import DirEntry, FileType, Node, Stat, decode_name, encode_name
from virtkit.boot.fs.ext4 import structs as S
from virtkit.boot.fs.ext4.dirent import FILE_TYPES, iter_dir_region
from virtkit.boot.fs.ext4.inode import Inode, find_inline_xattr
from virtkit.boot.fs.ext4.mapping import BlockRun, blockmap_runs, extent_runs
from virtkit.errors import CorruptStructure, IsADirectory, NotADirectory, UnsupportedFeature

if TYPE_CHECKING:
    from virtkit.boot.fs.ext4.fs import Ext4

__all__ = ["Ext4Node"]

_DIR_READ_BLOCKS = 64  # directory blocks fetched per pread


class _RunSource(MappedSource):
    """A MappedSource tuned for file data: a read inside one run is one ``pread`` with no
    copy; a read across runs and holes is one ``pread`` per run and one join."""

    def _pread(self, offset: int, length: int) -> bytes:
        runs = self.runs
        stop = offset + length
        i = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        parts: list[bytes] = []
        pos = offset
        while pos < stop:
            r = runs[i] if i < len(runs) else None
            if r is not None and r.start + r.length <= pos:
                i += 1
                continue
            if r is None or r.start >= stop or r.start > pos:  # a hole up to the next run
                hi = stop if r is None else min(stop, r.start)
                parts.append(bytes(hi - pos))
                pos = hi
                continue
            hi = min(stop, r.start + r.length)
            assert r.source is not None  # holes are never stored as runs here
            data = r.source.pread(r.source_offset + pos - r.start, hi - pos)
            if hi - pos == length:
                return data
            parts.append(data)
            pos = hi
            i += 1
        return b"".join(parts)


def _fold(name: str) -> str:
    """Case folding for casefold directories (the kernel's utf8 NFD + case fold)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


class Ext4Node(Node):
    """A file, directory, symlink or special file of an :class:`Ext4`.

    Attributes:
        fs: the filesystem.
        inode: the parsed inode (``inode.raw`` has the kernel field names).
    """

    def __init__(self, fs: Ext4, inode: Inode) -> None:
        self.fs: Ext4 = fs
        self.inode = inode
        self._runs: list[BlockRun] | None = None

    def __repr__(self) -> str:
        return f"<Ext4Node inode={self.inode.ino} {self.inode.type.value} size={self.inode.size}>"

    @property
    def ino(self) -> int:
        return self.inode.ino

    @property
    def type(self) -> FileType:
        return self.inode.type

    @property
    def size(self) -> int:
        return self.inode.size

    def stat(self) -> Stat:
        i = self.inode
        return Stat(
            type=i.type,
            size=i.size,
            mode=i.mode,
            inode=i.ino,
            nlink=i.links_count,
            uid=i.uid,
            gid=i.gid,
            mtime=i.mtime_ns / 1e9,
            atime=i.atime_ns / 1e9,
            ctime=i.ctime_ns / 1e9,
        )

    # --- content mapping --------------------------------------------------------------

    def _what(self) -> str:
        return f"{self.fs.describe()}: inode {self.inode.ino}"

    def _refuse_encrypted(self, doing: str) -> None:
        if self.inode.has_flag(S.EXT4_ENCRYPT_FL):
            raise UnsupportedFeature(f"{self._what()}: cannot {doing}: the inode is encrypted (fscrypt)")

    def runs(self) -> list[BlockRun]:
        """The block runs of this inode's data (empty for inline data).

        Raises:
            CorruptStructure, LimitExceeded: see :mod:`virtkit.boot.fs.ext4.mapping`.
        """
        if self._runs is None:
            i = self.inode
            if i.has_flag(S.EXT4_INLINE_DATA_FL) or i.type is FileType.OTHER or self._is_fast_symlink():
                self._runs = []
            else:
                self.fs.limits.check("max_file_bytes", i.size, self._what())
                nblocks = -(-i.size // self.fs.sb.block_size)
                if i.has_flag(S.EXT4_EXTENTS_FL):
                    self._runs = extent_runs(self.fs, i, nblocks)
                else:
                    self._runs = blockmap_runs(self.fs, i, nblocks)
        return self._runs

    def _inline_data(self) -> bytes:
        """i_block plus the ``system.data`` xattr value, cut to i_size."""
        i = self.inode
        more = find_inline_xattr(i, S.EXT4_XATTR_INDEX_SYSTEM, b"data", where=self.fs.describe()) or b""
        data = i.i_block + more
        if i.size > len(data):
            raise CorruptStructure(self._what(), f"i_size {i.size} exceeds the {len(data)} bytes of inline data", offset=i.offset)
        return data[: i.size]

    def _data_source(self) -> ByteSource:
        i = self.inode
        name = f"{self.fs.describe()}: inode {i.ino}"
        self.fs.limits.check("max_file_bytes", i.size, name)
        if i.has_flag(S.EXT4_INLINE_DATA_FL):
            return BytesSource(self._inline_data(), name)
        bs = self.fs.sb.block_size
        src = self.fs.source
        runs = [
            Run(r.logical * bs, min(r.count * bs, i.size - r.logical * bs), src, r.physical * bs)
            for r in self.runs()
            if r.physical is not None
        ]
        return _RunSource(i.size, runs, name, max_runs=self.fs.limits.max_extents)

    def open(self) -> ByteSource:
        """The contents: file data (holes and unwritten extents read as zeros); a symlink's
        target; nothing for devices, fifos and sockets.

        Raises:
            IsADirectory: this is a directory.
            LimitExceeded: the file claims more than ``max_file_bytes``, or too many runs.
            UnsupportedFeature: the file is encrypted.
            CorruptStructure: the mapping is damaged.
        """
        t = self.inode.type
        if t is FileType.DIRECTORY:
            raise IsADirectory(f"{self._what()} is a directory")
        if t is FileType.SYMLINK:
            return BytesSource(encode_name(self.readlink()), self._what())
        if t is FileType.OTHER:
            return BytesSource(b"", self._what())
        self._refuse_encrypted("read the contents")
        return self._data_source()

    def _is_fast_symlink(self) -> bool:
        """Target stored in i_block itself (fs/ext4/inode.c ext4_inode_is_fast_symlink)."""
        i = self.inode
        if i.type is not FileType.SYMLINK or i.has_flag(S.EXT4_INLINE_DATA_FL):
            return False
        ea_blocks = self.fs.sb.cluster_size // 512 if i.file_acl else 0
        return i.size < S.EXT4_N_BLOCKS * 4 and i.blocks512 - ea_blocks == 0

    def readlink(self) -> str:
        """The symlink's target.

        Fast symlinks keep the target in i_block; inline-data symlinks in i_block plus
        ``system.data``; others in a data block (extent- or block-mapped).

        Raises:
            CorruptStructure: not a symlink, an empty or over-long target, or damage.
            UnsupportedFeature: an encrypted symlink.
        """
        i = self.inode
        if i.type is not FileType.SYMLINK:
            raise CorruptStructure(self._what(), "readlink on something that is not a symlink", got=i.mode)
        self._refuse_encrypted("read the link target")
        bs = self.fs.sb.block_size
        if not 0 < i.size < max(bs, 4096):
            raise CorruptStructure(self._what(), "symlink length out of range", offset=i.offset, got=i.size)
        if i.has_flag(S.EXT4_INLINE_DATA_FL):
            raw = self._inline_data()
        elif self._is_fast_symlink():
            raw = i.i_block[: i.size]
        else:
            raw = self._data_source().pread(0, i.size)
        return decode_name(raw.split(b"\0", 1)[0])

    # --- directories ------------------------------------------------------------------

    def iter_records(self) -> Iterator[tuple[int, bytes, int | None]]:
        """Live entries ``(inode, name bytes, file_type)``, without ``.`` and ``..``.

        Raises:
            NotADirectory: not a directory.
            UnsupportedFeature: an encrypted directory (names are ciphertext).
            LimitExceeded: more than ``max_dir_entries`` records (deleted ones included).
            CorruptStructure: a damaged entry, or a hole in the directory.
        """
        i = self.inode
        if i.type is not FileType.DIRECTORY:
            raise NotADirectory(f"{self._what()} is not a directory")
        self._refuse_encrypted("list the directory")
        fs = self.fs
        limits = fs.limits
        what = f"{fs.describe()}: directory inode {i.ino}"
        common = {"filetype": fs._filetype, "inodes_count": fs.sb.inodes_count, "what": what}
        count = 0
        for region, block_size, base in self._dir_regions(what):
            for ino, name, ftype in iter_dir_region(region, block_size=block_size, base_offset=base, **common):  # type: ignore[arg-type]
                count += 1
                if count > limits.max_dir_entries:
                    limits.check("max_dir_entries", count, what)
                if ino and name not in (b".", b".."):
                    yield ino, name, ftype

    def _dir_regions(self, what: str) -> Iterator[tuple[bytes, int, int]]:
        """(bytes, block size for rec_len decoding, volume offset) of each directory region."""
        i = self.inode
        if i.has_flag(S.EXT4_INLINE_DATA_FL):
            # Inline: parent inode (4 bytes), entries to the end of i_block, then entries
            # in the system.data value (fs/ext4/inline.c).  rec_len is never 64 KiB-encoded.
            yield i.i_block[S.EXT4_INLINE_DOTDOT_SIZE :], 0, i.offset + 0x28 + S.EXT4_INLINE_DOTDOT_SIZE
            more = find_inline_xattr(i, S.EXT4_XATTR_INDEX_SYSTEM, b"data", where=self.fs.describe())
            if more:
                yield more, 0, i.offset
            return
        bs = self.fs.sb.block_size
        nblocks = -(-i.size // bs)
        expect = 0
        for run in self.runs():
            if run.physical is None or run.logical != expect:
                raise CorruptStructure(what, f"hole in the directory at block {expect}", offset=i.offset)
            for k in range(0, run.count, _DIR_READ_BLOCKS):
                n = min(_DIR_READ_BLOCKS, run.count - k)
                start = (run.physical + k) * bs
                chunk = self.fs.source.pread(start, n * bs)
                for j in range(n):
                    yield chunk[j * bs : (j + 1) * bs], bs, start + j * bs
            expect = run.logical + run.count
        if expect != nblocks:
            raise CorruptStructure(what, f"hole in the directory at block {expect}", offset=i.offset)

    def iter_dir(self) -> Iterator[DirEntry]:
        fs = self.fs
        parent = self.inode.ino
        for ino, name, ftype in self.iter_records():
            yield DirEntry(
                decode_name(name),
                FILE_TYPES.get(ftype) if ftype is not None else None,
                ino,
                functools.partial(fs._entry_node, ino, parent),
            )

    def lookup_child(self, name: str) -> Node | None:
        """The child ``name`` via a cached name map of this directory (casefold-aware)."""
        if self.inode.type is not FileType.DIRECTORY:
            raise NotADirectory(f"{self._what()} is not a directory")
        names = self.fs._dir_map(self)
        hit = names.get(encode_name(name))
        if hit is None and self.fs.casefold and self.inode.has_flag(S.EXT4_CASEFOLD_FL):
            want = _fold(name)
            for raw, value in names.items():
                if _fold(decode_name(raw)) == want:
                    hit = value
                    break
        if hit is None:
            return None
        return self.fs._entry_node(hit[0], self.inode.ino)
