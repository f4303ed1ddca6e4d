"""The minimum commitment's true-up line on the invoice that closes a period (`plans.commitment`).

It is written with the period's usage lines (same `details.source`), so a draft held for the grace window
rewrites it with them when late events land, and the upcoming invoice shows it as of now. Late usage of a period
whose invoice is final, billed as an adjustment, lowers that period's true-up by as much (never below zero):
`true_up_corrections` adds the correction line, so the period never bills more than its minimum for usage that
fell short of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.common import decimal_text
from billing.catalog.models import Plan
from billing.invoices.models import Invoice, InvoiceLine
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
    return _line(
        f"Minimum commitment true-up · {plan.name} / 最低消费补足 · {plan.name}",
        true_up.amount,
        period,
        {
            "source": source,
            "reason": REASON,
            "plan": plan.id,
            "minimum_commitment": plan.minimum_commitment,
            "fraction": f"{fraction.numerator}/{fraction.denominator}",
            # For people, rounded as a line would be; the amount is computed from the exact figures.
            "minimum_prorated": round_minor(true_up.minimum),
            "fixed_prorated": round_minor(true_up.fixed),
            "usage": usage,
            # What a correction for late usage recomputes the true-up from (exact, as billed).
            "fixed_per_period": decimal_text(plan.amount_decimal * sub.quantity),
        },
    )


async def true_up_corrections(
    session: AsyncSession,
    sub: Subscription,
    recounted: Mapping[Period, tuple[int, int]],
    *,
    source: str,
) -> list[NewLine]:
    """Correction lines for the true-ups of periods whose usage a recount changed: `recounted` maps a period
    to its usage billed before and after the recount (minor units). Only periods billed with a true-up on a final
    invoice are corrected; the new true-up is computed from the terms that line was billed with."""
    changed = {period: usage for period, usage in recounted.items() if usage[0] != usage[1]}
    if not changed:
        return []
    rows = await session.execute(
        select(InvoiceLine.period_start, InvoiceLine.period_end, InvoiceLine.amount, InvoiceLine.details)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            Invoice.subscription_id == sub.id,
            Invoice.status.in_(("open", "paid", "uncollectible")),
            InvoiceLine.details["reason"].astext == REASON,
        )
        .order_by(InvoiceLine.seq)
    )
    billed: dict[Period, int] = {}
    terms: dict[Period, dict[str, Any]] = {}
    for start, end, amount, details in rows:
        period = Period(start, end)
        billed[period] = billed.get(period, 0) + amount
        if "fixed_per_period" in details:
            terms.setdefault(period, details)
    lines = []
    for period, (_before, after) in changed.items():
        original = terms.get(period)
        if original is None:
            continue  # the period reached its minimum when billed; more usage keeps it there
        numerator, denominator = original["fraction"].split("/")
        true_up = minimum_true_up(
            minimum=original["minimum_commitment"],
            fixed_per_period=Decimal(original["fixed_per_period"]),
            usage=after,
            fraction=Fraction(int(numerator), int(denominator)),
        )
        correction = true_up.amount - billed[period]
        if correction == 0:
            continue
        lines.append(
            _line(
                "Minimum commitment true-up, recounted for late usage / 最低消费补足（迟到用量重新计算）",
                correction,
                period,
                {
                    "source": source,
                    "reason": REASON,
                    "plan": original["plan"],
                    "previously_billed": billed[period],
                    "usage": after,
                },
            )
        )
    return lines


def _line(description: str, amount: int, period: Period, details: dict[str, Any]) -> NewLine:
    return NewLine(
        type="adjustment",
        description=description,
        amount=amount,
        quantity=Decimal(1),
        period_start=period.start,
        period_end=period.end,
        details=details,
    )
