"""`make run`: the whole system on one machine, in one command.

Embedded PostgreSQL (unless a database is configured), migrations, the bootstrap admin, the
kubeconfig's cluster when it answers or else the simulated API server, all HTTP functions behind
API_PORT with the production path routing, the CloudEvent functions, and the local relay that
stands in for ApiServerSource, PingSource, Broker and Triggers. Ctrl-C stops all of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamspace.signals import wait_for_stop

log = logging.getLogger("streamspace.runner")

ROOT = Path(__file__).resolve().parents[3]
SIM_STATE_FILE = "sim-cluster.jsonl"  # the simulated cluster's objects, in the data folder


@dataclass
class LocalStack:
    """Everything `make run` starts, as one object (also used by tests)."""

    api_port: int = 0
    cluster: str = "auto"  # auto | sim | kube
    kubelet_delay: float = 1.0
    sim_nodes: int = 2  # the simulated cluster's nodes (count, cpu and memory each)
    sim_node_cpu: str = "8"
    sim_node_memory: str = "32Gi"
    watch: bool = True
    schedule: bool = True
    announce: Any = print
    sim: Any = None
    relay: Any = None
    servers: list[Any] = field(default_factory=list)
    api_url: str = ""

    def start(self) -> LocalStack:
        from streamspace.auth.bootstrap import bootstrap_admin
        from streamspace.config import environment, reset_environment
        from streamspace.db import database_url
        from streamspace.db.migrate import migrate

        cfg = environment()
        url = database_url()
        os.environ["DATABASE_URL"] = url  # every in-process function shares the one database
        # ... and one connection pool: size it for all of them, not for one function's threads.
        os.environ.setdefault("DB_POOL_SIZE", "16")
        applied = migrate(url)
        where = f"embedded PostgreSQL in {cfg.data_dir}" if cfg.database_url is None else "configured"
        self.announce(f"database: {where} (migrations applied: {applied or 'none'})")
        self._start_cluster(cfg.data_dir)
        reset_environment()
        bootstrap_admin(announce=self.announce)
        self._start_functions()
        return self

    def _start_cluster(self, data_dir: Path) -> None:
        from streamspace import kube

        mode = self.cluster
        if mode in ("auto", "kube"):
            try:
                kube.reset_client()
                version = kube.request("GET", "/version", timeout=3)
                self.announce(f"cluster: kubeconfig cluster (Kubernetes {version.get('gitVersion', '?')})")
                return
            except kube.KubeError as exc:
                if mode == "kube":
                    message = f"streamspace: STREAMSPACE_CLUSTER=kube but no cluster answers: {exc.message}"
                    raise SystemExit(message) from None
        from streamspace.config import environment
        from streamspace.sim import SimCluster
        from streamspace.sim.scheduler import NodeSpec

        state = data_dir / SIM_STATE_FILE
        nodes = [NodeSpec(f"sim-node-{i}", cpu=self.sim_node_cpu, memory=self.sim_node_memory)
                 for i in range(1, self.sim_nodes + 1)]
        cfg = environment()
        self.sim = SimCluster(crd_paths=sorted((ROOT / "crds").glob("*.yaml")), kubelet_delay=self.kubelet_delay,
                              state_path=state, nodes=nodes, compaction_interval=300.0,
                              image_pull_seconds=cfg.sim_image_pull_seconds, start_seconds=cfg.sim_start_seconds)
        self.sim.start()
        from streamspace.local.identities import deployed_setting, serve_as_functions

        # Sessions live apart from the control plane, as deployed (knative/sessions), unless set.
        os.environ.setdefault("SESSIONS_NAMESPACE", deployed_setting("SESSIONS_NAMESPACE") or "streamspace-sessions")
        # Every function acts as its own ServiceAccount, authorized by knative/rbac as in a cluster.
        kubeconfig = serve_as_functions(self.sim, data_dir / "sim-kubeconfig",
                                        sessions_namespace=os.environ["SESSIONS_NAMESPACE"])
        os.environ["KUBECONFIG"] = str(kubeconfig)
        kube.reset_client()
        self.announce(f"cluster: SIMULATED Kubernetes API server (test/demo harness, not a cluster) at {self.sim.url};"
                      f" kubectl --kubeconfig {kubeconfig} get ss -n {os.environ['SESSIONS_NAMESPACE']}")
        self.announce(f"simulated kubelet: image pull {cfg.sim_image_pull_seconds:g}s on a node that lacks the image"
                      f" (SIM_IMAGE_PULL_SECONDS), container start {cfg.sim_start_seconds:g}s (SIM_START_SECONDS)")
        self.announce(f"cluster state: {state} ({self.sim.restored} objects restored; delete the file to start empty)")

    def _start_functions(self) -> None:
        from streamspace.config import environment, reset_environment
        from streamspace.functions import discover
        from streamspace.local.gateway import Gateway, load_function_app
        from streamspace.local.relay import Relay
        from streamspace.local.server import BackgroundServer, GunicornServer

        event_urls: dict[str, str] = {}
        relay = Relay(event_urls, environment().sessions_namespace, environment().namespace)
        self.relay = relay
        broker = BackgroundServer(relay.wsgi_app).start()
        self.servers.append(broker)
        os.environ["K_SINK"] = broker.url  # what a SinkBinding injects in the cluster
        reset_environment()
        for info in discover():
            if info.kind == "cloudevent":
                server = BackgroundServer(load_function_app(info.name)).start()
                self.servers.append(server)
                event_urls[info.name] = server.url
        desktops = self.sim.desktops if self.sim is not None else None
        gateway = Gateway.for_http_functions(desktops)
        api: BackgroundServer | GunicornServer
        hosts_port = 0
        if environment().api_server == "gunicorn":
            # The production server, as in the images (compose). The simulated desktops live in this
            # process, so their session hosts get their own port here (API_PORT + 1).
            api = GunicornServer(host=environment().api_host, port=self.api_port).start()
            if desktops is not None:
                hosts = BackgroundServer(gateway, host=environment().api_host,
                                         port=self.api_port + 1 if self.api_port else 0).start()
                self.servers.append(hosts)
                hosts_port = hosts.port
        else:
            api = BackgroundServer(gateway, host=environment().api_host, port=self.api_port).start()
            hosts_port = api.port
        self.servers.append(api)
        self.api_url = api.url
        relay.start(watch=self.watch, schedule=self.schedule)
        if self.watch and not relay.wait_watching(30):
            self.announce("events: the cluster watches are not established yet; changes made now may wait for a resync")
        self.announce(f"API: {api.url} ({environment().api_server}; functions: {', '.join(sorted(gateway.apps))})")
        if desktops is not None:
            self._serve_session_hosts(hosts_port)
        self.announce(f"events: local relay (broker {broker.url}) delivering to {', '.join(sorted(event_urls))}")

    def _serve_session_hosts(self, port: int) -> None:
        """With the simulated cluster, desktops are reached on this machine: session hosts are
        `<session>.localhost:<port>` (browsers resolve *.localhost to the loopback address), served
        by the gateway's simulated ingress through the same forward-auth check as on a cluster."""
        from streamspace.settings.service import INGRESS_DOMAIN, INGRESS_PORT, update_platform_settings

        update_platform_settings({INGRESS_DOMAIN: "localhost", INGRESS_PORT: port}, None)
        self.announce(f"desktops: http://<session>.localhost:{port}/ (SIMULATED stand-in pages behind the"
                      " forward-auth check; open them with the openUrl of GET /api/v1/sessions/{id}/connect)")

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        for server in reversed(self.servers):
            server.stop()
        if self.sim is not None:
            self.sim.stop()
        from streamspace.db import close_pool

        close_pool()


def main(argv: list[str] | None = None) -> int:
    from streamspace.config import environment
    from streamspace.observability import configure_logging

    parser = argparse.ArgumentParser(prog="python -m streamspace run", description=__doc__)
    parser.add_argument("--port", type=int, default=None, help="API port (default API_PORT, 8000)")
    parser.add_argument("--kubelet-delay", type=float, default=1.0,
                        help="seconds the simulated kubelet takes to make a pod Ready")
    parser.add_argument("--sim-nodes", type=int, default=2, help="nodes of the simulated cluster")
    parser.add_argument("--sim-node-cpu", default="8", help="cpu of each simulated node")
    parser.add_argument("--sim-node-memory", default="32Gi", help="memory of each simulated node")
    options = parser.parse_args(argv)
    cfg = environment()
    configure_logging(cfg.log_level)
    stack = LocalStack(api_port=cfg.api_port if options.port is None else options.port, cluster=cfg.cluster_mode,
                       kubelet_delay=options.kubelet_delay, sim_nodes=options.sim_nodes,
                       sim_node_cpu=options.sim_node_cpu, sim_node_memory=options.sim_node_memory,
                       announce=lambda line: print(f"streamspace: {line}", flush=True))
    stopped = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        print(f"streamspace: ready. curl {stack.api_url}/health   (Ctrl-C stops everything)", flush=True)
        wait_for_stop(stopped)  # the SIGINT may be delivered to one of the servers' threads
    finally:
        print("streamspace: stopping", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
