"""The attempt log and circuit breakers of a set of charges written together (billing.gateways.routing.
record_call_log, used by billing/payments/batch.py): every call logged, and each breaker left where the same
calls recorded one after the other (`record_calls`) leave it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from billing.gateways.models import GatewayAttempt, GatewayHealth
from billing.gateways.routing import GatewayCall, LoggedCall, record_call_log, record_calls
from billing.merchants.service import NewMerchant
from billing.services import Services

OK, DOWN, LOST = "succeeded", "technical_error", "unknown"


def _call(connection: str, outcome: str, n: int) -> GatewayCall:
    code = None if outcome == OK else f"code_{n}"
    return GatewayCall(connection, "sandbox", "charge", outcome, code, latency_ms=n)


async def _breaker(services: Services, merchant: str, connection: str) -> tuple[int, str | None, bool] | None:
    async with services.sessions() as session:
        row = await session.scalar(
            select(GatewayHealth).where(
                GatewayHealth.merchant_id == merchant, GatewayHealth.connection_id == connection
            )
        )
    if row is None:
        return None
    return row.consecutive_failures, row.last_failure_code, row.recovered_at is not None


@pytest.mark.parametrize("earlier", [0, 2], ids=["healthy", "two_failures_before"])
@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        # (failures, last failure code, recovered) after the calls, from a healthy connection.
        ([OK, OK], None),
        ([DOWN, LOST, DOWN], (3, "code_2", False)),
        ([DOWN, OK], (0, "code_0", True)),
        ([DOWN, OK, LOST, DOWN], (2, "code_3", True)),
        ([OK, DOWN, DOWN, OK, DOWN], (1, "code_4", True)),
    ],
)
async def test_calls_logged_together_move_each_breaker_as_one_by_one(
    services: Services,
    merchant: NewMerchant,
    outcomes: list[str],
    expected: tuple[int, str | None, bool] | None,
    earlier: int,
) -> None:
    async with services.sessions() as session, session.begin():
        for name in ("one_by_one", "together"):
            await record_calls(session, merchant.id, [_call(name, DOWN, 100 + i) for i in range(earlier)])
    async with services.sessions() as session, session.begin():
        for n, outcome in enumerate(outcomes):
            await record_calls(session, merchant.id, [_call("one_by_one", outcome, n)])
    async with services.sessions() as session, session.begin():
        await record_call_log(
            session,
            [
                LoggedCall(merchant.id, _call("together", outcome, n), payment_id=None)
                for n, outcome in enumerate(outcomes)
            ],
        )
    together = await _breaker(services, merchant.id, "together")
    assert together == await _breaker(services, merchant.id, "one_by_one")
    if earlier == 0:
        assert together == expected
    async with services.sessions() as session:
        logged = await session.scalar(
            select(func.count())
            .select_from(GatewayAttempt)
            .where(GatewayAttempt.merchant_id == merchant.id, GatewayAttempt.connection_id == "together")
        )
    assert logged == earlier + len(outcomes)
