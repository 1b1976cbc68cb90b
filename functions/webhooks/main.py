"""webhooks: signed repository push notifications -> catalog sync requests."""

import functions_framework

from streamspace.catalog.webhook import handle_push
from streamspace.http import Access, Api, Reply, Request

api = Api("webhooks")


@api.post("/webhooks/repository/sync", access=Access.SIGNED,
          summary="Repository push (HMAC-SHA256 signed with WEBHOOK_SECRET): request a catalog sync")
def repository_sync(req: Request) -> Reply:
    status, body = handle_push(req.body_bytes, req.raw.headers, req.raw.content_type or "")
    return Reply(body, status=status)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
