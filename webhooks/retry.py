"""When to try a failed webhook delivery again: a pure function of the attempt number and the failure times.

The schedule (Svix's, which the Standard Webhooks authors run): the first attempt immediately, then after each
failure wait 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, and 10 h again and again, each wait stretched or shrunk by up to
10 % of jitter so that endpoints recovering from an outage are not hit by every retry at the same instant. A
`Retry-After` from the receiver is honoured (never retry sooner than it asks). Nothing is tried more than three
days after the first failure: the last attempt happens at that mark, then the delivery has failed.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

# The waits after failure 1, 2, 3...; the last one repeats.
DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
MAX_AGE = timedelta(days=3)
JITTER = 0.1


def base_delay(failed_attempts: int, schedule: Sequence[timedelta] = DEFAULT_SCHEDULE) -> timedelta:
    """The wait after the `failed_attempts`-th failure, before jitter (1 → 5 s, 2 → 5 min, ..., ≥ 6 → 10 h)."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts failures, starting at 1")
    return schedule[min(failed_attempts, len(schedule)) - 1]


def next_attempt_at(
    *,
    failed_attempts: int,
    first_failed_at: datetime,
    failed_at: datetime,
    jitter: float,
    retry_after: timedelta | None = None,
    schedule: Sequence[timedelta] = DEFAULT_SCHEDULE,
    max_age: timedelta = MAX_AGE,
) -> datetime | None:
    """When to make the next attempt after the `failed_attempts`-th failure, which happened at `failed_at`;
    None when the delivery has failed for good (`max_age` after `first_failed_at` has passed).

    `jitter` is a draw in [0, 1): 0.5 keeps the wait exact, 0 shortens it by 10 %, 1 lengthens it by 10 %.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter is a draw in [0, 1]")
    deadline = first_failed_at + max_age
    if failed_at >= deadline:
        return None
    wait = base_delay(failed_attempts, schedule) * (1 - JITTER + 2 * JITTER * jitter)
    if retry_after is not None and retry_after > wait:
        wait = retry_after
    return min(failed_at + wait, deadline)


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """A `Retry-After` header (delay-seconds or an HTTP date) as a wait from `now`; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


def planned_attempts(
    schedule: Sequence[timedelta] = DEFAULT_SCHEDULE, max_age: timedelta = MAX_AGE
) -> list[timedelta]:
    """Offsets from the first attempt of every attempt of an always-failing delivery, without jitter (for the
    docs and the tests): [0 s, 5 s, 5 min 5 s, ..., 3 days]."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    offsets = [timedelta(0)]
    at: datetime | None = start
    failures = 0
    while at is not None:
        failures += 1
        at = next_attempt_at(
            failed_attempts=failures,
            first_failed_at=start,
            failed_at=at,
            jitter=0.5,
            schedule=schedule,
            max_age=max_age,
        )
        if at is not None:
            offsets.append(at - start)
    return offsets
