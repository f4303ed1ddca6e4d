"""Usage so far: each renewing subscription's current period, per charge the quantity, the price with its tier
breakdown, and the total, for portals and alerts. Read at the request's snapshot: an event is visible as soon as
the request that ingested it has answered (it commits before answering)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.common import decimal_text
from billing.catalog.meters import meters_by_code
from billing.catalog.models import Aggregation, Meter, Plan
from billing.catalog.plans import priced_plan, pricing_charge
from billing.customers.service import get_customer
from billing.errors import Conflict
from billing.subscriptions import states
from billing.subscriptions.models import Subscription
from billing.subscriptions.schemas import SubscriptionStatus
from billing.subscriptions.service import get_subscription
from billing.test_clocks.service import clock_for
from billing.usage.aggregate import UsageWindow, aggregate_usage
from billing.usage.billing import tier_rows
from billing.usage.summary_schemas import (
    ChargeUsage,
    CustomerUsage,
    SubscriptionUsage,
    UsagePeriod,
    UsageTier,
)
from billing.usage.transactions import transaction_amounts, transaction_windows
from plans.pricing import PricingResult, price_usage
from plans.usage import billable_quantity


def _charge_usage(meter: Meter, result: PricingResult, *, in_trial: bool) -> ChargeUsage:
    return ChargeUsage(
        meter=meter.code,
        meter_id=meter.id,
        meter_name=meter.name,
        aggregation=Aggregation(meter.aggregation),
        model=result.model,
        quantity=decimal_text(result.quantity),
        free_units=decimal_text(result.free_units),
        billable_quantity="0" if in_trial else decimal_text(result.billable_quantity),
        packages=None if in_trial else result.packages,
        tiers=[] if in_trial else [UsageTier(**row) for row in tier_rows(result)],
        amount_decimal="0" if in_trial else decimal_text(result.exact_amount),
        amount=0 if in_trial else result.amount,
    )


async def _priced(session: AsyncSession, sub: Subscription) -> Plan:
    plan = await session.get(Plan, sub.plan_id)
    assert plan is not None  # subscriptions.plan_id is a foreign key
    return priced_plan(plan, sub.price_overrides)


async def _summaries(
    session: AsyncSession, merchant_id: str, customer_id: str, subs: Sequence[Subscription], now: datetime
) -> list[SubscriptionUsage]:
    """Every subscription's usage, with one aggregation query for all their charges (one customer's)."""
    plans = {sub.id: await _priced(session, sub) for sub in subs}
    codes = {charge["meter"] for plan in plans.values() if plan is not None for charge in plan.charges}
    meters = await meters_by_code(session, merchant_id, codes)
    windows: list[UsageWindow] = []
    window_charges = []
    for sub in subs:
        plan = plans[sub.id]
        assert plan is not None
        for charge in plan.charges:
            meter = meters[charge["meter"]]
            window_charges.append(charge)
            windows.append(
                UsageWindow(
                    meter.id,
                    meter.aggregation,
                    meter.property,
                    sub.current_period_start,
                    sub.current_period_end,
                )
            )
    amounts = iter(
        await transaction_amounts(
            session,
            merchant_id=merchant_id,
            customer_id=customer_id,
            windows=transaction_windows(window_charges, windows),
        )
    )
    quantities = iter(
        await aggregate_usage(session, merchant_id=merchant_id, customer_id=customer_id, windows=windows)
    )
    summaries = []
    for sub in subs:
        plan = plans[sub.id]
        assert plan is not None
        in_trial = sub.status == states.TRIALING
        charges = []
        for charge in plan.charges:
            quantity: Decimal = billable_quantity(next(quantities))
            result = price_usage(pricing_charge(charge), quantity, next(amounts))
            charges.append(_charge_usage(meters[charge["meter"]], result, in_trial=in_trial))
        summaries.append(
            SubscriptionUsage(
                subscription=sub.id,
                customer=sub.customer_id,
                plan=plan.id,
                status=cast(SubscriptionStatus, sub.status),
                currency=plan.currency,
                period=UsagePeriod(start=sub.current_period_start, end=sub.current_period_end),
                in_trial=in_trial,
                as_of=now,
                charges=charges,
                total=sum(c.amount for c in charges),
            )
        )
    return summaries


async def subscription_usage(
    session: AsyncSession, merchant_id: str, subscription_id: str
) -> SubscriptionUsage:
    """A subscription's usage so far in its current period; 409 when it has no current period to bill."""
    sub = await get_subscription(session, merchant_id, subscription_id)
    if sub.status not in states.RENEWING:
        raise Conflict(
            f"Subscription {sub.id} is {sub.status}: it has no current period accruing usage. Its billed usage "
            "is on its invoices (GET /v1/invoices?subscription=...).",
            code="no_current_period",
        )
    customer = await get_customer(session, merchant_id, sub.customer_id)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    [summary] = await _summaries(session, merchant_id, customer.id, [sub], clock.now())
    return summary


async def customer_usage(session: AsyncSession, merchant_id: str, customer_id: str) -> CustomerUsage:
    """A customer's usage so far, per renewing subscription."""
    customer = await get_customer(session, merchant_id, customer_id)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    subs = list(
        await session.scalars(
            select(Subscription)
            .where(
                Subscription.merchant_id == merchant_id,
                Subscription.customer_id == customer.id,
                Subscription.status.in_(sorted(states.RENEWING)),
            )
            .order_by(Subscription.seq.desc())
        )
    )
    now = clock.now()
    return CustomerUsage(
        customer=customer.id,
        as_of=now,
        subscriptions=await _summaries(session, merchant_id, customer.id, subs, now),
    )
