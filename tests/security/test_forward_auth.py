"""Attacks on the ingress forward-auth check (auth-check), over real HTTP.

Both controllers pass the client's own headers to the check next to the ones they set themselves
(ingress-nginx auth-url: `X-Original-URL` = `$scheme://$http_host$request_uri`; Traefik ForwardAuth:
`X-Forwarded-Host` = the request's Host, `X-Forwarded-Uri` = its path), so each test sends the
controller's real header shape plus the header an attacker adds.
"""

from __future__ import annotations

import pytest
import requests

from streamspace.db import execute
from tests.conftest import desktop_cookie, make_user

PATH = "/api/v1/auth/session-check"
NS = "streamspace"
DOMAIN = "streamspace.local"


@pytest.fixture(scope="module")
def tokens(db_url):
    """Each user's cookie for their own session's host (the only credential a desktop host accepts)."""
    ids = {name: make_user(name) for name in ("alice", "bob")}
    cookies = {}
    for owner, session in (("alice", "alice-firefox-1"), ("bob", "bob-firefox-1")):
        execute("INSERT INTO sessions (namespace, name, user_id, username, template, state)"
                " VALUES (%s, %s, %s, %s, 'firefox', 'running')", (NS, session, ids[owner], owner))
        cookies[owner] = desktop_cookie(ids[owner], owner, session)
    return cookies


@pytest.fixture(scope="module")
def url(serve, tokens):
    return serve("auth-check") + PATH


def ask(url: str, cookie: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(url, headers={"Cookie": f"streamspace_desktop={cookie}", **headers}, timeout=10)


def test_nginx_client_cannot_steer_the_check_to_its_own_session_with_x_forwarded_host(url, tokens, setting):
    setting(INGRESS_CONTROLLER="nginx")
    # What ingress-nginx sets for a request to alice's desktop, plus bob's own X-Forwarded-Host.
    attack = {"X-Original-URL": f"https://alice-firefox-1.{DOMAIN}/", "X-Forwarded-Host": f"bob-firefox-1.{DOMAIN}"}
    answer = ask(url, tokens["bob"], attack)
    assert answer.status_code == 403
    assert "X-Auth-Request-User" not in answer.headers
    # The honest shapes still work: nginx's own header, and a client header that agrees with it.
    assert ask(url, tokens["alice"], {"X-Original-URL": f"https://alice-firefox-1.{DOMAIN}/vnc?x=1"}).status_code == 200
    assert ask(url, tokens["alice"], {"X-Original-URL": f"https://alice-firefox-1.{DOMAIN}/",
                                      "X-Forwarded-Host": f"alice-firefox-1.{DOMAIN}"}).status_code == 200
    # Under nginx, X-Forwarded-Host alone is the client's word: it names nothing.
    assert ask(url, tokens["bob"], {"X-Forwarded-Host": f"bob-firefox-1.{DOMAIN}"}).status_code == 403


def test_traefik_client_cannot_steer_the_check_with_x_original_url_or_a_host_list(url, tokens, setting):
    setting(INGRESS_CONTROLLER="traefik")
    traefik = {"X-Forwarded-Host": f"alice-firefox-1.{DOMAIN}", "X-Forwarded-Uri": "/"}
    assert ask(url, tokens["alice"], traefik).status_code == 200
    assert ask(url, tokens["bob"], {**traefik, "X-Original-URL": f"https://bob-firefox-1.{DOMAIN}/"}).status_code == 403
    assert ask(url, tokens["bob"], {"X-Forwarded-Host": f"bob-firefox-1.{DOMAIN}, alice-firefox-1.{DOMAIN}",
                                    "X-Forwarded-Uri": "/"}).status_code == 403
    # Under Traefik, X-Original-URL alone is the client's word: it names nothing.
    assert ask(url, tokens["bob"], {"X-Original-URL": f"https://bob-firefox-1.{DOMAIN}/"}).status_code == 403


def test_probing_cannot_tell_someone_elses_session_from_a_missing_one(url, tokens, setting):
    setting(INGRESS_CONTROLLER="traefik")
    foreign = ask(url, tokens["bob"], {"X-Forwarded-Host": f"alice-firefox-1.{DOMAIN}"})
    missing = ask(url, tokens["bob"], {"X-Forwarded-Host": f"alice-firefox-9.{DOMAIN}"})
    # bob's cookie is no credential on any host but his own session's: the same 401 for both
    assert (foreign.status_code, foreign.content) == (missing.status_code, missing.content) == \
        (401, missing.content)


def test_the_shipped_traefik_middleware_never_passes_a_client_sent_host_to_the_check():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    middleware = yaml.safe_load((root / "knative/components/traefik-forward-auth/middleware.yaml").read_text())
    assert middleware["spec"]["forwardAuth"]["trustForwardHeader"] is False
    chart = (root / "knative/chart/templates/traefik-middleware.yaml").read_text()
    assert "trustForwardHeader: false" in chart and "trustForwardHeader: true" not in chart


def ticket_for(user: str, session: str) -> str:
    from streamspace.auth.principal import Principal
    from streamspace.db import fetch_one, transaction
    from streamspace.desktop.access import issue_ticket

    user_id = fetch_one("SELECT id::text AS id FROM users WHERE username = %s", (user,))["id"]
    with transaction() as conn:
        return issue_ticket(conn, Principal(user_id, user, "user", (), None), NS, session)


def test_only_a_live_tickets_redeem_request_passes_without_the_cookie(url, tokens, setting):
    """The session Ingress's forward auth covers `/.streamspace/auth` too: the check lets exactly the
    redeem of a live ticket for THIS session through, read from the configured controller's headers."""
    ticket = ticket_for("alice", "alice-firefox-1")
    host = f"alice-firefox-1.{DOMAIN}"
    setting(INGRESS_CONTROLLER="traefik")
    traefik = {"X-Forwarded-Host": host, "X-Forwarded-Method": "GET",
               "X-Forwarded-Uri": f"/.streamspace/auth?ticket={ticket}"}
    assert requests.get(url, headers=traefik, timeout=10).status_code == 200
    assert requests.get(url, headers={**traefik, "X-Forwarded-Method": "POST"}, timeout=10).status_code == 401
    assert requests.get(url, headers={**traefik, "X-Forwarded-Uri": f"/.streamspace/auth/x?ticket={ticket}"},
                        timeout=10).status_code == 401
    assert requests.get(url, headers={**traefik, "X-Forwarded-Uri": "/.streamspace/auth?ticket=forged"},
                        timeout=10).status_code == 401
    assert requests.get(url, headers={**traefik, "X-Forwarded-Host": f"bob-firefox-1.{DOMAIN}"},
                        timeout=10).status_code == 401  # alice's ticket names alice's session only
    # under Traefik, nginx's headers are the client's word: they open nothing
    nginx = {"X-Original-URL": f"https://{host}/.streamspace/auth?ticket={ticket}", "X-Original-Method": "GET"}
    assert requests.get(url, headers={"X-Forwarded-Host": host, **nginx}, timeout=10).status_code == 401
    setting(INGRESS_CONTROLLER="nginx")
    assert requests.get(url, headers=nginx, timeout=10).status_code == 200
    assert requests.get(url, headers={**nginx, "X-Forwarded-Uri": "/"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"X-Original-URL": f"https://{host}/", "X-Forwarded-Method": "GET",
                                      "X-Forwarded-Uri": f"/.streamspace/auth?ticket={ticket}"},
                        timeout=10).status_code == 401
