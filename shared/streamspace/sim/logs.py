"""Container logs of the simulated pods, served at `GET .../pods/<name>/log`.

Every container's log starts with one fixed line naming the pod and container; the simulated kubelet
appends a line when it starts the container, and tests append their own with `SimCluster.write_log`.
A pod's logs go away with the pod. `tailLines` and `limitBytes` behave as on a real kubelet: the last
N lines, then at most that many bytes from their start.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import bad_request, invalid
from .store import Event, Store

POD_KEY = ("", "pods")


def fixed_line(namespace: str, pod: str, container: str) -> str:
    return f"simulated log of container {container} in pod {namespace}/{pod}\n"


class LogStore:
    def __init__(self, store: Store) -> None:
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, str, str], list[str]] = {}
        store.add_listener(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.key == POD_KEY and ev.type == "DELETED":
            meta = ev.obj.get("metadata") or {}
            ns, name = meta.get("namespace", ""), meta.get("name", "")
            with self._lock:
                for key in [k for k in self._logs if k[0] == ns and k[1] == name]:
                    del self._logs[key]

    def write(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Append `text` to a container's log (a newline is added when it lacks one)."""
        if text and not text.endswith("\n"):
            text += "\n"
        with self._lock:
            self._logs.setdefault((namespace, pod, container), []).append(text)

    def read(self, pod: dict[str, Any], query: dict[str, str]) -> bytes:
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []
                      if isinstance(c, dict)]
        container = query.get("container") or ""
        if not container:
            if len(containers) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(containers)}]")
            container = containers[0]
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == container and "waiting" in (status.get("state") or {}):
                reason = status["state"]["waiting"].get("reason") or "ContainerCreating"
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        if not (pod.get("status") or {}).get("startTime"):
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        tail = _int_option(query, "tailLines", minimum=0)
        limit = _int_option(query, "limitBytes", minimum=1)
        with self._lock:
            text = fixed_line(ns, name, container) + "".join(self._logs.get((ns, name, container), []))
        lines = text.splitlines(keepends=True)
        if tail is not None:
            lines = lines[len(lines) - tail:] if tail else []
        data = "".join(lines).encode()
        if limit is not None:
            data = data[:limit]
        return data


def _int_option(query: dict[str, str], name: str, minimum: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"couldn't parse {name}: strconv.ParseInt: parsing {raw!r}: invalid syntax") from None
    if value < minimum:
        bound = "greater than or equal to 0" if minimum == 0 else f"greater than {minimum - 1}"
        raise invalid("PodLogOptions", "", "", [f"{name}: Invalid value: {value}: must be {bound}"])
    return value
