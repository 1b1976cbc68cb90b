"""Every way to present a bad access token answers 401 (with WWW-Authenticate: Bearer); a good
token with too small a role answers 403."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
import requests

from .conftest import bearer, make_user, token_for

ME = "/api/v1/auth/me"


@pytest.fixture(scope="module")
def victim(url: str) -> dict:
    from streamspace.auth.families import start_family
    from streamspace.db import transaction

    user_id = make_user("jwt-victim")
    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)
    return {"id": user_id, "username": "jwt-victim", "sid": family_id}


def _claims(victim: dict, **overrides) -> dict:
    from streamspace.config import environment

    now = int(time.time())
    claims = {"sub": victim["id"], "username": victim["username"], "role": "admin", "groups": [],
              "iss": environment().jwt_issuer, "aud": environment().jwt_audience, "iat": now, "exp": now + 600,
              "jti": uuid.uuid4().hex, "sid": victim["sid"]}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _secret() -> tuple[str, str]:
    from streamspace.config import environment

    cfg = environment()
    return cfg.jwt_signing_kid, cfg.jwt_keys[cfg.jwt_signing_kid]


def _sign(claims: dict, key: str | None = None, kid: str | None = None, alg: str = "HS256") -> str:
    default_kid, secret = _secret()
    return jwt.encode(claims, key or secret, algorithm=alg, headers={"kid": kid or default_kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _refused(url: str, headers: dict, error: str | None = None) -> None:
    resp = requests.get(f"{url}{ME}", headers=headers, timeout=10)
    assert resp.status_code == 401, resp.text
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    if error:
        assert resp.json()["error"] == error


def test_a_valid_token_works(url: str, victim: dict) -> None:
    assert requests.get(f"{url}{ME}", headers=bearer(_sign(_claims(victim))), timeout=10).status_code == 200


def test_missing_or_malformed_authorization_header(url: str, victim: dict) -> None:
    _refused(url, {}, "missing token")
    _refused(url, {"Authorization": "Basic dXNlcjpwYXNz"}, "invalid token")
    _refused(url, {"Authorization": "Bearer"}, "invalid token")
    _refused(url, {"Authorization": "Bearer not.a.jwt"}, "invalid token")
    _refused(url, {"Authorization": "Bearer " + "a" * 5000}, "invalid token")


def test_expired_token(url: str, victim: dict) -> None:
    now = int(time.time())
    _refused(url, bearer(_sign(_claims(victim, iat=now - 7200, exp=now - 3600))), "token expired")


def test_wrong_audience_and_wrong_issuer(url: str, victim: dict) -> None:
    _refused(url, bearer(_sign(_claims(victim, aud="some-other-api"))), "invalid token")
    _refused(url, bearer(_sign(_claims(victim, iss="https://evil.example.com"))), "invalid token")


def test_missing_required_claims(url: str, victim: dict) -> None:
    for claim in ("exp", "iat", "iss", "aud", "sub"):
        claims = _claims(victim)
        del claims[claim]
        _refused(url, bearer(_sign(claims)))


def test_alg_none(url: str, victim: dict) -> None:
    kid, _ = _secret()
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(_claims(victim)).encode())
    _refused(url, bearer(f"{header}.{payload}."), "invalid token")
    _refused(url, bearer(f"{header}.{payload}"), "invalid token")


def test_hs_rs_confusion(url: str, victim: dict) -> None:
    """A token signed RS256 with the attacker's private key, and a token signed HS256 with the
    attacker's *public* key as the HMAC secret (the classic confusion), are both refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_private = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    pem_public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    kid, _ = _secret()
    rs = jwt.encode(_claims(victim), pem_private, algorithm="RS256", headers={"kid": kid})
    _refused(url, bearer(rs), "invalid token")
    # PyJWT refuses to HMAC-sign with a PEM key, so build the HS256-with-public-key token by hand.
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(_claims(victim)).encode())
    signature = _b64(hmac.new(pem_public, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    _refused(url, bearer(f"{header}.{payload}.{signature}"), "invalid token")
    # And an RS256 header on an HMAC-signed token.
    forged_header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    _, secret = _secret()
    signature = _b64(hmac.new(secret.encode(), f"{forged_header}.{payload}".encode(), hashlib.sha256).digest())
    _refused(url, bearer(f"{forged_header}.{payload}.{signature}"), "invalid token")


def test_tampered_payload_or_signature(url: str, victim: dict) -> None:
    token = _sign(_claims(victim, role="user"))
    header, payload, signature = token.split(".")
    elevated = _b64(json.dumps(_claims(victim, role="admin", username="root")).encode())
    _refused(url, bearer(f"{header}.{elevated}.{signature}"), "invalid token")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    _refused(url, bearer(f"{header}.{payload}.{flipped}"), "invalid token")
    _refused(url, bearer(_sign(_claims(victim), key="a-different-secret-of-sufficient-length-123")), "invalid token")


def test_unknown_kid_is_refused(url: str, victim: dict) -> None:
    _, secret = _secret()
    _refused(url, bearer(_sign(_claims(victim), key=secret, kid="k-unknown")), "invalid token")


def test_token_for_a_deleted_user_or_garbage_subject(url: str, victim: dict) -> None:
    _refused(url, bearer(_sign(_claims(victim, sub=str(uuid.uuid4())))), "invalid token")
    _refused(url, bearer(_sign(_claims(victim, sub="'; DROP TABLE users; --"))), "invalid token")
    _refused(url, bearer(_sign(_claims(victim, sid="not-a-uuid"))), "invalid token")


def test_token_naming_an_unknown_or_revoked_family(url: str, victim: dict) -> None:
    from streamspace.db import fetch_one

    _refused(url, bearer(_sign(_claims(victim, sid=str(uuid.uuid4())))), "token revoked")
    family = fetch_one("INSERT INTO token_families (user_id, revoked_at) VALUES (%s, now()) RETURNING id::text AS id",
                       (victim["id"],))
    assert family is not None
    _refused(url, bearer(_sign(_claims(victim, sid=family["id"]))), "token revoked")


def test_role_in_the_token_is_not_trusted_the_database_decides(url: str, victim: dict) -> None:
    """The victim is a plain user: a validly signed token that claims admin still gets 403."""
    resp = requests.get(f"{url}/api/v1/users", headers=bearer(_sign(_claims(victim, role="admin"))), timeout=10)
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"


def test_wrong_role_is_403(url: str, victim: dict) -> None:
    token = token_for(victim["id"], victim["username"])
    for method, path in (("GET", "/api/v1/users"), ("POST", "/api/v1/groups"), ("GET", "/api/v1/admin/quotas")):
        resp = requests.request(method, f"{url}{path}", headers=bearer(token), json={}, timeout=10)
        assert resp.status_code == 403, (method, path, resp.text)


def test_previous_key_still_verifies_after_rotation(url: str, victim: dict) -> None:
    """JWT_PREVIOUS_SECRETS: a token signed with the old key (its kid) verifies; a rotated-out key
    (not listed any more) does not."""
    from streamspace.auth.tokens import verify_access_token
    from streamspace.config import load_environment
    from streamspace.http.errors import Unauthorized

    old = "old-secret-" + "o" * 40
    new = "new-secret-" + "n" * 40
    base = {"STREAMSPACE_DATA_DIR": "/tmp/streamspace-identity-rotation"}
    before = load_environment({**base, "JWT_SECRET": old, "JWT_KEY_ID": "k1"})
    after = load_environment({**base, "JWT_SECRET": new, "JWT_KEY_ID": "k2", "JWT_PREVIOUS_SECRETS": f"k1:{old}"})
    later = load_environment({**base, "JWT_SECRET": new, "JWT_KEY_ID": "k2"})
    from streamspace.auth.tokens import issue_access_token

    old_token, _ = issue_access_token(user_id=victim["id"], username="v", role="user", groups=[],
                                      family_id=victim["sid"],
                                      cfg=before)
    new_token, _ = issue_access_token(user_id=victim["id"], username="v", role="user", groups=[],
                                      family_id=victim["sid"],
                                      cfg=after)
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    assert verify_access_token(old_token, cfg=after).user_id == victim["id"]
    assert verify_access_token(new_token, cfg=after).user_id == victim["id"]
    with pytest.raises(Unauthorized):
        verify_access_token(old_token, cfg=later)
    # A token that names kid k2 but was signed with k1's secret is refused too.
    forged = jwt.encode(_claims(victim), old, algorithm="HS256", headers={"kid": "k2"})
    with pytest.raises(Unauthorized):
        verify_access_token(forged, cfg=after)
