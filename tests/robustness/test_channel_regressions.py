"""Regressions found by the mutation robustness suite, pinned at the worker-channel level.

1. An error in the middle of the first of two data streams (a truncated btrfs
   failing while the kernel streamed): the worker stops the reply there, but
   the parent's ``close()`` waited for the second stream until the worker
   timeout, killed the worker, then called ``waitpid`` on the reaped pid
   (ChildProcessError: a traceback instead of the error line).
2. A ``ConfigError`` rebuilt from the worker's reply had no ``location``
   attribute, so ``report_error`` raised AttributeError (a traceback, exit 70).
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from helpers import is_root
from virtkit.boot.worker import default_isolation, spawn_worker
from virtkit.boot.worker.channel import rebuild_error
from virtkit.cli.main import report_error
from virtkit.errors import ConfigError, FileNotFound, ImageError
from virtkit.limits import Limits


def two_streams_first_fails(_req: dict[str, Any]) -> tuple[dict[str, Any], list]:
    def kernel():
        yield b"partial kernel"
        raise ImageError("btrfs chunk beyond the device")

    return {}, [kernel(), [b"the initrd that is never sent"]]


def test_error_in_the_first_of_two_streams_then_close() -> None:
    ch = spawn_worker(lambda: {"extract": two_streams_first_fails}, keep_fds=[],
                      limits=Limits(worker_timeout=60), isolation=default_isolation() if is_root() else None)
    reply = ch.call({"op": "extract"})
    with pytest.raises(ImageError, match="beyond the device"):
        b"".join(reply.streams[0])
    ch.close()  # was: blocked until the 60 s budget, then ChildProcessError
    assert ch._status == 0  # type: ignore[attr-defined]  # the worker said bye and exited cleanly


@pytest.mark.parametrize(
    ("cls", "status"),
    [("ConfigError", 5), ("ConfigSyntaxError", 5), ("ConfigRuntimeError", 5), ("FileNotFound", 4)],
)
def test_rebuilt_errors_report_as_one_line(cls: str, status: int) -> None:
    err = rebuild_error({"class": cls, "message": "the guest has no readable filesystem", "exit_status": status, "detail": ""})
    assert isinstance(err, ConfigError | FileNotFound)
    out = io.StringIO()
    assert report_error(err, prog="virtkit-pygrub", debug=False, stream=out) == status
    assert out.getvalue() == "virtkit-pygrub: error: the guest has no readable filesystem\n"
