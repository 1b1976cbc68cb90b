"""Waiting in a process's main thread for a stop that a signal handler announces (`make run`, the
simulated API server's command line)."""

from __future__ import annotations

import threading

# How soon a stop signal is acted on at the latest, whichever thread the kernel delivered it to.
SIGNAL_CHECK_SECONDS = 0.5


def wait_for_stop(stopped: threading.Event) -> None:
    """Return once `stopped` is set, waking every SIGNAL_CHECK_SECONDS instead of blocking: CPython
    runs a signal's Python handler only in the main thread and only when that thread runs, so a
    signal whose delivery the kernel gave to another thread (a server's) leaves a main thread that
    blocks in a plain `Event.wait()` asleep with the handler never run (make run once never stopped
    on Ctrl-C)."""
    while not stopped.wait(SIGNAL_CHECK_SECONDS):
        pass
