"""The portal's HTTP layer: cookie login, CSRF, security headers, routing and rendering.

Every page declares the access it needs (`Access.PUBLIC`, `USER`, `ADMIN`), like the API's routes.
The login cookie carries the same access token the API accepts (plus the refresh token that renews
it), so a page resolves its caller with the API's own `authenticate` and calls the library's
services with that `Principal`: owner scoping and role checks are the services', never the page's.

Browser-facing rules kept here, once:
- cookies are host-only (no Domain: desktops on `<session>.<domain>` never receive them), HttpOnly,
  SameSite=Lax, Secure with the `__Host-` prefix in production;
- every cookie-authenticated POST carries a CSRF token bound to the login (HMAC of its token
  family), and a browser-declared cross-site POST is refused outright;
- a login always replaces both cookies with a new token family (no session fixation);
- a strict Content-Security-Policy: scripts and styles only from our own origin, no inline code,
  no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from streamspace.auth.principal import authenticate
from streamspace.auth.refresh import refresh
from streamspace.http.api import (
    Access,
    Api,
    PathPattern,
    as_http_error,
    client_address,
    limit_body,
    request_id_of,
    role_allows,
)
from streamspace.http.errors import Forbidden, NotFound, PayloadTooLarge, Unauthorized
from streamspace.observability import metrics, request_id_var
from streamspace.portal import views
from streamspace.records import record
from streamspace.startup import resume_collector

if TYPE_CHECKING:
    import flask
    import jinja2

    from streamspace.auth.principal import Principal

log = logging.getLogger("streamspace.portal")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
# The templates compiled ahead of time, as the images' build precompiles the modules (`python -m
# streamspace precompile`, run after compileall): the first page then loads each template's compiled
# code instead of lexing, parsing and compiling it, which cost the sessions page's five templates
# about 35 ms of CPU, a tenth of a hello world's whole cold start. Jinja checks every entry against
# its template's source (SHA-1), so an edited template is compiled again, never served stale; the
# same trust as __pycache__: whoever can write the installed package can change its code anyway.
TEMPLATE_CACHE_DIR = TEMPLATE_DIR / "__pycache__"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
MAX_FORM_BYTES = 64 * 1024
# A form over MAX_FORM_BYTES is refused whole (413), never cut to its first part: the error page says so.
FORM_TOO_LARGE = (f"This form is larger than {MAX_FORM_BYTES // 1024} KiB, the most the portal accepts. "
                  "Shorten what you entered and send it again.")


def cookie_names(production: bool) -> tuple[str, str]:
    """(access cookie, refresh cookie). `__Host-` makes the browser refuse them unless Secure,
    Path=/ and host-only, so a sibling subdomain cannot plant or shadow them."""
    prefix = "__Host-" if production else ""
    return f"{prefix}streamspace_portal", f"{prefix}streamspace_portal_refresh"


def local_path(target: str | None, default: str = "/") -> str:
    """`target` when it is a path on this site (for ?next=), else `default`: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def refusal(exc: Exception) -> tuple[dict[str, str], int]:
    """A service's refusal of a form as (`{field: message}`, HTTP status) for the form that caused
    it ("" = the whole form). Services raise ValidationError(field, ...), which the shared mapping
    turns into 400 `invalid <field>`; every other refusal (quota, conflict, ...) is the form's."""

    error = as_http_error(exc, "portal")
    if error.status >= 500:
        raise exc
    if error.status == 400 and error.error.startswith("invalid "):
        return {error.error.removeprefix("invalid "): error.message}, 400
    return {"": error.message}, error.status


def template_environment(template_dir: Path = TEMPLATE_DIR, cache_dir: Path = TEMPLATE_CACHE_DIR, *,
                         precompiling: bool = False) -> jinja2.Environment:
    """The portal's Jinja environment, reading compiled templates from `cache_dir` when they are there.

    At run time a template missing from the cache is compiled in memory and written to the cache only
    where Python would write bytecode (not with PYTHONDONTWRITEBYTECODE, as the images and tests run,
    nor on a read-only file system); `precompiling` writes every one and fails loudly when it cannot.
    Compiled code depends on the environment's options and filter names, and on jinja's version, so
    the cache's file names carry a digest of those: a change of any compiles everything again."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)), undefined=jinja2.StrictUndefined,
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(views.FILTERS)
    digest = hashlib.sha256(repr((env.autoescape, env.trim_blocks, env.lstrip_blocks, sorted(env.filters),
                                  getattr(jinja2, "__version__", ""))).encode()).hexdigest()[:16]
    writes = precompiling or not sys.dont_write_bytecode

    class CompiledTemplates(jinja2.FileSystemBytecodeCache):
        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if not writes:
                return
            try:
                super().dump_bytecode(bucket)
            except OSError:
                if precompiling:
                    raise
                # (no cache folder, or a read-only install: this process keeps its compiled copy)

    env.bytecode_cache = CompiledTemplates(str(cache_dir), f"{digest}-%s.cache")
    return env


def precompile_templates(template_dir: Path = TEMPLATE_DIR, cache_dir: Path = TEMPLATE_CACHE_DIR) -> list[str]:
    """Compile every template into `cache_dir` (the images' build, and the benchmark as the images
    do); the names compiled."""
    cache_dir.mkdir(exist_ok=True)
    env = template_environment(template_dir, cache_dir, precompiling=True)
    names = env.list_templates(filter_func=lambda name: name.endswith(".html"))
    for name in names:
        env.get_template(name)
    return names


@record
class PageRoute:
    method: str
    path: str
    handler: Callable[[Page], Any]
    access: Access
    pattern: PathPattern


class Page:
    """What a page handler sees: the request, the caller, the form, and ways to answer."""

    def __init__(self, portal: Portal, raw: flask.Request, route: PageRoute, params: dict[str, str]) -> None:
        self.portal = portal
        self.raw = raw
        self.route = route
        self.params = params
        self._caller: Principal | None = None
        self.new_cookies: dict[str, str] | None = None  # set at login/refresh; {} clears them

    @property
    def caller(self) -> Principal:
        if self._caller is None:
            raise Unauthorized("log in first")
        return self._caller

    @cached_property
    def client_ip(self) -> str:
        """The caller's address exactly as the API reads it (only trusted proxies' headers count)."""

        return client_address(self.raw.remote_addr, self.raw.headers.get("X-Forwarded-For"),
                              self.portal.environment.trusted_proxies)

    def param(self, name: str) -> str:
        return self.params[name]

    def query(self, name: str) -> str | None:
        value = self.raw.args.get(name)
        return value if value else None

    @property
    def done(self) -> str | None:
        """What the redirect after a successful change reports (?done=...), on that GET only."""
        return self.query("done") if self.raw.method == "GET" else None

    @cached_property
    def form(self) -> dict[str, str]:
        return {key: value for key, value in self.raw.form.items()}

    def field(self, name: str) -> str:
        return self.form.get(name, "").strip()

    @property
    def csrf_token(self) -> str:
        return self.portal.csrf_token(self._caller.family_id if self._caller else None)

    def log_out(self) -> None:
        """This answer clears the login cookies and shows no one as logged in (the login itself is
        ended by the service first)."""
        self._caller = None
        self.new_cookies = {}

    def render(self, template_name: str, /, status: int = 200, **context: Any) -> flask.Response:
        import flask

        html = self.portal.jinja.get_template(template_name).render(page=self, caller=self._caller, **context)
        return flask.Response(html, status=status, content_type="text/html; charset=utf-8")

    def redirect(self, location: str) -> flask.Response:
        import flask

        return flask.Response("", status=303, headers={"Location": location})


class Portal:
    """The portal's pages, their access, and the per-request checks around them."""

    def __init__(self, function: str = "portal") -> None:
        self.function = function
        self.api = Api(function)  # the built-in JSON routes every function has: health, version, metrics
        self.environment = self.api.environment
        self.routes: list[PageRoute] = []
        self.access_cookie, self.refresh_cookie = cookie_names(self.environment.production)
        key_source = self.environment.secret_key or self.environment.jwt_keys[self.environment.jwt_signing_kid]
        self._csrf_key = hashlib.sha256(b"streamspace portal csrf\0" + key_source.encode()).digest()
        self.static_versions = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                                for path in STATIC_DIR.iterdir() if path.suffix in STATIC_TYPES}

    @cached_property
    def jinja(self) -> jinja2.Environment:
        env = template_environment()
        env.globals["nav"] = ""
        env.globals["static"] = lambda name: f"/assets/{name}?v={self.static_versions.get(name, '0')}"
        return env

    # -- declaration -------------------------------------------------------------------------
    def page(self, path: str, *, access: Access, methods: tuple[str, ...] = ("GET",)
             ) -> Callable[[Callable[[Page], Any]], Callable[[Page], Any]]:
        pattern = PathPattern(path)

        def register(handler: Callable[[Page], Any]) -> Callable[[Page], Any]:
            for method in methods:
                self.routes.append(PageRoute(method, path, handler, access, pattern))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[PageRoute, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.match(path)
            if found and (route.method == method or (method == "HEAD" and route.method == "GET")):
                return route, found.groupdict()
        return None

    # -- CSRF --------------------------------------------------------------------------------
    def csrf_token(self, family_id: str | None) -> str:
        return hmac.new(self._csrf_key, (family_id or "anonymous").encode(), hashlib.sha256).hexdigest()

    def _check_csrf(self, page: Page) -> None:
        if page.raw.headers.get("Sec-Fetch-Site", "") == "cross-site":
            raise Forbidden("a form from another site cannot change anything here", error="csrf")
        if page.route.access.needs_token:
            sent = page.raw.form.get("csrf") or page.raw.headers.get("X-CSRF-Token") or ""
            if not hmac.compare_digest(sent, page.csrf_token):
                raise Forbidden("this form has expired; reload the page and try again", error="csrf")

    # -- the login cookie ----------------------------------------------------------------------
    def _resolve_caller(self, page: Page) -> Principal:
        access = page.raw.cookies.get(self.access_cookie)
        if access:
            try:
                return authenticate(None, alternate_token=access)
            except Unauthorized as exc:
                if exc.error != "token expired":
                    raise
        renewal = page.raw.cookies.get(self.refresh_cookie)
        if not renewal:
            raise Unauthorized("log in first", error="login required")
        tokens = refresh(renewal, page.client_ip)
        page.new_cookies = {"token": tokens["token"], "refreshToken": tokens["refreshToken"]}
        return authenticate(None, alternate_token=tokens["token"])

    def _set_cookies(self, response: flask.Response, tokens: dict[str, str]) -> None:
        secure = self.environment.production
        if not tokens:
            for name in (self.access_cookie, self.refresh_cookie):
                response.set_cookie(name, "", max_age=0, path="/", secure=secure, httponly=True, samesite="Lax")
            return
        lifetime = self.environment.refresh_token_ttl_seconds
        response.set_cookie(self.access_cookie, tokens["token"], max_age=lifetime, path="/", secure=secure,
                            httponly=True, samesite="Lax")
        response.set_cookie(self.refresh_cookie, tokens["refreshToken"], max_age=lifetime, path="/",
                            secure=secure, httponly=True, samesite="Lax")

    def _to_login(self, page: Page, notice: str | None = None) -> flask.Response:
        """To the login page, back here afterwards; `notice`: a code of views.LOGIN_NOTICES."""
        import flask

        from_script = page.raw.headers.get("X-Requested-With") == "streamspace-portal"
        if page.raw.method == "GET" and not from_script:
            back = page.raw.full_path.rstrip("?")
        else:  # a form posted, or a live part fetched, after the login ended: back to the page it was on
            referer = urlsplit(page.raw.headers.get("Referer", ""))
            back = referer.path if referer.netloc == page.raw.host and referer.path else "/"
        location = "/login?next=" + quote(local_path(back), safe="/")
        if notice:
            location += "&reason=" + quote(notice)
        if from_script:  # our script: it navigates
            response = flask.Response("", status=401, headers={"X-Login": location})
        else:
            response = flask.Response("", status=303, headers={"Location": location})
        self._set_cookies(response, {})
        return response

    # -- dispatch ----------------------------------------------------------------------------
    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        token = request_id_var.set(request_id)
        label = "unmatched"
        # Whatever answers (a page, the error page, a static file, the Api's routes), nothing in the
        # process reads more of a body than a form may be: see LimitedBody.
        body = limit_body(request, MAX_FORM_BYTES, FORM_TOO_LARGE)
        try:
            response = self._dispatch(request)
            label = getattr(request, "_portal_route", label)
        finally:
            if body is not None:
                body.end()
            request_id_var.reset(token)
        response.headers["X-Request-Id"] = request_id
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        response.headers.setdefault("Cache-Control", "no-store")
        metrics.observe_request(self.function, request.method, label, response.status_code,
                                time.perf_counter() - started)
        resume_collector()  # (paused by the Portal's Api until the first answer: streamspace.startup)
        return response

    def _dispatch(self, request: flask.Request) -> flask.Response:
        import flask

        if request.path.startswith("/assets/"):
            return self._static(request.path.removeprefix("/assets/"))
        found = self.match(request.method, request.path)
        if found is None and any(route.pattern.match(request.path) for route in self.api.routes):
            return self.api(request)
        if found is None:
            return self._error_page(request, NotFound("there is no page at this address"))
        route, params = found
        request._portal_route = route.path  # type: ignore[attr-defined]
        page = Page(self, request, route, params)
        try:
            if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
                raise PayloadTooLarge(FORM_TOO_LARGE)  # before reading any of it (a body without a
                # declared length is refused at the byte over the limit, by the body's own stream)
            if route.access.needs_token:
                try:
                    page._caller = self._resolve_caller(page)
                except Unauthorized:
                    return self._to_login(page)
                except Forbidden:  # the one refusal of a valid login: the account was disabled
                    return self._to_login(page, "account-disabled")
                if not role_allows(page._caller.role, route.access):
                    raise Forbidden(f"this page is for the {route.access.value} role")
            if request.method == "POST":
                self._check_csrf(page)
            result = route.handler(page)
            response = result if isinstance(result, flask.Response) else flask.Response(
                result, content_type="text/html; charset=utf-8")
        except Exception as exc:  # noqa: BLE001 - every failure becomes a page a person can read
            response = self._error_page(request, exc, page)
        if page.new_cookies is not None:
            self._set_cookies(response, page.new_cookies)
        return response

    def _error_page(self, request: flask.Request, exc: Exception, page: Page | None = None) -> flask.Response:
        import flask


        error = as_http_error(exc, self.function)
        if page is None:
            found = self.match("GET", "/login")
            if found is None:
                raise RuntimeError("invariant broken: found is None")
            page = Page(self, request, found[0], {})
        try:
            html = self.jinja.get_template("error.html").render(page=page, caller=page._caller, error=error)
        except Exception:  # noqa: BLE001 - the error page itself must not fail
            log.exception("error page failed")
            html = "<!doctype html><title>Error</title><p>Something went wrong.</p>"
        response = flask.Response(html, status=error.status, content_type="text/html; charset=utf-8")
        return response

    def _static(self, name: str) -> flask.Response:
        import flask

        path = STATIC_DIR / name
        if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
            return flask.Response("not found", status=404, content_type="text/plain")
        response = flask.Response(path.read_bytes(), content_type=STATIC_TYPES[path.suffix])
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"  # URLs carry ?v=<hash>
        return response
