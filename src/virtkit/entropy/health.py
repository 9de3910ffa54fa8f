"""SP 800-90B health tests for noise sources: repetition count and adaptive proportion.

References:
    NIST SP 800-90B (January 2018) §4.3 (start-up testing on at least 1024
        consecutive samples) and §4.4 (the two approved continuous tests):
        §4.4.1 Repetition Count Test, cutoff ``C = 1 + ceil(-log2(alpha) / H)``;
        §4.4.2 Adaptive Proportion Test, window W = 512 for non-binary samples.
    The APT cutoff uses the correction published in the public comments on
        SP 800-90B (J. Hill, comment 10b, 2019): the first sample of a window is
        always counted, so only the other W-1 samples are binomial, giving
        ``C = 2 + CRITBINOM(W - 1, 2**-H, 1 - alpha)``.  For H = 1, alpha = 2**-30
        this is 325, the constant Linux's jitterentropy uses (JENT_APT_CUTOFF).

Samples are bytes (8-bit symbols).  ``H`` is the *claimed* min-entropy per
byte of the source; the tests only catch a source that falls far below its
claim (stuck, or heavily biased), at a false-alarm rate of about ``alpha`` per
sample.  Run on already conditioned output (``getrandom``, a DRBG, a device
that whitens internally) they are a **smoke test only**: they detect a stuck
or broken stream, not a weak one.

Everything here is pure: feed bytes, get a verdict.  The tests are written
with bytes methods and one regular expression so that checking costs a few
microseconds per KiB, not a Python loop per byte.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from virtkit.errors import UsageError

__all__ = [
    "APT_WINDOW",
    "DEFAULT_ALPHA_LOG2",
    "STARTUP_SAMPLES",
    "AdaptiveProportionTest",
    "HealthFailure",
    "HealthMonitor",
    "RepetitionCountTest",
    "apt_cutoff",
    "rct_cutoff",
]

APT_WINDOW = 512  # SP 800-90B §4.4.2: W = 512 for non-binary samples
STARTUP_SAMPLES = 1024  # SP 800-90B §4.3: at least 1024 consecutive samples at start-up
DEFAULT_ALPHA_LOG2 = 30  # alpha = 2**-30, inside the 2**-20..2**-40 range §4.4 recommends


def _check_h(h: float) -> None:
    if not (0 < h <= 8 and math.isfinite(h)):
        raise UsageError(f"claimed min-entropy must be in (0, 8] bits per byte, got {h!r}")


def rct_cutoff(h: float, alpha_log2: int = DEFAULT_ALPHA_LOG2) -> int:
    """Repetition Count Test cutoff: a run of this many identical samples fails.

    Args:
        h: claimed min-entropy per sample (bits, 0 < h <= 8 for bytes).
        alpha_log2: the false-positive probability is ``2**-alpha_log2``.

    Returns:
        ``1 + ceil(alpha_log2 / h)`` (SP 800-90B §4.4.1).

    Raises:
        UsageError: h out of range.
    """
    _check_h(h)
    return 1 + math.ceil(alpha_log2 / h - 1e-12)


@lru_cache(maxsize=64)
def apt_cutoff(h: float, window: int = APT_WINDOW, alpha_log2: int = DEFAULT_ALPHA_LOG2) -> int:
    """Adaptive Proportion Test cutoff: this many copies of a window's first sample fail.

    Computed exactly (rational arithmetic on the binomial distribution), with
    the first-sample correction described in the module docstring and capped
    at ``window`` (a cutoff that cannot be reached disables the test, as
    SP 800-90B allows for high claimed entropy).

    Raises:
        UsageError: h out of range.
    """
    _check_h(h)
    p = Fraction(1, 2 ** int(h)) if float(h).is_integer() else Fraction(2.0 ** (-h))
    q = 1 - p
    n = window - 1
    target = 1 - Fraction(1, 2**alpha_log2)
    cdf = Fraction(0)
    term = q**n  # P(X = 0)
    for k in range(n + 1):
        cdf += term
        if cdf >= target:
            return min(window, 2 + k)
        # P(X = k+1) from P(X = k)
        term = term * (n - k) * p / ((k + 1) * q)
    return window  # pragma: no cover - the loop always reaches cdf = 1


@dataclass(frozen=True, slots=True)
class HealthFailure:
    """A failed health test.

    Attributes:
        test: ``"repetition-count"``, ``"adaptive-proportion"`` or ``"startup"``.
        detail: one line for the operator.
        offset: sample index (from the start of monitoring) where it was detected.
    """

    test: str
    detail: str
    offset: int


class RepetitionCountTest:
    """SP 800-90B §4.4.1 over a byte stream, fed in chunks of any size."""

    __slots__ = ("_last", "_pattern", "_run", "cutoff")

    def __init__(self, cutoff: int) -> None:
        if cutoff < 2:
            raise UsageError(f"repetition count cutoff must be at least 2, got {cutoff}")
        self.cutoff = cutoff
        self._pattern = re.compile(rb"(.)\1{%d}" % (cutoff - 1), re.DOTALL)
        self._last = -1
        self._run = 0

    def feed(self, data: bytes) -> int | None:
        """Test ``data``; return the index in it where the run reached the cutoff, or None."""
        if not data:
            return None
        if self._last >= 0 and data[0] == self._last:
            lead = len(data) - len(data.lstrip(bytes((self._last,))))
            if self._run + lead >= self.cutoff:
                return self.cutoff - self._run - 1
        at = self._find_run(data)
        if at is not None:
            return at
        last = data[-1]
        tail = len(data) - len(data.rstrip(bytes((last,))))
        if tail == len(data) and last == self._last:
            self._run += tail
        else:
            self._run = tail
        self._last = last
        return None


    def _find_run(self, data: bytes) -> int | None:
        """Index where the first run of ``cutoff`` equal bytes in ``data`` ends, or None.

        A run of C equal bytes contains two samples ``s = C // 2`` apart, so
        only places where ``data[::s]`` repeats a value can hold one: they are
        found with one big-integer XOR (zero bytes = equal neighbours) and
        only those windows are searched with the regular expression.  For
        random data that is a few windows per 64 KiB instead of a regex
        attempt at every byte.
        """
        c = self.cutoff
        stride = max(1, c // 2)
        sample = data[::stride]
        if len(sample) < 4 or stride == 1:
            m = self._pattern.search(data)
            return None if m is None else m.start() + c - 1
        n = len(sample) - 1
        diff = (int.from_bytes(sample[:-1], "big") ^ int.from_bytes(sample[1:], "big")).to_bytes(n, "big")
        j = diff.find(0)
        while j >= 0:
            lo = max(0, j * stride - c)
            m = self._pattern.search(data, lo, min(len(data), (j + 1) * stride + c))
            if m is not None:
                return m.start() + c - 1
            j = diff.find(0, j + 1)
        return None


class AdaptiveProportionTest:
    """SP 800-90B §4.4.2 over a byte stream: non-overlapping windows of ``window`` samples."""

    __slots__ = ("_count", "_ref", "_seen", "cutoff", "window")

    def __init__(self, cutoff: int, window: int = APT_WINDOW) -> None:
        if not 2 <= cutoff <= window:
            raise UsageError(f"adaptive proportion cutoff must be in 2..{window}, got {cutoff}")
        self.cutoff = cutoff
        self.window = window
        self._ref = -1
        self._count = 0
        self._seen = 0

    def feed(self, data: bytes) -> int | None:
        """Test ``data``; return the index in it where a window reached the cutoff, or None."""
        w = self.window
        c = self.cutoff
        i = 0
        n = len(data)
        if self._seen and n:
            take = min(w - self._seen, n)
            part = data[:take]
            found = part.count(self._ref)
            if self._count + found >= c:
                return _nth(part, self._ref, c - self._count)
            self._count += found
            self._seen = (self._seen + take) % w
            i = take
        while i + w <= n:
            win = data[i : i + w]
            if win.count(win[0]) >= c:
                return i + _nth(win, win[0], c)
            i += w
        if i < n:
            rest = data[i:]
            self._ref = rest[0]
            self._count = rest.count(self._ref)
            self._seen = len(rest)
            if self._count >= c:
                return i + _nth(rest, self._ref, c)
        return None


def _nth(data: bytes, value: int, k: int) -> int:
    """Index of the k-th (1-based) occurrence of ``value`` in ``data``."""
    pos = -1
    needle = bytes((value,))
    for _ in range(k):
        pos = data.index(needle, pos + 1)
    return pos


@dataclass
class HealthMonitor:
    """Start-up and continuous tests for one source, with counters.

    ``check(data)`` returns None when the bytes may be used, or the failure.
    Until :data:`STARTUP_SAMPLES` bytes have passed, the monitor is in
    start-up and :attr:`ready` is False (start-up bytes are never handed out).
    After a failure the monitor stays failed until :meth:`reset`.

    Args:
        min_entropy: claimed min-entropy per byte (H).
        alpha_log2: false-positive rate exponent.
    """

    min_entropy: float = 1.0
    alpha_log2: int = DEFAULT_ALPHA_LOG2
    samples: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    failure: HealthFailure | None = None
    rct: RepetitionCountTest = field(init=False)
    apt: AdaptiveProportionTest = field(init=False)

    def __post_init__(self) -> None:
        self.rct = RepetitionCountTest(rct_cutoff(self.min_entropy, self.alpha_log2))
        self.apt = AdaptiveProportionTest(apt_cutoff(self.min_entropy, APT_WINDOW, self.alpha_log2))

    @property
    def ready(self) -> bool:
        return self.failure is None and self.samples >= STARTUP_SAMPLES

    @property
    def healthy(self) -> bool:
        return self.failure is None

    def reset(self) -> None:
        """Start over (a fresh start-up test), keeping the failure counters."""
        self.rct = RepetitionCountTest(self.rct.cutoff)
        self.apt = AdaptiveProportionTest(self.apt.cutoff, self.apt.window)
        self.samples = 0
        self.failure = None

    def check(self, data: bytes) -> HealthFailure | None:
        """Run both tests over ``data`` (the next bytes of the stream).

        Returns:
            None if every byte passed; otherwise the failure (also kept in
            :attr:`failure`; the monitor is then failed).
        """
        if self.failure is not None:
            return self.failure
        start = self.samples
        phase = "startup" if start < STARTUP_SAMPLES else None
        for name, test, what in (
            ("repetition-count", self.rct, "identical bytes in a row"),
            ("adaptive-proportion", self.apt, f"copies of one byte in a window of {APT_WINDOW}"),
        ):
            at = test.feed(data)
            if at is not None:
                cutoff = test.cutoff
                detail = (
                    f"{name} test failed at byte {start + at}: {cutoff} {what} "
                    f"(cutoff for a claimed {self.min_entropy:g} bits/byte at alpha 2^-{self.alpha_log2})"
                )
                if phase:
                    detail = "start-up " + detail
                self.failure = HealthFailure(name, detail, start + at)
                self.failures[name] = self.failures.get(name, 0) + 1
                return self.failure
        self.samples += len(data)
        return None
