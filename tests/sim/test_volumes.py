"""Volume claims bind by storage class and access mode, as on kind (sim/volumes.py cites the sources):
a default class provisioned by rancher.io/local-path that waits for the first consumer and gives only
ReadWriteOnce; the scheduler honours WaitForFirstConsumer and the node affinity of local volumes."""

from __future__ import annotations

from kubernetes import client
from sim_helpers import eventually

from streamspace.sim import SimCluster
from streamspace.sim.scheduler import NodeSpec


def _claim(name: str, mode: str = "ReadWriteOnce", storage_class: str | None = None) -> dict:
    spec: dict = {"accessModes": [mode], "resources": {"requests": {"storage": "2Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def _pod_with(name: str, claim: str, **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "containers": [{"name": "main", "image": "nginx:1.27", "volumeMounts": [{"name": "home", "mountPath": "/h"}]}],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}], **spec}}


def _events(core: client.CoreV1Api, ns: str, name: str) -> list[tuple[str, str, str]]:
    found = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in sorted(found, key=lambda e: int(e.metadata.resource_version))]


def _scheduled(pod: client.V1Pod) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def test_the_default_class_is_kinds_local_path_that_waits_for_the_first_consumer(core, api_client, ns):
    (standard,) = client.StorageV1Api(api_client).list_storage_class().items
    assert (standard.metadata.name, standard.provisioner, standard.volume_binding_mode, standard.reclaim_policy) == (
        "standard", "rancher.io/local-path", "WaitForFirstConsumer", "Delete")
    assert standard.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"
    claim = core.create_namespaced_persistent_volume_claim(ns, _claim("home"))
    assert claim.spec.storage_class_name == "standard"  # the DefaultStorageClass admission plugin
    assert claim.status.phase == "Pending" and claim.spec.volume_name is None
    assert ("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding") in \
        _events(core, ns, "home")

    core.create_namespaced_pod(ns, _pod_with("first", "home"))
    pod = core.read_namespaced_pod("first", ns)
    assert pod.status.phase == "Running"
    claim = core.read_namespaced_persistent_volume_claim("home", ns)
    assert claim.status.phase == "Bound" and claim.status.access_modes == ["ReadWriteOnce"]
    assert claim.metadata.annotations["volume.kubernetes.io/selected-node"] == pod.spec.node_name
    volume = core.read_persistent_volume(claim.spec.volume_name)
    assert volume.status.phase == "Bound" and volume.spec.claim_ref.uid == claim.metadata.uid
    term = volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
    assert (term.key, term.operator, term.values) == ("kubernetes.io/hostname", "In", [pod.spec.node_name])
    assert any(reason == "ProvisioningSucceeded" for _, reason, _ in _events(core, ns, "home"))

    # The volume lives on that node: a pod of the claim that must run elsewhere cannot be placed.
    other = next(n.metadata.name for n in core.list_node().items if n.metadata.name != pod.spec.node_name)
    core.create_namespaced_pod(ns, _pod_with("elsewhere", "home", nodeSelector={"kubernetes.io/hostname": other}))
    waiting = _scheduled(core.read_namespaced_pod("elsewhere", ns))
    assert waiting.status == "False" and waiting.message == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had volume node "
        "affinity conflict. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    core.create_namespaced_pod(ns, _pod_with("beside", "home"))
    assert core.read_namespaced_pod("beside", ns).spec.node_name == pod.spec.node_name


def test_a_full_node_is_reported_full_before_its_volume_conflict():
    """kube-scheduler's default profile filters NodeResourcesFit before VolumeBinding and names each
    node's first refusal: a node that is full and also far from the claim's volume is reported full."""
    nodes = [NodeSpec("near", cpu="2", memory="4Gi"), NodeSpec("far", cpu="2", memory="4Gi")]
    with SimCluster(kubelet_delay=0, nodes=nodes) as cluster, cluster.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespaced_persistent_volume_claim("default", _claim("home"))
        core.create_namespaced_pod("default", _pod_with("first", "home", nodeSelector={
            "kubernetes.io/hostname": "near"}))
        assert core.read_namespaced_pod("first", "default").spec.node_name == "near"  # the volume lives there
        for node in ("near", "far"):
            core.create_namespaced_pod("default", {"metadata": {"name": f"fill-{node}"}, "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node},
                "containers": [{"name": "main", "image": "nginx:1.27", "resources": {"requests": {"cpu": "2"}}}]}})
            assert core.read_namespaced_pod(f"fill-{node}", "default").spec.node_name == node
        pod = _pod_with("second", "home")
        pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
        core.create_namespaced_pod("default", pod)
        waiting = _scheduled(core.read_namespaced_pod("second", "default"))
        assert waiting.status == "False" and waiting.message == (
            "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
            "2 No preemption victims found for incoming pod.")


def test_a_read_write_many_claim_of_the_local_path_class_stays_pending_with_provisioning_failed(core, ns):
    core.create_namespaced_persistent_volume_claim(ns, _claim("shared", mode="ReadWriteMany"))
    core.create_namespaced_pod(ns, _pod_with("user", "shared"))
    assert core.read_namespaced_persistent_volume_claim("shared", ns).status.phase == "Pending"
    assert ("Warning", "ProvisioningFailed", 'failed to provision volume with StorageClass "standard": Only support '
            "ReadWriteOnce access mode") in _events(core, ns, "shared")
    pod = core.read_namespaced_pod("user", ns)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None


def test_an_immediate_class_binds_at_once_and_a_shared_provisioner_gives_read_write_many(core, api_client, ns):
    storage = client.StorageV1Api(api_client)
    name = f"nfs-{ns}"
    storage.create_storage_class({"metadata": {"name": name}, "provisioner": "sim.stream.space/shared",
                                  "volumeBindingMode": "Immediate"})
    claim = core.create_namespaced_persistent_volume_claim(ns, _claim("files", "ReadWriteMany", name))
    claim = core.read_namespaced_persistent_volume_claim("files", ns)
    assert claim.status.phase == "Bound" and claim.status.access_modes == ["ReadWriteMany"]
    volume = core.read_persistent_volume(claim.spec.volume_name)
    assert volume.spec.node_affinity is None and volume.spec.storage_class_name == name
    for index in range(2):  # any node may use it
        core.create_namespaced_pod(ns, _pod_with(f"p{index}", "files"))
        assert core.read_namespaced_pod(f"p{index}", ns).status.phase == "Running"
    core.delete_namespaced_persistent_volume_claim("files", ns, _preload_content=False)
    eventually(lambda: not [v for v in core.list_persistent_volume().items if v.metadata.name == volume.metadata.name],
               "the volume deleted with its claim (reclaimPolicy Delete)")
    storage.delete_storage_class(name, _preload_content=False)


def test_unbound_immediate_claims_and_missing_claims_keep_the_pod_pending(core, api_client, ns):
    storage = client.StorageV1Api(api_client)
    name = f"external-{ns}"
    storage.create_storage_class({"metadata": {"name": name}, "provisioner": "example.com/not-running",
                                  "volumeBindingMode": "Immediate"})
    core.create_namespaced_persistent_volume_claim(ns, _claim("later", storage_class=name))
    assert any(reason == "ExternalProvisioning" for _, reason, _ in _events(core, ns, "later"))
    core.create_namespaced_pod(ns, _pod_with("unbound", "later"))
    assert _scheduled(core.read_namespaced_pod("unbound", ns)).message.startswith(
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    core.create_namespaced_pod(ns, _pod_with("orphan", "no-such-claim"))
    assert _scheduled(core.read_namespaced_pod("orphan", ns)).message.startswith(
        '0/2 nodes are available: persistentvolumeclaim "no-such-claim" not found.')
    core.create_namespaced_persistent_volume_claim(ns, _claim("typo", storage_class="no-such-class"))
    assert ("Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "no-such-class" not found') in \
        _events(core, ns, "typo")
    storage.delete_storage_class(name, _preload_content=False)
