"""Dunning cases (SPEC §6; the rules are the pure modules `dunning.recovery`, `dunning.declines`,
`dunning.policy`): one case per invoice whose automatic charge failed, opened and moved by `decide_after_failure`,
closed when the invoice is paid (recovered) or closed unpaid (voided), read by the API and the metrics.

A case opens at the first failed automatic charge of a `charge_automatically` invoice (renewals, trial
conversions, plan changes invoiced at once, one-off invoices). A subscription's FIRST invoice gets no case: the
customer is in the request that creates the subscription and gets the decline as its answer; the subscription is
`incomplete` and expires after 23 hours (SPEC §6 / billing.md), as Stripe does, unless a card added or chosen
meanwhile pays that invoice (`dunning.schedule.retry_after_payment_method_change`).

Dunning hears of invoices only through their hook points (billing/invoices/hooks.py), subscribed in
billing/wiring.py: `payment_failing` (before `invoice.payment_failed` is recorded, so the event carries
`next_payment_attempt`) decides here; `invoice_payment_failed` (after the subscription moved to `past_due`) acts in
`dunning.schedule`; `invoice_paid` and `invoice_closed_unpaid` close the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.db.lookup import equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import InvalidRequest
from billing.ids import new_id
from billing.invoices import states as invoice_states
from billing.invoices.hooks import AUTOMATIC, RETRY, PaymentFailure
from billing.invoices.models import Invoice
from billing.merchants.models import Merchant
from billing.payments.models import Payment
from billing.settings.schemas import DunningSettings
from billing.settings.service import dunning_settings
from dunning import recovery, schemas
from dunning.declines import DeclineClass, classify_failure
from dunning.models import DunningCase
from dunning.policy import smart_hour
from webhooks.outbox import record_event

# Only the first automatic charge and the scheduled retries count as dunning attempts; a charge the customer or
# merchant asks for, or one a new payment method triggers, is extra.
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


def emit_case_event(session: AsyncSession, dc: DunningCase, event_type: str, clock: Clock) -> None:
    record_event(session, merchant_id=dc.merchant_id, event_type=event_type, obj=render_case(dc), clock=clock)


def in_dunning_scope(invoice: Invoice) -> bool:
    """Whether failed charges of this invoice are retried on the schedule (see the module docstring)."""
    return (
        invoice.collection_method == "charge_automatically"
        and invoice.billing_reason != "subscription_create"
    )


def failure_class(reason: str, payment: Payment | None) -> DeclineClass:
    """Classify a failed attempt (dunning.declines.classify_failure)."""
    return classify_failure(
        reason,
        charged=payment is not None,
        decline_type=payment.decline_type if payment is not None else None,
        failure_code=payment.failure_code if payment is not None else None,
    )


async def merchant_dunning_settings(session: AsyncSession, merchant_id: str) -> DunningSettings:
    raw = await session.scalar(select(Merchant.settings).where(Merchant.id == merchant_id))
    return dunning_settings(raw or {})


async def locked_case(session: AsyncSession, invoice_id: str) -> DunningCase | None:
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
    dc = await locked_case(session, invoice.id)
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
    if fresh:
        emit_case_event(session, dc, "dunning.case_opened", clock)
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


async def on_payment_failing(event: PaymentFailure) -> None:
    """Hook `payment_failing`: decide, before `invoice.payment_failed` is recorded, and answer the next attempt."""
    decision = await decide_after_failure(
        event.session,
        event.invoice,
        event.clock,
        reason=event.reason,
        payment=event.payment,
        source=event.source,
    )
    if decision is not None:
        event.decision = decision
        event.decline_class = decision.decline_class
        event.next_attempt_at = decision.next_attempt_at


# --- reading ---------------------------------------------------------------------------------------------------


async def get_case(session: AsyncSession, merchant_id: str, case_id: str) -> DunningCase:
    return await get_owned(
        session, DunningCase, case_id, merchant_id=merchant_id, prefix="dc", kind="dunning case"
    )


async def list_cases(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    invoice: str | None = None,
    customer: str | None = None,
    state: str | None = None,
) -> Page[DunningCase]:
    if state is not None and state not in recovery.STATES:
        raise InvalidRequest(f"state must be one of {', '.join(recovery.STATES)}.", param="state")
    filters = (
        equals(DunningCase.invoice_id, invoice),
        equals(DunningCase.customer_id, customer),
        equals(DunningCase.state, state),
    )
    return await list_owned(session, DunningCase, merchant_id, filters, page, prefix="dc")


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
