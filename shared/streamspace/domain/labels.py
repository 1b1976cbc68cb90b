"""The labels StreamSpace puts on what it creates on the cluster (selectors depend on them)."""

from __future__ import annotations

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER_NAME = "streamspace"
APP_NAME = "app.kubernetes.io/name"
SESSION_APP = "streamspace-session"
HOME_APP = "streamspace-home"
LABEL_SESSION = "stream.space/session"
LABEL_USER = "stream.space/user"
LABEL_TEMPLATE = "stream.space/template"
