"""Kubernetes-safe names for users, sessions and the objects a session owns.

Names that reach Kubernetes are DNS-1123 labels (lowercase alphanumerics and ``-``, at most 63
characters). Anything longer is cut and given a stable hash suffix, so the same input always
maps to the same name and two long inputs sharing a prefix stay distinct.
"""

from __future__ import annotations

import hashlib
import re

from streamspace.domain.errors import ValidationError

# The CRD schemas use this exact string (tests/crds checks they agree).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_LABEL_RE = re.compile(DNS_LABEL_PATTERN)
_INVALID_RUN_RE = re.compile(r"[^a-z0-9]+")

DNS_LABEL_MAX = 63
OWNED_PREFIX = "ss-"
HOME_CLAIM_PREFIX = "home-"
# The platform's own objects (its Secrets, ConfigMaps, ...): a Template may never name one.
PLATFORM_OBJECT_PREFIX = "streamspace-"
# Owned objects are named ss-<session>, so a session name leaves room for the prefix.
SESSION_NAME_MAX = DNS_LABEL_MAX - len(OWNED_PREFIX)
_HASH_LENGTH = 10


def is_dns_label(value: str, max_len: int = DNS_LABEL_MAX) -> bool:
    return len(value) <= max_len and _DNS_LABEL_RE.fullmatch(value) is not None


def stable_hash(value: str, length: int = _HASH_LENGTH) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:length]


def shorten(name: str, max_len: int = DNS_LABEL_MAX) -> str:
    """`name` when it fits, else a prefix of it plus ``-<hash of the whole name>``."""
    if len(name) <= max_len:
        return name
    prefix = name[: max_len - _HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{stable_hash(name)}" if prefix else stable_hash(name, max_len)


def dns_label(value: str, max_len: int = DNS_LABEL_MAX) -> str:
    """Best-effort DNS label: lowercased, runs of other characters become ``-``, ends trimmed.

    Never empty: input with no usable character becomes ``x-<hash>``. Distinct inputs can map to
    the same label (``A.B`` and ``a-b``); use user_label where that matters.
    """
    label = _INVALID_RUN_RE.sub("-", value.lower()).strip("-")
    if not label:
        label = f"x-{stable_hash(value)}"
    return shorten(label, max_len)


# What user_label appends to a username it cannot use as is: ``-`` and 10 hex digits of its hash.
_HASHED_LABEL_RE = re.compile(r".*-[0-9a-f]{10}")


def is_username_label(label: str) -> bool:
    """Whether `label` is a username used as is (so the user it stands for is the one of that name)."""
    return is_dns_label(label) and _HASHED_LABEL_RE.fullmatch(label) is None


def user_label(username: str, max_len: int = DNS_LABEL_MAX) -> str:
    """The label that stands for a user in Kubernetes names and labels (home volume, sessions).

    Injective: a username that is a DNS label and does not end like a hashed label is used as is;
    any other is normalised and given a hash of the original. So ``Alice`` and ``alice`` never
    share a home volume, and neither do ``a.b`` (``a-b-2e7336dc8e``) and the user literally named
    ``a-b-2e7336dc8e`` (who gets ``a-b-2e7336dc8e-<hash of that name>``). Two hashed labels could
    only meet on a hash collision, which user creation refuses (auth.users.service.create_user).
    Every existing user keeps its label except one whose name has that hashed shape: the only
    names that could have shared a volume, which get a new one (the old claim is left in place).
    """
    if len(username) <= max_len and is_username_label(username):
        return username
    base = dns_label(username, max_len - _HASH_LENGTH - 1)
    return f"{base}-{stable_hash(username)}"


def session_name(user: str, template: str, random_suffix: str) -> str:
    """``<user>-<template>-<random>``, a DNS label of at most SESSION_NAME_MAX characters.

    The random suffix is kept whole (it is what makes the name unique); the user/template part is
    shortened with a stable hash when the total would be too long.
    """
    if not random_suffix or not is_dns_label(random_suffix, 16):
        raise ValueError(f"random suffix must be 1-16 lowercase alphanumerics, got {random_suffix!r}")
    stem = shorten(f"{user_label(user)}-{dns_label(template)}", SESSION_NAME_MAX - len(random_suffix) - 1)
    return f"{stem}-{random_suffix}"


def validate_session_name(name: str, field: str = "name") -> str:
    if not is_dns_label(name, SESSION_NAME_MAX):
        raise ValidationError(field, f"must be a DNS-1123 label of at most {SESSION_NAME_MAX} characters, got {name!r}")
    return name


def session_object_name(session: str) -> str:
    """Name of the Deployment, Service, Ingress and NetworkPolicy a session owns: ``ss-<session>``."""
    return shorten(f"{OWNED_PREFIX}{session}")


def home_claim_name(user: str) -> str:
    """Name of the user's persistent home volume claim: ``home-<user>`` (shared by their sessions)."""
    return shorten(f"{HOME_CLAIM_PREFIX}{user_label(user)}")
