"""``python -m streamspace convert-template FILE...``: legacy Template manifests -> stream.space/v1alpha1.

Reads one or more YAML files (``-`` for stdin, several documents per file allowed), converts every
Template with normalise_template_manifest and prints the result as a multi-document YAML stream,
ready for ``kubectl apply -f -``. Any problem is reported with its file, document and field, and
nothing is printed: a partial conversion is never mistaken for a complete one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from streamspace.domain.errors import ValidationError
from streamspace.domain.templates import normalise_template_manifest


def _read_documents(source: str, stdin: TextIO) -> list[Any]:
    import yaml  # imported here: the domain package stays free of parsing dependencies

    text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def convert(sources: list[str], stdin: TextIO) -> tuple[list[dict[str, Any]], list[str]]:
    """(converted manifests, problems as ``<file>[#doc]: <field>: <message>``)."""
    import yaml

    manifests: list[dict[str, Any]] = []
    problems: list[str] = []
    for source in sources:
        try:
            documents = _read_documents(source, stdin)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            problems.append(f"{source}: cannot read: {error}")
            continue
        if not documents:
            problems.append(f"{source}: no YAML documents")
        for index, document in enumerate(documents):
            try:
                manifests.append(normalise_template_manifest(document))
            except ValidationError as error:
                problems.append(f"{source}#{index + 1}: {error}")
    return manifests, problems


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(
        prog="streamspace convert-template",
        description="Convert Template manifests (legacy stream.streamspace.io/v1alpha1 with kasmvnc and "
        "flat resources, or current ones) to canonical stream.space/v1alpha1 manifests on stdout.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML file with Template documents; - for stdin")
    parser.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    args = parser.parse_args(argv)

    manifests, problems = convert(args.files, stdin or sys.stdin)
    if problems:
        for problem in problems:
            print(f"convert-template: {problem}", file=sys.stderr)
        return 1
    text = yaml.safe_dump_all(manifests, sort_keys=False, explicit_start=True, allow_unicode=True)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        (stdout or sys.stdout).write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
