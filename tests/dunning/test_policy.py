"""The retry schedule (dunning.policy): offsets from the first failure, on the customer's local days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.policy import (
    DEFAULT_SCHEDULE,
    ScheduleError,
    next_attempt_at,
    scheduled_day,
    smart_hour,
    validate_schedule,
)

UTC_TZ = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def test_the_default_schedule_retries_on_days_1_3_5_7_at_the_time_of_the_first_failure() -> None:
    first = datetime(2027, 4, 1, 10, 0, tzinfo=UTC)
    attempts = [next_attempt_at(first, made, DEFAULT_SCHEDULE, UTC_TZ) for made in range(1, 6)]
    assert attempts == [
        datetime(2027, 4, 2, 10, 0, tzinfo=UTC),
        datetime(2027, 4, 4, 10, 0, tzinfo=UTC),
        datetime(2027, 4, 6, 10, 0, tzinfo=UTC),
        datetime(2027, 4, 8, 10, 0, tzinfo=UTC),
        None,
    ]


def test_days_are_the_customers_local_days_across_a_dst_change() -> None:
    # 2027-03-14 is the spring-forward Sunday in New York: the local wall time (09:00) is kept, UTC moves.
    first = datetime(2027, 3, 13, 14, 0, tzinfo=UTC)  # 09:00 EST
    second = next_attempt_at(first, 1, [1], NEW_YORK)
    assert second == datetime(2027, 3, 14, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert second is not None and second.astimezone(NEW_YORK).hour == 9


def test_a_wall_time_that_does_not_exist_moves_forward_on_the_same_day() -> None:
    first = datetime(2027, 3, 13, 7, 30, tzinfo=UTC)  # 02:30 EST on the 13th
    moved = scheduled_day(first, 1, NEW_YORK)  # 02:30 on the 14th does not exist
    assert moved.astimezone(NEW_YORK).date().day == 14
    assert moved.astimezone(NEW_YORK).hour == 3


def test_the_smart_hour_moves_an_attempt_within_its_local_day() -> None:
    first = datetime(2027, 4, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    at = next_attempt_at(first, 1, [1, 3], SHANGHAI, preferred_hour=18)
    assert at == datetime(2027, 4, 2, 10, 0, tzinfo=UTC)  # 18:00 Shanghai on April 2


def test_the_smart_hour_never_moves_an_attempt_before_now() -> None:
    first = datetime(2027, 4, 1, 10, 0, tzinfo=UTC)
    now = datetime(2027, 4, 2, 9, 0, tzinfo=UTC)
    assert next_attempt_at(first, 1, [1], UTC_TZ, preferred_hour=8, now=now) == datetime(
        2027, 4, 2, 10, 0, tzinfo=UTC
    )


def test_smart_hour_needs_enough_successes_and_a_clear_winner() -> None:
    assert smart_hour({9: 5, 14: 3}) is None  # too few to trust
    assert smart_hour({9: 15, 14: 10}) == 9
    assert smart_hour({9: 12, 14: 12}) is None  # a tie keeps the original time
    assert smart_hour({}) is None


@pytest.mark.parametrize(
    ("days", "index", "words"),
    [
        ([], None, "1 to 10"),
        (list(range(1, 12)), None, "1 to 10"),
        ([0, 3], 0, "from 1 to 60"),
        ([1, 61], 1, "from 1 to 60"),
        ([3, 3], 1, "strictly increasing"),
        ([5, 2], 1, "strictly increasing"),
        ([1, True], 1, "whole number"),
    ],
)
def test_invalid_schedules_say_what_is_wrong(days: list[int], index: int | None, words: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_schedule(days)
    assert caught.value.index == index
    assert words in str(caught.value)


schedules = st.lists(st.integers(1, 60), min_size=1, max_size=10, unique=True).map(sorted)
zones = st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe"])
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
hours = st.one_of(st.none(), st.integers(0, 23))


@given(first=instants, schedule=schedules, zone=zones, hour=hours)
def test_attempts_strictly_increase_each_on_its_scheduled_local_day_then_stop(
    first: datetime, schedule: list[int], zone: str, hour: int | None
) -> None:
    tz = ZoneInfo(zone)
    validate_schedule(schedule)
    previous = first
    for made, offset in enumerate(schedule, start=1):
        at = next_attempt_at(first, made, schedule, tz, preferred_hour=hour, now=previous)
        assert at is not None
        assert at > previous
        assert at >= previous  # never earlier than now
        assert at.astimezone(tz).date() == first.astimezone(tz).date() + timedelta(days=offset)
        previous = at
    assert next_attempt_at(first, len(schedule) + 1, schedule, tz, preferred_hour=hour) is None


@given(first=instants, schedule=schedules, zone=zones, hour=st.integers(0, 23), lag=st.integers(0, 86_400))
def test_the_smart_hour_never_changes_the_day_and_never_goes_before_now(
    first: datetime, schedule: list[int], zone: str, hour: int, lag: int
) -> None:
    tz = ZoneInfo(zone)
    planned = next_attempt_at(first, 1, schedule, tz)
    assert planned is not None
    now = planned - timedelta(seconds=lag)
    moved = next_attempt_at(first, 1, schedule, tz, preferred_hour=hour, now=now)
    assert moved is not None
    assert moved.astimezone(tz).date() == planned.astimezone(tz).date()
    assert moved >= now


@given(counts=st.dictionaries(st.integers(0, 23), st.integers(0, 50)))
def test_the_smart_hour_is_a_unique_best_hour_or_none(counts: dict[int, int]) -> None:
    chosen = smart_hour(counts)
    if chosen is not None:
        assert all(counts[chosen] > c for h, c in counts.items() if h != chosen)
        assert sum(counts.values()) >= 20
