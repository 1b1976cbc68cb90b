"""template-reconcile: Template events -> validation, status, and the Sessions that use it."""

import functions_framework

from streamspace.events import event_function
from streamspace.reconcile.template import handle_template_event


@functions_framework.cloud_event
@event_function("template-reconcile")
def handle(event):
    handle_template_event(event)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
