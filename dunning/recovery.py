"""The recovery state machine of one unpaid invoice (Kill Bill's overdue states, as data).

A dunning case opens at the first failed automatic charge of an invoice and closes when the invoice is paid
(`recovered`), when the retry schedule runs out (`exhausted`, and the merchant's final action runs once), or when
the merchant voids the invoice or writes it off (`voided`). In between it is `retrying` (soft declines: the
schedule decides the next attempt) or `awaiting_payment_method` (hard or expired: nothing is charged until the
customer adds or chooses another payment method).

Every allowed move is a row of TRANSITIONS; any other (state, event) raises InvalidTransition. `after_failure`
combines the table with the retry policy: the whole decision after a failed attempt, as a plain value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from dunning.declines import DeclineClass
from dunning.policy import next_attempt_at

State = Literal["retrying", "awaiting_payment_method", "recovered", "exhausted", "voided"]
Event = Literal[
    "soft_decline",
    "hard_decline",
    "technical_error",
    "paid",
    "payment_method_added",
    "schedule_exhausted",
    "invoice_voided",
]
FinalAction = Literal["cancel", "unpaid", "past_due"]

STATES: Final[tuple[State, ...]] = ("retrying", "awaiting_payment_method", "recovered", "exhausted", "voided")

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    # On the schedule.
    ("retrying", "soft_decline"): "retrying",
    ("retrying", "hard_decline"): "awaiting_payment_method",
    ("retrying", "technical_error"): "retrying",  # not a decline: the same slot is tried again soon
    ("retrying", "payment_method_added"): "retrying",  # an immediate attempt; its outcome is the next event
    ("retrying", "paid"): "recovered",
    ("retrying", "schedule_exhausted"): "exhausted",
    ("retrying", "invoice_voided"): "voided",
    # Waiting for the customer (hard or expired decline).
    ("awaiting_payment_method", "payment_method_added"): "awaiting_payment_method",
    ("awaiting_payment_method", "soft_decline"): "retrying",  # the new card declined softly: back on schedule
    ("awaiting_payment_method", "hard_decline"): "awaiting_payment_method",
    ("awaiting_payment_method", "technical_error"): "awaiting_payment_method",
    ("awaiting_payment_method", "paid"): "recovered",
    ("awaiting_payment_method", "schedule_exhausted"): "exhausted",  # the last slot passed without a new card
    ("awaiting_payment_method", "invoice_voided"): "voided",
    # After the final action the invoice may still be open (final action unpaid or past_due): a new card can
    # still pay it, which counts as a (late) recovery; failures change nothing.
    ("exhausted", "payment_method_added"): "exhausted",
    ("exhausted", "soft_decline"): "exhausted",
    ("exhausted", "hard_decline"): "exhausted",
    ("exhausted", "technical_error"): "exhausted",
    ("exhausted", "paid"): "recovered",
    ("exhausted", "invoice_voided"): "exhausted",
}


@dataclass(frozen=True)
class FinalEffect:
    """What a final action does: the subscription's next status (None: no subscription change), whether the
    invoice is marked uncollectible, and whether the subscription's later invoices are still charged."""

    subscription_status: str
    invoice_uncollectible: bool
    charge_later_invoices: bool


FINAL_EFFECTS: Final[dict[FinalAction, FinalEffect]] = {
    "cancel": FinalEffect("canceled", invoice_uncollectible=True, charge_later_invoices=False),
    "unpaid": FinalEffect("unpaid", invoice_uncollectible=False, charge_later_invoices=False),
    "past_due": FinalEffect("past_due", invoice_uncollectible=False, charge_later_invoices=True),
}


class InvalidTransition(ValueError):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"a dunning case that is {state} cannot take the event {event}")
        self.state = state
        self.event = event


def transition(state: State, event: Event) -> State:
    """The state after `event`; InvalidTransition for any pair not in the table."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None


def decline_event(decline_class: DeclineClass) -> Event:
    """The machine's event for a failed attempt of this class (expired waits for a card, like hard)."""
    if decline_class == "soft":
        return "soft_decline"
    if decline_class == "technical":
        return "technical_error"
    return "hard_decline"


# Technical errors (every gateway failed: nothing was charged) retry the same slot soon, at most this many times;
# after that the slot counts as spent, so an outage cannot keep a case open forever.
MAX_TECHNICAL_RETRIES: Final = 3
TECHNICAL_RETRY_DELAY: Final = timedelta(hours=1)


def technical_retry_at(now: datetime, retries_so_far: int) -> datetime:
    """When to try a slot again after its (retries_so_far + 1)-th technical error: 1 h, 2 h, 4 h later."""
    return now + TECHNICAL_RETRY_DELAY * (1 << retries_so_far)


@dataclass(frozen=True)
class AfterFailure:
    """The decision after one failed attempt."""

    state: State
    # Counted dunning attempts, the first failure included; technical errors and off-schedule attempts
    # (a new card, a manual payment) do not count.
    attempts: int
    technical_retries: int
    # The next automatic attempt; None when none is planned (waiting for a card, exhausted).
    next_attempt_at: datetime | None
    # Whether `next_attempt_at` is a new attempt to schedule (False: the one already planned stays).
    reschedule: bool
    # True exactly when this failure ended the case by exhausting the schedule: the final action runs now.
    exhausted_now: bool


def after_failure(
    state: State | None,
    decline_class: DeclineClass,
    *,
    attempts: int,
    technical_retries: int,
    counted: bool,
    planned: datetime | None,
    first_failure: datetime,
    schedule: Sequence[int],
    tz: ZoneInfo,
    now: datetime,
    preferred_hour: int | None = None,
) -> AfterFailure:
    """Apply a failed attempt to a case in `state` (None: this failure opens the case in `retrying`).

    `attempts` are the counted attempts before this one; `counted` says whether this attempt was one of the
    schedule's (the first automatic charge or a scheduled retry) rather than an extra one (a new payment method,
    a payment asked for by the customer or merchant); `planned` is the automatic attempt already scheduled."""
    current: State = "retrying" if state is None else state
    if decline_class == "technical":
        new_state = transition(current, "technical_error")
        if new_state != "retrying" or not counted:
            # Not a decline: nothing changes, the planned attempt (if any) stays.
            return AfterFailure(new_state, attempts, technical_retries, planned, False, False)
        if technical_retries < MAX_TECHNICAL_RETRIES:
            retry = technical_retry_at(now, technical_retries)
            return AfterFailure(new_state, attempts, technical_retries + 1, retry, True, False)
        decline_class = "soft"  # the slot is spent (bounded): carry on with the schedule
    new_state = transition(current, decline_event(decline_class))
    made = attempts + (1 if counted else 0)
    if new_state == "exhausted":
        return AfterFailure(new_state, made, 0, None, False, False)
    if new_state == "awaiting_payment_method":
        if now >= deadline(first_failure, schedule, tz):
            return AfterFailure(transition(new_state, "schedule_exhausted"), made, 0, None, False, True)
        return AfterFailure(new_state, made, 0, None, False, False)
    if not counted and current == "retrying" and planned is not None:
        return AfterFailure(new_state, made, technical_retries, planned, False, False)
    made = max(made, 1)  # an extra attempt that failed before any counted one still opens the schedule
    # A slot whose time passed while the case waited for a card is spent: offsets count from the first failure.
    while (at := next_attempt_at(first_failure, made, schedule, tz, preferred_hour, now=now)) is not None:
        if at >= now:
            return AfterFailure(new_state, made, 0, at, True, False)
        made += 1
    return AfterFailure(transition(new_state, "schedule_exhausted"), made, 0, None, False, True)


def deadline(first_failure: datetime, schedule: Sequence[int], tz: ZoneInfo) -> datetime:
    """When a case waiting for a payment method runs out: the time of the schedule's last slot."""
    last = next_attempt_at(first_failure, len(schedule), schedule, tz)
    assert last is not None
    return last
