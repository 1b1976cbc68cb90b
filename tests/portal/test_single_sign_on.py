"""Single sign-on through the portal, the whole way, in real headless chromium: the login page's
"Sign in with <provider>" button, the real OpenID Provider's own login and consent pages (the
certified npm `oidc-provider` of tests/sso), the API's callback, the portal's landing page that
redeems the one-time code with this browser's binding cookie, and the catalog, signed in. Then the
failures a person meets, shown in words: cancelled consent, a provider that is down (before and in
the middle of a sign-in); and logout, which also ends the provider's session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamspace.local.server import unused_port
from tests.portal.conftest import PASSWORD, Pages, make_template, new_user
from tests.sso.openid_provider import CLIENT_ID, CLIENT_SECRET, OpenIDProvider

CALLBACK = "/api/v1/auth/oidc/callback"
PROVIDER_NAME = "Example IdP"


def _oidc_env(op: OpenIDProvider, base: str, **extra: str | None) -> dict[str, str | None]:
    return {"OIDC_ISSUER": op.issuer, "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URIS": base + CALLBACK, "OIDC_SCOPES": "openid profile email groups",
            "OIDC_PROVIDER_NAME": PROVIDER_NAME, "OIDC_POST_LOGOUT_REDIRECT_URI": base + "/login", **extra}


@pytest.fixture(scope="module")
def op(base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    """The module's OpenID Provider with the portal's stack registered as its client, and the
    stack configured for it (the functions read their settings at each request)."""
    from streamspace.sso.provider import forget_cached_metadata
    from tests.conftest import environment

    provider = OpenIDProvider(Path(tmp_path_factory.mktemp("op")), [base + CALLBACK],
                              post_logout_redirect_uris=[base + "/login"])
    provider.start()
    with environment(**_oidc_env(provider, base)):
        yield provider
        forget_cached_metadata()
    provider.stop()


@pytest.fixture(scope="module", autouse=True)
def catalog_template(op: OpenIDProvider) -> None:
    make_template("sso-desktop", displayName="SSO Desktop", description="A desktop behind single sign-on")


def _person_at_provider(person: Any) -> Pages:
    me = person()
    # The provider's development pages @import a web font; the test machine has no internet.
    me.context.route("https://fonts.googleapis.com/**", lambda route: route.abort())
    return me


def _account(op: OpenIDProvider) -> str:
    login = f"sso{uuid.uuid4().hex[:8]}"
    op.set_account(login, preferred_username=login, email=f"{login}@example.com", name="Sso Person")
    return login


def _log_in_at_provider(me: Pages, op: OpenIDProvider, login: str) -> None:
    """On the provider's own login page; it then asks whether to allow StreamSpace."""
    page = me.page
    page.wait_for_url(op.issuer + "/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("input[name=prompt][value=consent]").count() == 1, page.url


def _sign_in_at_provider(me: Pages, op: OpenIDProvider, login: str) -> None:
    """On the provider's own pages: log in, then allow StreamSpace."""
    _log_in_at_provider(me, op, login)
    me.page.click("button[type=submit]")
    me.page.wait_for_load_state()


def _start(me: Pages, path: str = "/login") -> None:
    me.goto(path)
    me.page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()


def _audit(action: str) -> list[dict[str, Any]]:
    from streamspace.db import fetch_all

    return fetch_all("SELECT * FROM audit_log WHERE action = %s ORDER BY id", (action,))


def test_sign_in_with_the_provider_lands_signed_in_on_the_catalog(person, base, op) -> None:
    login = _account(op)
    me = _person_at_provider(person)
    me.goto("/sessions")  # not logged in: the login page, which remembers where the person was going
    assert "/login?next=/sessions" in me.page.url
    button = me.page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}")
    assert button.is_visible()
    me.check("login-with-sso")
    button.click()
    _sign_in_at_provider(me, op, login)
    me.page.wait_for_url(base + "/sessions")  # back where they were going, signed in
    assert me.page.locator(".who").inner_text() == login
    me.check("sso-signed-in")

    me.goto("/")
    assert "SSO Desktop" in me.page.locator(".tile h2").all_inner_texts()
    cookies = {c["name"]: c for c in me.context.cookies(base)}
    assert cookies["streamspace_portal"]["httpOnly"]
    assert "streamspace_oidc" not in cookies  # the binding cookie is gone once its login is redeemed
    assert "ssoCode" not in me.page.url
    logins = [row for row in _audit("auth.login") if row["target"] == login]
    assert [row["details"]["method"] for row in logins] == ["oidc"]


def test_the_button_shows_only_when_single_sign_on_is_configured(person, base, op) -> None:
    from tests.conftest import environment

    me = person()
    with environment(**dict.fromkeys(_oidc_env(op, base))):  # no OIDC_* setting at all
        me.goto("/login")
        assert me.page.get_by_role("link", name="Sign in with", exact=False).count() == 0
        assert me.page.locator("#f-password").is_visible()
    me.goto("/login")
    assert me.page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").count() == 1


def test_with_password_login_switched_off_only_the_break_glass_admin_sees_a_form(person, base, op) -> None:
    from tests.conftest import environment

    username, _ = new_user()
    me = person()
    with environment(OIDC_DISABLE_PASSWORD_LOGIN="true"):
        me.goto("/login")
        assert me.page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").is_visible()
        assert not me.page.locator("#f-password").is_visible()  # folded away under the administrator's login
        me.page.get_by_text("Administrator password login").click()
        me.check("login-password-switched-off")
        me.page.fill("#f-username", username)
        me.page.fill("#f-password", PASSWORD)
        me.page.get_by_role("button", name="Log in").click()
        me.page.wait_for_load_state()
        assert f"password login is disabled; sign in with {PROVIDER_NAME}" in \
            me.page.locator("[role=alert]").inner_text()
        assert "/login" in me.page.url


def test_cancelling_at_the_provider_is_said_in_words(person, base, op) -> None:
    login = _account(op)
    me = _person_at_provider(person)
    _start(me)
    _log_in_at_provider(me, op, login)
    page = me.page
    answer = _navigation(page, lambda: page.get_by_role("link", name="[ Cancel ]").click())
    assert answer.status == 403
    alert = page.locator("[role=alert]").inner_text()
    assert alert == (f"Signing in was cancelled at {PROVIDER_NAME}, or {PROVIDER_NAME} did not allow it."
                     " You are not logged in.")
    me.check("sso-cancelled")
    me.goto("/")
    assert "/login" in page.url  # not logged in
    assert any(row["details"].get("providerError") == "access_denied" for row in _audit("auth.oidc.refused"))


def test_a_provider_that_is_down_at_the_start_is_named(person, base, op) -> None:
    from streamspace.sso.provider import forget_cached_metadata
    from tests.conftest import environment

    me = _person_at_provider(person)
    me.goto("/login")
    dead = f"http://127.0.0.1:{unused_port()}"  # nothing listens there
    with environment(OIDC_ISSUER=dead):
        forget_cached_metadata()
        answer = _navigation(me.page, lambda: me.page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click())
    forget_cached_metadata()
    assert answer.status == 503
    assert me.page.locator("[role=alert]").inner_text() == (
        f"{PROVIDER_NAME} is not answering right now, so you could not be signed in. Try again in a few minutes.")
    me.check("sso-provider-down")


def test_a_provider_that_goes_down_in_the_middle_of_a_sign_in_is_named(person, base, op) -> None:
    """The person logs in and allows StreamSpace at the provider, which then stops before
    StreamSpace redeems the code. (The browser's last steps at the provider are taken for it so
    the provider can be stopped at exactly that moment: a page route cannot hold a redirect.)"""
    from urllib.parse import urljoin

    login = _account(op)
    me = _person_at_provider(person)

    def allow_then_provider_dies(route: Any) -> None:
        location = route.request.url
        answer = route.fetch(max_redirects=0)  # the consent form's POST, with the browser's cookies
        while answer.status in (302, 303) and urljoin(location, answer.headers["location"]).startswith(op.issuer):
            location = urljoin(location, answer.headers["location"])
            answer = me.context.request.get(location, max_redirects=0)
        callback_url = urljoin(location, answer.headers["location"])
        assert callback_url.startswith(base + CALLBACK) and "code=" in callback_url, callback_url
        op.stop()
        route.fulfill(status=303, headers={"Location": callback_url})

    _start(me)
    _log_in_at_provider(me, op, login)
    page = me.page
    page.route(lambda url: url.startswith(op.issuer + "/interaction/"), allow_then_provider_dies)
    try:
        answer = _navigation(page, lambda: page.click("button[type=submit]"))
        assert answer.status == 503
        assert page.locator("[role=alert]").inner_text() == (
            f"{PROVIDER_NAME} is not answering right now, so you could not be signed in. Try again in a few minutes.")
        me.check("sso-provider-down-midway")
    finally:
        if op.process is None:
            op.start()
    assert any(row["details"]["reason"] == "provider unavailable" for row in _audit("auth.oidc.refused"))


def test_logout_also_ends_the_session_at_the_provider(person, base, op) -> None:
    login = _account(op)
    me = _person_at_provider(person)
    _start(me)
    _sign_in_at_provider(me, op, login)
    me.page.wait_for_url(base + "/")
    # Our login ends at once; the browser moves on by itself to the provider's end-session page
    # (kept on the page that says so while axe-core checks it, then sent on).
    end_session = me.check_before_it_moves_on("sso-signed-out", lambda url: url.startswith(op.issuer),
                                              lambda: me.page.get_by_role("button", name="Log out").click())
    assert "streamspace_portal" not in {c["name"] for c in me.context.cookies(base)}
    me.page.goto(end_session)
    assert "streamspace_portal" not in {c["name"] for c in me.context.cookies(base)}
    me.page.get_by_role("button", name="Yes, sign me out").click()
    me.page.wait_for_url(base + "/login**")  # the provider sends the browser back (post-logout redirect)
    me.check("sso-logged-out")

    # The provider's session is over too: signing in again asks for the login, not just consent.
    _start(me)
    me.page.wait_for_url(op.issuer + "/**")
    assert me.page.locator("input[name=login]").is_visible()


def _navigation(page: Any, action: Any) -> Any:
    """The response of the page the navigation `action` causes ends at (after its redirects)."""
    with page.expect_navigation() as navigation:
        action()
    return navigation.value
