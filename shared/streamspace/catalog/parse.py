"""A repository checkout -> the Templates it offers, plus one error per file or document it refused.

Every `*.yaml` / `*.yml` file (multi-document files too) is read with PyYAML's safe loader. Documents
of kind Template in the stream.space or legacy stream.streamspace.io group are normalised and
validated by `streamspace.domain.templates` (the rules template-reconcile applies), so the catalog
offers exactly what the cluster would accept. Other kinds (and other products' `Template` kinds)
are ignored; an invalid Template, or a file that cannot be read, is a per-file error, never dropped
silently.

Repository files are hostile input. Limits (`Limits`): file size, file count, total bytes,
documents per file, and YAML complexity: a pre-scan of the event stream refuses too many aliases
or anchors, too many nodes, or too deep nesting before anything is built, so an alias bomb
("billion laughs") costs a few milliseconds; a built document whose expanded node count is above
the cap is refused too. Symbolic links are never followed (git checks them out as plain files; a
symlink found anyway is a per-file error).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamspace.domain.errors import Invalid, ValidationError
from streamspace.domain.templates import (
    API_VERSION,
    LEGACY_API_VERSION,
    TEMPLATE_KIND,
    normalise_template_manifest,
    validate_template_spec,
)
from streamspace.records import record

if TYPE_CHECKING:
    import yaml

YAML_SUFFIXES = (".yaml", ".yml")
OUR_GROUPS = tuple(v.split("/", 1)[0] for v in (API_VERSION, LEGACY_API_VERSION))


def _yaml() -> tuple[Any, Any]:
    """PyYAML and its safe loader (the C one when built), imported with the first file read: the
    import is about a third of catalog-sync's own start, and a tick that finds no repository due
    reads no file."""
    import yaml

    return yaml, getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@record
class Limits:
    max_file_bytes: int = 256 * 1024
    max_files: int = 2000  # YAML files looked at
    max_total_bytes: int = 32 * 1024 * 1024  # YAML bytes read in one checkout
    max_documents_per_file: int = 100
    max_events_per_file: int = 50_000  # YAML parser events (~ nodes) per file
    max_aliases_per_file: int = 32
    max_anchors_per_file: int = 32
    max_depth: int = 64
    max_expanded_nodes: int = 100_000  # per document, aliases expanded
    max_templates: int = 2000
    max_problems_per_document: int = 5


DEFAULT_LIMITS = Limits()


class CheckoutRefused(Invalid):
    """The checkout as a whole is beyond a limit: the sync fails and the previous catalog stays."""

    default_error = "repository refused"


@record
class CatalogEntry:
    name: str
    display_name: str
    description: str
    category: str
    app_type: str
    icon: str
    tags: list[str]
    manifest: dict[str, Any]
    source_path: str

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "category": self.category,
            "app_type": self.app_type,
            "icon": self.icon,
            "tags": self.tags,
            "manifest": self.manifest,
            "source_path": self.source_path,
        }


@record
class FileError:
    path: str
    message: str
    document: int | None = None  # 1-based, for files with several documents

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.document is not None:
            out["document"] = self.document
        return out


@dataclass
class ParseResult:
    templates: list[CatalogEntry] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


class _TooComplex(Exception):
    pass


def _scan(text: str, limits: Limits) -> None:
    """Walk the YAML event stream (no objects built) and stop at the first limit crossed."""
    yaml, loader = _yaml()
    events = aliases = anchors = depth = documents = 0
    for event in yaml.parse(text, Loader=loader):
        events += 1
        if events > limits.max_events_per_file:
            raise _TooComplex(f"more than {limits.max_events_per_file} YAML nodes")
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases_per_file:
                raise _TooComplex(f"more than {limits.max_aliases_per_file} YAML aliases (alias bombs are refused)")
            continue
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            anchors += 1
            if anchors > limits.max_anchors_per_file:
                raise _TooComplex(f"more than {limits.max_anchors_per_file} YAML anchors")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limits.max_depth:
                raise _TooComplex(f"nested deeper than {limits.max_depth} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > limits.max_documents_per_file:
                raise _TooComplex(f"more than {limits.max_documents_per_file} YAML documents")


def _expanded_size_within(value: Any, cap: int) -> bool:
    """Count nodes with aliases expanded (shared objects counted each time), stopping at `cap`."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > cap:
            return False
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return True


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"YAML syntax error{where}: {problem}"


def _is_ours(doc: Mapping[str, Any]) -> bool | None:
    """True: a StreamSpace Template; False: not ours (ignored); None: a Template without apiVersion."""
    if doc.get("kind") != TEMPLATE_KIND:
        return False
    api_version = doc.get("apiVersion")
    if api_version is None or api_version == "":
        return None
    return isinstance(api_version, str) and api_version.split("/", 1)[0] in OUR_GROUPS


def _entry(doc: Mapping[str, Any], path: str, limits: Limits) -> CatalogEntry:
    problems = validate_template_spec(doc.get("spec"))
    if problems:
        shown = problems[: limits.max_problems_per_document]
        more = len(problems) - len(shown)
        raise ValidationError("spec", "; ".join(shown) + (f" (and {more} more)" if more else ""))
    manifest = normalise_template_manifest(doc)
    manifest["metadata"].pop("namespace", None)  # installed into the configured namespace
    try:
        manifest = json.loads(json.dumps(manifest))
    except (TypeError, ValueError):
        raise ValidationError("<document>", "holds values JSON cannot represent (binary, sets)") from None
    spec = manifest["spec"]
    return CatalogEntry(
        name=manifest["metadata"]["name"],
        display_name=spec.get("displayName", ""),
        description=spec.get("description", ""),
        category=spec.get("category", ""),
        app_type=spec.get("appType", "desktop"),
        icon=spec.get("icon", ""),
        tags=list(spec.get("tags") or []),
        manifest=manifest,
        source_path=path,
    )


def parse_text(text: str, path: str, limits: Limits = DEFAULT_LIMITS) -> tuple[list[CatalogEntry], list[FileError]]:
    """One file's Templates and errors. Never raises for bad content."""
    yaml, loader = _yaml()
    try:
        _scan(text, limits)
        documents = list(yaml.load_all(text, Loader=loader))
    except _TooComplex as exc:
        return [], [FileError(path, f"refused: {exc}")]
    except yaml.YAMLError as exc:
        return [], [FileError(path, _yaml_error(exc))]
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        # The safe constructor can still fail on odd content (unhashable keys, bad timestamps).
        return [], [FileError(path, f"unreadable YAML: {type(exc).__name__}: {str(exc)[:200]}")]
    entries: list[CatalogEntry] = []
    errors: list[FileError] = []
    several = len(documents) > 1
    for index, doc in enumerate(documents, start=1):
        number = index if several else None
        if not isinstance(doc, Mapping):
            continue  # empty documents, scalars, lists: not a manifest
        ours = _is_ours(doc)
        if ours is False:
            continue
        if not _expanded_size_within(doc, limits.max_expanded_nodes):
            errors.append(FileError(path, f"refused: more than {limits.max_expanded_nodes} nodes once aliases "
                                          "are expanded", number))
            continue
        if ours is None:
            errors.append(FileError(path, f"apiVersion: required ({API_VERSION})", number))
            continue
        try:
            entries.append(_entry(doc, path, limits))
        except ValidationError as exc:
            errors.append(FileError(path, str(exc), number))
    return entries, errors


def _yaml_files(root: Path, result: ParseResult) -> Iterator[tuple[str, Path]]:
    """(relative path, absolute path) of every YAML file, sorted; symlinks reported, never followed."""
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not os.path.islink(os.path.join(directory, d)))
        for name in sorted(filenames):
            if not name.lower().endswith(YAML_SUFFIXES):
                continue
            full = Path(directory) / name
            relative = full.relative_to(root).as_posix()
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                result.errors.append(FileError(relative, "symbolic link not followed"))
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            yield relative, full


def _read(full: Path, max_bytes: int) -> bytes:
    fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read(max_bytes + 1)


def parse_checkout(root: Path, limits: Limits = DEFAULT_LIMITS) -> ParseResult:
    """Every Template in a checkout. Raises CheckoutRefused when the checkout is beyond a limit."""
    result = ParseResult()
    seen: dict[str, str] = {}
    root = root.resolve()
    for relative, full in _yaml_files(root, result):
        result.files += 1
        if result.files > limits.max_files:
            raise CheckoutRefused(f"more than {limits.max_files} YAML files; keep templates in a smaller repository")
        data = _read(full, limits.max_file_bytes)
        if len(data) > limits.max_file_bytes:
            result.errors.append(FileError(relative, f"refused: larger than {limits.max_file_bytes // 1024} KiB"))
            continue
        result.bytes += len(data)
        if result.bytes > limits.max_total_bytes:
            raise CheckoutRefused(f"more than {limits.max_total_bytes // (1024 * 1024)} MiB of YAML")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            result.errors.append(FileError(relative, "not UTF-8 text"))
            continue
        entries, errors = parse_text(text, relative, limits)
        result.errors.extend(errors)
        for entry in entries:
            first = seen.get(entry.name)
            if first is not None:
                result.errors.append(FileError(relative, f"duplicate template name {entry.name!r} "
                                                         f"(first defined in {first}); this one is ignored"))
                continue
            seen[entry.name] = relative
            result.templates.append(entry)
            if len(result.templates) > limits.max_templates:
                raise CheckoutRefused(f"more than {limits.max_templates} templates")
    return result
