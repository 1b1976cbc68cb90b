"""Template specs: reading and validating them, the legacy format, and the REST view.

One reader (parse_template_spec) turns any accepted spec into a typed TemplateSpec or a list of
problems naming their fields; every other function here is built on it, so the CRD path, the
REST API, catalog sync and the converter all accept and refuse exactly the same specs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from streamspace.domain.conversion import (
    API_VERSION,
    CONVERSION_NOTES_ANNOTATION,
    LEGACY_API_VERSION,
    ORIGINAL_NAME_ANNOTATION,
    Conversion,
)
from streamspace.domain.duration import format_duration, parse_duration
from streamspace.domain.errors import Conflict, ValidationError, join_field
from streamspace.domain.names import DNS_LABEL_PATTERN, PLATFORM_OBJECT_PREFIX, dns_label, is_dns_label
from streamspace.domain.resources import (
    ResourceRequirements,
    flat_resources,
    merge_resources,
    normalise_resources,
)
from streamspace.records import record

TEMPLATE_KIND = "Template"


class AppType(StrEnum):
    DESKTOP = "desktop"
    WEBAPP = "webapp"


class Capability(StrEnum):
    NETWORK = "Network"
    AUDIO = "Audio"
    CLIPBOARD = "Clipboard"
    USB = "USB"
    PRINTING = "Printing"


PORT_PROTOCOLS = ("TCP", "UDP")
VNC_PROTOCOLS = ("rfb", "websocket")
DEFAULT_VNC_PORT = 3000
DEFAULT_VNC_PROTOCOL = "websocket"
USER_HOME_VOLUME = "user-home"
DEFAULT_HOME_MOUNT_PATH = "/config"

# The CRD schemas use these exact strings (tests/crds checks they agree).
IMAGE_PATTERN = (
    r"^[a-zA-Z0-9][a-zA-Z0-9._-]*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
# Only http(s) and inline images: the web UI renders the icon, so no javascript: URLs.
ICON_PATTERN = r"^((https?://|data:image/)[^\s]*)?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
PORT_NAME_MAX = 15
TEXT_LIMITS = {"displayName": 256, "description": 8192, "category": 128, "icon": 8192, "baseImage": 512}
TAG_MAX_LENGTH = 64
LIST_MAX_ITEMS = 64

_IMAGE_RE = re.compile(IMAGE_PATTERN)
_ICON_RE = re.compile(ICON_PATTERN)
_ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)
_DNS_LABEL_RE = re.compile(DNS_LABEL_PATTERN)

_SPEC_FIELDS = frozenset(
    {
        "displayName",
        "description",
        "category",
        "icon",
        "tags",
        "baseImage",
        "appType",
        "defaultResources",
        "ports",
        "env",
        "volumeMounts",
        "vnc",
        "kasmvnc",
        "webapp",
        "capabilities",
        "runAsUser",
        "runAsGroup",
        "enabled",
        "warmPool",
        "prePull",
    }
)
# Fields of the REST Template object that are not part of the spec; accepted on input, never stored.
_API_READ_ONLY_FIELDS = frozenset({"name", "namespace", "status", "createdAt"})

_T = TypeVar("_T")


@record
class PortSpec:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"


@record
class VolumeMountSpec:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str | None = None


@record
class VncSpec:
    enabled: bool = True
    port: int = DEFAULT_VNC_PORT
    protocol: str = DEFAULT_VNC_PROTOCOL
    encryption: bool = False


WARM_POOL_MAX_SIZE = 100  # per Template; the platform budget (warmPool.budget) usually binds first


WARM_POOL_MAX_WINDOWS = 20
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # index = datetime.weekday()
# A window's start (00:00-23:59) and end (also 24:00); the CRD schema carries the same regexes.
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
CLOCK_END_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_CLOCK_RE = re.compile(CLOCK_PATTERN)
_CLOCK_END_RE = re.compile(CLOCK_END_PATTERN)


@record
class PoolWindow:
    """A recurring time of the week with its own pool size: on `days` (0 = Monday), from
    `start_minute` to `end_minute` (minutes after local midnight; end exclusive, at most 1440)."""

    days: frozenset[int]
    start_minute: int
    end_minute: int
    size: int


@record
class WarmPoolSpec:
    """How many unassigned, running desktops of a Template to keep, and how old one may get.

    `size` is kept outside every window of `schedule`; inside one, that window's size (the largest,
    where windows overlap). The windows' times are local to `time_zone` (IANA name)."""

    size: int = 0
    max_age_seconds: int | None = None
    time_zone: str = "UTC"
    schedule: tuple[PoolWindow, ...] = ()

    @property
    def peak(self) -> int:
        """The most desktops the pool ever keeps: what the platform budget must hold."""
        return max([self.size, *(w.size for w in self.schedule)])


@record
class WebappSpec:
    enabled: bool = True
    port: int | None = None
    path: str = "/"
    health_check: str | None = None


@record
class TemplateSpec:
    display_name: str
    base_image: str
    description: str = ""
    category: str = ""
    icon: str = ""
    tags: tuple[str, ...] = ()
    app_type: AppType = AppType.DESKTOP
    default_resources: ResourceRequirements | None = None
    ports: tuple[PortSpec, ...] = ()
    env: tuple[dict[str, Any], ...] = ()  # Kubernetes EnvVar objects, passed to the pod as they are
    volume_mounts: tuple[VolumeMountSpec, ...] = ()
    vnc: VncSpec | None = None
    webapp: WebappSpec | None = None
    capabilities: tuple[Capability, ...] = ()
    # The non-root user (and group) the image runs as, when the Template opts in: then the session pod
    # passes Pod Security `restricted`. None: the image starts as root (baseline).
    run_as_user: int | None = None
    run_as_group: int | None = None
    enabled: bool = True  # False: hidden from users' catalog and not launchable (`ensure_launchable`)
    warm_pool: WarmPoolSpec | None = None
    pre_pull: bool = False  # True: the image is kept on every node (domain.warm.wanted_image)

    @property
    def stream_port(self) -> int | None:
        """The port a session exposes: vnc.port when vnc is enabled, else webapp.port, else the first port."""
        if self.vnc is not None and self.vnc.enabled:
            return self.vnc.port
        if self.webapp is not None and self.webapp.enabled and self.webapp.port is not None:
            return self.webapp.port
        return self.ports[0].container_port if self.ports else None

    @property
    def home_mount_path(self) -> str:
        """Where the user's home volume is mounted (the `user-home` mount, else /config)."""
        for mount in self.volume_mounts:
            if mount.name == USER_HOME_VOLUME:
                return mount.mount_path
        return DEFAULT_HOME_MOUNT_PATH

    def to_spec(self) -> dict[str, Any]:
        """The canonical CRD spec: camelCase, `vnc` (never `kasmvnc`), Kubernetes-style resources."""
        spec: dict[str, Any] = {"displayName": self.display_name}
        for key, text in (
            ("description", self.description),
            ("category", self.category),
            ("icon", self.icon),
        ):
            if text:
                spec[key] = text
        if self.tags:
            spec["tags"] = list(self.tags)
        spec["baseImage"] = self.base_image
        spec["appType"] = str(self.app_type)
        if self.default_resources is not None:
            spec["defaultResources"] = copy.deepcopy(dict(self.default_resources))
        if self.ports:
            spec["ports"] = [
                {
                    **({"name": p.name} if p.name else {}),
                    "containerPort": p.container_port,
                    "protocol": p.protocol,
                }
                for p in self.ports
            ]
        if self.env:
            spec["env"] = [copy.deepcopy(var) for var in self.env]
        if self.volume_mounts:
            spec["volumeMounts"] = [_volume_mount_to_spec(m) for m in self.volume_mounts]
        if self.vnc is not None:
            spec["vnc"] = {
                "enabled": self.vnc.enabled,
                "port": self.vnc.port,
                "protocol": self.vnc.protocol,
                "encryption": self.vnc.encryption,
            }
        if self.webapp is not None:
            webapp: dict[str, Any] = {"enabled": self.webapp.enabled, "path": self.webapp.path}
            if self.webapp.port is not None:
                webapp["port"] = self.webapp.port
            if self.webapp.health_check is not None:
                webapp["healthCheck"] = self.webapp.health_check
            spec["webapp"] = webapp
        if self.capabilities:
            spec["capabilities"] = [str(c) for c in self.capabilities]
        if self.run_as_user is not None:
            spec["runAsUser"] = self.run_as_user
        if self.run_as_group is not None:
            spec["runAsGroup"] = self.run_as_group
        if not self.enabled:  # absent means enabled (the CRD's default)
            spec["enabled"] = False
        if self.warm_pool is not None:
            spec["warmPool"] = warm_pool_to_spec(self.warm_pool)
        if self.pre_pull:
            spec["prePull"] = True
        return spec


def _volume_mount_to_spec(mount: VolumeMountSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": mount.name, "mountPath": mount.mount_path}
    if mount.read_only:
        out["readOnly"] = True
    if mount.sub_path:
        out["subPath"] = mount.sub_path
    return out


# --- reading -------------------------------------------------------------------------------------


class _Reader:
    """Reads one spec, collecting every problem (and every warning) instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ValidationError] = []
        self.warnings: list[ValidationError] = []

    def fail(self, field: str, message: str) -> None:
        self.problems.append(ValidationError(field, message))

    def warn(self, field: str, message: str) -> None:
        self.warnings.append(ValidationError(field, message))

    def attempt(self, read: Callable[[], _T]) -> _T | None:
        try:
            return read()
        except ValidationError as error:
            self.problems.append(error)
            return None

    def mapping(self, value: object, field: str, known: frozenset[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(field, f"expected an object, got {_describe(value)}")
            return {}
        for key in value:
            if known is not None and key not in known:
                self.fail(join_field(field, str(key)), "unknown field")
        return value

    def items(self, value: object, field: str) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(field, f"expected a list, got {_describe(value)}")
            return []
        if len(value) > LIST_MAX_ITEMS:
            self.fail(field, f"at most {LIST_MAX_ITEMS} entries")
        return [(f"{field}[{index}]", item) for index, item in enumerate(value)]

    def text(
        self,
        value: object,
        field: str,
        *,
        required: bool = False,
        max_len: int = 1024,
        pattern: re.Pattern[str] | None = None,
        form: str = "",
    ) -> str:
        if value is None or value == "":
            if required:
                self.fail(field, "required")
            return ""
        if not isinstance(value, str):
            self.fail(field, f"expected a string, got {_describe(value)}")
            return ""
        if len(value) > max_len:
            self.fail(field, f"at most {max_len} characters")
        elif pattern is not None and pattern.fullmatch(value) is None:
            self.fail(field, f"expected {form}, got {value!r}")
        return value

    def port(self, value: object, field: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.fail(field, f"expected a port number 1-65535, got {_describe(value)}")
            return None
        return value

    def id_number(self, value: object, field: str, minimum: int) -> int | None:
        """A user or group id (Kubernetes: int64 up to 2^31-1 for these)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 2147483647:
            self.fail(field, f"expected an id {minimum}-2147483647, got {_describe(value)}"
                      + (" (0 is root: leave it unset instead)" if value == 0 and minimum else ""))
            return None
        return value

    def flag(self, value: object, field: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(field, f"expected true or false, got {_describe(value)}")
            return default
        return value

    def choice(self, value: object, field: str, choices: tuple[str, ...], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.fail(field, f"expected one of {', '.join(choices)}, got {_describe(value)}")
            return default
        return str(value)


def _describe(value: object) -> str:
    return "nothing" if value is None else repr(value) if isinstance(value, str | int | float) else type(value).__name__


def _read_ports(r: _Reader, value: object, field: str) -> tuple[PortSpec, ...]:
    ports = []
    for item_field, item in r.items(value, field):
        entry = r.mapping(item, item_field, frozenset({"name", "containerPort", "protocol"}))
        name = r.text(
            entry.get("name"),
            join_field(item_field, "name"),
            max_len=PORT_NAME_MAX,
            pattern=_DNS_LABEL_RE,
            form="a lowercase port name such as vnc or http",
        )
        port = r.port(entry.get("containerPort"), join_field(item_field, "containerPort"))
        protocol = r.choice(entry.get("protocol"), join_field(item_field, "protocol"), PORT_PROTOCOLS, "TCP")
        if port is not None:
            ports.append(PortSpec(container_port=port, name=name or None, protocol=protocol))
    return tuple(ports)


def _env_value(value: object) -> object:
    # Unquoted YAML (`PUID: 1000`, `DEBUG: true`) arrives as a number or bool; Kubernetes wants text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


# Pod fields a desktop may learn about itself (the downward API); never the node, host or service account.
SAFE_FIELD_PATHS = frozenset({"metadata.name", "metadata.namespace", "metadata.uid", "status.podIP", "status.podIPs"})
RESOURCE_FIELDS = frozenset({"limits.cpu", "limits.memory", "limits.ephemeral-storage",
                             "requests.cpu", "requests.memory", "requests.ephemeral-storage"})
# The platform's own Secrets and ConfigMaps are all named streamspace-*: never readable by a template.
_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_OBJECT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_KEY_REFS = {"secretKeyRef": "Secret", "configMapKeyRef": "ConfigMap"}


def _read_env_source(r: _Reader, value: object, field: str) -> dict[str, Any]:
    """A `valueFrom`, field by field: exactly one source, each with only the fields Kubernetes knows."""
    source = r.mapping(value, field, frozenset({*_KEY_REFS, "fieldRef", "resourceFieldRef"}))
    given = [key for key in source if source.get(key) is not None]
    if len(given) != 1:
        r.fail(field, "give exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef")
        return {}
    kind = given[0]
    at = join_field(field, kind)
    if kind in _KEY_REFS:
        ref = r.mapping(source[kind], at, frozenset({"name", "key", "optional"}))
        out: dict[str, Any] = {
            "name": r.text(ref.get("name"), join_field(at, "name"), required=True, max_len=253,
                           pattern=_OBJECT_NAME_RE, form=f"the name of a {_KEY_REFS[kind]}"),
            "key": r.text(ref.get("key"), join_field(at, "key"), required=True, max_len=253,
                          pattern=_CONFIG_KEY_RE, form="a key such as API_TOKEN"),
        }
        if ref.get("optional") is not None:
            out["optional"] = r.flag(ref.get("optional"), join_field(at, "optional"), False)
        if out["name"].startswith(PLATFORM_OBJECT_PREFIX):
            r.fail(join_field(at, "name"), f"the platform's own objects ({PLATFORM_OBJECT_PREFIX}*) are never "
                                           "given to desktops")
        return {kind: out}
    if kind == "fieldRef":
        ref = r.mapping(source[kind], at, frozenset({"fieldPath", "apiVersion"}))
        path = ref.get("fieldPath")
        if path not in SAFE_FIELD_PATHS:
            r.fail(join_field(at, "fieldPath"), f"expected one of {', '.join(sorted(SAFE_FIELD_PATHS))}, "
                                                f"got {_describe(path)}")
        if ref.get("apiVersion") not in (None, "v1"):
            r.fail(join_field(at, "apiVersion"), f"expected v1, got {_describe(ref.get('apiVersion'))}")
        return {kind: {"fieldPath": path, **({"apiVersion": "v1"} if ref.get("apiVersion") else {})}}
    ref = r.mapping(source[kind], at, frozenset({"resource", "containerName", "divisor"}))
    resource = ref.get("resource")
    if resource not in RESOURCE_FIELDS:
        r.fail(join_field(at, "resource"), f"expected one of {', '.join(sorted(RESOURCE_FIELDS))}, "
                                           f"got {_describe(resource)}")
    out = {"resource": resource}
    if ref.get("containerName") is not None:
        out["containerName"] = r.choice(ref.get("containerName"), join_field(at, "containerName"), ("session",),
                                        "session")
    if ref.get("divisor") is not None:
        out["divisor"] = r.text(_env_value(ref.get("divisor")), join_field(at, "divisor"), max_len=32,
                                pattern=re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?"),
                                form="a quantity such as 1, 1m or 1Mi")
    return {kind: out}


def _read_env(r: _Reader, value: object, field: str) -> tuple[dict[str, Any], ...]:
    env = []
    for item_field, item in r.items(value, field):
        entry = r.mapping(item, item_field, frozenset({"name", "value", "valueFrom"}))
        name = r.text(
            entry.get("name"),
            join_field(item_field, "name"),
            required=True,
            max_len=256,
            pattern=_ENV_NAME_RE,
            form="an environment variable name such as TZ or PUID",
        )
        var: dict[str, Any] = {"name": name}
        if entry.get("value") is not None:
            var["value"] = r.text(_env_value(entry["value"]), join_field(item_field, "value"), max_len=32768)
        if entry.get("valueFrom") is not None:
            if "value" in var:
                r.fail(join_field(item_field, "valueFrom"), "give either value or valueFrom, not both")
            var["valueFrom"] = _read_env_source(r, entry["valueFrom"], join_field(item_field, "valueFrom"))
        env.append(var)
    return tuple(env)


def env_reference_problems(env: Sequence[Mapping[str, Any]], secrets: Collection[str],
                           config_maps: Collection[str], field: str = "spec.env") -> list[str]:
    """Every env entry that reads a Secret or ConfigMap an admin has not marked for templates
    (configuration keys templates.envSecrets / templates.envConfigMaps), as ``<field>: <message>``."""
    allowed = {"secretKeyRef": secrets, "configMapKeyRef": config_maps}
    problems = []
    for index, var in enumerate(env):
        for kind, ref in (var.get("valueFrom") or {}).items():
            if kind in allowed and (ref or {}).get("name") not in allowed[kind]:
                key = "templates.envSecrets" if kind == "secretKeyRef" else "templates.envConfigMaps"
                problems.append(f"{field}[{index}].valueFrom.{kind}.name: {_KEY_REFS[kind]} "
                                f"{(ref or {}).get('name')!r} is not marked for templates (an admin lists it in {key})")
    return problems


def _read_volume_mounts(r: _Reader, value: object, field: str) -> tuple[VolumeMountSpec, ...]:
    mounts = []
    for item_field, item in r.items(value, field):
        entry = r.mapping(item, item_field, frozenset({"name", "mountPath", "readOnly", "subPath"}))
        name = r.text(
            entry.get("name"),
            join_field(item_field, "name"),
            required=True,
            max_len=63,
            pattern=_DNS_LABEL_RE,
            form="a volume name such as user-home",
        )
        path = r.text(entry.get("mountPath"), join_field(item_field, "mountPath"), required=True, max_len=1024)
        if path and not path.startswith("/"):
            r.fail(join_field(item_field, "mountPath"), f"expected an absolute path, got {path!r}")
        sub_path = r.text(entry.get("subPath"), join_field(item_field, "subPath"), max_len=1024)
        if sub_path.startswith("/") or ".." in sub_path.split("/"):
            r.fail(join_field(item_field, "subPath"), f"expected a relative path without '..', got {sub_path!r}")
        read_only = r.flag(entry.get("readOnly"), join_field(item_field, "readOnly"), False)
        mounts.append(VolumeMountSpec(name=name, mount_path=path, read_only=read_only, sub_path=sub_path or None))
    return tuple(mounts)


def _read_vnc(r: _Reader, spec: Mapping[str, Any], field: str) -> VncSpec | None:
    if spec.get("vnc") is not None and spec.get("kasmvnc") is not None:
        r.fail(join_field(field, "kasmvnc"), "legacy synonym of vnc; give only one of them")
    key = "vnc" if spec.get("vnc") is not None else "kasmvnc"
    if spec.get(key) is None:
        return None
    vnc_field = join_field(field, key)
    known = (
        frozenset({"enabled", "port"}) if key == "kasmvnc" else frozenset({"enabled", "port", "protocol", "encryption"})
    )
    vnc = r.mapping(spec[key], vnc_field, known)
    port = DEFAULT_VNC_PORT if vnc.get("port") is None else r.port(vnc["port"], join_field(vnc_field, "port"))
    return VncSpec(
        enabled=r.flag(vnc.get("enabled"), join_field(vnc_field, "enabled"), True),
        port=port or DEFAULT_VNC_PORT,
        protocol=r.choice(vnc.get("protocol"), join_field(vnc_field, "protocol"), VNC_PROTOCOLS, DEFAULT_VNC_PROTOCOL),
        encryption=r.flag(vnc.get("encryption"), join_field(vnc_field, "encryption"), False),
    )


def warm_pool_to_spec(pool: WarmPoolSpec) -> dict[str, Any]:
    """A parsed warm pool -> its spec (and REST) form, the inverse of reading it."""
    out: dict[str, Any] = {"size": pool.size}
    if pool.max_age_seconds is not None:
        out["maxAge"] = format_duration(pool.max_age_seconds)
    if pool.schedule:
        out["timeZone"] = pool.time_zone
        out["schedule"] = [{"days": [WEEKDAYS[d] for d in sorted(w.days)], "start": _clock(w.start_minute),
                            "end": _clock(w.end_minute), "size": w.size} for w in pool.schedule]
    elif pool.time_zone != "UTC":
        out["timeZone"] = pool.time_zone
    return out


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _read_pool_size(r: _Reader, value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= WARM_POOL_MAX_SIZE:
        r.fail(field, f"expected a whole number from 0 to {WARM_POOL_MAX_SIZE}, got {_describe(value)}")
        return 0
    return value


def _read_clock(r: _Reader, value: object, field: str, *, end: bool) -> int | None:
    """HH:MM -> minutes after midnight (an end may be 24:00)."""
    if not isinstance(value, str) or (_CLOCK_END_RE if end else _CLOCK_RE).fullmatch(value) is None:
        r.fail(field, f"expected a time of day HH:MM from 00:00 to {'24:00' if end else '23:59'}, got "
               f"{_describe(value)}")
        return None
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _read_time_zone(r: _Reader, value: object, field: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value is None:
        return "UTC"
    if not isinstance(value, str) or not value or len(value) > 64 or value.startswith("/") or ".." in value:
        r.fail(field, f"expected an IANA time zone name such as Europe/Berlin or UTC, got {_describe(value)}")
        return "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        r.fail(field, f"unknown time zone {value!r}: expected an IANA name such as Europe/Berlin or UTC")
        return "UTC"
    return value


def _read_window(r: _Reader, value: object, field: str) -> PoolWindow | None:
    window = r.mapping(value, field, frozenset({"days", "start", "end", "size"}))
    if not window:
        if isinstance(value, Mapping):
            r.fail(field, "expected days, start, end and size")
        return None
    days_field = join_field(field, "days")
    days = window.get("days")
    if not isinstance(days, list) or not days:
        r.fail(days_field, f"expected a list of days from {', '.join(WEEKDAYS)}, got {_describe(days)}")
        days = []
    numbers: set[int] = set()
    for index, day in enumerate(days):
        if day not in WEEKDAYS:
            r.fail(f"{days_field}[{index}]", f"expected one of {', '.join(WEEKDAYS)}, got {_describe(day)}")
        elif WEEKDAYS.index(day) in numbers:
            r.fail(f"{days_field}[{index}]", f"{day} is listed twice")
        else:
            numbers.add(WEEKDAYS.index(day))
    start = _read_clock(r, window.get("start"), join_field(field, "start"), end=False)
    end = _read_clock(r, window.get("end"), join_field(field, "end"), end=True)
    if start is not None and end is not None and end <= start:
        r.fail(join_field(field, "end"), f"must be after start ({window.get('start')}); a window that passes "
               "midnight is two windows, one ending at 24:00 and one starting at 00:00 on the next days")
    size = _read_pool_size(r, window.get("size"), join_field(field, "size"))
    if not numbers or start is None or end is None or end <= start:
        return None
    return PoolWindow(frozenset(numbers), start, end, size)


def _read_warm_pool(r: _Reader, value: object, field: str) -> WarmPoolSpec | None:
    if value is None:
        return None
    pool = r.mapping(value, field, frozenset({"size", "maxAge", "timeZone", "schedule"}))
    size = _read_pool_size(r, pool.get("size", 0), join_field(field, "size"))
    max_age = None
    if pool.get("maxAge") is not None:
        max_age = r.attempt(lambda: parse_duration(pool["maxAge"], join_field(field, "maxAge")))
        if max_age is not None and max_age < 60:
            r.fail(join_field(field, "maxAge"), f"at least 1m, got {pool['maxAge']!r}")
    time_zone = _read_time_zone(r, pool.get("timeZone"), join_field(field, "timeZone"))
    schedule_field = join_field(field, "schedule")
    raw = pool.get("schedule")
    windows: list[PoolWindow] = []
    if raw is not None:
        if not isinstance(raw, list):
            r.fail(schedule_field, f"expected a list of windows {{days, start, end, size}}, got {_describe(raw)}")
        elif len(raw) > WARM_POOL_MAX_WINDOWS:
            r.fail(schedule_field, f"at most {WARM_POOL_MAX_WINDOWS} windows")
        else:
            for index, item in enumerate(raw):
                window = _read_window(r, item, f"{schedule_field}[{index}]")
                if window is not None:
                    windows.append(window)
    return WarmPoolSpec(size=size, max_age_seconds=max_age, time_zone=time_zone, schedule=tuple(windows))


def _read_webapp(r: _Reader, value: object, field: str) -> WebappSpec | None:
    if value is None:
        return None
    webapp = r.mapping(value, field, frozenset({"enabled", "port", "path", "healthCheck"}))
    enabled = r.flag(webapp.get("enabled"), join_field(field, "enabled"), True)
    port = None if webapp.get("port") is None else r.port(webapp["port"], join_field(field, "port"))
    if enabled and webapp.get("port") is None:
        r.fail(join_field(field, "port"), "required when webapp is enabled")
    path = r.text(webapp.get("path"), join_field(field, "path"), max_len=1024) or "/"
    if not path.startswith("/"):
        r.fail(join_field(field, "path"), f"expected a path starting with /, got {path!r}")
    health = r.text(webapp.get("healthCheck"), join_field(field, "healthCheck"), max_len=1024) or None
    return WebappSpec(enabled=enabled, port=port, path=path, health_check=health)


def _read_tags(r: _Reader, value: object, field: str) -> tuple[str, ...]:
    tags = [
        r.text(item, item_field, required=True, max_len=TAG_MAX_LENGTH) for item_field, item in r.items(value, field)
    ]
    return tuple(dict.fromkeys(tag for tag in tags if tag))


KNOWN_CAPABILITIES = tuple(str(c) for c in Capability)


def _read_capabilities(r: _Reader, value: object, field: str) -> tuple[tuple[Capability, ...], tuple[str, ...]]:
    """(known capabilities, the other values). The earlier StreamSpace allowed any string here
    (`WebGL`, `Terminal`, `Photo-Editing`) and no code acts on capabilities, so an unknown one is
    kept as a tag with a warning, never refused."""
    known: list[Capability] = []
    other: list[str] = []
    for item_field, item in r.items(value, field):
        text = r.text(item, item_field, required=True, max_len=TAG_MAX_LENGTH)
        if text in KNOWN_CAPABILITIES:
            known.append(Capability(text))
        elif text:
            other.append(text)
    if other:
        r.warn(
            field,
            f"unknown capabilities {', '.join(dict.fromkeys(other))} are kept as tags "
            f"(capabilities are {', '.join(KNOWN_CAPABILITIES)})",
        )
    return tuple(dict.fromkeys(known)), tuple(dict.fromkeys(other))


@record
class TemplateReview:
    """What reading a Template spec found: the typed spec when it is usable, every problem that
    makes it unusable, and every warning (accepted, but changed or ignored), each ``<field>: <message>``."""

    spec: TemplateSpec | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


def review_template_spec(spec: object, field: str = "spec") -> TemplateReview:
    """Every problem and every warning of a Template spec (either format)."""
    r = _Reader()
    template = _read_template_spec(r, spec, field)
    return TemplateReview(template, tuple(str(p) for p in r.problems), tuple(str(w) for w in r.warnings))


def _read_template_spec(r: _Reader, spec: object, field: str) -> TemplateSpec | None:
    if not isinstance(spec, Mapping):
        r.fail(field or "spec", f"expected an object, got {_describe(spec)}")
        return None
    r.mapping(spec, field, _SPEC_FIELDS)

    def at(name: str) -> str:
        return join_field(field, name)

    capabilities, other_capabilities = _read_capabilities(r, spec.get("capabilities"), at("capabilities"))
    resources_value = spec.get("defaultResources")
    resources = None
    if resources_value is not None:
        resources = r.attempt(lambda: normalise_resources(resources_value, at("defaultResources")))
    template = TemplateSpec(
        display_name=r.text(
            spec.get("displayName"), at("displayName"), required=True, max_len=TEXT_LIMITS["displayName"]
        ),
        base_image=r.text(
            spec.get("baseImage"),
            at("baseImage"),
            required=True,
            max_len=TEXT_LIMITS["baseImage"],
            pattern=_IMAGE_RE,
            form="an image reference such as lscr.io/linuxserver/firefox:latest",
        ),
        description=r.text(spec.get("description"), at("description"), max_len=TEXT_LIMITS["description"]),
        category=r.text(spec.get("category"), at("category"), max_len=TEXT_LIMITS["category"]),
        icon=r.text(
            spec.get("icon"),
            at("icon"),
            max_len=TEXT_LIMITS["icon"],
            pattern=_ICON_RE,
            form="an http(s) or data:image URL",
        ),
        tags=tuple(dict.fromkeys(_read_tags(r, spec.get("tags"), at("tags")) + other_capabilities)),
        app_type=AppType(
            r.choice(spec.get("appType"), at("appType"), tuple(str(a) for a in AppType), str(AppType.DESKTOP))
        ),
        default_resources=resources,
        ports=_read_ports(r, spec.get("ports"), at("ports")),
        env=_read_env(r, spec.get("env"), at("env")),
        volume_mounts=_read_volume_mounts(r, spec.get("volumeMounts"), at("volumeMounts")),
        vnc=_read_vnc(r, spec, field),
        webapp=_read_webapp(r, spec.get("webapp"), at("webapp")),
        capabilities=capabilities,
        run_as_user=r.id_number(spec.get("runAsUser"), at("runAsUser"), 1),
        run_as_group=r.id_number(spec.get("runAsGroup"), at("runAsGroup"), 0),
        enabled=r.flag(spec.get("enabled"), at("enabled"), True),
        warm_pool=_read_warm_pool(r, spec.get("warmPool"), at("warmPool")),
        pre_pull=r.flag(spec.get("prePull"), at("prePull"), False),
    )
    if template.run_as_group is not None and template.run_as_user is None:
        r.fail(at("runAsGroup"), "needs runAsUser: set the non-root user the image runs as (for example 1000)")
    if template.stream_port is None:
        r.fail(field or "spec", "no stream port: enable vnc, set webapp.port, or list at least one port")
    if len(template.tags) > LIST_MAX_ITEMS:
        r.fail(at("tags"), f"at most {LIST_MAX_ITEMS} entries, counting unknown capabilities kept as tags")
    return None if r.problems else template


def parse_template_spec(spec: object, field: str = "spec") -> TemplateSpec:
    """A Template spec (either format) -> TemplateSpec; raises the first problem as ValidationError.

    `field` prefixes field names in messages: ``spec`` for CRD objects, ``""`` for REST bodies.
    """
    r = _Reader()
    template = _read_template_spec(r, spec, field)
    if template is None:
        raise r.problems[0]
    return template


def validate_template_spec(spec: object, field: str = "spec") -> list[str]:
    """Every problem with a Template spec, each as ``<field>: <message>``; empty when valid."""
    return list(review_template_spec(spec, field).problems)


def stream_port(spec: object) -> int:
    """The port a session of this Template exposes; ValidationError when the spec is invalid."""
    port = parse_template_spec(spec).stream_port
    if port is None:  # parse_template_spec refuses specs without one
        raise RuntimeError("invariant broken: port is None")
    return port


# --- manifests -----------------------------------------------------------------------------------


def _template_manifest(
    name: str, namespace: str | None, spec: TemplateSpec, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    for key in ("labels", "annotations"):
        if metadata and isinstance(metadata.get(key), Mapping) and metadata[key]:
            meta[key] = {str(k): str(v) for k, v in metadata[key].items()}
    return {
        "apiVersion": API_VERSION,
        "kind": TEMPLATE_KIND,
        "metadata": meta,
        "spec": spec.to_spec(),
    }


def convert_template_manifest(doc: object) -> Conversion:
    """A Template manifest in the current or legacy format -> a canonical stream.space/v1alpha1
    manifest, with every problem and every warning.

    Accepts apiVersion stream.space/v1alpha1 or the legacy stream.streamspace.io/v1alpha1, flat or
    Kubernetes-style resources, `kasmvnc` for `vnc`, and free-form capabilities (kept as tags).
    Server-set metadata and status are dropped; a name that breaks the name rule (a DNS-1123
    label) is renamed, with a warning and the original kept in an annotation.
    """
    if not isinstance(doc, Mapping):
        return Conversion(None, (f"<document>: expected a Template manifest (a mapping), got {_describe(doc)}",))
    problems: list[str] = []
    api_version = doc.get("apiVersion")
    if api_version not in (API_VERSION, LEGACY_API_VERSION):
        problems.append(f"apiVersion: expected {API_VERSION} or {LEGACY_API_VERSION}, "
                        f"got {api_version!r}")
    if doc.get("kind") != TEMPLATE_KIND:
        problems.append(f"kind: expected {TEMPLATE_KIND}, got {doc.get('kind')!r}")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        problems.append("metadata.name: required")
    review = review_template_spec(doc.get("spec"), "spec")
    problems.extend(review.problems)
    if problems or review.spec is None or not isinstance(metadata, Mapping) or not isinstance(name, str):
        return Conversion(None, tuple(problems), review.warnings)
    warnings = list(review.warnings)
    label = dns_label(name)
    annotations = dict(metadata.get("annotations") or {}) if isinstance(metadata.get("annotations"), Mapping) else {}
    if label != name:
        warnings.append(f"metadata.name: {name!r} is not a DNS-1123 label; renamed to {label!r}")
        annotations[ORIGINAL_NAME_ANNOTATION] = name
    if warnings:
        annotations[CONVERSION_NOTES_ANNOTATION] = "\n".join(warnings)
    namespace = metadata.get("namespace")
    manifest = _template_manifest(label, namespace if isinstance(namespace, str) else None, review.spec,
                                  {**metadata, "annotations": annotations})
    return Conversion(manifest, (), tuple(warnings))


def normalise_template_manifest(doc: object) -> dict[str, Any]:
    """convert_template_manifest, raising the first problem as ValidationError."""
    conversion = convert_template_manifest(doc)
    if conversion.manifest is None:
        field, _, message = conversion.problems[0].partition(": ")
        raise ValidationError(field, message)
    return conversion.manifest


# --- enabled and disabled templates ------------------------------------------------------------
# An admin disables a Template to take it out of use without deleting it: users no longer see it
# in the catalog and nobody can launch it, while sessions already started from it go on (they
# can hibernate, wake and end as before). Admins still see it, marked disabled, to enable it again.


def template_enabled(obj: Mapping[str, Any]) -> bool:
    """Whether a stored Template object is enabled (absent = enabled, the CRD's default)."""
    spec = obj.get("spec")
    return not isinstance(spec, Mapping) or spec.get("enabled") is not False


def visible_in_catalog(enabled: bool, *, admin: bool) -> bool:
    """Users see enabled templates only; admins see every template."""
    return admin or enabled


def ensure_launchable(obj: Mapping[str, Any]) -> None:
    """A new session may start only from an enabled template (for admins too: enable it first)."""
    if not template_enabled(obj):
        name = (obj.get("metadata") or {}).get("name")
        raise Conflict(f"template {name!r} is disabled by an administrator; it cannot be launched until it is"
                       " enabled again (running sessions are not affected)", error="template disabled")


# --- REST view -----------------------------------------------------------------------------------


def _api_vnc(spec: Mapping[str, Any]) -> dict[str, Any]:
    raw = spec.get("vnc") if spec.get("vnc") is not None else spec.get("kasmvnc")
    if not isinstance(raw, Mapping):
        return {"enabled": False, "port": None, "protocol": None, "encryption": False}
    return {
        "enabled": raw.get("enabled", True) is not False,
        "port": raw.get("port", DEFAULT_VNC_PORT),
        "protocol": raw.get("protocol", DEFAULT_VNC_PROTOCOL),
        "encryption": raw.get("encryption", False) is True,
    }


def template_to_api(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Template object as stored -> the REST Template JSON.

    Reads tolerantly (an Invalid template must still be listable). Besides the contract fields it
    carries `webapp`, `volumeMounts` and `vnc.encryption`, so a client can send back a Template it
    read without losing anything.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "displayName": spec.get("displayName", ""),
        "description": spec.get("description", ""),
        "category": spec.get("category", ""),
        "appType": spec.get("appType", str(AppType.DESKTOP)),
        "icon": spec.get("icon", ""),
        "baseImage": spec.get("baseImage", ""),
        "defaultResources": flat_resources(spec.get("defaultResources")),
        "ports": [
            {
                "name": p.get("name"),
                "containerPort": p.get("containerPort"),
                "protocol": p.get("protocol", "TCP"),
            }
            for p in spec.get("ports") or []
            if isinstance(p, Mapping)
        ],
        "env": [copy.deepcopy(dict(var)) for var in spec.get("env") or [] if isinstance(var, Mapping)],
        "vnc": _api_vnc(spec),
        "webapp": copy.deepcopy(spec.get("webapp")),
        "volumeMounts": copy.deepcopy(list(spec.get("volumeMounts") or [])),
        "capabilities": [c for c in spec.get("capabilities") or [] if c in KNOWN_CAPABILITIES],
        "runAsUser": spec.get("runAsUser"),
        "runAsGroup": spec.get("runAsGroup"),
        # An applied object may still carry the earlier StreamSpace's free-form capabilities: shown as tags.
        "tags": list(dict.fromkeys([*(spec.get("tags") or []),
                                    *(c for c in spec.get("capabilities") or [] if c not in KNOWN_CAPABILITIES)])),
        "enabled": template_enabled(obj),
        "warmPool": _api_warm_pool(spec.get("warmPool")),
        "prePull": spec.get("prePull") is True,
        "status": {"phase": status.get("phase"), "message": status.get("message"),
                   # How many of the nodes sessions run on have the image (a pre-pulled or pooled template).
                   **({"prePull": copy.deepcopy(status["prePull"])} if isinstance(status.get("prePull"), Mapping)
                      else {})},
        "createdAt": meta.get("creationTimestamp"),
    }


def _api_warm_pool(spec: object) -> dict[str, Any] | None:
    """The REST view of a Template's warm pool as asked (what is there: GET .../warm-pool)."""
    if not isinstance(spec, Mapping):
        return None
    size = spec.get("size", 0)
    out: dict[str, Any] = {"size": size if isinstance(size, int) and not isinstance(size, bool) else 0}
    for key in ("maxAge", "timeZone"):
        if isinstance(spec.get(key), str):
            out[key] = spec[key]
    if isinstance(spec.get("schedule"), list):
        out["schedule"] = [dict(w) for w in spec["schedule"] if isinstance(w, Mapping)]
    return out


def _without_nulls(value: Any) -> Any:
    """JSON null means "not given" in request bodies, at any depth."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _api_spec_fields(body: object) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationError("body", f"expected a JSON object, got {_describe(body)}")
    for key in body:
        if key not in _SPEC_FIELDS and key not in _API_READ_ONLY_FIELDS:
            raise ValidationError(str(key), "unknown field")
    return {key: value for key, value in body.items() if key in _SPEC_FIELDS}


def _is_absent_vnc(vnc: object) -> bool:
    # The REST view shows an absent vnc as {enabled: false, port: null, protocol: null}; sent back,
    # that means "no vnc", so it must not turn into a vnc block with defaults.
    return isinstance(vnc, Mapping) and vnc.get("enabled") is False and vnc.get("port") is None


def template_from_api(body: object, name: str | None, namespace: str | None) -> dict[str, Any]:
    """REST Template JSON (POST body) -> a canonical Template manifest; ValidationError naming the field.

    `name` defaults to the body's `name`; when both are given they must agree.
    """
    fields = _api_spec_fields(body)
    if not isinstance(body, Mapping):
        raise RuntimeError("invariant broken: not isinstance(body, Mapping)")
    body_name = body.get("name")
    if name is None:
        name = body_name if isinstance(body_name, str) else None
    elif body_name is not None and body_name != name:
        raise ValidationError("name", f"does not match the addressed template {name!r}")
    if not name or not is_dns_label(name):
        raise ValidationError("name", f"expected a DNS-1123 label such as firefox or code-server, got {name!r}")
    if _is_absent_vnc(fields.get("vnc")):
        del fields["vnc"]
    spec = parse_template_spec(_without_nulls(fields), "")
    return _template_manifest(name, namespace, spec)


def _merge_patch(current: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(current) if isinstance(current, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def merge_template_patch(obj: Mapping[str, Any], patch: object) -> dict[str, Any]:
    """Apply a partial REST update to a stored Template object -> the new object (input untouched).

    Merge-patch semantics on the REST fields; `defaultResources` merges per resource in either
    shape; `kasmvnc` is treated as `vnc`. The result is validated as a whole (ValidationError).
    """
    fields = _api_spec_fields(patch)
    if not isinstance(patch, Mapping):
        raise RuntimeError("invariant broken: not isinstance(patch, Mapping)")
    meta = obj.get("metadata") or {}
    for key in ("name", "namespace"):
        if patch.get(key) is not None and patch[key] != meta.get(key):
            raise ValidationError(key, "cannot be changed")
    spec = dict(obj.get("spec") or {})
    if "kasmvnc" in spec and "vnc" not in spec:
        spec["vnc"] = spec.pop("kasmvnc")
    if "kasmvnc" in fields:
        fields.setdefault("vnc", fields.pop("kasmvnc"))
    resources_patch = fields.pop("defaultResources", None)
    if "defaultResources" in patch:
        if resources_patch is None:
            spec.pop("defaultResources", None)
        else:
            patch_layer = normalise_resources(_without_nulls(resources_patch), "defaultResources")
            current = spec.get("defaultResources")
            layers = [patch_layer]
            if current is not None:
                layers.append(normalise_resources(current, "defaultResources"))
            spec["defaultResources"] = merge_resources(*layers)
    if _is_absent_vnc(fields.get("vnc")) and "vnc" not in spec:
        del fields["vnc"]
    merged = _merge_patch(spec, fields)
    template = parse_template_spec(merged, "")
    result = copy.deepcopy(dict(obj))
    result["spec"] = template.to_spec()
    return result
