"""Kubernetes access: the one module that owns the client.

Config: in-cluster when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config),
which in local runs and tests points at the simulated API server. The transport is our own
(`kube.client`, on the standard library's http.client), not the official `kubernetes` package, whose
import alone cost the functions that call the cluster 0.3-0.5 s of their cold start.

Every call is plain REST on the resource path (one code path for built-in kinds and our custom
resources), answering dicts. Server-side apply uses one field manager, so the fields we stop
applying are removed by the API server rather than left behind.
"""

from __future__ import annotations

import contextvars
import http.client
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from streamspace.domain.conversion import API_VERSION, LEGACY_API_VERSION
from streamspace.domain.errors import DomainError, ErrorKind
from streamspace.kube.client import Client, ConfigError, Kubeconfig, in_cluster, load_kubeconfig
from streamspace.observability import function_var
from streamspace.records import record

log = logging.getLogger("streamspace.kube")
FIELD_MANAGER = "streamspace"


@record
class Kind:
    api_version: str
    plural: str
    namespaced: bool = True
    kind: str = ""  # the object's kind when its key in KINDS differs (the legacy group's Template)

    def kind_of(self, key: str) -> str:
        return self.kind or key

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if namespace is None:
                raise ValueError(f"{self.plural} are namespaced: a namespace is required")
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        if subresource is not None:
            base += f"/{subresource}"
        return base


KINDS: dict[str, Kind] = {
    "Session": Kind(API_VERSION, "sessions"),
    "Template": Kind(API_VERSION, "templates"),
    "Deployment": Kind("apps/v1", "deployments"),
    "DaemonSet": Kind("apps/v1", "daemonsets"),
    "Service": Kind("v1", "services"),
    "PersistentVolumeClaim": Kind("v1", "persistentvolumeclaims"),
    "Pod": Kind("v1", "pods"),
    "Event": Kind("v1", "events"),
    "Secret": Kind("v1", "secrets"),
    "Namespace": Kind("v1", "namespaces", namespaced=False),
    "Node": Kind("v1", "nodes", namespaced=False),
    "Ingress": Kind("networking.k8s.io/v1", "ingresses"),
    "NetworkPolicy": Kind("networking.k8s.io/v1", "networkpolicies"),
    # The earlier StreamSpace's API group, served again by legacy CRDs (reconcile/legacy.py).
    "LegacyTemplate": Kind(LEGACY_API_VERSION, "templates", kind="Template"),
    "LegacySession": Kind(LEGACY_API_VERSION, "sessions", kind="Session"),
}


_KINDS = {404: ErrorKind.NOT_FOUND, 409: ErrorKind.CONFLICT, 400: ErrorKind.INVALID, 422: ErrorKind.INVALID,
          401: ErrorKind.FORBIDDEN, 403: ErrorKind.FORBIDDEN, 429: ErrorKind.UNAVAILABLE}


class KubeError(DomainError):
    """A Kubernetes API answer other than success, with the server's status and message.

    Its kind follows the status; it is retryable on 409 (a write raced another), 429 and 5xx, and
    never on 401/403 (RBAC) or 400/422 (the object itself is wrong): those fail the same way again."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message, error=reason)
        self.args = (f"{status} {reason}: {message}",)
        self.status = status
        self.reason = reason

    @property
    def kind(self) -> ErrorKind:  # type: ignore[override]
        return _KINDS.get(self.status, ErrorKind.UNAVAILABLE if self.status >= 500 else ErrorKind.INTERNAL)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in (409, 429) or self.status >= 500

    def describe(self) -> str:
        """What happened, in words for operators and clients: an unreachable, throttled or failing API
        server is unavailable; anything else is a refusal, and a refusal of our own account (401/403)
        names the RBAC to check, never "unavailable", which would send people looking in the wrong place."""
        if self.status == 429 or self.status >= 500:
            return f"the Kubernetes API is unavailable ({self.status} {self.reason})"
        hint = "; check the RBAC of the function's service account" if self.status in (401, 403) else ""
        return f"the Kubernetes API refused the request ({self.status} {self.reason}){hint}"


class ClusterUnavailable(KubeError):
    def __init__(self, message: str) -> None:
        super().__init__(503, "ServiceUnavailable", message)


CONTEXT_PREFIX = "streamspace/"

_lock = threading.Lock()
_clients: dict[str, Client] = {}
_contexts: frozenset[str] | None = None
_kubeconfig: tuple[str | None, Kubeconfig] | None = None  # (the KUBECONFIG it was read for, what it holds)


def function_context(function: str) -> str:
    """The kubeconfig context a function acts through when several share one process (`make run`, tests)."""
    return CONTEXT_PREFIX + function


def api_client() -> Client:
    """The client of the running function's identity.

    In a cluster each function is its own pod with its ServiceAccount's token (in-cluster config). When
    functions share a process, the kubeconfig may carry a context per function
    (`streamspace/<function>`, e.g. the simulated cluster's ServiceAccount tokens): the running
    function (observability.function_var) then calls the API as its own ServiceAccount. Without such a
    context, the kubeconfig's current context is used.
    """
    context = _context_for(function_var.get())
    client = _clients.get(context)
    if client is None:
        with _lock:
            client = _clients.get(context)
            if client is None:
                client = _clients[context] = _load_client(context or None)
    return client


def _context_for(function: str) -> str:
    global _contexts
    if not function or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ""
    if _contexts is None:
        try:
            _contexts = _read_kubeconfig().contexts
        except ConfigError:  # no kubeconfig: _load_client reports it
            _contexts = frozenset()
    wanted = function_context(function)
    return wanted if wanted in _contexts else ""


def _read_kubeconfig() -> Kubeconfig:
    """The kubeconfig, read once for the contexts and the client (again when KUBECONFIG names other files)."""
    global _kubeconfig
    named = os.environ.get("KUBECONFIG")
    if _kubeconfig is None or _kubeconfig[0] != named:
        _kubeconfig = (named, load_kubeconfig())
    return _kubeconfig[1]


def _load_client(context: str | None) -> Client:
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return in_cluster()
        return _read_kubeconfig().client(context)
    except ConfigError as exc:  # every config failure means "no cluster"
        raise ClusterUnavailable(f"no Kubernetes configuration: {exc}") from exc


def reset_client() -> None:
    """Forget the clients, the kubeconfig read and the watched lists (tests and the local runner switch clusters)."""
    global _contexts, _kubeconfig
    with _lock:
        for watched_list in _watched.values():
            watched_list.stop()
        _watched.clear()
        for client in _clients.values():
            client.close()
        _clients.clear()
        _contexts = None
        _kubeconfig = None


def request(method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
            content_type: str = "application/json", timeout: float = 15.0) -> dict[str, Any]:
    """One REST call; returns the decoded JSON body, raises KubeError on any non-2xx answer."""
    data = _call(method, path, body, query, content_type, "application/json", timeout)
    result: dict[str, Any] = json.loads(data) if data else {}
    if method != "GET" and _watched:
        for watched_list in list(_watched.values()):
            if watched_list.covers(path):
                watched_list.await_write(method, path, result)
    return result


def request_text(method: str, path: str, *, query: dict[str, Any] | None = None, timeout: float = 15.0) -> str:
    """One REST call whose answer is plain text (e.g. `pods/<name>/log`); undecodable bytes are replaced."""
    data = _call(method, path, None, query, "application/json", "text/plain, */*", timeout)
    return data.decode("utf-8", errors="replace") if data else ""


def _call(method: str, path: str, body: Any, query: dict[str, Any] | None, content_type: str, accept: str,
          timeout: float) -> bytes:
    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = content_type
    try:
        response = api_client().request(method, path, query=list((query or {}).items()), body=body,
                                         headers=headers, timeout=timeout)
    except (http.client.HTTPException, OSError) as exc:
        raise ClusterUnavailable(f"Kubernetes API unreachable: {exc}") from exc
    if response.status >= 400:
        raise _kube_error(response.status, response.data)
    data: bytes = response.data or b""
    return data


def _kube_error(status: int, raw: Any) -> KubeError:
    reason, message = "Error", ""
    try:
        status_body = json.loads(raw) if raw else {}
        reason = status_body.get("reason") or reason
        message = status_body.get("message") or ""
    except (TypeError, ValueError):
        message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    return KubeError(status, reason, message[:2000])


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}") from None


def _kind_of_manifest(manifest: dict[str, Any]) -> Kind:
    """The Kind a manifest is of, by apiVersion and kind (two groups both have a Template)."""
    api_version, kind = manifest.get("apiVersion"), manifest["kind"]
    found = KINDS.get(kind)
    if found is not None and (api_version is None or found.api_version == api_version):
        return found
    for key, candidate in KINDS.items():
        if candidate.kind_of(key) == kind and candidate.api_version == api_version:
            return candidate
    raise ValueError(f"unknown kind {api_version} {kind}")


def get(kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    try:
        return request("GET", _kind(kind).path(namespace, name))
    except KubeError as exc:
        if exc.not_found:
            return None
        raise


LIST_PAGE_SIZE = 500  # client-go's pager default: bounds each answer, not the whole list


def list_objects(kind: str, namespace: str | None = None, *, label_selector: str | None = None,
                 field_selector: str | None = None, page_size: int = LIST_PAGE_SIZE) -> list[dict[str, Any]]:
    """Every matching object, read in pages of `page_size` by following the server's continue tokens.

    A continue token expires (410) when the server has compacted the snapshot it pages through; then
    the list is read again whole, as client-go's pager does (FullListIfExpired)."""
    path = _kind(kind).path(namespace)
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        try:
            page = request("GET", path, query={"labelSelector": label_selector, "fieldSelector": field_selector,
                                               "limit": page_size, "continue": token})
        except KubeError as exc:
            if exc.status == 410 and token is not None:
                whole: list[dict[str, Any]] = request("GET", path, query={
                    "labelSelector": label_selector, "fieldSelector": field_selector}).get("items", [])
                return whole
            raise
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or None
        if token is None:
            return items


def create(manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest["metadata"]
    return request("POST", _kind_of_manifest(manifest).path(meta.get("namespace")), body=manifest)


def merge_patch(kind: str, name: str, patch: dict[str, Any], namespace: str | None = None,
                subresource: str | None = None) -> dict[str, Any]:
    return request("PATCH", _kind(kind).path(namespace, name, subresource), body=patch,
                   content_type="application/merge-patch+json")


def apply(manifest: dict[str, Any], *, subresource: str | None = None, force: bool = True) -> dict[str, Any]:
    """Server-side apply under our field manager. Controllers force (we own what we apply, as the
    Kubernetes SSA docs advise controllers); `force=False` where a field another manager set must not be
    overwritten silently: the API server then answers 409 naming the conflicting managers and fields."""
    meta = manifest["metadata"]
    return request("PATCH", _kind_of_manifest(manifest).path(meta.get("namespace"), meta["name"], subresource),
                   body=manifest, content_type="application/apply-patch+yaml",
                   query={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"})


def apply_status(kind: str, name: str, namespace: str | None, status: dict[str, Any], *,
                 resource_version: str | None = None) -> bool:
    """Server-side apply of `status` alone on the object's /status; False when the object is gone.

    `resource_version`: the version of the object the status was computed from, a precondition (409,
    KubeError.conflict, when the object changed or was replaced since). A uid would not do: PATCH
    carries no preconditions (the patch handler's DefaultUpdatedObjectInfo(nil, ...)) and a custom
    resource's status strategy copies the stored object over the patched one, uid included, before
    validation; the resourceVersion is compared before that (registry Store.Update), and no object
    created since has the one we read."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    manifest = {"apiVersion": KINDS[kind].api_version, "kind": KINDS[kind].kind_of(kind),
                "metadata": metadata, "status": status}
    try:
        apply(manifest, subresource="status")
    except KubeError as exc:
        if exc.not_found:
            return False
        raise
    return True


def delete(kind: str, name: str, namespace: str | None = None, *, propagation: str = "Background",
           uid: str | None = None) -> bool:
    """Delete; returns False when it was already gone. `uid`: only that object (a precondition: 409,
    KubeError.conflict, when the name now belongs to another one)."""
    options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
    if uid:
        options["preconditions"] = {"uid": uid}
    try:
        request("DELETE", _kind(kind).path(namespace, name), body=options)
    except KubeError as exc:
        if exc.not_found:
            return False
        raise
    return True



# -- watches --------------------------------------------------------------------------------------
WATCH_SECONDS = 60  # each watch request ends after this (the server closes it); it resumes at once
WATCH_READ_TIMEOUT = WATCH_SECONDS + 30  # silence longer than this is a dead connection
WRITE_VISIBLE_SECONDS = 5.0  # a write waits at most this long for its own watch event


def watch(path: str, resource_version: str, *, label_selector: str | None = None,
          timeout_seconds: int = 300, read_timeout: float | None = None,
          opened: list[Any] | None = None) -> Iterator[dict[str, Any]]:
    """Stream a watch of the collection at `path` from `resource_version` as decoded watch events
    (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), as the running function's identity.
    `opened`, when given, receives the open response (another thread may shut it down)."""
    query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout_seconds))]
    if resource_version:
        query.append(("resourceVersion", resource_version))
    if label_selector:
        query.append(("labelSelector", label_selector))
    response = api_client().request("GET", path, query=query, headers={"Accept": "application/json"},
                                    timeout=read_timeout, preload_content=False)
    if opened is not None:
        opened.append(response)
    try:
        if response.status >= 400:
            raise _kube_error(response.status, response.read())
        buffer = b""
        for chunk in response.stream(4096):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
    finally:
        response.release_conn()


def _version(obj: dict[str, Any]) -> int | None:
    text = (obj.get("metadata") or {}).get("resourceVersion") or ""
    return int(text) if text.isdigit() else None


class WatchedList:
    """The objects of one kind in one namespace, kept current by a LIST and then a watch (what
    client-go calls an informer), so that frequent reads cost no API request.

    Freshness: a change made elsewhere is seen once its watch event arrives (milliseconds on a
    healthy watch). A write this process makes through `request` returns only after the watch has
    delivered it (at most WRITE_VISIBLE_SECONDS, else the list is dropped), so a process reads its
    own writes. While the list is not in sync (before the first LIST, after a watch error or an
    expired resourceVersion, after a write the watch did not deliver), `snapshot()` answers None
    and callers ask the API server instead. A connection silent for WATCH_READ_TIMEOUT counts as
    broken. resourceVersions are compared as integers, as the API server's etcd revisions are.
    """

    def __init__(self, kind: str, namespace: str | None) -> None:
        self.kind = kind
        self.path = _kind(kind).path(namespace)
        self._changed = threading.Condition()
        self._objects: dict[str, dict[str, Any]] = {}
        self._version = 0  # the newest resourceVersion the list reflects
        self.generation = 0  # bumped on every change: lets readers reuse what they derived
        self._synced = False
        self._relist = False
        self._stopped = threading.Event()
        self._first_list_done = threading.Event()  # its first LIST answered or failed
        self._responses: list[Any] = []
        context = contextvars.copy_context()  # the starting function's identity (kubeconfig context)
        self._thread = threading.Thread(target=context.run, args=(self._run,), daemon=True,
                                        name=f"watch-{kind}")
        self._thread.start()

    def covers(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path + "/")

    def snapshot(self) -> tuple[int, list[dict[str, Any]]] | None:
        """(generation, the objects by name) while in sync, else None. The objects are shared:
        read them, never change them."""
        with self._changed:
            if not self._synced:
                return None
            return self.generation, [self._objects[name] for name in sorted(self._objects)]

    def first_snapshot(self, timeout: float) -> tuple[int, list[dict[str, Any]]] | None:
        """snapshot(), except that a list whose first LIST is still under way is waited for (at most
        `timeout`): the first reader of a process gets the list its watch starts from instead of
        asking for a LIST of its own beside it. Once that LIST has answered or failed, as snapshot()."""
        self._first_list_done.wait(timeout)
        return self.snapshot()

    def wait_synced(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._synced, timeout)

    def await_write(self, method: str, path: str, result: dict[str, Any]) -> None:
        """Return once the watch has delivered this process's write (`result` is the API server's
        answer to it); if it does not in time, stop serving from the list until it is listed again."""
        name = path[len(self.path) + 1:].split("/", 1)[0] or (result.get("metadata") or {}).get("name", "")
        version = _version(result) if result.get("kind") != "Status" else None
        deleted = method == "DELETE" and not (result.get("metadata") or {}).get("deletionTimestamp")

        def visible() -> bool:
            if not self._synced:
                return True  # reads go to the API server anyway
            if version is None:
                return False
            if deleted:  # gone, or replaced by something newer than the delete
                current = self._objects.get(name)
                return current is None or (_version(current) or 0) > version
            return self._version >= version

        with self._changed:
            if not self._changed.wait_for(visible, WRITE_VISIBLE_SECONDS):
                log.warning("a write was not seen on the watch in time: listing again",
                            extra={"kind": self.kind, "path": path})
                self._drop()

    def stop(self) -> None:
        self._stopped.set()
        self._first_list_done.set()
        with self._changed:
            self._drop()
        for response in list(self._responses):
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001, S110 - already closed
                pass

    def _drop(self) -> None:  # caller holds self._changed
        self._synced = False
        self._relist = True
        self._changed.notify_all()

    def _run(self) -> None:
        failures = 0
        version = ""
        while not self._stopped.is_set():
            try:
                if not version or self._relist:
                    listed = request("GET", self.path)
                    version = (listed.get("metadata") or {}).get("resourceVersion", "")
                    with self._changed:
                        self._objects = {o["metadata"]["name"]: o for o in listed.get("items", [])}
                        self._version = int(version) if version.isdigit() else 0
                        self.generation += 1
                        self._synced = version.isdigit()
                        self._relist = False
                        self._changed.notify_all()
                    self._first_list_done.set()
                    if not version.isdigit():
                        raise ValueError(f"unexpected list resourceVersion {version!r}")
                self._responses = []
                for event in watch(self.path, version, timeout_seconds=WATCH_SECONDS,
                                   read_timeout=WATCH_READ_TIMEOUT, opened=self._responses):
                    if self._stopped.is_set():
                        return
                    version = self._apply(event)
                    if not version:
                        break
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a gap in the watch: read from the server meanwhile
                self._first_list_done.set()  # readers ask the API server themselves meanwhile
                if self._stopped.is_set():
                    return
                log.warning("watch interrupted", extra={"kind": self.kind, "reason": str(exc)[:200]})
                with self._changed:
                    self._drop()
                version = ""
                failures += 1
                self._stopped.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _apply(self, event: dict[str, Any]) -> str:
        """One watch event into the list; the resourceVersion to resume from ('' to list again)."""
        kind = event.get("type")
        obj = event.get("object") or {}
        version = _version(obj)
        with self._changed:
            if kind == "ERROR" or version is None or self._relist:  # e.g. 410 Expired: list again
                self._drop()
                return ""
            if kind in ("ADDED", "MODIFIED"):
                self._objects[obj["metadata"]["name"]] = obj
            elif kind == "DELETED":
                self._objects.pop(obj["metadata"]["name"], None)
            if kind != "BOOKMARK":
                self.generation += 1
            self._version = max(self._version, version)
            self._changed.notify_all()
        return str(version)


_watched: dict[tuple[str, str | None, str], WatchedList] = {}


def watched_list(kind: str, namespace: str | None) -> WatchedList:
    """The process's watched list of `kind` in `namespace` for the running function's identity,
    started on first use."""
    key = (kind, namespace, _context_for(function_var.get()))
    found = _watched.get(key)
    if found is None:
        with _lock:
            found = _watched.get(key)
            if found is None:
                found = _watched[key] = WatchedList(kind, namespace)
    return found
