"""Build identity (VERSION, COMMIT, BUILD_DATE).

Image builds bake the build arguments into `_build.py`; a source checkout falls back to the
environment and then to the documented defaults (dev / unknown / empty).
"""

from __future__ import annotations

import os

from streamspace.records import record


@record
class BuildInfo:
    version: str
    commit: str
    build_date: str

    def banner(self) -> str:
        return f"StreamSpace API {self.version} (commit: {self.commit}, built: {self.build_date})"

    def as_json(self) -> dict[str, str]:
        return {"version": self.version, "commit": self.commit, "buildDate": self.build_date, "api": "v1"}


def build_info() -> BuildInfo:
    try:
        from streamspace import _build  # type: ignore[attr-defined]

        baked = (getattr(_build, "VERSION", ""), getattr(_build, "COMMIT", ""), getattr(_build, "BUILD_DATE", ""))
    except ImportError:
        baked = ("", "", "")
    return BuildInfo(
        version=baked[0] or os.environ.get("VERSION") or "dev",
        commit=baked[1] or os.environ.get("COMMIT") or "unknown",
        build_date=baked[2] or os.environ.get("BUILD_DATE") or "",
    )
