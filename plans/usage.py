"""Billing metered usage in arrears: the quantity a period's aggregate bills, and what a recount adds.

A period's usage is billed on the renewal invoice that closes it. Events may still arrive after that invoice
is final (ingestion accepts events up to `MAX_EVENT_AGE` old); they are never dropped and never billed twice:
the whole period is aggregated and priced again, and the difference with what its invoices already billed
goes on the next invoice as an adjustment (`usage_adjustment`). Re-pricing the whole period and subtracting is
right for every aggregation and every pricing model: a `last` that moved down, a `unique_count` that grew by
one value seen before, a volume tier crossed by one late event, all come out exact, because billed amounts
always add up to the price of the period's final quantity (the property tested in tests/plans/test_usage.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from plans.pricing import Charge, PricingResult, Quantity, price_usage

#: Usage quantities are billed with this many decimal places (the precision of an invoice line's quantity).
QUANTITY_PLACES = 12

#: Ingestion refuses events whose timestamp is older than this (issue 6): a period that ended longer ago
#: than this can no longer change, so it is never recounted.
MAX_EVENT_AGE = timedelta(days=35)

#: Slack on top of `MAX_EVENT_AGE` when choosing which billed periods to count again (`recount_horizon`).
RECOUNT_MARGIN = timedelta(days=1)

_QUANTUM = Decimal(1).scaleb(-QUANTITY_PLACES)
_ROUNDING = Context(prec=200, rounding=ROUND_HALF_UP)


def billable_quantity(aggregate: Decimal | int | None) -> Decimal:
    """The quantity a meter's aggregate bills: no events (None) and a negative total bill 0; the rest is
    rounded half-up to `QUANTITY_PLACES` decimal places, trailing zeros dropped.

    A `sum` can be negative when a client sends corrections as negative values; a negative quantity has no
    price under any model, so it bills nothing (the invoice never pays the customer for usage).
    """
    if aggregate is None:
        return Decimal(0)
    value = Decimal(aggregate)
    if not value.is_finite():
        raise ValueError(f"a usage aggregate must be finite; got {aggregate}")
    if value <= 0:
        return Decimal(0)
    with localcontext(_ROUNDING):
        rounded = value.quantize(_QUANTUM)
        if rounded == rounded.to_integral_value():
            return rounded.quantize(Decimal(1))
        return rounded.normalize()


@dataclass(frozen=True, slots=True)
class Billed:
    """What the invoices of one (subscription, meter, period) have billed so far, all of them together."""

    quantity: Decimal
    amount: int


@dataclass(frozen=True, slots=True)
class UsageAdjustment:
    """What a recount adds to an already-billed period: ``billed + (quantity, amount)`` is `priced`."""

    quantity: Decimal
    amount: int
    priced: PricingResult


def usage_adjustment(
    charge: Charge, quantity: Decimal, billed: Billed, transactions: Sequence[Quantity] | None = None
) -> UsageAdjustment | None:
    """Price the period's whole `quantity` (a percentage charge: all its `transactions`) again and subtract
    what was billed; None when nothing changes.

    The amount may be negative (a `last` meter whose latest value went down), and so may the quantity. The
    caller records ``billed + adjustment`` as billed, so the same recount run again returns None.
    """
    priced = price_usage(charge, quantity, transactions)
    delta_quantity = priced.quantity - billed.quantity
    delta_amount = priced.amount - billed.amount
    if delta_quantity == 0 and delta_amount == 0:
        return None
    return UsageAdjustment(quantity=delta_quantity, amount=delta_amount, priced=priced)


def recount_horizon(last_count: datetime) -> datetime:
    """Periods that ended after this instant may have received events since `last_count`, the previous time
    the subscription's usage was counted; older ones cannot have, and are not counted again.

    An event accepted at ``t`` has a timestamp after ``t - MAX_EVENT_AGE``; one accepted since `last_count`
    can therefore only belong to a period ending after ``last_count - MAX_EVENT_AGE``. `RECOUNT_MARGIN` more
    covers an event accepted just before the count but committed after it, and clocks a little apart.
    """
    return last_count - MAX_EVENT_AGE - RECOUNT_MARGIN


def usage_settled_at(period_end: datetime) -> datetime:
    """When no event of a period ending at `period_end` can still arrive (or still be committing): the moment
    its usage is final for good (`recount_horizon` seen from the other side)."""
    return period_end + MAX_EVENT_AGE + RECOUNT_MARGIN
