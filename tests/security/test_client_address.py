"""Attacks on the client address: forged X-Forwarded-For to dodge the per-address login limit, and
markup in it that would be stored in the audit log and echoed back."""

from __future__ import annotations

import ipaddress

import pytest
import requests

from streamspace.config import load_environment
from streamspace.http.api import client_address
from tests.conftest import make_user

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.fixture(scope="module")
def url(serve):
    return serve("auth", "users")


def test_a_fresh_x_forwarded_for_per_request_does_not_dodge_the_address_limit(url, setting):
    setting(TRUSTED_PROXIES="")  # the default: nobody's forwarding headers are believed
    assert load_environment({"STREAMSPACE_DATA_DIR": "/tmp/sst-sec-default"}).trusted_proxies == ()
    from streamspace.config import environment
    from streamspace.db import execute

    # (the spraying below throttles 127.0.0.1; other tests' failed logins from it are cleared first,
    # and this test's are undone at the end for the module's other tests)
    execute("DELETE FROM login_attempts WHERE client_ip = '127.0.0.1'")
    for i in range(environment().login_max_address_failures):
        answer = requests.post(url + "/api/v1/auth/login", json={"username": f"spray-{i}", "password": "Spring2026!"},
                               headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=10)
        assert answer.status_code == 401
    answer = requests.post(url + "/api/v1/auth/login", json={"username": "spray-x", "password": "Spring2026!"},
                           headers={"X-Forwarded-For": "198.51.100.77"}, timeout=10)
    assert answer.status_code == 429
    execute("DELETE FROM login_attempts WHERE client_ip = '127.0.0.1'")


def test_markup_in_x_forwarded_for_is_never_stored_or_echoed(url, setting):
    from streamspace.db import fetch_all

    setting(TRUSTED_PROXIES="127.0.0.1/32,::1/128")
    make_user("xff-victim", password="xff-victim-password")
    evil = "<img src=x onerror=alert(1)>"
    for header in (evil, f"{evil}, 127.0.0.1", f"198.51.100.9, {evil}"):
        requests.post(url + "/api/v1/auth/login", json={"username": "xff-victim", "password": "wrong-password"},
                      headers={"X-Forwarded-For": header}, timeout=10)
    stored = {row["client_ip"] for row in fetch_all("SELECT client_ip FROM audit_log WHERE target = 'xff-victim'")}
    stored |= {row["client_ip"] for row in fetch_all("SELECT client_ip FROM login_attempts"
                                                     " WHERE username = 'xff-victim'")}
    assert stored and all(ipaddress.ip_address(value) for value in stored), stored


def test_only_the_rightmost_untrusted_address_counts():
    proxies = (ipaddress.ip_network("10.0.0.0/8"), *LOOPBACK)
    # Untrusted peer: its header is ignored.
    assert client_address("203.0.113.5", "1.2.3.4", proxies) == "203.0.113.5"
    # Trusted hops are skipped from the right; what the client wrote on the left is not believed.
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", proxies) == "198.51.100.7"
    assert client_address("127.0.0.1", "10.9.9.9, 10.1.2.3", proxies) == "10.9.9.9"
    assert client_address("127.0.0.1", "garbage, 10.1.2.3", proxies) == "10.1.2.3"
    assert client_address("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"
    assert client_address("::1", "2001:db8::1", (ipaddress.ip_network("::1/128"),)) == "2001:db8::1"
