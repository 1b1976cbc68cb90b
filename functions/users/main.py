"""users: users, groups and memberships, and quotas (admin only, except GET /api/v1/users/me)."""

import functions_framework

from streamspace.auth.groups import service as groups
from streamspace.auth.passwords import hash_profile
from streamspace.auth.users import service as users
from streamspace.db import connection
from streamspace.domain.quotas import LIMIT_FIELDS
from streamspace.http import Access, Api, Reply, Request
from streamspace.mfa import service as mfa
from streamspace.quotas import service as quotas
from streamspace.sessions import listing as sessions

api = Api("users")
hash_profile()  # a bad PASSWORD_HASH_PROFILE ends the process at start, like any configuration error

ADMIN = Access.ADMIN


def _schema(required: tuple[str, ...] = (), **props: str) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {name: ({"type": ["string", "null"]} if kind == "quantity" else {"type": kind})
                           for name, kind in props.items()}}


LIMITS = {"maxSessions": "integer", "maxCPU": "quantity", "maxMemory": "quantity", "maxStorage": "quantity"}


def _user_id(req: Request, name: str = "id") -> str:
    return users.parse_uuid(req.param(name), "user")


def _group_id(req: Request) -> str:
    return users.parse_uuid(req.param("id"), "group")


# -- users --------------------------------------------------------------------------------------

@api.get("/api/v1/users/me", access=Access.USER, summary="The current user")
def users_me(req: Request) -> dict:
    return users.get_user(req.caller.user_id)


@api.get("/api/v1/users", access=ADMIN, summary="List users", query=("role", "provider", "active", "limit", "offset"))
def list_users(req: Request) -> dict:
    limit, offset = req.page()
    return users.list_users(role=req.query("role"), provider=req.query("provider"), active=req.query_bool("active"),
                            limit=limit, offset=offset)


@api.post("/api/v1/users", access=ADMIN, status=201, summary="Create a local user",
          body=_schema(("username", "email", "password"), username="string", email="string", fullName="string",
                       password="string", role="string"))
def create_user(req: Request) -> dict:
    body = req.json(allowed=users.CREATE_FIELDS, required=("username", "email", "password"))
    return users.create_user(req.caller, body, req.client_ip)


@api.get("/api/v1/users/{id}", access=ADMIN, summary="A user")
def get_user(req: Request) -> dict:
    return users.get_user(_user_id(req))


@api.patch("/api/v1/users/{id}", access=ADMIN, summary="Update a user (email, fullName, role, active, password)",
           body=_schema(email="string", fullName="string", role="string", active="boolean", password="string"))
def update_user(req: Request) -> dict:
    return users.update_user(req.caller, _user_id(req), req.json(allowed=users.UPDATE_FIELDS), req.client_ip)


@api.delete("/api/v1/users/{id}", access=ADMIN, summary="Delete a user")
def delete_user(req: Request) -> dict:
    users.delete_user(req.caller, _user_id(req), req.client_ip)
    return {"message": "user deleted"}


@api.get("/api/v1/users/{id}/sessions", access=ADMIN, summary="A user's sessions (from the session index)",
         query=("limit", "offset"))
def user_sessions(req: Request) -> dict:
    limit, offset = req.page()
    return sessions.user_sessions(req.caller, _user_id(req), limit, offset)


@api.get("/api/v1/users/{id}/quota", access=ADMIN, summary="A user's quota and usage")
def get_user_quota(req: Request) -> dict:
    return quotas.user_quota(_user_id(req))


@api.put("/api/v1/users/{id}/quota", access=ADMIN, summary="Set a user's limits (null: back to the default)",
         body=_schema(**LIMITS))
def put_user_quota(req: Request) -> dict:
    return quotas.set_user_quota(req.caller, _user_id(req), req.json(allowed=LIMIT_FIELDS), req.client_ip)


@api.get("/api/v1/users/{id}/groups", access=ADMIN, summary="The groups of a user")
def user_groups(req: Request) -> dict:
    return groups.user_groups(_user_id(req))


# -- groups -------------------------------------------------------------------------------------

@api.delete("/api/v1/users/{id}/totp", access=ADMIN,
            summary="Reset a user's two-factor login (TOTP and recovery codes); audited")
def reset_totp(req: Request) -> dict:
    return mfa.reset(req.caller, req.param("id"), req.client_ip)


@api.get("/api/v1/groups", access=ADMIN, summary="List groups", query=("type", "parentId", "limit", "offset"))
def list_groups(req: Request) -> dict:
    limit, offset = req.page()
    return groups.list_groups(type_=req.query("type"), parent_id=req.query("parentId"), limit=limit, offset=offset)


@api.post("/api/v1/groups", access=ADMIN, status=201, summary="Create a group",
          body=_schema(("name",), name="string", displayName="string", description="string", type="string",
                       parentId="string"))
def create_group(req: Request) -> dict:
    return groups.create_group(req.caller, req.json(allowed=groups.CREATE_FIELDS, required=("name",)), req.client_ip)


@api.get("/api/v1/groups/{id}", access=ADMIN, summary="A group")
def get_group(req: Request) -> dict:
    return groups.get_group(_group_id(req))


@api.patch("/api/v1/groups/{id}", access=ADMIN, summary="Update a group",
           body=_schema(displayName="string", description="string", type="string", parentId="string"))
def update_group(req: Request) -> dict:
    return groups.update_group(req.caller, _group_id(req), req.json(allowed=groups.UPDATE_FIELDS), req.client_ip)


@api.delete("/api/v1/groups/{id}", access=ADMIN, summary="Delete a group (its memberships and quota go with it)")
def delete_group(req: Request) -> dict:
    groups.delete_group(req.caller, _group_id(req), req.client_ip)
    return {"message": "group deleted"}


@api.get("/api/v1/groups/{id}/members", access=ADMIN, summary="Members of a group", query=("limit", "offset"))
def list_members(req: Request) -> dict:
    limit, offset = req.page()
    return groups.list_members(_group_id(req), limit, offset)


@api.post("/api/v1/groups/{id}/members", access=ADMIN, status=201, summary="Add a member",
          body=_schema(("userId",), userId="string", role="string"))
def add_member(req: Request) -> dict:
    return groups.add_member(req.caller, _group_id(req), req.json(allowed=groups.MEMBER_FIELDS, required=("userId",)),
                            req.client_ip)


@api.patch("/api/v1/groups/{id}/members/{userId}", access=ADMIN, summary="Change a member's role",
           body=_schema(("role",), role="string"))
def update_member(req: Request) -> dict:
    body = req.json(allowed={"role"}, required=("role",))
    return groups.update_member(req.caller, _group_id(req), _user_id(req, "userId"), body, req.client_ip)


@api.delete("/api/v1/groups/{id}/members/{userId}", access=ADMIN, summary="Remove a member")
def remove_member(req: Request) -> dict:
    groups.remove_member(req.caller, _group_id(req), _user_id(req, "userId"), req.client_ip)
    return {"message": "member removed"}


@api.get("/api/v1/groups/{id}/quota", access=ADMIN, summary="A group's quota and usage")
def get_group_quota(req: Request) -> dict:
    return quotas.group_quota(_group_id(req))


@api.put("/api/v1/groups/{id}/quota", access=ADMIN, summary="Set a group's limits (null: back to the default)",
         body=_schema(**LIMITS))
def put_group_quota(req: Request) -> dict:
    return quotas.set_group_quota(req.caller, _group_id(req), req.json(allowed=LIMIT_FIELDS), req.client_ip)


# -- quotas by username -------------------------------------------------------------------------

@api.get("/api/v1/admin/quotas", access=ADMIN, summary="Every user's quota and usage", query=("limit", "offset"))
def list_quotas(req: Request) -> dict:
    limit, offset = req.page()
    return quotas.list_user_quotas(limit, offset)


@api.put("/api/v1/admin/quotas", access=ADMIN, summary="Set a user's limits by username",
         body=_schema(("username",), username="string", **LIMITS))
def put_quota(req: Request) -> dict:
    body = req.json(allowed=LIMIT_FIELDS | {"username"}, required=("username",))
    with connection() as conn:
        user_id = quotas.user_id_by_name(conn, body["username"])
    return quotas.set_user_quota(req.caller, user_id, body, req.client_ip)


@api.get("/api/v1/admin/quotas/{username}", access=ADMIN, summary="A user's quota by username")
def get_quota(req: Request) -> dict:
    with connection() as conn:
        return quotas.user_quota_on(conn, quotas.user_id_by_name(conn, req.param("username")))


@api.delete("/api/v1/admin/quotas/{username}", access=ADMIN, summary="Put a user's quota back to the defaults")
def delete_quota(req: Request) -> Reply:
    with connection() as conn:
        user_id = quotas.user_id_by_name(conn, req.param("username"))
    quota = quotas.reset_user_quota(req.caller, user_id, req.client_ip)
    return Reply({"message": "quota reset to the defaults", "quota": quota})


@functions_framework.http
def handle(request):
    return api(request)


if __name__ == "__main__":
    from streamspace.functions import run_entry_point

    raise SystemExit(run_entry_point(__file__))
