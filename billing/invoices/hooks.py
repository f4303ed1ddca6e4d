"""What other features do when an invoice gets paid or its payment fails (subscriptions move their status,
dunning schedules retries). Registered at import by those features; invoices import none of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.invoices.models import Invoice

InvoiceHook = Callable[[AsyncSession, Invoice, Clock], Awaitable[None]]

ON_PAID: list[InvoiceHook] = []
ON_PAYMENT_FAILED: list[InvoiceHook] = []
# An open invoice closed without payment by the merchant (voided, or marked uncollectible).
ON_CLOSED_UNPAID: list[InvoiceHook] = []


async def invoice_paid(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_PAID:
        await hook(session, invoice, clock)


async def invoice_payment_failed(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_PAYMENT_FAILED:
        await hook(session, invoice, clock)


async def invoice_closed_unpaid(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_CLOSED_UNPAID:
        await hook(session, invoice, clock)
