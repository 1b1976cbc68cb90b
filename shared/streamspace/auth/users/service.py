"""Users: validation, the API's user object, and the admin operations (create, update, delete).

Every write runs in one transaction together with its audit row. The last active admin can never
be demoted, disabled or deleted (409), and nobody changes their own role or active state (403).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.auth.families import revoke_user_families
from streamspace.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, is_common_password
from streamspace.auth.users import store
from streamspace.config import ROLES, environment
from streamspace.db import connection, transaction
from streamspace.domain.errors import Conflict, Forbidden, NotFound, ValidationError
from streamspace.domain.names import dns_label, is_username_label, user_label
from streamspace.events import PROFILES_PURGE_TYPE, emit

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal
    from streamspace.db import Connection

# The users.username CHECK constraint, exactly.
USERNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.[A-Za-z]{2,63}$")
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 200

CREATE_FIELDS = frozenset({"username", "email", "fullName", "password", "role"})
UPDATE_FIELDS = frozenset({"email", "fullName", "role", "active", "password"})


# -- validation ---------------------------------------------------------------------------------

def valid_username(value: object, field: str = "username") -> str:
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value):
        raise ValidationError(field, "expected 1-63 lowercase letters, digits, '.', '_' or '-', starting and"
                                     " ending with a letter or digit")
    return value


def valid_email(value: object, field: str = "email") -> str:
    if not isinstance(value, str) or len(value) > 254 or not EMAIL_RE.fullmatch(value):
        raise ValidationError(field, "expected an email address such as name@example.com")
    return value


def valid_role(value: object, field: str = "role") -> str:
    if value not in ROLES:
        raise ValidationError(field, f"expected one of {', '.join(ROLES)}")
    return str(value)


def valid_text(value: object, field: str, max_length: int = MAX_NAME_LENGTH) -> str:
    if not isinstance(value, str) or len(value) > max_length or any(ord(c) < 32 for c in value):
        raise ValidationError(field, f"expected text of at most {max_length} characters without control characters")
    return value


def valid_password(value: object, field: str = "password", username: str | None = None) -> str:
    """A new password: 8 to 1024 characters, not only whitespace, not the username, and not on the
    list of the 30,000 most common passwords (shipped in the zxcvbn package; NIST SP 800-63B 5.1.1.2)."""
    if not isinstance(value, str) or not MIN_PASSWORD_LENGTH <= len(value) <= MAX_PASSWORD_LENGTH:
        raise ValidationError(field, f"expected {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    if not value.strip():
        raise ValidationError(field, "a password cannot be only whitespace")
    if username and value.strip().lower() == username.lower():
        raise ValidationError(field, "a password cannot be the username")
    if is_common_password(value):
        raise ValidationError(field, "this password is on the list of the most common passwords; choose another")
    return value


def valid_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "expected true or false")
    return value


def parse_uuid(value: str, what: str = "user") -> str:
    """A path id: anything that is not a UUID cannot name an object (404, not a database error)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no such {what}", error="not found") from None


# -- reading ------------------------------------------------------------------------------------

def user_to_api(row: dict[str, Any]) -> dict[str, Any]:
    """The contract's user object (never a password hash)."""
    return {
        "id": str(row["id"]),
        "username": row["username"],
        "email": row["email"] or "",
        "fullName": row["full_name"],
        "role": row["role"],
        "provider": row["provider"],
        "active": row["active"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "lastLogin": row["last_login"],
        "groups": list(row["groups"] or []),
    }


def user_by_username(username: str) -> dict[str, Any] | None:
    """{id, username, active} of the user of that name, or None."""
    return store.by_username(username)


def load_user(conn: Connection, user_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = store.load(conn, user_id, lock=lock)
    if row is None:
        raise NotFound("no such user", error="not found")
    return row


def get_user(user_id: str) -> dict[str, Any]:
    with connection() as conn:
        return user_to_api(load_user(conn, parse_uuid(user_id)))


def list_users(*, role: str | None, provider: str | None, active: bool | None, limit: int,
               offset: int) -> dict[str, Any]:
    if role is not None:
        valid_role(role)
    with connection() as conn:
        rows, total = store.page(conn, role=role, provider=provider, active=active, limit=limit, offset=offset)
    return {"users": [user_to_api(r) for r in rows], "total": total}


# -- writing ------------------------------------------------------------------------------------

def create_user(actor: Principal, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    username = valid_username(body.get("username"))
    email = valid_email(body.get("email"))
    full_name = valid_text(body.get("fullName", ""), "fullName")
    password = valid_password(body.get("password"), username=username)
    role = valid_role(body.get("role", "user"))
    password_hash = hash_password(password)  # before the transaction: no lock held while hashing
    with transaction() as conn:
        _refuse_label_collision(conn, username)
        user_id = store.insert_local(conn, username, email, full_name, role, password_hash)
        audit.record(conn, actor, "user.create", "user", username, client_ip, {"id": user_id, "role": role})
        return user_to_api(load_user(conn, user_id))


def _refuse_label_collision(conn: Connection, username: str) -> None:
    if label_is_taken(conn, username):
        raise Conflict(f"username {username!r} is not available (its label is another user's)",
                       error="username taken")


def label_is_taken(conn: Connection, username: str) -> bool:
    """Whether a new user's Kubernetes label (home volume, sessions) is another user's: only
    possible for two hashed labels on a hash collision, checked among the names that normalise alike.
    Every way a user is created asks this (here and single sign-on's provisioning), inside the
    creating transaction: the lock it takes serialises the check with the insert."""
    label = user_label(username)
    if is_username_label(label):
        return False  # a name used as is: no other user's label can equal it
    return any(user_label(name) == label for name in store.usernames_normalising_like(conn, dns_label(username)[:8]))


def update_user(actor: Principal, user_id: str, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
    user_id = parse_uuid(user_id)
    changes: dict[str, Any] = {}
    if "email" in body:
        changes["email"] = valid_email(body["email"])
    if "fullName" in body:
        changes["full_name"] = valid_text(body["fullName"], "fullName")
    if "role" in body:
        changes["role"] = valid_role(body["role"])
    if "active" in body:
        changes["active"] = valid_bool(body["active"], "active")
    if "password" in body:
        owner = store.name_and_provider(user_id)
        if owner and owner["provider"] != "local":
            # A password would let the account sign in past its provider (its MFA, its
            # deprovisioning): the provider is the only one that authenticates it.
            raise Conflict(f"{owner['username']!r} signs in with single sign-on ({owner['provider']}); "
                           "its password is kept by the identity provider, not here",
                           error="password managed by provider")
        changes["password_hash"] = hash_password(valid_password(body["password"],
                                                                username=owner["username"] if owner else None))
    if ("role" in changes or "active" in changes) and user_id == actor.user_id:
        raise Forbidden("you cannot change your own role or active state", error="forbidden")
    if not changes:
        return get_user(user_id)
    with transaction() as conn:
        if "role" in changes or "active" in changes:
            store.lock_admins(conn)
        before = load_user(conn, user_id, lock=True)
        stays_admin = changes.get("role", before["role"]) == "admin" and changes.get("active", before["active"])
        if before["role"] == "admin" and before["active"] and not stays_admin \
                and store.active_admins_other_than(conn, user_id) == 0:
            raise Conflict("this is the last active admin; make another admin first", error="last admin")
        store.update(conn, user_id, changes)
        if changes.get("active") is False or "password_hash" in changes:
            # Every login of the user ends, and with them every desktop ticket and cookie: each belongs
            # to the login it was opened from (desktop/store.py counts one of a revoked login as revoked).
            revoke_user_families(conn, user_id, "disabled" if changes.get("active") is False else "password reset")
        details = {k: v for k, v in changes.items() if k != "password_hash"}
        if "password_hash" in changes:
            details["password"] = "reset"
        if "role" in changes and changes["role"] != before["role"]:
            audit.record(conn, actor, "user.role", "user", before["username"], client_ip,
                         {"from": before["role"], "to": changes["role"]})
        audit.record(conn, actor, "user.update", "user", before["username"], client_ip, details)
        return user_to_api(load_user(conn, user_id))


def delete_user(actor: Principal, user_id: str, client_ip: str) -> None:
    user_id = parse_uuid(user_id)
    if user_id == actor.user_id:
        raise Forbidden("you cannot delete your own account", error="forbidden")
    with transaction() as conn:
        store.lock_admins(conn)
        before = load_user(conn, user_id, lock=True)
        if before["role"] == "admin" and before["active"] and store.active_admins_other_than(conn, user_id) == 0:
            raise Conflict("this is the last active admin; make another admin first", error="last admin")
        held = store.unterminated_sessions(conn, user_id)
        if held:
            raise Conflict(f"the user has {held} session(s) that are not terminated; delete them first",
                           error="user has sessions")
        store.delete(conn, user_id)  # its profile objects: profile_purges
        audit.record(conn, actor, "user.delete", "user", before["username"], client_ip, {"id": user_id})
    if environment().s3 is not None:
        # The users function holds no store credentials: the backup function deletes the objects now, and
        # its daily tick whatever this event could not reach it for (docs/s3.md).
        emit(PROFILES_PURGE_TYPE, "/streamspace/users", {"userId": user_id}, subject="profiles")


