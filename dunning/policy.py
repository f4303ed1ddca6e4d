"""The retry schedule (SPEC §6): when to try a soft-declined invoice again.

Offsets are whole days counted from the FIRST failure, on the customer's local calendar: with the default
`[1, 3, 5, 7]` and a first failure on Monday 10:00 local time, the retries are on Tuesday, Thursday, Saturday and
Monday, each at 10:00 local time (the wall time of the first failure, kept across DST). Counting from the first
failure rather than from the previous attempt means a late or extra attempt never pushes the schedule back.

The smart adjustment may move an attempt to another hour OF THE SAME LOCAL DAY (the hour that has succeeded most
for the card's brand in the merchant's history), never to another day and never before `now`.

Pure: plain values in, plain values out; no clock is read here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

DEFAULT_SCHEDULE: Final[tuple[int, ...]] = (1, 3, 5, 7)
MIN_OFFSET_DAYS: Final = 1
MAX_OFFSET_DAYS: Final = 60
MAX_RETRIES: Final = 10
# Successful payments (of one brand) needed before the smart hour is trusted; fewer and the original time stays.
MIN_SUCCESSES_FOR_SMART_HOUR: Final = 20


class ScheduleError(ValueError):
    """A retry schedule that breaks the rules; `index` is the offending entry (None: the list itself)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def validate_schedule(days: Sequence[int]) -> tuple[int, ...]:
    """The schedule as a tuple, or ScheduleError: 1 to 10 whole days, each 1..60, strictly increasing."""
    if not 1 <= len(days) <= MAX_RETRIES:
        raise ScheduleError(f"retry_schedule_days needs 1 to {MAX_RETRIES} entries, e.g. [1, 3, 5, 7].")
    previous = 0
    for index, day in enumerate(days):
        if isinstance(day, bool) or not isinstance(day, int):
            raise ScheduleError("each entry is a whole number of days, e.g. 3.", index)
        if not MIN_OFFSET_DAYS <= day <= MAX_OFFSET_DAYS:
            raise ScheduleError(
                f"each entry is a number of days after the first failure, from {MIN_OFFSET_DAYS} to "
                f"{MAX_OFFSET_DAYS}; got {day}.",
                index,
            )
        if day <= previous:
            raise ScheduleError(
                f"the days must be strictly increasing (offsets from the first failure); {day} comes after "
                f"{previous}.",
                index,
            )
        previous = day
    return tuple(days)


def _resolve_local(naive: datetime, tz: ZoneInfo) -> datetime:
    """A local wall time as an aware instant. In a DST gap it moves forward by the gap (PEP 495: fold=0 reads a
    missing time with the offset before the jump); an ambiguous time takes its first occurrence."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


def scheduled_day(first_failure: datetime, offset_days: int, tz: ZoneInfo) -> datetime:
    """The attempt `offset_days` local days after the first failure, at the first failure's local wall time."""
    local = first_failure.astimezone(tz)
    day = local.date() + timedelta(days=offset_days)
    return _resolve_local(datetime.combine(day, local.time().replace(tzinfo=None)), tz)


def next_attempt_at(
    first_failure: datetime,
    attempts_made: int,
    schedule: Sequence[int],
    tz: ZoneInfo,
    preferred_hour: int | None = None,
    *,
    now: datetime | None = None,
) -> datetime | None:
    """When to make the next attempt after `attempts_made` counted attempts (the first failure is attempt 1), or
    None when the schedule is exhausted (after 1 + len(schedule) attempts).

    `preferred_hour` (0-23, local) moves the attempt within its scheduled local day; it is ignored when that
    would be before `now`. The slot itself is returned even if it is past (see recovery.after_failure)."""
    if attempts_made < 1:
        raise ValueError("attempts_made counts the first failure: it is 1 or more")
    index = attempts_made - 1
    if index >= len(schedule):
        return None
    planned = scheduled_day(first_failure, schedule[index], tz)
    if preferred_hour is not None:
        if not 0 <= preferred_hour <= 23:
            raise ValueError("preferred_hour is an hour of the day, 0 to 23")
        moved = _resolve_local(datetime.combine(planned.astimezone(tz).date(), time(hour=preferred_hour)), tz)
        # A DST gap can push a moved 23:xx past midnight; then the original time stays (never another day).
        if moved.astimezone(tz).date() == planned.astimezone(tz).date() and (now is None or moved >= now):
            planned = moved
    return planned


def smart_hour(
    successes_by_hour: Mapping[int, int], *, min_successes: int = MIN_SUCCESSES_FOR_SMART_HOUR
) -> int | None:
    """The local hour with the most successful payments, or None (keep the original time) when there are fewer
    than `min_successes` in all or when two hours tie for the most."""
    counts = {hour: count for hour, count in successes_by_hour.items() if 0 <= hour <= 23 and count > 0}
    if sum(counts.values()) < min_successes:
        return None
    best = max(counts.values())
    leaders = [hour for hour, count in counts.items() if count == best]
    return leaders[0] if len(leaders) == 1 else None
