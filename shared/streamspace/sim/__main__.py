"""`python -m streamspace.sim`: run the SIMULATED Kubernetes API server until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from streamspace.signals import wait_for_stop

from .cluster import SimCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamspace.sim",
                                     description="SIMULATED Kubernetes API server (test/demo harness, not a cluster)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--crds", action="append", default=[], help="CRD file or directory (repeatable)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig pointing at the simulation here")
    parser.add_argument("--namespace", default="streamspace", help="namespace of the kubeconfig context")
    parser.add_argument("--kubelet-delay", type=float, default=1.0, help="seconds until a pod becomes Ready")
    parser.add_argument("--nodes", type=int, default=2, help="how many simulated nodes (8 cpu, 32Gi each)")
    parser.add_argument("--image-pull-seconds", type=float, default=0.0,
                        help="seconds a node takes to pull an image it does not have yet")
    parser.add_argument("--start-seconds", type=float, default=0.0, help="seconds to start a container")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # Stop on SIGTERM from before the server is announced: a supervisor may terminate it as soon as
    # it reads the kubeconfig line, and the default action would kill it without stopping the server.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sim = SimCluster(crd_paths=args.crds, kubelet_delay=args.kubelet_delay, nodes=args.nodes,
                     image_pull_seconds=args.image_pull_seconds, start_seconds=args.start_seconds)
    sim.start(args.host, args.port)
    if args.kubeconfig:
        print(f"kubeconfig written to {sim.write_kubeconfig(args.kubeconfig, args.namespace)}", file=sys.stderr)
    try:
        wait_for_stop(done)  # the SIGTERM may be delivered to one of the server's threads
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
