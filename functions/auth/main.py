"""auth: password login, refresh-token rotation, logout, the current user, password change."""

import functions_framework

from streamspace.auth.passwords import hash_profile
from streamspace.http import Access, Api, Request

api = Api("auth")
hash_profile()  # a bad PASSWORD_HASH_PROFILE ends the process at start, like any configuration error



def _schema(required: tuple[str, ...], **props: str) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {name: {"type": kind} for name, kind in props.items()}}


SSO_LATER = "single sign-on is not available in this version; log in with a username and password"


@api.post("/api/v1/auth/login", access=Access.PUBLIC, summary="Log in with a username and password",
          body=_schema(("username", "password"), username="string", password="string"))
def login(req: Request) -> dict:
    from streamspace.auth.login import LOGIN_FIELDS
    from streamspace.auth.login import login as do_login

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
    from streamspace import audit
    from streamspace.auth.refresh import REFRESH_FIELDS
    from streamspace.auth.refresh import logout as do_logout
    from streamspace.db import transaction

    body = req.json(allowed=REFRESH_FIELDS, optional_body=True)
    presented = body.get("refreshToken", body.get("token"))
    with transaction() as conn:
        revoked = do_logout(conn, req.caller.user_id, req.caller.family_id,
                            presented if isinstance(presented, str) else None)
        audit.record(conn, req.caller, "auth.logout", "user", req.caller.username, req.client_ip,
                     {"revokedLogins": revoked})
    return {"message": "logged out"}


@api.get("/api/v1/auth/me", access=Access.USER, summary="The current user")
def me(req: Request) -> dict:
    from streamspace.auth.users import get_user

    return get_user(req.caller.user_id)


@api.post("/api/v1/auth/password", access=Access.USER, summary="Change the current user's password",
          body=_schema(("oldPassword", "newPassword"), oldPassword="string", newPassword="string"))
def password(req: Request) -> dict:
    from streamspace.auth.login import PASSWORD_FIELDS, change_password

    body = req.json(allowed=PASSWORD_FIELDS, required=("oldPassword", "newPassword"))
    return change_password(req.caller, body, req.client_ip)


api.not_built("GET", "/api/v1/auth/oidc/login", access=Access.PUBLIC, message=SSO_LATER)
api.not_built("GET", "/api/v1/auth/oidc/callback", access=Access.PUBLIC, message=SSO_LATER)
api.not_built("GET", "/api/v1/auth/saml/{rest}", access=Access.PUBLIC, message=SSO_LATER)
api.not_built("POST", "/api/v1/auth/saml/{rest}", access=Access.PUBLIC, message=SSO_LATER)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
