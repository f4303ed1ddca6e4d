"""Invoice use cases: create (with ad-hoc lines), add a line, finalize (number, totals, balance), pay out of
band, void, mark uncollectible. Each runs in the caller's transaction and writes its events there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.coupons import get_coupon, pure_coupon
from billing.catalog.tax_rates import get_tax_rate, pure_tax_rate
from billing.clock import Clock
from billing.customers.models import Customer
from billing.customers.service import get_customer, render_customer
from billing.db.lookup import get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import ApiError, Conflict, InvalidRequest
from billing.ids import new_id
from billing.invoices import hooks, hosted, schemas, states
from billing.invoices.models import CustomerBalanceTransaction, Invoice, InvoiceLine, InvoiceNumberSequence
from billing.invoices.search import InvoiceFilters, invoice_conditions
from billing.merchants.models import Merchant
from billing.metadata import validate_metadata
from billing.settings.service import issuer_details
from billing.test_clocks.service import clock_for, customer_clock
from plans import discounts, taxes
from plans.money import parse_unit_amount_decimal, round_minor, validate_currency
from plans.totals import InvoiceTotals, TaxAmount, compute_invoice_totals
from webhooks.outbox import record_event

MAX_QUANTITY = Decimal(10) ** 12
NUMBER_WIDTH = 6


def render_invoice(invoice: Invoice, lines: list[InvoiceLine]) -> schemas.Invoice:
    return schemas.Invoice(
        id=invoice.id,
        created_at=invoice.created_at,
        customer=invoice.customer_id,
        subscription=invoice.subscription_id,
        number=invoice.number,
        # The table's check constraints hold these to the values the API lists.
        status=cast(schemas.InvoiceStatus, invoice.status),
        currency=invoice.currency,
        collection_method=cast(schemas.CollectionMethod, invoice.collection_method),
        description=invoice.description,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        due_date=invoice.due_date,
        lines=[render_line(line) for line in lines],
        subtotal=invoice.subtotal,
        discount=invoice.discount,
        tax=invoice.tax,
        total=invoice.total,
        starting_balance=invoice.starting_balance,
        balance_applied=invoice.balance_applied,
        ending_balance=invoice.ending_balance,
        prepaid_credit_amount=invoice.prepaid_credit_amount or 0,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        amount_remaining=invoice.amount_remaining,
        pre_payment_credit_notes_amount=invoice.pre_payment_credit_notes_amount or 0,
        post_payment_credit_notes_amount=invoice.post_payment_credit_notes_amount or 0,
        attempt_count=invoice.attempt_count,
        next_payment_attempt=invoice.next_payment_attempt,
        paid_out_of_band=invoice.paid_out_of_band,
        billing_reason=invoice.billing_reason,
        last_payment_error=invoice.last_payment_error,
        finalized_at=invoice.finalized_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        marked_uncollectible_at=invoice.marked_uncollectible_at,
        customer_details=(
            msgspec.convert(invoice.customer_details, schemas.InvoiceCustomerDetails)
            if invoice.customer_details
            else None
        ),
        issuer_details=(
            msgspec.convert(invoice.issuer_details, schemas.InvoiceIssuerDetails)
            if invoice.issuer_details
            else None
        ),
        hosted_invoice_url=hosted.hosted_invoice_url(invoice.hosted_token),
        invoice_pdf=hosted.hosted_invoice_pdf_url(invoice.hosted_token),
        metadata=invoice.metadata_,
    )


def render_line(line: InvoiceLine) -> schemas.InvoiceLine:
    period = (
        schemas.Period(start=line.period_start, end=line.period_end)
        if line.period_start is not None and line.period_end is not None
        else None
    )
    return schemas.InvoiceLine(
        id=line.id,
        type=cast(schemas.LineType, line.type),
        description=line.description,
        quantity=line.quantity,
        unit_amount_decimal=line.unit_amount_decimal,
        amount=line.amount,
        discount_amount=line.discount_amount,
        tax_amount=line.tax_amount,
        period=period,
        details=line.details,
        metadata=line.metadata_,
    )


async def invoice_lines(session: AsyncSession, invoice_id: str) -> list[InvoiceLine]:
    return list(
        (
            await session.scalars(
                select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.seq)
            )
        ).all()
    )


async def lines_of(session: AsyncSession, invoice_ids: list[str]) -> dict[str, list[InvoiceLine]]:
    """The lines of each of these invoices, in order: one query."""
    found: dict[str, list[InvoiceLine]] = {invoice_id: [] for invoice_id in invoice_ids}
    for line in await session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id.in_(sorted(found))).order_by(InvoiceLine.seq)
    ):
        found[line.invoice_id].append(line)
    return found


async def render(session: AsyncSession, invoice: Invoice) -> schemas.Invoice:
    return render_invoice(invoice, await invoice_lines(session, invoice.id))


async def get_invoice(
    session: AsyncSession, merchant_id: str, invoice_id: str, *, for_update: bool = False
) -> Invoice:
    return await get_owned(
        session,
        Invoice,
        invoice_id,
        merchant_id=merchant_id,
        prefix="in",
        kind="invoice",
        for_update=for_update,
    )


def line_amount(line: schemas.LineCreate, param: str = "") -> tuple[int, Decimal, Decimal | None]:
    """(amount, quantity, unit price) of an ad-hoc line: an amount, or a unit price times a quantity. `param`:
    where the line sits in the request (``lines[2]``), prefixed to the fields named in errors."""

    def name(field: str) -> str:
        return f"{param}.{field}" if param else field

    quantity = line.quantity if line.quantity is not None else Decimal(1)
    exponent = quantity.as_tuple().exponent
    if (
        not quantity.is_finite()
        or quantity <= 0
        or quantity >= MAX_QUANTITY
        or (isinstance(exponent, int) and exponent < -12)
    ):
        raise InvalidRequest(
            f"{name('quantity')} must be a positive number below 10^12 with at most 12 decimals.",
            param=name("quantity"),
        )
    unit_given = [
        field for field in ("unit_amount", "unit_amount_decimal") if getattr(line, field) is not None
    ]
    if line.amount is not None and unit_given:
        raise InvalidRequest(
            f"Give either {name('amount')} or a unit price ({name('unit_amount')} with quantity), not both.",
            param=name("amount"),
        )
    if line.amount is not None:
        if line.quantity is not None:
            raise InvalidRequest(
                f"{name('quantity')} goes with a unit price; with {name('amount')} leave it out.",
                param=name("quantity"),
            )
        return line.amount, Decimal(1), None
    if len(unit_given) != 1:
        raise InvalidRequest(
            f"{param or 'An item'} needs an amount, or exactly one of unit_amount and unit_amount_decimal.",
            param=name("amount"),
        )
    unit = (
        Decimal(line.unit_amount)
        if line.unit_amount is not None
        else parse_unit_amount_decimal(line.unit_amount_decimal or "", param=name("unit_amount_decimal"))
    )
    return round_minor(unit * quantity), quantity, unit


async def _recompute_draft(
    session: AsyncSession, invoice: Invoice, lines: list[InvoiceLine] | None = None
) -> None:
    """A draft shows its totals before the customer balance, which is applied only at finalization."""
    if lines is None:
        lines = await invoice_lines(session, invoice.id)
    coupon, tax_rates = await discount_and_taxes(session, invoice)
    totals = compute_invoice_totals(
        [line.amount for line in lines], coupon, tax_rates, 0, currency=invoice.currency
    )
    invoice.subtotal, invoice.discount, invoice.tax, invoice.total = (
        totals.subtotal,
        totals.discount,
        totals.tax,
        totals.total,
    )
    invoice.amount_due = invoice.amount_remaining = max(0, totals.total)
    invoice.amount_paid = 0


async def create_invoice(session: AsyncSession, merchant_id: str, params: schemas.InvoiceCreate) -> Invoice:
    customer = await get_customer(session, merchant_id, params.customer, param="customer")
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    currency = params.currency or customer.currency
    if currency is None:
        raise InvalidRequest(
            "This customer has no currency: pass `currency` for the invoice, or set the "
            "customer's currency first.",
            param="currency",
        )
    currency = validate_currency(currency)
    if params.collection_method == "send_invoice" and params.days_until_due is None:
        raise InvalidRequest(
            "An invoice sent to the customer needs days_until_due (0 for due on receipt).",
            param="days_until_due",
        )
    if params.collection_method == "charge_automatically" and params.days_until_due is not None:
        raise InvalidRequest(
            "days_until_due applies only to collection_method=send_invoice.", param="days_until_due"
        )
    now = clock.now()
    invoice = Invoice(
        id=new_id("in"),
        merchant_id=merchant_id,
        customer_id=customer.id,
        status=states.DRAFT,
        currency=currency,
        collection_method=params.collection_method,
        days_until_due=params.days_until_due,
        description=params.description,
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        subtotal=0,
        discount=0,
        tax=0,
        total=0,
        starting_balance=0,
        balance_applied=0,
        amount_due=0,
        amount_paid=0,
        amount_remaining=0,
        attempt_count=0,
        paid_out_of_band=False,
    )
    session.add(invoice)
    await session.flush()
    for index, line in enumerate(params.lines):
        _add_line(session, invoice, line, index, clock)
    await session.flush()
    await _recompute_draft(session, invoice)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="invoice.created",
        obj=await render(session, invoice),
        clock=clock,
    )
    return invoice


def _add_line(
    session: AsyncSession, invoice: Invoice, line: schemas.LineCreate, index: int, clock: Clock
) -> None:
    amount, quantity, unit = line_amount(line, f"lines[{index}]")
    if line.period is not None and line.period.end <= line.period.start:
        raise InvalidRequest(
            f"lines[{index}].period.end must be after its start.", param=f"lines[{index}].period"
        )
    session.add(
        InvoiceLine(
            id=new_id("il"),
            merchant_id=invoice.merchant_id,
            invoice_id=invoice.id,
            type="adjustment",
            description=line.description,
            quantity=quantity,
            unit_amount_decimal=unit,
            amount=amount,
            discount_amount=0,
            tax_amount=0,
            period_start=line.period.start if line.period else None,
            period_end=line.period.end if line.period else None,
            details={},
            metadata_=validate_metadata(line.metadata, param=f"lines[{index}].metadata"),
            created_at=clock.now(),
        )
    )


async def add_line(
    session: AsyncSession, merchant_id: str, invoice_id: str, line: schemas.LineCreate
) -> Invoice:
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    if invoice.status != states.DRAFT:
        raise Conflict(
            f"Invoice {invoice.id} is {invoice.status}: lines can only be added to a draft. "
            "Create a new invoice, or a credit note to reduce this one.",
            code="invoice_not_draft",
        )
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    _add_line(session, invoice, line, 0, clock)
    await session.flush()
    await _recompute_draft(session, invoice)
    await session.flush()
    return invoice


async def next_invoice_number(session: AsyncSession, merchant_id: str, prefix: str) -> str:
    """The merchant's next number, taken under the sequence row's lock (gap-free: a rollback returns it)."""
    stmt = insert(InvoiceNumberSequence).values(merchant_id=merchant_id, next_number=2)
    number = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id"],
            set_={"next_number": InvoiceNumberSequence.next_number + 1},
        ).returning(InvoiceNumberSequence.next_number - 1)
    )
    assert number is not None
    return f"{prefix}-{number:0{NUMBER_WIDTH}d}"


async def next_invoice_numbers(session: AsyncSession, merchant_id: str, prefix: str, count: int) -> list[str]:
    """`count` consecutive numbers of the merchant in one statement (a batch of renewals), under the same row
    lock as `next_invoice_number`, so numbers stay gap-free and unique whoever else is numbering."""
    stmt = insert(InvoiceNumberSequence).values(merchant_id=merchant_id, next_number=count + 1)
    first = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id"],
            set_={"next_number": InvoiceNumberSequence.next_number + count},
        ).returning(InvoiceNumberSequence.next_number - count)
    )
    assert first is not None
    return [f"{prefix}-{number:0{NUMBER_WIDTH}d}" for number in range(first, first + count)]


async def record_balance_change(
    session: AsyncSession,
    customer: Customer,
    amount: int,
    *,
    kind: str,
    clock: Clock,
    invoice_id: str | None = None,
    currency: str | None = None,
    description: str | None = None,
    also_changed: dict[str, object] | None = None,
) -> CustomerBalanceTransaction:
    """Append one ledger entry, move `customers.balance` by it and record `customer.updated`, in the caller's
    transaction (the customer row must be locked by the caller). `also_changed`: the previous values of other
    customer fields the caller changed with the balance (they go into the event's previous_attributes)."""
    previous: dict[str, object] = {"balance": customer.balance, **(also_changed or {})}
    customer.balance += amount
    customer.updated_at = clock.now()
    entry = CustomerBalanceTransaction(
        id=new_id("cbt"),
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        type=kind,
        amount=amount,
        ending_balance=customer.balance,
        currency=currency,
        invoice_id=invoice_id,
        description=description,
        created_at=clock.now(),
    )
    session.add(entry)
    record_event(
        session,
        merchant_id=customer.merchant_id,
        event_type="customer.updated",
        obj=render_customer(customer),
        clock=clock,
        previous_attributes=previous,
    )
    return entry


@dataclass(frozen=True)
class Issuer:
    """What finalizing an invoice takes from its merchant: the number prefix (settings.invoice_prefix, INV by
    default) and the seller's details the invoice keeps."""

    prefix: str
    details: dict[str, Any]


async def invoice_issuer(session: AsyncSession, merchant_id: str) -> Issuer:
    merchant = await session.get(Merchant, merchant_id)
    assert merchant is not None  # every invoice's merchant exists (foreign key)
    prefix = (merchant.settings or {}).get("invoice_prefix")
    return Issuer(prefix if isinstance(prefix, str) and prefix else "INV", issuer_details(merchant))


async def finalize_invoice(session: AsyncSession, merchant_id: str, invoice_id: str) -> Invoice:
    """draft → open: totals with the customer balance applied, a gap-free number, the balance ledger entry;
    an invoice with nothing to pay is paid at once."""
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    finalized_status = states.transition(invoice.id, invoice.status, "finalize")
    customer = await get_customer(session, merchant_id, invoice.customer_id, for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    lines = await invoice_lines(session, invoice.id)
    coupon, tax_rates = await discount_and_taxes(session, invoice)
    totals = compute_invoice_totals(
        [line.amount for line in lines], coupon, tax_rates, customer.balance, currency=invoice.currency
    )
    now = clock.now()
    issuer = await invoice_issuer(session, merchant_id)
    number = await next_invoice_number(session, merchant_id, issuer.prefix)
    set_final_figures(invoice, lines, totals, customer, issuer, number, now)
    if totals.balance_applied:
        await record_balance_change(
            session,
            customer,
            totals.balance_applied,
            kind="applied_to_invoice",
            clock=clock,
            invoice_id=invoice.id,
            currency=invoice.currency,
        )
    await hooks.invoice_finalizing.fire(hooks.InvoiceChanged(session, invoice, clock))
    check_invariants(invoice)
    # Figures and lines are written while the invoice is still a draft; the status change comes last, after
    # which the database refuses any change to them (the guard triggers).
    await session.flush()
    invoice.status = finalized_status
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="invoice.finalized",
        obj=render_invoice(invoice, lines),
        clock=clock,
    )
    if invoice.amount_due == 0:
        await mark_paid(session, invoice, clock, action="settle")
    return invoice


@dataclass(frozen=True)
class DraftToFinalize:
    """A locked draft finalized with others (`finalize_drafts`): its lines in order, its totals with the
    customer's balance applied (a zero balance: none to record) and its customer."""

    invoice: Invoice
    lines: list[InvoiceLine]
    totals: InvoiceTotals
    customer: Customer


async def finalize_drafts(session: AsyncSession, drafts: list[DraftToFinalize], clock: Clock) -> None:
    """Finalize many drafts as `finalize_invoice` finalizes one (a batch of renewals): numbers in one block per
    merchant (gap-free, in the drafts' order), the figures and lines written while they are drafts, then every
    status with one flush, each `invoice.finalized` event in the caller's transaction. The caller leaves out
    drafts with a balance to apply, prepaid credits to burn or nothing to pay (`finalize_invoice` does those)."""
    now = clock.now()
    numbers: dict[str, list[str]] = {}
    issuers: dict[str, Issuer] = {}
    for merchant in sorted({draft.invoice.merchant_id for draft in drafts}):
        issuers[merchant] = await invoice_issuer(session, merchant)
        count = sum(1 for draft in drafts if draft.invoice.merchant_id == merchant)
        numbers[merchant] = await next_invoice_numbers(session, merchant, issuers[merchant].prefix, count)
    for draft in drafts:
        invoice = draft.invoice
        assert draft.totals.balance_applied == 0, invoice.id
        number = numbers[invoice.merchant_id].pop(0)
        set_final_figures(
            invoice, draft.lines, draft.totals, draft.customer, issuers[invoice.merchant_id], number, now
        )
        check_invariants(invoice)
    # Figures and lines are written while the invoices are drafts; the status comes last (the guard triggers).
    await session.flush()
    for draft in drafts:
        draft.invoice.status = states.transition(draft.invoice.id, draft.invoice.status, "finalize")
    await session.flush()
    for draft in drafts:
        record_event(
            session,
            merchant_id=draft.invoice.merchant_id,
            event_type="invoice.finalized",
            obj=render_invoice(draft.invoice, draft.lines),
            clock=clock,
        )


def set_final_figures(
    invoice: Invoice,
    lines: list[InvoiceLine],
    totals: InvoiceTotals,
    customer: Customer,
    issuer: Issuer,
    number: str,
    now: datetime,
) -> None:
    """What finalizing a draft sets on it and its lines, the status excepted: the figures with the customer
    balance applied, the number, the customer's and the seller's details as of now, the due date of an invoice
    sent."""
    for line, line_totals in zip(lines, totals.lines, strict=True):
        line.discount_amount = line_totals.discount_amount
        line.tax_amount = line_totals.inclusive_tax + line_totals.exclusive_tax
    invoice.number = number
    invoice.subtotal, invoice.discount, invoice.tax, invoice.total = (
        totals.subtotal,
        totals.discount,
        totals.tax,
        totals.total,
    )
    invoice.starting_balance = totals.starting_balance
    invoice.balance_applied = totals.balance_applied
    invoice.ending_balance = totals.ending_balance
    invoice.amount_due = invoice.amount_remaining = totals.amount_due
    invoice.amount_paid = 0
    invoice.finalized_at = now
    invoice.hosted_token = hosted.new_hosted_token()
    invoice.customer_details = {
        "name": customer.name,
        "email": customer.email,
        "address": customer.address,
        "tax_ids": list(customer.tax_ids or []),
    }
    invoice.issuer_details = issuer.details
    if invoice.collection_method == "send_invoice":
        invoice.due_date = now + timedelta(days=invoice.days_until_due or 0)


async def invoice_tax_by_rate(
    session: AsyncSession, invoice: Invoice, lines: list[InvoiceLine] | None = None
) -> list[tuple[str, TaxAmount]] | None:
    """The invoice's tax rate by rate (each with its rate's id), as `plans.totals` computed it at finalization:
    the same lines, coupon and rates give the same figures. None when they no longer add up to the invoice's
    tax, which is then one figure."""
    if lines is None:
        lines = await invoice_lines(session, invoice.id)
    coupon, rates = await discount_and_taxes(session, invoice)
    if not rates:
        return []
    totals = compute_invoice_totals(
        [line.amount for line in lines], coupon, rates, 0, currency=invoice.currency
    )
    if totals.tax != invoice.tax:
        return None
    return list(zip(invoice.tax_rate_ids, totals.tax_amounts, strict=True))


async def discount_and_taxes(
    session: AsyncSession, invoice: Invoice
) -> tuple[discounts.Coupon | None, list[taxes.TaxRate]]:
    """The coupon and tax rates an invoice is totalled with (`plans.totals`)."""
    coupon = None
    if invoice.coupon_id is not None:
        row = await get_coupon(session, invoice.merchant_id, invoice.coupon_id)
        coupon = pure_coupon(row)
    rates = [
        pure_tax_rate(await get_tax_rate(session, invoice.merchant_id, rate_id))
        for rate_id in invoice.tax_rate_ids
    ]
    return coupon, rates


async def tax_by_rate(session: AsyncSession, invoice: Invoice) -> list[TaxAmount]:
    """The invoice's tax at each of its rates (taxable amount and tax), as its totals were computed: the same
    lines, coupon and rates through `compute_invoice_totals` (the balance plays no part in tax)."""
    if not invoice.tax_rate_ids:
        return []
    lines = await invoice_lines(session, invoice.id)
    coupon, tax_rates = await discount_and_taxes(session, invoice)
    totals = compute_invoice_totals(
        [line.amount for line in lines], coupon, tax_rates, 0, currency=invoice.currency
    )
    return list(totals.tax_amounts)


@dataclass(frozen=True)
class NewLine:
    """A line a feature puts on an invoice (a subscription fee, usage, a proration)."""

    type: str
    description: str
    amount: int
    quantity: Decimal = Decimal(1)
    unit_amount_decimal: Decimal | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


async def create_draft(
    session: AsyncSession,
    *,
    customer: Customer,
    clock: Clock,
    currency: str,
    collection_method: str,
    days_until_due: int | None,
    lines: list[NewLine],
    billing_reason: str,
    subscription_id: str | None = None,
    subscription_period_index: int | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    coupon_id: str | None = None,
    tax_rate_ids: list[str] | None = None,
    description: str | None = None,
) -> Invoice:
    """A draft invoice with the given lines, its `invoice.created` event staged (features then finalize it)."""
    now = clock.now()
    invoice = Invoice(
        id=new_id("in"),
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        status=states.DRAFT,
        currency=currency,
        collection_method=collection_method,
        days_until_due=days_until_due,
        description=description,
        metadata_={},
        created_at=now,
        subtotal=0,
        discount=0,
        tax=0,
        total=0,
        starting_balance=0,
        balance_applied=0,
        amount_due=0,
        amount_paid=0,
        amount_remaining=0,
        attempt_count=0,
        paid_out_of_band=False,
        billing_reason=billing_reason,
        subscription_id=subscription_id,
        subscription_period_index=subscription_period_index,
        period_start=period_start,
        period_end=period_end,
        coupon_id=coupon_id,
        tax_rate_ids=list(tax_rate_ids or []),
    )
    session.add(invoice)
    await session.flush()
    rows = [line_row(invoice, line, now) for line in lines]
    session.add_all(rows)
    if billing_reason == "subscription_cycle":
        draft = hooks.RenewalDraft(session, invoice, clock)
        await hooks.renewal_draft.fire(draft)
        rows += draft.added
    await _recompute_draft(session, invoice, rows)
    await session.flush()
    record_event(
        session,
        merchant_id=customer.merchant_id,
        event_type="invoice.created",
        obj=render_invoice(invoice, rows),
        clock=clock,
    )
    return invoice


def line_row(invoice: Invoice, line: NewLine, now: datetime) -> InvoiceLine:
    return InvoiceLine(
        id=new_id("il"),
        merchant_id=invoice.merchant_id,
        invoice_id=invoice.id,
        type=line.type,
        description=line.description,
        quantity=line.quantity,
        unit_amount_decimal=line.unit_amount_decimal,
        amount=line.amount,
        discount_amount=0,
        tax_amount=0,
        period_start=line.period_start,
        period_end=line.period_end,
        details=line.details,
        metadata_={},
        created_at=now,
    )


async def replace_draft_lines(
    session: AsyncSession,
    invoice: Invoice,
    *,
    replaced: Callable[[InvoiceLine], bool],
    lines: list[NewLine],
    clock: Clock,
) -> None:
    """On a locked draft, swap the lines `replaced` selects for `lines` (which go last) and recompute the
    totals; the other lines stay as they are."""
    if invoice.status != states.DRAFT:
        raise Conflict(f"Invoice {invoice.id} is {invoice.status}: only a draft's lines can change.")
    current = await invoice_lines(session, invoice.id)
    gone = [line.id for line in current if replaced(line)]
    if gone:
        await session.execute(delete(InvoiceLine).where(InvoiceLine.id.in_(gone)))
    rows = [line_row(invoice, line, clock.now()) for line in lines]
    session.add_all(rows)
    await session.flush()
    await _recompute_draft(session, invoice, [line for line in current if line.id not in gone] + rows)
    await session.flush()


def check_invariants(invoice: Invoice) -> None:
    """SPEC §5, checked on every finalization and payment (the database checks them again)."""
    problems = []
    if invoice.subtotal - invoice.discount + invoice.tax != invoice.total:
        problems.append("subtotal - discount + tax != total")
    if invoice.amount_due != max(0, invoice.total + invoice.starting_balance) - (
        invoice.prepaid_credit_amount or 0
    ):
        problems.append("amount_due != total - starting balance applied - prepaid credits")
    if invoice.amount_paid + invoice.amount_remaining != invoice.amount_due:
        problems.append("amount_paid + amount_remaining != amount_due")
    if problems:
        raise ApiError(
            f"Invoice {invoice.id} failed its invariants ({'; '.join(problems)}); nothing was saved."
        )


async def mark_paid(session: AsyncSession, invoice: Invoice, clock: Clock, *, action: str = "pay") -> None:
    """open/uncollectible → paid: what remains is paid now (by a payment, out of band, or nothing was due)."""
    await mark_paid_many(session, [invoice], clock, action=action)


async def mark_paid_many(
    session: AsyncSession, paid: list[Invoice], clock: Clock, *, action: str = "pay"
) -> None:
    """`mark_paid` for many invoices at once (a collection batch's): their rows written with one flush, their
    lines read with one query, every `invoice.paid` event in the caller's transaction, and the `invoice_paid`
    listeners told once for the set."""
    if not paid:
        return
    for invoice in paid:
        invoice.status = states.transition(invoice.id, invoice.status, action)
        invoice.amount_paid += invoice.amount_remaining
        invoice.amount_remaining = 0
        invoice.paid_at = clock.now()
        invoice.next_payment_attempt = None
        check_invariants(invoice)
    await session.flush()
    lines = await lines_of(session, [invoice.id for invoice in paid])
    for invoice in paid:
        record_event(
            session,
            merchant_id=invoice.merchant_id,
            event_type="invoice.paid",
            obj=render_invoice(invoice, lines[invoice.id]),
            clock=clock,
        )
    await hooks.invoice_paid.fire(hooks.InvoicesPaid(session, paid, clock))


async def pay_invoice_out_of_band(session: AsyncSession, merchant_id: str, invoice_id: str) -> Invoice:
    """Record that the customer paid outside the engine (bank transfer, cash): open or uncollectible → paid."""
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    invoice.paid_out_of_band = True
    await mark_paid(session, invoice, clock, action="pay")
    return invoice


async def void_invoice(session: AsyncSession, merchant_id: str, invoice_id: str) -> Invoice:
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    invoice.status = states.transition(invoice.id, invoice.status, "void")
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    invoice.voided_at = clock.now()
    invoice.next_payment_attempt = None
    if invoice.balance_applied:
        # The balance this invoice consumed (or added) goes back to the customer.
        customer = await get_customer(session, merchant_id, invoice.customer_id, for_update=True)
        await record_balance_change(
            session,
            customer,
            -invoice.balance_applied,
            kind="invoice_voided",
            clock=clock,
            invoice_id=invoice.id,
            currency=invoice.currency,
        )
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="invoice.voided",
        obj=await render(session, invoice),
        clock=clock,
    )
    await hooks.invoice_closed_unpaid.fire(hooks.InvoiceChanged(session, invoice, clock))
    return invoice


async def mark_uncollectible(session: AsyncSession, merchant_id: str, invoice_id: str) -> Invoice:
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    invoice.status = states.transition(invoice.id, invoice.status, "mark_uncollectible")
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    invoice.marked_uncollectible_at = clock.now()
    invoice.next_payment_attempt = None
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="invoice.marked_uncollectible",
        obj=await render(session, invoice),
        clock=clock,
    )
    await hooks.invoice_closed_unpaid.fire(hooks.InvoiceChanged(session, invoice, clock))
    return invoice


async def delete_draft(session: AsyncSession, merchant_id: str, invoice_id: str) -> str:
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    if invoice.status != states.DRAFT:
        raise Conflict(
            f"Invoice {invoice.id} is {invoice.status}: only drafts can be deleted; void an open "
            "invoice instead.",
            code="invoice_not_draft",
        )
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    rendered = await render(session, invoice)
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
    await session.delete(invoice)
    await session.flush()
    record_event(session, merchant_id=merchant_id, event_type="invoice.deleted", obj=rendered, clock=clock)
    return invoice.id


async def list_invoices(
    session: AsyncSession, merchant_id: str, page: PageRequest, *, filters: InvoiceFilters | None = None
) -> Page[Invoice]:
    return await list_owned(
        session, Invoice, merchant_id, invoice_conditions(filters or InvoiceFilters()), page, prefix="in"
    )
