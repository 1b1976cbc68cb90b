"""Attack: lock any account out (admin included) by failing logins for it from anywhere."""

from __future__ import annotations

import requests

from tests.conftest import make_user


def login(url: str, username: str, password: str, ip: str) -> requests.Response:
    return requests.post(url + "/api/v1/auth/login", json={"username": username, "password": password},
                         headers={"X-Forwarded-For": ip}, timeout=10)


def test_failing_logins_from_other_addresses_cannot_lock_the_owner_out(serve, setting):
    from streamspace.config import environment
    from streamspace.db import execute

    setting(TRUSTED_PROXIES="127.0.0.1/32")
    url = serve("auth")
    make_user("lock-target", role="admin", password="the-right-password")
    attackers = [f"203.0.113.{i}" for i in range(1, 4)]
    codes = [login(url, "lock-target", f"guess-{n}", ip).status_code
             for ip in attackers for n in range(environment().login_max_failures + 3)]
    assert 429 in codes  # each attacking address is slowed down ...
    # ... with a delay that grows: pretend its first delay passed, one more failure doubles it.
    execute("UPDATE login_attempts SET attempted_at = attempted_at - interval '1 second' WHERE client_ip = %s",
            (attackers[0],))
    assert login(url, "lock-target", "guess-again", attackers[0]).status_code == 401
    throttled = login(url, "lock-target", "guess-again", attackers[0])
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 2
    # ... while the owner, from an address that has not been failing, logs in.
    assert login(url, "lock-target", "the-right-password", "198.51.100.20").status_code == 200
