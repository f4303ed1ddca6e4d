"""Routing a charge through a merchant's gateway connections (SPEC §6), with failover and circuit breakers.

Order (decided once per payment, stored on it as its `route`):
1. connections with weight 0 are drained: never used for new charges (the janitor may still ask them);
2. by `priority`, lowest first (by default a connection's priority is its position in the list, so the list
   order is the order); connections that share a priority are shuffled by weight, so two connections of
   priority 0 with weights 3 and 1 take the first try in 75 % and 25 % of payments;
3. connections whose circuit is open go last: tried only when every healthy one failed technically, because a
   probe of a probably-down gateway costs a little latency while giving up costs the payment.

Failover: a `TechnicalError` (the charge was certainly not made) moves the charge to the next connection at
once, with the same idempotency key. A `Succeeded`, `Declined` or `Unknown` stops: an unknown outcome must
never be retried elsewhere, or the customer could be charged twice; the janitor asks the gateway later.

Circuit breaker: every call's outcome is recorded (`gateway_attempts`) and a connection's consecutive failures
(technical errors and unknown outcomes) are kept in `gateway_health`, in PostgreSQL, so every API and worker
process sees the same health. A connection with CIRCUIT_THRESHOLD failures in a row, the last one less than
CIRCUIT_COOLDOWN ago, is open; after the cooldown one payment probes it (half-open) and a healthy answer closes it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import utc_now
from billing.gateways.base import ChargeOutcome, ChargeRequest, ConnectionConfig, Gateway, TechnicalError
from billing.gateways.models import GatewayAttempt, GatewayHealth
from billing.gateways.registry import GatewayPool

CIRCUIT_THRESHOLD = 3
CIRCUIT_COOLDOWN = timedelta(seconds=30)
FAILURE_OUTCOMES = frozenset({"technical_error", "unknown"})

T = TypeVar("T")


@dataclass(frozen=True)
class GatewayCall:
    connection_id: str
    gateway_type: str
    operation: str
    outcome: str
    code: str | None
    latency_ms: int


@dataclass
class RouteResult:
    outcome: ChargeOutcome
    connection: ConnectionConfig
    calls: list[GatewayCall] = field(default_factory=list)


def outcome_code(outcome: Any) -> str | None:
    return getattr(outcome, "code", None)


async def timed_call(
    connection: ConnectionConfig, operation: str, call: Awaitable[T]
) -> tuple[T, GatewayCall]:
    """Await one adapter call and describe it (outcome class, code, latency) for the stats."""
    started = time.perf_counter()
    outcome = await call
    latency = round((time.perf_counter() - started) * 1000)
    return outcome, GatewayCall(
        connection_id=connection.id,
        gateway_type=connection.type,
        operation=operation,
        outcome=str(getattr(outcome, "kind", "unknown")),
        code=outcome_code(outcome),
        latency_ms=latency,
    )


async def call_gateway(
    pool: GatewayPool,
    connection: ConnectionConfig,
    operation: str,
    call: Callable[[Gateway], Awaitable[T]],
) -> tuple[T, GatewayCall]:
    """One adapter call within the process's bound on gateway calls in flight (GatewayPool.call_slot), described
    for the stats; the latency counts the call only, not the wait for a slot."""
    async with pool.call_slot():
        return await timed_call(connection, operation, call(pool.gateway(connection)))


def order_connections(
    connections: Sequence[ConnectionConfig], open_circuits: set[str], rng: random.Random | None = None
) -> list[ConnectionConfig]:
    """The order in which a new charge tries the connections (see the module docstring)."""
    chooser = rng or random.Random()
    live = [c for c in connections if c.weight > 0]
    groups: dict[int, list[ConnectionConfig]] = {}
    for connection in live:
        groups.setdefault(connection.priority, []).append(connection)
    ordered: list[ConnectionConfig] = []
    for priority in sorted(groups):
        # Weighted random order without replacement (Efraimidis-Spirakis): sort by u^(1/w), largest first.
        group = groups[priority]
        ordered.extend(sorted(group, key=lambda c: chooser.random() ** (1.0 / c.weight), reverse=True))
    healthy = [c for c in ordered if c.id not in open_circuits]
    return healthy + [c for c in ordered if c.id in open_circuits]


async def open_circuits(
    session: AsyncSession, merchant_id: str, connection_ids: Sequence[str], now: datetime | None = None
) -> set[str]:
    """The connections whose circuit is open now."""
    if not connection_ids:
        return set()
    moment = now or utc_now()
    rows = await session.scalars(
        select(GatewayHealth.connection_id).where(
            GatewayHealth.merchant_id == merchant_id,
            GatewayHealth.connection_id.in_(list(connection_ids)),
            GatewayHealth.consecutive_failures >= CIRCUIT_THRESHOLD,
            GatewayHealth.last_failure_at > moment - CIRCUIT_COOLDOWN,
        )
    )
    return set(rows.all())


async def charge_with_failover(
    pool: GatewayPool, route: Sequence[ConnectionConfig], request: ChargeRequest
) -> RouteResult:
    """Charge through `route` in order, moving on only after a TechnicalError."""
    if not route:
        raise ValueError("a charge needs at least one gateway connection")
    calls: list[GatewayCall] = []
    outcome: ChargeOutcome = TechnicalError("gateway_unavailable", "no connection was tried")
    connection = route[0]
    for connection in route:
        outcome, call = await call_gateway(
            pool, connection, "charge", lambda gateway: gateway.charge(request)
        )
        calls.append(call)
        if not isinstance(outcome, TechnicalError):
            break
    return RouteResult(outcome=outcome, connection=connection, calls=calls)


async def record_calls(
    session: AsyncSession,
    merchant_id: str,
    calls: Sequence[GatewayCall],
    *,
    payment_id: str | None = None,
    refund_id: str | None = None,
) -> None:
    """Append the calls to the attempt log and move each connection's breaker, in the caller's transaction."""
    await record_call_log(session, [LoggedCall(merchant_id, call, payment_id, refund_id) for call in calls])


@dataclass(frozen=True)
class LoggedCall:
    """A gateway call to log, with the merchant and the payment or refund it was for."""

    merchant_id: str
    call: GatewayCall
    payment_id: str | None = None
    refund_id: str | None = None


async def record_call_log(session: AsyncSession, logged: Sequence[LoggedCall]) -> None:
    """Append the calls (in the order they were made) to the attempt log in one statement, and move each
    connection's breaker to where the calls one after the other would move it, in the caller's transaction:
    failures count up, a success resets the count (`recovered_at`), so only the failures before a connection's
    last success (if any) and those after it matter; at most three statements per connection."""
    if not logged:
        return
    now = utc_now()
    await session.execute(
        insert(GatewayAttempt),
        [
            {
                "merchant_id": entry.merchant_id,
                "connection_id": entry.call.connection_id,
                "gateway_type": entry.call.gateway_type,
                "operation": entry.call.operation,
                "outcome": entry.call.outcome,
                "code": entry.call.code,
                "latency_ms": entry.call.latency_ms,
                "payment_id": entry.payment_id,
                "refund_id": entry.refund_id,
                "created_at": now,
            }
            for entry in logged
        ],
    )
    by_connection: dict[tuple[str, str], list[GatewayCall]] = {}
    for entry in logged:
        by_connection.setdefault((entry.merchant_id, entry.call.connection_id), []).append(entry.call)
    # In key order: two batches touching the same breakers lock their rows in the same order.
    for (merchant_id, connection_id), calls in sorted(by_connection.items()):
        ok = [i for i, call in enumerate(calls) if call.outcome not in FAILURE_OUTCOMES]
        if not ok:
            await _count_failures(session, merchant_id, connection_id, calls, now)
            continue
        before = [call for call in calls[: ok[-1]] if call.outcome in FAILURE_OUTCOMES]
        await _count_failures(session, merchant_id, connection_id, before, now)
        # No row is touched (and no lock taken) while the connection is healthy.
        await session.execute(
            update(GatewayHealth)
            .where(
                GatewayHealth.merchant_id == merchant_id,
                GatewayHealth.connection_id == connection_id,
                GatewayHealth.consecutive_failures > 0,
            )
            .values(consecutive_failures=0, recovered_at=now)
        )
        await _count_failures(session, merchant_id, connection_id, calls[ok[-1] + 1 :], now)


async def _count_failures(
    session: AsyncSession,
    merchant_id: str,
    connection_id: str,
    failures: Sequence[GatewayCall],
    now: datetime,
) -> None:
    """Add `failures` (consecutive failed calls of one connection) to its breaker's count."""
    if not failures:
        return
    code = failures[-1].code or failures[-1].outcome
    stmt = pg_insert(GatewayHealth).values(
        merchant_id=merchant_id,
        connection_id=connection_id,
        consecutive_failures=len(failures),
        last_failure_at=now,
        last_failure_code=code,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id", "connection_id"],
            set_={
                "consecutive_failures": GatewayHealth.consecutive_failures + len(failures),
                "last_failure_at": now,
                "last_failure_code": code,
            },
        )
    )


@dataclass(frozen=True)
class ConnectionStats:
    connection_id: str
    gateway_type: str | None
    charges: int
    succeeded: int
    declined: int
    technical_errors: int
    unknown: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None


async def connection_stats(session: AsyncSession, merchant_id: str, since: datetime) -> list[ConnectionStats]:
    """Charge outcomes and latency percentiles per connection since `since`."""
    charge = GatewayAttempt.operation == "charge"

    def outcome_count(name: str) -> Any:
        return func.count().filter(charge, GatewayAttempt.outcome == name)

    latency = GatewayAttempt.latency_ms
    rows = await session.execute(
        select(
            GatewayAttempt.connection_id,
            func.max(GatewayAttempt.gateway_type),
            func.count().filter(charge),
            outcome_count("succeeded"),
            outcome_count("declined"),
            outcome_count("technical_error"),
            outcome_count("unknown"),
            func.percentile_cont(0.5).within_group(latency).filter(charge),
            func.percentile_cont(0.95).within_group(latency).filter(charge),
            func.percentile_cont(0.99).within_group(latency).filter(charge),
            func.avg(latency).filter(charge),
        )
        .where(GatewayAttempt.merchant_id == merchant_id, GatewayAttempt.created_at >= since)
        .group_by(GatewayAttempt.connection_id)
        .order_by(GatewayAttempt.connection_id)
    )
    return [
        ConnectionStats(
            connection_id=row[0],
            gateway_type=row[1],
            charges=int(row[2]),
            succeeded=int(row[3]),
            declined=int(row[4]),
            technical_errors=int(row[5]),
            unknown=int(row[6]),
            latency_p50_ms=_float(row[7]),
            latency_p95_ms=_float(row[8]),
            latency_p99_ms=_float(row[9]),
            latency_mean_ms=_float(row[10]),
        )
        for row in rows
    ]


async def health_rows(session: AsyncSession, merchant_id: str) -> dict[str, GatewayHealth]:
    rows = await session.scalars(select(GatewayHealth).where(GatewayHealth.merchant_id == merchant_id))
    return {row.connection_id: row for row in rows}


def circuit_state(health: GatewayHealth | None, now: datetime) -> str:
    if health is None or health.consecutive_failures < CIRCUIT_THRESHOLD or health.last_failure_at is None:
        return "closed"
    return "open" if health.last_failure_at > now - CIRCUIT_COOLDOWN else "half_open"


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
