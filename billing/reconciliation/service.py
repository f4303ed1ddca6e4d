"""Reconciling one connection's day (SPEC §8): its settlement listing fetched from the gateway or channel (no
database connection held meanwhile), matched against the engine's succeeded payments and refunds on that
connection (billing.reconciliation.matching), stored as the day's run (a second run of the day replaces the
first) with a `reconciliation.completed` event, in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, utc_now
from billing.db.engine import transaction
from billing.errors import ApiError, InvalidRequest, Unprocessable
from billing.gateways.base import ConnectionConfig, SettlementRow
from billing.ids import new_id
from billing.merchants.models import Merchant
from billing.payments.models import Payment, Refund
from billing.reconciliation import schemas
from billing.reconciliation.matching import EngineTransaction, Reconciliation, reconcile
from billing.reconciliation.models import ReconciliationRun
from billing.services import Services
from billing.settings.service import gateway_connections
from webhooks.outbox import record_event

log = logging.getLogger("billing.reconciliation")

# The channels of SPEC §8 cut their bills at midnight China time; card processors (the sandbox) at midnight UTC.
CHINA = ZoneInfo("Asia/Shanghai")
CHINA_CHANNELS = frozenset({"alipay", "wechat_pay", "unionpay", "ecny"})

Listing = Callable[[date], Awaitable[list[SettlementRow]]]


def day_bounds(connection_type: str, day: date) -> tuple[datetime, datetime]:
    """The instants the connection's day `day` starts and ends, in UTC."""
    zone = CHINA if connection_type in CHINA_CHANNELS else UTC
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    return start, start + timedelta(days=1)


async def engine_transactions(
    session: AsyncSession,
    merchant_id: str,
    connection: ConnectionConfig,
    day: date,
    listing: list[SettlementRow],
) -> list[EngineTransaction]:
    """The connection's succeeded payments and refunds settled in its day, and any other one a listing row names
    (a charge settled just before midnight on one side and after it on the other is matched, not missing)."""
    start, end = day_bounds(connection.type, day)
    named_charges = [r.idempotency_key for r in listing if r.kind == "charge"]
    named_refunds = [r.idempotency_key for r in listing if r.kind == "refund"]
    payments = await session.scalars(
        select(Payment).where(
            Payment.merchant_id == merchant_id,
            Payment.gateway == connection.id,
            Payment.status == "succeeded",
            or_(
                Payment.settled_at.between(start, end - timedelta(microseconds=1)),
                Payment.id.in_(named_charges),
            ),
        )
    )
    refunds = await session.scalars(
        select(Refund).where(
            Refund.merchant_id == merchant_id,
            Refund.gateway == connection.id,
            Refund.status == "succeeded",
            or_(
                Refund.settled_at.between(start, end - timedelta(microseconds=1)),
                Refund.id.in_(named_refunds),
            ),
        )
    )

    def in_day(moment: datetime | None) -> bool:
        return moment is not None and start <= moment < end

    out = [
        EngineTransaction("charge", p.id, p.gateway_reference, p.amount, p.currency, in_day(p.settled_at))
        for p in payments
    ]
    out += [
        EngineTransaction("refund", r.id, r.gateway_reference, r.amount, r.currency, in_day(r.settled_at))
        for r in refunds
    ]
    return out


def render_run(run: ReconciliationRun) -> schemas.Reconciliation:
    return schemas.Reconciliation(
        id=run.id,
        created_at=run.created_at,
        connection=run.connection_id,
        date=run.day,
        counts=schemas.ReconciliationCounts(
            matched=run.matched,
            missing_in_engine=run.missing_in_engine,
            missing_in_settlement=run.missing_in_settlement,
            amount_mismatch=run.amount_mismatch,
        ),
        totals=[schemas.ReconciliationTotals(**t) for t in run.totals],
        rows=[schemas.ReconciliationRow(**r) for r in run.rows],
    )


async def _store(
    session: AsyncSession, merchant_id: str, connection_id: str, day: date, result: Reconciliation
) -> ReconciliationRun:
    values = {
        "matched": result.count("matched"),
        "missing_in_engine": result.count("missing_in_engine"),
        "missing_in_settlement": result.count("missing_in_settlement"),
        "amount_mismatch": result.count("amount_mismatch"),
        "totals": [
            {"currency": t.currency, "charges": t.charges, "refunds": t.refunds, "fees": t.fees, "net": t.net}
            for t in result.totals
        ],
        "rows": [
            {
                "status": r.bucket,
                "kind": r.kind,
                "id": r.id,
                "reference": r.reference,
                "currency": r.currency,
                "settlement_amount": r.settlement_amount,
                "engine_amount": r.engine_amount,
                "engine_currency": r.engine_currency,
                "fee": r.fee,
            }
            for r in result.rows
        ],
        "created_at": utc_now(),
    }
    run_id = await session.scalar(
        insert(ReconciliationRun)
        .values(id=new_id("rcn"), merchant_id=merchant_id, connection_id=connection_id, day=day, **values)
        .on_conflict_do_update(index_elements=["merchant_id", "connection_id", "day"], set_=values)
        .returning(ReconciliationRun.id)
    )
    run = await session.scalar(
        select(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .execution_options(populate_existing=True)
    )
    assert run is not None
    return run


async def _connection(services: Services, merchant_id: str, connection_id: str) -> ConnectionConfig:
    async with transaction(services.sessions) as session:
        connections = {c.id: c for c in await gateway_connections(session, merchant_id)}
    connection = connections.get(connection_id)
    if connection is None:
        names = ", ".join(sorted(connections)) or "none"
        raise InvalidRequest(
            f"{connection_id!r} is not one of your gateway connections (settings.gateways: {names}).",
            code="resource_missing",
            param="connection",
        )
    return connection


async def reconcile_day(
    services: Services, merchant_id: str, connection_id: str, day: date
) -> ReconciliationRun:
    """Fetch, match and store the connection's day; return the run."""
    connection = await _connection(services, merchant_id, connection_id)
    listing_of: Listing | None = getattr(services.gateways.gateway(connection), "settlement", None)
    if listing_of is None:
        raise Unprocessable(
            f"Connection {connection_id!r} ({connection.type}) gives no settlement listing to reconcile.",
            code="settlement_not_supported",
            param="connection",
        )
    try:
        listing = await listing_of(day)
    except RuntimeError as exc:
        raise ApiError(
            f"The settlement listing of {day} could not be fetched from {connection_id!r}: {exc}. Try again later.",
            code="settlement_unavailable",
        ) from None
    async with transaction(services.sessions) as session:
        engine = await engine_transactions(session, merchant_id, connection, day, listing)
        run = await _store(session, merchant_id, connection_id, day, reconcile(listing, engine))
        shown = render_run(run)
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="reconciliation.completed",
            obj=shown,
            clock=SYSTEM_CLOCK,
        )
    return run


async def stored_run(
    session: AsyncSession, merchant_id: str, connection_id: str, day: date
) -> ReconciliationRun | None:
    return await session.scalar(
        select(ReconciliationRun).where(
            ReconciliationRun.merchant_id == merchant_id,
            ReconciliationRun.connection_id == connection_id,
            ReconciliationRun.day == day,
        )
    )


async def reconcile_yesterday(services: Services, *, today: date | None = None) -> int:
    """The daily task: yesterday (UTC) for every connection of every merchant that has no run for it yet.
    Idempotent (a second worker finds the runs); a connection whose listing cannot be had is logged, and its day
    can be run on demand through the API. Returns how many runs it stored."""
    day = (today or utc_now().date()) - timedelta(days=1)
    async with transaction(services.sessions) as session:
        merchants = list(await session.scalars(select(Merchant.id)))
    stored = 0
    for merchant_id in merchants:
        async with transaction(services.sessions) as session:
            connections = await gateway_connections(session, merchant_id)
            todo = [c.id for c in connections if await stored_run(session, merchant_id, c.id, day) is None]
        for connection_id in todo:
            try:
                await reconcile_day(services, merchant_id, connection_id, day)
                stored += 1
            except (ApiError, Unprocessable) as exc:
                log.warning("reconciliation of %s / %s on %s: %s", merchant_id, connection_id, day, exc)
    return stored
