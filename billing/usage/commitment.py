"""The minimum commitment's true-up line on the invoice that closes a period (`plans.commitment`).

It is written with the period's usage lines (same `details.source`), so a draft held for the grace window
rewrites it with them when late events land, and the upcoming invoice shows it as of now.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from billing.catalog.models import Plan
from billing.invoices.service import NewLine
from billing.subscriptions.models import Subscription
from plans.calendar import Period
from plans.commitment import minimum_true_up
from plans.money import round_minor

#: `details.reason` of a true-up line.
REASON = "minimum_commitment"


def period_fraction(sub: Subscription, period: Period) -> Fraction:
    """The part of its full period that `period` covers, by elapsed time: a window that ends early (a cancel, a
    pause, a plan change) inside the subscription's current period; 1 for any other window."""
    start, end = sub.current_period_start, sub.current_period_end
    if period.start != start or not start < period.end <= end:
        return Fraction(1)
    return Fraction((period.end - start).total_seconds()) / Fraction((end - start).total_seconds())


def true_up_line(sub: Subscription, plan: Plan, period: Period, usage: int, *, source: str) -> NewLine | None:
    """The line that brings `period`'s fixed fee and `usage` (minor units) to the plan's minimum, or None."""
    if plan.minimum_commitment is None or period.end <= period.start:
        return None
    fraction = period_fraction(sub, period)
    true_up = minimum_true_up(
        minimum=plan.minimum_commitment,
        fixed_per_period=plan.amount_decimal * sub.quantity,
        usage=usage,
        fraction=fraction,
    )
    if true_up.amount == 0:
        return None
    return NewLine(
        type="adjustment",
        description=f"Minimum commitment true-up · {plan.name} / 最低消费补足 · {plan.name}",
        amount=true_up.amount,
        quantity=Decimal(1),
        period_start=period.start,
        period_end=period.end,
        details={
            "source": source,
            "reason": REASON,
            "plan": plan.id,
            "minimum_commitment": plan.minimum_commitment,
            "fraction": f"{fraction.numerator}/{fraction.denominator}",
            # For people, rounded as a line would be; the amount is computed from the exact figures.
            "minimum_prorated": round_minor(true_up.minimum),
            "fixed_prorated": round_minor(true_up.fixed),
            "usage": usage,
        },
    )
