"""Every function folder ships: an image target, a Knative Service, and (CloudEvent functions) a
Trigger; every Trigger subscriber and HTTPRoute backend is an existing function."""

from __future__ import annotations

from typing import Any

import pytest

from streamspace.local.routing import rule_function

from .conftest import ROOT, functions_on_disk, kustomize, load_docs, run

FUNCTIONS = functions_on_disk()


@pytest.fixture(scope="module")
def docs(kubectl: str) -> list[dict[str, Any]]:
    return kustomize(kubectl, ROOT / "knative")


def knative_services(docs: list[dict[str, Any]]) -> set[str]:
    return {d["metadata"]["name"] for d in docs
            if d["kind"] == "Service" and d["apiVersion"].startswith("serving.knative.dev/")}


def test_function_folders_exist() -> None:
    assert FUNCTIONS, "no functions/<name>/main.py"
    unknown = [n for n, k in FUNCTIONS.items() if k == "unknown"]
    assert not unknown, f"main.py without functions_framework.http/cloud_event: {unknown}"


def test_make_lists_the_functions() -> None:
    proc = run(["make", "-s", "functions-list"])
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(":", 1) for line in proc.stdout.strip().splitlines())
    assert lines["http"].split() == sorted(n for n, k in FUNCTIONS.items() if k == "http")
    assert lines["cloudevent"].split() == sorted(n for n, k in FUNCTIONS.items() if k == "cloudevent")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_is_shipped(function: str, docs: list[dict[str, Any]]) -> None:
    # image target
    proc = run(["make", "-n", f"docker-build-{function}", "VERSION=v1.2.3"])
    assert proc.returncode == 0, proc.stderr
    assert f"--build-arg FUNCTION={function}" in proc.stdout
    assert f"ghcr.io/streamspace/streamspace-{function}:v1.2.3" in proc.stdout
    group = "docker-build-api" if FUNCTIONS[function] == "http" else "docker-build-controller"
    assert f"FUNCTION={function} " in run(["make", "-n", group]).stdout
    # Knative Service
    assert function in knative_services(docs), f"no Knative Service for functions/{function}"
    # Trigger for CloudEvent functions
    if FUNCTIONS[function] == "cloudevent":
        subscribers = {d["spec"]["subscriber"]["ref"]["name"] for d in docs if d["kind"] == "Trigger"}
        assert function in subscribers, f"no Trigger delivers to CloudEvent function {function}"


def test_services_are_functions(docs: list[dict[str, Any]]) -> None:
    assert knative_services(docs) == set(FUNCTIONS), "Knative Services and functions/ folders differ"


def test_trigger_subscribers_and_route_backends_exist() -> None:
    triggers = load_docs((ROOT / "knative" / "eventing" / "triggers.yaml").read_text())
    for trig in triggers:
        ref = trig["spec"]["subscriber"]["ref"]
        assert ref["kind"] == "Service" and ref["name"] in FUNCTIONS, trig["metadata"]["name"]
        assert FUNCTIONS[ref["name"]] == "cloudevent", f"{trig['metadata']['name']} -> HTTP function"
    route = next(d for d in load_docs((ROOT / "knative" / "routing" / "httproute.yaml").read_text())
                 if d["kind"] == "HTTPRoute")
    for rule in route["spec"]["rules"]:
        # Gateway API implementations must support core Services only: the backend is the Knative
        # networking layer's gateway Service, the function is the Host the rule rewrites to.
        assert [(b.get("group", ""), b["kind"]) for b in rule["backendRefs"]] == [("", "Service")], rule
        function = rule_function(rule)
        assert function in FUNCTIONS and FUNCTIONS[function] == "http", rule
        assert not any(m["path"]["value"].startswith("/metrics") for m in rule["matches"])
    pings = load_docs((ROOT / "knative" / "eventing" / "pingsources.yaml").read_text())
    sources = {f"/apis/v1/namespaces/streamspace/pingsources/{p['metadata']['name']}" for p in pings}
    for trig in triggers:
        for cond in (trig["spec"].get("filters") or [{"all": []}])[0]["all"]:
            if "source" in cond.get("exact", {}):
                assert cond["exact"]["source"] in sources, trig["metadata"]["name"]
