# Convenience targets; the README's two commands are the supported entry points.
.PHONY: test fuzz fuzz-quick bench

test:
	scripts/test

# Long fuzzing campaigns: 10^6 executions per harness (coverage-guided atheris for up to
# 10 minutes per target, then uninstrumented mutation of its corpus), results in fuzz/results.json
fuzz:
	python3 -m pip install -q atheris
	python3 fuzz/campaign.py --runs 1000000 --jobs 2 --max-time 600 --fill
	python3 fuzz/corpus_coverage.py
	python3 fuzz/campaign.py --table

fuzz-quick:
	python3 -m pip install -q atheris
	python3 fuzz/campaign.py --runs 20000 --jobs 2 --max-time 60 --fill

# Every benchmark, each against its peer in the same run; each rewrites its section of
# docs/benchmarks.md.  bench_zoo needs root, the zoo (tests/images/build), xen-utils-4.17 and
# libguestfs-tools (virt-get-kernel); it takes about 15 minutes.
BENCHES = image_read ext4_read xfs_read btrfs_read fs_read volume_read config_engines grub2 entropy zoo
bench:
	set -e; for b in $(BENCHES); do python3 bench/bench_$$b.py; done
