"""Tax rates on a line: exclusive rates are added, inclusive rates are extracted (SPEC §4 tax_rates, §5).

For an amount with several rates:

* Inclusive rates (the amount already contains them) are extracted together, so that the parts add up: ``net =
  round_minor(amount / (1 + Σ inclusive rates))`` and the inclusive tax is ``amount - net``. With one rate
  that is ``tax = gross - round(gross / (1 + rate))``, so ``net + tax == gross`` exactly. With several, the
  extracted tax is split between the rates in proportion to their percentages, by largest remainder
  (`plans.money.allocate_pro_rata`), so the per-rate figures also sum exactly.
* Exclusive rates are each applied to the net amount (never to another tax: no compounding) and rounded on
  their own: ``tax = round_minor(net * rate)``.

Everything is rounded half-up, once per rate per line. Negative amounts (credit lines) are taxed as the exact
negative of the matching positive amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from plans.errors import CatalogError, join_path
from plans.money import allocate_pro_rata, round_minor, validate_percent


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A tax rate: `percentage` (0 ≤ p ≤ 100, e.g. ``Decimal("20")`` for 20 %), included in prices or added."""

    percentage: Decimal
    inclusive: bool
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class LineTax:
    """The taxes of one amount: ``net_amount + inclusive_tax == amount`` and ``total == amount + exclusive_tax``.

    `tax_amounts` holds one figure per rate, in the order the rates were given.
    """

    amount: int
    net_amount: int
    tax_amounts: tuple[int, ...]
    inclusive_tax: int
    exclusive_tax: int
    total: int


def validate_tax_rate(rate: TaxRate, *, param: str = "") -> TaxRate:
    """Check a tax rate (0 ≤ percentage ≤ 100, at most 4 decimals; `inclusive` a bool); return it or raise."""
    percentage_param = join_path(param, "percentage")
    validate_percent(rate.percentage, param=percentage_param, example="'20' or '8.875'")
    if not isinstance(rate.inclusive, bool):
        inclusive_param = join_path(param, "inclusive")
        raise CatalogError(
            f"{inclusive_param} must be true or false; got {rate.inclusive!r}", param=inclusive_param
        )
    return rate


def exclusive_tax(net: int, rate: TaxRate) -> int:
    """Return the tax `rate` adds to the net amount `net`: ``round_minor(net * percentage / 100)``."""
    return round_minor(net * Fraction(rate.percentage) / 100)


def inclusive_tax(gross: int, rate: TaxRate) -> int:
    """Return the tax contained in `gross` at `rate`: ``gross - round_minor(gross / (1 + percentage / 100))``."""
    return gross - round_minor(gross * 100 / (100 + Fraction(rate.percentage)))


def compute_line_tax(amount: int, tax_rates: Sequence[TaxRate]) -> LineTax:
    """Tax one amount under several rates: extract the inclusive ones together, add each exclusive one.

    `amount` includes the inclusive taxes (it is the price as shown) and excludes the exclusive ones.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int of minor units, not {type(amount).__name__}")
    for index, rate in enumerate(tax_rates):
        validate_tax_rate(rate, param=f"tax_rates[{index}]")
    inclusive_percentages = [rate.percentage for rate in tax_rates if rate.inclusive]
    inclusive_sum = sum((Fraction(p) for p in inclusive_percentages), Fraction(0))
    net = round_minor(amount * 100 / (100 + inclusive_sum))
    inclusive_total = amount - net
    inclusive_parts = iter(allocate_pro_rata(inclusive_total, inclusive_percentages))
    tax_amounts = tuple(
        next(inclusive_parts) if rate.inclusive else exclusive_tax(net, rate) for rate in tax_rates
    )
    exclusive_total = sum(tax for tax, rate in zip(tax_amounts, tax_rates, strict=True) if not rate.inclusive)
    return LineTax(
        amount=amount,
        net_amount=net,
        tax_amounts=tax_amounts,
        inclusive_tax=inclusive_total,
        exclusive_tax=exclusive_total,
        total=amount + exclusive_total,
    )
