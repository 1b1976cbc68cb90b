"""auth: password login, refresh-token rotation, logout, the current user, password change."""

import functions_framework

from streamspace.auth import refresh as refresh_tokens
from streamspace.auth.passwords import hash_profile
from streamspace.auth.users import service as users
from streamspace.http import Access, Api, Reply, Request
from streamspace.login import service as logins
from streamspace.mfa import service as mfa
from streamspace.sso import service as sso

api = Api("auth")
hash_profile()  # a bad PASSWORD_HASH_PROFILE ends the process at start, like any configuration error


def _schema(required: tuple[str, ...], **props: str) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {name: {"type": kind} for name, kind in props.items()}}


@api.post("/api/v1/auth/login", access=Access.PUBLIC, summary="Log in with a username and password",
          body=_schema(("username", "password"), username="string", password="string"))
def login(req: Request) -> dict:
    return logins.login(req.json(allowed=logins.LOGIN_FIELDS, required=("username", "password")), req.client_ip)


@api.post("/api/v1/auth/refresh", access=Access.PUBLIC, summary="Exchange a refresh token (it rotates)",
          body=_schema((), refreshToken="string", token="string"))
def refresh(req: Request) -> dict:
    presented = refresh_tokens.presented_refresh_token(req.json(allowed=refresh_tokens.REFRESH_FIELDS))
    return refresh_tokens.refresh(presented, req.client_ip)


@api.post("/api/v1/auth/logout", access=Access.USER, summary="End this login (its refresh and access tokens)",
          body=_schema((), refreshToken="string"))
def logout(req: Request) -> dict:
    body = req.json(allowed=refresh_tokens.REFRESH_FIELDS, optional_body=True)
    presented = body.get("refreshToken", body.get("token"))
    refresh_tokens.end_login(req.caller, presented if isinstance(presented, str) else None, req.client_ip)
    provider_logout = sso.end_session_url(req.caller.user_id)
    return {"message": "logged out", **({"endSessionUrl": provider_logout} if provider_logout else {})}


@api.get("/api/v1/auth/me", access=Access.USER, summary="The current user")
def me(req: Request) -> dict:
    return users.get_user(req.caller.user_id)


@api.post("/api/v1/auth/password", access=Access.USER, summary="Change the current user's password",
          body=_schema(("oldPassword", "newPassword"), oldPassword="string", newPassword="string"))
def password(req: Request) -> dict:
    body = req.json(allowed=logins.PASSWORD_FIELDS, required=("oldPassword", "newPassword"))
    return logins.change_password(req.caller, body, req.client_ip)


@api.post("/api/v1/auth/login/totp", access=Access.PUBLIC,
          body=_schema(("mfaToken",), mfaToken="string", code="string", recoveryCode="string"),
          summary="Second login step: the password step's mfaToken with a TOTP code or a recovery code")
def login_totp(req: Request) -> dict:
    return mfa.complete_login(req.json(allowed=mfa.SECOND_STEP_FIELDS, required=("mfaToken",)), req.client_ip)


@api.post("/api/v1/auth/login/totp/enroll", access=Access.PUBLIC, body=_schema(("mfaToken",), mfaToken="string"),
          summary="Enrol in TOTP during a login that requires it (then confirm with /auth/login/totp)")
def login_totp_enroll(req: Request) -> dict:
    return mfa.enroll_at_login(req.json(allowed=mfa.CHALLENGE_FIELDS, required=("mfaToken",)))


@api.get("/api/v1/auth/totp", access=Access.USER, summary="The current user's two-factor login status")
def totp_status(req: Request) -> dict:
    return mfa.status(req.caller)


@api.post("/api/v1/auth/totp/enroll", access=Access.USER,
          summary="Start TOTP enrolment: a new secret, its otpauth URI and QR code (SVG)")
def totp_enroll(req: Request) -> dict:
    return mfa.enroll(req.caller)


@api.post("/api/v1/auth/totp/confirm", access=Access.USER, body=_schema(("code",), code="string"),
          summary="Confirm TOTP enrolment with a first code; answers ten single-use recovery codes")
def totp_confirm(req: Request) -> dict:
    return mfa.confirm(req.caller, req.json(allowed=mfa.CODE_FIELDS, required=("code",))["code"], req.client_ip)


@api.post("/api/v1/auth/totp/disable", access=Access.USER, body=_schema(("code",), code="string"),
          summary="Turn one's own TOTP off with a current code (refused when the policy requires it)")
def totp_disable(req: Request) -> dict:
    return mfa.disable(req.caller, req.json(allowed=mfa.CODE_FIELDS, required=("code",))["code"], req.client_ip)


@api.get("/api/v1/auth/methods", access=Access.PUBLIC, summary="How one can log in here (password, single sign-on)")
def methods(_: Request) -> dict:
    return sso.login_methods()


def _navigating(req: Request) -> bool:
    """A person's browser loading the page (not a script): a refused sign-in is then a redirect to
    a page that says why, rather than a JSON body shown raw."""
    return req.raw.headers.get("Sec-Fetch-Mode") == "navigate" or "text/html" in req.raw.headers.get("Accept", "")


@api.get("/api/v1/auth/oidc/login", access=Access.PUBLIC, status=302, query=("redirect_uri", "returnTo"),
         summary="Start single sign-on: redirects to the OpenID Provider (authorization code flow with PKCE)")
def oidc_login(req: Request) -> Reply:
    url, cookie = sso.start_login(req.query("redirect_uri"), req.query("returnTo"), req.client_ip,
                                  browser_navigation=_navigating(req))
    return Reply(None, status=302, headers={"Location": url, **({"Set-Cookie": cookie} if cookie else {})})


@api.get("/api/v1/auth/oidc/callback", access=Access.PUBLIC, status=302,
         query=("code", "state", "iss", "error", "error_description"),
         summary="The OpenID Provider's redirect back; redirects to the return path with ssoCode=<one-time code>"
                 " (a browser whose sign-in is refused: with ssoError=<code>)")
def oidc_callback(req: Request) -> Reply:
    params = {name: req.raw.args.get(name) for name in ("code", "state", "iss", "error", "error_description")}
    location = sso.callback(params, req.raw.cookies.get(sso.BROWSER_COOKIE), req.client_ip,
                            browser_navigation=_navigating(req))
    return Reply(None, status=302, headers={"Location": location})


@api.post("/api/v1/auth/oidc/exchange", access=Access.PUBLIC, body=_schema(("code",), code="string"),
          summary="Exchange the callback's one-time ssoCode for a login (access and refresh tokens)")
def oidc_exchange(req: Request) -> dict:
    code = req.json(allowed={"code"}, required=("code",)).get("code")
    return sso.exchange(code, req.raw.cookies.get(sso.BROWSER_COOKIE), req.client_ip)


@api.get("/api/v1/auth/oidc/mappings", access=Access.ADMIN, summary="The groups-claim -> group/role mapping table")
def oidc_mappings(_: Request) -> dict:
    return sso.list_mappings()


@api.post("/api/v1/auth/oidc/mappings", access=Access.ADMIN, status=201,
          body=_schema(("claimValue",), claimValue="string", groupId="string", role="string"),
          summary="Map a groups-claim value to a group and/or the operator or admin role")
def oidc_mapping_create(req: Request) -> Reply:
    return Reply(sso.create_mapping(req.caller, req.json(allowed=sso.MAPPING_FIELDS, required=("claimValue",)),
                                    req.client_ip), status=201)


@api.delete("/api/v1/auth/oidc/mappings/{id}", access=Access.ADMIN, summary="Delete a claim mapping")
def oidc_mapping_delete(req: Request) -> dict:
    return sso.delete_mapping(req.caller, req.param("id"), req.client_ip)


# SAML is not offered: most SAML providers also speak OpenID Connect (docs/sso.md).
api.not_built("GET", "/api/v1/auth/saml/{rest}", access=Access.PUBLIC, message=sso.SAML_MESSAGE)
api.not_built("POST", "/api/v1/auth/saml/{rest}", access=Access.PUBLIC, message=sso.SAML_MESSAGE)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
