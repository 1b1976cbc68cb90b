"""storage: what lives in the object store: the backups (admins list, request and delete them) and the
persistent profiles (users list theirs and pick the current one; the profile agents get presigned URLs)."""

import functions_framework

from streamspace.backups import service as backups
from streamspace.http import Access, Api, Reply, Request
from streamspace.observability import metrics
from streamspace.profiles import service as profiles
from streamspace.sessions import store as sessions

api = Api("storage")
# The backup alerts' gauges, read from the database at each scrape of this function's /metrics (the
# backup function answers CloudEvents only).
metrics.gauge_at_scrape("streamspace_backup_last_run_failed", "1 when the newest backup run failed", "bucket",
                        backups.last_run_failed)
metrics.gauge_at_scrape("streamspace_backup_last_success_timestamp_seconds",
                        "When the newest successful backup finished (0: never)", "bucket",
                        backups.last_success_timestamp)


@api.get("/api/v1/admin/backups", access=Access.ADMIN, query=("limit",),
         summary="Backup runs, newest first (time, size, SHA-256 of the database dump, status, error)")
def list_backups(req: Request) -> dict:
    return {"backups": backups.list_backups(req.query_int("limit", 100, 1, 1000))}


@api.post("/api/v1/admin/backups", access=Access.ADMIN, status=202,
          summary="Request a backup run now (409 while one runs)")
def request_backup(req: Request) -> Reply:
    return Reply(backups.request_backup(req.caller, req.client_ip), status=202)


@api.delete("/api/v1/admin/backups/{id}", access=Access.ADMIN,
            summary="Delete a finished backup: its objects in the store, then its row")
def delete_backup(req: Request) -> dict:
    backups.delete_backup(req.param("id"), req.caller, req.client_ip)
    return {"message": "backup deleted"}


# -- persistent profiles (HOME_STORAGE=s3) -----------------------------------------------------------

@api.get("/api/v1/profiles", access=Access.USER, query=("limit",),
         summary="Saved profile versions, newest first (time, size, which is current); admins see everyone's"
                 " and the deleted users' objects not yet deleted from the store")
def list_profiles(req: Request) -> dict:
    return profiles.list_profiles(req.caller, req.query_int("limit", 100, 1, 1000))


@api.post("/api/v1/profiles/{id}/current", access=Access.USER,
          summary="Make an older profile version current (the next session starts from it)")
def make_current(req: Request) -> dict:
    return profiles.set_current(req.caller, req.param("id"), req.client_ip)


@api.delete("/api/v1/profiles/{id}", access=Access.USER, summary="Delete a profile version that is not current")
def delete_profile(req: Request) -> dict:
    profiles.delete_profile(req.caller, req.param("id"), req.client_ip)
    return {"message": "profile deleted"}


@api.get("/api/v1/profiles/agent/current", access=Access.SIGNED,
         summary="Profile agent (its session's token): a presigned URL of the user's current profile")
def agent_current(req: Request) -> dict:
    _, _, user_id = _agent(req)
    return profiles.current_for_agent(user_id)


@api.post("/api/v1/profiles/agent/uploads", access=Access.SIGNED, status=201,
          summary="Profile agent: a new version's presigned upload URL (size and SHA-256 announced)")
def agent_upload(req: Request) -> Reply:
    _, session, user_id = _agent(req)
    return Reply(profiles.start_upload(user_id, session, req.json(allowed={"size", "sha256"},
                                                                  required=("size", "sha256"))), status=201)


@api.post("/api/v1/profiles/agent/uploads/{id}/commit", access=Access.SIGNED,
          summary="Profile agent: make an uploaded version current once its size and SHA-256 check out")
def agent_commit(req: Request) -> dict:
    _, _, user_id = _agent(req)
    return profiles.commit(user_id, req.param("id"), req.json(allowed={"size", "sha256"},
                                                             required=("size", "sha256")))


@api.post("/api/v1/profiles/agent/failures", access=Access.SIGNED,
          summary="Profile agent: a restore or save failed (kept for the user's page and the metric)")
def agent_failure(req: Request) -> dict:
    _, session, user_id = _agent(req)
    profiles.report_failure(user_id, session, req.json(allowed={"operation", "reason"},
                                                       required=("operation", "reason")))
    return {"message": "failure recorded"}


def _agent(req: Request) -> tuple[str, str, str]:
    """(namespace, session, user id) of the calling profile agent (401 otherwise)."""
    return profiles.agent_of(_bearer(req), sessions.profile_agent_stands)


def _bearer(req: Request) -> str | None:
    scheme, _, token = (req.raw.headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
