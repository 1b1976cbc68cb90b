"""The one HTTP layer every HTTP function shares.

A function builds an `Api`, declares its routes with the access each requires (there is no
default: a route without a declared access cannot be registered), and hands `api` to
functions-framework as its target. Authentication, role checks, body limits, errors, CORS,
request ids, logs and metrics happen here, once, for every route.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import field
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from streamspace.auth.principal import authenticate, claimant
from streamspace.buildinfo import build_info
from streamspace.config import environment
from streamspace.db import DatabaseUnavailable, fetch_one
from streamspace.db.migrate import available_migrations
from streamspace.domain.errors import Forbidden, Invalid, NotFound
from streamspace.encoding import dumps, loads
from streamspace.http.errors import (
    HttpError,
    MethodNotAllowed,
    NotImplementedYet,
    PayloadTooLarge,
    UnsupportedMediaType,
    to_http,
)
from streamspace.http.openapi import published_document
from streamspace.observability import configure_logging, function_var, metrics, request_id_var
from streamspace.records import record
from streamspace.startup import pause_collector, resume_collector

if TYPE_CHECKING:
    import flask

    from streamspace.auth.principal import Claimant, Principal

log = logging.getLogger("streamspace.http")


class Access(enum.Enum):
    """Who may call a route. Every route declares one; there is no implicit default."""

    PUBLIC = "public"  # no token (login, refresh, health, version, metrics scrape)
    SIGNED = "signed"  # no token, authenticated by the handler itself (HMAC-signed webhook)
    USER = "user"  # any active user; handlers scope objects to the caller
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def needs_token(self) -> bool:
        return self not in (Access.PUBLIC, Access.SIGNED)


_ROLE_RANK = {"user": 1, "operator": 2, "admin": 3}


def role_allows(role: str, access: Access) -> bool:
    if not access.needs_token:
        return True
    return _ROLE_RANK.get(role, 0) >= _ROLE_RANK[access.value]


@record
class Reply:
    """A handler's answer when it is not a plain 200 JSON body."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


Handler = Callable[["Request"], Any]
# A WSGI application: what the direct lane answers with (a flask.Response is one too)
WsgiAnswer = Callable[[dict[str, Any], Callable[..., Any]], Any]
_Answer = TypeVar("_Answer")
# Headers werkzeug's response rewrites on the way out (get_wsgi_headers, and its body's length): such
# answers stay its own
_REWRITTEN_BY_WERKZEUG = frozenset({"location", "content-location", "content-length"})


def answer_headers(content_type: str, request_id: str, extra: dict[str, str]) -> list[tuple[str, str]]:
    """The headers every answer of the Api carries, in order: Content-Type, X-Request-Id, nosniff and
    no-store; each header of `extra` (CORS, the reply's own) replaces the one of the same name in its
    place, whatever its case, or follows them. Both lanes' answers are made of this list (the body's
    Content-Length comes after it)."""
    fields = {"content-type": ("Content-Type", content_type), "x-request-id": ("X-Request-Id", request_id),
              "x-content-type-options": ("X-Content-Type-Options", "nosniff"),
              "cache-control": ("Cache-Control", "no-store")}
    for key, value in extra.items():
        fields[key.lower()] = (key, value)
    return list(fields.values())


@functools.cache
def _status_line(status: int) -> str:
    """The status line werkzeug's response writes for `status` ("404 NOT FOUND")."""
    import flask

    return str(flask.Response(status=status).status)


@record
class Route:
    method: str
    path: str  # OpenAPI-style template: /api/v1/sessions/{id}
    handler: Handler
    access: Access
    summary: str
    status: int
    body_schema: dict[str, Any] | None
    query: tuple[str, ...]
    pattern: PathPattern
    token_in_query: bool = False  # EventSource/WebSocket clients cannot set headers: accept ?token=
    # The handler reads the caller's standing within its own statement (Request.claimant, then
    # Request.stand): one SQL round trip for the hottest routes. Only for Access.USER routes.
    standing_in_statement: bool = False
    # Answered from the WSGI layer without Flask's request dispatch (Api.route, `direct`).
    direct: bool = False

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


class PathPattern:
    """A route's path ("/api/v1/sessions/{id}") as the request paths it matches: `{name}` stands for one
    path segment (a group of that name), and a slash may end the path unless `trailing_slash=False`.

    Its regular expression is compiled on first use. A function declares 20-40 routes at start, and
    compiling each was about 0.1 ms of its cold start, while its first requests try only a few: a path
    that does not begin with the route's text before its first parameter cannot match, and is refused
    without the expression."""

    __slots__ = ("path", "prefix", "_trailing_slash", "_regex")

    def __init__(self, path: str, *, trailing_slash: bool = True) -> None:
        self.path = path
        self.prefix = path.split("{", 1)[0]
        self._trailing_slash = trailing_slash
        self._regex: re.Pattern[str] | None = None

    def match(self, path: str) -> re.Match[str] | None:
        if not path.startswith(self.prefix):
            return None
        regex = self._regex
        if regex is None:  # two threads may both compile it: the same expression, either one kept
            source = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)",
                            re.escape(self.path).replace(r"\{", "{").replace(r"\}", "}"))
            regex = self._regex = re.compile(f"^{source}/?$" if self._trailing_slash else f"^{source}$")
        return regex.match(path)

    def __repr__(self) -> str:
        return f"PathPattern({self.path!r})"


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The address a request came from, as a parsed IP ('' when the peer has none).

    With no trusted proxies (TRUSTED_PROXIES empty, the default) X-Forwarded-For is ignored: it is
    whatever the client wrote. Otherwise, walking X-Forwarded-For from the right, the first address
    that is not a trusted proxy is the client (each trusted proxy appends the address it saw; what
    lies left of the first untrusted one was written by the client). Garbage ends the walk.
    """
    current = _ip(peer)
    if current is None:
        return ""
    if trusted and forwarded_for:
        for hop in reversed(forwarded_for.split(",")):
            if not any(current in network for network in trusted):
                break
            previous = _ip(hop)
            if previous is None:
                break
            current = previous
    return str(current)


class Request:
    """What a handler sees: path parameters, query, a size-limited JSON body, and the caller."""

    def __init__(self, raw: flask.Request, route: Route, path_params: dict[str, str], request_id: str,
                 max_body_bytes: int) -> None:
        self.raw = raw
        self.route = route
        self.path_params = path_params
        self.request_id = request_id
        self._max_body = max_body_bytes
        self._caller: Principal | None = None
        self._claimant: Claimant | None = None
        self._body: bytes | None = None
        self._client_ip: str | None = None
        self._query: dict[str, str] | None = None

    @property
    def caller(self) -> Principal:
        if self._caller is None:  # only reachable from a route that declared no token was needed
            raise Forbidden("this route has no authenticated caller")
        return self._caller

    @property
    def claimant(self) -> Claimant:
        """The token's caller on a standing_in_statement route, whose standing the handler reads
        (auth.principal.STANDING_CTE) and hands to `stand` before it answers."""
        if self._claimant is None:
            raise Forbidden("this route has no authenticated caller")
        return self._claimant

    def stand(self, caller: Principal) -> Principal:
        """Record the standing the handler read for its claimant (the route's role rule applies)."""
        if not role_allows(caller.role, self.route.access):
            raise Forbidden(f"this operation requires the {self.route.access.value} role")
        self._caller = caller
        return caller

    @property
    def client_ip(self) -> str:
        """The caller's address, always a parsed IP ('' when there is none): see `client_address`."""
        if self._client_ip is None:

            self._client_ip = client_address(self.raw.remote_addr, self.raw.headers.get("X-Forwarded-For"),
                                             environment().trusted_proxies)
        return self._client_ip

    def param(self, name: str) -> str:
        return self.path_params[name]

    def _query_value(self, name: str) -> str | None:
        """A query parameter's (first) value. From a plain dict: werkzeug's MultiDict.get raises and
        catches an exception for every parameter that is absent, and most are."""
        if self._query is None:
            self._query = self.raw.args.to_dict()
        return self._query.get(name)

    def query(self, name: str, default: str | None = None) -> str | None:
        value = self._query_value(name)
        return default if value is None or value == "" else value

    def query_int(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self._query_value(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise Invalid(f"query parameter {name} must be an integer from {lo} to {hi}",
                          error=f"invalid {name}") from None
        if not lo <= value <= hi:
            raise Invalid(f"query parameter {name} must be an integer from {lo} to {hi}",
                          error=f"invalid {name}")
        return value

    def query_bool(self, name: str) -> bool | None:
        raw = self._query_value(name)
        if raw is None or raw == "":
            return None
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise Invalid(f"query parameter {name} must be true or false", error=f"invalid {name}")

    def page(self) -> tuple[int, int]:
        """(limit, offset): the contract's pagination, default 100, at most 1000."""
        return self.query_int("limit", 100, 1, 1000), self.query_int("offset", 0, 0, 10_000_000)

    def body_bytes(self) -> bytes:
        if self._body is None:
            length = self.raw.content_length
            if length is not None and length > self._max_body:
                raise PayloadTooLarge(f"request body is larger than {self._max_body} bytes")
            data = self.raw.stream.read(self._max_body + 1)
            if len(data) > self._max_body:
                raise PayloadTooLarge(f"request body is larger than {self._max_body} bytes")
            self._body = data
        return self._body

    def json(self, *, allowed: set[str] | frozenset[str] | None = None, required: tuple[str, ...] = (),
             optional_body: bool = False) -> dict[str, Any]:
        """The body as a JSON object. Unknown fields are refused when `allowed` is given, so a
        client can never set a field the route did not mean to accept (mass assignment)."""
        data = self.body_bytes()
        if not data.strip():
            if optional_body:
                return {}
            raise Invalid("a JSON object body is required", error="invalid body")
        mimetype = (self.raw.mimetype or "").lower()
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise UnsupportedMediaType("send the body as Content-Type: application/json")
        body = loads(data)
        if not isinstance(body, dict):
            raise Invalid("the body must be a JSON object", error="invalid body")
        if allowed is not None:
            unknown = sorted(set(body) - set(allowed))
            if unknown:
                raise Invalid(f"unknown field(s): {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}",
                              error=f"invalid {unknown[0]}")
        for name in required:
            if body.get(name) in (None, ""):
                raise Invalid(f"field {name} is required", error=f"invalid {name}")
        return body


class LimitedBody:
    """A request's body stream that never reads more of the body than `limit` bytes (plus the one
    byte that shows it is over), whatever the client declared or keeps sending, and that refuses a
    longer body rather than passing its first part off as the whole: the read that goes over the
    limit raises PayloadTooLarge (413, `refusal` its message), and so does every read after it, until
    `end` (the answer is made); from then on it reads nothing.

    Why: functions-framework's after-request hook (read_request, on every request that takes the
    Flask route) reads all of a body into memory after the answer, to spare clients of servers that
    reset a connection with unread data. Unlimited, a client that declared 50 MB, or sent a chunked
    body without end, held a worker thread and its memory for as long as it kept sending, whatever
    the route answered (a 401 or a 413 included). gunicorn discards what is left unread itself. And a
    reader that cannot tell a body cut at the limit from a short one (werkzeug's form parser: the
    portal's forms) would otherwise take a truncated form for the whole one."""

    def __init__(self, stream: Any, limit: int, refusal: str) -> None:
        self._stream = stream
        self._left = limit
        self._refusal = refusal
        self._over = False
        self._ended = False

    def read(self, size: int | None = -1) -> bytes:
        if self._ended:
            return b""
        if size is None or size < 0:  # to the end of the body, which must come within the limit
            parts = []
            while part := self._read(self._left + 1):
                parts.append(part)
            return b"".join(parts)
        return self._read(min(size, self._left + 1))

    def _read(self, size: int) -> bytes:
        if self._over:
            raise PayloadTooLarge(self._refusal)
        data = self._stream.read(size)
        self._left -= len(data)
        if self._left < 0:
            self._over = True
            raise PayloadTooLarge(self._refusal)
        return data

    def readable(self) -> bool:
        return True

    def end(self) -> None:
        """The answer is made: nothing more of the body is read (the server discards the rest)."""
        self._ended = True


def limit_body(request: flask.Request, limit: int, refusal: str) -> LimitedBody | None:
    """Put a LimitedBody on `request` when a body may follow (a declared length, or chunked)."""
    environ = request.environ
    if not (environ.get("CONTENT_LENGTH") or "HTTP_TRANSFER_ENCODING" in environ):
        return None
    body = LimitedBody(request.stream, limit, refusal)
    # (werkzeug and functions-framework read a body only with read(): IO[bytes] is more than it needs)
    request.stream = cast("IO[bytes]", body)
    return body


def _schema_behind() -> str:
    """Why the database schema is older than this build's migrations ("" when it is current)."""
    import psycopg2.errors

    wanted = max((m.version for m in available_migrations()), default=0)
    try:
        row = fetch_one("SELECT max(version) AS version FROM schema_migrations", timeout=3)
    except psycopg2.errors.UndefinedTable:
        row = None
    have = int((row or {}).get("version") or 0)
    return "" if have >= wanted else f"schema version {have}, this build needs {wanted}: migrations have not run yet"


class Api:
    """One HTTP function's routes plus the built-in health, version, metrics and OpenAPI routes."""

    def __init__(self, function: str, *, health: Callable[[], dict[str, str]] | None = None) -> None:
        self.function = function
        pause_collector()  # until the first answer: what the start allocates lives as long as the process
        self.environment = environment()  # a configuration error ends the process here, at start
        configure_logging(self.environment.log_level)
        self._body_refusal = f"request body is larger than {self.environment.max_body_bytes} bytes"
        self.routes: list[Route] = []
        self._health_check = health
        self._schema_current = False  # checked by /health until it holds, then never again
        # the build this process runs, looked up once (a source checkout's lookup of the build module
        # that is not there is an import system search, on every request otherwise)
        self._build = build_info().as_json()
        # path -> the methods that take the direct lane there: a direct route's own, and HEAD for a GET;
        # for paths with parameters, (the methods; the pattern, without a trailing slash) in turn
        self._direct: dict[str, frozenset[str]] = {}
        self._direct_patterns: list[tuple[frozenset[str], PathPattern]] = []
        # (method, path) of routes without parameters that no earlier route matches: found by one
        # lookup instead of trying every route's pattern in turn (`match`)
        self._static: dict[tuple[str, str], Route] = {}
        self._add_builtin_routes()

    # -- declaration -------------------------------------------------------------------------
    def route(self, method: str, path: str, *, access: Access, summary: str = "", status: int = 200,
              body: dict[str, Any] | None = None, query: tuple[str, ...] = (),
              token_in_query: bool = False, upgrades: bool = False,
              standing_in_statement: bool = False, direct: bool = False) -> Callable[[Handler], Handler]:
        """Declare a route. `upgrades`: the route also answers WebSocket upgrade requests.
        `standing_in_statement`: the handler reads the caller's standing in its own statement.
        `direct`: requests for exactly this path (any values of its parameters, no trailing slash)
        and method (HEAD too for a GET) reach this Api straight from the WSGI layer of the app
        functions-framework builds, without Flask's request dispatch (see `DirectLane`): for a route
        on the hot path of every request somewhere else (the ingress's forward-auth check, a
        desktop's heartbeat) whose handler needs nothing of Flask (no flask.request, templates,
        streaming or WebSocket). The path's other routes still go through Flask."""
        if not isinstance(access, Access):
            raise TypeError(f"{method} {path}: access must be an Access value")
        if standing_in_statement and access is not Access.USER:
            # every role may call a USER route, so nothing runs before the role rule could refuse
            raise TypeError(f"{method} {path}: standing_in_statement is for Access.USER routes only")
        if token_in_query and not access.needs_token:
            raise TypeError(f"{method} {path}: token_in_query needs a route that requires a token")
        if token_in_query and "token" not in query:
            query = (*query, "token")

        if upgrades:
            _let_upgrades_through(path)
        if direct:
            if not self._direct and not self._direct_patterns:
                _answer_directly(self)
            methods = frozenset({method.upper(), "HEAD"} if method.upper() == "GET" else {method.upper()})
            if "{" in path:
                self._direct_patterns.append((methods, PathPattern(path, trailing_slash=False)))
            else:
                self._direct[path] = self._direct.get(path, frozenset()) | methods

        def register(handler: Handler) -> Handler:
            route = Route(method.upper(), path, handler, access, summary or (handler.__doc__ or "").strip(),
                          status, body, query, PathPattern(path), token_in_query, standing_in_statement, direct)
            if not route.params and not any(earlier.pattern.match(path) for earlier in self.routes):
                self._static[(route.method, path)] = route
            self.routes.append(route)
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def not_built(self, method: str, path: str, *, access: Access, message: str) -> None:
        """Declare a contract route that is not built yet: it answers 501 with `message`."""

        def handler(_: Request) -> Any:
            raise NotImplementedYet(message)

        self.route(method, path, access=access, summary=f"Not built yet: {message}", status=501)(handler)

    def _add_builtin_routes(self) -> None:
        for prefix in ("", "/api/v1"):
            self.route("GET", f"{prefix}/health", access=Access.PUBLIC, summary="Liveness and database health")(
                self._health)
            self.route("GET", f"{prefix}/version", access=Access.PUBLIC, summary="Build version")(self._version)
        self.route("GET", "/metrics", access=Access.PUBLIC, summary="Prometheus metrics of this function")(
            self._metrics)
        self.route("GET", "/api/v1/openapi.json", access=Access.PUBLIC, summary="OpenAPI document of the API")(
            self._openapi)

    def _health(self, _: Request) -> Reply:
        try:
            fetch_one("SELECT 1 AS ok", timeout=3)  # a probe must answer before the prober gives up
        except DatabaseUnavailable as exc:
            return Reply({"status": "unhealthy", "service": "streamspace-api", "function": self.function,
                          "error": "database unreachable", "dependencies": {"database": str(exc)}}, status=503)
        if not self._schema_current:
            behind = _schema_behind()
            if behind:
                # Readiness waits for the migrations (the Helm hook or `python -m streamspace migrate`):
                # no instance takes traffic against an older schema.
                return Reply({"status": "unhealthy", "service": "streamspace-api", "function": self.function,
                              "error": "migrations pending", "dependencies": {"database": behind}}, status=503)
            self._schema_current = True
        if self._health_check is not None:
            failed = self._health_check()
            if failed:
                return Reply({"status": "unhealthy", "service": "streamspace-api", "function": self.function,
                              "dependencies": failed}, status=503)
        return Reply({"status": "healthy", "service": "streamspace-api"})

    def _version(self, _: Request) -> dict[str, str]:
        return self._build

    def _metrics(self, _: Request) -> Reply:
        payload, content_type = metrics.exposition()
        return Reply(payload, content_type=content_type)

    def _openapi(self, _: Request) -> Reply:
        return Reply(published_document())

    # -- dispatch ----------------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The first declared route whose pattern and method fit (HEAD runs a GET route)."""
        static = self._static.get((method, path))
        if static is not None:  # no earlier route's pattern matches its path: the loop would find it first
            return static, {}
        allowed = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}",
                                   headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise NotFound(f"no route for {method} {path}", error="not found")

    def __call__(self, request: flask.Request) -> flask.Response:
        return self.answer(request, self._respond)

    def answer(self, request: flask.Request, respond: Callable[[Reply, str, dict[str, str]], _Answer]) -> _Answer:
        """Route, authorize, run the handler and map its errors; `respond` makes the answer of its
        reply (`_respond` through Flask, `_respond_wsgi` on the direct lane)."""
        started = time.perf_counter()
        request_id = request_id_of(request)
        token = request_id_var.set(request_id)
        function_token = function_var.set(self.function)
        route_label = "unmatched"
        body = limit_body(request, self.environment.max_body_bytes, self._body_refusal)
        try:
            cors = self._cors_headers(request)
            if request.method == "OPTIONS":
                status, response = 204, respond(Reply(None, status=204), request_id, cors)
            else:
                if "\x00" in request.path or b"%00" in request.query_string or b"\x00" in request.query_string:
                    raise Invalid("the path or query contains a NUL character", error="invalid request")
                route, params = self.match(request.method, request.path)
                route_label = route.path
                req = Request(request, route, params, request_id, self.environment.max_body_bytes)
                if route.access.needs_token:
                    self._authorize(req, route)
                result = route.handler(req)
                if route.access.needs_token and req._caller is None:  # fail closed: standing never read
                    raise RuntimeError(f"{route.method} {route.path} answered without checking its caller's standing")
                reply = result if isinstance(result, Reply) else Reply(result, status=route.status)
                status, response = reply.status, respond(reply, request_id, cors)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract-shaped answer
            error = self._as_http_error(exc)
            status = error.status
            response = respond(Reply(error.body(), status=error.status, headers=error.headers), request_id,
                               self._cors_headers(request))
        finally:
            if body is not None:
                body.end()
            request_id_var.reset(token)
            function_var.reset(function_token)
        elapsed = time.perf_counter() - started
        metrics.observe_request(self.function, request.method, route_label, status, elapsed)
        if status >= 500:
            log.warning("request failed", extra={"method": request.method, "path": request.path, "status": status,
                                                 "requestId": request_id})
        resume_collector()
        return response

    def _authorize(self, req: Request, route: Route) -> None:
        query_token = req.raw.args.get("token") if route.token_in_query else None
        if route.standing_in_statement:
            req._claimant = claimant(req.raw.headers.get("Authorization"), alternate_token=query_token)
            return
        caller = authenticate(req.raw.headers.get("Authorization"), alternate_token=query_token)
        if not role_allows(caller.role, route.access):
            raise Forbidden(f"this operation requires the {route.access.value} role")
        req._caller = caller

    def _as_http_error(self, exc: Exception) -> HttpError:
        return as_http_error(exc, self.function)

    def _cors_headers(self, request: flask.Request) -> dict[str, str]:
        origin = (request.headers.get("Origin") or "").rstrip("/")
        if not origin or origin not in self.environment.cors_allowed_origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    def _respond(self, reply: Reply, request_id: str, cors: dict[str, str]) -> flask.Response:
        import flask

        if isinstance(reply.body, flask.Response):  # a WebSocket that has finished: nothing more to send
            return reply.body
        if reply.body is None:
            payload: bytes | str | Iterator[str] = b""
        elif isinstance(reply.body, Iterator):  # streamed as it is produced (Server-Sent Events)
            payload = reply.body
        elif isinstance(reply.body, (bytes, str)):
            payload = reply.body
        else:
            payload = dumps(reply.body)
        return flask.Response(payload, status=reply.status,
                              headers=answer_headers(reply.content_type, request_id, {**cors, **reply.headers}))

    def _respond_wsgi(self, reply: Reply, request_id: str, cors: dict[str, str]) -> WsgiAnswer:
        """`_respond`'s answer as a WSGI application, for the direct lane: a JSON or bytes body is
        written straight to the server, the same status line, headers (in the same order) and body
        as the flask.Response `_respond` makes, without building one (werkzeug's response object and
        its WSGI headers cost about a tenth of a forward-auth check's CPU). Anything else (no body or
        a streamed one, a status without a body, a Location, a value werkzeug would refuse) is
        `_respond`'s own response."""
        body = reply.body
        headers = {**cors, **reply.headers}
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, (dict, list)):
            payload = dumps(body)
        else:
            return self._respond(reply, request_id, cors)
        if not 200 <= reply.status < 600 or reply.status in (204, 304) or any(
                key.lower() in _REWRITTEN_BY_WERKZEUG or not isinstance(value, str) or "\n" in value or "\r" in value
                for key, value in headers.items()):
            return self._respond(reply, request_id, cors)
        fields = [*answer_headers(reply.content_type, request_id, headers), ("Content-Length", str(len(payload)))]
        status = _status_line(reply.status)

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            start_response(status, fields)
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [payload]

        return wsgi


def _let_upgrades_through(path: str) -> None:
    """functions-framework mounts the function with catch-all werkzeug rules that are not WebSocket
    rules, so werkzeug answers every upgrade request 400 before the function runs. A WebSocket rule
    for this exact path (added to the app functions-framework is building: it imports the
    function's module inside that app's context) sends upgrades to the function too."""
    import flask
    from werkzeug.routing import Rule

    if "{" in path:
        raise TypeError(f"{path}: upgrade routes take no path parameters")
    if not flask.has_app_context():  # the module was imported outside functions-framework
        return
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    endpoint = f"streamspace-upgrade:{path}"
    app.url_map.add(Rule(path, endpoint=endpoint, websocket=True))
    # functions-framework's own view ("run") is registered after the module ran: look it up per call.
    app.view_functions[endpoint] = lambda: app.view_functions["run"](path=path.lstrip("/"))


class DirectLane:
    """WSGI middleware in front of the app functions-framework builds: a request for one of the
    Api's direct paths goes straight to the Api; everything else to the app as before.

    Why: Flask's request dispatch (request context, URL adapter and matching against
    functions-framework's catch-all rule, its view wrapper, response finalisation) costs about as
    much CPU as the whole forward-auth check, which the ingress calls before every request to a
    desktop. The Api does everything a route needs itself (authentication, errors, headers, request
    id, logs, metrics), the same code either way, so a direct route answers byte for byte what it
    answers through Flask. What it skips is what such a route does not use: Flask's request context
    (flask.request, flask.g), after-request hooks (functions-framework's reads a body this GET
    route does not have; gunicorn discards an unread body itself) and functions-framework's
    execution-id log context (LOG_EXECUTION_ID; the Api's own X-Request-Id is there as always).
    Only the exact path and the direct route's own method (HEAD too for a GET): anything else, a
    trailing slash included, takes the Flask route. The other methods of a direct path (a POST
    that creates, CORS preflights) go through Flask as every other route does: what a handler may
    need of Flask (flask.request, the app's config such as its limits, its WebSocket rules) holds
    for them, and the lane stays what it was measured and reviewed as, a way for hot requests
    that read no body: the reads, and the heartbeat (a POST whose answer is in its path and query;
    a body is read, if a direct route ever reads one, through the Api's own limit, `LimitedBody`).
    A path with parameters takes the lane when its pattern matches the whole path."""

    def __init__(self, api: Api, inner: Callable[..., Any]) -> None:
        import flask

        self.api = api
        self.direct = api._direct
        self.patterns = api._direct_patterns
        self.inner = inner
        self.request_class = flask.Request

    def takes(self, method: str, path: str) -> bool:
        methods = self.direct.get(path)
        if methods is not None:
            return method in methods
        # the method first, then the pattern's literal prefix (PathPattern.match): the Flask lane's
        # requests are spared the patterns
        return any(method in methods and pattern.match(path) is not None for methods, pattern in self.patterns)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.takes(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")):
            return self.api.answer(self.request_class(environ), self.api._respond_wsgi)(environ, start_response)
        return self.inner(environ, start_response)


def _answer_directly(api: Api) -> None:
    """Put a DirectLane for `api`'s direct routes in front of the app functions-framework is building
    (the function's module runs inside that app's context, as for `_let_upgrades_through`)."""
    import flask

    if not flask.has_app_context():  # the module was imported outside functions-framework
        return
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    app.wsgi_app = DirectLane(api, app.wsgi_app)


_PLAUSIBLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id_of(request: flask.Request) -> str:
    """The caller's X-Request-Id when it is a plausible id, else a new one (it goes into logs): 128
    random bits as 32 hex digits (uuid4's object cost more than the rest of a small request's id work)."""
    request_id = request.headers.get("X-Request-Id", "")
    return request_id if _PLAUSIBLE_REQUEST_ID.fullmatch(request_id) else secrets.token_hex(16)


def as_http_error(exc: Exception, function: str) -> HttpError:
    """Any failure as the HTTP error a client sees, through the one registry (http/errors), for the
    API and the portal."""
    mapped = to_http(exc)
    if mapped is not None:
        return mapped
    log.exception("unhandled error", extra={"function": function})
    return HttpError("an unexpected error occurred; quote the X-Request-Id header when reporting it")
