"""Password hashing: argon2id; a bcrypt hash imported from elsewhere is accepted once and upgraded.

PASSWORD_HASH_PROFILE selects the argon2id cost: `default` (argon2-cffi's RFC 9106 low-memory
profile) or `test` (minimal cost, for the test suite only: refused when STREAMSPACE_ENV=production).
Hashes made under another profile still verify; a login with a weaker-than-current hash upgrades it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from streamspace.config import environment
from streamspace.domain.errors import ValidationError

MIN_PASSWORD_LENGTH = 8
# A fixed hash to verify against when the user does not exist, so both paths cost the same time.
_DUMMY_PASSWORD = "streamspace-timing-equaliser"


PROFILES = ("default", "test")


def hash_profile() -> str:
    """The configured PASSWORD_HASH_PROFILE; a bad or (in production) a `test` value ends the
    process like any configuration error. Functions that hash call this at start."""

    profile = (os.environ.get("PASSWORD_HASH_PROFILE") or "default").strip()
    error = None
    if profile not in PROFILES:
        error = f"PASSWORD_HASH_PROFILE: expected one of {', '.join(PROFILES)}, got {profile!r}"
    elif profile == "test" and environment().production:
        error = "PASSWORD_HASH_PROFILE: 'test' (weak hashing for the test suite) is refused in production"
    if error is not None:
        import sys

        print(f"streamspace: configuration error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    return profile


@lru_cache(maxsize=1)
def _hasher() -> Any:
    from argon2 import PasswordHasher

    if hash_profile() == "test":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:

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


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # Imported on first use: the list is a large module, and only password changes need it.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common_password(password: str) -> bool:
    """Whether `password` (ignoring case and surrounding whitespace) is on zxcvbn's list of the
    30,000 most common passwords."""
    return password.strip().lower() in _common_passwords()
