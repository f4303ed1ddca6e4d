"""Credit notes: issue one on a finalized invoice, void one, read them. Each runs in the caller's transaction and
writes its events there; the one outside call (a refund through the gateway) is made between two of the caller's
transactions (`_refund`), so the request holds no pooled connection while the gateway thinks.

Rules of money, as Stripe's credit notes:
- On an **open** (or uncollectible) invoice a credit note is *pre-payment*: it takes its amount off what is
  still owed. The invoice's figures are frozen at finalization (a trigger), so `amount_due` stays; the credit
  moves from `amount_remaining` to `amount_paid` (settled by credit) and is summed in
  `pre_payment_credit_notes_amount`. `amount_paid + amount_remaining = amount_due` keeps holding, and an invoice
  whose remaining amount reaches zero is paid (the "pay" transition, `invoice.paid`, the paid hooks).
- On a **paid** invoice it is *post-payment*: its amount is split between a refund to the payment that paid the
  invoice (`refund_amount`), a credit to the customer balance (`credit_amount`, one ledger entry) and money given
  back outside the engine (`out_of_band_amount`), summed in `post_payment_credit_notes_amount`.
- All credit notes of an invoice together never exceed its total; a pre-payment one never exceeds what remains;
  a refund never exceeds what is left to refund on the payment. The invoice row's lock serializes credit notes
  of one invoice, so concurrent ones cannot together break a bound (the database CHECKs them again); across a
  refund's gateway call, where the lock is released, the pending refund stands in for it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.common import decimal_text
from billing.clock import Clock
from billing.credit_notes import schemas
from billing.credit_notes.models import CreditNote, CreditNoteLine
from billing.customers.models import Customer
from billing.db.lookup import equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import BillingError, Conflict, IdempotencyError, InvalidRequest, Unprocessable, not_found
from billing.ids import is_valid_id, new_id
from billing.invoices import states
from billing.invoices.models import Invoice, InvoiceLine
from billing.invoices.service import check_invariants, invoice_tax_by_rate, mark_paid, record_balance_change
from billing.invoices.service import render as render_invoice
from billing.metadata import validate_metadata
from billing.payments.models import Payment, Refund
from billing.payments.refunds import (
    RefundOrder,
    RefundToSend,
    begin_refund,
    create_refund,
    finish_refund,
    refundable_amount,
    send_refund,
)
from billing.services import Services
from billing.test_clocks.service import clock_for, customer_clock
from plans.totals import credited_tax
from webhooks.outbox import record_event

# Commits the caller's transaction and runs a block outside it (a request's `ctx.committed`).
Checkpoint = Callable[[], AbstractAsyncContextManager[None]]

# How long a credit note waits for another one of its invoice whose refund is at the gateway.
WAIT_FOR_REFUND_SECONDS = 20

# Refunds know Stripe's three refund reasons; a credit note's own reasons map onto them.
REFUND_REASONS = {"duplicate": "duplicate", "fraudulent": "fraudulent"}


def render_credit_note(note: CreditNote, lines: list[CreditNoteLine]) -> schemas.CreditNote:
    post = note.type == "post_payment"
    taxes = note.tax_amounts or []  # a note not yet flushed has no column defaults
    return schemas.CreditNote(
        id=note.id,
        created_at=note.created_at,
        number=note.number,
        invoice=note.invoice_id,
        customer=note.customer_id,
        currency=note.currency,
        status=note.status,  # type: ignore[arg-type]
        type=note.type,  # type: ignore[arg-type]
        amount=note.amount,
        pre_payment_amount=0 if post else note.amount,
        post_payment_amount=note.amount if post else 0,
        refund_amount=note.refund_amount,
        refund=note.refund_id,
        credit_amount=note.credit_amount,
        customer_balance_transaction=note.customer_balance_transaction_id,
        out_of_band_amount=note.out_of_band_amount,
        tax_amounts=[schemas.CreditNoteTaxAmount(**share) for share in taxes],
        total_excluding_tax=note.amount - sum(share["amount"] for share in taxes),
        reason=note.reason,  # type: ignore[arg-type]
        memo=note.memo,
        lines=[
            schemas.CreditNoteLine(
                id=line.id,
                invoice_line=line.invoice_line_id,
                description=line.description,
                amount=line.amount,
            )
            for line in lines
        ],
        voided_at=note.voided_at,
        metadata=note.metadata_,
    )


async def credit_note_lines(session: AsyncSession, credit_note_id: str) -> list[CreditNoteLine]:
    return list(
        (
            await session.scalars(
                select(CreditNoteLine)
                .where(CreditNoteLine.credit_note_id == credit_note_id)
                .order_by(CreditNoteLine.seq)
            )
        ).all()
    )


async def render_note(session: AsyncSession, note: CreditNote) -> schemas.CreditNote:
    return render_credit_note(note, await credit_note_lines(session, note.id))


async def get_credit_note(
    session: AsyncSession, merchant_id: str, credit_note_id: str, *, for_update: bool = False
) -> CreditNote:
    return await get_owned(
        session,
        CreditNote,
        credit_note_id,
        merchant_id=merchant_id,
        prefix="cn",
        kind="credit note",
        for_update=for_update,
    )


async def list_credit_notes(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    invoice: str | None = None,
    customer: str | None = None,
) -> Page[CreditNote]:
    filters = (equals(CreditNote.invoice_id, invoice), equals(CreditNote.customer_id, customer))
    return await list_owned(session, CreditNote, merchant_id, filters, page, prefix="cn")


@dataclass(frozen=True)
class _Line:
    invoice_line_id: str | None
    description: str
    amount: int


@dataclass(frozen=True)
class _Split:
    refund: int
    credit: int
    out_of_band: int


async def _locked_invoice(session: AsyncSession, merchant_id: str, invoice_id: str) -> Invoice:
    if not is_valid_id(invoice_id, "in"):
        raise not_found("invoice", invoice_id, "invoice")
    invoice = await session.scalar(
        select(Invoice)
        .where(Invoice.id == invoice_id, Invoice.merchant_id == merchant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if invoice is None:
        raise not_found("invoice", invoice_id, "invoice")
    return invoice


async def _credited_per_invoice_line(session: AsyncSession, invoice_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(CreditNoteLine.invoice_line_id, func.sum(CreditNoteLine.amount))
        .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
        .where(
            CreditNote.invoice_id == invoice_id,
            CreditNote.status == "issued",
            CreditNoteLine.invoice_line_id.is_not(None),
        )
        .group_by(CreditNoteLine.invoice_line_id)
    )
    return {line_id: int(total) for line_id, total in rows.all() if line_id is not None}


async def _lines(session: AsyncSession, invoice: Invoice, params: schemas.CreditNoteCreate) -> list[_Line]:
    """The credit note's lines: those given (checked against the invoice's lines), or none for a bare amount."""
    if (params.amount is None) == (params.lines is None):
        raise InvalidRequest(
            "Give the credit note's amount, or its lines (each with an amount), but not both.", param="amount"
        )
    if params.lines is None:
        return []
    if not params.lines:
        raise InvalidRequest("lines needs at least one line (or give amount instead).", param="lines")
    invoice_lines = {
        line.id: line
        for line in (
            await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
        ).all()
    }
    credited = await _credited_per_invoice_line(session, invoice.id)
    lines = []
    for index, given in enumerate(params.lines):
        description = given.description
        if given.invoice_line is not None:
            billed = invoice_lines.get(given.invoice_line)
            if billed is None:
                raise InvalidRequest(
                    f"{given.invoice_line!r} is not a line of invoice {invoice.id}; pass the id of one of its "
                    "lines (il_...), or leave invoice_line out for a credit of its own.",
                    param=f"lines[{index}].invoice_line",
                )
            left = billed.amount - credited.get(billed.id, 0)
            if given.amount > left:
                raise InvalidRequest(
                    f"lines[{index}].amount {given.amount} is more than what is left to credit on line "
                    f"{billed.id}: {max(left, 0)} {invoice.currency} (billed {billed.amount}).",
                    code="credit_note_amount_too_large",
                    param=f"lines[{index}].amount",
                )
            credited[billed.id] = credited.get(billed.id, 0) + given.amount
            description = description or billed.description
        lines.append(_Line(given.invoice_line, description or "Credit", given.amount))
    return lines


def _split(invoice: Invoice, amount: int, params: schemas.CreditNoteCreate) -> _Split:
    given = {
        "refund_amount": params.refund_amount,
        "credit_amount": params.credit_amount,
        "out_of_band_amount": params.out_of_band_amount,
    }
    if invoice.status != states.PAID:
        for name, value in given.items():
            if value:
                raise InvalidRequest(
                    f"Invoice {invoice.id} is {invoice.status}: a credit note on it reduces what is still owed, "
                    f"and {name} applies only to paid invoices. Leave it out.",
                    param=name,
                )
        if amount > invoice.amount_remaining:
            raise InvalidRequest(
                f"The credit note's amount {amount} is more than invoice {invoice.id} still owes: "
                f"{invoice.amount_remaining} {invoice.currency}. Credit {invoice.amount_remaining} or less.",
                code="credit_note_amount_too_large",
                param="lines" if params.lines is not None else "amount",
            )
        return _Split(0, 0, 0)
    if all(value is None for value in given.values()):
        # Like downgrades (SPEC §5), a credit gives no cash back unless asked: it goes to the balance.
        return _Split(0, amount, 0)
    split = _Split(params.refund_amount or 0, params.credit_amount or 0, params.out_of_band_amount or 0)
    if split.refund + split.credit + split.out_of_band != amount:
        raise InvalidRequest(
            f"refund_amount ({split.refund}) + credit_amount ({split.credit}) + out_of_band_amount "
            f"({split.out_of_band}) must add up to the credit note's amount, {amount}.",
            param="refund_amount" if params.refund_amount is not None else "credit_amount",
        )
    return split


async def _payment_to_refund(session: AsyncSession, invoice: Invoice, refund: int) -> Payment:
    payment = await session.scalar(
        select(Payment)
        .where(
            Payment.merchant_id == invoice.merchant_id,
            Payment.invoice_id == invoice.id,
            Payment.status == "succeeded",
        )
        .order_by(Payment.seq.desc())
        .limit(1)
    )
    if payment is None:
        how = (
            "out of band"
            if invoice.paid_out_of_band
            else "without a card payment (the balance or credit covered it)"
        )
        raise InvalidRequest(
            f"Invoice {invoice.id} was paid {how}: there is no payment to refund to. Credit the customer balance "
            "with credit_amount, or record the money you gave back outside the engine with out_of_band_amount.",
            code="no_payment_to_refund",
            param="refund_amount",
        )
    left = await refundable_amount(session, payment)
    if refund > left:
        raise InvalidRequest(
            f"refund_amount {refund} is more than what is left to refund on payment {payment.id}: {max(left, 0)} "
            f"{payment.currency}. Refund less, and credit the rest to the balance (credit_amount).",
            code="amount_too_large",
            param="refund_amount",
        )
    return payment


def _refund_key(idempotency_key: str | None, credit_note_id: str) -> str:
    """The refund's own idempotency key: from the request's Idempotency-Key when there is one, so a retry of a
    request whose answer was lost finds the refund it already made instead of refunding twice."""
    if idempotency_key is None:
        return f"credit_note:{credit_note_id}"
    return "credit_note:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


async def _refund(
    services: Services,
    session: AsyncSession,
    invoice: Invoice,
    payment: Payment,
    amount: int,
    *,
    credit_note_id: str,
    reason: str | None,
    idempotency_key: str | None,
    checkpoint: Checkpoint | None,
) -> tuple[str, Invoice]:
    """The refund of a credit note, made before the note is written; returns its id and the invoice locked again.

    The pending refund is written under the invoice's lock and committed (`checkpoint`) before the gateway hears
    of it, so the request holds no connection during the call; while it is pending no other credit note of the
    invoice is issued (`_wait_while_a_refund_is_in_flight`), so the bounds checked under the lock still
    hold when the note is written. A refusal is committed as such, and nothing else is issued.

    Without a checkpoint (a caller that cannot commit half-way), `create_refund` makes the refund in transactions
    of its own while the caller's stays open with the invoice locked: correct, but it holds a second pooled
    connection for the length of the gateway call."""
    order = RefundOrder(
        merchant_id=invoice.merchant_id,
        payment_id=payment.id,
        amount=amount,
        reason=REFUND_REASONS.get(reason or "", "requested_by_customer"),
        metadata={"credit_note": credit_note_id, "invoice": invoice.id},
        idempotency_key=_refund_key(idempotency_key, credit_note_id),
    )
    try:
        if checkpoint is None:
            begun: Refund | RefundToSend = await create_refund(services, **order)
        else:
            begun = await begin_refund(session, **order)
    except BillingError as error:
        if error.param in ("amount", "payment", None):
            error.param = "refund_amount"
        raise
    if isinstance(begun, RefundToSend):
        assert checkpoint is not None
        async with checkpoint():
            outcome, call = await send_refund(services, begun)
        invoice = await _locked_invoice(session, invoice.merchant_id, invoice.id)
        refund = await finish_refund(session, begun, outcome, call)
        if refund.status == "failed":
            async with checkpoint():
                pass  # the refusal stays recorded: the answer below rolls back only what follows it
    else:
        refund = begun
    if refund.status == "failed":
        raise Unprocessable(
            f"The gateway refused to refund {amount} {refund.currency} on payment {payment.id} "
            f"({refund.failure_code}): {refund.failure_message} No credit note was issued; refund {refund.id} "
            "records the attempt. Credit the balance (credit_amount) or record an out-of-band refund instead.",
            code="refund_failed",
            param="refund_amount",
        )
    taken = await session.scalar(select(CreditNote.id).where(CreditNote.refund_id == refund.id))
    if taken is not None:
        raise IdempotencyError(
            f"This Idempotency-Key already made refund {refund.id} for credit note {taken}. Use a new key for a new "
            "credit note.",
            param="Idempotency-Key",
        )
    return refund.id, invoice


async def _wait_while_a_refund_is_in_flight(
    session: AsyncSession, invoice: Invoice, checkpoint: Checkpoint | None
) -> Invoice:
    """Another credit note of this invoice is waiting for its gateway's answer: its bounds were checked against
    the invoice as it was, so nothing else may be credited until it is written. Wait for it (up to
    WAIT_FOR_REFUND_SECONDS) with no lock or connection held, then return the invoice locked again; a 409 when
    it takes longer (or without a checkpoint to wait outside the transaction)."""
    waited, pause = 0.0, 0.05
    while True:
        in_flight = await session.scalar(
            select(Refund.id)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(
                Payment.invoice_id == invoice.id,
                Refund.status == "pending",
                Refund.metadata_["credit_note"].astext.is_not(None),
                # Written already (its gateway answered nothing; the janitor settles it): not in flight.
                ~exists().where(CreditNote.refund_id == Refund.id),
            )
            .limit(1)
        )
        if in_flight is None:
            return invoice
        if checkpoint is None or waited >= WAIT_FOR_REFUND_SECONDS:
            raise Conflict(
                f"Another credit note of invoice {invoice.id} is being issued: its refund {in_flight} is waiting "
                "for the gateway's answer. Retry in a few seconds.",
                code="credit_note_in_progress",
                param="invoice",
            )
        async with checkpoint():
            await asyncio.sleep(pause)
        waited += pause
        pause = min(pause * 2, 1.0)
        invoice = await _locked_invoice(session, invoice.merchant_id, invoice.id)


async def _tax_inside(session: AsyncSession, invoice: Invoice, amount: int) -> list[dict[str, Any]]:
    """The tax inside a credit of `amount` on `invoice`, rate by rate (`plans.totals.credited_tax`), before the
    note is added to the invoice's credited amounts."""
    if not invoice.tax:
        return []
    before = invoice.pre_payment_credit_notes_amount + invoice.post_payment_credit_notes_amount
    by_rate = await invoice_tax_by_rate(session, invoice)
    if not by_rate:
        [tax] = credited_tax(before, amount, invoice.total, [invoice.tax])
        return [
            {"tax_rate": None, "display_name": "Tax", "percentage": None, "inclusive": False, "amount": tax}
        ]
    amounts = credited_tax(before, amount, invoice.total, [share.amount for _, share in by_rate])
    return [
        {
            "tax_rate": rate_id,
            "display_name": share.tax_rate.display_name,
            "percentage": decimal_text(share.tax_rate.percentage),
            "inclusive": share.tax_rate.inclusive,
            "amount": tax,
        }
        for (rate_id, share), tax in zip(by_rate, amounts, strict=True)
    ]


async def create_credit_note(
    session: AsyncSession,
    services: Services,
    merchant_id: str,
    params: schemas.CreditNoteCreate,
    *,
    idempotency_key: str | None = None,
    checkpoint: Checkpoint | None = None,
) -> CreditNote:
    """Issue a credit note on a finalized invoice (see the module's rules). A refund it asks for is made
    through the payment's gateway before the note is written: a refusal issues nothing. `checkpoint` commits the
    caller's transaction and runs a block outside it (a request's `ctx.committed`): with one, the gateway call
    holds no connection of the caller's (see `_refund`)."""
    metadata = validate_metadata(params.metadata)
    invoice = await _locked_invoice(session, merchant_id, params.invoice)
    invoice = await _wait_while_a_refund_is_in_flight(session, invoice, checkpoint)
    if invoice.status in (states.DRAFT, states.VOID):
        what = (
            "a draft: change its lines or delete it"
            if invoice.status == states.DRAFT
            else "void: it asks nothing"
        )
        raise Conflict(
            f"Invoice {invoice.id} is {what}. Credit notes are for open, uncollectible or paid invoices.",
            code="invoice_status_conflict",
            param="invoice",
        )
    lines = await _lines(session, invoice, params)
    amount = sum(line.amount for line in lines) if lines else (params.amount or 0)
    creditable = (
        max(invoice.total, 0)
        - invoice.pre_payment_credit_notes_amount
        - invoice.post_payment_credit_notes_amount
    )
    if amount > creditable:
        raise InvalidRequest(
            f"The credit note's amount {amount} would take invoice {invoice.id}'s credit notes beyond its total "
            f"({invoice.total} {invoice.currency}): at most {max(creditable, 0)} can still be credited.",
            code="credit_note_amount_too_large",
            param="lines" if params.lines is not None else "amount",
        )
    split = _split(invoice, amount, params)
    customer = await session.scalar(select(Customer).where(Customer.id == invoice.customer_id))
    assert customer is not None
    if split.credit and customer.deleted_at is not None:
        raise InvalidRequest(
            f"Customer {customer.id} is deleted and has no balance to credit. Refund it or record it out of band.",
            param="credit_amount",
        )
    tax_amounts = await _tax_inside(session, invoice, amount)
    payment = await _payment_to_refund(session, invoice, split.refund) if split.refund else None
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    count = await session.scalar(select(func.count(CreditNote.id)).where(CreditNote.invoice_id == invoice.id))
    note = CreditNote(
        id=new_id("cn"),
        merchant_id=merchant_id,
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        number=f"{invoice.number}-CN-{int(count or 0) + 1:02d}",
        status="issued",
        type="post_payment" if invoice.status == states.PAID else "pre_payment",
        currency=invoice.currency,
        amount=amount,
        refund_amount=split.refund,
        credit_amount=split.credit,
        out_of_band_amount=split.out_of_band,
        tax_amounts=tax_amounts,
        reason=params.reason,
        memo=params.memo,
        metadata_=metadata,
        created_at=clock.now(),
    )
    if payment is not None:
        # The customer row is locked only after the gateway has answered.
        note.refund_id, invoice = await _refund(
            services,
            session,
            invoice,
            payment,
            split.refund,
            credit_note_id=note.id,
            reason=params.reason,
            idempotency_key=idempotency_key,
            checkpoint=checkpoint,
        )
    if split.credit:
        customer = await session.scalar(
            select(Customer)
            .where(Customer.id == invoice.customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert customer is not None
        entry = await record_balance_change(
            session,
            customer,
            -split.credit,
            kind="credit_note",
            clock=clock,
            invoice_id=invoice.id,
            currency=invoice.currency,
            description=f"Credit note {note.number}",
        )
        await session.flush()
        note.customer_balance_transaction_id = entry.id
    # The note is written once, complete: the database refuses any later change but the move to void.
    session.add(note)
    await session.flush()
    rows = [
        CreditNoteLine(
            id=new_id("cnli"),
            merchant_id=merchant_id,
            credit_note_id=note.id,
            invoice_line_id=line.invoice_line_id,
            description=line.description,
            amount=line.amount,
            created_at=note.created_at,
        )
        for line in lines
    ]
    session.add_all(rows)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="credit_note.created",
        obj=render_credit_note(note, rows),
        clock=clock,
    )
    await _apply_to_invoice(session, invoice, note, clock)
    return note


async def _apply_to_invoice(session: AsyncSession, invoice: Invoice, note: CreditNote, clock: Clock) -> None:
    previous = {
        "amount_paid": invoice.amount_paid,
        "amount_remaining": invoice.amount_remaining,
        "pre_payment_credit_notes_amount": invoice.pre_payment_credit_notes_amount,
        "post_payment_credit_notes_amount": invoice.post_payment_credit_notes_amount,
    }
    if note.type == "pre_payment":
        invoice.pre_payment_credit_notes_amount += note.amount
        invoice.amount_remaining -= note.amount
        invoice.amount_paid += note.amount
    else:
        invoice.post_payment_credit_notes_amount += note.amount
    check_invariants(invoice)
    await session.flush()
    if note.type == "pre_payment" and invoice.amount_remaining == 0:
        # Nothing is owed any more: the invoice is settled, like one paid (its subscription moves on).
        await mark_paid(session, invoice, clock, action="pay")
        return
    record_event(
        session,
        merchant_id=invoice.merchant_id,
        event_type="invoice.updated",
        obj=await render_invoice(session, invoice),
        clock=clock,
        previous_attributes={k: v for k, v in previous.items() if getattr(invoice, k) != v},
    )


async def void_credit_note(session: AsyncSession, merchant_id: str, credit_note_id: str) -> CreditNote:
    """Void a credit note that only reduced what an invoice still owes, while it still owes: the amount is owed
    again. A credit note that gave money back (post-payment) or whose invoice was since paid is final."""
    found = await get_credit_note(session, merchant_id, credit_note_id)
    # Invoice first, then the note: the order every credit note use case takes its locks in.
    invoice = await _locked_invoice(session, merchant_id, found.invoice_id)
    note = await get_credit_note(session, merchant_id, credit_note_id, for_update=True)
    if note.status == "void":
        raise Conflict(f"Credit note {note.id} is already void.", code="credit_note_status_conflict")
    if note.type == "post_payment":
        raise Conflict(
            f"Credit note {note.id} gave money back on a paid invoice (refund, balance or out of band): that cannot "
            "be undone by voiding. Charge the customer with a new invoice if needed.",
            code="credit_note_status_conflict",
        )
    if invoice.status not in (states.OPEN, states.UNCOLLECTIBLE):
        raise Conflict(
            f"Credit note {note.id} reduced invoice {invoice.id}, which is {invoice.status} now: only a credit note "
            "on an invoice that still owes something can be voided.",
            code="credit_note_status_conflict",
        )
    clock = await customer_clock(session, merchant_id, invoice.customer_id)
    note.status = "void"
    note.voided_at = clock.now()
    previous = {
        "amount_paid": invoice.amount_paid,
        "amount_remaining": invoice.amount_remaining,
        "pre_payment_credit_notes_amount": invoice.pre_payment_credit_notes_amount,
    }
    invoice.pre_payment_credit_notes_amount -= note.amount
    invoice.amount_paid -= note.amount
    invoice.amount_remaining += note.amount
    check_invariants(invoice)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="credit_note.voided",
        obj=await render_note(session, note),
        clock=clock,
    )
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="invoice.updated",
        obj=await render_invoice(session, invoice),
        clock=clock,
        previous_attributes=previous,
    )
    return note
