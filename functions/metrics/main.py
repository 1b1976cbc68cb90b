"""metrics: the JSON platform summary; also serves the API-wide health, version and OpenAPI paths."""

import functions_framework

from streamspace.config import environment
from streamspace.dead_letters import service as dead_letters
from streamspace.domain.duration import parse_duration
from streamspace.domain.errors import NotFound
from streamspace.http import Access, Api, Request
from streamspace.metrics.service import dead_letter_counts, platform_summary
from streamspace.observability import metrics
from streamspace.profiles import service as profiles
from streamspace.session_history.service import history

api = Api("metrics")
# Prometheus scrapes this function cluster-local: how many dead letters wait, read from Postgres at each scrape.
metrics.gauge_at_scrape("streamspace_dead_letters_stored", "Dead CloudEvents kept, by status", "status",
                        dead_letter_counts)
# Persistent profiles (docs/s3.md): failed restores and saves (the agents report them) and deleted users' objects
# still in the store. Alert on streamspace_profile_failures_last_hour > 0 and on
# streamspace_profile_purge_objects{state="failing"} > 0.
metrics.gauge_at_scrape("streamspace_profile_failures_last_hour",
                        "Profile restores and saves that failed in the last hour", "operation",
                        profiles.failures_last_hour)
metrics.gauge_at_scrape("streamspace_profile_purge_objects",
                        "Objects of deleted users' profiles not yet deleted from the store (waiting, failing)",
                        "state", profiles.purges_pending)


@api.get("/api/v1/metrics", access=Access.USER, summary="Platform summary (a user's own sessions; all for operators)")
def summary(req: Request) -> dict:
    return platform_summary(req.caller)


@api.get("/api/v1/metrics/sessions", access=Access.OPERATOR, query=("hours", "step"),
         summary="Sessions by state over time: the last sample of each step (hours: default 24; step: a "
                 "duration such as 5m, default 48 points), null where no sample was taken")
def session_history(req: Request) -> dict:
    step = req.query("step")
    return history(req.query_int("hours", 24, 1, environment().session_history_days * 24),
                   parse_duration(step, "step") if step is not None else None)


# -- dead letters (recorded by the dead-letter function) ------------------------------------------

@api.get("/api/v1/admin/dead-letters", access=Access.ADMIN, query=("status", "limit", "offset"),
         summary="Dead CloudEvents, newest first (status: open | handled | retried), without their data")
def list_dead_letters(req: Request) -> dict:
    limit, offset = req.page()
    return dead_letters.list_dead_letters(req.query("status"), limit, offset)


@api.get("/api/v1/admin/dead-letters/{id}", access=Access.ADMIN, summary="One dead CloudEvent with its data")
def get_dead_letter(req: Request) -> dict:
    return dead_letters.get_dead_letter(_letter_id(req))


@api.post("/api/v1/admin/dead-letters/{id}/handled", access=Access.ADMIN,
          summary="Mark a dead letter handled (an optional note says how); audited",
          body={"type": "object", "properties": {"note": {"type": "string"}}, "additionalProperties": False})
def mark_handled(req: Request) -> dict:
    body = req.json(allowed={"note"}, optional_body=True)
    return dead_letters.mark_handled(req.caller, _letter_id(req), body.get("note"), req.client_ip)


@api.post("/api/v1/admin/dead-letters/{id}/retry", access=Access.ADMIN,
          summary="Send an open dead letter back to the broker (not ApiServerSource snapshots); audited")
def retry_dead_letter(req: Request) -> dict:
    return dead_letters.retry(req.caller, _letter_id(req), req.client_ip)


def _letter_id(req: Request) -> int:
    text = req.param("id")
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"no dead letter {text[:40]!r}", error="dead letter not found")
    return int(text)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
