"""Run every benchmark (or those named) and print their figures: `python -m bench [name ...]`."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv] or names
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
