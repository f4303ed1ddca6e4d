"""Collecting a finalized invoice: charge the customer's payment method (charge_automatically), or leave it
open for the customer to pay by its due date (send_invoice).

Collection is a scheduled task (`invoice.collect`) written in the transaction that finalizes the invoice, so it
can never be lost, and its charge never runs before the invoice is committed. Workers run it like any due task
(renewals, test clocks); a request that must answer with the outcome (creating a subscription, paying an
invoice) commits, then runs that same task at once with `run_task_now`. One code path, whoever runs it.

The charge itself is `billing.payments.service.collect_payment` with the invoice id as its purpose and the
attempt number as its attempt: however often the task runs, one attempt charges at most once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.hooks import CustomerDeleted
from billing.db.engine import transaction
from billing.errors import BillingError
from billing.gateways.routing import RouteResult
from billing.invoices import hooks, states
from billing.invoices.hooks import AUTOMATIC, REQUEST, RETRY, CollectionStarting, PaymentFailure
from billing.invoices.models import Invoice
from billing.invoices.service import (
    delete_draft,
    get_invoice,
    mark_paid,
    mark_paid_many,
    mark_uncollectible,
    render,
)
from billing.payments.batch import begin_payments, finish_payments
from billing.payments.hooks import PaymentSettled
from billing.payments.models import Payment
from billing.payments.service import (
    PaymentOrder,
    PendingCharge,
    begin_payment,
    charge_pending,
    collect_payment,
    finish_payment,
)
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import BatchContext, TaskContext, TaskPayload
from billing.scheduler.runner import NewTask, run_task_step, schedule_task
from billing.services import Services
from billing.test_clocks.service import customer_clock
from dunning.declines import classify_failure
from webhooks.outbox import record_event

COLLECT = "invoice.collect"


class CollectPayload(TaskPayload):
    """An `invoice.collect` task: charge what remains of `invoice` (attempt `attempt`; None: the next number).
    A dunning retry (`source` retry) carries its slot; a look again at a pending payment counts its looks."""

    invoice: str
    attempt: int | None = None
    payment_method: str | None = None
    source: str = AUTOMATIC
    slot: int | None = None
    technical_retries: int | None = None
    looks: int = 0


T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("billing.invoices.collection")


# How a collection makes its payment, called as `collect_payment` is: a Payment, or a PendingCharge when the
# payment was only begun (see attempt_collection).
Charge = Callable[..., Awaitable[Payment | PendingCharge]]
# How soon to look again at a payment whose outcome the gateways could not confirm yet: 1 minute after the first
# look, doubling each look, at most an hour apart (a test clock advancing 12 hours looks 17 times, not 720). The
# look is only a safety net: the janitor's settlement fires `payment_settled`, and collection records the outcome
# at once (`on_payment_settled`).
PENDING_RECHECK = timedelta(minutes=1)
PENDING_RECHECK_MAX = timedelta(hours=1)


def recheck_delay(looks: int) -> timedelta:
    """The wait before the next look at a pending payment, after `looks` looks already taken."""
    delay: timedelta = PENDING_RECHECK * 2 ** min(looks, 16)
    return min(PENDING_RECHECK_MAX, delay)


async def request_collection(
    session: AsyncSession,
    invoice: Invoice,
    clock: Clock,
    *,
    payment_method: str | None = None,
    on_request: bool = False,
) -> str | None:
    """Schedule an attempt to charge `invoice` now; None when there is nothing to charge automatically.
    `on_request`: the customer or merchant asked to pay now (any collection method, uncollectible too)."""
    if invoice.status not in (states.OPEN, states.UNCOLLECTIBLE) or invoice.amount_remaining == 0:
        return None
    if not on_request and (
        invoice.status != states.OPEN or invoice.collection_method != "charge_automatically"
    ):
        return None
    attempt = next_attempt_number(invoice)
    invoice.next_payment_attempt = clock.now()
    return await schedule_task(
        session,
        merchant_id=invoice.merchant_id,
        kind=COLLECT,
        due_at=clock.now(),
        clock=clock,
        payload=CollectPayload(
            invoice=invoice.id,
            attempt=attempt,
            payment_method=payment_method,
            source=REQUEST if on_request else AUTOMATIC,
        ),
        dedupe_key=f"collect:{invoice.id}:{attempt}",
    )


def automatic_collection(invoice: Invoice, clock: Clock, payment_method: str | None) -> NewTask:
    """The collection task `request_collection` schedules for an open invoice charged automatically, for callers
    that schedule many at once (`schedule_tasks`); the caller checked there is something to charge."""
    attempt = next_attempt_number(invoice)
    invoice.next_payment_attempt = clock.now()
    return NewTask(
        merchant_id=invoice.merchant_id,
        kind=COLLECT,
        due_at=clock.now(),
        payload=CollectPayload(invoice=invoice.id, attempt=attempt, payment_method=payment_method),
        dedupe_key=f"collect:{invoice.id}:{attempt}",
    )


async def request_payment(
    session: AsyncSession, merchant_id: str, invoice_id: str, *, payment_method: str | None = None
) -> Invoice:
    """Someone (the merchant, over the API or in the console) asks to charge an open or uncollectible invoice
    now, whatever its collection method: its collection task is scheduled in the caller's transaction, unless one
    is already waiting. The caller commits, then runs the task (`run_task_now`) to answer with the outcome."""
    invoice = await get_invoice(session, merchant_id, invoice_id, for_update=True)
    states.transition(invoice.id, invoice.status, "pay")
    if await pending_collection(session, invoice.id) is None:
        clock = await customer_clock(session, merchant_id, invoice.customer_id)
        await request_collection(session, invoice, clock, payment_method=payment_method, on_request=True)
    return invoice


def next_attempt_number(invoice: Invoice) -> int:
    """The payment attempt number of the invoice's next charge (each payments row has its own). Technical
    failures do not raise attempt_count, but their number is taken: it is kept in last_payment_error."""
    recorded = (invoice.last_payment_error or {}).get("attempt") or 0
    return max(invoice.attempt_count, int(recorded)) + 1


def _already_recorded(invoice: Invoice, attempt: int) -> bool:
    return attempt < next_attempt_number(invoice)


async def collect_task(ctx: TaskContext) -> None:
    await _collect_for_task(ctx, charge=collect_payment)


async def _collect_for_task(
    ctx: TaskContext, *, charge: Charge, locked: Invoice | None = None, paid: list[Invoice] | None = None
) -> Invoice | PendingCharge | None:
    typed = ctx.payload_as(CollectPayload)
    return await attempt_collection(
        ctx.session,
        ctx.services,
        invoice_id=typed.invoice,
        attempt=typed.attempt,
        payment_method=typed.payment_method,
        clock=ctx.clock,
        source=typed.source,
        payload=ctx.task.payload,
        charge=charge,
        locked=locked,
        paid=paid,
    )


async def collect_now(services: Services, task_id: str) -> bool:
    """Run the invoice's collection task `task_id` for a request that answers with its outcome, with the same
    decisions a worker makes, holding at most one pooled connection at any moment (the request has committed and
    released its own): the task's first step writes the pending payment and commits (the task stays pending);
    the charge runs with no connection, within the process's bound on gateway calls; its outcome is recorded;
    then the task runs again, finds that payment settled (or still pending) and finishes as a worker would.

    A crash between the steps leaves a pending task and a pending payment, which the workers finish: the
    janitor settles the payment by asking the gateway, the task finds it by its attempt key. Returns False when
    the task was not pending any more (a worker ran it)."""
    started: list[PendingCharge] = []

    async def first_step(ctx: TaskContext) -> bool:
        outcome = await _collect_for_task(ctx, charge=_begin_in(ctx.session))
        if isinstance(outcome, PendingCharge):
            started.append(outcome)
            return False
        return True

    async def last_step(ctx: TaskContext) -> bool:
        outcome = await _collect_for_task(ctx, charge=_begin_in(ctx.session))
        # The payment of this attempt exists now, so the step never starts another charge.
        assert not isinstance(outcome, PendingCharge)
        return True

    async with transaction(services.sessions) as session:
        if await run_task_step(session, services, task_id, first_step) is None:
            return False
    if not started:
        return True
    pending = started[0]
    result = await charge_pending(services, pending)
    async with transaction(services.sessions) as session:
        await finish_payment(session, pending, result)
    async with transaction(services.sessions) as session:
        if await run_task_step(session, services, task_id, last_step) is None:
            # A worker ran the task meanwhile: it found the payment pending and planned a look again. Take that
            # look now, so the answer carries the outcome just recorded.
            recheck = await pending_collection(
                session, pending.payment.invoice_id or "", attempt=pending.payment.attempt
            )
            if recheck is not None:
                await run_task_step(session, services, recheck, last_step)
    return True


def _begin_in(session: AsyncSession) -> Charge:
    """A charge step that only begins the payment, in `session` (see begin_payment)."""

    async def begin(services: Services, **kwargs: Any) -> Payment | PendingCharge:
        return await begin_payment(session, services, **kwargs)

    return begin


async def attempt_collection(
    session: AsyncSession,
    services: Services,
    *,
    invoice_id: str,
    attempt: int | None,
    payment_method: str | None,
    clock: Clock,
    source: str = AUTOMATIC,
    payload: dict[str, Any] | None = None,
    charge: Charge = collect_payment,
    locked: Invoice | None = None,
    paid: list[Invoice] | None = None,
) -> Invoice | PendingCharge | None:
    """Charge what remains of the invoice (attempt `attempt`; None: the next number) and record the outcome on
    the invoice. `source` says who asked (dunning counts only automatic charges and scheduled retries).

    `charge` makes the payment: `collect_payment` (a worker), or a step that only begins it in this transaction
    and returns the PendingCharge, which the caller commits, charges and records before calling this again
    (`collect_now`: a request). `locked`: the invoice, already locked FOR NO KEY UPDATE by the caller (a batch);
    `paid`: where a batch collects the invoices its charges paid, to mark them paid together (`mark_paid_many`)."""
    # FOR NO KEY UPDATE: enough to serialize collectors, and it does not block the payment rows that
    # collect_payment writes in its own transactions.
    invoice = (
        locked
        if locked is not None and locked.id == invoice_id
        else await session.scalar(
            select(Invoice).where(Invoice.id == invoice_id).with_for_update(key_share=True)
        )
    )
    if invoice is None or invoice.status not in (states.OPEN, states.UNCOLLECTIBLE):
        return invoice  # paid or voided: nothing to do
    if invoice.status == states.UNCOLLECTIBLE and source != REQUEST:
        return invoice  # written off: charged again only when someone asks
    if attempt is None:
        attempt = next_attempt_number(invoice)
    if _already_recorded(invoice, attempt):
        return invoice  # this attempt was already recorded
    starting = CollectionStarting(session, invoice, clock, source, payload or {}, payment_method)
    await hooks.collection_starting.fire(starting)
    if starting.skip:
        return invoice  # e.g. a stale retry: its dunning case moved on (paid, a card is awaited, rescheduled)
    payment_method = starting.payment_method
    if invoice.amount_remaining == 0:
        await mark_paid(session, invoice, clock, action="pay")
        return invoice
    try:
        payment = await charge(services, **_order(invoice, attempt, payment_method, clock))
    except BillingError as error:
        # Nothing could be charged (no usable payment method, no gateway): a failed attempt all the same.
        await record_failure(
            session, invoice, attempt, clock, reason=error.code, message=error.message, source=source
        )
        return invoice
    if isinstance(payment, PendingCharge):
        return payment
    if payment.status == "requires_review":
        # Held by the risk check: nothing is recorded until its review settles it (_collect_after_review).
        return invoice
    if payment.status == "pending":
        # The gateways did not confirm the charge yet; the janitor will, and its `payment_settled` brings the
        # outcome here at once. Look again meanwhile, backing off (same attempt: the payment row is found again,
        # never charged twice).
        looks = int((payload or {}).get("looks", 0))
        await schedule_task(
            session,
            merchant_id=invoice.merchant_id,
            kind=COLLECT,
            due_at=clock.now() + recheck_delay(looks),
            clock=clock,
            payload={
                **(payload or {}),
                "invoice": invoice.id,
                "attempt": attempt,
                "payment_method": payment_method,
                "looks": looks + 1,
            },
        )
        return invoice
    if payment.status == "succeeded":
        invoice.attempt_count += 1
        if paid is not None:
            paid.append(invoice)
        else:
            await mark_paid(session, invoice, clock, action="pay")
        return invoice
    await record_failure(
        session,
        invoice,
        attempt,
        clock,
        reason=payment.failure_code or "payment_failed",
        message=payment.failure_message,
        payment=payment,
        source=source,
    )
    return invoice


def _order(invoice: Invoice, attempt: int, payment_method: str | None, clock: Clock) -> PaymentOrder:
    """The charge of what remains of `invoice`, attempt `attempt`."""
    return PaymentOrder(
        merchant_id=invoice.merchant_id,
        customer_id=invoice.customer_id,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        purpose=invoice.id,
        attempt=attempt,
        payment_method=payment_method,
        invoice=invoice.id,
        description=f"Invoice {invoice.number}",
        clock=clock,
    )


# Charges of one batch in flight at once. Each holds a pooled connection only for its pending row and for its
# outcome (none during the gateway call, where the gateways' own bound, BILLING_GATEWAY_CONCURRENCY, applies),
# beside the batch's own connection: the bound keeps a worker well inside its pool.
BATCH_CHARGES_IN_FLIGHT = 8


def _batch_order(task: ScheduledTask, invoice: Invoice | None, clock: Clock) -> PaymentOrder | None:
    """The charge a collection task of a batch makes before its outcome is recorded, or None when the task is
    left to run alone: anything but a first automatic charge of an open invoice (retries consult dunning)."""
    payload = task.payload
    attempt = payload.get("attempt")
    if (
        invoice is None
        or attempt is None
        or payload.get("source", AUTOMATIC) != AUTOMATIC
        or invoice.status != states.OPEN
        or invoice.amount_remaining == 0
        or _already_recorded(invoice, int(attempt))
    ):
        return None
    return _order(invoice, int(attempt), payload.get("payment_method"), clock)


def _made(outcome: Payment | BaseException) -> Charge:
    """A charge step that returns (or raises) the outcome of a charge already made."""

    async def made(services: Services, **order: Any) -> Payment:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return made


async def _charge_set(services: Services, orders: list[PaymentOrder]) -> list[Payment | BaseException]:
    """The charges of `orders`, as `collect_payment` makes each: their pending rows begun together and committed
    (billing.payments.batch), the charges BATCH_CHARGES_IN_FLIGHT at a time with no transaction open, then their
    outcomes written together. If the set's first or last step fails as a whole, each charge goes on alone
    (`collect_payment` finds its row by its attempt key and never charges twice)."""
    if not orders:
        return []
    try:
        async with transaction(services.sessions) as session:
            begun = await begin_payments(session, services, orders)
    except Exception:
        log.exception("beginning %d charges together failed; each is collected alone", len(orders))
        return await _gathered(orders, lambda order: collect_payment(services, **order))
    pending = [charge for charge in begun if isinstance(charge, PendingCharge)]
    results = await _gathered(pending, lambda charge: charge_pending(services, charge))
    charged = [(p, r) for p, r in zip(pending, results, strict=True) if not isinstance(r, BaseException)]
    finished: dict[str, Payment | BaseException]
    try:
        async with transaction(services.sessions) as session:
            finished = dict(
                zip([p.payment.id for p, _ in charged], await finish_payments(session, charged), strict=True)
            )
    except Exception:
        log.exception("recording %d charge outcomes together failed; each is recorded alone", len(charged))
        finished = {}
        for p, r in charged:
            finished[p.payment.id] = await _finish_alone(services, p, r)
    failed = {p.payment.id: r for p, r in zip(pending, results, strict=True) if isinstance(r, BaseException)}
    out: list[Payment | BaseException] = []
    for charge in begun:
        if not isinstance(charge, PendingCharge):
            out.append(charge)
        elif charge.payment.id in failed:
            out.append(failed[charge.payment.id])
        else:
            out.append(finished[charge.payment.id])
    return out


async def _finish_alone(
    services: Services, pending: PendingCharge, result: RouteResult
) -> Payment | BaseException:
    try:
        async with transaction(services.sessions) as session:
            return await finish_payment(session, pending, result)
    except Exception as error:  # left pending: the janitor settles it
        return error


async def _gathered(items: list[T], call: Callable[[T], Awaitable[R]]) -> list[R | BaseException]:
    """`call` on every item, BATCH_CHARGES_IN_FLIGHT at a time; each outcome or exception, in order."""
    in_flight = asyncio.Semaphore(BATCH_CHARGES_IN_FLIGHT)

    async def one(item: T) -> R:
        async with in_flight:
            return await call(item)

    return await asyncio.gather(*[one(item) for item in items], return_exceptions=True)


async def collect_batch(ctx: BatchContext) -> set[str]:
    """The collections of a batch: their charges run concurrently (BATCH_CHARGES_IN_FLIGHT at once), each with
    its idempotency key and its pending row committed before the call, as `collect_payment` makes them (an
    unknown outcome stays pending for the janitor); then each outcome is written back in the batch's
    transaction exactly as `collect_task` writes it (the failure that dunning takes up), the invoices paid
    together at the end (`mark_paid_many`)."""
    ids = sorted({task.payload["invoice"] for task in ctx.tasks})
    # FOR NO KEY UPDATE, in id order: serializes collectors without blocking the payment rows.
    invoices = {
        invoice.id: invoice
        for invoice in (
            await ctx.session.scalars(
                select(Invoice)
                .where(Invoice.id.in_(ids))
                .order_by(Invoice.id)
                .with_for_update(key_share=True)
            )
        ).all()
    }
    orders: dict[str, PaymentOrder] = {}
    charged: set[str] = set()
    for task in ctx.tasks:
        order = _batch_order(task, invoices.get(task.payload["invoice"]), ctx.clock)
        # One charge per invoice in a batch: a second task of the same invoice runs alone, after it.
        if order is not None and order["purpose"] not in charged:
            orders[task.id] = order
            charged.add(order["purpose"])
    outcomes = await _charge_set(ctx.services, list(orders.values()))
    finished = set()
    tasks = {task.id: task for task in ctx.tasks}
    paid: list[Invoice] = []
    for task_id, outcome in zip(orders, outcomes, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, BillingError):
            log.warning("charge of collection task %s left to run alone: %r", task_id, outcome)
            continue  # run alone: the charge is found again by its idempotency key, never made twice
        task = tasks[task_id]
        await _collect_for_task(
            TaskContext(session=ctx.session, task=task, clock=ctx.clock, services=ctx.services),
            charge=_made(outcome),
            locked=invoices[task.payload["invoice"]],
            paid=paid,
        )
        finished.add(task_id)
    # The invoices the charges paid, marked paid together (their lines, dunning cases and subscriptions read once).
    await mark_paid_many(ctx.session, paid, ctx.clock)
    return finished


async def record_failure(
    session: AsyncSession,
    invoice: Invoice,
    attempt: int,
    clock: Clock,
    *,
    reason: str,
    message: str | None,
    payment: Payment | None = None,
    source: str = AUTOMATIC,
) -> None:
    """An attempt that took no money: the `payment_failing` listeners (dunning) decide what comes next (so
    `invoice.payment_failed` carries the next attempt), the attempt is counted (a technical failure is not: no
    card network saw it), the app is told, then the `invoice_payment_failed` listeners react (subscriptions:
    past_due; then dunning acts: the retry, or the final action)."""
    failure = PaymentFailure(session, invoice, clock, attempt, reason, message, payment, source)
    await hooks.payment_failing.fire(failure)
    decline_class = failure.decline_class or classify_failure(
        reason,
        charged=payment is not None,
        decline_type=payment.decline_type if payment is not None else None,
        failure_code=payment.failure_code if payment is not None else None,
    )
    if decline_class != "technical":
        invoice.attempt_count += 1
    invoice.next_payment_attempt = failure.next_attempt_at
    invoice.last_payment_error = {
        "attempt": attempt,
        "code": reason,
        "message": message,
        "payment": payment.id if payment is not None else None,
        "decline_type": payment.decline_type if payment is not None else None,
        "decline_class": decline_class,
    }
    await session.flush()
    record_event(
        session,
        merchant_id=invoice.merchant_id,
        event_type="invoice.payment_failed",
        obj=await render(session, invoice),
        clock=clock,
    )
    await hooks.invoice_payment_failed.fire(failure)


async def pending_collection(
    session: AsyncSession, invoice_id: str, *, attempt: int | None = None
) -> str | None:
    """The id of the invoice's collection task still waiting to run, if any (of payment attempt `attempt` only,
    when given: a look again at a charge already made, which never charges anew)."""
    stmt = select(ScheduledTask.id).where(
        ScheduledTask.kind == COLLECT,
        ScheduledTask.status == "pending",
        ScheduledTask.payload["invoice"].astext == invoice_id,
        # A retry planned for a later day is dunning's, not a charge to run now.
        ScheduledTask.payload["source"].astext.is_distinct_from(RETRY),
    )
    if attempt is not None:
        stmt = stmt.where(ScheduledTask.payload["attempt"].astext == str(attempt))
    return await session.scalar(stmt.order_by(ScheduledTask.seq).limit(1))


async def latest_payment(session: AsyncSession, invoice_id: str) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.created_at.desc()).limit(1)
    )


async def on_customer_deleted(event: CustomerDeleted) -> None:
    """Hook `customer_deleted`: nothing can be billed to or charged from a deleted customer: its drafts are
    deleted (they could never be finalized), its open invoices written off as uncollectible (still payable out of
    band, or voidable; their dunning cases close), and their pending collection dropped."""
    session, customer = event.session, event.customer
    unsettled = (
        await session.scalars(
            select(Invoice)
            .where(Invoice.customer_id == customer.id, Invoice.status.in_((states.DRAFT, states.OPEN)))
            .order_by(Invoice.seq)
        )
    ).all()
    for invoice in unsettled:
        if invoice.status == states.DRAFT:
            await delete_draft(session, invoice.merchant_id, invoice.id)
        else:
            await mark_uncollectible(session, invoice.merchant_id, invoice.id)
    await session.execute(
        update(ScheduledTask)
        .where(
            ScheduledTask.status == "pending",
            ScheduledTask.kind == COLLECT,
            ScheduledTask.payload["invoice"].astext.in_(
                select(Invoice.id).where(Invoice.customer_id == customer.id)
            ),
        )
        .values(status="canceled")
        .execution_options(synchronize_session=False)
    )


async def on_payment_reviewed(event: PaymentSettled) -> None:
    """Hook `payment_reviewed`: a held payment of an invoice was approved or refused: its collection task runs
    again for the same attempt, finds the payment by its attempt key (never charging again) and records its
    outcome as for any charge."""
    await _collect_again(event, "reviewed")


async def on_payment_settled(event: PaymentSettled) -> None:
    """Hook `payment_settled`: the janitor settled a pending payment of an invoice: the collection's next look at
    that attempt comes forward to now (in the payment's clock), so the outcome (paid, or the failure that dunning
    takes up) is recorded on the next tick instead of at the next look. One look stays: a request that pays the
    invoice meanwhile runs that very task and answers with the outcome."""
    payment, clock = event.payment, event.clock
    if payment.invoice_id is None:
        return
    moved = await event.session.execute(
        update(ScheduledTask)
        .where(
            ScheduledTask.kind == COLLECT,
            ScheduledTask.status == "pending",
            ScheduledTask.payload["invoice"].astext == payment.invoice_id,
            ScheduledTask.payload["attempt"].astext == str(payment.attempt),
        )
        .values(due_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        await _collect_again(event, "settled")


async def _collect_again(event: PaymentSettled, why: str) -> None:
    session, payment, clock = event.session, event.payment, event.clock
    if payment.invoice_id is None:
        return
    await schedule_task(
        session,
        merchant_id=payment.merchant_id,
        kind=COLLECT,
        due_at=clock.now(),
        clock=clock,
        payload=CollectPayload(
            invoice=payment.invoice_id, attempt=payment.attempt, payment_method=payment.payment_method_id
        ),
        dedupe_key=f"{COLLECT}:{payment.id}:{why}",
    )
