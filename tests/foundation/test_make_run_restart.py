"""Restarting `make run` keeps the simulated cluster (its objects live in the data folder next to
the embedded Postgres): a Template and a Running Session survive, resourceVersions keep increasing,
and the reconcilers pick up where they left off without creating anything twice."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from streamspace.local.server import unused_port
from tests.sim.sim_helpers import eventually

from .make_run_harness import CEILING, REQUEST_TIMEOUT, ROOT, MakeRun

# `make run` places Sessions where the kustomize tree does, apart from the control plane (knative/sessions).
SESSIONS_NAMESPACE = "streamspace-sessions"


def _cluster(data_dir: Path) -> Any:
    from kubernetes import client, config

    return client.ApiClient(config.new_client_from_config(str(data_dir / "sim-kubeconfig")).configuration)


def _owned(data_dir: Path, session: str) -> dict[str, Any]:
    """What the cluster holds for one session: uids of its objects, its pods, the Session's version."""
    from kubernetes import client

    with _cluster(data_dir) as api:
        core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
        selector = f"stream.space/session={session}"
        obj = custom.get_namespaced_custom_object("stream.space", "v1alpha1", SESSIONS_NAMESPACE, "sessions",
                                                  session)
        return {
            "deployments": sorted(d.metadata.uid for d in
                                  apps.list_namespaced_deployment(SESSIONS_NAMESPACE, label_selector=selector).items),
            "services": sorted(s.metadata.uid for s in
                               core.list_namespaced_service(SESSIONS_NAMESPACE, label_selector=selector).items),
            "pods": sorted(p.metadata.name for p in
                           core.list_namespaced_pod(SESSIONS_NAMESPACE, label_selector=selector).items),
            "session_uid": obj["metadata"]["uid"],
            "session_rv": int(obj["metadata"]["resourceVersion"]),
        }


@pytest.mark.slow
def test_a_restart_keeps_templates_and_running_sessions_and_creates_nothing_twice() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ssr-", dir="/tmp"))
    port = unused_port()
    first = MakeRun(data_dir, port)
    try:
        first.wait_healthy()
        password = first.printed_password()
        auth = first.login(password)
        from streamspace.domain.templates import template_to_api

        sample = template_to_api(yaml.safe_load((ROOT / "crds" / "samples" / "template-firefox.yaml").read_text()))
        template = {k: v for k, v in sample.items() if k not in ("status", "createdAt", "namespace")}
        made = requests.post(first.base + "/api/v1/templates", json=template, headers=auth, timeout=REQUEST_TIMEOUT)
        assert made.status_code == 201, made.text
        created = requests.post(first.base + "/api/v1/sessions", json={"template": "firefox"}, headers=auth,
                                timeout=REQUEST_TIMEOUT)
        assert created.status_code == 201, created.text
        name = created.json()["name"]

        def phase(run: MakeRun, auth: dict[str, str], wanted: str) -> bool:
            body = requests.get(f"{run.base}/api/v1/sessions/{name}", headers=auth, timeout=REQUEST_TIMEOUT).json()
            return (body.get("status") or {}).get("phase") == wanted

        eventually(lambda: phase(first, auth, "Running"), f"session {name} to be Running", CEILING)
        before = _owned(data_dir, name)
        assert len(before["deployments"]) == 1 and len(before["pods"]) == 1, before
    finally:
        first.stop()
    assert "Traceback" not in first.text, first.text

    second = MakeRun(data_dir, port)
    try:
        second.wait_healthy()
        restored = re.search(r"\((\d+) objects restored", second.text)
        assert restored and int(restored.group(1)) > 0, second.text
        auth = second.login(password)  # the admin from the first run; no new password is printed
        templates = requests.get(second.base + "/api/v1/templates", headers=auth, timeout=REQUEST_TIMEOUT).json()
        assert "firefox" in [t["name"] for t in templates["templates"]], templates
        assert phase(second, auth, "Running")
        after = _owned(data_dir, name)
        # The same objects (by uid), the same single pod: nothing was created again.
        assert {k: after[k] for k in ("deployments", "services", "pods", "session_uid")} == \
            {k: before[k] for k in ("deployments", "services", "pods", "session_uid")}
        sessions = requests.get(second.base + "/api/v1/sessions", headers=auth, timeout=REQUEST_TIMEOUT).json()
        assert [s["name"] for s in sessions["sessions"]] == [name]
        # The reconcilers still act on the restored Session, with versions above the old ones.
        hibernate = requests.patch(f"{second.base}/api/v1/sessions/{name}", json={"state": "hibernated"},
                                   headers=auth, timeout=REQUEST_TIMEOUT)
        assert hibernate.status_code == 200, hibernate.text
        eventually(lambda: phase(second, auth, "Hibernated"), f"session {name} to hibernate after the restart",
                   CEILING)
        assert _owned(data_dir, name)["session_rv"] > before["session_rv"]
        assert _owned(data_dir, name)["deployments"] == before["deployments"]
    finally:
        second.stop()
    assert "Traceback" not in second.text, second.text
    assert "password=" not in second.text
