"""Property: any mutation of an XFS image's metadata gives results or a VirtkitError, quickly.

Mutations land where they matter: in the byte ranges a bounded walk of the
clean image reads as metadata (superblock, inodes, directory blocks, bmbt
blocks, symlink blocks), recorded once per fixture.  Each example patches a few
of those bytes and walks the patched image again; only VirtkitError may escape.
"""

from __future__ import annotations

from functools import cache

import pytest
import xfs_support as xs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtkit.boot.fs.xfs import Xfs
from virtkit.errors import VirtkitError
from virtkit.limits import Limits

FIXTURES = ["v5-4k", "v4-ftype0", "v5-mounted", "v4-ftype1-ci"]
LIMITS = Limits(max_dir_entries=5000, max_tree_nodes=5000, max_extents=20000, max_file_bytes=64 << 20)
BUDGET = 150  # nodes per walk


class RecordingSource:
    """Remember the (offset, length) of every small read: those are metadata."""

    def __init__(self, base: xs.PatchedSource) -> None:
        self.base = base
        self.name = base.name
        self.size = base.size
        self.reads: set[tuple[int, int]] = set()

    def pread(self, offset: int, length: int) -> bytes:
        if length <= 65536:
            self.reads.add((offset, length))
        return self.base.pread(offset, length)


@cache
def metadata_ranges(name: str) -> tuple[tuple[int, int], ...]:
    rec = RecordingSource(xs.PatchedSource(xs.image_bytes(name), {}, f"xfs-{name}"))
    fs = Xfs.open(rec, limits=LIMITS)
    xs.walk_tolerant(fs, budget=BUDGET, read_bytes=0)
    return tuple(sorted(rec.reads))


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, dict[int, bytes]]:
    name = draw(st.sampled_from(FIXTURES))
    ranges = metadata_ranges(name)
    patches: dict[int, bytes] = {}
    for _ in range(draw(st.integers(1, 6))):
        offset, length = draw(st.sampled_from(ranges))
        at = offset + draw(st.integers(0, length - 1))
        kind = draw(st.sampled_from(["byte", "zero", "ones", "u16", "u32"]))
        if kind == "byte":
            value = bytes([draw(st.integers(0, 255))])
        elif kind == "zero":
            value = bytes(draw(st.integers(1, 8)))
        elif kind == "ones":
            value = b"\xff" * draw(st.integers(1, 8))
        else:
            size = 2 if kind == "u16" else 4
            value = draw(st.integers(0, (1 << (8 * size)) - 1)).to_bytes(size, "big")
        patches[at] = value
    return name, patches


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations())
def test_mutated_metadata_gives_results_or_virtkit_errors(case: tuple[str, dict[int, bytes]]) -> None:
    name, patches = case
    try:
        fs = xs.open_patched(name, patches, LIMITS)
        xs.walk_tolerant(fs, budget=BUDGET, read_bytes=4096)
        for path in ("/grub/grub.cfg", "/vmlinuz", "/forms/node/node-00300-" + "y" * (300 % 23), "/loop-a", "/links/long"):
            try:
                fs.lookup(path)
            except VirtkitError:
                pass
    except VirtkitError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=8192))
def test_arbitrary_bytes_after_the_magic(data: bytes) -> None:
    try:
        fs = xs.open_bytes(b"XFSB" + data, LIMITS)
        xs.walk_tolerant(fs, budget=20)
    except VirtkitError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 263), st.binary(min_size=1, max_size=8))
def test_superblock_mutations(at: int, value: bytes) -> None:
    try:
        fs = xs.open_patched("v5-4k", {at: value}, LIMITS)
        xs.walk_tolerant(fs, budget=30)
    except VirtkitError:
        pass


@pytest.mark.parametrize("name", FIXTURES)
def test_recorded_ranges_cover_metadata(name: str) -> None:
    # The mutation space must include the superblock, inodes and directory blocks.
    ranges = metadata_ranges(name)
    assert (0, 512) in ranges
    assert len(ranges) > 20
