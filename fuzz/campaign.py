#!/usr/bin/env python3
"""Run an atheris campaign for every target and summarise it for docs/security.md.

    python3 fuzz/campaign.py [--runs 1000000] [--jobs 2] [--max-time S] [TARGET...]

For each target: executions, final coverage (libFuzzer's ``cov``/``ft``),
corpus size, findings (files in fuzz/crashes/TARGET), wall time and exec/s.
Each result is merged into fuzz/results.json as soon as its target finishes
(a campaign can be stopped and resumed target by target; corpora persist in
fuzz/corpus/TARGET, so a second run continues where the first stopped and
its executions are added to the recorded total), and the table is printed as
Markdown at the end.

Two phases per target: coverage-guided atheris (``--max-time`` bounds it),
then with ``--fill`` uninstrumented mutation of the corpus it built
(fuzz/mutate_corpus.py) until the target's executions reach ``--runs``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results.json"

# Longest input per target kind: patch programs and texts stay small, so each
# execution is cheap and the mutations are dense.
MAX_LEN = {"patch": 512, "binary": 4096, "text": 8192}


def merge_result(name: str, *, atheris: dict[str, object] | None = None, mutation_executions: int = 0,
                 mutation_seconds: float = 0.0) -> dict[str, object]:
    """Add one phase's numbers to fuzz/results.json (locked: several campaigns may write)."""
    with open(HERE / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        r: dict[str, object] = dict(old.get(name, {"target": name}))
        if "atheris_executions" not in r:  # results written before the two phases were recorded apart
            r["atheris_executions"] = int(r.get("total_executions", r.get("executions", 0)))  # type: ignore[call-overload]
            r["atheris_seconds"] = float(r.get("total_seconds", r.get("seconds", 0.0)))  # type: ignore[arg-type]
        if atheris is not None:
            r.update(atheris)
            r["atheris_executions"] = int(r["atheris_executions"]) + int(atheris["executions"])  # type: ignore[call-overload]
            r["atheris_seconds"] = round(float(r["atheris_seconds"]) + float(atheris["seconds"]), 1)  # type: ignore[arg-type]
        r["mutation_executions"] = int(r.get("mutation_executions", 0)) + mutation_executions  # type: ignore[call-overload]
        r["mutation_seconds"] = round(float(r.get("mutation_seconds", 0.0)) + mutation_seconds, 1)  # type: ignore[arg-type]
        r["total_executions"] = int(r["atheris_executions"]) + int(r["mutation_executions"])  # type: ignore[call-overload]
        r["crashes"] = sorted(p.name for p in (HERE / "crashes" / name).glob("*") if p.is_file() and p.suffix != ".txt")
        r.pop("total_seconds", None)
        old[name] = r
        RESULTS.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
        return r


def run_one(name: str, kind: str, runs: int, max_time: int | None, fill: bool) -> dict[str, object]:
    """The coverage-guided phase (atheris); then, with ``fill``, corpus mutation up to ``runs`` in total."""
    log = HERE / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    start = time.monotonic()
    flags = [f"-runs={runs}", f"-max_len={MAX_LEN[kind]}", "-print_final_stats=1", "-reload=0"]
    if max_time:
        flags.append(f"-max_total_time={max_time}")
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, str(HERE / "run_atheris.py"), name, *flags],
                              stdout=f, stderr=subprocess.STDOUT, check=False)
    text = log.read_text(errors="replace")
    execs = cov = ft = 0
    for m in re.finditer(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", text):
        execs, cov, ft = int(m.group(1)), int(m.group(2)), int(m.group(3))
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m:
        execs = int(m.group(1))
    corpus = len(list((HERE / "corpus" / name).glob("*")))
    seconds = round(time.monotonic() - start, 1)
    result = merge_result(name, atheris={
        "target": name, "status": proc.returncode, "executions": execs, "coverage": cov, "features": ft,
        "corpus": corpus, "seconds": seconds,
    })
    print(f"{name}: atheris {execs:,} executions, cov {cov} ft {ft}, {seconds} s", flush=True)
    if fill and int(result["total_executions"]) < runs:  # type: ignore[call-overload]
        with open(HERE / "logs" / f"{name}.mutate.log", "w") as f:
            subprocess.run([sys.executable, str(HERE / "mutate_corpus.py"), name, f"--until={runs}"],
                           stdout=f, stderr=subprocess.STDOUT, check=False)
        result = json.loads(RESULTS.read_text())[name]
    print(f"{name}: {int(result['total_executions']):,} executions in total, {len(result['crashes'])} findings", flush=True)  # type: ignore[call-overload, arg-type]
    return result


def _lines(r: dict[str, object]) -> str:
    """Line coverage of the corpus over the target's parser (fuzz/corpus_coverage.py), if measured."""
    cov = r.get("line_coverage")
    if not isinstance(cov, dict) or not cov.get("lines"):
        return "-"
    return f"{int(cov['covered']):,}/{int(cov['lines']):,} ({100 * int(cov['covered']) // int(cov['lines'])} %)"


def table(results: dict[str, dict[str, object]]) -> str:
    rows = ["| target | coverage-guided executions | coverage (cov/ft) | corpus | corpus-mutation executions "
            "| total executions | lines of its parser the corpus reaches | findings |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(results):
        r = results[name]
        rows.append(f"| {name} | {int(r.get('atheris_executions', r['executions'])):,} | {r['coverage']}/{r['features']} "  # type: ignore[call-overload]
                    f"| {r['corpus']} | {int(r.get('mutation_executions', 0)):,} "  # type: ignore[call-overload]
                    f"| {int(r.get('total_executions', r['executions'])):,} | {_lines(r)} | {len(r['crashes'])} |")  # type: ignore[call-overload, arg-type]
    return "\n".join(rows)


def main() -> int:
    import targets

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-time", type=int, default=None, help="seconds per target (libFuzzer -max_total_time)")
    ap.add_argument("--fill", action="store_true", help="after atheris, mutate the corpus uninstrumented up to --runs")
    ap.add_argument("--table", action="store_true", help="only print the table of fuzz/results.json")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads(RESULTS.read_text())))
        return 0
    names = a.names or list(targets.TARGETS)
    with ThreadPoolExecutor(a.jobs) as ex:
        results = list(ex.map(lambda n: run_one(n, targets.TARGETS[n].kind, a.runs, a.max_time, a.fill), names))
    print(table({str(r["target"]): r for r in results}))
    return 0 if all(not r["crashes"] and r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
