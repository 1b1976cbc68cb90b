"""Recorded desktop starts (table session_starts): the only SQL on that table."""

from __future__ import annotations

from typing import Any

from streamspace.db import execute, fetch_all
from streamspace.domain.starts import KINDS, StartRecord

WINDOW = 100  # the latest starts per template and kind that the percentiles read
RECENT_HOURS = 24


def record(namespace: str, session: str, pod: str, template: str, start: StartRecord) -> None:
    """Keep one start (once per session and pod: a redelivered event records nothing new)."""
    execute(
        "INSERT INTO session_starts (namespace, session, pod, template, kind, scheduled_seconds, pulled_seconds,"
        " started_seconds, ready_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (namespace, session, pod) DO NOTHING",
        (namespace, session, pod, template, start.kind, start.scheduled_seconds, start.pulled_seconds,
         start.started_seconds, start.ready_seconds))


_PERCENTILES_SQL = """
SELECT kind, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ready_seconds) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ready_seconds) AS p95,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY scheduled_seconds) AS scheduled_p50,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY pulled_seconds) AS pulled_p50,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY started_seconds) AS started_p50,
       count(*) FILTER (WHERE recorded_at > now() - make_interval(hours => %(recent)s)) AS recent
  FROM (SELECT *, row_number() OVER (PARTITION BY kind ORDER BY recorded_at DESC) AS age
          FROM session_starts WHERE namespace = %(ns)s AND (%(template)s::text IS NULL OR template = %(template)s)) s
 WHERE age <= %(window)s
 GROUP BY kind
"""


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def percentiles(namespace: str, template: str | None) -> dict[str, dict[str, Any]]:
    """kind -> {n, p50, p95 (request to ready, seconds), phases p50 (scheduled, pulled, started),
    recent (starts in the last day)} over the latest WINDOW starts of each kind; one template or all."""
    rows = fetch_all(_PERCENTILES_SQL, {"ns": namespace, "template": template, "window": WINDOW,
                                        "recent": RECENT_HOURS})
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out[row["kind"]] = {"n": int(row["n"]), "p50": _seconds(row["p50"]), "p95": _seconds(row["p95"]),
                            "phasesP50": {"scheduled": _seconds(row["scheduled_p50"]),
                                          "pulled": _seconds(row["pulled_p50"]),
                                          "started": _seconds(row["started_p50"]), "ready": _seconds(row["p50"])},
                            "recent": int(row["recent"])}
    return out


MIN_SAMPLES = 3  # fewer starts than this say nothing yet


def expected_seconds(namespace: str, kind: str, own: dict[str, dict[str, Any]]) -> float | None:
    """The median start of `kind` for a template (`own`: its percentiles), else for every template,
    else None."""
    if kind not in KINDS:
        return None
    mine = own.get(kind)
    if mine and mine["n"] >= MIN_SAMPLES:
        return mine["p50"]
    every = percentiles(namespace, None).get(kind)
    if every and every["n"] >= MIN_SAMPLES:
        return every["p50"]
    return None
