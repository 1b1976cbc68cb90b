"""auth-check: the ingress forward-auth hook of session desktops (owner or admin only), and the
redeem of desktop tickets on a session's own host."""

import functions_framework

from streamspace.http import Access, Api, Reply, Request
from streamspace.reconcile.authcheck import USER_HEADER, check, redeem_headers

api = Api("auth-check")


# upgrades: a controller may pass a WebSocket upgrade's own headers along with its check;
# direct: the ingress asks before every desktop request, so it skips Flask's dispatch (Api.route)
@api.get("/api/v1/auth/session-check", access=Access.PUBLIC, upgrades=True, direct=True,
         summary="Forward-auth check of a session host (WebSocket upgrades included): 200 for its owner or an "
                 "admin holding that session's cookie, else 401/403 (checks the session host's cookie itself)")
def session_check(req: Request) -> Reply:
    admitted = check(req.raw.headers, req.raw.cookies)
    if admitted is None:
        return Reply({"ok": True, "redeem": True})
    return Reply({"ok": True, "user": admitted.username, "session": admitted.session},
                 headers={USER_HEADER: admitted.username})


@api.get("/.streamspace/auth", access=Access.SIGNED, query=("ticket",), status=303,
         summary="Redeem a desktop ticket on the session's own host (from connect's openUrl): sets the session "
                 "host's cookie and redirects to /; 401 for a used, expired or foreign ticket")
def redeem(req: Request) -> Reply:
    return Reply(None, status=303, headers=redeem_headers(req.raw.host, req.query("ticket"), req.client_ip))


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
