"""Property tests: any bytes as a disk, any text as LVM metadata -> a result or a VirtkitError.

Inputs are arbitrary bytes, and valid disks (sfdisk/sgdisk seeds, builder-made
MBR chains, GPTs, LVM PVs and MD members) with random bytes patched into the
places their metadata lives.  Whatever comes out, every volume must be
readable within its bounds.  Examples are bounded so the suite stays quick;
longer campaigns run through fuzz/ (targets disk-raw, disk-sample, lvm-metadata).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders.gpt import LINUX_FS, LINUX_LVM, GptDisk, GptPart
from builders.lvm import PV_UUID, LvSpec, PvImage, PvSpec, Seg, vg_text
from builders.mbr import chain_disk
from builders.md import md_member
from builders.storage import discover
from virtkit.boot.volume.lvm.metadata import parse_metadata
from virtkit.errors import VirtkitError
from virtkit.limits import Limits

DATA = Path(__file__).resolve().parents[2] / "data" / "volume"
LIMITS = Limits(max_partitions=64, max_volumes=128, max_lvm_metadata_bytes=1 << 20, max_lvm_tokens=50_000)
EXAMPLES = int(os.environ.get("VIRTKIT_HYPOTHESIS_EXAMPLES", "150"))  # raise it for a longer local run
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MiB = 1 << 20


def _pv_disk() -> bytes:
    text = vg_text(
        "vg",
        pvs=[PvSpec("pv0", PV_UUID, pe_count=2)],
        lvs=[LvSpec("a", [Seg(0, 1, [("pv0", 0)])]), LvSpec("b", [Seg(0, 1, [("pv0", 1)])])],
        extent_size=2048,
    )
    pv = PvImage(size=4 * MiB, pv_uuid=PV_UUID, text=text.encode(), mda_size=64 * 1024, data_offset=MiB).build()
    gpt = GptDisk(sectors=12 * 1024).add(GptPart(LINUX_LVM, 2048, 2048 + 8192 - 1))
    raw = bytearray(gpt.build())
    raw[MiB : MiB + len(pv)] = pv
    return bytes(raw)


SEEDS = {
    "mbr-tiny": ((DATA / "mbr-tiny.bin").read_bytes(), [(0, 512), (16 * 512, 512), (29 * 512, 512), (41 * 512, 512)]),
    "gpt-tiny": (
        (DATA / "gpt-tiny.bin").read_bytes(),
        [(0, 34 * 512), (len((DATA / "gpt-tiny.bin").read_bytes()) - 33 * 512, 33 * 512)],
    ),
    "ebr-chain": (
        chain_disk([(3000 + 20 * i, 10, 0x83) for i in range(6)], sectors=4096),
        [(0, 512), (2048 * 512, 512), (3019 * 512, 512)],
    ),
    "gpt": (
        GptDisk(sectors=4096).add(GptPart(LINUX_FS, 2048, 3000, name="x")).build(),
        [(0, 3 * 512), (4063 * 512, 33 * 512)],
    ),
    "lvm": (_pv_disk(), [(0, 2 * 512), (MiB, 2048), (MiB + 4096, 4096)]),
    "md": (bytes(md_member(2 * MiB, version="1.2", name="h:r")), [(4096, 512)]),
    "md0.90": (bytes(md_member(2 * MiB, version="0.90")), [(2 * MiB - 65536, 4096)]),
}


def check(raw: bytes) -> None:
    try:
        storage = discover(raw, limits=LIMITS)
    except VirtkitError:
        return
    for v in storage.volumes:
        assert v.size >= 0
        v.source.pread(0, min(v.size, 4096))
        if v.size:
            v.source.pread(v.size - 1, 1)


@SETTINGS
@given(st.binary(max_size=8192))
def test_arbitrary_bytes_as_a_disk(raw):
    check(raw)


@SETTINGS
@given(st.binary(min_size=512, max_size=1024), st.integers(min_value=0, max_value=64 * 1024))
def test_arbitrary_boot_sector_on_a_larger_disk(sector, pad):
    check(sector + bytes(pad))


@st.composite
def patched_seed(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    raw, regions = SEEDS[name]
    buf = bytearray(raw)
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        start, length = draw(st.sampled_from(regions))
        off = start + draw(st.integers(min_value=0, max_value=length - 1))
        patch = draw(st.binary(min_size=1, max_size=16))
        buf[off : off + len(patch)] = patch[: max(0, len(buf) - off)]
    return bytes(buf[: len(raw)])


@SETTINGS
@given(patched_seed())
def test_mutated_valid_disks(raw):
    check(raw)


REAL_TEXT = (DATA / "vg-sys.lvmtext").read_text()


def _parse(text: str) -> None:
    try:
        parse_metadata(text, limits=LIMITS)
    except VirtkitError:
        pass


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('{}[]=,"#\\ \n\tabc019-_.x')), max_size=400))
def test_arbitrary_metadata_text(text):
    _parse(text)


@SETTINGS
@given(st.integers(min_value=0, max_value=len(REAL_TEXT)), st.integers(min_value=0, max_value=40), st.text(max_size=20))
def test_mutated_real_metadata(at, cut, insert):
    _parse(REAL_TEXT[:at] + insert + REAL_TEXT[at + cut :])
