"""template-reconcile over real HTTP: validation, status, and the Sessions of a Template failing and
recovering with it."""

from __future__ import annotations

from typing import Any

import pytest

from streamspace import kube
from streamspace.db import fetch_one

from .reconcile_helpers import NS, add_template, deliver, get, live, post, session_manifest, template_manifest


@pytest.fixture(scope="module")
def urls(function_url, sim):
    return {"template": function_url("template-reconcile"), "session": function_url("session-reconcile")}


def indexed(name: str) -> Any:
    return fetch_one("SELECT * FROM template_index WHERE namespace = %s AND name = %s", (NS, name))


def phase(name: str) -> str:
    return live("Session", name)["status"]["phase"]


def reason(name: str, ctype: str) -> str:
    return next(c for c in live("Session", name)["status"]["conditions"] if c["type"] == ctype)["reason"]


def run_session(urls: dict, name: str, template: str, labels: bool = True) -> None:
    obj = kube.create(session_manifest(name, user="gina", template=template, labels=labels))
    obj.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", obj) == 200
    assert deliver(urls["session"], "update", live("Deployment", f"ss-{name}")) == 200
    assert phase(name) == "Running"


def ready_template(urls: dict, name: str) -> dict:
    """A Template of this test's own, reconciled Ready (no test relies on an earlier one's objects)."""
    template = add_template(urls["template"], name)
    assert live("Template", name)["status"]["phase"] == "Ready"
    return template


def test_a_valid_template_becomes_ready_and_its_echo_costs_nothing(urls, sim):
    add_template(urls["template"], "gimp")
    obj = live("Template", "gimp")
    assert obj["status"]["phase"] == "Ready"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["conditions"][0]["type"] == "Ready"
    assert obj["status"]["conditions"][0]["status"] == "True"
    row = indexed("gimp")
    assert (row["phase"], row["generation"], row["uid"]) == ("Ready", 1, obj["metadata"]["uid"])
    sim.clear_requests()
    for _ in range(3):
        assert deliver(urls["template"], "update", obj) == 200
    assert sim.requests == []


def test_an_invalid_template_fails_its_sessions_which_recover_when_it_is_fixed(urls, sim):
    ready_template(urls, "gimp-fix")
    run_session(urls, "gina-labelled", "gimp-fix")
    run_session(urls, "gina-kubectl", "gimp-fix", labels=False)  # found through the index, not the label
    broken = kube.merge_patch("Template", "gimp-fix", {"spec": {"kasmvnc": {"enabled": True, "port": 3000}}}, NS)
    broken.setdefault("kind", "Template")
    assert deliver(urls["template"], "update", broken) == 200
    template = live("Template", "gimp-fix")
    assert template["status"]["phase"] == "Invalid"
    assert "kasmvnc" in template["status"]["message"]
    assert template["status"]["observedGeneration"] == template["metadata"]["generation"]
    assert indexed("gimp-fix")["phase"] == "Invalid"
    for name in ("gina-labelled", "gina-kubectl"):
        assert phase(name) == "Failed"
        assert reason(name, "TemplateResolved") == "TemplateInvalid"
        assert "kasmvnc" in live("Session", name)["status"]["message"]
        assert get("Deployment", f"ss-{name}") is not None  # what runs is left alone, never half-changed

    fixed = kube.merge_patch("Template", "gimp-fix", {"spec": {"kasmvnc": None}}, NS)
    fixed.setdefault("kind", "Template")
    assert deliver(urls["template"], "update", fixed) == 200
    assert live("Template", "gimp-fix")["status"]["phase"] == "Ready"
    for name in ("gina-labelled", "gina-kubectl"):
        assert phase(name) == "Running"
        assert reason(name, "TemplateResolved") == "TemplateReady"


def test_a_deleted_template_fails_its_sessions_until_it_returns(urls, sim):
    ready_template(urls, "gimp-del")
    run_session(urls, "gina-del", "gimp-del")
    last = live("Template", "gimp-del")
    kube.delete("Template", "gimp-del", NS)
    assert deliver(urls["template"], "delete", last) == 200
    assert indexed("gimp-del") is None
    assert phase("gina-del") == "Failed"
    assert reason("gina-del", "TemplateResolved") == "TemplateMissing"
    add_template(urls["template"], "gimp-del")
    assert phase("gina-del") == "Running"
    assert deliver(urls["template"], "delete", last) == 200  # a late delete of the old one: it is back
    assert indexed("gimp-del") is not None
    assert phase("gina-del") == "Running"


def test_an_image_change_rolls_the_sessions_deployment(urls, sim):
    ready_template(urls, "gimp-img")
    run_session(urls, "gina-img", "gimp-img")
    changed = kube.merge_patch("Template", "gimp-img", {"spec": {"baseImage": "lscr.io/linuxserver/gimp:2"}}, NS)
    changed.setdefault("kind", "Template")
    assert deliver(urls["template"], "update", changed) == 200
    dep = live("Deployment", "ss-gina-img")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "lscr.io/linuxserver/gimp:2"


def test_malformed_and_foreign_events_answer_400(urls, sim):
    from streamspace.events.apiserver import apiserver_event

    template = ready_template(urls, "gimp-bad")
    session = kube.create(session_manifest("gina-bad", user="gina", template="gimp-bad"))
    session.setdefault("kind", "Session")
    headers, body = apiserver_event("update", session, "sessions")
    assert post(urls["template"], headers, body)[0] == 400
    headers, _ = apiserver_event("update", template, "templates")
    assert post(urls["template"], headers, b"{}")[0] == 400


def test_an_api_failure_answers_503_and_the_retry_converges(urls, sim):
    template = kube.create(template_manifest("krita"))
    template.setdefault("kind", "Template")
    sim.inject_failure(method="PATCH", path_regex="/templates/krita/status", status=503, times=1)
    try:
        assert deliver(urls["template"], "add", template) == 503
    finally:
        sim.clear_failures()
    assert deliver(urls["template"], "add", template) == 200
    assert live("Template", "krita")["status"]["phase"] == "Ready"


def test_free_form_capabilities_of_the_earlier_streamspace_leave_the_template_ready_with_a_warning(urls, sim):
    add_template(urls["template"], "chrome-webgl", capabilities=["Network", "WebGL"])
    status = live("Template", "chrome-webgl")["status"]
    assert status["phase"] == "Ready"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["SpecWarnings"]["status"] == "True"
    assert conditions["SpecWarnings"]["reason"] == "UnknownCapabilities"
    assert "WebGL" in conditions["SpecWarnings"]["message"]
    fixed = kube.merge_patch("Template", "chrome-webgl", {"spec": {"capabilities": ["Network"]}}, NS)
    fixed.setdefault("kind", "Template")
    assert deliver(urls["template"], "update", fixed) == 200
    conditions = {c["type"]: c for c in live("Template", "chrome-webgl")["status"]["conditions"]}
    assert conditions["SpecWarnings"]["status"] == "False"


@pytest.mark.parametrize(("status", "answer"), [(403, 422), (500, 503)])
def test_a_session_failing_under_a_template_change_is_retried_only_when_a_retry_can_help(urls, sim, status, answer):
    """The Template's change reaches every Session; one whose read RBAC refuses (403) would be refused
    again on every retry, so the event is refused (422, to the dead-letter sink; resync takes the
    Session up later) and the others are still changed. A server error (500) may pass: retried (503)."""
    ready_template(urls, f"gimp-fan{status}")
    run_session(urls, f"gina-fan{status}a", f"gimp-fan{status}")
    run_session(urls, f"gina-fan{status}b", f"gimp-fan{status}")
    changed = kube.merge_patch("Template", f"gimp-fan{status}",
                               {"spec": {"baseImage": "lscr.io/linuxserver/gimp:3"}}, NS)
    changed.setdefault("kind", "Template")
    sim.inject_failure(method="GET", path_regex=f"/deployments/ss-gina-fan{status}a$", status=status, times=1)
    try:
        assert deliver(urls["template"], "update", changed) == answer
    finally:
        sim.clear_failures()
    image = "lscr.io/linuxserver/gimp:3"
    assert live("Deployment", f"ss-gina-fan{status}b")["spec"]["template"]["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize("redelivered", ["the same event", "the echo of its status write"])
def test_a_template_change_whose_fan_out_failed_part_way_reaches_every_session_at_the_next_delivery(
        urls, sim, redelivered):
    """The first delivery indexes the change (Sessions resolve their Template from the index) and then
    fails on one Session: the broker's retry of that event, or the echo of the status write it made,
    must finish the fan-out, not find the index up to date and stop until the periodic resync. Once
    every Session has it, one more delivery changes nothing and the echo costs no request."""
    suffix = "same" if redelivered == "the same event" else "echo"
    template = f"gimp-again-{suffix}"
    ready_template(urls, template)
    run_session(urls, f"gina-again-{suffix}a", template)
    run_session(urls, f"gina-again-{suffix}b", template)
    changed = kube.merge_patch("Template", template, {"spec": {"baseImage": "lscr.io/linuxserver/gimp:4"}}, NS)
    changed.setdefault("kind", "Template")
    sim.inject_failure(method="GET", path_regex=f"/deployments/ss-gina-again-{suffix}a$", status=500, times=1)
    try:
        assert deliver(urls["template"], "update", changed) == 503
    finally:
        sim.clear_failures()

    def image(session: str) -> str:
        return live("Deployment", f"ss-{session}")["spec"]["template"]["spec"]["containers"][0]["image"]

    new_image = "lscr.io/linuxserver/gimp:4"
    assert image(f"gina-again-{suffix}a") != new_image  # the first delivery missed it
    again = changed if redelivered == "the same event" else live("Template", template)
    assert deliver(urls["template"], "update", again) == 200
    assert image(f"gina-again-{suffix}a") == new_image
    assert image(f"gina-again-{suffix}b") == new_image

    versions = {s: live("Deployment", f"ss-{s}")["metadata"]["resourceVersion"]
                for s in (f"gina-again-{suffix}a", f"gina-again-{suffix}b")}
    assert deliver(urls["template"], "update", again) == 200
    assert {s: live("Deployment", f"ss-{s}")["metadata"]["resourceVersion"] for s in versions} == versions
    echo = live("Template", template)
    sim.clear_requests()
    assert deliver(urls["template"], "update", echo) == 200
    assert sim.requests == []  # the fan-out is recorded done: nothing is left to do
