"""The Kubernetes API transport: HTTP(S) on urllib3 with in-cluster or kubeconfig credentials.

Why not the official `kubernetes` package: the functions use only its REST transport and its
config loading, and importing it costs 0.3-0.5 s of every cold start (`kubernetes/__init__`
imports `kubernetes.config`, which imports the whole generated client, pydantic, dateutil,
oauthlib). This module does the part we use, the way the official client and client-go do it:

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
  or kind's kubeconfig (tokens, client certificates).

Relative paths in a kubeconfig are relative to the file that names them, as in client-go.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POOL_CONNECTIONS = 16  # per host: the images serve 8 threads, plus watches; more are opened and not kept


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


class Client:
    """REST calls to one API server with one identity. Thread-safe; connections are pooled."""

    def __init__(self, server: str, *, ssl_context: ssl.SSLContext | None = None,
                 token: Callable[[], str] | None = None, basic_auth: tuple[str, str] | None = None,
                 tls_server_name: str | None = None) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._basic = ("Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
                       if basic_auth else None)
        pool_args: dict[str, Any] = {"num_pools": 4, "maxsize": POOL_CONNECTIONS}
        if self.server.startswith("https://"):
            pool_args["ssl_context"] = ssl_context or ssl.create_default_context()
            if tls_server_name:
                pool_args["server_hostname"] = tls_server_name
        self._pool = urllib3.PoolManager(**pool_args)

    def request(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None,
                preload_content: bool = True) -> urllib3.BaseHTTPResponse:
        """One HTTP request; `body` (not bytes) is sent as JSON (which is also YAML, for apply patches).

        `timeout`: seconds for the whole request when the content is preloaded, else for the
        connection and for each read (the silence a stream may keep). Raises urllib3's HTTPError
        or OSError when the server cannot be reached; answers of any status are returned."""
        url = self.server + path
        wanted = [(k, str(v)) for k, v in query or () if v is not None]
        if wanted:
            url += "?" + urlencode(wanted)
        sent = dict(headers or {})
        authorization = self._authorization()
        if authorization:
            sent["Authorization"] = authorization
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        limit = (urllib3.Timeout(total=timeout) if preload_content else urllib3.Timeout(connect=timeout, read=timeout)
                 ) if timeout is not None else None
        return self._pool.request(method, url, body=data, headers=sent, timeout=limit,
                                  preload_content=preload_content, redirect=False)

    def _authorization(self) -> str | None:
        if self._token is not None:
            token = self._token()
            if token:
                return "Bearer " + token
        return self._basic

    def close(self) -> None:
        self._pool.clear()


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


def _merged(paths: list[Path]) -> dict[str, Any]:
    import yaml  # only local runs read a kubeconfig; a pod never pays for the YAML parser

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
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"the kubeconfig {path} is not YAML: {exc}") from None
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
    return merged


def kubeconfig_contexts(explicit: str | None = None) -> frozenset[str]:
    """The names of the contexts the kubeconfig defines."""
    return frozenset(_merged(kubeconfig_paths(explicit))["contexts"])


def from_kubeconfig(explicit: str | None = None, context: str | None = None) -> Client:
    """The client of a kubeconfig context (the current one unless `context` names another)."""
    merged = _merged(kubeconfig_paths(explicit))
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
            raise ConfigError(f"the kubeconfig user {user_name!r} uses {unsupported} credentials, which StreamSpace's"
                              " client does not run: give it a token, tokenFile or client certificate")
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
