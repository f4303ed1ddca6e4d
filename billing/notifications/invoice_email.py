"""Sending an invoice to its customer by email (Stripe's `POST /v1/invoices/{id}/send`), from the API or the
console: the email is queued in the caller's transaction like every customer email, and each request sends it
once more (a repeated request with the same key queues nothing new)."""

from __future__ import annotations

import hashlib

from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.models import Customer
from billing.errors import Conflict, InvalidRequest
from billing.ids import random_token
from billing.invoices import states
from billing.invoices.documents import customer_zone, format_amount, format_local_date
from billing.invoices.hosted import hosted_invoice_pdf_url, hosted_invoice_url
from billing.invoices.models import Invoice
from billing.invoices.service import get_invoice
from billing.merchants.service import merchant_name
from billing.notifications import templates
from billing.notifications.emails import queue_email
from billing.test_clocks.service import customer_clock

INVOICE = "invoice"
SENDABLE = (states.OPEN, states.PAID, states.UNCOLLECTIBLE)


def _dedupe_key(invoice_id: str, request_key: str | None) -> str:
    suffix = hashlib.sha256(request_key.encode()).hexdigest()[:32] if request_key else random_token(24)
    return f"{INVOICE}:{invoice_id}:{suffix}"


async def send_invoice_email(
    session: AsyncSession, merchant_id: str, invoice_id: str, *, request_key: str | None = None
) -> tuple[Invoice, str | None]:
    """Queue the invoice's email to its customer; (the invoice, the email id, None when `request_key` was already
    used for this invoice). A draft has no page to link to yet and a void invoice asks nothing: both refused."""
    invoice = await get_invoice(session, merchant_id, invoice_id)
    if invoice.status not in SENDABLE:
        raise Conflict(
            f"Invoice {invoice.id} is {invoice.status}: only open, paid or uncollectible invoices can be sent"
            + (" (finalize it first)." if invoice.status == states.DRAFT else "."),
            code="invoice_status_conflict",
        )
    customer = await session.get(Customer, invoice.customer_id)
    assert customer is not None  # foreign key
    if not customer.email or customer.deleted_at is not None:
        raise InvalidRequest(
            f"Customer {customer.id} has no email address: set one (PATCH /v1/customers/{customer.id}) and send "
            "again.",
            code="customer_no_email",
        )
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    locale = customer.locale
    url = hosted_invoice_url(invoice.hosted_token)
    assert url is not None  # every finalized invoice has its page
    owed = invoice.amount_remaining if invoice.status != states.PAID else invoice.total
    rendered = templates.invoice_issued(
        locale=locale,
        merchant=await merchant_name(session, merchant_id),
        customer_name=customer.name,
        number=invoice.number or invoice.id,
        status=invoice.status,
        amount=format_amount(owed, invoice.currency, locale),
        due_date=(
            format_local_date(invoice.due_date, customer_zone(customer.timezone), locale)
            if invoice.due_date is not None
            else None
        ),
        automatic=invoice.collection_method == "charge_automatically",
        invoice_url=url,
        pdf_url=hosted_invoice_pdf_url(invoice.hosted_token),
    )
    email_id = await queue_email(
        session,
        customer=customer,
        kind=INVOICE,
        rendered=rendered,
        dedupe_key=_dedupe_key(invoice.id, request_key),
        clock=clock,
    )
    return invoice, email_id
