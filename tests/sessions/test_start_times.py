"""The start-time record: percentiles per template and kind over the latest starts (real Postgres)."""

from __future__ import annotations

from streamspace.domain.starts import StartRecord
from streamspace.sessions import starts_store


def test_percentiles_per_kind_over_the_recorded_starts(db_url):
    for i, seconds in enumerate([10, 11, 12, 13, 30]):
        starts_store.record("ns-a", f"s{i}", f"p{i}", "desk",
                            StartRecord("cold", seconds, 1.0, seconds - 3, seconds - 1))
    for i, seconds in enumerate([0.5, 0.7, 0.9]):
        starts_store.record("ns-a", f"w{i}", f"q{i}", "desk", StartRecord("warm", seconds))
    starts_store.record("ns-a", "other", "x", "another", StartRecord("cold", 99))
    starts_store.record("ns-a", "s0", "p0", "desk", StartRecord("cold", 500))  # a redelivered event: kept once
    found = starts_store.percentiles("ns-a", "desk")
    assert found["cold"]["n"] == 5 and found["cold"]["p50"] == 12.0 and found["cold"]["p95"] == 26.6
    assert found["cold"]["phasesP50"] == {"scheduled": 1.0, "pulled": 9.0, "started": 11.0, "ready": 12.0}
    assert found["warm"] == {"n": 3, "p50": 0.7, "p95": 0.88, "recent": 3,
                             "phasesP50": {"scheduled": None, "pulled": None, "started": None, "ready": 0.7}}
    assert starts_store.percentiles("ns-a", None)["cold"]["n"] == 6
    assert starts_store.expected_seconds("ns-a", "warm", found) == 0.7
    # Too few starts of its own: the platform's median; none at all: no estimate.
    assert starts_store.expected_seconds("ns-a", "cold", starts_store.percentiles("ns-a", "another")) == 12.5
    assert starts_store.expected_seconds("ns-a", "cached", found) is None
    assert starts_store.percentiles("ns-b", "desk") == {}
