"""Ports for servers started as other processes: never from the kernel's ephemeral range, whose
ports outgoing connections take at any moment (a `make run` lost its port that way in CI)."""

from __future__ import annotations

import socket
from pathlib import Path

from streamspace.local.server import unused_port


def test_an_unused_port_lies_below_the_ephemeral_range_and_can_be_bound() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {unused_port() for _ in range(20)}
    assert all(port < start for port in ports), (sorted(ports), start)
    assert len(ports) > 1  # drawn at random: parallel test workers do not collide on one sequence
    for port in ports:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()
