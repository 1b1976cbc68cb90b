"""templates: the Template catalog of the namespace (read: any user; write: admin)."""

import functions_framework

from streamspace.config import environment
from streamspace.http import Access, Api, Reply, Request
from streamspace.sessions import starts_store, warm
from streamspace.templates import service as templates

api = Api("templates")


# direct: every launch dialog and catalog view lists them; it skips Flask's dispatch (Api.route)
@api.get("/api/v1/templates", access=Access.USER, direct=True,
         query=("category", "tag", "appType", "enabled", "limit", "offset"),
         summary="List Templates (filters: category, tag, appType, enabled); users see enabled Templates only")
def list_templates(req: Request) -> Reply:
    limit, offset = req.page()
    return Reply(templates.list_templates_json(req.caller, category=req.query("category"), tag=req.query("tag"),
                                               app_type=req.query("appType"), enabled=req.query_bool("enabled"),
                                               limit=limit, offset=offset))


@api.post("/api/v1/templates", access=Access.ADMIN, status=201, summary="Create a Template (409 if it exists)")
def create_template(req: Request) -> Reply:
    return Reply(templates.create_template(req.json(), req.caller, req.client_ip), status=201)


@api.get("/api/v1/templates/{id}", access=Access.USER, summary="One Template (a disabled one: admins only, else 404)")
def get_template(req: Request) -> dict:
    return templates.get_template(req.param("id"), req.caller)


@api.get("/api/v1/templates/{id}/warm-pool", access=Access.ADMIN,
         summary="A Template's warm pool: size, ready, budget, claims, misses, recycles")
def get_warm_pool(req: Request) -> dict:
    return warm.pool_report(environment().sessions_namespace, req.param("id"))


@api.get("/api/v1/templates/{id}/start-times", access=Access.USER,
         summary="How starts of a Template went: per kind (warm, cached, cold) p50, p95 and the phases")
def get_start_times(req: Request) -> dict:
    name = req.param("id")
    templates.get_template(name, req.caller)  # 404 for a template that does not exist (or is hidden)
    return {"template": name, "starts": starts_store.percentiles(environment().sessions_namespace, name)}


@api.patch("/api/v1/templates/{id}", access=Access.ADMIN,
           summary="Change a Template (partial; 409 on a stale update); enabled=false takes it out of use; "
                   "prePull=true keeps its image on every node")
def patch_template(req: Request) -> dict:
    return templates.update_template(req.param("id"), req.json(), req.caller, req.client_ip)


@api.delete("/api/v1/templates/{id}", access=Access.ADMIN, summary="Delete a Template")
def delete_template(req: Request) -> dict:
    return templates.delete_template(req.param("id"), req.caller, req.client_ip)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
