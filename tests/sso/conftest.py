"""SSO tests: a real OpenID Provider (oidc-provider on Node), the auth and users functions over real
HTTP, real Postgres. Each module gets its own provider (new port, new keys) and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import environment, make_user
from tests.sso.openid_provider import CLIENT_ID, CLIENT_SECRET, OpenIDProvider, query_of

CALLBACK = "/api/v1/auth/oidc/callback"


def oidc_env(op: OpenIDProvider, url: str, **extra: str | None) -> dict[str, str | None]:
    return {"OIDC_ISSUER": op.issuer, "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URIS": url + CALLBACK, "OIDC_SCOPES": "openid profile email groups",
            "OIDC_PROVIDER_NAME": "Test IdP", **extra}


@pytest.fixture(scope="module")
def url(serve) -> str:
    return serve("auth", "users")


@pytest.fixture(scope="module")
def op(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    """The module's OpenID Provider, with StreamSpace configured as its client."""
    from streamspace.sso.provider import forget_cached_metadata

    provider = OpenIDProvider(Path(tmp_path_factory.mktemp("op")), [url + CALLBACK], extra_clients=[])
    provider.start()
    with environment(**oidc_env(provider, url)):
        yield provider
        forget_cached_metadata()
    provider.stop()


@pytest.fixture(scope="module")
def admin_headers(url: str, op: OpenIDProvider) -> dict[str, str]:
    make_user("root-admin", role="admin", password="root-password")
    answer = requests.post(f"{url}/api/v1/auth/login", json={"username": "root-admin", "password": "root-password"},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


# The user's browser towards StreamSpace: it keeps the cookie that binds a login to the browser that
# started it (the provider's pages get a browser of their own in OpenIDProvider.authorize).
BROWSER = requests.Session()


def start(url: str, browser: requests.Session = BROWSER, **params: str) -> requests.Response:
    return browser.get(f"{url}/api/v1/auth/oidc/login", params=params, allow_redirects=False, timeout=10)


def authorization_url(url: str, browser: requests.Session = BROWSER, **params: str) -> str:
    answer = start(url, browser, **params)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback(url: str, provider_redirect: str, browser: requests.Session = BROWSER) -> requests.Response:
    """Follow the provider's redirect to our callback, as the browser would."""
    assert provider_redirect.startswith(url + CALLBACK), provider_redirect
    return browser.get(provider_redirect, allow_redirects=False, timeout=20)


def sso_code(answer: requests.Response) -> str:
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    code = query_of(location).get("ssoCode")
    assert code, location
    return code


def exchange(url: str, code: str, browser: requests.Session = BROWSER) -> requests.Response:
    return browser.post(f"{url}/api/v1/auth/oidc/exchange", json={"code": code}, timeout=10)


def sso_login(url: str, op: OpenIDProvider, login: str) -> dict[str, Any]:
    """The whole flow for one user: start, sign in at the provider, callback, exchange."""
    answer = callback(url, op.authorize(authorization_url(url), login))
    tokens = exchange(url, sso_code(answer))
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


def refusals(reason: str | None = None) -> list[dict[str, Any]]:
    from streamspace.db import fetch_all

    return fetch_all("SELECT * FROM audit_log WHERE action = 'auth.oidc.refused'"
                     " AND (%s::text IS NULL OR details->>'reason' = %s) ORDER BY id", (reason, reason))


__all__ = ["BROWSER", "CALLBACK", "authorization_url", "callback", "environment", "exchange", "make_user", "oidc_env",
           "query_of", "refusals", "sso_code", "sso_login", "start"]
