"""Coupons, tax rates and invoice totals: discount before tax, inclusive extracted, exclusive added."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.discounts import Coupon, CouponDuration, apply_discount, coupon_applies, validate_coupon
from plans.errors import CatalogError
from plans.money import round_minor
from plans.taxes import TaxRate, compute_line_tax, exclusive_tax, inclusive_tax, validate_tax_rate
from plans.totals import InvoiceTotals, compute_invoice_totals, credited_tax

FAST = settings(max_examples=200, deadline=None)

ONCE = CouponDuration.ONCE
VAT_20_INCLUSIVE = TaxRate(Decimal("20"), inclusive=True, display_name="VAT")
NYC_SALES_TAX = TaxRate(Decimal("8.875"), inclusive=False, display_name="Sales tax")


def percent_off(percent: str, duration: CouponDuration = ONCE, periods: int | None = None) -> Coupon:
    return Coupon(duration, percent_off=Decimal(percent), duration_in_periods=periods)


# --- coupons ---


@pytest.mark.parametrize(
    ("coupon", "applies_to"),
    [
        (percent_off("10", CouponDuration.ONCE), {0}),
        (percent_off("10", CouponDuration.REPEATING, 3), {0, 1, 2}),
        (percent_off("10", CouponDuration.REPEATING, 1), {0}),
        (percent_off("10", CouponDuration.FOREVER), set(range(24))),
    ],
)
def test_coupon_duration_decides_which_periods_are_discounted(coupon: Coupon, applies_to: set[int]) -> None:
    assert {index for index in range(24) if coupon_applies(coupon, index)} == applies_to


def test_coupon_applies_refuses_a_period_before_redemption() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        coupon_applies(percent_off("10"), -1)


@pytest.mark.parametrize(
    ("subtotal", "coupon", "discount"),
    [
        (1999, percent_off("25"), 500),  # 499.75 → 500
        (100, percent_off("12.5"), 13),  # 12.5 → 13: half-up
        (1000, percent_off("100"), 1000),
        (1, percent_off("33.3333"), 0),
        (5000, Coupon(ONCE, amount_off=500, currency="USD"), 500),
        (300, Coupon(ONCE, amount_off=500, currency="usd"), 300),  # never more than the subtotal
        (0, percent_off("50"), 0),
        (-700, Coupon(ONCE, amount_off=500, currency="USD"), 0),  # a credit-only invoice gets no discount
    ],
)
def test_apply_discount_never_exceeds_the_subtotal(subtotal: int, coupon: Coupon, discount: int) -> None:
    assert apply_discount(subtotal, coupon, currency="USD") == discount


def test_an_amount_off_coupon_in_another_currency_is_refused() -> None:
    with pytest.raises(CatalogError) as caught:
        apply_discount(5000, Coupon(ONCE, amount_off=500, currency="EUR"), currency="USD")
    assert caught.value.param == "coupon"
    assert "cannot discount an invoice in USD" in caught.value.message


@pytest.mark.parametrize(
    ("coupon", "param", "fragment"),
    [
        (Coupon(ONCE), "percent_off", "exactly one of coupon.percent_off and coupon.amount_off"),
        (Coupon(ONCE, percent_off=Decimal(5), amount_off=5, currency="USD"), "percent_off", "exactly one"),
        (Coupon(ONCE, percent_off=Decimal(0)), "percent_off", "greater than 0 and at most 100"),
        (Coupon(ONCE, percent_off=Decimal("100.01")), "percent_off", "greater than 0 and at most 100"),
        (Coupon(ONCE, percent_off=Decimal("12.34567")), "percent_off", "at most 4 decimal places"),
        (Coupon(ONCE, percent_off=12.5), "percent_off", "decimal number"),  # type: ignore[arg-type]
        (
            Coupon(ONCE, percent_off=Decimal(5), currency="USD"),
            "currency",
            "only used with coupon.amount_off",
        ),
        (Coupon(ONCE, amount_off=0, currency="USD"), "amount_off", "at least 1"),
        (Coupon(ONCE, amount_off=500), "currency", "required with coupon.amount_off"),
        (Coupon(ONCE, amount_off=500, currency="EURO"), "currency", "three-letter"),
        (Coupon(CouponDuration.REPEATING, percent_off=Decimal(5)), "duration_in_periods", "at least 1"),
        (
            Coupon(CouponDuration.REPEATING, percent_off=Decimal(5), duration_in_periods=0),
            "duration_in_periods",
            "at least 1",
        ),
        (
            Coupon(ONCE, percent_off=Decimal(5), duration_in_periods=3),
            "duration_in_periods",
            "only used by repeating",
        ),
        (Coupon("weekly", percent_off=Decimal(5)), "duration", "must be one of"),  # type: ignore[arg-type]
    ],
)
def test_coupon_validation_names_the_field(coupon: Coupon, param: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_coupon(coupon, param="coupon")
    assert caught.value.param == f"coupon.{param}"
    assert fragment in caught.value.message


# --- taxes ---


def test_inclusive_and_exclusive_ten_percent_match_stripe_example() -> None:
    """Stripe support, "Inclusive and exclusive tax options in the tax rate API and Stripe Tax"
    (support.stripe.com/questions/inclusive-and-exclusive-tax-options-in-the-tax-rate-api-and-stripe-tax): a
    €600 price with an inclusive 10 % rate keeps a €600 total; with an exclusive 10 % rate the total is €660.
    The tax inside the €600 (600 - 600 / 1.1 = 54.55) is our arithmetic; the page gives only the totals."""
    inclusive = compute_line_tax(60_000, [TaxRate(Decimal(10), inclusive=True)])
    assert (inclusive.total, inclusive.net_amount, inclusive.inclusive_tax) == (60_000, 54_545, 5_455)
    exclusive = compute_line_tax(60_000, [TaxRate(Decimal(10), inclusive=False)])
    assert (exclusive.total, exclusive.net_amount, exclusive.exclusive_tax) == (66_000, 60_000, 6_000)


def test_single_rate_formulas() -> None:
    assert exclusive_tax(10_000, NYC_SALES_TAX) == 888  # 887.5 → 888
    assert exclusive_tax(-10_000, NYC_SALES_TAX) == -888
    assert inclusive_tax(12_000, VAT_20_INCLUSIVE) == 2_000
    assert inclusive_tax(1, VAT_20_INCLUSIVE) == 0  # 1 / 1.2 = 0.83 → net 1
    assert inclusive_tax(3, VAT_20_INCLUSIVE) == 0  # 3 / 1.2 = 2.5 → net 3 (half-up)
    assert inclusive_tax(7, VAT_20_INCLUSIVE) == 1  # 7 / 1.2 = 5.83 → net 6


def test_several_inclusive_rates_are_extracted_together_and_split_to_the_minor_unit() -> None:
    """Quebec-style GST 5 % and QST 9.975 %, both included in a price of 114.97 CAD."""
    gst = TaxRate(Decimal(5), inclusive=True, display_name="GST")
    qst = TaxRate(Decimal("9.975"), inclusive=True, display_name="QST")
    line = compute_line_tax(11_497, [gst, qst])
    assert line.net_amount == 10_000  # 11497 / 1.14975 = 9999.57
    assert line.tax_amounts == (500, 997)
    assert line.net_amount + sum(line.tax_amounts) == 11_497


def test_several_exclusive_rates_each_apply_to_the_net_amount_without_compounding() -> None:
    gst = TaxRate(Decimal(5), inclusive=False)
    qst = TaxRate(Decimal("9.975"), inclusive=False)
    line = compute_line_tax(10_000, [gst, qst])
    assert line.tax_amounts == (500, 998)  # 997.5 → 998
    assert line.total == 11_498


def test_an_exclusive_rate_on_a_line_with_an_inclusive_one_applies_to_the_net() -> None:
    levy = TaxRate(Decimal(2), inclusive=False, display_name="Levy")
    line = compute_line_tax(12_000, [VAT_20_INCLUSIVE, levy])
    assert (line.net_amount, line.tax_amounts, line.total) == (10_000, (2_000, 200), 12_200)


@pytest.mark.parametrize(
    ("rate", "param", "fragment"),
    [
        (TaxRate(Decimal("-1"), inclusive=False), "tax_rates[0].percentage", "between 0 and 100"),
        (TaxRate(Decimal("100.5"), inclusive=False), "tax_rates[0].percentage", "between 0 and 100"),
        (TaxRate(Decimal("8.87501"), inclusive=False), "tax_rates[0].percentage", "at most 4 decimal places"),
        (TaxRate(Decimal("NaN"), inclusive=False), "tax_rates[0].percentage", "decimal number"),
        (TaxRate(20, inclusive=False), "tax_rates[0].percentage", "decimal number"),  # type: ignore[arg-type]
        (TaxRate(Decimal(20), inclusive="yes"), "tax_rates[0].inclusive", "true or false"),  # type: ignore[arg-type]
    ],
)
def test_tax_rate_validation_names_the_field(rate: TaxRate, param: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_tax_rate(rate, param="tax_rates[0]")
    assert caught.value.param == param
    assert fragment in caught.value.message


# --- invoice totals ---


def test_inclusive_vat_invoice_with_a_coupon_states_figures_excluding_tax() -> None:
    totals = compute_invoice_totals([12_000], percent_off("10"), [VAT_20_INCLUSIVE], 0, currency="EUR")
    assert (totals.subtotal, totals.discount, totals.tax, totals.total) == (10_000, 1_000, 1_800, 10_800)
    (line,) = totals.lines
    assert (line.amount, line.discount_amount, line.net_amount, line.inclusive_tax) == (
        12_000,
        1_200,
        9_000,
        1_800,
    )
    assert totals.tax_amounts[0].taxable_amount == 9_000


def test_exclusive_tax_invoice_with_a_credit_line_coupon_and_customer_credit() -> None:
    totals = compute_invoice_totals(
        [5_000, 2_500, -1_000], percent_off("10"), [NYC_SALES_TAX], -2_000, currency="USD"
    )
    assert [line.discount_amount for line in totals.lines] == [500, 250, -100]
    assert [line.tax_amounts for line in totals.lines] == [
        (399,),
        (200,),
        (-80,),
    ]  # 399.375, 199.6875, -79.875
    assert (totals.subtotal, totals.discount, totals.tax, totals.total) == (6_500, 650, 519, 6_369)
    assert (totals.starting_balance, totals.balance_applied, totals.amount_due, totals.ending_balance) == (
        -2_000,
        2_000,
        4_369,
        0,
    )


def test_credit_larger_than_the_total_leaves_the_rest_on_the_balance() -> None:
    totals = compute_invoice_totals([6_000], None, [], -10_000, currency="USD")
    assert (totals.balance_applied, totals.amount_due, totals.ending_balance) == (6_000, 0, -4_000)


def test_an_earlier_debt_on_the_balance_is_added_to_the_amount_due() -> None:
    totals = compute_invoice_totals([6_000], None, [], 500, currency="USD")
    assert (totals.balance_applied, totals.amount_due, totals.ending_balance) == (-500, 6_500, 0)


def test_a_negative_total_becomes_customer_credit_not_a_refund() -> None:
    totals = compute_invoice_totals([2_000, -5_000], None, [], 0, currency="USD")
    assert (totals.total, totals.amount_due, totals.balance_applied, totals.ending_balance) == (
        -3_000,
        0,
        -3_000,
        -3_000,
    )


def test_an_amount_off_discount_is_spread_pro_rata_by_largest_remainder() -> None:
    totals = compute_invoice_totals(
        [1_000, 1_000, 1_000], Coupon(ONCE, amount_off=100, currency="USD"), [], 0, currency="USD"
    )
    assert [line.discount_amount for line in totals.lines] == [34, 33, 33]
    assert totals.discount == 100


def test_an_empty_invoice_totals_to_zero() -> None:
    totals = compute_invoice_totals([], percent_off("50"), [VAT_20_INCLUSIVE], 0, currency="USD")
    assert (totals.subtotal, totals.discount, totals.tax, totals.total, totals.amount_due) == (0, 0, 0, 0, 0)


def test_invoice_totals_refuse_inconsistent_figures() -> None:
    with pytest.raises(AssertionError, match=r"subtotal - discount \+ tax != total"):
        InvoiceTotals(100, 0, 0, 99, 0, 0, 99, 0, (), ())
    with pytest.raises(AssertionError, match="amount_due != total - balance_applied"):
        InvoiceTotals(100, 0, 0, 100, 0, 0, 90, 0, (), ())


def test_invoice_totals_refuse_floats_and_bad_rates() -> None:
    with pytest.raises(TypeError, match=r"lines\[1\]"):
        compute_invoice_totals([100, 2.5], None, [], 0, currency="USD")  # type: ignore[list-item]
    with pytest.raises(CatalogError, match=r"tax_rates\[0\]\.percentage"):
        compute_invoice_totals([100], None, [TaxRate(Decimal(101), inclusive=False)], 0, currency="USD")


# --- properties ---

percentages = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
tax_rates = st.lists(st.builds(TaxRate, percentages, st.booleans()), max_size=3)
coupons = st.one_of(
    st.none(),
    st.builds(
        lambda percent: Coupon(ONCE, percent_off=percent),
        st.decimals(
            min_value=Decimal("0.0001"), max_value=100, places=4, allow_nan=False, allow_infinity=False
        ),
    ),
    st.builds(lambda amount: Coupon(ONCE, amount_off=amount, currency="USD"), st.integers(1, 10**7)),
)
charge_lines = st.lists(st.integers(min_value=0, max_value=10**7), max_size=8)
mixed_lines = st.lists(st.integers(min_value=-(10**6), max_value=10**7), max_size=8)
balances = st.integers(min_value=-(10**7), max_value=10**7)


@FAST
@given(st.integers(min_value=-(10**10), max_value=10**10), st.lists(percentages, min_size=1, max_size=3))
def test_inclusive_tax_plus_net_is_the_gross_exactly(gross: int, percentages_: list[Decimal]) -> None:
    rates = [TaxRate(p, inclusive=True) for p in percentages_]
    line = compute_line_tax(gross, rates)
    assert line.net_amount + line.inclusive_tax == gross
    assert sum(line.tax_amounts) == line.inclusive_tax
    assert line.total == gross
    assert compute_line_tax(-gross, rates).tax_amounts == tuple(-tax for tax in line.tax_amounts)
    if len(rates) == 1:
        assert line.inclusive_tax == gross - round_minor(gross / (1 + Fraction(percentages_[0]) / 100))
        assert line.inclusive_tax == inclusive_tax(gross, rates[0])


@FAST
@given(mixed_lines, coupons, tax_rates, balances)
def test_invoice_totals_invariants_hold(
    lines: list[int], coupon: Coupon | None, rates: list[TaxRate], balance: int
) -> None:
    totals = compute_invoice_totals(lines, coupon, rates, balance, currency="USD")
    assert totals.subtotal - totals.discount + totals.tax == totals.total
    assert totals.amount_due == totals.total - totals.balance_applied
    assert (
        totals.ending_balance
        == totals.starting_balance + totals.balance_applied
        == min(0, totals.total + balance)
    )
    assert totals.amount_due >= 0
    gross_discount = 0 if coupon is None else apply_discount(sum(lines), coupon, currency="USD")
    assert sum(line.discount_amount for line in totals.lines) == gross_discount
    for line in totals.lines:
        discounted = line.amount - line.discount_amount
        assert 0 <= discounted <= line.amount or line.amount <= discounted <= 0  # no line changes sign
        assert discounted == line.net_amount + line.inclusive_tax
        assert line.total == discounted + line.exclusive_tax
    assert totals.total == sum(line.total for line in totals.lines)
    assert totals.tax == sum(tax.amount for tax in totals.tax_amounts)


@FAST
@given(charge_lines, coupons, tax_rates, balances)
def test_discount_of_an_invoice_of_charges_is_between_zero_and_the_subtotal(
    lines: list[int], coupon: Coupon | None, rates: list[TaxRate], balance: int
) -> None:
    totals = compute_invoice_totals(lines, coupon, rates, balance, currency="USD")
    assert 0 <= totals.discount <= totals.subtotal
    assert totals.tax >= 0 and totals.total >= 0
    if not any(rate.inclusive for rate in rates):
        assert totals.subtotal == sum(lines)
        assert totals.discount == sum(line.discount_amount for line in totals.lines)


# --- the tax inside credit notes ---------------------------------------------------------------------------------


def test_credit_notes_carry_the_tax_of_what_they_credit_and_together_never_more() -> None:
    # An invoice of 108.88 with State tax 6.25 (6.25) and City tax 2.625 (2.63) on 100.00, credited in two halves:
    # 54.44 holds 3.125 and 1.315 of tax, rounded half-up to 3.13 and 1.32; the second half gets the rest.
    assert credited_tax(0, 5444, 10888, [625, 263]) == [313, 132]
    assert credited_tax(5444, 5444, 10888, [625, 263]) == [312, 131]
    # Inclusive VAT 20 %: 12.00 holds 2.00 of VAT; a credit of 6.00 holds 1.00.
    assert credited_tax(0, 600, 1200, [200]) == [100]
    with pytest.raises(ValueError, match="does not fit"):
        credited_tax(1000, 300, 1200, [200])  # beyond the invoice's total


@settings(max_examples=300)
@given(
    total=st.integers(min_value=1, max_value=10**9),
    tax_parts=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=10**9), max_size=8),
)
def test_credit_notes_that_credit_a_whole_invoice_give_back_exactly_its_tax(
    total: int, tax_parts: list[int], cuts: list[int]
) -> None:
    # However the total is cut into credit notes, each rate's tax comes back in full and never a unit more, and no
    # note carries negative tax.
    points = sorted({0, total, *(cut % (total + 1) for cut in cuts)})
    notes = [credited_tax(before, after - before, total, tax_parts) for before, after in pairwise(points)]
    assert all(tax >= 0 for note in notes for tax in note)
    assert [sum(note[rate] for note in notes) for rate in range(len(tax_parts))] == tax_parts
