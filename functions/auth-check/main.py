"""auth-check: the ingress forward-auth hook of session desktops (owner or admin only)."""

import functions_framework

from streamspace.http import Access, Api, Reply, Request
from streamspace.reconcile.authcheck import COOKIE_NAME, USER_HEADER, check

api = Api("auth-check")


@api.get("/api/v1/auth/session-check", access=Access.PUBLIC,
         summary="Forward-auth check of a session host: 200 for its owner or an admin, else 401/403 "
                 "(authenticates the Bearer token or the streamspace_session cookie itself)")
def session_check(req: Request) -> Reply:
    admitted = check(req.raw.headers, req.raw.headers.get("Authorization"), req.raw.cookies.get(COOKIE_NAME))
    return Reply({"ok": True, "user": admitted.username, "session": admitted.session},
                 headers={USER_HEADER: admitted.username})


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
