"""The retry schedule (SPEC §7): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h... for three days, with
jitter, honouring Retry-After. A pure function, so its properties are checked over many inputs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from webhooks.retry import (
    DEFAULT_SCHEDULE,
    MAX_AGE,
    base_delay,
    next_attempt_at,
    parse_retry_after,
    planned_attempts,
)

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)


def test_the_schedule_is_the_one_in_the_spec() -> None:
    assert [base_delay(n) for n in range(1, 9)] == [
        5 * S,
        5 * M,
        30 * M,
        2 * H,
        5 * H,
        10 * H,
        10 * H,
        10 * H,
    ]


def test_an_always_failing_delivery_is_tried_for_three_days_then_given_up() -> None:
    offsets = planned_attempts()
    assert offsets[:8] == [
        timedelta(0),
        5 * S,
        5 * M + 5 * S,
        35 * M + 5 * S,
        2 * H + 35 * M + 5 * S,
        7 * H + 35 * M + 5 * S,
        17 * H + 35 * M + 5 * S,
        27 * H + 35 * M + 5 * S,
    ]
    assert offsets[-1] == MAX_AGE  # a last attempt at the three-day mark
    assert all(b - a <= 10 * H for a, b in itertools.pairwise(offsets))
    assert len(offsets) == 13


def test_jitter_stretches_or_shrinks_the_wait_by_up_to_ten_percent() -> None:
    at = [
        next_attempt_at(failed_attempts=2, first_failed_at=T0, failed_at=T0, jitter=j)
        for j in (0.0, 0.5, 1.0)
    ]
    assert at == [T0 + 4.5 * M, T0 + 5 * M, T0 + 5.5 * M]


def test_retry_after_longer_than_the_wait_is_honoured() -> None:
    assert (
        next_attempt_at(failed_attempts=1, first_failed_at=T0, failed_at=T0, jitter=0.5, retry_after=10 * M)
        == T0 + 10 * M
    )
    # A shorter Retry-After does not make us retry sooner than the schedule.
    assert (
        next_attempt_at(failed_attempts=3, first_failed_at=T0, failed_at=T0, jitter=0.5, retry_after=1 * S)
        == T0 + 30 * M
    )
    # Nor later than the three-day mark.
    assert (
        next_attempt_at(
            failed_attempts=1, first_failed_at=T0, failed_at=T0, jitter=0.5, retry_after=timedelta(days=30)
        )
        == T0 + MAX_AGE
    )


@given(
    failures=st.integers(min_value=1, max_value=40),
    since_first=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4)),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    retry_after=st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5)),
)
def test_the_next_attempt_is_after_the_failure_and_never_past_three_days(
    failures: int, since_first: timedelta, jitter: float, retry_after: timedelta | None
) -> None:
    failed_at = T0 + since_first
    planned = next_attempt_at(
        failed_attempts=failures,
        first_failed_at=T0,
        failed_at=failed_at,
        jitter=jitter,
        retry_after=retry_after,
    )
    if since_first >= MAX_AGE:
        assert planned is None
        return
    assert planned is not None
    assert failed_at < planned <= T0 + MAX_AGE
    wait = base_delay(failures)
    if planned < T0 + MAX_AGE:
        assert planned - failed_at >= wait * 0.9
        assert planned - failed_at <= max(wait * 1.1, retry_after or timedelta(0))
        if retry_after is not None:
            assert planned - failed_at >= retry_after


@given(failures=st.integers(min_value=1, max_value=30))
def test_waits_never_shrink_as_failures_add_up(failures: int) -> None:
    assert base_delay(failures + 1) >= base_delay(failures)
    assert base_delay(failures) <= DEFAULT_SCHEDULE[-1]


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert parse_retry_after("120", now=T0) == 2 * M
    assert parse_retry_after("Mon, 01 Mar 2027 12:10:00 GMT", now=T0) == 10 * M
    assert parse_retry_after("Mon, 01 Mar 2027 11:00:00 GMT", now=T0) == timedelta(0)
    assert parse_retry_after("soon", now=T0) is None
    assert parse_retry_after(None, now=T0) is None
