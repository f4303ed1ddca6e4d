"""Calendars: periods from the anchor at local midnight, month ends that never drift, DST, trials, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import example, given, settings
from hypothesis import strategies as st

from plans.calendar import (
    MAX_INTERVAL_COUNT,
    Interval,
    Period,
    current_period,
    local_midnight,
    next_boundary_after,
    normalize_anchor,
    period_bounds,
    period_index_at,
    trial_end,
    validate_interval,
    validate_timezone,
)
from plans.errors import CatalogError

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SHANGHAI = ZoneInfo("Asia/Shanghai")
TIMEZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Asia/Shanghai",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Pacific/Chatham",  # UTC+12:45 / +13:45, shifts at 02:45
    "Asia/Kolkata",
    "America/St_Johns",
]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware instant from local wall-clock fields (first occurrence in a fold)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


def local_dates(anchor: datetime, interval: Interval, count: int, tz: ZoneInfo, periods: int) -> list[date]:
    return [period_bounds(anchor, interval, count, n, tz).start.astimezone(tz).date() for n in range(periods)]


# --- month ends, quarters, years, weeks ---


def test_monthly_anchor_on_the_31st_bills_on_month_ends_and_returns_to_the_31st() -> None:
    anchor = local(NEW_YORK, 2027, 1, 31, 9, 15)
    assert local_dates(anchor, Interval.MONTH, 1, NEW_YORK, 6) == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 5, 31),
        date(2027, 6, 30),
    ]


def test_monthly_anchor_on_the_31st_uses_feb_29_in_a_leap_year() -> None:
    anchor = local(LONDON, 2028, 1, 31)
    assert local_dates(anchor, Interval.MONTH, 1, LONDON, 3) == [
        date(2028, 1, 31),
        date(2028, 2, 29),
        date(2028, 3, 31),
    ]


def test_monthly_anchor_on_the_30th_clamps_only_in_february() -> None:
    anchor = local(SHANGHAI, 2027, 1, 30)
    assert local_dates(anchor, Interval.MONTH, 1, SHANGHAI, 4) == [
        date(2027, 1, 30),
        date(2027, 2, 28),
        date(2027, 3, 30),
        date(2027, 4, 30),
    ]


def test_yearly_anchor_on_feb_29_bills_feb_28_then_feb_29_again_in_the_next_leap_year() -> None:
    anchor = local(NEW_YORK, 2028, 2, 29)
    assert local_dates(anchor, Interval.YEAR, 1, NEW_YORK, 6) == [
        date(2028, 2, 29),
        date(2029, 2, 28),
        date(2030, 2, 28),
        date(2031, 2, 28),
        date(2032, 2, 29),
        date(2033, 2, 28),
    ]


def test_monthly_anchor_on_feb_29_keeps_the_29th() -> None:
    utc_zone = ZoneInfo("UTC")
    anchor = local(utc_zone, 2028, 2, 29)
    assert local_dates(anchor, Interval.MONTH, 1, utc_zone, 4) == [
        date(2028, 2, 29),
        date(2028, 3, 29),
        date(2028, 4, 29),
        date(2028, 5, 29),
    ]


def test_quarterly_anchor_on_nov_30_clamps_to_feb_28_and_returns_to_the_30th() -> None:
    anchor = local(LONDON, 2026, 11, 30)
    assert local_dates(anchor, Interval.MONTH, 3, LONDON, 5) == [
        date(2026, 11, 30),
        date(2027, 2, 28),
        date(2027, 5, 30),
        date(2027, 8, 30),
        date(2027, 11, 30),
    ]


def test_yearly_and_two_yearly_anchors() -> None:
    anchor = local(SHANGHAI, 2027, 1, 15, 23, 59)
    assert local_dates(anchor, Interval.YEAR, 1, SHANGHAI, 3) == [
        date(2027, 1, 15),
        date(2028, 1, 15),
        date(2029, 1, 15),
    ]
    assert local_dates(anchor, Interval.YEAR, 2, SHANGHAI, 3) == [
        date(2027, 1, 15),
        date(2029, 1, 15),
        date(2031, 1, 15),
    ]


def test_weekly_periods_start_on_the_anchor_weekday_even_across_dst() -> None:
    anchor = local(NEW_YORK, 2027, 3, 1)  # a Monday
    starts = local_dates(anchor, Interval.WEEK, 1, NEW_YORK, 4)
    assert starts == [date(2027, 3, 1), date(2027, 3, 8), date(2027, 3, 15), date(2027, 3, 22)]
    assert {start.weekday() for start in starts} == {0}
    week_with_spring_forward = period_bounds(anchor, Interval.WEEK, 1, 1, NEW_YORK)
    assert week_with_spring_forward.end - week_with_spring_forward.start == 7 * DAY - HOUR
    fortnight = period_bounds(anchor, Interval.WEEK, 2, 1, NEW_YORK)
    assert fortnight.start.astimezone(NEW_YORK).date() == date(2027, 3, 15)


def test_period_n_is_computed_from_the_anchor_not_from_the_previous_period() -> None:
    anchor = local(NEW_YORK, 2027, 1, 31)
    chained = date(2027, 1, 31)
    for _ in range(2):
        chained += relativedelta(months=1)  # Feb 28, then Mar 28: the drift the rule avoids
    assert chained == date(2027, 3, 28)
    assert period_bounds(anchor, Interval.MONTH, 1, 2, NEW_YORK).start.astimezone(NEW_YORK).date() == date(
        2027, 3, 31
    )


def test_negative_period_indexes_run_backwards_from_the_anchor() -> None:
    anchor = local(LONDON, 2027, 3, 31)
    assert period_bounds(anchor, Interval.MONTH, 1, -1, LONDON) == Period(
        local(LONDON, 2027, 2, 28).astimezone(UTC), local(LONDON, 2027, 3, 31).astimezone(UTC)
    )


# --- local midnight and DST ---


def test_boundaries_are_local_midnights_returned_in_utc() -> None:
    anchor = datetime(2027, 6, 15, 3, 0, tzinfo=UTC)  # June 14, 23:00 in New York
    period = period_bounds(anchor, Interval.MONTH, 1, 0, NEW_YORK)
    assert period.start == datetime(2027, 6, 14, 4, 0, tzinfo=UTC)  # June 14 00:00 EDT
    assert period.end == datetime(2027, 7, 14, 4, 0, tzinfo=UTC)
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC


def test_the_anchor_time_of_day_does_not_change_the_calendar() -> None:
    morning, evening = local(LONDON, 2027, 5, 10, 0, 0), local(LONDON, 2027, 5, 10, 23, 59, 59)
    for n in (0, 1, 7):
        assert period_bounds(morning, Interval.MONTH, 1, n, LONDON) == period_bounds(
            evening, Interval.MONTH, 1, n, LONDON
        )
    assert normalize_anchor(evening, LONDON) == morning.astimezone(UTC)
    assert normalize_anchor(evening, LONDON) == period_bounds(evening, Interval.MONTH, 1, 0, LONDON).start


@pytest.mark.parametrize(
    ("tz_name", "day", "hours"),
    [
        ("America/New_York", date(2027, 3, 14), 23),  # spring forward at 02:00
        ("America/New_York", date(2027, 11, 7), 25),  # fall back at 02:00
        ("Europe/London", date(2027, 3, 28), 23),  # BST starts at 01:00
        ("Europe/London", date(2027, 10, 31), 25),
        ("Asia/Shanghai", date(1986, 5, 4), 23),  # China observed DST 1986-1991
        ("Asia/Shanghai", date(1986, 9, 14), 25),
        ("Asia/Shanghai", date(2027, 3, 14), 24),  # and none since
        ("Australia/Lord_Howe", date(2024, 10, 6), 23.5),
        ("Pacific/Chatham", date(2024, 4, 7), 25),
    ],
)
def test_daily_period_containing_a_dst_change_lasts_23_or_25_hours(
    tz_name: str, day: date, hours: float
) -> None:
    tz = ZoneInfo(tz_name)
    anchor = local(tz, 1980, 1, 1)
    n = (day - date(1980, 1, 1)).days
    period = period_bounds(anchor, Interval.DAY, 1, n, tz)
    assert period.start.astimezone(tz).date() == day
    assert period.end - period.start == timedelta(hours=hours)
    assert (period.start.astimezone(tz).hour, period.end.astimezone(tz).hour) == (0, 0)


def test_monthly_period_across_spring_forward_is_an_hour_short_in_elapsed_time() -> None:
    period = period_bounds(local(NEW_YORK, 2027, 2, 1), Interval.MONTH, 1, 1, NEW_YORK)
    assert period == Period(datetime(2027, 3, 1, 5, tzinfo=UTC), datetime(2027, 4, 1, 4, tzinfo=UTC))


def test_a_midnight_inside_a_dst_gap_is_shifted_forward_by_the_gap() -> None:
    """São Paulo jumped from 00:00 to 01:00 on 2018-11-04: that day starts at 01:00 -02 (03:00 UTC)."""
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    anchor = datetime(2018, 10, 4, 12, tzinfo=sao_paulo)
    period = period_bounds(anchor, Interval.MONTH, 1, 1, sao_paulo)
    assert period.start == datetime(2018, 11, 4, 3, tzinfo=UTC)
    assert period.start.astimezone(sao_paulo).hour == 1
    assert local_midnight(datetime(2018, 11, 4, 15, tzinfo=UTC), sao_paulo) == period.start


def test_a_repeated_midnight_is_its_first_occurrence() -> None:
    """Havana set clocks back from 01:00 to 00:00 on 2023-11-05, so that midnight happened twice."""
    havana = ZoneInfo("America/Havana")
    boundary = period_bounds(datetime(2023, 11, 4, 12, tzinfo=havana), Interval.DAY, 1, 1, havana).start
    assert boundary == datetime(2023, 11, 5, 4, tzinfo=UTC)  # 00:00 at UTC-4, before the repeat at UTC-5
    second_midnight = datetime(2023, 11, 5, 5, tzinfo=UTC)
    assert (
        period_index_at(datetime(2023, 11, 4, 12, tzinfo=havana), Interval.DAY, 1, second_midnight, havana)
        == 1
    )


def test_a_skipped_calendar_day_gives_an_empty_daily_period_that_no_instant_falls_in() -> None:
    """Samoa skipped 2011-12-30 entirely when it moved across the date line."""
    apia = ZoneInfo("Pacific/Apia")
    anchor = datetime(2011, 12, 28, tzinfo=apia)
    skipped = period_bounds(anchor, Interval.DAY, 1, 2, apia)
    assert skipped.start == skipped.end
    assert period_index_at(anchor, Interval.DAY, 1, skipped.start, apia) == 3
    assert period_index_at(anchor, Interval.DAY, 1, skipped.start - timedelta(microseconds=1), apia) == 1


# --- finding periods ---


def test_period_index_at_puts_a_boundary_in_the_period_it_starts() -> None:
    anchor = local(NEW_YORK, 2027, 1, 31)
    boundary = period_bounds(anchor, Interval.MONTH, 1, 1, NEW_YORK).start
    assert period_index_at(anchor, Interval.MONTH, 1, boundary, NEW_YORK) == 1
    assert period_index_at(anchor, Interval.MONTH, 1, boundary - timedelta(microseconds=1), NEW_YORK) == 0
    assert period_index_at(anchor, Interval.MONTH, 1, local(NEW_YORK, 2026, 12, 31), NEW_YORK) == -1
    assert period_index_at(anchor, Interval.MONTH, 1, local(NEW_YORK, 2026, 12, 30, 23), NEW_YORK) == -2


def test_next_boundary_after_is_strictly_after() -> None:
    anchor = local(LONDON, 2027, 1, 31)
    feb_28 = local(LONDON, 2027, 2, 28).astimezone(UTC)
    mar_31 = local(LONDON, 2027, 3, 31).astimezone(UTC)
    assert next_boundary_after(anchor, Interval.MONTH, 1, local(LONDON, 2027, 2, 10), LONDON) == feb_28
    assert next_boundary_after(anchor, Interval.MONTH, 1, feb_28, LONDON) == mar_31
    assert current_period(anchor, Interval.MONTH, 1, feb_28, LONDON) == Period(feb_28, mar_31)


# --- trials ---


def test_a_trial_started_at_midnight_ends_exactly_n_days_later_at_midnight() -> None:
    start = local(NEW_YORK, 2027, 3, 1).astimezone(UTC)
    assert trial_end(start, 14, NEW_YORK) == local(NEW_YORK, 2027, 3, 15).astimezone(UTC)


def test_a_trial_started_mid_day_ends_at_the_midnight_after_n_full_days() -> None:
    start = local(NEW_YORK, 2027, 3, 1, 14, 30)
    end = trial_end(start, 14, NEW_YORK)
    assert end == local(NEW_YORK, 2027, 3, 16).astimezone(UTC)
    assert end - start > 14 * DAY  # never less than the days promised, here even with a 23-hour March 14


def test_a_trial_over_the_autumn_change_still_ends_at_local_midnight() -> None:
    end = trial_end(local(LONDON, 2027, 10, 20, 8), 30, LONDON)
    assert end == datetime(2027, 11, 20, 0, tzinfo=UTC)  # GMT again
    assert end.astimezone(LONDON).hour == 0


@pytest.mark.parametrize("days", [0, -1, 731, True, 1.5])
def test_trial_length_is_validated(days: object) -> None:
    with pytest.raises(CatalogError) as caught:
        trial_end(datetime(2027, 1, 1, tzinfo=UTC), days, NEW_YORK)  # type: ignore[arg-type]
    assert caught.value.param == "trial_period_days"


# --- validation ---


@pytest.mark.parametrize(
    ("interval", "count"),
    [("day", 1), ("day", 1095), ("week", 156), ("month", 36), ("year", 3), (Interval.MONTH, 3)],
)
def test_intervals_up_to_three_years_are_accepted(interval: str, count: int) -> None:
    assert validate_interval(interval, count) == (Interval(interval), count)


@pytest.mark.parametrize(
    ("interval", "count", "param", "fragment"),
    [
        ("fortnight", 1, "interval", "must be one of 'day', 'week', 'month', 'year'"),
        ("Month", 1, "interval", "must be one of"),
        ("month", 0, "interval_count", "between 1 and 36 for interval 'month'"),
        ("month", 37, "interval_count", "between 1 and 36"),
        ("year", 4, "interval_count", "between 1 and 3"),
        ("week", 157, "interval_count", "between 1 and 156"),
        ("day", 1096, "interval_count", "between 1 and 1095"),
        ("day", True, "interval_count", "whole number of days"),
        ("day", 1.0, "interval_count", "whole number"),
    ],
)
def test_invalid_intervals_name_the_field_and_the_allowed_range(
    interval: str, count: object, param: str, fragment: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_interval(interval, count)
    assert caught.value.param == param
    assert fragment in caught.value.message


def test_period_functions_validate_their_interval() -> None:
    with pytest.raises(CatalogError, match="interval_count"):
        period_bounds(datetime(2027, 1, 1, tzinfo=UTC), Interval.MONTH, 0, 0, NEW_YORK)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", None, "../../etc/passwd", "/etc/localtime"])
def test_unknown_timezones_are_refused(name: object) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_timezone(name)
    assert caught.value.param == "timezone"
    assert "IANA timezone" in caught.value.message


def test_known_timezones_are_returned_as_zoneinfo() -> None:
    assert validate_timezone("Asia/Shanghai") == SHANGHAI


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds(datetime(2027, 1, 1), Interval.DAY, 1, 0, NEW_YORK)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_midnight(datetime(2027, 1, 1), NEW_YORK)


# --- properties ---

anchors = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
)
intervals = st.sampled_from(list(Interval)).flatmap(
    lambda unit: st.tuples(
        st.just(unit),
        st.one_of(
            st.integers(min_value=1, max_value=3),
            st.integers(min_value=1, max_value=MAX_INTERVAL_COUNT[unit]),
        ),
    )
)
zones = st.sampled_from(TIMEZONES).map(ZoneInfo)


@settings(max_examples=150, deadline=None)
@given(anchors, intervals, zones, st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5))
@example(datetime(2027, 1, 31, 15, tzinfo=UTC), (Interval.DAY, 1), NEW_YORK, [0, 10**8])
@example(
    datetime(2027, 1, 31, 15, tzinfo=UTC), (Interval.MONTH, 1), ZoneInfo("Australia/Lord_Howe"), [86_400]
)
@example(datetime(2028, 2, 29, 1, tzinfo=UTC), (Interval.YEAR, 1), ZoneInfo("Pacific/Chatham"), [10**8])
@example(datetime(1986, 5, 1, tzinfo=UTC), (Interval.DAY, 1), SHANGHAI, [3 * 86_400 + 3600])
@example(datetime(2027, 3, 27, 23, 30, tzinfo=UTC), (Interval.WEEK, 1), LONDON, [1800])
def test_periods_tile_ten_years_without_gap_or_overlap(
    anchor: datetime, interval: tuple[Interval, int], tz: ZoneInfo, offsets: list[int]
) -> None:
    unit, count = interval
    horizon = anchor + timedelta(days=3653)
    periods: list[Period] = []
    n = 0
    while not periods or periods[-1].end <= horizon:
        periods.append(period_bounds(anchor, unit, count, n, tz))
        n += 1
    assert periods[0].start <= anchor < periods[0].end
    for before, after in pairwise(periods):
        assert before.end == after.start  # no gap, no overlap
        assert before.start < before.end
    for boundary in [period.start for period in periods]:
        assert boundary.astimezone(tz).time().isoformat() == "00:00:00"
    # Any instant in the ten years lies in exactly the period period_index_at names.
    for offset in offsets:
        instant = anchor + timedelta(seconds=offset % int((horizon - anchor).total_seconds()))
        index = period_index_at(anchor, unit, count, instant, tz)
        assert periods[index].start <= instant < periods[index].end
        assert next_boundary_after(anchor, unit, count, instant, tz) == periods[index].end


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=2000, max_value=2035),
    st.integers(min_value=1, max_value=12),
    st.integers(1, 31),
    zones,
)
def test_monthly_periods_never_drift_from_the_anchor_day(
    year: int, month: int, day: int, tz: ZoneInfo
) -> None:
    first_of_month = date(year, month, 1)
    anchor_day = min(day, ((first_of_month + relativedelta(months=1)) - timedelta(days=1)).day)
    anchor = datetime(year, month, anchor_day, 12, tzinfo=tz)
    for n in range(0, 25):
        start = period_bounds(anchor, Interval.MONTH, 1, n, tz).start.astimezone(tz).date()
        month_start = first_of_month + relativedelta(months=n)
        last_day = ((month_start + relativedelta(months=1)) - timedelta(days=1)).day
        assert (start.year, start.month) == (month_start.year, month_start.month)
        assert start.day == min(anchor_day, last_day)
