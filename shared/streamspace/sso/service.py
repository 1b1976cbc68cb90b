"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, state and nonce.

1. `start_login` keeps the state (hashed), the nonce and the PKCE verifier server-side for ten
   minutes, binds the login to the browser with a cookie (login CSRF), and sends the browser to
   the provider.
2. `callback` takes that request once (a state works a single time), redeems the code at the
   token endpoint, verifies the ID token (sso.provider), provisions the user on first login
   (never merging into an existing account), re-syncs role and mapped groups from the groups
   claim, and hands the browser a one-time code (60 s) in the query of its return path.
3. `exchange` turns that code into a normal StreamSpace login (a token family: access + refresh
   tokens, revocable like any other).

Every refusal is answered with a 4xx (503 when the provider is down) and audited.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.families import start_family
from streamspace.auth.principal import Principal
from streamspace.auth.refresh import token_response
from streamspace.auth.users.service import EMAIL_RE, USERNAME_RE, label_is_taken, parse_uuid
from streamspace.auth.users.store import active_admins_other_than, lock_admins
from streamspace.config import OidcSettings, environment
from streamspace.db import connection, transaction
from streamspace.domain.errors import (
    Conflict,
    DomainError,
    ErrorKind,
    Forbidden,
    Invalid,
    NotFound,
    NotImplementedYet,
    ValidationError,
)
from streamspace.sso import provider, store

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal
    from streamspace.db import Connection

LOGIN_REQUEST_TTL_SECONDS = 600
BROWSER_COOKIE = "streamspace_oidc"
BROWSER_COOKIE_PATH = "/"  # the callback (API) and the page that redeems the code (portal) both read it
HANDOFF_TTL_SECONDS = 60
MAX_RETURN_TO = 512
MAPPING_FIELDS = frozenset({"claimValue", "groupId", "role"})
MAPPED_ROLES = ("operator", "admin")
_ROLE_RANK = {"user": 0, "operator": 1, "admin": 2}
# A browser whose sign-in is refused is sent back to the return path with `ssoError=<code>` (the
# audit row holds the details): the front end turns the code into words. Where the return path is
# not known (the state was unknown), it goes to the portal's login page.
BROWSER_REFUSAL_CODES = {
    "sso denied": "denied",
    "identity provider unavailable": "unavailable",
    "invalid state": "expired",
    "invalid code": "expired",
    "invalid username claim": "username",
    "account exists": "exists",
    "account disabled": "disabled",
    "sso not configured": "unconfigured",
}
FALLBACK_LANDING = "/login"
SAML_MESSAGE = ("SAML is not supported; configure your identity provider's OpenID Connect application instead"
                " (Keycloak, Entra ID, Okta, Google, Authentik and ADFS all speak OIDC): see docs/sso.md")


def oidc_settings() -> OidcSettings:
    cfg = environment().oidc
    if cfg is None:
        raise NotImplementedYet("single sign-on is not configured on this server (OIDC_ISSUER); log in with a"
                                " username and password", error="sso not configured")
    return cfg


def _refuse(error: DomainError, reason: str, client_ip: str, target: str = "", **details: Any) -> DomainError:
    """Audit a refused single sign-on and return the error to raise."""

    with transaction() as conn:
        audit.record(conn, None, "auth.oidc.refused", "user", target, client_ip,
                     {"reason": reason, "message": error.message, **details}, actor_name="anonymous")
    return error


def valid_return_to(value: str | None) -> str:
    """Where the portal wants the browser back: a path on our own origin, never another site."""
    if value is None:
        return "/"
    if not value.startswith("/") or value.startswith(("//", "/\\")) or len(value) > MAX_RETURN_TO \
            or "#" in value or any(ord(c) < 33 for c in value) or "ssocode" in value.lower():
        raise ValidationError("returnTo", "expected a path on this site starting with / (at most 512 characters)")
    return value


def browser_cookie(value: str, redirect_uri: str) -> str:
    """The Set-Cookie binding a login to the browser that starts it (empty value: clear it). Lax:
    the provider's redirect back is a top-level GET, which carries it."""
    secure = "; Secure" if redirect_uri.startswith("https://") else ""
    max_age = LOGIN_REQUEST_TTL_SECONDS if value else 0
    return (f"{BROWSER_COOKIE}={value}; Path={BROWSER_COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax"
            f"{secure}")


def refusal_code(error: DomainError) -> str:
    """The short code a browser is given for a refused sign-in (`ssoError=`)."""
    return BROWSER_REFUSAL_CODES.get(error.error, "refused")


def refusal_location(error: DomainError, return_to: str | None) -> str:
    """Where a browser goes when its sign-in is refused: its return path (or the login page) with
    `ssoError=<code>`. Only a path on this site."""
    try:
        back = valid_return_to(return_to) if return_to else FALLBACK_LANDING
    except ValidationError:
        back = FALLBACK_LANDING
    return f"{back}{'&' if '?' in back else '?'}ssoError={refusal_code(error)}"


def start_login(redirect_uri: str | None, return_to: str | None, client_ip: str, *,
                browser_navigation: bool = False) -> tuple[str, str | None]:
    """(the provider's authorization URL for a new login, the Set-Cookie that binds the login to
    this browser). For a browser's navigation a refusal is not raised: it answers
    (`refusal_location`, None), so the person sees words on a page instead of a JSON body."""
    try:
        return _start_login(redirect_uri, return_to, client_ip)
    except DomainError as exc:
        if not browser_navigation or exc.kind is ErrorKind.INTERNAL:
            raise
        return refusal_location(exc, return_to), None


def _start_login(redirect_uri: str | None, return_to: str | None, client_ip: str) -> tuple[str, str]:
    cfg = oidc_settings()
    chosen = redirect_uri or cfg.redirect_uris[0]
    if chosen not in cfg.redirect_uris:
        raise _refuse(Invalid("redirect_uri is not one of the allowed callback URLs (OIDC_REDIRECT_URIS)",
                              error="invalid redirect_uri"), "redirect uri not allowed", client_ip,
                      redirectUri=chosen[:300])
    back = valid_return_to(return_to)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    browser = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    try:
        url = provider.authorization_url(cfg, state=state, nonce=nonce, code_challenge=challenge,
                                         redirect_uri=chosen)
    except DomainError as exc:
        raise _refuse(exc, "provider unavailable", client_ip) from None
    with transaction() as conn:
        store.save_login_request(conn, state=state, browser=browser, nonce=nonce, code_verifier=verifier,
                                 redirect_uri=chosen, return_to=back, ttl_seconds=LOGIN_REQUEST_TTL_SECONDS)
    return url, browser_cookie(browser, chosen)


def callback(params: dict[str, str | None], browser: str | None, client_ip: str, *,
             browser_navigation: bool = False) -> str:
    """Finish a login from the provider's redirect (`browser`: the binding cookie's value); returns
    where to send the browser: its return path with `ssoCode=<one-time code>` added to its query
    (like an authorization code: single use, 60 s, so a server-rendered page can redeem it).
    For a browser's navigation a refusal is not raised but answered as where to go: the return
    path with `ssoError=<code>` (`refusal_location`)."""

    request: dict[str, Any] | None = None
    try:
        cfg = oidc_settings()
        state = params.get("state")
        if not state or len(state) > 256:
            raise _refuse(Invalid("the callback has no state", error="invalid state"), "missing state", client_ip)
        with transaction() as conn:
            request = store.take_login_request(conn, state)
        if request is None:
            raise _refuse(Invalid("unknown, expired or already used state; start the login again",
                                  error="invalid state"), "wrong state", client_ip)
        return _finish_login(cfg, request, params, browser, client_ip)
    except DomainError as exc:
        if not browser_navigation or exc.kind is ErrorKind.INTERNAL:
            raise
        return refusal_location(exc, request["return_to"] if request else None)


def _finish_login(cfg: OidcSettings, request: dict[str, Any], params: dict[str, str | None], browser: str | None,
                  client_ip: str) -> str:
    import hmac


    if not browser or not hmac.compare_digest(bytes(request["browser_hash"] or b""), store.digest(browser)):
        raise _refuse(Invalid("this login was started in another browser (or its cookie was blocked); start"
                              " the login again here", error="invalid state"), "browser mismatch", client_ip)
    if params.get("error"):
        reason = str(params.get("error_description") or params["error"])[:300]
        # access_denied: the person cancelled at the provider or was not allowed (RFC 6749 4.1.2.1)
        error_code = "sso denied" if params["error"] == "access_denied" else "sso refused"
        raise _refuse(Invalid(f"the identity provider ended the login: {reason}", error=error_code),
                      "provider error", client_ip, providerError=str(params["error"])[:100])
    if params.get("iss") is not None and params.get("iss") != cfg.issuer:  # RFC 9207: mix-up defence
        raise _refuse(Invalid("the callback comes from another issuer", error="sso refused"), "wrong issuer",
                      client_ip)
    code = params.get("code")
    if not code or len(code) > 2048:
        raise _refuse(Invalid("the callback has no authorization code", error="invalid code"), "missing code",
                      client_ip)
    try:
        id_token, access_token = provider.redeem_code(cfg, code=code, code_verifier=request["code_verifier"],
                                                      redirect_uri=request["redirect_uri"])
        claims = provider.with_userinfo(cfg, provider.verify_id_token(cfg, id_token, nonce=request["nonce"]),
                                        access_token)
    except provider.ProviderRefused as exc:
        raise _refuse(exc, exc.reason, client_ip) from None
    except DomainError as exc:
        unavailable = exc.kind is ErrorKind.UNAVAILABLE
        raise _refuse(exc, "provider unavailable" if unavailable else "provider refused client",
                      client_ip) from None
    user = _provision(cfg, claims, client_ip)
    handoff = secrets.token_urlsafe(32)
    with transaction() as conn:
        store.save_handoff(conn, handoff, user["id"], browser, HANDOFF_TTL_SECONDS)
    back = request["return_to"]
    return f"{back}{'&' if '?' in back else '?'}ssoCode={handoff}"


def _claim_values(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)][:1000]
    return []


def _provision(cfg: OidcSettings, claims: dict[str, Any], client_ip: str) -> dict[str, Any]:
    """The StreamSpace user of these verified claims, created on first login, with its role and
    mapped groups re-synced. Refused: an invalid username claim, a collision with an existing
    account, a disabled user."""
    import psycopg2.errors


    subject = str(claims["sub"])
    raw_username = claims.get(cfg.username_claim)
    username = raw_username.strip().lower() if isinstance(raw_username, str) else ""
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    if email is not None and (len(email) > 254 or not EMAIL_RE.fullmatch(email)):
        email = None
    name = claims.get("name")
    full_name = name[:200].replace("\n", " ") if isinstance(name, str) else ""
    refusal: tuple[DomainError, str] | None = None
    try:
        with transaction() as conn:
            # The admins lock first, like every user update takes it, so a login that may change
            # a role and an admin editing the same user cannot deadlock on the row lock below.
            lock_admins(conn)
            user = store.user_of_identity(conn, cfg.issuer, subject)
            created = False
            if user is None:
                if not USERNAME_RE.fullmatch(username):
                    refusal = (Forbidden(f"the provider's {cfg.username_claim} claim ({str(raw_username)[:64]!r}) is"
                                         " not a valid StreamSpace username (1-63 lowercase letters, digits, '.', '_'"
                                         " or '-'); ask an admin to set OIDC_USERNAME_CLAIM",
                                         error="invalid username claim"), "invalid username claim")
                elif store.account_holding(conn, username, email) is not None or label_is_taken(conn, username):
                    refusal = (Conflict(f"an account with the username {username!r} or this email already exists;"
                                        " single sign-on never takes over an existing account (ask an admin)",
                                        error="account exists"), "account collision")
                else:
                    user = store.create_oidc_user(conn, username=username, email=email,
                                                  full_name=full_name,
                                                  issuer=cfg.issuer, subject=subject)
                    created = True
                    audit.record(conn, None, "user.create", "user", username, client_ip,
                                 {"id": user["id"], "provider": "oidc", "subject": subject})
            if refusal is None and user is not None and not user["active"]:
                refusal = (Forbidden("this account is disabled", error="account disabled"), "account disabled")
            if refusal is None and user is not None:
                _sync(conn, cfg, user, claims, client_ip, created)
    except psycopg2.errors.UniqueViolation:  # a concurrent first login of the same name or email
        refusal = (Conflict("an account with this username or email already exists", error="account exists"),
                   "account collision")
    if refusal is not None:
        raise _refuse(refusal[0], refusal[1], client_ip, username or subject, subject=subject)
    if user is None:
        raise RuntimeError("invariant broken: user is None")
    return user


def _sync(conn: Connection, cfg: OidcSettings, user: dict[str, Any], claims: dict[str, Any],
          client_ip: str, created: bool) -> None:
    """Role and mapped group memberships from the groups claim, at every login."""

    roles, wanted, managed = store.mapped(conn, _claim_values(claims, cfg.groups_claim))
    role = max(roles | {"user"}, key=_ROLE_RANK.__getitem__)
    kept = None
    if user["role"] == "admin" and role != "admin":  # the caller holds the admins lock
        if active_admins_other_than(conn, user["id"]) == 0:
            role, kept = "admin", "last active admin"  # never leave the platform without an admin
    added, removed = store.sync_memberships(conn, user["id"], wanted, managed)
    store.update_oidc_user(conn, user["id"], role)
    if created or role != user["role"] or added or removed or kept:
        audit.record(conn, None, "auth.oidc.sync", "user", user["username"], client_ip,
                     {"role": {"from": user["role"], "to": role}, "groupsAdded": added, "groupsRemoved": removed,
                      **({"roleKept": kept} if kept else {})})
    user["role"] = role


def exchange(code: object, browser: str | None, client_ip: str) -> dict[str, Any]:
    """A callback's one-time code, presented with the binding cookie of the browser that did the
    login (`browser`) -> `{token, refreshToken, expiresAt, user}` (a new login family)."""

    oidc_settings()
    if not isinstance(code, str) or not code or len(code) > 256:
        raise ValidationError("code", "expected the ssoCode the callback handed over")
    refusal: DomainError | None = None
    with transaction() as conn:
        user_id = store.take_handoff(conn, code, browser)
        row = conn.execute("SELECT username, role, active FROM users WHERE id = %s",
                           (user_id,)).fetchone() if user_id else None
        if row is None:
            refusal = Invalid("unknown, expired or already used code, or one from another browser; sign in again",
                              error="invalid code")
        elif not row["active"]:
            refusal = Forbidden("this account is disabled", error="account disabled")
        else:
            if user_id is None:
                raise RuntimeError("invariant broken: user_id is None")
            family_id, refresh_token = start_family(conn, user_id)
            who = Principal(user_id=user_id, username=row["username"], role=row["role"], groups=(),
                            family_id=family_id)
            audit.record(conn, who, "auth.login", "user", row["username"], client_ip,
                         {"family": family_id, "method": "oidc"})
            return token_response(conn, user_id, family_id, refresh_token)
    if refusal is None:
        raise RuntimeError("invariant broken: refusal is None")
    reason = "invalid handoff code" if refusal.kind is ErrorKind.INVALID else "account disabled"
    raise _refuse(refusal, reason, client_ip, row["username"] if row else "")


def cleared_browser_cookie() -> str:
    """The Set-Cookie that removes the binding cookie once its login is redeemed (or refused)."""
    cfg = environment().oidc
    return browser_cookie("", cfg.redirect_uris[0] if cfg else "")


def end_session_url(user_id: str) -> str | None:
    """After our logout of an OIDC user: the provider's end-session URL, when it offers one."""

    cfg = environment().oidc
    if cfg is None:
        return None
    with connection() as conn:
        if store.user_provider(conn, user_id) != "oidc":
            return None
    return provider.end_session_url(cfg)


def password_login_refusal(username: str, role: str | None = None) -> str | None:
    """Why a password login is refused when local password login is disabled for all but the
    break-glass admin (checked before the password, by name; and after it, by role), or None."""
    cfg = environment().oidc
    if cfg is None or not cfg.disable_password_login:
        return None
    if username == cfg.break_glass_admin and role in (None, "admin"):
        return None
    return f"password login is disabled; sign in with {cfg.provider_name}"


def login_methods() -> dict[str, Any]:
    """What the portal's login page offers."""
    cfg = environment().oidc
    if cfg is None:
        return {"password": True, "oidc": None}
    return {"password": not cfg.disable_password_login,
            "oidc": {"name": cfg.provider_name, "loginUrl": "/api/v1/auth/oidc/login"}}


# -- the claim mapping table (admins) ------------------------------------------------------------

def mapping_to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "claimValue": row["claim_value"], "groupId": row["group_id"],
            "groupName": row["group_name"], "role": row["role"], "createdAt": row["created_at"]}


def list_mappings() -> dict[str, Any]:
    with connection() as conn:
        rows = store.list_mappings(conn)
    return {"mappings": [mapping_to_api(r) for r in rows], "total": len(rows)}


def create_mapping(actor: Principal, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    import psycopg2.errors


    value = body.get("claimValue")
    if not isinstance(value, str) or not value or len(value) > 256 or any(ord(c) < 32 for c in value):
        raise ValidationError("claimValue", "expected the claim value to match, at most 256 characters")
    group_id = body.get("groupId")
    role = body.get("role")
    if group_id is not None:
        try:
            group_id = parse_uuid(group_id, "group") if isinstance(group_id, str) else None
        except NotFound:
            group_id = None
        if group_id is None:
            raise ValidationError("groupId", "expected the id of an existing group")
    if role is not None and role not in MAPPED_ROLES:
        raise ValidationError("role", f"expected one of {', '.join(MAPPED_ROLES)} (everyone else is a user)")
    if group_id is None and role is None:
        raise ValidationError("groupId", "give a groupId, a role, or both")
    try:
        with transaction() as conn:
            if group_id is not None and not store.group_exists(conn, group_id):
                raise ValidationError("groupId", "expected the id of an existing group")
            mapping = store.insert_mapping(conn, value, group_id, role)
            audit.record(conn, actor, "auth.oidc.mapping.create", "oidc-mapping", mapping["id"], client_ip,
                         {"claimValue": value, "groupId": group_id, "role": role})
    except psycopg2.errors.UniqueViolation:
        raise Conflict("this mapping already exists", error="mapping exists") from None
    return mapping_to_api(mapping)


def delete_mapping(actor: Principal, mapping_id: str, client_ip: str) -> dict[str, Any]:
    mapping_id = parse_uuid(mapping_id, "mapping")
    with transaction() as conn:
        before = store.load_mapping(conn, mapping_id)
        if before is None or not store.delete_mapping(conn, mapping_id):
            raise NotFound("no such mapping", error="not found")
        audit.record(conn, actor, "auth.oidc.mapping.delete", "oidc-mapping", mapping_id, client_ip,
                     {"claimValue": before["claim_value"], "groupId": before["group_id"], "role": before["role"]})
    return {"message": "mapping deleted; it applies from each user's next login"}

