"""``python -m streamspace convert-template|convert-session PATH...``: manifests of the earlier
StreamSpace (``stream.streamspace.io/v1alpha1``, flat resources, ``kasmvnc``, free-form
capabilities) -> canonical ``stream.space/v1alpha1`` objects.

A PATH is a file (several YAML documents allowed), a folder (every ``*.yaml``/``*.yml`` below it)
or ``-`` for stdin. Every file is converted on its own: the converted objects go to stdout (or
``-o``) as one multi-document stream, ready for ``kubectl apply -f -``, and stderr gets a report
per file naming every problem and every change. The exit code is 1 only when something could not
be converted (a document with problems, an unreadable file), so a pipeline with ``set -o pipefail``
still stops on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from streamspace.domain.conversion import API_VERSION, LEGACY_API_VERSION, Conversion
from streamspace.domain.sessions import SESSION_KIND, convert_session_manifest
from streamspace.domain.templates import TEMPLATE_KIND, convert_template_manifest

CONVERTERS: dict[str, tuple[str, Callable[[object], Conversion]]] = {
    "convert-template": (TEMPLATE_KIND, convert_template_manifest),
    "convert-session": (SESSION_KIND, convert_session_manifest),
}


@dataclass
class Report:
    """What converting a set of files gave: the objects, and a line for each thing worth saying."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    converted: int = 0
    failed: int = 0
    unreadable: int = 0

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.unreadable == 0


def _files(paths: list[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        folder = Path(path)
        if path != "-" and folder.is_dir():
            found.extend(str(p) for p in sorted(folder.rglob("*")) if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            found.append(path)
    return found


def _documents(source: str, stdin: TextIO) -> list[Any]:
    import yaml  # imported here: the domain package stays free of parsing dependencies

    text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _label(doc: Any) -> str:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return f" {name}" if isinstance(name, str) and name else ""


def convert(command: str, paths: list[str], stdin: TextIO) -> Report:
    import yaml

    kind, converter = CONVERTERS[command]
    report = Report()
    for source in _files(paths):
        try:
            documents = _documents(source, stdin)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            report.unreadable += 1
            report.lines.append(f"{source}: cannot read: {str(error).splitlines()[0]}")
            continue
        converted = failed = 0
        for index, doc in enumerate(documents, start=1):
            where = f"{source}#{index}{_label(doc)}"
            doc_kind = doc.get("kind") if isinstance(doc, dict) else None
            if doc_kind != kind:
                other = next((c for c, (k, _) in CONVERTERS.items() if k == doc_kind), None)
                hint = f" (use {other})" if other else ""
                report.lines.append(f"{where}: skipped, kind {doc_kind!r} is not a {kind}{hint}")
                continue
            conversion = converter(doc)
            for warning in conversion.warnings:
                report.lines.append(f"{where}: changed: {warning}")
            if conversion.manifest is None:
                failed += 1
                for problem in conversion.problems:
                    report.lines.append(f"{where}: NOT converted: {problem}")
                continue
            converted += 1
            report.manifests.append(conversion.manifest)
        report.converted += converted
        report.failed += failed
        report.lines.append(f"{source}: {converted} converted, {failed} not converted")
    return report


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None,
         command: str = "convert-template") -> int:
    import yaml

    kind = CONVERTERS[command][0]
    parser = argparse.ArgumentParser(
        prog=f"streamspace {command}",
        description=f"Convert {kind} manifests (the earlier {LEGACY_API_VERSION} format, or current "
        f"ones) to canonical {API_VERSION} manifests, file by file, with a report on stderr.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML file, folder of YAML files, or - for stdin")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the converted objects to FILE, not stdout")
    args = parser.parse_args(argv)

    report = convert(command, args.paths, stdin or sys.stdin)
    for line in report.lines:
        print(f"{command}: {line}", file=sys.stderr)
    total = report.converted + report.failed
    print(f"{command}: {report.converted} of {total} {kind}s converted"
          + (f"; {report.unreadable} file(s) unreadable" if report.unreadable else ""), file=sys.stderr)
    text = yaml.safe_dump_all(report.manifests, sort_keys=False, explicit_start=True, allow_unicode=True)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        (stdout or sys.stdout).write(text)
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
