"""Shared benchmark plumbing: an embedded database and a bare functions-framework baseline."""

from __future__ import annotations

import os
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HELLO_WORLD = '''
import functions_framework


@functions_framework.http
def handle(request):
    return "Hello, World!"
'''


def hello_world_source(directory: Path) -> Path:
    path = directory / "hello.py"
    path.write_text(HELLO_WORLD)
    return path


def benchmark_database() -> str:
    """A fresh, migrated database on an embedded server, made this process's database."""
    from streamspace.config import reset_environment
    from streamspace.db import close_pool
    from streamspace.db.embedded import ensure_database, start_embedded
    from streamspace.db.migrate import migrate

    data = Path(tempfile.mkdtemp(prefix="ssb-", dir="/tmp"))
    url = ensure_database(start_embedded(data, cleanup_mode="delete"), "bench")
    migrate(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
    os.environ["STREAMSPACE_DATA_DIR"] = str(data)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The benchmarks play the ingress: their X-Forwarded-For (one address per simulated client) is believed.
    os.environ.setdefault("TRUSTED_PROXIES", "127.0.0.1/32,::1/128")
    close_pool()
    reset_environment()
    return url


def process_tree(root: int) -> list[int]:
    """`root` and every process it started, and theirs (Linux /proc)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass  # ended meanwhile
    return found


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU used so far by `root` and its descendants (0 when `root` is 0)."""
    ticks = 0
    for pid in process_tree(root) if root else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass  # a process that ended meanwhile
    return ticks / os.sysconf("SC_CLK_TCK")


def postmaster_pid(data_dir: Path) -> int:
    """The embedded Postgres server's pid in `data_dir` (STREAMSPACE_DATA_DIR), 0 when none runs."""
    try:
        return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def database_cpu_seconds() -> float:
    """User + system CPU used so far by the benchmark database's server: its postmaster and every
    process it started (the backends serving the measured functions, autovacuum, the WAL writer)."""
    return tree_cpu_seconds(postmaster_pid(Path(os.environ["STREAMSPACE_DATA_DIR"])))


def bench_user_and_session(session: str = "bench-firefox-1") -> str:
    """A user `bench` owning one session index row (no cluster object); returns the user's id."""
    from streamspace.config import environment
    from streamspace.db import execute, fetch_one

    user = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES ('bench', 'b@example.com',"
                     " 'user', 'x') RETURNING id::text AS id")
    assert user is not None
    execute("INSERT INTO sessions (namespace, name, user_id, username, template)"
            " VALUES (%s, %s, %s, 'bench', 'firefox')", (environment().sessions_namespace, session, user["id"]))
    return str(user["id"])


def median_of(samples: list[float]) -> float:
    return statistics.median(samples)


def requests_per_second(call: Callable[[], object], seconds: float = 2.0, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        call()
        count += 1
    return count / (time.perf_counter() - started)


def timed_us(call: Callable[[], object], n: int, warmup: int = 0) -> list[float]:
    """Microseconds of each of `n` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def login_token(user_id: str, username: str, role: str = "user") -> str:
    """An access token of a new login family for `user_id` (every access token carries one)."""
    from streamspace.auth.families import start_family
    from streamspace.auth.tokens import issue_access_token
    from streamspace.db import transaction

    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)
    return issue_access_token(user_id=user_id, username=username, role=role, groups=[], family_id=family_id)[0]


def desktop_cookie(user_id: str, username: str, session: str) -> str:
    """The session host's cookie of `user_id` for `session` (a new login, a ticket redeemed), as a
    browser holds it after following connect's openUrl."""
    from streamspace.auth.families import start_family
    from streamspace.auth.principal import Principal
    from streamspace.config import environment
    from streamspace.db import transaction
    from streamspace.desktop.access import issue_ticket, redeem

    with transaction() as conn:
        family_id, _ = start_family(conn, user_id)
        ticket = issue_ticket(conn, Principal(user_id, username, "user", (), family_id),
                              environment().sessions_namespace, session)
    return redeem(ticket, session, "streamspace.local")[0]


def api_server_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """(the server context, the CA file) for serving the simulated API server over TLS on 127.0.0.1, as
    a real API server always is: a self-signed P-256 certificate that is its own CA (the ca.crt a pod
    finds beside its ServiceAccount token)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("kubernetes.default.svc"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca, key_file = folder / "ca.crt", folder / "apiserver.key"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca, key_file)
    return context, ca


def pod_kubeconfig(path: Path, server: str, ca: Path, token_file: Path | None) -> str:
    """A kubeconfig with what a pod's in-cluster configuration holds and nothing else: the API server's
    https URL, the cluster CA file and a ServiceAccount token file (None: the harness administrator,
    which sends no credential). Written as JSON (YAML too): a pod parses no YAML, and neither does a
    function reading this."""
    import json

    user = {"tokenFile": str(token_file)} if token_file is not None else {}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "cluster", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "pod", "user": user}],
        "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": "pod"}}]}))
    return str(path)
