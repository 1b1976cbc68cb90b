"""auth: password login, refresh-token rotation, logout, the current user, password change."""

import functions_framework

from streamspace.auth.passwords import hash_profile
from streamspace.http import Access, Api, Reply, Request
from streamspace.sso.service import SAML_MESSAGE

api = Api("auth")
hash_profile()  # a bad PASSWORD_HASH_PROFILE ends the process at start, like any configuration error



def _schema(required: tuple[str, ...], **props: str) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {name: {"type": kind} for name, kind in props.items()}}




@api.post("/api/v1/auth/login", access=Access.PUBLIC, summary="Log in with a username and password",
          body=_schema(("username", "password"), username="string", password="string"))
def login(req: Request) -> dict:
    from streamspace.login.service import LOGIN_FIELDS
    from streamspace.login.service import login as do_login

    return do_login(req.json(allowed=LOGIN_FIELDS, required=("username", "password")), req.client_ip)


@api.post("/api/v1/auth/refresh", access=Access.PUBLIC, summary="Exchange a refresh token (it rotates)",
          body=_schema((), refreshToken="string", token="string"))
def refresh(req: Request) -> dict:
    from streamspace.auth.refresh import REFRESH_FIELDS, presented_refresh_token
    from streamspace.auth.refresh import refresh as do_refresh

    return do_refresh(presented_refresh_token(req.json(allowed=REFRESH_FIELDS)), req.client_ip)


@api.post("/api/v1/auth/logout", access=Access.USER, summary="End this login (its refresh and access tokens)",
          body=_schema((), refreshToken="string"))
def logout(req: Request) -> dict:
    from streamspace.auth.refresh import REFRESH_FIELDS, end_login

    body = req.json(allowed=REFRESH_FIELDS, optional_body=True)
    presented = body.get("refreshToken", body.get("token"))
    end_login(req.caller, presented if isinstance(presented, str) else None, req.client_ip)
    from streamspace.sso.service import end_session_url

    provider_logout = end_session_url(req.caller.user_id)
    return {"message": "logged out", **({"endSessionUrl": provider_logout} if provider_logout else {})}


@api.get("/api/v1/auth/me", access=Access.USER, summary="The current user")
def me(req: Request) -> dict:
    from streamspace.auth.users.service import get_user

    return get_user(req.caller.user_id)


@api.post("/api/v1/auth/password", access=Access.USER, summary="Change the current user's password",
          body=_schema(("oldPassword", "newPassword"), oldPassword="string", newPassword="string"))
def password(req: Request) -> dict:
    from streamspace.login.service import PASSWORD_FIELDS, change_password

    body = req.json(allowed=PASSWORD_FIELDS, required=("oldPassword", "newPassword"))
    return change_password(req.caller, body, req.client_ip)


@api.post("/api/v1/auth/login/totp", access=Access.PUBLIC,
          body=_schema(("mfaToken",), mfaToken="string", code="string", recoveryCode="string"),
          summary="Second login step: the password step's mfaToken with a TOTP code or a recovery code")
def login_totp(req: Request) -> dict:
    from streamspace.mfa.service import SECOND_STEP_FIELDS, complete_login

    return complete_login(req.json(allowed=SECOND_STEP_FIELDS, required=("mfaToken",)), req.client_ip)


@api.post("/api/v1/auth/login/totp/enroll", access=Access.PUBLIC, body=_schema(("mfaToken",), mfaToken="string"),
          summary="Enrol in TOTP during a login that requires it (then confirm with /auth/login/totp)")
def login_totp_enroll(req: Request) -> dict:
    from streamspace.mfa.service import CHALLENGE_FIELDS, enroll_at_login

    return enroll_at_login(req.json(allowed=CHALLENGE_FIELDS, required=("mfaToken",)))


@api.get("/api/v1/auth/totp", access=Access.USER, summary="The current user's two-factor login status")
def totp_status(req: Request) -> dict:
    from streamspace.mfa.service import status

    return status(req.caller)


@api.post("/api/v1/auth/totp/enroll", access=Access.USER,
          summary="Start TOTP enrolment: a new secret, its otpauth URI and QR code (SVG)")
def totp_enroll(req: Request) -> dict:
    from streamspace.mfa.service import enroll

    return enroll(req.caller)


@api.post("/api/v1/auth/totp/confirm", access=Access.USER, body=_schema(("code",), code="string"),
          summary="Confirm TOTP enrolment with a first code; answers ten single-use recovery codes")
def totp_confirm(req: Request) -> dict:
    from streamspace.mfa.service import CODE_FIELDS, confirm

    return confirm(req.caller, req.json(allowed=CODE_FIELDS, required=("code",))["code"], req.client_ip)


@api.post("/api/v1/auth/totp/disable", access=Access.USER, body=_schema(("code",), code="string"),
          summary="Turn one's own TOTP off with a current code (refused when the policy requires it)")
def totp_disable(req: Request) -> dict:
    from streamspace.mfa.service import CODE_FIELDS, disable

    return disable(req.caller, req.json(allowed=CODE_FIELDS, required=("code",))["code"], req.client_ip)


@api.get("/api/v1/auth/methods", access=Access.PUBLIC, summary="How one can log in here (password, single sign-on)")
def methods(_: Request) -> dict:
    from streamspace.sso.service import login_methods

    return login_methods()


def _navigating(req: Request) -> bool:
    """A person's browser loading the page (not a script): a refused sign-in is then a redirect to
    a page that says why, rather than a JSON body shown raw."""
    return req.raw.headers.get("Sec-Fetch-Mode") == "navigate" or "text/html" in req.raw.headers.get("Accept", "")


@api.get("/api/v1/auth/oidc/login", access=Access.PUBLIC, status=302, query=("redirect_uri", "returnTo"),
         summary="Start single sign-on: redirects to the OpenID Provider (authorization code flow with PKCE)")
def oidc_login(req: Request) -> Reply:
    from streamspace.sso.service import start_login

    url, cookie = start_login(req.query("redirect_uri"), req.query("returnTo"), req.client_ip,
                              browser_navigation=_navigating(req))
    return Reply(None, status=302, headers={"Location": url, **({"Set-Cookie": cookie} if cookie else {})})


@api.get("/api/v1/auth/oidc/callback", access=Access.PUBLIC, status=302,
         query=("code", "state", "iss", "error", "error_description"),
         summary="The OpenID Provider's redirect back; redirects to the return path with ssoCode=<one-time code>"
                 " (a browser whose sign-in is refused: with ssoError=<code>)")
def oidc_callback(req: Request) -> Reply:
    from streamspace.sso.service import BROWSER_COOKIE, callback

    params = {name: req.raw.args.get(name) for name in ("code", "state", "iss", "error", "error_description")}
    location = callback(params, req.raw.cookies.get(BROWSER_COOKIE), req.client_ip,
                        browser_navigation=_navigating(req))
    return Reply(None, status=302, headers={"Location": location})


@api.post("/api/v1/auth/oidc/exchange", access=Access.PUBLIC, body=_schema(("code",), code="string"),
          summary="Exchange the callback's one-time ssoCode for a login (access and refresh tokens)")
def oidc_exchange(req: Request) -> dict:
    from streamspace.sso.service import BROWSER_COOKIE, exchange

    code = req.json(allowed={"code"}, required=("code",)).get("code")
    return exchange(code, req.raw.cookies.get(BROWSER_COOKIE), req.client_ip)


@api.get("/api/v1/auth/oidc/mappings", access=Access.ADMIN, summary="The groups-claim -> group/role mapping table")
def oidc_mappings(_: Request) -> dict:
    from streamspace.sso.service import list_mappings

    return list_mappings()


@api.post("/api/v1/auth/oidc/mappings", access=Access.ADMIN, status=201,
          body=_schema(("claimValue",), claimValue="string", groupId="string", role="string"),
          summary="Map a groups-claim value to a group and/or the operator or admin role")
def oidc_mapping_create(req: Request) -> Reply:
    from streamspace.sso.service import MAPPING_FIELDS, create_mapping

    return Reply(create_mapping(req.caller, req.json(allowed=MAPPING_FIELDS, required=("claimValue",)),
                                req.client_ip), status=201)


@api.delete("/api/v1/auth/oidc/mappings/{id}", access=Access.ADMIN, summary="Delete a claim mapping")
def oidc_mapping_delete(req: Request) -> dict:
    from streamspace.sso.service import delete_mapping

    return delete_mapping(req.caller, req.param("id"), req.client_ip)


# SAML is not offered: most SAML providers also speak OpenID Connect (docs/sso.md).
api.not_built("GET", "/api/v1/auth/saml/{rest}", access=Access.PUBLIC, message=SAML_MESSAGE)
api.not_built("POST", "/api/v1/auth/saml/{rest}", access=Access.PUBLIC, message=SAML_MESSAGE)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
