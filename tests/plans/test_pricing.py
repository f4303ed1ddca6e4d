"""Pricing a quantity: per_unit, graduated, volume, package, free units, tier validation and charge validation."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from plans.errors import CatalogError
from plans.money import EXACT_CONTEXT, round_minor
from plans.pricing import (
    Charge,
    PricedTier,
    PricingModel,
    Tier,
    price_quantity,
    validate_charge,
    validate_quantity,
    validate_tiers,
)

FAST = settings(max_examples=200, deadline=None)

# Stripe's "Set up tiered pricing" example tiers (Typographic fonts): 1-5 at 7 USD, 6-10 at 6.50, 11+ at 6.
TYPOGRAPHIC_TIERS = (
    Tier(up_to=5, unit_amount=700),
    Tier(up_to=10, unit_amount=650),
    Tier(up_to=None, unit_amount=600),
)


def graduated(*tiers: Tier, free_units: int | Decimal = 0) -> Charge:
    return Charge(PricingModel.GRADUATED, tiers=tiers, free_units=free_units)


def volume(*tiers: Tier) -> Charge:
    return Charge(PricingModel.VOLUME, tiers=tiers)


@pytest.mark.parametrize(("fonts", "total_cents"), [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)])
def test_volume_pricing_matches_stripe_typographic_table(fonts: int, total_cents: int) -> None:
    """Stripe docs, "Set up tiered pricing" (docs.stripe.com/subscriptions/pricing-models/tiered-pricing),
    volume-based table: 1 → 7 USD, 5 → 35, 6 → 39, 20 → 120, 25 → 150."""
    assert price_quantity(volume(*TYPOGRAPHIC_TIERS), fonts).amount == total_cents


@pytest.mark.parametrize(("fonts", "total_cents"), [(1, 700), (5, 3500), (6, 4150), (20, 12750), (25, 15750)])
def test_graduated_pricing_of_stripe_typographic_tiers(fonts: int, total_cents: int) -> None:
    """Same Stripe page and tiers, graduated mode. The page states that 5 fonts cost 35 USD in both modes and
    that graduated sums each tier's units at that tier's price; its graduated table could not be retrieved, so
    the other figures are that rule worked by hand (6 fonts: 5 × 7 + 1 × 6.50 = 41.50 USD)."""
    assert price_quantity(graduated(*TYPOGRAPHIC_TIERS), fonts).amount == total_cents


def test_graduated_and_volume_agree_inside_the_first_tier_and_split_after_it() -> None:
    for fonts in range(0, 6):
        assert (
            price_quantity(graduated(*TYPOGRAPHIC_TIERS), fonts).amount
            == price_quantity(volume(*TYPOGRAPHIC_TIERS), fonts).amount
        )
    assert (
        price_quantity(volume(*TYPOGRAPHIC_TIERS), 6).amount
        < price_quantity(graduated(*TYPOGRAPHIC_TIERS), 6).amount
    )


def test_graduated_and_volume_match_zuplo_worked_example() -> None:
    """Zuplo docs, "Pricing models" (zuplo.com/docs/articles/monetization/pricing-models): tiers 1-1,000 at
    $0.10, 1,001-10,000 at $0.05, 10,001+ at $0.01; 15,000 units cost $600 graduated
    ((1,000 × 0.10) + (9,000 × 0.05) + (5,000 × 0.01)) and $150 volume (15,000 × 0.01)."""
    tiers = (Tier(1_000, unit_amount=10), Tier(10_000, unit_amount=5), Tier(None, unit_amount=1))
    assert price_quantity(graduated(*tiers), 15_000).amount == 60_000
    assert price_quantity(volume(*tiers), 15_000).amount == 15_000


def test_volume_with_decimal_unit_prices_and_flat_fees_matches_lago_example() -> None:
    """Lago docs, "Volume" charge model (getlago.com/docs/guide/plans/charges/charge-models/volume): tiers
    0-10,000 at $0.0010, -50,000 at $0.0008, -100,000 at $0.0006, above at $0.0004, each with a $10 fixed fee;
    65,000 API calls cost 65,000 × $0.0006 + $10 = $49. Unit prices are fractions of a cent, so they are
    unit_amount_decimal in cents."""
    tiers = (
        Tier(10_000, unit_amount_decimal=Decimal("0.10"), flat_amount=1000),
        Tier(50_000, unit_amount_decimal=Decimal("0.08"), flat_amount=1000),
        Tier(100_000, unit_amount_decimal=Decimal("0.06"), flat_amount=1000),
        Tier(None, unit_amount_decimal=Decimal("0.04"), flat_amount=1000),
    )
    result = price_quantity(volume(*tiers), 65_000)
    assert result.amount == 4900
    assert result.tiers == (
        PricedTier(
            tier_index=2,
            from_units=50_000,
            to_units=100_000,
            quantity=Decimal(65_000),
            unit_amount=Decimal("0.06"),
            flat_amount=1000,
            subtotal=Decimal("4900"),
        ),
    )


def test_graduated_breakdown_shows_each_tier_of_lago_example() -> None:
    """Lago docs, "Graduated" charge model (getlago.com/docs/guide/plans/charges/charge-models/graduated): $1
    per unit for the first 100 units, $0.50 for the next 100, $0.10 for any additional unit. The page gives no
    total; 250 units worked by hand: 100 × 1 + 100 × 0.50 + 50 × 0.10 = $155."""
    tiers = (Tier(100, unit_amount=100), Tier(200, unit_amount=50), Tier(None, unit_amount=10))
    result = price_quantity(graduated(*tiers), 250)
    assert result.amount == 15_500
    assert [
        (row.tier_index, row.from_units, row.to_units, row.quantity, row.subtotal) for row in result.tiers
    ] == [
        (0, 0, 100, Decimal(100), Decimal(10_000)),
        (1, 100, 200, Decimal(100), Decimal(5_000)),
        (2, 200, None, Decimal(50), Decimal(500)),
    ]


def test_package_with_free_units_matches_lago_example() -> None:
    """Lago docs, "Package" charge model (getlago.com/docs/guide/plans/charges/charge-models/package): $5 per
    100 units with the first 100 units free; 201 units cost $0 + $5 + $5 = $10."""
    charge = Charge(PricingModel.PACKAGE, unit_amount=500, package_size=100, free_units=100)
    result = price_quantity(charge, 201)
    assert result.amount == 1000
    assert result.billable_quantity == 101
    assert result.packages == 2
    assert result.tiers[0].quantity == 2 and result.tiers[0].unit_amount == 500


def test_graduated_flat_fee_is_charged_once_per_tier_reached_and_not_for_zero_usage() -> None:
    """Lago's graduated model spec (lago-api, graduated_service_spec.rb): "does not apply the flat amount for 0";
    a tier's flat amount is added once the quantity reaches into the tier."""
    tiers = (Tier(10, unit_amount=10, flat_amount=2), Tier(None, unit_amount=5, flat_amount=3))
    assert price_quantity(graduated(*tiers), 0).amount == 0
    assert price_quantity(graduated(*tiers), 1).amount == 10 + 2
    assert price_quantity(graduated(*tiers), 10).amount == 100 + 2
    assert price_quantity(graduated(*tiers), 11).amount == 100 + 2 + 5 + 3


def test_zero_billable_quantity_costs_nothing_under_every_model() -> None:
    tiers = (Tier(10, unit_amount=10, flat_amount=99), Tier(None, unit_amount=5, flat_amount=99))
    charges = [
        Charge(PricingModel.PER_UNIT, unit_amount=100),
        Charge(PricingModel.PACKAGE, unit_amount=100, package_size=10),
        graduated(*tiers),
        volume(*tiers),
    ]
    for charge in charges:
        result = price_quantity(charge, 0)
        assert (result.amount, result.tiers) == (0, ())


def test_per_unit_subtracts_free_units_first() -> None:
    charge = Charge(PricingModel.PER_UNIT, unit_amount=2, free_units=1000)
    assert price_quantity(charge, 1500).amount == 1000
    assert price_quantity(charge, 999).amount == 0
    assert price_quantity(charge, 1500).billable_quantity == 500


def test_graduated_free_units_shift_usage_before_the_tiers_apply() -> None:
    tiers = (Tier(100, unit_amount=10), Tier(None, unit_amount=1))
    assert price_quantity(graduated(*tiers, free_units=50), 150).amount == 100 * 10


def test_decimal_unit_price_is_rounded_once_half_up_at_the_line() -> None:
    half_cent = Charge(PricingModel.PER_UNIT, unit_amount_decimal=Decimal("0.5"))
    assert price_quantity(half_cent, 1).amount == 1  # 0.5 → 1
    assert price_quantity(half_cent, 3).amount == 2  # 1.5 → 2
    assert price_quantity(half_cent, 5).amount == 3  # 2.5 → 3, not 2
    # Three tiers of 0.4 each: rounding each would give 0; rounding the line once gives round(1.2) = 1.
    tiers = (
        Tier(1, unit_amount_decimal=Decimal("0.4")),
        Tier(2, unit_amount_decimal=Decimal("0.4")),
        Tier(None, unit_amount_decimal=Decimal("0.4")),
    )
    result = price_quantity(graduated(*tiers), 3)
    assert [row.subtotal for row in result.tiers] == [Decimal("0.4")] * 3
    assert (result.exact_amount, result.amount) == (Decimal("1.2"), 1)


def test_fractional_quantities_are_priced_exactly() -> None:
    charge = Charge(PricingModel.PER_UNIT, unit_amount_decimal=Decimal("0.000000000001"))
    result = price_quantity(charge, Decimal("123456789.123456789"))
    assert result.exact_amount == Decimal("0.000123456789123456789")
    assert result.amount == 0
    tiers = (Tier(10, unit_amount=100), Tier(None, unit_amount=50))
    assert price_quantity(graduated(*tiers), Decimal("10.5")).exact_amount == Decimal("1025.0")


@pytest.mark.parametrize(
    ("tiers", "param", "fragment"),
    [
        ((), "tiers", "at least one tier"),
        (
            (Tier(10, 1), Tier(100, 1), Tier(50, 1), Tier(None, 1)),
            "tiers[2].up_to",
            "tiers[2].up_to must be greater than tiers[1].up_to (100)",
        ),
        ((Tier(10, 1), Tier(10, 1), Tier(None, 1)), "tiers[1].up_to", "greater than tiers[0].up_to (10)"),
        ((Tier(None, 1), Tier(10, 1)), "tiers[0].up_to", "must be the last tier"),
        ((Tier(10, 1), Tier(20, 1)), "tiers[1].up_to", "must be null (no limit) on the last tier"),
        ((Tier(0, 1), Tier(None, 1)), "tiers[0].up_to", "at least 1"),
        ((Tier(True, 1), Tier(None, 1)), "tiers[0].up_to", "integer or null"),
        ((Tier(10, -5), Tier(None, 1)), "tiers[0].unit_amount", "must not be negative"),
        ((Tier(10, 1), Tier(None, 1, flat_amount=-1)), "tiers[1].flat_amount", "must not be negative"),
        ((Tier(10, 1, Decimal("0.5")), Tier(None, 1)), "tiers[0].unit_amount_decimal", "not both"),
        (
            (Tier(10), Tier(None, 1)),
            "tiers[0].unit_amount",
            "needs unit_amount, unit_amount_decimal or flat_amount",
        ),
        (
            (Tier(10, unit_amount_decimal=Decimal("-1")), Tier(None, 1)),
            "tiers[0].unit_amount_decimal",
            "negative",
        ),
        ((Tier(10, 1), Tier(None, unit_amount=1.5)), "tiers[1].unit_amount", "integer"),  # type: ignore[arg-type]
    ],
)
def test_tier_validation_names_the_offending_tier(tiers: tuple[Tier, ...], param: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_tiers(tiers)
    assert caught.value.param == param
    assert fragment in caught.value.message


def test_valid_tiers_pass_validation_unchanged() -> None:
    assert validate_tiers(list(TYPOGRAPHIC_TIERS)) == TYPOGRAPHIC_TIERS
    assert validate_tiers((Tier(None, flat_amount=500),)) == (Tier(None, flat_amount=500),)


@pytest.mark.parametrize(
    ("charge", "param", "code"),
    [
        (Charge(PricingModel.PER_UNIT), "charges[3].unit_amount", "parameter_missing"),
        (
            Charge(PricingModel.PER_UNIT, unit_amount=1, tiers=TYPOGRAPHIC_TIERS),
            "charges[3].tiers",
            "parameter_not_allowed",
        ),
        (
            Charge(PricingModel.PER_UNIT, unit_amount=1, package_size=10),
            "charges[3].package_size",
            "parameter_not_allowed",
        ),
        (Charge(PricingModel.PACKAGE, unit_amount=1), "charges[3].package_size", "parameter_missing"),
        (
            Charge(PricingModel.PACKAGE, unit_amount=1, package_size=0),
            "charges[3].package_size",
            "parameter_invalid",
        ),
        (Charge(PricingModel.PACKAGE, package_size=10), "charges[3].unit_amount", "parameter_missing"),
        (Charge(PricingModel.GRADUATED), "charges[3].tiers", "parameter_missing"),
        (
            Charge(PricingModel.VOLUME, unit_amount=5, tiers=TYPOGRAPHIC_TIERS),
            "charges[3].unit_amount",
            "parameter_not_allowed",
        ),
        (
            Charge(PricingModel.VOLUME, tiers=(Tier(10, 1), Tier(5, 1), Tier(None, 1))),
            "charges[3].tiers[1].up_to",
            "parameter_invalid",
        ),
        (
            Charge(PricingModel.PER_UNIT, unit_amount=1, free_units=-1),
            "charges[3].free_units",
            "parameter_invalid",
        ),
        (
            Charge(PricingModel.PER_UNIT, unit_amount=1, free_units=0.5),  # type: ignore[arg-type]
            "charges[3].free_units",
            "parameter_invalid",
        ),
        (Charge("tiered", unit_amount=1), "charges[3].model", "parameter_invalid"),  # type: ignore[arg-type]
    ],
)
def test_charge_validation_gives_the_field_path(charge: Charge, param: str, code: str) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_charge(charge, param="charges[3]")
    assert (caught.value.param, caught.value.code) == (param, code)
    assert caught.value.message.startswith(param) or param in caught.value.message


def test_model_given_as_a_string_is_accepted() -> None:
    charge = Charge("per_unit", unit_amount=3)  # type: ignore[arg-type]
    assert validate_charge(charge) is charge
    assert price_quantity(charge, 2).model is PricingModel.PER_UNIT


@pytest.mark.parametrize(
    "quantity", [-1, Decimal("-0.1"), 1.5, True, Decimal("NaN"), Decimal("Infinity"), "3", Decimal("1E+40")]
)
def test_invalid_quantities_are_refused(quantity: object) -> None:
    with pytest.raises(CatalogError) as caught:
        price_quantity(Charge(PricingModel.PER_UNIT, unit_amount=1), quantity)  # type: ignore[arg-type]
    assert caught.value.param == "quantity"


def test_validate_quantity_returns_a_decimal() -> None:
    assert validate_quantity(7) == Decimal(7)
    assert validate_quantity(Decimal("0.25")) == Decimal("0.25")


# --- properties ---

quantities = st.one_of(
    st.integers(min_value=0, max_value=10**7),
    st.decimals(min_value=0, max_value=10**7, places=6, allow_nan=False, allow_infinity=False),
)
unit_prices = st.one_of(
    st.builds(lambda amount: {"unit_amount": amount}, st.integers(min_value=0, max_value=10**6)),
    st.builds(
        lambda amount: {"unit_amount_decimal": amount},
        st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False),
    ),
)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), max_size=6)))
    tiers = []
    for up_to in [*bounds, None]:
        price = draw(unit_prices)
        flat = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10**5)))
        tiers.append(Tier(up_to=up_to, flat_amount=flat, **price))
    return tuple(tiers)


@FAST
@given(tier_lists(), quantities, quantities)
def test_graduated_price_is_monotone_in_quantity(
    tiers: tuple[Tier, ...], a: int | Decimal, b: int | Decimal
) -> None:
    low, high = sorted((Decimal(a), Decimal(b)))
    cheap, dear = price_quantity(graduated(*tiers), low), price_quantity(graduated(*tiers), high)
    assert cheap.exact_amount <= dear.exact_amount
    assert cheap.amount <= dear.amount


@FAST
@given(tier_lists(), quantities)
def test_graduated_breakdown_adds_up(tiers: tuple[Tier, ...], quantity: int | Decimal) -> None:
    result = price_quantity(graduated(*tiers), quantity)
    # Checked in the same exact context the pricing uses: the default 28 digits would round the sums.
    with localcontext(EXACT_CONTEXT):
        assert sum((row.quantity for row in result.tiers), Decimal(0)) == result.billable_quantity
        assert sum((row.subtotal for row in result.tiers), Decimal(0)) == result.exact_amount
        for row in result.tiers:
            assert row.subtotal == row.quantity * row.unit_amount + row.flat_amount
    assert result.amount == round_minor(result.exact_amount)
    for row in result.tiers:
        assert row.quantity > 0
        assert row.to_units is None or row.quantity <= row.to_units - row.from_units


@FAST
@given(tier_lists(), quantities, quantities)
def test_volume_price_is_non_negative_and_linear_inside_a_tier(
    tiers: tuple[Tier, ...], a: int | Decimal, b: int | Decimal
) -> None:
    first, second = price_quantity(volume(*tiers), a), price_quantity(volume(*tiers), b)
    assert first.amount >= 0 and second.amount >= 0
    for result in (first, second):
        if result.billable_quantity:
            (row,) = result.tiers
            assert result.exact_amount == result.billable_quantity * row.unit_amount + row.flat_amount
            assert row.from_units < result.billable_quantity
            assert row.to_units is None or result.billable_quantity <= row.to_units
    if first.tiers and second.tiers and first.tiers[0].tier_index == second.tiers[0].tier_index:
        slope = first.tiers[0].unit_amount
        assert second.exact_amount - first.exact_amount == (Decimal(b) - Decimal(a)) * slope


@FAST
@given(
    st.integers(min_value=1, max_value=1000),
    unit_prices,
    st.integers(min_value=0, max_value=5000),
    quantities,
)
def test_package_price_is_a_step_function_of_whole_packages(
    package_size: int, price: dict[str, int | Decimal], free_units: int, quantity: int | Decimal
) -> None:
    charge = Charge(PricingModel.PACKAGE, package_size=package_size, free_units=free_units, **price)  # type: ignore[arg-type]
    result = price_quantity(charge, quantity)
    billable = max(Decimal(quantity) - free_units, Decimal(0))
    packages = -(-Fraction(billable) // package_size)
    assert result.packages == packages
    with localcontext(EXACT_CONTEXT):
        assert result.exact_amount == packages * charge.unit_price
    # Constant on each step ((k-1)·size, k·size]: the top of the step costs the same, one unit more costs
    # more.
    assume(packages > 0)
    top = price_quantity(charge, free_units + packages * package_size)
    assert top.amount == result.amount
    above = price_quantity(charge, free_units + packages * package_size + Decimal("0.000001"))
    assert above.exact_amount == result.exact_amount + charge.unit_price


@FAST
@given(unit_prices, st.integers(min_value=0, max_value=10**5), quantities)
def test_free_units_are_the_same_as_pricing_fewer_units(
    price: dict[str, int | Decimal], free_units: int, quantity: int | Decimal
) -> None:
    with_free = Charge(PricingModel.PER_UNIT, free_units=free_units, **price)  # type: ignore[arg-type]
    without = Charge(PricingModel.PER_UNIT, **price)  # type: ignore[arg-type]
    billable = max(Decimal(quantity) - free_units, Decimal(0))
    assert price_quantity(with_free, quantity).amount == price_quantity(without, billable).amount
    with localcontext(EXACT_CONTEXT):
        assert price_quantity(without, billable).exact_amount == billable * without.unit_price
