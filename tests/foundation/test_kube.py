"""The `kube` access layer against the simulated API server, through the official client's REST calls."""

from __future__ import annotations

import uuid

from streamspace import kube


def _namespace_with_services(count: int) -> tuple[str, set[str]]:
    namespace = f"k-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    names = {f"svc-{i}" for i in range(count)}
    for name in names:
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                     "spec": {"ports": [{"port": 80}]}})
    return namespace, names


def test_a_list_longer_than_one_page_returns_every_object(sim) -> None:
    namespace, names = _namespace_with_services(7)

    listed = kube.list_objects("Service", namespace, page_size=2)

    assert sorted(o["metadata"]["name"] for o in listed) == sorted(names)


def test_a_paged_list_keeps_the_label_selector_on_every_page(sim) -> None:
    namespace, _ = _namespace_with_services(3)
    for i in range(5):
        kube.create({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"picked-{i}", "namespace": namespace, "labels": {"pick": "yes"}},
                     "spec": {"ports": [{"port": 80}]}})

    listed = kube.list_objects("Service", namespace, label_selector="pick=yes", page_size=2)

    assert sorted(o["metadata"]["name"] for o in listed) == [f"picked-{i}" for i in range(5)]
