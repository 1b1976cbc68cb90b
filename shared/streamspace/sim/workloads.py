"""Simulated kube-controller-manager workload controllers: Deployment -> ReplicaSets -> Pods.

Follows Kubernetes' pkg/controller/deployment (sync.go, rolling.go, recreate.go, progress.go,
util/deployment_util.go) and pkg/controller/replicaset (replica_set.go, controller_utils.go):

- The Deployment controller claims ReplicaSets (adopts those matching its selector that have no controller,
  releases owned ones that stopped matching). Its new ReplicaSet is the one whose pod template equals its own,
  ignoring `pod-template-hash`; one is created as `<name>-<hash>` with the hash as a label, in the selector and in
  the template, owned with `controller: true`. Revisions: the new ReplicaSet gets max(old revisions)+1 in
  `deployment.kubernetes.io/revision`, the Deployment carries the same annotation, and `desired-replicas` /
  `max-replicas` annotations record the scale. RollingUpdate scales the new ReplicaSet up while the total stays
  within replicas+maxSurge and old ones down while replicas-maxUnavailable stay available (unhealthy old
  replicas first); Recreate scales every old ReplicaSet to 0, waits until their pods are gone, then scales the
  new one up. Once a rollout is complete, old ReplicaSets at 0 beyond revisionHistoryLimit are deleted. The
  status (replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, observedGeneration,
  conditions Available and Progressing) is computed from the ReplicaSets.
- The ReplicaSet controller claims pods the same way (a pod relabelled out of its selector loses the
  controller ownerReference and is replaced), creates pods from its template with generateName `<rs>-`,
  deletes surplus ones unscheduled before scheduled, pending before running, unready before ready, newest
  first, and reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and observedGeneration.

Not modelled: minReadySeconds (a ready pod is available at once), the progress deadline
(ProgressDeadlineExceeded), proportional scaling of several active ReplicaSets when a Deployment is scaled
mid-rollout, paused rollouts (a paused Deployment only gets its status), rollbacks, ReplicaFailure conditions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .api import Api, now, random_suffix
from .builtin import selector_matches
from .errors import ApiError
from .resources import Registry, ResourceType
from .store import Event, Store

log = logging.getLogger("streamspace.sim.workloads")

Task = tuple[str, str, str]  # ("deploy" | "rs", namespace, name)
DEPLOY_KEY = ("apps", "deployments")
RS_KEY = ("apps", "replicasets")
POD_KEY = ("", "pods")
MANAGER = "kube-controller-manager"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations never copied onto its ReplicaSets (deployment_util.go annotationsToSkip).
_NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
                         DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})


def template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash of a template (and the Deployment's collisionCount, which changes it when a
    ReplicaSet of that name exists with another template)."""
    text = json.dumps(template, sort_keys=True) + ("" if collision_count is None else f"/{collision_count}")
    digest = hashlib.sha256(text.encode()).hexdigest()
    # Same alphabet as the real pod-template-hash, which avoids vowels to not spell words.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(digest[:16], 16)
    out = []
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def controller_ref(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ownerReference with `controller: true`, if any."""
    return next((r for r in ((obj or {}).get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")),
                None)


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["metadata"].get("labels") or {}


def _deleting(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _active(pod: dict[str, Any]) -> bool:
    """controller.IsPodActive: not terminating and not finished."""
    return not _deleting(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _claim_candidate(obj: dict[str, Any], owner_uid: str, selector: dict[str, Any] | None) -> bool:
    """Whether ClaimObject could keep, release or adopt `obj` for the owner: it is the owner's, or
    an orphan the owner's selector matches (one controlled by someone else is never touched)."""
    ref = controller_ref(obj)
    return ref.get("uid") == owner_uid if ref is not None else _selects(selector, _labels(obj))


def _selects(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    # An empty selector selects nothing here: the controllers refuse to act on one.
    return bool(selector) and selector_matches(selector or {}, labels)


def _spec_replicas(obj: dict[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status_count(obj: dict[str, Any], key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(obj: dict[str, Any]) -> tuple[str, str]:
    return (str(obj["metadata"].get("creationTimestamp") or ""), str(obj["metadata"]["name"]))


def _without_hash(template: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def _scaled(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and value.endswith("%"):
        product = total * int(value[:-1])
        return -(-product // 100) if round_up else product // 100
    return int(value or 0)


def _is_rolling(dep: dict[str, Any]) -> bool:
    return ((dep.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _fenceposts(dep: dict[str, Any]) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge rounded up, maxUnavailable rounded down; 1 if both are 0)."""
    rolling = ((dep.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = _spec_replicas(dep)
    surge = _scaled(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(dep: dict[str, Any]) -> int:
    return _fenceposts(dep)[0] if _is_rolling(dep) else 0


def max_unavailable(dep: dict[str, Any]) -> int:
    if not _is_rolling(dep) or _spec_replicas(dep) == 0:
        return 0
    return min(_fenceposts(dep)[1], _spec_replicas(dep))


def _deletion_rank(pod: dict[str, Any]) -> tuple[bool, int, bool]:
    """controller.ActivePods ordering, first deleted first: unassigned < assigned, Pending < Unknown <
    Running, not ready < ready (ties: newest first, by a prior sort)."""
    phase = (pod.get("status") or {}).get("phase")
    return (bool((pod.get("spec") or {}).get("nodeName")), {"Pending": 0, "Unknown": 1}.get(str(phase), 2),
            pod_ready(pod))


def _set_condition(conditions: list[dict[str, Any]], ctype: str, ok: bool, reason: str,
                   message: str) -> list[dict[str, Any]]:
    """SetDeploymentCondition: unchanged status and reason keep the condition; the same status keeps its
    lastTransitionTime; a changed condition moves to the end."""
    value = "True" if ok else "False"
    current = next((c for c in conditions if c.get("type") == ctype), None)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        return conditions
    stamp = now()
    condition = {"type": ctype, "status": value, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                 "reason": reason, "message": message}
    if current is not None and current.get("status") == value:
        condition["lastTransitionTime"] = current.get("lastTransitionTime", stamp)
    return [c for c in conditions if c.get("type") != ctype] + [condition]


class WorkloadControllers:
    def __init__(self, api: Api, store: Store, registry: Registry) -> None:
        self.api = api
        self.store = store
        self.registry = registry

    # ------------------------------------------------------------ what an event wakes

    def tasks_for(self, ev: Event) -> list[Task]:
        """The Deployments and ReplicaSets a change concerns (the controllers' informer handlers)."""
        ns = ev.obj["metadata"].get("namespace", "")
        name = str(ev.obj["metadata"]["name"])
        tasks: list[Task] = []

        def owners(kind: str, task: str, candidates: Iterable[dict[str, Any] | None]) -> None:
            for obj in candidates:
                ref = controller_ref(obj)
                if ref is not None and ref.get("kind") == kind and (task, ns, str(ref.get("name"))) not in tasks:
                    tasks.append((task, ns, str(ref.get("name"))))

        if ev.key == DEPLOY_KEY:
            tasks.append(("deploy", ns, name))
        elif ev.key == RS_KEY:
            tasks.append(("rs", ns, name))
            owners("Deployment", "deploy", (ev.obj, ev.prev))
            if controller_ref(ev.obj) is None and ev.type != "DELETED" and not _deleting(ev.obj):
                tasks.extend(("deploy", ns, d) for d in self._selecting(DEPLOY_KEY, ns, _labels(ev.obj)))
        elif ev.key == POD_KEY:
            owners("ReplicaSet", "rs", (ev.obj, ev.prev))
            if controller_ref(ev.obj) is None and ev.type != "DELETED" and _active(ev.obj):
                tasks.extend(("rs", ns, r) for r in self._selecting(RS_KEY, ns, _labels(ev.obj)))
            if ev.type == "DELETED":
                # A Recreate rollout waits until the old pods are gone (the pod informer's deletePod).
                ref = controller_ref(ev.obj)
                with self.store.txn():
                    rs = self.store.get(RS_KEY, ns, str(ref.get("name"))) if ref and ref.get(
                        "kind") == "ReplicaSet" else None
                owners("Deployment", "deploy", (rs,))
        return tasks

    def _selecting(self, key: tuple[str, str], ns: str, labels: dict[str, Any]) -> list[str]:
        with self.store.txn():
            return [str(o["metadata"]["name"]) for o in self.store.items(key, ns)
                    if not _deleting(o) and _selects((o.get("spec") or {}).get("selector"), labels)]

    def all_tasks(self) -> list[Task]:
        """Every Deployment and ReplicaSet once (objects restored from a journal)."""
        with self.store.txn():
            return ([("deploy", o["metadata"].get("namespace", ""), o["metadata"]["name"])
                     for o in self.store.items(DEPLOY_KEY)] +
                    [("rs", o["metadata"].get("namespace", ""), o["metadata"]["name"])
                     for o in self.store.items(RS_KEY)])

    # ------------------------------------------------------------ shared

    def _type(self, group: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, "v1", plural)
        if rt is None:
            raise RuntimeError("invariant broken: rt is None")
        return rt

    def _read(self, key: tuple[str, str], ns: str, name: str) -> dict[str, Any] | None:
        with self.store.txn():
            found = self.store.get(key, ns, name)
            return copy.deepcopy(found) if found is not None else None

    def _claimable(self, key: tuple[str, str], owner: dict[str, Any],
                   keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Copies of the objects `_claim` may act on for `owner`: those it controls, and orphans its
        selector matches (the only ones ClaimObject adopts). Everything else in the namespace is
        skipped unread, as the controllers' informer caches hand them out without copying: copying
        every pod and ReplicaSet for every sync made each one cost O(objects in the namespace) and
        kept `make run`'s simulated cluster busy for minutes with a few hundred sessions."""
        uid = owner["metadata"]["uid"]
        selector = (owner.get("spec") or {}).get("selector")
        with self.store.txn():
            return [copy.deepcopy(o) for o in self.store.items(key, owner["metadata"].get("namespace", ""))
                    if (keep is None or keep(o)) and _claim_candidate(o, uid, selector)]

    def _claim(self, owner: dict[str, Any], owner_kind: str, rt: ResourceType,
               candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """ControllerRefManager.ClaimObject: keep what we control and still select, release what we control
        but no longer select, adopt orphans we select (not while we or they are being deleted)."""
        meta = owner["metadata"]
        uid = meta["uid"]
        selector = (owner.get("spec") or {}).get("selector")
        claimed = []
        for obj in candidates:
            ref = controller_ref(obj)
            matches = _selects(selector, _labels(obj))
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(obj)
                elif not _deleting(owner):
                    self._set_owner_refs(rt, obj, [r for r in obj["metadata"].get("ownerReferences") or []
                                                   if r.get("uid") != uid])
            elif matches and not _deleting(owner) and not _deleting(obj):
                refs = list(obj["metadata"].get("ownerReferences") or []) + [{
                    "apiVersion": "apps/v1", "kind": owner_kind, "name": meta["name"], "uid": uid,
                    "controller": True, "blockOwnerDeletion": True}]
                if self._set_owner_refs(rt, obj, refs):
                    claimed.append(self._read(rt.store_key, obj["metadata"].get("namespace", ""),
                                              obj["metadata"]["name"]) or obj)
        return claimed

    def _set_owner_refs(self, rt: ResourceType, obj: dict[str, Any], refs: list[dict[str, Any]]) -> bool:
        """Patch the ownerReferences with the object's resourceVersion as precondition: a concurrent change is
        never overwritten (its own event brings the controller back)."""
        meta = obj["metadata"]
        try:
            self.api.patch(rt, meta.get("namespace", ""), meta["name"], "application/merge-patch+json",
                           {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                                         "ownerReferences": refs or None}}, manager=MANAGER)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
            return False
        return True

    def _event(self, obj: dict[str, Any], reason: str, message: str, component: str) -> None:
        record_event(self.api, self.registry, obj, reason, message, component=component)

    # ------------------------------------------------------------ ReplicaSet controller

    def sync_replicaset(self, ns: str, name: str) -> None:
        rs = self._read(RS_KEY, ns, name)
        if rs is None:
            return
        pod_rt = self._type("", "pods")
        pods = self._claim(rs, "ReplicaSet", pod_rt, self._claimable(POD_KEY, rs, _active))
        if not _deleting(rs) and (rs.get("spec") or {}).get("selector"):
            diff = len(pods) - _spec_replicas(rs)
            if diff < 0:
                for _ in range(-diff):
                    self._create_pod(pod_rt, rs)
            elif diff > 0:
                pods.sort(key=_created, reverse=True)  # ties: newest first
                pods.sort(key=_deletion_rank)
                for pod in pods[:diff]:
                    try:
                        self.api.delete(pod_rt, ns, pod["metadata"]["name"], {})
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
                        continue
                    self._event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                                "replicaset-controller")
        self._write_replicaset_status(ns, name)

    def _create_pod(self, pod_rt: ResourceType, rs: dict[str, Any]) -> None:
        """controller.GetPodFromTemplate: the template's labels, annotations and finalizers, named after the
        ReplicaSet, controlled by it."""
        meta = rs["metadata"]
        template = (rs.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        pod_meta: dict[str, Any] = {
            "generateName": f"{meta['name']}-", "namespace": meta.get("namespace", ""),
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        }
        for field in ("annotations", "finalizers"):
            if tmeta.get(field):
                pod_meta[field] = copy.deepcopy(tmeta[field])
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
                "spec": copy.deepcopy(template.get("spec") or {})}
        created = self.api.create(pod_rt, meta.get("namespace", ""), body, manager=MANAGER)
        self._event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", "replicaset-controller")

    def _write_replicaset_status(self, ns: str, name: str) -> None:
        with self.store.txn():
            rs = self.store.get(RS_KEY, ns, name)
            if rs is None:
                return
            rs = copy.deepcopy(rs)
            uid = rs["metadata"]["uid"]
            selector = (rs.get("spec") or {}).get("selector")
            pods = [p for p in self.store.items(POD_KEY, ns) if _active(p)
                    and (controller_ref(p) or {}).get("uid") == uid and _selects(selector, _labels(p))]
        template_labels = (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = sum(1 for p in pods if pod_ready(p))
        old = rs.get("status") or {}
        # ReplicaSetStatus.replicas is always serialised; the other counts are omitted when zero.
        status: dict[str, Any] = {"replicas": len(pods)}
        for key, value in (("fullyLabeledReplicas", sum(1 for p in pods if all(
                _labels(p).get(k) == v for k, v in template_labels.items()))),
                           ("readyReplicas", ready), ("availableReplicas", ready),
                           ("observedGeneration", rs["metadata"].get("generation", 1))):
            if value:
                status[key] = value
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if status == old:
            return
        rs["status"] = status
        self.api.replace(self._type("apps", "replicasets"), ns, name, rs, subresource="status", manager=MANAGER)

    # ------------------------------------------------------------ Deployment controller

    def sync_deployment(self, ns: str, name: str) -> None:
        dep = self._read(DEPLOY_KEY, ns, name)
        if dep is None or not (dep.get("spec") or {}).get("selector"):
            return
        rs_rt = self._type("apps", "replicasets")
        rs_list = self._claim(dep, "Deployment", rs_rt, self._claimable(RS_KEY, dep))
        if _deleting(dep) or (dep.get("spec") or {}).get("paused"):
            new_rs, old_rss = self._new_and_old(dep, rs_list, create=False)
            self._sync_status(dep, new_rs, old_rss)
        elif _is_rolling(dep):
            self._rollout_rolling(dep, rs_list)
        else:
            self._rollout_recreate(dep, rs_list)

    def _new_and_old(self, dep: dict[str, Any], rs_list: list[dict[str, Any]], *,
                     create: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """getAllReplicaSetsAndSyncRevision: the new ReplicaSet (oldest whose template equals ours ignoring
        the hash; created when asked), the others, and the revision annotations brought up to date."""
        template = _without_hash((dep.get("spec") or {}).get("template"))
        new_rs = next((rs for rs in sorted(rs_list, key=_created)
                       if _without_hash((rs.get("spec") or {}).get("template")) == template), None)
        old_rss = [rs for rs in rs_list if rs is not new_rs]
        revision = max((_revision(rs) for rs in old_rss), default=0) + 1
        if new_rs is not None:
            new_rs = self._update_new_rs_annotations(dep, new_rs, revision)
            if not any(c.get("type") == "Progressing" for c in (dep.get("status") or {}).get("conditions") or []):
                self._progress(dep, "FoundNewReplicaSet", f'Found new replica set "{new_rs["metadata"]["name"]}"')
        elif create:
            new_rs = self._create_new_rs(dep, old_rss, revision)
        if new_rs is not None:
            self._set_deployment_revision(dep, str(_revision(new_rs)))
        return new_rs, old_rss

    def _replica_annotations(self, dep: dict[str, Any]) -> dict[str, str]:
        replicas = _spec_replicas(dep)
        return {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + max_surge(dep))}

    def _copied_annotations(self, dep: dict[str, Any]) -> dict[str, str]:
        return {k: v for k, v in (dep["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}

    def _update_new_rs_annotations(self, dep: dict[str, Any], rs: dict[str, Any], revision: int) -> dict[str, Any]:
        annotations = dict(rs["metadata"].get("annotations") or {})
        wanted = {**annotations, **self._copied_annotations(dep)}
        if _revision(rs) < revision:
            wanted[REVISION] = str(revision)
        if DESIRED_REPLICAS not in wanted or MAX_REPLICAS not in wanted:
            wanted.update(self._replica_annotations(dep))
        if wanted == annotations:
            return rs
        body = copy.deepcopy(rs)
        body["metadata"]["annotations"] = wanted
        return self.api.replace(self._type("apps", "replicasets"), rs["metadata"]["namespace"],
                                rs["metadata"]["name"], body, manager=MANAGER)

    def _create_new_rs(self, dep: dict[str, Any], old_rss: list[dict[str, Any]],
                       revision: int) -> dict[str, Any] | None:
        meta = dep["metadata"]
        ns = meta.get("namespace", "")
        spec = dep.get("spec") or {}
        collisions = (dep.get("status") or {}).get("collisionCount")
        thash = template_hash(_without_hash(spec.get("template")), collisions)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = thash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = thash
        name = f"{meta['name']}-{thash}"
        prototype = {"metadata": {"name": name}, "spec": {"replicas": 0}}
        replicas = self._new_rs_replicas(dep, old_rss + [prototype], prototype)
        body: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns, "labels": dict(template["metadata"]["labels"]),
                         "annotations": {**self._copied_annotations(dep), REVISION: str(revision),
                                         **self._replica_annotations(dep)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     **({"minReadySeconds": spec["minReadySeconds"]} if spec.get("minReadySeconds") else {})},
        }
        rs_rt = self._type("apps", "replicasets")
        try:
            created = self.api.create(rs_rt, ns, body, manager=MANAGER)
        except ApiError as exc:
            if exc.code != 409:
                raise
            existing = self._read(RS_KEY, ns, name)
            if existing is not None and (controller_ref(existing) or {}).get("uid") == meta["uid"] and \
                    _without_hash((existing.get("spec") or {}).get("template")) == _without_hash(template):
                return existing  # our informer had not seen it yet
            # A hash collision with someone else's ReplicaSet: a new collisionCount gives a new name.
            fresh = self._read(DEPLOY_KEY, ns, meta["name"])
            if fresh is not None:
                fresh.setdefault("status", {})["collisionCount"] = int(collisions or 0) + 1
                self.api.replace(self._type("apps", "deployments"), ns, meta["name"], fresh, subresource="status",
                                 manager=MANAGER)
            return None
        if replicas > 0:
            self._event(dep, "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}",
                        "deployment-controller")
        self._progress(dep, "NewReplicaSetCreated", f'Created new replica set "{name}"')
        return created

    def _progress(self, dep: dict[str, Any], reason: str, message: str) -> None:
        """Record the Progressing condition at once, as the controller does when it finds or creates the new
        ReplicaSet (`dep` is updated in place so this sync continues from it)."""
        status = dep.setdefault("status", {})
        status["conditions"] = _set_condition(list(status.get("conditions") or []), "Progressing", True, reason,
                                              message)

    def _set_deployment_revision(self, dep: dict[str, Any], revision: str) -> None:
        meta = dep["metadata"]
        if (meta.get("annotations") or {}).get(REVISION) == revision:
            return
        _, written = self.api.patch(self._type("apps", "deployments"), meta.get("namespace", ""), meta["name"],
                                    "application/merge-patch+json",
                                    {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                                                  "annotations": {REVISION: revision}}}, manager=MANAGER)
        status = dep.get("status")
        dep.clear()
        dep.update(written)
        if status is not None:
            dep["status"] = status  # conditions recorded by this sync and not written yet

    @staticmethod
    def _new_rs_replicas(dep: dict[str, Any], all_rss: list[dict[str, Any]], new_rs: dict[str, Any]) -> int:
        """NewRSNewReplicas."""
        replicas = _spec_replicas(dep)
        if not _is_rolling(dep):
            return replicas
        current = sum(_spec_replicas(rs) for rs in all_rss)
        most = replicas + max_surge(dep)
        if current >= most:
            return _spec_replicas(new_rs)
        return _spec_replicas(new_rs) + min(most - current, replicas - _spec_replicas(new_rs))

    def _scale(self, rs: dict[str, Any], replicas: int, dep: dict[str, Any]) -> bool:
        """scaleReplicaSetAndRecordEvent: set the size and the replica annotations; True when the size changed."""
        before = _spec_replicas(rs)
        annotations = dict(rs["metadata"].get("annotations") or {})
        wanted = {**annotations, **self._replica_annotations(dep)}
        if before == replicas and wanted == annotations:
            return False
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = replicas
        body["metadata"]["annotations"] = wanted
        written = self.api.replace(self._type("apps", "replicasets"), rs["metadata"]["namespace"],
                                   rs["metadata"]["name"], body, manager=MANAGER)
        rs.clear()
        rs.update(written)
        if before != replicas:
            self._event(dep, "ScalingReplicaSet", f"Scaled {'up' if replicas > before else 'down'} replica set "
                        f"{rs['metadata']['name']} from {before} to {replicas}", "deployment-controller")
        return before != replicas

    def _rollout_rolling(self, dep: dict[str, Any], rs_list: list[dict[str, Any]]) -> None:
        new_rs, old_rss = self._new_and_old(dep, rs_list, create=True)
        if new_rs is None:
            return  # a name collision: the collisionCount update brings us back
        all_rss = old_rss + [new_rs]
        replicas = _spec_replicas(dep)
        # reconcileNewReplicaSet: scale up within maxSurge (or straight down to the wanted size).
        if _spec_replicas(new_rs) != replicas:
            target = replicas if _spec_replicas(new_rs) > replicas else self._new_rs_replicas(dep, all_rss, new_rs)
            if self._scale(new_rs, target, dep):
                self._sync_status(dep, new_rs, old_rss)
                return
        if self._scale_down_old_rolling(dep, new_rs, old_rss):
            self._sync_status(dep, new_rs, old_rss)
            return
        if self._complete(dep, dep.get("status") or {}):
            self._cleanup(dep, old_rss)
        self._sync_status(dep, new_rs, old_rss)

    def _scale_down_old_rolling(self, dep: dict[str, Any], new_rs: dict[str, Any],
                                old_rss: list[dict[str, Any]]) -> bool:
        """reconcileOldReplicaSets: never below replicas-maxUnavailable available, counting the new
        ReplicaSet's unavailable pods against it; unhealthy old replicas go first."""
        active = sorted((rs for rs in old_rss if _spec_replicas(rs) > 0), key=_created)
        if not active:
            return False
        all_pods = sum(_spec_replicas(rs) for rs in old_rss + [new_rs])
        min_available = _spec_replicas(dep) - max_unavailable(dep)
        new_unavailable = _spec_replicas(new_rs) - _status_count(new_rs, "availableReplicas")
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return False
        scaled = 0
        for rs in active:  # cleanupUnhealthyReplicas
            if scaled >= budget:
                break
            unhealthy = _spec_replicas(rs) - _status_count(rs, "availableReplicas")
            if unhealthy > 0:
                step = min(budget - scaled, unhealthy)
                self._scale(rs, _spec_replicas(rs) - step, dep)
                scaled += step
        # scaleDownOldReplicaSetsForRollingUpdate
        available = sum(_status_count(rs, "availableReplicas") for rs in old_rss + [new_rs])
        if available > min_available:
            remaining = available - min_available
            for rs in active:
                if remaining <= 0:
                    break
                step = min(_spec_replicas(rs), remaining)
                if step > 0:
                    self._scale(rs, _spec_replicas(rs) - step, dep)
                    remaining -= step
                    scaled += step
        return scaled > 0

    def _rollout_recreate(self, dep: dict[str, Any], rs_list: list[dict[str, Any]]) -> None:
        new_rs, old_rss = self._new_and_old(dep, rs_list, create=False)
        scaled_down = False
        for rs in old_rss:
            if _spec_replicas(rs) > 0:
                scaled_down = self._scale(rs, 0, dep) or scaled_down
        if scaled_down or self._old_pods_running(dep, new_rs, old_rss):
            self._sync_status(dep, new_rs, old_rss)
            return
        if new_rs is None:
            new_rs, old_rss = self._new_and_old(dep, rs_list, create=True)
            if new_rs is None:
                return
        self._scale(new_rs, _spec_replicas(dep), dep)
        if self._complete(dep, dep.get("status") or {}):
            self._cleanup(dep, old_rss)
        self._sync_status(dep, new_rs, old_rss)

    def _old_pods_running(self, dep: dict[str, Any], new_rs: dict[str, Any] | None,
                          old_rss: list[dict[str, Any]]) -> bool:
        """oldPodsRunning: an old ReplicaSet still counts pods, or a pod of one (terminating included) has not
        finished."""
        if sum(_status_count(rs, "replicas") for rs in old_rss):
            return True
        old_uids = {rs["metadata"]["uid"] for rs in old_rss} - ({new_rs["metadata"]["uid"]} if new_rs else set())
        if not old_uids:
            return False
        selector = (dep.get("spec") or {}).get("selector")
        with self.store.txn():  # read in place: nothing here is kept or changed
            return any((controller_ref(p) or {}).get("uid") in old_uids and _selects(selector, _labels(p))
                       and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                       for p in self.store.items(POD_KEY, dep["metadata"].get("namespace", "")))

    @staticmethod
    def _complete(dep: dict[str, Any], status: dict[str, Any]) -> bool:
        """DeploymentComplete."""
        replicas = _spec_replicas(dep)
        return (int(status.get("updatedReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas
                and int(status.get("availableReplicas") or 0) == replicas
                and int(status.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0))

    def _cleanup(self, dep: dict[str, Any], old_rss: list[dict[str, Any]]) -> None:
        """cleanupDeployment: delete the oldest revisions beyond revisionHistoryLimit that run nothing."""
        limit = (dep.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = sorted((rs for rs in old_rss if not _deleting(rs)), key=lambda rs: (_revision(rs), _created(rs)))
        rs_rt = self._type("apps", "replicasets")
        for rs in alive[:max(0, len(alive) - int(limit))]:
            if _status_count(rs, "replicas") or _spec_replicas(rs) or int(rs["metadata"].get("generation") or 0) > \
                    _status_count(rs, "observedGeneration"):
                continue
            try:
                self.api.delete(rs_rt, rs["metadata"]["namespace"], rs["metadata"]["name"],
                                {"preconditions": {"uid": rs["metadata"]["uid"]}})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    def _sync_status(self, dep: dict[str, Any], new_rs: dict[str, Any] | None,
                     old_rss: list[dict[str, Any]]) -> None:
        """calculateStatus and syncRolloutStatus, from the ReplicaSets as they are stored now."""
        ns = dep["metadata"].get("namespace", "")
        uids = {rs["metadata"]["uid"] for rs in old_rss + ([new_rs] if new_rs else [])}
        with self.store.txn():
            stored = self.store.get(DEPLOY_KEY, ns, dep["metadata"]["name"])
            if stored is None or stored["metadata"]["uid"] != dep["metadata"]["uid"]:
                return
            stored = copy.deepcopy(stored)
            rss = [copy.deepcopy(rs) for rs in self.store.items(RS_KEY, ns) if rs["metadata"]["uid"] in uids]
        new = next((rs for rs in rss if new_rs is not None and rs["metadata"]["uid"] == new_rs["metadata"]["uid"]),
                   None)
        old = stored.get("status") or {}
        known = dep.get("status") or {}  # conditions this sync recorded (a new ReplicaSet found or created)
        available = sum(_status_count(rs, "availableReplicas") for rs in rss)
        counts = {
            "replicas": sum(_status_count(rs, "replicas") for rs in rss),
            "updatedReplicas": _status_count(new, "replicas") if new else 0,
            "readyReplicas": sum(_status_count(rs, "readyReplicas") for rs in rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(_spec_replicas(rs) for rs in rss) - available),
        }
        status: dict[str, Any] = {"observedGeneration": stored["metadata"].get("generation", 1)}
        # DeploymentStatus omits zero counts, exactly as the real API serialises it.
        status.update({k: v for k, v in counts.items() if v})
        if "collisionCount" in old:
            status["collisionCount"] = old["collisionCount"]
        replicas = _spec_replicas(stored)
        conditions = list(known.get("conditions") or old.get("conditions") or [])
        enough = available >= replicas - max_unavailable(stored)
        conditions = _set_condition(conditions, "Available", enough,
                                    "MinimumReplicasAvailable" if enough else "MinimumReplicasUnavailable",
                                    "Deployment has minimum availability." if enough else
                                    "Deployment does not have minimum availability.")
        progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
        deadline = (stored.get("spec") or {}).get("progressDeadlineSeconds")
        if deadline is None or int(deadline) == 2 ** 31 - 1:
            conditions = [c for c in conditions if c.get("type") != "Progressing"]
        elif not (status.get("replicas", 0) == status.get("updatedReplicas", 0) and progressing is not None
                  and progressing.get("reason") == "NewReplicaSetAvailable") and new is not None:
            rs_name = new["metadata"]["name"]
            if self._complete(stored, status):
                conditions = _set_condition(conditions, "Progressing", True, "NewReplicaSetAvailable",
                                            f'ReplicaSet "{rs_name}" has successfully progressed.')
            elif self._progressed(old, status):
                conditions = _set_condition(conditions, "Progressing", True, "ReplicaSetUpdated",
                                            f'ReplicaSet "{rs_name}" is progressing.')
        status["conditions"] = conditions
        if status == old:
            return
        stored["status"] = status
        self.api.replace(self._type("apps", "deployments"), ns, stored["metadata"]["name"], stored,
                         subresource="status", manager=MANAGER)

    @staticmethod
    def _progressed(old: dict[str, Any], new: dict[str, Any]) -> bool:
        """DeploymentProgressing: more updated, ready or available pods, or fewer old ones, than before."""
        def count(status: dict[str, Any], key: str) -> int:
            return int(status.get(key) or 0)

        return (count(new, "updatedReplicas") > count(old, "updatedReplicas")
                or count(new, "replicas") - count(new, "updatedReplicas") < count(old, "replicas") - count(
                    old, "updatedReplicas")
                or count(new, "readyReplicas") > count(old, "readyReplicas")
                or count(new, "availableReplicas") > count(old, "availableReplicas"))


def record_event(api: Api, registry: Registry, obj: dict[str, Any], reason: str, message: str, *,
                 component: str, kind: str = "Normal", host: str = "", field_path: str | None = None) -> None:
    """A core/v1 Event about `obj`, as the controllers, the scheduler and the kubelet record them."""
    event_rt = registry.get("", "v1", "events")
    if event_rt is None:
        raise RuntimeError("invariant broken: event_rt is None")
    meta = obj["metadata"]
    ns = meta.get("namespace", "")
    stamp = now()
    involved: dict[str, Any] = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Pod"),
                                "name": meta["name"], "namespace": ns, "uid": meta.get("uid"),
                                "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        involved["fieldPath"] = field_path
    body = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{random_suffix(10)}", "namespace": ns},
        "involvedObject": involved, "reason": reason, "message": message, "type": kind,
        "source": {"component": component, **({"host": host} if host else {})},
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        "reportingComponent": component, "reportingInstance": host,
    }
    try:
        api.create(event_rt, ns, body, manager=component)
    except ApiError as exc:  # a namespace being deleted: the event is lost, as on a real cluster
        log.debug("simulated controllers: event %s for %s/%s: %s", reason, ns, meta["name"], exc.message)
