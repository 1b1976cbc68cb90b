"""backup: a PingSource tick (daily by default) or a backup-requested event -> one backup of the database
and the cluster's Templates and Sessions to the object store, then retention (docs/s3.md)."""

import functions_framework

from streamspace.backups.service import handle_event
from streamspace.events import event_function


@functions_framework.cloud_event
@event_function("backup")
def handle(event):
    handle_event(event)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
