"""The platform settings (Postgres) and the process environment combined, as a session's objects
and address are built from them: `ReconcileConfig`, read by `load_config()`, and the session URL
rule. Pure but for `load_config`, and below every package that needs it (the sessions API and the
reconcilers alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamspace.config import FORWARD_AUTH_CLASSES, ProfileAgentSettings, environment
from streamspace.domain.duration import DurationError, parse_duration
from streamspace.records import record
from streamspace.settings.service import DEFAULT_EGRESS_DENY, DEFAULTS, platform_settings


@record
class ReconcileConfig:
    """The configuration a reconcile needs (from settings.service.platform_settings() and the settings)."""

    ingress_domain: str = "streamspace.local"
    ingress_port: int | None = None  # in session URLs; None: the scheme's own
    ingress_class: str = "traefik"
    ingress_controller: str = "traefik"  # traefik | nginx (setting INGRESS_CONTROLLER): which annotations
    # The ingress classes that controller serves (config.FORWARD_AUTH_CLASSES, INGRESS_AUTH_CLASSES): any
    # other class would ignore its forward-auth annotations, so no Ingress is made for it.
    forward_auth_classes: tuple[str, ...] = ("traefik",)
    ingress_tls_secret: str = ""
    ingress_controller_namespace: str = "traefik"
    auth_url: str = "http://auth-check.streamspace.svc.cluster.local/api/v1/auth/session-check"
    traefik_middleware: str = "streamspace-streamspace-auth@kubernetescrd"  # from_values: the sessions namespace's
    auth_service: str = "auth-check-redeem"  # the Service (sessions' namespace) behind /.streamspace/auth
    storage_class: str = ""
    storage_size: str = "50Gi"
    home_access_mode: str = "ReadWriteOnce"  # HOME_ACCESS_MODE, a process setting
    default_memory: str = "2Gi"
    default_cpu: str = "1000m"
    default_idle_timeout_seconds: int = 1800
    default_max_duration_seconds: int = 8 * 3600
    auto_hibernation: bool = True
    egress_deny_cidrs: tuple[str, ...] = DEFAULT_EGRESS_DENY
    env_secrets: tuple[str, ...] = ()  # marked for templates by an admin (templates.envSecrets)
    env_config_maps: tuple[str, ...] = ()  # likewise (templates.envConfigMaps)
    warm_pool_budget: int = 10  # warm desktops kept for all templates together (warmPool.budget)
    home_storage: str = "volume"  # HOME_STORAGE: volume (home-<user> claims) | s3 (persistent profiles)
    profile_agent: ProfileAgentSettings = ProfileAgentSettings()
    control_plane_namespace: str = "streamspace"  # where the storage function runs

    @property
    def profile_api_url(self) -> str:
        """Where the profile agent reaches the storage function."""
        return self.profile_agent.api_url or f"http://profile-api.{self.control_plane_namespace}.svc.cluster.local"

    @classmethod
    def from_values(cls, values: Mapping[str, Any], namespace: str = "streamspace",
                    controller: str = "traefik", auth_classes: tuple[str, ...] | None = None,
                    sessions_namespace: str | None = None, home_storage: str = "volume",
                    profile_agent: ProfileAgentSettings | None = None,
                    home_access_mode: str = "ReadWriteOnce") -> ReconcileConfig:
        """From configuration key/values (the `configuration` table), missing keys at their defaults,
        for the ingress controller `controller` (a process setting: auth-check must agree with it).
        `namespace` is the control plane's (auth-check runs there), `sessions_namespace` the session
        Ingresses' (and so the Traefik Middleware's; default: `namespace`). `home_storage` and
        `profile_agent` are process settings too (HOME_STORAGE, PROFILE_*).

        Keys beyond the seeded ones: `ingress.tlsSecret`, `ingress.controllerNamespace` (where the
        ingress controller runs: the only namespace a session's pod accepts traffic from),
        `auth.checkUrl` (the forward-auth URL), `auth.traefikMiddleware` (`<ns>-<name>@kubernetescrd`),
        `auth.service` (the Service, port 80, that each session Ingress sends `/.streamspace/auth` to).
        """

        def text(key: str, default: str) -> str:
            value = values.get(key)
            return value.strip() if isinstance(value, str) and value.strip() else default

        def names(key: str) -> tuple[str, ...]:
            value = values.get(key)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        def seconds(key: str, default: int) -> int:
            try:
                return parse_duration(values.get(key), key)
            except DurationError:
                return default

        budget = values.get("warmPool.budget", 10)
        ingress_class = text("ingress.class", "traefik")
        controller_ns = {"traefik": "traefik", "nginx": "ingress-nginx"}[controller]
        auto = values.get("session.enableAutoHibernation", True)
        return cls(
            ingress_domain=text("ingress.domain", "streamspace.local"),
            ingress_port=port if isinstance(port := values.get("ingress.port"), int) and not isinstance(port, bool)
            else None,
            ingress_class=ingress_class,
            ingress_controller=controller,
            forward_auth_classes=auth_classes if auth_classes is not None else FORWARD_AUTH_CLASSES[controller],
            ingress_tls_secret=text("ingress.tlsSecret", ""),
            ingress_controller_namespace=text("ingress.controllerNamespace", controller_ns),
            auth_url=text("auth.checkUrl",
                          f"http://auth-check.{namespace}.svc.cluster.local/api/v1/auth/session-check"),
            traefik_middleware=text("auth.traefikMiddleware",
                                    f"{sessions_namespace or namespace}-streamspace-auth@kubernetescrd"),
            auth_service=text("auth.service", "auth-check-redeem"),
            storage_class=text("storage.className", ""),
            home_access_mode=home_access_mode,
            storage_size=text("storage.defaultSize", "50Gi"),
            default_memory=text("resources.defaultMemory", "2Gi"),
            default_cpu=text("resources.defaultCPU", "1000m"),
            default_idle_timeout_seconds=seconds("session.defaultIdleTimeout", 1800),
            default_max_duration_seconds=seconds("session.defaultMaxDuration", 8 * 3600),
            auto_hibernation=auto is True or (isinstance(auto, str) and auto.lower() == "true"),
            egress_deny_cidrs=names("session.egressDenyCidrs") if isinstance(
                values.get("session.egressDenyCidrs"), list) else DEFAULT_EGRESS_DENY,
            env_secrets=names("templates.envSecrets"),
            env_config_maps=names("templates.envConfigMaps"),
            warm_pool_budget=budget if isinstance(budget, int) and not isinstance(budget, bool) and budget >= 0
            else 10,
            home_storage=home_storage,
            profile_agent=profile_agent or ProfileAgentSettings(),
            control_plane_namespace=namespace,
        )


def session_url(name: str, config: ReconcileConfig) -> str:
    scheme = "https" if config.ingress_tls_secret else "http"
    port = f":{config.ingress_port}" if config.ingress_port else ""
    return f"{scheme}://{session_host(name, config)}{port}/"


def session_host(name: str, config: ReconcileConfig) -> str:
    return f"{name}.{config.ingress_domain}"


def config_from_values(values: Mapping[str, Any]) -> ReconcileConfig:
    return ReconcileConfig.from_values({**DEFAULTS, **values}, environment().namespace,
                                       controller=environment().ingress_controller,
                                       auth_classes=environment().ingress_auth_classes,
                                       sessions_namespace=environment().sessions_namespace,
                                       home_storage=environment().home_storage,
                                       profile_agent=environment().profile_agent,
                                       home_access_mode=environment().home_access_mode)


def load_config() -> ReconcileConfig:
    return config_from_values(platform_settings())
