"""Deployments own ReplicaSets that own Pods, as kube-controller-manager's Deployment and ReplicaSet
controllers do it (pkg/controller/deployment, pkg/controller/replicaset), through the official client."""

from __future__ import annotations

from kubernetes import client, watch
from sim_helpers import CEILING, deployment, eventually

REVISION = "deployment.kubernetes.io/revision"


def _replica_sets(apps: client.AppsV1Api, ns: str) -> dict[str, client.V1ReplicaSet]:
    return {rs.metadata.annotations[REVISION]: rs for rs in apps.list_namespaced_replica_set(ns).items}


def _conditions(obj) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in obj.status.conditions or []}


def _with_strategy(body: dict, strategy: dict, **spec: object) -> dict:
    body["spec"]["strategy"] = strategy
    body["spec"].update(spec)
    return body


def test_a_deployment_owns_a_replicaset_per_template_which_owns_the_pods(apps, core, ns):
    created = apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
    (rs,) = apps.list_namespaced_replica_set(ns).items
    pod_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{pod_hash}"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": pod_hash}
    assert rs.spec.template.metadata.labels == {"app": "web", "pod-template-hash": pod_hash}
    (ref,) = rs.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "Deployment", "web", created.metadata.uid, True, True)
    assert rs.metadata.annotations[REVISION] == "1"
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "2"
    assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "3"  # 2 + 25% rounded up
    assert (rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas) == (2, 2, 2)
    assert rs.status.observed_generation == rs.metadata.generation == 1
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 2
    for pod in pods:
        assert pod.metadata.generate_name == f"{rs.metadata.name}-"
        assert pod.metadata.labels["pod-template-hash"] == pod_hash
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == ("ReplicaSet", rs.metadata.uid, True)
    dep = apps.read_namespaced_deployment("web", ns)
    assert dep.metadata.annotations[REVISION] == "1"
    assert (dep.status.replicas, dep.status.updated_replicas, dep.status.ready_replicas,
            dep.status.available_replicas, dep.status.observed_generation) == (2, 2, 2, 2, 1)
    assert _conditions(dep) == {"Available": ("True", "MinimumReplicasAvailable"),
                                "Progressing": ("True", "NewReplicaSetAvailable")}
    reasons = [e.reason for e in core.list_namespaced_event(ns).items
               if e.involved_object.kind in ("Deployment", "ReplicaSet")]
    assert reasons.count("ScalingReplicaSet") == 1 and reasons.count("SuccessfulCreate") == 2


def test_replicasets_are_listed_and_watched_through_the_apps_client(apps, ns):
    rv = apps.list_namespaced_replica_set(ns).metadata.resource_version
    apps.create_namespaced_deployment(ns, deployment("watched"))
    seen = []
    stream = watch.Watch()
    for event in stream.stream(apps.list_namespaced_replica_set, ns, resource_version=rv, timeout_seconds=CEILING):
        seen.append((event["type"], event["object"].status.ready_replicas))
        if event["object"].status.ready_replicas == 1:
            stream.stop()
    assert seen[0] == ("ADDED", None) and seen[-1] == ("MODIFIED", 1)
    everywhere = apps.list_replica_set_for_all_namespaces(label_selector="app=watched").items
    assert [rs.metadata.namespace for rs in everywhere] == [ns]


def test_a_rolling_update_surges_within_max_surge_and_keeps_the_old_pods_while_the_new_ones_fail(apps, core, ns):
    body = _with_strategy(deployment("roll", replicas=4),
                          {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    apps.create_namespaced_deployment(ns, body)
    apps.patch_namespaced_deployment("roll", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "registry.example/invalid-image:2"}]}}}})
    sets = _replica_sets(apps, ns)
    # One surge pod of the new template; it never becomes ready, so no old pod may go.
    assert (sets["1"].spec.replicas, sets["2"].spec.replicas) == (4, 1)
    assert len(core.list_namespaced_pod(ns).items) == 5
    dep = apps.read_namespaced_deployment("roll", ns)
    assert dep.metadata.annotations[REVISION] == "2"
    assert (dep.status.replicas, dep.status.updated_replicas, dep.status.available_replicas,
            dep.status.unavailable_replicas) == (5, 1, 4, 1)
    assert _conditions(dep)["Available"] == ("True", "MinimumReplicasAvailable")
    assert _conditions(dep)["Progressing"][1] == "ReplicaSetUpdated"

    # A good template rolls over: the failing ReplicaSet's unhealthy pod goes first, then the old ones.
    apps.patch_namespaced_deployment("roll", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.28"}]}}}})
    sets = _replica_sets(apps, ns)
    assert {revision: rs.spec.replicas for revision, rs in sets.items()} == {"1": 0, "2": 0, "3": 4}
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 4 and {p.metadata.owner_references[0].name for p in pods} == {sets["3"].metadata.name}
    dep = apps.read_namespaced_deployment("roll", ns)
    assert (dep.status.replicas, dep.status.updated_replicas, dep.status.available_replicas) == (4, 4, 4)
    assert dep.status.unavailable_replicas is None
    assert _conditions(dep)["Progressing"] == ("True", "NewReplicaSetAvailable")


def test_max_unavailable_lets_old_pods_go_before_new_ones_are_ready(apps, core, ns):
    body = _with_strategy(deployment("drop", replicas=4),
                          {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    apps.create_namespaced_deployment(ns, body)
    apps.patch_namespaced_deployment("drop", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "registry.example/invalid-image:2"}]}}}})
    sets = _replica_sets(apps, ns)
    assert (sets["1"].spec.replicas, sets["2"].spec.replicas) == (3, 1)
    assert len(core.list_namespaced_pod(ns).items) == 4
    dep = apps.read_namespaced_deployment("drop", ns)
    assert (dep.status.available_replicas, dep.status.unavailable_replicas) == (3, 1)
    assert _conditions(dep)["Available"] == ("True", "MinimumReplicasAvailable")  # 3 >= 4 - maxUnavailable


def test_recreate_removes_every_old_pod_before_the_first_new_one_is_created(apps, core, ns):
    apps.create_namespaced_deployment(ns, _with_strategy(deployment("desk", replicas=2), {"type": "Recreate"}))
    old = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    apps.patch_namespaced_deployment("desk", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.28"}]}}}})
    order = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=CEILING):
        name = event["object"].metadata.name
        if (event["type"] == "DELETED" and name in old) or (event["type"] == "ADDED" and name not in old):
            order.append((event["type"], name))
        if sum(1 for kind, _ in order if kind == "ADDED") == 2:
            stream.stop()
    assert [kind for kind, _ in order] == ["DELETED", "DELETED", "ADDED", "ADDED"], order
    sets = _replica_sets(apps, ns)
    assert (sets["1"].spec.replicas, sets["2"].spec.replicas) == (0, 2)
    assert apps.read_namespaced_deployment("desk", ns).status.updated_replicas == 2


def test_revision_history_keeps_only_the_limit_of_old_replicasets(apps, ns):
    apps.create_namespaced_deployment(ns, _with_strategy(deployment("hist"), {"type": "Recreate"},
                                                         revisionHistoryLimit=1))
    for tag in ("1.28", "1.29", "1.30"):
        apps.patch_namespaced_deployment("hist", ns, {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": f"nginx:{tag}"}]}}}})
    eventually(lambda: len(_replica_sets(apps, ns)) == 2, "the oldest revisions deleted")
    sets = _replica_sets(apps, ns)
    assert sorted(sets) == ["3", "4"] and sets["4"].spec.replicas == 1 and sets["3"].spec.replicas == 0


def test_going_back_to_an_earlier_template_reuses_its_replicaset_with_a_new_revision(apps, ns):
    apps.create_namespaced_deployment(ns, deployment("back"))
    first = apps.list_namespaced_replica_set(ns).items[0].metadata.name
    for image in ("nginx:1.28", "nginx:1.27"):
        apps.patch_namespaced_deployment("back", ns, {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": image}]}}}})
    sets = _replica_sets(apps, ns)
    assert sorted(sets) == ["2", "3"] and sets["3"].metadata.name == first and sets["3"].spec.replicas == 1
    assert apps.read_namespaced_deployment("back", ns).metadata.annotations[REVISION] == "3"


def test_scale_to_zero_and_back_keeps_the_replicaset(apps, core, ns):
    """Hibernation: the ReplicaSet stays at 0 replicas and serves again when woken."""
    apps.create_namespaced_deployment(ns, _with_strategy(deployment("nap"), {"type": "Recreate"}))
    (rs,) = apps.list_namespaced_replica_set(ns).items
    apps.patch_namespaced_deployment("nap", ns, {"spec": {"replicas": 0}})
    assert core.list_namespaced_pod(ns).items == []
    (asleep,) = apps.list_namespaced_replica_set(ns).items
    assert (asleep.metadata.uid, asleep.spec.replicas, asleep.status.replicas) == (rs.metadata.uid, 0, 0)
    apps.patch_namespaced_deployment("nap", ns, {"spec": {"replicas": 1}})
    (awake,) = apps.list_namespaced_replica_set(ns).items
    assert (awake.metadata.uid, awake.metadata.annotations[REVISION]) == (rs.metadata.uid, "1")
    (pod,) = core.list_namespaced_pod(ns).items
    assert pod.metadata.owner_references[0].uid == rs.metadata.uid and pod.status.phase == "Running"
    assert apps.read_namespaced_deployment("nap", ns).status.ready_replicas == 1


def test_a_pod_relabelled_out_of_the_selector_is_released_and_replaced(apps, core, ns):
    """ClaimPods: an owned pod that stops matching the ReplicaSet's selector loses its controller
    ownerReference and a new one takes its place; the released pod lives on (warm pools rely on this)."""
    apps.create_namespaced_deployment(ns, deployment("pool", replicas=2))
    (rs,) = apps.list_namespaced_replica_set(ns).items
    taken = core.list_namespaced_pod(ns, label_selector="app=pool").items[0].metadata.name
    core.patch_namespaced_pod(taken, ns, {"metadata": {"labels": {"app": "claimed"}}})
    released = core.read_namespaced_pod(taken, ns)
    assert not released.metadata.owner_references
    assert released.status.phase == "Running"
    pool = core.list_namespaced_pod(ns, label_selector="app=pool").items
    assert len(pool) == 2 and taken not in {p.metadata.name for p in pool}
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in pool)
    assert apps.read_namespaced_deployment("pool", ns).status.ready_replicas == 2
    # Deleting the Deployment leaves the released pod alone.
    apps.delete_namespaced_deployment("pool", ns)
    eventually(lambda: [p.metadata.name for p in core.list_namespaced_pod(ns).items] == [taken],
               "only the released pod left")


def test_an_orphan_pod_the_selector_matches_is_adopted_and_the_surplus_removed(apps, core, ns):
    apps.create_namespaced_deployment(ns, deployment("adopt"))
    (rs,) = apps.list_namespaced_replica_set(ns).items
    labels = dict(rs.spec.selector.match_labels)
    core.create_namespaced_pod(ns, {"metadata": {"name": "stray", "labels": labels},
                                    "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}})
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1 and pods[0].metadata.owner_references[0].uid == rs.metadata.uid
    assert apps.read_namespaced_replica_set(rs.metadata.name, ns).status.replicas == 1


def test_deleting_a_deployment_collects_its_replicasets_and_pods_and_orphan_keeps_them(apps, core, ns):
    apps.create_namespaced_deployment(ns, deployment("gone", replicas=2))
    apps.create_namespaced_deployment(ns, deployment("kept"))
    apps.delete_namespaced_deployment("gone", ns)
    eventually(lambda: not apps.list_namespaced_replica_set(ns, label_selector="app=gone").items
               and not core.list_namespaced_pod(ns, label_selector="app=gone").items,
               "the ReplicaSet and its pods collected")
    apps.delete_namespaced_deployment("kept", ns, body=client.V1DeleteOptions(propagation_policy="Orphan"))
    eventually(lambda: not apps.list_namespaced_deployment(ns).items, "the Deployment gone")
    (rs,) = apps.list_namespaced_replica_set(ns, label_selector="app=kept").items
    assert not rs.metadata.owner_references
    (pod,) = core.list_namespaced_pod(ns, label_selector="app=kept").items
    assert pod.metadata.owner_references[0].uid == rs.metadata.uid
    # A new Deployment with the same selector and template adopts the orphaned ReplicaSet.
    again = apps.create_namespaced_deployment(ns, deployment("kept"))
    (adopted,) = apps.list_namespaced_replica_set(ns, label_selector="app=kept").items
    assert adopted.metadata.uid == rs.metadata.uid
    assert adopted.metadata.owner_references[0].uid == again.metadata.uid
