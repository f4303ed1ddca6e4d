"""Proration of a mid-period change: credit the unused time of the old price, charge the new one (SPEC §5).

The fraction of a period that remains is exact: the elapsed-time ratio of two UTC durations, as a `Fraction`
of microseconds (the resolution of `datetime`), clamped to [0, 1]. Elapsed time, not wall-clock time, so a
period that contains a DST change is prorated by the time that actually passes.

Each proration line is ``amount_for_full_period × fraction`` rounded once, half-up
(`plans.money.round_minor`). As that rounding is symmetric and monotone:

* the credit for an unchanged price and quantity is exactly the negative of the charge, so credit + charge ==
  0;
* the credit never exceeds what was charged for the same time: with ``fraction <= 1`` the credit is at most
  the full-period amount, and a later change in the same period (smaller fraction) credits at most what the
  earlier change charged for the new price.

A cancellation with a prorated credit is ``prorate_change`` with ``new_quantity=0``: only the credit line is
left. Whether the credit is paid out or kept on the customer's balance is decided when the invoice is totalled
(`plans.totals.compute_invoice_totals`: a negative total becomes balance, never a cash refund).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction

from plans.calendar import Period
from plans.errors import CatalogError
from plans.money import round_minor, validate_amount

_MICROSECOND = timedelta(microseconds=1)


class ProrationKind(StrEnum):
    """Whether a proration line gives back unused time or charges for the remaining time."""

    CREDIT = "credit"
    CHARGE = "charge"


@dataclass(frozen=True, slots=True)
class ProrationLine:
    """One proration line: `amount` (negative for a credit) for `quantity` × `unit_amount` over ``[start, end)``.

    `unit_amount` is the full-period price of one unit and `fraction` the part of the period prorated, so
    ``amount == round_minor(unit_amount * quantity * fraction)``, negated for a credit.
    """

    kind: ProrationKind
    amount: int
    unit_amount: int
    quantity: int
    fraction: Fraction
    start: datetime
    end: datetime


def fraction_remaining(period_start: datetime, period_end: datetime, at: datetime) -> Fraction:
    """Return the exact part of ``[period_start, period_end)`` still ahead at `at`, in elapsed time, in [0, 1].

    1 at or before the start, 0 at or after the end. All three datetimes must be timezone-aware, and the
    period must not be empty.
    """
    for name, value in (("period_start", period_start), ("period_end", period_end), ("at", at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware; got naive {value.isoformat()}")
    total = (period_end - period_start) // _MICROSECOND
    if total <= 0:
        raise ValueError(f"the period must end after it starts; got {period_start} .. {period_end}")
    remaining = (period_end - at) // _MICROSECOND
    return Fraction(min(max(remaining, 0), total), total)


def prorate_change(
    old_amount: int,
    old_quantity: int,
    new_amount: int,
    new_quantity: int,
    period: Period,
    at: datetime,
) -> tuple[list[ProrationLine], list[ProrationLine]]:
    """Return ``(credit_lines, charge_lines)`` for a change of price or quantity at `at` within `period`.

    `old_amount` and `new_amount` are full-period prices per unit in minor units (plans bill ``amount`` per
    unit, in advance); quantities are whole units. The credit line gives back the unused time of the old price
    (a negative amount), the charge line bills the new price for the same remaining time. Lines whose amount
    rounds to zero are left out, so a change at the very end of the period, or to or from a quantity of 0,
    yields fewer lines.
    """
    validate_amount(old_amount, param="old_amount")
    validate_amount(new_amount, param="new_amount")
    for name, quantity in (("old_quantity", old_quantity), ("new_quantity", new_quantity)):
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise CatalogError(
                f"{name} must be a non-negative whole number of units; got {quantity!r}", param=name
            )
    fraction = fraction_remaining(period.start, period.end, at)
    start = max(at, period.start)
    credits: list[ProrationLine] = []
    charges: list[ProrationLine] = []
    credit = -round_minor(old_amount * old_quantity * fraction)
    if credit:
        credits.append(
            ProrationLine(ProrationKind.CREDIT, credit, old_amount, old_quantity, fraction, start, period.end)
        )
    charge = round_minor(new_amount * new_quantity * fraction)
    if charge:
        charges.append(
            ProrationLine(ProrationKind.CHARGE, charge, new_amount, new_quantity, fraction, start, period.end)
        )
    return credits, charges
