"""What dunning does about a failed charge once it decided (`dunning.cases.decide_after_failure`): the next
attempt scheduled (an `invoice.collect` task of source `retry`, with a dedupe key per slot, so two workers can
never make two attempts for one slot) and `dunning.retry_scheduled`; the deadline of a case waiting for a payment
method; or the final action (dunning.final_actions), exactly once (the case row is locked and the state machine
refuses a second `schedule_exhausted`). Also: retries skipped when stale, attempts at once when a payment method
is added or chosen, planned attempts dropped when the invoice is paid or closed.

Each public `on_*` function is a listener of a hook point, subscribed in billing/wiring.py."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.invoices import states as invoice_states
from billing.invoices.collection import COLLECT, CollectPayload
from billing.invoices.hooks import (
    PAYMENT_METHOD,
    RETRY,
    CollectionStarting,
    InvoiceChanged,
    InvoicesPaid,
    PaymentFailure,
)
from billing.invoices.models import Invoice
from billing.payment_methods.hooks import PaymentMethodChosen
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TaskContext, TaskPayload
from billing.scheduler.runner import schedule_task
from billing.subscriptions.models import Subscription
from dunning import recovery
from dunning.cases import Decision, emit_case_event, locked_case, merchant_dunning_settings
from dunning.final_actions import run_final_action
from dunning.hooks import FailureToTell, payment_failure_to_tell
from dunning.models import DunningCase

DEADLINE = "dunning.deadline"


class DeadlinePayload(TaskPayload):
    invoice: str


async def on_payment_failed(event: PaymentFailure) -> None:
    """Hook `invoice_payment_failed` (after `invoice.payment_failed` and the subscription's past_due): act on the
    decision `dunning.cases.on_payment_failing` took for this failure, if the invoice is in dunning."""
    if isinstance(event.decision, Decision):
        await carry_out(event.session, event.invoice, event.clock, event.decision)


async def carry_out(session: AsyncSession, invoice: Invoice, clock: Clock, decision: Decision) -> None:
    """Act on a decision, after invoice.payment_failed and the subscription's past_due: schedule the next
    attempt (or the deadline of a case waiting for a card), or run the final action once; tell the customer."""
    dc = await session.get(DunningCase, decision.case_id)
    assert dc is not None
    if decision.reschedule and decision.next_attempt_at is not None:
        await cancel_planned_attempts(session, invoice.id)
        await schedule_task(
            session,
            merchant_id=invoice.merchant_id,
            kind=COLLECT,
            due_at=decision.next_attempt_at,
            clock=clock,
            payload=CollectPayload(
                invoice=invoice.id,
                source=RETRY,
                slot=decision.slot,
                technical_retries=decision.technical_retries,
            ),
            dedupe_key=f"dunning:{invoice.id}:{decision.slot}:{decision.technical_retries}",
        )
        emit_case_event(session, dc, "dunning.retry_scheduled", clock)
    elif dc.state == "awaiting_payment_method":
        await cancel_planned_attempts(session, invoice.id)
        tz = ZoneInfo(
            await session.scalar(select(Customer.timezone).where(Customer.id == dc.customer_id)) or "UTC"
        )
        await schedule_task(
            session,
            merchant_id=invoice.merchant_id,
            kind=DEADLINE,
            due_at=recovery.deadline(dc.first_failure_at, dc.schedule, tz),
            clock=clock,
            payload=DeadlinePayload(invoice=invoice.id),
            dedupe_key=f"dunning-deadline:{invoice.id}",
        )
    if decision.exhausted_now and decision.final_action is not None:
        await cancel_planned_attempts(session, invoice.id)
        await run_final_action(session, dc, invoice, clock, decision.final_action)
    if decision.decline_class != "technical":
        await payment_failure_to_tell.fire(
            FailureToTell(
                session,
                invoice,
                clock,
                decline_class=decision.decline_class,
                next_attempt=decision.next_attempt_at,
                final=decision.exhausted_now,
            )
        )


async def cancel_planned_attempts(session: AsyncSession, invoice_id: str) -> None:
    """Drop the invoice's planned retries and deadline (not the collection a person asked for)."""
    await session.execute(
        update(ScheduledTask)
        .where(
            ScheduledTask.status == "pending",
            ScheduledTask.payload["invoice"].astext == invoice_id,
            or_(
                ScheduledTask.kind == DEADLINE,
                and_(ScheduledTask.kind == COLLECT, ScheduledTask.payload["source"].astext == RETRY),
            ),
        )
        .values(status="canceled")
        .execution_options(synchronize_session=False)
    )


async def slot_is_current(session: AsyncSession, invoice_id: str, payload: dict[str, Any]) -> bool:
    """Whether a scheduled retry is still the case's next attempt (a stale one — the case moved on — is skipped)."""
    dc = await locked_case(session, invoice_id)
    return (
        dc is not None
        and dc.state == "retrying"
        and dc.attempts == int(payload.get("slot", -1))
        and dc.technical_retries == int(payload.get("technical_retries", 0))
    )


async def on_collection_starting(event: CollectionStarting) -> None:
    """Hook `collection_starting`: a scheduled retry runs only while it is still the case's next attempt (a
    stale one, whose case moved on, is skipped), and charges the subscription's payment method by default."""
    if event.source != RETRY:
        return
    if not await slot_is_current(event.session, event.invoice.id, event.payload):
        event.skip = True
        return
    if event.payment_method is None and event.invoice.subscription_id is not None:
        event.payment_method = await event.session.scalar(
            select(Subscription.default_payment_method).where(
                Subscription.id == event.invoice.subscription_id
            )
        )


async def deadline_task(ctx: TaskContext) -> None:
    """The last slot passed while the case waited for a payment method: the schedule is exhausted."""
    invoice_id = ctx.payload_as(DeadlinePayload).invoice
    invoice = await ctx.session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
    dc = await locked_case(ctx.session, invoice_id)
    if invoice is None or dc is None or dc.state != "awaiting_payment_method":
        return
    settings = await merchant_dunning_settings(ctx.session, dc.merchant_id)
    now = ctx.clock.now()
    dc.state = recovery.transition("awaiting_payment_method", "schedule_exhausted")
    dc.final_action = settings.final_action
    dc.closed_at = dc.updated_at = now
    dc.next_attempt_at = None
    invoice.next_payment_attempt = None
    await ctx.session.flush()
    await run_final_action(ctx.session, dc, invoice, ctx.clock, settings.final_action)


# --- paid, voided -----------------------------------------------------------------------------------------------


async def on_invoice_paid(event: InvoicesPaid) -> None:
    """Hook `invoice_paid`: paid any way (a retry, a new card, out of band, a credit note): the case is
    recovered (`dunning.recovered`). The cases of all the invoices are locked with one query (in invoice order)."""
    session, clock = event.session, event.clock
    ids = sorted(invoice.id for invoice in event.invoices)
    cases = {
        dc.invoice_id: dc
        for dc in await session.scalars(
            select(DunningCase)
            .where(DunningCase.invoice_id.in_(ids))
            .order_by(DunningCase.invoice_id)
            .with_for_update()
        )
    }
    for invoice in event.invoices:
        dc = cases.get(invoice.id)
        if dc is None or dc.state in ("recovered", "voided"):
            continue
        dc.state = recovery.transition(dc.state, "paid")  # type: ignore[arg-type]
        dc.recovered_amount = invoice.amount_paid - (invoice.pre_payment_credit_notes_amount or 0)
        dc.next_attempt_at = None
        dc.closed_at = dc.updated_at = clock.now()
        await cancel_planned_attempts(session, invoice.id)
        await session.flush()
        emit_case_event(session, dc, "dunning.recovered", clock)


async def on_invoice_closed_unpaid(event: InvoiceChanged) -> None:
    """Hook `invoice_closed_unpaid`: voided or written off by the merchant: no more attempts."""
    session, invoice, clock = event.session, event.invoice, event.clock
    dc = await locked_case(session, invoice.id)
    if dc is None or dc.state in ("recovered", "voided", "exhausted"):
        return
    dc.state = recovery.transition(dc.state, "invoice_voided")  # type: ignore[arg-type]
    dc.next_attempt_at = None
    dc.closed_at = dc.updated_at = clock.now()
    await cancel_planned_attempts(session, invoice.id)
    await session.flush()


async def retry_after_payment_method_change(
    session: AsyncSession,
    merchant_id: str,
    customer_id: str,
    clock: Clock,
    *,
    payment_method: str | None = None,
    subscription_id: str | None = None,
) -> list[str]:
    """A payment method was added or chosen: schedule an immediate attempt (due now) on every invoice of the
    customer (or of one subscription) that dunning is trying to recover — hard and soft declines alike, the
    uncharged invoices of an `unpaid` subscription, and the declined first invoice of an `incomplete` one (paid,
    it makes the subscription active: SPEC §6). Returns the invoice ids. Called by the services that attach or
    choose payment methods, so the API and the portal both trigger it."""
    unpaid_subs = select(Subscription.id).where(
        Subscription.customer_id == customer_id, Subscription.status == "unpaid"
    )
    incomplete_subs = select(Subscription.id).where(
        Subscription.customer_id == customer_id, Subscription.status == "incomplete"
    )
    in_dunning = select(DunningCase.invoice_id).where(
        DunningCase.customer_id == customer_id,
        DunningCase.state.in_(("retrying", "awaiting_payment_method", "exhausted")),
    )
    stmt = (
        select(Invoice)
        .where(
            Invoice.merchant_id == merchant_id,
            Invoice.customer_id == customer_id,
            Invoice.status == invoice_states.OPEN,
            Invoice.collection_method == "charge_automatically",
            Invoice.amount_remaining > 0,
            or_(
                Invoice.id.in_(in_dunning),
                Invoice.subscription_id.in_(unpaid_subs),
                and_(
                    Invoice.subscription_id.in_(incomplete_subs),
                    Invoice.billing_reason == "subscription_create",
                ),
            ),
        )
        .order_by(Invoice.seq)
    )
    if subscription_id is not None:
        stmt = stmt.where(Invoice.subscription_id == subscription_id)
    retried = []
    for invoice in (await session.scalars(stmt)).all():
        dc = await locked_case(session, invoice.id)
        if dc is not None:
            dc.state = recovery.transition(dc.state, "payment_method_added")  # type: ignore[arg-type]
            dc.updated_at = clock.now()
        already = await session.scalar(
            select(ScheduledTask.id).where(
                ScheduledTask.status == "pending",
                ScheduledTask.kind == COLLECT,
                ScheduledTask.payload["invoice"].astext == invoice.id,
                ScheduledTask.payload["source"].astext == PAYMENT_METHOD,
            )
        )
        if already is not None:
            continue
        await schedule_task(
            session,
            merchant_id=merchant_id,
            kind=COLLECT,
            due_at=clock.now(),
            clock=clock,
            payload=CollectPayload(invoice=invoice.id, source=PAYMENT_METHOD, payment_method=payment_method),
        )
        retried.append(invoice.id)
    return retried


async def on_payment_method_added(event: PaymentMethodChosen) -> None:
    """Hook `payment_method_added` (SPEC §6): retry at once what dunning is recovering."""
    await retry_after_payment_method_change(
        event.session,
        event.merchant_id,
        event.customer_id,
        event.clock,
        payment_method=event.payment_method,
        subscription_id=event.subscription_id,
    )
