"""The functions as production serves them, as ratios to a bare functions-framework hello world.

Every app (ours and the hello worlds) runs in its own `functions-framework` process with the
images' WORKERS/THREADS (bench.served); wrk drives it with CONNECTIONS keep-alive connections.

- Throughput: each of our routes is measured next to the HTTP hello world, in ROUNDS rounds whose
  order alternates (hello first, then ours first), and the ratio is taken within each pair; the
  table gives the median ratio and its spread (min-max).
- Cold start, per function: process start to the first 2xx on its main authenticated route (HTTP)
  or to its first CloudEvent handled with 2xx, against the hello world of the same kind, pairs
  alternating, median ratio.
- Memory: PSS of each warmed process tree (after its first request), against hello world's.
- Hot paths: SQL statements and Kubernetes requests per request, counted in-process on the same
  routes (streamspace.db.statement_count, the simulated API server's request log).

Kubernetes is the project's simulated API server, in this process, served over TLS as a real one
is; each function calls it as its pod would (its own ServiceAccount's token, the chart's RBAC, the
cluster CA: the in-cluster configuration's parts, in a JSON kubeconfig). Only the templates list asks
it anything on a measured throughput route. Access tokens are minted for each cold-start round, so a
long run on a loaded machine never sends an expired one. Nothing here asserts time: it reports.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cold_profile import profile as cold_profile
from bench.production_venv import ProductionVenv, all_functions, describe, production_venvs, shared_venv
from bench.served import (
    CONNECTIONS,
    HELLO_PSYCOPG2,
    Served,
    first_success,
    hello_sources,
    image_serving_env,
    precompile,
    wrk,
)
from bench.support import (
    ROOT,
    api_server_tls,
    benchmark_database,
    database_cpu_seconds,
    desktop_cookie,
    login_token,
    pod_kubeconfig,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
COLD_ROUNDS = int(os.environ.get("BENCH_COLD_ROUNDS", "7"))
COLD_WARMUP = 1  # uncounted rounds of cold starts before the counted ones (the page cache)
# BENCH_ONLY=throughput or cold: one half of the table (iterating on one hot path); default both.
ONLY = os.environ.get("BENCH_ONLY", "")
if ONLY not in ("", "throughput", "cold"):
    raise SystemExit(f"BENCH_ONLY must be throughput or cold, not {ONLY!r}")
# BENCH_FUNCTIONS=sessions,resync: the cold starts of these functions only (iterating on one start).
FUNCTIONS = [f for f in os.environ.get("BENCH_FUNCTIONS", "").split(",") if f]
# BENCH_IMPORTTIME=folder: each function's first cold start also runs under `-X importtime`, its report
# written to folder/<function>.txt (that start is profiled, not counted: the report costs time itself).
IMPORTTIME = os.environ.get("BENCH_IMPORTTIME", "")
# BENCH_CPROFILE=folder: each function's start taken apart in process (bench.cold_profile): the CPU of
# functions-framework's import, the app's import and the first request, in the table's JSON, and a
# cProfile of the first request written to folder/<function>.txt.
CPROFILE = os.environ.get("BENCH_CPROFILE", "")
# BENCH_ROUTES=session-check,list: the throughput rows of these routes only (iterating on one hot path).
ROUTES = [r for r in os.environ.get("BENCH_ROUTES", "").split(",") if r]
SESSIONS = 50
TEMPLATES = 10
NS = "streamspace"

THROUGHPUT_TARGETS = {"list": 0.5, "heartbeat": 0.6, "session-check": 0.7, "templates": 0.5}
COLD_START_TARGET = 1.5
if set(ROUTES) - set(THROUGHPUT_TARGETS):
    raise SystemExit(f"BENCH_ROUTES names no route: {', '.join(sorted(set(ROUTES) - set(THROUGHPUT_TARGETS)))}")
REFERENCE = "hello-psycopg2"


def _template(name: str) -> dict[str, Any]:
    return {"apiVersion": "stream.space/v1alpha1", "kind": "Template",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"displayName": name.title(), "baseImage": f"lscr.io/linuxserver/{name}:latest",
                     "category": "Browsers", "tags": ["bench"],
                     "defaultResources": {"cpu": "100m", "memory": "128Mi"},
                     "vnc": {"enabled": True, "port": 3000}}}


def _user(username: str, role: str) -> tuple[str, str]:
    from streamspace.db import execute, fetch_one

    row = fetch_one("INSERT INTO users (username, email, role, password_hash) VALUES (%s, %s, %s, 'unused')"
                    " RETURNING id::text AS id", (username, f"{username}@example.com", role))
    assert row is not None
    execute("INSERT INTO user_quotas (user_id, max_sessions, max_cpu_millis, max_memory_bytes, max_storage_bytes)"
            " VALUES (%s, 1000, 1000000, 1099511627776, 1099511627776)", (row["id"],))
    return row["id"], login_token(row["id"], username, role)


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def _launch(sessions_url: str, user_token: str, count: int) -> list[str]:
    import requests

    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {user_token}"
    names = []
    for _ in range(count):
        response = client.post(sessions_url + "/api/v1/sessions", json={"template": "firefox"}, timeout=30)
        response.raise_for_status()
        names.append(response.json()["name"])
    return names


def _connect(sessions_url: str, user_token: str, name: str) -> str:
    import requests

    connection = requests.get(f"{sessions_url}/api/v1/sessions/{name}/connect",
                              headers={"Authorization": f"Bearer {user_token}"}, timeout=30)
    connection.raise_for_status()
    return str(connection.json()["connectionId"])


def _desktop_cookie(user_id: str, session: str) -> dict[str, str]:
    """The headers Traefik sends the check for a request to `session`'s host with its desktop cookie
    (a ticket redeemed: the only credential a desktop host accepts)."""
    grant = desktop_cookie(user_id, "bench", session)
    return {"Cookie": f"streamspace_desktop={grant}", "X-Forwarded-Host": f"{session}.streamspace.local"}


def _counts(cluster: Any, user_token: str, session: str, connection_id: str, desktop: dict[str, str]) -> dict[str, Any]:
    """SQL statements and Kubernetes requests of one request to each measured route (warm)."""
    from werkzeug.test import Client

    from streamspace.db import statement_count
    from streamspace.local.gateway import load_function_app

    user = {"Authorization": f"Bearer {user_token}"}
    cases = {
        "list": ("sessions", "GET", "/api/v1/sessions?limit=50", user),
        "heartbeat": ("sessions", "POST", f"/api/v1/sessions/{session}/heartbeat?connectionId={connection_id}", user),
        "session-check": ("auth-check", "GET", "/api/v1/auth/session-check", desktop),
        "templates": ("templates", "GET", "/api/v1/templates", user),
    }
    found = {}
    apps: dict[str, Client] = {}
    for name, (function, method, path, headers) in cases.items():
        if ROUTES and name not in ROUTES:
            continue
        client = apps.setdefault(function, Client(load_function_app(function), use_cookies=False))
        for _ in range(3):  # warm: first-use token verification, prepared statements
            assert client.open(path, method=method, headers=headers).status_code == 200
        cluster.clear_requests()
        before = statement_count()
        assert client.open(path, method=method, headers=headers).status_code == 200
        found[name] = {"sql": statement_count() - before, "kubernetes": len(cluster.requests)}
    return found


def _throughput(hello: Served, cases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, list[float]]] = {
        name: {"hello": [], "ours": [], "ratio": [], "p50": [], "hello_p50": [], "cpu_us": [], "hello_cpu_us": [],
               "database_us": []}
        for name in cases}
    for round_number in range(ROUNDS):
        for name, case in cases.items():
            def measured(served: Served, url: str, **kw: Any) -> tuple[Any, float, float]:
                """The wrk run, the server's CPU microseconds per request (less noisy than req/s) and
                the database server's (its processes' CPU during the run, per request)."""
                before, database = served.cpu_seconds(), database_cpu_seconds()
                load = wrk(url, seconds=SECONDS, **kw)
                requests = max(1, load.requests)
                return (load, (served.cpu_seconds() - before) * 1e6 / requests,
                        (database_cpu_seconds() - database) * 1e6 / requests)

            def ours() -> tuple[Any, float, float]:
                return measured(case["served"], case["url"], method=case.get("method", "GET"),
                                headers=case.get("headers"))

            def base() -> tuple[Any, float, float]:
                return measured(hello, hello.url + "/")

            if round_number % 2 == 0:
                (b, b_cpu, _), (o, o_cpu, o_db) = base(), ours()
            else:
                (o, o_cpu, o_db), (b, b_cpu, _) = ours(), base()
            s = samples[name]
            s["hello"].append(b.rps)
            s["ours"].append(o.rps)
            s["ratio"].append(o.rps / b.rps)
            s["p50"].append(o.p50_us)
            s["hello_p50"].append(b.p50_us)
            s["cpu_us"].append(o_cpu)
            s["hello_cpu_us"].append(b_cpu)
            s["database_us"].append(o_db)
    return {name: {key: (statistics.median(v) if key != "ratio" else v) for key, v in s.items()}
            for name, s in samples.items()}


@dataclass(frozen=True)
class Credentials:
    """The bench's users, from which each cold-start round mints what it sends (an access token
    expires: on a loaded machine the cold starts of every function outlast one)."""

    user_id: str
    admin_id: str
    session: str

    def headers(self) -> dict[str, dict[str, str]]:
        user_token = login_token(self.user_id, "bench", "user")
        admin_token = login_token(self.admin_id, "benchadmin", "admin")
        return {"user": {"Authorization": f"Bearer {user_token}"},
                "admin": {"Authorization": f"Bearer {admin_token}"},
                "portal": {"Cookie": f"streamspace_portal={user_token}"},
                "desktop": _desktop_cookie(self.user_id, self.session)}


@dataclass
class _ColdPlan:
    """One function's cold-start row as the rounds fill it."""

    function: str
    env: dict[str, str]
    venv: ProductionVenv
    source: Path = Path()
    hello: Path = Path()
    route_name: str = ""
    steps: dict[str, Any] = field(default_factory=dict)
    pairs: list[tuple[float, float]] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"hello": [], "ours": []})
    memory: dict[str, Any] = field(default_factory=dict)


def _cold_starts(env: dict[str, str], identities: dict[str, str], hello_http: Path, hello_event: Path,
                 credentials: Credentials, cluster: Any, venvs: dict[str, ProductionVenv]) -> dict[str, dict[str, Any]]:
    from streamspace import kube

    session_obj = kube.get("Session", credentials.session, NS)
    template_obj = kube.get("Template", "firefox", NS)
    assert session_obj is not None and template_obj is not None
    # A reference, not a function: hello world importing psycopg2 (the driver) on its first request,
    # the floor of every function that reads the database before its first answer.
    reference = hello_http.parent / "hello_psycopg2.py"
    reference.write_text(HELLO_PSYCOPG2)
    precompile(reference.parent)
    functions = list(_routes(env, credentials.headers(), session_obj, template_obj, reference))
    missing = sorted({p.parent.name for p in (ROOT / "functions").glob("*/main.py")} - set(functions))
    if missing:
        raise RuntimeError(f"no cold-start route declared for: {', '.join(missing)}")
    unknown = sorted(set(FUNCTIONS) - set(functions))
    if unknown:
        raise SystemExit(f"BENCH_FUNCTIONS names no function: {', '.join(unknown)}")
    chosen = [f for f in functions if not FUNCTIONS or f in FUNCTIONS]
    plans: dict[str, _ColdPlan] = {}
    for function in chosen:
        # each function runs as its own ServiceAccount, as its pod does (the reference as none);
        # from its image's venv, which serves its hello world too (the reference: the shared one)
        plan = _ColdPlan(function, {**env, "KUBECONFIG": identities.get(function, env["KUBECONFIG"])},
                         venvs.get(function) or shared_venv(venvs))
        plans[function] = plan
        route = _routes(env, credentials.headers(), session_obj, template_obj, reference)[function]
        plan.source = route.get("source") or ROOT / "functions" / function / "main.py"
        plan.hello = hello_event if route.get("kind") == "event" else hello_http
        plan.route_name = ("CloudEvent" if route.get("kind") == "event"
                           else f"{route.get('method', 'GET')} {route['path']}")
        if IMPORTTIME:
            Path(IMPORTTIME).mkdir(parents=True, exist_ok=True)
            profiled = Served(plan.source, {**plan.env, "PYTHONPROFILEIMPORTTIME": "1"},
                              stderr_to=Path(IMPORTTIME) / f"{function}.txt", venv=plan.venv)
            try:
                first_success(profiled, route["path"], method=route.get("method", "GET"),
                              headers=route.get("headers"), body=route.get("body"))
            finally:
                profiled.stop()
        if CPROFILE:
            Path(CPROFILE).mkdir(parents=True, exist_ok=True)
            plan.steps = cold_profile(plan.source, route, plan.venv.serving_env(plan.env),
                                      Path(CPROFILE) / f"{function}.txt", cluster, python=plan.venv.python)

    def measure(plan: _ColdPlan, src: Path, route: dict[str, Any], served_env: dict[str, str],
                label: str | None, last: bool) -> float:
        """One cold start's seconds to its first 2xx; `label` None for an uncounted warm-up start."""
        served = Served(src, served_env, venv=plan.venv)
        try:
            seconds = first_success(served, route["path"], method=route.get("method", "GET"),
                                    headers=route.get("headers"), body=route.get("body"))
            if label is not None:
                # CPU the process tree spent to get there: on a loaded machine the wall clock also
                # counts the time it waited for a core, this does not
                plan.cpu[label].append(served.cpu_seconds())
                if last:
                    plan.memory[label] = served.memory_kib()
            return seconds
        finally:
            served.kill()

    # Rounds interleave the functions (each round starts every function once, the order reversed in
    # every other round), so a burst of another process's load lands on one pair of many functions
    # rather than on every pair of one. Round -1 is a warm-up, not counted: each side's first start
    # reads its files from disk into the page cache, and later starts do not.
    for round_number in range(-COLD_WARMUP, COLD_ROUNDS):
        for function in chosen if round_number % 2 == 0 else chosen[::-1]:
            plan = plans[function]
            route = _routes(env, credentials.headers(), session_obj, template_obj, reference)[function]
            hello_route = route if route.get("kind") == "event" else {"path": "/"}
            counted = round_number >= 0
            last = round_number == COLD_ROUNDS - 1
            if round_number % 2 == 0:  # within a pair, hello first in even rounds, ours first in odd ones
                b = measure(plan, plan.hello, hello_route, env, "hello" if counted else None, last)
                o = measure(plan, plan.source, route, plan.env, "ours" if counted else None, last)
            else:
                o = measure(plan, plan.source, route, plan.env, "ours" if counted else None, last)
                b = measure(plan, plan.hello, hello_route, env, "hello" if counted else None, last)
            if counted:
                plan.pairs.append((b, o))
    return {function: {
        "route": plan.route_name,
        "hello_ms": statistics.median(b for b, _ in plan.pairs) * 1000,
        "ours_ms": statistics.median(o for _, o in plan.pairs) * 1000,
        "ratio": [o / b for b, o in plan.pairs],
        "hello_cpu_ms": statistics.median(plan.cpu["hello"]) * 1000,
        "ours_cpu_ms": statistics.median(plan.cpu["ours"]) * 1000,
        "memory": plan.memory,
        "steps_cpu_ms": plan.steps,
    } for function, plan in plans.items()}


def _routes(env: dict[str, str], credentials: dict[str, dict[str, str]], session_obj: dict[str, Any],
            template_obj: dict[str, Any], reference: Path) -> dict[str, dict[str, Any]]:
    """Each function's first request (its main authenticated route, or its first CloudEvent), carrying
    `credentials` (Credentials.headers)."""
    from streamspace.events.apiserver import apiserver_event, ping_event
    from streamspace.events.dead_letter import dead_letter_event

    user, admin, desktop = credentials["user"], credentials["admin"], credentials["desktop"]

    def event(headers_body: tuple[dict[str, str], bytes]) -> dict[str, Any]:
        headers, body = headers_body
        return {"method": "POST", "path": "/", "headers": headers, "body": body, "kind": "event"}

    def webhook() -> dict[str, Any]:
        import hashlib
        import hmac

        body = json.dumps({"repository": {"clone_url": "https://git.example.com/none.git"},
                           "ref": "refs/heads/main"}).encode()
        signature = hmac.new(env["WEBHOOK_SECRET"].encode(), body, hashlib.sha256).hexdigest()
        return {"method": "POST", "path": "/webhooks/repository/sync", "body": body,
                "headers": {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}}

    return {
        "auth": {"path": "/api/v1/auth/me", "headers": user},
        "auth-check": {"path": "/api/v1/auth/session-check", "headers": desktop},
        "catalog": {"path": "/api/v1/catalog/templates", "headers": user},
        "cluster": {"path": "/api/v1/admin/nodes", "headers": admin},
        "config": {"path": "/api/v1/config", "headers": admin},
        "metrics": {"path": "/api/v1/metrics", "headers": user},
        "sessions": {"path": "/api/v1/sessions", "headers": user},
        "templates": {"path": "/api/v1/templates", "headers": user},
        "users": {"path": "/api/v1/users/me", "headers": user},
        # the portal's login cookie carries the same access token (its first page after login)
        "portal": {"path": "/sessions", "headers": credentials["portal"]},
        "webhooks": webhook(),
        "storage": {"path": "/api/v1/profiles", "headers": user},
        "catalog-sync": event(ping_event(NS, "catalog-sync", json.dumps({"task": "catalog-sync"}))),
        "idle-sweep": event(ping_event(NS, "idle-sweep", json.dumps({"task": "idle-sweep"}))),
        # its daily tick; with no object store configured here the run is skipped (a real backup
        # streams pg_dump to S3: its cost is the dump's, not the function's start)
        "backup": event(ping_event(NS, "backup", json.dumps({"task": "backup"}))),
        "resync": event(ping_event(NS, "resync", json.dumps({"task": "resync"}))),
        "session-reconcile": event(apiserver_event("update", session_obj, "sessions")),
        "template-reconcile": event(apiserver_event("update", template_obj, "templates")),
        # a reconcile event that failed its delivery, as the dispatcher hands it to the dead-letter sink
        "dead-letter": event(dead_letter_event(*apiserver_event("update", session_obj, "sessions"), code=500,
                                               dest="http://session-reconcile.streamspace.svc.cluster.local",
                                               response_body=b'{"error": "bench"}')),
        # A reference, not a function: hello world importing psycopg2 (the driver) on its first
        # request, the floor of every function that reads the database before its first answer.
        REFERENCE: {"path": "/", "source": reference},
    }


def _settle(resync_env: dict[str, str], venv: ProductionVenv) -> None:
    """Bring the cluster to the state a running installation is in before the cold starts: the resync
    function's tick, twice (the first reconciles the Templates and makes the session's objects, which
    no relay reports here; the second finds its desktop started and reports it). Each event function's
    first event is then an ordinary one (a tick that finds things in step, an update of a reconciled
    object) and the same in every round, not the first round's one-off repair of everything."""
    from streamspace.events.apiserver import ping_event

    headers, body = ping_event(NS, "resync", json.dumps({"task": "resync"}))
    for _ in range(2):
        with Served(ROOT / "functions" / "resync" / "main.py", resync_env, venv=venv) as served:
            first_success(served, "/", method="POST", headers=headers, body=body)


def _function_identities(cluster: Any, ca: Path, folder: Path) -> dict[str, str]:
    """{function: its kubeconfig}: each function calls the API server as its pod does, over TLS with the
    cluster CA and its own ServiceAccount's token (the chart's RBAC loaded into the simulated API
    server), or with no token where its pod mounts none. The kubeconfig holds exactly the in-cluster
    configuration's three parts, so a function's first call does what it does in a pod (read the token
    file, load the CA, a TLS handshake) plus reading one small JSON file."""
    from streamspace.local.identities import function_accounts, knative_documents

    docs = knative_documents(NS, sessions_namespace=NS)  # the bench's sessions live in its one namespace
    cluster.load_rbac(docs, NS)
    tokens = folder / "serviceaccount-tokens"
    tokens.mkdir()
    identities = {}
    for function, account in function_accounts(docs, NS).items():
        token = tokens / function
        if account is not None:
            token.write_text(cluster.token_for(*account))
        else:
            token = tokens / f"{function}.not-mounted"  # absent: a call to the cluster fails as in its pod
        identities[function] = pod_kubeconfig(folder / f"kubeconfig-{function}.json", cluster.url, ca, token)
    return identities


def run() -> dict[str, Any]:
    from streamspace import kube
    from streamspace.sim import SimCluster
    from streamspace.sim.scheduler import NodeSpec

    venvs = production_venvs(all_functions())  # first: building them must not age the tokens below
    before = _machine()
    tmp = Path(tempfile.mkdtemp(prefix="ssb-prod-"))
    url = benchmark_database()
    # One node with room for every session: the bench measures us, not the simulated capacity.
    cluster = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), kubelet_delay=0.0,
                         nodes=[NodeSpec("bench-node", cpu="10000", memory="100Ti", pods=100000)])
    tls, ca = api_server_tls(tmp / "pki")
    cluster.start(tls=tls)
    os.environ["KUBECONFIG"] = pod_kubeconfig(tmp / "kubeconfig.json", cluster.url, ca, None)  # the harness
    kube.reset_client()
    identities = _function_identities(cluster, ca, tmp)
    precompile(ROOT / "functions", ROOT / "shared")
    env = {**os.environ, "DATABASE_URL": url, "WEBHOOK_SECRET": "bench-webhook-secret-" + "y" * 20,
           "PYTHONDONTWRITEBYTECODE": "1", "LOG_LEVEL": "WARNING"}
    os.environ["WEBHOOK_SECRET"] = env["WEBHOOK_SECRET"]
    hello_http, hello_event = hello_sources(tmp)
    served: list[Served] = []
    try:
        for name in ("firefox", *(f"app{i}" for i in range(1, TEMPLATES))):
            kube.create(_template(name))
        user_id, user_token = _user("bench", "user")
        admin_id, _ = _user("benchadmin", "admin")

        def as_function(function: str) -> dict[str, str]:
            return {**env, "KUBECONFIG": identities[function]}

        def serve(function: str) -> Served:
            source = ROOT / "functions" / function / "main.py"
            return Served(source, as_function(function), venv=venvs[function]).start()

        sessions = serve("sessions")
        served.append(sessions)
        # Cold starts first, with one session (reconcile and resync work on what exists: keep it small).
        names = _launch(sessions.url, user_token, 1)
        if ONLY != "throughput":
            _settle(as_function("resync"), venvs["resync"])
        cold = {} if ONLY == "throughput" else _cold_starts(env, identities, hello_http, hello_event,
                                                            Credentials(user_id, admin_id, names[0]), cluster, venvs)
        if ONLY == "cold":
            return {"machine": before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "serving": image_serving_env(), "venvs": describe(venvs), "connections": CONNECTIONS, "rounds": 0,
                    "seconds_per_run": SECONDS, "cold_rounds": COLD_ROUNDS, "throughput": {},
                    "warm_memory_after_load": {}, "hot_path_counts": {}, "cold_start": cold}
        # A new login: on a loaded machine the cold starts can outlast an access token's lifetime.
        user_token = login_token(user_id, "bench", "user")
        desktop = _desktop_cookie(user_id, names[0])
        names += _launch(sessions.url, user_token, SESSIONS - 1)
        connection_id = _connect(sessions.url, user_token, names[0])
        hello = Served(hello_http, env, venv=shared_venv(venvs)).start("/")
        authcheck = serve("auth-check")
        templates = serve("templates")
        served += [hello, authcheck, templates]
        user = {"Authorization": f"Bearer {user_token}"}
        cases = {
            "list": {"served": sessions, "url": sessions.url + "/api/v1/sessions?limit=50", "headers": user},
            "heartbeat": {"served": sessions, "method": "POST", "headers": user,
                          "url": f"{sessions.url}/api/v1/sessions/{names[0]}/heartbeat?connectionId={connection_id}"},
            "session-check": {"served": authcheck, "url": authcheck.url + "/api/v1/auth/session-check",
                              "headers": desktop},
            "templates": {"served": templates, "url": templates.url + "/api/v1/templates", "headers": user},
        }
        throughput = _throughput(hello, {name: case for name, case in cases.items() if not ROUTES or name in ROUTES})
        warm_memory = {"hello": hello.memory_kib(), "sessions": sessions.memory_kib(),
                       "auth-check": authcheck.memory_kib(), "templates": templates.memory_kib()}
        for s in served:
            s.stop()
        counts = _counts(cluster, user_token, names[0], connection_id, desktop)
        return {"machine": before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "serving": image_serving_env(), "venvs": describe(venvs), "connections": CONNECTIONS, "rounds": ROUNDS,
                "seconds_per_run": SECONDS, "cold_rounds": COLD_ROUNDS,
                "throughput": throughput, "warm_memory_after_load": warm_memory,
                "hot_path_counts": counts, "cold_start": cold}
    finally:
        for s in served:
            s.stop()
        kube.reset_client()
        cluster.stop()


# -- the one table --------------------------------------------------------------------------------------
_LABELS = {
    "list": f"GET /api/v1/sessions ({SESSIONS} sessions, authenticated), req/s",
    "heartbeat": "POST /api/v1/sessions/{id}/heartbeat, req/s",
    "session-check": "GET /api/v1/auth/session-check (forward auth), req/s",
    "templates": f"GET /api/v1/templates ({TEMPLATES} templates), req/s",
}


def _ratio_cell(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def table(result: dict[str, Any]) -> str:
    """The figures as one Markdown table of ratios, with the targets each meets."""
    machine = result["machine"]
    serving = result["serving"]
    venvs = result["venvs"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, kernel "
        f"{machine['kernel']}; load average {machine['load_average']} before, {result['load_average_after']} after.",
        f"Serving: functions-framework (gunicorn gthread) WORKERS={serving['WORKERS']} THREADS={serving['THREADS']}"
        f" (the Dockerfile's), one process tree per app; load: wrk, {result['connections']} connections,"
        f" {result['rounds']} alternating rounds of {result['seconds_per_run']:g} s; cold start: median of"
        f" {result['cold_rounds']} alternating pairs. Ratio: median of the per-pair ratios (min-max).",
        f"Served from image-like venvs (bench/production_venv.py: the Dockerfile's requirements per function,"
        f" compiled): {', '.join(f'{n} {c}' for n, c in venvs['distributions'].items())} distributions;"
        f" Python {venvs['python']} here, the images' {venvs['image_python']}.",
        "",
        "| measure | hello world | ours | ratio (spread) | target | met |",
        "|---|---:|---:|---|---|---|",
    ]
    met_all = True
    counts = result["hot_path_counts"]
    for name, figures in result["throughput"].items():
        ratio = statistics.median(figures["ratio"])
        target = THROUGHPUT_TARGETS[name]
        met = ratio >= target
        met_all &= met
        c = counts[name]
        lines.append(f"| {_LABELS[name]} [{c['sql']} SQL, {c['kubernetes']} Kubernetes per request;"
                     f" p50 {figures['p50'] / 1000:.1f} ms; server CPU per request {figures['hello_cpu_us']:.0f}"
                     f" -> {figures['cpu_us']:.0f} us, Postgres's {figures['database_us']:.0f} us]"
                     f" | {figures['hello']:.0f} | {figures['ours']:.0f} |"
                     f" {_ratio_cell(figures['ratio'])} | >= {target} | {'yes' if met else 'NO'} |")
    for function, figures in result["cold_start"].items():
        ratio = statistics.median(figures["ratio"])
        if function == REFERENCE:
            lines.append(f"| cold start, reference: hello world importing psycopg2 (the driver) on its first"
                         f" request, ms [process CPU {figures['hello_cpu_ms']:.0f} -> {figures['ours_cpu_ms']:.0f}"
                         f" ms] | {figures['hello_ms']:.0f} | {figures['ours_ms']:.0f} |"
                         f" {_ratio_cell(figures['ratio'])} | floor | - |")
            continue
        met = ratio <= COLD_START_TARGET
        met_all &= met
        lines.append(f"| cold start {function}: process start to first 2xx on {figures['route']}, ms"
                     f" [process CPU {figures['hello_cpu_ms']:.0f} -> {figures['ours_cpu_ms']:.0f} ms] |"
                     f" {figures['hello_ms']:.0f} | {figures['ours_ms']:.0f} | {_ratio_cell(figures['ratio'])} |"
                     f" <= {COLD_START_TARGET} | {'yes' if met else 'NO'} |")
    for function, figures in result["cold_start"].items():
        memory = figures["memory"]
        if function == REFERENCE:
            continue
        if "ours" in memory and "hello" in memory:
            ours, hello = memory["ours"]["pss_kib"] / 1024, memory["hello"]["pss_kib"] / 1024
            rss = f"{memory['hello']['rss_kib'] / 1024:.1f} -> {memory['ours']['rss_kib'] / 1024:.1f}"
            lines.append(f"| memory {function}: PSS of the process tree after its first request, MiB"
                         f" [resident (RSS) {rss} MiB] | {hello:.1f} | {ours:.1f} | {ours / hello:.2f} | report | - |")
    warm = result["warm_memory_after_load"]
    for function in ("sessions", "auth-check", "templates") if warm else ():
        ours, hello = warm[function]["pss_kib"] / 1024, warm["hello"]["pss_kib"] / 1024
        lines.append(f"| memory {function} after the load runs, PSS MiB | {hello:.1f} | {ours:.1f} |"
                     f" {ours / hello:.2f} | report | - |")
    lines.append("")
    lines.append("All targets met." if met_all else "Not every target is met (rows marked NO).")
    return "\n".join(lines)
