"""A plan's minimum commitment per period (Lago's plan minimum): when a closed period's fixed fee and usage fall
short of it, a true-up line brings the period's total to the minimum.

Rules, where Lago and Stripe leave room:

* The period's total is its fixed fee (the plan's `amount` × quantity) plus its metered charges, before
  discounts and taxes: a commitment is a promise about what is bought, not about what a coupon leaves.
* A partial period (a subscription that ends, pauses or changes plan mid-period) owes the minimum and the fixed
  fee in proportion to the time it ran, by elapsed time (`plans.proration.fraction_remaining`'s measure):
  ``true_up = max(0, (minimum − fixed) × fraction − usage)``, rounded once, half-up.
* The true-up is never negative: usage above the minimum is billed as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from plans.errors import CatalogError
from plans.money import round_minor, validate_amount


@dataclass(frozen=True, slots=True)
class TrueUp:
    """What a period owed (`minimum`, prorated), what it billed (`fixed` + `usage`), and the `amount` added."""

    minimum: Fraction
    fixed: Fraction
    usage: int
    fraction: Fraction
    amount: int


def validate_minimum_commitment(value: object, *, param: str = "minimum_commitment") -> int | None:
    """A minimum commitment is null (none) or a positive amount of minor units per period."""
    if value is None:
        return None
    return validate_amount(value, param=param, minimum=1)


def minimum_true_up(
    *, minimum: int, fixed_per_period: Decimal, usage: int, fraction: Fraction = Fraction(1)
) -> TrueUp:
    """The true-up that brings a period's fixed fee and `usage` to `minimum`, all prorated by `fraction` (the
    part of a full period the subscription ran, in (0, 1]); zero when the period reached it."""
    validate_amount(minimum, param="minimum_commitment", minimum=1)
    if not 0 < fraction <= 1:
        raise CatalogError(f"fraction must be in (0, 1]; got {fraction}", param="fraction")
    owed = minimum * fraction
    fixed = Fraction(fixed_per_period) * fraction
    shortfall = owed - fixed - usage
    amount = round_minor(shortfall) if shortfall > 0 else 0
    return TrueUp(minimum=owed, fixed=fixed, usage=usage, fraction=fraction, amount=amount)
