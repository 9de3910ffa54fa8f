#!/usr/bin/env python3
"""Run an atheris campaign for every target and summarise it for docs/security.md.

    python3 fuzz/campaign.py [--runs 1000000] [--jobs 2] [TARGET...]

For each target: executions, final coverage (libFuzzer's ``cov``/``ft``),
corpus size, crashes (files in fuzz/crashes/TARGET), wall time.  The summary is
written to fuzz/results.json and printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run_one(name: str, runs: int, max_len: int) -> dict[str, object]:
    log = HERE / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, str(HERE / "run_atheris.py"), name, f"-runs={runs}", f"-max_len={max_len}", "-print_final_stats=1"],
            stdout=f, stderr=subprocess.STDOUT, check=False,
        )
    text = log.read_text(errors="replace")
    execs = cov = ft = 0
    for m in re.finditer(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", text):
        execs, cov, ft = int(m.group(1)), int(m.group(2)), int(m.group(3))
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m:
        execs = int(m.group(1))
    crashes = sorted(p.name for p in (HERE / "crashes" / name).glob("*") if p.is_file())
    corpus = len(list((HERE / "corpus" / name).glob("*")))
    return {"target": name, "status": proc.returncode, "executions": execs, "coverage": cov, "features": ft,
            "corpus": corpus, "crashes": crashes, "seconds": round(time.monotonic() - start, 1)}


def main() -> int:
    import targets

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    names = a.names or list(targets.TARGETS)
    with ThreadPoolExecutor(a.jobs) as ex:
        results = list(ex.map(lambda n: run_one(n, a.runs, a.max_len), names))
    out = HERE / "results.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    old.update({r["target"]: r for r in results})
    out.write_text(json.dumps(old, indent=1, sort_keys=True))
    print("| target | executions | coverage (cov/ft) | corpus | crashes | time |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['target']} | {r['executions']:,} | {r['coverage']}/{r['features']} | {r['corpus']} | "
              f"{len(r['crashes'])} | {r['seconds']} s |")
    return 0 if all(not r["crashes"] and r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
