"""The access token's HS256 JWS, built and checked with the standard library (auth/tokens.py), agrees
with PyJWT, the reference implementation, both ways: what we issue PyJWT accepts with the same
checks, what PyJWT signs for us we accept, and every forged or invalid token below is refused by
both. (test_jwt_attacks.py sends such tokens through the HTTP layer.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from streamspace.auth.tokens import issue_access_token, verify_access_token
from streamspace.config import environment
from streamspace.domain.errors import Unauthenticated


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    cfg = environment()
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "username": "ada", "role": "user", "groups": ["g"], "iss": cfg.jwt_issuer,
              "aud": cfg.jwt_audience, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex,
              "sid": str(uuid.uuid4())}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _secret() -> tuple[str, str]:
    cfg = environment()
    return cfg.jwt_signing_kid, cfg.jwt_keys[cfg.jwt_signing_kid]


def _pyjwt(claims: dict[str, Any], *, alg: str = "HS256", key: str | None = None, **header: Any) -> str:
    kid, secret = _secret()
    return jwt.encode(claims, key or secret, algorithm=alg, headers={"kid": kid, **header})


def _by_hand(header: dict[str, Any], payload: bytes, key: str | None = None) -> str:
    """A token PyJWT would not sign (odd headers or payloads), signed correctly with our key."""
    _, secret = _secret()
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    signature = hmac.new((key or secret).encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _pyjwt_accepts(token: str) -> bool:
    cfg = environment()
    try:
        jwt.decode(token, cfg.jwt_keys[cfg.jwt_signing_kid], algorithms=["HS256"], audience=cfg.jwt_audience,
                   issuer=cfg.jwt_issuer, options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]})
    except jwt.PyJWTError:
        return False
    return True


def test_what_we_issue_pyjwt_verifies_with_the_same_checks() -> None:
    kid, _ = _secret()
    token, expires = issue_access_token(user_id="u-1", username="ada", role="admin", groups=["a", "b"],
                                        family_id="f-1")
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": kid, "typ": "JWT"}
    assert _pyjwt_accepts(token)
    claims = verify_access_token(token)
    assert (claims.user_id, claims.username, claims.role, claims.groups, claims.family_id, claims.expires_at) == (
        "u-1", "ada", "admin", ("a", "b"), "f-1", expires)


def test_what_pyjwt_signs_with_our_key_we_accept() -> None:
    claims = _claims(aud=[environment().jwt_audience, "another-api"])  # aud may be a list that includes ours
    token = _pyjwt(claims)
    assert _pyjwt_accepts(token)
    verified = verify_access_token(token)
    assert (verified.user_id, verified.family_id, verified.token_id) == (claims["sub"], claims["sid"], claims["jti"])


def _missing(name: str) -> Callable[[], str]:
    return lambda: _pyjwt({k: v for k, v in _claims().items() if k != name})


now = int(time.time())
REFUSED: dict[str, Callable[[], str]] = {
    "alg none": lambda: f"{_b64(json.dumps({'alg': 'none', 'kid': _secret()[0]}).encode())}."
                        f"{_b64(json.dumps(_claims()).encode())}.",
    "HS384 with our key": lambda: _pyjwt(_claims(), alg="HS384"),
    "another key": lambda: _pyjwt(_claims(), key="a-different-secret-of-sufficient-length-123"),
    "tampered payload": lambda: (lambda t: t.split(".")[0] + "." + _b64(json.dumps(_claims(role="admin")).encode())
                                 + "." + t.split(".")[2])(_pyjwt(_claims())),
    "signature cut short": lambda: _pyjwt(_claims())[:-4],
    "two parts": lambda: ".".join(_pyjwt(_claims()).split(".")[:2]),
    "four parts": lambda: _pyjwt(_claims()) + ".x",
    "expired": lambda: _pyjwt(_claims(iat=now - 7200, exp=now - 3600)),
    "issued in the future": lambda: _pyjwt(_claims(iat=now + 3600, exp=now + 7200)),
    "not valid before a later time": lambda: _pyjwt(_claims(nbf=now + 3600)),
    "another audience": lambda: _pyjwt(_claims(aud="some-other-api")),
    "another issuer": lambda: _pyjwt(_claims(iss="https://evil.example.com")),
    "exp not a number": lambda: _pyjwt(_claims(exp="soon")),
    "payload not an object": lambda: _by_hand({"alg": "HS256", "kid": _secret()[0]}, b"[1, 2]"),
    "payload not JSON": lambda: _by_hand({"alg": "HS256", "kid": _secret()[0]}, b"{not json"),
    "critical extension": lambda: _by_hand({"alg": "HS256", "kid": _secret()[0], "crit": ["exp"], "exp": 1},
                                           json.dumps(_claims()).encode()),
    **{f"no {name}": _missing(name) for name in ("exp", "iat", "iss", "aud", "sub", "sid")},
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_forged_or_invalid_token_is_refused_by_both(case: str) -> None:
    token = REFUSED[case]()
    assert not _pyjwt_accepts(token)
    with pytest.raises(Unauthenticated) as refused:
        verify_access_token(token)
    assert refused.value.error == ("token expired" if case == "expired" else "invalid token")


def test_padding_or_other_characters_outside_base64url_are_refused() -> None:
    """Stricter than PyJWT, which strips padding: RFC 7515 section 2 encodes without it."""
    token = _pyjwt(_claims())
    header, payload, signature = token.split(".")
    for forged in (token + "=", f"{header}.{payload}=.{signature}", f"{header}.{payload}.{signature[:-1]}+"):
        with pytest.raises(Unauthenticated):
            verify_access_token(forged)


def test_issuing_and_checking_a_token_imports_neither_pyjwt_nor_cryptography() -> None:
    """The cold start this format exists for: every authenticated function's first request checks a
    token, and `import jwt` would import cryptography's X.509, RSA, EC and cipher modules."""
    script = ("import sys; import streamspace.http; from streamspace.auth.tokens import issue_access_token,"
              " verify_access_token; token, _ = issue_access_token(user_id='u', username='n', role='user',"
              " groups=[], family_id='f'); verify_access_token(token);"
              " print(sorted(m for m in ('jwt', 'cryptography') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stderr
