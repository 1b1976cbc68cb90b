"""dead-letter: the dead-letter broker's Trigger -> each dead CloudEvent recorded in Postgres."""

import functions_framework

from streamspace.dead_letters.service import record
from streamspace.events import event_function


@functions_framework.cloud_event
@event_function("dead-letter")
def handle(event):
    record(event)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
