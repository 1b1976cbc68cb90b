"""Process configuration, read once from the environment into one typed object.

A bad value stops the process at start with one line naming the variable and the accepted form
(`ConfigError`), never a traceback deep inside a request.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from streamspace import __version__
from streamspace.domain.duration import DurationError, parse_duration
from streamspace.records import record

ROLES = ("user", "operator", "admin")
INGRESS_CONTROLLERS = ("traefik", "nginx")
# Ingress classes a session Ingress may have: those the configured controller serves, where the forward-auth
# annotations it writes take effect. A class served by anything else would ignore them and publish the
# desktop open, so the session reconciler refuses it (INGRESS_AUTH_CLASSES names more classes of the
# same controller, e.g. a second Traefik installation's `traefik-internal`).
FORWARD_AUTH_CLASSES = {"traefik": ("traefik",), "nginx": ("nginx",)}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and the accepted form."""


@record
class Environment:
    env: str
    database_url: str | None  # None: use the embedded PostgreSQL in data_dir
    db_pool_size: int
    db_prepared_statements: bool
    api_port: int
    api_host: str
    data_dir: Path
    namespace: str  # the control plane's: the functions, their Secret, broker and sources
    # Where Sessions and Templates live with every object a Session owns (pods, claims, Services,
    # Ingresses, NetworkPolicies): ownerReferences never cross namespaces. Defaults to `namespace`.
    sessions_namespace: str
    # The install's values of the settings ingress.domain / ingress.class (INGRESS_DOMAIN, INGRESS_CLASS):
    # `migrate` stores them while no admin has changed the setting (settings.service.apply_install_settings).
    ingress_domain: str
    ingress_class: str
    ingress_controller: str  # traefik | nginx: which forward-auth headers to read, which annotations to write
    ingress_auth_classes: tuple[str, ...]  # ingress classes that controller serves (FORWARD_AUTH_CLASSES)
    sync_interval_seconds: int
    jwt_signing_kid: str
    jwt_keys: Mapping[str, str] = field(repr=False)  # kid -> secret; verification accepts all of them
    jwt_issuer: str = "streamspace"
    jwt_audience: str = "streamspace-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 7 * 24 * 3600
    cors_allowed_origins: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    admin_username: str = "admin"
    admin_password: str | None = field(default=None, repr=False)
    cluster_mode: str = "auto"
    # The simulated cluster (make run): seconds to pull an image a node lacks, and to start a container.
    sim_image_pull_seconds: float = 0.0
    sim_start_seconds: float = 0.0
    max_body_bytes: int = 1024 * 1024
    heartbeat_window_seconds: int = 60
    desktop_ticket_ttl_seconds: int = 30  # an openUrl's ticket; at most a minute
    desktop_access_ttl_seconds: int = 12 * 3600  # a session host's cookie
    live_stream_seconds: int = 120  # how long one live-update stream stays open (then the client reconnects)
    live_streams: int = 4  # live-update streams one process serves at once (each holds a worker thread)
    login_max_failures: int = 5  # per username+address before progressive delays
    login_max_address_failures: int = 20  # per address (any usernames) in the window
    login_window_seconds: int = 300
    log_level: str = "INFO"
    k_sink: str | None = None
    catalog_allow_file_urls: bool = False
    catalog_allow_private_urls: bool = False
    catalog_ssh_known_hosts: Path | None = None  # None: <data dir>/known_hosts
    oidc: OidcSettings | None = None  # None: single sign-on is not configured
    api_server: str = "werkzeug"  # make run's HTTP server: werkzeug (threaded, bounded) or gunicorn (compose)
    db_pool_timeout_seconds: float = 2.0  # waiting for a pooled connection, then 503
    # Proxies whose X-Forwarded-For entries are believed (empty: the header is ignored).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    s3: S3Settings | None = None  # None: no object store configured (backups and S3 homes refused)
    backup_keep: BackupRetention = field(default_factory=lambda: BackupRetention(7, 4, 6))
    home_storage: str = "volume"  # volume (a home-<user> claim) | s3 (persistent profiles in the object store)
    # The home claims' access mode: what the storage class can give (kind's local-path: ReadWriteOnce only).
    home_access_mode: str = "ReadWriteOnce"
    profile_keep: int = 5  # saved versions kept per user (the current one included)
    profile_url_ttl_seconds: int = 600  # how long a presigned profile URL is good for
    profile_agent: ProfileAgentSettings = field(default_factory=lambda: ProfileAgentSettings())
    session_history_days: int = 30  # how long the per-minute samples of sessions by state are kept

    @property
    def production(self) -> bool:
        return self.env == "production"


@record
class OidcSettings:
    """Single sign-on with one OpenID Provider (OIDC_*); see docs/sso.md."""

    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False)  # client_secret_basic / client_secret_post
    private_key_pem: str | None = field(repr=False)  # private_key_jwt
    private_key_id: str | None
    token_auth_method: str
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]  # our callback URLs; the first is the default
    provider_name: str
    username_claim: str
    groups_claim: str
    post_logout_redirect_uri: str | None
    disable_password_login: bool
    break_glass_admin: str


@record
class S3Settings:
    """The object store of backups and persistent profiles (S3_*); credentials come from the
    standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a web identity on EKS), never from here."""

    bucket: str
    prefix: str  # "" or ends with "/"
    region: str
    endpoint_url: str | None  # an S3-compatible store (MinIO, Ceph); None: AWS
    sse: str  # AES256 (S3-managed keys) | aws:kms | none (a store without server-side encryption)
    kms_key_id: str | None


@record
class ProfileAgentSettings:
    """How session pods run the profile agent where HOME_STORAGE=s3 (PROFILE_AGENT_*, PROFILE_SAVE_*;
    docs/s3.md)."""

    image: str = f"ghcr.io/streamspace/streamspace-profile-agent:v{__version__}"
    api_url: str = ""  # the agent's way to the storage function; "" : http://profile-api.<namespace>.svc.cluster.local
    # native: an init container with restartPolicy Always (Kubernetes >= 1.29), stopped after the desktop;
    # container: a regular container (1.28), stopped together with the desktop.
    sidecar: str = "native"
    save_interval_seconds: int = 900  # periodic saves while the session runs (0: only when it stops)
    save_grace_seconds: int = 120  # the pod's terminationGracePeriodSeconds: the desktop's stop and the save
    home_uid: int = 1000  # the agent's user (owns what it restores) unless the Template sets runAsUser
    # Where the agent of a warm desktop waits for its claim (only session-reconcile may reach it).
    claim_port: int = 8095


@record
class BackupRetention:
    """How many backups to keep: the newest of each of the last `daily` days, `weekly` ISO weeks and
    `monthly` months (a backup may count for several)."""

    daily: int
    weekly: int
    monthly: int


_SSE_MODES = ("AES256", "aws:kms", "none")


def _s3(env: Mapping[str, str]) -> S3Settings | None:
    """The S3_* group: S3_BUCKET turns it on; any other S3_* without it is a mistake, named."""
    import re

    bucket = env.get("S3_BUCKET", "").strip()
    if not bucket:
        others = sorted(k for k in env if k.startswith("S3_") and env[k].strip())
        if others:
            raise ConfigError(f"S3_BUCKET: required when {others[0]} is set (the bucket of backups and profiles)")
        return None
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket) or ".." in bucket:
        raise ConfigError(f"S3_BUCKET: expected a bucket name (3-63 lowercase letters, digits, dots, hyphens), "
                          f"got {bucket!r}")
    prefix = env.get("S3_PREFIX", "").strip().strip("/")
    if prefix and (not re.fullmatch(r"[A-Za-z0-9!_.*'()/-]+", prefix) or "//" in prefix
                   or any(part in (".", "..") for part in prefix.split("/"))):
        raise ConfigError(f"S3_PREFIX: expected a key prefix such as streamspace/prod (letters, digits, -_.!*'()/), "
                          f"got {env.get('S3_PREFIX')!r}")
    region = env.get("S3_REGION", "").strip() or env.get("AWS_REGION", "").strip() or "us-east-1"
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", region):
        raise ConfigError(f"S3_REGION: expected a region such as eu-west-1, got {region!r}")
    endpoint = env.get("S3_ENDPOINT_URL", "").strip().rstrip("/") or None
    if endpoint:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"S3_ENDPOINT_URL: expected an http(s):// URL of an S3-compatible store, "
                              f"got {endpoint!r}")
    sse = _choice(env, "S3_SSE", "AES256", _SSE_MODES)
    kms_key = env.get("S3_KMS_KEY_ID", "").strip() or None
    if (sse == "aws:kms") != bool(kms_key):
        raise ConfigError("S3_KMS_KEY_ID: set it exactly when S3_SSE is aws:kms (the KMS key id or ARN)")
    return S3Settings(bucket=bucket, prefix=f"{prefix}/" if prefix else "", region=region, endpoint_url=endpoint,
                      sse=sse, kms_key_id=kms_key)


_TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


def _absolute_url(raw: str, name: str, production: bool) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment \
            or (parts.scheme == "http" and production and not loopback):
        form = "an https:// URL" if production else "an absolute http(s):// URL"
        raise ConfigError(f"{name}: expected {form} without a fragment, got {raw!r}")
    return raw


def _oidc(env: Mapping[str, str], production: bool, admin_username: str, *,
          client_credential: bool = True) -> OidcSettings | None:
    """The OIDC_* group: all or nothing, each bad value named in one line. `client_credential` False: this
    process is not given the client's credential (MOUNTED_SECRETS), so it never exchanges a code."""
    issuer = env.get("OIDC_ISSUER", "").strip().rstrip("/")
    disable_password = _bool(env, "OIDC_DISABLE_PASSWORD_LOGIN", False)
    if not issuer:
        others = sorted(k for k in env if k.startswith("OIDC_") and env[k].strip())
        if others:
            raise ConfigError(f"OIDC_ISSUER: required when {others[0]} is set (the provider's issuer URL)")
        return None
    _absolute_url(issuer, "OIDC_ISSUER", production)
    client_id = env.get("OIDC_CLIENT_ID", "").strip()
    if not client_id:
        raise ConfigError("OIDC_CLIENT_ID: required when OIDC_ISSUER is set (the client id registered at the provider)")
    secret = env.get("OIDC_CLIENT_SECRET") or None
    key_file = env.get("OIDC_CLIENT_PRIVATE_KEY_FILE", "").strip()
    if client_credential and bool(secret) == bool(key_file):
        raise ConfigError("OIDC_CLIENT_SECRET: set exactly one of OIDC_CLIENT_SECRET or OIDC_CLIENT_PRIVATE_KEY_FILE")
    private_key = None
    if key_file:
        try:
            private_key = Path(key_file).read_text()
        except OSError as exc:
            raise ConfigError(f"OIDC_CLIENT_PRIVATE_KEY_FILE: cannot read {key_file!r}: {exc.strerror}") from None
        if "PRIVATE KEY" not in private_key:
            raise ConfigError(f"OIDC_CLIENT_PRIVATE_KEY_FILE: expected a PEM private key (RSA or EC) in {key_file!r}")
    method = _choice(env, "OIDC_TOKEN_AUTH_METHOD", "private_key_jwt" if key_file else "client_secret_basic",
                     _TOKEN_AUTH_METHODS)
    if client_credential and (method == "private_key_jwt") != bool(key_file):
        raise ConfigError(f"OIDC_TOKEN_AUTH_METHOD: {method} does not fit the credential given"
                          " (private_key_jwt needs OIDC_CLIENT_PRIVATE_KEY_FILE, the others OIDC_CLIENT_SECRET)")
    scopes = tuple(dict.fromkeys((env.get("OIDC_SCOPES") or "openid profile email").replace(",", " ").split()))
    if "openid" not in scopes:
        raise ConfigError(f"OIDC_SCOPES: must include openid, got {' '.join(scopes)!r}")
    redirects = tuple(u.strip() for u in env.get("OIDC_REDIRECT_URIS", "").split(",") if u.strip())
    if not redirects:
        raise ConfigError("OIDC_REDIRECT_URIS: required when OIDC_ISSUER is set (comma-separated callback URLs"
                          " ending in /api/v1/auth/oidc/callback)")
    for uri in redirects:
        if not _absolute_url(uri, "OIDC_REDIRECT_URIS", production).split("?")[0].endswith(
                "/api/v1/auth/oidc/callback"):
            raise ConfigError(f"OIDC_REDIRECT_URIS: {uri!r} is not a URL of /api/v1/auth/oidc/callback")
    logout = env.get("OIDC_POST_LOGOUT_REDIRECT_URI", "").strip() or None
    if logout:
        _absolute_url(logout, "OIDC_POST_LOGOUT_REDIRECT_URI", production)
    claim_names = {}
    for name, default in (("OIDC_USERNAME_CLAIM", "preferred_username"), ("OIDC_GROUPS_CLAIM", "groups")):
        claim = env.get(name, "").strip() or default
        if not claim.replace("_", "").replace("-", "").replace(".", "").replace(":", "").replace("/", "").isalnum():
            raise ConfigError(f"{name}: expected a claim name such as {default}, got {claim!r}")
        claim_names[name] = claim
    provider_name = env.get("OIDC_PROVIDER_NAME", "").strip() or "OpenID Connect"
    if len(provider_name) > 60 or any(ord(c) < 32 for c in provider_name):
        raise ConfigError("OIDC_PROVIDER_NAME: expected a short display name such as Keycloak (at most 60 characters)")
    return OidcSettings(
        issuer=issuer, client_id=client_id, client_secret=secret, private_key_pem=private_key,
        private_key_id=env.get("OIDC_CLIENT_KEY_ID", "").strip() or None, token_auth_method=method, scopes=scopes,
        redirect_uris=redirects, provider_name=provider_name, username_claim=claim_names["OIDC_USERNAME_CLAIM"],
        groups_claim=claim_names["OIDC_GROUPS_CLAIM"], post_logout_redirect_uri=logout,
        disable_password_login=disable_password,
        break_glass_admin=env.get("OIDC_BREAK_GLASS_ADMIN", "").strip().lower() or admin_username)


def _profile_agent(env: Mapping[str, str]) -> ProfileAgentSettings:
    image = env.get("PROFILE_AGENT_IMAGE", "").strip() or ProfileAgentSettings().image  # this release's
    if any(c.isspace() for c in image):
        raise ConfigError(f"PROFILE_AGENT_IMAGE: expected an image reference, got {image!r}")
    api_url = env.get("PROFILE_API_URL", "").strip().rstrip("/")
    if api_url and not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"PROFILE_API_URL: expected an http(s) URL of the storage function, got {api_url!r}")
    interval = env.get("PROFILE_SAVE_INTERVAL", "").strip()
    return ProfileAgentSettings(
        image=image,
        api_url=api_url,
        sidecar=_choice(env, "PROFILE_SIDECAR", "native", ("native", "container")),
        save_interval_seconds=0 if interval in ("0", "off") else _duration(env, "PROFILE_SAVE_INTERVAL", "15m",
                                                                          minimum=60),
        save_grace_seconds=_duration(env, "PROFILE_SAVE_GRACE", "2m", minimum=30, maximum=3600),
        home_uid=_int(env, "PROFILE_HOME_UID", 1000, 1, 2**31 - 1),
        claim_port=_int(env, "PROFILE_CLAIM_PORT", 8095, 1024, 65535),
    )


def _serving_threads(env: Mapping[str, str]) -> int:
    """gunicorn's threads per worker as functions-framework reads them (THREADS), bounded for a
    pool size; 4 when unset or unreadable (functions-framework itself refuses a bad THREADS)."""
    raw = env.get("THREADS", "")
    return min(50, max(1, int(raw))) if raw.strip().isdigit() else 4


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer from {lo} to {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: expected an integer from {lo} to {hi}, got {raw!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, hi: float) -> float:
    """A number of seconds (fractions allowed) from 0 to `hi`; unset is 0."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds from 0 to {hi:g}, got {raw!r}") from None
    if not 0 <= value <= hi:  # also refuses nan
        raise ConfigError(f"{name}: expected a number of seconds from 0 to {hi:g}, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _duration(env: Mapping[str, str], name: str, default: str, minimum: int = 1, maximum: int | None = None) -> int:
    raw = env.get(name) or default
    try:
        seconds = parse_duration(raw, name)
    except DurationError:
        raise ConfigError(f"{name}: expected a duration such as 90s, 30m, 1h or 1h30m, got {raw!r}") from None
    if seconds < minimum:
        raise ConfigError(f"{name}: expected a duration of at least {minimum}s, got {raw!r}")
    if maximum is not None and seconds > maximum:
        raise ConfigError(f"{name}: expected a duration of at most {maximum}s, got {raw!r}")
    return seconds


_CLASS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _ingress_classes(env: Mapping[str, str], controller: str) -> tuple[str, ...]:
    """The controller's own class names plus INGRESS_AUTH_CLASSES (comma-separated IngressClass names)."""
    extra = [name.strip() for name in env.get("INGRESS_AUTH_CLASSES", "").split(",") if name.strip()]
    for name in extra:
        if not _CLASS_NAME.fullmatch(name):
            raise ConfigError(f"INGRESS_AUTH_CLASSES: expected comma-separated IngressClass names served by the"
                              f" {controller} controller, got {name!r}")
    return tuple(dict.fromkeys([*FORWARD_AUTH_CLASSES[controller], *extra]))


def _install_ingress_class(env: Mapping[str, str], controller: str) -> str:
    """INGRESS_CLASS: the install's session ingress class ('' when unset), one the controller serves."""
    name = env.get("INGRESS_CLASS", "").strip()
    accepted = _ingress_classes(env, controller)
    if name and name not in accepted:
        raise ConfigError(f"INGRESS_CLASS: {name!r} is not served by the {controller} ingress controller"
                          f" (INGRESS_CONTROLLER); expected one of: {', '.join(accepted)}"
                          f" (INGRESS_AUTH_CLASSES adds classes of the same controller)")
    return name


# A user's sessions share one home claim: ReadWriteOnce keeps them on the node that holds it,
# ReadWriteMany (a network file system) lets them run anywhere; ReadWriteOncePod allows one session at a time.
HOME_ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...], *,
            upper: bool = False) -> str:
    raw = (env.get(name) or default).strip()
    if upper:
        raw = raw.upper()
    if raw not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: expected comma-separated CIDRs such as 10.0.0.0/8,::1/128, "
                              f"got {item!r}") from None
    return tuple(networks)


def _database_url(env: Mapping[str, str]) -> str | None:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("DATABASE_URL: expected postgresql://user:password@host:port/dbname")
        return url
    host = env.get("DB_HOST", "").strip()
    if not host:
        return None
    port = _int(env, "DB_PORT", 5432, 1, 65535)
    user = env.get("DB_USER", "streamspace")
    password = env.get("DB_PASSWORD", "")
    name = env.get("DB_NAME", "streamspace")
    sslmode = env.get("DB_SSLMODE", "prefer")
    if sslmode not in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
        raise ConfigError(
            f"DB_SSLMODE: expected disable, allow, prefer, require, verify-ca or verify-full, got {sslmode!r}")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"postgresql://{auth}@{host}:{port}/{quote(name, safe='')}?sslmode={sslmode}"


def _jwt_keys(env: Mapping[str, str], production: bool, data_dir: Path, *,
              absent_allowed: bool = False) -> tuple[str, dict[str, str]]:
    """The signing key and every key still accepted for verification (rotation).

    JWT_SECRET signs (key id JWT_KEY_ID, default k1); JWT_PREVIOUS_SECRETS lists `kid:secret`
    pairs, comma separated, that verify tokens issued before a rotation. `absent_allowed`: a production
    process not given JWT_SECRET (MOUNTED_SECRETS) has no keys: it neither issues nor accepts tokens.
    """
    kid = env.get("JWT_KEY_ID", "k1").strip() or "k1"
    secret = env.get("JWT_SECRET", "")
    if absent_allowed and not secret:
        return kid, {}
    if production:
        if len(secret.encode()) < 32:
            raise ConfigError("JWT_SECRET: required in production, at least 32 bytes (e.g. `openssl rand -hex 32`)")
    elif not secret:
        secret = _dev_secret(data_dir, "jwt-secret")
    keys = {kid: secret}
    for item in filter(None, (p.strip() for p in env.get("JWT_PREVIOUS_SECRETS", "").split(","))):
        old_kid, sep, old_secret = item.partition(":")
        if not sep or not old_kid or len(old_secret.encode()) < (32 if production else 1):
            raise ConfigError("JWT_PREVIOUS_SECRETS: expected comma-separated kid:secret pairs")
        if old_kid == kid:
            raise ConfigError(f"JWT_PREVIOUS_SECRETS: key id {old_kid!r} is the signing key's JWT_KEY_ID")
        keys[old_kid] = old_secret
    return kid, keys


SECRET_NAMES = ("DB_PASSWORD", "DATABASE_URL", "JWT_SECRET", "JWT_PREVIOUS_SECRETS", "STREAMSPACE_SECRET_KEY",
                "WEBHOOK_SECRET", "ADMIN_USERNAME", "ADMIN_PASSWORD", "OIDC_CLIENT_SECRET")


def _mounted_secrets(env: Mapping[str, str]) -> frozenset[str] | None:
    """MOUNTED_SECRETS: the keys of the Secret this process was given, one by one (the chart gives each
    function only the keys it uses). Then only those of them production requires must be present; unset
    (compose, a whole Secret as envFrom): every secret production requires."""
    raw = env.get("MOUNTED_SECRETS")
    if raw is None:
        return None
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = sorted(names - set(SECRET_NAMES))
    if unknown:
        raise ConfigError(f"MOUNTED_SECRETS: unknown key {unknown[0]!r}; expected names from {', '.join(SECRET_NAMES)}")
    return names

def _dev_secret(data_dir: Path, name: str) -> str:
    """A random secret kept in the data folder, so development restarts keep tokens valid."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value
    except FileExistsError:  # another process wrote it between our read and create
        return path.read_text().strip()


def _namespace_setting(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if len(value) > 63 or not all(c.islower() or c.isdigit() or c == "-" for c in value) \
            or value.startswith("-") or value.endswith("-"):
        raise ConfigError(f"{name}: expected a DNS label (a namespace name), got {value!r}")
    return value


def load_environment(env: Mapping[str, str] | None = None) -> Environment:
    env = os.environ if env is None else env
    app_env = _choice(env, "STREAMSPACE_ENV", "development", ("development", "production"))
    production = app_env == "production"
    data_dir = Path(env.get("STREAMSPACE_DATA_DIR") or ".streamspace").absolute()
    database_url = _database_url(env)
    if production and database_url is None:
        raise ConfigError("DATABASE_URL: required in production (or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME)")
    mounted = _mounted_secrets(env)
    kid, keys = _jwt_keys(env, production and (mounted is None or "JWT_SECRET" in mounted), data_dir,
                          absent_allowed=production and mounted is not None and "JWT_SECRET" not in mounted)
    secret_key = env.get("STREAMSPACE_SECRET_KEY") or None
    if production and not secret_key and (mounted is None or "STREAMSPACE_SECRET_KEY" in mounted):
        raise ConfigError("STREAMSPACE_SECRET_KEY: required in production (a Fernet key, 32 url-safe base64 bytes)")
    origins = tuple(o.strip().rstrip("/") for o in env.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip())
    if "*" in origins:
        raise ConfigError("CORS_ALLOWED_ORIGINS: list the allowed origins explicitly; '*' is refused")
    admin_username = env.get("ADMIN_USERNAME", "admin").strip() or "admin"
    oidc = _oidc(env, production, admin_username,
                 client_credential=mounted is None or "OIDC_CLIENT_SECRET" in mounted)
    s3 = _s3(env)
    home_storage = _choice(env, "HOME_STORAGE", "volume", ("volume", "s3"))
    if home_storage == "s3" and s3 is None:
        raise ConfigError("HOME_STORAGE: s3 needs the object store (set S3_BUCKET and the other S3_* settings)")
    namespace = _namespace_setting(env, "STREAMSPACE_NAMESPACE", "streamspace")
    sessions_namespace = _namespace_setting(env, "SESSIONS_NAMESPACE", namespace)
    controller = _choice(env, "INGRESS_CONTROLLER", "traefik", INGRESS_CONTROLLERS)
    return Environment(
        env=app_env,
        database_url=database_url,
        # One connection per serving thread (THREADS is functions-framework's gunicorn setting, 8 in
        # the images): with fewer, requests queue for a connection while Postgres sits idle.
        db_pool_size=_int(env, "DB_POOL_SIZE", _serving_threads(env), 1, 50),
        # Server-side prepared statements save planning on hot paths; turn them off behind a
        # PgBouncer in transaction mode older than 1.21.
        db_prepared_statements=_bool(env, "DB_PREPARED_STATEMENTS", True),
        api_port=_int(env, "API_PORT", 8000, 1, 65535),
        # Loopback unless told otherwise (a container sets 0.0.0.0): the local system is a dev tool.
        api_host=env.get("API_HOST", "127.0.0.1").strip() or "127.0.0.1",
        data_dir=data_dir,
        namespace=namespace,
        sessions_namespace=sessions_namespace,
        ingress_domain=env.get("INGRESS_DOMAIN", "").strip(),
        ingress_class=_install_ingress_class(env, controller),
        ingress_controller=controller,
        ingress_auth_classes=_ingress_classes(env, controller),
        sync_interval_seconds=_duration(env, "SYNC_INTERVAL", "1h", minimum=10),
        jwt_signing_kid=kid,
        jwt_keys=keys,
        access_token_ttl_seconds=_duration(env, "ACCESS_TOKEN_TTL", "15m", minimum=30),
        refresh_token_ttl_seconds=_duration(env, "REFRESH_TOKEN_TTL", "168h", minimum=60),
        cors_allowed_origins=origins,
        webhook_secret=env.get("WEBHOOK_SECRET") or None,
        secret_key=secret_key,
        admin_username=admin_username,
        admin_password=env.get("ADMIN_PASSWORD") or None,
        cluster_mode=_choice(env, "STREAMSPACE_CLUSTER", "auto", ("auto", "sim", "kube")),
        sim_image_pull_seconds=_seconds(env, "SIM_IMAGE_PULL_SECONDS", 3600),
        sim_start_seconds=_seconds(env, "SIM_START_SECONDS", 3600),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
        heartbeat_window_seconds=_duration(env, "HEARTBEAT_WINDOW", "60s", minimum=5),
        live_stream_seconds=_duration(env, "LIVE_STREAM_SECONDS", "120s", minimum=1, maximum=540),
        # Default: half of the worker's threads (functions-framework's THREADS, 8 by default).
        live_streams=_int(env, "LIVE_STREAMS", max(1, _int(env, "THREADS", 8, 1, 1024) // 2), 1, 1024),
        desktop_ticket_ttl_seconds=_duration(env, "DESKTOP_TICKET_TTL", "30s", minimum=1, maximum=60),
        desktop_access_ttl_seconds=_duration(env, "DESKTOP_ACCESS_TTL", "12h", minimum=60,
                                             maximum=7 * 24 * 3600),
        login_max_failures=_int(env, "LOGIN_MAX_FAILURES", 5, 1, 1000),
        login_max_address_failures=_int(env, "LOGIN_MAX_ADDRESS_FAILURES", 20, 1, 100000),
        login_window_seconds=_duration(env, "LOGIN_WINDOW", "5m", minimum=1),
        # Any case: the shipped ConfigMap and values say `info`, as operators write it.
        log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
        k_sink=env.get("K_SINK") or None,
        catalog_allow_file_urls=_bool(env, "CATALOG_ALLOW_FILE_URLS", False),
        catalog_allow_private_urls=_bool(env, "CATALOG_ALLOW_PRIVATE_URLS", False),
        catalog_ssh_known_hosts=Path(env["CATALOG_SSH_KNOWN_HOSTS"].strip())
        if env.get("CATALOG_SSH_KNOWN_HOSTS", "").strip() else None,
        oidc=oidc,
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        api_server=_choice(env, "API_SERVER", "werkzeug", ("werkzeug", "gunicorn")),
        db_pool_timeout_seconds=float(_int(env, "DB_POOL_TIMEOUT", 2, 1, 60)),
        s3=s3,
        backup_keep=BackupRetention(daily=_int(env, "BACKUP_KEEP_DAILY", 7, 0, 3660),
                                    weekly=_int(env, "BACKUP_KEEP_WEEKLY", 4, 0, 520),
                                    monthly=_int(env, "BACKUP_KEEP_MONTHLY", 6, 0, 1200)),
        home_storage=home_storage,
        home_access_mode=_choice(env, "HOME_ACCESS_MODE", "ReadWriteOnce", HOME_ACCESS_MODES),
        profile_keep=_int(env, "PROFILE_KEEP", 5, 1, 100),
        profile_url_ttl_seconds=_duration(env, "PROFILE_URL_TTL", "10m", minimum=60, maximum=3600),
        profile_agent=_profile_agent(env),
        session_history_days=_int(env, "SESSION_HISTORY_DAYS", 30, 1, 400),
    )


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The process environment, read and checked once; a configuration error ends the process with one
    line. (Platform settings that admins change at run time are `settings.service.platform_settings()`.)"""
    try:
        return load_environment()
    except ConfigError as exc:
        print(f"streamspace: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def reset_environment() -> None:
    """Forget the cached environment (tests and the local runner change it)."""
    environment.cache_clear()
