"""The SQL of session state samples. Only this module speaks SQL to the session_state_samples table."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamspace.db import Connection

STATES = ("pending", "running", "hibernated", "failed")

_INSERT_SQL = """
INSERT INTO session_state_samples (sampled_at, pending, running, hibernated, failed)
VALUES (clock_timestamp(), %(pending)s, %(running)s, %(hibernated)s, %(failed)s)
ON CONFLICT (sampled_at) DO NOTHING
RETURNING sampled_at, pending, running, hibernated, failed
"""

# The last sample of each step-wide bucket from `start`: the state at the end of that stretch.
_RANGE_SQL = """
SELECT DISTINCT ON (bucket) bucket, sampled_at, pending, running, hibernated, failed FROM (
    SELECT floor(extract(epoch FROM sampled_at - %(start)s) / %(step)s)::bigint AS bucket, *
      FROM session_state_samples WHERE sampled_at >= %(start)s AND sampled_at < %(end)s
) AS samples
ORDER BY bucket, sampled_at DESC
"""


def insert(conn: Connection, counts: dict[str, int]) -> dict[str, Any] | None:
    """Keep one sample: {state: count} of STATES, taken now."""
    row = conn.execute(_INSERT_SQL, counts).fetchone()
    return dict(row) if row else None


def delete_older_than(conn: Connection, days: int) -> int:
    return conn.execute("DELETE FROM session_state_samples WHERE sampled_at < now() - make_interval(days => %s)",
                        (days,)).rowcount


def last_per_bucket(conn: Connection, start: datetime, end: datetime,
                    step_seconds: int) -> list[dict[str, Any]]:
    """{bucket index -> the last sample in [start + i*step, start + (i+1)*step)} for samples in [start, end)."""
    return [dict(r) for r in conn.execute(_RANGE_SQL, {"start": start, "end": end, "step": step_seconds})]
