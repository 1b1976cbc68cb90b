"""resync: PingSource every 5 minutes -> reconcile whatever the event stream missed."""

import functions_framework

from streamspace.events import event_function
from streamspace.reconcile.ping import require_ping
from streamspace.reconcile.resync import run_resync


@functions_framework.cloud_event
@event_function("resync")
def handle(event):
    require_ping(event, "resync")
    run_resync()


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
