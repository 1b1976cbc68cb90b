"""The portal as one object: every page registered, ready to hand to functions-framework."""

from __future__ import annotations

from streamspace.portal import admin, pages, saved_home
from streamspace.portal.web import Portal


def build_portal() -> Portal:
    portal = Portal("portal")
    pages.register(portal)
    admin.register(portal)
    saved_home.register(portal)
    return portal
