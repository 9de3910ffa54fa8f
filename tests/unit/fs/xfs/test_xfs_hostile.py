"""Hostile XFS images: real fixtures with bytes patched, each ending in one clear VirtkitError.

Every case names the fixture, how to find the bytes to patch (using an
unpatched copy of the same image), what to do with the patched filesystem, and
the exact error expected.  There is one case per ``Limits`` field the reader
uses, plus the corruptions the brief lists (a bmbt block pointing at itself, a
depth bomb, a directory entry overrunning its block, a remote symlink header
that lies, an inode number beyond the AG count, a file claiming 2**63 bytes).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import xfs_support as xs

from virtkit._streams import read_all
from virtkit.boot.fs.xfs import Xfs, XfsNode
from virtkit.boot.fs.xfs import structs as s
from virtkit.boot.fs.xfs.dir import XfsDirectory
from virtkit.errors import CorruptStructure, LimitExceeded, UnsupportedFeature, VirtkitError
from virtkit.limits import Limits

SB = s.XFS_SB_RECORD
DI = s.XFS_DINODE_RECORD


def sbf(field_name: str) -> int:
    return xs.field_offset(SB, field_name)


def dif(field_name: str) -> int:
    return xs.field_offset(DI, field_name)


def n(fs: Xfs, path: str) -> XfsNode:
    node = fs.lookup(path, follow=False)
    assert isinstance(node, XfsNode)
    return node


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def entries(fs: Xfs, path: str) -> list[tuple[int, bytes, int]]:
    """(volume byte offset, name, ino) of every data entry of a block-form directory."""
    d = n(fs, path).directory()
    data, start, end, byte = d._block_form_area()
    return [(byte + pos, e.name, e.ino) for pos, e in d._iter_data_entries(data, start, end, byte)]


def listdir(path: str) -> Callable[[Xfs], object]:
    return lambda fs: [e.name for e in fs.lookup(path).iter_dir()]


def read(path: str) -> Callable[[Xfs], object]:
    return lambda fs: read_all(fs.lookup(path).open(), limit=1 << 30)


def lookup(path: str) -> Callable[[Xfs], object]:
    return lambda fs: fs.lookup(path)


def readlink(path: str) -> Callable[[Xfs], object]:
    return lambda fs: fs.lookup(path, follow=False).readlink()


def stat(path: str) -> Callable[[Xfs], object]:
    return lambda fs: fs.lookup(path, follow=False).stat()


@dataclass
class Case:
    id: str
    fixture: str
    patch: Callable[[Xfs], dict[int, bytes]]
    action: Callable[[Xfs], object]
    error: type[VirtkitError]
    match: str
    limits: Limits = field(default_factory=Limits)
    size: Callable[[Xfs], int] | None = None


def no_patch(fs: Xfs) -> dict[int, bytes]:
    return {}


# -- patch builders --------------------------------------------------------------------


def inode_field(path: str, fld: str, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    return lambda fs: {n(fs, path).dinode.offset + dif(fld): value}


def fork_bytes(path: str, rel: int, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    return lambda fs: {n(fs, path).dinode.data_fork_offset + rel: value}


def extent_record(path: str, index: int, startoff: int, startblock: int, count: int) -> Callable[[Xfs], dict[int, bytes]]:
    l0 = (startoff << 9) | (startblock >> 43)
    l1 = ((startblock & ((1 << 43) - 1)) << 21) | count
    return fork_bytes(path, 16 * index, struct.pack(">QQ", l0, l1))


def bmbt_root_ptr(path: str, index: int, value_from: int | None = None, value: int | None = None) -> Callable[[Xfs], dict[int, bytes]]:
    """Set root pointer ``index`` to pointer ``value_from``'s value (or ``value``)."""

    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).dinode
        maxrecs = (len(d.data_fork) - 4) // 16
        ptrs = 4 + maxrecs * 8
        v = value if value is not None else struct.unpack_from(">Q", d.data_fork, ptrs + 8 * (value_from or 0))[0]
        return {d.data_fork_offset + ptrs + 8 * index: u64(v)}

    return build


def bmbt_child(path: str, offset_in_block: int, value: Callable[[int, bytes], bytes]) -> Callable[[Xfs], dict[int, bytes]]:
    """Patch the first child block of the bmbt root at ``offset_in_block`` (value gets fsb, block)."""

    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).dinode
        maxrecs = (len(d.data_fork) - 4) // 16
        fsb = struct.unpack_from(">Q", d.data_fork, 4 + maxrecs * 8)[0]
        byte = fs.geometry.fsb_to_byte(fsb, 1, "test")
        block = fs.source.pread(byte, fs.geometry.block_size)
        return {byte + offset_in_block: value(fsb, block)}

    return build


def node_child_dup(fs: Xfs) -> dict[int, bytes]:
    """In /frag's first level-1 bmbt node, make pointer 1 equal pointer 0 (a crossed tree)."""
    d = n(fs, "/frag").dinode
    maxrecs = (len(d.data_fork) - 4) // 16
    fsb = struct.unpack_from(">Q", d.data_fork, 4 + maxrecs * 8)[0]
    byte = fs.geometry.fsb_to_byte(fsb, 1, "test")
    block = fs.source.pread(byte, fs.geometry.block_size)
    hdr = s.XFS_BTREE_LBLOCK_CRC_LEN
    ptrs = hdr + (fs.geometry.block_size - hdr) // 16 * 8
    return {byte + ptrs + 8: block[ptrs : ptrs + 8]}


def node_child_self(fs: Xfs) -> dict[int, bytes]:
    """Make /frag's first level-1 bmbt node point at itself."""
    d = n(fs, "/frag").dinode
    maxrecs = (len(d.data_fork) - 4) // 16
    fsb = struct.unpack_from(">Q", d.data_fork, 4 + maxrecs * 8)[0]
    byte = fs.geometry.fsb_to_byte(fsb, 1, "test")
    hdr = s.XFS_BTREE_LBLOCK_CRC_LEN
    ptrs = hdr + (fs.geometry.block_size - hdr) // 16 * 8
    return {byte + ptrs: u64(fsb)}


def dir_entry(path: str, which: int, rel: int, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    return lambda fs: {entries(fs, path)[which][0] + rel: value}


def last_entry_namelen(path: str) -> Callable[[Xfs], dict[int, bytes]]:
    """The last entry of the first (full) data block of a leaf/node directory claims 255 bytes."""

    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).directory()
        data, byte = d._read_dir_block(0, "test")
        last = list(d._iter_data_entries(data, d.data_hdr, len(data), byte))[-1][0]
        assert len(data) - last < 8 + 1 + 255 + 1 + 2  # so a 255-byte name cannot fit
        return {byte + last + 8: b"\xff"}

    return build


def entry_tag(path: str, which: int) -> Callable[[Xfs], dict[int, bytes]]:
    def build(fs: Xfs) -> dict[int, bytes]:
        at, name, _ = entries(fs, path)[which]
        size = (8 + 1 + len(name) + (1 if fs.geometry.has_ftype else 0) + 2 + 7) & ~7
        return {at + size - 2: u16(0x1234)}

    return build


def block_tail(path: str, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).directory()
        return {d.fork_byte(0) + fs.geometry.dir_block_size - 8: value}

    return build


def block_leaf_addresses(path: str, address: int) -> Callable[[Xfs], dict[int, bytes]]:
    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).directory()
        data, _, end, byte = d._block_form_area()
        count = struct.unpack_from(">I", data, len(data) - 8)[0]
        return {byte + end + 8 * i + 4: u32(address) for i in range(count)}

    return build


def dir_block(path: str, dablk: int, rel: int, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).directory()
        return {d.fork_byte(dablk) + rel: value}

    return build


def da_root(path: str, rel_from_count: int, value: Callable[[Xfs], bytes]) -> Callable[[Xfs], dict[int, bytes]]:
    """Patch the da root node at (count offset + rel_from_count)."""

    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).directory()
        at = d.da_hdr - (8 if fs.geometry.has_crc else 4)
        return {d.fork_byte(d.leaf_dablk) + at + rel_from_count: value(fs)}

    return build


def leaf_moved(path: str) -> Callable[[Xfs], dict[int, bytes]]:
    """Move the extent mapping the leaf block of a leaf-form directory 4 blocks further on."""

    def build(fs: Xfs) -> dict[int, bytes]:
        node = n(fs, path)
        d = node.directory()
        (i, e), = [(i, e) for i, e in enumerate(node.extents()) if e.startoff == d.leaf_dablk]
        return extent_record(path, i, e.startoff + 4, e.startblock, e.blockcount)(fs)

    return build


def da_befores(path: str, value: Callable[[XfsDirectory], int]) -> Callable[[Xfs], dict[int, bytes]]:
    """Point every child pointer of the da root node at ``value(dir)``."""

    def build(fs: Xfs) -> dict[int, bytes]:
        d = n(fs, path).directory()
        block, magic = d._read_da_root()
        assert magic == d.node_magic
        count = d._da_count_level(block)[0]
        base = d.fork_byte(d.leaf_dablk)
        return {base + d.da_hdr + 8 * i + 4: u32(value(d)) for i in range(count)}

    return build


def shortform(path: str, rel: int, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    return fork_bytes(path, rel, value)


def symlink_block(path: str, fld: str, value: bytes) -> Callable[[Xfs], dict[int, bytes]]:
    def build(fs: Xfs) -> dict[int, bytes]:
        e = n(fs, path).extents()[0]
        return {e.byte + xs.field_offset(s.XFS_SYMLINK_HDR_RECORD, fld): value}

    return build


SF_FIRST = 2 + 4  # shortform header with 4-byte inode numbers: the first entry starts here

CASES = [
    # --- superblock ---
    Case("sb-unknown-incompat", "v5-4k", lambda fs: {sbf("sb_features_incompat"): u32(0x0B | 1 << 20)}, lambda fs: fs,
         UnsupportedFeature, r"unknown incompatible feature bits 0x100000"),
    Case("sb-version-3", "v4-ftype0", lambda fs: {sbf("sb_versionnum"): u16(0xB4A3)}, lambda fs: fs,
         UnsupportedFeature, r"XFS version 3 superblock"),
    Case("sb-v4-no-dirv2", "v4-ftype0", lambda fs: {sbf("sb_versionnum"): u16(0xB4A4 & ~0x2000)}, lambda fs: fs,
         UnsupportedFeature, r"version 1 directories"),
    Case("sb-v4-unknown-features2", "v4-ftype0", lambda fs: {sbf("sb_features2"): u32(0x8A | 1 << 30)}, lambda fs: fs,
         UnsupportedFeature, r"unknown v4 sb_features2 bits 0x40000000"),
    Case("sb-v4-crc-bit", "v4-ftype0", lambda fs: {sbf("sb_features2"): u32(0x8A | 0x100)}, lambda fs: fs,
         CorruptStructure, r"superblock at 0x0: CRC feature bit set on a version 4 superblock"),
    Case("sb-blocksize", "v5-4k", lambda fs: {sbf("sb_blocksize"): u32(3000)}, lambda fs: fs,
         CorruptStructure, r"bad sb_blocksize \(0xbb8\)"),
    Case("sb-blocklog", "v5-4k", lambda fs: {sbf("sb_blocklog"): b"\x0d"}, lambda fs: fs,
         CorruptStructure, r"sb_blocksize and sb_blocklog disagree, expected 0x2000, got 0x1000"),
    Case("sb-agblklog", "v5-4k", lambda fs: {sbf("sb_agblklog"): b"\x11"}, lambda fs: fs,
         CorruptStructure, r"sb_agblklog does not match sb_agblocks, expected 0xc, got 0x11"),
    Case("sb-dblocks", "v5-4k", lambda fs: {sbf("sb_dblocks"): u64(1 << 40)}, lambda fs: fs,
         CorruptStructure, r"sb_dblocks does not fit 2 AGs of 4096 blocks"),
    Case("sb-inprogress", "v5-4k", lambda fs: {sbf("sb_inprogress"): b"\x01"}, lambda fs: fs,
         CorruptStructure, r"sb_inprogress is set"),
    Case("sb-inodesize", "v5-4k", lambda fs: {sbf("sb_inodesize"): u16(8192)}, lambda fs: fs,
         CorruptStructure, r"bad sb_inodesize/sb_inodelog"),
    Case("sb-rootino-beyond-ags", "v5-4k", lambda fs: {sbf("sb_rootino"): u64(5 << 15)}, lambda fs: fs,
         CorruptStructure, r"sb_rootino: inode number 0x28000 is outside the filesystem \(2 AGs\)"),
    # --- inodes ---
    Case("inode-bad-magic", "v5-4k", inode_field("/", "di_magic", b"XX"), lambda fs: fs.root(),
         CorruptStructure, r"inode 128 at 0x10000: bad dinode magic, expected 0x494e, got 0x5858"),
    Case("inode-v3-wrong-number", "v5-4k", lambda fs: {n(fs, "/grub").dinode.offset + 152: u64(129)}, stat("/grub"),
         CorruptStructure, r"inode records a different number \(di_ino\), expected 0x"),
    Case("inode-v2-on-v5", "v5-4k", inode_field("/grub", "di_version", b"\x02"), stat("/grub"),
         CorruptStructure, r"v5 filesystems use version 3 inodes, expected 3, got 2"),
    Case("inode-dir-as-device", "v4-ftype0", inode_field("/grub", "di_format", b"\x00"), listdir("/grub"),
         CorruptStructure, r"data fork format 0 is not valid for this file type \(mode 0o40755\)"),
    Case("inode-free", "v4-ftype0", inode_field("/grub/grub.cfg", "di_mode", u16(0)), read("/grub/grub.cfg"),
         CorruptStructure, r"inode is not in use"),
    Case("inode-forkoff-beyond", "v4-ftype0", inode_field("/grub/grub.cfg", "di_forkoff", b"\xff"), read("/grub/grub.cfg"),
         CorruptStructure, r"attribute fork offset is beyond the inode \(0xff\)"),
    Case("file-claims-2**63-bytes", "v5-4k", inode_field("/vmlinuz-6.1.0-28-amd64", "di_size", u64(1 << 63)), stat("/vmlinuz-6.1.0-28-amd64"),
         CorruptStructure, r"negative file size"),
    Case("limit-max_file_bytes", "v5-4k", inode_field("/vmlinuz-6.1.0-28-amd64", "di_size", u64((1 << 63) - 1)), read("/vmlinuz-6.1.0-28-amd64"),
         LimitExceeded, r"9223372036854775807 exceeds the max_file_bytes limit"),
    Case("nextents-overflow-fork", "v5-4k", inode_field("/grub/grub.cfg", "di_nextents", u32(1000)), read("/grub/grub.cfg"),
         CorruptStructure, r"1000 extents do not fit in the 336-byte data fork"),
    # --- extents ---
    Case("extent-beyond-ag-count", "v5-4k", extent_record("/grub/grub.cfg", 0, 0, 7 << 12, 1), read("/grub/grub.cfg"),
         CorruptStructure, r"extent record 0: block 0x7000 is in AG 7, but there are 2 AGs"),
    Case("extent-beyond-ag-end", "v5-4k", extent_record("/grub/grub.cfg", 0, 0, 4090, 100), read("/grub/grub.cfg"),
         CorruptStructure, r"100 blocks at block 0xffa .* run outside the AG or the filesystem"),
    Case("extent-empty", "v5-4k", extent_record("/grub/grub.cfg", 0, 0, 100, 0), read("/grub/grub.cfg"),
         CorruptStructure, r"extent of zero blocks"),
    Case("extents-overlap", "v5-4k", extent_record("/forms/node", 1, 0, 100, 1), listdir("/forms/node"),
         CorruptStructure, r"extent record 1 at 0x[0-9a-f]+: extent at file block 0x0 overlaps or precedes"),
    Case("limit-max_extents-inline", "v5-4k", no_patch, listdir("/forms/node"),
         LimitExceeded, r"6 exceeds the max_extents limit of 5", Limits(max_extents=5)),
    # --- bmbt ---
    Case("bmbt-depth-bomb", "v5-mounted", fork_bytes("/frag", 0, u16(40)), read("/frag"),
         LimitExceeded, r"bmbt root in the inode: 40 exceeds the max_tree_depth limit of 16"),
    Case("limit-max_tree_depth", "v5-mounted", no_patch, read("/frag"),
         LimitExceeded, r"2 exceeds the max_tree_depth limit of 1", Limits(max_tree_depth=1)),
    Case("limit-max_tree_nodes", "v5-mounted", no_patch, read("/frag"),
         LimitExceeded, r"4 exceeds the max_tree_nodes limit of 3", Limits(max_tree_nodes=3)),
    Case("limit-max_extents-bmbt", "v5-mounted", no_patch, read("/frag"),
         LimitExceeded, r"exceeds the max_extents limit of 100", Limits(max_extents=100)),
    Case("bmbt-root-level-0", "v5-mounted", fork_bytes("/frag", 0, u16(0)), read("/frag"),
         CorruptStructure, r"a bmbt root in the inode must be an interior node"),
    Case("bmbt-root-numrecs", "v5-mounted", fork_bytes("/frag", 2, u16(500)), read("/frag"),
         CorruptStructure, r"bmbt root holds 500 entries, room for 1..11 \(0x1f4\)"),
    Case("bmbt-crossed-root", "v5-mounted", bmbt_root_ptr("/frag", 1, value_from=0), read("/frag"),
         CorruptStructure, r"bmbt block 0x[0-9a-f]+: bmbt block is referenced twice"),
    Case("bmbt-crossed-node", "v5-mounted", node_child_dup, read("/frag"),
         CorruptStructure, r"referenced twice|overlaps or precedes|outside the key range"),
    Case("bmbt-node-points-at-itself", "v5-mounted", node_child_self, read("/frag"),
         CorruptStructure, r"referenced twice \(a loop or a crossed tree\)"),
    Case("bmbt-root-ptr-beyond-ags", "v5-mounted", bmbt_root_ptr("/frag", 0, value=99 << 14), read("/frag"),
         CorruptStructure, r"block 0x18c000 is in AG 99, but there are 4 AGs"),
    Case("bmbt-bad-magic", "v5-mounted", bmbt_child("/frag", 0, lambda fsb, b: b"BMAP"), read("/frag"),
         CorruptStructure, r"bad bmbt block magic, expected 0x424d4133, got 0x424d4150"),
    Case("bmbt-wrong-owner", "v5-mounted", bmbt_child("/frag", 24 + 32, lambda fsb, b: u64(12345)), read("/frag"),
         CorruptStructure, r"bmbt block belongs to another inode, expected 0x[0-9a-f]+, got 0x3039"),
    Case("bmbt-wrong-blkno", "v5-mounted", bmbt_child("/frag", 24, lambda fsb, b: u64(7)), read("/frag"),
         CorruptStructure, r"bmbt block records another address, expected 0x[0-9a-f]+, got 7"),
    Case("bmbt-wrong-level", "v5-mounted", bmbt_child("/frag", 4, lambda fsb, b: u16(0)), read("/frag"),
         CorruptStructure, r"bmbt block has the wrong level, expected 1, got 0"),
    Case("bmbt-count-mismatch", "v5-mounted", inode_field("/frag", "di_nextents", u32(3967)), read("/frag"),
         CorruptStructure, r"bmbt holds a different number of extents than the inode says, expected 0xf7f, got 0xf7e"),
    Case("dir-btree-fork-depth-bomb", "v4-ftype0", fork_bytes("/forms/btree", 0, u16(17)), listdir("/forms/btree"),
         LimitExceeded, r"17 exceeds the max_tree_depth limit of 16"),
    # --- directories ---
    Case("dir-entry-namelen-overruns-block", "v5-4k", last_entry_namelen("/forms/leaf"), listdir("/forms/leaf"),
         CorruptStructure, r"data entry at 0x[0-9a-f]+: entry with a 255-byte name overruns the block \(0xff\)"),
    Case("dir-entry-namelen-zero", "v4-ftype0", dir_entry("/forms/block", 3, 8, b"\x00"), listdir("/forms/block"),
         CorruptStructure, r"entry with a 0-byte name overruns the block"),
    Case("dir-entry-bad-tag", "v5-4k", entry_tag("/forms/block", 2), listdir("/forms/block"),
         CorruptStructure, r"data entry at 0x[0-9a-f]+: entry tag does not match its offset"),
    Case("dir-unused-zero-length", "v5-4k", dir_entry("/forms/block", 2, 0, b"\xff\xff\x00\x00"), listdir("/forms/block"),
         CorruptStructure, r"unused region has a bad length"),
    Case("dir-name-with-slash", "v5-4k", dir_entry("/forms/block", 2, 9, b"/"), listdir("/forms/block"),
         CorruptStructure, r"name contains '/' or NUL"),
    Case("dir-entry-ino-beyond-ags", "v5-4k", dir_entry("/forms/block", 2, 0, u64(9 << 15)), listdir("/forms/block"),
         CorruptStructure, r"inode number 0x48000 is outside the filesystem \(2 AGs\)"),
    Case("dir-entry-ino-in-ag-header", "v5-4k", dir_entry("/forms/block", 2, 0, u64(1)), listdir("/forms/block"),
         CorruptStructure, r"inode number 0x1 points at AG 0 block 0x0, which cannot hold inodes"),
    Case("dir-entry-bad-ftype", "v5-4k", lambda fs: {e + 9 + len(name): b"\x09" for e, name, _ in entries(fs, "/forms/block")[2:3]},
         listdir("/forms/block"), CorruptStructure, r"unknown file type code \(9\)"),
    Case("dir-block-tail-count", "v5-4k", block_tail("/forms/block", u32(0x10000000)), listdir("/forms/block"),
         CorruptStructure, r"leaf count in the block tail overruns the block"),
    Case("dir-block-leaf-address", "v5-4k", block_leaf_addresses("/forms/block", 0x7FFFFFF), lookup("/forms/block/block-00007-yyyyyyy"),
         CorruptStructure, r"address points outside the block"),
    Case("dir-block-bad-magic", "v5-4k", dir_block("/forms/block", 0, 0, b"XXXX"), listdir("/forms/block"),
         CorruptStructure, r"first data block at 0x[0-9a-f]+: bad magic, expected 0x58444233 or 0x58444433, got 0x58585858"),
    Case("dir-data-block-owner", "v5-4k", dir_block("/forms/leaf", 1, 40, u64(4242)), listdir("/forms/leaf"),
         CorruptStructure, r"block belongs to another inode, expected 0x[0-9a-f]+, got 0x1092"),
    Case("dir-data-block-blkno", "v5-4k", dir_block("/forms/leaf", 1, 8, u64(1)), listdir("/forms/leaf"),
         CorruptStructure, r"block records another address"),
    Case("dir-data-block-magic", "v4-ftype0", dir_block("/forms/node", 4, 0, b"XD2B"), listdir("/forms/node"),
         CorruptStructure, r"data block 0x4 at 0x[0-9a-f]+: bad magic, expected 0x58443244, got 0x58443242"),
    Case("dir-missing-leaf", "v4-ftype0", leaf_moved("/forms/leaf"), lookup("/forms/leaf/leaf-00001-y"),
         CorruptStructure, r"multi-block directory without a leaf block at 32 GiB"),
    Case("da-node-points-at-itself", "v5-4k", da_befores("/forms/node", lambda d: d.leaf_dablk),
         lookup("/forms/node/node-00001-y"), CorruptStructure, r"da btree block is referenced twice \(a loop\)"),
    Case("da-node-depth-bomb", "v5-4k", da_root("/forms/node", 2, lambda fs: u16(40)), lookup("/forms/node/node-00001-y"),
         LimitExceeded, r"40 exceeds the max_tree_depth limit of 16"),
    Case("da-node-child-outside-leaf-space", "v4-ftype0", da_befores("/forms/node", lambda d: 3), lookup("/forms/node/node-00001-y"),
         CorruptStructure, r"da node points outside the leaf space \(3\)"),
    Case("da-node-count", "v4-ftype0", da_root("/forms/node", 0, lambda fs: u16(0)), lookup("/forms/node/node-00001-y"),
         CorruptStructure, r"bad da node entry count"),
    Case("leaf-bad-magic", "v5-4k", lambda fs: {n(fs, "/forms/leaf").directory().fork_byte(n(fs, "/forms/leaf").directory().leaf_dablk) + 8: u16(0x1234)},
         lookup("/forms/leaf/leaf-00001-y"), CorruptStructure, r"bad magic, expected 0x3df1 or 0x3dff or 0x3ebe, got 0x1234"),
    Case("limit-max_dir_entries", "v5-4k", no_patch, listdir("/forms/node"),
         LimitExceeded, r"101 exceeds the max_dir_entries limit of 100", Limits(max_dir_entries=100)),
    Case("limit-max_tree_nodes-dir", "v5-4k", no_patch, listdir("/forms/node"),
         LimitExceeded, r"3 exceeds the max_tree_nodes limit of 2", Limits(max_tree_nodes=2)),
    Case("shortform-count-overrun", "v5-4k", shortform("/forms/sf", 0, b"\xff"), listdir("/forms/sf"),
         CorruptStructure, r"shortform at 0x[0-9a-f]+: entry overruns the directory size"),
    Case("shortform-namelen-overrun", "v5-4k", shortform("/forms/sf", SF_FIRST, b"\xf0"), listdir("/forms/sf"),
         CorruptStructure, r"entry with a 240-byte name overruns the directory \(0xf0\)"),
    Case("shortform-ino-beyond-ags", "v4-ftype0", shortform("/forms/sf", SF_FIRST + 3 + 9, u32(3 << 24)), listdir("/forms/sf"),
         CorruptStructure, r"entry b'sf-00000-': inode number 0x3000000 is outside the filesystem \(2 AGs\)"),
    Case("shortform-size-too-small", "v5-4k", inode_field("/forms/sf", "di_size", u64(1)), listdir("/forms/sf"),
         CorruptStructure, r"too small for a shortform header \(1\)"),
    # --- symlinks ---
    Case("symlink-remote-v5-bad-magic", "v5-mounted", symlink_block("/links/long", "sl_magic", b"XSLX"), readlink("/links/long"),
         CorruptStructure, r"symlink block 0 at 0x[0-9a-f]+: bad remote symlink magic, expected 0x58534c4d, got 0x58534c58"),
    Case("symlink-remote-v5-offset", "v5-mounted", symlink_block("/links/long", "sl_offset", u32(4)), readlink("/links/long"),
         CorruptStructure, r"header offset does not match, expected 0, got 4"),
    Case("symlink-remote-v5-bytes", "v5-mounted", symlink_block("/links/long", "sl_bytes", u32(999)), readlink("/links/long"),
         CorruptStructure, r"header length does not match, expected 0x3e8, got 0x3e7"),
    Case("symlink-remote-v5-owner", "v5-mounted", symlink_block("/links/long", "sl_owner", u64(64)), readlink("/links/long"),
         CorruptStructure, r"block belongs to another inode, expected 0x[0-9a-f]+, got 0x40"),
    Case("symlink-remote-v5-uuid", "v5-mounted", symlink_block("/links/long", "sl_uuid", b"\1" * 16), readlink("/links/long"),
         CorruptStructure, r"block belongs to another filesystem"),
    Case("symlink-too-long", "v4-ftype0", inode_field("/links/long", "di_size", u64(5000)), readlink("/links/long"),
         CorruptStructure, r"target length must be 1..1024"),
    Case("symlink-empty", "v5-4k", inode_field("/vmlinuz", "di_size", u64(0)), readlink("/vmlinuz"),
         CorruptStructure, r"target length must be 1..1024"),
    Case("symlink-nul", "v5-4k", fork_bytes("/vmlinuz", 3, b"\0"), readlink("/vmlinuz"),
         CorruptStructure, r"target contains a NUL byte"),
    Case("limit-max_symlink_hops", "v5-4k", no_patch, lookup("/loop-a"), LimitExceeded, r"41 exceeds the max_symlink_hops limit of 40"),
    Case("limit-max_path_components", "v4-ftype0", no_patch, lookup("/links/long"), LimitExceeded, r"exceeds the max_path_components limit of 256"),
    Case("limit-max_name_bytes", "v5-4k", no_patch, lookup("/vmlinuz-6.1.0-28-amd64"), LimitExceeded,
         r"22 exceeds the max_name_bytes limit of 8", Limits(max_name_bytes=8)),
    # --- the volume ends early ---
    Case("truncated-volume", "v5-4k", no_patch, read("/initrd.img-6.1.0-28-amd64"), CorruptStructure,
         r"xfs:xfs-v5-4k-patched:inode \d+: mapping 0x0\+0x[0-9a-f]+ points at 0x[0-9a-f]+, outside xfs-v5-4k-patched",
         size=lambda fs: n(fs, "/initrd.img-6.1.0-28-amd64").extents()[0].byte + 4096),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: Case) -> None:
    clean = xs.open_xfs(case.fixture)
    patches = case.patch(clean)
    size = case.size(clean) if case.size else None
    with pytest.raises(case.error, match=case.match) as info:
        fs = xs.open_patched(case.fixture, patches, case.limits, size)
        case.action(fs)
    message = str(info.value)
    assert "\n" not in message
    if isinstance(info.value, CorruptStructure):
        # "xfs on <volume>: ..." for metadata, "xfs:<volume>:inode N" for a file's byte source
        assert message.startswith((f"xfs on xfs-{case.fixture}-patched", f"xfs:xfs-{case.fixture}-patched")), message


def test_every_limit_the_reader_uses_has_a_case() -> None:
    used = {"max_file_bytes", "max_extents", "max_tree_depth", "max_tree_nodes", "max_dir_entries", "max_name_bytes",
            "max_symlink_hops", "max_path_components"}
    covered = {re.search(r"(max_\w+) limit", c.match).group(1) for c in CASES if c.error is LimitExceeded}  # type: ignore[union-attr]
    assert used <= covered, used - covered
