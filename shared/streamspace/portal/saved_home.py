"""The user's saved home (persistent profiles, HOME_STORAGE=s3; docs/s3.md): the versions of their home
(when saved, size, which is current), the last failed restores and saves, and making an older version
current or deleting one. Each action calls the service the API's routes call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streamspace.http.api import Access
from streamspace.http.errors import NotFound
from streamspace.portal.web import Page, Portal, refusal
from streamspace.profiles import service as profiles

ACTIONS = ("current", "delete")
_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB")


def register(portal: Portal) -> None:
    portal.page("/profile/home", access=Access.USER)(saved_home)
    portal.page("/profile/home/{id}/{action}", access=Access.USER, methods=("POST",))(version_action)


def size_in_words(size: int) -> str:
    """1536 -> '1.5 KiB' (binary units, as quotas are shown)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} bytes" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def when_in_words(moment: datetime | str) -> str:
    """A stored time as the page shows it: UTC, to the minute."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.strftime("%Y-%m-%d %H:%M UTC")


def saved_home(page: Page, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    home = profiles.saved_home(page.caller.user_id)
    versions = [{**v, "saved": when_in_words(v["createdAt"]), "size": size_in_words(v["sizeBytes"])}
                for v in home["versions"]]
    failures = [{**f, "when": when_in_words(f["at"])} for f in home["failures"]]
    return page.render("saved_home.html", status=status, enabled=home["enabled"], versions=versions,
                       failures=failures, errors=errors or {}, done=page.query("done"))


def version_action(page: Page) -> Any:
    action = page.param("action")
    if action not in ACTIONS:
        raise NotFound("no such page", error="not found")
    try:
        if action == "current":
            profiles.set_current(page.caller, page.param("id"), page.client_ip)
        else:
            profiles.delete_profile(page.caller, page.param("id"), page.client_ip)
    except Exception as exc:  # noqa: BLE001 - the service's refusal, shown on the page
        errors, status = refusal(exc)
        return saved_home(page, errors, status)
    return page.redirect(f"/profile/home?done={action}")
