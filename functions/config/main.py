"""config: the platform configuration (admin): GET and PATCH /api/v1/config."""

import functions_framework

from streamspace.http import Access, Api, Request
from streamspace.settings_store import get_config, update_config

api = Api("config")


@api.get("/api/v1/config", access=Access.ADMIN, summary="The platform configuration")
def read_config(req: Request) -> dict:
    return {"config": get_config()}


@api.patch("/api/v1/config", access=Access.ADMIN,
           summary="Change configuration keys (types validated per key; one audit row per change)")
def patch_config(req: Request) -> dict:
    return {"config": update_config(req.json(), req.caller, req.client_ip)}


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
