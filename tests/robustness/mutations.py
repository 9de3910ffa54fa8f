"""Seeded mutations of real guest images, run through the real ``virtkit-pygrub`` as libxl runs it.

Used by tests/robustness/test_mutations.py (a bounded run in CI) and by
tools/mutate-images (long runs).  For every mutation of an image:

* the image is mutated in a private working copy (the pristine image is never
  touched); its sha256 is taken before and after the run;
* ``virtkit-pygrub`` runs exactly as libxl calls it (tests/libxl_harness.py),
  as root, so the deprivileged worker sandbox is on;
* the run must end within the time limit with either a valid result (exit 0,
  a kernel record naming a file in the output directory, the kernel non-empty)
  or a one-line error and a non-zero exit; never a traceback, never a signal;
  nothing may be left in the output directory; the image must be unchanged.

Mutation kinds (all positions drawn from the image's metadata sectors, see
fuzz/patching.py ``MetadataMap``): ``bitflip`` (1-8 bits), ``bytes`` (an
interesting value written over a field), ``zero`` (a zeroed 4 KiB block),
``swap`` (two metadata sectors exchanged), ``truncate`` (the image cut short),
``self-pointer`` (a block-number field made to point at its own block: a
cycle in whatever chain it belongs to - extent indexes, btree pointers, FAT
chains, directory blocks), ``ebr-loop`` (an EBR link pointing back at the
first EBR) and ``fat-loop`` (a FAT entry pointing at its own cluster).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT / "fuzz", ROOT / "tests", ROOT / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from patching import SECTOR, MetadataMap  # noqa: E402

from libxl_harness import run_like_libxl  # noqa: E402
from virtkit._streams import FileSource  # noqa: E402

KINDS = ("bitflip", "bytes", "zero", "swap", "truncate", "self-pointer", "ebr-loop", "fat-loop")
WEIGHTS = (5, 4, 3, 2, 1, 4, 1, 1)
INTERESTING = [b"\xff\xff\xff\xff", b"\0\0\0\0", b"\xff\xff\xff\x7f", b"\x01\0\0\0", b"\0\0\0\x80",
               b"\xff" * 8, b"\xff\xff", b"\0\0", b"\x10\0\0\0"]
WORKER_TIMEOUT = 30  # --limit=worker_timeout: the CLI's own wall clock for the worker
RUN_TIMEOUT = 90  # the harness's: a run longer than this is a hang
# The installed console script (pip install -e .), as libxl would exec it.
CLI = [shutil.which("virtkit-pygrub") or "virtkit-pygrub"]


@dataclass
class Mutation:
    """One seeded mutation: byte patches, or a truncation."""

    kind: str
    what: str
    patches: list[tuple[int, bytes]] = field(default_factory=list)
    truncate: int | None = None


@dataclass
class Outcome:
    """What one run did; ``failure`` is None when the run met every rule."""

    image: str
    mutation: Mutation
    status: int
    seconds: float
    message: str
    failure: str | None = None

    @property
    def verdict(self) -> str:
        if self.failure:
            return "FAILED"
        return "booted" if self.status == 0 else "refused"


class ImageMutator:
    """Seeded mutations of one image.

    Args:
        path: the pristine image (read only).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY)
        try:
            self.meta = MetadataMap(FileSource(fd, str(path)))
            self.head = os.pread(fd, 64 << 10, 0)
        finally:
            os.close(fd)
        self.ebrs = _ebr_chain(path, self.head)
        self.fat = _fat_layout(path, self.head)

    def mutation(self, seed: int) -> Mutation:
        """The mutation numbered ``seed`` (deterministic)."""
        rng = random.Random(f"{self.path.name}:{seed}")
        kind = rng.choices(KINDS, WEIGHTS)[0]
        if kind == "ebr-loop" and not self.ebrs:
            kind = "self-pointer"
        if kind == "fat-loop" and self.fat is None:
            kind = "bitflip"
        return getattr(self, "_" + kind.replace("-", "_"))(rng)

    def _sector(self, rng: random.Random) -> int:
        """A metadata sector; half the time one of the first 256 (tables, labels, superblocks)."""
        n = len(self.meta.sectors)
        i = rng.randrange(min(n, 256)) if rng.random() < 0.5 else rng.randrange(n)
        return self.meta.sectors[i] * SECTOR

    def _read(self, offset: int, n: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def _bitflip(self, rng: random.Random) -> Mutation:
        base = self._sector(rng)
        sec = bytearray(self._read(base, SECTOR))
        bits = [rng.randrange(SECTOR * 8) for _ in range(rng.randint(1, 8))]
        for b in bits:
            sec[b // 8] ^= 1 << (b % 8)
        return Mutation("bitflip", f"{len(bits)} bits in sector at {base:#x}", [(base, bytes(sec))])

    def _bytes(self, rng: random.Random) -> Mutation:
        base = self._sector(rng)
        value = rng.choice(INTERESTING)
        at = base + rng.randrange(0, SECTOR - len(value) + 1, 2)
        return Mutation("bytes", f"{value.hex()} at {at:#x}", [(at, value)])

    def _zero(self, rng: random.Random) -> Mutation:
        block = self._sector(rng) & ~4095
        n = min(4096, self.size - block)
        return Mutation("zero", f"4 KiB block at {block:#x} zeroed", [(block, bytes(n))])

    def _swap(self, rng: random.Random) -> Mutation:
        a, b = self._sector(rng), self._sector(rng)
        da, db = self._read(a, SECTOR), self._read(b, SECTOR)
        return Mutation("swap", f"sectors at {a:#x} and {b:#x} swapped", [(a, db), (b, da)])

    def _truncate(self, rng: random.Random) -> Mutation:
        cut = rng.choice([self._sector(rng), self._sector(rng) + rng.randrange(1, SECTOR), rng.randrange(self.size)])
        return Mutation("truncate", f"cut to {cut:#x} of {self.size:#x} bytes", truncate=cut)

    def _self_pointer(self, rng: random.Random) -> Mutation:
        """Find a little-endian field that points at a metadata block; make it point at its own block."""
        for _ in range(40):
            base = self._sector(rng)
            sec = self._read(base, SECTOR)
            unit = rng.choice([512, 1024, 2048, 4096, 1])
            width = rng.choice([4, 8])
            fmt = "<I" if width == 4 else "<Q"
            for pos in rng.sample(range(0, SECTOR - width + 1, 4), (SECTOR - width) // 4):
                (v,) = struct.unpack_from(fmt, sec, pos)
                if v >= 16 and v * unit < self.size and self.meta.virtual(v * unit) is not None:
                    own = base // unit if unit > 1 else base
                    if own >= 1 << (8 * width) or own == v:
                        continue
                    return Mutation("self-pointer", f"u{width * 8} at {base + pos:#x} ({v:#x} x {unit}) -> own block {own:#x}",
                                    [(base + pos, struct.pack(fmt, own))])
        return self._bitflip(rng)

    def _ebr_loop(self, rng: random.Random) -> Mutation:
        """An EBR's link entry pointed back at the first EBR (a cycle in the logical-partition chain)."""
        ebr = rng.choice(self.ebrs[1:] or self.ebrs)
        first = self.ebrs[0]
        ext_start = first // SECTOR
        entry = ebr + 446 + 16  # the second entry: the link
        old = self._read(entry, 16)
        rel = 0  # relative to the extended partition: the first EBR itself
        new = old[:4] + bytes([0x05]) + old[5:8] + struct.pack("<II", rel, max(1, struct.unpack_from("<I", old, 12)[0]))
        return Mutation("ebr-loop", f"EBR at {ebr:#x} links back to {ext_start * SECTOR:#x}", [(entry, new)])

    def _fat_loop(self, rng: random.Random) -> Mutation:
        assert self.fat is not None
        fat_off, bits, clusters = self.fat
        c = rng.randrange(2, min(clusters, 4096))
        if bits == 32:
            return Mutation("fat-loop", f"FAT32 entry {c} -> itself", [(fat_off + 4 * c, struct.pack("<I", c))])
        if bits == 16:
            return Mutation("fat-loop", f"FAT16 entry {c} -> itself", [(fat_off + 2 * c, struct.pack("<H", c))])
        at = fat_off + c * 3 // 2
        (word,) = struct.unpack("<H", self._read(at, 2))
        word = (word & 0x000F) | (c << 4) if c & 1 else (word & 0xF000) | c
        return Mutation("fat-loop", f"FAT12 entry {c} -> itself", [(at, struct.pack("<H", word & 0xFFFF))])


def _ebr_chain(path: Path, head: bytes) -> list[int]:
    """Byte offsets of the EBRs of an MBR disk's logical-partition chain (at most 64)."""
    if len(head) < 512 or head[510:512] != b"\x55\xaa":
        return []
    for i in range(4):
        e = head[446 + 16 * i : 462 + 16 * i]
        if e[4] in (0x05, 0x0F, 0x85):
            ext = struct.unpack_from("<I", e, 8)[0]
            out: list[int] = []
            lba = ext
            with open(path, "rb") as f:
                while len(out) < 64 and lba * SECTOR + SECTOR <= path.stat().st_size and lba * SECTOR not in out:
                    out.append(lba * SECTOR)
                    f.seek(lba * SECTOR)
                    sec = f.read(SECTOR)
                    link = sec[446 + 16 : 462 + 16]
                    if sec[510:512] != b"\x55\xaa" or link[4] == 0:
                        break
                    lba = ext + struct.unpack_from("<I", link, 8)[0]
            return out
    return []


def _fat_layout(path: Path, head: bytes) -> tuple[int, int, int] | None:
    """(first FAT's byte offset, entry bits, cluster count) of a superfloppy FAT image, or None."""
    if len(head) < 512 or head[510:512] != b"\x55\xaa" or head[0] not in (0xEB, 0xE9):
        return None
    bps, spc, reserved, nfats, root_ents, total16, _media, fatsz16 = struct.unpack_from("<HBHBHHBH", head, 11)
    if bps not in (512, 1024, 2048, 4096) or not spc or not nfats:
        return None
    fatsz = fatsz16 or struct.unpack_from("<I", head, 36)[0]
    total = total16 or struct.unpack_from("<I", head, 32)[0]
    root_secs = (root_ents * 32 + bps - 1) // bps
    clusters = (total - reserved - nfats * fatsz - root_secs) // spc
    bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    return reserved * bps, bits, clusters


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Workspace:
    """A private copy of an image that mutations are applied to and undone from."""

    def __init__(self, pristine: Path, tmp: Path) -> None:
        self.pristine = pristine
        self.copy = tmp / pristine.name
        subprocess.run(["cp", "--sparse=always", str(pristine), str(self.copy)], check=True)
        self.cut = tmp / ("cut-" + pristine.name)

    def apply(self, m: Mutation) -> tuple[Path, list[tuple[int, bytes]]]:
        """Write the mutation; returns the file to run on and what undoes it."""
        if m.truncate is not None:
            with open(self.pristine, "rb") as src, open(self.cut, "wb") as dst:
                left = m.truncate
                while left:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    dst.write(chunk)
                    left -= len(chunk)
            return self.cut, []
        undo = []
        with open(self.copy, "r+b") as f:
            for off, data in m.patches:
                f.seek(off)
                undo.append((off, f.read(len(data))))
                f.seek(off)
                f.write(data)
        return self.copy, undo[::-1]

    def undo(self, undo: list[tuple[int, bytes]]) -> None:
        with open(self.copy, "r+b") as f:
            for off, data in undo:
                f.seek(off)
                f.write(data)
        if self.cut.exists():
            self.cut.unlink()


def check_run(image: Path, m: Mutation, *, timeout: float = RUN_TIMEOUT, cli: list[str] | None = None) -> Outcome:
    """Run virtkit-pygrub (or ``cli``) like libxl on ``image`` (already mutated) and judge the run."""
    before = sha256(image)
    start = time.monotonic()
    try:
        res = run_like_libxl(cli or CLI, str(image), bootloader_args=[f"--limit=worker_timeout={WORKER_TIMEOUT}"], timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(image.name, m, -1, time.monotonic() - start, "", f"no result within {timeout} s (a hang)")
    seconds = time.monotonic() - start
    err = res.stderr.strip()
    out = Outcome(image.name, m, res.status, seconds, err.splitlines()[0] if err else "")
    problems = []
    if "Traceback" in res.stderr or "Traceback" in res.stdout:
        problems.append("a traceback")
    if res.status < 0:
        problems.append(f"killed by signal {-res.status}")
    if res.leftovers:
        problems.append(f"left in the output directory: {res.leftovers}")
    if res.status == 0:
        kernel = res.records.get("kernel", "")
        if not kernel or not res.kernel:
            problems.append(f"exit 0 without a kernel: records {res.records}")
        elif res._dir is not None and not kernel.startswith(str(res._dir) + "/"):
            problems.append(f"exit 0 with a kernel outside the output directory: {kernel!r}")
        if res.warnings:
            problems.append(f"exit 0 with garbage records: {res.warnings}")
    elif res.status > 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr, not one: {err[:300]!r}")
    if sha256(image) != before:
        problems.append("the image changed")
    out.failure = "; ".join(problems) or None
    return out


def run_image(pristine: Path, seeds: range, *, tmp: Path | None = None) -> Iterator[Outcome]:
    """Every mutation ``seeds`` of ``pristine``, one run each."""
    own = tmp is None
    work = Path(tempfile.mkdtemp(prefix="vk-mutate-")) if tmp is None else tmp
    try:
        ws = Workspace(pristine, work)
        mutator = ImageMutator(ws.copy)
        for seed in seeds:
            m = mutator.mutation(seed)
            target, undo = ws.apply(m)
            try:
                yield check_run(target, m)
            finally:
                ws.undo(undo)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def summarise(outcomes: list[Outcome]) -> dict[str, object]:
    """Counts for docs/security.md: runs, booted, refused cleanly, failed, slowest."""
    slowest = max(outcomes, key=lambda o: o.seconds, default=None)
    by_kind: dict[str, int] = {}
    for o in outcomes:
        by_kind[o.mutation.kind] = by_kind.get(o.mutation.kind, 0) + 1
    return {
        "runs": len(outcomes),
        "booted": sum(o.verdict == "booted" for o in outcomes),
        "refused": sum(o.verdict == "refused" for o in outcomes),
        "failed": sum(o.verdict == "FAILED" for o in outcomes),
        "slowest_seconds": round(slowest.seconds, 2) if slowest else 0.0,
        "slowest": f"{slowest.image}: {slowest.mutation.kind} {slowest.mutation.what}" if slowest else "",
        "kinds": by_kind,
    }
