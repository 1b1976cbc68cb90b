"""First start: with an empty users table, create the admin from ADMIN_USERNAME / ADMIN_PASSWORD.

Without ADMIN_PASSWORD a random password is generated and announced exactly once. Never a user
with an empty password. Safe under concurrent starts (one transaction, advisory lock).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from streamspace.auth.passwords import hash_password
from streamspace.config import environment
from streamspace.db import transaction

_BOOTSTRAP_LOCK_ID = 0x53544254  # "STBT"


def bootstrap_admin(announce: Callable[[str], None] = print) -> bool:
    """Create the first admin if no user exists; returns True when it created one."""

    cfg = environment()
    with transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_BOOTSTRAP_LOCK_ID,))
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM users) AS any").fetchone()
        if row and row["any"]:
            return False
        generated = cfg.admin_password is None
        password = cfg.admin_password or secrets.token_urlsafe(18)
        conn.execute(
            "INSERT INTO users (username, email, full_name, role, provider, password_hash)"
            " VALUES (%s, %s, %s, 'admin', 'local', %s)",
            (cfg.admin_username, "", "Administrator", hash_password(password)),
        )
        conn.execute(
            "INSERT INTO audit_log (actor, action, target_type, target)"
            " VALUES ('system', 'user.bootstrap', 'user', %s)",
            (cfg.admin_username,),
        )
    if generated:
        announce(f"Bootstrap admin created: username={cfg.admin_username} password={password} (shown once)")
    else:
        announce(f"Bootstrap admin created: username={cfg.admin_username} (password from ADMIN_PASSWORD)")
    return True
