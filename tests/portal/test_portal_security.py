"""The portal's browser-facing security over real HTTP and in real chromium: cookie flags, no
session fixation, CSRF on every cookie-authenticated change (including a real cross-site form),
the Content-Security-Policy, escaping of user and catalog strings, no open redirect, role and
owner scoping through the same services as the API."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

from streamspace.local.server import BackgroundServer
from tests.portal.conftest import ADMIN_PASSWORD, PASSWORD, admin_principal, make_template, new_user, principal

PAGES = ("/", "/sessions", "/quota", "/profile", "/login")
ADMIN_PAGES = ("/admin", "/admin/users", "/admin/groups", "/admin/repositories", "/admin/templates",
               "/admin/nodes", "/admin/settings", "/admin/audit")


def _login(base: str, username: str, password: str = PASSWORD, **headers: str) -> requests.Session:
    http = requests.Session()
    reply = http.post(base + "/login", data={"username": username, "password": password}, headers=headers,
                      allow_redirects=False, timeout=30)
    assert reply.status_code == 303, reply.text
    return http


def _csrf(http: requests.Session, base: str, path: str = "/profile") -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', http.get(base + path, timeout=30).text)
    assert found is not None
    return found.group(1)


def _session_state(name: str) -> str:
    from streamspace.db import fetch_one

    row = fetch_one("SELECT state FROM sessions WHERE name = %s", (name,))
    assert row is not None
    return str(row["state"])


@pytest.fixture(scope="module")
def victim(stack: Any) -> dict[str, str]:
    from streamspace.sessions.service import create_session

    make_template("terminal", displayName="Terminal")
    username, user_id = new_user(prefix="victim")
    created = create_session(principal(user_id, username), {"template": "terminal"})
    return {"username": username, "id": user_id, "session": created["name"]}


def test_login_cookies_are_host_only_httponly_samesite_and_new_at_every_login(base, victim) -> None:
    http = requests.Session()
    reply = http.post(base + "/login", data={"username": victim["username"], "password": PASSWORD},
                      headers={"Cookie": "streamspace_portal=planted-by-an-attacker"},  # a fixation attempt
                      allow_redirects=False, timeout=30)
    cookies = reply.raw.headers.getlist("Set-Cookie")
    assert len(cookies) == 2
    for cookie in cookies:
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path", "max-age"} <= attributes and "domain" not in attributes
        assert "SameSite=Lax" in cookie
    first = http.cookies.get("streamspace_portal")
    assert first and first != "planted-by-an-attacker"
    again = _login(base, victim["username"])
    assert again.cookies.get("streamspace_portal") != first  # every login is a new login family
    assert again.cookies.get("streamspace_portal_refresh") != http.cookies.get("streamspace_portal_refresh")


def test_production_cookies_take_the_host_prefix_and_secure() -> None:
    from streamspace.portal.web import cookie_names

    assert cookie_names(True) == ("__Host-streamspace_portal", "__Host-streamspace_portal_refresh")
    assert cookie_names(False) == ("streamspace_portal", "streamspace_portal_refresh")


def test_every_cookie_authenticated_change_needs_the_csrf_token(base, victim) -> None:
    http = _login(base, victim["username"])
    url = f"{base}/sessions/{victim['session']}/terminate"
    for data, headers in (({}, {}), ({"csrf": "0" * 64}, {}),
                          ({"csrf": _csrf(http, base)}, {"Sec-Fetch-Site": "cross-site"})):
        reply = http.post(url, data=data, headers=headers, allow_redirects=False, timeout=30)
        assert reply.status_code == 403, (data, headers)
        assert _session_state(victim["session"]) == "running"
    other_username, _ = new_user()
    other = _login(base, other_username)
    stolen = _csrf(other, base)  # a valid token of another login is no good here
    assert http.post(url, data={"csrf": stolen}, allow_redirects=False, timeout=30).status_code == 403
    for path in ("/profile", "/profile/logout-everywhere", "/logout"):
        assert http.post(base + path, data={}, allow_redirects=False, timeout=30).status_code == 403
    assert _session_state(victim["session"]) == "running"
    assert http.get(base + "/quota", allow_redirects=False, timeout=30).status_code == 200  # still logged in


def test_a_cross_site_form_in_a_real_browser_changes_nothing(person, base, victim) -> None:
    me = person()
    me.login(victim["username"])
    port = base.rsplit(":", 1)[1]
    target = f"http://127.0.0.1:{port}/sessions/{victim['session']}/terminate"
    evil_html = (f'<!doctype html><title>win a prize</title><form id="f" method="post" action="{target}">'
                 f'<input name="csrf" value="guess"></form><script>document.getElementById("f").submit()</script>')

    def evil(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [evil_html.encode()]

    server = BackgroundServer(evil).start()
    try:
        attack = me.context.new_page()
        attack.goto(server.url.replace("127.0.0.1", "localhost") + "/")  # another site
        attack.wait_for_url(re.compile(r".*127\.0\.0\.1.*"))
        attack.wait_for_load_state()
    finally:
        server.stop()
    assert _session_state(victim["session"]) == "running"


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag of a page with its attributes, as a browser's parser reads them."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, dict(attrs)))

    Collector().feed(page)
    return found


def test_content_security_policy_and_no_inline_script_on_every_page(base, victim) -> None:
    admin = _login(base, "admin", ADMIN_PASSWORD)
    for path in PAGES + ADMIN_PAGES + (f"/sessions/{victim['session']}",):
        reply = admin.get(base + path, timeout=30)
        assert reply.status_code == 200, path
        policy = reply.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert "no-store" in reply.headers["Cache-Control"]
        tags = _tags(reply.text)  # parsed, so escaped user text (`&lt;img onerror=`) is not mistaken for markup
        assert [t for t, attrs in tags if t == "script" and "src" not in attrs] == [], path  # no inline script
        assert [(t, a) for t, attrs in tags for a in attrs if a.startswith("on")] == [], path  # no event handlers
        assert [t for t, attrs in tags if "style" in attrs] == [], path


def test_user_and_catalog_strings_are_escaped(person, base, stack) -> None:
    from streamspace.auth.users.service import update_user

    hostile = '<img src=x onerror="alert(1)">'
    make_template("hostile", displayName=f"Evil {hostile}", description=f"<script>alert(2)</script>{hostile}",
                  category=f"Cat {hostile}", tags=["<b>tag</b>"])
    username, user_id = new_user(prefix="esc")
    update_user(admin_principal(), user_id, {"fullName": f"Mallory {hostile}"}, "")
    _login(base, username, **{"X-Forwarded-For": hostile})  # attacker-chosen text where an address goes
    me = person()
    me.login("admin", ADMIN_PASSWORD)
    for path in ("/", "/catalog/hostile", f"/admin/users/{user_id}", "/admin/users", "/admin/audit"):
        me.goto(path)
        assert me.page.locator("img[src=x]").count() == 0, path
        assert me.page.locator("b", has_text="tag").count() == 0, path
    me.goto("/catalog/hostile")
    assert hostile in me.page.locator("h1").inner_text()  # shown as text, exactly
    me.goto("/admin/audit?action=auth.login")
    assert username in me.page.locator("table").inner_text()  # its row; the address is only ever a parsed IP
    assert me.dialogs == []
    me.check("escaping")


def test_login_redirects_only_to_this_site(base, victim) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        http = requests.Session()
        reply = http.post(base + "/login", data={"username": victim["username"], "password": PASSWORD,
                                                 "next": target}, allow_redirects=False, timeout=30)
        assert reply.headers["Location"] == "/", target


def test_pages_are_scoped_like_the_api(base, victim) -> None:
    username, _ = new_user()
    other = _login(base, username)
    assert other.get(f"{base}/sessions/{victim['session']}", timeout=30).status_code == 404  # not 403
    reply = other.post(f"{base}/sessions/{victim['session']}/terminate", data={"csrf": _csrf(other, base)},
                       allow_redirects=False, timeout=30)
    assert reply.status_code == 404
    assert _session_state(victim["session"]) == "running"
    for path in ADMIN_PAGES:
        assert other.get(base + path, allow_redirects=False, timeout=30).status_code == 403, path
    anonymous = requests.Session()
    for path in PAGES[:-1] + ADMIN_PAGES:
        reply = anonymous.get(base + path, allow_redirects=False, timeout=30)
        assert reply.status_code == 303 and reply.headers["Location"].startswith("/login?next="), path
    assert anonymous.get(base + "/events", allow_redirects=False, timeout=30).status_code == 303


def test_a_disabled_user_is_logged_out_of_the_portal(base) -> None:
    from streamspace.auth.users.service import update_user

    username, user_id = new_user()
    http = _login(base, username)
    update_user(admin_principal(), user_id, {"active": False}, "")
    reply = http.get(base + "/sessions", allow_redirects=False, timeout=30)
    assert reply.status_code == 303 and reply.headers["Location"].startswith("/login?next=/sessions")
    # The page's script refreshing a live part is sent back to that page after the login, not to the part.
    live = http.get(base + "/fragments/sessions", allow_redirects=False, timeout=30,
                    headers={"X-Requested-With": "streamspace-portal", "Referer": base + "/sessions"})
    assert live.status_code == 401 and live.headers["X-Login"] == "/login?next=/sessions", live.headers
    again = requests.post(base + "/login", data={"username": username, "password": PASSWORD}, timeout=30)
    assert again.status_code == 403 and "this account is disabled" in again.text


def test_the_login_page_says_only_its_own_words_whatever_the_link_carries(base) -> None:
    """A crafted link (/login?reason=...) cannot put text of its own on our login page; the codes we
    send people there with read as our sentences."""
    crafted = "Your account was compromised. Call +1 555 0100 and read out your password"
    page = requests.get(base + "/login", params={"reason": crafted}, timeout=30)
    assert page.status_code == 200 and "compromised" not in page.text and "555" not in page.text
    disabled = requests.get(base + "/login", params={"reason": "account-disabled"}, timeout=30)
    assert "This account is disabled. Ask an administrator." in disabled.text


def test_error_pages_are_accessible_too(person, base) -> None:
    username, _ = new_user(prefix="err")
    me = person()
    me.login(username)
    assert me.goto("/admin").status == 403  # a user on an admin page
    assert "admin role" in me.page.locator("main").inner_text()
    me.check("error-forbidden")
    assert me.goto("/catalog/no-such-template").status == 404  # the portal's own "not found" page
    me.check("error-not-found")


def test_bad_requests_change_nothing(base, victim) -> None:
    http = _login(base, victim["username"])
    csrf = _csrf(http, base)
    huge = http.post(f"{base}/sessions/{victim['session']}/terminate", data={"csrf": csrf, "pad": "x" * 200_000},
                     allow_redirects=False, timeout=30)
    assert huge.status_code == 413
    unknown = http.post(f"{base}/sessions/{victim['session']}/explode", data={"csrf": csrf},
                        allow_redirects=False, timeout=30)
    assert unknown.status_code == 404
    assert _session_state(victim["session"]) == "running"
    assert http.get(base + "/no/such/page", timeout=30).status_code == 404
