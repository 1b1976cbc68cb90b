"""`python -m bench`: the production table (bench_production) as ratios to hello world, with the
targets each meets. `python -m bench NAME ...` runs the named benchmarks instead and prints their
figures as JSON (e.g. `python -m bench scale auth idle_sweep`)."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if not argv:
        from bench.bench_production import run, table

        result = run()
        if os.environ.get("BENCH_JSON"):  # the raw figures too, for docs and comparisons
            Path(os.environ["BENCH_JSON"]).write_text(json.dumps(result, indent=2, default=str))
        print(table(result), flush=True)
        return 0
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(n[6:] for n in names)}",
              file=sys.stderr)
        return 2
    failures = 0
    for name in wanted:
        started = time.perf_counter()
        try:
            result = importlib.import_module(f"bench.{name}").run()
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            failures += 1
            print(f"== {name}: FAILED: {exc!r}", flush=True)
            continue
        print(f"== {name} ({time.perf_counter() - started:.1f}s)")
        print(json.dumps(result, indent=2, default=str), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
