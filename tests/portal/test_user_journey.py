"""A person's journey in real headless chromium against the whole local system: log in (and the
server's refusals), browse and filter the catalog, launch within quota, watch the session become
Running without reloading, hibernate, wake, terminate, delete; an ended login sends them to the
login page and back; everything works with the keyboard and at 390 px; axe-core on every page."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.portal.conftest import PASSWORD, admin_principal, make_template, new_user, principal


def _unique_client() -> dict[str, str]:
    # What the ingress would report as this browser's address: the rate limit counts per address too.
    return {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}


def test_login_shows_the_servers_refusals(person, base) -> None:
    username, _ = new_user()
    me = person(headers=_unique_client())
    me.goto("/sessions")
    assert "/login?next=/sessions" in me.page.url  # not logged in: the login page, remembering where to
    me.check("login")
    me.login(username, "not-the-password", path="/login?next=/sessions")
    assert me.page.locator("[role=alert]").inner_text() == "invalid username or password"
    assert "/login" in me.page.url
    me.page.fill("#f-username", "")
    me.page.fill("#f-password", "")
    me.page.click("button[type=submit]")
    assert "expected a non-empty string" in me.page.locator("#f-username-error").inner_text()  # next to its field
    for _ in range(12):  # after a few free failures each try waits twice as long (1, 2, 4 ... s)
        me.login(username, "still-wrong")
        if "too many failed login attempts" in me.page.locator("[role=alert]").inner_text():
            break
    assert "too many failed login attempts" in me.page.locator("[role=alert]").inner_text()
    me.check("login-rate-limited")


def test_a_user_launches_watches_and_ends_a_session(person, base) -> None:
    make_template("firefox", displayName="Firefox", category="Web Browsers", description="Browse the web",
                  tags=["browser"])
    make_template("gimp", displayName="GIMP", category="Graphics", description="Edit images")
    username, _ = new_user()
    me = person()
    me.login(username, path="/login?next=/")
    assert me.page.url == base + "/"
    assert set(me.page.locator(".tile h2").all_inner_texts()) >= {"Firefox", "GIMP"}
    me.check("catalog")

    me.page.fill("#q", "brows")
    me.page.click("form[role=search] button")
    assert me.page.locator(".tile h2").all_inner_texts() == ["Firefox"]
    me.page.select_option("#category", "Graphics")
    me.page.fill("#q", "")
    me.page.click("form[role=search] button")
    assert me.page.locator(".tile h2").all_inner_texts() == ["GIMP"]

    me.goto("/catalog/firefox")
    assert "example.com/firefox:1" in me.page.locator(".facts").inner_text()
    me.check("template-details")
    me.page.check("#size-1")  # Small: 1 CPU, 2Gi, within the default quota
    me.page.click("button.primary")
    me.page.wait_for_url(f"{base}/sessions/{username}-firefox-*")
    session = me.page.url.rsplit("/", 1)[1]
    me.page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded or left
    expect(me.page.locator("#phase")).to_have_text("Running", timeout=30_000)
    assert me.page.evaluate("window.__sameDocument === true")
    assert "1 CPU, 2Gi memory" in me.page.locator(".facts").inner_text()
    me.check("session-running")

    with me.context.expect_page() as opened:  # Open: a new tab on the session's own host
        me.page.click(f"#open-{session}")
    desktop = opened.value
    expect(desktop).to_have_title(f"Simulated desktop {session}", timeout=30_000)
    assert desktop.url.startswith(f"http://{session}.localhost:")  # the ticket was redeemed, then "/"
    assert "ticket" not in desktop.url
    host_cookies = me.context.cookies(desktop.url)
    assert host_cookies and all(c["name"] != "streamspace_portal" for c in host_cookies)  # never the login
    desktop.close()

    me.goto("/sessions")
    row = me.page.locator(f"#row-{session}")
    assert "running · Running" in row.inner_text()
    me.check("my-sessions")
    me.page.click(f"#hibernate-{session}")
    expect(row).to_contain_text("hibernated · Hibernated", timeout=30_000)
    me.page.click(f"#wake-{session}")
    expect(row).to_contain_text("running · Running", timeout=30_000)
    me.page.click(f"#terminate-{session}")
    expect(row).to_contain_text("terminated", timeout=30_000)
    me.screenshot("my-sessions-terminated")
    me.page.click(f"#delete-{session}")
    assert me.page.locator(".notice").inner_text() == "Session deleted."
    assert me.page.locator(f"#row-{session}").count() == 0

    me.goto("/quota")
    assert me.page.locator(".bars li").count() == 4
    me.check("quota")
    me.goto("/profile")
    me.check("profile")


def test_a_refused_launch_and_a_failed_session_are_explained(person, base) -> None:
    from streamspace import kube
    from streamspace.config import environment
    from streamspace.quotas.service import set_user_quota

    make_template("kate", displayName="Kate")
    username, user_id = new_user()
    set_user_quota(admin_principal(), user_id, {"maxCPU": "1"}, "")
    me = person()
    me.login(username)
    me.goto("/catalog/kate")
    assert me.page.locator("#size-2").is_disabled()  # Medium: 2 CPU, over the 1 CPU left
    me.page.evaluate("document.getElementById('size-2').disabled = false")  # as a stale page would send it
    me.page.check("#size-2")
    me.page.click("button.primary")
    assert "cpu" in me.page.locator("#size-error").inner_text().lower()
    assert me.page.url == base + "/catalog/kate"
    me.check("launch-refused")

    me.page.check("#size-0")
    me.page.click("button.primary")
    me.page.wait_for_url(f"{base}/sessions/{username}-kate-*")
    session = me.page.url.rsplit("/", 1)[1]
    expect(me.page.locator("#phase")).to_have_text("Running", timeout=30_000)
    kube.delete("Template", "kate", environment().sessions_namespace)  # the template goes away under a live session
    me.goto("/sessions")
    me.page.click(f"#hibernate-{session}")
    me.page.click(f"#wake-{session}")
    me.goto(f"/sessions/{session}")
    expect(me.page.locator("#phase")).to_have_text("Failed", timeout=30_000)
    assert "missing or broken" in me.page.locator(".progress [role=alert]").inner_text()
    me.check("session-failed")


def test_an_ended_login_goes_to_the_login_page_and_back(person, base) -> None:
    from streamspace.auth.refresh import end_all_logins

    username, user_id = new_user()
    me = person()
    me.login(username)
    me.context.clear_cookies(name="streamspace_portal")  # the access token is gone: the refresh cookie renews it
    me.goto("/quota")
    assert me.page.url == base + "/quota"
    assert {c["name"] for c in me.context.cookies()} >= {"streamspace_portal", "streamspace_portal_refresh"}

    end_all_logins(principal(user_id, username), "")  # e.g. logged out everywhere from another device
    me.goto("/quota?x=1")
    assert me.page.url == base + "/login?next=/quota%3Fx%3D1" or me.page.url.startswith(base + "/login?next=/quota")
    me.page.fill("#f-username", username)
    me.page.fill("#f-password", PASSWORD)
    me.page.click("button[type=submit]")
    me.page.wait_for_url(base + "/quota?x=1")


def test_everything_with_the_keyboard_alone(person, base) -> None:
    make_template("xterm", displayName="XTerm", category="Tools")
    username, _ = new_user()
    me = person()
    me.goto("/login")
    page = me.page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    def tab_to(selector: str) -> None:
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#f-username")
    page.keyboard.type(username)
    tab_to("#f-password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/")
    tab_to("a[href='/catalog/xterm']")
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/catalog/xterm")
    tab_to("button.primary")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/sessions/{username}-xterm-*")
    session = page.url.rsplit("/", 1)[1]
    tab_to(f"#terminate-{session}")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/sessions/{session}?done=terminate")


def test_usable_at_390_pixels(person, base) -> None:
    make_template("vscode", displayName="VS Code", category="Development")
    username, user_id = new_user()
    from streamspace.sessions.service import create_session

    create_session(principal(user_id, username), {"template": "vscode"})
    me = person(width=390, height=844)
    me.login(username)
    for path in ("/", "/catalog/vscode", "/sessions", "/quota", "/profile"):
        me.goto(path)
        overflow = me.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"
        me.check(f"narrow{path.replace('/', '-') if path != '/' else '-catalog'}")
    me.goto("/sessions")
    terminate = me.page.locator("button", has_text="Terminate").first.bounding_box()
    assert terminate is not None and terminate["x"] + terminate["width"] <= 390


def test_two_factor_login_in_the_browser(person, base) -> None:
    import time

    from streamspace.domain.errors import ValidationError
    from streamspace.mfa import service as mfa
    from streamspace.mfa.totp import STEP_SECONDS, code_at

    username, user_id = new_user()
    me_principal = principal(user_id, username)
    secret = mfa.enroll(me_principal)["secret"]
    # The authenticator app's previous code, so that the login below can use the current one (a
    # code is accepted once). The server reads its own clock: when a step boundary passes between
    # the code and the check, that code is two steps old and refused, so it is taken again then.
    for attempt in (1, 2):
        step = int(time.time() // STEP_SECONDS)
        try:
            mfa.confirm(me_principal, code_at(secret, time.time() - STEP_SECONDS), "")
            break
        except ValidationError:
            if attempt == 2 or int(time.time() // STEP_SECONDS) == step:
                raise
    me = person(headers=_unique_client())
    me.login(username, path="/login?next=/quota")
    assert me.page.locator("h1").inner_text() == "Two-factor login"
    me.check("login-two-factor")
    me.page.fill("#f-code", "000000" if code_at(secret, time.time()) != "000000" else "111111")
    me.page.click("button[type=submit]")
    assert "that code is not valid" in me.page.locator("#f-code-error").inner_text()
    me.page.fill("#f-code", code_at(secret, time.time()))
    me.page.click("button[type=submit]")
    me.page.wait_for_url(base + "/quota")


def test_enrolling_in_two_factor_login_at_login_then_the_recovery_codes(person, base) -> None:
    import re
    import time

    from streamspace.mfa.totp import code_at
    from streamspace.settings.service import AUTH_TOTP_REQUIRED, platform_settings, update_platform_settings

    username, _ = new_user()
    before = platform_settings()[AUTH_TOTP_REQUIRED]
    update_platform_settings({AUTH_TOTP_REQUIRED: "everyone"}, admin_principal())
    try:
        me = person(headers=_unique_client())
        me.login(username, path="/login?next=/quota")
        assert me.page.locator("img.qr").is_visible()
        me.check("login-two-factor-enrol")
        secret = re.sub(r"\s", "", me.page.locator("p:has-text('Key:') code").inner_text())
        me.page.fill("#f-code", code_at(secret, time.time()))
        me.page.click("button[type=submit]")
        assert me.page.locator("h1").inner_text() == "Two-factor login is on"
        codes = me.page.locator("ul.codes code").all_inner_texts()
        assert len(codes) >= 8 and len(set(codes)) == len(codes)
        me.check("login-recovery-codes")
        me.page.get_by_role("link", name="Continue").click()
        me.page.wait_for_url(base + "/quota")
    finally:
        update_platform_settings({AUTH_TOTP_REQUIRED: before}, admin_principal())
