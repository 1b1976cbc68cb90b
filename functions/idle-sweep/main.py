"""idle-sweep: PingSource every minute -> hibernate idle sessions, terminate those past their maximum duration."""

import functions_framework

from streamspace.events import event_function
from streamspace.reconcile.ping import require_ping
from streamspace.reconcile.sweep import run_idle_sweep


@functions_framework.cloud_event
@event_function("idle-sweep")
def handle(event):
    require_ping(event, "idle-sweep")
    run_idle_sweep()


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
