"""Home claims meet a storage class, through the session reconcile on the simulated cluster, which has kind's
default class (rancher.io/local-path: WaitForFirstConsumer, ReadWriteOnce only): HOME_ACCESS_MODE picks the
claim's access mode (default ReadWriteOnce); a claim the class cannot give stays Pending and the Session
says why in words."""

from __future__ import annotations

from typing import Any

import pytest

from streamspace import kube
from streamspace.config import ConfigError, load_environment

from .reconcile_helpers import deliver, get, live, session_manifest


@pytest.fixture(scope="module")
def url(function_url: Any, sim: Any) -> str:
    return function_url("session-reconcile")


pytestmark = pytest.mark.usefixtures("firefox")  # the Template every Session here runs


def _start(url: str, name: str, user: str) -> dict[str, Any]:
    """Create the Session and deliver its event, then the next one (the Deployment just applied has no
    pod to judge yet; its status event brings the reconcile back, as the relay would)."""
    session = kube.create(session_manifest(name, user=user))
    session.setdefault("kind", "Session")
    assert deliver(url, "add", session) == 200
    assert deliver(url, "update", live("Deployment", f"ss-{name}")) == 200
    return session


def _ready(session: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in session["status"]["conditions"] if c["type"] == "Ready")


def test_the_home_claim_is_read_write_once_and_its_local_volume_keeps_the_users_sessions_on_one_node(url: str,
                                                                                                     sim: Any) -> None:
    _start(url, "carol-one", "carol")
    claim = live("PersistentVolumeClaim", "home-carol")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["status"]["phase"] == "Bound"
    assert live("Session", "carol-one")["status"]["phase"] == "Running"
    node = next(p["spec"]["nodeName"] for p in kube.list_objects("Pod", claim["metadata"]["namespace"],
                                                                 label_selector="stream.space/session=carol-one"))
    volume = kube.request("GET", f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term["matchExpressions"][0]["values"] == [node]
    # The user's second session shares the claim, so it runs on the node that holds the volume.
    _start(url, "carol-two", "carol")
    pods = kube.list_objects("Pod", claim["metadata"]["namespace"], label_selector="stream.space/session=carol-two")
    assert [p["spec"]["nodeName"] for p in pods] == [node]


def test_a_home_claim_the_storage_class_cannot_give_leaves_the_session_pending_and_says_why(url: str,
                                                                                           setting: Any) -> None:
    setting(HOME_ACCESS_MODE="ReadWriteMany")
    _start(url, "dave-shared", "dave")
    claim = live("PersistentVolumeClaim", "home-dave")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["status"]["phase"] == "Pending"
    session = live("Session", "dave-shared")
    assert session["status"]["phase"] == "Pending"
    ready = _ready(session)
    assert ready["status"] == "False" and ready["reason"] == "HomeVolumePending"
    assert ready["message"] == ('the home volume claim home-dave (storage class standard, access mode ReadWriteMany) '
                                'cannot be bound: failed to provision volume with StorageClass "standard": Only '
                                "support ReadWriteOnce access mode")
    assert get("Deployment", "ss-dave-shared") is not None  # nothing else is held back: the pod waits for the claim


@pytest.mark.parametrize("value", ["ReadWriteSometimes", "rwx", "ReadOnlyMany"])
def test_an_access_mode_a_home_cannot_use_is_refused_at_start_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_environment({"JWT_SECRET": "s" * 40, "STREAMSPACE_DATA_DIR": "/tmp/streamspace-config-test",
                       "HOME_ACCESS_MODE": value})
    assert str(refused.value).startswith("HOME_ACCESS_MODE: ") and "\n" not in str(refused.value)
