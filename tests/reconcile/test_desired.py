"""desired_objects and session_status: pure functions, no cluster and no database."""

from __future__ import annotations

import copy

import pytest

from streamspace.domain.errors import ValidationError
from streamspace.domain.templates import parse_template_spec
from streamspace.reconcile.desired import (
    ANN_HASHES,
    Observation,
    applied_hashes,
    deployment_ready,
    desired_objects,
    objects_to_apply,
    session_status,
    status_differs,
)
from streamspace.settings.effective import ReconcileConfig

CONFIG = ReconcileConfig()
FIREFOX = parse_template_spec({
    "displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest",
    "ports": [{"name": "vnc", "containerPort": 3000}], "vnc": {"enabled": True, "port": 3000},
    "volumeMounts": [{"name": "user-home", "mountPath": "/home/user"}, {"name": "cache", "mountPath": "/cache"}],
})
CODE = parse_template_spec({
    "displayName": "VS Code", "baseImage": "lscr.io/linuxserver/code-server:latest",
    "webapp": {"enabled": True, "port": 8443, "healthCheck": "/healthz"},
})


def session(state: str = "running", **spec) -> dict:
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Session",
            "metadata": {"name": "alice-firefox-x1", "namespace": "streamspace", "uid": "u-1", "generation": 3},
            "spec": {"user": "alice", "template": "firefox", "state": state, **spec}}


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def test_the_set_is_complete_ordered_and_deterministic():
    objects = desired_objects(session(), FIREFOX, CONFIG)
    assert [o["kind"] for o in objects] == ["PersistentVolumeClaim", "Service", "NetworkPolicy", "Ingress",
                                            "Deployment"]
    assert desired_objects(copy.deepcopy(session()), FIREFOX, CONFIG) == objects
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "user-home": "/home/user", "cache": "/cache"}
    assert {"name": "cache", "emptyDir": {}} in pod["volumes"]
    # the configured defaults apply when neither Session nor Template names resources
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1000m", "memory": "2Gi"},
                                                 "limits": {"cpu": "1000m", "memory": "2Gi"}}


def test_hibernation_changes_only_the_deployment_and_termination_wants_nothing():
    running = by_kind(desired_objects(session(), FIREFOX, CONFIG))
    hibernated = by_kind(desired_objects(session("hibernated"), FIREFOX, CONFIG))
    assert hibernated["Deployment"]["spec"]["replicas"] == 0
    for kind in ("PersistentVolumeClaim", "Service", "NetworkPolicy", "Ingress"):
        assert hibernated[kind] == running[kind]
    todo = objects_to_apply(list(hibernated.values()), applied_hashes(running["Deployment"]))
    assert [o["kind"] for o in todo] == ["Deployment"]
    assert objects_to_apply(list(running.values()), applied_hashes(running["Deployment"])) == []
    assert desired_objects(session("terminated"), FIREFOX, CONFIG) == []


def test_without_a_persistent_home_there_is_no_claim_and_the_home_is_scratch():
    objects = by_kind(desired_objects(session(persistentHome=False), FIREFOX, CONFIG))
    assert "PersistentVolumeClaim" not in objects
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "user-home", "emptyDir": {}} in pod["volumes"]
    assert "PersistentVolumeClaim" not in objects["Deployment"]["metadata"]["annotations"][ANN_HASHES]


def test_a_webapp_is_probed_on_its_health_path_and_exposed_as_stream():
    objects = by_kind(desired_objects(session(template="code"), CODE, CONFIG))
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8443}
    assert container["ports"] == [{"containerPort": 8443, "protocol": "TCP", "name": "stream"}]
    assert objects["Service"]["spec"]["ports"][0] == {"name": "stream", "port": 8443, "targetPort": 8443,
                                                      "protocol": "TCP"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/config" in mounts  # the default home mount path


def test_configuration_shapes_ingress_policy_and_claim():
    config = ReconcileConfig.from_values({
        "ingress.domain": "apps.example.com", "ingress.class": "nginx", "ingress.tlsSecret": "wildcard",
        "storage.className": "nfs", "storage.defaultSize": "10Gi", "session.defaultIdleTimeout": "1h",
    }, controller="nginx")
    assert config.default_idle_timeout_seconds == 3600
    objects = by_kind(desired_objects(session(), FIREFOX, config))
    ingress = objects["Ingress"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    annotations = objects["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-url"].endswith("/api/v1/auth/session-check")
    assert not any(key.startswith("traefik.") for key in annotations)  # only the configured controller's
    assert ingress["rules"][0]["host"] == "alice-firefox-x1.apps.example.com"
    assert ingress["tls"] == [{"hosts": ["alice-firefox-x1.apps.example.com"], "secretName": "wildcard"}]
    assert objects["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"}
    claim = objects["PersistentVolumeClaim"]["spec"]
    assert (claim["storageClassName"], claim["resources"]["requests"]["storage"]) == ("nfs", "10Gi")


def test_resources_that_make_no_sense_are_refused():
    with pytest.raises(ValidationError):
        desired_objects(session(resources={"requests": {"cpu": "4"}, "limits": {"cpu": "1"}}), FIREFOX, CONFIG)


def test_long_and_odd_user_names_stay_within_kubernetes_limits():
    odd = session(user="a" * 70)
    objects = by_kind(desired_objects(odd, FIREFOX, CONFIG))
    assert len(objects["PersistentVolumeClaim"]["metadata"]["name"]) <= 63
    assert len(objects["Deployment"]["metadata"]["labels"]["stream.space/user"]) <= 63


def test_a_claimed_warm_desktop_is_ready_only_once_its_profile_is_restored():
    restoring = session_status(session(), Observation(
        "Pending", "ProfileRestoring", "restoring the saved home into the desktop", "warm-pod",
        profile_restore=("Unknown", "Restoring", "restoring the saved home into the desktop")), CONFIG, "t0")
    conditions = {c["type"]: c for c in restoring["conditions"]}
    assert restoring["phase"] == "Pending" and conditions["Ready"]["status"] == "False"
    assert (conditions["ProfileRestored"]["status"], conditions["ProfileRestored"]["reason"]) == ("Unknown",
                                                                                                  "Restoring")
    restored = session_status({**session(), "status": restoring}, Observation(
        "Running", "PodReady", "", "warm-pod", profile_restore=("True", "Restored", "profile p1 restored")),
        CONFIG, "t1")
    conditions = {c["type"]: c for c in restored["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert (conditions["ProfileRestored"]["status"], conditions["ProfileRestored"]["lastTransitionTime"]) == (
        "True", "t1")
    assert "ProfileRestored" not in {c["type"] for c in session_status(
        session(), Observation("Running", "PodReady", "", "own-pod"), CONFIG, "t2")["conditions"]}


def test_status_keeps_transition_times_while_a_condition_holds():
    obs = Observation("Running", "PodReady", "", "pod-1")
    first = session_status(session(), obs, CONFIG, "2026-01-01T00:00:00Z")
    again = session_status({**session(), "status": first}, obs, CONFIG, "2026-01-01T01:00:00Z")
    assert again == first
    assert not status_differs(first, again)
    hibernated = session_status({**session("hibernated"), "status": first},
                                Observation("Hibernated", "IdleTimeout", "idle"), CONFIG, "2026-01-01T02:00:00Z")
    ready = next(c for c in hibernated["conditions"] if c["type"] == "Ready")
    resolved = next(c for c in hibernated["conditions"] if c["type"] == "TemplateResolved")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", "2026-01-01T02:00:00Z")
    assert resolved["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert "podName" not in hibernated
    assert hibernated["observedGeneration"] == 3


@pytest.mark.parametrize("controller", ["traefik", "nginx"])
def test_each_session_ingress_sends_the_ticket_redeem_to_auth_check(controller):
    """Issue 10 section 4: `/.streamspace/auth` on the session's host reaches auth-check (Exact, so no
    other path does); everything else reaches the desktop, behind the forward-auth annotation."""
    config = ReconcileConfig.from_values({"auth.service": "auth-redeem", "ingress.port": 8443},
                                         controller=controller)
    ingress = by_kind(desired_objects(session(), FIREFOX, config))["Ingress"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert paths == [
        {"path": "/.streamspace/auth", "pathType": "Exact",
         "backend": {"service": {"name": "auth-redeem", "port": {"number": 80}}}},
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "ss-alice-firefox-x1", "port": {"name": "stream"}}}},
    ]
    annotations = ingress["metadata"]["annotations"]
    assert ("traefik.ingress.kubernetes.io/router.middlewares" in annotations) == (controller == "traefik")
    assert ("nginx.ingress.kubernetes.io/auth-url" in annotations) == (controller == "nginx")
    assert ReconcileConfig().auth_service == "auth-check-redeem"  # knative/routing/auth-check-redeem.yaml
    # the URL names the configured port (make run: <session>.localhost:8000)
    assert session_status(session(), Observation("Running", "PodReady"), config, "t")["url"] == \
        "http://alice-firefox-x1.streamspace.local:8443/"


def _deployment(generation: int, **status: int) -> dict:
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(("deployment", "ready"), [
    (_deployment(1, observedGeneration=1, replicas=1, updatedReplicas=1, readyReplicas=1), True),
    # the spec changed (new image): the ready pod is of the old spec until the controller observes it
    (_deployment(2, observedGeneration=1, replicas=1, updatedReplicas=1, readyReplicas=1), False),
    # observed, but the new pod is not ready yet while an old one still is
    (_deployment(2, observedGeneration=2, replicas=2, updatedReplicas=1, readyReplicas=1), False),
    (_deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1, readyReplicas=0), False),
    (_deployment(1), False),
    (None, False),
])
def test_a_deployment_is_ready_only_when_its_status_describes_its_current_spec(deployment, ready):
    assert deployment_ready(deployment) is ready
