"""A worker that sends anything malformed ends the real ``virtkit-pygrub`` with one error line.

Each case runs ``virtkit.cli.pygrub.main`` in a fresh interpreter through
``hostile_worker_pygrub.py``, which swaps the worker's handler table (only in that process,
before the fork) for the real handlers with one step turned hostile: a malformed frame, a
reply that breaks the schema, or death in the middle of a reply.  The worker is forked and
sandboxed as usual, and the run is driven exactly as libxl drives a bootloader
(tests/libxl_harness.py) on the bundled sample guest.

Every case must end with: the expected exit status (never 0, never 70 "internal error"),
exactly one line on stderr naming what the worker did (so a case cannot pass by hitting the
wall-clock budget instead), nothing on stdout, no traceback, nothing left in the
``--output-directory`` and nothing written to the ``--output`` file libxl pre-created.
The ``pass`` case (same wrapper, no hostility) must boot, so the wrapper itself is sound.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

import pytest

from libxl_harness import LibxlResult, run_like_libxl

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src" / "virtkit" / "data" / "sample-guest.img.gz"
WRAPPER = Path(__file__).resolve().parent / "hostile_worker_pygrub.py"
WORKER_TIMEOUT = 20  # a case the parent fails to notice would end in "timed out", which no case expects

PROTO = "worker broke the channel protocol: worker channel: "
CLOSED = "the worker closed the channel unexpectedly: "
# A worker whose reply fails the codec's schema check is a failed worker like every other misbehaviour:
# WorkerError, exit status 8.
SCHEMA = (8,)

# mode -> (exit statuses accepted, the whole stderr line after "virtkit-pygrub: error: ", as a regex)
CASES: dict[str, tuple[tuple[int, ...], str]] = {
    # (a) malformed frames
    "hello-garbage": ((8,), PROTO + re.escape("unknown frame kind b'Z'")),
    "menu-unknown-kind": ((8,), PROTO + re.escape("unknown frame kind b'Z'")),
    "menu-bad-json": ((8,), PROTO + re.escape("invalid JSON (JSONDecodeError)")),
    "menu-json-array": ((8,), PROTO + "JSON frame is not an object"),
    "menu-json-nan": ((8,), PROTO + re.escape("invalid JSON (ValueError)")),
    "menu-oversized-json": ((8,), PROTO + "JSON frame of 4294967295 bytes exceeds 67108864"),
    "menu-data-instead-of-reply": ((8,), "worker sent data where a reply was expected"),
    "menu-stream-count": ((8,), "worker sent an invalid stream count"),
    "extract-unknown-kind-mid-kernel": ((8,), PROTO + re.escape("unknown frame kind b'Z'")),
    "extract-reply-mid-kernel": ((8,), "worker sent a reply in the middle of a data stream"),
    "extract-oversized-chunk": ((8,), PROTO + "data frame of 1048577 bytes exceeds 1048576"),
    # (b) replies that fail the schema
    "menu-schema-items": (SCHEMA, re.escape("worker sent a malformed menu: menu.items: expected a list")),
    "menu-schema-title": (SCHEMA, re.escape("worker sent a malformed menu: menu.items[0].title: expected a string")),
    "menu-schema-missing": (SCHEMA, re.escape("worker sent a malformed menu: menu: expected an object")),
    "menu-schema-used": ((8,), "worker sent an invalid configuration index"),
    "extract-schema-entry": (SCHEMA, r"worker sent a malformed entry: entry\.title: expected a string"),
    "extract-schema-count": ((8,), "worker sent an invalid extraction reply"),
    "extract-one-stream": ((8,), "worker sent an invalid extraction reply"),
    # (c) death in the middle of a reply (the kernel/ramdisk files were being written for extract-*)
    "menu-dies-mid-frame": ((8,), PROTO + "truncated frame at end of stream"),
    "menu-dies-silently": ((8,), CLOSED + "worker exited with status 0"),
    "menu-abort": ((8,), CLOSED + re.escape("worker died from signal 6 (SIGABRT)")),
    "extract-dies-mid-kernel": ((8,), CLOSED + "worker exited with status 0"),
    "extract-dies-mid-chunk": ((8,), PROTO + "truncated frame at end of stream"),
    "extract-dies-mid-ramdisk": ((8,), CLOSED + "worker exited with status 0"),
    "extract-abort-mid-ramdisk": ((8,), CLOSED + re.escape("worker died from signal 6 (SIGABRT)")),
}


@pytest.fixture(scope="module")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile-worker") / "sample-guest.img"
    path.write_bytes(gzip.decompress(SAMPLE.read_bytes()))
    return path


def run(mode: str, image: Path) -> LibxlResult:
    return run_like_libxl([sys.executable, str(WRAPPER), mode], str(image),
                          bootloader_args=[f"--limit=worker_timeout={WORKER_TIMEOUT}"], timeout=120)


def test_the_wrapper_without_hostility_boots(sample_image: Path) -> None:
    res = run("pass", sample_image)
    assert res.status == 0, res.stderr
    assert res.stderr == "" and res.stdout == ""
    assert set(res.records) == {"kernel", "ramdisk", "args"}
    assert res.kernel and res.ramdisk
    assert res.leftovers == []


@pytest.mark.parametrize("mode", sorted(CASES))
def test_hostile_worker_gives_one_error_line(mode: str, sample_image: Path) -> None:
    statuses, line = CASES[mode]
    res = run(mode, sample_image)
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    assert res.status in statuses and res.status not in (0, 70), (res.status, res.stderr)
    assert res.stderr.endswith("\n") and res.stderr.count("\n") == 1, res.stderr
    assert re.fullmatch(f"virtkit-pygrub: error: {line}\n", res.stderr), res.stderr
    assert res.stdout == ""
    assert res.leftovers == []  # no kernel/ramdisk temp file survives
    assert res.output == b""  # the --output file libxl pre-created stays empty
