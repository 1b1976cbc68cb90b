"""Platform settings kept in Postgres (table `configuration`), edited through /api/v1/config; the
process environment is another thing (`config.environment()`).

`platform_settings()` is the one read (one query) that the sessions API and the reconcile functions
use: it answers every known key, the stored value or the documented default. Writes go through
`update_platform_settings`, which validates every key's type first (all or nothing) and records one
audit row per changed key in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamspace import audit
from streamspace.config import environment
from streamspace.db import transaction
from streamspace.domain.duration import format_duration, parse_duration
from streamspace.domain.errors import Unprocessable, ValidationError
from streamspace.domain.names import PLATFORM_OBJECT_PREFIX
from streamspace.domain.quantity import cpu_millis, format_cpu, parse_memory
from streamspace.settings import store

if TYPE_CHECKING:
    from streamspace.auth.principal import Principal

# Where a desktop may NOT connect by default: the cluster's internal ranges (private, shared, link-local;
# the platform's namespace, Postgres and the functions live there). Setting session.egressDenyCidrs.
# The cloud metadata addresses are denied whatever the configuration says.
DEFAULT_EGRESS_DENY = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                       "fc00::/7", "fe80::/10")

INGRESS_DOMAIN = "ingress.domain"
INGRESS_CLASS = "ingress.class"
INGRESS_PORT = "ingress.port"  # the port session URLs name; null: the scheme's own (80/443)
STORAGE_CLASS = "storage.className"
STORAGE_DEFAULT_SIZE = "storage.defaultSize"
SESSION_IDLE_TIMEOUT = "session.defaultIdleTimeout"
SESSION_MAX_DURATION = "session.defaultMaxDuration"
SESSION_AUTO_HIBERNATION = "session.enableAutoHibernation"
RESOURCES_MEMORY = "resources.defaultMemory"
RESOURCES_CPU = "resources.defaultCPU"
AUTH_TOTP_REQUIRED = "auth.totpRequired"  # who must use two-factor login (local accounts; see mfa.service)
TOTP_POLICIES = ("off", "admins", "everyone")
SESSION_EGRESS_DENY = "session.egressDenyCidrs"
TEMPLATE_ENV_SECRETS = "templates.envSecrets"
TEMPLATE_ENV_CONFIG_MAPS = "templates.envConfigMaps"
WARM_POOL_BUDGET = "warmPool.budget"  # warm desktops the platform keeps, all templates together
WARM_POOL_BUDGET_MAX = 1000

# The seeded values of migration 0001: what a key means when its row is missing.
DEFAULTS: dict[str, Any] = {
    INGRESS_DOMAIN: "streamspace.local",
    INGRESS_CLASS: "traefik",
    INGRESS_PORT: None,
    STORAGE_CLASS: "",
    STORAGE_DEFAULT_SIZE: "50Gi",
    SESSION_IDLE_TIMEOUT: "30m",
    SESSION_MAX_DURATION: "8h",
    SESSION_AUTO_HIBERNATION: True,
    RESOURCES_MEMORY: "2Gi",
    RESOURCES_CPU: "1000m",
    AUTH_TOTP_REQUIRED: "off",
    # Ranges a desktop may not reach (DEFAULT_EGRESS_DENY): the cluster's internal ones.
    SESSION_EGRESS_DENY: list(DEFAULT_EGRESS_DENY),
    # Secrets / ConfigMaps (by name, in the sessions' namespace) that templates may read in env.
    TEMPLATE_ENV_SECRETS: [],
    TEMPLATE_ENV_CONFIG_MAPS: [],
    WARM_POOL_BUDGET: 10,
}

_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_NAME_FORM = "a lowercase DNS name such as streamspace.example.com (letters, digits, '-' and '.')"


def _dns_name(value: object, field: str, *, allow_empty: bool = False) -> str:
    if isinstance(value, str) and allow_empty and value == "":
        return value
    if not isinstance(value, str) or len(value) > 253 or _DNS_SUBDOMAIN_RE.fullmatch(value) is None:
        extra = " or an empty string (the cluster default)" if allow_empty else ""
        raise ValidationError(field, f"expected {DNS_NAME_FORM}{extra}, got {value!r}")
    return value


def _ingress_class(value: object, field: str) -> str:
    """An IngressClass the configured controller serves: only there do the forward-auth annotations
    the session reconciler writes take effect (any other class would publish desktops open)."""
    name = _dns_name(value, field)
    cfg = environment()
    if name not in cfg.ingress_auth_classes:
        raise Unprocessable(
            f"{field}: {name!r} is not served by the {cfg.ingress_controller} ingress controller"
            f" (INGRESS_CONTROLLER), so its sessions' desktops would have no forward-auth; accepted:"
            f" {', '.join(cfg.ingress_auth_classes)} (INGRESS_AUTH_CLASSES adds classes of the same controller)",
            error=f"unsupported {field}")
    return name


def _duration(value: object, field: str) -> str:
    return format_duration(parse_duration(value, field))


def _memory(value: object, field: str) -> str:
    parse_memory(value, field)
    return value if isinstance(value, str) else str(value)


def _cpu(value: object, field: str) -> str:
    millis = cpu_millis(value, field)
    return value if isinstance(value, str) else format_cpu(millis)


def _port(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError(field, f"expected a port from 1 to 65535, or null for the scheme's own, got {value!r}")
    return value


def _boolean(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):  # v0.2 clients sent strings
        return value.lower() == "true"
    raise ValidationError(field, f"expected true or false, got {value!r}")


def _budget(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= WARM_POOL_BUDGET_MAX:
        raise ValidationError(field, f"expected a whole number of desktops from 0 to {WARM_POOL_BUDGET_MAX}, "
                              f"got {value!r}")
    return value


def _totp_policy(value: object, field: str) -> str:
    if value not in TOTP_POLICIES:
        raise ValidationError(field, f"expected one of {', '.join(TOTP_POLICIES)}, got {value!r}")
    return str(value)


def _template_objects(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 100:
        raise ValidationError(field, f"expected a list of at most 100 names, got {value!r}")
    names = [_dns_name(item, field) for item in value]
    for name in names:
        if name.startswith(PLATFORM_OBJECT_PREFIX):
            raise ValidationError(field, f"the platform's own objects ({PLATFORM_OBJECT_PREFIX}*) are never "
                                         f"given to desktops, got {name!r}")
    return sorted(set(names))


def _cidrs(value: object, field: str) -> list[str]:
    import ipaddress

    if not isinstance(value, list) or len(value) > 100:
        raise ValidationError(field, f"expected a list of at most 100 CIDRs such as 10.0.0.0/8, got {value!r}")
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)) if isinstance(item, str) else "")
        except ValueError:
            out.append("")
        if not out[-1]:
            raise ValidationError(field, f"expected a CIDR such as 10.0.0.0/8 or fc00::/7, got {item!r}")
    return list(dict.fromkeys(out))


_VALIDATORS: dict[str, Callable[[object, str], Any]] = {
    INGRESS_DOMAIN: _dns_name,
    INGRESS_CLASS: _ingress_class,
    INGRESS_PORT: _port,
    STORAGE_CLASS: lambda v, f: _dns_name(v, f, allow_empty=True),
    STORAGE_DEFAULT_SIZE: _memory,
    SESSION_IDLE_TIMEOUT: _duration,
    SESSION_MAX_DURATION: _duration,
    SESSION_AUTO_HIBERNATION: _boolean,
    RESOURCES_MEMORY: _memory,
    RESOURCES_CPU: _cpu,
    AUTH_TOTP_REQUIRED: _totp_policy,
    SESSION_EGRESS_DENY: _cidrs,
    TEMPLATE_ENV_SECRETS: _template_objects,
    TEMPLATE_ENV_CONFIG_MAPS: _template_objects,
    WARM_POOL_BUDGET: _budget,
}
KNOWN_KEYS: tuple[str, ...] = tuple(_VALIDATORS)


def validate_changes(changes: Mapping[str, object]) -> dict[str, Any]:
    """Validate a PATCH body -> the values to store (canonical forms). ValidationError naming the key."""
    if not changes:
        raise ValidationError("body", f"give at least one key to change; known keys: {', '.join(KNOWN_KEYS)}")
    result: dict[str, Any] = {}
    for key, value in changes.items():
        validator = _VALIDATORS.get(key)
        if validator is None:
            raise ValidationError(key, f"unknown configuration key; known keys: {', '.join(KNOWN_KEYS)}")
        result[key] = validator(value, key)
    return result


def platform_settings() -> dict[str, Any]:
    """Every platform setting -> its value (stored, else the default). One query."""
    return {**DEFAULTS, **store.stored_values()}


def update_platform_settings(changes: Mapping[str, object], actor: Principal | None,
                             client_ip: str = "") -> dict[str, Any]:
    """Validate and store `changes`; one audit row per key whose value changed. Returns the new settings."""
    values = validate_changes(changes)
    with transaction() as conn:
        old = store.lock_values(conn, list(values))
        for key, value in values.items():
            store.put(conn, key, value, actor.username if actor else "system")
            previous = old.get(key, DEFAULTS.get(key))
            if previous != value:
                audit.record(conn, actor, "config.update", "config", key, client_ip, {"old": previous, "new": value})
    return platform_settings()


INSTALL_PREFIX = "env:"  # updated_by of a value the install set (never a username: ':' is in none)


def apply_install_settings() -> list[str]:
    """Store the install's INGRESS_CLASS and INGRESS_DOMAIN (Helm values, the ConfigMap) as the settings
    ingress.class / ingress.domain, unless an admin has changed the setting through the API since: the
    migration Job runs this on every install and upgrade. Returns the keys changed."""
    env = environment()
    wanted = {key: value for key, value in ((INGRESS_CLASS, env.ingress_class), (INGRESS_DOMAIN, env.ingress_domain))
              if value}
    values = validate_changes(wanted) if wanted else {}
    changed = []
    with transaction() as conn:
        for key, value in values.items():
            env_name = "INGRESS_CLASS" if key == INGRESS_CLASS else "INGRESS_DOMAIN"
            if store.put_unless_changed_by_admin(conn, key, value, INSTALL_PREFIX + env_name, INSTALL_PREFIX):
                changed.append(key)
    return changed
