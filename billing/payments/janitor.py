"""The janitor (Kill Bill's name): settles payments and refunds whose outcome a timeout, an outage or a crash
left unknown, by asking the gateways with the same idempotency key. It never charges again.

For a pending payment whose `settle_after` has passed (every request it made has ended), it asks each
connection of the payment's route, in order, `retrieve(payment id)`:
- one reports the charge (succeeded or declined): that is the outcome;
- all report they never received it: the payment failed without taking money (a technical failure; the next
  dunning attempt or the customer pays again under a new attempt);
- any cannot be asked (down, timeout, removed from settings): the payment stays pending, asked again later with
  backoff (30 s doubling, at most an hour).
A pending refund is asked for the same way; one its gateway never received is sent again with the same key.

Each payment is claimed with `FOR UPDATE SKIP LOCKED` in its own transaction, so any number of workers can run
the janitor at once; the same lock makes collect_payment's own outcome wait, and it then finds the payment
settled and leaves it alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import utc_now
from billing.db.engine import transaction
from billing.gateways.base import ConnectionConfig, Declined, NotFound, RefundRequest, Succeeded
from billing.gateways.models import GatewayAttempt
from billing.gateways.routing import GatewayCall, call_gateway, record_calls
from billing.payment_methods.models import CardToken
from billing.payments.hooks import PaymentSettled, payment_settled
from billing.payments.models import Payment, Refund
from billing.payments.refunds import apply_refund_outcome
from billing.payments.service import apply_charge_outcome, customer_locale, settle_not_processed
from billing.services import Services
from billing.settings.service import gateway_connections
from billing.test_clocks.service import clock_for
from billing.vault.service import destroy_entries

log = logging.getLogger("billing.payments.janitor")

ATTEMPT_RETENTION = timedelta(days=90)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts)))


@dataclass
class JanitorReport:
    payments_settled: int = 0
    payments_still_pending: int = 0
    refunds_settled: int = 0
    refunds_still_pending: int = 0
    tokens_purged: int = 0
    attempts_purged: int = 0


async def _connections(session: AsyncSession, merchant_id: str) -> dict[str, ConnectionConfig]:
    return {c.id: c for c in await gateway_connections(session, merchant_id)}


async def _settle_one_payment(services: Services, now: datetime) -> bool | None:
    """Settle the next due pending payment. None when there is none; True when it settled, False when not yet."""
    async with transaction(services.sessions) as session:
        payment = await session.scalar(
            select(Payment)
            .where(Payment.status == "pending", Payment.settle_after <= now)
            .order_by(Payment.settle_after)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if payment is None:
            return None
        connections = await _connections(session, payment.merchant_id)
        calls: list[GatewayCall] = []
        conclusive = True
        found: tuple[Succeeded | Declined, ConnectionConfig] | None = None
        for connection_id in payment.route:
            connection = connections.get(connection_id)
            if connection is None:
                log.warning(
                    "payment %s: connection %r is no longer configured; cannot ask it",
                    payment.id,
                    connection_id,
                )
                conclusive = False
                continue
            outcome, call = await call_gateway(
                services.gateways, connection, "retrieve", lambda gateway: gateway.retrieve(payment.id)
            )
            calls.append(call)
            if isinstance(outcome, Succeeded | Declined):
                found = (outcome, connection)
                break
            if not isinstance(outcome, NotFound):
                conclusive = False
        await record_calls(session, payment.merchant_id, calls, payment_id=payment.id)
        locale = await customer_locale(session, payment.customer_id)
        clock = await clock_for(session, payment.merchant_id, payment.test_clock_id)
        if found is not None:
            await apply_charge_outcome(session, payment, found[0], found[1], locale, clock)
            await payment_settled.fire(PaymentSettled(session, payment, clock))
            return True
        if conclusive:
            await settle_not_processed(session, payment, locale, clock)
            await payment_settled.fire(PaymentSettled(session, payment, clock))
            return True
        payment.janitor_attempts += 1
        payment.settle_after = utc_now() + backoff(payment.janitor_attempts)
        return False


async def _settle_one_refund(services: Services, now: datetime) -> bool | None:
    async with transaction(services.sessions) as session:
        refund = await session.scalar(
            select(Refund)
            .where(Refund.status == "pending", Refund.settle_after <= now)
            .order_by(Refund.settle_after)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if refund is None:
            return None
        connection = (await _connections(session, refund.merchant_id)).get(refund.gateway)
        clock = await clock_for(session, refund.merchant_id, refund.test_clock_id)
        settled = False
        if connection is not None:
            outcome, call = await call_gateway(
                services.gateways,
                connection,
                "retrieve_refund",
                lambda gateway: gateway.retrieve_refund(refund.id, refund.payment_id),
            )
            calls = [call]
            if isinstance(outcome, NotFound):
                # Never received: send it again under the same key (the gateway deduplicates).
                request = RefundRequest(
                    idempotency_key=refund.id,
                    charge_key=refund.payment_id,
                    charge_reference=None,
                    amount=refund.amount,
                    currency=refund.currency,
                    reason=refund.reason,
                )
                resent, call = await call_gateway(
                    services.gateways, connection, "refund", lambda gateway: gateway.refund(request)
                )
                calls.append(call)
                settled = await apply_refund_outcome(session, refund, resent, clock)
            else:
                settled = await apply_refund_outcome(session, refund, outcome, clock)
            await record_calls(session, refund.merchant_id, calls, refund_id=refund.id)
        if not settled:
            refund.janitor_attempts += 1
            refund.settle_after = utc_now() + backoff(refund.janitor_attempts)
        return settled


async def purge_expired_tokens(session: AsyncSession, now: datetime, limit: int = 1000) -> int:
    """Destroy the card numbers of tokens that expired unused (nothing may keep a card it has no use for)."""
    rows = (
        await session.execute(
            select(CardToken.id, CardToken.vault_entry_id)
            .where(
                CardToken.used_at.is_(None), CardToken.expires_at < now, CardToken.vault_entry_id.is_not(None)
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    await session.execute(
        update(CardToken).where(CardToken.id.in_([r.id for r in rows])).values(vault_entry_id=None)
    )
    return await destroy_entries(session, [r.vault_entry_id for r in rows])


async def run_janitor(services: Services, *, limit: int = 100, now: datetime | None = None) -> JanitorReport:
    """One pass: settle up to `limit` due payments and refunds, purge expired tokens and old attempt rows."""
    moment = now or utc_now()
    report = JanitorReport()
    for _ in range(limit):
        settled = await _settle_one_payment(services, moment)
        if settled is None:
            break
        if settled:
            report.payments_settled += 1
        else:
            report.payments_still_pending += 1
    for _ in range(limit):
        settled = await _settle_one_refund(services, moment)
        if settled is None:
            break
        if settled:
            report.refunds_settled += 1
        else:
            report.refunds_still_pending += 1
    async with transaction(services.sessions) as session:
        report.tokens_purged = await purge_expired_tokens(session, moment)
        result = await session.execute(
            delete(GatewayAttempt).where(GatewayAttempt.created_at < moment - ATTEMPT_RETENTION)
        )
        report.attempts_purged = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if report.payments_settled or report.refunds_settled or report.payments_still_pending:
        log.info("janitor: %s", report)
    return report
