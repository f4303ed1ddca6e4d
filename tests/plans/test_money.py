"""Money: currency exponents from CLDR, currency validation, unit_amount_decimal parsing, the rounding rule."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from babel.numbers import list_currencies
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.errors import CatalogError
from plans.money import (
    MAX_AMOUNT,
    allocate_pro_rata,
    currency_exponent,
    parse_unit_amount_decimal,
    round_minor,
    validate_amount,
    validate_currency,
    validate_unit_amount_decimal,
)

FAST = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("JPY", 0),
        ("USD", 2),
        ("KWD", 3),
        ("CNY", 2),
        ("EUR", 2),
        ("BHD", 3),
        ("KRW", 0),
        ("CLF", 4),
        ("jpy", 0),
    ],
)
def test_currency_exponent_is_the_cldr_minor_unit_count(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


def test_every_iso_4217_code_known_to_babel_has_an_exponent_between_0_and_4() -> None:
    codes = list_currencies()
    assert len(codes) > 250  # current and historic codes
    for code in codes:
        assert 0 <= currency_exponent(code) <= 4, code


def test_currency_exponent_of_an_unknown_code_names_the_parameter() -> None:
    with pytest.raises(CatalogError) as caught:
        currency_exponent("ABC")
    assert caught.value.param == "currency"
    assert "'ABC' is not an ISO 4217 currency code" in caught.value.message


@pytest.mark.parametrize(("given_code", "normalized"), [("usd", "USD"), ("Eur", "EUR"), ("JPY", "JPY")])
def test_validate_currency_returns_the_upper_case_code(given_code: str, normalized: str) -> None:
    assert validate_currency(given_code) == normalized


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("US", "must be a three-letter ISO 4217 code"),
        ("USDX", "must be a three-letter ISO 4217 code"),
        (" usd", "must be a three-letter ISO 4217 code"),
        (840, "must be a three-letter ISO 4217 code"),
        (None, "must be a three-letter ISO 4217 code"),
        ("ABC", "'ABC' is not an ISO 4217 currency code"),
        ("DEM", "'DEM' is not a currency customers can pay in today"),
        ("hrk", "'HRK' is not a currency customers can pay in today"),
        ("XAU", "'XAU' is not a currency customers can pay in today"),
        ("XXX", "'XXX' is not a currency customers can pay in today"),
        ("USN", "'USN' is not a currency customers can pay in today"),
    ],
)
def test_validate_currency_says_what_is_wrong(code: object, fragment: str) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_currency(code, param="plan.currency")
    assert fragment in caught.value.message
    assert caught.value.param == "plan.currency"
    assert caught.value.code == "currency_invalid"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        ("12", Decimal(12)),
        ("0.5", Decimal("0.5")),
        ("0.000000000001", Decimal("1E-12")),
        ("123.456789012345", Decimal("123.456789012345")),
        ("999999999999999.999999999999", Decimal("999999999999999.999999999999")),
    ],
)
def test_parse_unit_amount_decimal_is_exact(text: str, value: Decimal) -> None:
    parsed = parse_unit_amount_decimal(text)
    assert parsed == value
    assert isinstance(parsed, Decimal)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must not be empty"),
        ("-1", "must not be negative"),
        ("-0.5", "must not be negative"),
        ("+1", "without a sign"),
        ("1e3", "without an exponent"),
        ("1.5E-3", "without an exponent"),
        ("NaN", "must be a finite number"),
        ("sNaN", "must be a finite number"),
        ("inf", "must be a finite number"),
        ("-Infinity", "must be a finite number"),
        (".5", "plain digits"),
        ("5.", "plain digits"),
        ("1,5", "plain digits"),
        (" 1", "plain digits"),
        ("0x10", "plain digits"),
        ("١٢", "plain digits"),  # Arabic-Indic digits: Decimal would accept them, the wire format does not
        ("0.0000000000001", "13 decimal places; at most 12"),
        ("1000000000000000", "less than 10^15"),
    ],
)
def test_parse_unit_amount_decimal_rejects_with_a_message_saying_how_to_write_it(
    text: str, fragment: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_unit_amount_decimal(text, param="tiers[0].unit_amount_decimal")
    assert fragment in caught.value.message
    assert caught.value.param == "tiers[0].unit_amount_decimal"


@pytest.mark.parametrize("value", [0.25, Decimal("0.25"), 25, None])
def test_parse_unit_amount_decimal_takes_only_strings(value: object) -> None:
    with pytest.raises(CatalogError, match="must be a string of digits"):
        parse_unit_amount_decimal(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0.5, "must be a decimal number"),
        (Decimal("NaN"), "finite"),
        (Decimal("-0.1"), "must not be negative"),
        (Decimal("0.0000000000001"), "13 decimal places"),
        (Decimal(MAX_AMOUNT), r"less than 10\^15"),
    ],
)
def test_validate_unit_amount_decimal_checks_a_built_decimal(value: object, fragment: str) -> None:
    with pytest.raises(CatalogError, match=fragment):
        validate_unit_amount_decimal(value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.5, "integer number of minor units"),
        (True, "integer number"),
        ("100", "integer"),
        (-1, "not be negative"),
    ],
)
def test_validate_amount_refuses_anything_but_a_non_negative_int(value: object, fragment: str) -> None:
    with pytest.raises(CatalogError, match=fragment):
        validate_amount(value, param="unit_amount")


def test_validate_amount_has_an_upper_bound_and_an_optional_minimum() -> None:
    assert validate_amount(MAX_AMOUNT - 1, param="x") == MAX_AMOUNT - 1
    with pytest.raises(CatalogError, match="less than 10"):
        validate_amount(MAX_AMOUNT, param="x")
    with pytest.raises(CatalogError, match="at least 1"):
        validate_amount(0, param="amount_off", minimum=1)


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Decimal("0.5"), 1),
        (Decimal("1.5"), 2),
        (Decimal("2.5"), 3),  # half-up, not banker's rounding (which gives 2)
        (Decimal("2.4999999999999"), 2),
        (Decimal("-0.5"), -1),
        (Decimal("-2.5"), -3),
        (Decimal("-2.4"), -2),
        (Decimal("1999"), 1999),
        (Fraction(7, 3), 2),
        (Fraction(-7, 2), -4),
        (Fraction(1, 2), 1),
        (42, 42),
    ],
)
def test_round_minor_rounds_half_up_away_from_zero(value: Decimal | Fraction | int, rounded: int) -> None:
    assert round_minor(value) == rounded


@pytest.mark.parametrize("value", [0.5, True, "1"])
def test_round_minor_refuses_floats_bools_and_strings(value: object) -> None:
    with pytest.raises(TypeError):
        round_minor(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
def test_round_minor_refuses_non_finite_decimals(value: Decimal) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        round_minor(value)


exact_amounts = st.fractions(max_denominator=10**6).filter(lambda f: abs(f) < 10**12)


@FAST
@given(exact_amounts)
def test_round_minor_is_symmetric_and_within_half_a_minor_unit(value: Fraction) -> None:
    rounded = round_minor(value)
    assert round_minor(-value) == -rounded
    assert abs(rounded - value) <= Fraction(1, 2)
    if abs(rounded - value) == Fraction(1, 2):
        assert abs(rounded) > abs(value)  # a tie goes away from zero


@FAST
@given(exact_amounts, exact_amounts)
def test_round_minor_is_monotone(a: Fraction, b: Fraction) -> None:
    low, high = sorted((a, b))
    assert round_minor(low) <= round_minor(high)


@FAST
@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
)
def test_allocate_pro_rata_sums_exactly_and_stays_within_one_unit(total: int, weights: list[int]) -> None:
    parts = allocate_pro_rata(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, weight_sum)) < 1
    assert allocate_pro_rata(-total, weights) == [-part for part in parts]


def test_allocate_pro_rata_gives_leftover_units_to_the_largest_remainders_then_earliest() -> None:
    assert allocate_pro_rata(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate_pro_rata(2, [1, 1, 1]) == [1, 1, 0]
    assert allocate_pro_rata(10, [Decimal("0.5"), Decimal("9.5")]) == [
        1,
        9,
    ]  # equal remainders: earliest wins
    assert allocate_pro_rata(7, [1, 2, 4]) == [1, 2, 4]
    assert allocate_pro_rata(0, []) == []


def test_allocate_pro_rata_accepts_negative_weights_that_do_not_cancel() -> None:
    assert allocate_pro_rata(10, [100, -90]) == [100, -90]
    with pytest.raises(ValueError, match="sum to zero"):
        allocate_pro_rata(1, [5, -5])
