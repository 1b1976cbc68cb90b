"""catalog-sync: the PingSource tick (due repositories) and sync-requested events -> the template catalog."""

import functions_framework

from streamspace.catalog.sync import handle_event
from streamspace.events import event_function


@functions_framework.cloud_event
@event_function("catalog-sync")
def handle(event):
    handle_event(event)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
