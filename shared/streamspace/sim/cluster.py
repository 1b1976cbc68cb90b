"""`SimCluster`: the simulated Kubernetes API server as one object tests and `make run` can start and stop."""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import yaml

from .api import CRD_KEY, Api
from .daemonset import DaemonSetController
from .desktops import SimDesktops
from .gc import GarbageCollector
from .kubelet import Kubelet
from .logs import LogStore
from .rbac import Rbac
from .resources import Registry
from .scheduler import NodeSpec, Scheduler, node_specs
from .server import HeldRequests, RequestRecord, SimServer
from .store import Store
from .volumes import KIND_DEFAULT_CLASSES, StorageClassSpec, VolumeController

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("streamspace.sim")

BANNER = "SIMULATED Kubernetes API server (test/demo harness, not a cluster) at {url}"
DEFAULT_NAMESPACES = ("default", "streamspace")
DEFAULT_NODE_COUNT = 2


def _crd_documents(path: Path) -> list[dict[str, Any]]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() else [path]
    docs = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


class SimCluster:
    """A SIMULATED Kubernetes API server (test/demo harness, not a cluster)."""

    def __init__(self, crd_paths: Iterable[str | os.PathLike[str]] = (), kubelet_delay: float = 0.0,
                 image_fails: Callable[[str], bool] | None = None, history_size: int = 10000,
                 state_path: str | os.PathLike[str] | None = None,
                 nodes: int | Iterable[NodeSpec] = DEFAULT_NODE_COUNT,
                 compaction_interval: float | None = None, image_pull_seconds: float = 0.0,
                 start_seconds: float = 0.0,
                 storage_classes: Iterable[StorageClassSpec] = KIND_DEFAULT_CLASSES) -> None:
        """`state_path`: a file that keeps the cluster's objects across restarts (`make run` keeps it
        in the data folder); without it the cluster starts empty and forgets everything.
        `nodes`: how many default nodes (8 cpu, 32Gi, 110 pods each) or the NodeSpecs to register; pods
        are scheduled onto them by their requests (0: every pod stays Pending, unschedulable).
        `compaction_interval`: seconds between history compactions (`make run`: 300, the API server's
        default); None compacts only when the history is full or `compact()` is called.
        `image_pull_seconds`: how long a node takes to pull an image it does not have yet;
        `start_seconds`: how long a container takes to start (both after `kubelet_delay`).
        `storage_classes`: the StorageClasses to create (default: kind's `standard`, rancher.io/local-path,
        WaitForFirstConsumer, ReadWriteOnce only; see volumes.py)."""
        self.compaction_interval = compaction_interval
        self._stopping = threading.Event()
        self.registry = Registry()
        self.store = Store(history_size)
        self.restored = 0
        if state_path is not None:
            self.restored = self.store.open_journal(state_path)
            for crd in self.store.items(CRD_KEY):
                self.registry.register_crd(crd)
        self.api = Api(self.registry, self.store)
        self.logs = LogStore(self.store)
        self.scheduler = Scheduler(self.api, self.store)
        self.kubelet = Kubelet(self.api, self.store, self.registry, kubelet_delay, image_fails, self.logs,
                               self.scheduler, pull_seconds=image_pull_seconds, start_seconds=start_seconds)
        self.daemonsets = DaemonSetController(self.api, self.store, self.kubelet)
        self.volumes = VolumeController(self.api, self.store, self.registry, self.kubelet)
        self.garbage_collector = GarbageCollector(self.api, self.store)
        self.rbac = Rbac(self.store, self.registry)
        self.server = SimServer(self.api, self.registry, self.store, self.logs, self.rbac)
        self.desktops = SimDesktops(self.store)  # stand-in pages of Running sessions' pods
        for ns in DEFAULT_NAMESPACES:
            self.api.ensure_namespace(ns)
        self.scheduler.ensure_nodes(node_specs(nodes))
        self.volumes.ensure_classes(list(storage_classes))
        self.load_crds(crd_paths)

    # ------------------------------------------------------------ lifecycle

    def load_crds(self, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
        """Install every CustomResourceDefinition in the given files or directories; returns their names."""
        names = []
        for p in paths:
            for doc in _crd_documents(Path(p)):
                self.api.install_crd(doc)
                names.append(doc["metadata"]["name"])
        return names

    def start(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> str:
        """Serve the API; over HTTPS with `tls` (see SimServer.start), as a real API server always does."""
        url = self.server.start(host, port, tls)
        self.kubelet.start()
        self.daemonsets.resync()
        self.volumes.resync()
        if self.compaction_interval:
            threading.Thread(target=self._compact_periodically, args=(self.compaction_interval,),
                             name="streamspace-sim-compaction", daemon=True).start()
        log.warning(BANNER.format(url=url))
        return url

    def stop(self) -> None:
        self.garbage_collector.stop()
        self._stopping.set()
        self.kubelet.stop()
        self.server.stop()
        self.store.close_journal()

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> SimCluster:
        if not self.url:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------ clients

    def load_rbac(self, docs: Iterable[dict[str, Any]], namespace: str = "streamspace") -> list[str]:
        """Create the ServiceAccounts, Roles, ClusterRoles and bindings among rendered manifests (other
        kinds are ignored); from then on requests with those ServiceAccounts' tokens are authorized by them."""
        return self.rbac.load_manifests(self.api, docs, namespace)

    def token_for(self, namespace: str, service_account: str) -> str:
        """A bearer token that authenticates as the ServiceAccount (TokenRequest in a real cluster)."""
        return self.rbac.issue_token(namespace, service_account)

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "streamspace",
                         identities: Mapping[str, tuple[str, str] | None] | None = None) -> str:
        """A kubeconfig whose current context is the harness administrator, plus one context per entry of
        `identities` ({context: (namespace, ServiceAccount)}) carrying that ServiceAccount's token; None
        means "no token mounted", a credential the server refuses (401)."""
        users: list[dict[str, Any]] = [{"name": "streamspace-sim", "user": {}}]
        contexts: list[dict[str, Any]] = [{"name": "streamspace-sim",
                                           "context": {"cluster": "streamspace-sim", "user": "streamspace-sim",
                                                       "namespace": namespace}}]
        for context, account in sorted((identities or {}).items()):
            token = self.token_for(*account) if account is not None else "no-service-account-token-mounted"
            users.append({"name": context, "user": {"token": token}})
            contexts.append({"name": context, "context": {"cluster": "streamspace-sim", "user": context,
                                                          "namespace": namespace}})
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "streamspace-sim", "cluster": {"server": self.url}}],
            "users": users,
            "contexts": contexts,
            "current-context": "streamspace-sim",
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("# " + BANNER.format(url=self.url) + "\n" + yaml.safe_dump(config, sort_keys=False))
        return str(target)

    def api_client(self) -> ApiClient:
        from kubernetes import client  # heavy import, only for callers that want the official client

        cfg = client.Configuration()
        cfg.host = self.url
        return client.ApiClient(cfg)

    # ------------------------------------------------------------ test helpers

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of every request answered so far: (method, path, query, content_type, status)."""
        return self.server.requests

    def last_change(self, api_version: str, kind: str, namespace: str | None = None,
                    label_selector: str | None = None) -> int:
        """The resourceVersion of the newest change a watch of these objects would report: a watcher
        that has passed it on is up to date."""
        from .selectors import parse_label_selector

        group, _, version = api_version.rpartition("/")
        found = next((t for t in self.registry.all() if (t.group, t.version, t.kind) == (group, version, kind)), None)
        if found is None:
            raise ValueError(f"the simulated cluster does not serve {api_version} {kind}")
        by_label = parse_label_selector(label_selector)
        return self.store.last_change(found.store_key, namespace,
                                      lambda obj: by_label((obj.get("metadata") or {}).get("labels") or {}))

    def compact(self) -> int:
        """Compact the history now: watches and continue tokens from before now answer 410 Gone
        (Expired). Returns the resourceVersion compacted to."""
        return self.store.compact()

    def _compact_periodically(self, interval: float) -> None:
        # As the API server (--etcd-compaction-interval, 5m by default): each tick compacts to the
        # revision seen at the previous tick, so what is younger than one interval stays readable.
        previous = self.store.current_rv
        while not self._stopping.wait(interval):
            self.store.compact(previous)
            previous = self.store.current_rv

    def clear_requests(self) -> None:
        self.server.clear_requests()

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(1 for r in self.server.requests
                   if (method is None or r.method == method.upper())
                   and (path_contains is None or path_contains in r.path))

    def inject_failure(self, method: str | None = "POST", path_regex: str = ".*", status: int = 500,
                       times: int | None = 1, reason: str | None = None, message: str | None = None) -> None:
        """Answer the next `times` matching requests (None: all) with a Status of `status` instead."""
        self.server.inject_failure(method, path_regex, status, times, reason, message)

    def hold_requests(self, method: str | None = "PATCH", path_regex: str = ".*") -> HeldRequests:
        """Make matching requests wait until the returned hold is released (`arrived` is set when one waits)."""
        return self.server.hold(method, path_regex)

    def clear_failures(self) -> None:
        self.server.clear_failures()

    def write_log(self, namespace: str, pod: str, text: str, container: str | None = None) -> None:
        """Append `text` to a simulated container's log (`container` may be omitted for a one-container pod)."""
        if container is None:
            with self.store.txn():
                found = self.store.get(("", "pods"), namespace, pod)
            names = [c.get("name") for c in ((found or {}).get("spec") or {}).get("containers") or []]
            if len(names) != 1:
                raise ValueError(f"pod {namespace}/{pod}: name the container, one of {names}")
            container = str(names[0])
        self.logs.write(namespace, pod, container, text)
