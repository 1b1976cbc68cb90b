"""session-reconcile: Session events and events of the Deployments it owns -> objects and status."""

import functions_framework

from streamspace.events import event_function
from streamspace.reconcile.session import handle_session_event


@functions_framework.cloud_event
@event_function("session-reconcile")
def handle(event):
    handle_session_event(event)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
