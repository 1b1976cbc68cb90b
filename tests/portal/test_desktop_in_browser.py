"""Opening a desktop, and every way it must fail (issue 10, section 4), in real headless chromium
against the whole local system: the single-use ticket of "Open", the host-only cookie on the
session's own host `<session>.localhost`, and the forward-auth check in front of every request to
the desktop, the browser's WebSocket upgrades included. (tests/desktop/ checks the same rules
request by request over HTTP; here a browser does what a person or an attacker's page would.)"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.portal.conftest import PASSWORD, Pages, new_user, principal, wait_until

DESKTOP_COOKIE = "streamspace_desktop"  # make run is not production: no __Host- prefix


@pytest.fixture(scope="module", autouse=True)
def desktop_template(stack: Any) -> None:
    from tests.portal.conftest import make_template

    make_template("xfce", displayName="XFCE")


@pytest.fixture
def alice() -> tuple[str, str]:
    """A new user for each test, so each has a whole quota of sessions."""
    return new_user(prefix="alice")


def _running_session(username: str, user_id: str) -> str:
    from streamspace.sessions.service import create_session, get_session

    owner = principal(user_id, username)
    name = create_session(owner, {"template": "xfce"})["name"]
    wait_until(lambda: get_session(owner, name)["status"]["phase"] == "Running", f"session {name} Running")
    return str(name)


def _open_url(username: str, user_id: str, session: str) -> str:
    """What "Open" hands the browser: a URL on the session's host with a fresh single-use ticket
    (of a login of its own: tickets belong to a login, and end with it)."""
    from streamspace.auth.principal import authenticate
    from streamspace.login.service import login
    from streamspace.sessions.service import connect

    token = login({"username": username, "password": PASSWORD}, "127.0.0.1")["token"]
    caller = authenticate(None, alternate_token=token)
    assert caller.user_id == user_id
    return str(connect(caller, session, "127.0.0.1", "chromium")["openUrl"])


def _desktop_host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def _shows_the_desktop(me: Pages, session: str) -> bool:
    return me.page.title() == f"Simulated desktop {session}"


def _visit(me: Pages, url: str) -> int:
    response = me.page.goto(url)
    assert response is not None
    return int(response.status)


def _websocket_opens(me: Pages) -> bool:
    """From the page's own origin (the session host), as the desktop's client script would. The
    context must ignore page CSPs (`_browser`): the stand-in desktop's own forbids connections."""
    return bool(me.page.evaluate("""() => new Promise(resolve => {
        const ws = new WebSocket("ws://" + location.host + "/websockify");
        ws.onopen = () => { ws.close(); resolve(true); };
        ws.onerror = () => resolve(false);
    })"""))


@pytest.fixture
def browser_of(person: Callable[..., Pages]) -> Callable[[], Pages]:
    """A new person's browser that can try WebSockets from any page (`_websocket_opens`)."""
    return lambda: person(bypass_csp=True)


@pytest.fixture
def logged_in(browser_of: Callable[[], Pages]) -> Callable[[str], Pages]:
    def open_as(username: str) -> Pages:
        me = browser_of()
        me.login(username)
        return me

    return open_as


def test_open_from_the_portal_then_a_replayed_ticket_is_refused(logged_in, browser_of, alice) -> None:
    username, user_id = alice
    session = _running_session(username, user_id)
    me = logged_in(username)
    me.goto("/sessions")
    with me.context.expect_page() as opened:
        me.page.click(f"#open-{session}")
    desktop = opened.value
    expect(desktop).to_have_title(f"Simulated desktop {session}", timeout=30_000)  # after "Opening ..."
    assert "ticket" not in desktop.url  # redeemed, then the desktop's own "/"
    cookies = me.context.cookies(desktop.url)
    assert [c["name"] for c in cookies] == [DESKTOP_COOKIE]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Lax"
    assert "streamspace_portal" not in {c["name"] for c in cookies}  # the login never reaches a desktop

    url = _open_url(username, user_id, session)
    first = browser_of()
    assert _visit(first, url) == 200 and _shows_the_desktop(first, session)
    replay = browser_of()  # the same link again, say from a browser history or a shared screen
    assert _visit(replay, url) == 401
    assert not _shows_the_desktop(replay, session)
    replay.screenshot("desktop-ticket-replayed")


def test_the_opening_page_is_axe_clean_before_it_moves_on_to_the_desktop(person, alice) -> None:
    username, user_id = alice
    session = _running_session(username, user_id)
    me = person()  # the page's own CSP in force
    me.login(username)
    me.goto("/sessions")

    opened_tabs: list[Any] = []

    def open_it() -> Any:
        with me.context.expect_page() as opened:
            me.page.click(f"#open-{session}")
        opened_tabs.append(opened.value)
        return opened.value

    url = me.check_before_it_moves_on("desktop-opening", lambda url: "/.streamspace/auth" in url, open_it)
    assert urlsplit(url).hostname == f"{session}.localhost" and "ticket=" in url
    opening = opened_tabs[0]
    assert opening.locator("h1").inner_text() == f"Opening {session}"
    opening.goto(url)  # where it was moving on to: the ticket, unspent, opens the desktop
    expect(opening).to_have_title(f"Simulated desktop {session}", timeout=30_000)


def test_an_expired_ticket_is_refused(browser_of, alice) -> None:
    from streamspace.db import execute

    username, user_id = alice
    session = _running_session(username, user_id)
    url = _open_url(username, user_id, session)
    ticket = parse_qs(urlsplit(url).query)["ticket"][0]
    # A minute later, as far as the ticket can tell: its stored expiry is in the past.
    assert execute("UPDATE desktop_tickets SET expires_at = now() - interval '1 second' WHERE ticket_hash = %s",
                   (hashlib.sha256(ticket.encode()).digest(),)) == 1
    me = browser_of()
    assert _visit(me, url) == 401 and not _shows_the_desktop(me, session)


def test_a_ticket_or_a_cookie_taken_to_another_sessions_host_is_refused(browser_of, alice) -> None:
    username, user_id = alice
    first, second = _running_session(username, user_id), _running_session(username, user_id)

    url = _open_url(username, user_id, first)
    elsewhere = url.replace(f"//{first}.", f"//{second}.")
    me = browser_of()
    assert _visit(me, elsewhere) == 401 and not _shows_the_desktop(me, second)

    owner = browser_of()
    assert _visit(owner, _open_url(username, user_id, first)) == 200
    (cookie,) = [c for c in owner.context.cookies() if c["name"] == DESKTOP_COOKIE]
    thief = browser_of()
    thief.context.add_cookies([{**cookie, "domain": urlsplit(_desktop_host(elsewhere)).hostname}])
    assert _visit(thief, _desktop_host(elsewhere)) == 401 and not _shows_the_desktop(thief, second)
    assert not _websocket_opens(thief)


def test_another_user_and_an_anonymous_browser_get_no_way_in(logged_in, browser_of, alice) -> None:
    username, user_id = alice
    session = _running_session(username, user_id)
    host = _desktop_host(_open_url(username, user_id, session))

    bob_name, bob_id = new_user(prefix="bob")
    bob = logged_in(bob_name)
    assert bob.goto(f"/sessions/{session}").status == 404  # not even its page
    bobs = _running_session(bob_name, bob_id)
    assert _visit(bob, _open_url(bob_name, bob_id, bobs)) == 200  # bob's own desktop cookie ...
    assert _visit(bob, host) == 401 and not _shows_the_desktop(bob, session)  # ... is not alice's
    assert not _websocket_opens(bob)

    anonymous = browser_of()
    assert _visit(anonymous, host) == 401
    assert not _websocket_opens(anonymous)  # CVE-2024-28179's shape: an upgrade with no credential

    owner = browser_of()
    assert _visit(owner, _open_url(username, user_id, session)) == 200
    assert _websocket_opens(owner)  # the same upgrade with the session's own cookie


def test_logging_out_of_the_portal_ends_the_desktop(logged_in, alice) -> None:
    username, user_id = alice
    session = _running_session(username, user_id)
    me = logged_in(username)
    me.goto("/sessions")
    with me.context.expect_page() as opened:  # "Open": a ticket of this login, redeemed in a new tab
        me.page.click(f"#open-{session}")
    expect(opened.value).to_have_title(f"Simulated desktop {session}", timeout=30_000)
    opened.value.close()
    # "Open" once more, but the ticket is kept instead of used: one handed out before the logout.
    me.context.route(lambda url: "/.streamspace/auth" in url, lambda route: route.abort())
    with me.context.expect_event("request", lambda request: "/.streamspace/auth" in request.url) as ticket:
        with me.context.expect_page() as kept:
            me.page.click(f"#open-{session}")
    unused = ticket.value.url
    kept.value.close()
    me.context.unroute_all()
    assert _visit(me, _desktop_host(unused)) == 200  # the desktop, with this login's cookie
    me.goto("/sessions")
    me.page.get_by_role("button", name="Log out").click()
    me.page.wait_for_url("**/login")
    assert _visit(me, _desktop_host(unused)) == 401  # the desktop cookie is revoked with the login
    assert not _websocket_opens(me)
    assert _visit(me, unused) == 401  # and so are its unused tickets

