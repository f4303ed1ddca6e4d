"""Smart retries wired to invoices, payments and subscriptions (SPEC §6; the rules are the pure `dunning` package).

A case opens at the first failed automatic charge of a `charge_automatically` invoice (renewals, trial
conversions, plan changes invoiced at once, one-off invoices). A subscription's FIRST invoice gets no case: the
customer is in the request that creates the subscription and gets the decline as its answer; the subscription is
`incomplete` and expires after 23 hours (SPEC §6 / billing.md), as Stripe does, unless a card added or chosen
meanwhile pays that invoice (`retry_after_payment_method_change`).

After each failed attempt invoice collection calls `decide_after_failure` BEFORE it records
`invoice.payment_failed` (so the event carries `next_payment_attempt`), then `carry_out` after the subscription
hook moved the subscription to `past_due`: the next attempt is an `invoice.collect` task with a dedupe key per
slot (two workers can never make two attempts for one slot), `dunning.retry_scheduled`; or the final action,
exactly once (the case row is locked and the state machine refuses a second `schedule_exhausted`), and
`dunning.exhausted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.db.lookup import get_owned
from billing.db.pagination import Page, paginate
from billing.errors import InvalidRequest
from billing.ids import new_id
from billing.invoices import hooks
from billing.invoices import states as invoice_states
from billing.invoices.models import Invoice
from billing.merchants.models import Merchant
from billing.payments.models import Payment
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TASKS, TaskContext
from billing.scheduler.runner import schedule_task
from billing.settings.schemas import DunningSettings
from billing.settings.service import dunning_settings
from dunning import recovery
from dunning.declines import DeclineClass, classify_decline
from dunning.policy import smart_hour
from webhooks.outbox import record_event

from . import schemas
from .models import DunningCase

COLLECT = "invoice.collect"  # billing.invoices.collection.COLLECT (not imported: collection imports us)
DEADLINE = "dunning.deadline"
# Sources of a collection attempt. Only the first automatic charge and the scheduled retries count as dunning
# attempts; a charge the customer or merchant asks for, or one a new payment method triggers, is extra.
AUTOMATIC, RETRY, REQUEST, PAYMENT_METHOD = "automatic", "retry", "request", "payment_method_added"
COUNTED_SOURCES = frozenset({AUTOMATIC, RETRY})
SMART_HOUR_HISTORY = timedelta(days=180)


def render_case(dc: DunningCase) -> schemas.DunningCase:
    return schemas.DunningCase(
        id=dc.id,
        created_at=dc.created_at,
        invoice=dc.invoice_id,
        customer=dc.customer_id,
        subscription=dc.subscription_id,
        currency=dc.currency,
        state=dc.state,  # type: ignore[arg-type]
        attempts=dc.attempts,
        retry_schedule_days=list(dc.schedule),
        first_failure_at=dc.first_failure_at,
        last_attempt_at=dc.last_attempt_at,
        last_decline=schemas.LastDecline(
            decline_class=dc.last_decline_class,  # type: ignore[arg-type]
            code=dc.last_decline_code,
        ),
        next_attempt_at=dc.next_attempt_at,
        final_action=dc.final_action,  # type: ignore[arg-type]
        recovered_amount=dc.recovered_amount,
        closed_at=dc.closed_at,
        test_clock=dc.test_clock_id,
    )


def _emit(session: AsyncSession, dc: DunningCase, event_type: str, clock: Clock) -> None:
    record_event(session, merchant_id=dc.merchant_id, event_type=event_type, obj=render_case(dc), clock=clock)


def in_dunning_scope(invoice: Invoice) -> bool:
    """Whether failed charges of this invoice are retried on the schedule (see the module docstring)."""
    return (
        invoice.collection_method == "charge_automatically"
        and invoice.billing_reason != "subscription_create"
    )


def failure_class(reason: str, payment: Payment | None) -> DeclineClass:
    """Classify a failed attempt. A payment that failed without a decline type never reached a card network
    (every gateway failed technically); an attempt that could not start needs a payment method (hard) or is
    our side's problem (technical)."""
    if payment is not None:
        if payment.decline_type is None:
            return "technical"
        return classify_decline(payment.failure_code or reason)
    if reason.startswith("payment_method"):
        return "hard"
    return "technical"


async def merchant_dunning_settings(session: AsyncSession, merchant_id: str) -> DunningSettings:
    raw = await session.scalar(select(Merchant.settings).where(Merchant.id == merchant_id))
    return dunning_settings(raw or {})


async def _locked_case(session: AsyncSession, invoice_id: str) -> DunningCase | None:
    return await session.scalar(
        select(DunningCase).where(DunningCase.invoice_id == invoice_id).with_for_update()
    )


async def preferred_hour(
    session: AsyncSession, merchant_id: str, card_brand: str | None, now: datetime
) -> int | None:
    """The local hour (customer's time zone) at which this brand's charges succeed most for this merchant."""
    if not card_brand:
        return None
    local_hour = cast(
        func.extract("hour", func.timezone(Customer.timezone, Payment.created_at)), Integer
    ).label("hour")
    rows = await session.execute(
        select(local_hour, func.count())
        .select_from(Payment)
        .join(Customer, Customer.id == Payment.customer_id)
        .where(
            Payment.merchant_id == merchant_id,
            Payment.status == "succeeded",
            Payment.card_brand == card_brand,
            Payment.created_at >= now - SMART_HOUR_HISTORY,
        )
        .group_by(local_hour)
    )
    return smart_hour({int(hour): int(count) for hour, count in rows})


@dataclass(frozen=True)
class Decision:
    """What dunning decided about one failed attempt; `carry_out` acts on it."""

    case_id: str
    decline_class: DeclineClass
    next_attempt_at: datetime | None
    reschedule: bool
    exhausted_now: bool
    slot: int
    technical_retries: int
    final_action: str | None


async def decide_after_failure(
    session: AsyncSession,
    invoice: Invoice,
    clock: Clock,
    *,
    reason: str,
    payment: Payment | None,
    source: str,
) -> Decision | None:
    """Open or move the invoice's case for a failed attempt and set `invoice.next_payment_attempt`.
    None when the invoice is outside dunning. Nothing is scheduled or emitted here (see `carry_out`)."""
    if not in_dunning_scope(invoice) or invoice.status != invoice_states.OPEN:
        return None
    now = clock.now()
    decline_class = failure_class(reason, payment)
    settings = await merchant_dunning_settings(session, invoice.merchant_id)
    opened = await session.scalar(
        insert(DunningCase)
        .values(
            id=new_id("dc"),
            merchant_id=invoice.merchant_id,
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            subscription_id=invoice.subscription_id,
            test_clock_id=clock.test_clock_id,
            currency=invoice.currency,
            state="retrying",
            attempts=0,
            technical_retries=0,
            first_failure_at=now,
            last_attempt_at=now,
            last_decline_class=decline_class,
            last_decline_code=reason[:64],
            schedule=list(settings.retry_schedule_days),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["invoice_id"])
        .returning(DunningCase.id)
    )
    dc = await _locked_case(session, invoice.id)
    assert dc is not None
    fresh = opened is not None
    timezone = await session.scalar(select(Customer.timezone).where(Customer.id == invoice.customer_id))
    tz = ZoneInfo(timezone or "UTC")
    hour = None
    if settings.smart_retries and decline_class == "soft":
        hour = await preferred_hour(
            session, invoice.merchant_id, payment.card_brand if payment is not None else None, now
        )
    counted = source in COUNTED_SOURCES
    if fresh and not counted:
        # The first failure of this invoice came from an extra attempt: it still opens the schedule.
        counted = True
    outcome = recovery.after_failure(
        None if fresh else dc.state,  # type: ignore[arg-type]
        decline_class,
        attempts=dc.attempts,
        technical_retries=dc.technical_retries,
        counted=counted,
        planned=dc.next_attempt_at,
        first_failure=dc.first_failure_at,
        schedule=dc.schedule,
        tz=tz,
        now=now,
        preferred_hour=hour,
    )
    dc.state = outcome.state
    dc.attempts = outcome.attempts
    dc.technical_retries = outcome.technical_retries
    dc.next_attempt_at = outcome.next_attempt_at
    dc.last_attempt_at = now
    dc.last_decline_class = decline_class
    dc.last_decline_code = reason[:64]
    dc.updated_at = now
    final_action = None
    if outcome.exhausted_now:
        final_action = settings.final_action
        dc.final_action = final_action
        dc.closed_at = now
    invoice.next_payment_attempt = outcome.next_attempt_at
    await session.flush()
    return Decision(
        case_id=dc.id,
        decline_class=decline_class,
        next_attempt_at=outcome.next_attempt_at,
        reschedule=outcome.reschedule,
        exhausted_now=outcome.exhausted_now,
        slot=outcome.attempts,
        technical_retries=outcome.technical_retries,
        final_action=final_action,
    )


async def carry_out(session: AsyncSession, invoice: Invoice, clock: Clock, decision: Decision) -> None:
    """Act on a decision, after invoice.payment_failed and the subscription's past_due: schedule the next
    attempt (or the deadline of a case waiting for a card), or run the final action once; tell the customer."""
    dc = await session.get(DunningCase, decision.case_id)
    assert dc is not None
    if decision.reschedule and decision.next_attempt_at is not None:
        await _cancel_pending(session, invoice.id)
        await schedule_task(
            session,
            merchant_id=invoice.merchant_id,
            kind=COLLECT,
            due_at=decision.next_attempt_at,
            clock=clock,
            payload={
                "invoice": invoice.id,
                "source": RETRY,
                "slot": decision.slot,
                "technical_retries": decision.technical_retries,
                "payment_method": None,
            },
            dedupe_key=f"dunning:{invoice.id}:{decision.slot}:{decision.technical_retries}",
        )
        _emit(session, dc, "dunning.retry_scheduled", clock)
    elif dc.state == "awaiting_payment_method":
        await _cancel_pending(session, invoice.id)
        tz = ZoneInfo(
            await session.scalar(select(Customer.timezone).where(Customer.id == dc.customer_id)) or "UTC"
        )
        await schedule_task(
            session,
            merchant_id=invoice.merchant_id,
            kind=DEADLINE,
            due_at=recovery.deadline(dc.first_failure_at, dc.schedule, tz),
            clock=clock,
            payload={"invoice": invoice.id},
            dedupe_key=f"dunning-deadline:{invoice.id}",
        )
    if decision.exhausted_now and decision.final_action is not None:
        await _cancel_pending(session, invoice.id)
        await run_final_action(session, dc, invoice, clock, decision.final_action)
    if decision.decline_class != "technical":
        from billing.notifications.emails import queue_payment_failed_email

        await queue_payment_failed_email(
            session,
            invoice,
            clock,
            decline_class=decision.decline_class,
            next_attempt=decision.next_attempt_at,
            final=decision.exhausted_now,
        )


async def run_final_action(
    session: AsyncSession, dc: DunningCase, invoice: Invoice, clock: Clock, action: str
) -> None:
    """The merchant's final action (dunning.recovery.FINAL_EFFECTS), then `dunning.exhausted`. Called once per
    case: only the transition into `exhausted` leads here, under the case's row lock."""
    from billing.invoices.service import mark_uncollectible
    from billing.subscriptions.service import end_after_dunning

    effect = recovery.FINAL_EFFECTS[action]  # type: ignore[index]
    event = {"canceled": "dunning_cancel", "unpaid": "dunning_unpaid"}.get(effect.subscription_status)
    if invoice.subscription_id is not None and event is not None:
        await end_after_dunning(session, invoice.subscription_id, clock, event)
    if effect.invoice_uncollectible and invoice.status == invoice_states.OPEN:
        await mark_uncollectible(session, invoice.merchant_id, invoice.id)
    _emit(session, dc, "dunning.exhausted", clock)


async def _cancel_pending(session: AsyncSession, invoice_id: str) -> None:
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
    dc = await _locked_case(session, invoice_id)
    return (
        dc is not None
        and dc.state == "retrying"
        and dc.attempts == int(payload.get("slot", -1))
        and dc.technical_retries == int(payload.get("technical_retries", 0))
    )


@TASKS.register(DEADLINE)
async def deadline_task(ctx: TaskContext) -> None:
    """The last slot passed while the case waited for a payment method: the schedule is exhausted."""
    invoice = await ctx.session.scalar(
        select(Invoice).where(Invoice.id == ctx.task.payload["invoice"]).with_for_update()
    )
    dc = await _locked_case(ctx.session, ctx.task.payload["invoice"])
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


# --- paid, voided, a new payment method -----------------------------------------------------------------------


async def _on_invoice_paid(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    """Paid any way (a retry, a new card, out of band, a credit note): the case is recovered."""
    dc = await _locked_case(session, invoice.id)
    if dc is None or dc.state in ("recovered", "voided"):
        return
    dc.state = recovery.transition(dc.state, "paid")  # type: ignore[arg-type]
    dc.recovered_amount = invoice.amount_paid - (invoice.pre_payment_credit_notes_amount or 0)
    dc.next_attempt_at = None
    dc.closed_at = dc.updated_at = clock.now()
    await _cancel_pending(session, invoice.id)
    await session.flush()


async def _on_invoice_voided(session: AsyncSession, invoice: Invoice, clock: Clock) -> None:
    """Voided or written off by the merchant: no more attempts."""
    dc = await _locked_case(session, invoice.id)
    if dc is None or dc.state in ("recovered", "voided", "exhausted"):
        return
    dc.state = recovery.transition(dc.state, "invoice_voided")  # type: ignore[arg-type]
    dc.next_attempt_at = None
    dc.closed_at = dc.updated_at = clock.now()
    await _cancel_pending(session, invoice.id)
    await session.flush()


hooks.ON_PAID.append(_on_invoice_paid)
hooks.ON_CLOSED_UNPAID.append(_on_invoice_voided)


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
    from billing.subscriptions.models import Subscription

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
        dc = await _locked_case(session, invoice.id)
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
            payload={"invoice": invoice.id, "source": PAYMENT_METHOD, "payment_method": payment_method},
        )
        retried.append(invoice.id)
    return retried


# --- reading ---------------------------------------------------------------------------------------------------


async def get_case(session: AsyncSession, merchant_id: str, case_id: str) -> DunningCase:
    return await get_owned(
        session, DunningCase, case_id, merchant_id=merchant_id, prefix="dc", kind="dunning case"
    )


async def list_cases(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    invoice: str | None = None,
    customer: str | None = None,
    state: str | None = None,
) -> Page[DunningCase]:
    stmt = select(DunningCase).where(DunningCase.merchant_id == merchant_id)
    if invoice is not None:
        stmt = stmt.where(DunningCase.invoice_id == invoice)
    if customer is not None:
        stmt = stmt.where(DunningCase.customer_id == customer)
    if state is not None:
        if state not in recovery.STATES:
            raise InvalidRequest(f"state must be one of {', '.join(recovery.STATES)}.", param="state")
        stmt = stmt.where(DunningCase.state == state)
    return await paginate(
        session,
        stmt,
        DunningCase,
        merchant_id=merchant_id,
        id_prefix="dc",
        limit=limit,
        starting_after=starting_after,
    )


def _ratio(numerator: int, denominator: int) -> str | None:
    if denominator == 0:
        return None
    return str((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


async def recovery_metrics(
    session: AsyncSession, merchant_id: str, *, since: datetime | None = None
) -> schemas.DunningMetrics:
    """Recovery figures, computed in SQL over the merchant's cases (opened at or after `since`). Recovery rate =
    recovered / closed cases; attempts per recovery = counted attempts of recovered cases / recovered cases."""
    where = [DunningCase.merchant_id == merchant_id]
    if since is not None:
        where.append(DunningCase.first_failure_at >= since)

    def count_if(condition: Any) -> Any:
        return func.count(case((condition, 1)))

    row = (
        await session.execute(
            select(
                func.count(),
                count_if(DunningCase.state.in_(("retrying", "awaiting_payment_method"))),
                count_if(DunningCase.state == "recovered"),
                count_if(DunningCase.state == "exhausted"),
                count_if(DunningCase.state == "voided"),
                func.coalesce(func.sum(case((DunningCase.state == "recovered", DunningCase.attempts))), 0),
                count_if(DunningCase.final_action == "cancel"),
                count_if(DunningCase.final_action == "unpaid"),
                count_if(DunningCase.final_action == "past_due"),
            ).where(*where)
        )
    ).one()
    opened, open_, recovered, exhausted, voided, recovered_attempts, cancel, unpaid, past_due = (
        int(v) for v in row
    )
    revenue = await session.execute(
        select(DunningCase.currency, func.sum(DunningCase.recovered_amount), func.count())
        .where(*where, DunningCase.state == "recovered")
        .group_by(DunningCase.currency)
        .order_by(DunningCase.currency)
    )
    closed = recovered + exhausted + voided
    return schemas.DunningMetrics(
        since=since,
        cases_opened=opened,
        open_cases=open_,
        closed_cases=closed,
        recovered_cases=recovered,
        exhausted_cases=exhausted,
        voided_cases=voided,
        recovery_rate=_ratio(recovered, closed),
        attempts_per_recovery=_ratio(recovered_attempts, recovered),
        recovered_revenue=[
            schemas.RecoveredRevenue(currency=currency, amount=int(amount or 0), cases=int(n))
            for currency, amount, n in revenue
        ],
        final_actions=schemas.FinalActionsTaken(cancel=cancel, unpaid=unpaid, past_due=past_due),
    )
