"""sessions: a user's streaming sessions: create, list, change, delete, connect, heartbeat."""

import functions_framework

from streamspace.http import Access, Api, Reply, Request
from streamspace.sessions import listing, live, service

api = Api("sessions")


# direct: the portal and every client poll the list; it skips Flask's dispatch (Api.route)
@api.get("/api/v1/sessions", access=Access.USER, query=("user", "state", "template", "limit", "offset"),
         standing_in_statement=True, direct=True,
         summary="List sessions: the caller's own (an admin: all, or one user's with ?user=)")
def list_sessions(req: Request) -> Reply:
    limit, offset = req.page()
    caller, answer = listing.list_claimed_sessions_json(req.claimant, user=req.query("user"),
                                                        state=req.query("state"), template=req.query("template"),
                                                        limit=limit, offset=offset)
    req.stand(caller)
    return Reply(answer)


@api.post("/api/v1/sessions", access=Access.USER, status=201,
          summary="Launch a session from a Template (quota-checked)")
def create_session(req: Request) -> Reply:
    body = req.json(allowed=service.CREATE_FIELDS, required=("template",))
    return Reply(service.create_session(req.caller, body, req.client_ip), status=201)


@api.get("/api/v1/sessions/{id}", access=Access.USER, summary="One session")
def get_session(req: Request) -> dict:
    return service.get_session(req.caller, req.param("id"))


@api.patch("/api/v1/sessions/{id}", access=Access.USER,
           summary="Change state (running, hibernated, terminated), idleTimeout, maxSessionDuration or tags")
def patch_session(req: Request) -> dict:
    body = req.json(allowed=service.PATCH_FIELDS)
    return service.patch_session(req.caller, req.param("id"), body, req.client_ip)


@api.delete("/api/v1/sessions/{id}", access=Access.USER, summary="Delete a session (releases its quota)")
def delete_session(req: Request) -> dict:
    return service.delete_session(req.caller, req.param("id"), req.client_ip)


@api.get("/api/v1/sessions/{id}/connect", access=Access.USER,
         summary="Open a connection (wakes a hibernated session)")
def connect(req: Request) -> dict:
    return service.connect(req.caller, req.param("id"), req.client_ip, req.raw.headers.get("User-Agent", ""))


@api.post("/api/v1/sessions/{id}/disconnect", access=Access.USER, query=("connectionId",),
          summary="Close a connection")
def disconnect(req: Request) -> dict:
    return service.disconnect(req.caller, req.param("id"), req.query("connectionId"))


# direct: every open desktop beats every 30 s; the handler reads no body and nothing of Flask
@api.post("/api/v1/sessions/{id}/heartbeat", access=Access.USER, query=("connectionId",), standing_in_statement=True,
          direct=True, summary="Keep a connection alive and record activity (the hot path: one SQL statement)")
def heartbeat(req: Request) -> dict:
    caller, answer = service.heartbeat(req.claimant, req.param("id"), req.query("connectionId"))
    req.stand(caller)
    return answer


@api.get("/api/v1/sessions/{id}/connections", access=Access.USER, summary="Live connections of a session")
def connections(req: Request) -> dict:
    return service.list_connections(req.caller, req.param("id"))


@api.get("/api/v1/events/sessions", access=Access.USER, token_in_query=True,
         summary="Live session updates as Server-Sent Events, pushed on every change (the caller's sessions; an "
                 "admin: all); the stream ends after LIVE_STREAM_SECONDS and EventSource reconnects")
def session_events(req: Request) -> Reply:
    return Reply(live.event_stream(req.caller), content_type="text/event-stream",
                 headers={"X-Accel-Buffering": "no"})


@api.get("/api/v1/ws/sessions", access=Access.USER, token_in_query=True, upgrades=True,
         summary="The same live session updates on a WebSocket (v0.2 clients; ?token= accepted)")
def session_socket(req: Request) -> Reply:
    return Reply(live.websocket_stream(req.caller, req.raw.environ))


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
