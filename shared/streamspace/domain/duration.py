"""Go-style durations as used in Session specs and settings: ``90s``, ``30m``, ``2h``, ``1h30m``, ``0``.

Only whole hours, minutes and seconds, written largest unit first: every value these fields
need, and a grammar small enough for the CRD pattern to express exactly what this module accepts.
"""

from __future__ import annotations

import re

from streamspace.domain.errors import ValidationError

# The CRD schemas use this exact string (tests/crds checks they agree). Go's regexp has no
# lookahead, so "at least one unit" is spelled out as alternatives.
DURATION_PATTERN = r"^(0|[0-9]{1,9}h([0-9]{1,9}m)?([0-9]{1,9}s)?|[0-9]{1,9}m([0-9]{1,9}s)?|[0-9]{1,9}s)$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_UNIT_RE = re.compile(r"([0-9]+)([hms])")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_MAX_SECONDS = (10**9 - 1) * 3600

DURATION_FORM = "a duration such as 90s, 30m, 2h or 1h30m (0 for none)"


class DurationError(ValidationError):
    """A duration that does not follow the accepted form."""


def parse_duration(value: object, field: str) -> int:
    """Duration text -> whole seconds (``1h30m`` -> 5400, ``0`` -> 0)."""
    if not isinstance(value, str) or _DURATION_RE.fullmatch(value) is None:
        raise DurationError(field, f"expected {DURATION_FORM}, got {value!r}")
    return sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _UNIT_RE.findall(value))


def format_duration(seconds: int) -> str:
    """Whole seconds -> the canonical text parse_duration accepts (5400 -> ``1h30m``, 0 -> ``0``)."""
    if not 0 <= seconds <= _MAX_SECONDS:
        raise ValueError(f"duration out of range: {seconds} seconds")
    if seconds == 0:
        return "0"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{amount}{unit}" for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if amount)
