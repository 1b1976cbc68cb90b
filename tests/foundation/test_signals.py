"""A main thread waiting for a stop signal acts on it whichever thread the kernel delivered it to
(`make run` and the simulated API server's command line wait with streamspace.signals)."""

from __future__ import annotations

import inspect
import signal
import sys
import threading

from streamspace.signals import wait_for_stop

CEILING_SECONDS = 30.0


def _blocking_lines() -> set[int]:
    """The lines of threading.Condition.wait where a waiter blocks on its lock (after the first,
    non-blocking acquire of the new lock)."""
    lines, first = inspect.getsourcelines(threading.Condition.wait)
    after_try = next(i for i, line in enumerate(lines) if line.strip().startswith("try:"))
    return {first + i for i, line in enumerate(lines) if i > after_try and "waiter.acquire(" in line}


BLOCKING_LINES = _blocking_lines()


def _main_thread_blocks_waiting_for_the_stop() -> bool:
    """Whether the main thread blocks on a lock inside wait_for_stop (not in another wait, such as
    Thread.start's for the thread it starts)."""
    frame = sys._current_frames().get(threading.main_thread().ident)  # type: ignore[arg-type]
    if frame is None or frame.f_code is not threading.Condition.wait.__code__ or frame.f_lineno not in BLOCKING_LINES:
        return False
    while frame is not None and frame.f_code is not wait_for_stop.__code__:
        frame = frame.f_back
    return frame is not None


def test_a_stop_signal_delivered_to_another_thread_ends_the_wait() -> None:
    """The signal goes to a thread other than the main one (as to a server's thread in make run), once
    the main thread waits: its Python handler runs only when the main thread runs, so a main thread
    blocked in a plain Event.wait() would sleep through it until the watchdog ends the wait."""
    assert threading.current_thread() is threading.main_thread()  # where Python runs signal handlers
    stopped, watchdog_ended_it = threading.Event(), threading.Event()

    def watchdog() -> None:
        if not stopped.wait(CEILING_SECONDS):
            watchdog_ended_it.set()
            stopped.set()

    def signal_this_thread_once_the_main_thread_waits() -> None:
        while not _main_thread_blocks_waiting_for_the_stop():
            if stopped.wait(0.01):
                return
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, lambda *_: stopped.set())
    try:
        threading.Thread(target=watchdog, daemon=True).start()
        sender = threading.Thread(target=signal_this_thread_once_the_main_thread_waits)
        sender.start()
        wait_for_stop(stopped)
        sender.join(CEILING_SECONDS)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not watchdog_ended_it.is_set(), "the handler never ran: the main thread slept through the signal"
