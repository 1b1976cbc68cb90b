import pytest

from streamspace.domain.errors import ValidationError
from streamspace.domain.names import user_label
from streamspace.domain.sessions import (
    LABEL_TEMPLATE,
    LABEL_USER,
    SessionPhase,
    SessionState,
    parse_state,
    resolve_resources,
    session_manifest,
    session_to_api,
)

CONFIGURED = {"memory": "2Gi", "cpu": "1000m"}


def test_resolve_uses_configured_defaults():
    assert resolve_resources(None, None, CONFIGURED) == {
        "requests": {"cpu": "1000m", "memory": "2Gi"},
        "limits": {"cpu": "1000m", "memory": "2Gi"},
    }


def test_resolve_layers_per_resource():
    template = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    resolved = resolve_resources({"memory": "4Gi"}, template, CONFIGURED)
    assert resolved == {"requests": {"cpu": "500m", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert resolve_resources(None, {"cpu": 2}, CONFIGURED)["limits"] == {"cpu": "2", "memory": "2Gi"}


def test_resolve_errors_name_the_field():
    with pytest.raises(ValidationError) as caught:
        resolve_resources({"memory": "lots"}, None, CONFIGURED)
    assert caught.value.field == "resources.memory"
    with pytest.raises(ValidationError) as caught:
        resolve_resources({"gpu": "1"}, None, CONFIGURED)
    assert caught.value.field == "resources.gpu"
    with pytest.raises(ValidationError) as caught:
        resolve_resources({"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}}, None, CONFIGURED)
    assert caught.value.field == "resources.requests.memory"
    with pytest.raises(ValidationError) as caught:
        resolve_resources(None, None, {"memory": "2Gi"})
    assert caught.value.field == "resources.cpu"
    with pytest.raises(ValidationError) as caught:
        resolve_resources("2Gi", None, CONFIGURED)
    assert caught.value.field == "resources"


def test_session_manifest_fills_labels_defaults_and_both_resource_sections():
    manifest = session_manifest(
        "alice-firefox-7k2xq",
        "streamspace",
        "alice",
        "firefox",
        resources={"memory": "2Gi", "cpu": "1"},
        tags=["work"],
    )
    assert manifest["apiVersion"] == "stream.space/v1alpha1" and manifest["kind"] == "Session"
    assert manifest["metadata"]["labels"] == {LABEL_USER: "alice", LABEL_TEMPLATE: "firefox"}
    assert manifest["spec"] == {
        "user": "alice",
        "template": "firefox",
        "state": "running",
        "persistentHome": True,
        "idleTimeout": "30m",
        "maxSessionDuration": "8h",
        "resources": {"requests": {"memory": "2Gi", "cpu": "1"}, "limits": {"memory": "2Gi", "cpu": "1"}},
        "tags": ["work"],
    }


def test_session_manifest_normalises_user():
    manifest = session_manifest("x-firefox-abcde", "ns", "Alice.Smith", "firefox")
    assert manifest["spec"]["user"] == user_label("Alice.Smith") == manifest["metadata"]["labels"][LABEL_USER]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"state": "paused"}, "state"),
        ({"idle_timeout": "soon"}, "idleTimeout"),
        ({"max_session_duration": "1d"}, "maxSessionDuration"),
        ({"template": "Fire Fox"}, "template"),
        ({"name": "x" * 61}, "name"),
        ({"resources": {"cpu": "-1"}}, "resources.cpu"),
        ({"tags": ["x" * 65]}, "tags[0]"),
    ],
)
def test_session_manifest_refuses(kwargs, field):
    args = {"name": "alice-firefox-7k2xq", "namespace": "ns", "user": "alice", "template": "firefox", **kwargs}
    with pytest.raises(ValidationError) as caught:
        session_manifest(**args)
    assert caught.value.field == field


def test_parse_state():
    assert parse_state("hibernated") is SessionState.HIBERNATED
    with pytest.raises(ValidationError):
        parse_state("Running")


def test_session_to_api():
    obj = session_manifest("alice-firefox-7k2xq", "ns", "alice", "firefox", resources={"memory": "2Gi", "cpu": "1"})
    obj["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
    obj["status"] = {
        "phase": "Running",
        "podName": "ss-alice-firefox-7k2xq-abc",
        "url": "https://alice-firefox-7k2xq.example.com",
        "lastActivity": "2025-01-01T00:05:00Z",
        "resourceUsage": {"cpu": "250m", "memory": 1048576},
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "",
                "lastTransitionTime": "2025-01-01T00:01:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    api = session_to_api(obj, active_connections=2)
    assert api == {
        "name": "alice-firefox-7k2xq",
        "namespace": "ns",
        "user": "alice",
        "template": "firefox",
        "state": "running",
        "persistentHome": True,
        "idleTimeout": "30m",
        "maxSessionDuration": "8h",
        "resources": {"memory": "2Gi", "cpu": "1", "requests": {"memory": "2Gi", "cpu": "1"},
                      "limits": {"memory": "2Gi", "cpu": "1"}},
        "tags": [],
        "status": {
            "phase": "Running",
            "podName": "ss-alice-firefox-7k2xq-abc",
            "url": "https://alice-firefox-7k2xq.example.com",
            "lastActivity": "2025-01-01T00:05:00Z",
            "resourceUsage": {"memory": "1048576", "cpu": "250m"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PodReady",
                    "message": "",
                    "lastTransitionTime": "2025-01-01T00:01:00Z",
                }
            ],
            "message": None,
        },
        "createdAt": "2025-01-01T00:00:00Z",
        "activeConnections": 2,
    }


def test_session_resources_reads_both_shapes_as_the_crd_defines_them():
    from streamspace.domain.resources import session_resources

    assert session_resources({"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "1Gi"}}) == {
        "memory": "1Gi", "cpu": "1", "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"}}
    assert session_resources({"limits": {"memory": 1073741824}})["requests"] == {"memory": "1073741824", "cpu": None}
    nothing = {"memory": None, "cpu": None}
    for stored in (None, "2Gi", {"requests": "junk"}):
        assert session_resources(stored) == {**nothing, "requests": nothing, "limits": nothing}


def test_session_to_api_fills_defaults_for_bare_objects():
    api = session_to_api(
        {"metadata": {"name": "s"}, "spec": {"user": "bob", "template": "gimp", "resources": {"memory": "1Gi"}}}
    )
    assert api["state"] == "running" and api["persistentHome"] is True and api["idleTimeout"] == "30m"
    assert api["status"]["phase"] == SessionPhase.PENDING
    partial = {"memory": "1Gi", "cpu": None}
    assert api["resources"] == {**partial, "requests": partial, "limits": partial}
    assert api["activeConnections"] == 0
