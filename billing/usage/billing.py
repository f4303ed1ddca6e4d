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

from collections.abc import Mapping, Sequence
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
from billing.scheduler.runner import NewTask, schedule_tasks
from billing.settings.service import usage_settings
from billing.subscriptions.models import Subscription
from billing.usage.aggregate import UsageWindow, aggregate_usage_of
from billing.usage.billed import UsageBilled
from billing.usage.commitment import true_up_corrections, true_up_line
from billing.usage.transactions import transaction_amounts_of, transaction_windows
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


@dataclass(frozen=True)
class UsageAsk:
    """One invoice's usage to bill (`bill_usage`'s arguments): `period`'s usage under `plan`'s charges (None: no
    closed period to bill), and adjustments for older periods recounted now; `invoice_id`: the draft being
    rebilled, whose own rows are being replaced (not counted as billed)."""

    sub: Subscription
    plan: Plan
    period: Period | None
    invoice_id: str | None = None

    @property
    def last_count(self) -> datetime:
        """When usage was last counted: when the period being billed began (the previous renewal)."""
        return self.period.start if self.period is not None else self.sub.current_period_start


async def _recountable(session: AsyncSession, asks: Sequence[UsageAsk]) -> dict[str, list[_Billed]]:
    """Per subscription, its (meter, period) pairs billed on finalized invoices that may have received events
    since its last count (`plans.usage.recount_horizon`), except those another draft is about to bill (that
    draft counts them when it is finalized): one query for every ask."""
    rebilled = sorted({ask.invoice_id for ask in asks if ask.invoice_id is not None})
    horizons = {ask.sub.id: recount_horizon(ask.last_count) for ask in asks}
    drafts = func.bool_or((Invoice.status == "draft") & Invoice.id.not_in(rebilled))
    stmt = (
        select(
            UsageBilled.subscription_id,
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
            UsageBilled.subscription_id.in_(sorted(horizons)),
            UsageBilled.period_end > min(horizons.values()),
        )
        .group_by(
            UsageBilled.subscription_id,
            UsageBilled.plan_id,
            UsageBilled.meter_id,
            UsageBilled.meter_code,
            UsageBilled.period_start,
            UsageBilled.period_end,
        )
        .order_by(UsageBilled.subscription_id, UsageBilled.period_start, UsageBilled.meter_code)
    )
    if rebilled:
        stmt = stmt.where(UsageBilled.invoice_id.not_in(rebilled))
    found: dict[str, list[_Billed]] = {sub_id: [] for sub_id in horizons}
    for sub_id, plan_id, meter_id, code, start, end, quantity, amount, in_draft in await session.execute(
        stmt
    ):
        if in_draft or end <= horizons[sub_id]:
            continue
        billed = Billed(quantity=Decimal(quantity), amount=int(amount))
        found[sub_id].append(_Billed(plan_id, meter_id, code, Period(start, end), billed))
    return found


@dataclass(frozen=True)
class _Reading:
    """What one ask's usage lines are priced from, read for a set of asks with a fixed number of queries."""

    charges: dict[str, Mapping[str, Any]]
    recount: list[_Billed]
    meters: dict[str, Meter]
    plans: dict[str, Plan]
    windows: list[UsageWindow]


def _window(meter: Meter, period: Period) -> UsageWindow:
    return UsageWindow(meter.id, meter.aggregation, meter.property, period.start, period.end)


async def bill_usage(
    session: AsyncSession,
    *,
    sub: Subscription,
    plan: Plan,
    period: Period | None,
    invoice_id: str | None = None,
) -> UsageBill:
    """The usage lines of the subscription's next invoice (see `UsageAsk`): `bill_usages` for one."""
    [bill] = await bill_usages(session, [UsageAsk(sub, plan, period, invoice_id)])
    return bill


async def bill_usages(session: AsyncSession, asks: Sequence[UsageAsk]) -> list[UsageBill]:
    """The usage lines of each ask's invoice, in order: what was billed before, the meters and the usage of
    every ask read with one query each (per merchant), whatever the number of asks; the lines priced by the
    pure functions of `plans/`. A batch of renewals bills its usage with this, the single renewal with
    `bill_usage`: the same code."""
    if not asks:
        return []
    recountable = await _recountable(session, asks)
    readings = []
    for ask in asks:
        charges = _charges(ask.plan) if ask.period is not None else {}
        recount = [
            r
            for r in recountable[ask.sub.id]
            if not (ask.period is not None and r.period == ask.period and r.meter_code in charges)
        ]
        readings.append((charges, recount))
    meters: dict[tuple[str, str], Meter] = {}
    for merchant_id in sorted({ask.sub.merchant_id for ask in asks}):
        codes = {
            code
            for ask, (charges, recount) in zip(asks, readings, strict=True)
            if ask.sub.merchant_id == merchant_id
            for code in set(charges) | {r.meter_code for r in recount}
        }
        found = await meters_by_code(session, merchant_id, codes)
        meters.update({(merchant_id, code): meter for code, meter in found.items()})
    # The plans older periods were billed under (other than the ask's own, which may carry its prices).
    other_ids = {
        r.plan_id
        for ask, (_, recount) in zip(asks, readings, strict=True)
        for r in recount
        if r.plan_id != ask.plan.id
    }
    others = (
        {p.id: p for p in await session.scalars(select(Plan).where(Plan.id.in_(sorted(other_ids))))}
        if other_ids
        else {}
    )
    read: list[_Reading] = []
    for ask, (charges, recount) in zip(asks, readings, strict=True):
        own = {
            code: meters[(ask.sub.merchant_id, code)]
            for code in set(charges) | {r.meter_code for r in recount}
        }
        plans = {
            **{r.plan_id: others[r.plan_id] for r in recount if r.plan_id != ask.plan.id},
            ask.plan.id: ask.plan,
        }
        windows = [_window(own[code], ask.period) for code in charges if ask.period is not None] + [
            _window(own[r.meter_code], r.period) for r in recount
        ]
        read.append(_Reading(charges, recount, own, plans, windows))
    quantities: list[list[Decimal | None]] = [[] for _ in asks]
    amounts: list[list[tuple[Decimal, ...] | None]] = [[] for _ in asks]
    for merchant_id in sorted({ask.sub.merchant_id for ask in asks}):
        mine = [i for i, ask in enumerate(asks) if ask.sub.merchant_id == merchant_id]
        keyed = [(asks[i].sub.customer_id, w) for i in mine for w in read[i].windows]
        window_charges = [
            charge
            for i in mine
            for charge in [read[i].charges[code] for code in read[i].charges]
            + [_charges(read[i].plans[r.plan_id]).get(r.meter_code) for r in read[i].recount]
        ]
        counted = await aggregate_usage_of(session, merchant_id=merchant_id, windows=keyed)
        listed = await transaction_amounts_of(
            session,
            merchant_id=merchant_id,
            windows=[
                None if window is None else (customer, window)
                for (customer, _), window in zip(
                    keyed, transaction_windows(window_charges, [w for _, w in keyed]), strict=True
                )
            ],
        )
        at = 0
        for i in mine:
            size = len(read[i].windows)
            quantities[i], amounts[i] = counted[at : at + size], listed[at : at + size]
            at += size
    bills = []
    for ask, reading, counted_, listed_ in zip(asks, read, quantities, amounts, strict=True):
        bill, recounted = price_usage_bill(ask, reading, counted_, listed_)
        bill.lines.extend(await true_up_corrections(session, ask.sub, recounted, source=SOURCE))
        bills.append(bill)
    return bills


def price_usage_bill(
    ask: UsageAsk,
    reading: _Reading,
    quantities: Sequence[Decimal | None],
    amounts: Sequence[tuple[Decimal, ...] | None],
) -> tuple[UsageBill, dict[Period, tuple[int, int]]]:
    """The usage lines of one ask, priced without I/O from what was read, and each recounted period's usage
    billed before and after the recount (for the true-up corrections)."""
    sub, plan, period = ask.sub, ask.plan, ask.period
    charges, recount, meters, plans = reading.charges, reading.recount, reading.meters, reading.plans
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
    return bill, recounted


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
    session.add_all(usage_rows(invoice, sub, bill, clock))
    await session.flush()


def usage_rows(invoice: Invoice, sub: Subscription, bill: UsageBill, clock: Clock) -> list[UsageBilled]:
    """The `usage_billed` rows of what `invoice` bills (`record_usage` writes them; a batch adds many at once)."""
    return [
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
    ]


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
    held_until = grace_ends(bill, await grace_period(session, invoice.merchant_id), clock.now())
    if held_until is None:
        return False
    await schedule_tasks(session, [close_usage_task(invoice, bill, held_until)], clock)
    return True


def grace_ends(bill: UsageBill, grace: timedelta, now: datetime) -> datetime | None:
    """When the grace window of an invoice billing `bill` ends (its `usage.close_invoice` is due); None when it is
    not held: it bills no period's usage, there is no window, or it is already over (a period that ended before a
    pause)."""
    if not bill.holds_invoice or bill.period is None:
        return None
    if grace <= timedelta(0) or bill.period.end + grace <= now:
        return None
    return max(bill.period.end + grace, now)


def close_usage_task(invoice: Invoice, bill: UsageBill, due_at: datetime) -> NewTask:
    """The `usage.close_invoice` task that finalizes `invoice`, held for late usage, at `due_at`."""
    assert bill.period is not None
    return NewTask(
        merchant_id=invoice.merchant_id,
        kind=CLOSE_USAGE,
        due_at=due_at,
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


def closing_period(payload: CloseUsagePayload) -> Period:
    return Period(datetime.fromisoformat(payload.period_start), datetime.fromisoformat(payload.period_end))
