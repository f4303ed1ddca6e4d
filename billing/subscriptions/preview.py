"""What a plan or quantity change would do, before it is made: the credit for unused time, the charge, what is
due today, and the next invoice (Stripe's upcoming-invoice preview of a change).

The preview is the change itself, made by `change_subscription` inside a SAVEPOINT and rolled back: the same
code decides the figures, so the preview cannot drift from what confirming does. Nothing is written or
charged (charges run after commit, and this never commits); the rows it locked stay locked until the caller's
transaction ends, and the ORM objects it touched are expired: use a session of its own, or reload afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.models import Customer
from billing.errors import Conflict
from billing.invoices.models import Invoice, InvoiceLine
from billing.subscriptions import schemas, states
from billing.subscriptions.models import WITH_ITEMS, PendingInvoiceItem, Subscription
from billing.subscriptions.service import change_subscription, get_subscription, upcoming_invoice


@dataclass(frozen=True)
class PreviewLine:
    """A line the change makes: on an invoice now (`now`), or pending for the next invoice."""

    type: str
    description: str
    amount: int
    now: bool
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class ChangePreview:
    currency: str
    plan: str
    quantity: int
    lines: tuple[PreviewLine, ...]
    # The sum of the credits (<= 0) and of the charges (>= 0) among those lines.
    credit: int
    charge: int
    # The invoice the change makes now, if any: its amount due after the customer's balance, how it is paid.
    invoiced_now: bool
    due_today: int
    collection_method: str | None
    # The next renewal invoice after the change, or None when the subscription will not renew.
    next_invoice_at: datetime | None
    next_invoice_amount: int | None
    # The customer's balance after the change (negative: credit held).
    balance_after: int
    in_trial: bool
    new_cycle: bool


async def _pending_ids(session: AsyncSession, subscription_id: str) -> set[str]:
    rows = await session.scalars(
        select(PendingInvoiceItem.id).where(PendingInvoiceItem.subscription_id == subscription_id)
    )
    return set(rows.all())


async def preview_change(
    session: AsyncSession, merchant_id: str, subscription_id: str, params: schemas.SubscriptionChange
) -> ChangePreview:
    """The figures of `change_subscription(params)` made now, without making it (see the module's notes)."""
    savepoint = await session.begin_nested()
    try:
        sub = await get_subscription(session, merchant_id, subscription_id, for_update=True)
        in_trial = sub.status == states.TRIALING
        latest_before, anchor_before = sub.latest_invoice_id, sub.billing_cycle_anchor
        pending_before = await _pending_ids(session, sub.id)
        await change_subscription(session, merchant_id, subscription_id, params)
        changed = await session.scalar(
            select(Subscription).where(Subscription.id == subscription_id).options(WITH_ITEMS)
        )
        assert changed is not None
        sub = changed
        lines: list[PreviewLine] = []
        invoice = None
        if sub.latest_invoice_id != latest_before and sub.latest_invoice_id is not None:
            invoice = await session.get(Invoice, sub.latest_invoice_id)
            invoice_lines = await session.scalars(
                select(InvoiceLine)
                .where(InvoiceLine.invoice_id == sub.latest_invoice_id)
                .order_by(InvoiceLine.seq)
            )
            lines += [
                PreviewLine(li.type, li.description, li.amount, True, li.period_start, li.period_end)
                for li in invoice_lines
            ]
        pending = await session.scalars(
            select(PendingInvoiceItem)
            .where(PendingInvoiceItem.subscription_id == sub.id)
            .order_by(PendingInvoiceItem.seq)
        )
        lines += [
            PreviewLine(item.type, item.description, item.amount, False, item.period_start, item.period_end)
            for item in pending
            if item.id not in pending_before
        ]
        next_at: datetime | None = None
        next_amount: int | None = None
        try:
            upcoming = await upcoming_invoice(session, merchant_id, sub.id)
            next_at, next_amount = upcoming.period_start, upcoming.amount_due
        except Conflict:
            pass
        balance, currency = (
            await session.execute(
                select(Customer.balance, Customer.currency).where(Customer.id == sub.customer_id)
            )
        ).one()
        preview = ChangePreview(
            currency=str(currency),
            plan=sub.plan_id,
            quantity=sub.quantity,
            lines=tuple(lines),
            credit=sum(line.amount for line in lines if line.type == "proration" and line.amount < 0),
            charge=sum(line.amount for line in lines if line.amount > 0),
            invoiced_now=invoice is not None,
            due_today=invoice.amount_due if invoice is not None else 0,
            collection_method=invoice.collection_method if invoice is not None else None,
            next_invoice_at=next_at,
            next_invoice_amount=next_amount,
            balance_after=int(balance or 0),
            in_trial=in_trial,
            new_cycle=sub.billing_cycle_anchor != anchor_before,
        )
    finally:
        await savepoint.rollback()
    return preview
