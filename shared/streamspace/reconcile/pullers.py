"""Image pre-pull, computed without any I/O: which images the Templates want on every node, the
DaemonSet that pulls each, and what a Template's status says about it.

A Template wants its image pre-pulled when `spec.prePull` is true or it keeps a warm pool at some
time (`domain.warm.wanted_image`, the one rule, which a launch's predicted start kind reads too). A
disabled Template wants nothing (nobody can launch it). One DaemonSet per
image, shared by every Template of that image, named from the image alone (`puller_name`), so two
Templates of one image share it and it goes only when the last of them stops wanting it.

The DaemonSet is built like JupyterHub's continuous image puller (zero-to-jupyterhub's
image-puller DaemonSet): an init container runs the image with a trivial command (which makes the
kubelet pull it), then a tiny pause container keeps the pod, and with it the image, on the node
(the kubelet's image garbage collector does not remove images of running pods). Small requests,
no service account token, no privileges (it passes Pod Security `restricted`), `maxUnavailable: 100%`
so a change rolls every node at once. It carries the sessions' own scheduling constraints (none
today), so the image lands where sessions can run; the DaemonSet controller adds its default
tolerations (cordoned and not-ready nodes still pull).

`numberReady` of the DaemonSet counts the nodes whose puller pod is Ready, which it only becomes
after its init container ran, i.e. once the image is on that node; `desiredNumberScheduled` counts
the nodes that should have it (Kubernetes `pkg/controller/daemon` updateDaemonSetStatus).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from streamspace.domain.warm import wanted_image
from streamspace.reconcile.desired import APP_NAME, MANAGED_BY, MANAGER_NAME

PULLER_APP = "streamspace-image-puller"
LABEL_PULLER = "stream.space/image-puller"
ANN_IMAGE = "stream.space/image"
ANN_HASH = "stream.space/applied-hash"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
CONDITION = "ImagePrePulled"
NAME_PREFIX = "prepull-"
PULL_COMMAND = ["/bin/sh", "-c", "echo Pulling complete"]
_NOBODY = 65534


def wanted_images(templates: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each wanted image -> the names of the Templates that want it (sorted)."""
    out: dict[str, list[str]] = {}
    for template in templates:
        image = wanted_image(template)
        if image is not None:
            out.setdefault(image, []).append(str((template.get("metadata") or {}).get("name")))
    return {image: sorted(names) for image, names in sorted(out.items())}


def puller_name(image: str) -> str:
    """A stable DNS-1123 name for the image's DaemonSet: its short name and a hash of the whole
    reference (`prepull-firefox-3f9a0c1b2d`), at most 40 characters so pod names stay valid labels."""
    repository = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    slug = re.sub(r"[^a-z0-9]+", "-", repository.lower()).strip("-")[:20].strip("-") or "image"
    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    return f"{NAME_PREFIX}{slug}-{digest}"


def _restricted_container() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}


def puller_daemonset(image: str, namespace: str) -> dict[str, Any]:
    """The DaemonSet that keeps `image` on every node sessions can run on (applied with server-side apply)."""
    name = puller_name(image)
    selector = {APP_NAME: PULLER_APP, LABEL_PULLER: name}
    small = {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**selector, MANAGED_BY: MANAGER_NAME},
                     "annotations": {ANN_IMAGE: image}},
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            # Every node at once: the pods hold nothing but the image, so none of them must stay up.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {
                "metadata": {"labels": {**selector, MANAGED_BY: MANAGER_NAME}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 0,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": _NOBODY, "runAsGroup": _NOBODY,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "initContainers": [{"name": "pull", "image": image, "imagePullPolicy": "IfNotPresent",
                                        "command": list(PULL_COMMAND), "resources": small,
                                        "securityContext": _restricted_container()}],
                    "containers": [{"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "IfNotPresent",
                                    "resources": small, "securityContext": _restricted_container()}],
                },
            },
        },
    }
    body["metadata"]["annotations"][ANN_HASH] = content_hash(body)
    return body


def content_hash(body: Mapping[str, Any]) -> str:
    """A hash of what we apply (labels, image annotation, spec): equal on the live object means nothing to do."""
    meta = body.get("metadata") or {}
    seen = {"labels": meta.get("labels"), "image": (meta.get("annotations") or {}).get(ANN_IMAGE),
            "spec": body.get("spec")}
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


def is_puller(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(APP_NAME) == PULLER_APP and labels.get(MANAGED_BY) == MANAGER_NAME


def puller_image(obj: Mapping[str, Any]) -> str | None:
    image = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANN_IMAGE)
    return image if isinstance(image, str) else None


def prepull_status(image: str, daemonset: Mapping[str, Any] | None) -> dict[str, Any]:
    """`status.prePull` of a Template that wants `image` on every node, from its DaemonSet (None: not made yet)."""
    status = (daemonset or {}).get("status") or {}
    return {"image": image, "daemonSet": puller_name(image),
            "nodesReady": int(status.get("numberReady") or 0),
            "nodesDesired": int(status.get("desiredNumberScheduled") or 0)}


def prepull_condition(prepull: Mapping[str, Any], daemonset: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(status, reason, message) of the ImagePrePulled condition."""
    image, ready, desired = prepull["image"], prepull["nodesReady"], prepull["nodesDesired"]
    meta = (daemonset or {}).get("metadata") or {}
    observed = int(((daemonset or {}).get("status") or {}).get("observedGeneration") or 0)
    if daemonset is None or observed < int(meta.get("generation") or 1):
        return "Unknown", "PullerStarting", f"the image puller {prepull['daemonSet']} is being set up"
    if desired == 0:
        return "False", "NoNodes", "no node can run sessions, so none has pulled the image"
    if ready >= desired:
        return "True", "OnAllNodes", f"{image} is on all {desired} node(s) sessions can run on"
    return "False", "Pulling", f"{image} is on {ready} of {desired} node(s); the others are pulling it"
