"""The result of converting one manifest: what came out, what stopped it, what was changed on the way."""

from __future__ import annotations

from typing import Any

from streamspace.records import record

# Our API group and version (Templates and Sessions), and the earlier StreamSpace's, for both alike.
API_GROUP = "stream.space"
API_VERSION = f"{API_GROUP}/v1alpha1"
LEGACY_API_GROUP = "stream.streamspace.io"
LEGACY_API_VERSION = f"{LEGACY_API_GROUP}/v1alpha1"

# Set on a converted object whose name had to change to meet the name rule, so people can find it.
ORIGINAL_NAME_ANNOTATION = "stream.space/original-name"
# What a conversion changed (renames, unknown capabilities kept as tags), one note a line, so the
# catalog and `kubectl describe` can show it after the fact.
CONVERSION_NOTES_ANNOTATION = "stream.space/conversion-notes"


@record
class Conversion:
    """`manifest` is None exactly when `problems` is not empty. Problems and warnings are each
    ``<field>: <message>``; a warning names something accepted but changed (a rename, an unknown
    capability kept as a tag)."""

    manifest: dict[str, Any] | None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
