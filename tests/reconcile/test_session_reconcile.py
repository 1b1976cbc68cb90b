"""session-reconcile over real HTTP: ApiServerSource events in, objects on the simulated cluster,
status on the Session, the index row in Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamspace import kube
from streamspace.db import fetch_one
from tests.sim.sim_helpers import eventually

from .reconcile_helpers import (
    NS,
    add_template,
    deliver,
    get,
    live,
    owned_specs,
    post,
    reads,
    session_manifest,
    writes,
)

SESSION_PODS = "app.kubernetes.io/name=streamspace-session"


@pytest.fixture(scope="module")
def url(function_url, sim):
    return function_url("session-reconcile")


pytestmark = pytest.mark.usefixtures("firefox")  # the Template every Session here runs


@pytest.fixture(autouse=True)
def sessions_gone_after_each_test(sim):
    """Every test's Sessions are deleted when it ends, and the next test starts once their pods are gone.

    The tests share the module's two-node cluster, and every session of a user mounts that user's home
    claim, whose local volume pins them all to the node the first one landed on. Sessions left behind by
    earlier tests would fill that node (500m each; a terminating pod still counts, as in kube-scheduler),
    so which test met a full node depended on the order."""
    yield
    for session in kube.list_objects("Session", NS):
        kube.delete("Session", session["metadata"]["name"], NS)
    eventually(lambda: not kube.list_objects("Pod", NS, label_selector=SESSION_PODS),
               "the pods of the test's sessions are gone")


def row(name: str) -> Any:
    return fetch_one("SELECT * FROM sessions WHERE namespace = %s AND name = %s", (NS, name))


def create(name: str, **kw) -> dict:
    obj = kube.create(session_manifest(name, **kw))
    obj.setdefault("kind", "Session")
    return obj


def patch_state(name: str, state: str) -> dict:
    obj = kube.merge_patch("Session", name, {"spec": {"state": state}}, NS)
    obj.setdefault("kind", "Session")
    return obj


def condition(session: dict, ctype: str) -> dict:
    return next(c for c in session["status"]["conditions"] if c["type"] == ctype)


def running(url: str, name: str, **kw) -> dict:
    """A Session of this test's own, reconciled and Running (each test makes its own: no test
    relies on what an earlier one left behind)."""
    assert deliver(url, "add", create(name, **kw)) == 200
    assert deliver(url, "update", live("Deployment", f"ss-{name}")) == 200
    obj = live("Session", name)
    assert obj["status"]["phase"] == "Running"
    return obj


# -- create, readiness ------------------------------------------------------------------------------

def test_create_applies_the_owned_set_within_budget_and_reports_pending(url, sim, db_url):
    session = create("alice-create")
    sim.clear_requests()
    assert deliver(url, "add", session) == 200
    log = sim.requests
    assert len(log) <= 6, log  # PVC, Service, NetworkPolicy, Ingress, Deployment, status
    assert not reads(log), log

    obj = live("Session", "alice-create")
    assert obj["status"]["phase"] == "Pending"
    assert obj["status"]["url"] == "http://alice-create.streamspace.local/"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "TemplateResolved")["status"] == "True"

    dep = live("Deployment", "ss-alice-create")
    labels = dep["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "streamspace-session", "app.kubernetes.io/managed-by": "streamspace",
                      "stream.space/session": "alice-create", "stream.space/user": "alice",
                      "stream.space/template": "firefox"}
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "lscr.io/linuxserver/firefox:latest"
    assert {"name": "TZ", "value": "Etc/UTC"} in container["env"]
    assert {"name": "vnc", "containerPort": 3000, "protocol": "TCP"} in container["ports"]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}}
    assert container["readinessProbe"]["tcpSocket"] == {"port": 3000}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["user-home"]["persistentVolumeClaim"] == {"claimName": "home-alice"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/dev/shm": "dshm", "/config": "user-home"}

    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        refs = live(kind, "ss-alice-create")["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "stream.space/v1alpha1", "kind": "Session", "name": "alice-create",
                         "uid": session["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    service = live("Service", "ss-alice-create")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["name"] == "stream"
    assert service["spec"]["ports"][0]["port"] == 3000
    ingress = live("Ingress", "ss-alice-create")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert "kubernetes.io/ingress.class" not in annotations
    assert ingress["spec"]["rules"][0]["host"] == "alice-create.streamspace.local"
    assert annotations["traefik.ingress.kubernetes.io/router.middlewares"].endswith("@kubernetescrd")
    assert not any(key.startswith("nginx.") for key in annotations)  # INGRESS_CONTROLLER is traefik
    policy = live("NetworkPolicy", "ss-alice-create")["spec"]
    assert policy["podSelector"]["matchLabels"]["stream.space/session"] == "alice-create"
    assert policy["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "traefik"}}}]
    blocks = [peer["ipBlock"] for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert "169.254.0.0/16" in blocks[0]["except"]  # link-local, the metadata service included
    claim = live("PersistentVolumeClaim", "home-alice")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # HOME_ACCESS_MODE, by default
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert not claim["metadata"].get("ownerReferences")

    index = row("alice-create")  # a Session applied with kubectl gets its index row
    assert index is not None
    assert (index["username"], index["state"], index["phase"], index["observed_generation"]) == (
        "alice", "running", "Pending", obj["metadata"]["generation"])
    assert index["url"] == "http://alice-create.streamspace.local/"
    assert index["uid"] == session["metadata"]["uid"]


def test_running_only_after_the_deployment_event_shows_the_pod_ready(url, sim):
    assert deliver(url, "add", create("alice-ready")) == 200
    assert live("Session", "alice-ready")["status"]["phase"] == "Pending"
    dep = live("Deployment", "ss-alice-ready")
    assert dep["status"]["readyReplicas"] == 1  # the simulated kubelet made the pod Ready
    assert deliver(url, "update", dep) == 200
    obj = live("Session", "alice-ready")
    assert obj["status"]["phase"] == "Running"
    assert obj["status"]["podName"].startswith("ss-alice-ready-")
    assert condition(obj, "Ready")["status"] == "True"
    assert row("alice-ready")["phase"] == "Running"
    assert row("alice-ready")["pod_name"] == obj["status"]["podName"]


def test_a_pod_that_cannot_pull_its_image_fails_and_never_runs(url, function_url, sim):
    add_template(function_url("template-reconcile"), "broken", image="registry.example.com/invalid/app:1")
    session = create("bob-broken", user="bob", template="broken")
    assert deliver(url, "add", session) == 200
    assert live("Session", "bob-broken")["status"]["phase"] == "Pending"
    dep = live("Deployment", "ss-bob-broken")
    assert not dep["status"].get("readyReplicas")
    assert deliver(url, "update", dep) == 200
    obj = live("Session", "bob-broken")
    assert obj["status"]["phase"] == "Failed"
    assert condition(obj, "Ready")["reason"] == "ImagePullFailed"
    assert "ErrImagePull" in obj["status"]["message"]
    assert row("bob-broken")["phase"] == "Failed"


def test_a_pod_no_node_has_room_for_keeps_the_session_pending_with_the_schedulers_reason(url, function_url, sim):
    huge = {"requests": {"cpu": "500m", "memory": "64Gi"}, "limits": {"cpu": "2", "memory": "64Gi"}}
    add_template(function_url("template-reconcile"), "roomy", defaultResources=huge)
    assert deliver(url, "add", create("frank-roomy", user="frank", template="roomy")) == 200
    assert deliver(url, "update", live("Deployment", "ss-frank-roomy")) == 200
    obj = live("Session", "frank-roomy")
    assert obj["status"]["phase"] == "Pending"  # a node may join (autoscaler) or free up: not a failure
    nodes = len(kube.list_objects("Node", None))
    assert f"Unschedulable: 0/{nodes} nodes are available: {nodes} Insufficient memory. preemption: " in \
        obj["status"]["message"], obj["status"]["message"]  # every node refuses the memory, and only that
    assert row("frank-roomy")["phase"] == "Pending"


# -- budgets ----------------------------------------------------------------------------------------

def test_the_echo_of_our_own_status_write_costs_no_request(url, sim):
    obj = running(url, "alice-echo")
    sim.clear_requests()
    for _ in range(3):
        assert deliver(url, "update", obj) == 200
    assert sim.requests == []


def test_a_steady_state_reconcile_is_at_most_one_read(url, sim):
    obj = running(url, "alice-steady")
    before = owned_specs("alice-steady")
    obj["status"] = {}  # an old copy (the add event), as a redelivery would carry
    obj["metadata"].pop("resourceVersion")
    sim.clear_requests()
    for _ in range(3):
        assert deliver(url, "add", obj) == 200
    log = sim.requests
    assert not writes(log), log
    assert len(reads(log)) <= 3, log  # one per delivery
    assert owned_specs("alice-steady") == before
    assert live("Session", "alice-steady")["status"]["phase"] == "Running"


# -- state changes ----------------------------------------------------------------------------------

def test_hibernate_scales_to_zero_and_keeps_everything_else(url, sim):
    running(url, "alice-hib")
    obj = patch_state("alice-hib", "hibernated")
    sim.clear_requests()
    assert deliver(url, "update", obj) == 200
    log = sim.requests
    assert len(writes(log)) == 2, log  # the Deployment (replicas 0) and the status
    assert live("Deployment", "ss-alice-hib")["spec"]["replicas"] == 0
    for kind in ("Service", "Ingress", "NetworkPolicy"):
        assert get(kind, "ss-alice-hib") is not None
    session = live("Session", "alice-hib")
    assert session["status"]["phase"] == "Hibernated"
    assert condition(session, "Hibernated")["status"] == "True"
    assert condition(session, "Ready")["status"] == "False"
    assert row("alice-hib")["state"] == "hibernated"


def test_wake_scales_up_and_restarts_the_activity_clock(url, sim):
    from streamspace.db import execute

    running(url, "alice-wake")
    assert deliver(url, "update", patch_state("alice-wake", "hibernated")) == 200
    assert live("Deployment", "ss-alice-wake")["spec"]["replicas"] == 0
    execute("UPDATE sessions SET last_activity = now() - interval '3 hours' WHERE namespace = %s AND name = %s",
            (NS, "alice-wake"))
    obj = patch_state("alice-wake", "running")
    assert deliver(url, "update", obj) == 200
    assert live("Deployment", "ss-alice-wake")["spec"]["replicas"] == 1
    index = row("alice-wake")
    assert index["state"] == "running"
    assert index["last_activity"] > datetime.now(UTC) - timedelta(minutes=1)
    assert deliver(url, "update", live("Deployment", "ss-alice-wake")) == 200
    session = live("Session", "alice-wake")
    assert session["status"]["phase"] == "Running"
    assert condition(session, "Hibernated")["status"] == "False"


def test_terminate_deletes_the_owned_objects_and_keeps_session_and_home(url, sim):
    session = create("alice-term")
    assert deliver(url, "add", session) == 200
    obj = patch_state("alice-term", "terminated")
    assert deliver(url, "update", obj) == 200
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        assert get(kind, "ss-alice-term") is None, kind
    session = live("Session", "alice-term")
    assert session["status"]["phase"] == "Terminated"
    assert condition(session, "Terminated")["reason"] == "Requested"
    assert "url" not in session["status"]
    assert get("PersistentVolumeClaim", "home-alice") is not None
    assert row("alice-term")["state"] == "terminated"
    assert row("alice-term")["phase"] == "Terminated"
    echo = live("Session", "alice-term")
    sim.clear_requests()
    assert deliver(url, "update", echo) == 200
    assert sim.requests == []


def test_delete_removes_the_index_row_and_a_late_event_changes_nothing(url, sim):
    session = create("alice-del")
    assert deliver(url, "add", session) == 200
    last = live("Session", "alice-del")
    kube.delete("Session", "alice-del", NS)
    assert deliver(url, "delete", last) == 200
    assert row("alice-del") is None
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):  # the garbage collector's, asynchronously
        eventually(lambda kind=kind: get(kind, "ss-alice-del") is None, f"the {kind} is collected")
    assert get("PersistentVolumeClaim", "home-alice") is not None
    # A redelivered add / update arriving after the delete must not bring anything back.
    assert deliver(url, "add", session) == 200
    assert deliver(url, "update", last) == 200
    assert get("Deployment", "ss-alice-del") is None
    assert row("alice-del") is None


def test_a_session_deleted_before_its_event_is_handled_leaves_nothing_behind(url, sim):
    session = create("alice-gone")
    kube.delete("Session", "alice-gone", NS)  # its delete event is lost
    assert deliver(url, "add", session) == 200
    for kind in ("Deployment", "Service", "Ingress", "NetworkPolicy"):
        eventually(lambda kind=kind: get(kind, "ss-alice-gone") is None, f"no {kind} is left behind")
    assert row("alice-gone") is None


def test_a_reconcile_that_finishes_after_the_delete_event_does_not_restore_the_index_row(url, sim):
    """Events are delivered concurrently: a reconcile that loaded its context before the Session's
    delete event was handled writes its index row after the row was removed."""
    from streamspace.reconcile import index
    from streamspace.reconcile.session import session_deleted

    session = create("alice-race")
    assert deliver(url, "add", session) == 200
    running = live("Session", "alice-race")
    uid = running["metadata"]["uid"]
    stale = index.load_session_context(NS, "alice-race", uid, "firefox")  # the slower reconcile's view
    kube.delete("Session", "alice-race", NS)
    assert session_deleted(NS, "alice-race", uid) == "deleted"
    assert row("alice-race") is None
    index.write_index(stale.row, running, {**running["status"], "message": "late"})
    assert row("alice-race") is None


# -- convergence ------------------------------------------------------------------------------------

def _history(name: str) -> list[tuple[str, dict]]:
    events = [("add", create(name))]
    events.append(("update", patch_state(name, "hibernated")))
    events.append(("update", patch_state(name, "running")))
    tags = kube.merge_patch("Session", name, {"spec": {"tags": ["x"]}}, NS)
    tags.setdefault("kind", "Session")
    events.append(("update", tags))
    return events


def _normalised(name: str) -> dict:
    uid = live("Session", name)["metadata"]["uid"]
    specs = owned_specs(name)
    specs["Deployment"]["annotations"].pop("stream.space/applied-hashes")  # hashes of per-session content
    for key in ("clusterIP", "clusterIPs"):  # assigned by the API server
        specs["Service"]["spec"].pop(key, None)
    objects = {kind: repr(spec).replace(name, "<name>").replace(uid, "<uid>") for kind, spec in specs.items()}
    return {**objects, "phase": live("Session", name)["status"]["phase"],
            "observed": live("Session", name)["status"]["observedGeneration"] ==
            live("Session", name)["metadata"]["generation"]}


def test_duplicated_and_reordered_events_converge_to_the_same_objects(url, sim):
    in_order = _history("carol-order")
    for action, obj in in_order:
        assert deliver(url, action, obj) == 200
    reordered = _history("carol-rever")
    for action, obj in reversed(reordered):
        assert deliver(url, action, obj) == 200
    tripled = _history("carol-trips")
    for action, obj in tripled:
        for _ in range(3):
            assert deliver(url, action, obj) == 200
    for name in ("carol-order", "carol-rever", "carol-trips"):
        assert deliver(url, "update", live("Deployment", f"ss-{name}")) == 200
    expected = _normalised("carol-order")
    assert expected["phase"] == "Running" and expected["observed"]
    assert _normalised("carol-rever") == expected
    assert _normalised("carol-trips") == expected
    assert live("Deployment", "ss-carol-rever")["spec"]["replicas"] == 1


def test_a_deleted_deployment_is_recreated_from_its_delete_event(url, sim):
    running(url, "carol-deleted")
    dep = live("Deployment", "ss-carol-deleted")
    kube.delete("Deployment", "ss-carol-deleted", NS)
    assert deliver(url, "delete", dep) == 200
    assert live("Deployment", "ss-carol-deleted")["spec"]["replicas"] == 1


# -- templates --------------------------------------------------------------------------------------

def test_a_missing_template_fails_the_session_without_objects(url, sim):
    session = create("dave-missing", user="dave", template="nosuch")
    sim.clear_requests()
    assert deliver(url, "add", session) == 200
    obj = live("Session", "dave-missing")
    assert obj["status"]["phase"] == "Failed"
    assert condition(obj, "TemplateResolved")["reason"] == "TemplateMissing"
    assert get("Deployment", "ss-dave-missing") is None
    assert row("dave-missing")["phase"] == "Failed"


# -- bad input and failures -------------------------------------------------------------------------

def test_malformed_events_answer_400(url, sim):
    obj = create("alice-malformed")
    from streamspace.events.apiserver import apiserver_event, ping_event

    headers, _ = apiserver_event("update", obj, "sessions")
    assert post(url, headers, b"not json")[0] == 400
    assert post(url, headers, b'{"kind": "Session", "metadata": {}}')[0] == 400
    assert post(url, headers, b'["a list"]')[0] == 400
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": NS}}
    headers, body = apiserver_event("update", cm, "configmaps")
    assert post(url, headers, body)[0] == 400
    headers, body = apiserver_event("update", {**obj, "spec": {"state": "running"}}, "sessions")
    assert post(url, headers, body)[0] == 400
    headers, body = ping_event(NS, "idle-sweep", "{}")
    assert post(url, headers, body)[0] == 400
    bad = dict(headers)
    bad["ce-type"] = "dev.knative.apiserver.resource.frobnicate"
    assert post(url, bad, body)[0] == 400


def test_events_of_deployments_we_do_not_manage_are_ignored(url, sim):
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "someone-else", "namespace": NS, "labels": {"app": "x"}}, "spec": {}}
    sim.clear_requests()
    assert deliver(url, "update", other) == 200
    assert sim.requests == []


@pytest.mark.parametrize("status", [500, 503, 409, 429])
def test_api_server_failures_answer_503_and_the_retry_converges(url, sim, status):
    name = f"erin-fail-{status}"
    session = create(name, user="erin")
    sim.inject_failure(method="PATCH", path_regex="/ingresses/", status=status, times=1)
    try:
        assert deliver(url, "add", session) == 503
    finally:
        sim.clear_failures()
    assert get("Deployment", f"ss-{name}") is None  # applied last: no half-applied set is recorded
    assert deliver(url, "add", session) == 200  # the broker's retry
    assert live("Session", name)["status"]["phase"] == "Pending"
    assert get("Ingress", f"ss-{name}") is not None


@pytest.mark.parametrize("status", [403, 422])
def test_failures_that_would_recur_are_refused_not_retried(url, sim, status):
    """RBAC refusing our account (403) or the API server rejecting the status (422) fails the same
    way on every retry: the event is refused (4xx, to the dead-letter sink), not retried forever."""
    name = f"erin-refused-{status}"
    session = create(name, user="erin")
    sim.inject_failure(method="PATCH", path_regex=f"/sessions/{name}/status$", status=status, times=1)
    try:
        assert deliver(url, "add", session) == 422
    finally:
        sim.clear_failures()
    assert "status" not in live("Session", name)
    assert deliver(url, "add", session) == 200  # once fixed, the next event (or the resync) converges
    assert live("Session", name)["status"]["phase"] in ("Pending", "Running")


def test_an_unreachable_database_answers_503(url, sim, db_url):
    import os

    from streamspace.config import reset_environment
    from streamspace.db import close_pool

    session = create("erin-nodb", user="erin")
    close_pool()
    os.environ["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    reset_environment()
    try:
        assert deliver(url, "add", session) == 503
    finally:
        close_pool()
        os.environ["DATABASE_URL"] = db_url
        reset_environment()
    assert deliver(url, "add", session) == 200


def test_a_deployment_scaled_by_hand_is_put_back(url, sim):
    running(url, "carol-scaled")
    kube.merge_patch("Deployment", "ss-carol-scaled", {"spec": {"replicas": 0}}, NS)
    assert deliver(url, "update", live("Deployment", "ss-carol-scaled")) == 200
    assert live("Deployment", "ss-carol-scaled")["spec"]["replicas"] == 1


def test_reason_annotations_are_never_copied_verbatim_into_conditions(url, sim):
    session = create("erin-odd", user="erin")
    assert deliver(url, "add", session) == 200
    obj = kube.merge_patch("Session", "erin-odd", {
        "metadata": {"annotations": {"stream.space/termination-reason": "not a valid reason!"}},
        "spec": {"state": "terminated"}}, NS)
    obj.setdefault("kind", "Session")
    assert deliver(url, "update", obj) == 200
    assert condition(live("Session", "erin-odd"), "Terminated")["reason"] == "Requested"


def test_an_event_about_an_earlier_session_of_the_same_name_changes_nothing(url, sim):
    first = create("erin-again", user="erin")
    assert deliver(url, "add", first) == 200
    kube.delete("Session", "erin-again", NS)  # its delete event is still on its way
    second = create("erin-again", user="erin", state="hibernated")
    assert deliver(url, "add", second) == 200
    assert deliver(url, "update", first) == 200  # late, about the first one
    dep = live("Deployment", "ss-erin-again")
    assert dep["spec"]["replicas"] == 0
    assert dep["metadata"]["ownerReferences"][0]["uid"] == second["metadata"]["uid"]
    assert row("erin-again")["uid"] == second["metadata"]["uid"]
    assert live("Session", "erin-again")["status"]["phase"] == "Hibernated"


# -- concurrent reconciles --------------------------------------------------------------------------

def _cordon(unschedulable: bool) -> None:
    for node in kube.list_objects("Node", None):
        kube.merge_patch("Node", node["metadata"]["name"], {"spec": {"unschedulable": unschedulable or None}})


def test_a_reconcile_whose_status_write_loses_a_conflict_still_shows_what_it_saw(url, sim):
    """Two Deployment events of one Session are reconciled at once: the first saw the pod not ready yet,
    the second saw it ready. The first writes its status (Pending) and its index row; the second's
    status write, made on the version it read before, loses that conflict. The echo of the first
    write is then the last event, and it is answered from the index (the echo of our own write):
    nothing would show the Session Running until the periodic resync. The losing reconcile must
    look again at the Session as it is now instead (controller-runtime requeues on a conflict)."""
    import threading

    name = "gina-race"
    status_write = pod_list = None
    _cordon(True)  # the pod waits for a node: its Deployment is not ready until the test lets it
    try:
        assert deliver(url, "add", create(name, user="gina")) == 200
        status_write = sim.hold_requests("PATCH", rf"/sessions/{name}/status$")
        slow = threading.Thread(target=deliver, args=(url, "update", live("Deployment", f"ss-{name}")))
        slow.start()  # the first event: sees the pod not ready, and its status write waits
        assert status_write.arrived.wait(60), "the first reconcile never wrote the Session's status"
        _cordon(False)
        eventually(lambda: (get("Deployment", f"ss-{name}") or {}).get("status", {}).get("readyReplicas") == 1,
                   "the Deployment is ready once its pod has a node")
        # The second event reads the Session the first has not written yet and waits at its pod list
        # (it needs a pod name) until the first is done.
        pod_list = sim.hold_requests("GET", r"/namespaces/[^/]+/pods$")
        answers: list[int] = []
        fast = threading.Thread(target=lambda: answers.append(
            deliver(url, "update", live("Deployment", f"ss-{name}"))))
        fast.start()
        assert pod_list.arrived.wait(60), "the second reconcile never listed the Session's pods"
        status_write.release()
        # The first reconcile is done once its index row says what it saw (written after its status);
        # waited on here, not on its delivery, whose client may give up first on a loaded machine.
        eventually(lambda: "Unschedulable" in (row(name)["message"] or ""), "the first reconcile's index row")
        slow.join(60)
        first = live("Session", name)
        assert first["status"]["phase"] == "Pending" and "Unschedulable" in first["status"]["message"]
        sim.clear_requests()
        pod_list.release()
        fast.join(60)
    finally:
        _cordon(False)
        for held in (status_write, pod_list):
            if held is not None:
                held.release()
    assert answers == [200]
    assert any(r.method == "PATCH" and r.path.endswith(f"/sessions/{name}/status") and r.status == 409
               for r in sim.requests), "the second reconcile's status write did not lose to the first's"

    assert deliver(url, "update", first) == 200  # the echo of the first reconcile's status write
    session = live("Session", name)
    assert session["status"]["phase"] == "Running", session["status"]
    assert condition(session, "Ready")["status"] == "True"
    assert row(name)["phase"] == "Running"
