"""The one error type the domain raises for bad input."""

from __future__ import annotations


class ValidationError(ValueError):
    """Input that cannot be accepted.

    `field` is the dotted path of the offending input (``resources.memory``, ``spec.vnc.port``);
    the HTTP layer answers 400 ``{"error": "invalid <field>", "message": <message>}``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def join_field(prefix: str, name: str) -> str:
    """`spec` + `vnc` -> `spec.vnc`; an empty prefix yields the bare name."""
    return f"{prefix}.{name}" if prefix else name
