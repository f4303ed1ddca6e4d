"""Invoice totals: discount before tax, inclusive tax extracted, exclusive added, balance last (SPEC §5).

`compute_invoice_totals` takes the invoice's line amounts (as priced: a line under inclusive tax includes it),
the coupon that applies to this period (if any), the invoice's tax rates (applied to every line) and the
customer's balance, and returns every figure of the invoice with its invariants checked:

* ``subtotal - discount + tax == total``
* ``amount_due == total - balance_applied``
* ``ending_balance == starting_balance + balance_applied``

Order of operations:

1. The coupon's discount is computed on the sum of the line amounts (`plans.discounts.apply_discount`).
2. It is spread over the lines **pro rata by line amount**, by largest remainder
   (`plans.money.allocate_pro_rata`), so the line shares sum to the discount exactly and each share is within
   one minor unit of its exact proportion. Credit lines (negative amounts) take a negative share, so every
   line's discounted amount keeps its sign and no line is discounted below zero.
3. Each discounted line is taxed (`plans.taxes.compute_line_tax`): inclusive taxes extracted, exclusive added,
   rounded half-up per rate per line.
4. The customer's balance is applied to the total.

Figures are stated **excluding tax** so that the invariant above holds with inclusive taxes too: `subtotal` is
the sum of the lines' net amounts before the discount, `discount` the net value of the discount, `tax` every
tax (inclusive and exclusive), `total` what the customer owes for the invoice. Without inclusive rates,
`subtotal` is simply the sum of the line amounts and `discount` the coupon's discount. Example: one line of
120.00 including 20 % VAT and a 10 % coupon: subtotal 100.00, discount 10.00, tax 18.00, total 108.00.

The balance follows Stripe's sign convention: a negative `starting_balance` is credit the customer holds, a
positive one is an amount the customer owes from before. ``amount_due = max(0, total + starting_balance)``;
`balance_applied` is ``total - amount_due`` (positive: credit consumed; negative: an earlier debt added, or a
negative total turned into credit); the `ending_balance` is never positive after an invoice, because a debt is
always carried into the amount due. A negative total (more credits than charges, e.g. a downgrade) is not
refunded: it becomes balance (SPEC §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from plans.discounts import Coupon, apply_discount
from plans.money import allocate_pro_rata, round_minor, validate_currency
from plans.taxes import LineTax, TaxRate, compute_line_tax, validate_tax_rate


@dataclass(frozen=True, slots=True)
class LineTotals:
    """One line after discount and tax: ``amount - discount_amount == net_amount + inclusive_tax``.

    `discount_amount` is the line's share of the coupon's discount, in the same terms as `amount` (including
    inclusive tax); `tax_amounts` holds one figure per invoice tax rate; ``total == amount - discount_amount +
    exclusive_tax``.
    """

    amount: int
    discount_amount: int
    net_amount: int
    tax_amounts: tuple[int, ...]
    inclusive_tax: int
    exclusive_tax: int
    total: int


@dataclass(frozen=True, slots=True)
class TaxAmount:
    """The invoice's tax at one rate: `amount` of tax on a net base of `taxable_amount`."""

    tax_rate: TaxRate
    taxable_amount: int
    amount: int


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    """Every figure of an invoice, in minor units; the constructor checks the SPEC §5 invariants."""

    subtotal: int
    discount: int
    tax: int
    total: int
    starting_balance: int
    balance_applied: int
    amount_due: int
    ending_balance: int
    lines: tuple[LineTotals, ...]
    tax_amounts: tuple[TaxAmount, ...]

    def __post_init__(self) -> None:
        # Money invariants are checked in production too, not with `assert` (which `python -O` strips).
        if self.subtotal - self.discount + self.tax != self.total:
            raise AssertionError(f"subtotal - discount + tax != total: {self}")
        if self.amount_due != self.total - self.balance_applied:
            raise AssertionError(f"amount_due != total - balance_applied: {self}")
        if self.ending_balance != self.starting_balance + self.balance_applied:
            raise AssertionError(f"ending_balance != starting_balance + balance_applied: {self}")
        if self.amount_due < 0:
            raise AssertionError(f"amount_due is negative: {self}")
        if self.tax != sum(tax.amount for tax in self.tax_amounts):
            raise AssertionError(f"tax != sum of tax_amounts: {self}")


def compute_invoice_totals(
    lines: Sequence[int],
    coupon: Coupon | None,
    tax_rates: Sequence[TaxRate],
    balance: int,
    *,
    currency: str,
) -> InvoiceTotals:
    """Total an invoice: discount before tax, inclusive tax extracted, exclusive added, balance applied last.

    `lines` are the line amounts in minor units of `currency` (negative for credits); `coupon` is the coupon
    that applies to this period or None (see `plans.discounts.coupon_applies`); `tax_rates` apply to every
    line; `balance` is the customer's balance before this invoice (negative = credit). See the module
    docstring for how each figure is defined.
    """
    validate_currency(currency)
    for index, rate in enumerate(tax_rates):
        validate_tax_rate(rate, param=f"tax_rates[{index}]")
    for index, amount in enumerate(lines):
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"lines[{index}] must be an int of minor units, not {type(amount).__name__}")
    if isinstance(balance, bool) or not isinstance(balance, int):
        raise TypeError(f"balance must be an int of minor units, not {type(balance).__name__}")

    discount_total = 0 if coupon is None else apply_discount(sum(lines), coupon, currency=currency)
    shares = allocate_pro_rata(discount_total, lines)
    line_totals: list[LineTotals] = []
    subtotal = 0
    for amount, share in zip(lines, shares, strict=True):
        subtotal += compute_line_tax(amount, tax_rates).net_amount
        taxed: LineTax = compute_line_tax(amount - share, tax_rates)
        line_totals.append(
            LineTotals(
                amount=amount,
                discount_amount=share,
                net_amount=taxed.net_amount,
                tax_amounts=taxed.tax_amounts,
                inclusive_tax=taxed.inclusive_tax,
                exclusive_tax=taxed.exclusive_tax,
                total=taxed.total,
            )
        )
    net_after_discount = sum(line.net_amount for line in line_totals)
    tax_amounts = tuple(
        TaxAmount(
            tax_rate=rate,
            taxable_amount=net_after_discount,
            amount=sum(line.tax_amounts[index] for line in line_totals),
        )
        for index, rate in enumerate(tax_rates)
    )
    tax = sum(line.inclusive_tax + line.exclusive_tax for line in line_totals)
    total = sum(line.total for line in line_totals)
    amount_due = max(0, total + balance)
    balance_applied = total - amount_due
    return InvoiceTotals(
        subtotal=subtotal,
        discount=subtotal - net_after_discount,
        tax=tax,
        total=total,
        starting_balance=balance,
        balance_applied=balance_applied,
        amount_due=amount_due,
        ending_balance=balance + balance_applied,
        lines=tuple(line_totals),
        tax_amounts=tax_amounts,
    )


def credited_tax(credited_before: int, credit: int, total: int, tax_by_rate: Sequence[int]) -> list[int]:
    """The tax inside a credit of `credit` on an invoice of `total` whose tax is `tax_by_rate` (one amount per
    rate), its earlier credit notes having credited `credited_before`.

    Per rate: the rate's share of everything credited so far, less its share of what was credited before. Each
    note's figure is rounded, yet an invoice's credit notes together always carry the rounded share of what they
    credited together, and crediting the whole invoice gives back exactly its tax (never a minor unit more).
    """
    if credit < 0 or credited_before < 0 or credited_before + credit > max(total, 0):
        raise ValueError(f"credit {credit} after {credited_before} does not fit in a total of {total}")
    if total <= 0:
        return [0 for _ in tax_by_rate]

    def share(credited: int, tax: int) -> int:
        return round_minor(Fraction(credited * tax, total))

    return [share(credited_before + credit, tax) - share(credited_before, tax) for tax in tax_by_rate]
