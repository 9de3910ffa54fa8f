# Convenience targets; the README's two commands are the supported entry points.
.PHONY: test fuzz fuzz-quick bench

test:
	scripts/test

# Long fuzzing campaigns (atheris): 10^6 executions per harness, results in fuzz/results.json
fuzz:
	python3 -m pip install -q atheris
	python3 fuzz/campaign.py --runs 1000000 --jobs 2

fuzz-quick:
	python3 -m pip install -q atheris
	python3 fuzz/campaign.py --runs 20000 --jobs 2

bench:
	python3 bench/run_all.py
