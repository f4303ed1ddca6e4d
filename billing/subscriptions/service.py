"""Subscription use cases. Periods come from plans.calendar (computed from the anchor, in the customer's time
zone); money from plans.pricing, plans.proration and plans.totals; every renewal is a scheduled task, so test
clocks and real time drive the same code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.coupons import get_coupon, pure_coupon, redeem_coupon
from billing.catalog.models import Plan
from billing.catalog.plans import (
    ensure_plan_subscribable,
    get_plan,
    mark_plan_in_use,
    priced_plan,
    validate_price_overrides,
)
from billing.catalog.tax_rates import (
    ensure_tax_rate_usable,
    get_tax_rate,
    mark_tax_rate_in_use,
    pure_tax_rate,
)
from billing.clock import Clock
from billing.customers.hooks import CustomerDeleted
from billing.customers.models import Customer
from billing.customers.service import ensure_payment_method_attached, get_customer, render_customer
from billing.db.lookup import Filter, equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.entitlements.service import refresh_customer_entitlements
from billing.errors import Conflict, InvalidRequest
from billing.ids import is_valid_id, new_id
from billing.invoices import collection
from billing.invoices import hooks as invoice_hooks
from billing.invoices import service as invoices
from billing.invoices.hooks import (
    InvoiceEstimate,
    InvoicesPaid,
    PaymentFailure,
    invoice_estimating,
)
from billing.invoices.models import Invoice
from billing.invoices.schemas import CollectionMethod
from billing.invoices.service import NewLine
from billing.metadata import merge_metadata, validate_metadata
from billing.payment_methods.hooks import PaymentMethodChosen, payment_method_added
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TaskContext, TaskPayload
from billing.scheduler.runner import NewTask, schedule_task, schedule_tasks
from billing.subscriptions import schemas, states
from billing.subscriptions.addons import (
    addon_credit_lines,
    addon_fee_lines,
    addon_rest_of_period_lines,
    ensure_addons_fit,
    render_items,
    stage_prorations,
    unused_addon_time,
)
from billing.subscriptions.addons import proration_lines as _proration_lines
from billing.subscriptions.hooks import SubscriptionCreated, TrialEnding, subscription_created, trial_will_end
from billing.subscriptions.models import WITH_ITEMS, PendingInvoiceItem, Subscription
from billing.test_clocks.service import clock_for, customer_clock
from billing.usage import billing as usage_billing
from plans.calendar import Interval, Period, normalize_anchor, period_bounds, period_index_at, trial_end
from plans.discounts import coupon_applies
from plans.money import round_minor
from plans.proration import prorate_change
from plans.totals import compute_invoice_totals
from plans.usage import usage_settled_at
from webhooks.outbox import record_event

RENEW = "subscription.renew"


class RenewPayload(TaskPayload):
    subscription: str
    period_index: int


class UpcomingNoticePayload(TaskPayload):
    subscription: str
    period_index: int
    renews_at: str  # ISO 8601: the period end the notice announces


class SubscriptionPayload(TaskPayload):
    """Trial end, incomplete expiry: the subscription."""

    subscription: str


TRIAL_WILL_END = "subscription.trial_will_end"
EXPIRE_INCOMPLETE = "subscription.expire_incomplete"
UPCOMING_NOTICE = "invoice.upcoming"
TRIAL_WARNING = timedelta(days=3)
# How long before a renewal `invoice.upcoming` tells the app what it will bill (Stripe's default notice).
UPCOMING_WARNING = timedelta(days=3)
INCOMPLETE_WINDOW = timedelta(hours=23)


def render_subscription(sub: Subscription) -> schemas.Subscription:
    pending = None
    if sub.pending_change:
        pending = schemas.PendingChange(
            plan=sub.pending_change["plan"],
            quantity=sub.pending_change["quantity"],
            effective_at=sub.current_period_end,
        )
    return schemas.Subscription(
        id=sub.id,
        created_at=sub.created_at,
        customer=sub.customer_id,
        plan=sub.plan_id,
        quantity=sub.quantity,
        items=render_items(sub),
        status=cast(schemas.SubscriptionStatus, sub.status),
        collection_method=cast(CollectionMethod, sub.collection_method),
        days_until_due=sub.days_until_due,
        default_payment_method=sub.default_payment_method,
        billing_cycle_anchor=sub.billing_cycle_anchor,
        current_period_start=sub.current_period_start,
        current_period_end=sub.current_period_end,
        trial_start=sub.trial_start,
        trial_end=sub.trial_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        canceled_at=sub.canceled_at,
        cancellation_details=(
            msgspec.convert(sub.cancellation_details, schemas.CancellationDetails)
            if sub.cancellation_details
            else None
        ),
        ended_at=sub.ended_at,
        paused_at=sub.paused_at,
        coupon=sub.coupon_id,
        tax_rates=list(sub.tax_rate_ids),
        pending_change=pending,
        price_overrides=sub.price_overrides,
        latest_invoice=sub.latest_invoice_id,
        metadata=sub.metadata_,
    )


#: Subscription events that may change what the customer is entitled to, whatever their previous attributes.
_ENTITLING_EVENTS = frozenset({"subscription.created", "subscription.canceled"})
#: Changes that move a subscription in or out of the entitling statuses, or onto another plan.
_ENTITLING_FIELDS = frozenset({"status", "plan"})


async def _emit(
    session: AsyncSession,
    sub: Subscription,
    event_type: str,
    clock: Clock,
    previous: dict[str, Any] | None = None,
) -> None:
    """Stage the subscription's event and, when its status or plan changed, the customer's
    `customer.entitlements_updated` if that changes what the customer may use."""
    record_event(
        session,
        merchant_id=sub.merchant_id,
        event_type=event_type,
        obj=render_subscription(sub),
        clock=clock,
        previous_attributes=previous,
    )
    if event_type in _ENTITLING_EVENTS or (previous is not None and _ENTITLING_FIELDS & previous.keys()):
        customer = await session.get(Customer, sub.customer_id)
        assert customer is not None, f"{sub.id} has no customer"
        await refresh_customer_entitlements(session, customer, clock)


def _calendar(plan: Plan) -> tuple[Interval, int]:
    return Interval(plan.interval), plan.interval_count


def _period(sub: Subscription, plan: Plan, tz: ZoneInfo, index: int) -> Period:
    """Period `index` of the subscription. Indexes only grow (they key renewals and invoices); after a resume
    the calendar restarts from a new anchor, so the calendar's index is ours minus `period_offset`."""
    interval, count = _calendar(plan)
    return period_bounds(sub.billing_cycle_anchor, interval, count, index - sub.period_offset, tz)


async def _subscription_plan(session: AsyncSession, sub: Subscription, plan_id: str | None = None) -> Plan:
    """The plan `sub` pays (its current one, or `plan_id`), with the subscription's own prices applied: a copy,
    never written (billing.catalog.plans.priced_plan)."""
    plan = await get_plan(session, sub.merchant_id, plan_id or sub.plan_id)
    return priced_plan(plan, sub.price_overrides)


def _drop_overrides_of_another_plan(sub: Subscription) -> None:
    """Overrides are prices of one plan: a subscription that moves to another plan pays that plan's prices."""
    if sub.price_overrides and sub.price_overrides.get("plan") != sub.plan_id:
        sub.price_overrides = None


def _fee(plan: Plan, quantity: int) -> int:
    """The advance fee of one full period: unit price × seats, rounded half-up at the line."""
    return round_minor(plan.amount_decimal * quantity)


def _fee_line(plan: Plan, quantity: int, start: datetime, end: datetime) -> NewLine:
    return NewLine(
        type="subscription",
        description=f"{quantity} × {plan.name}",
        amount=_fee(plan, quantity),
        quantity=Decimal(quantity),
        unit_amount_decimal=plan.amount_decimal,
        period_start=start,
        period_end=end,
        details={"plan": plan.id},
    )


async def _coupon_applies(session: AsyncSession, sub: Subscription, period_index: int) -> str | None:
    if sub.coupon_id is None or sub.coupon_start_index is None:
        return None
    coupon = await get_coupon(session, sub.merchant_id, sub.coupon_id)
    return (
        sub.coupon_id if coupon_applies(pure_coupon(coupon), period_index - sub.coupon_start_index) else None
    )


async def get_subscription(
    session: AsyncSession, merchant_id: str, subscription_id: str, *, for_update: bool = False
) -> Subscription:
    return await get_owned(
        session,
        Subscription,
        subscription_id,
        merchant_id=merchant_id,
        prefix="sub",
        kind="subscription",
        for_update=for_update,
        options=(WITH_ITEMS,),
    )


def _renewal_key(sub: Subscription) -> str:
    return f"renew:{sub.id}:{sub.period_index + 1}:{int(sub.current_period_end.timestamp())}"


def renewal_tasks(sub: Subscription, clock: Clock) -> list[NewTask]:
    """The next renewal of `sub` (into period_index + 1, due at the current period's end) and its upcoming
    notice; periods shorter than the notice get none: the renewal is as close as the notice would be."""
    next_index = sub.period_index + 1
    tasks = [
        NewTask(
            merchant_id=sub.merchant_id,
            kind=RENEW,
            due_at=sub.current_period_end,
            payload=RenewPayload(subscription=sub.id, period_index=next_index),
            dedupe_key=_renewal_key(sub),
        )
    ]
    notice_at = sub.current_period_end - UPCOMING_WARNING
    if notice_at > clock.now():
        tasks.append(
            NewTask(
                merchant_id=sub.merchant_id,
                kind=UPCOMING_NOTICE,
                due_at=notice_at,
                payload=UpcomingNoticePayload(
                    subscription=sub.id, period_index=next_index, renews_at=sub.current_period_end.isoformat()
                ),
                dedupe_key=f"upcoming:{sub.id}:{next_index}:{int(sub.current_period_end.timestamp())}",
            )
        )
    return tasks


async def _schedule_renewal(session: AsyncSession, sub: Subscription, clock: Clock) -> None:
    await schedule_tasks(session, renewal_tasks(sub, clock), clock)


async def _cancel_pending_tasks(session: AsyncSession, sub: Subscription, kind: str | None = None) -> None:
    stmt = update(ScheduledTask).where(
        ScheduledTask.status == "pending", ScheduledTask.payload["subscription"].astext == sub.id
    )
    if kind is not None:
        stmt = stmt.where(ScheduledTask.kind == kind)
    await session.execute(stmt.values(status="canceled"))


async def _invoice_and_collect(
    session: AsyncSession,
    sub: Subscription,
    customer: Customer,
    plan: Plan,
    clock: Clock,
    lines: list[NewLine],
    *,
    reason: str,
    period: Period,
    period_index: int | None,
    coupon_id: str | None,
    usage: usage_billing.UsageBill | None = None,
    hold_for_late_usage: bool = True,
) -> Invoice:
    invoice = await invoices.create_draft(
        session,
        customer=customer,
        clock=clock,
        currency=plan.currency,
        collection_method=sub.collection_method,
        days_until_due=sub.days_until_due,
        lines=lines + (usage.lines if usage is not None else []),
        billing_reason=reason,
        subscription_id=sub.id,
        subscription_period_index=period_index,
        period_start=period.start,
        period_end=period.end,
        coupon_id=coupon_id,
        tax_rate_ids=list(sub.tax_rate_ids),
    )
    sub.latest_invoice_id = invoice.id
    await session.flush()
    if usage is not None and usage.records:
        await usage_billing.record_usage(session, invoice=invoice, sub=sub, bill=usage, clock=clock)
        if hold_for_late_usage and await usage_billing.hold_for_grace(
            session, invoice=invoice, bill=usage, clock=clock
        ):
            return invoice  # a draft until late usage had its chance; usage.close_invoice finalizes it
    return await finalize_and_collect(session, sub, invoice, clock)


async def finalize_and_collect(
    session: AsyncSession, sub: Subscription, invoice: Invoice, clock: Clock
) -> Invoice:
    """Finalize one of the subscription's draft invoices and ask for its collection: at once for most invoices,
    at the end of the usage grace window for those that bill usage (billing/usage/close.py)."""
    invoice = await invoices.finalize_invoice(session, sub.merchant_id, invoice.id)
    if sub.status != states.UNPAID:
        # An unpaid subscription (dunning's final action) keeps invoicing but charges nothing until the
        # customer adds or chooses a payment method (billing.dunning_cases).
        await collection.request_collection(
            session, invoice, clock, payment_method=sub.default_payment_method
        )
    return invoice


async def _bill_final_usage(
    session: AsyncSession, sub: Subscription, customer: Customer, clock: Clock, period: Period
) -> None:
    """Usage up to the end is still billed (SPEC §5): an ending subscription bills its last period's usage (if
    its plan has charges) and the late usage of periods billed before (an earlier, metered plan) on a final
    invoice, held for the grace window like a renewal's."""
    plan = await _subscription_plan(session, sub)
    metered_now = bool(plan.charges) and period.end > period.start
    if not metered_now and not await usage_billing.has_billed_usage(session, sub):
        return  # never metered: nothing to bill, now or later
    usage = await usage_billing.bill_usage(
        session, sub=sub, plan=plan, period=period if metered_now else None
    )
    index = sub.period_index + 1
    # Events are accepted up to 35 days after their time: once none can arrive for this period, one true-up
    # bills whatever came after this invoice was final (never dropped silently).
    await schedule_task(
        session,
        merchant_id=sub.merchant_id,
        kind=usage_billing.FINAL_TRUE_UP,
        due_at=usage_settled_at(period.end),
        clock=clock,
        payload=usage_billing.FinalTrueUpPayload(ended_subscription=sub.id),
        dedupe_key=f"usage_true_up:{sub.id}",
    )
    if not usage.lines:
        return
    await _invoice_and_collect(
        session,
        sub,
        customer,
        plan,
        clock,
        [],
        reason="subscription_cancel",
        period=period,
        period_index=index,
        coupon_id=await _coupon_applies(session, sub, index),
        usage=usage,
    )


async def create_subscription(
    session: AsyncSession, merchant_id: str, params: schemas.SubscriptionCreate
) -> Subscription:
    customer = await get_customer(session, merchant_id, params.customer, param="customer", for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    now = clock.now()
    plan = await get_plan(session, merchant_id, params.plan, param="plan")
    ensure_plan_subscribable(plan)
    plan = await mark_plan_in_use(session, plan)
    overrides = None
    if params.price_overrides is not None:
        overrides = await validate_price_overrides(session, plan, params.price_overrides)
        plan = priced_plan(plan, overrides)
    if customer.currency is None:
        previous = customer.currency
        customer.currency = plan.currency
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="customer.updated",
            obj=render_customer(customer),
            clock=clock,
            previous_attributes={"currency": previous},
        )
    elif customer.currency != plan.currency:
        raise InvalidRequest(
            f"Plan {plan.id} is priced in {plan.currency} but customer {customer.id} is billed in "
            f"{customer.currency}. Use a plan in {customer.currency}.",
            param="plan",
        )
    if params.collection_method == "send_invoice" and params.days_until_due is None:
        raise InvalidRequest(
            "collection_method=send_invoice needs days_until_due: the number of days the customer has to pay "
            "each invoice (e.g. 30). Send it, or use collection_method=charge_automatically.",
            param="days_until_due",
        )
    if params.default_payment_method is not None:
        await ensure_payment_method_attached(session, customer, params.default_payment_method)
    tax_rate_ids: list[str] = []
    for index, rate_id in enumerate(params.tax_rates):
        rate = await get_tax_rate(session, merchant_id, rate_id, param=f"tax_rates[{index}]")
        ensure_tax_rate_usable(rate, param=f"tax_rates[{index}]")
        await mark_tax_rate_in_use(session, rate)
        tax_rate_ids.append(rate.id)
    if len(set(tax_rate_ids)) != len(tax_rate_ids):
        raise InvalidRequest(
            "tax_rates lists the same rate twice; it would tax the invoice twice. List each rate once.",
            param="tax_rates",
        )
    coupon_id = None
    if params.coupon is not None:
        coupon = await get_coupon(session, merchant_id, params.coupon, param="coupon")
        if coupon.currency is not None and coupon.currency != plan.currency:
            raise InvalidRequest(
                f"Coupon {coupon.id} is an amount in {coupon.currency}; the plan bills in {plan.currency}. Use "
                f"a coupon in {plan.currency} or a percent_off coupon.",
                param="coupon",
            )
        await redeem_coupon(session, coupon, now)
        coupon_id = coupon.id

    tz = ZoneInfo(customer.timezone)
    interval, count = _calendar(plan)
    trial_days = params.trial_period_days if params.trial_period_days is not None else plan.trial_period_days
    trial_ends = trial_end(now, trial_days, tz) if trial_days else None
    if params.billing_cycle_anchor is not None:
        requested = params.billing_cycle_anchor
        if requested.tzinfo is None or requested <= now:
            raise InvalidRequest(
                "billing_cycle_anchor must be a future instant with a time zone offset.",
                param="billing_cycle_anchor",
            )
        anchor = normalize_anchor(requested, tz)
    else:
        anchor = normalize_anchor(trial_ends or now, tz)
    sub = Subscription(
        id=new_id("sub"),
        merchant_id=merchant_id,
        customer_id=customer.id,
        plan_id=plan.id,
        price_overrides=overrides,
        quantity=params.quantity,
        status=states.INCOMPLETE,
        collection_method=params.collection_method,
        days_until_due=params.days_until_due,
        default_payment_method=params.default_payment_method,
        billing_cycle_anchor=anchor,
        period_index=0,
        current_period_start=now,
        current_period_end=now,
        cancel_at_period_end=False,
        coupon_id=coupon_id,
        coupon_start_index=None,
        tax_rate_ids=tax_rate_ids,
        addon_items=[],
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    await subscription_created.fire(SubscriptionCreated(session, merchant_id, clock))

    if trial_ends is not None:
        sub.status = states.TRIALING
        sub.trial_start, sub.trial_end = now, trial_ends
        sub.period_index = -1
        sub.current_period_start, sub.current_period_end = now, trial_ends
        sub.coupon_start_index = 0 if coupon_id else None
        await session.flush()
        await _emit(session, sub, "subscription.created", clock)
        if trial_ends - TRIAL_WARNING > now:
            await schedule_task(
                session,
                merchant_id=merchant_id,
                kind=TRIAL_WILL_END,
                due_at=trial_ends - TRIAL_WARNING,
                clock=clock,
                payload=SubscriptionPayload(subscription=sub.id),
                dedupe_key=f"trial_will_end:{sub.id}",
            )
        await _schedule_renewal(session, sub, clock)
        return sub

    index = period_index_at(anchor, interval, count, now, tz)
    bounds = period_bounds(anchor, interval, count, index, tz)
    sub.period_index = index
    sub.current_period_start, sub.current_period_end = now, bounds.end
    sub.coupon_start_index = index if coupon_id else None
    await session.flush()
    await _emit(session, sub, "subscription.created", clock)
    line = _fee_line(plan, sub.quantity, now, bounds.end)
    full = bounds.end - bounds.start
    if now > bounds.start and params.billing_cycle_anchor is not None:
        # A stub period up to a requested anchor is charged for the time it covers, exactly.
        fraction = Decimal((bounds.end - now).total_seconds()) / Decimal(full.total_seconds())
        line = NewLine(
            type="subscription",
            description=f"{sub.quantity} × {plan.name} (until the billing anchor)",
            amount=round_minor(plan.amount_decimal * sub.quantity * fraction),
            quantity=Decimal(sub.quantity),
            unit_amount_decimal=plan.amount_decimal,
            period_start=now,
            period_end=bounds.end,
            details={"plan": plan.id, "fraction": str(fraction)},
        )
    invoice = await _invoice_and_collect(
        session,
        sub,
        customer,
        plan,
        clock,
        [line],
        reason="subscription_create",
        period=Period(now, bounds.end),
        period_index=index,
        coupon_id=await _coupon_applies(session, sub, index),
    )
    if invoice.status == "paid" or invoice.collection_method == "send_invoice":
        sub.status = states.ACTIVE
    elif sub.status == states.INCOMPLETE:
        await schedule_task(
            session,
            merchant_id=merchant_id,
            kind=EXPIRE_INCOMPLETE,
            due_at=now + INCOMPLETE_WINDOW,
            clock=clock,
            payload=SubscriptionPayload(subscription=sub.id),
            dedupe_key=f"expire_incomplete:{sub.id}",
        )
    await session.flush()
    await _schedule_renewal(session, sub, clock)
    if sub.status != states.INCOMPLETE:
        await _emit(session, sub, "subscription.updated", clock, {"status": states.INCOMPLETE})
    return sub


async def renew(session: AsyncSession, sub: Subscription, period_index: int, clock: Clock) -> None:
    """Close the current period and open period `period_index` (idempotent: a second run finds it done).

    A paused subscription's renewal stays scheduled and does nothing (no invoices while paused; a resume inside
    the period finds it in place), except end the subscription if it was set to cancel at the period end."""
    if sub.period_index >= period_index:
        return
    paused = sub.status == states.PAUSED
    if (paused and not sub.cancel_at_period_end) or (not paused and sub.status not in states.RENEWING):
        return
    customer = await get_customer(session, sub.merchant_id, sub.customer_id, for_update=True)
    now = clock.now()
    was_trialing = sub.status == states.TRIALING or (paused and sub.period_index < 0)
    # The period that closes now, billed in arrears (trial usage is free) at the price of the plan in force;
    # a paused subscription's usage stopped counting at the pause.
    usage_end = sub.paused_at if paused and sub.paused_at is not None else sub.current_period_end
    closed = None if was_trialing else Period(sub.current_period_start, usage_end)
    if sub.cancel_at_period_end:
        previous = sub.status
        sub.status = states.transition(sub.id, sub.status, "cancel")
        sub.canceled_at = sub.canceled_at or now
        sub.ended_at = sub.current_period_end
        sub.updated_at = now
        await session.flush()
        await _emit(session, sub, "subscription.canceled", clock, {"status": previous} if paused else None)
        if closed is not None:
            await _bill_final_usage(session, sub, customer, clock, closed)
        return
    previous_plan = await _subscription_plan(session, sub)
    usage = await usage_billing.bill_usage(session, sub=sub, plan=previous_plan, period=closed)
    plan = previous_plan
    if sub.pending_change:
        sub.plan_id = sub.pending_change["plan"]
        sub.quantity = sub.pending_change["quantity"]
        sub.pending_change = None
        _drop_overrides_of_another_plan(sub)
        plan = await _subscription_plan(session, sub)
    if _calendar(plan) != _calendar(previous_plan) and not was_trialing:
        # The new plan has another interval: its calendar starts where the old plan's period ends.
        sub.billing_cycle_anchor = sub.current_period_end
        sub.period_offset = period_index
    tz = ZoneInfo(customer.timezone)
    bounds = _period(sub, plan, tz, period_index)
    sub.period_index = period_index
    sub.current_period_start, sub.current_period_end = bounds.start, bounds.end
    sub.updated_at = now
    lines = [_fee_line(plan, sub.quantity, bounds.start, bounds.end)]
    lines += await addon_fee_lines(session, sub, bounds.start, bounds.end)
    lines += await _take_pending_items(session, sub)
    invoice = await _invoice_and_collect(
        session,
        sub,
        customer,
        plan,
        clock,
        lines,
        reason="subscription_cycle",
        period=bounds,
        period_index=period_index,
        coupon_id=await _coupon_applies(session, sub, period_index),
        usage=usage,
    )
    await session.flush()
    if was_trialing and sub.status == states.TRIALING:
        # Paid, or a send_invoice subscription awaiting payment: the trial converts. (A failed charge has
        # already moved it to past_due through the payment-failed hook.)
        event = "invoice_paid" if invoice.status == "paid" else "trial_ended"
        if invoice.status == "paid" or sub.collection_method == "send_invoice":
            sub.status = states.transition(sub.id, sub.status, event)
    await _schedule_renewal(session, sub, clock)
    await _emit(
        session,
        sub,
        "subscription.renewed",
        clock,
        {"plan": previous_plan.id} if previous_plan.id != sub.plan_id else None,
    )


async def _pending_items_of(
    session: AsyncSession, sub: Subscription, *, lock: bool
) -> Sequence[PendingInvoiceItem]:
    """The subscription's own pending items (prorations of changes), oldest first: what its renewal bills."""
    stmt = select(PendingInvoiceItem).where(PendingInvoiceItem.subscription_id == sub.id)
    stmt = stmt.order_by(PendingInvoiceItem.seq)
    return (await session.scalars(stmt.with_for_update() if lock else stmt)).all()


async def _take_pending_items(session: AsyncSession, sub: Subscription) -> list[NewLine]:
    items = await _pending_items_of(session, sub, lock=True)
    if items:
        await session.execute(
            delete(PendingInvoiceItem).where(PendingInvoiceItem.id.in_([item.id for item in items]))
        )
    return _pending_lines(items)


def _pending_lines(items: Sequence[PendingInvoiceItem]) -> list[NewLine]:
    return [
        NewLine(
            type=item.type,
            description=item.description,
            amount=item.amount,
            quantity=Decimal(item.quantity),
            period_start=item.period_start,
            period_end=item.period_end,
            details=item.details,
        )
        for item in items
    ]


async def cancel_subscription(
    session: AsyncSession, merchant_id: str, subscription_id: str, params: schemas.SubscriptionCancel
) -> Subscription:
    sub = await get_subscription(session, merchant_id, subscription_id, for_update=True)
    if not states.can(sub.status, "cancel"):
        # Said about the subscription first (an ended one answers 409 even if its customer was deleted).
        states.transition(sub.id, sub.status, "cancel")
    customer = await get_customer(session, merchant_id, sub.customer_id, for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    now = clock.now()
    details = _cancellation_details(params.cancellation_details)
    if params.at_period_end:
        if params.prorate:
            raise InvalidRequest(
                "prorate applies to an immediate cancel; at the period end nothing is unused.",
                param="prorate",
            )
        await _cancel_at_period_end(session, sub, clock, details)
        return sub
    previous_status = sub.status
    sub.status = states.transition(sub.id, sub.status, "cancel")
    sub.cancellation_details = details or sub.cancellation_details
    if params.prorate and previous_status in (states.ACTIVE, states.PAST_DUE, states.UNPAID):
        plan = await _subscription_plan(session, sub)
        credit, _ = prorate_change(
            _fee(plan, sub.quantity), 1, 0, 0, Period(sub.current_period_start, sub.current_period_end), now
        )
        unused = -sum(line.amount for line in credit) + await unused_addon_time(session, sub, now)
        if unused > 0:
            # Unused time becomes credit on the customer's balance (SPEC §5: no cash refund by default).
            await invoices.record_balance_change(
                session,
                customer,
                -unused,
                kind="unused_time",
                clock=clock,
                currency=plan.currency,
                description=f"Unused time of {sub.id} after cancellation",
            )
    await _end_now(session, sub, customer, clock, previous_status)
    return sub


def _cancellation_details(details: schemas.CancellationDetails | None) -> dict[str, Any] | None:
    if details is None:
        return None
    stored = {"reason": details.reason, "comment": (details.comment or "").strip() or None}
    return stored if any(stored.values()) else None


async def _cancel_at_period_end(
    session: AsyncSession, sub: Subscription, clock: Clock, details: dict[str, Any] | None
) -> None:
    """The subscription ends when its current period does (idempotent: a second call changes nothing)."""
    if not states.can(sub.status, "cancel"):
        states.transition(sub.id, sub.status, "cancel")
    if sub.cancel_at_period_end:
        return
    sub.cancel_at_period_end = True
    sub.canceled_at = sub.updated_at = clock.now()
    sub.cancellation_details = details
    await session.flush()
    await _emit(session, sub, "subscription.updated", clock, {"cancel_at_period_end": False})


async def _undo_cancel_at_period_end(session: AsyncSession, sub: Subscription, clock: Clock) -> None:
    """Take back a cancellation at the period end: the subscription renews as before (idempotent)."""
    if not sub.cancel_at_period_end:
        return
    if sub.status not in states.RENEWING:
        states.transition(sub.id, sub.status, "renew")
    previous = {
        "cancel_at_period_end": True,
        "canceled_at": sub.canceled_at.isoformat() if sub.canceled_at else None,
        "cancellation_details": sub.cancellation_details,
    }
    sub.cancel_at_period_end = False
    sub.canceled_at = None
    sub.cancellation_details = None
    sub.updated_at = clock.now()
    await session.flush()
    await _emit(session, sub, "subscription.updated", clock, previous)


async def _end_now(
    session: AsyncSession, sub: Subscription, customer: Customer, clock: Clock, previous_status: str
) -> None:
    """The end of a subscription whose status has just moved to canceled (by the API or by dunning's final
    action): its pending work is dropped, the event written, and its usage up to the end billed."""
    now = clock.now()
    sub.canceled_at = sub.canceled_at or now
    sub.ended_at = now
    sub.updated_at = now
    await _cancel_pending_tasks(session, sub)
    await session.flush()
    await _emit(session, sub, "subscription.canceled", clock, {"status": previous_status})
    if previous_status in (states.ACTIVE, states.PAST_DUE, states.UNPAID):
        await _bill_final_usage(session, sub, customer, clock, Period(sub.current_period_start, now))
    elif previous_status == states.PAUSED and sub.paused_at is not None and sub.period_index >= 0:
        # Usage stopped counting at the pause; what came before it is still owed (trial usage never is).
        await _bill_final_usage(
            session, sub, customer, clock, Period(sub.current_period_start, sub.paused_at)
        )


async def end_after_dunning(session: AsyncSession, subscription_id: str, clock: Clock, event: str) -> None:
    """Dunning's final action on the subscription (`dunning_cancel` or `dunning_unpaid`), when its status
    allows it: canceled ends it as a cancel by the API would; unpaid keeps it invoicing without charges."""
    sub = await session.scalar(
        select(Subscription).where(Subscription.id == subscription_id).options(WITH_ITEMS).with_for_update()
    )
    if sub is None or not states.can(sub.status, event):
        return
    previous = sub.status
    sub.status = states.transition(sub.id, sub.status, event)
    if sub.status == states.CANCELED:
        customer = await get_customer(session, sub.merchant_id, sub.customer_id, for_update=True)
        await _end_now(session, sub, customer, clock, previous)
        return
    sub.updated_at = clock.now()
    await session.flush()
    await _emit(session, sub, "subscription.updated", clock, {"status": previous})


async def pause_subscription(session: AsyncSession, merchant_id: str, subscription_id: str) -> Subscription:
    """No invoices while paused. The scheduled renewal stays: it does nothing while the subscription is paused
    (ending it if it was set to cancel at the period end), and a resume inside the period finds it in place."""
    sub = await get_subscription(session, merchant_id, subscription_id, for_update=True)
    clock = await customer_clock(session, merchant_id, sub.customer_id)
    previous = sub.status
    sub.status = states.transition(sub.id, sub.status, "pause")
    sub.paused_at = sub.updated_at = clock.now()
    await session.flush()
    await _emit(session, sub, "subscription.paused", clock, {"status": previous})
    return sub


async def resume_subscription(
    session: AsyncSession,
    merchant_id: str,
    subscription_id: str,
    params: schemas.SubscriptionResume | None = None,
) -> Subscription:
    """paused → active (trialing, if resumed before the end of the trial it was paused in). Never bills the same
    time twice (docs/billing.md "Pause and resume"):

    * inside the period billed before the pause, `billing_cycle_anchor=unchanged` bills nothing now and renews
      at that period's end as planned; `now` starts a new cycle today, crediting the unused paid time
      (`proration_behavior=none` is refused there: it would bill that time twice);
    * after that period, `unchanged` bills the rest of the current period of the same calendar (prorated;
      nothing with `none`) and `now` a full new period from today. Paused periods are never billed.

    A period that ends at the resume (a new cycle, or a resume after it) has its usage up to the pause billed in
    arrears on the resume invoice; a period resumed on its calendar bills its usage whole at its renewal."""
    params = params or schemas.SubscriptionResume()
    sub = await get_subscription(session, merchant_id, subscription_id, for_update=True)
    states.transition(sub.id, sub.status, "resume")
    customer = await get_customer(session, merchant_id, sub.customer_id, for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    now = clock.now()
    in_trial = sub.period_index < 0 and sub.trial_end is not None  # paused during its trial
    paid_ahead = now < sub.current_period_end  # the period billed (or the trial granted) before the pause
    restart = params.billing_cycle_anchor == "now"
    if restart and paid_ahead and not in_trial and params.proration_behavior == "none":
        raise InvalidRequest(
            f"Subscription {sub.id} is paid until {sub.current_period_end:%Y-%m-%dT%H:%M:%SZ}: a new cycle from "
            "now without prorations would bill that time twice. Use proration_behavior=create_prorations (the "
            "unused time is credited), or billing_cycle_anchor=unchanged (nothing is billed until the period "
            "ends).",
            param="proration_behavior",
        )
    paused_at = sub.paused_at or now
    sub.paused_at = None
    sub.updated_at = now
    plan = await _subscription_plan(session, sub)
    # The usage of the period the pause interrupted, up to the pause (trial usage is free), when that period
    # ends at this resume.
    interrupted = None if in_trial else Period(sub.current_period_start, paused_at)
    if paid_ahead and not restart:
        sub.status = states.transition(sub.id, states.PAUSED, "resume_trial" if in_trial else "resume")
        await _resume_on_the_paid_calendar(session, sub, clock)
    elif restart:
        sub.status = states.transition(sub.id, states.PAUSED, "resume")
        credits: list[NewLine] = []
        if in_trial and paid_ahead:
            sub.trial_end = now  # the trial ends at this resume: the paid cycle starts now
        elif paid_ahead and params.proration_behavior != "none":
            credit, _ = prorate_change(
                _fee(plan, sub.quantity),
                1,
                0,
                0,
                Period(sub.current_period_start, sub.current_period_end),
                now,
            )
            credits = _proration_lines(credit, "Unused time on " + plan.name)
            credits += await addon_credit_lines(session, sub, now)
        usage = await usage_billing.bill_usage(session, sub=sub, plan=plan, period=interrupted)
        # The period the pending change waited for ends now (or ended while paused).
        plan = await _apply_pending_change(session, sub, plan)
        await _restart_cycle(session, sub, customer, plan, clock, credits, usage, reason="subscription_cycle")
    else:
        sub.status = states.transition(sub.id, states.PAUSED, "resume")
        usage = await usage_billing.bill_usage(session, sub=sub, plan=plan, period=interrupted)
        plan = await _apply_pending_change(session, sub, plan)
        await _resume_after_the_paid_period(
            session, sub, customer, plan, clock, usage, params.proration_behavior
        )
    await session.flush()
    await _emit(session, sub, "subscription.resumed", clock, {"status": states.PAUSED})
    return sub


async def _resume_on_the_paid_calendar(session: AsyncSession, sub: Subscription, clock: Clock) -> None:
    """A resume inside the period billed before the pause: nothing is billed now, and the renewal at the
    period's end (scheduled before the pause) stays. The period is billed as one at that renewal, its usage
    too: splitting it around the pause would count free units and tiers twice."""
    # A pause made before renewals stayed scheduled canceled the renewal: make it pending again.
    await session.execute(
        update(ScheduledTask)
        .where(ScheduledTask.dedupe_key == _renewal_key(sub), ScheduledTask.status == "canceled")
        .values(status="pending")
    )
    await _schedule_renewal(session, sub, clock)


async def _apply_pending_change(session: AsyncSession, sub: Subscription, plan: Plan) -> Plan:
    """A change scheduled for the end of the period, when that end passed while the subscription was paused:
    it applies from now on, as the renewal would have applied it (another interval starts its calendar at the
    old period's end)."""
    if not sub.pending_change:
        return plan
    new_plan = await _subscription_plan(session, sub, sub.pending_change["plan"])
    sub.plan_id, sub.quantity = new_plan.id, sub.pending_change["quantity"]
    sub.pending_change = None
    _drop_overrides_of_another_plan(sub)
    if _calendar(new_plan) != _calendar(plan) and sub.period_index >= 0:
        sub.billing_cycle_anchor = sub.current_period_end
        sub.period_offset = sub.period_index + 1
    return new_plan


async def _resume_after_the_paid_period(
    session: AsyncSession,
    sub: Subscription,
    customer: Customer,
    plan: Plan,
    clock: Clock,
    usage: usage_billing.UsageBill,
    proration_behavior: str,
) -> None:
    """A resume on the unchanged calendar after the period billed before the pause ended: the period that
    contains now is billed from now to its end (its prorated fee, nothing with proration_behavior=none), with
    the usage before the pause; the periods while paused are never billed."""
    now = clock.now()
    tz = ZoneInfo(customer.timezone)
    interval, count = _calendar(plan)
    index = max(
        sub.period_offset + period_index_at(sub.billing_cycle_anchor, interval, count, now, tz),
        sub.period_index + 1,
    )
    bounds = _period(sub, plan, tz, index)
    sub.period_index = index
    sub.current_period_start, sub.current_period_end = now, bounds.end
    await session.flush()
    lines: list[NewLine] = []
    if proration_behavior != "none":
        _, charges = prorate_change(0, 0, _fee(plan, sub.quantity), 1, bounds, now)
        lines += [
            NewLine(
                type="subscription",
                description=f"{sub.quantity} × {plan.name}"
                + ("" if charge.fraction == 1 else " (from the resume to the period end)"),
                amount=charge.amount,
                quantity=Decimal(sub.quantity),
                unit_amount_decimal=plan.amount_decimal,
                period_start=now,
                period_end=bounds.end,
                details={"plan": plan.id, "fraction": str(charge.fraction)},
            )
            for charge in charges
        ]
        lines += await addon_rest_of_period_lines(session, sub, bounds, now)
    await _bill_period_from_now(
        session, sub, customer, plan, clock, lines, usage, reason="subscription_cycle"
    )


async def change_subscription(
    session: AsyncSession, merchant_id: str, subscription_id: str, params: schemas.SubscriptionChange
) -> Subscription:
    sub = await get_subscription(session, merchant_id, subscription_id, for_update=True)
    if params.plan is None and params.quantity is None and params.price_overrides is msgspec.UNSET:
        raise InvalidRequest("Pass a new plan, a new quantity or new price_overrides.", param="plan")
    if sub.status in states.ENDED or sub.status in (states.PAUSED, states.INCOMPLETE):
        states.transition(sub.id, sub.status, "change")
    customer = await get_customer(session, merchant_id, sub.customer_id, for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    now = clock.now()
    base_plan = await get_plan(session, merchant_id, sub.plan_id)
    old_plan = priced_plan(base_plan, sub.price_overrides)
    if params.plan is not None and params.plan not in (base_plan.id, base_plan.code):
        base_plan = await get_plan(session, merchant_id, params.plan, param="plan")
        ensure_plan_subscribable(base_plan)
        base_plan = await mark_plan_in_use(session, base_plan)
        if base_plan.currency != old_plan.currency:
            raise InvalidRequest(
                f"The new plan bills in {base_plan.currency}, this subscription in "
                f"{old_plan.currency}; a subscription keeps its currency.",
                param="plan",
            )
        await ensure_addons_fit(session, sub, base_plan)
    new_overrides = await _new_overrides(session, sub, base_plan, params)
    new_plan = priced_plan(base_plan, new_overrides)
    new_quantity = params.quantity if params.quantity is not None else sub.quantity
    previous = {"plan": sub.plan_id, "quantity": sub.quantity, "price_overrides": sub.price_overrides}
    if (
        _calendar(new_plan) != _calendar(old_plan)
        and params.effective == "now"
        and sub.status != states.TRIALING
    ):
        sub.price_overrides = new_overrides
        await _change_interval_now(session, sub, customer, old_plan, new_plan, new_quantity, params, clock)
        await _emit(session, sub, "subscription.updated", clock, previous)
        return sub
    if params.effective == "period_end":
        sub.pending_change = {"plan": new_plan.id, "quantity": new_quantity}
        sub.updated_at = now
        await session.flush()
        await _emit(session, sub, "subscription.updated", clock, {"pending_change": None})
        return sub
    in_trial = sub.status == states.TRIALING
    period = Period(sub.current_period_start, sub.current_period_end)
    if not in_trial and params.proration_behavior != "none":
        credits, charges = prorate_change(
            _fee(old_plan, sub.quantity), 1, _fee(new_plan, new_quantity), 1, period, now
        )
        lines = _proration_lines(credits, "Unused time on " + old_plan.name) + _proration_lines(
            charges, "Remaining time on " + new_plan.name
        )
        if params.proration_behavior == "create_prorations":
            stage_prorations(session, sub, lines, now)
        elif lines:
            sub.plan_id, sub.quantity = new_plan.id, new_quantity
            sub.price_overrides = new_overrides
            await session.flush()
            await _invoice_and_collect(
                session,
                sub,
                customer,
                new_plan,
                clock,
                lines,
                reason="subscription_update",
                period=Period(now, sub.current_period_end),
                period_index=None,
                coupon_id=None,
            )
    sub.plan_id, sub.quantity = new_plan.id, new_quantity
    sub.price_overrides = new_overrides
    sub.pending_change = None
    sub.updated_at = now
    await session.flush()
    await _emit(session, sub, "subscription.updated", clock, previous)
    return sub


async def _new_overrides(
    session: AsyncSession, sub: Subscription, plan: Plan, params: schemas.SubscriptionChange
) -> dict[str, Any] | None:
    """The subscription's own prices after a change to `plan`: those sent (null: none), else the current ones
    when the plan stays, else none (they were prices of the old plan)."""
    if params.price_overrides is msgspec.UNSET:
        kept = sub.price_overrides
        return kept if kept and kept.get("plan") == plan.id else None
    if params.effective != "now":
        raise InvalidRequest(
            "price_overrides take effect now, prorated; effective=period_end cannot carry them. Send the change "
            "without effective, or schedule the plan change and set the prices once it has applied.",
            param="price_overrides",
        )
    if params.price_overrides is None:
        return None
    return await validate_price_overrides(session, plan, params.price_overrides)


async def _change_interval_now(
    session: AsyncSession,
    sub: Subscription,
    customer: Customer,
    old_plan: Plan,
    new_plan: Plan,
    new_quantity: int,
    params: schemas.SubscriptionChange,
    clock: Clock,
) -> None:
    """A plan with another billing interval, now (as Stripe does): the billing cycle restarts today, so one
    invoice, charged at once, credits the unused time of the old plan (unless proration_behavior is none),
    bills the old plan's usage so far in arrears and the first full period of the new plan in advance."""
    now = clock.now()
    lines: list[NewLine] = []
    if params.proration_behavior != "none":
        credits, _ = prorate_change(
            _fee(old_plan, sub.quantity),
            1,
            0,
            0,
            Period(sub.current_period_start, sub.current_period_end),
            now,
        )
        lines += _proration_lines(credits, "Unused time on " + old_plan.name)
    usage = await usage_billing.bill_usage(
        session, sub=sub, plan=old_plan, period=Period(sub.current_period_start, now)
    )
    sub.plan_id, sub.quantity = new_plan.id, new_quantity
    sub.pending_change = None
    await _restart_cycle(session, sub, customer, new_plan, clock, lines, usage, reason="subscription_update")


async def _restart_cycle(
    session: AsyncSession,
    sub: Subscription,
    customer: Customer,
    plan: Plan,
    clock: Clock,
    lines: list[NewLine],
    usage: usage_billing.UsageBill,
    *,
    reason: str,
) -> None:
    """Start a new billing cycle today (a resume, a change of interval): a new calendar anchored on today's
    local midnight (indexes keep growing; the calendar restarts at the offset), and one invoice, charged at once
    like a new subscription's, with `lines` and `usage` before the new period's fee. Usage of the closed window
    arriving later is adjusted on the next invoice rather than holding this one for the grace window. The
    renewal (and its notice) of the calendar being replaced is dropped."""
    now = clock.now()
    await _cancel_pending_tasks(session, sub, RENEW)
    await _cancel_pending_tasks(session, sub, UPCOMING_NOTICE)
    tz = ZoneInfo(customer.timezone)
    sub.billing_cycle_anchor = normalize_anchor(now, tz)
    sub.period_index += 1
    sub.period_offset = sub.period_index
    bounds = _period(sub, plan, tz, sub.period_index)
    sub.current_period_start, sub.current_period_end = now, bounds.end
    sub.updated_at = now
    await session.flush()
    lines = [
        *lines,
        _fee_line(plan, sub.quantity, now, bounds.end),
        *await addon_fee_lines(session, sub, now, bounds.end),
    ]
    await _bill_period_from_now(session, sub, customer, plan, clock, lines, usage, reason=reason)


async def _bill_period_from_now(
    session: AsyncSession,
    sub: Subscription,
    customer: Customer,
    plan: Plan,
    clock: Clock,
    lines: list[NewLine],
    usage: usage_billing.UsageBill,
    *,
    reason: str,
) -> None:
    """The current period starts now (a new cycle, a resume): `lines`, the pending items and `usage` on one
    invoice charged at once, if there is anything to bill; then the period's renewal is scheduled."""
    lines = [*lines, *await _take_pending_items(session, sub)]
    if lines or usage.lines:
        await _invoice_and_collect(
            session,
            sub,
            customer,
            plan,
            clock,
            lines,
            reason=reason,
            period=Period(sub.current_period_start, sub.current_period_end),
            period_index=sub.period_index,
            coupon_id=await _coupon_applies(session, sub, sub.period_index),
            usage=usage,
            hold_for_late_usage=False,
        )
    await _schedule_renewal(session, sub, clock)


async def update_subscription(
    session: AsyncSession, merchant_id: str, subscription_id: str, params: schemas.SubscriptionUpdate
) -> Subscription:
    sub = await get_subscription(session, merchant_id, subscription_id, for_update=True)
    clock = await customer_clock(session, merchant_id, sub.customer_id)
    previous: dict[str, Any] = {}
    if params.metadata is not msgspec.UNSET:
        previous["metadata"] = dict(sub.metadata_)
        sub.metadata_ = merge_metadata(sub.metadata_, params.metadata)
    if params.default_payment_method is not msgspec.UNSET:
        if params.default_payment_method is not None:
            customer = await get_customer(session, merchant_id, sub.customer_id)
            await ensure_payment_method_attached(session, customer, params.default_payment_method)
        previous["default_payment_method"] = sub.default_payment_method
        sub.default_payment_method = params.default_payment_method
    if params.cancel_at_period_end is True:
        await _cancel_at_period_end(session, sub, clock, None)
    elif params.cancel_at_period_end is False:
        await _undo_cancel_at_period_end(session, sub, clock)
    if previous:
        sub.updated_at = clock.now()
        await session.flush()
        await _emit(session, sub, "subscription.updated", clock, previous)
    if params.default_payment_method not in (msgspec.UNSET, None) and (
        previous["default_payment_method"] != sub.default_payment_method
    ):
        await payment_method_added.fire(
            PaymentMethodChosen(
                session,
                sub.merchant_id,
                sub.customer_id,
                clock,
                payment_method=sub.default_payment_method,
                subscription_id=sub.id,
            )
        )
    return sub


async def upcoming_invoice(
    session: AsyncSession, merchant_id: str, subscription_id: str
) -> schemas.UpcomingInvoice:
    """The next renewal invoice as `renew` would build and finalize it now: the customer balance applied, then
    the prepaid credits its finalization would burn (estimated from the wallet as it is now)."""
    sub = await get_subscription(session, merchant_id, subscription_id)
    if sub.status not in states.RENEWING or sub.cancel_at_period_end:
        raise Conflict(
            f"Subscription {sub.id} will not renew ({sub.status}"
            f"{', cancels at period end' if sub.cancel_at_period_end else ''}), so it has no upcoming "
            "invoice.",
            code="no_upcoming_invoice",
        )
    customer = await get_customer(session, merchant_id, sub.customer_id)
    current = await _subscription_plan(session, sub)
    plan, quantity = current, sub.quantity
    if sub.pending_change:
        plan = await _subscription_plan(session, sub, sub.pending_change["plan"])
        quantity = sub.pending_change["quantity"]
    index = sub.period_index + 1
    tz = ZoneInfo(customer.timezone)
    if _calendar(plan) != _calendar(current) and sub.status != states.TRIALING:
        # As renew does: a pending plan with another interval starts its calendar at the current period's end.
        interval, count = _calendar(plan)
        bounds = period_bounds(sub.current_period_end, interval, count, 0, tz)
    else:
        bounds = _period(sub, plan, tz, index)
    lines = [_fee_line(plan, quantity, bounds.start, bounds.end)]
    lines += await addon_fee_lines(session, sub, bounds.start, bounds.end)
    lines += _pending_lines(await _pending_items_of(session, sub, lock=False))
    # Usage so far, billed in arrears on this invoice, and late usage of billed periods (as renew would).
    usage = await usage_billing.bill_usage(
        session,
        sub=sub,
        plan=current,
        period=None
        if sub.status == states.TRIALING
        else Period(sub.current_period_start, sub.current_period_end),
    )
    lines += usage.lines
    # What the renewal draft's listeners would add (the customer's pending one-off items, billing.invoice_items).
    preview = invoice_hooks.RenewalPreview(session, customer.id, plan.currency)
    await invoice_hooks.renewal_preview.fire(preview)
    lines += [NewLine(**fields) for fields in preview.lines]
    coupon_id = await _coupon_applies(session, sub, index)
    coupon = pure_coupon(await get_coupon(session, merchant_id, coupon_id)) if coupon_id else None
    rates = [pure_tax_rate(await get_tax_rate(session, merchant_id, r)) for r in sub.tax_rate_ids]
    totals = compute_invoice_totals(
        [line.amount for line in lines], coupon, rates, customer.balance, currency=plan.currency
    )
    credits = InvoiceEstimate(session, customer.id, plan.currency, totals.amount_due, bounds.start)
    await invoice_estimating.fire(credits)
    return schemas.UpcomingInvoice(
        subscription=sub.id,
        customer=customer.id,
        currency=plan.currency,
        period_start=bounds.start,
        period_end=bounds.end,
        lines=[
            {
                "type": line.type,
                "description": line.description,
                "amount": line.amount,
                "quantity": str(line.quantity),
                "period": {"start": line.period_start, "end": line.period_end},
                "details": line.details,
            }
            for line in lines
        ],
        subtotal=totals.subtotal,
        discount=totals.discount,
        tax=totals.tax,
        total=totals.total,
        starting_balance=customer.balance,
        prepaid_credit_amount=credits.prepaid_credit_amount,
        amount_due=totals.amount_due - credits.prepaid_credit_amount,
    )


async def list_subscriptions(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    customer: str | None = None,
    status: str | None = None,
    plan: str | None = None,
) -> Page[Subscription]:
    if status is not None and status not in states.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(states.STATUSES)}.", param="status")
    by_plan: Filter = None
    if plan is not None:
        by_code = select(Plan.id).where(Plan.merchant_id == merchant_id, Plan.code == plan)
        by_plan = (
            Subscription.plan_id == plan if is_valid_id(plan, "plan") else Subscription.plan_id.in_(by_code)
        )
    filters = (equals(Subscription.customer_id, customer), by_plan, equals(Subscription.status, status))
    return await list_owned(
        session, Subscription, merchant_id, filters, page, prefix="sub", options=(WITH_ITEMS,)
    )


# --- scheduled work ------------------------------------------------------------------------------------------


async def _locked(ctx: TaskContext) -> Subscription | None:
    return await ctx.session.scalar(
        select(Subscription)
        .where(Subscription.id == ctx.payload_as(SubscriptionPayload).subscription)
        .options(WITH_ITEMS)
        .with_for_update()
    )


async def renew_task(ctx: TaskContext) -> None:
    sub = await _locked(ctx)
    if sub is None:
        return
    if await _customer_deleted(ctx.session, sub):
        # Deleting the customer ends its subscriptions; one left live (deleted before that rule) ends now.
        if sub.status not in states.ENDED:
            await _end_for_deleted_customer(ctx.session, sub, ctx.clock)
        return
    await renew(ctx.session, sub, ctx.payload_as(RenewPayload).period_index, ctx.clock)


async def trial_will_end_task(ctx: TaskContext) -> None:
    """`subscription.trial_will_end` for the app; for the customer, the trial-ending email quoting what the
    first invoice will charge (none when the subscription ends with its trial: it will bill nothing)."""
    sub = await _locked(ctx)
    if sub is None or sub.status != states.TRIALING or await _customer_deleted(ctx.session, sub):
        return
    await _emit(ctx.session, sub, "subscription.trial_will_end", ctx.clock)
    if sub.cancel_at_period_end:
        return
    first = await upcoming_invoice(ctx.session, sub.merchant_id, sub.id)
    await trial_will_end.fire(
        TrialEnding(
            ctx.session,
            sub,
            ctx.clock,
            first.amount_due,
            first.currency,
            first.period_start,
            first.period_end,
        )
    )


async def final_usage_true_up_task(ctx: TaskContext) -> None:
    """An ended subscription's usage that arrived after its last invoice was final: one more invoice, if the
    recount changes anything."""
    sub = await ctx.session.scalar(
        select(Subscription)
        .where(Subscription.id == ctx.payload_as(usage_billing.FinalTrueUpPayload).ended_subscription)
        .options(WITH_ITEMS)
        .with_for_update()
    )
    if sub is None or sub.status not in states.ENDED or await _customer_deleted(ctx.session, sub):
        return
    plan = await _subscription_plan(ctx.session, sub)
    late = await usage_billing.bill_usage(ctx.session, sub=sub, plan=plan, period=None)
    if not any(line.amount for line in late.lines):
        return
    customer = await get_customer(ctx.session, sub.merchant_id, sub.customer_id, for_update=True)
    await _invoice_and_collect(
        ctx.session,
        sub,
        customer,
        plan,
        ctx.clock,
        [],
        reason="subscription_cancel",
        period=Period(sub.current_period_start, sub.ended_at or sub.current_period_end),
        period_index=None,
        coupon_id=None,
        usage=late,
    )


async def upcoming_notice_task(ctx: TaskContext) -> None:
    """`invoice.upcoming`: the next renewal invoice as it stands now, sent while the app can still act on it."""
    notice = ctx.payload_as(UpcomingNoticePayload)
    sub = await _locked(ctx)
    if (
        sub is None
        or sub.period_index + 1 != notice.period_index
        or sub.current_period_end != datetime.fromisoformat(notice.renews_at)
        or sub.status not in states.RENEWING
        or sub.cancel_at_period_end
        or await _customer_deleted(ctx.session, sub)
    ):
        return  # rescheduled (paused, resumed, re-anchored) or ending: that renewal will not happen
    upcoming = await upcoming_invoice(ctx.session, sub.merchant_id, sub.id)
    record_event(
        ctx.session,
        merchant_id=sub.merchant_id,
        event_type="invoice.upcoming",
        obj=upcoming,
        clock=ctx.clock,
        object_id=sub.id,
    )


async def expire_incomplete_task(ctx: TaskContext) -> None:
    sub = await _locked(ctx)
    if sub is None or sub.status != states.INCOMPLETE:
        return
    sub.status = states.transition(sub.id, sub.status, "expire")
    sub.ended_at = sub.updated_at = ctx.clock.now()
    await _cancel_pending_tasks(ctx.session, sub, RENEW)
    if sub.latest_invoice_id:
        invoice = await ctx.session.get(Invoice, sub.latest_invoice_id)
        if invoice is not None and invoice.status == "open":
            await invoices.void_invoice(ctx.session, sub.merchant_id, invoice.id)
    await ctx.session.flush()
    await _emit(ctx.session, sub, "subscription.updated", ctx.clock, {"status": states.INCOMPLETE})


async def on_invoice_paid(paid: InvoicesPaid) -> None:
    """A subscription whose invoice got paid (now or later, by card or out of band) becomes active. The
    subscriptions of all the invoices are locked with one query (in id order)."""
    session, clock = paid.session, paid.clock
    ids = sorted(
        {invoice.subscription_id for invoice in paid.invoices if invoice.subscription_id is not None}
    )
    if not ids:
        return
    subs = {
        sub.id: sub
        for sub in await session.scalars(
            select(Subscription)
            .where(Subscription.id.in_(ids))
            .order_by(Subscription.id)
            .options(WITH_ITEMS)
            .with_for_update()
        )
    }
    for invoice in paid.invoices:
        sub = subs.get(invoice.subscription_id or "")
        if sub is None or sub.latest_invoice_id != invoice.id:
            continue
        event = "first_invoice_paid" if sub.status == states.INCOMPLETE else "invoice_paid"
        if sub.status in (states.INCOMPLETE, states.TRIALING, states.PAST_DUE, states.UNPAID) and states.can(
            sub.status, event
        ):
            previous = sub.status
            sub.status = states.transition(sub.id, sub.status, event)
            sub.updated_at = clock.now()
            if previous == states.INCOMPLETE:
                await _cancel_pending_tasks(session, sub, EXPIRE_INCOMPLETE)
            await session.flush()
            await _emit(session, sub, "subscription.updated", clock, {"status": previous})


async def on_payment_failed(event: PaymentFailure) -> None:
    """A failed charge of a renewal or later invoice makes its subscription past_due."""
    session, invoice, clock = event.session, event.invoice, event.clock
    if invoice.subscription_id is None or invoice.billing_reason == "subscription_create":
        return
    sub = await session.scalar(
        select(Subscription)
        .where(Subscription.id == invoice.subscription_id)
        .options(WITH_ITEMS)
        .with_for_update()
    )
    if sub is None or not states.can(sub.status, "payment_failed"):
        return
    previous = sub.status
    sub.status = states.transition(sub.id, sub.status, "payment_failed")
    sub.updated_at = clock.now()
    await session.flush()
    if previous != sub.status:
        await _emit(session, sub, "subscription.past_due", clock, {"status": previous})


async def _customer_deleted(session: AsyncSession, sub: Subscription) -> bool:
    deleted_at = await session.scalar(select(Customer.deleted_at).where(Customer.id == sub.customer_id))
    return deleted_at is not None


async def _end_for_deleted_customer(session: AsyncSession, sub: Subscription, clock: Clock) -> None:
    """A live subscription whose customer is being deleted ends now, with its pending work. Nothing more is
    billed (no prorated credit, no final usage invoice): there is nobody left to bill."""
    previous = sub.status
    sub.status = states.transition(sub.id, sub.status, "cancel")
    now = clock.now()
    sub.canceled_at = sub.canceled_at or now
    sub.ended_at = sub.updated_at = now
    await _cancel_pending_tasks(session, sub)
    await session.flush()
    await _emit(session, sub, "subscription.canceled", clock, {"status": previous})


async def on_customer_deleted(event: CustomerDeleted) -> None:
    """Deleting a customer ends its live subscriptions in the same transaction (as Stripe does), and drops the
    late-usage true-ups of the ended ones."""
    session, customer, clock = event.session, event.customer, event.clock
    subs = (
        await session.scalars(
            select(Subscription)
            .where(Subscription.customer_id == customer.id, Subscription.status.not_in(states.ENDED))
            .order_by(Subscription.seq)
            .options(WITH_ITEMS)
            .with_for_update()
        )
    ).all()
    for sub in subs:
        await _end_for_deleted_customer(session, sub, clock)
    await session.execute(
        update(ScheduledTask)
        .where(
            ScheduledTask.status == "pending",
            ScheduledTask.kind == usage_billing.FINAL_TRUE_UP,
            ScheduledTask.payload["ended_subscription"].astext.in_(
                select(Subscription.id).where(Subscription.customer_id == customer.id)
            ),
        )
        .values(status="canceled")
        .execution_options(synchronize_session=False)
    )
