"""Subscription calendars: period boundaries at the customer's local midnight, from the anchor (SPEC §5).

The rule, in full:

1. The anchor (``billing_cycle_anchor``, an aware datetime) is read as a *local date* ``D`` in the customer's
   IANA timezone. Its time of day does not matter: boundaries are local midnights (SPEC §5), so an anchor at
   14:30 and one at 00:00 on the same local day give the same calendar. `normalize_anchor` turns a requested
   anchor into the instant the calendar actually uses.
2. Boundary *k* is the local midnight starting the date ``D + relativedelta(<unit>=k * interval_count)``, and
   period *n* runs from boundary *n* (inclusive) to boundary *n + 1* (exclusive). Each boundary is computed
   from the anchor, never by adding an interval to the previous boundary, so month ends never drift: a monthly
   anchor on Jan 31 gives Feb 28 (Feb 29 in leap years), then Mar 31, Apr 30, May 31; a yearly anchor on Feb
   29 gives Feb 28 in common years and Feb 29 again in the next leap year. *n* may be negative (periods before
   the anchor follow the same rule).
3. A local wall-clock time is turned into an instant deterministically, the way PEP 495's ``fold=0`` reads it:
   a time that does not exist because the clocks jumped forward (a midnight inside a DST gap, as in São Paulo
   on 2018-11-04) is shifted forward by the length of the gap (that day starts at 01:00); a time that happens
   twice because the clocks went back (Havana's midnight on 2023-11-05) is the first occurrence. The same
   rules as dateutil's ``resolve_imaginary`` (gaps) and java.time's ``ZonedDateTime.of`` (gaps and overlaps).
4. Every boundary is returned in UTC, and elapsed time (proration) is measured in UTC.

Consequences: periods tile time with no gap and no overlap (each period ends exactly where the next begins); a
daily period containing a DST change lasts 23 or 25 hours; a calendar date that a zone skipped entirely
(Pacific/Apia skipped 2011-12-30) yields a zero-length daily period, which no instant belongs to.

Trials end at a local midnight too (`trial_end`). Intervals are day, week, month or year, times
``interval_count``, at most three years in all (`validate_interval`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta

from plans.errors import CatalogError, parse_choice


class Interval(StrEnum):
    """The unit of a billing interval."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class Period(NamedTuple):
    """A billing period ``[start, end)`` in UTC: `start` belongs to it, `end` to the next period."""

    start: datetime
    end: datetime


#: The longest interval allowed for each unit: three years (SPEC leaves it open; Stripe allows one year).
MAX_INTERVAL_COUNT: dict[Interval, int] = {
    Interval.DAY: 3 * 365,
    Interval.WEEK: 3 * 52,
    Interval.MONTH: 3 * 12,
    Interval.YEAR: 3,
}

#: Trials may last from one day to two years (as Stripe's ``trial_period_days``).
MAX_TRIAL_DAYS = 730


def validate_interval(interval: object, interval_count: object) -> tuple[Interval, int]:
    """Return ``(Interval, count)`` if the interval is day/week/month/year and 1 ≤ count ≤ three years' worth.

    Raises `CatalogError` with ``param`` ``interval`` or ``interval_count`` and a message giving the allowed
    range.
    """
    unit = parse_choice(Interval, interval, param="interval")
    if isinstance(interval_count, bool) or not isinstance(interval_count, int):
        raise CatalogError(
            f"interval_count must be a whole number of {unit}s; got {interval_count!r}",
            param="interval_count",
        )
    limit = MAX_INTERVAL_COUNT[unit]
    if not 1 <= interval_count <= limit:
        raise CatalogError(
            f"interval_count must be between 1 and {limit} for interval '{unit}' (at most three years); "
            f"got {interval_count}",
            param="interval_count",
        )
    return unit, interval_count


def validate_timezone(name: object, *, param: str = "timezone") -> ZoneInfo:
    """Return the `ZoneInfo` for an IANA timezone name such as ``Europe/London``, or raise `CatalogError`."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise CatalogError(
        f"{param} must be an IANA timezone name such as 'America/New_York', 'Europe/London' or 'UTC'; "
        f"got {name!r}",
        param=param,
    )


def local_midnight(instant: datetime, tz: ZoneInfo) -> datetime:
    """Return, in UTC, the local midnight that starts the customer's calendar day containing `instant`.

    A midnight inside a DST gap is shifted forward by the gap; a repeated midnight is its first occurrence.
    """
    _require_aware(instant, "instant")
    return _midnight_utc(instant.astimezone(tz).date(), tz)


def normalize_anchor(requested: datetime, tz: ZoneInfo) -> datetime:
    """Return the billing_cycle_anchor the calendar uses for `requested`: the local midnight of its local day.

    Storing this value (rather than the requested instant) makes the stored anchor equal to the start of
    period 0, which is what API readers expect to see.
    """
    return local_midnight(requested, tz)


def period_bounds(anchor: datetime, interval: Interval, interval_count: int, n: int, tz: ZoneInfo) -> Period:
    """Return period `n` of the calendar anchored at `anchor`: ``[boundary(n), boundary(n + 1))`` in UTC.

    ``boundary(k)`` is the local midnight of ``anchor_local_date + relativedelta(<interval>s=k *
    interval_count)`` (see the module docstring for the DST rule). Period 0 contains the anchor.
    """
    unit, count = validate_interval(interval, interval_count)
    _require_aware(anchor, "anchor")
    anchor_date = anchor.astimezone(tz).date()
    return Period(_boundary(anchor_date, unit, count, n, tz), _boundary(anchor_date, unit, count, n + 1, tz))


def period_index_at(
    anchor: datetime, interval: Interval, interval_count: int, instant: datetime, tz: ZoneInfo
) -> int:
    """Return the index *n* of the period containing `instant` (``start <= instant < end``); negative before.

    Zero-length periods (a skipped calendar day) contain no instant and are never returned.
    """
    unit, count = validate_interval(interval, interval_count)
    _require_aware(anchor, "anchor")
    _require_aware(instant, "instant")
    anchor_date = anchor.astimezone(tz).date()
    local_date = instant.astimezone(tz).date()
    if unit is Interval.DAY:
        n = (local_date - anchor_date).days // count
    elif unit is Interval.WEEK:
        n = (local_date - anchor_date).days // (7 * count)
    elif unit is Interval.MONTH:
        n = ((local_date.year - anchor_date.year) * 12 + local_date.month - anchor_date.month) // count
    else:
        n = (local_date.year - anchor_date.year) // count
    # The estimate is off by at most one period (month-end clamping, DST-shifted midnights); walk to the
    # answer.
    while instant < _boundary(anchor_date, unit, count, n, tz):
        n -= 1
    while instant >= _boundary(anchor_date, unit, count, n + 1, tz):
        n += 1
    return n


def current_period(
    anchor: datetime, interval: Interval, interval_count: int, instant: datetime, tz: ZoneInfo
) -> Period:
    """Return the period containing `instant`: ``period_bounds`` of ``period_index_at``."""
    n = period_index_at(anchor, interval, interval_count, instant, tz)
    return period_bounds(anchor, interval, interval_count, n, tz)


def next_boundary_after(
    anchor: datetime, interval: Interval, interval_count: int, instant: datetime, tz: ZoneInfo
) -> datetime:
    """Return the first period boundary strictly after `instant`: the end of the period containing it."""
    return current_period(anchor, interval, interval_count, instant, tz).end


def trial_end(start: datetime, trial_period_days: int, tz: ZoneInfo) -> datetime:
    """Return when a trial of `trial_period_days` days that starts at `start` ends: a local midnight, in UTC.

    The trial ends at the first local midnight at or after ``start + trial_period_days`` days of wall-clock
    time, so the customer always gets at least the days promised and the first paid period starts on a
    calendar boundary: a 14-day trial started at 00:00 on March 1 ends at 00:00 on March 15; started at 14:30
    on March 1 it ends at 00:00 on March 16. Raises `CatalogError` unless 1 ≤ `trial_period_days` ≤ 730.
    """
    if isinstance(trial_period_days, bool) or not isinstance(trial_period_days, int):
        raise CatalogError(
            f"trial_period_days must be a whole number of days; got {trial_period_days!r}",
            param="trial_period_days",
        )
    if not 1 <= trial_period_days <= MAX_TRIAL_DAYS:
        raise CatalogError(
            f"trial_period_days must be between 1 and {MAX_TRIAL_DAYS}; got {trial_period_days}",
            param="trial_period_days",
        )
    _require_aware(start, "start")
    start_date = start.astimezone(tz).date()
    days = trial_period_days if start == _midnight_utc(start_date, tz) else trial_period_days + 1
    return _midnight_utc(start_date + relativedelta(days=days), tz)


def _boundary(anchor_date: date, unit: Interval, count: int, k: int, tz: ZoneInfo) -> datetime:
    steps = k * count
    if unit is Interval.DAY:
        delta = relativedelta(days=steps)
    elif unit is Interval.WEEK:
        delta = relativedelta(weeks=steps)
    elif unit is Interval.MONTH:
        delta = relativedelta(months=steps)
    else:
        delta = relativedelta(years=steps)
    try:
        boundary_date = anchor_date + delta
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"period {k} of this calendar falls outside the years 1-9999") from exc
    return _midnight_utc(boundary_date, tz)


def _midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    # fold=0 is the documented rule: in a gap it reads the wall time with the offset from before the
    # transition (= shifted forward by the gap); in a fold it picks the first occurrence.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC on the wire); got naive {value.isoformat()}")
