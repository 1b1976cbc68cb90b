"""The reviewed table of every HTTP route and the access it requires (tests/identity/route_access.txt).

    python -m tests.identity.route_table           # show how the routes differ from the table
    python -m tests.identity.route_table --write   # regenerate the table (then review the diff!)

test_route_access.py fails while a route exists that the table does not list with the same access,
so adding a route, or changing its access, is a reviewed change of this file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

TABLE = Path(__file__).with_name("route_access.txt")
HEADER = """\
# Every HTTP route of every function and the access it requires: FUNCTION METHOD PATH ACCESS.
# Access: public (no token), signed (HMAC, checked by the handler), user, operator, admin.
# Reviewed by hand. Regenerate with `python -m tests.identity.route_table --write` and review the diff.
"""


def current_lines() -> list[str]:
    from streamspace.functions import http_apis

    lines = {f"{api.function} {route.method} {route.path} {route.access.value}"
             for api in http_apis() for route in api.routes}
    return sorted(lines)


def committed_lines() -> list[str]:
    if not TABLE.exists():
        return []
    return [line.strip() for line in TABLE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def diff(committed: list[str], current: list[str]) -> list[str]:
    gone, new = sorted(set(committed) - set(current)), sorted(set(current) - set(committed))
    return [f"- {line}" for line in gone] + [f"+ {line}" for line in new]


def main(argv: list[str]) -> int:
    # Loading the functions builds their Apis, which read settings: give them harmless ones.
    os.environ.setdefault("JWT_SECRET", "route-table-" + "x" * 40)
    os.environ.setdefault("STREAMSPACE_DATA_DIR", tempfile.mkdtemp(prefix="streamspace-routes-"))
    current = current_lines()
    if "--write" in argv:
        TABLE.write_text(HEADER + "\n".join(current) + "\n", encoding="utf-8")
        print(f"wrote {TABLE} ({len(current)} routes)")
        return 0
    changes = diff(committed_lines(), current)
    print("\n".join(changes) if changes else "route table is up to date")
    return 1 if changes else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
