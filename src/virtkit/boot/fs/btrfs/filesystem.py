"""The btrfs reader: devices, trees, subvolumes, and the node API.

References:
    include/uapi/linux/btrfs_tree.h (object ids, item types, ``btrfs_root_item``),
    fs/btrfs/super.c and fs/btrfs/disk-io.c (``btrfs_get_default_root``: the
    ``default`` DIR_ITEM of ``BTRFS_ROOT_TREE_DIR_OBJECTID`` in the root tree),
    fs/btrfs/inode.c (``btrfs_lookup_dentry``/``fixup_tree_root_location``: a
    directory entry whose location is a ROOT_ITEM key enters that subvolume when
    the parent has a matching ROOT_REF; otherwise (a nested subvolume seen through
    a snapshot) it is an empty ``BTRFS_EMPTY_SUBVOL_DIR_OBJECTID`` placeholder.
    GRUB enters the subvolume either way; we follow the kernel, which is what the
    guest itself sees),
    fs/btrfs/ioctl.c (``btrfs_search_path_in_tree``: a subvolume's path from
    ROOT_BACKREF and INODE_REF items), grub-core/fs/btrfs.c (paths resolve from the
    top-level subvolume; UUID and label as GRUB prints them; facts only).

Opening: superblock (mirror fallback) -> sys_chunk_array -> chunk tree ->
full chunk map over the devices given -> root tree.  ``root()`` is the
top-level subvolume (id 5), as upstream GRUB resolves paths;
``default_root()`` is the default subvolume, and
:meth:`Btrfs.default_subvolume_path` names it from the top level (openSUSE's
GRUB resolves paths relative to it).
"""

from __future__ import annotations

import stat as statmod
from collections.abc import Callable, Iterator, Sequence

from virtkit._streams import ByteSource
from virtkit.boot.fs.base import DirEntry, Filesystem, FileType, Node, Stat, decode_name, encode_name
from virtkit.boot.fs.btrfs.checksum import CSUM_SIZES, csum_function, name_hash
from virtkit.boot.fs.btrfs.chunks import Chunk, ChunkMap, parse_chunk, parse_sys_chunk_array
from virtkit.boot.fs.btrfs.files import ExtentReader
from virtkit.boot.fs.btrfs.items import (
    DirItem,
    RootItem,
    describe_item,
    iter_dir_items,
    iter_inode_refs,
    parse_inode_item,
    parse_root_item,
    parse_root_ref,
)
from virtkit.boot.fs.btrfs.structs import (
    BTRFS_CHUNK_ITEM_KEY,
    BTRFS_DIR_INDEX_KEY,
    BTRFS_DIR_ITEM_KEY,
    BTRFS_EMPTY_SUBVOL_DIR_OBJECTID,
    BTRFS_FIRST_CHUNK_TREE_OBJECTID,
    BTRFS_FIRST_FREE_OBJECTID,
    BTRFS_FS_TREE_OBJECTID,
    BTRFS_FT_DIR,
    BTRFS_FT_REG_FILE,
    BTRFS_FT_SYMLINK,
    BTRFS_FT_XATTR,
    BTRFS_INODE_ITEM_KEY,
    BTRFS_INODE_REF_KEY,
    BTRFS_LAST_FREE_OBJECTID,
    BTRFS_NAME_LEN,
    BTRFS_ROOT_BACKREF_KEY,
    BTRFS_ROOT_ITEM_KEY,
    BTRFS_ROOT_REF_KEY,
    BTRFS_ROOT_TREE_DIR_OBJECTID,
    U64_MAX,
)
from virtkit.boot.fs.btrfs.superblock import Superblock, read_superblock
from virtkit.boot.fs.btrfs.tree import TreeReader, TreeRoot
from virtkit.errors import CorruptStructure, IsADirectory, LimitExceeded, NotADirectory, NotThisFormat, VirtkitError
from virtkit.limits import Limits

__all__ = ["Btrfs", "BtrfsNode"]

_PATH_MAX = 4096  # include/uapi/linux/limits.h: longest symlink target
_FT_TYPES = {BTRFS_FT_REG_FILE: FileType.FILE, BTRFS_FT_DIR: FileType.DIRECTORY, BTRFS_FT_SYMLINK: FileType.SYMLINK}


class Btrfs(Filesystem):
    """A read-only btrfs filesystem (one or several devices).

    Use :meth:`open`.  Attributes beyond :class:`Filesystem`'s:

    Attributes:
        superblock: the superblock in use.
        devices: devid -> device for every device given that belongs here.
        notes: things worth telling the operator (mirror superblock used, devices missing ...).
    """

    fstype = "btrfs"

    def __init__(self, source: ByteSource, *, limits: Limits, superblock: Superblock, devices: dict[int, ByteSource], notes: list[str]) -> None:
        self.source = source
        self.limits = limits
        self.superblock = superblock
        self.devices = devices
        self._notes = notes
        self.uuid = superblock.uuid
        self.label = superblock.label
        self.where = source.name
        sb = superblock
        self.sectorsize = sb.sectorsize
        self.nodesize = sb.nodesize
        csum = csum_function(sb.csum_type, self.where)
        sys_chunks = parse_sys_chunk_array(sb.sys_chunk_array, where=self.where)
        boot = ChunkMap(sys_chunks, devices, where=self.where, fsid=self.uuid, limits=limits)
        self.tree = TreeReader(
            boot,
            nodesize=sb.nodesize,
            sectorsize=sb.sectorsize,
            fsid=sb.metadata_fsid,
            csum=csum,
            csum_size=CSUM_SIZES[sb.csum_type],
            limits=limits,
            where=self.where,
        )
        chunk_root = TreeRoot(int(sb.fields.chunk_root), int(sb.fields.chunk_root_level), "chunk tree")
        chunks: list[Chunk] = []
        key_lo = (BTRFS_FIRST_CHUNK_TREE_OBJECTID, BTRFS_CHUNK_ITEM_KEY, 0)
        key_hi = (BTRFS_FIRST_CHUNK_TREE_OBJECTID, BTRFS_CHUNK_ITEM_KEY, U64_MAX)
        for item in self.tree.search(chunk_root, key_lo, key_hi):
            chunk, _ = parse_chunk(item.key[2], item.data, 0, where=describe_item(item, "CHUNK_ITEM", self.where), item_size=len(item.data))
            chunks.append(chunk)
        if not chunks:
            raise CorruptStructure(f"btrfs chunk tree on {self.where}", "no chunks", offset=chunk_root.bytenr)
        self.chunks = ChunkMap(chunks, devices, where=self.where, fsid=self.uuid, limits=limits)
        self.tree.chunks = self.chunks
        self.extents = ExtentReader(self.tree, self.chunks, sectorsize=sb.sectorsize, limits=limits, where=self.where)
        self.root_tree = TreeRoot(int(sb.fields.root), int(sb.fields.root_level), "root tree")
        self._roots: dict[int, RootItem] = {}
        wanted = int(sb.fields.num_devices)
        if len(devices) < wanted:
            self._notes.append(f"{len(devices)} of {wanted} devices present (have devid {', '.join(map(str, sorted(devices)))})")
        self.root_item(BTRFS_FS_TREE_OBJECTID)  # read the root tree now: a broken one fails the open

    @classmethod
    def open(cls, source: ByteSource, *, limits: Limits, devices: Sequence[ByteSource] = ()) -> Btrfs:
        """Open the btrfs on ``source`` (plus the other devices of a multi-device filesystem).

        Args:
            source: the device to open (its primary superblock decides "btrfs or not").
            limits: bounds for everything.
            devices: the other volumes with the same fsid; devices of another
                filesystem are skipped with a note.

        Returns:
            the filesystem.

        Raises:
            NotThisFormat: no btrfs magic in the primary superblock.
            CorruptStructure: damaged superblock (and mirrors), chunk tree or root tree.
            UnsupportedFeature: an unknown checksum type or layout feature.
            ImageError: metadata on devices that were not given.
            LimitExceeded: a bound was broken (too many devices, tree depth ...).
        """
        notes: list[str] = []
        sb = read_superblock(source, notes=notes)
        devmap: dict[int, ByteSource] = {sb.devid: source}
        limits.check("max_volumes", len(devices) + 1, f"btrfs devices for {source.name}")
        for dev in devices:
            if dev is source:
                continue
            try:
                peer = read_superblock(dev)
            except NotThisFormat:
                notes.append(f"{dev.name} is not a btrfs device; ignored")
                continue
            except VirtkitError as exc:
                notes.append(f"{dev.name} ignored: {exc}")
                continue
            if peer.fsid != sb.fsid:
                notes.append(f"{dev.name} belongs to btrfs {peer.uuid}, not {sb.uuid}; ignored")
                continue
            if peer.devid in devmap:
                notes.append(f"{dev.name} repeats devid {peer.devid}; ignored")
                continue
            devmap[peer.devid] = dev
        return cls(source, limits=limits, superblock=sb, devices=devmap, notes=notes)

    @property
    def notes(self) -> list[str]:
        return [*self._notes, *self.tree.fallbacks]

    # -- subvolumes -------------------------------------------------------

    def root_item(self, tree_id: int) -> RootItem:
        """The (newest) ROOT_ITEM of tree ``tree_id``.

        Raises:
            CorruptStructure: not a subvolume id, or no ROOT_ITEM.
        """
        cached = self._roots.get(tree_id)
        if cached is not None:
            return cached
        if tree_id != BTRFS_FS_TREE_OBJECTID and not BTRFS_FIRST_FREE_OBJECTID <= tree_id <= BTRFS_LAST_FREE_OBJECTID:
            raise CorruptStructure(f"btrfs root tree on {self.where}", "reference to a tree that is not a subvolume", got=tree_id)
        item = self.tree.last(self.root_tree, (tree_id, BTRFS_ROOT_ITEM_KEY, 0), (tree_id, BTRFS_ROOT_ITEM_KEY, U64_MAX))
        if item is None:
            raise CorruptStructure(f"btrfs root tree on {self.where}", f"subvolume {tree_id} has no ROOT_ITEM")
        root = parse_root_item(item, self.where)
        self._roots[tree_id] = root
        return root

    def has_root_ref(self, parent: int, child: int, *, dirid: int, name: bytes) -> bool:
        """Whether subvolume ``child`` is linked into ``parent`` as ``name`` in directory ``dirid`` (a ROOT_REF)."""
        key = (parent, BTRFS_ROOT_REF_KEY, child)
        item = self.tree.first(self.root_tree, key, key)
        if item is None:
            return False
        ref_dirid, ref_name = parse_root_ref(item, self.where)
        return ref_dirid == dirid and ref_name == name

    def subvolume(self, tree_id: int) -> BtrfsNode:
        """The root directory of subvolume ``tree_id`` (5 = top level)."""
        r = self.root_item(tree_id)
        tree = TreeRoot(r.bytenr, r.level, f"fs tree {tree_id}")
        return BtrfsNode(self, tree_id, tree, r.root_dirid)

    def root(self) -> BtrfsNode:
        """The top-level subvolume (id 5), where upstream GRUB resolves paths."""
        return self.subvolume(BTRFS_FS_TREE_OBJECTID)

    def default_subvolume_id(self) -> int:
        """The id of the default subvolume (``btrfs subvolume set-default``), 5 if unset."""
        h = name_hash(b"default")
        key = (BTRFS_ROOT_TREE_DIR_OBJECTID, BTRFS_DIR_ITEM_KEY, h)
        for item in self.tree.search(self.root_tree, key, key):
            for d in iter_dir_items(item, self.where, self.limits):
                if d.name == b"default" and d.location[0]:
                    return d.location[0]
        return BTRFS_FS_TREE_OBJECTID

    def default_root(self) -> BtrfsNode:
        """The default subvolume's root directory (what a mount without options shows)."""
        return self.subvolume(self.default_subvolume_id())

    def default_subvolume_path(self) -> str:
        """The default subvolume's path from the top level ("@/.snapshots/1/snapshot"; "" for the top level)."""
        return self.subvolume_path(self.default_subvolume_id())

    def subvolume_path(self, tree_id: int) -> str:
        """Path of subvolume ``tree_id`` from the top level, without a leading slash.

        Follows ROOT_BACKREF items to the parent subvolume and INODE_REF items up
        the parent's directories, with a visited set and ``max_path_components``.

        Raises:
            CorruptStructure: a missing back reference or a loop.
            LimitExceeded: the path is longer than ``max_path_components``.
        """
        parts: list[str] = []
        seen: set[int] = set()
        cur = tree_id
        while cur != BTRFS_FS_TREE_OBJECTID:
            if cur in seen:
                raise CorruptStructure(f"btrfs root tree on {self.where}", f"subvolume back references loop at subvolume {cur}")
            seen.add(cur)
            item = self.tree.first(self.root_tree, (cur, BTRFS_ROOT_BACKREF_KEY, 0), (cur, BTRFS_ROOT_BACKREF_KEY, U64_MAX))
            if item is None:
                raise CorruptStructure(f"btrfs root tree on {self.where}", f"subvolume {cur} has no ROOT_BACKREF (not linked into the tree)")
            parent = item.key[2]
            dirid, name = parse_root_ref(item, self.where)
            parts[:0] = [*self._dir_path(parent, dirid), decode_name(name)]
            if len(parts) > self.limits.max_path_components:
                raise LimitExceeded("max_path_components", len(parts), self.limits.max_path_components, f"btrfs subvolume {tree_id} path on {self.where}")
            cur = parent
        return "/".join(parts)

    def _dir_path(self, tree_id: int, ino: int) -> list[str]:
        """Names from subvolume ``tree_id``'s root directory down to directory ``ino``."""
        r = self.root_item(tree_id)
        tree = TreeRoot(r.bytenr, r.level, f"fs tree {tree_id}")
        out: list[str] = []
        seen: set[int] = set()
        while ino != r.root_dirid:
            if ino in seen:
                raise CorruptStructure(f"btrfs fs tree {tree_id} on {self.where}", f"INODE_REF loop at inode {ino}")
            seen.add(ino)
            item = self.tree.first(tree, (ino, BTRFS_INODE_REF_KEY, 0), (ino, BTRFS_INODE_REF_KEY, U64_MAX))
            if item is None:
                raise CorruptStructure(f"btrfs fs tree {tree_id} on {self.where}", f"directory {ino} has no INODE_REF")
            _index, name = next(iter_inode_refs(item, self.where))
            out.append(decode_name(name))
            if len(out) > self.limits.max_path_components:
                raise LimitExceeded("max_path_components", len(out), self.limits.max_path_components, f"btrfs directory {ino} path on {self.where}")
            ino = item.key[2]
        out.reverse()
        return out

    def list_subvolumes(self) -> list[tuple[int, str]]:
        """``(id, path)`` of every subvolume linked into the tree, by id."""
        out: list[tuple[int, str]] = []
        lo = (BTRFS_FIRST_FREE_OBJECTID, BTRFS_ROOT_BACKREF_KEY, 0)
        hi = (BTRFS_LAST_FREE_OBJECTID, BTRFS_ROOT_BACKREF_KEY, U64_MAX)
        seen: set[int] = set()
        for item in self.tree.search(self.root_tree, lo, hi):
            sid = item.key[0]
            if item.key[1] != BTRFS_ROOT_BACKREF_KEY or sid in seen:
                continue
            seen.add(sid)
            out.append((sid, self.subvolume_path(sid)))
        return out


class BtrfsNode(Node):
    """An inode in one subvolume tree."""

    fs: Btrfs

    def __init__(self, fs: Btrfs, tree_id: int, tree: TreeRoot, ino: int) -> None:
        self.fs = fs
        self.tree_id = tree_id
        self.tree = tree
        self.ino = ino
        self._stat: Stat | None = None
        self._placeholder = False

    def __repr__(self) -> str:
        return f"<BtrfsNode subvolume {self.tree_id} inode {self.ino}>"

    def _name(self) -> str:
        return f"btrfs inode {self.ino} of subvolume {self.tree_id} on {self.fs.where}"

    def stat(self) -> Stat:
        if self._stat is not None:
            return self._stat
        key = (self.ino, BTRFS_INODE_ITEM_KEY, 0)
        item = self.fs.tree.first(self.tree, key, key)
        if item is None:
            if self.ino == BTRFS_EMPTY_SUBVOL_DIR_OBJECTID:  # a nested subvolume's placeholder in a snapshot
                self._stat = Stat(type=FileType.DIRECTORY, size=0, mode=statmod.S_IFDIR | 0o755, inode=self.ino, nlink=1)
                self._placeholder = True
                return self._stat
            raise CorruptStructure(self._name(), "no INODE_ITEM")
        i = parse_inode_item(item, self.fs.where)
        fmt = statmod.S_IFMT(i.mode)
        ftype = {statmod.S_IFREG: FileType.FILE, statmod.S_IFDIR: FileType.DIRECTORY, statmod.S_IFLNK: FileType.SYMLINK}.get(fmt, FileType.OTHER)
        self._stat = Stat(
            type=ftype,
            size=i.size,
            mode=i.mode,
            inode=self.ino,
            nlink=i.nlink,
            uid=i.uid,
            gid=i.gid,
            mtime=i.mtime_sec + i.mtime_nsec / 1e9,
            atime=i.atime_sec + i.atime_nsec / 1e9,
            ctime=i.ctime_sec + i.ctime_nsec / 1e9,
        )
        return self._stat

    def _require_dir(self) -> None:
        if self.type is not FileType.DIRECTORY:
            raise NotADirectory(f"{self._name()} is not a directory")

    def _child(self, d: DirItem) -> BtrfsNode:
        objectid, typ, _ = d.location
        if typ == BTRFS_INODE_ITEM_KEY:
            return BtrfsNode(self.fs, self.tree_id, self.tree, objectid)
        if typ == BTRFS_ROOT_ITEM_KEY:
            if self.fs.has_root_ref(self.tree_id, objectid, dirid=self.ino, name=d.name):
                return self.fs.subvolume(objectid)
            # A snapshot copies the entry of a nested subvolume but not the subvolume:
            # without a matching ROOT_REF the kernel shows an empty placeholder directory.
            return BtrfsNode(self.fs, self.tree_id, self.tree, BTRFS_EMPTY_SUBVOL_DIR_OBJECTID)
        raise CorruptStructure(f"btrfs directory entry {decode_name(d.name)!r} in {self._name()}", "location is neither an inode nor a subvolume", got=typ)

    def iter_dir(self) -> Iterator[DirEntry]:
        self._require_dir()
        if self._placeholder:
            return
        fs = self.fs
        lo = (self.ino, BTRFS_DIR_INDEX_KEY, 0)
        hi = (self.ino, BTRFS_DIR_INDEX_KEY, U64_MAX)
        count = 0
        for item in fs.tree.search(self.tree, lo, hi):
            for d in iter_dir_items(item, fs.where, fs.limits):
                if d.type == BTRFS_FT_XATTR:
                    continue
                count += 1
                fs.limits.check("max_dir_entries", count, self._name())
                yield DirEntry(decode_name(d.name), _FT_TYPES.get(d.type, FileType.OTHER), d.location[0], _loader(self, d))

    def lookup_child(self, name: str) -> BtrfsNode | None:
        self._require_dir()
        raw = encode_name(name)
        if not raw or len(raw) > BTRFS_NAME_LEN:
            return None
        key = (self.ino, BTRFS_DIR_ITEM_KEY, name_hash(raw))
        for item in self.fs.tree.search(self.tree, key, key):
            for d in iter_dir_items(item, self.fs.where, self.fs.limits):  # several names when hashes collide
                if d.name == raw and d.type != BTRFS_FT_XATTR:
                    return self._child(d)
        return None

    def readlink(self) -> str:
        st = self.stat()
        if st.type is not FileType.SYMLINK:
            raise CorruptStructure(self._name(), "readlink on something that is not a symlink")
        if st.size > _PATH_MAX:
            raise CorruptStructure(self._name(), "symlink target longer than PATH_MAX", expected=f"<= {_PATH_MAX}", got=st.size)
        src = self.fs.extents.open(self.tree, self.ino, st.size, self._name())
        return decode_name(src.pread(0, src.size))

    def open(self) -> ByteSource:
        st = self.stat()
        if st.type is FileType.DIRECTORY:
            raise IsADirectory(f"{self._name()} is a directory")
        return self.fs.extents.open(self.tree, self.ino, st.size, self._name())


def _loader(node: BtrfsNode, d: DirItem) -> Callable[[], Node]:
    return lambda: node._child(d)
