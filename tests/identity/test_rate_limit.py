"""Login throttling: per username+address pair (progressive delays) and per client address, shared by
every instance (rows in login_attempts), strict under concurrent guessing, answered with 429 and
Retry-After. Never a lockout of the account itself: tests/security/test_login_throttling.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from .conftest import fresh_ip, login, make_user


@pytest.fixture(scope="module")
def two_instances(serve) -> tuple[str, str]:
    """Two independent instances of the auth function (separate servers, one database)."""
    return serve("auth"), serve("auth")


def _max_failures() -> int:
    from streamspace.config import environment

    return environment().login_max_failures


def test_per_username_and_address_throttle_holds_across_instances(two_instances: tuple[str, str]) -> None:
    from streamspace.config import environment

    first, second = two_instances
    make_user("target", password="target-password")
    ip = fresh_ip()
    for i in range(_max_failures()):
        resp = login(first if i % 2 else second, "target", f"guess-{i}-wrong", ip=ip)
        assert resp.status_code == 401
    # Even the right password, from that address, on either instance: 429 until its delay passed.
    for instance in (first, second):
        resp = login(instance, "target", "target-password", ip=ip)
        assert resp.status_code == 429, resp.text
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= environment().login_window_seconds
        assert resp.json()["error"] == "too many attempts"


def test_the_delay_doubles_with_each_further_failure() -> None:
    from streamspace.auth.attempts import pair_delay

    assert [pair_delay(n, 5, 300) for n in range(4, 15)] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_per_address_limit(two_instances: tuple[str, str]) -> None:
    first, _ = two_instances
    make_user("innocent", password="innocent-password")
    from streamspace.config import environment

    ip = fresh_ip()
    for i in range(environment().login_max_address_failures):
        assert login(first, f"spray-{i}", "password-spray", ip=ip).status_code == 401
    assert login(first, "innocent", "innocent-password", ip=ip).status_code == 429
    # The same user from another address is fine.
    assert login(first, "innocent", "innocent-password").status_code == 200


def test_concurrent_guessing_cannot_overshoot_the_limit(two_instances: tuple[str, str]) -> None:
    from streamspace.auth.attempts import pair_delay
    from streamspace.config import environment
    from streamspace.db import fetch_all

    first, second = two_instances
    make_user("raced", password="raced-password")
    ip = fresh_ip()
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda i: login(first if i % 2 else second, "raced", f"wrong-{i}", ip=ip).status_code,
                              range(20)))
    # Every 401 is a recorded failure and every other answer a 429. Past the free failures a guess is
    # admitted only once its delay since the previous failure has passed, as the product stamped and
    # judged them under its lock: when the 20 guesses are judged within a second (an idle machine)
    # that is exactly the free failures; a loaded machine may take longer, and then one more guess,
    # 1 s after the fifth, is allowed by design (the delays double from there).
    failures = [r["attempted_at"] for r in fetch_all(
        "SELECT attempted_at FROM login_attempts WHERE username = 'raced' AND client_ip = %s AND NOT succeeded"
        " ORDER BY attempted_at", (ip,))]
    assert codes.count(401) == len(failures) and codes.count(429) == 20 - len(failures), codes
    assert len(failures) >= _max_failures(), codes
    for k in range(_max_failures(), len(failures)):
        delay = timedelta(seconds=pair_delay(k, _max_failures(), environment().login_window_seconds))
        assert failures[k] - failures[k - 1] >= delay, (k, failures)


def test_a_successful_login_resets_the_pair_count(two_instances: tuple[str, str]) -> None:
    first, _ = two_instances
    make_user("typo", password="typo-password")
    ip = fresh_ip()
    for _ in range(_max_failures() - 1):
        assert login(first, "typo", "typo-passwrod", ip=ip).status_code == 401
    assert login(first, "typo", "typo-password", ip=ip).status_code == 200
    for _ in range(_max_failures() - 1):
        assert login(first, "typo", "typo-passwrod", ip=ip).status_code == 401
    assert login(first, "typo", "typo-password", ip=ip).status_code == 200


def test_wrong_old_password_on_password_change_counts_as_a_failed_login(two_instances: tuple[str, str]) -> None:
    import requests

    from .conftest import token_for

    first, _ = two_instances
    url = first
    user_id = make_user("stolen-token", password="stolen-password")
    token = token_for(user_id, "stolen-token")
    codes = []
    ip = fresh_ip()
    for i in range(_max_failures() + 1):
        resp = requests.post(f"{url}/api/v1/auth/password", headers={"Authorization": f"Bearer {token}",
                                                                     "X-Forwarded-For": ip},
                             json={"oldPassword": f"guess-{i}-wrong", "newPassword": "new-password-1"}, timeout=10)
        codes.append(resp.status_code)
    assert codes == [400] * _max_failures() + [429]


def test_a_guess_that_queued_for_the_lock_is_stamped_when_it_was_judged(two_instances: tuple[str, str]) -> None:
    """The next guess of a pair waits its delay from the moment the previous one was judged. Stamped
    with its transaction's start instead, a guess that queued for the pair's lock looked as old as
    its wait, and the next guess got through before its delay."""
    from streamspace.auth.attempts import _lock_key, pair_delay
    from streamspace.config import environment
    from streamspace.db import fetch_one, transaction
    from tests.sim.sim_helpers import eventually

    first, second = two_instances
    make_user("queued", password="queued-password")
    ip = fresh_ip()
    free, window = _max_failures(), environment().login_window_seconds
    earlier = free + 2  # failures long enough ago that the next guess may come now
    with transaction() as conn:
        conn.execute("INSERT INTO login_attempts (username, client_ip, succeeded, attempted_at)"
                     " SELECT 'queued', %s, false, now() - interval '100 seconds' FROM generate_series(1, %s)",
                     (ip, earlier))
    assert pair_delay(earlier, free, window) < 100
    next_delay = pair_delay(earlier + 1, free, window)  # what the guess after the queued one must wait
    with ThreadPoolExecutor(max_workers=1) as pool:
        with transaction() as holder:  # another instance judging this pair holds its lock a while
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("user:queued"),))
            queued = pool.submit(login, first, "queued", "wrong-queued", ip)
            eventually(lambda: fetch_one(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND wait_event = 'advisory'"
                " AND clock_timestamp() - xact_start > %s * interval '1 second'", (next_delay + 2,)),
                f"the guess to have queued for the lock longer than {next_delay} s", timeout=next_delay + 120)
        assert queued.result().status_code == 401
    assert login(second, "queued", "wrong-next", ip=ip).status_code == 429
