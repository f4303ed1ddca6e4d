"""The percentage charge (Lago's model): a rate of each transaction plus a fixed fee, held between a minimum and a
maximum per transaction, with free first transactions; worked examples and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.errors import CatalogError
from plans.pricing import (
    Charge,
    PricingModel,
    price_quantity,
    price_transactions,
    price_usage,
    validate_charge,
)
from plans.usage import Billed, usage_adjustment

FAST = settings(max_examples=200, deadline=None)


def percentage(rate: str, **fields: int) -> Charge:
    return Charge(PricingModel.PERCENTAGE, rate=Decimal(rate), **fields)  # type: ignore[arg-type]


def test_lago_docs_example_free_events_then_rate_and_fixed_fee() -> None:
    """Lago's percentage page: 1.2 % + $0.10 per transaction, the first 3 events or $500 free; transactions of
    $200, $100, $100 are free (3 events), the fourth, $50, costs $0.10 + 1.2 % of $50 = $0.70."""
    charge = percentage(
        "1.2", fixed_amount=10, free_units_per_events=3, free_units_per_total_aggregation=50000
    )
    result = price_transactions(charge, [20000, 10000, 10000, 5000])
    assert result.amount == 70
    assert result.quantity == 45000
    assert result.billable_quantity == 5000
    assert result.free_units == 40000
    assert result.transactions is not None
    assert (result.transactions.count, result.transactions.free, result.transactions.paid) == (4, 3, 1)


def test_stripe_like_card_fee_on_three_payments() -> None:
    """2.9 % + 30¢ on $10, $25.50 and $100: 59¢ + 103.95¢ + 320¢ = 482.95¢, rounded once to 483¢."""
    result = price_transactions(percentage("2.9", fixed_amount=30), [1000, 2550, 10000])
    assert result.exact_amount == Decimal("482.95")
    assert result.amount == 483


def test_min_and_max_hold_each_transaction_fee_including_the_fixed_fee() -> None:
    """1 % + 20¢, at least 50¢ and at most $3 a transaction: $5 → 25¢ lifted to 50¢; $100 → 120¢ as is;
    $1,000 → 1,020¢ cut to 300¢. Total 470¢; the min/max moved +25 − 720 = −695¢."""
    charge = percentage("1", fixed_amount=20, per_transaction_min_amount=50, per_transaction_max_amount=300)
    result = price_transactions(charge, [500, 10000, 100000])
    assert result.amount == 470
    assert result.transactions is not None
    assert result.transactions.adjustment == Decimal(-695)


def test_the_transaction_crossing_the_free_amount_pays_the_rate_on_its_excess_and_the_fixed_fee() -> None:
    """2 % + 10¢ with the first $50 free: $30 free; $40 pays 2 % of $20 + 10¢ = 50¢; $10 pays 30¢."""
    charge = percentage("2", fixed_amount=10, free_units_per_total_aggregation=5000)
    result = price_transactions(charge, [3000, 4000, 1000])
    assert result.amount == 80
    assert (result.free_units, result.billable_quantity) == (5000, 3000)


def test_no_transaction_costs_nothing_and_a_free_one_is_not_lifted_to_the_minimum() -> None:
    charge = percentage("1", fixed_amount=10, per_transaction_min_amount=100, free_units_per_events=1)
    assert price_transactions(charge, []).amount == 0
    assert price_transactions(charge, [5000]).amount == 0
    assert price_transactions(charge, [5000, 5000]).amount == 100


def test_a_negative_amount_counts_as_a_zero_amount_transaction() -> None:
    result = price_transactions(percentage("10", fixed_amount=5), [-1000, 1000])
    assert result.amount == 5 + 5 + 100
    assert result.quantity == 1000


def test_price_quantity_treats_a_figure_as_one_transaction() -> None:
    assert price_quantity(percentage("2.9", fixed_amount=30), 10000).amount == 320
    assert price_quantity(percentage("2.9", fixed_amount=30), 0).amount == 0


def test_price_usage_needs_the_transactions_of_a_percentage_charge() -> None:
    with pytest.raises(ValueError, match="transactions"):
        price_usage(percentage("1"), Decimal(10), None)
    assert price_usage(Charge(PricingModel.PER_UNIT, unit_amount=3), Decimal(10), None).amount == 30


@pytest.mark.parametrize(
    ("charge", "param", "code"),
    [
        (Charge(PricingModel.PERCENTAGE), "rate", "parameter_missing"),
        (percentage("-1"), "rate", "parameter_invalid"),
        (percentage("100.5"), "rate", "parameter_invalid"),
        (percentage("1.23456"), "rate", "parameter_invalid"),
        (percentage("1", fixed_amount=-1), "fixed_amount", "parameter_invalid"),
        (
            percentage("1", per_transaction_min_amount=500, per_transaction_max_amount=100),
            "per_transaction_min_amount",
            "parameter_conflict",
        ),
        (
            Charge(PricingModel.PERCENTAGE, rate=Decimal(1), unit_amount=5),
            "unit_amount",
            "parameter_not_allowed",
        ),
        (
            Charge(PricingModel.PERCENTAGE, rate=Decimal(1), free_units=3),
            "free_units",
            "parameter_not_allowed",
        ),
        (Charge(PricingModel.PER_UNIT, unit_amount=5, rate=Decimal(1)), "rate", "parameter_not_allowed"),
        (
            Charge(PricingModel.PER_UNIT, unit_amount=5, fixed_amount=3),
            "fixed_amount",
            "parameter_not_allowed",
        ),
    ],
)
def test_invalid_percentage_charges_name_the_field(charge: Charge, param: str, code: str) -> None:
    with pytest.raises(CatalogError) as raised:
        validate_charge(charge, param="charges[0]")
    assert raised.value.param == f"charges[0].{param}"
    assert raised.value.code == code


amounts = st.lists(st.integers(min_value=0, max_value=10**9), max_size=30)
rates = st.decimals(min_value=0, max_value=100, places=4)
optional_amounts = st.none() | st.integers(min_value=0, max_value=10**6)


@st.composite
def percentage_charges(draw: st.DrawFn) -> Charge:
    low, high = draw(optional_amounts), draw(optional_amounts)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Charge(
        PricingModel.PERCENTAGE,
        rate=draw(rates),
        fixed_amount=draw(optional_amounts),
        free_units_per_events=draw(st.none() | st.integers(min_value=0, max_value=5)),
        free_units_per_total_aggregation=draw(optional_amounts),
        per_transaction_min_amount=low,
        per_transaction_max_amount=high,
    )


@FAST
@given(percentage_charges(), amounts, st.integers(min_value=0, max_value=10**9))
def test_one_more_transaction_never_lowers_the_price(charge: Charge, values: list[int], extra: int) -> None:
    assert price_transactions(charge, [*values, extra]).amount >= price_transactions(charge, values).amount


@FAST
@given(percentage_charges(), amounts)
def test_paid_transactions_are_held_between_min_and_max(charge: Charge, values: list[int]) -> None:
    result = price_transactions(charge, values)
    assert result.transactions is not None
    paid = result.transactions.paid
    assert result.transactions.free + paid == len(values)
    if charge.per_transaction_min_amount is not None:
        assert result.exact_amount >= paid * charge.per_transaction_min_amount
    if charge.per_transaction_max_amount is not None:
        assert result.exact_amount <= paid * charge.per_transaction_max_amount
    assert result.free_units + result.billable_quantity == result.quantity == sum(values)


@FAST
@given(percentage_charges(), amounts, amounts)
def test_late_transactions_adjust_to_the_price_of_the_whole_period(
    charge: Charge, first: list[int], late: list[int]
) -> None:
    billed_result = price_transactions(charge, first)
    billed = Billed(quantity=billed_result.quantity, amount=billed_result.amount)
    adjustment = usage_adjustment(charge, Decimal(0), billed, [*first, *late])
    whole = price_transactions(charge, [*first, *late])
    assert billed.amount + (adjustment.amount if adjustment else 0) == whole.amount
