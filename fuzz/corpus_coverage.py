#!/usr/bin/env python3
"""Line coverage of each campaign corpus over the code its harness targets.

    python3 fuzz/corpus_coverage.py [TARGET ...]      (default: every target with a corpus)

libFuzzer's ``cov``/``ft`` counts (recorded by the atheris phase) are edge and
feature counts, useful for watching a campaign grow but hard to read.  This
replays each target's final corpus (``fuzz/corpus/TARGET``, plus its seeds)
under a ``sys.settrace`` line tracer and reports, over the Python files of the
packages the target is for (``Target.coverage_scope``), how many executable
function-body lines the corpus reached.  Module and class bodies (run at
import, whatever the input) are not counted.  Standard library only.

The result is merged into fuzz/results.json as ``line_coverage``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import targets  # noqa: E402
from campaign import RESULTS  # noqa: E402

_CO_OPTIMIZED = 0x1  # functions, lambdas and comprehensions; not module or class bodies


def package_files(modules: tuple[str, ...]) -> list[Path]:
    """The .py files of the named packages (or single modules)."""
    out: set[Path] = set()
    for name in modules:
        mod = importlib.import_module(name)
        if hasattr(mod, "__path__"):
            for d in mod.__path__:
                out.update(Path(d).rglob("*.py"))
        elif mod.__file__:
            out.add(Path(mod.__file__))
    return sorted(p.resolve() for p in out)


def executable_lines(path: Path) -> set[int]:
    """Lines of every function body in ``path`` (as the compiler's line table has them)."""
    lines: set[int] = set()
    stack = [compile(path.read_text(), str(path), "exec")]
    while stack:
        code = stack.pop()
        if code.co_flags & _CO_OPTIMIZED:
            lines.update(line for _, _, line in code.co_lines() if line is not None)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return lines


def corpus_inputs(name: str) -> list[bytes]:
    """The campaign corpus of ``name`` (not committed: may be empty), then its seeds."""
    inputs = [p.read_bytes() for p in sorted((HERE / "corpus" / name).glob("*")) if p.is_file()]
    return inputs + targets.TARGETS[name].seeds()


def replay(name: str, files: list[Path], inputs: list[bytes]) -> dict[str, set[int]]:
    """Run ``inputs`` through the target under a line tracer; the lines hit per file."""
    wanted = {str(p) for p in files}
    hit: dict[str, set[int]] = {f: set() for f in wanted}

    def local(frame: types.FrameType, event: str, arg: object) -> object:
        if event == "line":
            hit[frame.f_code.co_filename].add(frame.f_lineno)
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> object:
        if frame.f_code.co_filename in wanted:
            hit[frame.f_code.co_filename].add(frame.f_lineno)  # the call itself (the def line)
            return local
        return None

    targets.run_target(name, inputs[0])  # imports happen outside the trace
    sys.settrace(tracer)
    try:
        for data in inputs:
            try:
                targets.run_target(name, data)
            except Exception as exc:  # a finding is the campaign's job; report it here too
                print(f"{name}: input raised {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sys.settrace(None)
    return hit


def measure(name: str) -> dict[str, object]:
    target = targets.TARGETS[name]
    files = package_files(target.coverage_scope)
    inputs = corpus_inputs(name)
    n = len(inputs)
    hit = replay(name, files, inputs)
    total = covered = reached_total = reached = 0
    for f in files:
        lines = executable_lines(f)
        got = len(lines & hit[str(f)])
        total += len(lines)
        covered += got
        if got:  # a file the harness enters at all
            reached += 1
            reached_total += len(lines)
    return {"inputs": n, "covered": covered, "lines": total, "packages": list(target.coverage_scope),
            "files": len(files), "files_reached": reached, "lines_in_reached_files": reached_total}


def merge(name: str, cov: dict[str, object]) -> None:
    import fcntl

    with open(HERE / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data.setdefault(name, {"target": name})["line_coverage"] = cov
        RESULTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    names = a.names or [n for n in targets.TARGETS if (HERE / "corpus" / n).is_dir()]
    for name in names:
        cov = measure(name)
        pct = 100.0 * int(cov["covered"]) / max(1, int(cov["lines"]))  # type: ignore[call-overload]
        pct_reached = 100.0 * int(cov["covered"]) / max(1, int(cov["lines_in_reached_files"]))  # type: ignore[call-overload]
        print(f"{name}: {cov['inputs']} inputs, {cov['covered']}/{cov['lines']} lines ({pct:.0f} %) of "
              f"{', '.join(cov['packages'])}; {pct_reached:.0f} % of the {cov['files_reached']} files it "  # type: ignore[arg-type]
              "reaches", flush=True)
        if not a.no_write:
            merge(name, cov)
    return 0


if __name__ == "__main__":
    sys.exit(main())
