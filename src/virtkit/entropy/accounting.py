"""Per-guest accounting, token-bucket rate limits and fair sharing of a slow source.

Pure: no clock, no sockets.  Every method that needs the time takes ``now``
(seconds on any monotonic scale), so tests drive it with a fake clock.

References:
    The token bucket as used by QEMU's ``virtio-rng`` ``max-bytes``/``period``
        and by ekeyd's per-client limits (entropy.md §2.1, §3.6).
    Max-min fairness (water filling), the fluid model behind fair queueing
        (Demers, Keshav, Shenker, "Analysis and Simulation of a Fair Queueing
        Algorithm", SIGCOMM 1989): when the source is slower than demand each
        guest gets an equal share, and what a guest does not need is shared
        among the rest.  ekeyd's EGD server documents the failure this avoids:
        "a blocking client can starve a non-blocking client".

How the service uses it::

    sched = FairScheduler(default=RatePolicy(rate=4096, burst=512))
    sched.set_demand(conn_id, "vm1", owed_bytes, now)     # after parsing requests
    for conn_id, n in sched.allocate(now, supply=None):    # None: the source is unlimited
        ...send n bytes on conn_id...
    wake = sched.next_wakeup(now)                          # when tokens allow more, or None

A grant may be smaller than the demand (a rate limit or a slow source):
blocking EGD reads may be answered in pieces, so a guest is never stuck
behind one large request.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from virtkit.errors import UsageError

__all__ = [
    "LATENCY_BUCKETS",
    "MIN_GRANT",
    "FairScheduler",
    "GuestStats",
    "Histogram",
    "RatePolicy",
    "RequestClock",
    "TokenBucket",
    "max_min_share",
    "parse_rate",
]

_K = TypeVar("_K", bound=Hashable)

MIN_GRANT = 64  # bytes: do not wake up for less (one QEMU request; avoids 1-byte dribbles)
LATENCY_BUCKETS: tuple[float, ...] = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """A guest's limit.

    Attributes:
        rate: bytes per second on average; None means unlimited.
        burst: bytes that may be served at once after an idle period (the bucket size).
    """

    rate: float | None = None
    burst: int = 4096

    def __post_init__(self) -> None:
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise UsageError(f"rate must be a positive number of bytes per second, got {self.rate!r}")
        if self.burst < 1:
            raise UsageError(f"burst must be at least 1 byte, got {self.burst!r}")


def parse_rate(text: str) -> RatePolicy:
    """Parse ``RATE[:BURST]`` with optional K/M suffixes (powers of 1024), or ``unlimited``.

    Examples: ``4096``, ``4k:512``, ``1M``, ``unlimited``.

    Raises:
        UsageError: not a rate.
    """

    def number(s: str, what: str) -> float:
        s = s.strip()
        mult = 1
        if s[-1:].lower() in ("k", "m"):
            mult = 1024 if s[-1].lower() == "k" else 1024 * 1024
            s = s[:-1]
        try:
            value = float(s) * mult
        except ValueError:
            raise UsageError(f"bad {what} {text!r}: want a number of bytes, e.g. 4096, 4k or 1M") from None
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"bad {what} {text!r}: must be positive")
        return value

    if text.strip().lower() in ("unlimited", "none", "0"):
        return RatePolicy(None)
    rate_s, _, burst_s = text.partition(":")
    rate = number(rate_s, "rate")
    burst = int(number(burst_s, "burst")) if burst_s else max(MIN_GRANT, min(int(rate), 64 * 1024))
    return RatePolicy(rate, burst)


class TokenBucket:
    """Classic token bucket: ``burst`` tokens at most, refilled at ``rate`` per second.

    With ``rate=None`` it never limits (``available`` is effectively infinite).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, policy: RatePolicy, now: float) -> None:
        self.rate = policy.rate
        self.burst = policy.burst
        self._tokens = float(policy.burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if self.rate is None:
            return
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = max(self._last, now)

    def available(self, now: float) -> int:
        """Whole bytes that may be served now (a huge number when unlimited)."""
        if self.rate is None:
            return 1 << 62
        self._refill(now)
        return int(self._tokens + 1e-9)

    def take(self, n: int, now: float) -> None:
        """Spend ``n`` tokens (the caller checked :meth:`available`)."""
        if self.rate is None:
            return
        self._refill(now)
        self._tokens -= n

    @property
    def tokens(self) -> float:
        """Tokens as of the last refill."""
        return self._tokens

    @tokens.setter
    def tokens(self, value: float) -> None:
        self._tokens = value

    def wait_time(self, n: int, now: float) -> float:
        """Seconds until ``min(n, burst)`` tokens are available (0 if they are now)."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        want = min(n, self.burst)
        missing = want - self._tokens
        return 0.0 if missing <= 1e-9 else missing / self.rate


def max_min_share(caps: dict[_K, int], supply: int, rotate: int = 0) -> dict[_K, int]:
    """Split ``supply`` among claimants with upper bounds ``caps``, max-min fairly.

    Claimants that want less than an equal share get all they want; the rest
    split what remains equally.  Leftover single bytes go to claimants in a
    rotating order (``rotate``) so that no one is favoured over many calls.

    Returns:
        claimant -> bytes (only those with a positive share).
    """
    total = sum(caps.values())
    if total <= supply:
        return {k: v for k, v in caps.items() if v > 0}
    out: dict[_K, int] = {}
    order = sorted((v, i, k) for i, (k, v) in enumerate(caps.items()) if v > 0)
    left = supply
    n = len(order)
    idx = 0
    while idx < n:
        share = left // (n - idx)
        v, _, k = order[idx]
        if v <= share:
            out[k] = v
            left -= v
            idx += 1
            continue
        # everyone from idx on wants more than an equal share: split equally
        rest = [k2 for _, _, k2 in order[idx:]]
        extra = left - share * len(rest)
        start = rotate % len(rest)
        for j, k2 in enumerate(rest[start:] + rest[:start]):
            out[k2] = share + (1 if j < extra else 0)
        break
    return {k: v for k, v in out.items() if v > 0}


@dataclass
class _Guest:
    bucket: TokenBucket
    conns: dict[Hashable, int] = field(default_factory=dict)  # connection -> bytes owed now

    @property
    def demand(self) -> int:
        return sum(self.conns.values())


class FairScheduler:
    """Decides how many bytes each connection may be sent now.

    Args:
        default: the policy for guests without one of their own.
        policies: per-guest policies (guest name -> policy).
    """

    def __init__(self, default: RatePolicy | None = None, policies: dict[str, RatePolicy] | None = None) -> None:
        self.default = default or RatePolicy(None)
        self.policies: dict[str, RatePolicy] = dict(policies or {})
        self._guests: dict[str, _Guest] = {}
        self._conn_guest: dict[Hashable, str] = {}
        self._rotate = 0

    def policy_for(self, guest: str) -> RatePolicy:
        return self.policies.get(guest, self.default)

    def set_policy(self, guest: str, policy: RatePolicy, now: float) -> None:
        """Change one guest's policy (its bucket starts full)."""
        self.policies[guest] = policy
        if guest in self._guests:
            self._guests[guest].bucket = TokenBucket(policy, now)

    def _guest(self, guest: str, now: float) -> _Guest:
        g = self._guests.get(guest)
        if g is None:
            g = self._guests[guest] = _Guest(TokenBucket(self.policy_for(guest), now))
        return g

    def set_demand(self, conn: Hashable, guest: str, nbytes: int, now: float) -> None:
        """Record that ``conn`` (of ``guest``) is owed ``nbytes`` right now (0: nothing)."""
        old = self._conn_guest.get(conn)
        if old is not None and old != guest:
            self.remove(conn)
        g = self._guest(guest, now)
        self._conn_guest[conn] = guest
        if nbytes > 0:
            g.conns[conn] = nbytes
        else:
            g.conns.pop(conn, None)

    def remove(self, conn: Hashable) -> None:
        """Forget a connection (closed or paused by backpressure)."""
        guest = self._conn_guest.pop(conn, None)
        if guest is not None:
            self._guests[guest].conns.pop(conn, None)

    def tokens(self, guest: str, now: float) -> int:
        """Bytes ``guest`` may be sent now under its rate limit."""
        return self._guest(guest, now).bucket.available(now)

    def charge(self, guest: str, nbytes: int, now: float) -> None:
        """Spend tokens outside :meth:`allocate` (non-blocking reads answered at once)."""
        self._guest(guest, now).bucket.take(nbytes, now)

    def allocate(self, now: float, supply: int | None = None) -> list[tuple[Hashable, int]]:
        """Grant bytes to connections with demand.

        Args:
            now: the current time.
            supply: bytes the source can provide now; None means unlimited.

        Returns:
            ``(connection, nbytes)`` pairs, nbytes > 0.  Tokens are spent and the
            recorded demand is reduced by what was granted.
        """
        caps: dict[str, int] = {}
        for name, g in self._guests.items():
            if not g.conns:
                continue
            tokens = g.bucket.available(now)
            want = g.demand
            cap = min(want, tokens)
            # do not dribble: wait until MIN_GRANT tokens (or the whole demand) are there
            if cap < want and cap < min(MIN_GRANT, g.bucket.burst):
                continue
            if cap > 0:
                caps[name] = cap
        if not caps:
            return []
        self._rotate += 1
        shares = caps if supply is None else max_min_share(caps, supply, self._rotate)
        grants: list[tuple[Hashable, int]] = []
        for name, amount in shares.items():
            g = self._guests[name]
            g.bucket.take(amount, now)
            per_conn = max_min_share(dict(g.conns), amount, self._rotate)
            for conn, n in per_conn.items():
                left = g.conns[conn] - n
                if left:
                    g.conns[conn] = left
                else:
                    del g.conns[conn]
                grants.append((conn, n))
        return grants

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time at which a waiting guest's bucket allows a grant, or None."""
        best: float | None = None
        for g in self._guests.values():
            if not g.conns:
                continue
            want = min(g.demand, MIN_GRANT)
            t = now + g.bucket.wait_time(want, now)
            if best is None or t < best:
                best = t
        return best

    def waiting(self) -> dict[str, int]:
        """Guest -> bytes owed and not granted yet."""
        return {name: g.demand for name, g in self._guests.items() if g.conns}

    def export_buckets(self, now: float) -> dict[str, float]:
        """Tokens left in each rate-limited guest's bucket (carried across a hand-over)."""
        out: dict[str, float] = {}
        for name, g in self._guests.items():
            if g.bucket.rate is not None:
                g.bucket.available(now)
                out[name] = g.bucket.tokens
        return out

    def import_buckets(self, tokens: dict[str, float], now: float) -> None:
        """Restore :meth:`export_buckets` output (values are clamped to the current bursts)."""
        for name, value in tokens.items():
            g = self._guest(str(name), now)
            if g.bucket.rate is not None:
                g.bucket.tokens = max(0.0, min(float(g.bucket.burst), float(value)))

    def forget_idle(self) -> None:
        """Drop state of guests with no connections known (their buckets refill anyway)."""
        live = set(self._conn_guest.values())
        for name in [n for n in self._guests if n not in live]:
            del self._guests[name]


class Histogram:
    """A Prometheus-style cumulative histogram (bucket upper bounds in seconds)."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        """Record ``n`` observations of ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += n
        self.count += n
        self.total += value * n

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs, ending with (inf, count)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, c in zip((*self.bounds, math.inf), self.counts):
            running += c
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """An upper bound for the q-quantile (the bucket it falls in), None if empty."""
        if not self.count:
            return None
        target = q * self.count
        for bound, running in self.cumulative():
            if running >= target:
                return bound
        return math.inf  # pragma: no cover - cumulative() ends at count


@dataclass
class GuestStats:
    """Counters for one guest (all connections together)."""

    bytes_served: int = 0
    requests: dict[int, int] = field(default_factory=dict)  # command byte -> count
    latency: Histogram = field(default_factory=Histogram)
    stalls: int = 0
    throttled: int = 0  # grants that waited for the rate limit
    connections_open: int = 0
    connections_total: int = 0
    write_bytes: int = 0
    write_bits_claimed: int = 0
    protocol_errors: int = 0
    pid: int | None = None  # last QEMU pid seen through SO_PEERCRED

    def count_request(self, cmd: int, n: int = 1) -> None:
        self.requests[cmd] = self.requests.get(cmd, 0) + n


class RequestClock:
    """Arrival times of one connection's owed requests, oldest first (run-length encoded).

    The shell calls :meth:`arrived` per parsed request that needs a reply and
    :meth:`completed` with the protocol core's completion count; the clock
    returns latencies for the histogram and finds requests owed too long.
    """

    __slots__ = ("_runs", "flagged")

    def __init__(self) -> None:
        self._runs: deque[list[float]] = deque()  # [arrival time, count]
        self.flagged = 0  # leading owed requests already reported as stalled

    def arrived(self, now: float, n: int = 1) -> None:
        runs = self._runs
        if runs and runs[-1][0] == now:
            runs[-1][1] += n
        else:
            runs.append([now, float(n)])

    def completed(self, n: int, now: float, histogram: Histogram | None = None) -> None:
        """Mark the ``n`` oldest requests answered; observe their latencies."""
        runs = self._runs
        self.flagged = max(0, self.flagged - n)
        while n and runs:
            run = runs[0]
            k = min(n, int(run[1]))
            if histogram is not None:
                histogram.observe(now - run[0], k)
            n -= k
            if k == run[1]:
                runs.popleft()
            else:
                run[1] -= k

    @property
    def pending(self) -> int:
        return int(sum(r[1] for r in self._runs))

    def export(self) -> list[list[float]]:
        """The arrival runs, for a hand-over (monotonic times are host-wide)."""
        return [[t, c] for t, c in self._runs]

    def restore(self, runs: list[list[float]], owed: int) -> None:
        """Load :meth:`export` output, trimmed or padded to ``owed`` requests.

        Raises:
            ValueError: malformed runs.
        """
        self._runs.clear()
        left = owed
        for t, c in runs:
            k = min(int(c), left)
            if k > 0:
                self._runs.append([float(t), float(k)])
                left -= k
        if left > 0:
            last = self._runs[-1][0] if self._runs else 0.0
            self._runs.append([last, float(left)])

    def oldest(self) -> float | None:
        return self._runs[0][0] if self._runs else None

    def newly_stalled(self, now: float, threshold: float) -> int:
        """Owed requests older than ``threshold`` seconds not reported before (then marks them)."""
        old = 0
        for t, c in self._runs:
            if now - t < threshold:
                break
            old += int(c)
        new = max(0, old - self.flagged)
        self.flagged = max(self.flagged, old)
        return new
