"""Talking to the OpenID Provider: discovery, the JWKS, the token endpoint, and ID token checks.

No SQL here. The discovery document and the JWKS are cached per process. The JWKS is fetched
again once when an ID token names a key id we do not hold (the provider rotated its keys); an ID
token only ever reaches us from the token endpoint over the back channel, so an attacker cannot
use unknown key ids to make us hammer the provider.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from streamspace.config import OidcSettings
from streamspace.domain.errors import Invalid, Unavailable, UpstreamRefused

TIMEOUT_SECONDS = 10
DISCOVERY_TTL_SECONDS = 3600
CLOCK_SKEW_SECONDS = 60
# Asymmetric signatures only: `none` is never accepted, and HS* would make the client secret a
# signing key that every holder of the secret could forge ID tokens with.
ACCEPTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class ProviderRefused(Invalid):
    """The provider's answer or ID token is not acceptable, so the login callback is refused (400):
    `reason` is a short code for the audit log, `message` says what was wrong."""

    default_error = "sso refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def unavailable(cfg: OidcSettings, detail: str) -> Unavailable:
    return Unavailable(f"the identity provider {cfg.provider_name} ({cfg.issuer}) is unavailable: {detail}",
                       error="identity provider unavailable")


def _http_json(cfg: OidcSettings, url: str, *, form: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON body). A provider that does not answer, or answers 5xx or not JSON,
    is unavailable (503 naming it)."""
    if not url.startswith(("https://", "http://")):
        raise unavailable(cfg, f"it published a URL that is not http(s): {url[:100]!r}")
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data,  # noqa: S310 - http(s) only, checked above
                                     headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310 - configured URL
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        raise unavailable(cfg, f"{url} did not answer ({exc.__class__.__name__})") from None
    if status >= 500:
        raise unavailable(cfg, f"{url} answered {status}")
    try:
        return status, json.loads(body)
    except ValueError:
        raise unavailable(cfg, f"{url} answered {status} without JSON") from None


_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, list[Any]] = {}  # jwks_uri -> PyJWK keys


def discovery(cfg: OidcSettings) -> dict[str, Any]:
    cached = _discovery.get(cfg.issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
        return cached[1]
    status, doc = _http_json(cfg, cfg.issuer + "/.well-known/openid-configuration")
    if status != 200 or not isinstance(doc, dict):
        raise unavailable(cfg, f"discovery answered {status}")
    if doc.get("issuer") != cfg.issuer:  # OpenID Connect Discovery 1.0, section 4.3
        raise unavailable(cfg, f"its discovery document names the issuer {doc.get('issuer')!r}, not OIDC_ISSUER")
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(endpoint), str):
            raise unavailable(cfg, f"its discovery document has no {endpoint}")
    _discovery[cfg.issuer] = (time.monotonic(), doc)
    return doc


def forget_cached_metadata() -> None:
    """Drop the cached discovery documents and key sets (tests start providers on new ports)."""
    _discovery.clear()
    _jwks.clear()


def _fetch_keys(cfg: OidcSettings, jwks_uri: str) -> list[Any]:
    import jwt

    status, body = _http_json(cfg, jwks_uri)
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise unavailable(cfg, f"its JWKS answered {status}")
    keys = []
    for data in body["keys"]:
        if isinstance(data, dict) and data.get("use", "sig") == "sig":
            try:
                keys.append(jwt.PyJWK(data))
            except jwt.PyJWTError:
                continue  # a key type or curve we do not use (e.g. an encryption key)
    _jwks[jwks_uri] = keys
    return keys


def signing_key(cfg: OidcSettings, kid: str | None, alg: str) -> Any:
    """The provider's public key for `kid`, fetching the JWKS again once when it is unknown."""
    jwks_uri = discovery(cfg)["jwks_uri"]

    def find(keys: list[Any]) -> Any:
        fitting = [k for k in keys if (kid is None or k.key_id == kid) and k.algorithm_name in (alg, None)]
        return fitting[0] if len(fitting) == 1 or (fitting and kid is not None) else None

    key = find(_jwks[jwks_uri]) if jwks_uri in _jwks else None
    if key is None:
        key = find(_fetch_keys(cfg, jwks_uri))
    if key is None:
        raise ProviderRefused("unknown key", f"the ID token is signed with a key ({kid}) the provider does not publish")
    return key.key


def authorization_url(cfg: OidcSettings, *, state: str, nonce: str, code_challenge: str, redirect_uri: str) -> str:
    params = {"response_type": "code", "client_id": cfg.client_id, "redirect_uri": redirect_uri,
              "scope": " ".join(cfg.scopes), "state": state, "nonce": nonce,
              "code_challenge": code_challenge, "code_challenge_method": "S256"}
    endpoint = discovery(cfg)["authorization_endpoint"]
    return endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(params)


def _client_auth(cfg: OidcSettings, token_endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
    """(extra form fields, extra headers) that authenticate us at the token endpoint."""
    if cfg.token_auth_method == "client_secret_basic":
        if cfg.client_secret is None:
            raise RuntimeError("invariant broken: cfg.client_secret is None")
        pair = f"{urllib.parse.quote(cfg.client_id, safe='')}:{urllib.parse.quote(cfg.client_secret, safe='')}"
        return {}, {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if cfg.token_auth_method == "client_secret_post":
        if cfg.client_secret is None:
            raise RuntimeError("invariant broken: cfg.client_secret is None")
        return {"client_id": cfg.client_id, "client_secret": cfg.client_secret}, {}
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if cfg.private_key_pem is None:
        raise RuntimeError("invariant broken: cfg.private_key_pem is None")
    key = load_pem_private_key(cfg.private_key_pem.encode(), password=None)
    alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    now = int(time.time())
    # aud is the token endpoint: what Entra ID requires and Keycloak, Okta and oidc-provider accept.
    assertion = jwt.encode({"iss": cfg.client_id, "sub": cfg.client_id, "aud": token_endpoint, "iat": now,
                            "exp": now + 60, "jti": uuid.uuid4().hex}, key, algorithm=alg,  # type: ignore[arg-type]
                           headers={"kid": cfg.private_key_id} if cfg.private_key_id else None)
    return {"client_id": cfg.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}, {}


def redeem_code(cfg: OidcSettings, *, code: str, code_verifier: str, redirect_uri: str) -> tuple[str, str | None]:
    """Exchange an authorization code at the token endpoint: (the unverified ID token, the access
    token, used only to read the userinfo endpoint)."""
    token_endpoint = discovery(cfg)["token_endpoint"]
    fields, headers = _client_auth(cfg, token_endpoint)
    status, body = _http_json(cfg, token_endpoint, form={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": code_verifier, **fields}, headers=headers)
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        if error == "invalid_client":
            # Our own credentials are wrong: an operator problem, not the user's.
            raise UpstreamRefused(f"the identity provider {cfg.provider_name} refused this service's client"
                                  f" credentials ({description or error}); check OIDC_CLIENT_ID and its secret"
                                  " or key", error="identity provider refused client")
        raise ProviderRefused("code refused", f"the identity provider refused the authorization code"
                              f" ({error or status}: {description or 'no description'}); it may have been used"
                              " already or have expired")
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise ProviderRefused("no id token", "the identity provider answered without an ID token")
    access_token = body.get("access_token")
    return id_token, access_token if isinstance(access_token, str) else None


def with_userinfo(cfg: OidcSettings, claims: dict[str, Any], access_token: str | None) -> dict[str, Any]:
    """The verified ID token's claims, completed from the userinfo endpoint when the username or
    groups claim is not in the ID token (Okta, Authentik and others keep them there by default).
    Userinfo only adds missing claims, and only when it is about the same subject."""
    if (cfg.username_claim in claims and cfg.groups_claim in claims) or not access_token:
        return claims
    endpoint = discovery(cfg).get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        return claims
    status, info = _http_json(cfg, endpoint, headers={"Authorization": f"Bearer {access_token}"})
    if status != 200 or not isinstance(info, dict):
        return claims  # e.g. a signed (JWT) userinfo answer: the ID token's claims are what we have
    if info.get("sub") != claims["sub"]:  # OpenID Connect Core 1.0, section 5.3.2
        raise ProviderRefused("userinfo subject mismatch", "the userinfo answer is about another subject")
    return {**info, **claims}


def verify_id_token(cfg: OidcSettings, id_token: str, *, nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature (by a key the provider publishes, with an
    asymmetric algorithm), issuer, audience, authorized party, expiry and nonce check out."""
    import jwt

    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise ProviderRefused("malformed id token", "the ID token is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGORITHMS:
        raise ProviderRefused("algorithm refused", f"the ID token is signed with {alg!r}, which is not accepted"
                              f" (accepted: {', '.join(ACCEPTED_ALGORITHMS)})")
    kid = header.get("kid")
    key = signing_key(cfg, kid if isinstance(kid, str) else None, str(alg))
    try:
        claims = jwt.decode(id_token, key, algorithms=[str(alg)], audience=cfg.client_id, issuer=cfg.issuer,
                            leeway=CLOCK_SKEW_SECONDS, options={"require": ["iss", "sub", "aud", "exp", "iat"]})
    except jwt.ExpiredSignatureError:
        raise ProviderRefused("expired id token", "the ID token has expired") from None
    except jwt.InvalidIssuerError:
        raise ProviderRefused("wrong issuer", f"the ID token was issued by another issuer, not {cfg.issuer}") from None
    except jwt.InvalidAudienceError:
        raise ProviderRefused("wrong audience", "the ID token was issued for another client (audience)") from None
    except jwt.InvalidSignatureError:
        raise ProviderRefused("bad signature", "the ID token's signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise ProviderRefused("invalid id token", f"the ID token is not valid: {exc}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (azp is not None or len(audiences) > 1) and azp != cfg.client_id:
        raise ProviderRefused("wrong authorized party", "the ID token's authorized party (azp) is another client")
    presented = claims.get("nonce")
    if not isinstance(presented, str):
        raise ProviderRefused("missing nonce", "the ID token carries no nonce")
    if not hmac.compare_digest(presented.encode(), nonce.encode()):
        raise ProviderRefused("wrong nonce", "the ID token's nonce is not the one of this login")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise ProviderRefused("invalid id token", "the ID token's subject is empty")
    return claims


def end_session_url(cfg: OidcSettings) -> str | None:
    """Where to send the browser to end the provider's session too (RP-Initiated Logout), when it
    offers it. None when it does not, or cannot be reached right now (our logout still happens)."""
    try:
        endpoint = discovery(cfg).get("end_session_endpoint")
    except Unavailable:
        return None
    if not isinstance(endpoint, str):
        return None
    params = {"client_id": cfg.client_id}
    if cfg.post_logout_redirect_uri:
        params["post_logout_redirect_uri"] = cfg.post_logout_redirect_uri
    return endpoint + ("&" if "?" in endpoint else "?") + urllib.parse.urlencode(params)
