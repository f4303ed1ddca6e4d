"""The recovery state machine (dunning.recovery): an explicit table, and the decision after each failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.recovery import (
    FINAL_EFFECTS,
    MAX_TECHNICAL_RETRIES,
    STATES,
    TRANSITIONS,
    AfterFailure,
    InvalidTransition,
    after_failure,
    transition,
)

T0 = datetime(2027, 4, 1, 10, 0, tzinfo=UTC)
UTC_TZ = ZoneInfo("UTC")
EVENTS = sorted({event for _, event in TRANSITIONS})


def fail(
    state: str | None, kind: str, *, attempts: int, now: datetime, counted: bool = True, **kw: object
) -> AfterFailure:
    return after_failure(
        state,  # type: ignore[arg-type]
        kind,  # type: ignore[arg-type]
        attempts=attempts,
        technical_retries=kw.pop("technical_retries", 0),  # type: ignore[arg-type]
        counted=counted,
        planned=kw.pop("planned", None),  # type: ignore[arg-type]
        first_failure=T0,
        schedule=[1, 3, 5, 7],
        tz=UTC_TZ,
        now=now,
    )


def test_a_soft_decline_walks_the_schedule_then_exhausts_once() -> None:
    step = fail(None, "soft", attempts=0, now=T0)
    assert (step.state, step.attempts, step.next_attempt_at) == ("retrying", 1, T0 + timedelta(days=1))
    for day, expected in [(1, 3), (3, 5), (5, 7)]:
        step = fail("retrying", "soft", attempts=step.attempts, now=T0 + timedelta(days=day))
        assert step.next_attempt_at == T0 + timedelta(days=expected)
        assert not step.exhausted_now
    last = fail("retrying", "soft", attempts=step.attempts, now=T0 + timedelta(days=7))
    assert (last.state, last.attempts, last.next_attempt_at, last.exhausted_now) == (
        "exhausted",
        5,
        None,
        True,
    )
    # A late failure of an exhausted case changes nothing and never runs the final action again.
    again = fail("exhausted", "soft", attempts=5, now=T0 + timedelta(days=8), counted=False)
    assert (again.state, again.exhausted_now) == ("exhausted", False)


@pytest.mark.parametrize("kind", ["hard", "expired"])
def test_hard_and_expired_declines_wait_for_a_payment_method(kind: str) -> None:
    step = fail("retrying", kind, attempts=1, now=T0 + timedelta(days=1))
    assert (step.state, step.next_attempt_at, step.reschedule) == ("awaiting_payment_method", None, False)


def test_a_hard_decline_after_the_last_slot_exhausts_at_once() -> None:
    step = fail("retrying", "hard", attempts=4, now=T0 + timedelta(days=7))
    assert (step.state, step.exhausted_now) == ("exhausted", True)


def test_a_technical_error_burns_no_attempt_and_retries_the_slot_soon_a_bounded_number_of_times() -> None:
    now = T0 + timedelta(days=1)
    retries = 0
    for expected_delay in (1, 2, 4):
        step = fail("retrying", "technical", attempts=1, now=now, technical_retries=retries)
        assert (step.state, step.attempts) == ("retrying", 1)
        assert step.next_attempt_at == now + timedelta(hours=expected_delay)
        retries = step.technical_retries
    assert retries == MAX_TECHNICAL_RETRIES
    spent = fail("retrying", "technical", attempts=1, now=now, technical_retries=retries)
    assert (spent.attempts, spent.technical_retries, spent.next_attempt_at) == (2, 0, T0 + timedelta(days=3))


def test_an_extra_attempt_keeps_the_planned_retry() -> None:
    planned = T0 + timedelta(days=3)
    step = fail("retrying", "soft", attempts=2, now=T0 + timedelta(days=2), counted=False, planned=planned)
    assert (step.attempts, step.next_attempt_at, step.reschedule) == (2, planned, False)


def test_a_new_card_declined_softly_returns_to_the_schedule_skipping_slots_that_passed() -> None:
    # Hard decline on day 1 (2 attempts), a new card on day 4 declines softly: day 3 has passed, day 5 is next.
    step = fail("awaiting_payment_method", "soft", attempts=2, now=T0 + timedelta(days=4), counted=False)
    assert (step.state, step.attempts, step.next_attempt_at) == ("retrying", 3, T0 + timedelta(days=5))


def test_unknown_transitions_raise() -> None:
    with pytest.raises(InvalidTransition):
        transition("recovered", "soft_decline")
    with pytest.raises(InvalidTransition):
        transition("voided", "paid")


def test_the_final_actions_are_data() -> None:
    assert FINAL_EFFECTS["cancel"].subscription_status == "canceled"
    assert FINAL_EFFECTS["cancel"].invoice_uncollectible
    assert not FINAL_EFFECTS["unpaid"].charge_later_invoices
    assert FINAL_EFFECTS["past_due"].charge_later_invoices


@given(state=st.sampled_from(STATES), event=st.sampled_from(EVENTS))
def test_every_pair_is_in_the_table_or_raises(state: str, event: str) -> None:
    if (state, event) in TRANSITIONS:
        assert transition(state, event) in STATES  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidTransition):
            transition(state, event)  # type: ignore[arg-type]


@given(kinds=st.lists(st.sampled_from(["soft", "hard", "expired", "technical"]), min_size=1, max_size=30))
def test_any_sequence_of_failures_ends_in_exhaustion_at_most_once_and_never_plans_the_past(
    kinds: list[str],
) -> None:
    state: str | None = None
    attempts = technical = 0
    now = T0
    planned: datetime | None = None
    exhaustions = 0
    for kind in kinds:
        # Only a retrying case makes scheduled (counted) attempts; the others see extra ones (a new card).
        counted = state in (None, "retrying")
        step = fail(
            state,
            kind,
            attempts=attempts,
            now=now,
            counted=counted,
            technical_retries=technical,
            planned=planned,
        )
        exhaustions += step.exhausted_now
        assert step.attempts >= attempts
        assert step.attempts <= 1 + 4  # the first failure and the four slots, never more
        if step.next_attempt_at is not None:
            assert step.next_attempt_at >= now
            assert step.state == "retrying"
        state, attempts, technical, planned = (
            step.state,
            step.attempts,
            step.technical_retries,
            step.next_attempt_at,
        )
        now = planned or now + timedelta(hours=6)
    assert exhaustions <= 1
