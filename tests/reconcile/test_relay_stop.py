"""The local relay (make run's broker and sources) stops for good: stop() returns once every thread
it started has ended, so nothing of it keeps watching, retrying or delivering afterwards."""

from __future__ import annotations

import threading

from .reconcile_helpers import NS


def test_stop_ends_every_thread_of_the_relay_before_it_returns(sim):
    from streamspace.local.relay import Relay

    before = set(threading.enumerate())
    relay = Relay({}, NS).start(watch=True, schedule=True)
    assert relay.wait_watching(60), "the watches did not make their first list"
    started = [thread for thread in threading.enumerate() if thread not in before and thread.name.startswith("relay-")]
    assert {thread.name for thread in started} >= {"relay-deliver-0", "relay-ping", "relay-watch-Session"}
    relay.stop()
    # Each watch is blocked reading its stream (the server ends it after a minute): stop() must not
    # return before it has been shut down and its thread has ended.
    assert [thread.name for thread in started if thread.is_alive()] == []
