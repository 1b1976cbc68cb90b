"""Image pre-pull over real HTTP (issue 18): template-reconcile keeps one image-puller DaemonSet per
image wanted by a Template with prePull (or a warm pool), the simulated DaemonSet controller and
kubelet pull it onto every node, the DaemonSet's events bring the node counts into the Template's
status, and a session started afterwards finds its image already on its node."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from streamspace import kube
from streamspace.reconcile.pullers import CONDITION, puller_name, wanted_image, wanted_images

from .reconcile_helpers import NS, add_template, deliver, live, session_manifest


@pytest.fixture(scope="module")
def urls(function_url, sim):
    return {"template": function_url("template-reconcile"), "session": function_url("session-reconcile")}


def _image(tag: str) -> str:
    """An image no other test pulls, so which nodes have it is decided by this test alone."""
    return f"registry.example/prepull/desk-{uuid.uuid4().hex[:8]}:{tag}"


def _template(urls: dict, name: str, image: str, **spec: Any) -> dict[str, Any]:
    add_template(urls["template"], name, image=image, **spec)
    return live("Template", name)


def _change(urls: dict, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kube.merge_patch("Template", name, {"spec": spec}, NS)
    assert deliver(urls["template"], "update", live("Template", name)) == 200
    return live("Template", name)


def _puller(image: str) -> dict[str, Any] | None:
    return kube.get("DaemonSet", puller_name(image), NS)


def _puller_event(urls: dict, image: str, action: str = "update") -> None:
    """What the DaemonSet source sends after the controller wrote the puller's status."""
    assert deliver(urls["template"], action, live("DaemonSet", puller_name(image))) == 200


def _condition(template: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in template["status"].get("conditions") or [] if c["type"] == CONDITION), None)


def _has_image(node: dict[str, Any], image: str) -> bool:
    return any(image in (i.get("names") or []) for i in (node.get("status") or {}).get("images") or [])


def test_a_prepull_template_gets_a_puller_and_its_status_counts_the_nodes(urls, sim):
    image = _image("1")
    template = _template(urls, "pp-count", image, prePull=True)
    ds = _puller(image)
    assert ds is not None and ds["metadata"]["annotations"]["stream.space/image"] == image
    pod_spec = ds["spec"]["template"]["spec"]
    assert [c["image"] for c in pod_spec["initContainers"]] == [image]
    assert pod_spec["containers"][0]["name"] == "pause" and pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert template["status"]["prePull"]["image"] == image

    _puller_event(urls, image)
    template = live("Template", "pp-count")
    counts = template["status"]["prePull"]
    desired = live("DaemonSet", puller_name(image))["status"]["desiredNumberScheduled"]
    assert desired >= 2 and counts["nodesDesired"] == desired and counts["nodesReady"] == desired
    condition = _condition(template)
    assert condition is not None and (condition["status"], condition["reason"]) == ("True", "OnAllNodes")
    assert condition["observedGeneration"] == template["metadata"]["generation"]

    # A node joins: the controller gives it a puller, and the count grows with the next event.
    core = client.CoreV1Api(sim.api_client())
    node = f"pp-node-{uuid.uuid4().hex[:6]}"
    core.create_node({"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}}})
    core.patch_node_status(node, {"status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                             "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})
    _puller_event(urls, image)
    counts = live("Template", "pp-count")["status"]["prePull"]
    assert (counts["nodesDesired"], counts["nodesReady"]) == (desired + 1, desired + 1)
    assert _has_image(live("Node", node), image)


def test_the_echo_of_a_templates_first_status_counts_what_its_puller_did_meanwhile(urls, sim):
    """The reconcile that makes a Template's puller counts from the DaemonSet it just created (nothing
    pulled yet); the puller's own events can all arrive before that status is written, and each skips
    the Template (not reconciled yet: its own reconcile writes the whole status). The echo of the
    status write is then the last event: it must count the nodes again, or the Template would say
    'being set up' until the next resync (test_relay_e2e's pre-pull test stalled so under load)."""
    image = _image("5")
    template = _template(urls, "pp-echo", image, prePull=True)
    ready = live("DaemonSet", puller_name(image))["status"]["numberReady"]
    assert ready >= 2 and template["status"]["prePull"]["nodesReady"] < ready  # counted before it pulled

    assert deliver(urls["template"], "update", template) == 200  # the echo of that status write
    template = live("Template", "pp-echo")
    counts = template["status"]["prePull"]
    assert (counts["nodesReady"], counts["nodesDesired"]) == (ready, ready)
    condition = _condition(template)
    assert condition is not None and (condition["status"], condition["reason"]) == ("True", "OnAllNodes")

    # The echo of that write finds nothing more to count: no event loop.
    version = template["metadata"]["resourceVersion"]
    assert deliver(urls["template"], "update", template) == 200
    assert live("Template", "pp-echo")["metadata"]["resourceVersion"] == version


def test_a_session_started_after_the_prepull_pulls_nothing(urls, sim):
    image = _image("2")
    nodes = [n for n in kube.list_objects("Node")]
    assert not any(_has_image(n, image) for n in nodes)  # nobody has it yet
    _template(urls, "pp-cached", image, prePull=True)
    _puller_event(urls, image)
    assert live("Template", "pp-cached")["status"]["prePull"]["nodesReady"] >= 2

    session = kube.create(session_manifest("gina-cached", user="gina", template="pp-cached"))
    session.setdefault("kind", "Session")
    assert deliver(urls["session"], "add", session) == 200
    [pod] = kube.list_objects("Pod", NS, label_selector="stream.space/session=gina-cached")
    events = [(e["reason"], e["message"]) for e in kube.list_objects("Event", NS)
              if e["involvedObject"]["name"] == pod["metadata"]["name"]]
    assert ("Pulled", f'Container image "{image}" already present on machine') in events, events
    assert not [e for e in events if e[0] == "Pulling" or e[1].startswith("Successfully pulled")]


def test_an_image_change_moves_the_puller_and_prepull_off_removes_it(urls, sim):
    first, second = _image("3"), _image("4")
    _template(urls, "pp-move", first, prePull=True)
    assert _puller(first) is not None
    template = _change(urls, "pp-move", {"baseImage": second})
    assert _puller(second) is not None and _puller(first) is None
    assert template["status"]["prePull"]["image"] == second

    template = _change(urls, "pp-move", {"prePull": False})
    assert _puller(second) is None
    assert "prePull" not in template["status"] and _condition(template) is None
    assert template["status"]["phase"] == "Ready"


def test_a_shared_image_is_pulled_until_its_last_template_goes(urls, sim):
    image = _image("5")
    _template(urls, "pp-one", image, prePull=True)
    _template(urls, "pp-two", image, prePull=True)
    pullers = [d for d in kube.list_objects("DaemonSet", NS) if d["metadata"]["annotations"].get(
        "stream.space/image") == image]
    assert len(pullers) == 1

    last = live("Template", "pp-one")
    kube.delete("Template", "pp-one", NS)
    assert deliver(urls["template"], "delete", last) == 200
    assert _puller(image) is not None  # pp-two still wants it

    last = live("Template", "pp-two")
    kube.delete("Template", "pp-two", NS)
    assert deliver(urls["template"], "delete", last) == 200
    assert _puller(image) is None


def test_a_deleted_puller_is_made_again_and_a_disabled_template_wants_none(urls, sim):
    image = _image("6")
    _template(urls, "pp-again", image, prePull=True)
    last = live("DaemonSet", puller_name(image))
    kube.delete("DaemonSet", puller_name(image), NS)
    assert deliver(urls["template"], "delete", last) == 200
    assert _puller(image) is not None

    _change(urls, "pp-again", {"enabled": False})  # nobody can launch it: nothing to pull for
    assert _puller(image) is None


def test_what_a_template_wants_pulled():
    def template(**spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": spec.pop("name", "t")}, "spec": {"baseImage": "example.org/a:1", **spec}}

    assert wanted_image(template(prePull=True)) == "example.org/a:1"
    assert wanted_image(template(warmPool={"size": 2})) == "example.org/a:1"  # a pooled template
    assert wanted_image(template()) is None
    assert wanted_image(template(prePull="true")) is None  # only a real boolean
    assert wanted_image(template(warmPool={"size": 0})) is None
    # Pooled only inside a schedule window: pre-pulled all the same (the pool starts at 08:00).
    window = {"days": ["Mon"], "start": "08:00", "end": "18:00", "size": 2}
    assert wanted_image(template(warmPool={"size": 0, "schedule": [window]})) == "example.org/a:1"
    assert wanted_image(template(warmPool={"size": True})) is None
    assert wanted_image(template(prePull=True, enabled=False)) is None
    assert wanted_images([template(name="b", prePull=True), template(name="a", warmPool={"size": 1}),
                          template(name="c")]) == {"example.org/a:1": ["a", "b"]}
    assert puller_name("lscr.io/linuxserver/firefox:latest") == puller_name("lscr.io/linuxserver/firefox:latest")
    assert puller_name("lscr.io/linuxserver/firefox:latest") != puller_name("lscr.io/linuxserver/firefox:1")
    assert puller_name("lscr.io/linuxserver/firefox:latest").startswith("prepull-firefox-")
    assert len(puller_name("r.example/" + "x" * 200 + ":1")) <= 40
