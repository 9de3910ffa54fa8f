"""ExtentFileSource (one pread for many nearby small extents) reads exactly what MappedSource reads."""

from __future__ import annotations

import random

import xfs_support as xs
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit._streams import BytesSource, MappedSource, Run, iter_chunks
from virtkit.boot.fs.xfs.bmap import ExtentFileSource

DISK = BytesSource(random.Random(7).randbytes(1 << 20), "disk")
OTHER = BytesSource(random.Random(8).randbytes(1 << 16), "other")


@st.composite
def layouts(draw: st.DrawFn) -> list[Run]:
    """Runs with gaps between them: ascending and close on DISK (a fragmented XFS file), or mixed
    with far jumps, backward jumps, another source and explicit hole runs."""
    runs: list[Run] = []
    pos = draw(st.integers(0, 5000))
    phys = draw(st.integers(0, 4096))
    kinds = ["near"] if draw(st.booleans()) else ["near"] * 6 + ["far", "back", "other", "hole"]
    for _ in range(draw(st.integers(0, 60))):
        length = draw(st.integers(1, 3000))
        kind = draw(st.sampled_from(kinds))
        if kind == "near":
            phys += draw(st.integers(0, 2000))
        elif kind == "far":
            phys += draw(st.integers(300_000, 600_000))
        elif kind == "back":
            phys = draw(st.integers(0, 100_000))
        if kind == "other":
            runs.append(Run(pos, min(length, 4096), OTHER, draw(st.integers(0, 60_000))))
        elif kind == "hole":
            runs.append(Run(pos, length, None))
        elif phys + length <= DISK.size:
            runs.append(Run(pos, length, DISK, phys))
            phys += length
        pos += length + draw(st.integers(0, 3000))
    return runs


@settings(max_examples=300, deadline=None)
@given(layouts(), st.data())
def test_same_bytes_as_mapped_source(runs: list[Run], data: st.DataObject) -> None:
    size = (runs[-1].start + runs[-1].length if runs else 0) + data.draw(st.integers(0, 2000))
    ours = ExtentFileSource(size, runs, "ours")
    ref = MappedSource(size, runs, "ref")
    for _ in range(5):
        off = data.draw(st.integers(0, size))
        length = data.draw(st.integers(0, size - off))
        assert ours.pread(off, length) == ref.pread(off, length)


def test_fragmented_file_reads_identically_in_any_chunking() -> None:
    fs = xs.open_xfs("v5-mounted")
    src = fs.lookup("/frag").open()
    assert isinstance(src, ExtentFileSource)
    ref = MappedSource(src.size, src.runs, "ref")
    whole = b"".join(iter_chunks(ref))
    for chunk in (1 << 20, 65536, 4096, 1000, 3 * 1024 + 7):
        assert b"".join(iter_chunks(src, chunk=chunk)) == whole
