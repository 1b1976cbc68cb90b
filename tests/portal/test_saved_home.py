"""The portal's saved-home page (persistent profiles, issue 15) in real chromium, with axe-core: a user
sees their saved versions (when, size, which is current) and their recent failed restores, makes an older
version current and deletes one; the versions come from real saves of the profile agent (its own process)
through the storage function, into moto's S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import environment
from tests.portal.conftest import new_user
from tests.storage.conftest import S3Store, s3_server, s3_store  # noqa: F401 - this module's object store
from tests.storage.test_profiles import AGENT, token


@pytest.fixture(scope="module", autouse=True)
def profiles_in_s3(s3_store: S3Store) -> Iterator[None]:  # noqa: F811 - the fixture imported above
    """Before the stack starts (autouse fixtures come first): homes are profiles in moto's bucket."""
    with environment(HOME_STORAGE="s3"):
        yield


def save(base: str, user_id: str, desk: str, home: Path, content: str) -> None:
    (home / "notes.txt").write_text(content)
    env = {"PATH": os.environ.get("PATH", ""), "PROFILE_API": base, "PROFILE_TOKEN": token(user_id, desk),
           "HOME_DIR": str(home)}
    done = subprocess.run([sys.executable, str(AGENT), "save"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def rows(pages: Any) -> list[str]:
    return [r.inner_text() for r in pages.page.locator("table tbody tr").all()]


def test_a_user_sees_their_saved_home_picks_an_older_version_and_deletes_one(person: Any, base: str,
                                                                               tmp_path: Path) -> None:
    username, user_id = new_user(prefix="home")
    home = tmp_path / "home"
    home.mkdir()
    save(base, user_id, "desk-a", home, "first")
    save(base, user_id, "desk-b", home, "second")
    failed = requests.post(f"{base}/api/v1/profiles/agent/failures", timeout=30,
                           headers={"Authorization": f"Bearer {token(user_id, 'desk-b')}"},
                           json={"operation": "restore", "reason": "the profile's checksum does not match"})
    assert failed.status_code == 200, failed.text

    pages = person()
    pages.login(username)
    pages.goto("/profile/home")
    pages.check("saved home")
    assert pages.page.locator("nav a[aria-current=page]").inner_text() == "Saved home"
    assert "your home could not be restored" in pages.page.locator("section.card").inner_text()
    listed = rows(pages)
    assert len(listed) == 2 and "Current" in listed[0] and "Older" in listed[1]
    assert "desk-a" in listed[1] and ("bytes" in listed[1] or "KiB" in listed[1])

    pages.page.locator("table tbody tr").nth(1).get_by_role("button", name="Make current").click()
    pages.page.wait_for_load_state()
    assert "now current" in pages.page.locator(".notice").inner_text()
    pages.check("saved home, an older version made current")
    listed = rows(pages)
    assert "Older" in listed[0] and "Current" in listed[1]

    pages.page.locator("table tbody tr").nth(0).get_by_role("button", name="Delete").click()
    pages.page.wait_for_load_state()
    assert pages.page.locator(".notice").inner_text() == "Version deleted."
    listed = rows(pages)
    assert len(listed) == 1 and "Current" in listed[0] and "desk-a" in listed[0]
    restored = tmp_path / "restored"
    restored.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PROFILE_API": base, "PROFILE_TOKEN": token(user_id, "desk-c"),
           "HOME_DIR": str(restored)}
    assert subprocess.run([sys.executable, str(AGENT), "restore"], env=env, timeout=120).returncode == 0
    assert (restored / "notes.txt").read_text() == "first"  # the version picked on the page


def test_another_users_version_is_not_found_from_the_page(person: Any, base: str, tmp_path: Path) -> None:
    owner, owner_id = new_user(prefix="home")
    home = tmp_path / "home"
    home.mkdir()
    save(base, owner_id, "desk-a", home, "mine")
    save(base, owner_id, "desk-b", home, "mine again")
    from streamspace.db import fetch_one

    older = fetch_one("SELECT id::text AS id FROM profiles WHERE user_id = %s AND NOT is_current", (owner_id,))
    assert older is not None
    stranger, _ = new_user(prefix="home")
    pages = person()
    pages.login(stranger)
    pages.goto("/profile/home")
    assert "No saved version yet" in pages.page.locator("main").inner_text()
    csrf = pages.page.evaluate("() => document.querySelector('form input[name=csrf]').value")
    answer = pages.page.request.post(f"{base}/profile/home/{older['id']}/delete", form={"csrf": csrf})
    assert answer.status == 404
    assert fetch_one("SELECT 1 AS one FROM profiles WHERE id = %s", (older["id"],)) is not None
