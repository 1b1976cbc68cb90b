"""Sessions by state over time.

Where the history comes from: the idle-sweep PingSource tick (every minute) counts the live sessions by
state in the index and keeps the counts (`record_sample`). A sample is the truth at its moment, so the
history stays right after restarts and whatever changed rows in between; the cost is one indexed count
a minute, off every request path. A minute without a tick is a gap, never a guess.

How it is read: `history` cuts the last `hours` into buckets `step` seconds wide, aligned to multiples of
`step` (a refreshed plot does not shift), and answers the last sample of each bucket, the state at the
end of that stretch, or nulls for a bucket without a sample.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from streamspace.config import environment
from streamspace.db import connection, transaction
from streamspace.domain.errors import ValidationError
from streamspace.sessions import store as session_store

from . import store

STATES = store.STATES
TICK_SECONDS = 60  # the idle-sweep PingSource's schedule: a narrower step only shows gaps
MAX_POINTS = 1000
_NICE_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_DEFAULT_POINTS = 48


def record_sample() -> dict[str, Any] | None:
    """The tick's part: keep the counts of now and drop samples past SESSION_HISTORY_DAYS."""
    with transaction() as conn:
        row = store.insert(conn, session_store.live_counts_by_state(conn))
        store.delete_older_than(conn, environment().session_history_days)
    return row


def default_step(hours: int) -> int:
    """The narrowest round step that covers `hours` in at most 48 points."""
    wanted = hours * 3600 / _DEFAULT_POINTS
    return next((step for step in _NICE_STEPS if step >= wanted), _NICE_STEPS[-1])


def history(hours: int, step_seconds: int | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """{"from", "to", "stepSeconds", "retentionDays", "states", "points": [{"at", "sampledAt", <state>: n}]}."""
    days = environment().session_history_days
    if not 1 <= hours <= days * 24:
        raise ValidationError("hours", f"expected 1 to {days * 24} (SESSION_HISTORY_DAYS is {days})")
    step = default_step(hours) if step_seconds is None else step_seconds
    if step < TICK_SECONDS:
        raise ValidationError("step", f"at least {TICK_SECONDS}s: sessions are counted once a minute")
    count = math.ceil(hours * 3600 / step)
    if count > MAX_POINTS:
        raise ValidationError("step", f"{hours}h in steps of {step}s is {count} points; at most {MAX_POINTS}")
    now = now or datetime.now(UTC)
    epoch = int(now.timestamp())
    last = datetime.fromtimestamp(epoch - epoch % step, UTC)
    start = last - timedelta(seconds=step * (count - 1))
    with connection() as conn:
        found = {row["bucket"]: row for row in store.last_per_bucket(conn, start, last + timedelta(seconds=step),
                                                                      step)}
    points = []
    for index in range(count):
        row = found.get(index)
        points.append({"at": start + timedelta(seconds=step * index),
                       "sampledAt": row["sampled_at"] if row else None,
                       **{state: (int(row[state]) if row else None) for state in STATES}})
    return {"from": start, "to": now, "stepSeconds": step, "retentionDays": days,
            "states": list(STATES), "points": points}

