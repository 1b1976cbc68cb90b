"""One error model (issue 13): every error the library raises is a domain error that says its kind and
whether trying again can help, and the HTTP layer answers it through its one registry."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import streamspace
from streamspace.catalog.credentials import SecretUnavailable
from streamspace.catalog.git import FetchError, _explain, _fetch_failed
from streamspace.catalog.parse import CheckoutRefused
from streamspace.domain.errors import DomainError, ErrorKind
from streamspace.http.errors import to_http
from streamspace.reconcile.warm import HandOverFailed
from streamspace.sso.provider import ProviderRefused

# Exceptions that are not domain errors, each for a reason:
NOT_DOMAIN_ERRORS = {
    # what only the HTTP layer knows (no route, wrong method, a body too large)
    "streamspace.http.errors.HttpError", "streamspace.http.errors.MethodNotAllowed",
    "streamspace.http.errors.PayloadTooLarge", "streamspace.http.errors.UnsupportedMediaType",
    # a setting that stops the process at start with one line naming it, never an operation's error
    "streamspace.config.ConfigError",
    # the kube client's own: `kube` turns it into ClusterUnavailable before anyone else sees it
    "streamspace.kube.client.ConfigError",
    # the connection pool's own: `db.connection()` turns it into DatabaseUnavailable likewise
    "streamspace.db.driver.PoolTimeout",
}


def _library_exceptions() -> set[type[BaseException]]:
    found = set()
    for module in pkgutil.walk_packages(streamspace.__path__, "streamspace."):
        if module.name.startswith(("streamspace.sim", "streamspace.__main__")):
            continue  # the simulated API server speaks Kubernetes' errors; the CLI is not a library module
        for cls in vars(importlib.import_module(module.name)).values():
            if inspect.isclass(cls) and cls.__module__ == module.name and issubclass(cls, BaseException):
                found.add(cls)
    return found


def test_every_error_the_library_raises_is_a_domain_error() -> None:
    """Private exceptions (`_Invalid` ...) are control flow caught in the module that raises them."""
    exceptions = _library_exceptions()
    assert {SecretUnavailable, FetchError, CheckoutRefused, ProviderRefused, HandOverFailed} <= exceptions
    outside = {f"{cls.__module__}.{cls.__name__}" for cls in exceptions
               if not issubclass(cls, DomainError) and not cls.__name__.startswith("_")}
    assert outside == NOT_DOMAIN_ERRORS


@pytest.mark.parametrize(("error", "kind", "retryable", "status", "code"), [
    (SecretUnavailable("the stored credential cannot be decrypted"), ErrorKind.UNAVAILABLE, False, 503,
     "secret key unusable"),
    (CheckoutRefused("more than 3 YAML files"), ErrorKind.INVALID, False, 400, "repository refused"),
    (_fetch_failed(_explain("fatal: Authentication failed for 'https://x/'", "main", None, False, 10)),
     ErrorKind.UPSTREAM, False, 502, "repository fetch failed"),
    (_fetch_failed(_explain("", "main", None, True, 10)), ErrorKind.UPSTREAM, True, 502, "repository fetch failed"),
    (_fetch_failed(_explain("fatal: unable to access: Could not resolve host: git.example", "main", None, False,
                            10)), ErrorKind.UPSTREAM, True, 502, "repository fetch failed"),
    (ProviderRefused("wrong nonce", "the ID token's nonce is not the one of this login"), ErrorKind.INVALID, False,
     400, "sso refused"),
    (HandOverFailed("its profile agent did not answer"), ErrorKind.UPSTREAM, False, 502, "profile hand-over failed"),
])
def test_a_former_local_error_says_its_kind_and_is_answered_by_the_registry(
        error: DomainError, kind: ErrorKind, retryable: bool, status: int, code: str) -> None:
    assert (error.kind, error.retryable) == (kind, retryable)
    answer = to_http(error)
    assert answer is not None
    assert (answer.status, answer.body()) == (status, {"error": code, "message": error.message})
    assert str(error) == error.message  # logs and sync outcomes show the same words


def test_a_refused_id_token_keeps_its_audit_reason_out_of_the_answer() -> None:
    refused = ProviderRefused("bad signature", "the ID token's signature does not verify")
    answer = to_http(refused)
    assert refused.reason == "bad signature"
    assert answer is not None and "bad signature" not in str(answer.body())
