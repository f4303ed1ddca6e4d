"""Subscription items: which add-ons fit a subscription, and the proration of an item's quantity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.calendar import Period
from plans.errors import CatalogError
from plans.items import ItemTerms, check_addon, item_fee, prorate_item_change
from plans.proration import ProrationLine

FAST = settings(max_examples=200, deadline=None)
APRIL = Period(datetime(2027, 4, 1, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))  # 30 days
MONTHLY_USD = ItemTerms(code="team", currency="USD", interval="month", interval_count=1, metered=False)

unit_amounts = st.decimals(min_value=0, max_value=100_000, places=4, allow_nan=False, allow_infinity=False)
quantities = st.integers(min_value=0, max_value=1_000)
instants = st.integers(min_value=0, max_value=30 * 24 * 3600).map(
    lambda s: APRIL.start + timedelta(seconds=s)
)


def _total(lines: tuple[list[ProrationLine], list[ProrationLine]]) -> int:
    credits, charges = lines
    return sum(line.amount for line in credits + charges)


def test_stripe_adding_a_second_price_halfway_charges_half_of_it() -> None:
    """Stripe docs, "Prorations": an item added to a subscription halfway through a 30-day month is charged for
    the remaining half: 2 × 10.00 a month from April 16 is 10.00 for April."""
    credits, charges = prorate_item_change(Decimal(1000), 0, 2, APRIL, datetime(2027, 4, 16, tzinfo=UTC))
    assert credits == []
    assert [(line.amount, line.fraction) for line in charges] == [(1000, 1 / 2)]


def test_a_quantity_change_credits_the_old_fee_and_charges_the_new_one_for_the_same_time() -> None:
    # 2 → 5 units of 10.00 with 20 of 30 days left: −20.00 × 2/3 = −13.33, +50.00 × 2/3 = 33.33.
    credits, charges = prorate_item_change(Decimal(1000), 2, 5, APRIL, datetime(2027, 4, 11, tzinfo=UTC))
    assert ([line.amount for line in credits], [line.amount for line in charges]) == ([-1333], [3333])


def test_an_add_on_must_share_currency_and_interval_and_bill_in_advance() -> None:
    check_addon(MONTHLY_USD, ItemTerms("storage", "USD", "month", 1, metered=False))
    for addon, code in [
        (ItemTerms("eu", "EUR", "month", 1, metered=False), "item_currency_mismatch"),
        (ItemTerms("yearly", "USD", "year", 1, metered=False), "item_interval_mismatch"),
        (ItemTerms("quarterly", "USD", "month", 3, metered=False), "item_interval_mismatch"),
        (ItemTerms("calls", "USD", "month", 1, metered=True), "item_metered_unsupported"),
    ]:
        with pytest.raises(CatalogError) as refused:
            check_addon(MONTHLY_USD, addon)
        assert (refused.value.code, refused.value.param) == (code, "plan")
        assert repr(addon.code) in refused.value.message


@FAST
@given(unit_amounts, quantities, instants)
def test_an_unchanged_quantity_prorates_to_nothing(unit: Decimal, quantity: int, at: datetime) -> None:
    assert _total(prorate_item_change(unit, quantity, quantity, APRIL, at)) == 0


@FAST
@given(unit_amounts, quantities, instants)
def test_an_item_added_and_removed_at_one_instant_costs_nothing(
    unit: Decimal, quantity: int, at: datetime
) -> None:
    added = prorate_item_change(unit, 0, quantity, APRIL, at)
    removed = prorate_item_change(unit, quantity, 0, APRIL, at)
    assert _total(added) + _total(removed) == 0


@FAST
@given(unit_amounts, quantities, instants)
def test_adding_an_item_never_charges_more_than_its_full_period(
    unit: Decimal, quantity: int, at: datetime
) -> None:
    charged = _total(prorate_item_change(unit, 0, quantity, APRIL, at))
    assert 0 <= charged <= item_fee(unit, quantity)
    assert _total(prorate_item_change(unit, 0, quantity, APRIL, APRIL.start)) == item_fee(unit, quantity)
