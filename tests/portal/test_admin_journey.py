"""An admin's journey in real headless chromium against the whole local system (simulated cluster,
catalog sync through the local event relay, a real git repository): create a user (a refused form
first), set their quota, manage a group, add a repository and see its sync result with the
per-file errors, install a template from it, cordon and label a node, change a setting, read the
audit log; axe-core on every admin page."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from kubernetes import client
from playwright.sync_api import expect

from tests.catalog.gitrepo import GitRepo
from tests.portal.conftest import ADMIN_PASSWORD, admin_principal, make_template, new_user, principal, wait_until

GOOD_TEMPLATE = """\
apiVersion: stream.space/v1alpha1
kind: Template
metadata:
  name: inkscape
spec:
  displayName: Inkscape
  description: Vector graphics editor
  category: Graphics
  baseImage: lscr.io/linuxserver/inkscape:latest
  defaultResources: {cpu: "1", memory: 2Gi}
  vnc: {enabled: true, port: 3000}
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = GitRepo(tmp_path_factory.mktemp("catalog") / "templates")
    repo.write("templates/inkscape.yaml", GOOD_TEMPLATE)
    repo.write("templates/broken.yaml", "kind: Template\nspec: [this is not a template\n")
    repo.commit("two templates, one broken")
    return repo


@pytest.fixture(scope="module")
def node(stack: Any) -> str:
    from tests.cluster.conftest import make_node

    api_client = stack.sim.api_client()
    name = f"worker-{uuid.uuid4().hex[:6]}"
    make_node(client.CoreV1Api(api_client), name, cpu="8", memory="16Gi")
    api_client.close()
    return name


@pytest.fixture
def admin(person) -> Any:
    me = person()
    me.login("admin", ADMIN_PASSWORD, path="/login?next=/admin")
    return me


def test_dashboard_plots_sessions_and_node_capacity(person, node) -> None:
    from streamspace.sessions.service import create_session

    make_template("krita", displayName="Krita")
    username, user_id = new_user()
    for _ in range(2):
        create_session(principal(user_id, username), {"template": "krita"})
    admin = person()
    admin.login("admin", ADMIN_PASSWORD, path="/login?next=/admin")
    assert admin.page.url.endswith("/admin")
    assert "krita 2" in admin.page.locator("#by-template-t").text_content()
    assert admin.page.locator("svg[role=img] title").count() >= 2  # charts carry their numbers as text
    assert node in admin.page.locator("#nodes-h + ul").inner_text()
    admin.check("admin-dashboard")


def test_create_a_user_and_set_their_quota(admin, base) -> None:
    admin.goto("/admin/users")
    admin.check("admin-users")
    username = f"ann{uuid.uuid4().hex[:6]}"
    admin.page.fill("#f-username", "Not A Name!")
    admin.page.fill("#f-password", "long-enough-password")
    admin.page.click("section.card button.primary")
    assert admin.page.locator("#f-username-error").is_visible()  # next to its field
    assert admin.page.locator("#f-username").get_attribute("aria-invalid") == "true"
    assert "Not A Name!" not in admin.page.locator("table").inner_text()  # nothing was saved
    admin.page.fill("#f-username", username)
    admin.page.fill("#f-fullName", "Ann Example")
    admin.page.fill("#f-password", "long-enough-password")
    admin.page.click("section.card button.primary")
    assert "email address" in admin.page.locator("#f-email-error").inner_text()  # the service's own rule
    admin.page.fill("#f-email", f"{username}@example.com")
    admin.page.fill("#f-password", "long-enough-password")
    admin.page.click("section.card button.primary")
    assert admin.page.locator(".notice").inner_text() == "User created."
    admin.page.click(f"text={username}")
    user_url = admin.page.url
    admin.check("admin-user")

    admin.page.fill("#f-maxMemory", "lots")
    admin.page.fill("#f-maxSessions", "3")
    admin.page.get_by_role("button", name="Save quota").click()
    assert admin.page.locator("#f-maxMemory-error").is_visible()
    from streamspace.quotas.service import user_quota

    user_id = user_url.rsplit("/", 1)[1]
    assert user_quota(user_id)["limits"]["maxSessions"] != 3  # nothing half-saved
    admin.page.fill("#f-maxMemory", "8Gi")
    admin.page.get_by_role("button", name="Save quota").click()
    assert admin.page.locator(".notice").inner_text() == "Quota saved."
    assert user_quota(user_id)["limits"] == {**user_quota(user_id)["limits"], "maxSessions": 3, "maxMemory": "8Gi"}

    admin.page.select_option("#f-role", "operator")
    admin.page.get_by_role("button", name="Change role").click()
    assert admin.page.locator(".notice").inner_text() == "Role changed."
    admin.page.fill("#f-password", "another-long-password")
    admin.page.get_by_role("button", name="Reset password").click()
    assert admin.page.locator(".notice").inner_text().startswith("Password reset")
    admin.page.get_by_role("button", name="Disable user").click()
    assert "disabled" in admin.page.locator(".facts").inner_text()


def test_groups_members_and_group_quota(admin) -> None:
    admin.goto("/admin/groups")
    admin.check("admin-groups")
    name = f"team-{uuid.uuid4().hex[:6]}"
    admin.page.fill("#f-name", name)
    admin.page.click("section.card button.primary")
    admin.page.click(f"text={name}")
    admin.page.select_option("#f-userId", label="admin")
    admin.page.get_by_role("button", name="Add member").click()
    assert admin.page.locator(".notice").inner_text() == "Member added."
    assert "admin (member)" in admin.page.locator("ul.plain").first.inner_text()
    admin.page.fill("#f-maxCPU", "16")
    admin.page.get_by_role("button", name="Save quota").click()
    assert admin.page.locator(".notice").inner_text() == "Quota saved."
    admin.check("admin-group")


def test_add_a_repository_and_see_its_sync_result(admin, repository) -> None:
    admin.goto("/admin/repositories")
    admin.check("admin-repositories")
    admin.page.fill("#f-name", "team-catalog")
    admin.page.fill("#f-url", "not a url")
    admin.page.click("section.card button.primary")
    assert admin.page.locator("#f-url-error").is_visible()
    admin.page.fill("#f-url", repository.url)
    admin.page.click("section.card button.primary")
    assert admin.page.locator(".notice").inner_text().startswith("Repository added")
    admin.page.click("text=team-catalog")

    def synced() -> bool:
        admin.page.reload()
        return admin.page.locator("#repo-status").inner_text() not in ("pending", "syncing")

    wait_until(synced, "the repository's first sync", timeout=60)
    facts = admin.page.locator(".facts").inner_text()
    assert re.search(r"Templates\s+1", facts), facts
    assert "broken.yaml" in admin.page.locator(".file-errors").inner_text()
    admin.check("admin-repository")

    admin.goto("/admin/templates")
    admin.page.click("button[aria-label='Install Inkscape']")
    assert admin.page.locator(".notice").inner_text() == "Template installed."
    assert "Inkscape" in admin.page.locator("table").first.inner_text()
    admin.check("admin-templates")


def test_admins_see_each_warm_pool_with_its_size_ready_desktops_and_counters(admin) -> None:
    from streamspace.sessions.service import create_session

    make_template("warmdesk", displayName="Warm Desk", warmPool={
        "size": 1, "maxAge": "4h", "timeZone": "Europe/Berlin",
        "schedule": [{"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "end": "18:00", "size": 2}]})
    admin.goto("/admin/templates")
    row = admin.page.locator("#pool-warmdesk")
    assert "Mon, Tue, Wed, Thu, Fri 08:00–18:00: 2" in row.inner_text()
    assert "1 outside, up to 2 (Europe/Berlin)" in row.inner_text()

    def cells() -> list[str]:
        admin.goto("/admin/templates")
        return admin.page.locator("#pool-warmdesk td").all_inner_texts()

    # Size now, Ready (the schedule decides whether 1 or 2 are kept at the moment the test runs).
    wait_until(lambda: (lambda c: c[0] in ("1", "2") and c[1] == c[0])(cells()), "the pool ready")
    username, user_id = new_user()
    claimed = create_session(principal(user_id, username), {"template": "warmdesk", "persistentHome": False})
    assert claimed["warmStart"]["claimed"] is True, claimed["warmStart"]
    texts = cells()
    assert texts[3:6] == ["1", "0", "0"], texts  # claims, misses, recycles
    assert "PoolApplied" in texts[6]
    admin.check("admin-templates-warm-pools")


def test_pre_pull_a_template_and_see_its_nodes_count(admin) -> None:
    """Pre-pull from the templates page: template-reconcile makes the image puller, its events count the
    nodes that have the image into the row; stopping removes the puller."""
    from streamspace import kube
    from streamspace.config import environment
    from streamspace.reconcile.pullers import puller_name
    from streamspace.templates import service as templates

    image = f"example.com/pullme-{uuid.uuid4().hex[:6]}:1"
    make_template("pullme", displayName="PullMe", baseImage=image)
    admin.goto("/admin/templates")
    admin.page.click("button[aria-label='Pre-pull PullMe']")
    assert admin.page.locator(".notice").inner_text().startswith("Pre-pull on")

    def counted() -> bool:
        pulled = templates.get_template("pullme", admin_principal())["status"].get("prePull") or {}
        return bool(pulled.get("nodesDesired")) and pulled["nodesReady"] == pulled["nodesDesired"]

    wait_until(counted, "every node has the image")
    nodes = templates.get_template("pullme", admin_principal())["status"]["prePull"]["nodesDesired"]
    admin.goto("/admin/templates")
    row = admin.page.locator("tr", has_text="PullMe")
    assert row.locator("[data-testid=prepull-nodes]").inner_text() == f"{nodes} of {nodes} nodes"
    admin.check("admin-templates-prepull")
    admin.page.click("button[aria-label='Stop pre-pulling PullMe']")
    assert admin.page.locator(".notice").inner_text().startswith("Pre-pull off")
    wait_until(lambda: kube.get("DaemonSet", puller_name(image), environment().sessions_namespace) is None,
               "the puller removed")


def test_disable_a_template_then_enable_it_again(admin, person, base) -> None:
    """Disabled: gone from users' catalog, marked for admins, not launchable (the refusal in words),
    while a session already running from it stays Running; enabled again: back for everyone."""
    from streamspace.sessions.service import create_session, get_session

    make_template("mypaint", displayName="MyPaint", category="Graphics")
    username, user_id = new_user()
    owner = principal(user_id, username)
    running = create_session(owner, {"template": "mypaint"})["name"]
    wait_until(lambda: get_session(owner, running)["status"]["phase"] == "Running", "the session Running")

    admin.goto("/admin/templates")
    admin.page.click("button[aria-label='Disable MyPaint']")
    assert admin.page.locator(".notice").inner_text().startswith("Template disabled")
    assert "Disabled" in admin.page.locator("tr", has_text="MyPaint").inner_text()
    admin.check("admin-templates-disabled")
    admin.goto("/?q=mypaint")  # admins still see it, marked
    assert "Disabled" in admin.page.locator(".tile", has_text="MyPaint").inner_text()
    admin.goto("/catalog/mypaint")
    assert "This template is disabled" in admin.page.locator("#launch-h + [role=status]").inner_text()
    admin.check("template-disabled")
    admin.page.click("button.primary")  # even an admin cannot launch it; the refusal says why
    assert "disabled by an administrator" in admin.page.locator("#size-error").inner_text()

    user = person()
    user.login(username, path="/login?next=/")
    assert "MyPaint" not in user.page.locator(".tile h2").all_inner_texts()
    assert user.goto("/catalog/mypaint").status == 404
    user.check("catalog-template-hidden")
    # The session started before goes on: it is still Running, and it hibernates and wakes (the
    # reconcile builds its desktop again from the disabled template).
    user.goto("/sessions")
    row = user.page.locator(f"#row-{running}")
    assert "running · Running" in row.inner_text()
    user.page.click(f"#hibernate-{running}")
    expect(row).to_contain_text("hibernated · Hibernated", timeout=30_000)
    user.page.click(f"#wake-{running}")
    expect(row).to_contain_text("running · Running", timeout=30_000)

    admin.goto("/admin/templates")
    admin.page.click("button[aria-label='Enable MyPaint']")
    assert admin.page.locator(".notice").inner_text().startswith("Template enabled")
    user.goto("/?q=mypaint")
    assert user.page.locator(".tile h2").all_inner_texts() == ["MyPaint"]


def test_cordon_label_and_taint_a_node(admin, node, stack) -> None:
    admin.goto("/admin/nodes")
    card = admin.page.locator("section.node", has_text=node)
    card.locator(f"button[aria-label='Cordon {node}']").click()
    card = admin.page.locator("section.node", has_text=node)
    assert card.locator("[data-testid=node-status]").inner_text() == "SchedulingDisabled"
    api_client = stack.sim.api_client()
    assert client.CoreV1Api(api_client).read_node(node).spec.unschedulable is True
    card.locator("summary").click()
    card.locator("input[name=key]").first.fill("gpu")
    card.locator("input[name=value]").first.fill("a100")
    card.get_by_role("button", name="Set label").click()
    assert client.CoreV1Api(api_client).read_node(node).metadata.labels["gpu"] == "a100"
    card = admin.page.locator("section.node", has_text=node)
    card.locator("summary").click()
    card.locator("input[name=key]").nth(1).fill("dedicated")
    card.locator("input[name=value]").nth(1).fill("<b>x</b>")
    card.get_by_role("button", name="Add taint").click()
    card = admin.page.locator("section.node", has_text=node)
    assert card.locator("[role=alert]").count() == 1  # an invalid taint value: refused next to the node
    api_client.close()
    admin.check("admin-nodes")


def test_settings_and_audit_log(admin) -> None:
    admin.goto("/admin/settings")
    admin.page.fill("#f-session-defaultIdleTimeout", "soon")
    admin.page.get_by_role("button", name="Save settings").click()
    assert admin.page.locator("#f-session-defaultIdleTimeout-error").is_visible()
    from streamspace.settings.service import platform_settings

    assert platform_settings()["session.defaultIdleTimeout"] != "soon"
    admin.page.fill("#f-session-defaultIdleTimeout", "45m")
    admin.page.get_by_role("button", name="Save settings").click()
    assert admin.page.locator(".notice").inner_text() == "Settings saved."
    assert platform_settings()["session.defaultIdleTimeout"] == "45m"
    admin.check("admin-settings")

    admin.goto("/admin/audit?action=config")
    assert "config" in admin.page.locator("tbody").inner_text()
    admin.page.fill("#f-user", "nobody-at-all")
    admin.page.click("form[role=search] button")
    assert admin.page.locator("tbody").inner_text().strip() == "No entries."
    admin.page.fill("#f-user", "")
    admin.page.fill("#f-from", "2020-01-01")
    admin.page.click("form[role=search] button")
    admin.check("admin-audit")
