"""The users function: users, groups, memberships, quotas. Admin only (except /users/me), no mass
assignment, validated input, conflicts as 409, every change audited in its own transaction."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .conftest import audit_rows, bearer, login, make_user, token_for

GiB = 2**30


def call(url: str, method: str, path: str, headers: dict, body: Any = None) -> requests.Response:
    return requests.request(method, f"{url}{path}", headers=headers, json=body, timeout=10)


def count(sql: str, params: tuple = ()) -> int:
    from streamspace.db import fetch_one

    row = fetch_one(sql, params)
    assert row is not None
    return int(next(iter(row.values())))


@pytest.fixture(scope="module")
def plain(url: str) -> dict:
    user_id = make_user("plain-user", password="plain-password")
    token = login(url, "plain-user", "plain-password").json()["token"]
    return {"id": user_id, "headers": bearer(token)}


# -- access --------------------------------------------------------------------------------------

def test_non_admins_get_403_everywhere_but_users_me(url: str, plain: dict, admin: dict) -> None:
    for method, path in (("GET", "/api/v1/users"), ("POST", "/api/v1/users"), ("GET", f"/api/v1/users/{admin['id']}"),
                         ("PATCH", f"/api/v1/users/{plain['id']}"), ("DELETE", f"/api/v1/users/{admin['id']}"),
                         ("GET", f"/api/v1/users/{plain['id']}/quota"), ("PUT", f"/api/v1/users/{plain['id']}/quota"),
                         ("GET", "/api/v1/groups"), ("POST", "/api/v1/groups"), ("GET", "/api/v1/admin/quotas"),
                         ("PUT", "/api/v1/admin/quotas"), ("DELETE", "/api/v1/admin/quotas/plain-user")):
        resp = call(url, method, path, plain["headers"], {"role": "admin"})
        assert resp.status_code == 403, (method, path, resp.status_code)
    me = call(url, "GET", "/api/v1/users/me", plain["headers"])
    assert me.status_code == 200 and me.json()["id"] == plain["id"] and me.json()["role"] == "user"
    # "me" is not an id: a user cannot PATCH itself into an admin through the admin route.
    assert call(url, "PATCH", "/api/v1/users/me", plain["headers"], {"role": "admin"}).status_code == 403
    assert call(url, "PATCH", "/api/v1/users/me", admin["headers"], {"role": "user"}).status_code == 404
    assert count("SELECT count(*) FROM users WHERE id = %s AND role = 'user'", (plain["id"],)) == 1


def test_logout_with_someone_elses_refresh_token_does_not_touch_their_login(url: str, plain: dict) -> None:
    make_user("bystander", password="bystander-password")
    theirs = login(url, "bystander", "bystander-password").json()
    resp = call(url, "POST", "/api/v1/auth/logout", {"Authorization": f"Bearer {token_for(plain['id'], 'plain-user')}"},
                {"refreshToken": theirs["refreshToken"]})
    assert resp.status_code == 200
    assert call(url, "GET", "/api/v1/auth/me", bearer(theirs["token"])).status_code == 200
    again = requests.post(f"{url}/api/v1/auth/refresh", json={"refreshToken": theirs["refreshToken"]}, timeout=10)
    assert again.status_code == 200


# -- users ---------------------------------------------------------------------------------------

def test_create_user_and_read_it_back(url: str, admin: dict) -> None:
    resp = call(url, "POST", "/api/v1/users", admin["headers"],
                {"username": "new.user-1", "email": "new@example.com", "fullName": "New User",
                 "password": "new-user-password", "role": "operator"})
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert user["username"] == "new.user-1" and user["role"] == "operator" and user["provider"] == "local"
    assert user["active"] is True and user["groups"] == [] and "password" not in str(user).lower()
    assert call(url, "GET", f"/api/v1/users/{user['id']}", admin["headers"]).json() == user
    assert login(url, "new.user-1", "new-user-password").status_code == 200
    [row] = audit_rows("user.create", "new.user-1")
    assert row["actor"] == "root-admin" and row["actor_id"] is not None and row["details"]["role"] == "operator"


@pytest.mark.parametrize(("body", "field"), [
    ({"username": "Upper", "email": "a@example.com", "password": "password-1"}, "username"),
    ({"username": "-dash", "email": "a@example.com", "password": "password-1"}, "username"),
    ({"username": "x" * 64, "email": "a@example.com", "password": "password-1"}, "username"),
    ({"username": "sp ace", "email": "a@example.com", "password": "password-1"}, "username"),
    ({"username": "okname", "email": "not-an-email", "password": "password-1"}, "email"),
    ({"username": "okname", "email": "a@example.com", "password": "short"}, "password"),
    ({"username": "okname", "email": "a@example.com", "password": "password-1", "role": "root"}, "role"),
    ({"username": "okname", "email": "a@example.com", "password": "password-1", "active": False}, "active"),
    ({"username": "okname", "email": "a@example.com", "password": "password-1", "provider": "ldap"}, "provider"),
    ({"username": "okname", "email": "a@example.com", "password": "password-1", "passwordHash": "x"}, "passwordHash"),
    ({"username": "okname", "email": "a@example.com", "password": "password-1", "id": "x"}, "id"),
    ({"username": "okname", "email": "a@example.com"}, "password"),
    ({"username": "okname", "email": "a@example.com", "password": "password-1", "fullName": 3}, "fullName"),
])
def test_create_user_refuses_bad_input_naming_the_field(url: str, admin: dict, body: dict, field: str) -> None:
    before = count("SELECT count(*) FROM users") + count("SELECT count(*) FROM audit_log")
    resp = call(url, "POST", "/api/v1/users", admin["headers"], body)
    assert resp.status_code == 400 and resp.json()["error"] == f"invalid {field}", resp.text
    assert count("SELECT count(*) FROM users") + count("SELECT count(*) FROM audit_log") == before


def test_duplicate_username_or_email_is_409_and_writes_nothing(url: str, admin: dict) -> None:
    make_user("taken", email="taken@example.com")
    before = count("SELECT count(*) FROM audit_log")
    dup_name = call(url, "POST", "/api/v1/users", admin["headers"],
                    {"username": "taken", "email": "other@example.com", "password": "password-1"})
    assert dup_name.status_code == 409 and dup_name.json()["error"] == "username taken"
    dup_mail = call(url, "POST", "/api/v1/users", admin["headers"],
                    {"username": "other", "email": "TAKEN@example.com", "password": "password-1"})
    assert dup_mail.status_code == 409 and dup_mail.json()["error"] == "email taken"
    assert count("SELECT count(*) FROM audit_log") == before
    assert count("SELECT count(*) FROM users WHERE username = 'other'") == 0


def test_list_users_with_filters_and_pagination(url: str, admin: dict) -> None:
    make_user("lister-off", active=False)
    make_user("lister-op", role="operator")
    everyone = call(url, "GET", "/api/v1/users", admin["headers"]).json()
    assert everyone["total"] == len(everyone["users"]) == count("SELECT count(*) FROM users")
    inactive = call(url, "GET", "/api/v1/users?active=false", admin["headers"]).json()
    assert "lister-off" in {u["username"] for u in inactive["users"]}
    assert all(not u["active"] for u in inactive["users"])
    ops = call(url, "GET", "/api/v1/users?role=operator&provider=local", admin["headers"]).json()
    assert ops["users"] and all(u["role"] == "operator" for u in ops["users"])
    page = call(url, "GET", "/api/v1/users?limit=1&offset=1", admin["headers"]).json()
    assert len(page["users"]) == 1 and page["total"] == everyone["total"]
    assert page["users"][0] == everyone["users"][1]
    assert call(url, "GET", "/api/v1/users?role=root", admin["headers"]).status_code == 400
    assert call(url, "GET", "/api/v1/users?active=maybe", admin["headers"]).status_code == 400
    assert call(url, "GET", "/api/v1/users?limit=5000", admin["headers"]).status_code == 400


def test_unknown_ids_are_404(url: str, admin: dict) -> None:
    for path in ("/api/v1/users/00000000-0000-0000-0000-000000000000", "/api/v1/users/not-a-uuid",
                 "/api/v1/users/00000000-0000-0000-0000-000000000000/quota",
                 "/api/v1/groups/00000000-0000-0000-0000-000000000000", "/api/v1/groups/x/members",
                 "/api/v1/admin/quotas/nobody-by-that-name"):
        assert call(url, "GET", path, admin["headers"]).status_code == 404, path


def test_patch_user_role_and_profile_is_audited(url: str, admin: dict) -> None:
    uid = make_user("promote-me")
    resp = call(url, "PATCH", f"/api/v1/users/{uid}", admin["headers"], {"role": "operator", "fullName": "Promoted"})
    assert resp.status_code == 200 and resp.json()["role"] == "operator" and resp.json()["fullName"] == "Promoted"
    [role_change] = audit_rows("user.role", "promote-me")
    assert role_change["details"] == {"from": "user", "to": "operator"} and role_change["actor"] == "root-admin"
    bad = call(url, "PATCH", f"/api/v1/users/{uid}", admin["headers"], {"role": "admin", "provider": "ldap"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid provider"
    assert count("SELECT count(*) FROM users WHERE id = %s AND role = 'operator'", (uid,)) == 1


def test_nobody_changes_their_own_role_or_active_state(url: str, admin: dict) -> None:
    for body in ({"role": "user"}, {"active": False}, {"role": "admin"}):
        resp = call(url, "PATCH", f"/api/v1/users/{admin['id']}", admin["headers"], body)
        assert resp.status_code == 403, body
    assert call(url, "DELETE", f"/api/v1/users/{admin['id']}", admin["headers"]).status_code == 403
    ok = call(url, "PATCH", f"/api/v1/users/{admin['id']}", admin["headers"], {"fullName": "Root"})
    assert ok.status_code == 200 and ok.json()["role"] == "admin"


def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(url: str, admin: dict) -> None:
    """Only reachable in a race (two admins demoting each other): an admin whose request was
    authorised just before it was itself demoted. The guard runs under a lock in the transaction."""
    from streamspace.auth.principal import Principal
    from streamspace.auth.users.service import delete_user, update_user
    from streamspace.db import execute
    from streamspace.http.errors import Conflict

    other = make_user("second-admin", role="admin")
    # second-admin demotes root-admin... after being demoted itself, in the same instant.
    execute("UPDATE users SET role = 'user' WHERE id = %s", (other,))
    stale = Principal(user_id=other, username="second-admin", role="admin", groups=(), family_id=None)
    for attempt in (lambda: update_user(stale, admin["id"], {"role": "user"}, "127.0.0.1"),
                    lambda: update_user(stale, admin["id"], {"active": False}, "127.0.0.1"),
                    lambda: delete_user(stale, admin["id"], "127.0.0.1")):
        with pytest.raises(Conflict):
            attempt()
    assert count("SELECT count(*) FROM users WHERE role = 'admin' AND active") == 1
    # With two admins, one may demote the other.
    execute("UPDATE users SET role = 'admin' WHERE id = %s", (other,))
    resp = call(url, "PATCH", f"/api/v1/users/{other}", admin["headers"], {"role": "user"})
    assert resp.status_code == 200


def test_disabling_a_user_ends_their_logins(url: str, admin: dict) -> None:
    uid = make_user("to-disable", password="disable-password")
    theirs = login(url, "to-disable", "disable-password").json()
    assert call(url, "PATCH", f"/api/v1/users/{uid}", admin["headers"], {"active": False}).status_code == 200
    assert call(url, "GET", "/api/v1/auth/me", bearer(theirs["token"])).status_code in (401, 403)
    again = requests.post(f"{url}/api/v1/auth/refresh", json={"refreshToken": theirs["refreshToken"]}, timeout=10)
    assert again.status_code == 401
    assert login(url, "to-disable", "disable-password").status_code == 403


def test_delete_user(url: str, admin: dict) -> None:
    uid = make_user("delete-me")
    busy = make_user("busy-user")
    from streamspace.db import execute

    execute("INSERT INTO sessions (namespace, name, user_id, username, template) VALUES"
            " ('streamspace', 'busy-1', %s, 'busy-user', 'firefox')", (busy,))
    assert call(url, "DELETE", f"/api/v1/users/{uid}", admin["headers"]).status_code == 200
    assert call(url, "GET", f"/api/v1/users/{uid}", admin["headers"]).status_code == 404
    assert call(url, "DELETE", f"/api/v1/users/{uid}", admin["headers"]).status_code == 404
    assert audit_rows("user.delete", "delete-me")
    resp = call(url, "DELETE", f"/api/v1/users/{busy}", admin["headers"])
    assert resp.status_code == 409 and resp.json()["error"] == "user has sessions"
    sessions = call(url, "GET", f"/api/v1/users/{busy}/sessions", admin["headers"]).json()
    assert sessions["total"] == 1 and sessions["sessions"][0]["name"] == "busy-1"
    assert sessions["sessions"][0]["state"] == "running"


# -- quotas --------------------------------------------------------------------------------------

def test_user_quota_get_put_and_admin_quotas(url: str, admin: dict) -> None:
    uid = make_user("quota-user")
    base = f"/api/v1/users/{uid}/quota"
    got = call(url, "GET", base, admin["headers"]).json()
    assert got["username"] == "quota-user"
    assert got["limits"] == {"maxSessions": 5, "maxCPU": "4", "maxMemory": "16Gi", "maxStorage": "100Gi"}
    put = call(url, "PUT", base, admin["headers"], {"maxSessions": 2, "maxCPU": "2500m", "maxMemory": "4Gi"})
    assert put.status_code == 200, put.text
    assert put.json()["limits"] == {"maxSessions": 2, "maxCPU": "2500m", "maxMemory": "4Gi", "maxStorage": "100Gi"}
    for body, field in (({"maxCPU": "lots"}, "maxCPU"), ({"maxSessions": -1}, "maxSessions"),
                        ({"maxSessions": True}, "maxSessions"), ({"maxMemory": "1.5m"}, "maxMemory"),
                        ({"maxSessions": 3, "used": 0}, "used")):
        bad = call(url, "PUT", base, admin["headers"], body)
        assert bad.status_code == 400 and bad.json()["error"] == f"invalid {field}", (body, bad.text)
    assert call(url, "GET", base, admin["headers"]).json()["limits"]["maxSessions"] == 2
    # The same through /admin/quotas, by username.
    by_name = call(url, "PUT", "/api/v1/admin/quotas", admin["headers"],
                   {"username": "quota-user", "maxStorage": "10Gi", "maxCPU": None})
    assert by_name.status_code == 200
    assert by_name.json()["limits"] == {"maxSessions": 2, "maxCPU": "4", "maxMemory": "4Gi", "maxStorage": "10Gi"}
    assert call(url, "GET", "/api/v1/admin/quotas/quota-user", admin["headers"]).json() == by_name.json()
    listed = call(url, "GET", "/api/v1/admin/quotas", admin["headers"]).json()
    assert listed["total"] == count("SELECT count(*) FROM users")
    assert by_name.json() in listed["quotas"]
    reset = call(url, "DELETE", "/api/v1/admin/quotas/quota-user", admin["headers"])
    assert reset.status_code == 200
    assert reset.json()["quota"]["limits"] == {"maxSessions": 5, "maxCPU": "4", "maxMemory": "16Gi",
                                               "maxStorage": "100Gi"}
    assert call(url, "PUT", "/api/v1/admin/quotas", admin["headers"],
                {"username": "nobody-by-that-name", "maxSessions": 1}).status_code == 404
    assert [r["details"] for r in audit_rows("quota.user.set", "quota-user")] == [
        {"maxCPU": "2500m", "maxMemory": "4Gi", "maxSessions": 2}, {"maxCPU": None, "maxStorage": "10Gi"}]
    assert audit_rows("quota.user.reset", "quota-user")


# -- groups --------------------------------------------------------------------------------------

def test_groups_members_and_group_quota(url: str, admin: dict) -> None:
    h = admin["headers"]
    parent = call(url, "POST", "/api/v1/groups", h, {"name": "engineering", "displayName": "Engineering",
                                                     "type": "department"})
    assert parent.status_code == 201, parent.text
    pid = parent.json()["id"]
    child = call(url, "POST", "/api/v1/groups", h, {"name": "platform", "type": "team", "parentId": pid})
    assert child.status_code == 201
    cid = child.json()["id"]
    assert set(child.json()) == {"id", "name", "displayName", "description", "type", "parentId", "memberCount",
                                 "createdAt", "updatedAt"}
    assert call(url, "POST", "/api/v1/groups", h, {"name": "Engineering"}).status_code == 409
    assert call(url, "POST", "/api/v1/groups", h, {"name": "bad name!"}).json()["error"] == "invalid name"
    assert call(url, "POST", "/api/v1/groups", h, {"name": "orphan", "parentId": "nope"}).json()["error"] == \
        "invalid parentId"
    assert call(url, "POST", "/api/v1/groups", h, {"name": "sneaky", "memberCount": 9}).json()["error"] == \
        "invalid memberCount"
    # Cycles are refused.
    cycle = call(url, "PATCH", f"/api/v1/groups/{pid}", h, {"parentId": cid})
    assert cycle.status_code == 400 and cycle.json()["error"] == "invalid parentId"
    assert call(url, "PATCH", f"/api/v1/groups/{pid}", h, {"description": "Builds things"}).json()["description"] \
        == "Builds things"
    # Filters.
    teams = call(url, "GET", "/api/v1/groups?type=team", h).json()
    assert [g["name"] for g in teams["groups"]] == ["platform"]
    under = call(url, "GET", f"/api/v1/groups?parentId={pid}", h).json()
    assert [g["id"] for g in under["groups"]] == [cid]
    # Members.
    uid = make_user("engineer")
    add = call(url, "POST", f"/api/v1/groups/{cid}/members", h, {"userId": uid, "role": "member"})
    assert add.status_code == 201 and add.json()["username"] == "engineer"
    assert call(url, "POST", f"/api/v1/groups/{cid}/members", h, {"userId": uid}).status_code == 409
    assert call(url, "POST", f"/api/v1/groups/{cid}/members", h,
                {"userId": uid, "role": "god"}).json()["error"] == "invalid role"
    assert call(url, "POST", f"/api/v1/groups/{cid}/members", h,
                {"userId": "00000000-0000-0000-0000-000000000000"}).json()["error"] == "invalid userId"
    members = call(url, "GET", f"/api/v1/groups/{cid}/members", h).json()
    assert members["total"] == 1 and members["members"][0]["userId"] == uid
    assert call(url, "GET", f"/api/v1/groups/{cid}", h).json()["memberCount"] == 1
    assert call(url, "GET", f"/api/v1/users/{uid}", h).json()["groups"] == [cid]
    assert [g["id"] for g in call(url, "GET", f"/api/v1/users/{uid}/groups", h).json()["groups"]] == [cid]
    patched = call(url, "PATCH", f"/api/v1/groups/{cid}/members/{uid}", h, {"role": "owner"})
    assert patched.status_code == 200 and patched.json()["role"] == "owner"
    # Group quota.
    quota = call(url, "PUT", f"/api/v1/groups/{cid}/quota", h, {"maxSessions": 3, "maxMemory": "8Gi"})
    assert quota.status_code == 200
    assert quota.json()["limits"] == {"maxSessions": 3, "maxCPU": "16", "maxMemory": "8Gi", "maxStorage": "500Gi"}
    assert call(url, "GET", f"/api/v1/groups/{cid}/quota", h).json()["limits"]["maxSessions"] == 3
    # Removal.
    assert call(url, "DELETE", f"/api/v1/groups/{cid}/members/{uid}", h).status_code == 200
    assert call(url, "DELETE", f"/api/v1/groups/{cid}/members/{uid}", h).status_code == 404
    assert call(url, "DELETE", f"/api/v1/groups/{cid}", h).status_code == 200
    assert call(url, "GET", f"/api/v1/groups/{cid}", h).status_code == 404
    actions = [r["action"] for r in audit_rows("group.member.add", "platform") + audit_rows("group.member.role",
                                                                                             "platform")
               + audit_rows("group.member.remove", "platform") + audit_rows("quota.group.set", "platform")
               + audit_rows("group.delete", "platform")]
    assert actions == ["group.member.add", "group.member.role", "group.member.remove", "quota.group.set",
                       "group.delete"]
