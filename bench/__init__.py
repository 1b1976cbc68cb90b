"""Benchmarks (`make bench`): each module `bench_*.py` has `run() -> dict` and reports ratios to a
baseline measured in the same run, because these machines are noisy."""
