"""Repository credentials: checked when given, encrypted at rest, decrypted only to fetch.

Fernet (AES-128-CBC + HMAC-SHA256) keyed by STREAMSPACE_SECRET_KEY. In development without that
variable a key is generated once into the data folder (like the development JWT secret), so
restarts can still decrypt what was stored. No route ever returns a secret.

Secret forms per authType:
- `token`: the access token (sent as HTTP basic auth with user `x-access-token`, which GitHub,
  GitLab and Gitea accept for personal and app tokens);
- `basic`: `username:password`;
- `ssh`: an OpenSSH private key (PEM/OpenSSH text, unencrypted).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from streamspace.config import environment
from streamspace.domain.errors import DomainError, Unavailable, ValidationError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

AUTH_TYPES = ("none", "token", "basic", "ssh")
MAX_SECRET_LENGTH = 16 * 1024
DEV_KEY_FILE = "catalog-secret-key"

_lock = threading.Lock()
_fernet: tuple[str, Fernet] | None = None


class SecretUnavailable(Unavailable):
    """The secret key is unusable, or a stored secret cannot be decrypted with it (the key changed):
    trying again does not help until an admin fixes STREAMSPACE_SECRET_KEY or re-adds the repository."""

    default_error = "secret key unusable"
    retryable = False


def check_auth(auth_type: object, secret: object, scheme: str) -> tuple[str, str | None]:
    """Validate an (authType, authSecret) pair for a URL scheme -> (auth_type, secret or None)."""
    if auth_type is None or auth_type == "":
        auth_type = "none"
    if auth_type not in AUTH_TYPES:
        raise ValidationError("authType", f"expected one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
    if secret is not None and not isinstance(secret, str):
        raise ValidationError("authSecret", "expected a string")
    if auth_type == "none":
        if secret:
            raise ValidationError("authSecret", "authType none takes no authSecret; set authType token, basic or ssh")
        return "none", None
    if not secret:
        raise ValidationError("authSecret", f"required for authType {auth_type}")
    if not isinstance(secret, str):
        raise ValidationError("authSecret", "expected a string")
    if len(secret) > MAX_SECRET_LENGTH:
        raise ValidationError("authSecret", f"at most {MAX_SECRET_LENGTH} characters")
    if scheme == "file":
        raise ValidationError("authType", "file:// repositories take no credentials")
    if auth_type in ("token", "basic"):
        if scheme != "https":
            raise ValidationError("authType", f"authType {auth_type} needs an https:// URL (use ssh with ssh URLs)")
        if any(c in secret for c in "\r\n\0"):
            raise ValidationError("authSecret", "must be a single line")
        if auth_type == "basic":
            user, sep, password = secret.partition(":")
            if not sep or not user or not password:
                raise ValidationError("authSecret", "expected username:password for authType basic")
    if auth_type == "ssh":
        if scheme != "ssh":
            raise ValidationError("authType", "authType ssh needs an ssh:// or user@host:path URL")
        text = secret.strip()
        if not (text.startswith("-----BEGIN ") and "PRIVATE KEY-----" in text.splitlines()[0]
                and text.rstrip().endswith("PRIVATE KEY-----")):
            raise ValidationError("authSecret",
                                  "expected an OpenSSH or PEM private key (-----BEGIN ... PRIVATE KEY-----)")
        if "\0" in secret:
            raise ValidationError("authSecret", "must not contain NUL characters")
    return str(auth_type), secret


def _key() -> str:
    conf = environment()
    if conf.secret_key:
        return conf.secret_key
    if conf.production:  # never a key of its own in production: nothing else could read what it encrypted
        raise DomainError("this function is not given STREAMSPACE_SECRET_KEY (MOUNTED_SECRETS)")
    from cryptography.fernet import Fernet

    path = conf.data_dir / DEV_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        conf.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it between our read and create
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
        return path.read_text().strip()


def fernet() -> Fernet:
    global _fernet
    from cryptography.fernet import Fernet

    key = _key()
    with _lock:
        if _fernet is None or _fernet[0] != key:
            try:
                _fernet = (key, Fernet(key.encode()))
            except ValueError:
                raise SecretUnavailable(
                    "STREAMSPACE_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes; "
                    "generate one with `python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`)") from None
        return _fernet[1]


def encrypt(secret: str) -> bytes:
    return fernet().encrypt(secret.encode())


def decrypt(token: bytes | memoryview) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return fernet().decrypt(bytes(token)).decode()
    except InvalidToken:
        raise SecretUnavailable("the stored credential cannot be decrypted with the current "
                                "STREAMSPACE_SECRET_KEY; delete and re-add the repository with its secret") from None
