"""Benchmarks. `make bench` prints the production table (bench_production); each module `bench_*.py` has
`run() -> dict` (`python -m bench NAME`) and reports ratios to a
baseline measured in the same run, because these machines are noisy."""
