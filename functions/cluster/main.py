"""cluster: node administration (labels, taints, cordon, drain) and read-only cluster views, admin only."""

from typing import Any

import functions_framework

from streamspace.cluster import service as cluster
from streamspace.http import Access, Api, Request

api = Api("cluster")

NODES = "/api/v1/admin/nodes"
CLUSTER = "/api/v1/cluster"
ADMIN = Access.ADMIN
_STRING = {"type": "string"}
LABEL_BODY = {"type": "object", "additionalProperties": False, "required": ["key"],
              "properties": {"key": _STRING, "value": _STRING}}
TAINT_BODY = {"type": "object", "additionalProperties": False, "required": ["key", "effect"],
              "properties": {"key": _STRING, "value": _STRING,
                             "effect": {"type": "string", "enum": list(cluster.TAINT_EFFECTS)}}}
_GRACE = {"type": "integer", "minimum": 0, "maximum": cluster.DRAIN_GRACE_MAX}
DRAIN_BODY = {"type": "object", "additionalProperties": False,
              "properties": {"gracePeriodSeconds": _GRACE,
                             "grace_period_seconds": {**_GRACE, "deprecated": True,
                                                      "description": "the old name of gracePeriodSeconds,"
                                                                     " accepted for one release"}}}


def _page(req: Request, plural: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    limit, offset = req.page()
    return {plural: items[offset:offset + limit], "total": len(items)}


# -- /api/v1/admin/nodes -------------------------------------------------------------------------------

@api.get(NODES, access=ADMIN, summary="Every node with status, roles, capacity and requested usage "
         "(format=v0.2: the earlier contract's bare array, with `pods`)", query=("limit", "offset", "format"))
def list_nodes(req: Request) -> dict | list:
    if cluster.node_format(req.query("format")) == "v0.2":
        return [cluster.node_v02(n) for n in cluster.list_nodes()]
    return _page(req, "nodes", cluster.list_nodes())


@api.get(f"{NODES}/stats", access=ADMIN, summary="Cluster totals: nodes by state, CPU, memory, pods "
         "(format=v0.2: totalNodes, readyNodes, totalCapacity)", query=("format",))
def node_stats(req: Request) -> dict:
    stats = cluster.node_stats()
    if cluster.node_format(req.query("format")) == "v0.2":
        return cluster.node_stats_v02(stats)
    return stats


@api.get(f"{NODES}/{{name}}", access=ADMIN, summary="One node")
def get_node(req: Request) -> dict:
    return cluster.get_node(req.param("name"))


@api.put(f"{NODES}/{{name}}/labels", access=ADMIN, summary="Set a node label {key, value}",
         body=LABEL_BODY)
def set_label(req: Request) -> dict:
    body = req.json(allowed={"key", "value"}, required=("key",))
    return cluster.set_label(req.caller, req.client_ip, req.param("name"), body)


def _remove_label(req: Request) -> dict:
    return cluster.remove_label(req.caller, req.client_ip, req.param("name"), _key(req))


def _key(req: Request) -> str:
    prefix = req.path_params.get("prefix")
    return f"{prefix}/{req.param('key')}" if prefix else req.param("key")


api.delete(f"{NODES}/{{name}}/labels/{{key}}", access=ADMIN, summary="Remove a node label")(_remove_label)
api.delete(f"{NODES}/{{name}}/labels/{{prefix}}/{{key}}", access=ADMIN,
           summary="Remove a node label whose key has a prefix (prefix/name)")(_remove_label)


@api.post(f"{NODES}/{{name}}/taints", access=ADMIN, summary="Add a taint {key, value, effect}",
          body=TAINT_BODY)
def add_taint(req: Request) -> dict:
    body = req.json(allowed={"key", "value", "effect"}, required=("key", "effect"))
    return cluster.add_taint(req.caller, req.client_ip, req.param("name"), body)


def _remove_taint(req: Request) -> dict:
    return cluster.remove_taint(req.caller, req.client_ip, req.param("name"), _key(req), req.query("effect"))


api.delete(f"{NODES}/{{name}}/taints/{{key}}", access=ADMIN, query=("effect",),
           summary="Remove a taint by key (every effect, or only ?effect=)")(_remove_taint)
api.delete(f"{NODES}/{{name}}/taints/{{prefix}}/{{key}}", access=ADMIN, query=("effect",),
           summary="Remove a taint whose key has a prefix (prefix/name)")(_remove_taint)


@api.post(f"{NODES}/{{name}}/cordon", access=ADMIN, summary="Mark the node unschedulable")
def cordon(req: Request) -> dict:
    return cluster.cordon(req.caller, req.client_ip, req.param("name"), True)


@api.post(f"{NODES}/{{name}}/uncordon", access=ADMIN, summary="Mark the node schedulable again")
def uncordon(req: Request) -> dict:
    return cluster.cordon(req.caller, req.client_ip, req.param("name"), False)


@api.post(f"{NODES}/{{name}}/drain", access=ADMIN, body=DRAIN_BODY,
          summary="Cordon, then evict every pod except DaemonSet and mirror pods (Eviction API)")
def drain(req: Request) -> dict:
    body = req.json(allowed=cluster.DRAIN_FIELDS, optional_body=True)
    return cluster.drain(req.caller, req.client_ip, req.param("name"), body)


# -- /api/v1/cluster -------------------------------------------------------------------------------------

@api.get(f"{CLUSTER}/nodes", access=ADMIN, summary="Nodes (as /api/v1/admin/nodes)", query=("limit", "offset"))
def cluster_nodes(req: Request) -> dict:
    return _page(req, "nodes", cluster.list_nodes())


def _view(plural: str) -> None:
    def handler(req: Request) -> dict:
        namespace = None if plural == "namespaces" else \
            cluster.view_namespace(req.query("namespace"), req.query_bool("allNamespaces"))
        return _page(req, plural, cluster.list_view(plural, namespace))

    query = ("limit", "offset") if plural == "namespaces" else ("namespace", "allNamespaces", "limit", "offset")
    scope = "" if plural == "namespaces" else " in the sessions namespace (or ?namespace=, ?allNamespaces=true)"
    api.get(f"{CLUSTER}/{plural}", access=ADMIN, summary=f"{plural.title()}{scope}", query=query)(handler)


for _plural in ("pods", "deployments", "services", "namespaces"):
    _view(_plural)


@api.get(f"{CLUSTER}/pods/{{namespace}}/{{name}}/logs", access=ADMIN,
         query=("container", "tailLines", "limitBytes"),
         summary="A container's log as JSON text {logs} (tailLines default 200, max 5000; limitBytes max 1 MiB)")
def pod_logs(req: Request) -> dict:
    tail = req.query_int("tailLines", cluster.LOG_TAIL_DEFAULT, 0, cluster.LOG_TAIL_MAX)
    limit = req.query_int("limitBytes", cluster.LOG_BYTES_MAX, 1, 2**62)
    return cluster.pod_logs(req.param("namespace"), req.param("name"), req.query("container"), tail, limit)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
