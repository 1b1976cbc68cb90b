"""A warm pool's schedule, evaluated by template-reconcile at an injected instant (the Template's
events and resync's five-minute tick call the same reconcile with the clock): the pool Deployment
is resized to the window's size and back to the base size outside it, and never drained for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamspace import kube
from streamspace.reconcile.template import reconcile_template

from .reconcile_helpers import NS, live, template_manifest

WEEKDAYS_8_TO_18 = {"size": 1, "timeZone": "Europe/Berlin", "schedule": [
    {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "end": "18:00", "size": 3}]}
MONDAY_0830_BERLIN = "2026-12-07T07:30:00Z"
MONDAY_1830_BERLIN = "2026-12-07T17:30:00Z"
SATURDAY_NOON_BERLIN = "2026-12-12T11:00:00Z"


@pytest.fixture
def pooled(db_url: str, sim: Any) -> Iterator[Any]:
    """`pooled(warm_pool)` -> the name of a new Template keeping that pool; removed after the test, so
    that no test's pool counts against another's budget."""
    made: list[str] = []

    def make(warm_pool: dict[str, Any]) -> str:
        name = f"sched-{uuid.uuid4().hex[:6]}"
        kube.create(template_manifest(name, warmPool=warm_pool))
        made.append(name)
        return name

    yield make
    for name in made:
        kube.delete("Template", name, NS)
        kube.delete("Deployment", f"warm-{name}", NS)


def _replicas(template: str) -> int:
    return int(live("Deployment", f"warm-{template}")["spec"]["replicas"])


def _condition(template: str) -> dict:
    return next(c for c in live("Template", template)["status"]["conditions"] if c["type"] == "WarmPool")


def test_the_pool_follows_its_schedule_at_the_instant_it_is_reconciled(pooled):
    name = pooled(WEEKDAYS_8_TO_18)

    reconcile_template(live("Template", name), action="read", now=MONDAY_0830_BERLIN)
    assert _replicas(name) == 3
    condition = _condition(name)
    assert condition["reason"] == "PoolApplied"
    assert condition["message"] == "keeping 3 warm desktop(s) now, by its schedule (1 outside its windows, 3 at most)"
    fit = live("Deployment", f"warm-{name}")["spec"]["template"]["metadata"]["labels"]["stream.space/warm-fit"]

    reconcile_template(live("Template", name), action="read", now=MONDAY_1830_BERLIN)
    assert _replicas(name) == 1
    reconcile_template(live("Template", name), action="read", now=SATURDAY_NOON_BERLIN)
    assert _replicas(name) == 1
    reconcile_template(live("Template", name), action="read", now=MONDAY_0830_BERLIN)
    assert _replicas(name) == 3
    # Resizing is not a change of desktop: the pods' template (and the desktops' fit) stays.
    assert live("Deployment", f"warm-{name}")["spec"]["template"]["metadata"]["labels"][
        "stream.space/warm-fit"] == fit


def test_a_schedule_whose_base_size_is_zero_keeps_its_pool_outside_the_windows_at_zero(pooled):
    name = pooled({**WEEKDAYS_8_TO_18, "size": 0})
    reconcile_template(live("Template", name), action="read", now=SATURDAY_NOON_BERLIN)
    assert _replicas(name) == 0  # the Deployment stays, ready for Monday
    assert _condition(name)["status"] == "True"
    reconcile_template(live("Template", name), action="read", now=MONDAY_0830_BERLIN)
    assert _replicas(name) == 3


def test_the_budget_holds_a_scheduled_pool_at_its_largest(pooled):
    # The default budget is 10: a window of 50 on Sunday nights is refused on Saturday too.
    name = pooled({"size": 1, "schedule": [{"days": ["Sun"], "start": "00:00", "end": "01:00", "size": 50}]})
    reconcile_template(live("Template", name), action="read", now=SATURDAY_NOON_BERLIN)
    condition = _condition(name)
    assert condition["reason"] == "OverBudget" and "a warm pool of 50" in condition["message"]
    assert kube.get("Deployment", f"warm-{name}", NS) is None


def test_the_minute_tick_resizes_only_the_pools_whose_window_opened_or_closed(pooled):
    from streamspace.reconcile.template import schedule_tick

    office = pooled(WEEKDAYS_8_TO_18)
    fixed = pooled({"size": 1})
    for name in (office, fixed):
        reconcile_template(live("Template", name), action="read", now=SATURDAY_NOON_BERLIN)
    assert (_replicas(office), _replicas(fixed)) == (1, 1)
    # Monday 08:30 in Berlin: the office pool's window is open, and the tick (not the next Template
    # event, not resync's five-minute tick) gives it its window's size. The pool without a schedule,
    # and the one in step, are not touched.
    assert office in schedule_tick(NS, now=MONDAY_0830_BERLIN)
    assert (_replicas(office), _replicas(fixed)) == (3, 1)
    assert office not in schedule_tick(NS, now=MONDAY_0830_BERLIN)  # in step: nothing to do
    assert office in schedule_tick(NS, now=MONDAY_1830_BERLIN)
    assert _replicas(office) == 1


def test_the_warm_schedule_ping_reaches_template_reconcile_and_resizes_a_pool_out_of_step(pooled):
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    from .reconcile_helpers import ping

    always = pooled({"size": 1, "schedule": [{"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
                                              "start": "00:00", "end": "24:00", "size": 2}]})
    reconcile_template(live("Template", always), action="read")
    assert _replicas(always) == 2
    # As it was before the window opened (a window that opened since the last reconcile).
    kube.merge_patch("Deployment", f"warm-{always}", {"spec": {"replicas": 1}}, NS)
    server = BackgroundServer(load_function_app("template-reconcile")).start()
    try:
        assert ping(server.url, "warm-schedule") == 200  # a PingSource tick in Knative's exact format
        assert _replicas(always) == 2
        assert ping(server.url, "resync") == 400  # another schedule's tick is refused, never run here
    finally:
        server.stop()
