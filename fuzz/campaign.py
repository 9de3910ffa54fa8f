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
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results.json"
_lock = threading.Lock()

# Longest input per target kind: patch programs and texts stay small, so each
# execution is cheap and the mutations are dense.
MAX_LEN = {"patch": 512, "binary": 4096, "text": 8192}


def run_one(name: str, kind: str, runs: int, max_time: int | None) -> dict[str, object]:
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
    crashes = sorted(p.name for p in (HERE / "crashes" / name).glob("*") if p.is_file())
    corpus = len(list((HERE / "corpus" / name).glob("*")))
    seconds = round(time.monotonic() - start, 1)
    result: dict[str, object] = {
        "target": name, "status": proc.returncode, "executions": execs, "coverage": cov, "features": ft,
        "corpus": corpus, "crashes": crashes, "seconds": seconds, "exec_per_s": round(execs / max(seconds, 0.1)),
    }
    with _lock:
        old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        prev = old.get(name, {})
        result["total_executions"] = int(prev.get("total_executions", prev.get("executions", 0))) + execs
        result["total_seconds"] = round(float(prev.get("total_seconds", prev.get("seconds", 0))) + seconds, 1)
        old[name] = result
        RESULTS.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    print(f"{name}: {execs:,} executions ({result['total_executions']:,} in total), cov {cov} ft {ft}, "
          f"{len(crashes)} findings, {seconds} s", flush=True)
    return result


def table(results: dict[str, dict[str, object]]) -> str:
    rows = ["| target | executions | coverage (cov/ft) | corpus | findings | CPU time |", "|---|---:|---:|---:|---:|---:|"]
    for r in results.values():
        rows.append(f"| {r['target']} | {int(r.get('total_executions', r['executions'])):,} | {r['coverage']}/{r['features']} "
                    f"| {r['corpus']} | {len(r['crashes'])} | {r.get('total_seconds', r['seconds'])} s |")  # type: ignore[arg-type]
    return "\n".join(rows)


def main() -> int:
    import targets

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-time", type=int, default=None, help="seconds per target (libFuzzer -max_total_time)")
    ap.add_argument("--table", action="store_true", help="only print the table of fuzz/results.json")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads(RESULTS.read_text())))
        return 0
    names = a.names or list(targets.TARGETS)
    with ThreadPoolExecutor(a.jobs) as ex:
        results = list(ex.map(lambda n: run_one(n, targets.TARGETS[n].kind, a.runs, a.max_time), names))
    print(table({str(r["target"]): r for r in results}))
    return 0 if all(not r["crashes"] and r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
