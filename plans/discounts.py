"""Coupons: percent_off or amount_off, for one period, a number of periods, or forever (SPEC §4 coupons).

A coupon's discount is taken from an invoice's subtotal before tax (SPEC §5) and is never more than that
subtotal: a coupon lowers what is owed, it never creates a credit. How the discount is spread over the lines
for tax purposes is `plans.totals.compute_invoice_totals`'s business.

Durations count billing periods from the one in which the coupon was redeemed (index 0): ``once`` applies to
that period only, ``repeating`` to the first ``duration_in_periods`` periods, ``forever`` to every period.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from plans.errors import CatalogError, join_path, parse_choice
from plans.money import MAX_PERCENT_DECIMAL_PLACES, round_minor, validate_amount, validate_currency


class CouponDuration(StrEnum):
    """For how many billing periods a coupon applies once redeemed."""

    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class Coupon:
    """A discount: exactly one of `percent_off` (0 < p ≤ 100) and `amount_off` (minor units of `currency`)."""

    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_in_periods: int | None = None


def validate_coupon(coupon: Coupon, *, param: str = "") -> Coupon:
    """Check a coupon's fields; return it or raise `CatalogError` naming the field (under the path `param`).

    Exactly one of `percent_off` and `amount_off`; `percent_off` a Decimal with 0 < p ≤ 100; `amount_off` a
    positive int with its `currency`; `duration_in_periods` ≥ 1 for ``repeating`` and absent otherwise.
    """
    duration = parse_choice(CouponDuration, coupon.duration, param=join_path(param, "duration"))
    percent_param = join_path(param, "percent_off")
    amount_param = join_path(param, "amount_off")
    currency_param = join_path(param, "currency")
    if (coupon.percent_off is None) == (coupon.amount_off is None):
        raise CatalogError(
            f"set exactly one of {percent_param} and {amount_param}",
            param=percent_param,
            code="parameter_missing" if coupon.percent_off is None else "parameter_conflict",
        )
    if coupon.percent_off is not None:
        percent = coupon.percent_off
        if not isinstance(percent, Decimal) or not percent.is_finite():
            raise CatalogError(
                f"{percent_param} must be a decimal number such as '25' or '12.5'; got {percent!r}",
                param=percent_param,
            )
        if not 0 < percent <= 100:
            raise CatalogError(
                f"{percent_param} must be greater than 0 and at most 100; got '{percent}'",
                param=percent_param,
            )
        exponent = percent.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MAX_PERCENT_DECIMAL_PLACES:
            raise CatalogError(
                f"{percent_param} may have at most {MAX_PERCENT_DECIMAL_PLACES} decimal places; got '{percent}'",
                param=percent_param,
            )
        if coupon.currency is not None:
            raise CatalogError(
                f"{currency_param} is only used with {amount_param}; a percentage applies in any currency",
                param=currency_param,
                code="parameter_not_allowed",
            )
    else:
        validate_amount(coupon.amount_off, param=amount_param, minimum=1)
        if coupon.currency is None:
            raise CatalogError(
                f"{currency_param} is required with {amount_param}: the currency the amount is in",
                param=currency_param,
                code="parameter_missing",
            )
        validate_currency(coupon.currency, param=currency_param)
    periods_param = join_path(param, "duration_in_periods")
    if duration is CouponDuration.REPEATING:
        periods = coupon.duration_in_periods
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
            raise CatalogError(
                f"{periods_param} must be a whole number of billing periods, at least 1, for a repeating "
                f"coupon; got {periods!r}",
                param=periods_param,
                code="parameter_missing" if periods is None else "parameter_invalid",
            )
    elif coupon.duration_in_periods is not None:
        raise CatalogError(
            f"{periods_param} is only used by repeating coupons, not {duration}",
            param=periods_param,
            code="parameter_not_allowed",
        )
    return coupon


def coupon_applies(coupon: Coupon, period_index_since_redemption: int) -> bool:
    """Return whether `coupon` discounts the billing period with this index (0 = the period it was redeemed in).

    ``once``: index 0 only; ``repeating``: indexes 0 .. duration_in_periods - 1; ``forever``: every index. A
    negative index (a period before redemption) raises ValueError: asking is a bug in the caller.
    """
    if period_index_since_redemption < 0:
        raise ValueError(f"period index since redemption must be >= 0; got {period_index_since_redemption}")
    duration = parse_choice(CouponDuration, coupon.duration, param="duration")
    if duration is CouponDuration.ONCE:
        return period_index_since_redemption == 0
    if duration is CouponDuration.REPEATING:
        periods = coupon.duration_in_periods
        if periods is None:
            raise ValueError("a repeating coupon needs duration_in_periods; validate it with validate_coupon")
        return period_index_since_redemption < periods
    return True


def apply_discount(subtotal: int, coupon: Coupon, *, currency: str) -> int:
    """Return the discount `coupon` gives on `subtotal` (minor units of `currency`): 0 ≤ discount ≤ subtotal.

    percent_off: ``round_minor(subtotal * percent_off / 100)``, half-up. amount_off: the amount, capped at the
    subtotal. A subtotal of zero or less (an invoice of credits) gets no discount. An amount_off coupon in
    another currency raises `CatalogError` (``param`` ``coupon``): it cannot be converted here.
    """
    if isinstance(subtotal, bool) or not isinstance(subtotal, int):
        raise TypeError(f"subtotal must be an int of minor units, not {type(subtotal).__name__}")
    validate_coupon(coupon, param="coupon")
    invoice_currency = validate_currency(currency)
    if coupon.amount_off is not None and validate_currency(coupon.currency) != invoice_currency:
        raise CatalogError(
            f"coupon is for amounts in {coupon.currency} and cannot discount an invoice in {invoice_currency}; "
            f"use a percent_off coupon or one in {invoice_currency}",
            param="coupon",
            code="coupon_currency_mismatch",
        )
    if subtotal <= 0:
        return 0
    if coupon.percent_off is not None:
        return round_minor(subtotal * Fraction(coupon.percent_off) / 100)
    assert coupon.amount_off is not None  # validated: exactly one of the two
    return min(coupon.amount_off, subtotal)
