"""portal: the web UI (server-rendered pages, cookie login) on the library's services."""

import functions_framework

from streamspace.portal.app import build_portal

portal = build_portal()
api = portal.api  # its health, version and metrics routes (the route table and probes read these)


@functions_framework.http
def handle(request):
    return portal(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
