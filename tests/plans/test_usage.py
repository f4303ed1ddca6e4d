"""Usage in arrears (plans.usage): the quantity an aggregate bills, recounts billed as adjustments exactly once,
and which billed periods can still change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.pricing import Charge, PricingModel, Tier, price_quantity
from plans.usage import (
    MAX_EVENT_AGE,
    RECOUNT_MARGIN,
    Billed,
    billable_quantity,
    recount_horizon,
    usage_adjustment,
)

FAST = settings(max_examples=200, deadline=None)

VOLUME = Charge(PricingModel.VOLUME, tiers=(Tier(2, unit_amount=100), Tier(None, unit_amount=50)))
NOTHING = Billed(quantity=Decimal(0), amount=0)


@pytest.mark.parametrize(
    ("aggregate", "quantity"),
    [
        (None, "0"),  # no events: a sum, max or last of nothing
        (0, "0"),
        (Decimal("-4.5"), "0"),  # corrections sent as negative values bill nothing, never a credit
        (7, "7"),
        (Decimal("12.500000000000"), "12.5"),
        (Decimal("0.0000000000005"), "0.000000000001"),  # half-up at 12 places
        (Decimal("0.0000000000004"), "0"),
        (Decimal("1E+3"), "1000"),
    ],
)
def test_billable_quantity_of_an_aggregate(aggregate: Decimal | int | None, quantity: str) -> None:
    result = billable_quantity(aggregate)
    assert format(result, "f") == quantity
    assert billable_quantity(result) == result


def test_a_late_event_that_crosses_a_volume_tier_is_billed_as_the_difference() -> None:
    """April billed 2 calls at 100 = 200; a late third call puts all three at 50 = 150: adjustment -50."""
    first = price_quantity(VOLUME, 2)
    adjustment = usage_adjustment(VOLUME, Decimal(3), Billed(first.quantity, first.amount))
    assert adjustment is not None
    assert (adjustment.quantity, adjustment.amount, adjustment.priced.amount) == (1, -50, 150)


def test_a_recount_that_changes_nothing_bills_nothing() -> None:
    assert usage_adjustment(VOLUME, Decimal(3), Billed(Decimal(3), 150)) is None


def test_a_last_value_that_went_down_is_a_negative_adjustment() -> None:
    per_unit = Charge(PricingModel.PER_UNIT, unit_amount=10)
    adjustment = usage_adjustment(per_unit, Decimal(15), Billed(Decimal(40), 400))
    assert adjustment is not None
    assert (adjustment.quantity, adjustment.amount) == (-25, -250)


def test_recount_horizon_covers_every_period_an_event_accepted_since_could_belong_to() -> None:
    """April ends May 1. An event of April 30 may arrive until June 4 (35 days): the renewal of July 1, whose
    previous count was June 1, must still count April again; the one of August 1 (previous count July 1) not."""
    april_end = datetime(2027, 5, 1, tzinfo=UTC)
    assert april_end > recount_horizon(datetime(2027, 6, 1, tzinfo=UTC))
    assert april_end <= recount_horizon(datetime(2027, 7, 1, tzinfo=UTC))
    assert recount_horizon(april_end) == april_end - MAX_EVENT_AGE - RECOUNT_MARGIN


charges = st.one_of(
    st.builds(
        lambda price, free: Charge(PricingModel.PER_UNIT, unit_amount=price, free_units=free),
        st.integers(0, 10**4),
        st.integers(0, 50),
    ),
    st.builds(
        lambda size, price: Charge(PricingModel.PACKAGE, unit_amount=price, package_size=size),
        st.integers(1, 100),
        st.integers(0, 10**4),
    ),
    st.builds(
        lambda model, bound, low, high, flat: Charge(
            model,
            tiers=(Tier(bound, unit_amount=low, flat_amount=flat), Tier(None, unit_amount=high)),
        ),
        st.sampled_from([PricingModel.GRADUATED, PricingModel.VOLUME]),
        st.integers(1, 500),
        st.integers(0, 10**4),
        st.integers(0, 10**4),
        st.integers(0, 10**4),
    ),
)
# What a period's aggregate is at each count: a sum or count only grows, but a `last` or a `sum` with
# negative corrections moves both ways, so any sequence is allowed.
recounts = st.lists(
    st.decimals(min_value=-100, max_value=10**4, places=3, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=8,
)


@FAST
@given(charges, recounts)
def test_everything_billed_for_a_period_adds_up_to_the_price_of_its_final_usage(
    charge: Charge, aggregates: list[Decimal]
) -> None:
    billed = NOTHING
    for aggregate in aggregates:
        adjustment = usage_adjustment(charge, billable_quantity(aggregate), billed)
        if adjustment is not None:
            billed = Billed(billed.quantity + adjustment.quantity, billed.amount + adjustment.amount)
        # Counting again at once finds nothing more to bill: never billed twice.
        assert usage_adjustment(charge, billable_quantity(aggregate), billed) is None
    final = price_quantity(charge, billable_quantity(aggregates[-1]))
    assert (billed.quantity, billed.amount) == (final.quantity, final.amount)
