"""Token buckets, max-min fair sharing and the scheduler, driven with a fake clock; counters and clocks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.entropy.accounting import (
    MIN_GRANT,
    FairScheduler,
    Histogram,
    RatePolicy,
    RequestClock,
    TokenBucket,
    max_min_share,
    parse_rate,
)
from virtkit.errors import UsageError


@pytest.mark.parametrize(
    ("text", "rate", "burst"),
    [
        ("4096", 4096.0, 4096),
        ("4k", 4096.0, 4096),
        ("4k:512", 4096.0, 512),
        ("1M", 1048576.0, 65536),
        ("10", 10.0, MIN_GRANT),  # the burst is never below one QEMU request
        ("1.5k:1k", 1536.0, 1024),
        ("unlimited", None, 4096),
    ],
)
def test_parse_rate(text: str, rate: float | None, burst: int) -> None:
    p = parse_rate(text)
    assert p.rate == rate
    if rate is not None:
        assert p.burst == burst


@pytest.mark.parametrize("text", ["", "fast", "-1", "4k:0", "inf", "nan", "1:x"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_rate_policy_validates() -> None:
    with pytest.raises(UsageError, match="positive"):
        RatePolicy(rate=0)
    with pytest.raises(UsageError, match="burst"):
        RatePolicy(rate=1, burst=0)


def test_token_bucket_refills_and_caps() -> None:
    b = TokenBucket(RatePolicy(rate=100, burst=50), now=0.0)
    assert b.available(0.0) == 50
    b.take(50, 0.0)
    assert b.available(0.0) == 0
    assert b.wait_time(10, 0.0) == pytest.approx(0.1)
    assert b.available(0.25) == 25
    assert b.available(100.0) == 50  # never above the burst
    assert b.wait_time(500, 100.0) == 0.0  # a want above the burst only waits for a full bucket
    b.take(50, 100.0)
    assert b.wait_time(500, 100.0) == pytest.approx(0.5)
    assert b.available(99.0) == 0  # time going backwards does not mint tokens


def test_unlimited_bucket() -> None:
    b = TokenBucket(RatePolicy(None), 0.0)
    assert b.available(0.0) > 1 << 60
    b.take(10**12, 0.0)
    assert b.wait_time(10**9, 0.0) == 0.0


@pytest.mark.parametrize(
    ("caps", "supply", "expected"),
    [
        ({"a": 10, "b": 10}, 100, {"a": 10, "b": 10}),  # enough for everyone
        ({"a": 100, "b": 100}, 100, {"a": 50, "b": 50}),  # equal split
        ({"a": 10, "b": 100, "c": 100}, 100, {"a": 10, "b": 45, "c": 45}),  # the small one is satisfied
        ({"a": 1000, "b": 1}, 10, {"a": 9, "b": 1}),
        ({"a": 0, "b": 5}, 10, {"b": 5}),
        ({"a": 5}, 0, {}),
    ],
)
def test_max_min_share_table(caps: dict[str, int], supply: int, expected: dict[str, int]) -> None:
    assert max_min_share(caps, supply) == expected


def test_max_min_share_rotates_leftover_bytes() -> None:
    caps = {"a": 100, "b": 100, "c": 100}
    got = [max_min_share(caps, 10, rotate=r) for r in range(3)]
    # 10 = 3*3 + 1: the single spare byte goes to a different claimant each time
    assert sorted(max(g, key=g.__getitem__) for g in got) == ["a", "b", "c"]
    assert all(sum(g.values()) == 10 for g in got)


@settings(max_examples=200, deadline=None)
@given(caps=st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 10_000), max_size=8),
       supply=st.integers(0, 50_000), rotate=st.integers(0, 100))
def test_max_min_share_properties(caps: dict[str, int], supply: int, rotate: int) -> None:
    out = max_min_share(caps, supply, rotate)
    assert sum(out.values()) == min(supply, sum(caps.values()))
    for k, v in out.items():
        assert 0 < v <= caps[k]
    # max-min fairness: a claimant that got less than it wanted got at least as much as anyone else, minus one byte
    short = [k for k in caps if caps[k] > 0 and out.get(k, 0) < caps[k]]
    for k in short:
        assert out.get(k, 0) + 1 >= max(out.values(), default=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0


def drain(sched: FairScheduler, clock: FakeClock, demand: dict[tuple[str, int], int], *, supply_rate: float | None,
          until: float, step: float = 0.01) -> dict[str, list[tuple[float, int]]]:
    """Simulate: each connection keeps ``demand`` bytes owed; the source makes supply_rate bytes/s."""
    served: dict[str, list[tuple[float, int]]] = {g: [] for g, _ in demand}
    pool = 0.0
    while clock.now < until:
        for (guest, conn), want in demand.items():
            sched.set_demand((guest, conn), guest, want, clock.now)
        supply = None
        if supply_rate is not None:
            pool += supply_rate * step
            supply = int(pool)
        for key, n in sched.allocate(clock.now, supply):
            guest = key[0]  # type: ignore[index]
            served[guest].append((clock.now, n))
            if supply is not None:
                pool -= n
        clock.now += step
    return served


def test_rate_limit_holds_over_time() -> None:
    clock = FakeClock()
    sched = FairScheduler(RatePolicy(rate=4096, burst=512))
    served = drain(sched, clock, {("vm1", 1): 64 * 16}, supply_rate=None, until=10.0)
    total = sum(n for _, n in served["vm1"])
    assert 4096 * 9.9 <= total <= 512 + 4096 * 10.0
    # in every window, at most burst + rate * window
    times = served["vm1"]
    for i, (t0, _) in enumerate(times):
        window = 0
        for t, n in times[i:]:
            if t - t0 > 1.0:
                break
            window += n
        assert window <= 512 + 4096 * 1.0 + 1


def test_one_greedy_guest_cannot_starve_others_on_a_slow_source() -> None:
    """The ekeyd failure mode: a blocking client starving the rest.  Here the source makes 3000 B/s."""
    clock = FakeClock()
    sched = FairScheduler()
    demand = {("greedy", 1): 255 * 64, ("greedy", 2): 255 * 64, ("vm-a", 3): 64, ("vm-b", 4): 64}
    served = drain(sched, clock, demand, supply_rate=3000, until=20.0)
    totals = {g: sum(n for _, n in v) for g, v in served.items()}
    assert sum(totals.values()) <= 3000 * 20
    # every guest gets its equal share (a third), the greedy one gets no more despite two connections
    for g in ("greedy", "vm-a", "vm-b"):
        assert totals[g] == pytest.approx(3000 * 20 / 3, rel=0.05), totals


def test_small_demands_are_satisfied_first_and_the_rest_is_shared() -> None:
    sched = FairScheduler()
    sched.set_demand(1, "idle-guest", 64, 0.0)
    sched.set_demand(2, "big-a", 10_000, 0.0)
    sched.set_demand(3, "big-b", 10_000, 0.0)
    grants = dict(sched.allocate(0.0, supply=1064))
    assert grants == {1: 64, 2: 500, 3: 500}
    assert sched.waiting() == {"big-a": 9500, "big-b": 9500}


def test_per_guest_policies_and_connections_share_one_bucket() -> None:
    sched = FairScheduler(RatePolicy(None), {"slow": RatePolicy(rate=100, burst=100)})
    sched.set_demand("c1", "slow", 1000, 0.0)
    sched.set_demand("c2", "slow", 1000, 0.0)
    sched.set_demand("c3", "fast", 1000, 0.0)
    grants = dict(sched.allocate(0.0))
    assert grants["c3"] == 1000
    assert grants["c1"] + grants["c2"] == 100  # two connections, one guest, one bucket
    assert abs(grants["c1"] - grants["c2"]) <= 1
    assert sched.next_wakeup(0.0) == pytest.approx(MIN_GRANT / 100)


def test_no_dribbling_below_min_grant() -> None:
    sched = FairScheduler(RatePolicy(rate=1000, burst=512))
    sched.set_demand("c", "g", 512, 0.0)
    assert dict(sched.allocate(0.0)) == {"c": 512}
    sched.set_demand("c", "g", 512, 0.0)
    assert sched.allocate(0.01) == []  # 10 tokens: wait for 64
    wake = sched.next_wakeup(0.01)
    assert wake == pytest.approx(0.064)
    assert dict(sched.allocate(wake)) == {"c": 64}


def test_remove_and_move_connections() -> None:
    sched = FairScheduler()
    sched.set_demand("c", "a", 10, 0.0)
    sched.set_demand("c", "b", 20, 0.0)  # the connection now belongs to b
    assert sched.waiting() == {"b": 20}
    sched.remove("c")
    assert sched.waiting() == {}
    assert sched.allocate(0.0) == []
    assert sched.next_wakeup(0.0) is None
    sched.forget_idle()


def test_buckets_survive_export_and_import() -> None:
    a = FairScheduler(RatePolicy(rate=100, burst=100))
    a.charge("g", 80, 0.0)
    tokens = a.export_buckets(0.0)
    assert tokens == {"g": pytest.approx(20.0)}
    b = FairScheduler(RatePolicy(rate=100, burst=100))
    b.import_buckets(tokens, 5.0)
    assert b.tokens("g", 5.0) == 20
    b.import_buckets({"g": 1e9}, 5.0)
    assert b.tokens("g", 5.0) == 100  # clamped to the burst


def test_histogram_buckets_and_quantiles() -> None:
    h = Histogram((0.001, 0.01, 0.1))
    for v in (0.0005, 0.0005, 0.005, 0.05, 5.0):
        h.observe(v)
    h.observe(0.001, n=5)  # exactly on a bound counts in that bucket (Prometheus "le")
    assert h.counts == [7, 1, 1, 1]
    assert h.cumulative() == [(0.001, 7), (0.01, 8), (0.1, 9), (math.inf, 10)]
    assert h.count == 10
    assert h.quantile(0.5) == 0.001
    assert h.quantile(0.95) == math.inf
    assert Histogram().quantile(0.5) is None


def test_request_clock_latency_and_stalls() -> None:
    c = RequestClock()
    h = Histogram((0.5, 1.0, 5.0))
    c.arrived(0.0, 3)
    c.arrived(1.0)
    c.arrived(1.0)  # same time: one run
    assert c.export() == [[0.0, 3.0], [1.0, 2.0]]
    assert c.pending == 5
    assert c.newly_stalled(2.5, threshold=2.0) == 3
    assert c.newly_stalled(2.6, threshold=2.0) == 0  # reported once
    assert c.newly_stalled(3.5, threshold=2.0) == 2
    c.completed(4, 4.0, h)
    assert h.counts == [0, 0, 4, 0]  # three waited 4 s, one waited 3 s
    assert c.pending == 1
    assert c.oldest() == 1.0
    c.completed(1, 4.0, h)
    assert c.oldest() is None


def test_request_clock_restore_pads_and_trims() -> None:
    c = RequestClock()
    c.restore([[1.0, 2.0], [2.0, 5.0]], owed=4)
    assert c.export() == [[1.0, 2.0], [2.0, 2.0]]
    c.restore([[1.0, 1.0]], owed=3)
    assert c.export() == [[1.0, 1.0], [1.0, 2.0]]
    c.restore([], owed=0)
    assert c.pending == 0
