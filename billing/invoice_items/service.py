"""Invoice item use cases: create a pending item, list, retrieve, delete while pending; and the renewal hook
that puts a customer's pending items on its renewal draft and marks them invoiced, in that transaction (and shows
them on the renewal's preview, the upcoming invoice)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.hooks import CustomerDeleted
from billing.customers.service import get_customer
from billing.db.lookup import equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest
from billing.ids import new_id
from billing.invoice_items import schemas
from billing.invoice_items.models import InvoiceItem
from billing.invoices import service as invoices
from billing.invoices.hooks import InvoicedAlone, RenewalDraft, RenewalPreview
from billing.invoices.schemas import LineCreate
from billing.metadata import validate_metadata
from billing.test_clocks.service import clock_for, customer_clock
from plans.money import validate_currency
from webhooks.outbox import record_event


def render_invoice_item(item: InvoiceItem) -> schemas.InvoiceItem:
    return schemas.InvoiceItem(
        id=item.id,
        created_at=item.created_at,
        customer=item.customer_id,
        currency=item.currency,
        description=item.description,
        amount=item.amount,
        quantity=item.quantity,
        unit_amount_decimal=item.unit_amount_decimal,
        status=item.status,
        invoice=item.invoice_id,
        invoiced_at=item.invoiced_at,
        metadata=item.metadata_,
    )


async def get_invoice_item(
    session: AsyncSession, merchant_id: str, item_id: str, *, for_update: bool = False
) -> InvoiceItem:
    return await get_owned(
        session,
        InvoiceItem,
        item_id,
        merchant_id=merchant_id,
        prefix="ii",
        kind="invoice item",
        for_update=for_update,
    )


async def create_invoice_item(
    session: AsyncSession, merchant_id: str, params: schemas.InvoiceItemCreate
) -> InvoiceItem:
    """A pending item for the customer's next renewal invoice in its currency (the customer's by default)."""
    customer = await get_customer(session, merchant_id, params.customer, param="customer")
    currency = params.currency or customer.currency
    if currency is None:
        raise InvalidRequest(
            "This customer has no currency: pass `currency` for the item, or set the customer's currency first.",
            param="currency",
        )
    try:
        currency = validate_currency(currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="currency") from None
    if customer.currency is not None and customer.currency != currency:
        raise InvalidRequest(
            f"Customer {customer.id} is billed in {customer.currency}: an item in {currency} would never be "
            f"invoiced. Pass currency {customer.currency}.",
            param="currency",
        )
    amount, quantity, unit = invoices.line_amount(
        LineCreate(
            description=params.description,
            amount=params.amount,
            unit_amount=params.unit_amount,
            unit_amount_decimal=params.unit_amount_decimal,
            quantity=params.quantity,
        )
    )
    if amount <= 0:
        raise InvalidRequest(
            f"The item comes to {amount} minor units: an item must charge something (above 0). To credit the "
            "customer, adjust its balance or issue a credit note.",
            param="amount",
        )
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    item = InvoiceItem(
        id=new_id("ii"),
        merchant_id=merchant_id,
        customer_id=customer.id,
        currency=currency,
        description=params.description,
        amount=amount,
        quantity=quantity,
        unit_amount_decimal=unit,
        status="pending",
        metadata_=validate_metadata(params.metadata),
        created_at=clock.now(),
    )
    session.add(item)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="invoiceitem.created",
        obj=render_invoice_item(item),
        clock=clock,
    )
    return item


async def delete_invoice_item(session: AsyncSession, merchant_id: str, item_id: str) -> str:
    item = await get_invoice_item(session, merchant_id, item_id, for_update=True)
    if item.status != "pending":
        raise Conflict(
            f"Invoice item {item.id} is already on invoice {item.invoice_id}: only pending items can be "
            "deleted. Issue a credit note on that invoice instead.",
            code="invoice_item_invoiced",
        )
    await _delete(session, item, await customer_clock(session, merchant_id, item.customer_id))
    return item.id


async def _delete(session: AsyncSession, item: InvoiceItem, clock: Clock) -> None:
    rendered = render_invoice_item(item)
    await session.delete(item)
    await session.flush()
    record_event(
        session, merchant_id=item.merchant_id, event_type="invoiceitem.deleted", obj=rendered, clock=clock
    )


async def delete_items_of_deleted_customer(event: CustomerDeleted) -> None:
    """A deleted customer has no next invoice: its pending items go with it (a listener of `customer_deleted`,
    subscribed in billing/wiring.py)."""
    session, customer, clock = event.session, event.customer, event.clock
    items = await session.scalars(
        select(InvoiceItem)
        .where(InvoiceItem.customer_id == customer.id, InvoiceItem.status == "pending")
        .order_by(InvoiceItem.seq)
        .with_for_update()
    )
    for item in items.all():
        await _delete(session, item, clock)


async def list_invoice_items(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    customer: str | None = None,
    pending: bool | None = None,
) -> Page[InvoiceItem]:
    status = None if pending is None else ("pending" if pending else "invoiced")
    filters = (equals(InvoiceItem.customer_id, customer), equals(InvoiceItem.status, status))
    return await list_owned(session, InvoiceItem, merchant_id, filters, page, prefix="ii")


async def _pending_items(
    session: AsyncSession, customer_id: str, currency: str, *, lock: bool
) -> Sequence[InvoiceItem]:
    """What the customer's next renewal in `currency` bills: its pending items, oldest first; with `lock`, those
    no concurrent renewal of another subscription holds, locked."""
    stmt = InvoiceItem.pending_for(customer_id, currency)
    return (await session.scalars(stmt.with_for_update(skip_locked=True) if lock else stmt)).all()


async def invoice_pending_items(draft: RenewalDraft) -> None:
    """Put the customer's pending items in the invoice's currency on its renewal draft, oldest first, and mark
    them invoiced (locked, so a concurrent renewal of another subscription cannot take them too)."""
    session, invoice, clock = draft.session, draft.invoice, draft.clock
    items = await _pending_items(session, invoice.customer_id, invoice.currency, lock=True)
    rows = []
    for item in items:
        row = invoices.line_row(invoice, invoices.NewLine(**item.line_fields()), clock.now())
        row.metadata_ = dict(item.metadata_)
        rows.append(row)
        item.status, item.invoice_id, item.invoiced_at = "invoiced", invoice.id, clock.now()
    session.add_all(rows)
    await session.flush()
    for item in items:
        record_event(
            session,
            merchant_id=invoice.merchant_id,
            event_type="invoiceitem.updated",
            obj=render_invoice_item(item),
            clock=clock,
            previous_attributes={"status": "pending", "invoice": None, "invoiced_at": None},
        )
    draft.added += rows


async def preview_pending_items(preview: RenewalPreview) -> None:
    """The lines `invoice_pending_items` would put on the previewed renewal's draft, nothing locked or marked."""
    items = await _pending_items(preview.session, preview.customer_id, preview.currency, lock=False)
    preview.lines += [item.line_fields() for item in items]


async def customers_with_pending_items(asked: InvoicedAlone) -> None:
    if not asked.customer_ids:
        return
    found = await asked.session.scalars(
        select(InvoiceItem.customer_id).where(
            InvoiceItem.customer_id.in_(asked.customer_ids), InvoiceItem.status == "pending"
        )
    )
    asked.alone |= set(found.all())
