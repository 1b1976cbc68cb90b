"""Login attempts, throttled per username+address and per address (never locked per username).

Throttling follows OWASP's advice against account lockout: failures count per (username, client
address) pair, and past LOGIN_MAX_FAILURES each further try from that pair must wait a delay that
doubles per failure (1 s, 2 s, 4 s, ... up to LOGIN_WINDOW). An address that fails against many
usernames (spraying) is stopped at LOGIN_MAX_ADDRESS_FAILURES per window. So an attacker slows only
their own addresses: the account's owner, from an address that has not been failing, logs in.
Attempts are rows in login_attempts (this module is their store), so every function instance sees
the same counts. An attempt is recorded as a failure *before* the password is checked (and flipped
to a success after), under a short advisory lock per username and address: concurrent guesses
cannot overshoot the limit. Password login (`streamspace.login`) and the second factor
(`streamspace.mfa`) both go through here.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

from streamspace.config import environment
from streamspace.domain.errors import RateLimited

if TYPE_CHECKING:
    from streamspace.db import Connection

# Failures in the window of this username from this address (since the pair's last success), how
# long ago the last of them was; and the failures of this address, with the moment the oldest one
# that keeps it at its limit leaves the window. `now` is the clock read after the advisory lock was
# taken, never now() (the transaction's start, before it queued for the lock: stale by the whole wait).
_FAILURES = """
WITH p AS (
  SELECT attempted_at FROM login_attempts
   WHERE username = %(username)s AND client_ip = %(ip)s AND NOT succeeded
     AND attempted_at > %(now)s::timestamptz - %(window)s * interval '1 second'
     AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                   WHERE username = %(username)s AND client_ip = %(ip)s AND succeeded), '-infinity')
), a AS (
  SELECT attempted_at FROM login_attempts
   WHERE client_ip = %(ip)s AND NOT succeeded AND attempted_at > %(now)s::timestamptz - %(window)s * interval '1 second'
), u AS (
  SELECT attempted_at FROM login_attempts
   WHERE %(per_account)s AND username = %(username)s AND NOT succeeded
     AND attempted_at > %(now)s::timestamptz - %(window)s * interval '1 second'
     AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                   WHERE username = %(username)s AND succeeded), '-infinity')
)
SELECT (SELECT count(*) FROM p) AS pair_failures,
       extract(epoch FROM %(now)s::timestamptz - (SELECT max(attempted_at) FROM p)) AS since_last,
       (SELECT count(*) FROM a) AS ip_failures,
       extract(epoch FROM (SELECT attempted_at FROM a ORDER BY attempted_at DESC OFFSET %(ip_max)s - 1 LIMIT 1)
                          + %(window)s * interval '1 second' - %(now)s::timestamptz) AS ip_retry,
       (SELECT count(*) FROM u) AS user_failures,
       extract(epoch FROM (SELECT attempted_at FROM u ORDER BY attempted_at DESC OFFSET %(max)s - 1 LIMIT 1)
                          + %(window)s * interval '1 second' - %(now)s::timestamptz) AS user_retry
"""


def pair_delay(failures: int, free: int, ceiling: int) -> int:
    """Seconds a (username, address) pair must wait after its last failure: none for the first
    `free` failures, then 1, 2, 4, ... seconds, at most `ceiling`."""
    if failures < free:
        return 0
    return min(ceiling, 2 ** min(failures - free, 30))


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(("streamspace.login:" + text).encode()).digest()[:8], "big", signed=True)


def begin_attempt(conn: Connection, username: str, client_ip: str, *, per_account: bool = False) -> int:
    """Refuse (429) while this username+address pair must wait, or the address is over its limit;
    otherwise record this attempt as a failure and return its id (flipped on success).

    `per_account` also stops the account itself at LOGIN_MAX_FAILURES per window, from any
    addresses: for a second factor, whose guesser already holds the password."""

    cfg = environment()
    keys = sorted({_lock_key("user:" + username), _lock_key("ip:" + client_ip)})
    conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", (keys,))
    # Judged and recorded at one instant read under the lock, so the attempts of a pair are stamped
    # in the order they were judged. With now() a guess that queued for the lock was stamped with the
    # moment it began queueing: the next guess saw the last failure as long past and got through early.
    clock = conn.execute("SELECT clock_timestamp() AS now").fetchone()
    if clock is None:
        raise RuntimeError("invariant broken: clock is None")
    now = clock["now"]
    counts = conn.execute(_FAILURES, {"now": now, "username": username, "ip": client_ip,
                                      "window": cfg.login_window_seconds,
                                      "ip_max": cfg.login_max_address_failures, "max": cfg.login_max_failures,
                                      "per_account": per_account}).fetchone()
    if counts is None:
        raise RuntimeError("invariant broken: counts is None")
    waits = [0.0]
    delay = pair_delay(int(counts["pair_failures"]), cfg.login_max_failures, cfg.login_window_seconds)
    if delay:
        waits.append(delay - float(counts["since_last"] or 0))
    if counts["ip_failures"] >= cfg.login_max_address_failures:
        waits.append(float(counts["ip_retry"] or cfg.login_window_seconds))
    if counts["user_failures"] >= cfg.login_max_failures:
        waits.append(float(counts["user_retry"] or cfg.login_window_seconds))
    if max(waits) > 0:
        retry = max(1, math.ceil(max(waits)))
        raise RateLimited(f"too many failed login attempts; try again in {retry} seconds", retry_after=retry,
                          error="too many attempts")
    conn.execute("DELETE FROM login_attempts WHERE (username = %s OR client_ip = %s)"
                 " AND attempted_at < %s::timestamptz - interval '1 day'", (username, client_ip, now))
    row = conn.execute("INSERT INTO login_attempts (username, client_ip, succeeded, attempted_at)"
                       " VALUES (%s, %s, false, %s) RETURNING id", (username, client_ip, now)).fetchone()
    if row is None:
        raise RuntimeError("invariant broken: row is None")
    return int(row["id"])


def succeeded(conn: Connection, attempt: int) -> None:
    """The attempt turned out right: it no longer counts as a failure."""
    conn.execute("UPDATE login_attempts SET succeeded = true WHERE id = %s", (attempt,))
