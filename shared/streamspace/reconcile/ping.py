"""PingSource ticks at the edge: the event must be a ping, and its data (when JSON) must name the task."""

from __future__ import annotations

import json
from typing import Any

from streamspace.events import PING_TYPE, MalformedEvent


def require_ping(event: Any, task: str) -> None:
    """Refuse (4xx) anything but a PingSource tick meant for `task`. A missed or duplicated tick is
    harmless: the sweeps are idempotent and the next tick catches up."""
    try:
        event_type = event["type"]
    except KeyError:
        event_type = None
    if event_type != PING_TYPE:
        raise MalformedEvent(f"{task} runs on {PING_TYPE} events, not {event_type!r}")
    data = event.get_data() if hasattr(event, "get_data") else getattr(event, "data", None)
    if isinstance(data, (bytes, str)) and data.strip():
        try:
            data = json.loads(data)
        except ValueError:
            raise MalformedEvent("the ping's data is not JSON") from None
    if isinstance(data, dict) and data.get("task") not in (None, task):
        raise MalformedEvent(f"this ping is for task {data.get('task')!r}, not {task!r}")
