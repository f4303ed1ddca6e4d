"""Debit agreements as payment methods (SPEC §8): one use case per step of an agreement's life.

- `create_agreement`: a pending payment method and the link the customer approves (a redirect or a QR code of
  it). The connection is chosen by routing among the merchant's connections of the channel (by priority and
  weight, open circuits last; a connection that fails technically to start the signing hands over to the next).
  The channel is called outside the request's transaction; nothing is written before it answered.
- `activate_agreement` / `end_agreement_by_channel`: what a verified notification does (billing.channels.notify).
  Activation retries the customer's unpaid invoices at once, as a new card does (SPEC §6).
- `settle_pending_agreements`: the janitor asks the channel about agreements whose notification did not come,
  and expires those whose link ran out unapproved.
- `detach_agreement`: the merchant unsigns: the channel first (nothing changes if it does not confirm), then
  the payment method is detached.
The limits checked before any debit reaches the channel are in billing.payment_methods.debits (the charge path
needs them, and none of these use cases).

An agreement belongs to the account that signed it: its debits, refunds and unsigning go to that connection
only, never fail over to another account of the same channel (which does not know the agreement). A connection
with agreements can be drained (weight 0: no new agreements) but not removed while they are attached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec
import segno
from sqlalchemy import DateTime, select
from sqlalchemy import cast as cast_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.channels.base import (
    CHANNEL_CURRENCY,
    AgreementEnded,
    AgreementSigned,
    AgreementState,
    AgreementTerms,
    ChannelGateway,
    SignLink,
)
from billing.clock import Clock, utc_now
from billing.customers.models import Customer
from billing.customers.service import get_customer
from billing.db.engine import transaction
from billing.errors import ApiError, InvalidRequest, Unprocessable
from billing.gateways.base import ConnectionConfig, NotFound, TechnicalError, Unknown
from billing.gateways.registry import GatewayPool, serves
from billing.gateways.routing import open_circuits, order_connections
from billing.ids import new_id
from billing.metadata import validate_metadata
from billing.payment_methods.debits import instrument
from billing.payment_methods.hooks import PaymentMethodChosen, payment_method_added
from billing.payment_methods.models import ACTIVE, EXPIRED, PENDING, REVOKED, PaymentMethod
from billing.payment_methods.rendering import render_payment_method
from billing.payment_methods.schemas import AgreementInput, PaymentMethodCreate
from billing.payment_methods.service import detach_payment_method, get_payment_method
from billing.risk.service import Subject, check_risk
from billing.settings.service import gateway_connections
from billing.test_clocks.service import clock_for
from webhooks.outbox import previous_attributes, record_event

SIGN_LINK_LIFETIME = timedelta(minutes=30)
# The janitor asks the channel about a pending agreement this long after its link was made, then as often again;
# a link that ran out is expired only after this grace, for an approval made at its last moment.
RECHECK_EVERY = timedelta(minutes=5)
EXPIRY_GRACE = timedelta(minutes=2)
CHANNEL_NAMES = {"alipay": "Alipay", "wechat_pay": "WeChat Pay", "unionpay": "UnionPay", "ecny": "e-CNY"}
OutsideTransaction = Callable[[], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class AgreementPlan:
    """Everything decided before the channel is called."""

    payment_method_id: str
    merchant_id: str
    customer_id: str
    type: str
    terms: AgreementTerms
    limits: dict[str, Any]
    candidates: list[ConnectionConfig]
    metadata: dict[str, str]
    clock: Clock


def qr_code_svg(url: str) -> str:
    """The link as an SVG QR code (what a desktop page shows for the customer's phone to scan)."""
    svg: str = segno.make(url, error="l").svg_inline(scale=3, border=2)
    return svg


def _check_terms(kind: str, terms: AgreementInput) -> None:
    period = terms.period
    if period.interval == "day" and kind == "alipay" and period.interval_count < 7:
        raise InvalidRequest(
            "Alipay periodic agreements run on periods of at least 7 days (or whole months): set "
            "agreement.period.interval_count to 7 or more, or use interval month.",
            param="agreement.period.interval_count",
        )
    if period.interval == "month" and period.interval_count > 12:
        raise InvalidRequest(
            "agreement.period.interval_count is 1 to 12 months.", param="agreement.period.interval_count"
        )
    if terms.period_amount_limit is not None and terms.period_amount_limit < terms.single_amount_limit:
        raise InvalidRequest(
            "agreement.period_amount_limit must be at least agreement.single_amount_limit (one full debit).",
            param="agreement.period_amount_limit",
        )


async def plan_agreement(
    session: AsyncSession, merchant_id: str, params: PaymentMethodCreate, pool: GatewayPool
) -> AgreementPlan:
    """Check the request and choose the connections to try, without calling anything."""
    kind = params.type
    name = CHANNEL_NAMES.get(kind, kind)
    if params.card is not None or params.token is not None:
        raise InvalidRequest(
            f"A {kind} payment method is an agreement the customer approves in {name}: give no card or token.",
            code="parameters_exclusive",
            param="card" if params.card is not None else "token",
        )
    terms = params.agreement or AgreementInput()
    _check_terms(kind, terms)
    customer = await get_customer(session, merchant_id, params.customer, param="customer")
    if customer.currency is not None and customer.currency != CHANNEL_CURRENCY:
        raise InvalidRequest(
            f"{name} debits CNY only, and customer {customer.id} pays in {customer.currency}. Use a card for this "
            "customer, or a customer whose currency is CNY.",
            code="currency_not_supported",
            param="customer",
        )
    configured = [c for c in await gateway_connections(session, merchant_id) if serves(c, kind)]
    if terms.connection is not None:
        candidates = [c for c in configured if c.id == terms.connection]
        if not candidates:
            raise InvalidRequest(
                f"{terms.connection!r} is not a {kind} connection of settings.gateways.",
                param="agreement.connection",
            )
    else:
        opened = await open_circuits(session, merchant_id, [c.id for c in configured])
        candidates = order_connections(configured, opened)
    if not candidates:
        raise Unprocessable(
            f"No {kind} connection can take new agreements. Add one with PATCH /v1/settings (gateways), e.g. "
            f'{{"id": "{kind}", "type": "{kind}", "url": null}} for the sandbox, or give one a weight above 0.',
            code="gateway_not_configured",
            param="type",
        )
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    pm_id = new_id("pm")
    return AgreementPlan(
        payment_method_id=pm_id,
        merchant_id=merchant_id,
        customer_id=customer.id,
        type=kind,
        terms=AgreementTerms(
            external_agreement_no=pm_id.replace("_", ""),
            single_amount_limit=terms.single_amount_limit,
            period=terms.period.interval,
            period_count=terms.period.interval_count,
            subject=(customer.email or customer.name or customer.id)[:64],
            return_url=terms.return_url,
            expires_at=utc_now() + SIGN_LINK_LIFETIME,
            display=terms.display,
        ),
        limits={
            "single_amount_limit": terms.single_amount_limit,
            "period": {"interval": terms.period.interval, "interval_count": terms.period.interval_count},
            "period_amount_limit": terms.period_amount_limit,
        },
        candidates=candidates,
        metadata=validate_metadata(params.metadata),
        clock=clock,
    )


async def open_sign_link(pool: GatewayPool, plan: AgreementPlan) -> tuple[ConnectionConfig, SignLink]:
    """Ask the channel for the signing link, connection after connection until one gives it. A failed start
    moves no money (at worst the channel keeps an unused pre-signing), so unknown outcomes fail over too."""
    failures: list[str] = []
    for connection in plan.candidates:
        adapter = cast(ChannelGateway, pool.gateway(connection))
        outcome = await adapter.start_agreement(plan.terms)
        if isinstance(outcome, SignLink):
            return connection, outcome
        failures.append(f"{connection.id}: {outcome.detail}")
    raise ApiError(
        f"{CHANNEL_NAMES.get(plan.type, plan.type)} could not start the agreement ({'; '.join(failures)}). Nothing "
        "was created; try again.",
        code="channel_unavailable",
    )


async def record_pending_agreement(
    session: AsyncSession, plan: AgreementPlan, connection: ConnectionConfig, link: SignLink
) -> PaymentMethod:
    now = plan.clock.now()
    pm = PaymentMethod(
        id=plan.payment_method_id,
        merchant_id=plan.merchant_id,
        customer_id=plan.customer_id,
        type=plan.type,
        status=PENDING,
        connection_id=connection.id,
        external_agreement_no=plan.terms.external_agreement_no,
        agreement=dict(plan.limits),
        next_action={
            "type": "display_qr_code" if plan.terms.display == "qr_code" else "redirect_to_url",
            "url": link.url,
            "qr_code_svg": qr_code_svg(link.url),
            "expires_at": plan.terms.expires_at.isoformat(),
            "recheck_at": (utc_now() + RECHECK_EVERY).isoformat(),
        },
        metadata_=plan.metadata,
        created_at=now,
        updated_at=now,
    )
    session.add(pm)
    await session.flush()
    record_event(
        session,
        merchant_id=plan.merchant_id,
        event_type="payment_method.attached",
        obj=render_payment_method(pm),
        clock=plan.clock,
    )
    return pm


async def create_agreement(
    session: AsyncSession,
    merchant_id: str,
    params: PaymentMethodCreate,
    pool: GatewayPool,
    *,
    outside_transaction: OutsideTransaction | None = None,
    ip: str | None = None,
) -> PaymentMethod:
    """A pending agreement payment method with its `next_action` (SPEC §8), once the risk check allows it (a
    block is a card_error, before the channel hears of it)."""
    plan = await plan_agreement(session, merchant_id, params, pool)
    customer = await get_customer(session, merchant_id, plan.customer_id)
    await check_risk(
        session,
        merchant_id,
        Subject(type="payment_method", id=plan.payment_method_id, customer=customer, ip=ip),
        plan.clock,
    )
    async with (outside_transaction or contextlib.nullcontext)():
        connection, link = await open_sign_link(pool, plan)
    return await record_pending_agreement(session, plan, connection, link)


# --- notifications -------------------------------------------------------------------------------------------


async def find_agreement(
    session: AsyncSession,
    merchant_id: str,
    connection_id: str,
    *,
    external_agreement_no: str | None = None,
    agreement_no: str | None = None,
) -> PaymentMethod | None:
    """The agreement a notification names (locked), by our number or the channel's."""
    stmt = select(PaymentMethod).where(
        PaymentMethod.merchant_id == merchant_id, PaymentMethod.connection_id == connection_id
    )
    if external_agreement_no:
        stmt = stmt.where(PaymentMethod.external_agreement_no == external_agreement_no)
    elif agreement_no:
        stmt = stmt.where(PaymentMethod.agreement_no == agreement_no)
    else:
        return None
    return await session.scalar(stmt.order_by(PaymentMethod.seq.desc()).limit(1).with_for_update())


async def _customer_clock(session: AsyncSession, pm: PaymentMethod) -> Clock:
    test_clock = await session.scalar(select(Customer.test_clock_id).where(Customer.id == pm.customer_id))
    return await clock_for(session, pm.merchant_id, test_clock)


async def activate_agreement(session: AsyncSession, pm: PaymentMethod, signed: AgreementSigned) -> bool:
    """The customer approved (a verified notification): the agreement becomes `active` and unpaid invoices are
    tried again at once. False when nothing changed (already active, ended, or detached)."""
    if pm.status not in (PENDING, EXPIRED) or pm.detached_at is not None:
        return False
    clock = await _customer_clock(session, pm)
    pm.status = ACTIVE
    pm.agreement_no = signed.agreement_no
    pm.agreement = {
        **(pm.agreement or {}),
        "buyer": signed.buyer or None,
        "signed_at": signed.signed_at.astimezone(UTC).isoformat(),
        "valid_until": signed.valid_until.astimezone(UTC).isoformat() if signed.valid_until else None,
    }
    pm.next_action = None
    pm.updated_at = clock.now()
    await session.flush()
    record_event(
        session,
        merchant_id=pm.merchant_id,
        event_type="payment_method.activated",
        obj=render_payment_method(pm),
        clock=clock,
    )
    # SPEC §6: a payment method that becomes usable retries the customer's unpaid invoices at once.
    await payment_method_added.fire(
        PaymentMethodChosen(session, pm.merchant_id, pm.customer_id, clock, payment_method=pm.id)
    )
    return True


async def end_agreement_by_channel(session: AsyncSession, pm: PaymentMethod, ended: AgreementEnded) -> bool:
    """The agreement ended in the channel: `revoked`, and every debit from now on is a hard decline
    (revocation_of_authorization). False when nothing changed (already ended, or detached by the merchant)."""
    if pm.status not in (PENDING, ACTIVE) or pm.detached_at is not None:
        return False
    clock = await _customer_clock(session, pm)
    pm.status = REVOKED
    pm.next_action = None
    pm.agreement = {
        **(pm.agreement or {}),
        "ended_at": ended.ended_at.astimezone(UTC).isoformat(),
        "end_reason": "unsigned_by_merchant" if ended.by == "merchant" else "revoked_by_customer",
    }
    pm.updated_at = clock.now()
    await session.flush()
    record_event(
        session,
        merchant_id=pm.merchant_id,
        event_type="payment_method.revoked",
        obj=render_payment_method(pm),
        clock=clock,
    )
    return True


async def expire_agreement(session: AsyncSession, pm: PaymentMethod, moment: datetime) -> None:
    """The signing link ran out and the channel says the customer never approved: `expired` (a late approval,
    should the channel still send one, activates it all the same)."""
    clock = await _customer_clock(session, pm)
    before = msgspec.to_builtins(render_payment_method(pm))
    pm.status = EXPIRED
    pm.next_action = None
    pm.agreement = {**(pm.agreement or {}), "ended_at": moment.isoformat(), "end_reason": "link_expired"}
    pm.updated_at = clock.now()
    await session.flush()
    after = render_payment_method(pm)
    record_event(
        session,
        merchant_id=pm.merchant_id,
        event_type="payment_method.updated",
        obj=after,
        clock=clock,
        previous_attributes=previous_attributes(before, after),
    )


async def settle_pending_agreements(
    sessions: async_sessionmaker[AsyncSession],
    pool: GatewayPool,
    *,
    now: datetime | None = None,
    limit: int = 50,
    merchant_id: str | None = None,
) -> int:
    """The janitor's part for agreements (a missed notification is recovered by asking): a pending agreement is
    asked about RECHECK_EVERY after its link was made and as often again; approved, it is activated; once its link
    ran out (plus EXPIRY_GRACE) unapproved, it is `expired`. Each in its own transaction, claimed with SKIP
    LOCKED, so several workers share the work; `merchant_id` keeps the pass to one merchant. Returns how many
    changed."""
    moment = now or utc_now()
    recheck_at = cast_(PaymentMethod.next_action["recheck_at"].astext, DateTime(timezone=True))
    changed = 0
    for _ in range(limit):
        async with transaction(sessions) as session:
            pm = await session.scalar(
                select(PaymentMethod)
                .where(
                    PaymentMethod.status == PENDING,
                    PaymentMethod.detached_at.is_(None),
                    recheck_at <= moment,
                    *([PaymentMethod.merchant_id == merchant_id] if merchant_id is not None else []),
                )
                .order_by(PaymentMethod.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if pm is None:
                return changed
            assert pm.next_action is not None and pm.external_agreement_no is not None
            expires_at = datetime.fromisoformat(pm.next_action["expires_at"])
            connection = next(
                (c for c in await gateway_connections(session, pm.merchant_id) if c.id == pm.connection_id),
                None,
            )
            state = (
                await cast(ChannelGateway, pool.gateway(connection)).retrieve_agreement(
                    pm.external_agreement_no
                )
                if connection is not None
                else None
            )
            if isinstance(state, AgreementState) and state.status == "active" and state.agreement_no:
                signed = AgreementSigned(
                    notify_id="query",
                    external_agreement_no=pm.external_agreement_no,
                    agreement_no=state.agreement_no,
                    buyer=state.buyer or "",
                    signed_at=state.signed_at or moment,
                )
                changed += await activate_agreement(session, pm, signed)
            elif moment >= expires_at + EXPIRY_GRACE and isinstance(state, AgreementState | NotFound):
                await expire_agreement(session, pm, moment)
                changed += 1
            else:
                later = moment + RECHECK_EVERY
                if moment < expires_at + EXPIRY_GRACE:
                    later = min(later, expires_at + EXPIRY_GRACE)
                pm.next_action = {**pm.next_action, "recheck_at": later.isoformat()}
    return changed


# --- the merchant unsigns ---------------------------------------------------------------------------------------


async def detach_agreement(
    session: AsyncSession,
    merchant_id: str,
    payment_method_id: str,
    pool: GatewayPool,
    *,
    outside_transaction: OutsideTransaction | None = None,
) -> PaymentMethod:
    """Unsign in the channel (an active agreement), then detach. If the channel does not confirm, nothing
    changes and the merchant is told to try again: a detached agreement must not stay debitable in the channel."""
    pm = await get_payment_method(session, merchant_id, payment_method_id)
    if pm.detached_at is not None:
        raise InvalidRequest(
            f"Payment method {pm.id} is already detached.", code="payment_method_not_attached"
        )
    if pm.status == ACTIVE and pm.agreement_no:
        connection = next(
            (c for c in await gateway_connections(session, merchant_id) if c.id == pm.connection_id), None
        )
        if connection is None:
            raise Unprocessable(
                f"Agreement {pm.id} was signed with connection {pm.connection_id!r}, which is no longer in "
                "settings.gateways. Add it back (weight 0 keeps it out of new agreements) to unsign it.",
                code="gateway_not_configured",
            )
        adapter = cast(ChannelGateway, pool.gateway(connection))
        async with (outside_transaction or contextlib.nullcontext)():
            outcome = await adapter.end_agreement(instrument(pm))
        if isinstance(outcome, TechnicalError | Unknown):
            raise ApiError(
                f"{CHANNEL_NAMES.get(pm.type, pm.type)} did not confirm the unsigning of {pm.id} ({outcome.detail}). "
                "Nothing changed: the agreement is still active. Try again.",
                code="channel_unavailable",
            )
        assert isinstance(outcome, AgreementState | NotFound)
    pm = await get_payment_method(session, merchant_id, payment_method_id, for_update=True)
    if pm.detached_at is not None:
        return pm
    if pm.status in (PENDING, ACTIVE):
        reason = "unsigned_by_merchant" if pm.status == ACTIVE else "abandoned"
        pm.agreement = {**(pm.agreement or {}), "ended_at": utc_now().isoformat(), "end_reason": reason}
    pm.next_action = None
    detached, _ = await detach_payment_method(session, merchant_id, payment_method_id)
    return detached
