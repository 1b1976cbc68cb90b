"""Warm desktops' pure rules: which desktop fits a launch, which are recycled, the budget, and the
Template's warmPool field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamspace.domain.errors import ValidationError
from streamspace.domain.templates import WarmPoolSpec, parse_template_spec
from streamspace.domain.warm import claimable, fit_key, over_budget, recycle

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
    assert spec.warm_pool == WarmPoolSpec(3, 5400) and spec.pre_pull and spec.pulls_ahead
    assert spec.to_spec()["warmPool"] == {"size": 3, "maxAge": "1h30m"}
    assert not parse_template_spec(SPEC).pulls_ahead
    assert parse_template_spec({**SPEC, "warmPool": {"size": 2}}).pulls_ahead


@pytest.mark.parametrize(("pool", "field"), [
    ({"size": -1}, "warmPool.size"), ({"size": 101}, "warmPool.size"), ({"size": True}, "warmPool.size"),
    ({"size": 1, "maxAge": "30s"}, "warmPool.maxAge"), ({"size": 1, "maxAge": "soon"}, "warmPool.maxAge"),
    ({"size": 1, "schedule": "x"}, "warmPool.schedule"),
])
def test_a_bad_warm_pool_names_its_field(pool, field):
    with pytest.raises(ValidationError) as caught:
        parse_template_spec({**SPEC, "warmPool": pool}, "")
    assert caught.value.field == field
