"""What each function imports before its first answer: its own routes' modules, not the library's
others (issue 12's cold start).

Every module a function imports at start costs its cold start (the import machinery, unmarshalling,
running its body), whether or not a request ever uses it. Each function's main module is imported
in a fresh interpreter, as functions-framework imports it, and the modules it must not have pulled
in are named per function: the parts of the library that only other functions' routes use. A
structural guard, not a timing: when one fails, an import chain grew (`python -X importtime` shows
which), and the fix is the module graph, not a lazy import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))

# Never at start: test and local-run harnesses, the official Kubernetes client (tests only), PyYAML
# (imported where a catalog checkout or a YAML kubeconfig is parsed, neither before a first answer).
EVERYWHERE = ("streamspace.sim", "streamspace.local", "streamspace.__main__", "kubernetes", "yaml")
# The portal's pages, in the portal only.
PORTAL = ("streamspace.portal",)
# What launching a session needs (Templates, warm pools, the session operations): only the functions
# whose routes launch, reconcile or count sessions and Templates.
SESSION_OPERATIONS = ("streamspace.sessions.service", "streamspace.sessions.live", "streamspace.sessions.warm",
                      "streamspace.domain.templates", "streamspace.domain.warm", "streamspace.templates",
                      "streamspace.reconcile")
# A CloudEvent function answers no HTTP route of the API.
HTTP_LAYER = ("streamspace.http",)
# The Kubernetes client, for the functions whose routes never call the cluster.
CLUSTER = ("streamspace.kube",)

NOT_IMPORTED: dict[str, tuple[str, ...]] = {
    "auth": (*PORTAL, *CLUSTER, *SESSION_OPERATIONS),
    # the forward-auth check and the ticket's redeem: the desktop access rules only
    "auth-check": (*PORTAL, *CLUSTER, *SESSION_OPERATIONS[:-1], "streamspace.sessions", "streamspace.catalog",
                   "streamspace.sso", "streamspace.mfa", "streamspace.events"),
    "backup": (*PORTAL, *HTTP_LAYER, "streamspace.reconcile", "streamspace.sessions"),
    "catalog": (*PORTAL, "streamspace.reconcile", "streamspace.sessions"),
    "catalog-sync": (*PORTAL, *HTTP_LAYER, "streamspace.reconcile", "streamspace.sessions",
                     *CLUSTER),
    "cluster": (*PORTAL, *SESSION_OPERATIONS, "streamspace.sessions"),
    "config": (*PORTAL, *CLUSTER, *SESSION_OPERATIONS, "streamspace.sessions", "streamspace.catalog"),
    "dead-letter": (*PORTAL, *HTTP_LAYER, *CLUSTER, *SESSION_OPERATIONS, "streamspace.sessions"),
    "idle-sweep": (*PORTAL, *HTTP_LAYER, "streamspace.sessions.service", "streamspace.sessions.live"),
    "metrics": (*PORTAL, *SESSION_OPERATIONS),
    "portal": (),
    "resync": (*PORTAL, *HTTP_LAYER, "streamspace.sessions.service", "streamspace.sessions.live"),
    "session-reconcile": (*PORTAL, *HTTP_LAYER, "streamspace.sessions.service", "streamspace.sessions.live"),
    "sessions": (*PORTAL, "streamspace.reconcile", "streamspace.catalog"),
    "storage": (*PORTAL, "streamspace.reconcile", "streamspace.sessions.service"),
    "template-reconcile": (*PORTAL, *HTTP_LAYER, "streamspace.sessions.service", "streamspace.sessions.live"),
    "templates": (*PORTAL, "streamspace.reconcile", "streamspace.sessions.service", "streamspace.catalog"),
    # users, groups, quotas and MFA; one route lists a user's sessions (sessions.listing), none launches
    "users": (*PORTAL, *CLUSTER, *SESSION_OPERATIONS),
    "webhooks": (*PORTAL, *CLUSTER, *SESSION_OPERATIONS, "streamspace.sessions"),
}

IMPORT = """
import json, sys
import functions_framework
functions_framework.create_app("handle", sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def _imported(function: str, tmp_path: Path) -> list[str]:
    """The modules loaded once functions-framework has imported `function`'s main module, in a fresh
    interpreter (its start needs settings, not a database: nothing connects before a request)."""
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
           "WEBHOOK_SECRET": "import-guard-" + "x" * 32, "STREAMSPACE_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", IMPORT, str(ROOT / "functions" / function / "main.py")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_function_is_listed() -> None:
    assert sorted(NOT_IMPORTED) == FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_imports_nothing_its_routes_do_not_use(function: str, tmp_path: Path) -> None:
    modules = _imported(function, tmp_path)
    assert "streamspace.http" in modules or "streamspace.events" in modules  # it did import its app
    unwanted = (*EVERYWHERE, *NOT_IMPORTED[function])
    found = sorted(m for m in modules if any(m == u or m.startswith(u + ".") for u in unwanted))
    assert found == [], f"{function} imports {found} at start"
