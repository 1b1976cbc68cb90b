"""What a Session wants, computed without any I/O.

`desired_objects(session, template, config)` is the complete set of objects a Session needs on the
cluster for its current spec: the Deployment, Service, Ingress and NetworkPolicy it owns (named
`ss-<session>`, ownerReference controller=true) and the user's home claim (`home-<user>`, not
owned: it outlives sessions). Where homes are persistent profiles in the object store
(HOME_STORAGE=s3), there is no claim: the home is an emptyDir that the profile agent restores before
the desktop starts and saves while it runs and when it stops, and the Session also owns the Secret
holding that agent's session-scoped token. A terminated Session wants nothing. Every object carries a hash of
its own content; the Deployment, applied last, records the hashes of the whole set in an
annotation, so one read of the Deployment tells whether anything must be applied.

`session_status(...)` is the status a Session should show for what was observed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from streamspace.desktop.access import AUTH_PATH as DESKTOP_AUTH_PATH
from streamspace.domain.conversion import API_VERSION
from streamspace.domain.errors import ValidationError
from streamspace.domain.labels import (
    APP_NAME,
    HOME_APP,
    LABEL_SESSION,
    LABEL_TEMPLATE,
    LABEL_USER,
    MANAGED_BY,
    MANAGER_NAME,
    SESSION_APP,
)
from streamspace.domain.names import dns_label, home_claim_name, session_object_name
from streamspace.domain.resources import ResourceRequirements
from streamspace.domain.sessions import resolve_resources
from streamspace.domain.templates import USER_HOME_VOLUME, TemplateSpec, env_reference_problems
from streamspace.domain.warm import profile_agents
from streamspace.records import record
from streamspace.settings.effective import ReconcileConfig, session_host, session_url

# Annotations. On the Deployment: the per-object hashes of the applied set. On the Session (written
# by the idle sweep together with spec.state): why it was hibernated or terminated.
ANN_HASHES = "stream.space/applied-hashes"
ANN_HIBERNATION_REASON = "stream.space/hibernation-reason"
ANN_TERMINATION_REASON = "stream.space/termination-reason"

TRAEFIK_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
NGINX_AUTH_URL = "nginx.ingress.kubernetes.io/auth-url"
NGINX_AUTH_RESPONSE_HEADERS = "nginx.ingress.kubernetes.io/auth-response-headers"
AUTH_USER_HEADER = "X-Auth-Request-User"
METADATA_ADDRESS = "169.254.169.254/32"
METADATA_ADDRESS_V6 = "fd00:ec2::254/128"

# Owned kinds in apply order: the Deployment last, so its hash annotation is only written once
# everything else was applied (a failure half-way leaves a mismatch the next reconcile repairs).
OWNED_KINDS = ("Service", "NetworkPolicy", "Ingress", "Deployment")
# With HOME_STORAGE=s3 a Session also owns the Secret of its profile agent's token (applied first).
APPLY_ORDER = ("PersistentVolumeClaim", "Secret", *OWNED_KINDS)
# Deleted in this order when a Session is terminated: the Deployment last, so "no Deployment"
# means the whole set is gone. The agent read its token when it started: its last save on SIGTERM
# does not need the Secret any more.
DELETE_ORDER = ("Service", "Ingress", "NetworkPolicy", "Deployment")
PROFILE_DELETE_ORDER = ("Service", "Ingress", "NetworkPolicy", "Secret", "Deployment")



def delete_order(home_storage: str) -> tuple[str, ...]:
    """The owned kinds in the order a terminated Session's objects are deleted (HOME_STORAGE's)."""
    return PROFILE_DELETE_ORDER if home_storage == "s3" else DELETE_ORDER


# The profile agent's containers (HOME_STORAGE=s3) and what they mount.
PROFILE_RESTORE = "profile-restore"
PROFILE_SIDECAR = "profile-sidecar"
PROFILE_WARM_AGENT = "profile-agent"  # a warm desktop's agent: waits for the claim, then the sidecar
PROFILE_CLAIM_PORT_NAME = "profile-claim"
SESSION_RECONCILE_FUNCTION = "session-reconcile"  # the one caller a warm desktop's agent accepts
PROFILE_TOKEN_VOLUME = "profile-token"
PROFILE_TOKEN_DIR = "/var/run/streamspace/profile"
PROFILE_SCRATCH_VOLUME = "profile-scratch"
# The storage function's pods, reached on Knative's queue-proxy port through the `profile-api` Service
# (the Knative route itself is the cluster's shared gateway, which would open every function).
STORAGE_FUNCTION = "storage"
QUEUE_PROXY_PORT = 8012

INGRESS_CLASS_UNSUPPORTED = "IngressClassUnsupported"
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})


# --- objects ---------------------------------------------------------------------------------------


def session_resources(session: Mapping[str, Any], template: TemplateSpec,
                      config: ReconcileConfig) -> ResourceRequirements:
    """Requests and limits: the Session's, else the Template's defaults, else the configured ones
    (ValidationError when they do not make sense, e.g. a request above its limit)."""
    spec = session.get("spec") or {}
    return resolve_resources(spec.get("resources"),
                             dict(template.default_resources) if template.default_resources else None,
                             {"memory": config.default_memory, "cpu": config.default_cpu})


def object_hash(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def encode_hashes(hashes: Mapping[str, str]) -> str:
    return ",".join(f"{kind}={hashes[kind]}" for kind in APPLY_ORDER if kind in hashes)


def decode_hashes(value: object) -> dict[str, str]:
    if not isinstance(value, str):
        return {}
    pairs = (item.partition("=") for item in value.split(",") if item)
    return {kind: digest for kind, _, digest in pairs if kind and digest}


def applied_hashes(deployment: Mapping[str, Any] | None) -> dict[str, str]:
    """The per-object hashes recorded on a Deployment (empty when there is none)."""
    if not deployment:
        return {}
    return decode_hashes(((deployment.get("metadata") or {}).get("annotations") or {}).get(ANN_HASHES))


def ingress_refusal(config: ReconcileConfig) -> str | None:
    """Why no session Ingress may be made with this configuration, or None: its class must be one the
    configured controller serves, or the forward-auth annotations are ignored and the desktop is open."""
    if config.ingress_class in config.forward_auth_classes:
        return None
    return (f"ingress class {config.ingress_class!r} is not served by the {config.ingress_controller} controller"
            f" (INGRESS_CONTROLLER), so its forward authentication would not apply; supported classes:"
            f" {', '.join(config.forward_auth_classes)} (setting ingress.class; more classes of that controller:"
            f" INGRESS_AUTH_CLASSES)")


def ingress_annotations(config: ReconcileConfig) -> dict[str, str]:
    """Forward auth for the configured controller only: only the owner or an admin reaches the
    desktop (auth-check answers 200, 401 or 403, reading the host header this controller sets)."""
    if config.ingress_controller == "nginx":
        return {
            NGINX_AUTH_URL: config.auth_url,
            NGINX_AUTH_RESPONSE_HEADERS: AUTH_USER_HEADER,
            # Streams are long-lived websockets.
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        }
    return {TRAEFIK_MIDDLEWARES: config.traefik_middleware}


def egress_rules(config: ReconcileConfig) -> list[dict[str, Any]]:
    """A desktop's way out: the cluster DNS, and anywhere but the denied ranges and the metadata service.

    NetworkPolicy only allows, so "not the platform's namespace" is "not the cluster's internal
    ranges" (pod and service addresses come from them).
    """
    import ipaddress

    v4 = [METADATA_ADDRESS]
    v6 = [METADATA_ADDRESS_V6]
    for cidr in config.egress_deny_cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        (v4 if network.version == 4 else v6).append(str(network))
    v4 = [c for c in dict.fromkeys(v4) if not (c == METADATA_ADDRESS and _covered(c, v4))]
    v6 = [c for c in dict.fromkeys(v6) if not (c == METADATA_ADDRESS_V6 and _covered(c, v6))]
    rules: list[dict[str, Any]] = [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": v4}},
                {"ipBlock": {"cidr": "::/0", "except": v6}}]},
    ]
    if config.home_storage == "s3":
        # The profile agent's one way into the cluster: the storage function's pods, on the port that
        # serves its HTTP (no other function, no database, no gateway that routes by host). A policy
        # selects pods, not containers: the desktop may reach the same routes, which all want a token
        # and are the ones the public API serves anyway.
        rules.append({
            "to": [{"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": config.control_plane_namespace}},
                    "podSelector": {"matchLabels": {"serving.knative.dev/service": STORAGE_FUNCTION}}}],
            "ports": [{"protocol": "TCP", "port": QUEUE_PROXY_PORT}],
        })
    return rules


def _covered(cidr: str, others: Sequence[str]) -> bool:
    """Whether another entry of `others` already contains `cidr` (Kubernetes refuses nothing here,
    but one entry per range keeps the policy readable)."""
    import ipaddress

    inner = ipaddress.ip_network(cidr)
    return any(o != cidr and inner.subnet_of(ipaddress.ip_network(o)) for o in others)  # type: ignore[arg-type]


def pod_spec_for(template: TemplateSpec, config: ReconcileConfig) -> tuple[dict[str, Any], ResourceRequirements]:
    """The pod spec of a desktop of `template` with its default resources and no home volume (a
    warm desktop), and those resources."""
    resources = resolve_resources(None, dict(template.default_resources) if template.default_resources else None,
                                  {"memory": config.default_memory, "cpu": config.default_cpu})
    port = template.stream_port
    if port is None:  # a parsed TemplateSpec always has a stream port
        raise RuntimeError("invariant broken: port is None")
    if warm_profiles(config):
        # An emptyDir home and the agent waiting for its claim: no token, nobody's files until then.
        return _pod_spec(template, resources, port, True, "", _ProfileHome(None, config)), resources
    return _pod_spec(template, resources, port, False, ""), resources


def warm_profiles(config: ReconcileConfig) -> bool:
    """Whether warm desktops carry a profile agent waiting for its claim (domain.warm.profile_agents)."""
    return profile_agents(config.home_storage, config.profile_agent.sidecar)


def claim_ingress(config: ReconcileConfig) -> dict[str, Any]:
    """The one way into a warm desktop before and while it is claimed: session-reconcile's pods, to the
    agent's claim port (the token's hand-over), nothing else."""
    return {"from": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": config.control_plane_namespace}},
                      "podSelector": {"matchLabels": {"serving.knative.dev/service": SESSION_RECONCILE_FUNCTION}}}],
            "ports": [{"protocol": "TCP", "port": config.profile_agent.claim_port}]}


def desired_objects(session: Mapping[str, Any], template: TemplateSpec, config: ReconcileConfig,
                    profile_token: str | None = None, *, warm: bool = False) -> list[dict[str, Any]]:
    """The complete set of objects `session` wants, in apply order (PVC first, Deployment last).

    `profile_token`: the profile agent's token for this session (profiles.agent_tokens.agent_token),
    needed where HOME_STORAGE=s3 and the session keeps its home.
    `warm`: the session runs in the warm desktop it claimed (alive, ours), so its Deployment keeps
    no pod of its own; it takes over if that desktop dies or the session is hibernated.
    Pure: the same inputs always give the same objects. Raises ValidationError when the Session's
    resources cannot be resolved. A terminated Session wants nothing.
    """
    meta = session.get("metadata") or {}
    spec = session.get("spec") or {}
    state = spec.get("state") or "running"
    if state == "terminated":
        return []
    name = str(meta["name"])
    namespace = str(meta["namespace"])
    user = dns_label(str(spec.get("user") or ""))
    template_name = dns_label(str(spec.get("template") or ""))
    persistent_home = spec.get("persistentHome", True) is not False
    problems = env_reference_problems(template.env, config.env_secrets, config.env_config_maps)
    if problems:  # the admin unmarked an object after the Template was validated
        raise ValidationError("template", problems[0])
    port = template.stream_port
    if port is None:  # a parsed TemplateSpec always has a stream port
        raise RuntimeError("invariant broken: port is None")
    resources = session_resources(session, template, config)
    owned = session_object_name(name)
    labels = {
        APP_NAME: SESSION_APP,
        MANAGED_BY: MANAGER_NAME,
        LABEL_SESSION: name,
        LABEL_USER: user,
        LABEL_TEMPLATE: template_name,
    }
    selector = {APP_NAME: SESSION_APP, LABEL_SESSION: name}
    owner = [{
        "apiVersion": API_VERSION, "kind": "Session", "name": name, "uid": str(meta.get("uid") or ""),
        "controller": True, "blockOwnerDeletion": True,
    }]

    def owned_meta(annotations: dict[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": owned, "namespace": namespace, "labels": dict(labels),
                               "ownerReferences": copy.deepcopy(owner)}
        if annotations:
            out["annotations"] = annotations
        return out

    objects: list[dict[str, Any]] = []
    claim = home_claim_name(user)
    profile = persistent_home and config.home_storage == "s3"
    if profile:
        if not profile_token:
            raise RuntimeError("invariant broken: a profile home without its agent's token")
        # Only the agent containers mount it; it goes with the Session (ownerReference).
        objects.append({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": owned_meta(),
            "type": "Opaque",
            "data": {"token": base64.b64encode(profile_token.encode()).decode()},
        })
    elif persistent_home:
        pvc_spec: dict[str, Any] = {
            "accessModes": [config.home_access_mode],
            "resources": {"requests": {"storage": config.storage_size}},
        }
        if config.storage_class:
            pvc_spec["storageClassName"] = config.storage_class
        objects.append({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace,
                         "labels": {APP_NAME: HOME_APP, MANAGED_BY: MANAGER_NAME, LABEL_USER: user}},
            "spec": pvc_spec,
        })

    objects.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": owned_meta(),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": "stream", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    })

    objects.append({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": owned_meta(),
        "spec": {
            "podSelector": {"matchLabels": dict(selector)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": config.ingress_controller_namespace}}}],
                "ports": [{"protocol": "TCP", "port": port}],
            }, *([claim_ingress(config)] if warm and profile and warm_profiles(config) else [])],
            "egress": egress_rules(config),
        },
    })

    host = session_host(name, config)
    ingress_spec: dict[str, Any] = {
        "ingressClassName": config.ingress_class,
        "rules": [{"host": host, "http": {"paths": [
            # The desktop ticket's redeem (GET /.streamspace/auth?ticket=): auth-check sets the
            # session host's cookie. Exact, so nothing else on the host ever reaches auth-check.
            {"path": DESKTOP_AUTH_PATH, "pathType": "Exact",
             "backend": {"service": {"name": config.auth_service, "port": {"number": 80}}}},
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": owned, "port": {"name": "stream"}}}},
        ]}}],
    }
    if config.ingress_tls_secret:
        ingress_spec["tls"] = [{"hosts": [host], "secretName": config.ingress_tls_secret}]
    objects.append({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": owned_meta(ingress_annotations(config)),
        "spec": ingress_spec,
    })

    objects.append({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": owned_meta(),
        "spec": {
            "replicas": 1 if state == "running" and not warm else 0,
            "revisionHistoryLimit": 1,
            "strategy": {"type": "Recreate"},  # never two pods of one session on the same home
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec(template, resources, port, persistent_home, claim,
                                  _ProfileHome(owned, config) if profile else None),
            },
        },
    })

    hashes = {obj["kind"]: object_hash(obj) for obj in objects}
    deployment = objects[-1]
    deployment["metadata"]["annotations"] = {ANN_HASHES: encode_hashes(hashes)}
    return objects


# Desktop images (linuxserver, Kasm) start as root and drop to their user with s6/gosu, so session
# pods run at the Pod Security `baseline` level, hardened as far as such images allow: no service
# account token, no privilege escalation, every capability dropped except the few of baseline's
# allowed set an init needs to chown the home and switch user, and the runtime's default seccomp profile.
SESSION_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"]},
}
# A Template that opts into non-root (spec.runAsUser) needs none of them: its pod passes `restricted`.
NON_ROOT_CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _pod_security_context(template: TemplateSpec) -> dict[str, Any]:
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if template.run_as_user is not None:
        group = template.run_as_group if template.run_as_group is not None else template.run_as_user
        # fsGroup: the home claim (and emptyDirs) writable by that group.
        context.update({"runAsNonRoot": True, "runAsUser": template.run_as_user, "runAsGroup": group,
                        "fsGroup": group})
    return context


@record
class _ProfileHome:
    """A home restored from and saved to the object store by the profile agent (HOME_STORAGE=s3)."""

    secret: str | None  # the owned Secret holding the agent's token; None: a warm desktop's (no token yet)
    config: ReconcileConfig


def _profile_agent(name: str, command: str, template: TemplateSpec, home: _ProfileHome) -> dict[str, Any]:
    """One of the agent's containers: it alone mounts the token; it runs as the home's owner, unprivileged."""
    agent = home.config.profile_agent
    uid = template.run_as_user if template.run_as_user is not None else agent.home_uid
    gid = template.run_as_group if template.run_as_group is not None else uid
    env: list[dict[str, Any]] = [
        {"name": "PROFILE_API", "value": home.config.profile_api_url},
        *([] if home.secret is None else [{"name": "PROFILE_TOKEN_FILE", "value": f"{PROFILE_TOKEN_DIR}/token"}]),
        {"name": "HOME_DIR", "value": template.home_mount_path},
        {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108 - the agent's own emptyDir
    ]
    if command in ("sidecar", "warm"):
        env.append({"name": "PROFILE_SAVE_INTERVAL", "value": str(agent.save_interval_seconds)})
    mounts: list[dict[str, Any]] = [
        {"name": USER_HOME_VOLUME, "mountPath": template.home_mount_path},
        {"name": PROFILE_TOKEN_VOLUME, "mountPath": PROFILE_TOKEN_DIR, "readOnly": True},
        {"name": PROFILE_SCRATCH_VOLUME, "mountPath": "/tmp"},  # noqa: S108 - the archive being written
    ]
    waiting: dict[str, Any] = {}
    if home.secret is None:  # a warm desktop's: no token to mount; it waits for the claim on its port
        mounts = [m for m in mounts if m["name"] != PROFILE_TOKEN_VOLUME]
        env += [{"name": "PROFILE_CLAIM_PORT", "value": str(agent.claim_port)},
                {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
        waiting = {
            "ports": [{"name": PROFILE_CLAIM_PORT_NAME, "containerPort": agent.claim_port, "protocol": "TCP"}],
            # The kubelet starts the desktop only once this succeeded: the agent holds its port first, so
            # the desktop can never listen there and be handed a token.
            "startupProbe": {"tcpSocket": {"port": agent.claim_port}, "periodSeconds": 1, "failureThreshold": 60},
        }
    return {
        "name": name,
        "image": agent.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [command],
        "env": env,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
        **waiting,
    }


def _pod_spec(template: TemplateSpec, resources: ResourceRequirements, port: int, persistent_home: bool,
              claim: str, profile: _ProfileHome | None = None) -> dict[str, Any]:
    ports: list[dict[str, Any]] = []
    seen_names: set[str] = set()
    for p in template.ports:
        entry: dict[str, Any] = {"containerPort": p.container_port, "protocol": p.protocol}
        if p.name and p.name not in seen_names:
            entry["name"] = p.name
            seen_names.add(p.name)
        ports.append(entry)
    if not any(p["containerPort"] == port for p in ports):
        ports.insert(0, {"containerPort": port, "protocol": "TCP",
                         **({} if "stream" in seen_names else {"name": "stream"})})

    probe: dict[str, Any]
    webapp = template.webapp
    if (template.vnc is None or not template.vnc.enabled) and webapp is not None and webapp.enabled \
            and webapp.health_check and webapp.port == port:
        probe = {"httpGet": {"path": webapp.health_check, "port": port}}
    else:
        probe = {"tcpSocket": {"port": port}}
    probe.update({"initialDelaySeconds": 2, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3})

    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": resources["limits"]["memory"]}},
    ]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]  # noqa: S108 - the pod's own
    if profile is not None:
        # Pod-local: restored by the agent before the desktop starts (no claim, no ReadWriteMany class).
        volumes += [
            {"name": USER_HOME_VOLUME, "emptyDir": {"sizeLimit": profile.config.storage_size}},
            *([] if profile.secret is None else [
                {"name": PROFILE_TOKEN_VOLUME, "secret": {"secretName": profile.secret, "defaultMode": 0o444}}]),
            {"name": PROFILE_SCRATCH_VOLUME, "emptyDir": {"sizeLimit": profile.config.storage_size}},
        ]
        mounts.append({"name": USER_HOME_VOLUME, "mountPath": template.home_mount_path})
    elif persistent_home:
        volumes.append({"name": USER_HOME_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": USER_HOME_VOLUME, "mountPath": template.home_mount_path})
    declared = {v["name"] for v in volumes}
    for mount in template.volume_mounts:
        if mount.name == USER_HOME_VOLUME and persistent_home:
            continue  # mounted above, where the template says
        if mount.name not in declared:
            # Scratch space the image expects (and a non-persistent home): an emptyDir.
            volumes.append({"name": mount.name, "emptyDir": {}})
            declared.add(mount.name)
        entry = {"name": mount.name, "mountPath": mount.mount_path}
        if mount.read_only:
            entry["readOnly"] = True
        if mount.sub_path:
            entry["subPath"] = mount.sub_path
        mounts.append(entry)

    container: dict[str, Any] = {
        "name": "session",
        "image": template.base_image,
        "imagePullPolicy": "IfNotPresent",
        "ports": ports,
        "resources": copy.deepcopy(dict(resources)),
        "readinessProbe": probe,
        "securityContext": copy.deepcopy(NON_ROOT_CONTAINER_SECURITY if template.run_as_user is not None
                                         else SESSION_CONTAINER_SECURITY),
        "volumeMounts": mounts,
    }
    if template.env:
        container["env"] = [copy.deepcopy(var) for var in template.env]
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(template),
        "containers": [container],
        "volumes": volumes,
    }
    if profile is not None and profile.secret is None:
        # A warm desktop: the agent alone, as a native sidecar started (its port held) before the desktop.
        pod["initContainers"] = [{**_profile_agent(PROFILE_WARM_AGENT, "warm", template, profile),
                                  "restartPolicy": "Always"}]
        pod["terminationGracePeriodSeconds"] = profile.config.profile_agent.save_grace_seconds
    elif profile is not None:
        restore = _profile_agent(PROFILE_RESTORE, "restore", template, profile)
        sidecar = _profile_agent(PROFILE_SIDECAR, "sidecar", template, profile)
        if profile.config.profile_agent.sidecar == "native":
            # Kubernetes >= 1.29: an init container with restartPolicy Always starts after the restore,
            # before the desktop, and is stopped only once the desktop has exited: it saves a quiet home.
            pod["initContainers"] = [restore, {**sidecar, "restartPolicy": "Always"}]
        else:
            # 1.28 (native sidecars alpha, off): a regular container; SIGTERM reaches it with the desktop.
            pod["initContainers"] = [restore]
            pod["containers"].append(sidecar)
        # The desktop's stop and the save share the pod's grace period.
        pod["terminationGracePeriodSeconds"] = profile.config.profile_agent.save_grace_seconds
    return pod


def objects_to_apply(desired: Sequence[Mapping[str, Any]], recorded: Mapping[str, str]) -> list[dict[str, Any]]:
    """The desired objects whose hash differs from what the Deployment recorded (the Deployment
    whenever anything changes: it carries the record)."""
    wanted = {obj["kind"]: decode_hashes(
        desired[-1]["metadata"]["annotations"][ANN_HASHES]).get(obj["kind"]) for obj in desired}
    changed = [dict(obj) for obj in desired if recorded.get(obj["kind"]) != wanted[obj["kind"]]]
    if changed and changed[-1]["kind"] != "Deployment":
        changed.append(dict(desired[-1]))
    return changed


def deployment_drifted(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether someone changed what matters most on our Deployment behind our back (its hash record
    still matches): the replica count or the container images."""
    def images(obj: Mapping[str, Any]) -> list[Any]:
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        return [c.get("image") for c in pod.get("containers") or []]

    return ((live.get("spec") or {}).get("replicas") != (desired.get("spec") or {}).get("replicas")
            or images(live) != images(desired))


# --- status ----------------------------------------------------------------------------------------


@record
class Observation:
    """What the cluster showed for a Session, reduced to what its status reports."""

    phase: str  # Pending | Running | Hibernated | Failed | Terminated
    reason: str  # CamelCase, e.g. PodReady, TemplateMissing, ImagePullFailed, IdleTimeout
    message: str = ""
    pod_name: str | None = None
    template_problem: str | None = None  # TemplateMissing | TemplateInvalid when the Template failed
    ingress_refused: bool = False  # no Ingress may be made (ingress_refusal): condition IngressProtected False
    # (status, reason, message) of the ProfileRestored condition while the session runs in a claimed warm
    # desktop whose agent restores its profile (HOME_STORAGE=s3); None otherwise.
    profile_restore: tuple[str, str, str] | None = None


def deployment_ready(deployment: Mapping[str, Any] | None) -> bool:
    """Whether a pod of the Deployment's current spec serves, judged as `kubectl rollout status` does:
    the status must describe this generation of the spec (observedGeneration), hold no pod of an
    older spec, and have every updated pod ready. A status written for the previous spec (a new image,
    new resources) says nothing about the pod now starting."""
    if not deployment:
        return False
    status = deployment.get("status") or {}
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return False
    updated = int(status.get("updatedReplicas") or 0)
    return (updated >= 1 and int(status.get("replicas") or 0) <= updated
            and int(status.get("readyReplicas") or 0) >= updated)


def pod_observation(pods: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None, str]:
    """(name of the session's pod, image-pull failure message or None, waiting text) from its pods."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    live.sort(key=lambda p: (not _pod_is_ready(p), str((p.get("metadata") or {}).get("creationTimestamp") or "")))
    if not live:
        return None, None, ""
    pod = live[0]
    name = str((pod.get("metadata") or {}).get("name") or "") or None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        # kube-scheduler's verdict when no node fits (PodScheduled=False, reason Unschedulable, its
        # FitError message): the pod stays Pending and the session says why.
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return name, None, f"{condition.get('reason') or 'Unschedulable'}: {condition.get('message') or ''}"
    waiting = ""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("waiting") or {}
        reason = str(state.get("reason") or "")
        if reason in IMAGE_PULL_REASONS:
            return name, f"{reason}: {state.get('message') or 'the image cannot be pulled'}", reason
        if reason:
            waiting = reason
    return name, None, waiting


def _pod_is_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _condition(old: Mapping[str, Any] | None, ctype: str, ok: bool, reason: str, message: str,
               now: str) -> dict[str, Any]:
    value = "True" if ok else "False"
    since = now
    if old and old.get("status") == value and old.get("lastTransitionTime"):
        since = str(old["lastTransitionTime"])
    return {"type": ctype, "status": value, "lastTransitionTime": since, "reason": reason, "message": message}


def session_status(session: Mapping[str, Any], observed: Observation, config: ReconcileConfig,
                   now: str) -> dict[str, Any]:
    """The complete status for `observed` (conditions keep their lastTransitionTime while unchanged;
    each condition decided now carries the generation of the spec it was decided for, as
    metav1.Condition's observedGeneration)."""
    meta = session.get("metadata") or {}
    spec = session.get("spec") or {}
    old_status = session.get("status") or {}
    old = {str(c.get("type")): c for c in old_status.get("conditions") or [] if isinstance(c, Mapping)}
    name = str(meta.get("name") or "")
    phase = observed.phase
    kept: dict[str, Any] | None = None
    conditions = [
        _condition(old.get("Ready"), "Ready", phase == "Running",
                   "PodReady" if phase == "Running" else observed.reason,
                   "the session's pod is ready" if phase == "Running" else (observed.message or phase), now),
    ]
    if observed.template_problem is not None:
        conditions.append(_condition(old.get("TemplateResolved"), "TemplateResolved", False,
                                     observed.template_problem, observed.message, now))
    elif phase == "Terminated":
        if "TemplateResolved" in old:  # as last decided, for the generation it was decided for
            kept = dict(old["TemplateResolved"])
            conditions.append(kept)
    else:
        conditions.append(_condition(old.get("TemplateResolved"), "TemplateResolved", True, "TemplateReady",
                                     f"template {spec.get('template')} is ready", now))
    if observed.ingress_refused:
        conditions.append(_condition(old.get("IngressProtected"), "IngressProtected", False,
                                     INGRESS_CLASS_UNSUPPORTED, observed.message, now))
    if observed.profile_restore is not None:
        value, reason, message = observed.profile_restore
        previous = old.get("ProfileRestored")
        since = str(previous["lastTransitionTime"]) if previous and previous.get("status") == value and previous.get(
            "lastTransitionTime") else now
        conditions.append({"type": "ProfileRestored", "status": value, "lastTransitionTime": since,
                           "reason": reason, "message": message})
    hibernated = phase == "Hibernated"
    conditions.append(_condition(old.get("Hibernated"), "Hibernated", hibernated,
                                 observed.reason if hibernated else "NotHibernated",
                                 observed.message if hibernated else "the session is not hibernated", now))
    if phase == "Terminated":
        conditions.append(_condition(old.get("Terminated"), "Terminated", True, observed.reason,
                                     observed.message, now))
    generation = int(meta.get("generation") or 0)
    for condition in conditions:
        if condition is not kept:
            condition["observedGeneration"] = generation
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "message": observed.message,
        "conditions": conditions,
    }
    if phase != "Terminated":
        status["url"] = session_url(name, config)
    if observed.pod_name and phase in ("Pending", "Running", "Failed"):
        status["podName"] = observed.pod_name
    return status


_COMPARED = ("phase", "observedGeneration", "message", "url", "podName", "conditions")


def status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` would change what `current` reports (lastActivity and fields other
    writers own are not compared)."""
    current = current or {}
    return any((current.get(key) or None) != (desired.get(key) or None) for key in _COMPARED)


# --- the plan: what a reconcile does to a Session's objects ---------------------------------------


class _Unread:
    """The Deployment was not read (a Session never reconciled: nothing of it is expected to exist)."""


UNREAD = _Unread()
DeploymentView = Mapping[str, Any] | None | _Unread  # as read (None: absent), or UNREAD


@record
class SessionPlan:
    """What one reconcile does to a Session's objects (`desired_session`), decided without I/O."""

    apply: tuple[dict[str, Any], ...] = ()  # server-side applied in this order (the Deployment last)
    delete: tuple[str, ...] = ()  # kinds of the owned set, deleted in this order (the Deployment last)
    # The status when the plan alone decides it (Failed, Terminated, Hibernated); None: what the
    # cluster shows once the plan is applied (the pod's readiness) decides.
    settled: Observation | None = None
    # Whether the warm desktop the Session claimed (if it names one) is looked at: it keeps serving a
    # running Session and is ended otherwise. Not while the Template or the ingress class refuses
    # the Session: it is left as it is, like the Session's own objects.
    claimed_desktop: bool = False
    home_claim: str | None = None  # the home volume claim the set includes (HOME_STORAGE=volume)


def desired_session(session: Mapping[str, Any], template: TemplateSpec | None, config: ReconcileConfig, *,
                    deployment: DeploymentView, force_apply: bool = False,
                    template_problem: tuple[str, str] | None = None, profile_token: str | None = None,
                    warm: bool = False) -> SessionPlan:
    """The plan that brings a Session's objects in line with its spec (`spec.state`).

    `template`: the parsed spec of its Template, or None with `template_problem` (reason, message).
    `deployment`: the Session's Deployment as read (its annotation records the hashes of the set
    applied last), None when absent, UNREAD when the Session was never reconciled.
    `force_apply`: the whole set, whatever the record says (resync found an owned object missing).
    `profile_token`: the profile agent's token (HOME_STORAGE=s3); None there means the Session's user
    is unknown, so no profile can be restored.
    `warm`: the Session runs in the warm desktop it claimed (alive, ours, its profile handed over).
    Pure: the same inputs always give the same plan.
    """
    meta = session.get("metadata") or {}
    spec = session.get("spec") or {}
    state = spec.get("state") or "running"
    annotations = meta.get("annotations") or {}
    teardown = delete_order(config.home_storage)
    if state == "terminated":  # nothing is kept (the home volume stays); the status says why it ended
        if annotations.get(ANN_TERMINATION_REASON) == "MaxSessionDurationExceeded":  # never a value as a reason
            ended = Observation("Terminated", "MaxSessionDurationExceeded",
                                f"terminated: the session exceeded its maximum duration of "
                                f"{spec.get('maxSessionDuration')}")
        else:
            ended = Observation("Terminated", "Requested", "terminated on request")
        return SessionPlan(delete=teardown if deployment is not None or force_apply else (), settled=ended,
                           claimed_desktop=True)
    if template is None:
        reason, message = template_problem or ("TemplateMissing", "the session's template cannot be resolved")
        return SessionPlan(settled=Observation("Failed", reason, message, template_problem=reason))
    refusal = ingress_refusal(config)
    if refusal is not None:
        # Never an Ingress the controller would serve without forward auth. A set made under an earlier
        # class goes as on termination (the home volume stays), so no desktop runs that nobody can reach
        # safely, and a supported class later applies the whole set again.
        return SessionPlan(delete=teardown if isinstance(deployment, Mapping) or force_apply else (),
                           settled=Observation("Failed", INGRESS_CLASS_UNSUPPORTED, refusal, ingress_refused=True))
    if config.home_storage == "s3" and spec.get("persistentHome", True) is not False and profile_token is None:
        # The profile is the user's: a Session of no known user has none to restore.
        return SessionPlan(claimed_desktop=True, settled=Observation(
            "Failed", "UserUnknown", f"homes are profiles in the object store (HOME_STORAGE=s3), and no user "
                                     f"{spec.get('user')!r} exists to own this session's profile"))
    try:
        desired = desired_objects(session, template, config, profile_token, warm=warm)
    except ValidationError as exc:
        return SessionPlan(claimed_desktop=True, settled=Observation(
            "Failed", "InvalidResources", f"the session's resources are invalid: {exc}"))
    if isinstance(deployment, Mapping) and not force_apply:
        todo = objects_to_apply(desired, applied_hashes(deployment))
        if not todo and deployment_drifted(deployment, desired[-1]):
            todo = [dict(desired[-1])]  # scaled or edited by hand: the Deployment alone is put back
    else:
        todo = list(desired)
    settled = None
    if state == "hibernated":
        idle = annotations.get(ANN_HIBERNATION_REASON) == "IdleTimeout"
        settled = Observation("Hibernated", "IdleTimeout" if idle else "Requested",
                              "hibernated after being idle for longer than its idle timeout" if idle
                              else "hibernated on request")
    claim = next((str(o["metadata"]["name"]) for o in desired if o["kind"] == "PersistentVolumeClaim"), None)
    return SessionPlan(apply=tuple(todo), settled=settled, claimed_desktop=True, home_claim=claim)
