"""A plan's minimum commitment per period: the true-up that makes up a shortfall, prorated for a partial period."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.commitment import minimum_true_up, validate_minimum_commitment
from plans.errors import CatalogError
from plans.money import round_minor

FAST = settings(max_examples=300, deadline=None)


def test_lago_style_minimum_makes_up_the_shortfall() -> None:
    """A $50 minimum on a $10 plan that used $15: $25 true-up; with $45 of usage, none."""
    assert minimum_true_up(minimum=5000, fixed_per_period=Decimal(1000), usage=1500).amount == 2500
    assert minimum_true_up(minimum=5000, fixed_per_period=Decimal(1000), usage=4500).amount == 0


def test_a_partial_period_owes_the_minimum_prorated_and_rounded_once() -> None:
    """A third of a period: a third of $60 is $20, a third of $10 is $3.33⅓, $5 used: 1,166⅔¢ → 1,167¢."""
    true_up = minimum_true_up(
        minimum=6000, fixed_per_period=Decimal(1000), usage=500, fraction=Fraction(1, 3)
    )
    assert true_up.amount == 1167
    assert true_up.minimum == 2000


def test_invalid_inputs_are_refused() -> None:
    assert validate_minimum_commitment(None) is None
    for bad in (0, -1, True, "5000"):
        with pytest.raises(CatalogError) as raised:
            validate_minimum_commitment(bad)
        assert raised.value.param == "minimum_commitment"
    with pytest.raises(CatalogError):
        minimum_true_up(minimum=100, fixed_per_period=Decimal(0), usage=0, fraction=Fraction(0))


minimums = st.integers(min_value=1, max_value=10**9)
fixed_fees = st.integers(min_value=0, max_value=10**9).map(Decimal)
usages = st.integers(min_value=0, max_value=10**9)
fractions = st.fractions(min_value=Fraction(1, 10**6), max_value=1)


@FAST
@given(minimums, fixed_fees, usages, fractions)
def test_the_true_up_lifts_the_period_to_the_minimum_and_never_beyond(
    minimum: int, fixed: Decimal, usage: int, fraction: Fraction
) -> None:
    true_up = minimum_true_up(minimum=minimum, fixed_per_period=fixed, usage=usage, fraction=fraction)
    assert true_up.amount >= 0
    billed = round_minor(Fraction(fixed) * fraction) + usage
    if true_up.amount:
        # Rounded once from the exact shortfall: within one minor unit of the prorated minimum.
        assert abs(billed + true_up.amount - round_minor(minimum * fraction)) <= 1
    else:
        assert Fraction(fixed) * fraction + usage >= minimum * fraction - Fraction(1, 2)


@FAST
@given(minimums, fixed_fees, usages, usages, fractions)
def test_more_usage_never_raises_the_true_up(
    minimum: int, fixed: Decimal, usage: int, more: int, fraction: Fraction
) -> None:
    less = minimum_true_up(minimum=minimum, fixed_per_period=fixed, usage=usage, fraction=fraction)
    most = minimum_true_up(minimum=minimum, fixed_per_period=fixed, usage=usage + more, fraction=fraction)
    assert most.amount <= less.amount
