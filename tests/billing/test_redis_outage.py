"""Redis restarts under a running engine (issue #12 item 10): the worker stays up and reconnects, /ready reports the
outage naming Redis and recovers, and work asked for while Redis was down is done once it is back (PostgreSQL
holds it). Real processes: a redis-server of this test's own, `billing serve`, `billing worker`."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.config import Settings
from billing.merchants.service import NewMerchant
from tests.billing.processes import (
    Process,
    RedisServer,
    assert_audit_clean,
    billing_env,
    billing_serve,
    billing_worker,
    wait_for,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[RedisServer, str, Process]]:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = billing_env(settings, REDIS_URL=redis.url, BILLING_REDIS_PREFIX=f"outage-{secrets.token_hex(4)}")
    worker = billing_worker(env, tmp_path / "worker.log")
    try:
        async with billing_serve(env, tmp_path / "serve.log") as url:
            yield redis, url, worker
    finally:
        worker.stop()
        redis.kill()


async def _ready(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url + "/ready")
        return response.status_code, response.json()


async def test_the_worker_outlives_redis_restarts_and_nothing_asked_meanwhile_is_lost(
    stack: tuple[RedisServer, str, Process], merchant: NewMerchant, settings: Settings
) -> None:
    redis, url, worker = stack
    headers = {"Authorization": f"Bearer {merchant.secret_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
        await wait_for(lambda: _ready_ok(url), deadline_s=60, what="/ready to answer 200")
        clock = (await api.post("/v1/test_clocks", json={"frozen_time": "2027-01-01T00:00:00Z"})).json()
        customer = (await api.post("/v1/customers", json={"test_clock": clock["id"]})).json()
        plan = (
            await api.post(
                "/v1/plans",
                json={
                    "code": f"p{secrets.token_hex(4)}",
                    "name": "Pro",
                    "currency": "USD",
                    "interval": "month",
                    "amount": 900,
                },
            )
        ).json()
        subscription = (
            await api.post(
                "/v1/subscriptions",
                json={
                    "customer": customer["id"],
                    "plan": plan["id"],
                    "collection_method": "send_invoice",
                    "days_until_due": 7,
                },
            )
        ).json()
        assert subscription["status"] == "active", subscription

        def outages_seen() -> int:
            return worker.log.read_text(errors="replace").count("Redis is unavailable")

        for restart in range(2):
            seen_before = outages_seen()
            redis.kill()
            status, body = await wait_for(
                lambda: _ready_unavailable(url), deadline_s=60, what="/ready to report the outage"
            )
            assert status == 503
            assert body["checks"]["postgres"] == "ok"
            assert body["checks"]["redis"].startswith("unavailable")
            # Asked while Redis is down: the advance is committed in PostgreSQL; its job could not be queued.
            target = f"2027-0{2 + restart}-02T00:00:00Z"
            advanced = await api.post(f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": target})
            assert (advanced.status_code, advanced.json()["status"]) == (200, "advancing"), advanced.text

            # The worker must meet the outage itself (a restart between two of its polls would go unnoticed,
            # redis-py reconnecting on the next command): Redis comes back only once the worker has said so.
            await wait_for(
                lambda before=seen_before: outages_seen() > before,
                deadline_s=60,
                what="the worker to notice that Redis is gone",
            )
            redis.start()  # the same port, empty, as after a restart
            await wait_for(lambda: _ready_ok(url), deadline_s=60, what="/ready to recover")

            async def clock_ready() -> bool:
                shown = (await api.get(f"/v1/test_clocks/{clock['id']}")).json()
                assert shown["status"] != "internal_failure", shown
                return bool(shown["status"] == "ready")

            # The sweeper finds the advancing clock in PostgreSQL and queues it again; the worker runs it.
            await wait_for(
                clock_ready, deadline_s=120, what="the clock advanced while Redis was down to finish"
            )
            assert worker.alive(), worker.output()

        invoices = (await api.get("/v1/invoices", params={"subscription": subscription["id"]})).json()["data"]
        # The first period, then one renewal per advance: Feb 1 and Mar 1.
        assert sorted(i["period_start"][:10] for i in invoices) == ["2027-01-01", "2027-02-01", "2027-03-01"]
    assert worker.alive(), worker.output()
    assert "Redis is unavailable" in worker.output()
    assert "Redis is back" in worker.output()
    await assert_audit_clean(billing_env(settings), merchant.id)


async def _ready_ok(url: str) -> bool:
    try:
        return (await _ready(url))[0] == 200
    except httpx.HTTPError:
        return False


async def _ready_unavailable(url: str) -> tuple[int, dict[str, Any]] | None:
    status, body = await _ready(url)
    return (status, body) if status == 503 else None
