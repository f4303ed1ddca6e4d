"""Proration: exact fraction of time remaining, credit of the old price, charge of the new one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.calendar import Interval, Period, period_bounds
from plans.errors import CatalogError
from plans.proration import ProrationKind, ProrationLine, fraction_remaining, prorate_change

FAST = settings(max_examples=200, deadline=None)
NEW_YORK = ZoneInfo("America/New_York")
APRIL = Period(datetime(2027, 4, 1, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))  # 30 days
HALFWAY = datetime(2027, 4, 16, tzinfo=UTC)


def test_stripe_upgrade_halfway_credits_half_the_old_price_and_charges_half_the_new() -> None:
    """Stripe docs, "Prorations" (stripe.com/docs/billing/subscriptions/prorations): upgrading from 10 USD to
    20 USD per month halfway through the period bills an additional 5 USD: -5 USD for unused time on the
    initial price and 10 USD for the remaining time on the new price."""
    credits, charges = prorate_change(1000, 1, 2000, 1, APRIL, HALFWAY)
    assert [line.amount for line in credits] == [-500]
    assert [line.amount for line in charges] == [1000]
    assert sum(line.amount for line in credits + charges) == 500


def test_per_seat_upgrade_halfway_matches_datacake_example() -> None:
    """Datacake docs, "Unused time and Remaining time in Invoices (Prorations)"
    (docs.datacake.de/portal/billing/unused-time-and-remaining-time-in-invoices-prorations): moving from 1 €
    to 3 € per device per month halfway through the period bills 1 € more: -0.50 € and +1.50 €."""
    credits, charges = prorate_change(100, 1, 300, 1, APRIL, HALFWAY)
    assert (credits[0].amount, charges[0].amount) == (-50, 150)


def test_proration_lines_say_what_they_prorate() -> None:
    credits, charges = prorate_change(1000, 3, 1500, 4, APRIL, HALFWAY)
    assert credits == [
        ProrationLine(ProrationKind.CREDIT, -1500, 1000, 3, Fraction(1, 2), HALFWAY, APRIL.end),
    ]
    assert charges == [
        ProrationLine(ProrationKind.CHARGE, 3000, 1500, 4, Fraction(1, 2), HALFWAY, APRIL.end),
    ]


def test_prorated_amounts_are_rounded_half_up_at_the_line() -> None:
    credits, charges = prorate_change(1, 1, 3, 1, APRIL, HALFWAY)  # 0.5 and 1.5
    assert (credits[0].amount, charges[0].amount) == (-1, 2)
    third = datetime(2027, 4, 21, tzinfo=UTC)  # 10 of 30 days left
    credits, charges = prorate_change(1000, 1, 1000, 1, APRIL, third)
    assert (credits[0].amount, charges[0].amount) == (-333, 333)


def test_a_cancellation_is_a_change_to_quantity_zero_and_leaves_only_the_credit() -> None:
    credits, charges = prorate_change(2999, 2, 2999, 0, APRIL, HALFWAY)
    assert [line.amount for line in credits] == [-2999]
    assert charges == []


def test_a_change_at_the_end_of_the_period_prorates_nothing_and_at_the_start_everything() -> None:
    assert prorate_change(1000, 1, 2000, 1, APRIL, APRIL.end) == ([], [])
    assert prorate_change(1000, 1, 2000, 1, APRIL, APRIL.end + timedelta(days=3)) == ([], [])
    credits, charges = prorate_change(1000, 1, 2000, 1, APRIL, APRIL.start)
    assert (credits[0].amount, charges[0].amount) == (-1000, 2000)


def test_fraction_remaining_is_exact_elapsed_time() -> None:
    at = APRIL.start + timedelta(days=10, seconds=1, microseconds=7)
    remaining = APRIL.end - at
    assert fraction_remaining(APRIL.start, APRIL.end, at) == Fraction(
        remaining // timedelta(microseconds=1), (APRIL.end - APRIL.start) // timedelta(microseconds=1)
    )
    assert fraction_remaining(APRIL.start, APRIL.end, APRIL.start - timedelta(days=1)) == 1
    assert fraction_remaining(APRIL.start, APRIL.end, APRIL.end + timedelta(days=1)) == 0


def test_fraction_remaining_across_dst_counts_the_hours_that_actually_pass() -> None:
    """March 2027 in New York is 31 days less the hour skipped on March 14: 743 hours."""
    march = period_bounds(datetime(2027, 3, 1, 12, tzinfo=NEW_YORK), Interval.MONTH, 1, 0, NEW_YORK)
    assert march.end - march.start == timedelta(hours=743)
    mid_march_local = datetime(2027, 3, 16, tzinfo=NEW_YORK)  # 16 days of wall clock left, 384 hours
    assert fraction_remaining(march.start, march.end, mid_march_local) == Fraction(384, 743)


def test_fraction_remaining_refuses_naive_times_and_empty_periods() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fraction_remaining(datetime(2027, 4, 1), APRIL.end, HALFWAY)
    with pytest.raises(ValueError, match="must end after it starts"):
        fraction_remaining(APRIL.end, APRIL.end, HALFWAY)


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ((-1, 1, 1, 1), "old_amount"),
        ((1, 1, 1.5, 1), "new_amount"),
        ((1, -1, 1, 1), "old_quantity"),
        ((1, 1, 1, True), "new_quantity"),
    ],
)
def test_prorate_change_validates_amounts_and_quantities(
    arguments: tuple[int, int, int, int], param: str
) -> None:
    old_amount, old_quantity, new_amount, new_quantity = arguments
    with pytest.raises(CatalogError) as caught:
        prorate_change(old_amount, old_quantity, new_amount, new_quantity, APRIL, HALFWAY)
    assert caught.value.param == param


# --- properties ---

amounts = st.integers(min_value=0, max_value=10**9)
seats = st.integers(min_value=0, max_value=10_000)
zones = st.sampled_from(["America/New_York", "Europe/London", "Asia/Shanghai", "Australia/Lord_Howe"]).map(
    ZoneInfo
)


@st.composite
def periods_and_instants(draw: st.DrawFn) -> tuple[Period, datetime]:
    tz = draw(zones)
    anchor = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))
    )
    unit = draw(st.sampled_from(list(Interval)))
    period = period_bounds(
        anchor, unit, draw(st.integers(min_value=1, max_value=3)), draw(st.integers(0, 50)), tz
    )
    span = (period.end - period.start) // timedelta(microseconds=1)
    at = period.start + timedelta(
        microseconds=draw(st.integers(min_value=-span // 4, max_value=span + span // 4))
    )
    return period, at


@FAST
@given(amounts, seats, periods_and_instants())
def test_credit_plus_charge_of_an_unchanged_plan_is_zero(
    amount: int, quantity: int, period_and_instant: tuple[Period, datetime]
) -> None:
    period, at = period_and_instant
    credits, charges = prorate_change(amount, quantity, amount, quantity, period, at)
    assert sum(line.amount for line in credits) + sum(line.amount for line in charges) == 0


@FAST
@given(amounts, seats, amounts, seats, periods_and_instants())
def test_a_credit_never_exceeds_what_was_charged_for_the_period(
    old_amount: int,
    old_quantity: int,
    new_amount: int,
    new_quantity: int,
    period_and_instant: tuple[Period, datetime],
) -> None:
    period, at = period_and_instant
    credits, charges = prorate_change(old_amount, old_quantity, new_amount, new_quantity, period, at)
    assert all(line.amount < 0 for line in credits) and all(line.amount > 0 for line in charges)
    assert -sum(line.amount for line in credits) <= old_amount * old_quantity
    assert sum(line.amount for line in charges) <= new_amount * new_quantity
    net = sum(line.amount for line in credits + charges)
    if new_amount * new_quantity >= old_amount * old_quantity:
        assert net >= 0  # an upgrade never pays the customer back
    else:
        assert net <= 0  # a downgrade never costs more


@FAST
@given(
    amounts,
    seats,
    st.lists(
        st.tuples(amounts, seats, st.integers(min_value=0, max_value=30 * 86_400)), min_size=1, max_size=6
    ),
)
def test_repeated_changes_in_one_period_never_credit_more_than_each_price_was_charged(
    first_amount: int, first_quantity: int, changes: list[tuple[int, int, int]]
) -> None:
    charged_for_current = first_amount * first_quantity  # the period was billed in advance at the first price
    current = (first_amount, first_quantity)
    total_charged, total_credited = charged_for_current, 0
    for amount, quantity, seconds in sorted(changes, key=lambda change: change[2]):
        credits, charges = prorate_change(
            *current, amount, quantity, APRIL, APRIL.start + timedelta(seconds=seconds)
        )
        credited = -sum(line.amount for line in credits)
        assert credited <= charged_for_current
        charged_for_current = sum(line.amount for line in charges)
        total_charged += charged_for_current
        total_credited += credited
        current = (amount, quantity)
    assert total_credited <= total_charged
