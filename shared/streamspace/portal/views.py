"""Pure helpers that turn the services' JSON into what a page shows (no I/O): times left, quota
bars, plain-words failures, chart geometry. Kept apart so they are tested without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streamspace.config import environment
from streamspace.domain.duration import parse_duration
from streamspace.domain.errors import ValidationError
from streamspace.domain.quantity import cpu_millis, parse_memory
from streamspace.http.api import dumps
from streamspace.records import record


def parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_seconds(seconds: float | None) -> str:
    """1h 05m, 4m 10s, 12s; "—" when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _duration_seconds(text: object) -> int | None:
    try:
        return parse_duration(text, "duration")
    except ValidationError:
        return None


@record
class SessionTimes:
    running_for: float | None  # since creation
    idle_left: float | None  # before the idle sweep hibernates it (running sessions only)
    max_left: float | None  # before the maximum duration ends it


def session_times(session: dict[str, Any], now: datetime | None = None) -> SessionTimes:
    now = now or datetime.now(UTC)
    created = parse_time(session.get("createdAt"))
    running_for = (now - created).total_seconds() if created else None
    idle_left = max_left = None
    if session.get("state") == "running":
        idle = _duration_seconds(session.get("idleTimeout"))
        last = parse_time((session.get("status") or {}).get("lastActivity")) or created
        if idle and last:
            idle_left = (last + timedelta(seconds=idle) - now).total_seconds()
    longest = _duration_seconds(session.get("maxSessionDuration"))
    if longest and created and session.get("state") != "terminated":
        max_left = (created + timedelta(seconds=longest) - now).total_seconds()
    return SessionTimes(running_for, idle_left, max_left)


# A failed session's reconcile message, as a person would explain it. The technical message stays
# visible underneath for whoever has to fix it.
_FAILURE_HINTS = (
    (("ErrImagePull", "ImagePull", "pull"), "The desktop's software image could not be downloaded. "
                                            "An administrator needs to check the template's image."),
    (("template", "Template"), "The application this session was started from is missing or broken. "
                               "Ask an administrator to repair the template, then launch again."),
    (("Insufficient", "Unschedulable", "unschedulable"), "No server has room for this desktop right now. "
                                                           "Try smaller resources or try again later."),
    (("CrashLoopBackOff", "crash"), "The desktop keeps stopping right after it starts."),
    (("OOMKilled", "memory"), "The desktop ran out of memory. Launch it again with more memory."),
    (("resources",), "The resources asked for this session are not valid."),
    (("refused",), "The cluster refused to start this desktop. An administrator can see the details."),
)


def failure_in_words(session: dict[str, Any]) -> str | None:
    status = session.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    message = str(status.get("message") or "")
    for needles, words in _FAILURE_HINTS:
        if any(needle in message for needle in needles):
            return words
    return "The desktop could not be started."


# What the login page may say on arrival (`/login?reason=<code>`): fixed sentences chosen by code,
# never text taken from the address, so a crafted link cannot put words of its own on our login page.
LOGIN_NOTICES = {
    "account-disabled": "This account is disabled. Ask an administrator.",
    "logged-out-everywhere": "You were logged out everywhere.",
}


def login_notice(code: str | None) -> str | None:
    return LOGIN_NOTICES.get(code or "")


# A refused single sign-on (the `ssoError` code the API hands the browser back), as a person would
# be told it: (HTTP status of the page, words). The audit log holds the technical reason.
_SSO_REFUSALS = {
    "denied": (403, "Signing in was cancelled at {provider}, or {provider} did not allow it. You are not logged in."),
    "unavailable": (503, "{provider} is not answering right now, so you could not be signed in. Try again in a few"
                         " minutes."),
    "expired": (400, "This sign-in expired, was already used, or was started in another browser. Start again."),
    "username": (403, "Your {provider} account has no username that StreamSpace accepts. Ask an administrator."),
    "exists": (409, "An account with your username or email already exists here, and signing in with {provider}"
                    " never takes over an existing account. Ask an administrator."),
    "disabled": (403, "Your account is disabled. Ask an administrator."),
    "unconfigured": (501, "Single sign-on is not set up on this server. Log in with your username and password."),
    "refused": (400, "{provider} answered, but StreamSpace could not verify the answer, so you are not logged in."
                     " Try again; if it keeps failing, tell an administrator."),
}


def sso_refusal(code: str) -> tuple[int, str]:
    cfg = environment().oidc
    status, words = _SSO_REFUSALS.get(code, _SSO_REFUSALS["refused"])
    return status, words.format(provider=cfg.provider_name if cfg else "The identity provider")


def start_expectation(session: dict[str, Any]) -> str | None:
    """While a session starts: how long it usually takes and what kind of start it is (warm: a
    desktop was waiting; cached: the image is on the server; cold: it is downloaded first)."""
    status = session.get("status") or {}
    kind = status.get("startKind")
    if phase_of(session) != "Pending" or kind not in ("warm", "cached", "cold"):
        return None
    seconds = status.get("expectedReadySeconds")
    how = {"warm": "a desktop was waiting for you", "cached": "the image is already on the server",
           "cold": "the image is downloaded first"}[kind]
    if isinstance(seconds, int | float):
        return f"Usually ready in about {max(1, round(seconds))} s ({kind} start: {how})."
    return f"No estimate yet ({kind} start: {how})."


def phase_of(session: dict[str, Any]) -> str:
    return str((session.get("status") or {}).get("phase") or "Pending")


@record
class Bar:
    label: str
    used: float
    limit: float | None
    used_text: str
    limit_text: str

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0
        return max(0, min(100, round(100 * self.used / self.limit)))

    @property
    def level(self) -> str:
        return "high" if self.percent >= 90 else "mid" if self.percent >= 70 else "low"


def _amount(resource: str, text: object) -> float | None:
    if text in (None, "", "unlimited"):
        return None
    try:
        if resource == "sessions":
            return float(str(text))
        if resource == "cpu":
            return float(cpu_millis(text, "cpu", allow_zero=True))
        return float(parse_memory(text, resource, allow_zero=True))
    except (ValidationError, ValueError):
        return None


def quota_bars(quota: dict[str, Any]) -> list[Bar]:
    """The contract's quota object (`limits`, `used`) as one bar per resource."""
    limits, used = quota.get("limits") or {}, quota.get("used") or {}
    rows = (("Sessions", "sessions", "maxSessions"), ("CPU", "cpu", "maxCPU"), ("Memory", "memory", "maxMemory"),
            ("Storage", "storage", "maxStorage"))
    bars = []
    for label, key, limit_key in rows:
        amount = _amount(key, used.get(key)) or 0.0
        bars.append(Bar(label, amount, _amount(key, limits.get(limit_key)), str(used.get(key) or "0"),
                        str(limits.get(limit_key) if limits.get(limit_key) is not None else "no limit")))
    return bars


@record
class Column:
    label: str
    value: float
    x: float
    y: float
    height: float
    title: str


def bar_chart(values: list[tuple[str, float]], *, width: int = 360, height: int = 140) -> list[Column]:
    """Geometry of a simple vertical bar chart (labels under, value in the title for hover and
    screen readers; the page also prints the numbers as a table)."""
    if not values:
        return []
    top = max(v for _, v in values) or 1.0
    step = width / len(values)
    columns = []
    for index, (label, value) in enumerate(values):
        bar_height = (height - 20) * value / top
        columns.append(Column(label, value, index * step + step * 0.15, height - 20 - bar_height, bar_height,
                              f"{label}: {value:g}"))
    return columns


@record
class Series:
    state: str
    path: str  # SVG path data: one "M ... L ..." run per stretch of samples, broken where a step has none
    latest: int | None


@record
class LineChart:
    series: list[Series]
    top: int  # the y axis' highest value
    ticks: list[tuple[float, str]]  # (x, "HH:MM") under the x axis


def state_history_chart(history: dict[str, Any], *, left: float = 28, right: float = 472, top_y: float = 10,
                        bottom_y: float = 140) -> LineChart:
    """Geometry of the sessions-by-state plot from the history API's answer (gaps stay gaps)."""
    points = history["points"]
    top = max([1, *(p[state] for p in points for state in history["states"] if p[state] is not None)])
    width = (right - left) / max(1, len(points) - 1)

    def xy(index: int, value: int) -> str:
        return f"{left + index * width:.1f},{bottom_y - (bottom_y - top_y) * value / top:.1f}"

    series = []
    for state in history["states"]:
        runs: list[list[str]] = []
        previous = None
        for index, point in enumerate(points):
            if point[state] is not None:
                if previous != index - 1:
                    runs.append([])
                runs[-1].append(xy(index, point[state]))
                previous = index
        latest = next((p[state] for p in reversed(points) if p[state] is not None), None)
        # a lone sample between gaps is a dot: a zero-length line with round caps
        series.append(Series(state, " ".join("M" + " L".join(run if len(run) > 1 else [run[0], run[0]])
                                             for run in runs), latest))
    ticks = [(left + index * width, parse_time(points[index]["at"]).strftime("%H:%M"))  # type: ignore[union-attr]
             for index in sorted({0, len(points) // 2, len(points) - 1})] if points else []
    return LineChart(series, top, ticks)


def live_version(data: Any) -> str:
    """A fingerprint of what a live region shows: the page's script swaps the region only when it
    changed (the clocks in it tick in the browser), so a control is never replaced under the user."""
    import hashlib


    return hashlib.sha256(dumps(data)).hexdigest()[:16]


FILTERS: dict[str, Any] = {"seconds": human_seconds}
