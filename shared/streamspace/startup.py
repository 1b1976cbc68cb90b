"""A served function's start without the cyclic garbage collector: from its first import of the library
to its first answer.

What a function allocates before its first answer (the rest of its start, gunicorn's, the database
driver's modules and adapters, the pool and its first connection) lives as long as the process, so
the collector's passes over it find nothing to free. They are not free: psycopg 3's import alone
spent 7 % of its instructions in them (callgrind: 28M of 381M, about 10 ms of CPU on the benchmark
machine, 3 % of a hello world's whole cold start), on the path of every function that reads the
database before its first answer (the driver is psycopg2 since, far cheaper to import). CPython's
documentation of `gc.freeze` gives pre-fork servers the same advice: disable the collector early in
the parent.

Only in a process that functions-framework's command serves (the images' entry point, the
benchmark): the collector is paused when the function first imports the library (`streamspace`'s
own `__init__`, so its imports run without it: a full pass during them, over everything
functions-framework and the driver had made, cost a function up to 21M instructions, depending
only on where the allocation counts happened to cross the thresholds), again where its app is
built (`http.Api`, `events.event_function`), and resumed by its first answer. gunicorn's master, which answers nothing,
resumes it as soon as it has forked its worker; the worker keeps the pause until it has answered.
Anywhere else (tests, `make run`, the command line) `pause_collector` does nothing.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

SERVING_COMMAND = "functions-framework"  # the images' entry point serves each function with it

_paused = False
_resumes_after_fork = False


def pause_collector() -> None:
    """Pause the cyclic collector until `resume_collector` (in a process functions-framework serves;
    left alone where someone else turned the collector off)."""
    global _paused, _resumes_after_fork
    if _paused or Path(sys.argv[0]).name != SERVING_COMMAND or not gc.isenabled():
        return
    gc.disable()
    _paused = True
    if not _resumes_after_fork:
        os.register_at_fork(after_in_parent=resume_collector)
        _resumes_after_fork = True


def resume_collector() -> None:
    """The first answer is out (or this is the parent of a fork): collect again, if we paused it."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
