"""The profile agent's credential: one token per session of one user (HOME_STORAGE=s3, docs/s3.md).

An HMAC of namespace, session and user id under a key derived from the signing JWT secret: stable for
the session's life (the reconciler puts it in the Secret it owns, and the desired set stays the same),
and worth nothing beyond that session's user's profile. Whether the session still stands (not ended)
is the storage function's check, at each use.
"""

from __future__ import annotations

import hashlib
import hmac

from streamspace.config import environment

PREFIX = "ssp1"


def _token_key() -> bytes:
    cfg = environment()
    return hmac.new(cfg.jwt_keys[cfg.jwt_signing_kid].encode(), b"streamspace profile agent", hashlib.sha256).digest()


def agent_token(namespace: str, session: str, user_id: str) -> str:
    """The profile agent's token for one session of one user."""
    mac = hmac.new(_token_key(), f"{namespace}\x00{session}\x00{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{PREFIX}:{namespace}:{session}:{user_id}:{mac}"  # ':' is in no Kubernetes name


def token_subject(token: str | None) -> tuple[str, str, str] | None:
    """(namespace, session, user id) of a token this server signed; None for anything else."""
    parts = (token or "").split(":")
    if len(parts) != 5 or parts[0] != PREFIX:
        return None
    _, namespace, session, user_id, mac = parts
    if not hmac.compare_digest(agent_token(namespace, session, user_id).rsplit(":", 1)[1], mac):
        return None
    return namespace, session, user_id
