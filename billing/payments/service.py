"""Collecting a payment: the one use case that moves a customer's money, written so it never charges twice.

`collect_payment` is what invoice collection calls in a worker; a request that charges (POST /v1/invoices/{id}/pay,
a subscription's first invoice) runs its three steps itself (`begin_payment`, `charge_pending`, `finish_payment`)
so that it never holds two pooled connections. Three transactions:
1. The pending payment row is written and COMMITTED before any gateway hears of the charge, with its route (the
   connections it may try). Its id is the gateway idempotency key. Its `attempt_key` (purpose + attempt number)
   is unique, so two workers collecting the same thing insert one row: the second finds the first one's row
   (waiting for its commit on the unique index) and returns it without calling any gateway. A second unique
   index allows at most one pending or succeeded payment per purpose, whatever attempt numbers callers pass.
2. The charge, through the router, outside any transaction (no database connection is held while a gateway
   thinks). A crash here leaves a pending row that the janitor settles by asking the gateways.
3. The outcome, in a new transaction, applied only if the row is still pending (the janitor may have settled
   it), with the attempt statistics and the payment.succeeded / payment.failed event.

A technical error on every connection, or an unknown outcome (timeout), leaves the payment pending: the janitor
(billing.payments.janitor) asks the gateways with the same key later, and never charges again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock, utc_now
from billing.customers.models import Customer
from billing.customers.service import get_customer
from billing.db.engine import transaction
from billing.db.lookup import equals, get_owned, list_owned, lock_again
from billing.db.pagination import Page, PageRequest
from billing.errors import (
    BillingError,
    CardError,
    Conflict,
    InvalidRequest,
    Unprocessable,
)
from billing.gateways.base import (
    CardInstrument,
    ChargeRequest,
    ConnectionConfig,
    Declined,
    Instrument,
    NotFound,
    RetrieveOutcome,
    Succeeded,
    TechnicalError,
)
from billing.gateways.registry import serves
from billing.gateways.routing import (
    GatewayCall,
    RouteResult,
    charge_with_failover,
    circuit_state,
    connection_stats,
    health_rows,
    open_circuits,
    order_connections,
    record_calls,
)
from billing.ids import new_id
from billing.metadata import validate_metadata
from billing.payment_methods import debits
from billing.payment_methods.models import CARD, PaymentMethod
from billing.payment_methods.service import chargeable_payment_method
from billing.payments import schemas
from billing.payments.models import Payment
from billing.risk.messages import blocked_message, held_message
from billing.risk.rules import Decision
from billing.risk.service import Subject, check_risk
from billing.services import Services
from billing.settings.service import gateway_connections
from billing.test_clocks.service import clock_for
from billing.vault.models import VaultEntry
from dunning.declines import decline_type as decline_type_of
from dunning.messages import failure_message, next_action
from plans.money import validate_currency
from webhooks.outbox import record_event

log = logging.getLogger("billing.payments")

# Added to the route's total timeout before the janitor may look at a pending payment.
SETTLE_MARGIN = timedelta(seconds=30)
MAX_PURPOSE_LENGTH = 160


def render_payment(payment: Payment) -> schemas.Payment:
    return schemas.Payment(
        id=payment.id,
        created_at=payment.created_at,
        amount=payment.amount,
        currency=payment.currency,
        status=payment.status,  # type: ignore[arg-type]
        customer=payment.customer_id,
        payment_method=payment.payment_method_id,
        payment_method_details=schemas.PaymentMethodDetails(
            type=payment.payment_method_type,  # type: ignore[arg-type]
            card=schemas.PaymentCard(brand=payment.card_brand, last4=payment.card_last4)
            if payment.payment_method_type == CARD
            else None,
        ),
        invoice=payment.invoice_id,
        purpose=payment.purpose,
        attempt=payment.attempt,
        description=payment.description,
        gateway=payment.gateway,
        failure_code=payment.failure_code,
        decline_type=payment.decline_type,  # type: ignore[arg-type]
        failure_message=payment.failure_message,
        next_action=payment.next_action,
        amount_refunded=payment.amount_refunded,
        settled_at=payment.settled_at,
        test_clock=payment.test_clock_id,
        metadata=payment.metadata_,
    )


def settle_deadline(route: list[ConnectionConfig]) -> datetime:
    """When every request this payment may make has certainly ended (each connection's timeout, in turn)."""
    total_ms = sum(c.timeout_ms * 2 + 1000 for c in route)
    return utc_now() + timedelta(milliseconds=total_ms) + SETTLE_MARGIN


def _check_amount(amount: int, currency: str) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount >= 10**15:
        raise InvalidRequest(
            "amount must be a positive integer of minor units (e.g. 1999 for 19.99 USD).", param="amount"
        )
    try:
        return validate_currency(currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="currency") from None


async def _by_attempt_key(session: AsyncSession, merchant_id: str, attempt_key: str) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.merchant_id == merchant_id, Payment.attempt_key == attempt_key)
    )


async def _live_payment_for(session: AsyncSession, merchant_id: str, purpose: str) -> Payment | None:
    return await session.scalar(
        select(Payment).where(
            Payment.merchant_id == merchant_id,
            Payment.purpose == purpose,
            Payment.status.in_(("pending", "succeeded")),
        )
    )


@dataclass
class PendingCharge:
    """A payment row written as pending by `begin_payment`, and what its charge needs once that row is committed."""

    payment: Payment
    route: list[ConnectionConfig]
    payment_method: PaymentMethod
    # The card's vault entry (None for an agreement).
    entry: VaultEntry | None
    # A hard decline code when an agreement's debit must not reach the channel (beyond its limits).
    refusal: str | None
    locale: str
    clock: Clock
    description: str | None
    metadata: dict[str, str]


class PaymentOrder(TypedDict, total=False):
    """What to charge: the keyword arguments of `collect_payment` and `begin_payment`."""

    merchant_id: Required[str]
    customer_id: Required[str]
    amount: Required[int]
    currency: Required[str]
    # What is paid (e.g. the invoice id) and the try (dunning passes 1, 2, ...): one payment per pair, ever.
    purpose: Required[str]
    attempt: int
    payment_method: str | None
    invoice: str | None
    description: str | None
    metadata: dict[str, str] | None
    # The caller's clock (a task run by a test-clock advance sees the clock's new time before it is committed);
    # default: the customer's clock.
    clock: Clock | None
    # The address the request came from, for the risk check's IP rules (None from a worker).
    ip: str | None


async def collect_payment(services: Services, **order: Unpack[PaymentOrder]) -> Payment:
    """Charge `amount` to the customer's card once for (`purpose`, `attempt`), and return the payment row.

    Calling again with the same pair returns the same payment and never charges again. The returned payment is
    succeeded, failed (a decline: see failure_code, decline_type, next_action), or pending (the outcome is being
    confirmed).

    Its transactions are its own, one after the other; a caller that holds a transaction of its own holds a
    second connection meanwhile. A request must not: it commits, then calls the three steps itself
    (`begin_payment`, `charge_pending`, `finish_payment`) with one connection at a time."""
    # 1. The pending row, committed before any gateway hears of it.
    async with transaction(services.sessions) as session:
        begun = await begin_payment(session, services, **order)
    if isinstance(begun, Payment):
        return begun
    # 2. The charge, with no transaction open.
    result = await charge_pending(services, begun)
    # 3. The outcome.
    async with transaction(services.sessions) as session:
        return await finish_payment(session, begun, result)


async def begin_payment(
    session: AsyncSession, services: Services, **order: Unpack[PaymentOrder]
) -> Payment | PendingCharge:
    """Step 1 of a charge, in the caller's transaction: the payment of (`purpose`, `attempt`) if one exists (it is
    never charged again), else a new pending row, returned as a PendingCharge. The caller must commit that row
    before `charge_pending`: a crash after the charge then leaves a row for the janitor to settle."""
    merchant_id, amount = order["merchant_id"], order["amount"]
    payment_method, clock = order.get("payment_method"), order.get("clock")
    currency, attempt_key = checked_order(order)
    existing = await _by_attempt_key(session, merchant_id, attempt_key)
    if existing is not None:
        return existing
    customer = await get_customer(session, merchant_id, order["customer_id"], param="customer")
    if clock is None or clock.test_clock_id != customer.test_clock_id:
        clock = await clock_for(session, merchant_id, customer.test_clock_id)
    pm, entry = await chargeable_payment_method(session, merchant_id, customer, payment_method)
    route, refusal = await route_for(session, merchant_id, pm, amount, currency, clock)
    values = pending_values(order, currency, customer, pm, route, clock)
    savepoint = await session.begin_nested()
    try:
        inserted = await session.scalar(
            insert(Payment)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["merchant_id", "attempt_key"])
            .returning(Payment.id)
        )
        await savepoint.commit()
    except IntegrityError as exc:
        await savepoint.rollback()
        if "uq_payments_live_purpose" not in str(exc.orig):
            raise
        live = await _live_payment_for(session, merchant_id, order["purpose"])
        raise Conflict(
            f"{order['purpose']!r} already has a {live.status if live else 'live'} payment"
            f"{f' ({live.id})' if live else ''}: it is paid, or its outcome is being confirmed. Do not "
            "collect it again.",
            code="payment_in_progress",
            param="purpose",
        ) from None
    if inserted is None:
        # Another worker inserted this attempt first (we waited for its commit): its charge is the charge.
        row = await _by_attempt_key(session, merchant_id, attempt_key)
        assert row is not None
        return row
    payment = await session.scalar(select(Payment).where(Payment.id == inserted))
    assert payment is not None
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="payment.created",
        obj=render_payment(payment),
        clock=clock,
    )
    # SPEC §9: the risk check, in this transaction, before any gateway hears of the charge.
    decision = await check_risk(
        session,
        merchant_id,
        Subject(
            type="payment",
            id=payment.id,
            customer=customer,
            fingerprint=pm.card_fingerprint,
            amount=amount,
            currency=currency,
            ip=order.get("ip"),
        ),
        clock,
    )
    return await after_risk(
        session, payment, decision, pending_charge(order, payment, customer, pm, entry, route, refusal, clock)
    )


def pending_charge(
    order: PaymentOrder,
    payment: Payment,
    customer: Customer,
    pm: PaymentMethod,
    entry: VaultEntry | None,
    route: list[ConnectionConfig],
    refusal: str | None,
    clock: Clock,
) -> PendingCharge:
    """What the charge of `order`, begun as `payment`, needs once its row is committed."""
    return PendingCharge(
        payment=payment,
        route=route,
        payment_method=pm,
        entry=entry,
        refusal=refusal,
        locale=customer.locale,
        clock=clock,
        description=order.get("description"),
        metadata=dict(order.get("metadata") or {}),
    )


def checked_order(order: PaymentOrder) -> tuple[str, str]:
    """The order's currency (normalized) and its attempt key (purpose + attempt number); InvalidRequest for an
    amount, currency, purpose or attempt number that cannot be charged."""
    currency = _check_amount(order["amount"], order["currency"])
    purpose, attempt = order["purpose"], order.get("attempt", 1)
    if not purpose or len(purpose) > MAX_PURPOSE_LENGTH:
        raise InvalidRequest(f"purpose must be 1 to {MAX_PURPOSE_LENGTH} characters.", param="purpose")
    if attempt < 1:
        raise InvalidRequest("attempt must be 1 or more.", param="attempt")
    return currency, f"{purpose}#{attempt}"


def pending_values(
    order: PaymentOrder,
    currency: str,
    customer: Customer,
    pm: PaymentMethod,
    route: list[ConnectionConfig],
    clock: Clock,
) -> dict[str, Any]:
    """The columns of the pending payments row of `order` (checked by `checked_order`), with a new id."""
    attempt = order.get("attempt", 1)
    return dict(
        id=new_id("pay"),
        merchant_id=order["merchant_id"],
        customer_id=customer.id,
        payment_method_id=pm.id,
        invoice_id=order.get("invoice"),
        purpose=order["purpose"],
        attempt=attempt,
        attempt_key=f"{order['purpose']}#{attempt}",
        amount=order["amount"],
        currency=currency,
        status="pending",
        description=order.get("description"),
        card_brand=pm.card_brand,
        card_last4=pm.card_last4,
        payment_method_type=pm.type,
        route=[c.id for c in route],
        next_action="wait",
        amount_refunded=0,
        metadata_=validate_metadata(order.get("metadata") or {}),
        test_clock_id=clock.test_clock_id,
        created_at=clock.now(),
        settle_after=settle_deadline(route),
        janitor_attempts=0,
    )


async def after_risk(
    session: AsyncSession, payment: Payment, decision: Decision, pending: PendingCharge
) -> Payment | PendingCharge:
    """The new pending `payment` after its risk decision: `pending`, ready to charge, when allowed; else the
    payment failed (blocked) or held for review, with its event."""
    if decision.outcome == "allow":
        return pending
    rule = decision.deciding_rule or "risk"
    status = "failed" if decision.outcome == "block" else "requires_review"
    hold_or_block(payment, status, rule, pending.locale, pending.clock)
    await session.flush()
    record_event(
        session,
        merchant_id=payment.merchant_id,
        event_type="payment.failed" if decision.outcome == "block" else "payment.requires_review",
        obj=render_payment(payment),
        clock=pending.clock,
    )
    return payment


def hold_or_block(payment: Payment, status: str, rule: str, locale: str, clock: Clock) -> None:
    """A charge the risk check stopped before any gateway heard of it: failed with the hard decline
    highest_risk_level, or held (requires_review) until approved or refused. Its message names the rule."""
    payment.status = status
    payment.next_action = None
    if status == "failed":
        payment.failure_code = "highest_risk_level"
        payment.decline_type = "hard"
        payment.failure_message = blocked_message(rule, locale)
        payment.next_action = next_action("highest_risk_level")
        payment.settled_at = clock.now()
    else:
        payment.failure_message = held_message(rule, locale)


async def charge_pending(services: Services, pending: PendingCharge) -> RouteResult:
    """Step 2: the charge through the route, with the payment id as the gateway idempotency key. No database
    connection is used; a card number exists in clear only inside this call. An agreement beyond its limits
    never reaches the channel."""
    payment = pending.payment
    if pending.refusal is not None:
        return RouteResult(
            outcome=Declined(code=pending.refusal, decline_type="hard"), connection=pending.route[0]
        )
    request = ChargeRequest(
        idempotency_key=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        instrument=await _instrument(services, pending.payment_method, pending.entry),
        description=pending.description,
        metadata=pending.metadata,
    )
    try:
        return await charge_with_failover(services.gateways, pending.route, request)
    finally:
        del request


async def finish_payment(session: AsyncSession, pending: PendingCharge, result: RouteResult) -> Payment:
    """Step 3, in the caller's transaction: record the calls and apply the outcome (if the janitor has not settled
    the payment meanwhile). Returns the payment as it now stands."""
    await record_calls(session, pending.payment.merchant_id, result.calls, payment_id=pending.payment.id)
    payment = await lock_again(session, Payment, pending.payment.id)
    await apply_charge_outcome(
        session, payment, result.outcome, result.connection, pending.locale, pending.clock, result.calls
    )
    return payment


async def route_for(
    session: AsyncSession, merchant_id: str, pm: PaymentMethod, amount: int, currency: str, clock: Clock
) -> tuple[list[ConnectionConfig], str | None]:
    """The connections a charge of `pm` may try, in order, and the reason an agreement's debit must not reach the
    channel at all (a hard decline code), if any."""
    connections = await gateway_connections(session, merchant_id)
    if pm.type != CARD:
        # An agreement belongs to the account that signed it: that connection only, drained or not (SPEC §8).
        route = [c for c in connections if c.id == pm.connection_id]
        if not route:
            raise Unprocessable(
                f"Agreement {pm.id} was signed with connection {pm.connection_id!r}, which is no longer in "
                "settings.gateways. Add it back (weight 0 keeps it out of new agreements) to debit it.",
                code="gateway_not_configured",
            )
        taken = await debits.debited_in_period(session, pm, clock.now())
        return route, debits.debit_refusal(pm, amount, currency, taken)
    cards = [c for c in connections if serves(c, CARD)]
    opened = await open_circuits(session, merchant_id, [c.id for c in cards])
    route = order_connections(cards, opened)
    if not route:
        raise Unprocessable(
            "No gateway connection can take card charges: add one with PATCH /v1/settings (gateways), or give "
            "one a weight above 0.",
            code="gateway_not_configured",
        )
    return route, None


async def _instrument(services: Services, pm: PaymentMethod, entry: VaultEntry | None) -> Instrument:
    """What the gateway debits: the card from the vault (with its CVC on a first charge), or the agreement."""
    if pm.type != CARD:
        return debits.instrument(pm)
    assert entry is not None and pm.card_brand is not None
    assert pm.card_exp_month is not None and pm.card_exp_year is not None
    return CardInstrument(
        pan=services.vault.reveal(entry),
        brand=pm.card_brand,
        exp_month=pm.card_exp_month,
        exp_year=pm.card_exp_year,
        cvc=await services.cvc.take(entry),
    )


async def apply_charge_outcome(
    session: AsyncSession,
    payment: Payment,
    outcome: RetrieveOutcome,
    connection: ConnectionConfig,
    locale: str,
    clock: Clock,
    calls: list[GatewayCall] | None = None,
    *,
    flush: bool = True,
) -> bool:
    """Record what a gateway said about `payment` (locked by the caller). True when the payment settled now.
    `flush=False`: the caller flushes (a set of outcomes written together)."""
    if payment.status != "pending":
        if isinstance(outcome, Succeeded) and payment.status == "failed":
            # The gateway is the truth about money: a charge that landed after we concluded it had not.
            log.error(
                "payment %s was settled failed (%s) but gateway %s reports it succeeded; correcting",
                payment.id,
                payment.failure_code,
                connection.id,
            )
        else:
            return False
    if isinstance(outcome, Succeeded):
        payment.status = "succeeded"
        payment.gateway, payment.gateway_type = connection.id, connection.type
        payment.gateway_reference = outcome.reference
        payment.failure_code = payment.decline_type = payment.failure_message = payment.next_action = None
        payment.pending_reason = None
        payment.settled_at = clock.now()
        event_type = "payment.succeeded"
    elif isinstance(outcome, Declined):
        payment.status = "failed"
        payment.gateway, payment.gateway_type = connection.id, connection.type
        payment.gateway_reference = outcome.reference
        payment.failure_code = outcome.code
        payment.decline_type = outcome.decline_type
        payment.failure_message = failure_message(outcome.code, locale, payment.payment_method_type)
        payment.next_action = next_action(outcome.code)
        payment.pending_reason = None
        payment.settled_at = clock.now()
        event_type = "payment.failed"
    elif isinstance(outcome, NotFound):
        raise ValueError("NotFound is settled by the janitor (settle_not_processed), not here")
    else:
        # Still pending: every connection failed technically, or the last one answered nothing (timeout).
        payment.gateway, payment.gateway_type = connection.id, connection.type
        payment.pending_reason = outcome.code if isinstance(outcome, TechnicalError) else "unknown"
        payment.next_action = "wait"
        payment.settle_after = max(payment.settle_after, utc_now() + SETTLE_MARGIN)
        if flush:
            await session.flush()
        return False
    if flush:
        await session.flush()
    record_event(
        session,
        merchant_id=payment.merchant_id,
        event_type=event_type,
        obj=render_payment(payment),
        clock=clock,
    )
    return True


async def settle_not_processed(session: AsyncSession, payment: Payment, locale: str, clock: Clock) -> None:
    """Every connection of the route says it never received this charge: the payment failed, nothing was taken.
    A technical failure, not a decline: it does not count as a dunning attempt."""
    reason = payment.pending_reason
    if reason == "unknown":
        code = "gateway_timeout"
    elif reason and decline_type_of(reason) is None:
        code = reason
    else:
        code = "gateway_unavailable"
    payment.status = "failed"
    payment.failure_code = code
    payment.decline_type = None
    payment.failure_message = failure_message(code, locale, payment.payment_method_type)
    payment.next_action = next_action(code)
    payment.pending_reason = None
    payment.settled_at = clock.now()
    await session.flush()
    record_event(
        session,
        merchant_id=payment.merchant_id,
        event_type="payment.failed",
        obj=render_payment(payment),
        clock=clock,
    )


def payment_error(payment: Payment) -> BillingError | None:
    """The API's error for a collection that failed: a card_error (402) for a decline or a charge no gateway could
    take. None for a success, and None while the outcome is being confirmed (pending is not an error: the API
    answers 202 with the pending payment)."""
    if payment.status != "failed":
        return None
    return CardError(
        f"The payment failed: {payment.failure_code}. {payment.failure_message or ''}".strip(),
        code="card_declined" if payment.decline_type else "processing_error",
        extra={
            "payment": payment.id,
            "decline_code": payment.failure_code,
            "decline_type": payment.decline_type,
            "next_action": payment.next_action,
        },
    )


async def customer_locale(session: AsyncSession, customer_id: str) -> str:
    locale = await session.scalar(select(Customer.locale).where(Customer.id == customer_id))
    return locale or "en"


async def get_payment(
    session: AsyncSession,
    merchant_id: str,
    payment_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> Payment:
    return await get_owned(
        session,
        Payment,
        payment_id,
        merchant_id=merchant_id,
        prefix="pay",
        kind="payment",
        param=param,
        for_update=for_update,
    )


async def list_payments(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    customer: str | None = None,
    status: str | None = None,
    invoice: str | None = None,
) -> Page[Payment]:
    filters = (
        equals(Payment.customer_id, customer),
        equals(Payment.status, status),
        equals(Payment.invoice_id, invoice),
    )
    return await list_owned(session, Payment, merchant_id, filters, page, prefix="pay")


async def gateway_stats(session: AsyncSession, merchant_id: str, since: datetime) -> schemas.GatewayStats:
    """Success rate, latency and circuit state per connection (configured ones, and any seen in the window)."""
    configured = {c.id: c for c in await gateway_connections(session, merchant_id)}
    measured = {s.connection_id: s for s in await connection_stats(session, merchant_id, since)}
    health = await health_rows(session, merchant_id)
    now = utc_now()
    out: list[schemas.ConnectionStats] = []
    for connection_id in [*configured, *sorted(set(measured) - set(configured))]:
        stats = measured.get(connection_id)
        row = health.get(connection_id)
        decided = (stats.succeeded + stats.declined) if stats else 0
        out.append(
            schemas.ConnectionStats(
                id=connection_id,
                type=configured[connection_id].type
                if connection_id in configured
                else stats.gateway_type
                if stats
                else None,
                configured=connection_id in configured,
                charges=stats.charges if stats else 0,
                succeeded=stats.succeeded if stats else 0,
                declined=stats.declined if stats else 0,
                technical_errors=stats.technical_errors if stats else 0,
                unknown=stats.unknown if stats else 0,
                success_rate=round(stats.succeeded / stats.charges, 4) if stats and stats.charges else None,
                authorization_rate=round(stats.succeeded / decided, 4) if stats and decided else None,
                latency_ms=schemas.Latency(
                    p50=stats.latency_p50_ms if stats else None,
                    p95=stats.latency_p95_ms if stats else None,
                    p99=stats.latency_p99_ms if stats else None,
                    mean=stats.latency_mean_ms if stats else None,
                ),
                circuit=schemas.Circuit(
                    state=circuit_state(row, now),  # type: ignore[arg-type]
                    consecutive_failures=row.consecutive_failures if row else 0,
                    last_failure_at=row.last_failure_at if row else None,
                    last_failure_code=row.last_failure_code if row else None,
                ),
            )
        )
    return schemas.GatewayStats(since=since, connections=out)
