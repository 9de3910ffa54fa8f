"""The mutation robustness suite (issue 6): damaged real images through the real virtkit-pygrub.

Each realistic image - the bundled sample guest, the filesystem and volume
fixtures (each holds the shared /boot tree or a boot configuration), and the
guest zoo when one has been built - gets seeded mutations
of its metadata (tests/robustness/mutations.py).  Every run goes through
tests/libxl_harness.py exactly as libxl calls the bootloader, as root, so the
deprivileged worker is on.  A run passes when it ends in time with a valid
result or a one-line error and a non-zero exit, no traceback, nothing left in
the output directory, and the image unchanged (sha256).  The zoo images are
used when ``$VIRTKIT_ZOO`` (default /var/tmp/virtkit-zoo) holds a built zoo.

This is the bounded CI portion (a few hundred runs); tools/mutate-images runs
the long version and prints the counts recorded in docs/security.md.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
from pathlib import Path

import mutations
import pytest

from helpers import fixture_path

ROOT = Path(__file__).resolve().parents[2]

FIXTURES = [
    "ext4/ext4-default.img.gz", "ext4/ext4-1k.img.gz", "xfs/xfs-v5-4k.img.gz", "xfs/xfs-v4-ftype1-ci.img.gz",
    "btrfs/rootdir.img.gz", "btrfs/compress-lzo.img.gz", "fat/fat16.img.gz", "fat/fat32.img.gz",
    "iso9660/rr-joliet.iso.gz", "volume/lvm.img.gz", "volume/gpt.img.gz", "volume/mbr-logical.img.gz",
    "config/legacy-esp.img.gz",
]
SAMPLE = ROOT / "src" / "virtkit" / "data" / "sample-guest.img.gz"
PER_FIXTURE = 12  # runs per fixture image in CI
PER_SAMPLE = 24
PER_ZOO = 3
BATCH = 6

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs virtkit-pygrub as root, as libxl does (the worker sandbox needs root)")


def _zoo_images() -> list[Path]:
    zoo = Path(os.environ.get("VIRTKIT_ZOO") or "/var/tmp/virtkit-zoo")  # tests/images/build's default
    if not zoo.is_dir():
        return []
    return sorted(p for p in zoo.glob("*.img") if "2disk" not in p.name)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture image unpacked once (read only: each run mutates a private copy)."""
    out = {name: fixture_path(name) for name in FIXTURES}
    dst = tmp_path_factory.mktemp("pristine") / "sample-guest.img"
    with gzip.open(SAMPLE, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    os.chmod(dst, stat.S_IRUSR)
    out["sample"] = dst
    return out


def _check(outcomes: list[mutations.Outcome]) -> None:
    bad = [f"{o.image} seed {o.mutation.kind} ({o.mutation.what}): {o.failure}" for o in outcomes if o.failure]
    assert not bad, "\n".join(bad)


CASES = [(name, start) for name in FIXTURES for start in range(0, PER_FIXTURE, BATCH)]
CASES += [("sample", start) for start in range(0, PER_SAMPLE, BATCH)]


@pytest.mark.parametrize(("name", "start"), CASES)
def test_mutated_fixture(name: str, start: int, unpacked: dict[str, Path], tmp_path: Path) -> None:
    outcomes = list(mutations.run_image(unpacked[name], range(start, start + BATCH), tmp=tmp_path))
    assert len(outcomes) == BATCH
    _check(outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("image", _zoo_images(), ids=lambda p: p.name)
def test_mutated_zoo_image(image: Path, tmp_path: Path) -> None:
    _check(list(mutations.run_image(image, range(PER_ZOO), tmp=tmp_path)))


def test_every_mutation_kind_is_planned(unpacked: dict[str, Path]) -> None:
    """Across the fixtures every kind occurs, and each is deterministic for its seed."""
    kinds = set()
    for name in ("volume/mbr-logical.img.gz", "fat/fat16.img.gz", "ext4/ext4-default.img.gz"):
        m = mutations.ImageMutator(unpacked[name])
        for seed in range(60):
            a, b = m.mutation(seed), m.mutation(seed)
            assert a == b
            kinds.add(a.kind)
            if a.truncate is None:
                assert a.patches and all(0 <= off < m.size for off, _ in a.patches)
    assert kinds == set(mutations.KINDS)


def test_ebr_and_fat_layouts_are_found(unpacked: dict[str, Path]) -> None:
    mbr = mutations.ImageMutator(unpacked["volume/mbr-logical.img.gz"])
    assert len(mbr.ebrs) >= 2
    fat = mutations.ImageMutator(unpacked["fat/fat16.img.gz"])
    assert fat.fat is not None and fat.fat[1] == 16
    assert mutations.ImageMutator(unpacked["ext4/ext4-default.img.gz"]).fat is None


def _fake_cli(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "fake-bootloader"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return [str(script)]


OUTDIR = 'for a in "$@"; do case "$a" in --output-directory=*) d="${a#*=}";; --output=*) o="${a#*=}";; esac; done\n'


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        ("echo 'Traceback (most recent call last):' >&2\nexit 1\n", "a traceback"),
        ("echo one >&2\necho two >&2\nexit 2\n", "2 lines on stderr"),
        (OUTDIR + 'touch "$d/boot_kernel.x"\necho err >&2\nexit 1\n', "left in the output directory"),
        ("exit 0\n", "exit 0 without a kernel"),
        (OUTDIR + 'echo k > /tmp/vk-outside-kernel\nprintf "kernel /tmp/vk-outside-kernel\\0" > "$o"\nexit 0\n',
         "outside the output directory"),
        ('for a in "$@"; do i="$a"; done\nprintf x >> "$i"\necho err >&2\nexit 1\n', "the image changed"),
        ("kill -9 $$\n", "killed by signal 9"),
        ("sleep 30\n", "a hang"),
    ],
)
def test_the_judge_catches_each_failure_class(body: str, failure: str, tmp_path: Path) -> None:
    """The checks themselves can fail: each failure class of a bootloader is reported."""
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(4096))
    m = mutations.Mutation("bitflip", "none")
    out = mutations.check_run(image, m, cli=_fake_cli(tmp_path, body), timeout=3)
    assert out.failure is not None and failure in out.failure, out.failure


def test_regression_error_in_the_middle_of_the_kernel_stream(unpacked: dict[str, Path], tmp_path: Path) -> None:
    """Found by this suite: a truncated btrfs fails while the kernel streams; the parent waited for
    the initrd stream the worker never sends until the worker timeout, then crashed in close()
    (ChildProcessError, a traceback).  Now: one line naming the chunk, no wait."""
    m = mutations.Mutation("truncate", "rootdir cut inside the kernel's chunk", truncate=0x2C2A5B5)
    ws = mutations.Workspace(unpacked["btrfs/rootdir.img.gz"], tmp_path)
    image, _ = ws.apply(m)
    out = mutations.check_run(image, m)
    assert out.failure is None, out.failure
    assert out.status == 3 and "physical range 0x6700000+0x100000 is beyond the device size 0x2c2a5b5" in out.message


def test_regression_config_error_from_the_worker(tmp_path: Path) -> None:
    """Found by this suite: a ConfigError rebuilt from the worker's reply had no ``location``, so
    reporting it raised AttributeError (a traceback, exit 70).  Now exit 5 and one line."""
    image = tmp_path / "zero.img"
    image.write_bytes(bytes(1 << 20))
    out = mutations.check_run(image, mutations.Mutation("zero", "whole disk"))
    assert out.failure is None, out.failure
    assert out.status == 5
    assert out.message == "virtkit-pygrub: error: the guest has no readable filesystem, so no boot-loader configuration"
