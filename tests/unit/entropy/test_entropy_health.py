"""SP 800-90B health tests: cutoffs from the formulas, detection of known-bad sources, chunking invariance."""

from __future__ import annotations

import math
import os
import random
from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtkit.entropy.health import (
    APT_WINDOW,
    STARTUP_SAMPLES,
    AdaptiveProportionTest,
    HealthMonitor,
    RepetitionCountTest,
    apt_cutoff,
    rct_cutoff,
)
from virtkit.errors import UsageError


@pytest.mark.parametrize(
    ("h", "alpha", "expected"),
    [(1, 30, 31), (2, 30, 16), (4, 30, 9), (7, 30, 6), (8, 30, 5), (0.5, 30, 61), (1, 20, 21), (8, 40, 6)],
)
def test_rct_cutoff_formula(h: float, alpha: int, expected: int) -> None:
    # C = 1 + ceil(-log2(alpha) / H)   (SP 800-90B 4.4.1)
    assert rct_cutoff(h, alpha) == expected == 1 + math.ceil(alpha / h)


def test_apt_cutoff_matches_jitterentropy_constant() -> None:
    # Linux crypto/jitterentropy.c: JENT_APT_CUTOFF 325 for W = 512, H = 1, alpha = 2^-30
    assert apt_cutoff(1.0) == 325


def _critbinom_float(n: int, p: float, q: float) -> int:
    cdf = 0.0
    for k in range(n + 1):
        cdf += comb(n, k) * p**k * (1 - p) ** (n - k)
        if cdf >= q:
            return k
    return n


@pytest.mark.parametrize("h", [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
def test_apt_cutoff_against_a_float_computation(h: float) -> None:
    # C = 2 + CRITBINOM(W - 1, 2^-H, 1 - alpha); alpha = 2^-30 is well above float precision issues here
    expected = min(APT_WINDOW, 2 + _critbinom_float(APT_WINDOW - 1, 2.0**-h, 1 - 2.0**-30))
    assert apt_cutoff(h) == expected


@pytest.mark.parametrize("h", [0, -1, 8.5, float("nan"), float("inf")])
def test_claimed_entropy_range(h: float) -> None:
    with pytest.raises(UsageError, match="min-entropy"):
        rct_cutoff(h)
    with pytest.raises(UsageError):
        HealthMonitor(min_entropy=h)


def naive_rct(data: bytes, cutoff: int) -> int | None:
    run, last = 0, None
    for i, b in enumerate(data):
        run = run + 1 if b == last else 1
        last = b
        if run >= cutoff:
            return i
    return None


def naive_apt(data: bytes, cutoff: int, window: int = APT_WINDOW) -> int | None:
    for start in range(0, len(data), window):
        ref = data[start]
        count = 0
        for i in range(start, min(start + window, len(data))):
            if data[i] == ref:
                count += 1
                if count >= cutoff:
                    return i
    return None


def feed_chunked(test: RepetitionCountTest | AdaptiveProportionTest, data: bytes, sizes: list[int]) -> int | None:
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        at = test.feed(data[pos : pos + n])
        if at is not None:
            return pos + at
        pos += n
        i += 1
    return None


def two_values(seed: int, n: int) -> bytes:
    r = random.Random(seed)
    return bytes(r.choice((0x10, 0x20)) for _ in range(n))


def biased_stream(seed: int, n: int, p_common: float, alphabet: int = 256) -> bytes:
    r = random.Random(seed)
    return bytes(0x41 if r.random() < p_common else r.randrange(alphabet) for _ in range(n))


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.floats(0.0, 0.995), cutoff=st.integers(2, 64),
       sizes=st.lists(st.integers(1, 700), min_size=1, max_size=5))
def test_rct_agrees_with_naive_under_any_chunking(seed: int, p: float, cutoff: int, sizes: list[int]) -> None:
    data = biased_stream(seed, 3000, p, alphabet=4)
    assert feed_chunked(RepetitionCountTest(cutoff), data, sizes) == naive_rct(data, cutoff)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.floats(0.0, 0.95), cutoff=st.integers(20, 400),
       sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=5))
def test_apt_agrees_with_naive_under_any_chunking(seed: int, p: float, cutoff: int, sizes: list[int]) -> None:
    data = biased_stream(seed, 4000, p)
    assert feed_chunked(AdaptiveProportionTest(cutoff), data, sizes) == naive_apt(data, cutoff)


# Known-bad sources: (name, bytes, claimed H, failing test)
BAD_SOURCES = [
    ("stuck-at-zero", b"\x00" * 4096, 1.0, "repetition-count"),
    ("stuck-at-0x55", b"\x55" * 4096, 8.0, "repetition-count"),
    ("stuck after 2000 good bytes", os.urandom(2000) + b"\xff" * 100, 1.0, "repetition-count"),
    ("70% one value", biased_stream(1, 8192, 0.70), 1.0, "adaptive-proportion"),
    # APT only counts a window's first sample, so a mild bias needs many windows (128 here)
    ("8% one value, claimed 8 bits", biased_stream(2, 65536, 0.08), 8.0, "adaptive-proportion"),
    ("two values, claimed 8 bits", two_values(3, 8192), 8.0, "repetition-count"),  # runs of 5 come first
    ("two values, claimed 6 bits", two_values(3, 8192), 6.0, "repetition-count"),
]


@pytest.mark.parametrize(("name", "data", "h", "test"), BAD_SOURCES, ids=[b[0] for b in BAD_SOURCES])
def test_known_bad_sources_fail(name: str, data: bytes, h: float, test: str) -> None:
    m = HealthMonitor(min_entropy=h)
    failure = None
    for i in range(0, len(data), 1000):
        failure = m.check(data[i : i + 1000])
        if failure:
            break
    assert failure is not None, name
    assert failure.test == test
    assert not m.healthy
    assert m.failures == {test: 1}
    assert m.check(os.urandom(100)) is failure  # failed stays failed
    m.reset()
    assert m.healthy and not m.ready and m.failures == {test: 1}


@pytest.mark.parametrize(
    ("name", "data", "h"),
    [
        ("getrandom, claimed 8 bits", os.urandom(1 << 20), 8.0),
        ("two values, claimed 1 bit (an honest claim)", two_values(4, 50_000), 1.0),
        ("20% one value, claimed 1 bit", biased_stream(5, 50_000, 0.20), 1.0),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_good_sources_pass(name: str, data: bytes, h: float) -> None:
    m = HealthMonitor(min_entropy=h)
    for i in range(0, len(data), 4096):
        assert m.check(data[i : i + 4096]) is None, (name, m.failure)
    assert m.ready
    assert m.samples == len(data)


def test_startup_needs_1024_samples() -> None:
    m = HealthMonitor()
    m.check(os.urandom(STARTUP_SAMPLES - 1))
    assert m.healthy and not m.ready
    m.check(os.urandom(1))
    assert m.ready


def test_failure_message_names_the_test_and_the_cutoff() -> None:
    m = HealthMonitor(min_entropy=1.0)
    f = m.check(b"\x07" * 40)
    assert f is not None
    assert f.offset == 30
    assert f.detail == ("start-up repetition-count test failed at byte 30: 31 identical bytes in a row "
                        "(cutoff for a claimed 1 bits/byte at alpha 2^-30)")


def test_test_parameter_validation() -> None:
    with pytest.raises(UsageError):
        RepetitionCountTest(1)
    with pytest.raises(UsageError):
        AdaptiveProportionTest(1)
    with pytest.raises(UsageError):
        AdaptiveProportionTest(600, window=512)
