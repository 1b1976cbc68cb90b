"""SIMULATED Kubernetes API server: a test and demo harness, not a cluster.

Speaks the Kubernetes REST protocol over HTTP so the official client and kubectl work unmodified.
"""

from .cluster import SimCluster
from .server import RequestRecord

__all__ = ["SimCluster", "RequestRecord"]
