"""`usage.close_invoice`: the end of a renewal invoice's grace window. Count the closed period's usage again
(every event received by now), rewrite the invoice's usage lines, finalize it and ask for collection.

Idempotent: it acts only on a draft, under the subscription's and the invoice's row locks (the order renewals
use), so a second run, or a merchant who finalized the draft by hand meanwhile, finds nothing to do; what that
draft billed then stays recorded and later events become adjustments.

`close_usage_batch` closes a set of them as the renewal batch renews (billing/subscriptions/batch.py): the
subscriptions, customers and invoices locked with one query each, the usage of all counted together
(`bill_usages`), the lines and usage rows rewritten and the drafts finalized in bulk. A draft with anything out of
the ordinary (a customer balance or prepaid credits to apply, nothing left to pay, another collection method, a
plan or coupon it no longer shares with its subscription) is closed alone by `close_usage_invoice_task`."""

from __future__ import annotations

import msgspec
from sqlalchemy import delete, select

from billing.catalog.coupons import pure_coupon
from billing.catalog.plans import get_plan, priced_plan
from billing.catalog.tax_rates import pure_tax_rate
from billing.invoices import collection
from billing.invoices import service as invoices
from billing.invoices.models import Invoice, InvoiceLine
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import BatchContext, TaskContext
from billing.scheduler.runner import schedule_tasks
from billing.subscriptions import states as subscription_states
from billing.subscriptions.batch import RenewalInputs, load_subscriptions
from billing.subscriptions.models import Subscription
from billing.subscriptions.service import finalize_and_collect
from billing.usage import billing as usage_billing
from billing.usage.billed import UsageBilled
from plans.totals import compute_invoice_totals


async def close_usage_invoice_task(ctx: TaskContext) -> None:
    session = ctx.session
    payload = ctx.payload_as(usage_billing.CloseUsagePayload)
    invoice_id = payload.invoice
    subscription_id = await session.scalar(select(Invoice.subscription_id).where(Invoice.id == invoice_id))
    if subscription_id is None:
        return  # the draft was deleted
    sub = await session.scalar(
        select(Subscription).where(Subscription.id == subscription_id).with_for_update()
    )
    invoice = await session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
    if sub is None or invoice is None or invoice.status != "draft":
        return
    plan = priced_plan(await get_plan(session, sub.merchant_id, payload.plan), sub.price_overrides)
    bill = await usage_billing.bill_usage(
        session,
        sub=sub,
        plan=plan,
        period=usage_billing.closing_period(payload),
        invoice_id=invoice.id,
    )
    await invoices.replace_draft_lines(
        session, invoice, replaced=usage_billing.is_usage_line, lines=bill.lines, clock=ctx.clock
    )
    await usage_billing.record_usage(
        session, invoice=invoice, sub=sub, bill=bill, clock=ctx.clock, replacing=True
    )
    await finalize_and_collect(session, sub, invoice, ctx.clock)


def _takes(
    payload: usage_billing.CloseUsagePayload,
    invoice: Invoice | None,
    inputs: RenewalInputs,
    test_clock_id: str | None,
) -> bool:
    """Whether the batch closes this draft (else `close_usage_invoice_task` does, alone)."""
    if invoice is None or invoice.status != "draft" or invoice.subscription_id is None:
        return False
    sub = inputs.subscriptions.get(invoice.subscription_id)
    if sub is None or sub.id in inputs.irregular:
        return False
    customer = inputs.customers[sub.customer_id]
    return (
        payload.plan == sub.plan_id
        and customer.id == invoice.customer_id
        and customer.balance == 0
        and customer.test_clock_id == test_clock_id
        and invoice.collection_method == "charge_automatically"
        and sub.status != subscription_states.UNPAID
        and (invoice.coupon_id is None or invoice.coupon_id in inputs.coupons)
        and all(rate in inputs.tax_rates for rate in invoice.tax_rate_ids)
    )


async def close_usage_batch(ctx: BatchContext) -> set[str]:
    """Close the claimed drafts as `close_usage_invoice_task` closes each, as a set; returns the tasks done."""
    session = ctx.session
    payloads = {task.id: msgspec.convert(task.payload, usage_billing.CloseUsagePayload) for task in ctx.tasks}
    owners = dict(
        (
            await session.execute(
                select(Invoice.id, Invoice.subscription_id).where(
                    Invoice.id.in_(sorted({p.invoice for p in payloads.values()}))
                )
            )
        ).all()
    )
    # The order renewals lock in: the subscriptions (and their customers), then the invoices, each in id order.
    inputs = await load_subscriptions(session, sorted({sub for sub in owners.values() if sub is not None}))
    drafts = {
        invoice.id: invoice
        for invoice in await session.scalars(
            select(Invoice)
            .where(Invoice.id.in_(sorted(owners)))
            .order_by(Invoice.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    taken: list[tuple[ScheduledTask, Invoice]] = []
    seen: set[str] = set()
    for task in ctx.tasks:
        payload = payloads[task.id]
        invoice = drafts.get(payload.invoice)
        if payload.invoice in seen or not _takes(payload, invoice, inputs, ctx.clock.test_clock_id):
            continue
        assert invoice is not None
        seen.add(invoice.id)
        taken.append((task, invoice))
    if not taken:
        return set()
    subs = [inputs.subscriptions[str(invoice.subscription_id)] for _, invoice in taken]
    bills = await usage_billing.bill_usages(
        session,
        [
            usage_billing.UsageAsk(
                sub,
                priced_plan(inputs.plans[sub.plan_id], sub.price_overrides),
                usage_billing.closing_period(payloads[task.id]),
                invoice.id,
            )
            for (task, invoice), sub in zip(taken, subs, strict=True)
        ],
    )
    current = await invoices.lines_of(session, [invoice.id for _, invoice in taken])
    now = ctx.clock.now()
    closing: list[tuple[ScheduledTask, Subscription, usage_billing.UsageBill, invoices.DraftToFinalize]] = []
    for (task, invoice), sub, bill in zip(taken, subs, bills, strict=True):
        rows = [invoices.line_row(invoice, line, now) for line in bill.lines]
        lines = [line for line in current[invoice.id] if not usage_billing.is_usage_line(line)] + rows
        customer = inputs.customers[sub.customer_id]
        totals = compute_invoice_totals(
            [line.amount for line in lines],
            pure_coupon(inputs.coupons[invoice.coupon_id]) if invoice.coupon_id is not None else None,
            [pure_tax_rate(inputs.tax_rates[rate]) for rate in invoice.tax_rate_ids],
            customer.balance,
            currency=invoice.currency,
        )
        if totals.amount_due == 0:
            continue  # nothing left to pay: paid on finalization, as `finalize_invoice` does it alone
        closing.append((task, sub, bill, invoices.DraftToFinalize(invoice, lines, totals, customer)))
    if not closing:
        return set()
    ids = sorted(draft.invoice.id for _, _, _, draft in closing)
    gone = [line.id for i in ids for line in current[i] if usage_billing.is_usage_line(line)]
    if gone:
        await session.execute(delete(InvoiceLine).where(InvoiceLine.id.in_(gone)))
    await session.execute(delete(UsageBilled).where(UsageBilled.invoice_id.in_(ids)))
    for _, sub, bill, draft in closing:
        session.add_all([line for line in draft.lines if line not in current[draft.invoice.id]])
        session.add_all(usage_billing.usage_rows(draft.invoice, sub, bill, ctx.clock))
    await invoices.finalize_drafts(session, [draft for _, _, _, draft in closing], ctx.clock)
    await schedule_tasks(
        session,
        [
            collection.automatic_collection(draft.invoice, ctx.clock, sub.default_payment_method)
            for _, sub, _, draft in closing
        ],
        ctx.clock,
    )
    return {task.id for task, _, _, _ in closing}
