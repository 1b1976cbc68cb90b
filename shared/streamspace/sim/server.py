"""HTTP layer of the simulated API server: routing, discovery, watch streaming, request log, failure injection."""

from __future__ import annotations

import json
import logging
import queue
import re
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import yaml

from . import api as apimod
from . import table
from .disruption import check_eviction
from .errors import ApiError, bad_request, reason_for, status_body
from .logs import LogStore
from .rbac import Rbac
from .resources import Registry, ResourceType, openapi_v3_group_version, openapi_v3_root
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import Event, Store, TooOld

log = logging.getLogger("streamspace.sim")

SIM_HEADER = "X-Streamspace-Simulated"
VERSION_INFO = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-streamspace-sim", "gitCommit": "simulated",
    "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "n/a", "compiler": "simulated",
    "platform": "simulated/simulated",
}
_OBJECT_ON_DELETE = {"pods", "namespaces", "customresourcedefinitions"}


class RequestRecord(NamedTuple):
    method: str
    path: str
    query: str
    content_type: str
    status: int


@dataclass
class InjectedFailure:
    method: str | None
    path_regex: re.Pattern[str]
    status: int
    times: int | None
    reason: str
    message: str


class Route(NamedTuple):
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


class SimServer:
    def __init__(self, api: apimod.Api, registry: Registry, store: Store, logs: LogStore | None = None,
                 rbac: Rbac | None = None) -> None:
        self.api = api
        self.rbac = rbac if rbac is not None else Rbac(store, registry)
        self.registry = registry
        self.store = store
        self.logs = logs if logs is not None else LogStore(store)
        self._log_lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._failures: list[InjectedFailure] = []
        self._holds: list[HeldRequests] = []
        self.stopping = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------ lifecycle

    def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> str:
        """Serve on host:port; over TLS with `tls` (a server context: its certificate, and the client CA
        whose certificates authenticate their subject, when it verifies clients)."""
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer((host, port), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        if tls is not None:
            # the handshake happens in each connection's thread (Handler.handle), not in the accept loop
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.httpd = httpd
        bound_host, bound_port = httpd.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        self.url = f"{'https' if tls is not None else 'http'}://{host_text}:{bound_port}"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="streamspace-sim-http", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.stopping.set()
        self.store.close_all_watches()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    # ------------------------------------------------------------ request log and failures

    def record(self, rec: RequestRecord) -> None:
        with self._log_lock:
            self._requests.append(rec)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._requests.clear()

    def inject_failure(self, method: str | None, path_regex: str, status: int, times: int | None, reason: str | None,
                       message: str | None) -> None:
        with self._log_lock:
            self._failures.append(InjectedFailure(
                method.upper() if method else None, re.compile(path_regex), status, times,
                reason or reason_for(status), message or f"injected failure (simulated {status})"))

    def clear_failures(self) -> None:
        with self._log_lock:
            self._failures.clear()

    def hold(self, method: str | None, path_regex: str) -> HeldRequests:
        held = HeldRequests(method.upper() if method else None, re.compile(path_regex), threading.Event(),
                            threading.Event())
        with self._log_lock:
            self._holds.append(held)
        return held

    def wait_if_held(self, method: str, path: str) -> None:
        with self._log_lock:
            matching = [h for h in self._holds
                        if (h.method is None or h.method == method) and h.path_regex.search(path)]
        for held in matching:
            held.arrived.set()
            held.released.wait(HOLD_CEILING_SECONDS)
        if matching:
            with self._log_lock:
                self._holds = [h for h in self._holds if not h.released.is_set()]

    def take_failure(self, method: str, path: str) -> InjectedFailure | None:
        with self._log_lock:
            for f in self._failures:
                if (f.method is None or f.method == method) and f.path_regex.search(path):
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0:
                            self._failures.remove(f)
                    return f
        return None

    # ------------------------------------------------------------ routing

    def route(self, segments: list[str], group: str, version: str) -> Route:
        rest = list(segments)
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _not_found_path()
        rt = self.registry.get(group, version, rest[0])
        if rt is None:
            raise _not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (ns is not None and not rt.namespaced) or (rt.namespaced and name is not None and ns is None):
            raise _not_found_path()
        pod_subresources = ("eviction", "log", "binding")
        if sub is not None and not ((sub == "status" and rt.has_status)
                                    or (sub in pod_subresources and rt.plural == "pods" and not rt.group)):
            raise _not_found_path()
        return Route(rt, ns, name, sub, watch_path)


@dataclass
class HeldRequests:
    """Matching requests wait, before they are served, until `release` (tests observe what a client
    holds while its Kubernetes call is in flight)."""
    method: str | None
    path_regex: re.Pattern[str]
    arrived: threading.Event
    released: threading.Event

    def release(self) -> None:
        self.released.set()


HOLD_CEILING_SECONDS = 120.0  # a held request is served after this even if the test never releases it


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _make_handler(sim: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; Nagle plus delayed ACK would add 40 ms per request.
        disable_nagle_algorithm = True
        server_version = "streamspace-sim"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("sim %s", format % args)

        def handle(self) -> None:
            if isinstance(self.connection, ssl.SSLSocket):
                try:
                    self.connection.do_handshake()
                except (ssl.SSLError, OSError) as exc:  # e.g. a client that does not trust our CA
                    log.debug("sim TLS handshake failed: %s", exc)
                    self.close_connection = True
                    return
            super().handle()

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        # -------------------------------------------------------- plumbing

        def _read_body(self) -> bytes:
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self._record(code)
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header(SIM_HEADER, "true")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self.wfile.write(data)

        def _record(self, code: int) -> None:
            parts = urlsplit(self.path)
            sim.record(RequestRecord(self._method, parts.path, parts.query,
                                     (self.headers.get("Content-Type") or "").split(";")[0].strip(), code))

        def _handle(self, method: str) -> None:
            self._method = method
            try:
                raw = self._read_body()
                parts = urlsplit(self.path)
                sim.wait_if_held(method, parts.path)
                failure = sim.take_failure(method, parts.path)
                if failure is not None:
                    self._send(failure.status, status_body(failure.status, failure.reason, failure.message, {}))
                    return
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                self._dispatch(method, parts.path, query, raw)
            except ApiError as exc:
                self._send(exc.code, exc.status())
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as exc:  # noqa: BLE001 - a harness bug must answer 500, not kill the connection
                log.exception("simulated API server error")
                self._send(500, status_body(500, "InternalError", f"simulated API server error: {exc!r}"))

        def _parse(self, raw: bytes) -> Any:
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            if not raw.strip():
                raise bad_request("the body of the request was empty")
            try:
                return json.loads(raw)
            except ValueError:
                if "yaml" not in ctype:
                    raise bad_request("the body of the request was in an unknown format: invalid JSON") from None
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from None

        # -------------------------------------------------------- dispatch

        def _dispatch(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
            segments = [s for s in path.split("/") if s]
            certificate = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            user = sim.rbac.authenticate(self.headers.get("Authorization"), certificate or None)
            if method == "GET":
                doc = self._discovery(segments)
                if doc is not None:
                    if isinstance(doc, bytes):
                        self._send(200, doc, "text/plain")
                    else:
                        self._send(200, doc)
                    return
            if segments[:2] == ["api", "v1"]:
                group, version, rest = "", "v1", segments[2:]
            elif len(segments) >= 4 and segments[0] == "apis":
                group, version, rest = segments[1], segments[2], segments[3:]
            else:
                raise _not_found_path()
            route = sim.route(rest, group, version)
            rt, ns, name, sub = route.rt, route.namespace, route.name, route.subresource
            sim.rbac.check_request(user, method, rt, ns, name, sub, route.watch_path or _truthy(query.get("watch")),
                                   (self.headers.get("Content-Type") or "").split(";")[0].strip(),
                                   lambda: self._parse(raw))
            obj_ns = ns or ""
            manager = query.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0]
            dry_run = query.get("dryRun") == "All"
            strict = query.get("fieldValidation") == "Strict"
            api = sim.api
            if method == "GET":
                if route.watch_path or _truthy(query.get("watch")):
                    fs = query.get("fieldSelector")
                    if name is not None:
                        fs = f"metadata.name={name}" + (f",{fs}" if fs else "")
                    self._watch(rt, ns, query, fs)
                elif sub == "log" and name is not None:
                    self._send(200, sim.logs.read(api.get(rt, obj_ns, name), query), "text/plain")
                elif name is None:
                    limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
                    self._send(200, self._printed(rt, query, api.list(
                        rt, ns, label_selector=query.get("labelSelector"), field_selector=query.get("fieldSelector"),
                        limit=limit, continue_token=query.get("continue"))))
                else:
                    self._send(200, self._printed(rt, query, api.get(rt, obj_ns, name)))
            elif method == "POST":
                if name is None:
                    self._send(201, api.create(rt, obj_ns, self._parse(raw), manager=query.get("fieldManager")
                                               or manager, dry_run=dry_run, strict=strict))
                elif sub == "eviction":
                    eviction = self._parse(raw) if raw.strip() else {}
                    delete_options = (eviction.get("deleteOptions") or {}) if isinstance(eviction, dict) else {}
                    with sim.store.txn():
                        check_eviction(sim.store, api.get(rt, obj_ns, name))
                        api.delete(rt, obj_ns, name, delete_options if isinstance(delete_options, dict) else {},
                                   dry_run=dry_run)
                    self._send(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "code": 201})
                elif sub == "binding":
                    binding = self._parse(raw)
                    target = (binding.get("target") or {}) if isinstance(binding, dict) else {}
                    if target.get("kind", "Node") != "Node" or not target.get("name"):
                        raise ApiError(422, "Invalid", "Binding: target: a Node name is required")
                    api.bind(obj_ns, name, str(target["name"]))
                    self._send(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "code": 201})
                else:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                   "resource")
            elif method == "PUT":
                if name is None or sub in ("log", "eviction", "binding"):
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                   "resource")
                self._send(200, api.replace(rt, obj_ns, name, self._parse(raw), subresource=sub, manager=manager,
                                            dry_run=dry_run, strict=strict))
            elif method == "PATCH":
                if name is None or sub in ("log", "eviction", "binding"):
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                   "resource")
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                force = _truthy(query.get("force"))
                field_manager = query.get("fieldManager")
                if ctype not in (apimod.APPLY, apimod.APPLY_CBOR):
                    field_manager = field_manager or manager
                code, result = api.patch(rt, obj_ns, name, ctype, self._parse(raw), subresource=sub,
                                         manager=field_manager, force=force, dry_run=dry_run, strict=strict)
                self._send(code, result)
            elif method == "DELETE":
                if sub is not None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                   "resource")
                options: dict[str, Any] = {}
                if raw.strip():
                    parsed = self._parse(raw)
                    options = parsed if isinstance(parsed, dict) else {}
                propagation = query.get("propagationPolicy")
                if query.get("gracePeriodSeconds", "").isdigit():
                    options.setdefault("gracePeriodSeconds", int(query["gracePeriodSeconds"]))
                if name is None:
                    self._send(200, api.delete_collection(rt, ns, label_selector=query.get("labelSelector"),
                                                          field_selector=query.get("fieldSelector"),
                                                          propagation=propagation))
                    return
                deleted = api.delete(rt, obj_ns, name, options, propagation, dry_run=dry_run)
                with sim.store.txn():
                    pending = sim.store.get(rt.store_key, obj_ns, name) is not None
                # An object whose deletion waits (finalizers, grace period) is answered as it is now
                # (apiserver registry store.go Delete), one removed at once with a Status for most kinds.
                if rt.is_crd or rt.plural in _OBJECT_ON_DELETE or (pending and not dry_run):
                    self._send(200, deleted)
                else:
                    details: dict[str, Any] = {"name": name}
                    if rt.group:
                        details["group"] = rt.group
                    details.update({"kind": rt.plural, "uid": deleted["metadata"].get("uid")})
                    self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "details": details})
            else:
                raise ApiError(405, "MethodNotAllowed", f"method {method} not allowed")

        def _printed(self, rt: ResourceType, query: dict[str, str], answer: dict[str, Any]) -> dict[str, Any]:
            """The answer, or its Table when the client asked for one (kubectl get)."""
            if not table.wants_table(self.headers.get("Accept")):
                return answer
            return table.to_table(rt, answer, query.get("includeObject"))

        def _discovery(self, segments: list[str]) -> dict[str, Any] | bytes | None:
            if not segments:
                paths = ["/api", "/api/v1", "/apis", "/version", "/healthz"]
                paths += [f"/apis/{g}/{v}" for g, vs in sim.registry.group_versions().items() if g for v in vs]
                return {"paths": sorted(paths)}
            if segments in (["healthz"], ["readyz"], ["livez"]):
                return b"ok"
            if segments == ["version"]:
                return VERSION_INFO
            if segments == ["api"]:
                host = sim.url.split("://", 1)[-1]
                return {"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}
            if segments == ["api", "v1"]:
                return sim.registry.resource_list("", "v1")
            if segments == ["apis"]:
                return sim.registry.groups_doc()
            if len(segments) == 2 and segments[0] == "apis":
                doc = sim.registry.group_doc(segments[1])
                if doc is None:
                    raise _not_found_path()
                return doc
            if len(segments) == 3 and segments[0] == "apis":
                doc = sim.registry.resource_list(segments[1], segments[2])
                if doc is None:
                    raise _not_found_path()
                return doc
            if segments == ["openapi", "v3"]:
                return openapi_v3_root(sim.registry)
            if segments[:2] == ["openapi", "v3"] and len(segments) in (4, 5):
                rest = segments[2:]
                group, version = ("", rest[1]) if rest[0] == "api" else (rest[1], rest[2] if len(rest) > 2 else "")
                doc = openapi_v3_group_version(sim.registry, group, version)
                if doc is None:
                    raise _not_found_path()
                return doc
            if segments and segments[0] == "openapi":
                raise _not_found_path()
            return None

        # -------------------------------------------------------- watch

        def _watch(self, rt: ResourceType, ns: str | None, query: dict[str, str], field_sel: str | None) -> None:
            try:
                by_label = parse_label_selector(query.get("labelSelector"))
                by_field = parse_field_selector(field_sel)
            except SelectorError as exc:
                raise bad_request(str(exc)) from None
            rv_param = query.get("resourceVersion") or ""
            since: int | None = None
            if rv_param not in ("", "0"):
                if not rv_param.isdigit():
                    raise bad_request(f"invalid resource version: {rv_param!r}")
                since = int(rv_param)
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
            deadline = time.monotonic() + timeout if timeout is not None else None
            bookmarks = _truthy(query.get("allowWatchBookmarks"))

            def matches(obj: dict[str, Any] | None) -> bool:
                return obj is not None and by_label((obj.get("metadata") or {}).get("labels") or {}) \
                    and by_field(obj)

            self.close_connection = True
            self._record(200)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            # This server closes the connection when the watch ends, so it says so: a client that read a
            # watch to its end must not reuse the connection (it met a closed socket on its next request).
            self.send_header("Connection", "close")
            self.send_header(SIM_HEADER, "true")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            try:
                sub, replay, snapshot = sim.store.subscribe(rt.store_key, ns, since)
            except TooOld as exc:
                self._chunk({"type": "ERROR", "object": status_body(410, "Expired", str(exc))})
                self._end_chunks()
                return
            try:
                for obj in snapshot:
                    if matches(obj):
                        self._chunk({"type": "ADDED", "object": sim.api.out(rt, obj)})
                for ev in replay:
                    self._emit(rt, ev, matches)
                self._pump(rt, sub.queue, matches, deadline, bookmarks)
                if bookmarks:
                    self._bookmark(rt)
                self._end_chunks()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            finally:
                sim.store.unsubscribe(sub)

        def _pump(self, rt: ResourceType, q: queue.Queue[Event | None], matches: Callable[[Any], bool],
                  deadline: float | None, bookmarks: bool) -> None:
            last_sent = time.monotonic()
            while not sim.stopping.is_set():
                wait = 0.2
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    wait = min(wait, remaining)
                try:
                    ev = q.get(timeout=wait)
                except queue.Empty:
                    if self._peer_closed():
                        return
                    if bookmarks and time.monotonic() - last_sent > 5:
                        self._bookmark(rt)
                        last_sent = time.monotonic()
                    continue
                if ev is None:
                    return
                self._emit(rt, ev, matches)
                last_sent = time.monotonic()

        def _emit(self, rt: ResourceType, ev: Event, matches: Callable[[Any], bool]) -> None:
            now_match = matches(ev.obj)
            was_match = matches(ev.prev)
            kind = ev.type
            if kind == "MODIFIED":
                if now_match and not was_match:
                    kind = "ADDED"
                elif was_match and not now_match:
                    kind = "DELETED"
                elif not now_match:
                    return
            elif kind == "ADDED" and not now_match:
                return
            elif kind == "DELETED" and not (now_match or was_match):
                return
            self._chunk({"type": kind, "object": sim.api.out(rt, ev.obj)})

        def _bookmark(self, rt: ResourceType) -> None:
            self._chunk({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                        "metadata": {"resourceVersion": str(sim.store.current_rv)}}})

        def _chunk(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _end_chunks(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _peer_closed(self) -> bool:
            conn = self.connection
            try:
                readable, _, _ = select.select([conn], [], [], 0)
                if not readable:
                    return False
                if isinstance(conn, ssl.SSLSocket):  # no peeking through TLS; a watcher sends nothing
                    return True  # more, so a readable socket is its close_notify or end of stream
                return conn.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

    return Handler
