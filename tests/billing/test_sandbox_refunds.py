"""The channel sandboxes' refund reservation (billing.channels.sandbox_kit.record_refund), shared by the four
sandboxes: against the Redis store the in-process sandboxes use, an over-limit refund is refused and leaves the
refundable amount as it was, and two requests racing with one refund number record one refund."""

from __future__ import annotations

import asyncio

import pytest

from billing.channels.sandbox_kit import record_refund
from billing.gateways.sandbox_store import RedisStore
from billing.ids import random_token
from billing.services import Services


class OverLimit(Exception):
    pass


def _refund(key: str, amount: int) -> dict[str, object]:
    return {"id": random_token(16), "key": key, "amount": amount}


@pytest.fixture
def store(services: Services) -> RedisStore:
    return RedisStore(services.redis, f"{services.settings.redis_prefix}:refund-kit:{random_token(8)}")


async def test_refunds_up_to_the_trade_amount_then_the_channels_refusal(store: RedisStore) -> None:
    trade = {"key": "T1", "amount": 1000}
    held, recorded = await record_refund(store, trade, "T1:r1", _refund("T1:r1", 600), over_limit=OverLimit())
    assert recorded and held["amount"] == 600
    with pytest.raises(OverLimit):
        await record_refund(store, trade, "T1:r2", _refund("T1:r2", 401), over_limit=OverLimit())
    # The refused 401 was given back: exactly the 400 left can still be refunded.
    assert await store.increment("refunded", "T1", 0) == 600
    assert await store.get("refunds", "T1:r2") is None
    held, recorded = await record_refund(store, trade, "T1:r3", _refund("T1:r3", 400), over_limit=OverLimit())
    assert recorded and await store.increment("refunded", "T1", 0) == 1000


async def test_two_requests_with_one_refund_number_record_one_refund(store: RedisStore) -> None:
    trade = {"key": "T2", "amount": 1000}
    first, second = _refund("T2:same", 700), _refund("T2:same", 700)
    results = await asyncio.gather(
        record_refund(store, trade, "T2:same", first, over_limit=OverLimit()),
        record_refund(store, trade, "T2:same", second, over_limit=OverLimit()),
        return_exceptions=True,
    )
    # Both reserved 700 of 1,000 at once: one may be refused as over the limit, the other records; or both get
    # in, the later one finds the first's refund held and gives its own 700 back. Never two refunds.
    recorded = [r for r in results if isinstance(r, tuple) and r[1]]
    assert len(recorded) == 1
    winner = recorded[0][0]
    for result in results:
        if isinstance(result, tuple):
            assert result[0]["id"] == winner["id"]
        else:
            assert isinstance(result, OverLimit)
    assert await store.increment("refunded", "T2", 0) == 700
    assert (await store.get("refunds", "T2:same")) == winner
