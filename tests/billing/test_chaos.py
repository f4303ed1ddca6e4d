"""Chaos (issue #12, "Tests"): a four-month test-clock advance of 45 subscriptions, 5 of them on the card whose
charges time out and are then confirmed when asked, run by two workers while four workers are SIGKILLed (each
replaced at once) and Redis is restarted three times. Afterwards: every invoice is paid exactly once, the
processor's ledger holds exactly the engine's succeeded payments (no charge the engine does not know, none
twice), and every subscription is active.

Everything is a real process: a redis-server of the test's own, `billing serve`, `billing worker` ×2 and a
standalone sandbox gateway (its ledger in its own memory, so Redis restarts do not touch it)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from billing.config import Settings
from billing.merchants.service import NewMerchant
from billing.payments.models import Payment
from billing.services import Services
from tests.billing.payment_helpers import FUTURE_YEAR, sandbox_admin, set_mode, standalone_sandbox
from tests.billing.processes import (
    Process,
    RedisServer,
    assert_audit_clean,
    billing_env,
    billing_serve,
    billing_worker,
    wait_for,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(900)]

SUBSCRIPTIONS = 45
ON_TIMEOUT_CARD = 5
TIMEOUT_CARD = "4000002760003184"
START = "2027-01-01T00:00:00Z"
TARGET = "2027-05-01T12:00:00Z"  # four renewals: Feb 1, Mar 1, Apr 1, May 1
AFTER_SETTLING = "2027-05-01T12:05:00Z"
KILLS = 4
REDIS_RESTARTS = 3
# Faults are paced by the clock's progress, not by real seconds, so a faster engine still meets every one of them
# mid-advance: one fault each time the clock passes a milestone, and never two within MIN_GAP_S real seconds (a
# replaced worker needs a moment to start).
MILESTONES = [f"2027-{month:02d}-{day:02d}T00:00:00Z" for month in (1, 2, 3, 4) for day in (1, 16)][1:]
MIN_GAP_S = 2.0


class Chaos:
    def __init__(self, folder: Path, env: dict[str, str], redis: RedisServer) -> None:
        self.folder = folder
        self.env = env
        self.redis = redis
        self.started = 0
        self.workers: list[Process] = []
        self.log: list[str] = []

    def start_worker(self) -> None:
        self.started += 1
        self.workers.append(billing_worker(self.env, self.folder / f"worker-{self.started}.log"))

    def kill_worker(self) -> None:
        victim = self.workers.pop(0)
        victim.kill()
        self.log.append(f"SIGKILL worker {victim.pid}")
        self.start_worker()

    def restart_redis(self) -> None:
        self.redis.restart()
        self.log.append("Redis restarted (empty)")

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
async def stage(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[str, str, Chaos]]:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = billing_env(settings, REDIS_URL=redis.url, BILLING_REDIS_PREFIX=f"chaos-{secrets.token_hex(4)}")
    chaos = Chaos(tmp_path, env, redis)
    try:
        with standalone_sandbox() as sandbox:
            async with billing_serve(env, tmp_path / "serve.log") as url:
                yield url, sandbox, chaos
    finally:
        chaos.stop()
        redis.kill()


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _subscriber(api: httpx.AsyncClient, clock: str, plan: str, index: int) -> dict[str, Any]:
    customer = await _post(api, "/v1/customers", {"test_clock": clock, "email": f"chaos{index}@example.com"})
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": FUTURE_YEAR}
    pm = await _post(api, "/v1/payment_methods", {"customer": customer["id"], "card": card})
    await api.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": pm["id"]})
    subscription = await _post(api, "/v1/subscriptions", {"customer": customer["id"], "plan": plan})
    assert subscription["status"] == "active", subscription
    if index < ON_TIMEOUT_CARD:
        # Paid the first period with a good card; every renewal goes to the card that times out.
        slow = {"number": TIMEOUT_CARD, "exp_month": 12, "exp_year": FUTURE_YEAR}
        pm = await _post(api, "/v1/payment_methods", {"customer": customer["id"], "card": slow})
        await api.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": pm["id"]})
    return subscription


async def test_chaos_during_a_four_month_advance_pays_every_invoice_exactly_once(
    stage: tuple[str, str, Chaos], merchant: NewMerchant, services: Services, settings: Settings
) -> None:
    url, sandbox, chaos = stage
    await set_mode(sandbox, "normal", hang_ms=1500)
    headers = {"Authorization": f"Bearer {merchant.secret_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
        patched = await api.patch(
            "/v1/settings",
            json={"gateways": [{"id": "main", "type": "sandbox", "url": sandbox, "timeout_ms": 300}]},
        )
        assert patched.status_code == 200, patched.text
        clock = await _post(api, "/v1/test_clocks", {"frozen_time": START})
        plan = await _post(
            api,
            "/v1/plans",
            {
                "code": f"chaos-{secrets.token_hex(3)}",
                "name": "Team",
                "currency": "USD",
                "interval": "month",
                "amount": 2900,
            },
        )
        subscriptions = [await _subscriber(api, clock["id"], plan["id"], i) for i in range(SUBSCRIPTIONS)]

        chaos.start_worker()
        chaos.start_worker()
        advanced = await _post(api, f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": TARGET})
        assert advanced["status"] == "advancing"

        async def status() -> dict[str, Any]:
            for _ in range(50):  # the API answers 500 on nothing here, but a restart may drop a connection
                try:
                    shown = await api.get(f"/v1/test_clocks/{clock['id']}")
                    body: dict[str, Any] = shown.json()
                    assert body["status"] != "internal_failure", body
                    return body
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            raise AssertionError("the API stopped answering")

        faults = ["kill", "redis", "kill", "redis", "kill", "redis", "kill"]
        assert Counter(faults) == {"kill": KILLS, "redis": REDIS_RESTARTS}
        assert len(MILESTONES) == len(faults)
        for fault, milestone in zip(faults, MILESTONES, strict=True):
            await asyncio.sleep(MIN_GAP_S)

            async def past(milestone: str = milestone) -> dict[str, Any] | None:
                shown = await status()
                return shown if shown["status"] != "advancing" or shown["frozen_time"] >= milestone else None

            shown = await wait_for(past, deadline_s=300, what=f"the clock to pass {milestone}", pause=0.1)
            assert shown["status"] == "advancing", (
                f"the advance ended before all faults were injected ({chaos.log}); slow it down"
            )
            chaos.log.append(f"clock at {shown['frozen_time']}")
            if fault == "kill":
                chaos.kill_worker()
            else:
                chaos.restart_redis()

        began = time.monotonic()

        async def ready() -> bool:
            return bool((await status())["status"] == "ready")

        await wait_for(ready, deadline_s=600, what=f"the advance to finish after {chaos.log}", pause=0.5)
        recovered_in = time.monotonic() - began
        assert all(worker.alive() for worker in chaos.workers), [w.output() for w in chaos.workers]

        # A renewal charged on the timeout card in the advance's last minutes may still be pending when the clock
        # is ready: the janitor settles it in real time (by itself), and the invoice's collection looks again a
        # minute later in the clock's time. So: wait for no pending payment, then let a minute of the clock pass.
        async def nothing_pending() -> bool:
            async with services.sessions() as session:
                pending = await session.scalar(
                    select(Payment.id)
                    .where(Payment.merchant_id == merchant.id, Payment.status == "pending")
                    .limit(1)
                )
            return pending is None

        await wait_for(nothing_pending, deadline_s=300, what="the janitor to settle the pending payments")
        later = await _post(api, f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": AFTER_SETTLING})
        assert later["status"] == "advancing"
        await wait_for(ready, deadline_s=300, what="the minute after the janitor settled", pause=0.5)

        # Every invoice of every subscription: five periods, each paid, once.
        invoices: list[dict[str, Any]] = []
        for subscription in subscriptions:
            shown = (await api.get(f"/v1/subscriptions/{subscription['id']}")).json()
            assert shown["status"] == "active", shown
            listed = (
                await api.get("/v1/invoices", params={"subscription": subscription["id"], "limit": 100})
            ).json()["data"]
            assert sorted(i["period_start"][:7] for i in listed) == [
                "2027-01",
                "2027-02",
                "2027-03",
                "2027-04",
                "2027-05",
            ], (subscription["id"], [(i["period_start"], i["status"]) for i in listed])
            invoices += listed
    assert {i["status"] for i in invoices} == {"paid"}
    assert all(i["amount_paid"] == i["total"] == 2900 for i in invoices)

    async with services.sessions() as session:
        payments = (
            await session.scalars(select(Payment).where(Payment.invoice_id.in_([i["id"] for i in invoices])))
        ).all()
    succeeded = [p for p in payments if p.status == "succeeded"]
    assert not [p for p in payments if p.status == "pending"]
    paid_per_invoice = Counter(p.invoice_id for p in succeeded)
    assert set(paid_per_invoice) == {i["id"] for i in invoices}
    assert set(paid_per_invoice.values()) == {1}, "an invoice was paid twice"

    # The processor's ledger: exactly one captured charge per succeeded payment, none for anything else.
    ledger = await sandbox_admin(sandbox, "/admin/state")
    captured = Counter(c["idempotency_key"] for c in ledger["charges"] if c["status"] == "succeeded")
    assert set(captured.values()) == {1}
    assert set(captured) == {p.id for p in succeeded}
    assert sum(c["amount"] for c in ledger["charges"] if c["status"] == "succeeded") == 2900 * len(invoices)
    timeouts = [p for p in succeeded if p.card_last4 == TIMEOUT_CARD[-4:]]
    assert len(timeouts) == ON_TIMEOUT_CARD * 4  # every renewal of those five went through the timeout, once
    await assert_audit_clean(billing_env(settings), merchant.id)
    print(f"chaos: {chaos.log}; finished {recovered_in:.0f} s after the last fault")
