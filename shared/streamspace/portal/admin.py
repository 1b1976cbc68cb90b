"""The admin pages: dashboard, users, groups, repositories, templates, nodes, settings, audit log.

Every page is `Access.ADMIN` and calls the service the matching admin API route calls, with the
same Principal; the services audit and validate. A refused form is shown again with the service's
message next to the field it names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from streamspace import audit
from streamspace.auth.groups.service import (
    add_member,
    create_group,
    get_group,
    list_groups,
    list_members,
    remove_member,
    user_groups,
)
from streamspace.auth.users.service import create_user, get_user, list_users, parse_uuid, update_user
from streamspace.catalog import browse
from streamspace.catalog import repositories as repos
from streamspace.cluster import service as cluster
from streamspace.config import environment
from streamspace.domain.errors import ValidationError
from streamspace.http.api import Access
from streamspace.metrics.service import platform_summary
from streamspace.portal import views
from streamspace.portal.web import Page, Portal, refusal
from streamspace.quotas.service import group_quota, set_group_quota, set_user_quota, user_quota
from streamspace.session_history.service import history
from streamspace.sessions import warm
from streamspace.sessions.listing import list_sessions
from streamspace.settings.service import platform_settings, update_platform_settings
from streamspace.templates.service import list_templates, update_template

ADMIN = Access.ADMIN
SESSION_STATES = ("running", "hibernated", "terminated")


def register(portal: Portal) -> None:
    portal.page("/admin", access=ADMIN)(dashboard)
    portal.page("/admin/users", access=ADMIN, methods=("GET", "POST"))(users)
    portal.page("/admin/users/{id}", access=ADMIN, methods=("GET", "POST"))(user_details)
    portal.page("/admin/groups", access=ADMIN, methods=("GET", "POST"))(groups)
    portal.page("/admin/groups/{id}", access=ADMIN, methods=("GET", "POST"))(group_details)
    portal.page("/admin/repositories", access=ADMIN, methods=("GET", "POST"))(repositories)
    portal.page("/admin/repositories/{id}", access=ADMIN, methods=("GET", "POST"))(repository_details)
    portal.page("/admin/templates", access=ADMIN, methods=("GET", "POST"))(templates)
    portal.page("/admin/nodes", access=ADMIN, methods=("GET", "POST"))(nodes)
    portal.page("/admin/settings", access=ADMIN, methods=("GET", "POST"))(settings_page)
    portal.page("/admin/audit", access=ADMIN)(audit_log)


def _submit(page: Page, change: Callable[[], Any], done: str) -> tuple[Any | None, dict[str, str], int]:
    """Run a form's change; (redirect, {}, 303) when it worked, else (None, errors, status)."""
    try:
        change()
    except Exception as exc:  # noqa: BLE001 - shown next to the field the service names
        errors, status = refusal(exc)
        return None, errors, status
    separator = "&" if "?" in page.raw.path else "?"
    return page.redirect(f"{page.raw.path}{separator}done={done}"), {}, 303


def _limits_from_form(page: Page) -> dict[str, Any]:
    """The quota form's fields; an empty field means "back to the default" (null), as in the API."""
    return {key: (page.field(key) or None) if key != "maxSessions" or not page.field(key)
            else _int_or_text(page.field(key)) for key in ("maxSessions", "maxCPU", "maxMemory", "maxStorage")}


def _int_or_text(value: str) -> Any:
    return int(value) if value.isdigit() else value


# -- dashboard ------------------------------------------------------------------------------------

def dashboard(page: Page) -> Any:
    summary = platform_summary(page.caller)
    sessions = list_sessions(page.caller, limit=1000)["sessions"]
    live = [s for s in sessions if s["state"] != "terminated"]
    by_template = Counter(s["template"] for s in live).most_common(12)
    by_state = [(state, sum(1 for s in sessions if s["state"] == state)) for state in SESSION_STATES]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=h) for h in range(23, -1, -1)]
    counts: dict[tuple[datetime, str], int] = {}
    for row in audit.hourly_counts("session.", 24):
        counts[(row["hour"].astimezone(UTC), row["action"])] = int(row["n"])
    kinds = {"launched": ("session.create",), "hibernated": ("session.hibernated", "session.hibernate"),
             "woken": ("session.running", "session.wake"), "terminated": ("session.terminated", "session.terminate")}
    timeline = [{"hour": hour, **{kind: sum(counts.get((hour, action), 0) for action in actions)
                                  for kind, actions in kinds.items()}} for hour in hours]
    try:
        node_rows = cluster.list_nodes()
        node_error = None
    except Exception as exc:  # noqa: BLE001 - the dashboard still shows the rest when the cluster is away
        node_rows, node_error = [], str(exc)
    state_history = history(24)
    return page.render("admin/dashboard.html", summary=summary, by_state=by_state, state_history=state_history,
                       state_history_chart=views.state_history_chart(state_history),
                       state_chart=views.bar_chart([(s, float(n)) for s, n in by_state]),
                       template_chart=views.bar_chart([(t, float(n)) for t, n in by_template]),
                       by_template=by_template, timeline=timeline, nodes=node_rows, node_error=node_error,
                       cpu_millicores=cluster.cpu_millicores, memory_bytes=cluster.memory_bytes)


# -- users ----------------------------------------------------------------------------------------

def users(page: Page) -> Any:
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        body = {"username": page.field("username"), "password": page.form.get("password", ""),
                "role": page.field("role") or "user"}
        for optional in ("email", "fullName"):
            if page.field(optional):
                body[optional] = page.field(optional)
        reply, errors, status = _submit(page, lambda: create_user(page.caller, body, page.client_ip), "created")
        if reply is not None:
            return reply
    listing = list_users(role=None, provider=None, active=None, limit=500, offset=0)
    return page.render("admin/users.html", status=status, users=listing["users"], errors=errors,
                       form=page.form, done=page.done)


def user_details(page: Page) -> Any:
    user_id = parse_uuid(page.param("id"), "user")
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        action = page.field("action")
        changes: dict[str, Callable[[], Any]] = {
            "role": lambda: update_user(page.caller, user_id, {"role": page.field("role")}, page.client_ip),
            "disable": lambda: update_user(page.caller, user_id, {"active": False}, page.client_ip),
            "enable": lambda: update_user(page.caller, user_id, {"active": True}, page.client_ip),
            "password": lambda: update_user(page.caller, user_id, {"password": page.form.get("password", "")},
                                            page.client_ip),
            "quota": lambda: set_user_quota(page.caller, user_id, _limits_from_form(page), page.client_ip),
        }
        if action not in changes:
            errors, status = {"": "unknown action"}, 400
        else:
            reply, errors, status = _submit(page, changes[action], action)
            if reply is not None:
                return reply
    return page.render("admin/user.html", status=status, user=get_user(user_id),
                       quota=user_quota(user_id), bars=views.quota_bars(user_quota(user_id)),
                       groups=user_groups(user_id).get("groups", []), errors=errors, form=page.form,
                       done=page.done)


# -- groups ---------------------------------------------------------------------------------------

def groups(page: Page) -> Any:
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        body = {"name": page.field("name")}
        if page.field("displayName"):
            body["displayName"] = page.field("displayName")
        if page.field("description"):
            body["description"] = page.field("description")
        reply, errors, status = _submit(page, lambda: create_group(page.caller, body, page.client_ip), "created")
        if reply is not None:
            return reply
    listing = list_groups(type_=None, parent_id=None, limit=500, offset=0)
    return page.render("admin/groups.html", status=status, groups=listing["groups"], errors=errors,
                       form=page.form, done=page.done)


def group_details(page: Page) -> Any:
    group_id = parse_uuid(page.param("id"), "group")
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        action = page.field("action")
        changes: dict[str, Callable[[], Any]] = {
            "add": lambda: add_member(page.caller, group_id, {"userId": page.field("userId"),
                                                              "role": page.field("role") or "member"},
                                      page.client_ip),
            "remove": lambda: remove_member(page.caller, group_id, parse_uuid(page.field("userId"), "userId"),
                                            page.client_ip),
            "quota": lambda: set_group_quota(page.caller, group_id, _limits_from_form(page), page.client_ip),
        }
        if action not in changes:
            errors, status = {"": "unknown action"}, 400
        else:
            reply, errors, status = _submit(page, changes[action], action)
            if reply is not None:
                return reply
    quota = group_quota(group_id)
    return page.render("admin/group.html", status=status, group=get_group(group_id),
                       members=list_members(group_id, 500, 0).get("members", []),
                       users=list_users(role=None, provider=None, active=True, limit=500, offset=0)["users"],
                       quota=quota, bars=views.quota_bars(quota), errors=errors, form=page.form,
                       done=page.done)


# -- template repositories and templates ----------------------------------------------------------

def repositories(page: Page) -> Any:
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        body = {key: page.field(key) for key in ("name", "url", "branch") if page.field(key)}
        reply, errors, status = _submit(page, lambda: repos.add_repository(body, page.caller, page.client_ip),
                                        "added")
        if reply is not None:
            return reply
    return page.render("admin/repositories.html", status=status,
                       repositories=repos.list_repositories(500, 0)["repositories"], errors=errors,
                       form=page.form, done=page.done)


def repository_details(page: Page) -> Any:
    repository_id = page.param("id")
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        if page.field("action") == "delete":
            repos.delete_repository(repository_id, page.caller, page.client_ip)
            return page.redirect("/admin/repositories?done=deleted")
        reply, errors, status = _submit(
            page, lambda: repos.request_sync(repository_id, page.caller, page.client_ip), "sync")
        if reply is not None:
            return reply
    return page.render("admin/repository.html", status=status, repository=repos.get_repository(repository_id),
                       errors=errors, done=page.done)


def templates(page: Page) -> Any:
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        action = page.field("action")
        if action in ("enable", "disable"):  # the API's PATCH {enabled}
            name = page.field("template")
            reply, errors, status = _submit(
                page, lambda: update_template(name, {"enabled": action == "enable"}, page.caller,
                                                            page.client_ip), f"{action}d")
        elif action in ("prepull", "no-prepull"):  # the API's PATCH {prePull}
            name = page.field("template")
            reply, errors, status = _submit(
                page, lambda: update_template(name, {"prePull": action == "prepull"}, page.caller,
                                                            page.client_ip), action)
        else:
            reply, errors, status = _submit(
                page, lambda: browse.install_template(page.field("id"), page.caller, page.client_ip), "installed")
        if reply is not None:
            return reply
    q = page.query("q")
    catalog = browse.list_templates(category=None, tag=None, q=q, repository=None, limit=200, offset=0)
    return page.render("admin/templates.html", status=status,
                       installed=list_templates(page.caller, limit=1000)["templates"],
                       pools=warm.pool_reports(environment().sessions_namespace),
                       catalog=catalog["templates"], q=q or "", errors=errors, done=page.done)


# -- nodes, settings, audit -----------------------------------------------------------------------

def nodes(page: Page) -> Any:
    errors: dict[str, str] = {}
    status = 200
    if page.raw.method == "POST":
        name, action = page.field("node"), page.field("action")
        changes: dict[str, Callable[[], Any]] = {
            "cordon": lambda: cluster.cordon(page.caller, page.client_ip, name, True),
            "uncordon": lambda: cluster.cordon(page.caller, page.client_ip, name, False),
            "drain": lambda: cluster.drain(page.caller, page.client_ip, name, {}),
            "label": lambda: cluster.set_label(page.caller, page.client_ip, name,
                                                     {"key": page.field("key"), "value": page.field("value")}),
            "unlabel": lambda: cluster.remove_label(page.caller, page.client_ip, name, page.field("key")),
            "taint": lambda: cluster.add_taint(page.caller, page.client_ip, name,
                                                     {"key": page.field("key"), "value": page.field("value"),
                                                      "effect": page.field("effect")}),
            "untaint": lambda: cluster.remove_taint(page.caller, page.client_ip, name, page.field("key"),
                                                          page.field("effect") or None),
        }
        if action not in changes:
            errors, status = {"": "unknown action"}, 400
        else:
            reply, errors, status = _submit(page, changes[action], f"{action}")
            if reply is not None:
                return reply
        errors = {f"{name}:{key}": message for key, message in errors.items()}
    return page.render("admin/nodes.html", status=status, nodes=cluster.list_nodes(), errors=errors,
                       form=page.form, done=page.done)


def settings_page(page: Page) -> Any:
    errors: dict[str, str] = {}
    status = 200
    current = platform_settings()
    if page.raw.method == "POST":
        changes: dict[str, Any] = {}
        for key, value in current.items():
            if isinstance(value, bool):
                changes[key] = page.form.get(key) == "on"
            elif key in page.form:
                changes[key] = _setting_from_form(page.form[key].strip(), value)
        reply, errors, status = _submit(
            page, lambda: update_platform_settings(changes, page.caller, page.client_ip), "saved")
        if reply is not None:
            return reply
    return page.render("admin/settings.html", status=status, config=current, errors=errors, form=page.form,
                       done=page.done)


def _setting_from_form(text: str, current: Any) -> Any:
    """A form field as the JSON the config API takes: numbers stay numbers, an empty optional
    number is null, lists are comma-separated (the service validates the values itself)."""
    if isinstance(current, list):  # shown comma-separated
        return [item.strip() for item in text.split(",") if item.strip()]
    if current is None or isinstance(current, int):
        return None if text == "" else int(text) if text.isdigit() else text
    return text


def _day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError(field, "expected a date such as 2026-12-01") from None


def audit_log(page: Page) -> Any:
    filters = {"user": page.query("user") or "", "action": page.query("action") or "",
               "from": page.query("from") or "", "to": page.query("to") or ""}
    errors: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    status = 200
    try:
        since, until = _day(filters["from"], "from"), _day(filters["to"], "to")
        rows = audit.search(actor=filters["user"] or None, action=filters["action"] or None, since=since,
                            until=until + timedelta(days=1) if until else None, limit=200)
    except Exception as exc:  # noqa: BLE001
        errors, status = refusal(exc)
    return page.render("admin/audit.html", status=status, rows=rows, filters=filters, errors=errors)
