"""Password hashing: argon2id; a bcrypt hash imported from elsewhere is accepted once and upgraded."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MIN_PASSWORD_LENGTH = 8
# A fixed hash to verify against when the user does not exist, so both paths cost the same time.
_DUMMY_PASSWORD = "streamspace-timing-equaliser"


@lru_cache(maxsize=1)
def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        from streamspace.domain.errors import ValidationError

        raise ValidationError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return str(_hasher().hash(password))


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, a new hash to store when the stored one should be upgraded)."""
    if not stored_hash:
        _dummy_verify(password)
        return False, None
    if stored_hash.startswith(("$2a$", "$2b$", "$2y$")):
        import bcrypt

        try:
            ok = bcrypt.checkpw(password.encode()[:72], stored_hash.encode())
        except ValueError:
            return False, None
        return ok, (_hasher().hash(password) if ok else None)
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _hasher()
    try:
        hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, (hasher.hash(password) if hasher.check_needs_rehash(stored_hash) else None)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return str(_hasher().hash(_DUMMY_PASSWORD))


def _dummy_verify(password: str) -> None:
    from argon2.exceptions import VerificationError

    try:
        _hasher().verify(_dummy_hash(), password)
    except VerificationError:
        pass
