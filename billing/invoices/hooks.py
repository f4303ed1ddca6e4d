"""The hook points invoices fire (billing/hooks.py): an invoice got paid, or closed unpaid; a charge of it failed;
a collection attempt is about to charge. Subscriptions move their status and dunning schedules retries by
listening (subscribed in billing/wiring.py); invoices import neither."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.hooks import Hook
from billing.invoices.models import Invoice, InvoiceLine
from billing.payments.models import Payment

# Who asked for a collection attempt (the `source` of an `invoice.collect` task). Dunning counts only the first
# automatic charge and its own scheduled retries as attempts; a charge the customer or merchant asks for, or one a
# new payment method triggers, is extra.
AUTOMATIC, RETRY, REQUEST, PAYMENT_METHOD = "automatic", "retry", "request", "payment_method_added"


@dataclass(frozen=True)
class InvoiceChanged:
    session: AsyncSession
    invoice: Invoice
    clock: Clock


@dataclass(frozen=True)
class InvoicesPaid:
    """Invoices just paid, in one transaction: one (`mark_paid`), or a collection batch's (`mark_paid_many`), so
    that listeners read and lock what they need for all of them with one query."""

    session: AsyncSession
    invoices: list[Invoice]
    clock: Clock


@dataclass
class PaymentFailure:
    """A collection attempt of `invoice` took no money. Fired twice by invoice collection: on `payment_failing`
    before `invoice.payment_failed` is recorded (the owner of retries answers `next_attempt_at` and
    `decline_class`, and may keep its `decision` for itself), then on `invoice_payment_failed` after it."""

    session: AsyncSession
    invoice: Invoice
    clock: Clock
    attempt: int
    reason: str
    message: str | None
    payment: Payment | None
    source: str
    # Answers of the `payment_failing` listeners.
    decline_class: str | None = None
    next_attempt_at: datetime | None = None
    decision: object | None = None


@dataclass
class CollectionStarting:
    """A collection attempt of an open invoice is about to charge. A listener may refuse it (`skip`, e.g. a
    stale scheduled retry) or say which payment method to charge."""

    session: AsyncSession
    invoice: Invoice
    clock: Clock
    source: str
    payload: dict[str, Any]
    payment_method: str | None
    skip: bool = False


@dataclass
class RenewalDraft:
    """A subscription's renewal draft, before its totals: listeners add lines to it (the customer's pending
    invoice items, billing.invoice_items) and append the rows they added to `added`."""

    session: AsyncSession
    invoice: Invoice
    clock: Clock
    added: list[InvoiceLine] = field(default_factory=list)


@dataclass
class RenewalPreview:
    """A subscription's next renewal, previewed (its upcoming invoice), nothing written: listeners of
    `renewal_draft` append here the lines they would add to the draft, each as the fields of an invoice line
    (billing.invoices.service.NewLine), in the order they would add them."""

    session: AsyncSession
    customer_id: str
    currency: str
    lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class InvoicedAlone:
    """Asked by the renewal batch: which of `customer_ids` must have their renewals invoiced one by one (through
    `renewal_draft` and `invoice_finalizing`), because a listener has something to add or apply to them; listeners
    add those to `alone`."""

    session: AsyncSession
    customer_ids: set[str]
    alone: set[str] = field(default_factory=set)


@dataclass
class InvoiceEstimate:
    """An invoice not made yet (a subscription's upcoming invoice) whose amount due after the customer balance is
    `amount_due`, to be finalized at `at`: listeners answer what finalization would take off it the way they do
    on `invoice_finalizing` (billing.wallets: the prepaid credits it would burn), reading only."""

    session: AsyncSession
    customer_id: str
    currency: str
    amount_due: int
    at: datetime
    prepaid_credit_amount: int = 0


invoice_paid: Hook[InvoicesPaid] = Hook("invoice_paid")
# An open invoice closed without payment by the merchant (voided, or marked uncollectible).
invoice_closed_unpaid: Hook[InvoiceChanged] = Hook("invoice_closed_unpaid")
payment_failing: Hook[PaymentFailure] = Hook("payment_failing")
invoice_payment_failed: Hook[PaymentFailure] = Hook("invoice_payment_failed")
collection_starting: Hook[CollectionStarting] = Hook("collection_starting")
# Fired by finalization once the figures and the customer balance are set, before the invariants are checked and
# the status changes: a listener may take prepaid credits off the amount due (billing.wallets), in the same
# transaction, with the customer row locked.
invoice_finalizing: Hook[InvoiceChanged] = Hook("invoice_finalizing")
# Fired by the upcoming invoice: what finalization would apply (prepaid credits), estimated without writing.
invoice_estimating: Hook[InvoiceEstimate] = Hook("invoice_estimating")
renewal_draft: Hook[RenewalDraft] = Hook("renewal_draft")
renewal_preview: Hook[RenewalPreview] = Hook("renewal_preview")
renewals_invoiced_alone: Hook[InvoicedAlone] = Hook("renewals_invoiced_alone")
