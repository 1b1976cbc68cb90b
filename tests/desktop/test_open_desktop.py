"""Opening a desktop in the browser (issue 10, section 4), end to end through the local system:
connect's openUrl, the ticket's redeem on the session's own host, the host-only cookie, and the
forward-auth check in front of every request to the desktop, WebSocket upgrades included.
Every request goes over real HTTP through the simulated ingress, as a browser's would."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import websocket

from streamspace.db import execute, fetch_one
from tests.sim.sim_helpers import eventually

from .conftest import NS, host_url, launch, log_in, on_host, open_url, redeem


@pytest.fixture(scope="module")
def base(stack) -> str:
    return stack.api_url


@pytest.fixture(scope="module")
def alice(base):
    return log_in(base, "alice")


@pytest.fixture(scope="module")
def alices_sessions(alice) -> tuple[str, str]:
    return launch(alice), launch(alice)


def ticket_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["ticket"][0]


def check(base: str, session_url: str, cookie: str | None) -> int:
    """The forward-auth function asked directly, as Traefik's ForwardAuth asks it."""
    headers = {"X-Forwarded-Host": urlsplit(session_url).netloc, "X-Forwarded-Uri": "/", "X-Forwarded-Method": "GET"}
    if cookie is not None:
        headers["Cookie"] = f"streamspace_desktop={cookie}"
    return requests.get(base + "/api/v1/auth/session-check", headers=headers, timeout=30).status_code


def test_the_open_url_lets_the_owner_in_with_a_host_only_cookie(base, stack, alice, alices_sessions):
    session = alices_sessions[0]
    url = open_url(alice, session)
    parts = urlsplit(url)
    assert parts.netloc == f"{session}.localhost:{stack.api_url.rsplit(':', 1)[1]}"
    assert parts.path == "/.streamspace/auth"

    # the ticket is kept only as a digest, and lives for at most a minute
    ticket = ticket_of(url)
    row = fetch_one("SELECT user_id::text AS user_id, session_name, extract(epoch FROM expires_at - created_at)"
                    " AS lifetime FROM desktop_tickets WHERE ticket_hash = %s",
                    (hashlib.sha256(ticket.encode()).digest(),))
    assert row is not None and row["user_id"] == alice.user_id and row["session_name"] == session
    assert 0 < row["lifetime"] <= 60
    assert fetch_one("SELECT 1 AS found FROM desktop_tickets WHERE encode(ticket_hash, 'escape') LIKE %s",
                     (f"%{ticket}%",)) is None

    assert on_host(base, host_url(url)).status_code == 401  # no cookie yet
    answer = on_host(base, url)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    attributes = [part.strip() for part in answer.headers["Set-Cookie"].split(";")]
    cookie = attributes[0].split("=", 1)[1]
    assert set(attributes[1:]) == {"Path=/", "Max-Age=43200", "HttpOnly", "SameSite=Lax"}  # no Domain: host-only
    assert cookie and cookie != alice.token and cookie != ticket

    page = on_host(base, host_url(url), cookie)
    assert page.status_code == 200, page.text
    assert "SIMULATED desktop" in page.text and session in page.text
    assert page.headers["X-StreamSpace-Simulated"] == "desktop"
    assert check(base, url, cookie) == 200


def test_the_production_cookie_is_host_prefixed_and_secure():
    from streamspace.desktop.access import cookie_name, set_cookie_header

    assert cookie_name(True) == "__Host-streamspace_desktop"
    header = set_cookie_header("v", 600, production=True)
    assert header == "__Host-streamspace_desktop=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
    assert "Domain" not in header


def test_a_replayed_ticket_is_refused(base, alice, alices_sessions):
    url = open_url(alice, alices_sessions[0])
    cookie = redeem(base, url)
    assert on_host(base, url).status_code == 401
    assert on_host(base, host_url(url), cookie).status_code == 200  # the first redeem's cookie still works


@pytest.fixture(scope="module")
def auth_check_alone(stack):
    """auth-check on a port of its own, reached without any ingress in front (a misrouted request)."""
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    server = BackgroundServer(load_function_app("auth-check")).start()
    yield server.url
    server.stop()


def test_a_ticket_used_on_another_sessions_host_is_refused(base, alice, alices_sessions, auth_check_alone):
    first, second = alices_sessions
    url = open_url(alice, first)
    elsewhere = url.replace(f"//{first}.", f"//{second}.")
    assert on_host(base, elsewhere).status_code == 401  # the forward-auth check stops it at the ingress
    # even when it reaches the redeem itself, it is refused there, and spent
    assert on_host(auth_check_alone, elsewhere).status_code == 401
    assert on_host(base, url).status_code == 401


def test_a_cookie_copied_to_another_sessions_host_is_refused(base, alice, alices_sessions):
    first, second = alices_sessions
    url = open_url(alice, first)
    cookie = redeem(base, url)
    other = host_url(open_url(alice, second))
    assert on_host(base, other, cookie).status_code == 401
    assert check(base, other, cookie) == 401


def test_another_user_gets_no_ticket_and_no_way_in(base, alice, alices_sessions):
    bob = log_in(base, "bob")
    session = alices_sessions[0]
    assert bob.get(f"/api/v1/sessions/{session}/connect").status_code == 404
    bobs = launch(bob)
    bobs_cookie = redeem(base, open_url(bob, bobs))
    alices_host = host_url(open_url(alice, session))
    assert on_host(base, alices_host, bobs_cookie).status_code == 401
    # ...but an admin may open anyone's session, with a cookie of its own
    admin = log_in(base, "ada", role="admin")
    admins_cookie = redeem(base, open_url(admin, session))
    assert on_host(base, alices_host, admins_cookie).status_code == 200


def test_an_expired_ticket_is_refused(base, alice, alices_sessions, auth_check_alone):
    url = open_url(alice, alices_sessions[0])
    digest = hashlib.sha256(ticket_of(url).encode()).digest()
    # A minute later, as far as the ticket can tell: its stored expiry is now in the past.
    assert execute("UPDATE desktop_tickets SET expires_at = now() - interval '1 second' WHERE ticket_hash = %s",
                   (digest,)) == 1
    assert on_host(base, url).status_code == 401  # the forward-auth check lets no expired ticket through
    assert on_host(auth_check_alone, url).status_code == 401  # nor does the redeem itself
    refused = fetch_one("SELECT actor, details FROM audit_log WHERE action = 'session.open.refused'"
                        " ORDER BY id DESC LIMIT 1")
    assert refused is not None and refused["actor"] == "alice" and refused["details"]["reason"] == "expired"


def test_every_opening_is_audited(base, alice, alices_sessions):
    session = alices_sessions[0]
    redeem(base, open_url(alice, session))
    opened = fetch_one("SELECT actor, target FROM audit_log WHERE action = 'session.open' ORDER BY id DESC"
                       " LIMIT 1")
    assert opened == {"actor": "alice", "target": session}


def test_a_logged_out_user_loses_the_desktop_and_its_unused_tickets(base):
    carol = log_in(base, "carol")
    session = launch(carol)
    cookie = redeem(base, open_url(carol, session))
    unused = open_url(carol, session)
    assert on_host(base, host_url(unused), cookie).status_code == 200
    assert carol.post("/api/v1/auth/logout").status_code == 200
    assert on_host(base, host_url(unused), cookie).status_code == 401
    assert on_host(base, unused).status_code == 401


def test_a_password_change_ends_every_desktop_cookie(base):
    dave = log_in(base, "dave")
    session = launch(dave)
    url = open_url(dave, session)
    cookie = redeem(base, url)
    changed = dave.post("/api/v1/auth/password", {"oldPassword": dave.password, "newPassword": "a-new-password-1"})
    assert changed.status_code == 200, changed.text
    assert dave.get("/api/v1/auth/me").status_code == 200  # the login itself stays
    assert on_host(base, host_url(url), cookie).status_code == 401


def test_disabling_the_user_ends_the_desktop(base):
    erin = log_in(base, "erin")
    admin = log_in(base, "root2", role="admin")
    session = launch(erin)
    url = open_url(erin, session)
    cookie = redeem(base, url)
    assert admin.patch(f"/api/v1/users/{erin.user_id}", {"active": False}).status_code == 200
    assert on_host(base, host_url(url), cookie).status_code == 401
    assert check(base, url, cookie) == 401


def test_an_admins_password_reset_ends_the_users_desktop(base):
    """The reset ends the user's logins, and the desktop cookie and unused tickets opened from them."""
    gail = log_in(base, "gail")
    admin = log_in(base, "root3", role="admin")
    session = launch(gail)
    url = open_url(gail, session)
    cookie = redeem(base, url)
    unused = open_url(gail, session)
    assert on_host(base, host_url(url), cookie).status_code == 200
    assert admin.patch(f"/api/v1/users/{gail.user_id}", {"password": "a-reset-password-1"}).status_code == 200
    assert on_host(base, host_url(url), cookie).status_code == 401
    assert check(base, url, cookie) == 401
    assert on_host(base, unused).status_code == 401


def test_terminating_the_session_ends_its_cookie(base):
    fay = log_in(base, "fay")
    session = launch(fay)
    url = open_url(fay, session)
    cookie = redeem(base, url)
    assert fay.patch(f"/api/v1/sessions/{session}", {"state": "terminated"}).status_code == 200
    assert check(base, url, cookie) == 401  # the cookie was revoked with the termination, for good
    assert on_host(base, host_url(url), cookie).status_code in (401, 404)  # refused, or its Ingress already gone


def ws_connect(base: str, url: str, cookie: str | None) -> websocket.WebSocket:
    netloc = urlsplit(url).netloc
    return websocket.create_connection(base.replace("http://", "ws://") + "/websockify", host=netloc,
                                       cookie=f"streamspace_desktop={cookie}" if cookie else None, timeout=10)


def test_a_websocket_upgrade_passes_the_same_check(base, alice, alices_sessions):
    """CVE-2024-28179 (jupyter-server-proxy): WebSocket upgrades skipped authentication."""
    first, second = alices_sessions
    url = open_url(alice, first)
    cookie = redeem(base, url)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        ws_connect(base, url, None)
    assert refused.value.status_code == 401
    other_cookie = redeem(base, open_url(alice, second))
    with pytest.raises(websocket.WebSocketBadStatusException) as copied:
        ws_connect(base, url, other_cookie)
    assert copied.value.status_code == 401
    ws = ws_connect(base, url, cookie)
    try:
        assert "SIMULATED desktop" in ws.recv()
        ws.send("hello desktop")
        assert ws.recv() == "hello desktop"
    finally:
        ws.close()


def test_a_client_set_forwarded_host_is_never_trusted(base, alice, alices_sessions):
    """GHSA-5g4w-3vw9-478w: a proxy that believed the client's X-Forwarded-Host."""
    first, second = alices_sessions
    url = open_url(alice, first)
    cookie = redeem(base, url)
    first_host, second_host = urlsplit(url).netloc, urlsplit(open_url(alice, second)).netloc
    # the ingress replaces the client's claim with the real Host: the cookie of `first` does not open `second`
    answer = on_host(base, f"http://{second_host}/", cookie, **{"X-Forwarded-Host": first_host})
    assert answer.status_code == 401
    # the redeem reads the Host the Ingress matched, never X-Forwarded-Host
    ticket_url = open_url(alice, first)
    moved = ticket_url.replace(first_host, second_host)
    assert on_host(base, moved, **{"X-Forwarded-Host": first_host}).status_code == 401
    # nor can a client speak for the check: X-Auth-Request-User is the check's alone
    page = on_host(base, f"http://{first_host}/", cookie, **{"X-Auth-Request-User": "root"})
    assert page.status_code == 200 and "<code>alice</code>" in page.text


def test_the_redeem_path_is_not_an_open_door(base, alice, alices_sessions):
    host = urlsplit(open_url(alice, alices_sessions[0])).netloc
    assert on_host(base, f"http://{host}/.streamspace/auth").status_code == 401
    assert on_host(base, f"http://{host}/.streamspace/auth?ticket=forged").status_code == 401
    assert on_host(base, f"http://{host}/.streamspace/auth/x?ticket=forged").status_code == 401


def test_tickets_and_cookies_of_a_deleted_session_go_with_it(base):
    gus = log_in(base, "gus")
    session = launch(gus)
    redeem(base, open_url(gus, session))
    open_url(gus, session)
    assert gus.get(f"/api/v1/sessions/{session}").status_code == 200
    assert requests.delete(f"{base}/api/v1/sessions/{session}", headers=gus.auth, timeout=30).status_code == 200
    eventually(lambda: fetch_one("SELECT count(*) AS n FROM desktop_grants WHERE session_name = %s",
                                 (session,))["n"] == 0, what="the grants to go")
    assert fetch_one("SELECT count(*) AS n FROM desktop_tickets WHERE session_namespace = %s AND session_name = %s",
                     (NS, session))["n"] == 0
