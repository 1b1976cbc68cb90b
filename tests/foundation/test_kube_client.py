"""The product's own Kubernetes transport (`streamspace.kube.client`) against the simulated API server
served over TLS, as a real API server always is: in-cluster config (ServiceAccount token and CA, the
token rotated the way the kubelet swaps a projected volume), kubeconfig forms (CA file or data,
tls-server-name, token, tokenFile, client certificates, several files merged), and the `kube`
module's calls (pagination, server-side apply, errors, watch streams) over that connection.

Client certificates authenticate as the API server's x509 authenticator does: the subject's common
name is the user, its organizations the groups (kubernetes.io/docs/reference/access-authn-authz/
authentication/#x509-client-certificates).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from streamspace import kube
from streamspace.kube.client import ConfigError, Response, from_kubeconfig, in_cluster, kubeconfig_contexts
from streamspace.sim import SimCluster

ROOT = Path(__file__).resolve().parents[2]
SERVER_NAME = "kubernetes.default.svc"  # the certificate's only DNS name; its IP is 127.0.0.1


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
                     + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: x509.Name, *, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
           server: bool = False, client: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer_cert.subject if signer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if signer_cert is None:
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False,
                                                encipher_only=False, decipher_only=False), critical=True))
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(cert.public_bytes(serialization.Encoding.PEM),
               key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))


@dataclass(frozen=True)
class Tls:
    cluster: SimCluster
    port: int
    ca: Pem
    other_ca: Pem  # a CA the server's certificate is not from
    jane: Pem  # client certificate: CN=jane, O=developers
    folder: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    folder = tmp_path_factory.mktemp("kube-tls")
    ca = _issue(_name("streamspace-test-ca"))
    server = _issue(_name("kube-apiserver"), issuer=ca, server=True)
    jane = _issue(_name("jane", ("developers",)), issuer=ca, client=True)
    other = _issue(_name("someone-else-ca"))
    server_pem = _pem(*server)
    (folder / "server.crt").write_bytes(server_pem.cert)
    (folder / "server.key").write_bytes(server_pem.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.crt", folder / "server.key")
    context.load_verify_locations(cadata=_pem(*ca).cert.decode())
    context.verify_mode = ssl.CERT_OPTIONAL  # the API server asks for client certificates, never requires them
    cluster = SimCluster()
    url = cluster.start(tls=context)
    assert url.startswith("https://127.0.0.1:")
    cluster.load_rbac([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "pod-reader", "namespace": "team"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "pod-readers", "namespace": "team"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"},
                      {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "developers"}]},
    ], namespace="team")
    try:
        yield Tls(cluster, int(url.rsplit(":", 1)[1]), _pem(*ca), _pem(*other), _pem(*jane), folder)
    finally:
        cluster.stop()


def _user_in(response: Response) -> str:
    """Who the API server took the caller for, from its 403 message."""
    assert response.status == 403, response.data
    message = json.loads(response.data)["message"]
    return message.split('User "', 1)[1].split('"', 1)[0]


def _kubeconfig(path: Path, server: str, user: dict, cluster_extra: dict | None = None,
                context: str = "test") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster_extra or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}]}))
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- in a pod --------------------------------------------------------------------------------------

def _project(folder: Path, version: str, token: str, ca: bytes) -> None:
    """Write the ServiceAccount volume as the kubelet's atomic writer does: the files live in a
    timestamped folder, `..data` links to it, and `token` / `ca.crt` link through `..data`; an
    update writes a new folder and swaps `..data` with one rename."""
    target = folder / f"..{version}"
    target.mkdir()
    (target / "token").write_text(token)
    (target / "ca.crt").write_bytes(ca)
    (folder / "..data_tmp").symlink_to(target.name)
    os.replace(folder / "..data_tmp", folder / "..data")
    for name in ("token", "ca.crt"):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")


def test_in_cluster_config_trusts_the_service_account_ca_and_follows_its_rotated_token(tls: Tls,
                                                                                        tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    _project(account, "2026_01", tls.cluster.token_for("team", "reader"), tls.ca.cert)
    client = in_cluster({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(tls.port)}, account)
    assert client.server == f"https://127.0.0.1:{tls.port}"

    assert client.request("GET", "/api/v1/namespaces/team/pods").status == 200
    assert _user_in(client.request("GET", "/api/v1/namespaces/team/services")) == "system:serviceaccount:team:reader"

    # the kubelet rotates the token: the next request carries the new one
    _project(account, "2026_02", tls.cluster.token_for("team", "writer"), tls.ca.cert)
    assert _user_in(client.request("GET", "/api/v1/namespaces/team/pods")) == "system:serviceaccount:team:writer"
    _project(account, "2026_03", tls.cluster.token_for("team", "reader"), tls.ca.cert)
    assert client.request("GET", "/api/v1/namespaces/team/pods").status == 200


def test_in_cluster_config_needs_the_service_host_port_and_token(tls: Tls, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster({"KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    with pytest.raises(ConfigError, match="token"):
        in_cluster({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)


def test_a_server_certificate_from_another_ca_is_refused(tls: Tls, tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    _project(account, "2026_01", tls.cluster.token_for("team", "reader"), tls.other_ca.cert)
    client = in_cluster({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(tls.port)}, account)
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        client.request("GET", "/api/v1/namespaces/team/pods")
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


# -- kubeconfig --------------------------------------------------------------------------------------

def test_a_kubeconfig_ca_checks_the_host_name_unless_tls_server_name_says_which(tls: Tls, tmp_path: Path) -> None:
    ca = {"certificate-authority-data": _b64(tls.ca.cert)}
    token = {"token": tls.cluster.token_for("team", "reader")}
    wrong_name = from_kubeconfig(str(_kubeconfig(tmp_path / "a", f"https://localhost:{tls.port}", token, ca)))
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        wrong_name.request("GET", "/api/v1/namespaces/team/pods")
    assert "localhost" in str(refused.value)

    named = from_kubeconfig(str(_kubeconfig(tmp_path / "b", f"https://localhost:{tls.port}", token,
                                            {**ca, "tls-server-name": SERVER_NAME})))
    assert named.request("GET", "/api/v1/namespaces/team/pods").status == 200


def test_a_kubeconfig_client_certificate_authenticates_its_subject(tls: Tls, tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(tls.ca.cert)
    (tmp_path / "pki" / "jane.crt").write_bytes(tls.jane.cert)
    (tmp_path / "pki" / "jane.key").write_bytes(tls.jane.key)
    server = f"https://127.0.0.1:{tls.port}"
    # as data, the way kind writes its kubeconfig
    inline = from_kubeconfig(str(_kubeconfig(
        tmp_path / "inline", server,
        {"client-certificate-data": _b64(tls.jane.cert), "client-key-data": _b64(tls.jane.key)},
        {"certificate-authority-data": _b64(tls.ca.cert)})))
    # as files, relative to the kubeconfig's own folder
    files = from_kubeconfig(str(_kubeconfig(
        tmp_path / "files", server, {"client-certificate": "pki/jane.crt", "client-key": "pki/jane.key"},
        {"certificate-authority": "pki/ca.crt"})))
    for client in (inline, files):
        assert client.request("GET", "/api/v1/namespaces/team/pods").status == 200  # bound to group developers
        assert _user_in(client.request("GET", "/api/v1/namespaces/team/services")) == "jane"

    with pytest.raises(ConfigError, match="without the other"):
        from_kubeconfig(str(_kubeconfig(tmp_path / "half", server, {"client-certificate": "pki/jane.crt"})))


def test_a_kubeconfig_token_file_is_read_again_when_it_changes(tls: Tls, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(tls.cluster.token_for("team", "reader"))
    client = from_kubeconfig(str(_kubeconfig(tmp_path / "config", f"https://127.0.0.1:{tls.port}",
                                             {"tokenFile": "token"},
                                             {"certificate-authority-data": _b64(tls.ca.cert)})))
    assert client.request("GET", "/api/v1/namespaces/team/pods").status == 200
    replacement = tmp_path / "token.new"
    replacement.write_text(tls.cluster.token_for("team", "auditor"))
    os.replace(replacement, tmp_path / "token")
    assert _user_in(client.request("GET", "/api/v1/namespaces/team/pods")) == "system:serviceaccount:team:auditor"


def test_kubeconfig_files_merge_as_kubectl_merges_them(tls: Tls, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{tls.port}"
    ca = {"certificate-authority-data": _b64(tls.ca.cert)}
    first = _kubeconfig(tmp_path / "first", server, {"token": tls.cluster.token_for("team", "reader")}, ca,
                        context="shared")
    second = yaml.safe_load(_kubeconfig(tmp_path / "second", server,
                                        {"token": tls.cluster.token_for("team", "auditor")}, ca,
                                        context="shared").read_text())
    second["contexts"].append({"name": "extra", "context": {"cluster": "c", "user": "u"}})
    second["current-context"] = "extra"
    (tmp_path / "second").write_text(yaml.safe_dump(second))
    listed = os.pathsep.join(str(p) for p in (tmp_path / "missing", first, tmp_path / "second"))

    assert kubeconfig_contexts(listed) == {"shared", "extra"}
    # the first file to set the current context and the user "u" wins; a missing file is skipped
    assert from_kubeconfig(listed).request("GET", "/api/v1/namespaces/team/pods").status == 200
    assert from_kubeconfig(listed, "extra").request("GET", "/api/v1/namespaces/team/pods").status == 200
    with pytest.raises(ConfigError, match="no context 'absent'"):
        from_kubeconfig(listed, "absent")
    with pytest.raises(ConfigError, match="no kubeconfig"):
        from_kubeconfig(str(tmp_path / "missing"))


def test_exec_credentials_are_refused_with_a_message_that_says_so(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", "https://127.0.0.1:6443",
                       {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}})
    with pytest.raises(ConfigError, match="uses exec credentials"):
        from_kubeconfig(str(path))


# -- the kube module over TLS --------------------------------------------------------------------------

@pytest.fixture
def kube_over_tls(tls: Tls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tls]:
    (tmp_path / "ca.crt").write_bytes(tls.ca.cert)
    config = _kubeconfig(tmp_path / "config", f"https://127.0.0.1:{tls.port}", {},
                         {"certificate-authority": "ca.crt"})  # no credential: the harness administrator
    monkeypatch.setenv("KUBECONFIG", str(config))
    kube.reset_client()
    try:
        yield tls
    finally:
        kube.reset_client()


def test_the_kube_module_pages_applies_watches_and_reports_errors_over_tls(kube_over_tls: Tls) -> None:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for i in range(5):
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": namespace},
                     "spec": {"ports": [{"port": 80}]}})
    assert sorted(o["metadata"]["name"] for o in kube.list_objects("Service", namespace, page_size=2)) == [
        f"s{i}" for i in range(5)]
    paged = [r for r in kube_over_tls.cluster.requests if r.path.endswith(f"/namespaces/{namespace}/services")
             and r.method == "GET"]
    assert len(paged) == 3  # 2 + 2 + 1, following the continue tokens

    with pytest.raises(kube.KubeError) as taken:
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s0", "namespace": namespace},
                     "spec": {"ports": [{"port": 80}]}})
    assert taken.value.conflict and taken.value.reason == "AlreadyExists"
    assert kube.get("Service", "absent", namespace) is None

    listed = kube.request("GET", f"/api/v1/namespaces/{namespace}/services")
    applied = kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
                          "spec": {"ports": [{"port": 8080}]}})
    assert [m["manager"] for m in applied["metadata"]["managedFields"]] == [kube.FIELD_MANAGER]
    assert applied["spec"]["ports"][0]["port"] == 8080

    events = kube.watch(f"/api/v1/namespaces/{namespace}/services", listed["metadata"]["resourceVersion"],
                        timeout_seconds=30, read_timeout=30)
    try:
        seen = next(events)
    finally:
        events.close()
    assert (seen["type"], seen["object"]["metadata"]["name"]) == ("ADDED", "web")


def test_the_product_never_imports_the_official_kubernetes_package(kube_over_tls: Tls) -> None:
    """The cold start this client exists for: calling the cluster imports neither `kubernetes` nor
    what it drags in (pydantic, dateutil, oauthlib)."""
    script = ("import sys; from streamspace import kube; kube.list_objects('Namespace');"
              " print(sorted(m for m in ('kubernetes', 'pydantic', 'dateutil', 'requests_oauthlib')"
              " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ}, check=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_json_kubeconfig_is_read_without_the_yaml_parser_or_urllib3(tls: Tls, tmp_path: Path) -> None:
    """A pod reads no YAML (in-cluster config) and the transport is the standard library's: a function's
    first call to the cluster loads neither PyYAML nor urllib3 (about 50 ms of CPU of its cold start)
    when its kubeconfig is JSON, which is YAML too and is what kubectl reads as well."""
    (tmp_path / "ca.crt").write_bytes(tls.ca.cert)
    (tmp_path / "token").write_text(tls.cluster.token_for("team", "reader"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{tls.port}",
                                               "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "pod", "context": {"cluster": "c", "user": "u"}}]}))
    script = ("import sys; from streamspace import kube; from streamspace.observability import function_var;"
              " function_var.set('resync'); print(len(kube.list_objects('Pod', 'team')));"
              " print(sorted(m for m in ('yaml', 'urllib3', 'kubernetes', 'requests') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KUBECONFIG": str(config)}, check=True)
    assert done.stdout.split("\n")[:2] == ["0", "[]"], done.stderr
    # the same file read as YAML, its ServiceAccount's RBAC applied (the reader may list pods, not services)
    client = from_kubeconfig(str(config))
    assert client.request("GET", "/api/v1/namespaces/team/pods").status == 200
    assert _user_in(client.request("GET", "/api/v1/namespaces/team/services")) == "system:serviceaccount:team:reader"


class _Connections:
    """A small HTTP/1.1 server that counts the connections it accepts; with `close_after_answer` it
    closes each connection after answering without saying so (what an API server's idle timeout
    does to a kept connection between two requests)."""

    def __init__(self, close_after_answer: bool) -> None:
        import http.server
        import threading

        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with counter.lock:
                    counter.accepted += 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = self.rfile.read(length) if length else b""
                body = json.dumps({"method": self.command, "received": received.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if close_after_answer:
                    self.close_connection = True

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.accepted = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_closed(client: object) -> None:
    """Until the server's close of the kept connection has reached our side (readable end of stream)."""
    import select
    import time

    idle = client._idle  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while idle and not select.select([idle[-1].sock], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server never closed the kept connection"


def test_connections_are_kept_and_reused_between_requests() -> None:
    from streamspace.kube.client import Client

    server = _Connections(close_after_answer=False)
    client = Client(server.url)
    try:
        for method in ("GET", "POST", "GET"):
            answer = client.request(method, "/x", body={"n": 1} if method == "POST" else None)
            assert answer.status == 200 and json.loads(answer.data)["method"] == method
        assert server.accepted == 1
    finally:
        client.close()
        server.stop()


def test_a_kept_connection_the_server_closed_is_not_reused() -> None:
    """Neither a GET nor a POST is sent on a connection the server has closed meanwhile: the request
    goes out on a new connection and is answered once."""
    from streamspace.kube.client import Client

    server = _Connections(close_after_answer=True)
    client = Client(server.url)
    try:
        assert client.request("GET", "/a").status == 200
        _wait_closed(client)
        posted = client.request("POST", "/b", body={"once": True})
        assert posted.status == 200 and json.loads(json.loads(posted.data)["received"]) == {"once": True}
        _wait_closed(client)
        assert client.request("GET", "/c").status == 200
        assert server.accepted == 3
    finally:
        client.close()
        server.stop()


def test_a_watch_blocked_in_a_read_ends_when_another_thread_shuts_it_down(kube_over_tls: Tls) -> None:
    """What WatchedList.stop relies on: the watch's thread, waiting for events that do not come, is
    woken by shutting its answer down from another thread (not after its 300 s read timeout)."""
    import threading
    import time

    namespace = f"t-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    path = f"/api/v1/namespaces/{namespace}/services"
    version = kube.request("GET", path)["metadata"]["resourceVersion"]
    opened: list[kube.client.Response] = []
    ended = threading.Event()

    def follow() -> None:
        try:
            for _ in kube.watch(path, version, timeout_seconds=300, read_timeout=300, opened=opened):
                pass
        except Exception:  # noqa: BLE001, S110 - a read cut short may raise; only the ending matters here
            pass
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    deadline = time.monotonic() + 30
    while not opened:
        assert time.monotonic() < deadline, "the watch never opened"
        ended.wait(0.02)
    opened[0].shutdown()
    assert ended.wait(30), "the watch still waits for events after its answer was shut down"
