"""Rate limits (SPEC §3, issue 16 item 5) through the HTTP API, with an app built on small limits: per secret key,
a separate budget for usage ingestion, per client IP without a secret key, and failing open without Redis."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from billing.api.app import create_app
from billing.api.rate_limit import RateLimiter
from billing.merchants.service import NewMerchant
from billing.services import Services


@pytest.fixture
async def small_limits(services: Services) -> Any:
    """The API with 1 request/s and bursts of 3 per key, 2 at once for usage, 1 with bursts of 2 per IP; its
    buckets under a prefix of their own, so no other test's traffic spends from them."""
    settings = replace(
        services.settings,
        redis_prefix=f"{services.settings.redis_prefix}-limits-{secrets.token_hex(4)}",
        rate_limit_per_key=(1, 3),
        rate_limit_usage_per_key=(1, 2),
        rate_limit_per_ip=(1, 2),
    )
    return create_app(replace(services, settings=settings))


def _client(app: Any, key: str | None = None, address: str = "127.0.0.1") -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://billing.test", headers=headers)


async def test_a_key_over_its_budget_gets_429_with_retry_after_and_another_key_does_not(
    small_limits: Any, merchant: NewMerchant, other_merchant: NewMerchant
) -> None:
    async with _client(small_limits, merchant.secret_key) as api:
        answers = [await api.get("/v1/customers") for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
        assert [answer.headers["ratelimit-remaining"] for answer in answers[:3]] == ["2", "1", "0"]
        assert answers[0].headers["ratelimit-limit"] == "3"
        refused = answers[3]
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
        assert "1 requests per second with bursts of 3" in error["message"]
        assert "Retry after 1 second" in error["message"]
        # Usage ingestion has its own budget: the exhausted key still sends events (here refused by
        # validation, not by the limit), twice, then meets that budget's limit.
        usage = [await api.post("/v1/usage_events", json={}) for _ in range(3)]
        assert [answer.status_code for answer in usage] == [400, 400, 429]
    async with _client(small_limits, other_merchant.secret_key) as other:
        assert (await other.get("/v1/customers")).status_code == 200


async def test_requests_without_a_secret_key_are_counted_per_client_ip(small_limits: Any) -> None:
    async with _client(small_limits, address="192.0.2.10") as anonymous:
        statuses = [(await anonymous.get("/v1/customers")).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    async with _client(small_limits, "pk_not_a_real_key", address="192.0.2.10") as publishable:
        assert (await publishable.post("/v1/tokens", json={})).status_code == 429
    async with _client(small_limits, address="192.0.2.11") as elsewhere:
        assert (await elsewhere.get("/v1/customers")).status_code == 401


async def test_without_redis_requests_go_through(small_limits: Any, merchant: NewMerchant) -> None:
    # A real client of a port where no Redis listens: the limiter cannot answer, so it lets requests by.
    small_limits.rate_limiter = RateLimiter(Redis.from_url("redis://127.0.0.1:1/0"), "nowhere")
    async with _client(small_limits, merchant.secret_key) as api:
        answers = [await api.get("/v1/customers") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert "ratelimit-limit" not in answers[0].headers
