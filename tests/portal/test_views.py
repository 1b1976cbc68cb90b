"""The portal's pure helpers: times left, plain-words failures, quota bars, safe redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamspace.portal import views
from streamspace.portal.web import local_path

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (-5, "0s"), (42, "42s"), (125, "2m 05s"),
                                               (3 * 3600 + 60, "3h 01m"), (2 * 86400 + 7200, "2d 2h")])
def test_human_seconds(seconds, text) -> None:
    assert views.human_seconds(seconds) == text


def test_times_left_before_idle_hibernation_and_the_maximum_duration() -> None:
    session = {"state": "running", "createdAt": (NOW - timedelta(hours=1)).isoformat(), "idleTimeout": "30m",
               "maxSessionDuration": "8h", "status": {"lastActivity": (NOW - timedelta(minutes=10)).isoformat()}}
    times = views.session_times(session, NOW)
    assert (times.running_for, times.idle_left, times.max_left) == (3600, 20 * 60, 7 * 3600)
    hibernated = views.session_times({**session, "state": "hibernated"}, NOW)
    assert hibernated.idle_left is None and hibernated.max_left == 7 * 3600
    assert views.session_times({**session, "state": "terminated"}, NOW).max_left is None


@pytest.mark.parametrize(("message", "words"), [
    ("image example.com/x:1 could not be pulled: ErrImagePull", "could not be downloaded"),
    ("template firefox not found", "missing or broken"),
    ("0/3 nodes are available: Insufficient cpu", "No server has room"),
    ("something nobody expected", "could not be started"),
])
def test_a_failure_in_plain_words(message, words) -> None:
    assert words in views.failure_in_words({"status": {"phase": "Failed", "message": message}})
    assert views.failure_in_words({"status": {"phase": "Running", "message": message}}) is None


def test_quota_bars() -> None:
    bars = views.quota_bars({"limits": {"maxSessions": 5, "maxCPU": "4", "maxMemory": "8Gi", "maxStorage": None},
                             "used": {"sessions": 1, "cpu": "3500m", "memory": "2Gi", "storage": "0"}})
    assert [(b.label, b.percent, b.level) for b in bars] == [
        ("Sessions", 20, "low"), ("CPU", 88, "mid"), ("Memory", 25, "low"), ("Storage", 0, "low")]
    assert bars[3].limit_text == "no limit"


@pytest.mark.parametrize(("target", "expected"), [
    ("/sessions?x=1", "/sessions?x=1"), (None, "/"), ("", "/"), ("//evil.example", "/"),
    ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("javascript:alert(1)", "/"), ("sessions", "/")])
def test_next_only_points_into_this_site(target, expected) -> None:
    assert local_path(target) == expected


def test_a_starting_session_says_how_long_it_usually_takes_and_why() -> None:
    starting = {"state": "running", "status": {"phase": "Pending", "startKind": "cold", "expectedReadySeconds": 12.6}}
    assert views.start_expectation(starting) == \
        "Usually ready in about 13 s (cold start: the image is downloaded first)."
    warm = {"state": "running", "status": {"phase": "Pending", "startKind": "warm", "expectedReadySeconds": None}}
    assert views.start_expectation(warm) == "No estimate yet (warm start: a desktop was waiting for you)."
    assert views.start_expectation({**starting, "status": {**starting["status"], "phase": "Running"}}) is None
    assert views.start_expectation({"state": "running", "status": {"phase": "Pending"}}) is None


def test_the_state_history_plot_breaks_its_lines_where_a_step_has_no_sample() -> None:
    def point(hour: int, running: int | None) -> dict:
        values = {"pending": None if running is None else 0, "running": running,
                  "hibernated": None if running is None else 1, "failed": None if running is None else 0}
        return {"at": NOW + timedelta(hours=hour), **values}

    history = {"states": ["pending", "running", "hibernated", "failed"],
               "points": [point(0, 2), point(1, 4), point(2, None), point(3, 1), point(4, None)]}
    chart = views.state_history_chart(history, left=0, right=400, top_y=0, bottom_y=100)
    running = next(s for s in chart.series if s.state == "running")
    assert chart.top == 4
    # two stretches: hours 0-1, then hour 3 alone (a dot); the gaps at hours 2 and 4 are not bridged
    assert running.path == "M0.0,50.0 L100.0,0.0 M300.0,75.0 L300.0,75.0"
    assert running.latest == 1
    assert [label for _, label in chart.ticks] == ["12:00", "14:00", "16:00"]


def test_a_history_without_samples_draws_nothing() -> None:
    history = {"states": ["running"], "points": [{"at": NOW, "running": None}, {"at": NOW, "running": None}]}
    chart = views.state_history_chart(history)
    assert chart.series[0].path == "" and chart.series[0].latest is None and chart.top == 1
