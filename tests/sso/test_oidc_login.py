"""OpenID Connect login against a real OpenID Provider: the flow, provisioning, the mapping table
with re-sync at every login, key rotation, logout at the provider, and every refusal (audited)."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import jwt
import requests

from tests.sso.conftest import (
    authorization_url,
    callback,
    environment,
    exchange,
    make_user,
    query_of,
    refusals,
    sso_code,
    sso_login,
    start,
)


def me(url: str, token: str) -> requests.Response:
    return requests.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_first_login_provisions_the_user_and_gives_a_normal_revocable_login(url, op):
    op.set_account("ada", preferred_username="Ada", email="ada@example.com", name="Ada Lovelace")
    login = sso_login(url, op, "ada")
    assert login["user"]["username"] == "ada" and login["user"]["provider"] == "oidc"
    assert login["user"]["fullName"] == "Ada Lovelace" and login["user"]["role"] == "user"
    claims = jwt.decode(login["token"], options={"verify_signature": False})
    assert claims["sid"], "an SSO login is a login family like any other"
    assert me(url, login["token"]).json()["username"] == "ada"
    # The same provider account logs in to the same user again (by issuer and subject).
    again = sso_login(url, op, "ada")
    assert again["user"]["id"] == login["user"]["id"]
    refreshed = requests.post(f"{url}/api/v1/auth/refresh", json={"refreshToken": again["refreshToken"]}, timeout=10)
    assert refreshed.status_code == 200
    # Logout ends our login and points the browser at the provider's end-session endpoint.
    out = requests.post(f"{url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {login['token']}"},
                        timeout=10)
    assert out.status_code == 200
    discovery = requests.get(op.issuer + "/.well-known/openid-configuration", timeout=5).json()
    end_session = discovery["end_session_endpoint"]
    assert out.json()["endSessionUrl"].startswith(end_session + "?")
    assert query_of(out.json()["endSessionUrl"])["client_id"] == "streamspace"
    assert me(url, login["token"]).status_code == 401
    assert requests.get(out.json()["endSessionUrl"], timeout=10).status_code == 200  # the provider's confirm page


def test_the_callback_returns_to_the_requested_path_with_a_single_use_code(url, op):
    op.set_account("grace", preferred_username="grace")
    answer = callback(url, op.authorize(authorization_url(url, returnTo="/sessions?tab=mine"), "grace"))
    assert answer.headers["Location"].startswith("/sessions?tab=mine&ssoCode=")
    code = sso_code(answer)
    assert exchange(url, code).status_code == 200
    replay = exchange(url, code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid code"
    assert refusals("invalid handoff code")


def test_return_paths_to_other_sites_are_refused(url, op):
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "relative", "/x?SSOCODE=1"):
        answer = start(url, returnTo=bad)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid returnTo", bad


def test_a_redirect_uri_that_is_not_allowed_is_refused_and_audited(url, op):
    answer = start(url, redirect_uri="https://evil.example/api/v1/auth/oidc/callback")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid redirect_uri"
    assert refusals("redirect uri not allowed")


def test_a_wrong_state_is_refused_and_audited(url, op):
    op.set_account("eve", preferred_username="eve")
    redirect = op.authorize(authorization_url(url), "eve")
    forged = redirect.replace("state=", "state=x")
    answer = callback(url, forged)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid state"
    missing = callback(url, redirect.split("?")[0] + "?" + urlencode({"code": query_of(redirect)["code"]}))
    assert missing.status_code == 400
    assert refusals("wrong state") and refusals("missing state")


def test_a_callback_in_another_browser_is_refused_login_csrf(url, op):
    """An attacker starts a login, signs in as themselves and pushes the callback URL to a victim:
    the victim's browser lacks the cookie of the attacker's login, so nobody gets signed in."""
    op.set_account("attacker", preferred_username="attacker")
    attacker = requests.Session()
    redirect = op.authorize(authorization_url(url, attacker), "attacker")
    victim = requests.Session()
    answer = callback(url, redirect, victim)
    assert answer.status_code == 400 and "another browser" in answer.json()["message"]
    assert refusals("browser mismatch")
    cookie = start(url).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/;" in cookie


def test_a_handoff_code_works_only_in_the_browser_that_signed_in(url, op):
    """A link carrying the attacker's one-time code signs nobody in elsewhere; nor can returnTo
    smuggle a code of its own into the redirect."""
    op.set_account("hand", preferred_username="hand")
    attacker = requests.Session()
    code = sso_code(callback(url, op.authorize(authorization_url(url, attacker), "hand"), attacker))
    stolen = exchange(url, code, requests.Session())
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid code"
    assert exchange(url, code, attacker).status_code == 400  # spent by the failed attempt
    smuggled = start(url, returnTo="/login/sso?ssoCode=attackers-code")
    assert smuggled.status_code == 400 and smuggled.json()["error"] == "invalid returnTo"


def test_a_callback_naming_another_issuer_is_refused(url, op):
    """RFC 9207: the authorization response's iss must be our provider (mix-up attacks)."""
    op.set_account("mixup", preferred_username="mixup")
    redirect = op.authorize(authorization_url(url), "mixup")
    params = query_of(redirect)
    params["iss"] = "https://other-provider.example"
    answer = callback(url, redirect.split("?")[0] + "?" + urlencode(params))
    assert answer.status_code == 400 and "another issuer" in answer.json()["message"]
    assert refusals("wrong issuer")


def test_a_login_the_provider_ended_with_an_error_is_refused(url, op):
    state = query_of(authorization_url(url))["state"]
    answer = callback(url, f"{url}/api/v1/auth/oidc/callback?" + urlencode(
        {"state": state, "error": "access_denied", "error_description": "the user cancelled"}))
    assert answer.status_code == 400 and "the user cancelled" in answer.json()["message"]
    assert refusals("provider error")[-1]["details"]["providerError"] == "access_denied"


def test_a_replayed_callback_and_a_replayed_code_are_refused(url, op):
    op.set_account("mallory", preferred_username="mallory")
    redirect = op.authorize(authorization_url(url), "mallory")
    assert callback(url, redirect).status_code == 302
    # The same callback again: its state was used up.
    again = callback(url, redirect)
    assert again.status_code == 400 and again.json()["error"] == "invalid state"
    # The used code with a fresh, valid state: the provider refuses to redeem it a second time.
    fresh_state = query_of(authorization_url(url))["state"]
    replay = callback(url, redirect.split("?")[0] + "?" + urlencode({"code": query_of(redirect)["code"],
                                                                     "state": fresh_state}))
    assert replay.status_code == 400 and replay.json()["error"] == "sso refused"
    assert refusals("code refused")


def _with_param(authorization: str, name: str, value: str | None) -> str:
    base, _, query = authorization.partition("?")
    params = query_of(authorization)
    if value is None:
        params.pop(name)
    else:
        params[name] = value
    return base + "?" + urlencode(params)


def test_a_missing_or_wrong_nonce_is_refused(url, op):
    """An authorization response from another request (the attacker's nonce) injected into ours."""
    op.set_account("nonce-user", preferred_username="nonce-user")
    wrong = callback(url, op.authorize(_with_param(authorization_url(url), "nonce", "attacker-nonce"), "nonce-user"))
    assert wrong.status_code == 400 and "nonce" in wrong.json()["message"]
    missing = callback(url, op.authorize(_with_param(authorization_url(url), "nonce", None), "nonce-user"))
    assert missing.status_code == 400 and "nonce" in missing.json()["message"]
    assert refusals("wrong nonce") and refusals("missing nonce")


def test_a_code_redeemed_without_our_pkce_verifier_is_refused(url, op):
    """The attacker's own authorization request (own PKCE challenge) answered into our callback."""
    op.set_account("pkce-user", preferred_username="pkce-user")
    ours = authorization_url(url)
    theirs = _with_param(ours, "code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    answer = callback(url, op.authorize(theirs, "pkce-user"))
    assert answer.status_code == 400 and answer.json()["error"] == "sso refused"


def test_key_rotation_refetches_the_jwks_once(url, op):
    from streamspace.sso import provider

    op.set_account("rota", preferred_username="rota")
    sso_login(url, op, "rota")
    before = {key.key_id for keys in provider._jwks.values() for key in keys}
    new_kid = op.rotate_keys()
    assert new_kid not in before
    assert sso_login(url, op, "rota")["user"]["username"] == "rota"
    assert new_kid in {key.key_id for keys in provider._jwks.values() for key in keys}


def test_a_collision_with_an_existing_local_account_is_refused_never_merged(url, op):
    local_id = make_user("linus", password="local-password")
    op.set_account("someone-else", preferred_username="linus")
    answer = callback(url, op.authorize(authorization_url(url), "someone-else"))
    assert answer.status_code == 409 and answer.json()["error"] == "account exists"
    from streamspace.db import fetch_one

    assert fetch_one("SELECT count(*) AS n FROM oidc_identities WHERE user_id = %s", (local_id,))["n"] == 0
    assert fetch_one("SELECT provider FROM users WHERE id = %s", (local_id,))["provider"] == "local"
    # The same for an email that an existing account already has.
    op.set_account("mail-twin", preferred_username="mail-twin", email="Linus@Example.com")
    assert callback(url, op.authorize(authorization_url(url), "mail-twin")).status_code == 409
    assert [r["target"] for r in refusals("account collision") if r["target"] in ("linus", "mail-twin")] \
        == ["linus", "mail-twin"]


def test_first_login_is_refused_when_the_new_users_label_is_another_users(url, op):
    """Provisioning asks the same label question as an admin's user creation: two users whose
    Kubernetes labels collide would share a home volume."""
    from streamspace.db import fetch_one
    from tests.security.test_home_volumes import COLLIDING

    local, federated = COLLIDING
    make_user(local, password="local-password")
    op.set_account("label-twin", preferred_username=federated, email="twin@example.com")
    answer = callback(url, op.authorize(authorization_url(url), "label-twin"))
    assert answer.status_code == 409 and answer.json()["error"] == "account exists", answer.text
    assert fetch_one("SELECT count(*) AS n FROM users WHERE username = %s", (federated,))["n"] == 0
    assert any(r["target"] == federated for r in refusals("account collision"))


def test_an_sso_account_never_gets_a_password_and_a_stored_one_never_logs_in(url, op, admin_headers):
    """The provider alone authenticates an SSO account (its MFA, its deprovisioning): an admin
    cannot set it a password, and a hash that got into the row anyway opens nothing."""
    from streamspace.auth.passwords import hash_password
    from streamspace.db import execute, fetch_one

    op.set_account("fed", preferred_username="federica")
    user = sso_login(url, op, "fed")["user"]
    answer = requests.patch(f"{url}/api/v1/users/{user['id']}", headers=admin_headers,
                            json={"password": "a long unusual phrase 3"}, timeout=10)
    assert answer.status_code == 409 and answer.json()["error"] == "password managed by provider", answer.text
    assert fetch_one("SELECT password_hash FROM users WHERE id = %s", (user["id"],))["password_hash"] is None
    execute("UPDATE users SET password_hash = %s WHERE id = %s", (hash_password("planted-password"), user["id"]))
    login = requests.post(f"{url}/api/v1/auth/login", json={"username": "federica", "password": "planted-password"},
                          timeout=10)
    assert login.status_code == 401 and login.json()["error"] == "invalid credentials"


def test_a_username_claim_that_breaks_our_username_rules_is_refused(url, op):
    op.set_account("spaces", preferred_username="Not A Name!")
    answer = callback(url, op.authorize(authorization_url(url), "spaces"))
    assert answer.status_code == 403 and answer.json()["error"] == "invalid username claim"
    op.set_account("noclaim")
    assert callback(url, op.authorize(authorization_url(url), "noclaim")).status_code == 403
    assert len(refusals("invalid username claim")) == 2


def test_the_username_claim_is_configurable(url, op):
    op.set_account("claimed", preferred_username="ignored", nickname="from-other-claim")
    with environment(OIDC_USERNAME_CLAIM="nickname"):
        assert sso_login(url, op, "claimed")["user"]["username"] == "from-other-claim"


def test_a_user_disabled_in_streamspace_is_refused(url, op, admin_headers):
    op.set_account("dora", preferred_username="dora")
    user_id = sso_login(url, op, "dora")["user"]["id"]
    assert requests.patch(f"{url}/api/v1/users/{user_id}", json={"active": False}, headers=admin_headers,
                          timeout=10).status_code == 200
    answer = callback(url, op.authorize(authorization_url(url), "dora"))
    assert answer.status_code == 403 and answer.json()["error"] == "account disabled"
    assert refusals("account disabled")[-1]["target"] == "dora"


def test_groups_and_roles_follow_the_mapping_table_and_resync_at_every_login(url, op, admin_headers):
    def group(name: str) -> str:
        answer = requests.post(f"{url}/api/v1/groups", json={"name": name}, headers=admin_headers, timeout=10)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    engineers, designers, manual = group("engineers"), group("designers"), group("hand-picked")
    mappings = f"{url}/api/v1/auth/oidc/mappings"
    for body in ({"claimValue": "eng", "groupId": engineers}, {"claimValue": "design", "groupId": designers},
                 {"claimValue": "platform-admins", "role": "admin"}, {"claimValue": "ops", "role": "operator"}):
        created = requests.post(mappings, json=body, headers=admin_headers, timeout=10)
        assert created.status_code == 201, created.text
    assert requests.post(mappings, json={"claimValue": "eng", "groupId": engineers}, headers=admin_headers,
                         timeout=10).status_code == 409
    assert requests.post(mappings, json={"claimValue": "x", "role": "user"}, headers=admin_headers,
                         timeout=10).status_code == 400
    assert requests.post(mappings, json={"claimValue": "x"}, headers=admin_headers, timeout=10).status_code == 400
    listed = requests.get(mappings, headers=admin_headers, timeout=10).json()
    mine = [m for m in listed["mappings"] if m["claimValue"] in ("eng", "design", "platform-admins", "ops")]
    assert len(mine) == 4 and {m["groupName"] for m in mine} >= {"engineers", "designers"}  # other tests add theirs

    op.set_account("max", preferred_username="max", groups=["eng", "platform-admins", "unmapped"])
    first = sso_login(url, op, "max")["user"]
    assert first["role"] == "admin" and set(first["groups"]) == {engineers}
    # An admin adds max by hand to a group no mapping manages: re-sync leaves it alone.
    assert requests.post(f"{url}/api/v1/groups/{manual}/members", json={"userId": first["id"]},
                         headers=admin_headers, timeout=10).status_code in (200, 201)

    op.set_account("max", preferred_username="max", groups=["design", "ops"])
    second = sso_login(url, op, "max")["user"]
    assert second["role"] == "operator" and set(second["groups"]) == {designers, manual}

    op.set_account("max", preferred_username="max", groups="eng")  # a single string is one value
    third = sso_login(url, op, "max")["user"]
    assert third["role"] == "user" and set(third["groups"]) == {engineers, manual}

    # Deleting a mapping applies from the next login.
    eng_mapping = next(m for m in listed["mappings"] if m["claimValue"] == "eng")
    assert requests.delete(f"{mappings}/{eng_mapping['id']}", headers=admin_headers, timeout=10).status_code == 200
    assert requests.delete(f"{mappings}/{eng_mapping['id']}", headers=admin_headers, timeout=10).status_code == 404
    assert set(sso_login(url, op, "max")["user"]["groups"]) == {engineers, manual}  # no longer managed: kept
    from streamspace.db import fetch_all

    syncs = fetch_all("SELECT details FROM audit_log WHERE action = 'auth.oidc.sync' AND target = 'max' ORDER BY id")
    assert [s["details"]["role"]["to"] for s in syncs][:3] == ["admin", "operator", "user"]


def test_a_login_never_demotes_the_last_active_admin(url, op, admin_headers):
    from streamspace.db import fetch_all, fetch_one

    assert requests.post(f"{url}/api/v1/auth/oidc/mappings", json={"claimValue": "solo-admins", "role": "admin"},
                         headers=admin_headers, timeout=10).status_code == 201
    op.set_account("solo", preferred_username="solo", groups=["solo-admins"])
    assert sso_login(url, op, "solo")["user"]["role"] == "admin"
    others = [r["id"] for r in fetch_all("UPDATE users SET active = false WHERE role = 'admin' AND active"
                                         " AND username <> 'solo' RETURNING id")]
    try:
        op.set_account("solo", preferred_username="solo", groups=[])
        assert sso_login(url, op, "solo")["user"]["role"] == "admin"
        kept = fetch_one("SELECT details FROM audit_log WHERE action = 'auth.oidc.sync' AND target = 'solo'"
                         " ORDER BY id DESC LIMIT 1")["details"]
        assert kept["roleKept"] == "last active admin"
    finally:
        fetch_all("UPDATE users SET active = true WHERE id = ANY(%s) RETURNING id", (others,))
    assert sso_login(url, op, "solo")["user"]["role"] == "user"


def test_mappings_are_for_admins_only(url, op):
    op.set_account("plain", preferred_username="plain")
    token = sso_login(url, op, "plain")["token"]
    answer = requests.get(f"{url}/api/v1/auth/oidc/mappings", headers={"Authorization": f"Bearer {token}"},
                          timeout=10)
    assert answer.status_code == 403


def test_password_login_can_be_disabled_for_all_but_the_break_glass_admin(url, op):
    make_user("keyholder", role="admin", password="break-glass-pw")
    make_user("ordinary", password="ordinary-pw")
    make_user("demoted", role="user", password="demoted-pw")
    with environment(OIDC_DISABLE_PASSWORD_LOGIN="true", OIDC_BREAK_GLASS_ADMIN="keyholder"):
        refused = requests.post(f"{url}/api/v1/auth/login", json={"username": "ordinary", "password": "ordinary-pw"},
                                timeout=10)
        assert refused.status_code == 403 and "Test IdP" in refused.json()["message"]
        allowed = requests.post(f"{url}/api/v1/auth/login", json={"username": "keyholder",
                                                                 "password": "break-glass-pw"}, timeout=10)
        assert allowed.status_code == 200
        methods = requests.get(f"{url}/api/v1/auth/methods", timeout=10).json()
        assert methods == {"password": False, "oidc": {"name": "Test IdP", "loginUrl": "/api/v1/auth/oidc/login"}}
    with environment(OIDC_DISABLE_PASSWORD_LOGIN="true", OIDC_BREAK_GLASS_ADMIN="demoted"):
        # The break-glass name only works while it is an admin.
        assert requests.post(f"{url}/api/v1/auth/login", json={"username": "demoted", "password": "demoted-pw"},
                             timeout=10).status_code == 403
    assert requests.post(f"{url}/api/v1/auth/login", json={"username": "ordinary", "password": "ordinary-pw"},
                         timeout=10).status_code == 200


def test_private_key_jwt_client_authentication(url, op, tmp_path):
    """The second client authenticates with a signed assertion instead of a secret."""
    from cryptography.hazmat.primitives import serialization

    from tests.sso.openid_provider import rsa_jwk

    public_jwk, key = rsa_jwk("client-key-1")
    public_jwk = {k: v for k, v in public_jwk.items() if k in ("kty", "n", "e", "kid", "use", "alg")}
    op.clients.append({"client_id": "streamspace-pkjwt", "redirect_uris": op.redirect_uris,
                       "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public_jwk]},
                       "grant_types": ["authorization_code"], "response_types": ["code"]})
    op.stop()
    op.start()
    pem = tmp_path / "client.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    op.set_account("kay", preferred_username="kay")
    with environment(OIDC_CLIENT_ID="streamspace-pkjwt", OIDC_CLIENT_SECRET=None,
                     OIDC_CLIENT_PRIVATE_KEY_FILE=str(pem), OIDC_CLIENT_KEY_ID="client-key-1"):
        assert sso_login(url, op, "kay")["user"]["username"] == "kay"


def test_claims_only_at_the_userinfo_endpoint_are_read_from_there(url, op, admin_headers):
    group = requests.post(f"{url}/api/v1/groups", json={"name": "userinfo-team"}, headers=admin_headers, timeout=10)
    assert requests.post(f"{url}/api/v1/auth/oidc/mappings", json={"claimValue": "ui", "groupId": group.json()["id"]},
                         headers=admin_headers, timeout=10).status_code == 201
    op.claims_in_userinfo_only = True
    op.stop()
    op.start()
    try:
        op.set_account("uma", preferred_username="uma", groups=["ui"])
        redirect = op.authorize(authorization_url(url), "uma")
        user = exchange(url, sso_code(callback(url, redirect))).json()["user"]
        assert user["username"] == "uma" and user["groups"] == [group.json()["id"]]
    finally:
        op.claims_in_userinfo_only = False
        op.stop()
        op.start()


def test_saml_answers_501_pointing_at_oidc(url, op):
    for method in ("GET", "POST"):
        answer = requests.request(method, f"{url}/api/v1/auth/saml/acs", timeout=10)
        assert answer.status_code == 501 and "OpenID Connect" in answer.json()["message"]


def test_a_provider_that_is_down_gets_a_503_that_names_it(url, op):
    from streamspace.sso.provider import forget_cached_metadata

    op.set_account("downtime", preferred_username="downtime")
    redirect = op.authorize(authorization_url(url), "downtime")
    op.stop()
    try:
        # Mid-login: the token endpoint does not answer.
        answer = callback(url, redirect)
        assert answer.status_code == 503
        assert "Test IdP" in answer.json()["message"] and op.issuer in answer.json()["message"]
        # A new login, with nothing cached: discovery does not answer.
        forget_cached_metadata()
        started = start(url)
        assert started.status_code == 503 and "Test IdP" in started.json()["message"]
        assert len(refusals("provider unavailable")) >= 2
    finally:
        op.start()


def test_every_refusal_carries_its_reason_and_no_secret(url, op):
    assert callback(url, f"{url}/api/v1/auth/oidc/callback?state=unknown&code=x").status_code == 400
    rows = refusals()
    assert rows and all(r["details"]["reason"] and r["actor"] == "anonymous" for r in rows)
    text = json.dumps([r["details"] for r in rows])
    assert "streamspace-test-client-secret" not in text


# -- ID tokens a provider (or a network attacker) could hand us: verified against the real JWKS --

def _forged(op, claims_override: dict, *, key=None, kid: str | None = None, alg: str = "RS256") -> str:
    import time

    now = int(time.time())
    claims = {"iss": op.issuer, "sub": "victim", "aud": "streamspace", "iat": now, "exp": now + 300,
              "nonce": "the-nonce", **claims_override}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key if key is not None else op.signing_keys[op.kid], algorithm=alg,
                      headers={"kid": kid or op.kid})


def _verify(op, token: str):
    from streamspace import config
    from streamspace.sso.provider import verify_id_token

    return verify_id_token(config.environment().oidc, token, nonce="the-nonce")


def _refused(op, token: str) -> str:
    from streamspace.sso.provider import ProviderRefused

    try:
        _verify(op, token)
    except ProviderRefused as exc:
        return exc.reason
    raise AssertionError("the forged ID token was accepted")


def test_a_genuine_id_token_verifies(url, op):
    assert _verify(op, _forged(op, {}))["sub"] == "victim"


def test_id_tokens_from_another_issuer_audience_or_party_are_refused(url, op):
    assert _refused(op, _forged(op, {"iss": "https://other-issuer.example"})) == "wrong issuer"
    assert _refused(op, _forged(op, {"aud": "another-client"})) == "wrong audience"
    assert _refused(op, _forged(op, {"aud": ["streamspace", "another-client"]})) == "wrong authorized party"
    assert _refused(op, _forged(op, {"azp": "another-client"})) == "wrong authorized party"
    assert _verify(op, _forged(op, {"aud": ["streamspace", "x"], "azp": "streamspace"}))["sub"] == "victim"


def test_expired_id_tokens_are_refused(url, op):
    import time

    assert _refused(op, _forged(op, {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200})) \
        == "expired id token"


def test_nonce_is_checked_on_the_token(url, op):
    assert _refused(op, _forged(op, {"nonce": None})) == "missing nonce"
    assert _refused(op, _forged(op, {"nonce": "another"})) == "wrong nonce"


def test_unsigned_and_symmetric_id_tokens_are_refused(url, op):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": op.kid}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"iss": op.issuer, "sub": "victim", "aud": "streamspace",
                                                "exp": 9999999999, "iat": 1, "nonce": "the-nonce"}).encode())
    assert _refused(op, f"{header}.{body.rstrip(b'=').decode()}.") == "algorithm refused"
    from tests.sso.openid_provider import CLIENT_SECRET

    assert _refused(op, _forged(op, {}, key=CLIENT_SECRET, alg="HS256")) == "algorithm refused"


def test_tokens_signed_with_an_unknown_key_are_refused_after_one_refetch(url, op):
    from streamspace.sso import provider
    from tests.sso.openid_provider import rsa_jwk

    _, stranger = rsa_jwk("stranger")
    _verify(op, _forged(op, {}))  # the key set is cached
    (jwks_uri, cached), = provider._jwks.items()
    assert _refused(op, _forged(op, {}, key=stranger, kid="stranger")) == "unknown key"
    refetched = provider._jwks[jwks_uri]
    assert refetched is not cached, "an unknown kid fetches the JWKS again"
    # Our kid on a signature made by another key: the signature check catches it, no refetch.
    assert _refused(op, _forged(op, {}, key=stranger)) == "bad signature"
    assert provider._jwks[jwks_uri] is refetched


def test_a_browser_whose_sign_in_is_refused_is_sent_to_a_page_with_the_reason_code(url, op):
    """A person's browser (a navigation) gets a redirect to the return path with ssoError=<code>
    (the portal turns the code into words) instead of a raw JSON body; the refusal is audited the
    same way, and API clients still get the 4xx."""
    navigation = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
    browser = requests.Session()
    browser.headers.update(navigation)
    answer = start(url, browser, returnTo="/login/sso?next=%2Fsessions")
    state = query_of(answer.headers["Location"])["state"]
    cancelled = browser.get(f"{url}/api/v1/auth/oidc/callback", allow_redirects=False, timeout=10,
                            params={"state": state, "error": "access_denied"})
    assert cancelled.status_code == 302
    assert cancelled.headers["Location"] == "/login/sso?next=%2Fsessions&ssoError=denied"
    assert refusals("provider error")[-1]["details"]["providerError"] == "access_denied"
    # An unknown state: no return path is known, so the portal's login page.
    unknown = browser.get(f"{url}/api/v1/auth/oidc/callback", params={"state": "forged", "code": "x"},
                          allow_redirects=False, timeout=10)
    assert unknown.status_code == 302 and unknown.headers["Location"] == "/login?ssoError=expired"
    # The same refusal to a script: the 4xx with its JSON body.
    assert callback(url, f"{url}/api/v1/auth/oidc/callback?state=forged&code=x").status_code == 400
