"""The user's pages: log in, catalog, launch and watch, my sessions, quota, profile.

Each handler parses the form, calls the library service the API route calls, and renders. A
service's refusal of a form comes back as errors next to the fields (`refusal`).
"""

from __future__ import annotations

from typing import Any

from streamspace.auth.refresh import end_all_logins, end_login
from streamspace.auth.users.service import get_user
from streamspace.domain.errors import DomainError
from streamspace.http.api import Access
from streamspace.http.errors import NotFound
from streamspace.login.service import change_password
from streamspace.login.service import login as do_login
from streamspace.mfa.service import complete_login, enroll_at_login
from streamspace.portal import views
from streamspace.portal.web import Page, Portal, local_path, refusal
from streamspace.quotas.service import user_quota
from streamspace.sessions import service
from streamspace.sessions.listing import list_sessions
from streamspace.sessions.live import event_stream
from streamspace.sessions.service import create_session, get_session
from streamspace.sso.service import (
    BROWSER_COOKIE,
    cleared_browser_cookie,
    end_session_url,
    exchange,
    login_methods,
    refusal_code,
)
from streamspace.templates.service import get_template, list_templates

# What the session actions of the page do, as the API's PATCH body (one rule: the service's).
SESSION_ACTIONS = {"hibernate": {"state": "hibernated"}, "wake": {"state": "running"},
                   "terminate": {"state": "terminated"}}
# Sizes offered at launch besides the template's default; the quota decides which fit.
LAUNCH_SIZES = (("Small", "1", "2Gi"), ("Medium", "2", "4Gi"), ("Large", "4", "8Gi"))


def register(portal: Portal) -> None:
    portal.page("/login", access=Access.PUBLIC, methods=("GET", "POST"))(login)
    portal.page("/login/totp", access=Access.PUBLIC, methods=("POST",))(login_second_step)
    portal.page("/login/sso", access=Access.PUBLIC)(single_sign_on_landing)
    portal.page("/logout", access=Access.USER, methods=("POST",))(logout)
    portal.page("/", access=Access.USER)(catalog)
    portal.page("/catalog/{name}", access=Access.USER)(template_details)
    portal.page("/catalog/{name}", access=Access.USER, methods=("POST",))(launch)
    portal.page("/sessions", access=Access.USER)(my_sessions)
    portal.page("/sessions/{id}", access=Access.USER)(session_details)
    portal.page("/sessions/{id}/{action}", access=Access.USER, methods=("POST",))(session_action)
    portal.page("/fragments/sessions", access=Access.USER)(sessions_fragment)
    portal.page("/fragments/sessions/{id}", access=Access.USER)(session_fragment)
    portal.page("/events", access=Access.USER)(events)
    portal.page("/quota", access=Access.USER)(quota)
    portal.page("/profile", access=Access.USER, methods=("GET", "POST"))(profile)
    portal.page("/profile/logout-everywhere", access=Access.USER, methods=("POST",))(logout_everywhere)


# -- login ----------------------------------------------------------------------------------------

def _login_page(page: Page, target: str, *, status: int = 200, errors: dict[str, str] | None = None,
                username: str = "", reason: str | None = None, sso_error: str | None = None) -> Any:
    """The login page: the password form and, when single sign-on is configured, a "Sign in with
    <provider>" link that starts it at the API and comes back to `/login/sso` (then to `target`)."""
    from urllib.parse import urlencode


    methods = login_methods()
    sso = None
    if methods["oidc"]:
        # The return path may not carry a code of its own (the callback refuses it): such a target
        # is dropped rather than the whole sign-in refused.
        back = "/login/sso?" + urlencode({"next": target if "ssocode" not in target.lower() else "/"})
        if len(back) > 512:
            back = "/login/sso?next=%2F"
        sso = {"name": methods["oidc"]["name"],
               "url": methods["oidc"]["loginUrl"] + "?" + urlencode({"returnTo": back})}
    return page.render("login.html", status=status, next=target, errors=errors or {}, username=username,
                       reason=reason, sso=sso, password_login=methods["password"], sso_error=sso_error)


def login(page: Page) -> Any:
    target = local_path(page.query("next") or page.form.get("next"))
    if page.raw.method == "GET":
        return _login_page(page, target, reason=views.login_notice(page.query("reason")))
    username = page.field("username")
    try:
        tokens = do_login({"username": username, "password": page.form.get("password", "")}, page.client_ip)
    except Exception as exc:  # noqa: BLE001 - the server's own words, next to the form
        errors, status = refusal(exc)
        return _login_page(page, target, status=status, errors=errors, username=username)
    if tokens.get("mfaRequired"):
        return _second_step(page, tokens, target, {}, 200)
    return _logged_in(page, tokens, target)


def _logged_in(page: Page, tokens: dict[str, Any], target: str) -> Any:
    page.new_cookies = {"token": tokens["token"], "refreshToken": tokens["refreshToken"]}  # always a new login
    if tokens.get("recoveryCodes"):  # an enrolment made during this login: shown once
        return page.render("login_totp.html", step=None, next=target, errors={},
                           recovery_codes=tokens["recoveryCodes"], enrolment=None)
    return page.redirect(target)


def _second_step(page: Page, step: dict[str, Any], target: str, errors: dict[str, str], status: int) -> Any:
    """The password was right and the account has (or must set up) two-factor login: ask for a code."""
    import base64


    enrolment = None
    if not step.get("enrolled"):
        found = enroll_at_login({"mfaToken": step["mfaToken"]})
        enrolment = {"secret": found["secret"],
                     "qr": "data:image/svg+xml;base64," + base64.b64encode(found["qrSvg"].encode()).decode()}
    return page.render("login_totp.html", status=status, step=step, next=target, errors=errors,
                       recovery_codes=None, enrolment=enrolment)


def login_second_step(page: Page) -> Any:
    target = local_path(page.form.get("next"))
    body: dict[str, Any] = {"mfaToken": page.form.get("mfaToken", "")}
    if page.field("recoveryCode"):
        body["recoveryCode"] = page.field("recoveryCode")
    else:
        body["code"] = page.field("code")
    try:
        tokens = complete_login(body, page.client_ip)
    except Exception as exc:  # noqa: BLE001 - a wrong code is asked again; an expired step starts over
        errors, status = refusal(exc)
        if getattr(exc, "error", "") == "invalid code":  # wrong, reused or too old: ask again
            errors = {"code": errors[""]}
        elif status == 401:  # the step expired or is unknown: start over with the password
            return _login_page(page, target, status=401, errors=errors)
        step = {"mfaToken": body["mfaToken"], "enrolled": page.form.get("enrolled") == "1"}
        return page.render("login_totp.html", status=status, step=step, next=target, errors=errors,
                           recovery_codes=None, enrolment=None)
    return _logged_in(page, tokens, target)


def single_sign_on_landing(page: Page) -> Any:
    """Where the API's single sign-on callback sends the browser back: `ssoCode` is redeemed for a
    login (with this browser's binding cookie, so a code pushed into another browser is worthless),
    or `ssoError` says in words why there is none."""

    target = local_path(page.query("next"))
    failed = page.query("ssoError")
    if failed is None:
        try:
            tokens = exchange(page.query("ssoCode"), page.raw.cookies.get(BROWSER_COOKIE), page.client_ip)
        except DomainError as exc:
            failed = refusal_code(exc)
        else:
            response = _logged_in(page, tokens, target)
            response.headers.add("Set-Cookie", cleared_browser_cookie())
            return response
    status, message = views.sso_refusal(failed)
    response = _login_page(page, target, status=status, sso_error=message)
    response.headers.add("Set-Cookie", cleared_browser_cookie())
    return response


def _signed_out(page: Page, user_id: str, notice: str | None) -> Any:  # notice: a LOGIN_NOTICES code
    """After our logout: on to the identity provider's logout for a single sign-on user (a page
    that moves on by itself: the CSP's form-action 'self' governs where a form's redirect may
    lead), else the login page."""
    from urllib.parse import quote


    page.log_out()
    provider_logout = end_session_url(user_id)
    if provider_logout:
        return page.render("signed_out.html", provider_logout=provider_logout, notice=views.login_notice(notice))
    return page.redirect("/login" + (f"?reason={quote(notice)}" if notice else ""))


def logout(page: Page) -> Any:
    end_login(page.caller, page.raw.cookies.get(page.portal.refresh_cookie), page.client_ip)
    return _signed_out(page, page.caller.user_id, None)


def logout_everywhere(page: Page) -> Any:
    end_all_logins(page.caller, page.client_ip)
    return _signed_out(page, page.caller.user_id, "logged-out-everywhere")


# -- catalog and launch ---------------------------------------------------------------------------

def catalog(page: Page) -> Any:
    category, q = page.query("category"), (page.query("q") or "").strip()
    everything = list_templates(page.caller, limit=1000)["templates"]  # users: the enabled ones
    categories = sorted({t["category"] for t in everything if t["category"]}, key=str.lower)
    shown = [t for t in everything
             if (not category or (t["category"] or "").lower() == category.lower())
             and (not q or q.lower() in " ".join([t["name"] or "", t["displayName"], t["description"],
                                                  " ".join(t["tags"])]).lower())]
    return page.render("catalog.html", templates=shown, categories=categories, category=category or "", q=q,
                       total=len(everything))


def _template(page: Page) -> dict[str, Any]:
    return get_template(page.param("name"), page.caller)


def _launch_choices(page: Page, template: dict[str, Any]) -> tuple[list[dict[str, Any]], list[views.Bar]]:
    """The sizes a user may pick: the template's default and the standard sizes, each marked with
    whether it fits in what is left of the user's quota (the service checks again at launch)."""

    bars = views.quota_bars(user_quota(page.caller.user_id))
    left = {bar.label: (None if bar.limit is None else bar.limit - bar.used) for bar in bars}
    default = template.get("defaultResources") or {}
    sizes = [("Template default", default.get("cpu") or "", default.get("memory") or "")] + list(LAUNCH_SIZES)
    choices = []
    for index, (label, cpu, memory) in enumerate(sizes):
        cpu_need = views._amount("cpu", cpu) if cpu else None
        mem_need = views._amount("memory", memory) if memory else None
        fits = (left["Sessions"] is None or left["Sessions"] >= 1) and \
               (left["CPU"] is None or cpu_need is None or cpu_need <= left["CPU"]) and \
               (left["Memory"] is None or mem_need is None or mem_need <= left["Memory"])
        choices.append({"value": str(index), "label": label, "cpu": cpu or "platform default",
                        "memory": memory or "platform default", "fits": fits})
    return choices, bars


def template_details(page: Page, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    template = _template(page)
    choices, bars = _launch_choices(page, template)
    chosen = page.form.get("size") or next((c["value"] for c in choices if c["fits"]), "0")
    return page.render("template.html", status=status, template=template, choices=choices, bars=bars,
                       chosen=chosen, errors=errors or {})


def launch(page: Page) -> Any:
    template = _template(page)
    size = page.field("size") or "0"
    body: dict[str, Any] = {"template": template["name"]}
    if size != "0":
        sizes = dict((str(i + 1), (cpu, memory)) for i, (_, cpu, memory) in enumerate(LAUNCH_SIZES))
        if size not in sizes:
            return template_details(page, {"size": "choose one of the sizes listed"}, 400)
        cpu, memory = sizes[size]
        body["resources"] = {"cpu": cpu, "memory": memory}
    try:
        created = create_session(page.caller, body, page.client_ip)
    except Exception as exc:  # noqa: BLE001 - a refusal (quota, template not ready) shows by the sizes
        errors, status = refusal(exc)
        return template_details(page, {"size": " ".join(errors.values())}, status)
    return page.redirect(f"/sessions/{created['name']}")


# -- my sessions ----------------------------------------------------------------------------------

def _my_sessions(page: Page) -> list[dict[str, Any]]:
    user = None if not page.caller.is_admin else page.caller.username  # the portal's list is "mine"
    return list_sessions(page.caller, user=user, limit=200)["sessions"]


def my_sessions(page: Page) -> Any:
    sessions = _my_sessions(page)
    return page.render("sessions.html", sessions=sessions, views=views, done=page.done,
                       live_version=views.live_version(sessions))


def sessions_fragment(page: Page) -> Any:
    sessions = _my_sessions(page)
    response = page.render("_session_rows.html", sessions=sessions, views=views)
    response.headers["X-Live-Version"] = views.live_version(sessions)
    return response


def _session(page: Page) -> dict[str, Any]:
    return get_session(page.caller, page.param("id"))


def session_details(page: Page) -> Any:
    session = _session(page)
    return page.render("session.html", session=session, views=views, done=page.done, error=None,
                       live_version=views.live_version(session))


def session_fragment(page: Page) -> Any:
    session = _session(page)
    response = page.render("_session_status.html", session=session, views=views)
    response.headers["X-Live-Version"] = views.live_version(session)
    return response


def session_action(page: Page) -> Any:
    name, action = page.param("id"), page.param("action")
    back = local_path(page.form.get("back"), f"/sessions/{name}")
    try:
        if action in SESSION_ACTIONS:
            service.patch_session(page.caller, name, SESSION_ACTIONS[action], page.client_ip)
        elif action == "delete":
            service.delete_session(page.caller, name, page.client_ip)
            return page.redirect("/sessions?done=deleted")
        elif action == "open":
            opened = service.connect(page.caller, name, page.client_ip, page.raw.headers.get("User-Agent", ""))
            if opened.get("openUrl"):
                # A page that moves on by itself rather than a redirect: the CSP's form-action
                # 'self' also governs where a form's redirect may lead, and the desktop is on
                # its own host.
                return page.render("opening.html", session=name, open_url=opened["openUrl"])
            return page.redirect(f"/sessions/{name}?done=opening")
        else:
            raise NotFound(f"no action {action!r}")
    except NotFound:
        raise
    except Exception as exc:  # noqa: BLE001 - a refused action (already terminated...) is shown on the page
        errors, status = refusal(exc)
        session = _session(page)
        return page.render("session.html", status=status, session=session, views=views, done=None,
                           error=" ".join(errors.values()), live_version=views.live_version(session))
    return page.redirect(f"{back}{'&' if '?' in back else '?'}done={action}")


def events(page: Page) -> Any:
    """The live session stream for this page's script: the API's own stream (pushed on every change,
    bounded in time, owner-scoped the same way), authenticated by the login cookie instead of a token
    in the URL."""
    import flask


    stream = event_stream(page.caller)
    return flask.Response(stream, content_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


# -- quota and profile ----------------------------------------------------------------------------

def quota(page: Page) -> Any:
    return page.render("quota.html", bars=views.quota_bars(user_quota(page.caller.user_id)))


def profile(page: Page) -> Any:
    errors: dict[str, str] = {}
    done = page.query("done")
    status = 200
    if page.raw.method == "POST":
        try:
            change_password(page.caller, {"oldPassword": page.form.get("oldPassword", ""),
                                          "newPassword": page.form.get("newPassword", "")}, page.client_ip)
            return page.redirect("/profile?done=password")
        except Exception as exc:  # noqa: BLE001 - shown next to the field it names
            errors, status = refusal(exc)
    return page.render("profile.html", status=status, user=get_user(page.caller.user_id), errors=errors, done=done)
