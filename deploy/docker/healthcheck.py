"""Container HEALTHCHECK (no curl in the slim image): exit 0 when the process serves.

HTTP function: GET /health on $PORT answers 200. CloudEvent function (functions/<name>/main.py uses
functions_framework.cloud_event): $PORT accepts a TCP connection. FUNCTION=all: GET /health on $API_PORT.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path


def is_cloud_event(function: str, root: Path) -> bool:
    main = root / "functions" / function / "main.py"
    try:
        return "functions_framework.cloud_event" in main.read_text(encoding="utf-8")
    except OSError:
        return False


def check(function: str, root: Path, host: str = "127.0.0.1") -> bool:
    if function == "all":
        port = int(os.environ.get("API_PORT", "8000"))
    else:
        port = int(os.environ.get("PORT", "8080"))
    if function != "all" and is_cloud_event(function, root):
        try:
            with socket.create_connection((host, port), timeout=3):
                return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=3) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def main() -> int:
    function = os.environ.get("FUNCTION", "")
    root = Path(os.environ.get("STREAMSPACE_APP_DIR", "/app"))
    return 0 if function and check(function, root) else 1


if __name__ == "__main__":
    sys.exit(main())
