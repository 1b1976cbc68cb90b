"""catalog: template repositories (changes by admins; any user may list them), browsing the catalog (any
user) and installing from it (admin)."""

import functions_framework

from streamspace.catalog import browse, repositories
from streamspace.http import Access, Api, Reply, Request
from streamspace.http.errors import BadRequest

api = Api("catalog")
BASE = "/api/v1/catalog"


@api.get(f"{BASE}/repositories", access=Access.USER,
         summary="List template repositories (sync details and errors for admins; name, status, count for users)",
         query=("limit", "offset"))
def list_repositories(req: Request) -> dict:
    limit, offset = req.page()
    return repositories.list_repositories(limit, offset, details=req.caller.is_admin)


REPOSITORY_BODY = {
    "type": "object",
    "required": ["name", "url"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 100},
        "url": {"type": "string", "description": "https://, ssh:// or user@host:path (file:// only when allowed)"},
        "branch": {"type": "string", "default": "main"},
        "authType": {"type": "string", "enum": ["none", "token", "basic", "ssh"], "default": "none"},
        "authSecret": {"type": "string", "writeOnly": True,
                       "description": "token | username:password | OpenSSH private key; stored encrypted"},
    },
}


@api.post(f"{BASE}/repositories", access=Access.ADMIN, status=201, body=REPOSITORY_BODY,
          summary="Add a template repository (its secret is stored encrypted) and request its first sync")
def add_repository(req: Request) -> Reply:
    body = req.json(allowed=repositories.REPOSITORY_FIELDS, required=("name", "url"))
    return Reply(repositories.add_repository(body, req.caller, req.client_ip), status=201)


@api.get(f"{BASE}/repositories/{{id}}", access=Access.ADMIN, summary="One template repository with its sync details")
def get_repository(req: Request) -> dict:
    return repositories.get_repository(req.param("id"))


@api.delete(f"{BASE}/repositories/{{id}}", access=Access.ADMIN,
            summary="Delete a repository and its catalog entries (installed Templates stay)")
def delete_repository(req: Request) -> dict:
    return repositories.delete_repository(req.param("id"), req.caller, req.client_ip)


@api.post(f"{BASE}/repositories/{{id}}/sync", access=Access.ADMIN, status=202,
          summary="Request a sync of one repository")
def sync_repository(req: Request) -> Reply:
    return Reply(repositories.request_sync(req.param("id"), req.caller, req.client_ip), status=202)


@api.post(f"{BASE}/sync", access=Access.ADMIN, status=202, summary="Request a sync of every repository")
def sync_all(req: Request) -> Reply:
    return Reply(repositories.request_sync(None, req.caller, req.client_ip), status=202)


@api.get(f"{BASE}/templates", access=Access.USER, summary="Browse and search the catalog",
         query=("category", "tag", "q", "repository", "limit", "offset"))
def list_templates(req: Request) -> dict:
    limit, offset = req.page()
    return browse.list_templates(category=req.query("category"), tag=req.query("tag"), q=req.query("q"),
                                 repository=req.query("repository"), limit=limit, offset=offset)


@api.get(f"{BASE}/templates/{{id}}", access=Access.USER, summary="One catalog template")
def get_template(req: Request) -> dict:
    return browse.template_json(browse.get_template(req.param("id")))


@api.post(f"{BASE}/templates/{{id}}/install", access=Access.ADMIN, status=201, query=("overwrite",),
          summary="Install a catalog template: create or update the Template in the cluster (409 when it was "
                  "changed outside the catalog, unless overwrite=true)")
def install(req: Request) -> Reply:
    return Reply(browse.install_template(req.param("id"), req.caller, req.client_ip,
                                         overwrite=bool(req.query_bool("overwrite"))), status=201)


@api.post(f"{BASE}/install", access=Access.ADMIN, status=201, query=("id", "overwrite"),
          summary="Install a catalog template (id in the query)")
def install_by_query(req: Request) -> Reply:
    template_id = req.query("id")
    if not template_id:
        raise BadRequest("query parameter id is required", error="invalid id")
    return Reply(browse.install_template(template_id, req.caller, req.client_ip,
                                         overwrite=bool(req.query_bool("overwrite"))), status=201)


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
