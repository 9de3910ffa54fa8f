"""Shared helpers for the benchmarks in ``bench/``: timing, ratios, and docs/benchmarks.md.

Every benchmark measures virtkit against a *peer* (a real tool doing the same
job, or the I/O floor such as ``cat``) in the same run, on the same machine,
and reports ratios; absolute numbers are printed too but only ratios are
comparable between machines.

Typical use::

    from _common import Timing, format_ratio, time_callable, time_command, update_benchmarks_md

    ours = time_callable(lambda: read_everything(src), repeat=5, name="virtkit qcow2")
    peer = time_command(["cat", raw_path], repeat=5, name="cat raw")
    print(ours.describe(nbytes), format_ratio(ours.median / peer.median))
    update_benchmarks_md("image-read", markdown_text)

Run a benchmark as ``python3 bench/bench_NAME.py`` from the repository root
(``bench/`` is not a package; the scripts put their own directory on
``sys.path``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BENCHMARKS_MD",
    "ROOT",
    "Timing",
    "format_bytes",
    "format_ratio",
    "format_seconds",
    "format_throughput",
    "machine_summary",
    "markdown_table",
    "time_callable",
    "time_command",
    "update_benchmarks_md",
]

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"

_HEADER = """\
# Benchmarks

Each section below is written by one script in `bench/` (see `bench/README.md`)
and replaced when that script runs again; the text between a section's
`<!-- bench:NAME -->` markers is generated, so edit the script, not this file.

How benchmarks are run: every measurement is the **median of N runs** (after
warm-up runs that are not counted), and virtkit is always measured against a
peer (a real tool doing the same job, or the I/O floor such as `cat`) **in the
same run on the same machine**. Only the ratios are meant to be compared
between machines; absolute times depend on the CPU, the disk and the page
cache. No test asserts a wall-clock time; these numbers are for people.
"""


@dataclass
class Timing:
    """Wall-clock samples of one measured thing.

    Attributes:
        name: what was measured ("virtkit qcow2 read").
        samples: seconds per counted run.
    """

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    def describe(self, nbytes: int | None = None) -> str:
        """One human line: name, median, spread, and throughput if ``nbytes`` is given."""
        text = f"{self.name}: median {format_seconds(self.median)} (min {format_seconds(self.best)}, n={len(self.samples)})"
        if nbytes is not None:
            text += f", {format_throughput(nbytes, self.median)}"
        return text


def time_callable(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    warmup: int = 1,
    name: str = "",
) -> Timing:
    """Run ``fn`` ``warmup`` times uncounted, then ``repeat`` times timed.

    Args:
        fn: the work; its result is discarded.
        repeat: counted runs (the median is reported).
        warmup: uncounted runs first (page cache, imports, lazy tables).
        name: label for the Timing.

    Returns:
        a Timing with ``repeat`` samples.
    """
    for _ in range(warmup):
        fn()
    timing = Timing(name or getattr(fn, "__name__", "callable"))
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        timing.samples.append(time.perf_counter() - start)
    return timing


def time_command(
    argv: Sequence[str],
    *,
    repeat: int = 5,
    warmup: int = 1,
    name: str = "",
    stdout_path: str | None = None,
    before: Callable[[], object] | None = None,
) -> Timing:
    """Time an external command (the peer) like :func:`time_callable`.

    Args:
        argv: the command; run without a shell.
        repeat: counted runs.
        warmup: uncounted runs first.
        name: label; defaults to the command line.
        stdout_path: file for the command's stdout (default ``/dev/null``).
        before: called before every run, untimed (e.g. remove an output file).

    Returns:
        a Timing with ``repeat`` samples.

    Raises:
        subprocess.CalledProcessError: the command failed (a benchmark must not
            silently time an error path).
    """
    timing = Timing(name or " ".join(argv))
    for i in range(warmup + repeat):
        if before is not None:
            before()
        with open(stdout_path or os.devnull, "wb") as out:
            start = time.perf_counter()
            subprocess.run(list(argv), stdout=out, stderr=subprocess.PIPE, check=True)
            elapsed = time.perf_counter() - start
        if i >= warmup:
            timing.samples.append(elapsed)
    return timing


def format_seconds(seconds: float) -> str:
    """``0.0123`` -> ``"12.3 ms"``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_bytes(n: int) -> str:
    """``268435456`` -> ``"256 MiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - unreachable


def format_throughput(nbytes: int, seconds: float) -> str:
    """Bytes over seconds as ``"1.23 GiB/s"`` (or MiB/s below 1 GiB/s)."""
    if seconds <= 0:
        return "inf"
    rate = nbytes / seconds
    if rate >= 1 << 30:
        return f"{rate / (1 << 30):.2f} GiB/s"
    return f"{rate / (1 << 20):.0f} MiB/s"


def format_ratio(ratio: float) -> str:
    """``ours / peer`` as ``"1.42x"`` (above 1: we are slower than the peer)."""
    return f"{ratio:.2f}x"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (cells are converted with ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def machine_summary() -> str:
    """One line describing where the numbers came from (CPU, cores, Python, kernel)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    py = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} cores, {py}, Linux {platform.release()}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers of docs/benchmarks.md (several benchmarks may finish at once).

    The lock is taken on the containing directory, so no lock file is left behind.
    """
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_benchmarks_md(section: str, markdown: str, *, path: Path | None = None) -> Path:
    """Replace (or append) one generated section of docs/benchmarks.md.

    The section is the text between ``<!-- bench:SECTION -->`` and
    ``<!-- /bench:SECTION -->``; everything else in the file is kept as it is.
    The file is created with a short header explaining how benchmarks are run
    if it does not exist.  The write is atomic and serialised with a lock file.

    Args:
        section: a short name, e.g. ``"image-read"`` (letters, digits, ``-``, ``_``).
        markdown: the section body (usually starting with a ``##`` heading).
        path: the file to edit (tests pass a temporary one).

    Returns:
        the path written.

    Raises:
        ValueError: a bad section name, or the file has a start marker without an end marker.
    """
    if not section or not all(c.isalnum() or c in "-_" for c in section):
        raise ValueError(f"bad benchmark section name {section!r}")
    target = path or BENCHMARKS_MD
    target.parent.mkdir(parents=True, exist_ok=True)
    start = f"<!-- bench:{section} -->"
    end = f"<!-- /bench:{section} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    with _locked(target):
        text = target.read_text(encoding="utf-8") if target.exists() else _HEADER
        i = text.find(start)
        if i >= 0:
            j = text.find(end, i)
            if j < 0:
                raise ValueError(f"{target}: {start} has no matching {end}; fix the file by hand")
            text = text[:i] + block + text[j + len(end) :]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="." + target.name + ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return target


if __name__ == "__main__":  # pragma: no cover - manual smoke test
    print(machine_summary(), file=sys.stderr)
