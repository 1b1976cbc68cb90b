"""Manifests of the earlier StreamSpace (stream.streamspace.io/v1alpha1) applied with the official
client keep working: template-reconcile converts each legacy Template and Session into a
stream.space object, reports the outcome in the legacy object's status, and the converted Session
runs like any other."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from streamspace import kube
from streamspace.events.apiserver import apiserver_event
from tests.conftest import make_user
from tests.sim.sim_helpers import eventually

from .reconcile_helpers import NS, deliver, live, post

EARLIER = Path(__file__).resolve().parents[1] / "upgrade" / "earlier"
GROUP, VERSION = "stream.streamspace.io", "v1alpha1"


@pytest.fixture(scope="module")
def urls(function_url, sim):
    return {"template": function_url("template-reconcile"), "session": function_url("session-reconcile")}


@pytest.fixture(scope="module")
def objects(sim) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(sim.api_client())


def earlier(file: str, index: int = 0) -> dict[str, Any]:
    doc = copy.deepcopy(list(yaml.safe_load_all((EARLIER / file).read_text()))[index])
    doc["metadata"]["namespace"] = NS  # the files' own namespace (workspaces) is not the platform's
    return doc


def apply_legacy(objects: client.CustomObjectsApi, urls: dict, doc: dict[str, Any]) -> dict[str, Any]:
    plural = doc["kind"].lower() + "s"
    created = objects.create_namespaced_custom_object(GROUP, VERSION, NS, plural, doc)
    assert deliver(urls["template"], "add", created) == 200
    return objects.get_namespaced_custom_object(GROUP, VERSION, NS, plural, doc["metadata"]["name"])


def converted(obj: dict[str, Any]) -> dict[str, Any]:
    return {c["type"]: c for c in obj["status"]["conditions"]}["Converted"]


def test_a_legacy_template_is_served_as_a_stream_space_template_with_its_capabilities_as_tags(objects, urls):
    legacy = apply_legacy(objects, urls, earlier("gimp.yaml"))
    condition = converted(legacy)
    assert (condition["status"], condition["reason"]) == ("True", "Converted")
    assert "unknown capabilities Graphics, Photo-Editing, Tablets, Color-Management" in condition["message"]
    assert legacy["status"]["convertedTo"] == {"apiVersion": "stream.space/v1alpha1", "kind": "Template",
                                               "name": "gimp"}
    assert legacy["status"]["observedGeneration"] == legacy["metadata"]["generation"]

    template = live("Template", "gimp")
    assert template["spec"]["capabilities"] == ["Network", "Clipboard"]
    assert template["spec"]["defaultResources"]["limits"] == {"memory": "2Gi", "cpu": "1000m"}
    assert template["spec"]["vnc"]["port"] == 3000
    owner = template["metadata"]["ownerReferences"][0]
    assert (owner["apiVersion"], owner["kind"], owner["uid"]) == (f"{GROUP}/{VERSION}", "Template",
                                                                  legacy["metadata"]["uid"])
    assert deliver(urls["template"], "add", template) == 200
    assert live("Template", "gimp")["status"]["phase"] == "Ready"

    # An edit of the legacy object is converted again; a repeated event changes nothing.
    legacy["spec"]["displayName"] = "GIMP 3"
    updated = objects.replace_namespaced_custom_object(GROUP, VERSION, NS, "templates", "gimp", legacy)
    assert deliver(urls["template"], "update", updated) == 200
    assert live("Template", "gimp")["spec"]["displayName"] == "GIMP 3"
    version = live("Template", "gimp")["metadata"]["resourceVersion"]
    assert deliver(urls["template"], "update", updated) == 200
    assert live("Template", "gimp")["metadata"]["resourceVersion"] == version


def test_a_legacy_session_runs(objects, urls):
    make_user("user1")
    template_doc = earlier("gimp.yaml")
    template_doc["metadata"]["name"] = "gimp-for-sessions"
    apply_legacy(objects, urls, template_doc)
    session_doc = earlier("session.yaml")
    session_doc["spec"]["template"] = "gimp-for-sessions"
    legacy = apply_legacy(objects, urls, session_doc)
    assert converted(legacy)["status"] == "True"
    session = live("Session", "user1-gimp")
    assert session["spec"]["user"] == "user1"
    assert session["spec"]["resources"]["limits"] == {"memory": "2Gi", "cpu": "1000m"}
    assert deliver(urls["template"], "add", live("Template", "gimp-for-sessions")) == 200
    assert deliver(urls["session"], "add", session) == 200
    assert deliver(urls["session"], "update", live("Deployment", "ss-user1-gimp")) == 200
    assert live("Session", "user1-gimp")["status"]["phase"] == "Running"


def test_a_legacy_template_that_cannot_be_converted_says_why_and_creates_nothing(objects, urls):
    legacy = apply_legacy(objects, urls, earlier("broken.yaml"))
    condition = converted(legacy)
    assert (condition["status"], condition["reason"]) == ("False", "ConversionFailed")
    assert "spec.displayName: required" in condition["message"]
    assert "spec.kasmvnc.port: expected a port number 1-65535, got 70000" in condition["message"]
    assert legacy["status"]["convertedTo"] is None
    assert kube.get("Template", "broken", NS) is None


def test_a_renamed_legacy_template_points_to_its_new_name(objects, urls):
    doc = earlier("changedetection.yaml")
    doc["apiVersion"] = f"{GROUP}/{VERSION}"
    legacy = apply_legacy(objects, urls, doc)
    assert legacy["status"]["convertedTo"]["name"] == "changedetection-io"
    assert "renamed to 'changedetection-io'" in converted(legacy)["message"]
    renamed = live("Template", "changedetection-io")
    assert renamed["metadata"]["annotations"]["stream.space/original-name"] == "changedetection.io"


def test_deleting_the_legacy_object_deletes_what_it_became(objects, urls):
    doc = earlier("vscode.yaml", 1)  # chrome
    legacy = apply_legacy(objects, urls, doc)
    assert live("Template", "chrome")["spec"]["tags"] == ["WebGL"]
    objects.delete_namespaced_custom_object(GROUP, VERSION, NS, "templates", "chrome")
    assert deliver(urls["template"], "delete", legacy) == 200
    eventually(lambda: kube.get("Template", "chrome", NS) is None, "the garbage collector deletes the Template")


def test_events_of_other_kinds_in_the_legacy_group_answer_400(urls):
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workspace",
           "metadata": {"name": "w", "namespace": NS, "uid": "u"}, "spec": {}}
    headers, body = apiserver_event("add", obj, "workspaces")
    assert post(urls["template"], headers, body)[0] == 400
