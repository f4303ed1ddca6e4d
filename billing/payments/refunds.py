"""Refunds: full or partial, never more than was captured, through the connection that took the payment.

Same shape as collection: the pending refund is committed first (under a lock of its payment, so concurrent
refunds cannot together exceed the amount), then the gateway is called with the refund id as its idempotency
key, then the outcome is recorded. The client's Idempotency-Key is stored on the refund: a retried request finds
its refund even if the API's own response record was lost. A refund whose outcome is unknown, or whose gateway
was down, stays pending; the janitor asks the gateway and, if it never received the refund, sends it again with
the same key, which the gateway deduplicates, so refunds go through eventually and at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Required, TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock, utc_now
from billing.db.engine import transaction
from billing.db.lookup import equals, get_owned, list_owned, lock_again
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, IdempotencyError, InvalidRequest, Unprocessable
from billing.gateways.base import (
    ConnectionConfig,
    RefundFailed,
    RefundRequest,
    RefundSucceeded,
    RetrieveRefundOutcome,
)
from billing.gateways.routing import GatewayCall, call_gateway, record_calls
from billing.ids import new_id
from billing.metadata import validate_metadata
from billing.payments import schemas
from billing.payments.models import Payment, Refund
from billing.payments.service import SETTLE_MARGIN, get_payment, settle_deadline
from billing.services import Services
from billing.settings.service import gateway_connections
from billing.test_clocks.service import clock_for
from webhooks.outbox import record_event

REFUND_FAILURES = {
    "amount_exceeds_charge": "The gateway refused the refund: it is more than what is left of the charge.",
    "charge_not_captured": "The gateway refused the refund: the charge was not captured.",
    "charge_not_found": "The gateway has no record of the charge this refund is for.",
}


def render_refund(refund: Refund) -> schemas.Refund:
    return schemas.Refund(
        id=refund.id,
        created_at=refund.created_at,
        payment=refund.payment_id,
        amount=refund.amount,
        currency=refund.currency,
        status=refund.status,  # type: ignore[arg-type]
        reason=refund.reason,  # type: ignore[arg-type]
        gateway=refund.gateway,
        failure_code=refund.failure_code,
        failure_message=refund.failure_message,
        settled_at=refund.settled_at,
        metadata=refund.metadata_,
    )


async def _refund_by_key(session: AsyncSession, merchant_id: str, key: str) -> Refund | None:
    return await session.scalar(
        select(Refund).where(Refund.merchant_id == merchant_id, Refund.idempotency_key == key)
    )


async def refundable_amount(session: AsyncSession, payment: Payment) -> int:
    """What is left to refund: the amount minus every refund that succeeded or may still succeed."""
    reserved = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status.in_(("pending", "succeeded"))
        )
    )
    return payment.amount - int(reserved or 0)


async def _connection(
    session: AsyncSession, merchant_id: str, connection_id: str | None
) -> ConnectionConfig | None:
    for connection in await gateway_connections(session, merchant_id):
        if connection.id == connection_id:
            return connection
    return None


@dataclass(frozen=True)
class RefundToSend:
    """A refund written as pending by `begin_refund`, and what sending it needs once that row is committed."""

    refund: Refund
    connection: ConnectionConfig
    charge_reference: str | None
    clock: Clock


class RefundOrder(TypedDict, total=False):
    """What to refund: the keyword arguments of `create_refund` and `begin_refund`."""

    merchant_id: Required[str]
    payment_id: Required[str]
    # Default: all that is left.
    amount: int | None
    reason: str | None
    metadata: dict[str, str] | None
    # The client's Idempotency-Key: a retry finds the refund it made even if the API's own record was lost.
    idempotency_key: str | None


async def create_refund(services: Services, **order: Unpack[RefundOrder]) -> Refund:
    """Refund `amount` (default: all that is left) of a succeeded payment; returns the refund in its state.

    Its transactions are its own, one after the other: a request calls it only once it has committed and
    released its own connection (`ctx.committed()`)."""
    # 1. The pending refund, committed before the gateway hears of it.
    async with transaction(services.sessions) as session:
        begun = await begin_refund(session, **order)
    if isinstance(begun, Refund):
        return begun
    # 2. The gateway.
    outcome, call = await send_refund(services, begun)
    # 3. The outcome.
    async with transaction(services.sessions) as session:
        return await finish_refund(session, begun, outcome, call)


async def begin_refund(session: AsyncSession, **order: Unpack[RefundOrder]) -> Refund | RefundToSend:
    """Step 1, in the caller's transaction: the refund made earlier with `idempotency_key` (never sent again), or a
    new pending refund (with its refund.created event) as a RefundToSend, which the caller commits before
    `send_refund`."""
    merchant_id, payment_id, amount = order["merchant_id"], order["payment_id"], order.get("amount")
    reason, metadata, idempotency_key = (
        order.get("reason"),
        order.get("metadata"),
        order.get("idempotency_key"),
    )
    # The payment's lock serializes every refund of it: concurrent ones cannot together exceed the amount,
    # and a concurrent retry with the same key finds the first one's committed refund just below.
    payment = await get_payment(session, merchant_id, payment_id, param="payment", for_update=True)
    if idempotency_key is not None:
        earlier = await _refund_by_key(session, merchant_id, idempotency_key)
        if earlier is not None:
            if earlier.payment_id != payment_id or (amount is not None and earlier.amount != amount):
                raise IdempotencyError(
                    "This Idempotency-Key was used for another refund. Use a new key for a new refund.",
                    param="Idempotency-Key",
                )
            return earlier
    if payment.status == "failed":
        raise Unprocessable(
            f"Payment {payment.id} failed ({payment.failure_code}): nothing was captured, so there is nothing "
            "to refund.",
            code="payment_not_captured",
            param="payment",
        )
    if payment.status == "pending":
        raise Conflict(
            f"Payment {payment.id} is pending: its outcome is still being confirmed. Refund it once it has "
            "succeeded.",
            code="payment_pending",
            param="payment",
        )
    left = await refundable_amount(session, payment)
    if left <= 0:
        raise Unprocessable(
            f"Payment {payment.id} is already fully refunded ({payment.amount} {payment.currency}).",
            code="charge_already_refunded",
            param="payment",
        )
    if amount is None:
        amount = left
    elif amount > left:
        raise InvalidRequest(
            f"amount {amount} is more than what is left to refund on {payment.id}: {left} {payment.currency} "
            f"(of {payment.amount} captured). Refund {left} or less.",
            code="amount_too_large",
            param="amount",
        )
    connection = await _connection(session, merchant_id, payment.gateway)
    if connection is None:
        raise Unprocessable(
            f"Payment {payment.id} was taken by gateway connection {payment.gateway!r}, which is no longer in "
            "settings.gateways. Add it back (with weight 0 to keep it out of new charges) to refund through it.",
            code="gateway_not_configured",
            param="payment",
        )
    clock = await clock_for(session, merchant_id, payment.test_clock_id)
    refund = Refund(
        id=new_id("re"),
        merchant_id=merchant_id,
        payment_id=payment.id,
        amount=amount,
        currency=payment.currency,
        status="pending",
        reason=reason,
        gateway=connection.id,
        idempotency_key=idempotency_key,
        metadata_=validate_metadata(metadata or {}),
        test_clock_id=payment.test_clock_id,
        created_at=clock.now(),
        settle_after=settle_deadline([connection]),
        janitor_attempts=0,
    )
    session.add(refund)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="refund.created",
        obj=render_refund(refund),
        clock=clock,
    )
    return RefundToSend(
        refund=refund, connection=connection, charge_reference=payment.gateway_reference, clock=clock
    )


async def send_refund(services: Services, pending: RefundToSend) -> tuple[RetrieveRefundOutcome, GatewayCall]:
    """Step 2: the refund through the connection that took the payment, with the refund id as its idempotency
    key. No database connection is used."""
    refund = pending.refund
    request = RefundRequest(
        idempotency_key=refund.id,
        charge_key=refund.payment_id,
        charge_reference=pending.charge_reference,
        amount=refund.amount,
        currency=refund.currency,
        reason=refund.reason,
    )
    return await call_gateway(
        services.gateways, pending.connection, "refund", lambda gateway: gateway.refund(request)
    )


async def finish_refund(
    session: AsyncSession, pending: RefundToSend, outcome: RetrieveRefundOutcome, call: GatewayCall
) -> Refund:
    """Step 3, in the caller's transaction: the call in the attempt log and the outcome on the refund (unless the
    janitor settled it meanwhile). Returns the refund as it now stands."""
    await record_calls(session, pending.refund.merchant_id, [call], refund_id=pending.refund.id)
    locked = await lock_again(session, Refund, pending.refund.id)
    await apply_refund_outcome(session, locked, outcome, pending.clock)
    return locked


async def apply_refund_outcome(
    session: AsyncSession, refund: Refund, outcome: RetrieveRefundOutcome, clock: Clock
) -> bool:
    """Record a gateway's answer about `refund` (locked by the caller); True when it settled now."""
    if refund.status != "pending":
        return False
    if isinstance(outcome, RefundSucceeded):
        payment = await session.scalar(
            select(Payment).where(Payment.id == refund.payment_id).with_for_update()
        )
        assert payment is not None
        payment.amount_refunded += refund.amount
        refund.status = "succeeded"
        refund.gateway_reference = outcome.reference
        event_type = "refund.succeeded"
    elif isinstance(outcome, RefundFailed):
        refund.status = "failed"
        refund.failure_code = outcome.code
        refund.failure_message = REFUND_FAILURES.get(
            outcome.code, f"The gateway refused the refund ({outcome.code})."
        )
        refund.gateway_reference = outcome.reference
        event_type = "refund.failed"
    else:
        refund.settle_after = max(refund.settle_after, utc_now() + SETTLE_MARGIN)
        await session.flush()
        return False
    refund.settled_at = clock.now()
    await session.flush()
    record_event(
        session, merchant_id=refund.merchant_id, event_type=event_type, obj=render_refund(refund), clock=clock
    )
    return True


async def get_refund(session: AsyncSession, merchant_id: str, refund_id: str) -> Refund:
    return await get_owned(session, Refund, refund_id, merchant_id=merchant_id, prefix="re", kind="refund")


async def list_refunds(
    session: AsyncSession, merchant_id: str, page: PageRequest, *, payment: str | None = None
) -> Page[Refund]:
    return await list_owned(
        session, Refund, merchant_id, (equals(Refund.payment_id, payment),), page, prefix="re"
    )
