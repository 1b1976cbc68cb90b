"""The phases of a desktop start, read from what Kubernetes recorded, and what to expect of the next.

A start is timed from the request (the Session's creation; for a wake, the new pod's creation) to
the pod being Ready, with the phases between as the pod's conditions and its Events tell them:
scheduled (PodScheduled), image pulled (the last `Pulled` event), container started
(`containerStatuses[].state.running.startedAt`), ready (Ready). Its kind: `warm` (a claimed warm
desktop), `cached` (every image was "already present on machine"), `cold` (an image was pulled),
`unknown` (the events were gone). Kubernetes records these times to the second.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from streamspace.records import record

KINDS = ("warm", "cached", "cold")
PULLED_FRESH = "Successfully pulled image"
PULLED_PRESENT = "already present on machine"


@record
class StartRecord:
    kind: str  # warm | cached | cold | unknown
    ready_seconds: float
    scheduled_seconds: float | None = None
    pulled_seconds: float | None = None
    started_seconds: float | None = None


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _condition_time(pod: Mapping[str, Any], kind: str) -> datetime | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def start_record(session: Mapping[str, Any], pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]], *,
                 warm: bool, waking: bool, observed_at: datetime) -> StartRecord | None:
    """The record of the start that made `pod` the Running desktop of `session` (None when the
    times cannot be read)."""
    origin = parse_time(((pod if waking else session).get("metadata") or {}).get("creationTimestamp"))
    if origin is None:
        return None

    def since(moment: datetime | None) -> float | None:
        return None if moment is None else max(0.0, (moment - origin).total_seconds())

    if warm:  # already running before the request: ready when the claim was seen
        return StartRecord("warm", since(observed_at) or 0.0)
    pulled = [e for e in events if e.get("reason") == "Pulled"]
    messages = [str(e.get("message") or "") for e in pulled]
    kind = "cold" if any(PULLED_FRESH in m for m in messages) else \
        "cached" if messages and all(PULLED_PRESENT in m for m in messages) else "unknown"
    pulled_at = max((t for t in (parse_time(e.get("lastTimestamp") or e.get("eventTime")) for e in pulled) if t),
                    default=None)
    started_at = max((t for t in (parse_time(((c.get("state") or {}).get("running") or {}).get("startedAt"))
                                  for c in (pod.get("status") or {}).get("containerStatuses") or []) if t),
                     default=None)
    ready_at = _condition_time(pod, "Ready") or observed_at
    return StartRecord(kind, since(ready_at) or 0.0, since(_condition_time(pod, "PodScheduled")), since(pulled_at),
                       since(started_at))


def predicted_kind(claimed: bool, pulls_ahead: bool, recent: Mapping[str, int]) -> str:
    """How the next start of a Template will go: warm when a desktop was claimed; cached when its
    image is pre-pulled or it started recently (`recent`: kind -> count of its recent starts);
    else cold."""
    if claimed:
        return "warm"
    if pulls_ahead or recent.get("cached", 0) or recent.get("cold", 0):
        return "cached"
    return "cold"
