"""Identity hot paths, in microseconds (medians):

- login: POST /api/v1/auth/login over real HTTP through the auth function (argon2id with the
  production profile, the rate-limit bookkeeping, a new token family and refresh token);
- login_wrong_password / login_unknown_user: the two refusals, which should cost about the same;
- verify: `principal.authenticate` as every protected request runs it (JWT check plus the one
  query on users and token_families);
- me: GET /api/v1/auth/me over real HTTP (verify plus the user object).

Self-contained: an embedded PostgreSQL in a temporary folder, migrated, one user.
"""

from __future__ import annotations

import os
from typing import Any

from bench.support import benchmark_database, login_token, median_of, timed_us

LOGINS = 30
REFUSALS = 4
VERIFICATIONS = 2000
ME_CALLS = 300


def run() -> dict[str, Any]:
    os.environ.pop("PASSWORD_HASH_PROFILE", None)  # measure the production hashing cost
    benchmark_database()
    import requests

    from streamspace.auth.passwords import _hasher, hash_password
    from streamspace.auth.principal import authenticate
    from streamspace.db import fetch_one
    from streamspace.local.gateway import load_function_app
    from streamspace.local.server import BackgroundServer

    _hasher.cache_clear()
    fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES ('bench', 'bench@example.com',"
              " 'user', %s) RETURNING id", (hash_password("bench-password"),))
    server = BackgroundServer(load_function_app("auth")).start()
    http = requests.Session()
    addresses = iter(range(1, 1_000_000))

    def login(username: str, password: str, expect: int) -> dict[str, Any]:
        n = next(addresses)
        resp = http.post(f"{server.url}/api/v1/auth/login", json={"username": username, "password": password},
                         headers={"X-Forwarded-For": f"10.9.{n >> 8 & 255}.{n & 255}"}, timeout=30)
        assert resp.status_code == expect, resp.text
        return resp.json()

    try:
        token = login("bench", "bench-password", 200)["token"]  # warm-up
        logins = timed_us(lambda: login("bench", "bench-password", 200), LOGINS)
        wrong = timed_us(lambda: login("bench", "not-the-password", 401), REFUSALS)
        login("bench", "bench-password", 200)  # a success resets the username's failure count
        unknown = timed_us(lambda: login("nobody", "not-the-password", 401), REFUSALS)
        header = f"Bearer {token}"
        for _ in range(50):
            authenticate(header)
        verify = timed_us(lambda: authenticate(header), VERIFICATIONS)
        # A token seen for the first time pays the HMAC signature check too (later uses hit the cache).
        user_id = str(fetch_one("SELECT id FROM users WHERE username = 'bench'")["id"])  # type: ignore[index]
        fresh = [login_token(user_id, "bench")
                 for _ in range(VERIFICATIONS)]
        tokens = iter(fresh)
        verify_first = timed_us(lambda: authenticate(f"Bearer {next(tokens)}"), VERIFICATIONS)
        me_headers = {"Authorization": header}
        me = timed_us(lambda: http.get(f"{server.url}/api/v1/auth/me", headers=me_headers, timeout=10), ME_CALLS)
    finally:
        server.stop()
    return {
        "login_us": round(median_of(logins)),
        "login_wrong_password_us": round(median_of(wrong)),
        "login_unknown_user_us": round(median_of(unknown)),
        "verify_us": round(median_of(verify)),
        "verify_first_use_us": round(median_of(verify_first)),
        "me_http_us": round(median_of(me)),
        "samples": {"login": LOGINS, "refusals": REFUSALS, "verify": VERIFICATIONS, "me": ME_CALLS},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
