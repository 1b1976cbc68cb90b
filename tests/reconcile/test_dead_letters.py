"""Dead letters: the dead-letter broker's Trigger delivers each dead CloudEvent to the dead-letter function,
which records it in Postgres; admins read and resolve them through the metrics function's admin routes.

The events are written by hand in the exact form Knative's dispatcher sends to a dead-letter sink
(knative.dev/eventing pkg/kncloudevents dispatchExecutionInfoTransformers): the ORIGINAL event, same id
and source, plus `knativeerrordest` (the subscriber URL), `knativeerrorcode` (its HTTP status) and
`knativeerrordata` (its response body, standard base64, at most 1024 characters), with the dead-letter
broker's own `knativearrivaltime` and `knativebrokerttl`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.catalog.conftest import Sink
from tests.conftest import Client, client_for, environment
from tests.reconcile.reconcile_helpers import NS, post

DEST = "http://session-reconcile.streamspace.svc.cluster.local"


def knative_dead_letter(*, event_type: str = "dev.knative.sources.ping", source: str | None = None,
                        event_id: str | None = None, data: bytes = b'{"task":"resync"}', code: str = "500",
                        dest: str = DEST, response: bytes = b'{"error":"service unavailable"}',
                        extra: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    """A binary-mode dead letter as the dead-letter broker's Trigger delivers it."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id or str(uuid.uuid4()),
        "ce-source": source or f"/apis/v1/namespaces/{NS}/pingsources/resync",
        "ce-type": event_type,
        "ce-time": "2026-12-01T10:00:00.123456789Z",
        "Content-Type": "application/json",
        "ce-knativearrivaltime": "2026-12-01T10:00:31.5Z",
        "ce-knativebrokerttl": "255",
        "ce-knativeerrordest": dest,
        "ce-knativeerrorcode": code,
        "ce-knativeerrordata": base64.b64encode(response).decode()[:1024],
        **(extra or {}),
    }
    return headers, data


@pytest.fixture(scope="module")
def dead_letter_url(function_url: Any) -> str:
    return function_url("dead-letter")


@pytest.fixture(scope="module")
def api(serve: Any) -> str:
    return serve("metrics")


@pytest.fixture(scope="module")
def admin(api: str) -> Client:
    return client_for(api, f"admin-{uuid.uuid4().hex[:6]}", "admin")


@pytest.fixture(scope="module")
def broker() -> Iterator[Sink]:
    """A broker ingress stand-in for retries: records the binary-mode events POSTed to it."""
    from streamspace.local.server import BackgroundServer

    receiver = Sink()
    server = BackgroundServer(receiver).start()
    with environment(K_SINK=server.url):
        yield receiver
    server.stop()


def _find(admin: Client, event_id: str) -> dict[str, Any]:
    page = admin.get("/api/v1/admin/dead-letters", params={"limit": 1000}).json()
    found = [d for d in page["deadLetters"] if d["eventId"] == event_id]
    assert len(found) == 1, found
    return found[0]


def test_a_dead_letter_is_recorded_once_with_why_it_died(dead_letter_url: str, admin: Client) -> None:
    session = {"apiVersion": "stream.space/v1alpha1", "kind": "Session",
               "metadata": {"name": "s1", "namespace": NS, "uid": str(uuid.uuid4())},
               "spec": {"user": "alice", "template": "firefox", "state": "running"}}
    answer = json.dumps({"error": "forbidden", "message": "sessions.stream.space is forbidden"}).encode()
    headers, body = knative_dead_letter(
        event_type="dev.knative.apiserver.resource.update", source="https://10.96.0.1:443",
        data=json.dumps(session).encode(), code="422", response=answer,
        extra={"ce-subject": f"/apis/stream.space/v1alpha1/namespaces/{NS}/sessions/s1", "ce-kind": "Session",
               "ce-name": "s1", "ce-namespace": NS, "ce-apiversion": "stream.space/v1alpha1"})
    assert post(dead_letter_url, headers, body)[0] == 200
    # The broker redelivers when our answer is lost: still one dead letter.
    assert post(dead_letter_url, headers, body)[0] == 200

    letter = _find(admin, headers["ce-id"])
    assert letter["source"] == "https://10.96.0.1:443"
    assert letter["type"] == "dev.knative.apiserver.resource.update"
    assert letter["subject"] == f"/apis/stream.space/v1alpha1/namespaces/{NS}/sessions/s1"
    assert letter["error"] == {"code": 422, "destination": DEST, "response": answer.decode()}
    assert letter["status"] == "open" and letter["timesDead"] == 1
    assert letter["attributes"]["kind"] == "Session" and letter["attributes"]["knativebrokerttl"] == "255"
    assert "data" not in letter  # the list stays light

    one = admin.get(f"/api/v1/admin/dead-letters/{letter['id']}").json()
    assert one["data"] == session
    assert one["time"].startswith("2026-12-01T10:00:00.123456")


def test_structured_mode_with_binary_data_and_a_cut_error_body(dead_letter_url: str, admin: Client) -> None:
    """Structured mode: the code is a JSON integer; the data is not JSON (data_base64); the subscriber's
    long answer was cut at 1024 base64 characters by the dispatcher."""
    long_answer = ("é" * 2000).encode()
    event = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/custom/source", "type": "io.example.blob",
        "datacontenttype": "application/octet-stream", "data_base64": base64.b64encode(b"\x00\xffraw").decode(),
        "knativeerrordest": DEST, "knativeerrorcode": 503,
        "knativeerrordata": base64.b64encode(long_answer).decode()[:1024],
    }
    status, _ = post(dead_letter_url, {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode())
    assert status == 200
    letter = _find(admin, event["id"])
    assert letter["error"]["code"] == 503
    assert letter["error"]["response"] == "é" * 384  # 1024 characters of base64 are 768 bytes
    one = admin.get(f"/api/v1/admin/dead-letters/{letter['id']}").json()
    assert one["data"] is None and base64.b64decode(one["dataBase64"]) == b"\x00\xffraw"


def test_an_event_that_is_no_dead_letter_is_refused_and_nothing_is_kept(dead_letter_url: str, admin: Client) -> None:
    before = admin.get("/api/v1/admin/dead-letters").json()["total"]
    headers, body = knative_dead_letter(code="not-a-number")
    status, answer = post(dead_letter_url, headers, body)
    assert status == 400 and b"knativeerrorcode" in answer  # 4xx: the broker must not retry it
    assert admin.get("/api/v1/admin/dead-letters").json()["total"] == before


def test_admins_page_and_filter_and_nobody_else_reads(dead_letter_url: str, api: str, admin: Client) -> None:
    for _ in range(3):
        assert post(dead_letter_url, *knative_dead_letter())[0] == 200
    first = admin.get("/api/v1/admin/dead-letters", params={"limit": 2, "offset": 0}).json()
    second = admin.get("/api/v1/admin/dead-letters", params={"limit": 2, "offset": 2}).json()
    assert len(first["deadLetters"]) == 2 and first["total"] >= 3 and first["total"] == second["total"]
    assert not {d["id"] for d in first["deadLetters"]} & {d["id"] for d in second["deadLetters"]}
    newest = [d["lastDeadAt"] for d in first["deadLetters"] + second["deadLetters"]]
    assert newest == sorted(newest, reverse=True)
    assert first["counts"]["open"] >= 3
    assert admin.get("/api/v1/admin/dead-letters", params={"status": "lost"}).status_code == 400
    assert admin.get("/api/v1/admin/dead-letters/abc").status_code == 404
    assert admin.get("/api/v1/admin/dead-letters/999999999").status_code == 404
    for role in ("user", "operator"):
        other = client_for(api, f"{role}-{uuid.uuid4().hex[:6]}", role)
        assert other.get("/api/v1/admin/dead-letters").status_code == 403
        letter_id = first["deadLetters"][0]["id"]
        assert other.post(f"/api/v1/admin/dead-letters/{letter_id}/handled", json={}).status_code == 403
    assert Client(api, None).get("/api/v1/admin/dead-letters").status_code == 401


def test_marking_handled_is_audited_and_happens_once(dead_letter_url: str, admin: Client) -> None:
    from streamspace.audit import search

    headers, body = knative_dead_letter()
    assert post(dead_letter_url, headers, body)[0] == 200
    letter = _find(admin, headers["ce-id"])
    path = f"/api/v1/admin/dead-letters/{letter['id']}/handled"
    assert admin.post(path, json={"note": 42}).status_code == 400
    assert admin.post(path, json={"reason": "x"}).status_code == 400
    assert _find(admin, headers["ce-id"])["status"] == "open"  # bad input changed nothing
    done = admin.post(path, json={"note": "repository credentials fixed"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "handled" and done.json()["resolvedBy"] == admin.username
    assert done.json()["note"] == "repository credentials fixed"
    assert admin.post(path).status_code == 409
    rows = [r for r in search(actor=admin.username, action="dead_letter") if r["target"] == str(letter["id"])]
    assert [r["action"] for r in rows] == ["dead_letter.handled"]
    assert rows[0]["details"] == {"type": letter["type"], "source": letter["source"], "id": letter["eventId"]}
    # A redelivery of the handled letter does not reopen it.
    assert post(dead_letter_url, headers, body)[0] == 200
    assert _find(admin, headers["ce-id"])["status"] == "handled"
    handled = admin.get("/api/v1/admin/dead-letters", params={"status": "handled"}).json()["deadLetters"]
    assert letter["id"] in {d["id"] for d in handled}


def test_a_retry_sends_the_original_event_back_and_a_second_death_reopens_it(
        dead_letter_url: str, admin: Client, broker: Sink) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers, body = knative_dead_letter(data=b'{"task":"catalog-sync"}',
                                        source=f"/apis/v1/namespaces/{NS}/pingsources/catalog-sync",
                                        extra={"ce-traceparent": trace})
    assert post(dead_letter_url, headers, body)[0] == 200
    letter = _find(admin, headers["ce-id"])
    done = admin.post(f"/api/v1/admin/dead-letters/{letter['id']}/retry")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "retried"
    sent = [(h, b) for h, b in broker.events if h.get("ce-id") == headers["ce-id"]]
    assert len(sent) == 1
    sent_headers, sent_body = sent[0]
    assert json.loads(sent_body) == {"task": "catalog-sync"}
    for name in ("ce-source", "ce-type", "ce-time", "ce-traceparent"):
        assert sent_headers[name] == headers[name], name
    # What the brokers and the dispatcher added on the way is not sent again.
    assert not {"ce-knativeerrorcode", "ce-knativeerrordest", "ce-knativeerrordata", "ce-knativebrokerttl",
                "ce-knativearrivaltime"} & set(sent_headers)
    assert admin.post(f"/api/v1/admin/dead-letters/{letter['id']}/retry").status_code == 409

    # It dies again: the same row is open again, with the new failure.
    again_headers, again_body = knative_dead_letter(
        event_id=headers["ce-id"], source=headers["ce-source"], data=body, code="504", response=b"timeout")
    assert post(dead_letter_url, again_headers, again_body)[0] == 200
    reopened = _find(admin, headers["ce-id"])
    assert reopened["id"] == letter["id"] and reopened["status"] == "open" and reopened["timesDead"] == 2
    assert reopened["error"]["code"] == 504 and reopened["error"]["response"] == "timeout"


def test_snapshots_are_not_replayed_and_an_unreachable_broker_changes_nothing(
        dead_letter_url: str, admin: Client) -> None:
    headers, body = knative_dead_letter(event_type="dev.knative.apiserver.resource.add",
                                        source="https://10.96.0.1:443", data=b'{"kind":"Template"}')
    assert post(dead_letter_url, headers, body)[0] == 200
    snapshot = _find(admin, headers["ce-id"])
    refused = admin.post(f"/api/v1/admin/dead-letters/{snapshot['id']}/retry")
    assert refused.status_code == 409 and "resync" in refused.json()["message"]

    headers, body = knative_dead_letter()
    assert post(dead_letter_url, headers, body)[0] == 200
    ping = _find(admin, headers["ce-id"])
    with environment(K_SINK="http://127.0.0.1:9/"):  # nothing listens on the discard port
        assert admin.post(f"/api/v1/admin/dead-letters/{ping['id']}/retry").status_code == 503
    assert _find(admin, headers["ce-id"])["status"] == "open"


def test_dead_letters_show_in_metrics(function_url: Any, dead_letter_url: str, api: str, admin: Client) -> None:
    import urllib.request

    from streamspace.observability import metrics

    headers, body = knative_dead_letter(event_type="io.streamspace.catalog.sync.requested", code="429")
    assert post(dead_letter_url, headers, body)[0] == 200
    # The dead-letter function counts what it received (scraped where functions share a process: compose)...
    assert metrics.dead_letters[("io.streamspace.catalog.sync.requested", "429", "recorded")] >= 1
    # ... and the metrics function, which Prometheus scrapes cluster-local, reads what waits from Postgres.
    open_now = admin.get("/api/v1/admin/dead-letters", params={"status": "open", "limit": 1}).json()["total"]
    with urllib.request.urlopen(function_url("metrics").rstrip("/") + "/metrics", timeout=30) as response:
        exposition = response.read().decode()
    assert f'streamspace_dead_letters_stored{{status="open"}} {float(open_now)}' in exposition
    assert 'streamspace_dead_letters_total{code="429",outcome="recorded",' in exposition
    summary = admin.get("/api/v1/metrics").json()["deadLetters"]
    assert summary["open"] >= 1 and set(summary) == {"open", "handled", "retried"}
    user = client_for(api, f"user-{uuid.uuid4().hex[:6]}", "user")
    assert user.get("/api/v1/metrics").json()["deadLetters"] is None


def test_the_local_relay_dead_letters_what_a_function_refuses(function_url: Any, admin: Client) -> None:
    """`make run`'s relay does what the Trigger's deadLetterSink does: session-reconcile refuses a Session
    event without a namespace (400, never retried), and the dead-letter function records it."""
    from streamspace.events.apiserver import apiserver_event
    from streamspace.local.relay import Relay

    urls = {"session-reconcile": function_url("session-reconcile"), "dead-letter": function_url("dead-letter")}
    relay = Relay(urls, NS, backoff_seconds=0.01).start(watch=False, schedule=False)
    try:
        bad = {"apiVersion": "stream.space/v1alpha1", "kind": "Session", "metadata": {"name": "nowhere"},
               "spec": {"user": "alice", "template": "firefox", "state": "running"}}
        headers, body = apiserver_event("add", bad, "sessions")
        assert relay.publish(headers, body) == ["session-reconcile"]
        assert relay.wait_idle(60)
    finally:
        relay.stop()
    assert ("session-reconcile", "dev.knative.apiserver.resource.add", 400) in relay.delivered
    assert ("dead-letter", "dev.knative.apiserver.resource.add", 200) in relay.delivered
    letter = _find(admin, headers["ce-id"])
    assert letter["error"]["code"] == 400 and "namespace" in letter["error"]["response"]
    assert letter["error"]["destination"] == urls["session-reconcile"].rstrip("/") + "/"
