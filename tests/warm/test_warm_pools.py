"""Warm pools: a Template keeps N unassigned desktops; a launch claims one atomically; the pool
refills, drains on a Template change, recycles by age, respects the platform budget and goes with
its Template. A warm desktop carries nobody's label, volume or route until it is claimed."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from streamspace import kube
from streamspace.sim.builtin import selector_matches
from tests.conftest import client_for

from .conftest import CEILING, NS, converges, phase, pool_pods, ready_pool, replaced, template_body


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector_matches(policy["spec"]["podSelector"], labels)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _pooled(admin: Any, relay: Any, size: int, **extra: Any) -> str:
    name = _unique("warm")
    created = admin.post("/api/v1/templates", json=template_body(name, size, **extra))
    assert created.status_code == 201, created.text
    converges(relay, lambda: len(ready_pool(name)) == size, f"{size} ready warm desktops of {name}")
    return name


def test_parallel_launches_claim_each_warm_desktop_exactly_once_and_the_rest_start_cold(base, admin, relay):
    template = _pooled(admin, relay, 2)
    warm_before = {p["metadata"]["name"] for p in ready_pool(template)}
    users = [client_for(base, _unique("racer")) for _ in range(8)]
    start = threading.Barrier(len(users))

    def launch(user: Any) -> Any:
        start.wait(timeout=CEILING)  # all requests leave together
        return user.post("/api/v1/sessions", json={"template": template, "persistentHome": False})

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        answers = list(pool.map(launch, users))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    sessions = [a.json() for a in answers]
    claimed = [s for s in sessions if s["warmStart"]["claimed"]]
    assert len(claimed) == 2, [s["warmStart"] for s in sessions]

    for session in sessions:
        converges(relay, lambda s=session: phase(s["name"]) == "Running", f"{session['name']} running")
    warm_pods = {kube.get("Session", s["name"], NS)["status"]["podName"] for s in claimed}
    assert warm_pods == warm_before  # two different desktops, each one taken by one session
    for session, user in zip(sessions, users, strict=True):
        obj = kube.get("Session", session["name"], NS)
        pod = kube.get("Pod", obj["status"]["podName"], NS)
        labels = pod["metadata"]["labels"]
        assert labels["stream.space/session"] == session["name"]
        assert labels["stream.space/user"] == obj["spec"]["user"]
        if session["warmStart"]["claimed"]:
            assert pod["metadata"]["ownerReferences"] == [{
                "apiVersion": "stream.space/v1alpha1", "kind": "Session", "name": session["name"],
                "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
            assert kube.get("Deployment", f"ss-{session['name']}", NS)["spec"]["replicas"] == 0
        else:
            assert session["warmStart"]["reason"]
            # Its own, started cold: the pod of its Deployment's ReplicaSet.
            (owner,) = pod["metadata"]["ownerReferences"]
            replica_set = kube.request("GET", f"/apis/apps/v1/namespaces/{NS}/replicasets/{owner['name']}")
            assert owner["kind"] == "ReplicaSet" and replica_set["metadata"]["ownerReferences"][0]["name"] == \
                f"ss-{session['name']}"
        assert user.get(f"/api/v1/sessions/{session['name']}").status_code == 200

    # The pool refills in the background, with new desktops.
    converges(relay, lambda: len(ready_pool(template)) == 2, "the pool refilled")
    assert not {p["metadata"]["name"] for p in ready_pool(template)} & warm_before

    stats = admin.get(f"/api/v1/templates/{template}/warm-pool").json()
    assert (stats["size"], stats["ready"], stats["claims"], stats["misses"]) == (2, 2, 2, 6)
    assert stats["condition"]["reason"] == "PoolApplied"
    assert admin.get("/api/v1/metrics").json()["cluster"]["warmPools"][template]["claims"] == 2
    assert users[0].get(f"/api/v1/templates/{template}/warm-pool").status_code == 403


def test_of_two_claims_of_one_desktop_listed_at_the_same_time_only_the_first_wins(admin, relay):
    """The interleaving a race produces, made deterministic: both launches listed the desktop before
    either claimed it. The second claim carries a resourceVersion that is no longer current."""
    from streamspace.sessions import warm

    template = _pooled(admin, relay, 1)
    obj = kube.get("Template", template, NS)
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "100m", "memory": "256Mi"}}
    seen_by_first, _ = warm.candidates(NS, obj, resources)
    seen_by_second, _ = warm.candidates(NS, obj, resources)
    assert [p["metadata"]["name"] for p in seen_by_first] == [p["metadata"]["name"] for p in seen_by_second]
    assert len(seen_by_first) == 1
    assert warm.take(NS, seen_by_first[0], "first-session", "first") is True
    assert warm.take(NS, seen_by_second[0], "second-session", "second") is False
    pod = kube.get("Pod", seen_by_first[0]["metadata"]["name"], NS)
    assert pod["metadata"]["labels"]["stream.space/session"] == "first-session"
    # Claimed, and no session-reconcile has applied its session's policy yet (none runs here): the
    # pool's deny-by-default policy still isolates it both ways.
    policy = kube.get("NetworkPolicy", f"warm-{template}", NS)
    assert _selects(policy, pod["metadata"]["labels"]) and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    kube.delete("Pod", pod["metadata"]["name"], NS)


def test_a_claim_that_met_only_a_kubelet_status_write_is_retried_and_wins(admin, relay):
    """The desktop was listed, then the kubelet wrote its status (a probe's result, a restart count):
    the listed resourceVersion is stale, yet nobody claimed it. The claim is tried again on the fresh
    copy and wins; it is no lost race (no miss)."""
    from streamspace.sessions import warm

    template = _pooled(admin, relay, 1)
    obj = kube.get("Template", template, NS)
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "100m", "memory": "256Mi"}}
    (listed,) = warm.candidates(NS, obj, resources)[0]
    name = listed["metadata"]["name"]
    pod = kube.get("Pod", name, NS)
    pod["status"]["containerStatuses"][0]["restartCount"] += 1  # the kubelet's write, still Ready
    written = kube.request("PUT", f"/api/v1/namespaces/{NS}/pods/{name}/status", body=pod)
    assert written["metadata"]["resourceVersion"] != listed["metadata"]["resourceVersion"]
    assert warm.take(NS, listed, "retried-session", "retried") is True
    claimed = kube.get("Pod", name, NS)
    assert claimed["metadata"]["labels"]["stream.space/session"] == "retried-session"
    # A second claim from the same stale listing meets a desktop that is someone's now: a real loss.
    assert warm.take(NS, listed, "late-session", "late") is False
    assert kube.get("Pod", name, NS)["metadata"]["labels"]["stream.space/session"] == "retried-session"
    kube.delete("Pod", name, NS)


def test_a_warm_desktop_carries_nothing_of_anyone_until_claimed_and_then_only_its_session(base, admin, relay):
    template = _pooled(admin, relay, 1)
    desktop = ready_pool(template)[0]
    labels, spec = desktop["metadata"]["labels"], desktop["spec"]
    assert "stream.space/user" not in labels and "stream.space/session" not in labels
    assert not [v for v in spec.get("volumes") or [] if "persistentVolumeClaim" in v]
    assert spec["automountServiceAccountToken"] is False
    assert not spec["containers"][0].get("envFrom")
    # Nobody reaches it: no Service selects it, and its NetworkPolicy lets nothing in.
    for service in kube.list_objects("Service", NS):
        selector = (service.get("spec") or {}).get("selector") or {}
        assert not selector or any(labels.get(k) != v for k, v in selector.items()), service["metadata"]["name"]
    policy = kube.get("NetworkPolicy", f"warm-{template}", NS)
    assert policy["spec"]["ingress"] == [] and "Ingress" in policy["spec"]["policyTypes"]
    assert _selects(policy, labels)

    alice = client_for(base, _unique("alice"))
    session = alice.post("/api/v1/sessions", json={"template": template, "persistentHome": False}).json()
    assert session["warmStart"]["claimed"] is True
    converges(relay, lambda: phase(session["name"]) == "Running", "the warm session running")
    claimed = kube.get("Pod", desktop["metadata"]["name"], NS)
    mine = kube.get("Session", session["name"], NS)
    assert claimed["metadata"]["labels"]["stream.space/user"] == mine["spec"]["user"]
    assert "stream.space/warm-fit" not in claimed["metadata"]["labels"]
    # Its session's Service and NetworkPolicy select it now. The pool's policy still does (it closed
    # the moment between the claim and the session's policy) and allows nothing the session's does not.
    service = kube.get("Service", f"ss-{session['name']}", NS)
    assert service["spec"]["selector"].items() <= claimed["metadata"]["labels"].items()
    own = kube.get("NetworkPolicy", f"ss-{session['name']}", NS)
    assert _selects(own, claimed["metadata"]["labels"]) and _selects(policy, claimed["metadata"]["labels"])
    assert policy["spec"]["egress"] == own["spec"]["egress"]
    assert all(rule in own["spec"]["ingress"] for rule in policy["spec"]["ingress"])
    ingress = kube.get("Ingress", f"ss-{session['name']}", NS)
    assert ingress["spec"]["rules"][0]["host"].startswith(f"{session['name']}.")
    # Deleting the session deletes the desktop it claimed (ownerReference, garbage collection).
    assert alice.delete(f"/api/v1/sessions/{session['name']}").status_code == 200
    converges(relay, lambda: kube.get("Pod", desktop["metadata"]["name"], NS) is None, "the claimed desktop deleted")


def test_a_launch_with_a_home_volume_or_other_resources_starts_cold_and_says_why(base, admin, relay):
    template = _pooled(admin, relay, 1)
    bob = client_for(base, _unique("bob"))
    with_home = bob.post("/api/v1/sessions", json={"template": template}).json()
    assert with_home["warmStart"]["claimed"] is False
    assert "persistent home" in with_home["warmStart"]["reason"]
    bigger = bob.post("/api/v1/sessions", json={"template": template, "persistentHome": False,
                                                "resources": {"memory": "2Gi", "cpu": "1"}}).json()
    assert bigger["warmStart"] == {"claimed": False, "reason": bigger["warmStart"]["reason"]}
    assert "resources" in bigger["warmStart"]["reason"]
    assert len(ready_pool(template)) == 1  # untouched
    plain = admin.post("/api/v1/templates", json={**template_body(_unique("cold"), 0)}).json()
    cold = bob.post("/api/v1/sessions", json={"template": plain["name"], "persistentHome": False}).json()
    assert cold["warmStart"] == {"claimed": False, "reason": "the template keeps no warm desktops"}


def test_a_template_change_drains_the_pool_and_a_claim_never_gets_a_stale_desktop(base, admin, relay):
    template = _pooled(admin, relay, 2)
    before = {p["metadata"]["name"] for p in pool_pods(template)}
    changed = admin.patch(f"/api/v1/templates/{template}", json={"baseImage": "lscr.io/linuxserver/other:2"})
    assert changed.status_code == 200, changed.text
    converges(relay, lambda: replaced(template, before, 2), "the pool replaced")
    assert {p["spec"]["containers"][0]["image"] for p in pool_pods(template)} == {"lscr.io/linuxserver/other:2"}
    carol = client_for(base, _unique("carol"))
    session = carol.post("/api/v1/sessions", json={"template": template, "persistentHome": False}).json()
    assert session["warmStart"]["claimed"] is True, session["warmStart"]
    converges(relay, lambda: phase(session["name"]) == "Running", "the session running")
    pod = kube.get("Pod", kube.get("Session", session["name"], NS)["status"]["podName"], NS)
    assert pod["spec"]["containers"][0]["image"] == "lscr.io/linuxserver/other:2"


def test_growing_the_pool_keeps_its_desktops_and_adds_more(admin, relay):
    template = _pooled(admin, relay, 1)
    kept = {p["metadata"]["name"] for p in ready_pool(template)}
    grown = admin.patch(f"/api/v1/templates/{template}", json={"warmPool": {"size": 2}})
    assert grown.status_code == 200, grown.text
    converges(relay, lambda: len(ready_pool(template)) == 2, "a second warm desktop")
    assert kept <= {p["metadata"]["name"] for p in ready_pool(template)}


def test_desktops_older_than_the_maximum_age_are_recycled_and_replaced(admin, relay):
    from streamspace.reconcile.warm import recycle_pool

    template = _pooled(admin, relay, 2, warmPool={"size": 2, "maxAge": "10m"})
    before = {p["metadata"]["name"] for p in pool_pods(template)}
    assert recycle_pool(NS, template, 600) == []  # young: kept
    later = datetime.now(UTC) + timedelta(minutes=11)
    assert set(recycle_pool(NS, template, 600, now=later)) == before
    converges(relay, lambda: replaced(template, before, 2), "the pool refilled after recycling")
    assert admin.get(f"/api/v1/templates/{template}/warm-pool").json()["recycles"] == 2


def _pull_failed(pod: dict[str, Any]) -> bool:
    return any(((s.get("state") or {}).get("waiting") or {}).get("reason") in ("ErrImagePull", "ImagePullBackOff")
               for s in (pod.get("status") or {}).get("containerStatuses") or [])


def test_a_desktop_that_cannot_start_is_never_handed_out(base, admin, relay):
    template = _unique("broken")
    created = admin.post("/api/v1/templates", json=template_body(
        template, 1, baseImage="registry.example/invalid-image:1"))
    assert created.status_code == 201, created.text
    # The launch must meet a desktop that failed, not one still starting (which is not handed out either).
    converges(relay, lambda: any(_pull_failed(p) for p in pool_pods(template)), "the pool's desktop failed its pull")
    dave = client_for(base, _unique("dave"))
    answer = dave.post("/api/v1/sessions", json={"template": template, "persistentHome": False})
    assert answer.status_code == 201, answer.text
    session = answer.json()
    assert session["warmStart"]["claimed"] is False
    assert "ready" in session["warmStart"]["reason"]
    stats = admin.get(f"/api/v1/templates/{template}/warm-pool").json()
    assert (stats["claims"], stats["misses"]) == (0, 1)
    handed = kube.list_objects("Pod", NS, label_selector=f"stream.space/session={session['name']}")
    assert not [p for p in handed if p["metadata"]["name"].startswith(f"warm-{template}-")]  # a pool desktop
    # Still the pool's and unclaimed. Waited on: template-reconcile recycles a desktop whose pull
    # failed whenever it reconciles the Template, and a list taken while the pool's ReplicaSet
    # replaces it finds none (that snapshot failed once under load).
    converges(relay, lambda: pool_pods(template), "the pool keeps its desktop")


def test_the_budget_refuses_a_pool_too_large_and_changes_nothing(base, admin, relay):
    kept = sum(((t.get("spec") or {}).get("warmPool") or {}).get("size", 0) for t in kube.list_objects("Template", NS))
    budget = kept + 3
    assert admin.patch("/api/v1/config", json={"warmPool.budget": budget}).status_code == 200
    try:
        small = _pooled(admin, relay, 2)
        name = _unique("huge")
        refused = admin.post("/api/v1/templates", json=template_body(name, 2))
        assert refused.status_code == 400, refused.text
        assert f"budget of {budget}" in refused.json()["message"]
        assert kube.get("Template", name, NS) is None
        grown = admin.patch(f"/api/v1/templates/{small}", json={"warmPool": {"size": 4}})
        assert grown.status_code == 400 and f"budget of {budget}" in grown.json()["message"]
        assert kube.get("Template", small, NS)["spec"]["warmPool"]["size"] == 2
        # Applied past the API (kubectl): template-reconcile keeps no pool and says why.
        kube.create({"apiVersion": "stream.space/v1alpha1", "kind": "Template",
                     "metadata": {"name": name, "namespace": NS},
                     "spec": {k: v for k, v in template_body(name, 2).items() if k != "name"}})

        def over_budget() -> bool:
            status = (kube.get("Template", name, NS) or {}).get("status") or {}
            return any(c["type"] == "WarmPool" and c["reason"] == "OverBudget" for c in status.get("conditions") or [])

        converges(relay, over_budget, "the WarmPool condition says OverBudget")
        assert kube.get("Deployment", f"warm-{name}", NS) is None
    finally:
        assert admin.patch("/api/v1/config", json={"warmPool.budget": 100}).status_code == 200
    bad = admin.post("/api/v1/templates", json=template_body(_unique("bad"), -1))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid warmPool.size"


def test_deleting_a_template_removes_its_pool(admin, relay):
    template = _pooled(admin, relay, 2)
    assert kube.get("Deployment", f"warm-{template}", NS) is not None
    assert admin.delete(f"/api/v1/templates/{template}").status_code == 200
    converges(relay, lambda: kube.get("Deployment", f"warm-{template}", NS) is None and not pool_pods(template)
              and kube.get("NetworkPolicy", f"warm-{template}", NS) is None, "the pool removed")


def test_hibernating_a_warm_session_ends_its_desktop_and_waking_starts_its_own(base, admin, relay):
    template = _pooled(admin, relay, 1)
    erin = client_for(base, _unique("erin"))
    session = erin.post("/api/v1/sessions", json={"template": template, "persistentHome": False}).json()
    name = session["name"]
    converges(relay, lambda: phase(name) == "Running", "the warm session running")
    desktop = kube.get("Session", name, NS)["status"]["podName"]
    assert erin.patch(f"/api/v1/sessions/{name}", json={"state": "hibernated"}).status_code == 200
    converges(relay, lambda: phase(name) == "Hibernated" and kube.get("Pod", desktop, NS) is None,
              "hibernated and the warm desktop gone")
    assert erin.patch(f"/api/v1/sessions/{name}", json={"state": "running"}).status_code == 200
    converges(relay, lambda: phase(name) == "Running", "woken")
    assert kube.get("Session", name, NS)["status"]["podName"] != desktop
    assert kube.get("Deployment", f"ss-{name}", NS)["spec"]["replicas"] == 1


def test_each_start_is_recorded_with_its_phases_and_the_next_launch_is_told_what_to_expect(base, admin, relay):
    from streamspace.db import fetch_all

    template = _pooled(admin, relay, 1)
    frank = client_for(base, _unique("frank"))
    warm_one = frank.post("/api/v1/sessions", json={"template": template, "persistentHome": False}).json()
    assert warm_one["status"]["startKind"] == "warm"
    cold = [frank.post("/api/v1/sessions", json={"template": template}).json() for _ in range(3)]
    assert all(c["warmStart"]["claimed"] is False for c in cold)
    for session in [warm_one, *cold]:
        converges(relay, lambda s=session: phase(s["name"]) == "Running", f"{session['name']} running")

    def recorded() -> list[dict[str, Any]]:
        return fetch_all("SELECT * FROM session_starts WHERE template = %s", (template,))

    converges(relay, lambda: len(recorded()) == 4, "four starts recorded")
    by_session = {r["session"]: r for r in recorded()}
    assert by_session[warm_one["name"]]["kind"] == "warm"
    for session in cold:
        row = by_session[session["name"]]
        assert row["kind"] in ("cached", "cold")  # cold on a node that had not pulled the image yet
        phases = [row["scheduled_seconds"], row["pulled_seconds"], row["started_seconds"], row["ready_seconds"]]
        assert None not in phases and phases == sorted(phases), phases
        pod = kube.get("Pod", kube.get("Session", session["name"], NS)["status"]["podName"], NS)
        assert row["pod"] == pod["metadata"]["name"]

    times = frank.get(f"/api/v1/templates/{template}/start-times").json()
    assert times["starts"]["warm"]["n"] == 1
    assert sum(times["starts"].get(k, {}).get("n", 0) for k in ("cached", "cold")) == 3
    assert frank.get(f"/api/v1/templates/{_unique('nope')}/start-times").status_code == 404

    # The next launch (and its status) says what to expect: a cached start (the template started
    # recently), at the median the records give (tests/sessions/test_start_times.py checks the math).
    from streamspace.sessions import starts_store

    expected = starts_store.expected_seconds(NS, "cached", starts_store.percentiles(NS, template))
    nxt = frank.post("/api/v1/sessions", json={"template": template}).json()
    assert (nxt["status"]["startKind"], nxt["status"]["expectedReadySeconds"]) == ("cached", expected)
    listed = {s["name"]: s for s in frank.get("/api/v1/sessions").json()["sessions"]}
    assert listed[nxt["name"]]["status"]["startKind"] == "cached"
    assert frank.get(f"/api/v1/sessions/{nxt['name']}").json()["status"]["startKind"] == "cached"


def test_a_schedule_is_kept_as_given_and_a_bad_one_is_refused_naming_its_field(admin, relay):
    """The schedule's effect at given instants: tests/reconcile/test_warm_schedule.py (the clock injected)."""
    office = {"size": 0, "timeZone": "Europe/Berlin", "schedule": [
        {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "end": "18:00", "size": 1}]}
    name = _unique("sched")
    created = admin.post("/api/v1/templates", json=template_body(name, 0, warmPool=office))
    assert created.status_code == 201, created.text
    assert created.json()["warmPool"] == office
    report = admin.get(f"/api/v1/templates/{name}/warm-pool").json()
    assert (report["baseSize"], report["peak"], report["timeZone"], report["schedule"]) == (
        0, 1, "Europe/Berlin", office["schedule"])

    overnight = {"size": 1, "schedule": [{"days": ["Mon"], "start": "22:00", "end": "06:00", "size": 2}]}
    refused = admin.post("/api/v1/templates", json=template_body(_unique("bad"), 1, warmPool=overnight))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid warmPool.schedule[0].end"
    assert "passes midnight is two windows" in refused.json()["message"]
    unknown_zone = admin.patch(f"/api/v1/templates/{name}", json={"warmPool": {**office, "timeZone": "Mars/Base"}})
    assert unknown_zone.status_code == 400 and unknown_zone.json()["error"] == "invalid warmPool.timeZone"
    assert kube.get("Template", name, NS)["spec"]["warmPool"] == office  # unchanged
