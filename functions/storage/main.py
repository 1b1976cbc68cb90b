"""storage: what lives in the object store: the backups (admins list, request and delete them)."""

import functions_framework

from streamspace.backups import service as backups
from streamspace.http import Access, Api, Reply, Request
from streamspace.observability import metrics

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


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
