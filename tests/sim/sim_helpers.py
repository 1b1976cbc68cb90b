"""Shared constants and object builders for the simulated API server tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

WIDGET_CRD = Path(__file__).parent / "widget-crd.yaml"
GROUP, VERSION, PLURAL = "test.stream.space", "v1", "widgets"


def widget(name: str, **spec: object) -> dict:
    body = {"owner": "bob", "size": 2}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": body}


def deployment(name: str, replicas: int = 1, image: str = "nginx:1.27", labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)},
                         "spec": {"containers": [{"name": "main", "image": image,
                                                  "ports": [{"name": "http", "containerPort": 8080}]}]}},
        },
    }


CEILING = 30  # generous: the suite shares two cores with other workers


def eventually(predicate: Callable[[], object], what: str, timeout: float = CEILING) -> object:
    """Poll until `predicate()` is truthy and return it; fail naming `what` after the ceiling."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.02)


class ProcessOutput:
    """Every line a child process writes to one pipe, read on a thread as it arrives, so a test waits
    for the line that announces what it needs (a server listening) instead of polling."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._closed = False
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._arrived:
                self.lines.append(line)
                self._arrived.notify_all()
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()

    def wait_for_line(self, text: str, timeout: float = CEILING, since: int = 0) -> str:
        """The first line containing `text` from line `since` on (`len(self.lines)` before the action
        that should make it), once written; fail if the pipe closes or the ceiling passes first."""
        def found() -> str | None:
            return next((line for line in self.lines[since:] if text in line), None)

        with self._arrived:
            if not self._arrived.wait_for(lambda: self._closed or found() is not None, timeout):
                raise AssertionError(f"not within {timeout:.0f} s: a line with {text!r}:\n{self.text()}")
            line = found()
            if line is None:
                raise AssertionError(f"the process closed its output without {text!r}:\n{self.text()}")
            return line

    def text(self) -> str:
        return "".join(self.lines)

    def all_text(self, timeout: float = CEILING) -> str:
        """Everything the process wrote, once it closed the pipe (after it exited)."""
        self._reader.join(timeout)
        return self.text()
