"""What other features do when an invoice gets paid or its payment fails (subscriptions move their status,
dunning schedules retries). Registered at import by those features; invoices import none of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.invoices.models import Invoice, InvoiceLine

InvoiceHook = Callable[[AsyncSession, Invoice, Clock], Awaitable[None]]

ON_PAID: list[InvoiceHook] = []
ON_PAYMENT_FAILED: list[InvoiceHook] = []
# An open invoice closed without payment by the merchant (voided, or marked uncollectible).
ON_CLOSED_UNPAID: list[InvoiceHook] = []
# Run by finalization once the figures and the customer balance are set, before the invariants are checked and
# the status changes: a hook may take prepaid credits off the amount due (billing.wallets), in the same
# transaction, with the customer row locked.
ON_FINALIZING: list[InvoiceHook] = []
# Run by `create_draft` on a subscription's renewal draft, before its totals: a hook may add lines to it (the
# customer's pending invoice items, billing.invoice_items) and returns the rows it added to the session.
DraftLines = Callable[[AsyncSession, Invoice, Clock], Awaitable[list[InvoiceLine]]]
ON_RENEWAL_DRAFT: list[DraftLines] = []
# Asked by the renewal batch which of these customers' renewals must be invoiced one by one (through
# ON_RENEWAL_DRAFT and ON_FINALIZING), because a hook has something to add or apply to them.
InvoicedAlone = Callable[[AsyncSession, set[str]], Awaitable[set[str]]]
INVOICED_ALONE: list[InvoicedAlone] = []


async def invoice_paid(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_PAID:
        await hook(session, invoice, clock)


async def invoice_payment_failed(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_PAYMENT_FAILED:
        await hook(session, invoice, clock)


async def invoice_closed_unpaid(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_CLOSED_UNPAID:
        await hook(session, invoice, clock)


async def invoice_finalizing(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    for hook in ON_FINALIZING:
        await hook(session, invoice, clock)


async def renewal_draft_lines(session: AsyncSession, invoice: Invoice, clock: Clock) -> list[InvoiceLine]:
    added: list[InvoiceLine] = []
    for hook in ON_RENEWAL_DRAFT:
        added += await hook(session, invoice, clock)
    return added


async def customers_invoiced_alone(session: AsyncSession, customer_ids: set[str]) -> set[str]:
    """The customers among `customer_ids` whose renewals a hook must see one by one."""
    alone: set[str] = set()
    for ask in INVOICED_ALONE:
        alone |= await ask(session, customer_ids)
    return alone
