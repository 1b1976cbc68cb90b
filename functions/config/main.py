"""config: the platform configuration (admin): GET and PATCH /api/v1/config."""

import functions_framework

from streamspace.http import Access, Api, Request
from streamspace.settings.service import platform_settings, update_platform_settings

api = Api("config")


@api.get("/api/v1/config", access=Access.ADMIN, summary="The platform configuration")
def read_config(req: Request) -> dict:
    return {"config": platform_settings()}


@api.patch("/api/v1/config", access=Access.ADMIN,
           summary="Change configuration keys (types validated per key; one audit row per change)")
def patch_config(req: Request) -> dict:
    return {"config": update_platform_settings(req.json(), req.caller, req.client_ip)}


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
