"""Sessions by state over time: real transitions (ApiServerSource events to session-reconcile, the
idle-sweep's own hibernation) and real PingSource ticks produce the series GET /api/v1/metrics/sessions
answers over real HTTP; buckets, gaps, retention and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from streamspace import kube
from streamspace.db import execute, fetch_all
from tests.conftest import make_user, token_for

from .reconcile_helpers import NS, add_template, deliver, live, ping, session_manifest

STATES = ("pending", "running", "hibernated", "failed")


@pytest.fixture(scope="module")
def urls(function_url, sim):
    urls = {"sweep": function_url("idle-sweep"), "session": function_url("session-reconcile"),
            "template": function_url("template-reconcile"), "metrics": function_url("metrics")}
    for name, image in (("firefox", "lscr.io/linuxserver/firefox:latest"),
                        ("broken", "registry.example.com/invalid/app:1")):
        add_template(urls["template"], name, image=image)
    return urls


@pytest.fixture(scope="module")
def admin(urls) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = "Bearer " + token_for(make_user("history-admin", role="admin"),
                                                          "history-admin", "admin")
    return http


def series(urls: dict, http: requests.Session, **query: str) -> dict:
    answer = http.get(urls["metrics"] + "/api/v1/metrics/sessions", params=query, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def latest(urls: dict, http: requests.Session) -> dict:
    """The counts of the newest sample, as the plot's last point shows them."""
    points = [p for p in series(urls, http)["points"] if p["sampledAt"] is not None]
    assert points, "no sample"
    return {state: points[-1][state] for state in STATES}


def counts(pending=0, running=0, hibernated=0, failed=0) -> dict:
    return {"pending": pending, "running": running, "hibernated": hibernated, "failed": failed}


def start(urls: dict, name: str, template: str = "firefox") -> None:
    obj = kube.create(session_manifest(name, user="ivy", template=template))
    obj.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", obj) == 200


def observe_pod(urls: dict, name: str) -> None:
    """The Deployment's event: the simulated kubelet made the pod Ready (or could not pull its image)."""
    assert deliver(urls["session"], "update", live("Deployment", f"ss-{name}")) == 200


def change_state(urls: dict, name: str, state: str) -> None:
    obj = kube.merge_patch("Session", name, {"spec": {"state": state}}, NS)
    obj.setdefault("kind", "Session")
    assert deliver(urls["session"], "update", obj) == 200


def tick(urls: dict) -> None:
    assert ping(urls["sweep"], "idle-sweep") == 200


def test_real_transitions_and_ticks_make_the_series(urls, admin, sim):
    began = fetch_all("SELECT clock_timestamp() AS t")[0]["t"]
    start(urls, "ivy-a")
    start(urls, "ivy-b")
    start(urls, "ivy-c", template="broken")
    tick(urls)
    assert latest(urls, admin) == counts(pending=3)

    observe_pod(urls, "ivy-a")
    observe_pod(urls, "ivy-b")
    observe_pod(urls, "ivy-c")
    assert live("Session", "ivy-c")["status"]["phase"] == "Failed"
    tick(urls)
    assert latest(urls, admin) == counts(running=2, failed=1)

    change_state(urls, "ivy-b", "hibernated")
    tick(urls)
    assert latest(urls, admin) == counts(running=1, hibernated=1, failed=1)

    # the sweep's own hibernation is counted by the same tick that makes it
    execute("UPDATE sessions SET last_activity = now() - interval '2 hours' WHERE namespace = %s AND name = %s",
            (NS, "ivy-a"))
    tick(urls)
    assert latest(urls, admin) == counts(hibernated=2, failed=1)

    change_state(urls, "ivy-c", "terminated")  # terminated sessions are not live: not counted
    change_state(urls, "ivy-b", "running")
    tick(urls)
    assert latest(urls, admin) == counts(pending=1, hibernated=1)

    samples = fetch_all("SELECT pending, running, hibernated, failed FROM session_state_samples"
                        " WHERE sampled_at >= %s ORDER BY sampled_at", (began,))
    assert [dict(s) for s in samples] == [counts(pending=3), counts(running=2, failed=1),
                                          counts(running=1, hibernated=1, failed=1), counts(hibernated=2, failed=1),
                                          counts(pending=1, hibernated=1)]


def test_each_point_is_the_last_sample_of_its_step_and_a_step_without_one_is_a_gap(urls, admin):
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    for moment, values in ((hour - timedelta(hours=3, minutes=-10), (1, 2, 3, 4)),
                           (hour - timedelta(hours=3, minutes=-50), (5, 6, 7, 8)),
                           (hour - timedelta(hours=5, minutes=-30), (9, 9, 9, 9))):
        execute("INSERT INTO session_state_samples (sampled_at, pending, running, hibernated, failed)"
                " VALUES (%s, %s, %s, %s, %s)", (moment, *values))
    assert (series(urls, admin)["stepSeconds"], len(series(urls, admin)["points"])) == (1800, 48)  # 24 h by default
    answer = series(urls, admin, hours="8", step="1h")
    assert answer["states"] == list(STATES)
    assert answer["stepSeconds"] == 3600
    points = {datetime.fromisoformat(p["at"]): p for p in answer["points"]}
    assert len(points) == 8 and all(at.minute == at.second == 0 for at in points)  # whole hours
    assert [points[hour - timedelta(hours=3)][s] for s in STATES] == [5, 6, 7, 8]  # the later of the two
    assert [points[hour - timedelta(hours=5)][s] for s in STATES] == [9, 9, 9, 9]
    assert points[hour - timedelta(hours=4)]["sampledAt"] is None
    assert points[hour - timedelta(hours=4)]["running"] is None


def test_a_tick_drops_samples_older_than_the_retention(urls, admin):
    execute("INSERT INTO session_state_samples (sampled_at, pending, running, hibernated, failed)"
            " VALUES (now() - interval '31 days', 1, 1, 1, 1), (now() - interval '29 days', 2, 2, 2, 2)")
    tick(urls)  # SESSION_HISTORY_DAYS: 30 by default
    old = fetch_all("SELECT pending FROM session_state_samples WHERE sampled_at < now() - interval '28 days'")
    assert [r["pending"] for r in old] == [2]


@pytest.mark.parametrize("query, field", [({"hours": "0"}, "hours"), ({"hours": "721"}, "hours"),
                                          ({"hours": "x"}, "hours"), ({"step": "30s"}, "step"),
                                          ({"step": "5 minutes"}, "step"),
                                          ({"hours": "720", "step": "1m"}, "step")])
def test_bad_ranges_are_refused_with_the_field(urls, admin, query, field):
    answer = admin.get(urls["metrics"] + "/api/v1/metrics/sessions", params=query, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == f"invalid {field}"


def test_only_operators_and_admins_see_the_platform_history(urls):
    user = requests.get(urls["metrics"] + "/api/v1/metrics/sessions", timeout=30,
                        headers={"Authorization": "Bearer " + token_for(make_user("ivy"), "ivy")})
    assert user.status_code == 403
    operator = requests.get(urls["metrics"] + "/api/v1/metrics/sessions", timeout=30,
                            headers={"Authorization": "Bearer " + token_for(make_user("olga", role="operator"),
                                                                            "olga", "operator")})
    assert operator.status_code == 200
    assert requests.get(urls["metrics"] + "/api/v1/metrics/sessions", timeout=30).status_code == 401
