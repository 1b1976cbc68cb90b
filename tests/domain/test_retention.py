"""Backup retention (grandfather-father-son): the newest of each of the last N days, M weeks, K months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streamspace.domain.retention import backups_to_keep


def daily_backups(days: int, start: datetime = datetime(2026, 1, 1, 2, tzinfo=UTC)) -> list[tuple[str, datetime]]:
    return [(f"b{i}", start + timedelta(days=i)) for i in range(days)]


def test_the_newest_of_each_of_the_last_days_weeks_and_months_are_kept() -> None:
    backups = daily_backups(120)  # 2026-01-01 .. 2026-04-30, one a day
    keep = backups_to_keep(backups, daily=7, weekly=4, monthly=3)
    taken = dict(backups)
    days = sorted(taken[k].date().isoformat() for k in keep)
    # the last 7 days; the newest of the 4 newest ISO weeks (Sundays 04-26, 04-19, 04-12, the current week's
    # newest 04-30); the newest of April, March, February
    assert days == ["2026-02-28", "2026-03-31", "2026-04-12", "2026-04-19", "2026-04-24", "2026-04-25",
                    "2026-04-26", "2026-04-27", "2026-04-28", "2026-04-29", "2026-04-30"]


def test_several_backups_of_one_day_count_once_and_the_newest_of_them_is_kept() -> None:
    day = datetime(2026, 5, 5, tzinfo=UTC)
    backups = [("early", day + timedelta(hours=1)), ("late", day + timedelta(hours=20)),
               ("yesterday", day - timedelta(hours=2))]
    assert backups_to_keep(backups, daily=1, weekly=0, monthly=0) == {"late"}
    assert backups_to_keep(backups, daily=2, weekly=0, monthly=0) == {"late", "yesterday"}


def test_a_policy_of_zero_still_keeps_the_newest_backup() -> None:
    assert backups_to_keep(daily_backups(3), daily=0, weekly=0, monthly=0) == {"b2"}
    assert backups_to_keep([], daily=7, weekly=4, monthly=6) == set()


# No per-example deadline: a loaded 2-core CI machine must not turn a slow example into a failure.
@settings(max_examples=200)
@given(st.lists(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)), max_size=60),
       st.integers(0, 10), st.integers(0, 6), st.integers(0, 6))
def test_never_more_than_the_policy_allows_and_always_the_newest(times: list[datetime], daily: int, weekly: int,
                                                                 monthly: int) -> None:
    backups = [(f"b{i}", t.replace(tzinfo=UTC)) for i, t in enumerate(times)]
    keep = backups_to_keep(backups, daily=daily, weekly=weekly, monthly=monthly)
    assert keep <= {b for b, _ in backups}
    assert len(keep) <= max(1, daily + weekly + monthly) if backups else not keep
    if backups:
        newest = max(backups, key=lambda item: item[1])
        assert any(t == newest[1] for b, t in backups if b in keep)
