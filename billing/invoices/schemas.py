"""Invoices as the API shows them, and what create, add-line and pay accept."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from billing.api.schemas import ListResponse
from billing.customers.schemas import Address, Metadata, TaxId

CollectionMethod = Literal["charge_automatically", "send_invoice"]
LineType = Literal["subscription", "usage", "proration", "adjustment"]
# billing.invoices.states.STATUSES, as the API shows them.
InvoiceStatus = Literal["draft", "open", "paid", "void", "uncollectible"]


class Period(msgspec.Struct, kw_only=True):
    """A time range: from `start` (included) to `end` (excluded)."""

    start: datetime
    end: datetime


class InvoiceLine(msgspec.Struct, kw_only=True):
    """One line of an invoice: a subscription period, a proration, usage or a one-off item, with its amount and tax."""

    id: str
    object: Literal["line_item"] = "line_item"
    type: LineType
    description: str
    quantity: Decimal
    unit_amount_decimal: Decimal | None
    amount: int
    discount_amount: int
    tax_amount: int
    period: Period | None
    details: dict[str, Any]
    metadata: dict[str, str]


class InvoiceCustomerDetails(msgspec.Struct, kw_only=True):
    """Who the invoice was issued to, as the customer was when it was finalized (later changes to the customer
    show on later invoices only)."""

    name: str | None
    email: str | None
    address: Address | None
    tax_ids: list[TaxId]


class InvoiceIssuerDetails(msgspec.Struct, kw_only=True):
    """Who issued the invoice: the merchant's business profile (settings.business) when it was finalized."""

    legal_name: str
    address: Address | None
    tax_ids: list[TaxId]
    invoice_footer: str | None
    payment_instructions: str | None


class Invoice(msgspec.Struct, kw_only=True):
    """An invoice: lines, totals, the amount due and how it is collected. draft → open → paid, void or uncollectible."""

    id: str
    object: Literal["invoice"] = "invoice"
    created_at: datetime
    customer: str
    subscription: str | None
    number: str | None
    status: InvoiceStatus
    currency: str
    collection_method: CollectionMethod
    description: str | None
    period_start: datetime | None
    period_end: datetime | None
    due_date: datetime | None
    lines: list[InvoiceLine]
    subtotal: int
    discount: int
    tax: int
    total: int
    starting_balance: int
    balance_applied: int
    ending_balance: int | None
    prepaid_credit_amount: Annotated[
        int,
        Meta(
            description="Prepaid credits of the customer's wallet in the invoice's currency burned at "
            "finalization, after the balance: taken off the amount due before any card is charged."
        ),
    ] = 0
    amount_due: int
    amount_paid: int
    amount_remaining: int
    pre_payment_credit_notes_amount: Annotated[
        int,
        Meta(
            description="What credit notes issued while the invoice was open took off the amount due; counted in "
            "amount_paid (settled by credit, not by money)."
        ),
    ] = 0
    post_payment_credit_notes_amount: Annotated[
        int,
        Meta(description="What credit notes issued after payment gave back (refund, balance, out of band)."),
    ] = 0
    attempt_count: int
    next_payment_attempt: datetime | None
    paid_out_of_band: bool
    billing_reason: str
    last_payment_error: dict[str, Any] | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    customer_details: InvoiceCustomerDetails | None = None
    issuer_details: InvoiceIssuerDetails | None = None
    hosted_invoice_url: Annotated[
        str | None,
        Meta(
            description="The invoice page for the customer (no key needed; the link is the secret). Null on drafts."
        ),
    ]
    invoice_pdf: Annotated[str | None, Meta(description="The invoice as a PDF, by the same secret link.")]
    metadata: dict[str, str]


class InvoiceList(ListResponse[Invoice]):
    pass


Amount = Annotated[int, Meta(ge=-(10**15), le=10**15, description="Minor units of the invoice currency.")]


class LineCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An ad-hoc item: give `amount`, or a unit price (`unit_amount` or `unit_amount_decimal`) and `quantity`."""

    description: Annotated[str, Meta(min_length=1, max_length=500)]
    amount: Amount | None = None
    unit_amount: Amount | None = None
    unit_amount_decimal: str | None = None
    quantity: Annotated[Decimal, Meta(description="Defaults to 1.")] | None = None
    period: Period | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class InvoiceCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A one-off invoice for a customer: its lines and how it is collected; created as a draft."""

    customer: Annotated[str, Meta(max_length=64)]
    currency: Annotated[str, Meta(min_length=3, max_length=3)] | None = None
    collection_method: CollectionMethod = "charge_automatically"
    days_until_due: Annotated[int, Meta(ge=0, le=365)] | None = None
    description: Annotated[str, Meta(max_length=2000)] | None = None
    lines: Annotated[list[LineCreate], Meta(max_length=250)] = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)


class InvoicePay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Charge `payment_method` (default: the customer's), or record a payment made outside the engine."""

    paid_out_of_band: bool = False
    payment_method: Annotated[str, Meta(max_length=64)] | None = None
