"""Renewals as a set (issue 13 item 1): the due renewals the scheduler claimed together are loaded with a fixed
number of queries, each invoice is computed with the pure functions of `plans/`, and invoices, lines, numbers,
events and next tasks are written with bulk statements in the batch's one transaction.

The batch takes the regular renewals: an active subscription renewing into its next period on the same plan, with
no pending invoice item, add-on, own price, minimum commitment, pending change or cancel at the period end, a
customer with a zero balance and no other subscription in the batch, and something to charge. Usage in arrears
is billed as a set (`usage.billing.bill_usages`: what was billed before, the meters and every subscription's usage
read with one query each), priced by the same pure functions as the single renewal's; an invoice that bills a
period's usage stays a draft for the grace window, like the single renewal's, and `usage.close_invoice` finalizes
those as a set too (billing/usage/close.py). Everything else (trials converting, pauses, cancels, plan changes,
balances) is left to the single renewal (`service.renew_task`), which stays the reference: the batch writes what
it writes, row for row.

A subscription whose computation raises is left out of the batch and renewed alone (where its error is recorded
on its task and retried like any task's); a batch whose writes fail is rolled back and every renewal runs alone
(`scheduler.runner.execute_set`), so one bad subscription never holds back its neighbours.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.coupons import pure_coupon
from billing.catalog.models import Coupon, Plan, TaxRate
from billing.catalog.tax_rates import pure_tax_rate
from billing.clock import Clock
from billing.customers.models import Customer
from billing.ids import new_id
from billing.invoices import collection
from billing.invoices import hooks as invoice_hooks
from billing.invoices import service as invoices
from billing.invoices import states as invoice_states
from billing.invoices.models import Invoice, InvoiceLine
from billing.invoices.service import NewLine
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import BatchContext
from billing.scheduler.runner import NewTask, schedule_tasks
from billing.subscriptions import states
from billing.subscriptions.models import WITH_ITEMS, PendingInvoiceItem, Subscription
from billing.subscriptions.service import _fee_line, _period, render_subscription, renewal_tasks
from billing.usage import billing as usage_billing
from billing.usage.billing import UsageBill
from plans.calendar import Period
from plans.discounts import coupon_applies
from plans.totals import InvoiceTotals, compute_invoice_totals
from webhooks.outbox import record_event

log = logging.getLogger("billing.subscriptions.batch")


@dataclass(frozen=True)
class RenewalInputs:
    """Everything the batch's renewals read, loaded once for the whole batch."""

    subscriptions: dict[str, Subscription]
    customers: dict[str, Customer]
    plans: dict[str, Plan]
    coupons: dict[str, Coupon]
    tax_rates: dict[str, TaxRate]
    # Subscriptions the batch leaves to the single renewal: pending invoice items, add-ons, wallets.
    irregular: frozenset[str]


@dataclass(frozen=True)
class DueRenewal:
    """A renewal the batch may take, before its usage is billed."""

    task: ScheduledTask
    sub: Subscription
    customer: Customer
    plan: Plan
    period_index: int

    @property
    def closed(self) -> Period:
        """The period that closes now, billed in arrears."""
        return Period(self.sub.current_period_start, self.sub.current_period_end)


@dataclass(frozen=True)
class PlannedRenewal:
    """One renewal as computed, before anything is written. `held_until`: the end of the usage grace window, when
    the invoice bills a period's usage (a draft until then, finalized by `usage.close_invoice`)."""

    due: DueRenewal
    period: Period
    lines: list[NewLine]
    usage: UsageBill
    coupon_id: str | None
    totals: InvoiceTotals
    held_until: datetime | None

    @property
    def task(self) -> ScheduledTask:
        return self.due.task

    @property
    def sub(self) -> Subscription:
        return self.due.sub


def due_renewal(task: ScheduledTask, inputs: RenewalInputs) -> DueRenewal | None:
    """The renewal `task` asks for, if the batch takes it; None when it is left to the single renewal."""
    sub = inputs.subscriptions.get(task.payload["subscription"])
    if sub is None or sub.id in inputs.irregular:
        return None
    period_index = int(task.payload["period_index"])
    customer = inputs.customers[sub.customer_id]
    plan = inputs.plans[sub.plan_id]
    if (
        sub.period_index + 1 != period_index
        or sub.status != states.ACTIVE
        or sub.cancel_at_period_end
        or sub.pending_change
        or plan.minimum_commitment is not None  # a true-up may be owed: the single renewal bills it
        or sub.price_overrides  # its own prices: the single renewal applies them
        or sub.collection_method != "charge_automatically"
        or customer.deleted_at is not None
        or customer.balance != 0
    ):
        return None
    return DueRenewal(task, sub, customer, plan, period_index)


def plan_renewal(
    due: DueRenewal, usage: UsageBill, inputs: RenewalInputs, grace: timedelta, now: datetime
) -> PlannedRenewal | None:
    """The renewal computed without I/O from what was read and its usage bill (`usage.billing.bill_usages`);
    None when the batch leaves it to the single renewal."""
    sub, customer, plan, period_index = due.sub, due.customer, due.plan, due.period_index
    period = _period(sub, plan, ZoneInfo(customer.timezone), period_index)
    lines = [_fee_line(plan, sub.quantity, period.start, period.end), *usage.lines]
    coupon_id = None
    if sub.coupon_id is not None and sub.coupon_start_index is not None:
        coupon = pure_coupon(inputs.coupons[sub.coupon_id])
        coupon_id = sub.coupon_id if coupon_applies(coupon, period_index - sub.coupon_start_index) else None
    totals = compute_invoice_totals(
        [line.amount for line in lines],
        pure_coupon(inputs.coupons[coupon_id]) if coupon_id is not None else None,
        [pure_tax_rate(inputs.tax_rates[rate]) for rate in sub.tax_rate_ids],
        customer.balance,
        currency=plan.currency,
    )
    # As `usage.billing.hold_for_grace` decides: a period's usage waits for late events, unless no window is left.
    held_until = usage_billing.grace_ends(usage, grace, now)
    if held_until is None and totals.amount_due == 0:
        return None  # paid at once on finalization: the single renewal's path
    return PlannedRenewal(due, period, lines, usage, coupon_id, totals, held_until)


async def load_inputs(session: AsyncSession, tasks: list[ScheduledTask]) -> RenewalInputs:
    """The batch's subscriptions (locked, in id order so that concurrent batches never deadlock) and what their
    renewals read: a fixed number of queries, whatever the batch's size."""
    return await load_subscriptions(session, sorted({task.payload["subscription"] for task in tasks}))


async def load_subscriptions(session: AsyncSession, ids: list[str]) -> RenewalInputs:
    """Subscriptions `ids` and their customers, locked in id order, with what invoicing them reads (plans,
    coupons, tax rates) and those to invoice one by one (`RenewalInputs.irregular`)."""
    subs = (
        await session.scalars(
            select(Subscription)
            .where(Subscription.id.in_(ids))
            .order_by(Subscription.id)
            .options(WITH_ITEMS)
            .with_for_update()
        )
    ).all()
    customers = (
        await session.scalars(
            select(Customer)
            .where(Customer.id.in_({sub.customer_id for sub in subs}))
            .order_by(Customer.id)
            .with_for_update()
        )
    ).all()
    plans = (await session.scalars(select(Plan).where(Plan.id.in_({sub.plan_id for sub in subs})))).all()
    coupon_ids = {sub.coupon_id for sub in subs if sub.coupon_id is not None}
    coupons = (
        (await session.scalars(select(Coupon).where(Coupon.id.in_(coupon_ids)))).all() if coupon_ids else []
    )
    rate_ids = {rate for sub in subs for rate in sub.tax_rate_ids}
    rates = (await session.scalars(select(TaxRate).where(TaxRate.id.in_(rate_ids)))).all() if rate_ids else []
    irregular = set(
        (
            await session.scalars(
                select(PendingInvoiceItem.subscription_id).where(PendingInvoiceItem.subscription_id.in_(ids))
            )
        ).all()
    )
    # Two renewals of one customer would share its row (its balance, its lock): renewed alone, one by one.
    per_customer = Counter(sub.customer_id for sub in subs)
    irregular |= {sub.id for sub in subs if per_customer[sub.customer_id] > 1}
    # Customers with something to add or apply to their invoices (pending invoice items, a wallet's prepaid
    # credits) are renewed one by one, through those hooks.
    asked = invoice_hooks.InvoicedAlone(session, set(per_customer))
    await invoice_hooks.renewals_invoiced_alone.fire(asked)
    irregular |= {sub.id for sub in subs if sub.customer_id in asked.alone}
    # Subscriptions with add-on items (loaded with them: one query for the batch) bill a line per item: renewed
    # alone, by the single renewal.
    irregular |= {sub.id for sub in subs if sub.addon_items}
    return RenewalInputs(
        subscriptions={sub.id: sub for sub in subs},
        customers={customer.id: customer for customer in customers},
        plans={plan.id: plan for plan in plans},
        coupons={coupon.id: coupon for coupon in coupons},
        tax_rates={rate.id: rate for rate in rates},
        irregular=frozenset(irregular),
    )


def _draft(planned: PlannedRenewal, now: datetime) -> tuple[Invoice, list[InvoiceLine]]:
    """The draft `invoices.create_draft` makes for this renewal, with its draft figures (before the balance)."""
    sub, totals = planned.sub, planned.totals
    invoice = Invoice(
        id=new_id("in"),
        merchant_id=sub.merchant_id,
        customer_id=sub.customer_id,
        status=invoice_states.DRAFT,
        currency=planned.due.plan.currency,
        collection_method=sub.collection_method,
        days_until_due=sub.days_until_due,
        description=None,
        metadata_={},
        created_at=now,
        subtotal=totals.subtotal,
        discount=totals.discount,
        tax=totals.tax,
        total=totals.total,
        starting_balance=0,
        balance_applied=0,
        amount_due=max(0, totals.total),
        amount_paid=0,
        amount_remaining=max(0, totals.total),
        attempt_count=0,
        paid_out_of_band=False,
        billing_reason="subscription_cycle",
        subscription_id=sub.id,
        subscription_period_index=planned.due.period_index,
        period_start=planned.period.start,
        period_end=planned.period.end,
        coupon_id=planned.coupon_id,
        tax_rate_ids=list(sub.tax_rate_ids),
    )
    return invoice, [invoices.line_row(invoice, line, now) for line in planned.lines]


async def write_renewals(session: AsyncSession, planned: list[PlannedRenewal], clock: Clock) -> None:
    """Write the planned renewals: drafts, lines and usage billed in bulk; the drafts not held for late usage
    finalized together (`invoices.finalize_drafts`); collection, usage-close and next tasks in one statement;
    every event in the same transaction."""
    now = clock.now()
    drafts = [_draft(renewal, now) for renewal in planned]
    session.add_all([row for invoice, lines in drafts for row in (invoice, *lines)])
    for invoice, lines in drafts:
        record_event(
            session,
            merchant_id=invoice.merchant_id,
            event_type="invoice.created",
            obj=invoices.render_invoice(invoice, lines),
            clock=clock,
        )
    for renewal, (invoice, _) in zip(planned, drafts, strict=True):
        session.add_all(usage_billing.usage_rows(invoice, renewal.sub, renewal.usage, clock))
    finalized = [
        invoices.DraftToFinalize(invoice, lines, renewal.totals, renewal.due.customer)
        for renewal, (invoice, lines) in zip(planned, drafts, strict=True)
        if renewal.held_until is None
    ]
    await invoices.finalize_drafts(session, finalized, clock)
    next_tasks: list[NewTask] = []
    for renewal, (invoice, _) in zip(planned, drafts, strict=True):
        if renewal.held_until is None:
            next_tasks.append(
                collection.automatic_collection(invoice, clock, renewal.sub.default_payment_method)
            )
        else:
            next_tasks.append(usage_billing.close_usage_task(invoice, renewal.usage, renewal.held_until))
        sub = renewal.sub
        sub.period_index = renewal.due.period_index
        sub.current_period_start, sub.current_period_end = renewal.period.start, renewal.period.end
        sub.updated_at = now
        sub.latest_invoice_id = invoice.id
        next_tasks += renewal_tasks(sub, clock)
        record_event(
            session,
            merchant_id=sub.merchant_id,
            event_type="subscription.renewed",
            obj=render_subscription(sub),
            clock=clock,
        )
    await session.flush()
    await schedule_tasks(session, next_tasks, clock)


async def renew_batch(ctx: BatchContext) -> set[str]:
    """Renew the regular renewals of the claimed set; the others are left to `service.renew_task`."""
    inputs = await load_inputs(ctx.session, ctx.tasks)
    due: list[DueRenewal] = []
    for task in ctx.tasks:
        try:
            renewal = due_renewal(task, inputs)
        except Exception:
            # Isolated: renewed alone by the single renewal, where the error is recorded on its task.
            log.exception("renewal task %s left out of its batch", task.id)
            continue
        if renewal is not None:
            due.append(renewal)
    bills = await usage_billing.bill_usages(
        ctx.session, [usage_billing.UsageAsk(d.sub, d.plan, d.closed) for d in due]
    )
    graces = {
        merchant: await usage_billing.grace_period(ctx.session, merchant)
        for merchant in sorted({d.sub.merchant_id for d in due})
    }
    planned = []
    for renewal, bill in zip(due, bills, strict=True):
        try:
            computed = plan_renewal(renewal, bill, inputs, graces[renewal.sub.merchant_id], ctx.clock.now())
        except Exception:
            log.exception("renewal task %s left out of its batch", renewal.task.id)
            continue
        if computed is not None:
            planned.append(computed)
    if planned:
        await write_renewals(ctx.session, planned, ctx.clock)
    return {renewal.task.id for renewal in planned}
