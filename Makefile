# Convenience targets; the README's two commands are the supported entry points.
.PHONY: test fuzz fuzz-quick bench

test:
	scripts/test

# Long fuzzing campaigns: 10^6 executions per harness (coverage-guided atheris for up to
# 10 minutes per target, then uninstrumented mutation of its corpus), results in fuzz/results.json
fuzz:
	python3 -m pip install -q atheris
	python3 fuzz/campaign.py --runs 1000000 --jobs 2 --max-time 600 --fill

fuzz-quick:
	python3 -m pip install -q atheris
	python3 fuzz/campaign.py --runs 20000 --jobs 2 --max-time 60 --fill

bench:
	python3 bench/run_all.py
