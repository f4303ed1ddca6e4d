"""The review of a payment the risk check held (SPEC §9): approve (it is charged, once) or refuse (it fails as a
hard decline, highest_risk_level). Approval runs the three steps of a charge (billing.payments.service): the held
row becomes pending and is committed before any gateway hears of it, with the payment id as the idempotency key,
so an approval repeated, raced or interrupted never charges twice."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.service import get_customer
from billing.db.engine import transaction
from billing.errors import Conflict
from billing.payment_methods.service import chargeable_payment_method
from billing.payments import hooks
from billing.payments.models import Payment
from billing.payments.service import (
    PendingCharge,
    charge_pending,
    finish_payment,
    get_payment,
    hold_or_block,
    render_payment,
    route_for,
    settle_deadline,
)
from billing.risk.models import RiskDecision
from billing.risk.service import latest_decision, record_review
from billing.services import Services
from billing.test_clocks.service import clock_for
from webhooks.outbox import record_event

APPROVED, REFUSED = "approved", "refused"

# Called in the transaction that records the review's outcome, with the payment as it now stands: the console
# writes its audit entry there, so the entry and the outcome commit together.
Recorder = Callable[[AsyncSession, Payment], None]


async def _held(
    session: AsyncSession, merchant_id: str, payment_id: str, action: str
) -> tuple[Payment, bool]:
    """The payment, locked, and whether it still waits for review. A payment already reviewed the same way is
    returned as it stands (a repeated request); one reviewed the other way, or never held, is a conflict."""
    payment = await get_payment(session, merchant_id, payment_id, for_update=True)
    if payment.status == "requires_review":
        return payment, True
    decision: RiskDecision | None = await latest_decision(session, merchant_id, payment.id)
    done = (decision.review or {}).get("action") if decision is not None else None
    if done == action:
        return payment, False
    raise Conflict(
        f"Payment {payment.id} is {payment.status}"
        f"{f' ({done} in review)' if done else ''}: only a payment held for review (status requires_review) can "
        f"be {action}.",
        code="payment_not_in_review",
    )


async def approve_payment(
    services: Services, merchant_id: str, payment_id: str, *, by: str, record: Recorder | None = None
) -> Payment:
    """Charge a held payment, exactly once; a repeated approval returns the payment as it stands."""
    async with transaction(services.sessions) as session:
        payment, held = await _held(session, merchant_id, payment_id, APPROVED)
        if not held:
            return payment
        customer = await get_customer(session, merchant_id, payment.customer_id)
        clock = await clock_for(session, merchant_id, payment.test_clock_id)
        pm, entry = await chargeable_payment_method(session, merchant_id, customer, payment.payment_method_id)
        route, refusal = await route_for(session, merchant_id, pm, payment.amount, payment.currency, clock)
        payment.status = "pending"
        payment.failure_message = None
        payment.next_action = "wait"
        payment.route = [c.id for c in route]
        payment.settle_after = settle_deadline(route)
        await record_review(session, merchant_id, payment.id, APPROVED, by, clock)
        await session.flush()
        pending = PendingCharge(
            payment=payment,
            route=route,
            payment_method=pm,
            entry=entry,
            refusal=refusal,
            locale=customer.locale,
            clock=clock,
            description=payment.description,
            metadata=dict(payment.metadata_),
        )
    result = await charge_pending(services, pending)
    async with transaction(services.sessions) as session:
        settled = await finish_payment(session, pending, result)
        await hooks.payment_reviewed.fire(hooks.PaymentSettled(session, settled, clock))
        if record is not None:
            record(session, settled)
        return settled


async def refuse_payment(
    services: Services, merchant_id: str, payment_id: str, *, by: str, record: Recorder | None = None
) -> Payment:
    """Fail a held payment as a hard decline (highest_risk_level); nothing was or will be charged."""
    async with transaction(services.sessions) as session:
        payment, held = await _held(session, merchant_id, payment_id, REFUSED)
        if not held:
            return payment
        customer = await get_customer(session, merchant_id, payment.customer_id)
        clock = await clock_for(session, merchant_id, payment.test_clock_id)
        hold_or_block(payment, "failed", "refused_in_review", customer.locale, clock)
        await record_review(session, merchant_id, payment.id, REFUSED, by, clock)
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="payment.failed",
            obj=render_payment(payment),
            clock=clock,
        )
        await hooks.payment_reviewed.fire(hooks.PaymentSettled(session, payment, clock))
        if record is not None:
            record(session, payment)
        return payment
