"""Dead letters: record what the dead-letter broker delivers, list them, resolve them.

Decisions:
- A retry sends the event, unchanged (same id and source), back to the main broker, which delivers it
  to every Trigger it matches, as the first time; our subscribers are idempotent.
- ApiServerSource events are not retried: they carry a snapshot of the object, and replaying an old one
  would reconcile towards a stale spec. The resync PingSource repairs whatever such an event missed;
  an admin marks them handled once the cause is fixed.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from streamspace import audit
from streamspace.db import connection, transaction
from streamspace.domain.errors import Conflict, NotFound, Unavailable, ValidationError
from streamspace.events import APISERVER_PREFIX, send_to_broker
from streamspace.events.dead_letter import DeadLetter, parse_dead_letter, resend_headers
from streamspace.observability import metrics

from . import store

NOTE_MAX = 2000


def record(event: Any) -> str:
    """Keep the dead CloudEvent `event` (as functions-framework parsed it): recorded | duplicate | reopened."""

    letter = parse_dead_letter(event)
    with transaction() as conn:
        outcome = store.insert(conn, _row(letter))
    metrics.observe_dead_letter(letter.type, letter.error_code, outcome)
    return outcome


def _row(letter: DeadLetter) -> dict[str, Any]:
    return {"event_id": letter.event_id, "event_source": letter.source, "event_type": letter.type,
            "subject": letter.subject, "event_time": _timestamp(letter.time), "attributes": letter.attributes,
            "data": letter.data, "data_content_type": letter.data_content_type, "error_code": letter.error_code,
            "error_dest": letter.error_dest, "error_data": letter.error_data}


def _timestamp(text: str | None) -> Any:
    """The event's `time` (RFC 3339) as a datetime, or None when absent or unreadable (it is still in
    `attributes` as sent)."""
    from datetime import datetime

    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def status_filter(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in store.STATUSES:
        raise ValidationError("status", f"expected one of {', '.join(store.STATUSES)}")
    return value


def list_dead_letters(status: str | None, limit: int, offset: int) -> dict[str, Any]:
    """A page of dead letters, newest death first, without their data (GET one for it)."""

    with connection() as conn:
        total, rows = store.page(conn, status_filter(status), limit, offset)
        counts = store.counts(conn)
    return {"deadLetters": [to_api(r, with_data=False) for r in rows], "total": total, "counts": counts}


def get_dead_letter(letter_id: int) -> dict[str, Any]:
    with connection() as conn:
        return to_api(_existing(conn, letter_id), with_data=True)


def counts() -> dict[str, int]:
    with connection() as conn:
        return store.counts(conn)


def mark_handled(actor: Any, letter_id: int, note: object, client_ip: str) -> dict[str, Any]:
    """An admin dealt with the cause: the letter leaves the open list (kept for the record)."""

    text = _note(note)
    with transaction() as conn:
        row = _existing(conn, letter_id, lock=True)
        if row["status"] == "handled":
            raise Conflict(f"dead letter {letter_id} is already handled", error="already handled")
        store.resolve(conn, letter_id, "handled", actor.username, text)
        audit.record(conn, actor, "dead_letter.handled", "dead_letter", str(letter_id), client_ip,
                     {"type": row["event_type"], "source": row["event_source"], "id": row["event_id"]})
        return to_api(_existing(conn, letter_id), with_data=False)


def retry(actor: Any, letter_id: int, client_ip: str) -> dict[str, Any]:
    """Send the event back to the main broker. Nothing changes when the broker does not take it."""

    with transaction() as conn:
        row = _existing(conn, letter_id, lock=True)
        if row["status"] != "open":
            raise Conflict(f"dead letter {letter_id} is {row['status']}; only open ones are retried",
                           error="not open")
        if str(row["event_type"]).startswith(APISERVER_PREFIX):
            raise Conflict("an ApiServerSource event carries an old snapshot of its object and is not replayed;"
                           " the periodic resync repairs what it missed: mark it handled", error="not retryable")
        if not send_to_broker(resend_headers(row["attributes"]), bytes(row["data"] or b"")):
            raise Unavailable("the broker did not accept the event (K_SINK unset or unreachable); try again later")
        store.resolve(conn, letter_id, "retried", actor.username, "")
        audit.record(conn, actor, "dead_letter.retried", "dead_letter", str(letter_id), client_ip,
                     {"type": row["event_type"], "source": row["event_source"], "id": row["event_id"]})
        return to_api(_existing(conn, letter_id), with_data=False)


def _existing(conn: Any, letter_id: int, *, lock: bool = False) -> dict[str, Any]:
    row = store.get(conn, letter_id, lock=lock)
    if row is None:
        raise NotFound(f"no dead letter {letter_id}", error="dead letter not found")
    return row


def _note(note: object) -> str:
    if note is None:
        return ""
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise ValidationError("note", f"expected a string of at most {NOTE_MAX} characters")
    return note


def to_api(row: dict[str, Any], *, with_data: bool) -> dict[str, Any]:
    attributes = dict(row["attributes"] or {})
    body: dict[str, Any] = {
        "id": row["id"], "eventId": row["event_id"], "source": row["event_source"], "type": row["event_type"],
        "subject": row["subject"], "time": row["event_time"], "attributes": attributes,
        "dataContentType": row["data_content_type"],
        "error": {"code": row["error_code"], "destination": row["error_dest"], "response": row["error_data"]},
        "status": row["status"], "timesDead": row["times_dead"], "firstDeadAt": row["first_dead_at"],
        "lastDeadAt": row["last_dead_at"], "resolvedBy": row["resolved_by"], "resolvedAt": row["resolved_at"],
        "note": row["note"],
    }
    if with_data:
        body.update(_data_to_api(row["data"], row["data_content_type"]))
    return body


def _data_to_api(data: bytes | memoryview | None, content_type: str | None) -> dict[str, Any]:
    """JSON data as JSON; anything else (or JSON that does not parse) as `dataBase64`."""
    if data is None:
        return {"data": None}
    raw = bytes(data)
    if "json" in (content_type or "application/json").lower():
        try:
            return {"data": json.loads(raw)}
        except ValueError:
            pass
    return {"data": None, "dataBase64": base64.b64encode(raw).decode("ascii")}
