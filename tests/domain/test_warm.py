"""Warm desktops' pure rules: which desktop fits a launch, which are recycled, the budget, and the
Template's warmPool field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamspace.domain.errors import ValidationError
from streamspace.domain.templates import WarmPoolSpec, parse_template_spec
from streamspace.domain.warm import claimable, fit_key, over_budget, peak_size, recycle, size_at, wanted_image

SPEC = {"displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest", "vnc": {"port": 3000}}
ONE_CPU = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def _pod(name: str, fit: str, *, ready: bool = True, created: str = "2026-01-01T10:00:00Z",
         waiting: str | None = None) -> dict:
    status: dict = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["containerStatuses"] = [{"state": {"waiting": {"reason": waiting}}}]
    return {"metadata": {"name": name, "labels": {"stream.space/warm-fit": fit}, "creationTimestamp": created},
            "status": status}


def test_a_launch_fits_the_same_template_and_amounts_however_written():
    same = {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert fit_key(SPEC, ONE_CPU) == fit_key(SPEC, same)
    assert fit_key(SPEC, ONE_CPU) != fit_key({**SPEC, "baseImage": "lscr.io/linuxserver/firefox:2"}, ONE_CPU)
    assert fit_key(SPEC, ONE_CPU) != fit_key(SPEC, {**ONE_CPU, "limits": {"cpu": "2", "memory": "1Gi"}})
    assert fit_key(SPEC, ONE_CPU) != fit_key(SPEC, {**ONE_CPU, "requests": {"cpu": "500m", "memory": "1Gi"}})


def test_resizing_or_relabelling_a_template_keeps_its_desktops_fitting():
    """Pool size, schedule, catalog texts and the enabled flag do not shape a desktop: changing them
    must not drain the pool (a schedule changes the size twice a day)."""
    kept = {**SPEC, "warmPool": {"size": 5, "maxAge": "4h"}, "prePull": True, "enabled": True,
            "displayName": "Firefox ESR", "description": "a browser", "category": "Web", "tags": ["web"],
            "icon": "https://example.com/firefox.png"}
    assert fit_key(SPEC, ONE_CPU) == fit_key(kept, ONE_CPU)
    assert fit_key(SPEC, ONE_CPU) != fit_key({**SPEC, "env": [{"name": "A", "value": "1"}]}, ONE_CPU)


def test_only_ready_desktops_of_the_fit_are_claimable_oldest_first():
    fit = fit_key(SPEC, ONE_CPU)
    pods = [_pod("young", fit, created="2026-01-01T10:05:00Z"), _pod("old", fit),
            _pod("starting", fit, ready=False), _pod("stale", "another-fit")]
    deleting = _pod("leaving", fit)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T10:06:00Z"
    assert [p["metadata"]["name"] for p in claimable([*pods, deleting], fit)] == ["old", "young"]


def test_desktops_past_their_maximum_age_or_unable_to_pull_are_recycled():
    created = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    pods = [_pod("fresh", "f", created="2026-01-01T10:20:00Z"), _pod("old", "f"),
            _pod("broken", "f", ready=False, created="2026-01-01T10:20:00Z", waiting="ErrImagePull")]
    found = recycle(pods, 30 * 60, created + timedelta(minutes=31))
    assert [(r.pod, r.reason) for r in found] == [("old", "MaxAge"), ("broken", "Failed")]
    assert [r.pod for r in recycle(pods, None, created + timedelta(days=1))] == ["broken"]


def test_the_budget_counts_every_other_pool():
    assert over_budget({"a": 3, "b": 2}, "b", 5, 8) is None  # b's own old size is not counted twice
    problem = over_budget({"a": 3, "b": 2}, "b", 6, 8)
    assert problem is not None and "budget of 8" in problem and "3 already kept" in problem


def test_the_template_warm_pool_field_is_read_and_written_back():
    spec = parse_template_spec({**SPEC, "warmPool": {"size": 3, "maxAge": "90m"}, "prePull": True})
    assert spec.warm_pool == WarmPoolSpec(3, 5400) and spec.pre_pull
    assert spec.to_spec()["warmPool"] == {"size": 3, "maxAge": "1h30m"}


@pytest.mark.parametrize(("pool", "field"), [
    ({"size": -1}, "warmPool.size"), ({"size": 101}, "warmPool.size"), ({"size": True}, "warmPool.size"),
    ({"size": 1, "maxAge": "30s"}, "warmPool.maxAge"), ({"size": 1, "maxAge": "soon"}, "warmPool.maxAge"),
    ({"size": 1, "schedule": "x"}, "warmPool.schedule"),
])
def test_a_bad_warm_pool_names_its_field(pool, field):
    with pytest.raises(ValidationError) as caught:
        parse_template_spec({**SPEC, "warmPool": pool}, "")
    assert caught.value.field == field


# -- the schedule -----------------------------------------------------------------------------------

WEEKDAYS_8_TO_18 = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "end": "18:00", "size": 5}
OFFICE_HOURS = {"size": 1, "timeZone": "Europe/Berlin", "schedule": [WEEKDAYS_8_TO_18]}


def _pool(warm_pool: dict) -> WarmPoolSpec:
    pool = parse_template_spec({**SPEC, "warmPool": warm_pool}).warm_pool
    assert pool is not None
    return pool


@pytest.mark.parametrize(("instant", "size"), [
    (datetime(2026, 12, 7, 7, 0, tzinfo=UTC), 5),  # Monday 08:00 in Berlin: the window opens
    (datetime(2026, 12, 7, 6, 59, tzinfo=UTC), 1),  # Monday 07:59 in Berlin
    (datetime(2026, 12, 11, 16, 59, tzinfo=UTC), 5),  # Friday 17:59 in Berlin
    (datetime(2026, 12, 11, 17, 0, tzinfo=UTC), 1),  # Friday 18:00 in Berlin: the end is exclusive
    (datetime(2026, 12, 12, 10, 0, tzinfo=UTC), 1),  # Saturday
    (datetime(2026, 7, 6, 6, 30, tzinfo=UTC), 5),  # a Monday in summer time: 08:30 in Berlin (UTC+2)
    (datetime(2026, 12, 7, 6, 30, tzinfo=UTC), 1),  # the same UTC time in winter: 07:30 in Berlin
])
def test_the_schedule_gives_the_size_at_an_instant_in_the_pools_time_zone(instant, size):
    assert size_at(_pool(OFFICE_HOURS), instant) == size


def test_overlapping_windows_keep_the_largest_and_a_window_may_end_at_midnight():
    pool = _pool({"size": 0, "schedule": [
        {"days": ["Mon"], "start": "08:00", "end": "18:00", "size": 3},
        {"days": ["Mon"], "start": "12:00", "end": "13:00", "size": 7},
        {"days": ["Sun"], "start": "20:00", "end": "24:00", "size": 2},
    ]})
    assert pool.time_zone == "UTC" and pool.peak == 7
    assert size_at(pool, datetime(2026, 12, 7, 12, 30, tzinfo=UTC)) == 7
    assert size_at(pool, datetime(2026, 12, 7, 13, 0, tzinfo=UTC)) == 3
    assert size_at(pool, datetime(2026, 12, 6, 23, 59, tzinfo=UTC)) == 2
    assert size_at(pool, datetime(2026, 12, 7, 0, 0, tzinfo=UTC)) == 0
    assert size_at(None, datetime(2026, 12, 7, tzinfo=UTC)) == 0


def test_a_schedule_is_written_back_as_read_and_its_peak_is_what_the_budget_holds():
    spec = parse_template_spec({**SPEC, "warmPool": OFFICE_HOURS})
    assert spec.to_spec()["warmPool"] == OFFICE_HOURS
    assert spec.warm_pool is not None and spec.warm_pool.peak == 5
    assert peak_size(OFFICE_HOURS) == 5 and peak_size({"size": 2}) == 2
    assert peak_size({"size": 0, "schedule": [{"size": 3}]}) == 3  # pooled even with no base size
    assert peak_size(None) == 0 and peak_size({"size": "many", "schedule": "x"}) == 0
    pooled_by_schedule = {"metadata": {"name": "t"}, "spec": {**SPEC, "warmPool": {
        "size": 0, "schedule": OFFICE_HOURS["schedule"]}}}
    assert wanted_image(pooled_by_schedule) == SPEC["baseImage"]  # pre-pulled like any pooled template's


def _window(**changes: object) -> dict:
    return {"warmPool": {"size": 1, "schedule": [{"days": ["Mon"], "start": "08:00", "end": "18:00", "size": 5,
                                                  **changes}]}}


@pytest.mark.parametrize(("spec", "field", "words"), [
    (_window(days=["Monday"]), "warmPool.schedule[0].days[0]", "expected one of Mon, Tue"),
    (_window(days=["Mon", "Mon"]), "warmPool.schedule[0].days[1]", "listed twice"),
    (_window(days=[]), "warmPool.schedule[0].days", "expected a list of days"),
    (_window(start="8:00"), "warmPool.schedule[0].start", "HH:MM"),
    (_window(start="24:00"), "warmPool.schedule[0].start", "HH:MM"),
    (_window(end="18:60"), "warmPool.schedule[0].end", "HH:MM"),
    (_window(start="22:00", end="06:00"), "warmPool.schedule[0].end", "passes midnight is two windows"),
    (_window(start="08:00", end="08:00"), "warmPool.schedule[0].end", "must be after start"),
    (_window(size=101), "warmPool.schedule[0].size", "from 0 to 100"),
    (_window(every="day"), "warmPool.schedule[0].every", "unknown field"),
    ({"warmPool": {"size": 1, "timeZone": "Mars/Olympus"}}, "warmPool.timeZone", "unknown time zone"),
    ({"warmPool": {"size": 1, "timeZone": "../../etc/passwd"}}, "warmPool.timeZone", "IANA"),
    ({"warmPool": {"size": 1, "schedule": [_window()["warmPool"]["schedule"][0]] * 21}}, "warmPool.schedule",
     "at most 20 windows"),
])
def test_a_bad_schedule_names_its_field_and_says_why(spec, field, words):
    with pytest.raises(ValidationError) as caught:
        parse_template_spec({**SPEC, **spec}, "")
    assert caught.value.field == field and words in caught.value.message, caught.value
