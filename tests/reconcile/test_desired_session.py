"""desired_session: the plan of one Session reconcile (what is applied, deleted, and the status when
the plan alone decides it), a pure function: no cluster and no database."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from streamspace.domain.templates import parse_template_spec
from streamspace.reconcile.desired import (
    ANN_HIBERNATION_REASON,
    ANN_TERMINATION_REASON,
    INGRESS_CLASS_UNSUPPORTED,
    UNREAD,
    desired_objects,
    desired_session,
)
from streamspace.settings.effective import ReconcileConfig

CONFIG = ReconcileConfig()
PROFILES = dataclasses.replace(CONFIG, home_storage="s3")
FIREFOX = parse_template_spec({
    "displayName": "Firefox", "baseImage": "lscr.io/linuxserver/firefox:latest",
    "ports": [{"name": "vnc", "containerPort": 3000}], "vnc": {"enabled": True, "port": 3000},
})
TEARDOWN = ("Service", "Ingress", "NetworkPolicy", "Deployment")


def session(state: str = "running", annotations: dict | None = None, **spec) -> dict:
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Session",
            "metadata": {"name": "alice-firefox-x1", "namespace": "streamspace", "uid": "u-1", "generation": 3,
                         "annotations": annotations or {}},
            "spec": {"user": "alice", "template": "firefox", "state": state, **spec}}


def applied(obj: dict, state: str = "running", config: ReconcileConfig = CONFIG) -> dict:
    """The Deployment as the cluster holds it after the set for `obj` in `state` was applied."""
    return copy.deepcopy(desired_objects({**obj, "spec": {**obj["spec"], "state": state}}, FIREFOX, config)[-1])


def kinds(plan) -> list[str]:
    return [o["kind"] for o in plan.apply]


def test_a_session_never_reconciled_gets_the_whole_set_in_order_and_waits_for_its_pod():
    plan = desired_session(session(), FIREFOX, CONFIG, deployment=UNREAD)
    assert kinds(plan) == ["PersistentVolumeClaim", "Service", "NetworkPolicy", "Ingress", "Deployment"]
    assert plan.delete == ()
    assert plan.settled is None  # Running or Pending: what the pod shows after the apply decides
    assert plan.home_claim == "home-alice"


def test_a_set_in_place_applies_nothing_and_a_hand_scaled_deployment_alone_is_put_back():
    obj = session()
    live = applied(obj)
    assert desired_session(obj, FIREFOX, CONFIG, deployment=live).apply == ()
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 3
    assert kinds(desired_session(obj, FIREFOX, CONFIG, deployment=scaled)) == ["Deployment"]
    # resync found an owned object missing: the whole set, whatever the Deployment records
    assert len(desired_session(obj, FIREFOX, CONFIG, deployment=live, force_apply=True).apply) == 5


def test_hibernation_applies_only_the_scaled_down_deployment_and_names_its_reason_from_a_fixed_set():
    obj = session("hibernated", annotations={ANN_HIBERNATION_REASON: "IdleTimeout"})
    plan = desired_session(obj, FIREFOX, CONFIG, deployment=applied(obj))
    assert kinds(plan) == ["Deployment"] and plan.apply[0]["spec"]["replicas"] == 0
    assert plan.settled is not None and (plan.settled.phase, plan.settled.reason) == ("Hibernated", "IdleTimeout")
    odd = session("hibernated", annotations={ANN_HIBERNATION_REASON: "<b>rm -rf</b>"})
    assert desired_session(odd, FIREFOX, CONFIG, deployment=applied(odd)).settled.reason == "Requested"


@pytest.mark.parametrize(("deployment", "force", "deleted"), [
    ("live", False, TEARDOWN),
    (UNREAD, False, TEARDOWN),  # never reconciled by us, but the API may have recorded objects: look anyway
    (None, False, ()),  # the Deployment, deleted last, is gone: so is the rest
    (None, True, TEARDOWN),  # resync saw an owned object left over
])
def test_termination_deletes_the_owned_set_deployment_last_and_keeps_the_home(deployment, force, deleted):
    obj = session("terminated")
    plan = desired_session(obj, FIREFOX, CONFIG, deployment=applied(session()) if deployment == "live" else deployment,
                           force_apply=force)
    assert plan.delete == deleted and plan.apply == ()
    assert "PersistentVolumeClaim" not in plan.delete
    assert (plan.settled.phase, plan.settled.reason) == ("Terminated", "Requested")
    assert plan.claimed_desktop  # a claimed warm desktop is ended with it


def test_termination_reports_the_maximum_duration_only_for_that_exact_reason():
    exceeded = session("terminated", annotations={ANN_TERMINATION_REASON: "MaxSessionDurationExceeded"},
                       maxSessionDuration="8h")
    assert desired_session(exceeded, None, CONFIG, deployment=None).settled.reason == "MaxSessionDurationExceeded"
    forged = session("terminated", annotations={ANN_TERMINATION_REASON: "AdminSaysSo"})
    assert desired_session(forged, None, CONFIG, deployment=None).settled.reason == "Requested"


def test_a_template_problem_fails_the_session_and_touches_neither_its_objects_nor_its_claimed_desktop():
    obj = session()
    plan = desired_session(obj, None, CONFIG, deployment=applied(obj),
                           template_problem=("TemplateInvalid", "template 'firefox' is invalid: no image"))
    assert plan.apply == () and plan.delete == ()
    assert (plan.settled.phase, plan.settled.reason, plan.settled.template_problem) == (
        "Failed", "TemplateInvalid", "TemplateInvalid")
    assert not plan.claimed_desktop


@pytest.mark.parametrize(("deployment", "deleted"), [("live", TEARDOWN), (UNREAD, ()), (None, ())])
def test_an_ingress_class_without_forward_auth_removes_a_running_set_and_never_applies_one(deployment, deleted):
    unprotected = dataclasses.replace(CONFIG, ingress_class="haproxy")
    obj = session()
    plan = desired_session(obj, FIREFOX, unprotected,
                           deployment=applied(obj) if deployment == "live" else deployment)
    assert plan.apply == () and plan.delete == deleted
    assert plan.settled.reason == INGRESS_CLASS_UNSUPPORTED and plan.settled.ingress_refused


def test_with_profiles_a_session_of_no_known_user_gets_nothing_and_says_why():
    plan = desired_session(session(), FIREFOX, PROFILES, deployment=UNREAD, profile_token=None)
    assert plan.apply == ()
    assert (plan.settled.phase, plan.settled.reason) == ("Failed", "UserUnknown")
    kept_scratch = desired_session(session(persistentHome=False), FIREFOX, PROFILES, deployment=UNREAD)
    assert kept_scratch.settled is None and kinds(kept_scratch)[-1] == "Deployment"


def test_resources_the_template_cannot_give_fail_the_session_without_an_apply():
    plan = desired_session(session(resources={"memory": "lots"}), FIREFOX, CONFIG, deployment=UNREAD)
    assert plan.apply == ()
    assert (plan.settled.phase, plan.settled.reason) == ("Failed", "InvalidResources")


def test_a_session_in_its_claimed_warm_desktop_keeps_no_pod_of_its_own():
    obj = session()
    cold = desired_session(obj, FIREFOX, CONFIG, deployment=UNREAD)
    warm = desired_session(obj, FIREFOX, CONFIG, deployment=UNREAD, warm=True)
    assert cold.apply[-1]["spec"]["replicas"] == 1
    assert warm.apply[-1]["spec"]["replicas"] == 0
    # the record on the cold Deployment no longer matches: moving into the warm desktop re-applies it
    assert kinds(desired_session(obj, FIREFOX, CONFIG, deployment=applied(obj), warm=True)) == ["Deployment"]


def test_the_plan_is_a_function_of_its_inputs_only():
    obj = session("hibernated", annotations={ANN_HIBERNATION_REASON: "IdleTimeout"})
    before = copy.deepcopy(obj)
    live = applied(session())
    first = desired_session(obj, FIREFOX, CONFIG, deployment=live)
    assert desired_session(copy.deepcopy(obj), FIREFOX, CONFIG, deployment=copy.deepcopy(live)) == first
    assert obj == before  # the event's copy is not changed


def test_each_condition_decided_now_names_the_generation_it_was_decided_for():
    from streamspace.reconcile.desired import Observation, session_status

    running = session()
    status = session_status(running, Observation("Running", "PodReady"), CONFIG, "2026-01-01T00:00:00Z")
    assert {c["type"]: c["observedGeneration"] for c in status["conditions"]} == {
        "Ready": 3, "TemplateResolved": 3, "Hibernated": 3}
    ended = {**session("terminated"), "status": status}
    ended["metadata"] = {**ended["metadata"], "generation": 4}
    later = session_status(ended, Observation("Terminated", "Requested", "terminated on request"), CONFIG,
                           "2026-01-01T01:00:00Z")
    conditions = {c["type"]: c for c in later["conditions"]}
    assert conditions["Terminated"]["observedGeneration"] == 4
    assert conditions["TemplateResolved"]["observedGeneration"] == 3  # kept as decided, not restamped
