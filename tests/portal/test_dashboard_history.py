"""The dashboard's plot of sessions by state over time, in real headless chromium against the whole
local system: sessions launched and hibernated through the sessions API, reconciled by the local event
relay, counted by the idle-sweep PingSource tick fired as the relay fires it; the plot, its legend and
its table show those counts, axe-core finds nothing, and it fits a 390 px wide phone."""

from __future__ import annotations

from typing import Any

import requests

from tests.conftest import token_for
from tests.portal.conftest import ADMIN_PASSWORD, make_template, new_user, wait_until


def tick(stack: Any) -> None:
    """The idle-sweep PingSource's event, through the broker as the relay sends it each minute."""
    from streamspace.local.routing import schedules

    stack.relay.fire(next(s for s in schedules() if s.name == "idle-sweep"))
    assert stack.relay.wait_idle(60)


def test_the_dashboard_plots_sessions_by_state_from_real_ticks(person, base, stack) -> None:
    from streamspace.db import fetch_all

    make_template("gimp", displayName="GIMP")
    username, user_id = new_user()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token_for(user_id, username)}"
    names = []
    for _ in range(3):
        created = api.post(f"{base}/api/v1/sessions", json={"template": "gimp"}, timeout=30)
        assert created.status_code == 201, created.text
        names.append(created.json()["name"])

    def states() -> dict[str, tuple[str, str]]:
        return {r["name"]: (r["state"], r["phase"]) for r in fetch_all(
            "SELECT name, state, phase FROM sessions WHERE name = ANY(%s)", (names,))}

    wait_until(lambda: all(v == ("running", "Running") for v in states().values()), "three sessions Running")
    assert api.patch(f"{base}/api/v1/sessions/{names[0]}", json={"state": "hibernated"}, timeout=30).ok
    wait_until(lambda: states()[names[0]] == ("hibernated", "Hibernated"), "one session Hibernated")
    tick(stack)

    admin = person()
    admin.login("admin", ADMIN_PASSWORD, path="/login?next=/admin")
    legend = admin.page.locator("#by-state-h ~ figure figcaption").inner_text()
    assert "running (2 now)" in legend and "hibernated (1 now)" in legend
    assert "pending (0 now)" in legend and "failed (0 now)" in legend
    title = admin.page.locator("#sh-t").text_content()
    assert "latest: 0 pending, 2 running, 1 hibernated, 0 failed" in title
    drawn = admin.page.locator(".history-svg path.line.running")
    assert drawn.get_attribute("d").startswith("M")
    assert drawn.bounding_box() is not None  # laid out (a lone sample is a dot)
    admin.page.get_by_text("Numbers by state").click()  # the table screen readers and keyboards get
    newest = admin.page.locator("#by-state-h ~ details tbody tr").first
    assert [c.inner_text() for c in newest.locator("td").all()] == ["0", "2", "1", "0"]
    admin.check("admin-dashboard-history")

    phone = person(width=390, height=844)
    phone.login("admin", ADMIN_PASSWORD, path="/login?next=/admin")
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 390
    box = phone.page.locator(".history-svg").bounding_box()
    assert box is not None and 0 < box["x"] and box["x"] + box["width"] <= 390
    phone.check("admin-dashboard-history-390")
