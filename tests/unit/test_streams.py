"""The ByteSource family: exact reads, bounds, windows, mappings, holes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtkit._binstruct import Record
from virtkit._streams import (
    BytesSource,
    FileSource,
    MappedSource,
    RangeSource,
    Run,
    SourceReader,
    iter_chunks,
    read_all,
)
from virtkit.errors import CorruptStructure, LimitExceeded

DATA = bytes(range(256)) * 16  # 4 KiB


def test_bytes_source_reads_exactly() -> None:
    src = BytesSource(DATA, "d")
    assert src.pread(10, 5) == DATA[10:15]
    assert src.pread(0, 0) == b""


@pytest.mark.parametrize(("offset", "length"), [(-1, 1), (0, 4097), (4096, 1), (4000, 200)])
def test_reads_outside_the_source_are_corrupt_structure(offset: int, length: int) -> None:
    src = BytesSource(DATA, "disk0")
    with pytest.raises(CorruptStructure, match="disk0"):
        src.pread(offset, length)


def test_file_source_uses_pread(tmp_path) -> None:
    p = tmp_path / "img"
    p.write_bytes(DATA)
    fd = os.open(p, os.O_RDONLY)
    try:
        src = FileSource(fd, "img")
        assert src.size == len(DATA)
        assert src.pread(100, 300) == DATA[100:400]
        with pytest.raises(CorruptStructure):
            src.pread(4090, 10)
    finally:
        os.close(fd)


def test_range_source_window_and_nesting() -> None:
    base = BytesSource(DATA, "d")
    part = RangeSource(base, 1024, 2048, "d1")
    inner = RangeSource(part, 512, 512, "d1a")
    assert part.pread(0, 4) == DATA[1024:1028]
    assert inner.pread(0, 4) == DATA[1536:1540]
    assert inner.parent is base  # windows collapse
    with pytest.raises(CorruptStructure):
        part.pread(2040, 16)


def test_range_source_outside_parent_is_refused() -> None:
    with pytest.raises(CorruptStructure, match="outside"):
        RangeSource(BytesSource(DATA, "d"), 4000, 200, "bad")


def test_mapped_source_with_holes() -> None:
    a = BytesSource(b"A" * 100, "a")
    b = BytesSource(b"B" * 100, "b")
    m = MappedSource(300, [Run(200, 50, b, 10), Run(0, 100, a, 0)], "m")
    got = m.pread(0, 300)
    assert got == b"A" * 100 + b"\0" * 100 + b"B" * 50 + b"\0" * 50
    assert m.pread(95, 10) == b"A" * 5 + b"\0" * 5


@pytest.mark.parametrize(
    "runs",
    [
        [Run(0, 100, None), Run(50, 10, None)],  # overlap
        [Run(250, 100, None)],  # past size
    ],
)
def test_mapped_source_rejects_bad_runs(runs: list[Run]) -> None:
    with pytest.raises(CorruptStructure):
        MappedSource(300, runs, "m")


def test_mapped_source_rejects_run_outside_its_source() -> None:
    with pytest.raises(CorruptStructure, match="outside"):
        MappedSource(300, [Run(0, 100, BytesSource(b"x" * 50, "s"), 0)], "m")


def test_mapped_source_run_limit() -> None:
    with pytest.raises(LimitExceeded, match="max_extents"):
        MappedSource(10, [Run(i, 1, None) for i in range(10)], "m", max_runs=5)


def test_read_all_and_chunks() -> None:
    src = BytesSource(DATA, "d")
    assert b"".join(iter_chunks(src, chunk=1000)) == DATA
    with pytest.raises(LimitExceeded, match="max_read"):
        read_all(src, limit=100)


def test_source_reader_is_a_file() -> None:
    r = SourceReader(BytesSource(DATA, "d"))
    assert r.read(3) == DATA[:3]
    r.seek(-2, 2)
    assert r.read() == DATA[-2:]


def test_record_truncation_is_corrupt_structure() -> None:
    rec = Record("test header", "<", [("magic", "I"), ("count", "Q")])
    assert rec.parse(b"\1\0\0\0" + b"\2" + b"\0" * 7).count == 2
    with pytest.raises(CorruptStructure, match=r"test header on disk0.*truncated"):
        rec.parse(b"\0" * 5, where="disk0")


@given(st.binary(max_size=64), st.integers(-10, 80), st.integers(-10, 80))
def test_any_read_is_data_or_corrupt_structure(data: bytes, off: int, n: int) -> None:
    src = BytesSource(data, "h")
    try:
        got = src.pread(off, n)
    except CorruptStructure:
        assert off < 0 or n < 0 or off + n > len(data)
    else:
        assert got == data[off : off + n]


@given(
    st.lists(st.tuples(st.integers(0, 8), st.integers(1, 24), st.booleans(), st.integers(0, 200)), max_size=12),
    st.data(),
)
def test_mapped_source_matches_a_model(layout: list[tuple[int, int, bool, int]], data: st.DataObject) -> None:
    # Any reads (inside one run: the fast path; across runs and holes: the joined path)
    # equal a plain bytearray model of the mapping.
    backing = BytesSource(bytes((i * 7 + 3) % 256 for i in range(256)), "b")
    runs, pos = [], 0
    model = bytearray()
    for gap, length, hole, src_off in layout:
        pos += gap
        model += bytes(gap)
        src_off = min(src_off, backing.size - length)
        runs.append(Run(pos, length, None if hole else backing, src_off))
        model += bytes(length) if hole else backing.data[src_off : src_off + length]
        pos += length
    size = pos + data.draw(st.integers(0, 8))
    model += bytes(size - len(model))
    src = MappedSource(size, runs, "m")
    offset = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - offset))
    assert src.pread(offset, length) == bytes(model[offset : offset + length])
