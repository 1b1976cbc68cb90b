"""Forward-auth per ingress class, through the session reconcile on the simulated cluster: a session
Ingress is only made for a class the configured controller serves (its forward-auth annotations take
effect there); for any other class the Session fails with condition IngressProtected False and no
Ingress exists, never one published open."""

from __future__ import annotations

from typing import Any

import pytest

from streamspace import kube
from streamspace.db import execute
from streamspace.settings.service import INGRESS_CLASS

from .reconcile_helpers import deliver, get, live, ping, session_manifest


@pytest.fixture(scope="module")
def url(function_url: Any, sim: Any) -> str:
    return function_url("session-reconcile")


pytestmark = pytest.mark.usefixtures("firefox")  # the Template every Session here runs


@pytest.fixture
def ingress_class() -> Any:
    """`ingress_class("haproxy")`: the stored setting ingress.class for one test (back to traefik after).
    Written in the table: the API refuses a class the controller does not serve (422), so such a value
    is one stored before, under another INGRESS_CONTROLLER, which the reconciler must still refuse."""
    def stored(name: str) -> None:
        execute("UPDATE configuration SET value = to_jsonb(%s::text) WHERE key = %s", (name, INGRESS_CLASS))

    yield stored
    stored("traefik")


def create(name: str) -> dict[str, Any]:
    obj = kube.create(session_manifest(name))
    obj.setdefault("kind", "Session")
    return obj


def condition(session: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in session["status"]["conditions"] if c["type"] == ctype), None)


def refused(name: str) -> dict[str, Any]:
    obj = live("Session", name)
    assert obj["status"]["phase"] == "Failed"
    protected = condition(obj, "IngressProtected")
    assert protected is not None and protected["status"] == "False"
    assert protected["reason"] == "IngressClassUnsupported"
    assert condition(obj, "Ready")["reason"] == "IngressClassUnsupported"
    assert get("Ingress", f"ss-{name}") is None
    assert get("Deployment", f"ss-{name}") is None  # nothing is started that nobody could reach safely
    return protected


@pytest.mark.parametrize("name", ["haproxy", "nginx"])
def test_a_class_the_controller_does_not_serve_gets_no_ingress(url: str, ingress_class: Any, name: str) -> None:
    """haproxy: nobody's forward-auth annotations. nginx under INGRESS_CONTROLLER=traefik: the Traefik
    Middleware annotation would be ignored by ingress-nginx."""
    ingress_class(name)
    session = create(f"alice-{name}")
    assert deliver(url, "add", session) == 200
    protected = refused(f"alice-{name}")
    assert repr(name) in protected["message"] and "traefik" in protected["message"]
    assert live("Session", f"alice-{name}")["status"]["observedGeneration"] == session["metadata"]["generation"]


def test_the_controllers_own_classes_are_protected(url: str, ingress_class: Any, setting: Any) -> None:
    setting(INGRESS_CONTROLLER="nginx")
    ingress_class("nginx")
    session = create("bob-nginx")
    assert deliver(url, "add", session) == 200
    ingress = get("Ingress", "ss-bob-nginx")
    assert ingress is not None and ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"].endswith("/session-check")
    assert condition(live("Session", "bob-nginx"), "IngressProtected") is None

    # A second Traefik installation's class, declared by the operator as served by the same controller.
    setting(INGRESS_CONTROLLER="traefik", INGRESS_AUTH_CLASSES="traefik-internal")
    ingress_class("traefik-internal")
    session = create("bob-internal")
    assert deliver(url, "add", session) == 200
    ingress = get("Ingress", "ss-bob-internal")
    assert ingress is not None and ingress["spec"]["ingressClassName"] == "traefik-internal"
    assert "traefik.ingress.kubernetes.io/router.middlewares" in ingress["metadata"]["annotations"]


def test_an_ingress_made_under_a_supported_class_goes_when_the_class_changes(url: str, function_url: Any,
                                                                            ingress_class: Any) -> None:
    """The admin changes ingress.class: the next resync (every 5 minutes) reconciles every Session."""
    session = create("carol-switch")
    assert deliver(url, "add", session) == 200
    assert get("Ingress", "ss-carol-switch") is not None
    ingress_class("haproxy")
    assert ping(function_url("resync"), "resync") == 200
    obj = live("Session", "carol-switch")
    assert obj["status"]["phase"] == "Failed" and condition(obj, "IngressProtected")["status"] == "False"
    assert get("Ingress", "ss-carol-switch") is None and get("Deployment", "ss-carol-switch") is None

    # Back to a supported class: the whole set is applied again and the refusal is gone.
    ingress_class("traefik")
    assert ping(function_url("resync"), "resync") == 200
    assert get("Ingress", "ss-carol-switch") is not None
    assert condition(live("Session", "carol-switch"), "IngressProtected") is None


def test_a_bad_class_list_is_a_one_line_start_up_error() -> None:
    import os

    from streamspace.config import ConfigError, load_environment

    with pytest.raises(ConfigError, match="INGRESS_AUTH_CLASSES.*'Not A Class'"):
        load_environment({**os.environ, "INGRESS_AUTH_CLASSES": "traefik-internal,Not A Class"})
    assert load_environment({**os.environ, "INGRESS_CONTROLLER": "nginx"}).ingress_auth_classes == ("nginx",)
