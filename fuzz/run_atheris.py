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

import targets  # noqa: E402

NAME = sys.argv[1] if len(sys.argv) > 1 else ""


def _instrumented_imports(prefixes: tuple[str, ...]) -> None:
    """Import the packages under test inside atheris' instrumentation (and nothing else).

    Modules the harness itself needs (streams, errors, limits) are already imported,
    uninstrumented; instrumenting only the code under test keeps each execution cheap.
    """
    import importlib
    import pkgutil

    with atheris.instrument_imports(include=list(prefixes)):
        for prefix in prefixes:
            mod = importlib.import_module(prefix)
            for info in pkgutil.walk_packages(getattr(mod, "__path__", []), prefix + "."):
                if info.name not in ("virtkit.boot.worker.sandbox", "virtkit.boot.menu.interactive"):
                    importlib.import_module(info.name)


if NAME in targets.TARGETS:
    _instrumented_imports(targets.TARGETS[NAME].instrument)


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
