"""`usage.close_invoice`: the end of a renewal invoice's grace window. Count the closed period's usage again
(every event received by now), rewrite the invoice's usage lines, finalize it and ask for collection.

Idempotent: it acts only on a draft, under the subscription's and the invoice's row locks (the order renewals
use), so a second run, or a merchant who finalized the draft by hand meanwhile, finds nothing to do; what that
draft billed then stays recorded and later events become adjustments."""

from __future__ import annotations

from sqlalchemy import select

from billing.catalog.plans import get_plan, priced_plan
from billing.invoices import service as invoices
from billing.invoices.models import Invoice
from billing.scheduler.registry import TaskContext
from billing.subscriptions.models import Subscription
from billing.subscriptions.service import finalize_and_collect
from billing.usage import billing as usage_billing


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
