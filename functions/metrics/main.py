"""metrics: the JSON platform summary; also serves the API-wide health, version and OpenAPI paths."""

import functions_framework

from streamspace.http import Access, Api, Request
from streamspace.metrics_summary import platform_summary

api = Api("metrics")


@api.get("/api/v1/metrics", access=Access.USER, summary="Platform summary (a user's own sessions; all for operators)")
def summary(req: Request) -> dict:
    return platform_summary(req.caller)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
