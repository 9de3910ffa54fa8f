"""Call a bootloader exactly as libxl does, and read its result the way libxl reads it.

From ``tools/libs/light/libxl_bootloader.c`` (facts in reference/pygrub.md §1.6):

* argv: ``[--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet]
  --output=FILE --output-format=simple0 --output-directory=DIR <bootloader_args...> DISK``;
* the environment is inherited plus ``TERM=vt100``;
* the ``.out`` file is pre-created (0600, truncated) and the output directory exists;
* after exit status 0, the file is split on NUL; empty records are skipped; a record
  is recognised if it starts with ``kernel``, ``ramdisk`` or ``args`` followed by at
  least one whitespace character, whose leading whitespace is skipped;
* the kernel and ramdisk files are read (mapped) and then **unlinked**; the output
  file and directory are removed.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PATH_MAX = 4096


@dataclass
class LibxlResult:
    status: int
    stdout: str
    stderr: str
    raw: bytes = b""
    records: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    kernel: bytes | None = None
    ramdisk: bytes | None = None
    leftovers: list[str] = field(default_factory=list)  # files left in the output dir after libxl's cleanup
    output: bytes = b""  # the --output file's content, whatever the exit status

    def normalised(self) -> bytes:
        """The raw record with temp-file names replaced by placeholders (for side-by-side)."""
        return re.sub(rb"boot_(kernel|ramdisk)\.[a-z0-9_]{8}", rb"boot_\1.XXXXXXXX", self.raw).replace(
            str(self._dir).encode(), b"<DIR>"
        ) if self._dir else self.raw

    _dir: Path | None = None


def parse_records(raw: bytes) -> tuple[dict[str, str], list[str]]:
    """libxl's parse_bootloader_result, in Python."""
    records: dict[str, str] = {}
    warnings: list[str] = []
    for rec in raw.split(b"\0"):
        if not rec:
            continue
        if len(rec) > 2 * PATH_MAX - 1:
            warnings.append("bootloader output contained an overly long line")
            continue
        m = re.match(rb"^(kernel|ramdisk|args)\s", rec)
        if not m:
            warnings.append(f"unexpected output from bootloader: {rec[:60]!r}")
            continue
        value = rec[len(m.group(1)) :].lstrip(b" \t\n\r\v\f")
        records[m.group(1).decode()] = value.decode("utf-8", "surrogateescape")
    return records, warnings


def run_like_libxl(
    bootloader: Sequence[str],
    disk: str,
    *,
    kernel: str | None = None,
    ramdisk: str | None = None,
    cmdline: str | None = None,
    runas: int | None = None,
    bootloader_args: Sequence[str] = (),
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> LibxlResult:
    """Run ``bootloader`` (argv prefix, e.g. ["virtkit-pygrub"]) on ``disk`` as libxl would."""
    work = Path(tempfile.mkdtemp(prefix="libxl-"))
    out = work / "bootloader.7.out"
    outdir = work / "bootloader.7.d"
    outdir.mkdir(mode=0o700)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    argv = list(bootloader)
    if kernel:
        argv.append(f"--kernel={kernel}")
    if ramdisk:
        argv.append(f"--ramdisk={ramdisk}")
    if cmdline:
        argv.append(f"--args={cmdline}")
    if runas is not None:
        argv += [f"--runas={runas}", "--quiet"]
    argv += [f"--output={out}", "--output-format=simple0", f"--output-directory={outdir}", *bootloader_args, disk]
    e = dict(os.environ if env is None else env)
    e["TERM"] = "vt100"
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=e, stdin=subprocess.DEVNULL, check=False)
    res = LibxlResult(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    res._dir = outdir
    res.output = out.read_bytes()
    if proc.returncode == 0:
        res.raw = out.read_bytes()
        res.records, res.warnings = parse_records(res.raw)
        for key in ("kernel", "ramdisk"):
            p = res.records.get(key)
            if p:
                data = Path(p).read_bytes()
                setattr(res, key, data)
                os.unlink(p)  # libxl unlinks what it mapped
    res.leftovers = sorted(os.listdir(outdir))
    for name in res.leftovers:
        os.unlink(outdir / name)
    outdir.rmdir()
    out.unlink()
    work.rmdir()
    return res
