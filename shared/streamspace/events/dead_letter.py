"""Dead letters as Knative Eventing delivers them, read and built in one place.

When a delivery fails for good, Knative's dispatcher (knative.dev/eventing pkg/kncloudevents,
dispatchExecutionInfoTransformers) sends the ORIGINAL event, same id and source, to the dead-letter sink
with three extensions added:

- `knativeerrordest`: the URL it failed to reach (the Trigger's subscriber);
- `knativeerrorcode`: the HTTP status the subscriber answered (an integer; a string in binary mode);
- `knativeerrordata`: the subscriber's response body, standard base64, cut at 1024 encoded characters.

Our dead-letter sink is a second broker, so the event arrives through its Trigger, which adds the
broker's own extensions (`knativearrivaltime`, `knativebrokerttl`) like on any broker delivery.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from streamspace.events import MalformedEvent, binary_headers
from streamspace.records import record

ERROR_DEST = "knativeerrordest"
ERROR_CODE = "knativeerrorcode"
ERROR_DATA = "knativeerrordata"
ERROR_DATA_MAX = 1024  # attributes.KnativeErrorDataExtensionMaxLength: encoded characters kept
# Extensions a broker or the dispatcher adds on the way: dropped when a dead letter is sent again,
# so the broker stamps fresh ones (a stale knativebrokerttl would shorten the new journey).
DELIVERY_EXTENSIONS = frozenset({ERROR_DEST, ERROR_CODE, ERROR_DATA, "knativearrivaltime", "knativebrokerttl"})
_REQUIRED = ("id", "source", "type", "specversion")


@record
class DeadLetter:
    """One dead CloudEvent: the original event plus why it died."""

    event_id: str
    source: str
    type: str
    subject: str | None
    time: str | None
    attributes: dict[str, str]  # every context attribute and extension, as strings
    data: bytes | None
    data_content_type: str | None
    error_code: int | None
    error_dest: str
    error_data: str


def parse_dead_letter(event: Any) -> DeadLetter:
    """A DeadLetter from the CloudEvent functions-framework hands us (cloudevents.http.CloudEvent)."""
    attributes = {str(k).lower(): _text(v) for k, v in event.get_attributes().items() if v is not None}
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        raise MalformedEvent(f"not a CloudEvent: no {', '.join(missing)}")
    code_text = attributes.get(ERROR_CODE, "").strip()
    if code_text and not code_text.lstrip("-").isdigit():
        raise MalformedEvent(f"{ERROR_CODE} must be an integer, not {code_text[:40]!r}")
    content_type = attributes.get("datacontenttype")
    return DeadLetter(
        event_id=attributes["id"], source=attributes["source"], type=attributes["type"],
        subject=attributes.get("subject"), time=attributes.get("time"), attributes=attributes,
        data=_data_bytes(event.get_data(), content_type), data_content_type=content_type,
        error_code=int(code_text) if code_text else None,
        error_dest=attributes.get(ERROR_DEST, ""),
        error_data=decode_error_data(attributes.get(ERROR_DATA, "")),
    )


def decode_error_data(encoded: str) -> str:
    """The subscriber's response body from `knativeerrordata`: base64 cut at 1024 characters, so the
    last characters may be an incomplete group or a split UTF-8 sequence; kept as sent when not base64."""
    text = encoded.strip()
    if not text:
        return ""
    usable = text[: len(text) - len(text) % 4] if not text.endswith("=") else text
    try:
        return base64.b64decode(usable, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return encoded


def dead_letter_event(headers: dict[str, str], body: bytes, *, code: int, dest: str,
                      response_body: bytes) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a binary-mode event as the dispatcher sends it to the dead-letter sink:
    the original event's headers plus the three error extensions (used by the local relay and tests)."""
    encoded = base64.b64encode(response_body).decode("ascii")[:ERROR_DATA_MAX]
    out = {k: v for k, v in headers.items()
           if k.lower().removeprefix("ce-") not in DELIVERY_EXTENSIONS}
    out.update({f"ce-{ERROR_DEST}": dest, f"ce-{ERROR_CODE}": str(code), f"ce-{ERROR_DATA}": encoded})
    return out, body


def resend_headers(attributes: dict[str, str]) -> dict[str, str]:
    """Binary-mode headers to send a recorded event again: its own id, source, type, subject, time and
    extensions, without what brokers and the dispatcher added on its way."""
    extensions = {k: v for k, v in attributes.items()
                  if k not in DELIVERY_EXTENSIONS and k not in ("id", "source", "type", "subject", "time",
                                                                "specversion", "datacontenttype")}
    headers = binary_headers(attributes["type"], attributes["source"], subject=attributes.get("subject"),
                             extensions=extensions, event_id=attributes["id"])
    if attributes.get("time"):
        headers["ce-time"] = attributes["time"]
    headers["Content-Type"] = attributes.get("datacontenttype") or "application/json"
    return headers


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _data_bytes(data: Any, content_type: str | None) -> bytes | None:
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str) and "json" not in (content_type or "").lower():
        return data.encode("utf-8")
    return json.dumps(data).encode("utf-8")
