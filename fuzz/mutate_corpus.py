#!/usr/bin/env python3
"""The campaign's second phase: fast, uninstrumented mutation of the coverage-guided corpus.

    python3 fuzz/mutate_corpus.py TARGET --until 1000000 [--seed N] [--max-time S]

atheris' coverage instrumentation makes each Python execution 5-20 times
slower.  After the coverage-guided phase (fuzz/run_atheris.py) has built a
corpus, this phase keeps fuzzing the same harness without instrumentation:
each input is a corpus entry with 1-6 libFuzzer-style mutations (bit flips,
interesting values, insertions, deletions, duplicated slices, splices with
another entry), run through the same invariant (``targets.run_target``: a
result or a VirtkitError).  It runs until the target's total executions
(both phases, from fuzz/results.json) reach ``--until``.

A finding (any other exception, a MemoryError under the 4 GiB address-space
limit, or an input running longer than 10 s) is written to
fuzz/crashes/TARGET/mutate-<sha1> with its traceback next to it.  Progress is
merged into fuzz/results.json every 20,000 executions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import targets  # noqa: E402
from campaign import MAX_LEN, RESULTS, merge_result  # noqa: E402

INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
               b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x01\x00\x00\x00", b"\x10\x00", b"\x00\x10\x00\x00"]
TOKENS = [b"{", b"}", b"\n", b"'", b'"', b"\\", b"$", b";", b"=", b"#", b"\0", b" ", b"[", b"]", b"(", b")", b"\t"]
CHECKPOINT = 20_000
INPUT_TIMEOUT = 10


class InputTimeout(BaseException):
    """An input ran longer than INPUT_TIMEOUT seconds (BaseException: parsers must not swallow it)."""


def _alarm(signum: int, frame: object) -> None:
    raise InputTimeout(f"input ran longer than {INPUT_TIMEOUT} s")


def mutate(rng: random.Random, data: bytes, other: bytes, kind: str, max_len: int) -> bytes:
    """1-6 random edits of ``data`` (``other`` is a second corpus entry for splicing)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(8)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            v = rng.choice(INTERESTING)
            i = rng.randrange(len(buf))
            buf[i : i + len(v)] = v
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8)) if kind != "text" else rng.choice(TOKENS)
        elif op == 3 and buf:
            del buf[pos : pos + rng.randint(1, 32)]
        elif op == 4 and buf:
            n = rng.randint(1, 64)
            buf[pos:pos] = buf[max(0, pos - n) : pos]
        elif op == 5 and other:
            a = rng.randrange(len(other))
            buf[pos:pos] = other[a : a + rng.randint(1, 128)]
        elif op == 6 and kind == "patch":
            buf += targets.encode_patches([(rng.randrange(1 << 32), rng.choice([*INTERESTING, rng.randbytes(4)]))])
        elif op == 7 and buf:
            i = rng.randrange(len(buf))
            buf[i] = (buf[i] + rng.choice([1, -1, 16, -16])) & 0xFF
    return bytes(buf[:max_len])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--until", type=int, default=1_000_000, help="total executions (both phases) to reach")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-time", type=float, default=None)
    a = ap.parse_args()
    target = targets.TARGETS[a.name]
    corpus = [p.read_bytes() for p in sorted((HERE / "corpus" / a.name).glob("*"))] or target.seeds()
    crashes = HERE / "crashes" / a.name
    crashes.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()).get(a.name, {}) if RESULTS.exists() else {}
    done = int(old.get("total_executions", 0))
    rng = random.Random(f"{a.name}:{a.seed}:{done}")
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    signal.signal(signal.SIGALRM, _alarm)
    max_len = MAX_LEN[target.kind]
    targets.run_target(a.name, corpus[0])  # load the fixture before counting
    start = time.monotonic()
    execs = findings = 0
    deadline = start + a.max_time if a.max_time else None
    while done + execs < a.until and (deadline is None or time.monotonic() < deadline):
        data = mutate(rng, rng.choice(corpus), rng.choice(corpus), target.kind, max_len)
        signal.alarm(INPUT_TIMEOUT)
        try:
            targets.run_target(a.name, data)
        except (Exception, InputTimeout) as exc:  # a finding: keep the input and why
            digest = hashlib.sha256(data).hexdigest()[:40]
            (crashes / f"mutate-{digest}").write_bytes(data)
            (crashes / f"mutate-{digest}.txt").write_text("".join(traceback.format_exception(exc)))
            findings += 1
            print(f"{a.name}: finding {type(exc).__name__}: {exc} -> fuzz/crashes/{a.name}/mutate-{digest}", flush=True)
        finally:
            signal.alarm(0)
        execs += 1
        if execs % CHECKPOINT == 0:
            merge_result(a.name, mutation_executions=CHECKPOINT, mutation_seconds=time.monotonic() - start)
            start = time.monotonic()
            done += execs
            execs = 0
    merge_result(a.name, mutation_executions=execs, mutation_seconds=time.monotonic() - start)
    total = json.loads(RESULTS.read_text())[a.name]
    print(f"{a.name}: {total['total_executions']:,} executions in total "
          f"({total.get('mutation_executions', 0):,} by corpus mutation), {findings} findings", flush=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
