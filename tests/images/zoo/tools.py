"""Running the real tools the zoo is made with, loop devices, and an isolated LVM.

Every command goes through :func:`run`, which fails loudly with the command line and its
stderr; the environment pins times (``SOURCE_DATE_EPOCH``, ``E2FSPROGS_FAKE_TIME``) and lets
xfsprogs make filesystems under 300 MiB (it does that only when it believes it runs under
fstests: ``TEST_DEV``/``TEST_DIR``/``QA_CHECK_FS``).

LVM runs with its own ``LVM_SYSTEM_DIR`` (no devices file, no udev, no backups or archives
in the host's /etc/lvm) and ``--devices`` naming only our loop devices, so it never sees or
touches the host's volume groups.  The build host may have no device-mapper (``--driverloaded
n``): logical volumes are created inactive (``lvcreate -an -Zn``) and written at the extents
``lvs`` reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from zoo.payload import SOURCE_DATE_EPOCH

__all__ = ["ToolError", "is_root", "loop_device", "lvm", "lvm_env", "mounted", "run", "tool_env", "which"]


class ToolError(RuntimeError):
    """A build command failed."""


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "E2FSPROGS_FAKE_TIME": str(SOURCE_DATE_EPOCH),
        "TZ": "UTC",
        "LC_ALL": "C",
        "TEST_DEV": "virtkit-zoo", "TEST_DIR": "virtkit-zoo", "QA_CHECK_FS": "virtkit-zoo",
        "MTOOLS_SKIP_CHECK": "1",
    })
    if extra:
        env.update(extra)
    return env


def run(argv: Sequence[str | os.PathLike[str]], *, input: bytes | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> str:
    """Run a command; return its stdout (text).

    Raises:
        ToolError: non-zero exit (the message has the command and its stderr).
    """
    args = [str(a) for a in argv]
    proc = subprocess.run(args, input=input, capture_output=True, env=env or tool_env(), cwd=cwd, check=False)
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(args)} exited {proc.returncode}:\n"
                        f"{proc.stderr.decode(errors='replace').strip()}\n{proc.stdout.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode(errors="replace")


def which(name: str) -> bool:
    return shutil.which(name) is not None


def is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def loop_device(image: Path, *, offset: int = 0, size: int | None = None) -> Iterator[str]:
    """Attach ``image`` (or a byte range of it) to a free loop device; always detach."""
    argv = ["losetup", "-f", "--show"]
    if offset:
        argv += ["-o", str(offset)]
    if size is not None:
        argv += ["--sizelimit", str(size)]
    dev = run([*argv, image]).strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


@contextlib.contextmanager
def mounted(image: Path, mountpoint: Path, *, options: str = "") -> Iterator[Path]:
    """Loop-mount a filesystem image (root only); always unmount."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    opts = "loop" + (f",{options}" if options else "")
    run(["mount", "-o", opts, image, mountpoint])
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)


_LVM_CONF = """\
devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmlockd = 0 }
"""


def lvm_env(work: Path) -> dict[str, str]:
    """An environment whose LVM reads only ``work/lvm/lvm.conf`` (see the module docstring)."""
    d = work / "lvm"
    d.mkdir(parents=True, exist_ok=True)
    (d / "lvm.conf").write_text(_LVM_CONF)
    return tool_env({"LVM_SYSTEM_DIR": str(d), "LVM_SUPPRESS_FD_WARNINGS": "1"})


def lvm(args: Sequence[str], *, devices: Sequence[str], env: dict[str, str]) -> str:
    """``lvm ARGS --devices DEV,... --driverloaded n`` (only our loop devices are scanned; no device-mapper)."""
    return run(["lvm", *args, "--devices", ",".join(devices), "--driverloaded", "n"], env=env)


def lvm_json(args: Sequence[str], *, devices: Sequence[str], env: dict[str, str]) -> dict[str, object]:
    out = lvm([*args, "--reportformat", "json"], devices=devices, env=env)
    return json.loads(out)  # type: ignore[no-any-return]
