"""Create/get/list/update semantics, bookkeeping and error bodies of the simulated API server."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from sim_helpers import GROUP, PLURAL, VERSION, widget


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_create_sets_uid_resource_version_timestamp_and_generation(custom, ns):
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w1"))
    meta = created["metadata"]
    assert meta["namespace"] == ns
    assert len(meta["uid"]) == 36
    assert meta["resourceVersion"].isdigit()
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    got = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w1")
    assert got["metadata"]["uid"] == meta["uid"]
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]


def test_resource_versions_increase_across_kinds(custom, core, ns):
    a = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w1"))
    b = core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    c = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w2"))
    rvs = [int(a["metadata"]["resourceVersion"]), int(b.metadata.resource_version),
           int(c["metadata"]["resourceVersion"])]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3


def test_create_existing_name_conflicts_409(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("dup"))
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("dup"))
    assert err.value.status == 409
    assert _status(err.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'{PLURAL}.{GROUP} "dup" already exists', "reason": "AlreadyExists",
        "details": {"name": "dup", "group": GROUP, "kind": PLURAL}, "code": 409,
    }


def test_get_missing_object_is_404_not_found(core, ns):
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", ns)
    body = _status(err.value)
    assert err.value.status == 404
    assert (body["reason"], body["message"], body["code"]) == ("NotFound", 'pods "nope" not found', 404)


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    body = _status(err.value)
    assert err.value.status == 404
    assert body["message"] == 'namespaces "no-such-ns" not found'


def test_default_namespaces_exist(core):
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "streamspace"} <= names


def test_update_with_stale_resource_version_conflicts_409(custom, ns):
    first = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w"))
    fresh = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")
    fresh["spec"]["size"] = 3
    custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", fresh)
    stale = first
    stale["spec"]["size"] = 4
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", stale)
    body = _status(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    # A merge patch carrying a stale resourceVersion is refused as well.
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {
            "metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "spec": {"size": 5}})
    assert err.value.status == 409
    assert custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")["spec"]["size"] == 3


def test_replace_custom_object_without_resource_version_is_422(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w"))
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", widget("w", size=3))
    assert err.value.status == 422


def test_generation_bumps_on_spec_change_only(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("g"))

    def gen() -> int:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "g")["metadata"]["generation"]

    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "g", {"metadata": {"labels": {"a": "b"}}})
    assert gen() == 1
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "g", {"status": {"phase": "Ready"}})
    assert gen() == 1
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "g", {"spec": {"size": 7}})
    assert gen() == 2
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "g", {"spec": {"size": 7}})
    assert gen() == 2


def test_generation_only_on_kinds_whose_strategy_sets_it(core, ns):
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    cm = core.patch_namespaced_config_map("cm", ns, {"data": {"a": "2"}})
    assert cm.metadata.generation is None
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})
    assert svc.metadata.generation is None
    net = client.NetworkingV1Api(core.api_client)
    policy = net.create_namespaced_network_policy(ns, {"metadata": {"name": "np"}, "spec": {"podSelector": {}}})
    assert policy.metadata.generation == 1
    policy = net.patch_namespaced_network_policy("np", ns, {"spec": {"policyTypes": ["Ingress"]}})
    assert policy.metadata.generation == 2


def test_noop_update_keeps_resource_version(custom, ns):
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("n"))
    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "n", {"spec": {"size": 2}})
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_label_selector_list(core, ns):
    for name, labels in [("a", {"app": "web", "tier": "front"}), ("b", {"app": "web", "tier": "back"}),
                         ("c", {"app": "db"}), ("d", {})]:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector=selector).items]

    assert names("app=web") == ["a", "b"]
    assert names("app==web,tier=back") == ["b"]
    assert names("app!=web") == ["c", "d"]
    assert names("tier in (front, back)") == ["a", "b"]
    assert names("app notin (web)") == ["c", "d"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c", "d"]
    assert names("app in (web,db),!tier") == ["c"]
    assert names("") == ["a", "b", "c", "d"]


def test_field_selector_list(core, ns):
    for name in ("x", "y"):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns, field_selector="metadata.name=y").items] \
        == ["y"]
    everywhere = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items
    assert sorted(c.metadata.name for c in everywhere) == ["x", "y"]
    assert [c.metadata.name for c in
            core.list_namespaced_config_map(ns, field_selector="metadata.name!=y").items] == ["x"]


def test_list_limit_and_continue_pages_through_everything(core, ns):
    for i in range(5):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm{i}"}})
    page = core.list_namespaced_config_map(ns, limit=2)
    seen = [c.metadata.name for c in page.items]
    assert len(seen) == 2 and page.metadata._continue
    while page.metadata._continue:
        page = core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue)
        seen += [c.metadata.name for c in page.items]
    assert seen == [f"cm{i}" for i in range(5)]


def test_list_carries_kind_and_resource_version(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("l"))
    listing = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    assert listing["kind"] == "WidgetList" and listing["apiVersion"] == f"{GROUP}/{VERSION}"
    assert int(listing["metadata"]["resourceVersion"]) >= int(listing["items"][0]["metadata"]["resourceVersion"])


def test_unparsable_body_is_400_bad_request(sim, ns):
    req = urllib.request.Request(f"{sim.url}/api/v1/namespaces/{ns}/configmaps", data=b"{not json",
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    body = json.loads(err.value.read())
    assert err.value.code == 400 and body["reason"] == "BadRequest" and body["kind"] == "Status"


def test_generate_name_creates_unique_names(core, ns):
    a = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    b = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert a.metadata.name.startswith("gen-") and a.metadata.name != b.metadata.name


def test_builtin_validation_rejects_what_a_real_api_server_rejects(apps, core, api_client, ns):
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "y"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(ns, bad)
    assert err.value.status == 422 and "`selector` does not match template `labels`" in err.value.body
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "Bad_Name"}})
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "ok", "labels": {"k": "bad value!"}}})
    assert err.value.status == 422
    net = client.NetworkingV1Api(api_client)
    ing = {"metadata": {"name": "i", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
           "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}]}}
    with pytest.raises(ApiException) as err:
        net.create_namespaced_ingress(ns, ing)
    assert err.value.status == 422 and "can not be set when the class field is also set" in err.value.body
    del ing["metadata"]["annotations"]
    assert net.create_namespaced_ingress(ns, ing).spec.ingress_class_name == "nginx"


def test_service_gets_cluster_ip_that_survives_replace(core, ns):
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "s"},
                                              "spec": {"ports": [{"name": "http", "port": 80}]}})
    ip = svc.spec.cluster_ip
    assert ip and svc.spec.ports[0].target_port == 80 and svc.spec.ports[0].protocol == "TCP"
    body = {"metadata": {"name": "s", "resourceVersion": svc.metadata.resource_version},
            "spec": {"ports": [{"name": "http", "port": 81}]}}
    assert core.replace_namespaced_service("s", ns, body).spec.cluster_ip == ip


def test_networkpolicy_and_pvc_roundtrip(api_client, core, ns):
    net = client.NetworkingV1Api(api_client)
    net.create_namespaced_network_policy(ns, {"metadata": {"name": "np"},
                                              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    assert net.read_namespaced_network_policy("np", ns).spec.policy_types == ["Ingress"]
    pvc = core.create_namespaced_persistent_volume_claim(ns, {
        "metadata": {"name": "home-bob"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}})
    # The default class waits for the first consumer (tests/sim/test_volumes.py binds it).
    assert pvc.status.phase == "Pending" and pvc.spec.storage_class_name == "standard"
    assert pvc.spec.resources.requests == {"storage": "50Gi"}


def test_continued_pages_are_a_consistent_snapshot_of_the_first_pages_resource_version(core, ns):
    for i in range(5):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"snap-{i}"}, "data": {"n": str(i)}})
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [c.metadata.name for c in first.items] == ["snap-0", "snap-1"] and first.metadata.remaining_item_count == 3
    # Changes after the first page are not seen by the rest of this listing (etcd serves it at that revision).
    core.delete_namespaced_config_map("snap-3", ns)
    core.patch_namespaced_config_map("snap-2", ns, {"data": {"n": "changed"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "snap-9"}})
    rest = core.list_namespaced_config_map(ns, limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["snap-2", "snap-3", "snap-4"]
    assert rest.items[0].data == {"n": "2"} and rest.metadata.resource_version == first.metadata.resource_version
    assert rest.metadata._continue is None


def test_a_continue_token_expires_with_410_after_compaction_and_offers_an_inconsistent_remainder(sim, core, ns):
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"old-{i}"}})
    first = core.list_namespaced_config_map(ns, limit=1)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "old-5"}})
    sim.compact()  # the API server compacts etcd every 5 minutes by default
    with pytest.raises(client.ApiException) as expired:
        core.list_namespaced_config_map(ns, limit=1, _continue=first.metadata._continue)
    assert expired.value.status == 410
    status = json.loads(expired.value.body)
    assert status["reason"] == "Expired" and "too old to display a consistent list result" in status["message"]
    remainder = core.list_namespaced_config_map(ns, _continue=status["metadata"]["continue"])
    assert [c.metadata.name for c in remainder.items] == ["old-1", "old-2", "old-5"]  # created since: inconsistent


def test_a_forged_continue_token_is_a_bad_request(core, ns):
    for token in ("not-base64!", base64.urlsafe_b64encode(b'{"o": 2}').decode()):
        with pytest.raises(client.ApiException) as refused:
            core.list_namespaced_config_map(ns, limit=1, _continue=token)
        assert refused.value.status == 400


def test_periodic_compaction_expires_tokens_older_than_one_interval():
    from sim_helpers import eventually

    from streamspace.sim import SimCluster

    with SimCluster(compaction_interval=0.1, nodes=0) as small:
        api_client = small.api_client()
        core = client.CoreV1Api(api_client)
        for i in range(2):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"tick-{i}"}})
        token = core.list_namespaced_config_map("default", limit=1).metadata._continue
        core.create_namespaced_config_map("default", {"metadata": {"name": "tick-later"}})

        def expired() -> bool:
            try:
                core.list_namespaced_config_map("default", limit=1, _continue=token)
            except ApiException as exc:
                assert exc.status == 410
                return True
            return False

        eventually(expired, "the token's revision is compacted away")
        api_client.close()
