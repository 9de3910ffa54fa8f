"""Every fuzz target of fuzz/targets.py under hypothesis, in the normal test run.

The invariant (STYLE.md idea 4, issue 6): for any input a parser returns a
result or raises a ``VirtkitError`` - never another exception, never a hang.
Inputs are seeded from the fixtures: patch programs over the fixture images'
metadata sectors, and byte-level mutations of the seed texts and binaries.
The long campaigns run the same targets under atheris (fuzz/campaign.py).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))

import targets  # noqa: E402

from virtkit._streams import BytesSource  # noqa: E402
from virtkit.errors import CorruptStructure, VirtkitError  # noqa: E402

NAMES = sorted(targets.TARGETS)
PATCH = [n for n in NAMES if targets.TARGETS[n].kind == "patch"]
OTHER = [n for n in NAMES if targets.TARGETS[n].kind != "patch"]

# Values that break parsers most often: all-ones, zero, sign bits, small counts.
INTERESTING = [b"\xff", b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x80", b"\x7f\xff\xff\xff", b"\x01\0\0\0", b"\x02", b"\0" * 16]


@st.composite
def patch_programs(draw: st.DrawFn) -> bytes:
    """A patch program: up to 6 patches (interesting values or random bytes), maybe a truncation."""
    patches = draw(st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=24))),
        min_size=1, max_size=6,
    ))
    cut = draw(st.one_of(st.none(), st.integers(0, 4095)))
    return targets.encode_patches(patches, cut)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with up to 8 byte-level edits (overwrite, insert, delete, duplicate a slice), or arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["set", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, len(data)))
        if op == "set" and data:
            chunk = draw(st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=8),
                                   st.sampled_from([b"{", b"}", b"\n", b"'", b'"', b"\\", b"$", b";", b"=", b"#", b"\0"])))
            data[min(pos, len(data) - 1) : min(pos, len(data) - 1) + len(chunk)] = chunk
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "dup" and data:
            n = draw(st.integers(1, 64))
            data[pos:pos] = data[max(0, pos - n) : pos]
    return bytes(data)


@pytest.fixture(scope="module", params=NAMES)
def seeded(request: pytest.FixtureRequest) -> tuple[str, list[bytes]]:
    name = request.param
    return name, targets.TARGETS[name].seeds()


@pytest.mark.parametrize("name", NAMES)
def test_first_seed_is_a_clean_run(name: str) -> None:
    """The unmutated seed parses without any error: the target does real work, not an early refusal."""
    seed = targets.TARGETS[name].seeds()[0]
    targets.run_target_strict(name, seed)


def test_every_parser_has_a_target() -> None:
    """Issue 6's list: one harness per parser that meets guest data."""
    assert set(NAMES) >= {
        "qcow2", "qcow2-header", "disk-raw", "disk-gpt", "disk-mbr", "lvm-metadata", "lvm-label", "md",
        "ext4", "xfs-v4", "xfs-v5", "btrfs", "btrfs-lzo", "lzo", "fat", "iso9660", "grubenv", "grub2-syntax",
        "grub2", "grub-legacy", "extlinux", "lilo", "sdboot", "bls", "worker-frames", "menu-codec",
    }


@pytest.mark.parametrize("name", PATCH)
def test_metadata_map_covers_metadata(name: str) -> None:
    """Patch programs address the metadata sectors, not the file data of the /boot tree."""
    seeds = targets.TARGETS[name].seeds()
    assert len(seeds) >= 4
    base = next(b for b in _bases() if b[0] == name)[1]
    for disk, m in zip(base.disks, base.maps, strict=True):
        assert 2 <= len(m) < disk.size // targets.SECTOR
        assert all(disk.pread(s * 512, 512) != bytes(512) for s in m.sectors[:64])


def _bases() -> list[tuple[str, targets.Base]]:
    out = []
    for name, fx in {**targets._FS, **targets._DISKS}.items():
        out.append((name, targets.base_image(*fx)))
    out.append(("guest-sample", targets.base_image("sample")))
    out.append(("qcow2", targets.base_image("image/zlib.qcow2.gz")))
    out.append(("qcow2-subclusters", targets.base_image("image/subclusters.qcow2.gz")))
    return out


@pytest.mark.parametrize(
    ("patches", "cut", "offset", "length", "expected"),
    [
        ([], None, 0, 4, b"abcd"),
        ([(1, b"XY")], None, 0, 4, b"aXYd"),
        ([(3, b"XYZ")], None, 2, 4, b"cXYZ"),  # the patch runs past the read: clipped
        ([(0, b"1"), (0, b"2")], None, 0, 2, b"2b"),  # later patches win
        ([(100, b"X")], None, 0, 4, b"abcd"),  # outside the image: dropped
        ([], 2048, 0, 4, b"abcd"),
    ],
)
def test_patched_source(patches: list[tuple[int, bytes]], cut: int | None, offset: int, length: int, expected: bytes) -> None:
    base = BytesSource(b"abcdefgh", "base")
    size = None if cut is None else base.size * cut // 4096
    assert targets.PatchedSource(base, patches, size).pread(offset, length) == expected


def test_patched_source_truncation_is_an_end_of_image() -> None:
    src = targets.PatchedSource(BytesSource(b"abcdefgh", "base"), [], 4)
    assert src.size == 4
    with pytest.raises(CorruptStructure, match="read past the end"):
        src.pread(2, 4)


@pytest.mark.parametrize(
    ("program", "patches", "cut"),
    [
        (b"", [], None),
        (struct.pack("<IB", 7, 2) + b"ab", [(7, b"ab")], None),
        (struct.pack("<IB", 0xFF000123, 0), [], 0x123),
        (struct.pack("<IB", 5, 3) + b"a", [(5, b"a")], None),  # a short last chunk is kept as it is
    ],
)
def test_decode_program(program: bytes, patches: list[tuple[int, bytes]], cut: int | None) -> None:
    assert targets.decode_program(program) == (patches, cut)


@pytest.mark.parametrize("name", PATCH)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(program=patch_programs())
def test_patch_target_invariant(name: str, program: bytes) -> None:
    """Mutated metadata: a result or a VirtkitError (run_target re-raises anything else)."""
    targets.run_target(name, program)


@pytest.mark.parametrize("name", OTHER)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(data=st.data())
def test_input_target_invariant(name: str, data: st.DataObject) -> None:
    """Mutated seed texts/binaries and arbitrary bytes: a result or a VirtkitError."""
    seeds = _seeds(name)
    targets.run_target(name, data.draw(mutated(seeds)))


_SEEDS: dict[str, list[bytes]] = {}


def _seeds(name: str) -> list[bytes]:
    if name not in _SEEDS:
        _SEEDS[name] = [s[:16384] for s in targets.TARGETS[name].seeds()]
    return _SEEDS[name]


def test_run_target_lets_other_exceptions_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself can fail: a non-VirtkitError escapes run_target."""

    def boom(data: bytes) -> None:
        raise IndexError("a parser bug")

    monkeypatch.setitem(targets.TARGETS, "boom", targets.Target("boom", boom, lambda: [b""]))
    with pytest.raises(IndexError):
        targets.run_target("boom", b"")
    monkeypatch.setitem(targets.TARGETS, "boom", targets.Target("boom", lambda d: (_ for _ in ()).throw(CorruptStructure("x", "y")), lambda: [b""]))
    targets.run_target("boom", b"")
    assert issubclass(CorruptStructure, VirtkitError)
