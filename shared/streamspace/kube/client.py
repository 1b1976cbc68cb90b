"""The Kubernetes API transport: HTTP(S) on the standard library's http.client with in-cluster or
kubeconfig credentials.

Why not the official `kubernetes` package: the functions use only its REST transport and its
config loading, and importing it costs 0.3-0.5 s of every cold start (`kubernetes/__init__`
imports `kubernetes.config`, which imports the whole generated client, pydantic, dateutil,
oauthlib). Why not urllib3: its import costs about 30 ms of CPU (a third of it compiling its URL
regular expressions) on the first request of every function that calls the cluster, where
http.client and ssl are already loaded by functions-framework; one host, kept-alive connections and
JSON bodies are all we ask of it. This module does the part we use, the way the official client and
client-go do it:

- In a pod (KUBERNETES_SERVICE_HOST is set): `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
  trusting only the ServiceAccount's CA bundle, with the ServiceAccount's token. The kubelet
  rotates that projected token in place, so the file is read again whenever it changed
  (client-go's CachedFileTokenSource re-reads it; the official Python client every minute).
- Otherwise a kubeconfig: KUBECONFIG (a list of files joined by the path separator, merged as
  kubectl does: the first file to set a name or the current context wins; missing files are
  skipped) or ~/.kube/config. Supported: a server with its CA (certificate-authority or -data),
  insecure-skip-tls-verify and tls-server-name; users with a token or tokenFile, a client
  certificate and key (file or -data), or a username and password; a context's namespace is not
  used (every call names its namespace). exec and auth-provider credentials are refused with a
  message saying so: the functions run in-cluster, and local runs use the simulated cluster's
  or kind's kubeconfig (tokens, client certificates). A kubeconfig written as JSON (which is YAML,
  and which kubectl reads) is read without loading the YAML parser.

Relative paths in a kubeconfig are relative to the file that names them, as in client-go.

Connections: kept alive and reused (at most POOL_CONNECTIONS idle ones per client), one request at a
time each. An idle connection the server has closed is noticed before reuse (it reads as ready: end
of stream), as urllib3 does; a GET that still finds its reused connection closed under it is sent
once more on a new one, as Go's transport does for replayable requests (nothing else is resent: the
server may have acted on it).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POOL_CONNECTIONS = 16  # idle ones kept: the images serve 8 threads, plus watches; more are opened and not kept
USER_AGENT = "streamspace"
REPLAYABLE = frozenset({"GET", "HEAD"})  # resent once when a reused connection turns out closed
# what a reused connection that the server had closed raises before any answer arrives
_CLOSED_UNDER_US = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ConfigError(Exception):
    """No usable Kubernetes configuration (the message says which setting is wrong)."""


class TokenFile:
    """A bearer token read from a file, read again whenever the file changes (the kubelet rotates a
    projected ServiceAccount token by swapping the file: a new inode, size or mtime)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._token = ""
        self.token()  # a missing or unreadable file is a configuration error now, not on the first call

    def token(self) -> str:
        try:
            stat = self.path.stat()
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if seen != self._seen:
                with self._lock:
                    self._token = self.path.read_text().strip()
                    self._seen = seen
        except OSError as exc:
            if self._seen is None:
                raise ConfigError(f"cannot read the token file {self.path}: {exc.strerror or exc}") from None
            # mid-rotation: keep the last token read (the API server still accepts it for a while)
        return self._token


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS whose certificate is checked for `server_name` when given (a kubeconfig's tls-server-name)
    instead of the host dialled."""

    def __init__(self, host: str, port: int | None, *, timeout: float | None, context: ssl.SSLContext,
                 server_name: str | None) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls = context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name or self.host)


class Response:
    """One answer: `status`, `headers`, and `data` (the whole body) unless it is streamed
    (`stream()`, then `release_conn()`). A streamed answer may be ended from another thread
    (`shutdown()`): the blocked read returns."""

    def __init__(self, client: Client, connection: http.client.HTTPConnection, sock: socket.socket | None,
                 raw: http.client.HTTPResponse, preload: bool) -> None:
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._client: Client | None = client
        self._connection: http.client.HTTPConnection | None = connection
        self._raw = raw
        self._sock = sock  # kept: an answer that ends the connection takes the socket off it
        self.data = b""
        if preload:
            try:
                self.data = raw.read()
            finally:
                self.release_conn()

    def read(self) -> bytes:
        """The rest of the body."""
        try:
            return self._raw.read()
        finally:
            self.release_conn()

    def stream(self, amount: int = 4096) -> Iterator[bytes]:
        """The body as it arrives, at most `amount` bytes at a time."""
        while True:
            chunk = self._raw.read1(amount)
            if not chunk:
                return
            yield chunk

    def release_conn(self) -> None:
        """Give the connection back when the answer was read to its end and the server keeps it open;
        else close it."""
        connection, client, self._connection, self._client = self._connection, self._client, None, None
        if connection is None or client is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            client._put(connection)
        else:
            self._raw.close()
            connection.close()

    def shutdown(self) -> None:
        if self._sock is not None and self._connection is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle connection that reads as ready has been closed by the server (or sent something unasked)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class Client:
    """REST calls to one API server with one identity. Thread-safe; connections are kept and reused."""

    def __init__(self, server: str, *, ssl_context: ssl.SSLContext | None = None,
                 token: Callable[[], str] | None = None, basic_auth: tuple[str, str] | None = None,
                 tls_server_name: str | None = None) -> None:
        self.server = server.rstrip("/")
        parts = urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"the Kubernetes API server must be an http(s) URL, not {server!r}")
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")  # a server behind a path (e.g. a proxy's /k8s/clusters/x)
        self._tls = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self._server_name = tls_server_name
        self._token = token
        self._basic = ("Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
                       if basic_auth else None)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None,
                preload_content: bool = True) -> Response:
        """One HTTP request; `body` (not bytes) is sent as JSON (which is also YAML, for apply patches).

        `timeout`: seconds for connecting and for each read (for a stream, the silence it may keep).
        Raises OSError (ssl.SSLError among them) or http.client.HTTPException when the server cannot
        be reached or breaks off; answers of any status are returned."""
        target = self._prefix + path
        wanted = [(k, str(v)) for k, v in query or () if v is not None]
        if wanted:
            target += "?" + urlencode(wanted)
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        authorization = self._authorization()
        if authorization:
            sent["Authorization"] = authorization
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        while True:
            connection, reused = self._take(timeout)
            try:
                connection.request(method, target, body=data, headers=sent)
                sock = connection.sock
                raw = connection.getresponse()
            except _CLOSED_UNDER_US:
                connection.close()
                if reused and method in REPLAYABLE:
                    continue  # the next idle connection, or a new one
                raise
            except BaseException:
                connection.close()
                raise
            return Response(self, connection, sock, raw, preload_content)

    def _take(self, timeout: float | None) -> tuple[http.client.HTTPConnection, bool]:
        """(a connection, whether it was used before): the newest idle one still open, else a new one."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            if _dropped(connection):
                connection.close()
                continue
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            return connection, True
        if self._tls is not None:
            return _TLSConnection(self._host, self._port, timeout=timeout, context=self._tls,
                                  server_name=self._server_name), False
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout), False

    def _put(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    def _authorization(self) -> str | None:
        if self._token is not None:
            token = self._token()
            if token:
                return "Bearer " + token
        return self._basic

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


# -- in a pod ---------------------------------------------------------------------------------------

def in_cluster(environ: dict[str, str] | os._Environ[str] = os.environ,
               account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR) -> Client:
    """The client of the pod's ServiceAccount (what rest.InClusterConfig builds in client-go)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT")
    if ":" in host and not host.startswith("["):  # an IPv6 address (net.JoinHostPort)
        host = f"[{host}]"
    folder = Path(account_dir)
    token = TokenFile(folder / "token")
    try:
        context = ssl.create_default_context(cafile=str(folder / "ca.crt"))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the cluster CA {folder / 'ca.crt'}: {exc}") from None
    return Client(f"https://{host}:{port}", ssl_context=context, token=token.token)


# -- kubeconfig -------------------------------------------------------------------------------------

def kubeconfig_paths(explicit: str | None = None) -> list[Path]:
    """The kubeconfig files to merge: `explicit`, else KUBECONFIG, else ~/.kube/config."""
    listed = explicit or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]


def _parse(text: str, path: Path) -> Any:
    """A kubeconfig's document: JSON (what a generated one often is, and YAML too) with the standard
    library, anything else with the YAML parser, loaded only then."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: YAML decides (flow mappings start with "{" too)
    import yaml  # only a YAML kubeconfig pays for the parser; a pod reads none

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"the kubeconfig {path} is not YAML: {exc}") from None


class Kubeconfig:
    """Kubeconfig files read and merged once: the contexts they define and a client for any of them."""

    def __init__(self, paths: list[Path]) -> None:
        merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
        found = False
        for path in paths:
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot read the kubeconfig {path}: {exc.strerror or exc}") from None
            found = True
            doc = _parse(text, path)
            if not isinstance(doc, dict):
                raise ConfigError(f"the kubeconfig {path} is not a mapping")
            for section, field in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
                for entry in doc.get(section) or ():
                    name = str((entry or {}).get("name", ""))
                    if name and name not in merged[section]:  # the first file to set a name wins
                        merged[section][name] = (entry.get(field) or {}, path.parent)
            if not merged["current-context"]:
                merged["current-context"] = str(doc.get("current-context") or "")
        if not found:
            raise ConfigError("no kubeconfig at " + os.pathsep.join(str(p) for p in paths))
        self._merged = merged
        self.contexts = frozenset(merged["contexts"])

    def client(self, context: str | None = None) -> Client:
        """The client of a context (the current one unless `context` names another)."""
        merged = self._merged
        name = context or merged["current-context"]
        if not name:
            raise ConfigError("the kubeconfig has no current-context")
        if name not in merged["contexts"]:
            raise ConfigError(f"the kubeconfig has no context {name!r}")
        ctx, _ = merged["contexts"][name]
        cluster_name, user_name = str(ctx.get("cluster", "")), str(ctx.get("user", ""))
        if cluster_name not in merged["clusters"]:
            raise ConfigError(f"the kubeconfig context {name!r} names no known cluster ({cluster_name!r})")
        cluster, cluster_dir = merged["clusters"][cluster_name]
        user, user_dir = merged["users"].get(user_name, ({}, cluster_dir))
        server = str(cluster.get("server") or "")
        if not server.startswith(("https://", "http://")):
            raise ConfigError(f"the kubeconfig cluster {cluster_name!r} has no http(s) server ({server!r})")
        for unsupported in ("exec", "auth-provider"):
            if user.get(unsupported):
                raise ConfigError(f"the kubeconfig user {user_name!r} uses {unsupported} credentials, which"
                                  " StreamSpace's client does not run: give it a token, tokenFile or client"
                                  " certificate")
        context_tls = _tls_context(cluster, cluster_dir, user, user_dir) if server.startswith("https://") else None
        token: Callable[[], str] | None = None
        if user.get("token"):
            fixed = str(user["token"])
            token = lambda: fixed  # noqa: E731 - a constant token source
        elif user.get("tokenFile"):
            token = TokenFile(_resolve(user["tokenFile"], user_dir)).token
        basic = (str(user["username"]), str(user.get("password", ""))) if user.get("username") else None
        return Client(server, ssl_context=context_tls, token=token, basic_auth=basic,
                      tls_server_name=str(cluster.get("tls-server-name") or "") or None)


def load_kubeconfig(explicit: str | None = None) -> Kubeconfig:
    """The kubeconfig `explicit` names, else KUBECONFIG's, else ~/.kube/config, read now."""
    return Kubeconfig(kubeconfig_paths(explicit))


def kubeconfig_contexts(explicit: str | None = None) -> frozenset[str]:
    """The names of the contexts the kubeconfig defines."""
    return load_kubeconfig(explicit).contexts


def from_kubeconfig(explicit: str | None = None, context: str | None = None) -> Client:
    """The client of a kubeconfig context (the current one unless `context` names another)."""
    return load_kubeconfig(explicit).client(context)


def _resolve(path: str, base: Path) -> Path:
    found = Path(path).expanduser()
    return found if found.is_absolute() else base / found


def _data(entry: dict[str, Any], field: str, base: Path) -> bytes | None:
    """The bytes of `field` (a path) or `field-data` (base64), the -data form first as in client-go."""
    if entry.get(field + "-data"):
        try:
            return base64.b64decode(entry[field + "-data"], validate=True)
        except ValueError:
            raise ConfigError(f"the kubeconfig's {field}-data is not base64") from None
    if entry.get(field):
        path = _resolve(str(entry[field]), base)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the kubeconfig's {field} {path}: {exc.strerror or exc}") from None
    return None


def _tls_context(cluster: dict[str, Any], cluster_dir: Path, user: dict[str, Any], user_dir: Path) -> ssl.SSLContext:
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        authority = _data(cluster, "certificate-authority", cluster_dir)
        try:
            context = (ssl.create_default_context(cadata=authority.decode("ascii")) if authority
                       else ssl.create_default_context())
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"the kubeconfig's certificate authority is not a PEM certificate: {exc}") from None
    certificate = _data(user, "client-certificate", user_dir)
    key = _data(user, "client-key", user_dir)
    if certificate or key:
        if not (certificate and key):
            raise ConfigError("the kubeconfig user has a client certificate or key without the other")
        _load_cert_chain(context, certificate, key)
    return context


def _load_cert_chain(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    """ssl loads a key pair only from files: write them to a private folder, load, remove at once."""
    with tempfile.TemporaryDirectory(prefix="streamspace-kube-") as folder:  # mode 0700
        cert_path, key_path = Path(folder, "tls.crt"), Path(folder, "tls.key")
        for path, content in ((cert_path, certificate), (key_path, key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
        try:
            context.load_cert_chain(str(cert_path), str(key_path))
        except ssl.SSLError as exc:
            raise ConfigError(f"the kubeconfig's client certificate and key do not load: {exc}") from None
