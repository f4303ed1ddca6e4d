"""Billing metered usage in arrears (SPEC §5): the closed period's usage lines on the renewal invoice, the grace
window that keeps that invoice a draft while late events may still arrive, and adjustments for events that
arrive after it was final.

* `bill_usage` builds the lines: one `usage` line per charge of the plan for the closed period (a zero quantity
  still gets its line, as Stripe shows it, so the customer sees the meter was read), and one `adjustment` line
  per older (meter, period) whose recount differs from what its invoices billed (`plans.usage`).
* `record_usage` writes what the invoice bills to `usage_billed`, in the invoice's transaction; a draft's rows
  are rewritten with its lines, and count as billed once the draft is finalized.
* With `settings.usage.grace_period_seconds` > 0 (default 3600), a renewal invoice with usage stays a draft
  until the period's end plus the grace; the `usage.close_invoice` task (billing/usage/close.py) then counts
  again, rewrites the usage lines and finalizes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.common import decimal_text
from billing.catalog.meters import meters_by_code
from billing.catalog.models import Meter, Plan
from billing.catalog.plans import pricing_charge
from billing.clock import Clock
from billing.ids import new_id
from billing.invoices.documents import format_amount
from billing.invoices.models import Invoice, InvoiceLine
from billing.invoices.service import NewLine
from billing.merchants.models import Merchant
from billing.scheduler.registry import TaskPayload
from billing.scheduler.runner import schedule_task
from billing.settings.service import usage_settings
from billing.subscriptions.models import Subscription
from billing.usage.aggregate import UsageWindow, aggregate_usage
from billing.usage.billed import UsageBilled
from billing.usage.commitment import true_up_corrections, true_up_line
from billing.usage.transactions import transaction_amounts, transaction_windows
from plans.calendar import Period
from plans.pricing import PricingModel, PricingResult, price_usage
from plans.usage import Billed, billable_quantity, recount_horizon, usage_adjustment

#: The scheduled task that finalizes a renewal invoice held for the grace window.
CLOSE_USAGE = "usage.close_invoice"
#: The scheduled task that bills late usage of an ended subscription, once no more can arrive.
FINAL_TRUE_UP = "usage.final_true_up"


class CloseUsagePayload(TaskPayload):
    invoice: str
    plan: str
    period_start: str  # ISO 8601
    period_end: str


class FinalTrueUpPayload(TaskPayload):
    ended_subscription: str


#: `details.source` of the lines this module writes (a draft's other lines, added by hand, are never touched).
SOURCE = "usage"


@dataclass(frozen=True)
class UsageRecord:
    """What one line bills for one (meter, period): a `usage_billed` row to be."""

    kind: str  # usage | adjustment
    plan_id: str
    meter_id: str
    meter_code: str
    period: Period
    quantity: Decimal
    amount: int


@dataclass(frozen=True)
class UsageBill:
    """The usage lines of one invoice and what each bills. `period` is the closed period billed in arrears
    (None when there is none: a trial ended, or the plan has no charges); `plan_id` priced it."""

    plan_id: str
    period: Period | None
    lines: list[NewLine] = field(default_factory=list)
    records: list[UsageRecord] = field(default_factory=list)

    @property
    def holds_invoice(self) -> bool:
        """Whether the invoice waits for the grace window: it bills a closed period's usage."""
        return self.period is not None and any(r.kind == "usage" for r in self.records)


def tier_rows(result: PricingResult) -> list[dict[str, Any]]:
    """The tier breakdown of a price, for people: tier (1-based, None for per_unit and package), the units it
    covers, quantity, unit amount, flat amount and exact amount (minor units, as decimal text)."""
    return [
        {
            "tier": None if row.tier_index is None else row.tier_index + 1,
            "from_units": row.from_units,
            "to_units": row.to_units,
            "quantity": decimal_text(row.quantity),
            "unit_amount_decimal": decimal_text(row.unit_amount),
            "flat_amount": row.flat_amount,
            "amount_decimal": decimal_text(row.subtotal),
        }
        for row in result.tiers
    ]


def price_details(meter: Meter, plan_id: str, result: PricingResult) -> dict[str, Any]:
    """How a usage amount was reached: the meter, the model, free units, packages and the tier rows."""
    return {
        "source": SOURCE,
        "meter": meter.code,
        "meter_id": meter.id,
        "aggregation": meter.aggregation,
        "plan": plan_id,
        "model": result.model.value,
        "quantity": decimal_text(result.quantity),
        "free_units": decimal_text(result.free_units),
        "billable_quantity": decimal_text(result.billable_quantity),
        "packages": result.packages,
        "tiers": tier_rows(result),
        "amount_decimal": decimal_text(result.exact_amount),
        **_transaction_details(result),
    }


def _transaction_details(result: PricingResult) -> dict[str, Any]:
    """A percentage charge's transaction counts and what its per-transaction min/max moved (exact)."""
    counts = result.transactions
    if counts is None:
        return {}
    return {
        "transactions": {
            "count": counts.count,
            "free": counts.free,
            "paid": counts.paid,
            "min_max_adjustment_decimal": decimal_text(counts.adjustment),
        }
    }


def usage_description(plan: Plan, meter: Meter, charge: Mapping[str, Any]) -> str:
    """A usage line's description: plan and meter; for a percentage charge its terms, in English and 简体中文
    ("Pro · Payments · 2.9% + $0.30 per transaction, min $0.50 / 每笔交易 2.9% + $0.30，最低 $0.50")."""
    base = f"{plan.name} · {meter.name}"
    if charge["model"] != PricingModel.PERCENTAGE:
        return base
    fee = f"{charge['rate']}%"
    if charge.get("fixed_amount"):
        fee += f" + {format_amount(charge['fixed_amount'], plan.currency, 'en')}"
    english, chinese = [f"{fee} per transaction"], [f"每笔交易 {fee}"]
    for key, en, zh in (
        ("per_transaction_min_amount", "min", "最低"),
        ("per_transaction_max_amount", "max", "最高"),
    ):
        if charge.get(key) is not None:
            english.append(f"{en} {format_amount(charge[key], plan.currency, 'en')}")
            chinese.append(f"{zh} {format_amount(charge[key], plan.currency, 'en')}")
    return f"{base} · {', '.join(english)} / {'，'.join(chinese)}"


def _unit_price(result: PricingResult) -> Decimal | None:
    """A line's unit price only where quantity × unit price is the amount: per_unit without free units."""
    if result.model is PricingModel.PER_UNIT and result.free_units == 0 and len(result.tiers) == 1:
        return result.tiers[0].unit_amount
    return None


def _charges(plan: Plan) -> dict[str, Mapping[str, Any]]:
    return {charge["meter"]: charge for charge in plan.charges}


@dataclass(frozen=True)
class _Billed:
    plan_id: str
    meter_id: str
    meter_code: str
    period: Period
    billed: Billed


async def _recountable(
    session: AsyncSession, sub: Subscription, last_count: datetime, invoice_id: str | None
) -> list[_Billed]:
    """The subscription's (meter, period) pairs billed on finalized invoices that may have received events
    since `last_count` (`plans.usage.recount_horizon`), except those another draft is about to bill (that
    draft counts them when it is finalized)."""
    drafts = func.bool_or((Invoice.status == "draft") & (Invoice.id != (invoice_id or "")))
    stmt = (
        select(
            UsageBilled.plan_id,
            UsageBilled.meter_id,
            UsageBilled.meter_code,
            UsageBilled.period_start,
            UsageBilled.period_end,
            func.sum(UsageBilled.quantity),
            func.sum(UsageBilled.amount),
            drafts,
        )
        .join(Invoice, Invoice.id == UsageBilled.invoice_id)
        .where(
            UsageBilled.subscription_id == sub.id,
            UsageBilled.period_end > recount_horizon(last_count),
        )
        .group_by(
            UsageBilled.plan_id,
            UsageBilled.meter_id,
            UsageBilled.meter_code,
            UsageBilled.period_start,
            UsageBilled.period_end,
        )
        .order_by(UsageBilled.period_start, UsageBilled.meter_code)
    )
    if invoice_id is not None:
        stmt = stmt.where(UsageBilled.invoice_id != invoice_id)
    found = []
    for plan_id, meter_id, code, start, end, quantity, amount, in_draft in await session.execute(stmt):
        if in_draft:
            continue
        billed = Billed(quantity=Decimal(quantity), amount=int(amount))
        found.append(_Billed(plan_id, meter_id, code, Period(start, end), billed))
    return found


async def bill_usage(
    session: AsyncSession,
    *,
    sub: Subscription,
    plan: Plan,
    period: Period | None,
    invoice_id: str | None = None,
) -> UsageBill:
    """The usage lines of the subscription's next invoice: `period`'s usage under `plan`'s charges (None: no
    closed period to bill), and adjustments for older periods recounted now. One aggregation query for all.

    Usage was last counted when the period being billed began (the previous renewal), so the older periods
    recounted are those that may have received events since then. `invoice_id`: the draft being rebilled,
    whose own rows are being replaced (not counted as billed)."""
    charges = _charges(plan) if period is not None else {}
    last_count = period.start if period is not None else sub.current_period_start
    recount = await _recountable(session, sub, last_count, invoice_id)
    if period is not None:
        recount = [r for r in recount if not (r.period == period and r.meter_code in charges)]
    codes = set(charges) | {r.meter_code for r in recount}
    meters = await meters_by_code(session, sub.merchant_id, codes)
    plans = {plan.id: plan}
    for plan_id in {r.plan_id for r in recount} - set(plans):
        other = await session.get(Plan, plan_id)
        assert other is not None  # usage_billed.plan_id is a foreign key
        plans[plan_id] = other
    windows = [
        UsageWindow(
            meters[code].id, meters[code].aggregation, meters[code].property, period.start, period.end
        )
        for code in charges
        if period is not None
    ] + [
        UsageWindow(
            meters[r.meter_code].id,
            meters[r.meter_code].aggregation,
            meters[r.meter_code].property,
            r.period.start,
            r.period.end,
        )
        for r in recount
    ]
    quantities = await aggregate_usage(
        session, merchant_id=sub.merchant_id, customer_id=sub.customer_id, windows=windows
    )
    window_charges = [charges[code] for code in charges] + [
        _charges(plans[r.plan_id]).get(r.meter_code) for r in recount
    ]
    amounts = await transaction_amounts(
        session,
        merchant_id=sub.merchant_id,
        customer_id=sub.customer_id,
        windows=transaction_windows(window_charges, windows),
    )
    bill = UsageBill(plan_id=plan.id, period=period)
    for code, quantity, transactions in zip(
        charges, quantities[: len(charges)], amounts[: len(charges)], strict=True
    ):
        assert period is not None
        meter = meters[code]
        result = price_usage(pricing_charge(charges[code]), billable_quantity(quantity), transactions)
        bill.lines.append(
            NewLine(
                type="usage",
                description=usage_description(plan, meter, charges[code]),
                amount=result.amount,
                quantity=result.quantity,
                unit_amount_decimal=_unit_price(result),
                period_start=period.start,
                period_end=period.end,
                details=price_details(meter, plan.id, result),
            )
        )
        bill.records.append(
            UsageRecord("usage", plan.id, meter.id, code, period, result.quantity, result.amount)
        )
    if period is not None and (
        true_up := true_up_line(sub, plan, period, sum(line.amount for line in bill.lines), source=SOURCE)
    ):
        bill.lines.append(true_up)
    recounted: dict[Period, tuple[int, int]] = {}  # a period's usage billed, before and after the recount
    for r, quantity, transactions in zip(
        recount, quantities[len(charges) :], amounts[len(charges) :], strict=True
    ):
        meter = meters[r.meter_code]
        charge = _charges(plans[r.plan_id]).get(r.meter_code)
        before, after = recounted.get(r.period, (0, 0))
        recounted[r.period] = (before + r.billed.amount, after + r.billed.amount)
        if charge is None:
            continue
        adjustment = usage_adjustment(
            pricing_charge(charge), billable_quantity(quantity), r.billed, transactions
        )
        if adjustment is None:
            continue
        recounted[r.period] = (before + r.billed.amount, after + r.billed.amount + adjustment.amount)
        details = price_details(meter, r.plan_id, adjustment.priced)
        details["reason"] = "late_usage"
        details["previously_billed"] = {
            "quantity": decimal_text(r.billed.quantity),
            "amount": r.billed.amount,
        }
        bill.lines.append(
            NewLine(
                type="adjustment",
                description=f"Late usage · {meter.name}",
                amount=adjustment.amount,
                quantity=adjustment.quantity,
                period_start=r.period.start,
                period_end=r.period.end,
                details=details,
            )
        )
        bill.records.append(
            UsageRecord(
                "adjustment",
                r.plan_id,
                meter.id,
                r.meter_code,
                r.period,
                adjustment.quantity,
                adjustment.amount,
            )
        )
    bill.lines.extend(await true_up_corrections(session, sub, recounted, source=SOURCE))
    return bill


async def has_billed_usage(session: AsyncSession, sub: Subscription) -> bool:
    """Whether any invoice of the subscription billed usage (so late events may still be owed)."""
    found = await session.scalar(select(UsageBilled.id).where(UsageBilled.subscription_id == sub.id).limit(1))
    return found is not None


async def record_usage(
    session: AsyncSession,
    *,
    invoice: Invoice,
    sub: Subscription,
    bill: UsageBill,
    clock: Clock,
    replacing: bool = False,
) -> None:
    """Write what `invoice` bills; `replacing`: a draft rebilled, whose earlier rows go first."""
    if replacing:
        await session.execute(delete(UsageBilled).where(UsageBilled.invoice_id == invoice.id))
    session.add_all(
        UsageBilled(
            id=new_id("ub"),
            merchant_id=sub.merchant_id,
            subscription_id=sub.id,
            invoice_id=invoice.id,
            plan_id=record.plan_id,
            meter_id=record.meter_id,
            meter_code=record.meter_code,
            kind=record.kind,
            period_start=record.period.start,
            period_end=record.period.end,
            quantity=record.quantity,
            amount=record.amount,
            created_at=clock.now(),
        )
        for record in bill.records
    )
    await session.flush()


def is_usage_line(line: InvoiceLine) -> bool:
    """A line written by `bill_usage` (not one a merchant added to the draft by hand)."""
    return line.type in ("usage", "adjustment") and (line.details or {}).get("source") == SOURCE


async def grace_period(session: AsyncSession, merchant_id: str) -> timedelta:
    """`settings.usage.grace_period_seconds`: how long a renewal invoice with usage waits for late events."""
    raw = await session.scalar(select(Merchant.settings).where(Merchant.id == merchant_id))
    return timedelta(seconds=usage_settings(raw or {}).grace_period_seconds)


async def hold_for_grace(session: AsyncSession, *, invoice: Invoice, bill: UsageBill, clock: Clock) -> bool:
    """Keep `invoice` a draft until its usage period's end plus the merchant's grace period, when
    `usage.close_invoice` finalizes it; False (finalize now) when it bills no period's usage or grace is 0."""
    if not bill.holds_invoice or bill.period is None:
        return False
    grace = await grace_period(session, invoice.merchant_id)
    if grace <= timedelta(0) or bill.period.end + grace <= clock.now():
        return False  # no window, or it is already over (a period that ended before a pause)
    await schedule_task(
        session,
        merchant_id=invoice.merchant_id,
        kind=CLOSE_USAGE,
        due_at=max(bill.period.end + grace, clock.now()),
        clock=clock,
        # Not keyed by "subscription": canceling a subscription cancels its pending tasks, and its last
        # invoices must still be finalized.
        payload=CloseUsagePayload(
            invoice=invoice.id,
            plan=bill.plan_id,
            period_start=bill.period.start.isoformat(),
            period_end=bill.period.end.isoformat(),
        ),
        dedupe_key=f"usage_close:{invoice.id}",
    )
    return True


def closing_period(payload: CloseUsagePayload) -> Period:
    return Period(datetime.fromisoformat(payload.period_start), datetime.fromisoformat(payload.period_end))
