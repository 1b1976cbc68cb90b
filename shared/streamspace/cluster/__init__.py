"""Cluster administration: nodes and read-only views of the workloads (`service`), over the
Kubernetes objects it reads and changes (`store`: the API server is this resource's store)."""
