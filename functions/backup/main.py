"""backup: the object store's worker. A PingSource tick (daily by default) or a backup-requested event ->
one backup of the database and the cluster's Templates and Sessions to the object store, then retention;
a profiles-purge event (a user was deleted) -> that user's profile objects deleted from the store, which
each tick also retries (docs/s3.md)."""

import functions_framework

from streamspace.backups.service import handle_event
from streamspace.events import PING_TYPE, PROFILES_PURGE_TYPE, event_function
from streamspace.profiles.service import purge_deleted_users


@functions_framework.cloud_event
@event_function("backup")
def handle(event):
    if event["type"] == PROFILES_PURGE_TYPE:
        purge_deleted_users()
        return
    if event["type"] == PING_TYPE:
        purge_deleted_users()  # what a deletion's event did not manage
    handle_event(event)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
