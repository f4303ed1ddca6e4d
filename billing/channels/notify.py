"""The engine's side of the channels' notifications (SPEC §8): `POST /channels/<type>/notify/<merchant id>/
<connection id>`, the notify URL every adapter gives its channel.

A notification is verified against the connection its URL names (signature under that connection's channel key,
the app or merchant id it carries, WeChat Pay's resource decrypted with that connection's APIv3 key); anything
that does not verify, names an unknown connection, or does not match what the engine holds (a payment of another
amount) is refused with the answer the channel expects for failure, and changes nothing. A verified one is
applied in one transaction with its entry in `channel_notifications`, whose unique key makes a repeated
notification change nothing (it is answered as accepted). Then it is answered as the channel expects: Alipay the
body `success`, WeChat Pay 204.

What each does: an agreement signed → the payment method `active` (and unpaid invoices retried); an agreement
ended → `revoked`; a debit or refund result → the pending payment or refund settled exactly as the janitor would
(billing.payments), whichever of the two comes first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.channels.base import (
    AgreementEnded,
    AgreementSigned,
    ChannelGateway,
    ChargeNotice,
    Ignored,
    Notice,
    NotificationRefused,
    RefundNotice,
)
from billing.channels.models import ChannelNotification
from billing.db.engine import transaction
from billing.errors import NotFound as NoSuchObject
from billing.gateways.asgi import HttpRequest, HttpResponse, MiniApp
from billing.gateways.base import AgreementInstrument, ConnectionConfig
from billing.gateways.registry import GATEWAY_TYPES, GatewayPool, NotifyAnswer
from billing.payment_methods import agreements
from billing.payment_methods.models import PaymentMethod
from billing.payments.models import Payment, Refund
from billing.payments.refunds import apply_refund_outcome
from billing.payments.service import apply_charge_outcome, customer_locale
from billing.settings.service import gateway_connections
from billing.test_clocks.service import clock_for

log = logging.getLogger("billing.channels.notify")


class Refused(Exception):
    """Why a notification is refused (for the log; the channel only gets its failure answer)."""


async def receive_notification(
    sessions: async_sessionmaker[AsyncSession],
    pool: GatewayPool,
    *,
    channel: str,
    merchant_id: str,
    connection_id: str,
    headers: Mapping[str, str],
    body: bytes,
) -> NotifyAnswer:
    """Verify and apply one notification; the answer the channel expects."""
    kind = GATEWAY_TYPES.get(channel)
    if kind is None or kind.notification_reply is None:
        return 404, "text/plain; charset=utf-8", b"no such channel"
    reply = kind.notification_reply
    try:
        connection = await _connection(sessions, channel, merchant_id, connection_id)
        adapter = cast(ChannelGateway, pool.gateway(connection))
        if not hasattr(adapter, "read_notification"):
            raise Refused(f"connection {connection_id!r} cannot read notifications in this environment")
        try:
            notice = await adapter.read_notification(headers, body)
        except NotificationRefused as exc:
            raise Refused(str(exc)) from None
        async with transaction(sessions) as session:
            stray = await _apply_once(session, connection, notice)
    except Refused as refusal:
        log.warning("refused a %s notification for %s/%s: %s", channel, merchant_id, connection_id, refusal)
        return reply(False, "verification failed")
    if stray is not None:
        # The customer signed a link whose payment method was detached meanwhile: end it in the channel, so
        # nobody holds a debit agreement the engine will never use. Best effort: the channel keeps it otherwise.
        ended = await adapter.end_agreement(stray)
        log.info("ended stray agreement %s of %s: %s", stray.agreement_no, connection_id, ended)
    return reply(True, "")


async def _connection(
    sessions: async_sessionmaker[AsyncSession], channel: str, merchant_id: str, connection_id: str
) -> ConnectionConfig:
    async with transaction(sessions) as session:
        try:
            connections = await gateway_connections(session, merchant_id)
        except NoSuchObject:
            raise Refused(f"no merchant {merchant_id!r}") from None
    for connection in connections:
        if connection.id == connection_id and connection.type == channel:
            return connection
    raise Refused(f"merchant {merchant_id} has no {channel} connection {connection_id!r}")


async def _apply_once(
    session: AsyncSession, connection: ConnectionConfig, notice: Notice
) -> AgreementInstrument | None:
    """Record the notification (once) and apply it; returns an agreement to end in the channel, if any."""
    recorded = await session.scalar(
        insert(ChannelNotification)
        .values(
            merchant_id=connection.merchant_id,
            connection_id=connection.id,
            channel=connection.type,
            notify_id=notice.notify_id[:100],
            kind=_KINDS[type(notice)],
            outcome="received",
        )
        .on_conflict_do_nothing(index_elements=["merchant_id", "connection_id", "notify_id"])
        .returning(ChannelNotification.id)
    )
    if recorded is None:
        return None  # seen before: nothing changes
    outcome, object_id, stray = await _apply(session, connection, notice)
    await session.execute(
        update(ChannelNotification)
        .where(ChannelNotification.id == recorded)
        .values(outcome=outcome[:200], object_id=object_id)
    )
    return stray


_KINDS: dict[type, str] = {
    AgreementSigned: "agreement_signed",
    AgreementEnded: "agreement_ended",
    ChargeNotice: "charge",
    RefundNotice: "refund",
    Ignored: "ignored",
}


async def _apply(
    session: AsyncSession, connection: ConnectionConfig, notice: Notice
) -> tuple[str, str | None, AgreementInstrument | None]:
    merchant_id = connection.merchant_id
    if isinstance(notice, AgreementSigned):
        pm = await agreements.find_agreement(
            session, merchant_id, connection.id, external_agreement_no=notice.external_agreement_no
        )
        if pm is None:
            raise Refused(f"no agreement {notice.external_agreement_no} was started with this connection")
        if await agreements.activate_agreement(session, pm, notice):
            return "activated", pm.id, None
        if pm.detached_at is not None and pm.agreement_no is None:
            stray = AgreementInstrument(pm.type, notice.agreement_no, notice.external_agreement_no)
            return "signed after its payment method was detached: ending it", pm.id, stray
        return f"no change ({pm.status})", pm.id, None
    if isinstance(notice, AgreementEnded):
        found: PaymentMethod | None = await agreements.find_agreement(
            session,
            merchant_id,
            connection.id,
            external_agreement_no=notice.external_agreement_no,
            agreement_no=None if notice.external_agreement_no else notice.agreement_no,
        )
        if found is None or (found.agreement_no is not None and found.agreement_no != notice.agreement_no):
            return "no such agreement: nothing to end", None, None
        changed = await agreements.end_agreement_by_channel(session, found, notice)
        return ("revoked" if changed else f"no change ({found.status})"), found.id, None
    if isinstance(notice, ChargeNotice):
        payment = await session.scalar(
            select(Payment)
            .where(Payment.id == notice.idempotency_key, Payment.merchant_id == merchant_id)
            .with_for_update()
        )
        if payment is None or connection.id not in (payment.route or []):
            raise Refused(f"no payment {notice.idempotency_key} was sent to this connection")
        if payment.amount != notice.amount or payment.currency != notice.currency:
            raise Refused(
                f"payment {payment.id} is {payment.amount} {payment.currency}, the notification says "
                f"{notice.amount} {notice.currency}"
            )
        clock = await clock_for(session, merchant_id, payment.test_clock_id)
        locale = await customer_locale(session, payment.customer_id)
        settled = await apply_charge_outcome(session, payment, notice.outcome, connection, locale, clock)
        return ("settled " + payment.status if settled else f"no change ({payment.status})"), payment.id, None
    if isinstance(notice, RefundNotice):
        refund = await session.scalar(
            select(Refund)
            .where(Refund.id == notice.idempotency_key, Refund.merchant_id == merchant_id)
            .with_for_update()
        )
        if refund is None or refund.gateway != connection.id:
            raise Refused(f"no refund {notice.idempotency_key} was sent to this connection")
        clock = await clock_for(session, merchant_id, refund.test_clock_id)
        settled = await apply_refund_outcome(session, refund, notice.outcome, clock)
        return ("settled " + refund.status if settled else f"no change ({refund.status})"), refund.id, None
    return f"ignored: {notice.what}", None, None


class ChannelNotifyApp(MiniApp):
    """`/channels/<type>/notify/<merchant id>/<connection id>` as a raw ASGI app: mounted in the engine at
    `/channels`, and called directly (the same object) by in-process sandboxes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], pool: GatewayPool) -> None:
        self._sessions = sessions
        self._pool = pool

    async def handle(self, request: HttpRequest) -> HttpResponse:
        parts = request.parts()
        if parts[:1] == ["channels"]:
            parts = parts[1:]
        if request.method != "POST" or len(parts) != 4 or parts[1] != "notify":
            return HttpResponse.text(404, "POST /channels/<type>/notify/<merchant id>/<connection id>")
        status, content_type, body = await receive_notification(
            self._sessions,
            self._pool,
            channel=parts[0],
            merchant_id=parts[2],
            connection_id=parts[3],
            headers=request.headers,
            body=request.body,
        )
        return HttpResponse(status, body, [("content-type", content_type)] if body else [])
