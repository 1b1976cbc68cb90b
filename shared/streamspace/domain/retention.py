"""Which backups a retention policy keeps: the newest of each of the last N days, M ISO weeks and
K months that have one (grandfather-father-son). Pure: the caller deletes the rest."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime


def backups_to_keep(backups: Iterable[tuple[str, datetime]], *, daily: int, weekly: int,
                    monthly: int) -> set[str]:
    """The ids to keep of `(id, taken at)` successful backups. The newest is always kept, whatever
    the policy says, so applying retention can never leave no backup at all."""
    newest_first = sorted(backups, key=lambda item: item[1], reverse=True)
    keep: set[str] = {newest_first[0][0]} if newest_first else set()
    periods: tuple[tuple[int, Callable[[datetime], Hashable]], ...] = (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    )
    for count, period_of in periods:
        seen: set[Hashable] = set()
        for backup_id, taken in newest_first:
            period = period_of(taken)
            if period in seen:
                continue
            if len(seen) == count:
                break
            seen.add(period)
            keep.add(backup_id)
    return keep
