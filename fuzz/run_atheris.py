#!/usr/bin/env python3
"""Run one atheris (libFuzzer) campaign on a target of fuzz/targets.py.

    python3 fuzz/run_atheris.py TARGET [libFuzzer flags...]   e.g. -runs=1000000 -max_len=65536

The corpus lives in fuzz/corpus/TARGET (seeded from the fixtures on first use);
crashes are written to fuzz/crashes/TARGET/.  A crash is any exception other
than a VirtkitError, or a timeout (-timeout, default 10 s per input).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

with atheris.instrument_imports(include=["virtkit"]):
    # Import every module a target may touch so it is instrumented (the sandbox and
    # the interactive menu are not parsers and stay uninstrumented).
    import pkgutil

    import targets

    import virtkit.boot

    for info in pkgutil.walk_packages(virtkit.boot.__path__, "virtkit.boot."):
        if info.name not in ("virtkit.boot.worker.sandbox", "virtkit.boot.menu.interactive"):
            __import__(info.name)


def main() -> None:
    name = sys.argv[1]
    target = targets.TARGETS[name]
    corpus = HERE / "corpus" / name
    crashes = HERE / "crashes" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for i, seed in enumerate(target.seeds()):
            (corpus / f"seed-{i:03d}").write_bytes(seed[: 1 << 20])
    targets.run_target(name, b"")  # load the fixture image before libFuzzer starts timing inputs

    def one_input(data: bytes) -> None:
        targets.run_target(name, data)

    flags = [a for a in sys.argv[2:]]
    if not any(f.startswith("-timeout=") for f in flags):
        flags.append("-timeout=10")
    if not any(f.startswith("-rss_limit_mb=") for f in flags):
        flags.append("-rss_limit_mb=4096")
    argv = [sys.argv[0], f"-artifact_prefix={crashes}{os.sep}", *flags, str(corpus)]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
