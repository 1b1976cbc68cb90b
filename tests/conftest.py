"""Test infrastructure: one real embedded PostgreSQL per test process, a fresh database per test
module (cloned from a migrated template database, so it is fast), and helpers that serve the
real functions over real HTTP.

Set TEST_DATABASE_URL (or DATABASE_URL) to use an existing server instead of the embedded one; the
tests create and drop their own databases on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Hypothesis fails an example that runs longer than its deadline (200 ms by default): a timing
# assertion, which a loaded 2-core machine trips (test_duration's round trip once took 270 ms).
# The property tests check values, never time.
settings.register_profile("streamspace", deadline=None)
settings.load_profile("streamspace")

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DB = "streamspace_template"
# Read before any fixture points DATABASE_URL at a per-module database.
EXTERNAL_SERVER_URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")

# Settings every test process starts from; tests that check configuration pass their own env.
os.environ.setdefault("JWT_SECRET", "test-secret-" + "x" * 40)
os.environ.setdefault("STREAMSPACE_ENV", "development")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("ADMIN_PASSWORD", "admin-password-for-tests")
# Minimal argon2id cost so creating users stays fast; refused when STREAMSPACE_ENV=production.
os.environ.setdefault("PASSWORD_HASH_PROFILE", "test")
# The tests play the ingress: their X-Forwarded-For is believed from loopback (tests/security checks
# the default, which believes no one).
os.environ.setdefault("TRUSTED_PROXIES", "127.0.0.1/32,::1/128")
os.environ.setdefault("STREAMSPACE_SECRET_KEY", "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """The Postgres server for this test process (embedded unless TEST_DATABASE_URL is set)."""
    if EXTERNAL_SERVER_URL:
        yield EXTERNAL_SERVER_URL
        return
    from streamspace.db.embedded import start_embedded

    # Short path: the server's Unix socket lives in the data folder.
    data_dir = Path(tempfile.mkdtemp(prefix="sst-", dir="/tmp"))
    url = start_embedded(data_dir, cleanup_mode="delete")
    yield url
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    """A migrated database that per-module databases are cloned from."""
    from streamspace.db import connect, identifier
    from streamspace.db.embedded import with_database
    from streamspace.db.migrate import migrate

    name = f"{TEMPLATE_DB}_{os.getpid()}"
    with connect(pg_server_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {identifier(name)}")
        conn.execute(f"CREATE DATABASE {identifier(name)}")
    migrate(with_database(pg_server_url, name))
    return name


def create_database(server_url: str, template: str | None) -> str:
    from streamspace.db import connect, identifier
    from streamspace.db.embedded import with_database

    name = "t_" + uuid.uuid4().hex[:16]
    with connect(server_url) as conn:
        if template:
            conn.execute(f"CREATE DATABASE {identifier(name)} TEMPLATE {identifier(template)}")
        else:
            conn.execute(f"CREATE DATABASE {identifier(name)}")
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    from streamspace.db import connect, identifier

    name = url.rsplit("/", 1)[1].split("?")[0]
    with connect(server_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {identifier(name)} WITH (FORCE)")


def use_database(url: str) -> None:
    """Point this process's settings and pool at `url`."""
    from streamspace.config import reset_environment
    from streamspace.db import close_pool

    close_pool()
    os.environ["DATABASE_URL"] = url
    reset_environment()


@pytest.fixture(scope="module")
def db_url(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test module, made the process's configured database."""
    url = create_database(pg_server_url, template_db)
    os.environ["STREAMSPACE_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    use_database(url)
    yield url
    from streamspace.db import close_pool

    close_pool()
    drop_database(pg_server_url, url)


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables and reload the settings; restored after."""
    from streamspace.config import reset_environment

    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_environment()
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        reset_environment()


@pytest.fixture
def setting() -> Iterator:
    """`setting(INGRESS_CONTROLLER="nginx")`: change process settings for one test; restored after it."""
    with ExitStack() as changes:
        yield lambda **values: changes.enter_context(environment(**values))


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A database with no schema at all (migration tests)."""
    url = create_database(pg_server_url, None)
    yield url
    drop_database(pg_server_url, url)


# -- serving functions over real HTTP ---------------------------------------------------------------

class FunctionServer:
    """Named HTTP functions behind one real HTTP port, routed as in production (httproute.yaml)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        from streamspace.local.gateway import Gateway, load_function_app
        from streamspace.local.server import BackgroundServer

        self.server = BackgroundServer(Gateway({name: load_function_app(name) for name in names})).start()
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def serve(db_url: str) -> Iterator:
    """`serve("auth", "sessions")` -> base URL of those functions over real HTTP."""
    servers: list[FunctionServer] = []

    def start(*names: str) -> str:
        server = FunctionServer(names)
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def make_user(username: str, *, role: str = "user", password: str = "password123", active: bool = True,
              email: str | None = None) -> str:
    """Insert a user straight into the database; returns its id."""
    from streamspace.auth.passwords import hash_password
    from streamspace.db import fetch_one

    row = fetch_one(
        "INSERT INTO users (username, email, full_name, role, active, password_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (username, email or f"{username}@example.com", username.title(), role, active, hash_password(password)),
    )
    assert row is not None
    return str(row["id"])


class Client:
    """One caller's view of the API over real HTTP (no token: anonymous)."""

    def __init__(self, base: str, token: str | None, username: str = "", user_id: str = "") -> None:
        import requests

        self.base = base
        self.username = username
        self.user_id = user_id
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.http.post(self.base + path, json=json, timeout=30, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.http.put(self.base + path, json=json, timeout=30, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.http.patch(self.base + path, json=json, timeout=30, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.http.delete(self.base + path, timeout=30, **kw)


def client_for(base: str, username: str, role: str = "user") -> Client:
    """A new user with that role, and its client."""
    user_id = make_user(username, role=role)
    return Client(base, token_for(user_id, username, role), username, user_id)


def token_for(user_id: str, username: str, role: str = "user", groups: list[str] | None = None) -> str:
    """An access token as the auth function would issue it: a new login family, no login round trip."""
    from streamspace.auth.families import start_family
    from streamspace.auth.tokens import issue_access_token
    from streamspace.db import transaction

    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)
    token, _ = issue_access_token(user_id=user_id, username=username, role=role, groups=groups or [],
                                  family_id=family_id)
    return token


def desktop_cookie(user_id: str, username: str, session: str, role: str = "user",
                   namespace: str = "streamspace", domain: str = "streamspace.local") -> str:
    """A session host's cookie value, made the way a browser gets it: a ticket, redeemed."""
    from streamspace.auth.families import start_family
    from streamspace.auth.principal import Principal
    from streamspace.db import transaction
    from streamspace.desktop.access import issue_ticket, redeem

    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)  # a login of its own, as a browser's
        ticket = issue_ticket(conn, Principal(user_id, username, role, (), family_id), namespace, session)
    return redeem(ticket, session, domain)[0]


# -- the simulated Kubernetes API server ------------------------------------------------------------

@contextmanager
def simulated_cluster(kubeconfig_dir: Path, rbac: list[dict[str, Any]] | None = None, **options: Any) -> Iterator:
    """A simulated API server with the project's CRDs and RBAC (`rbac`: these documents instead of
    knative/'s), made this process's kubeconfig cluster for the block (`options`: SimCluster's,
    e.g. kubelet timings)."""
    from streamspace import config, kube
    from streamspace.local.identities import serve_as_functions
    from streamspace.sim import SimCluster

    cluster = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), **{"kubelet_delay": 0.0, **options})
    cluster.start()
    kubeconfig = serve_as_functions(cluster, kubeconfig_dir / f"kubeconfig-{uuid.uuid4().hex[:6]}", rbac,
                                    sessions_namespace=config.environment().sessions_namespace)
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    kube.reset_client()
    try:
        yield cluster
    finally:
        kube.reset_client()
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        cluster.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A simulated API server with the project's CRDs and RBAC, made this process's kubeconfig cluster.

    Each function calls it as its own ServiceAccount (the kustomize tree's Roles and bindings are
    enforced); the test itself, calling `kube` or the official client directly, is the administrator.
    The tests run Sessions in the control plane's namespace (SESSIONS_NAMESPACE unset), so the sessions
    Roles are granted there, as the chart renders them with `sessions.namespace` set to the release's;
    tests/shipping/test_rbac_enforced.py runs the split trees as rendered.
    """
    with simulated_cluster(tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster
