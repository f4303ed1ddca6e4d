"""The billing run: renewals due at the same instant, processed by several workers, happen exactly once."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys

import httpx
import pytest
from sqlalchemy import func, select, update

from billing.config import Settings
from billing.invoices.models import Invoice
from billing.merchants.service import NewMerchant
from billing.payments.models import Payment
from billing.scheduler.models import ScheduledTask
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from billing.subscriptions.models import Subscription
from billing.test_clocks.advance import run_due_tasks
from tests.billing.locks import backend_pid, wait_until_blocked_by, wait_until_gone
from tests.billing.payment_helpers import configure_gateways
from tests.billing.processes import assert_audit_clean, billing_env

SUBSCRIPTIONS = 1000
# Renewals before and after the one the kill interrupts (each costs about 0.3 s to set up on a loaded CI box).
KILLED_RUN = 24


async def _subscribe_many(api: httpx.AsyncClient, count: int) -> tuple[str, list[str]]:
    """`count` customers with a card, each subscribed (charge_automatically: the first invoice is paid)."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    plan = (
        await api.post(
            "/v1/plans",
            json={"code": "run" + secrets.token_hex(4), "name": "Run", "currency": "USD", "amount": 1500},
        )
    ).json()["id"]

    async def one(i: int) -> str:
        customer = (await api.post("/v1/customers", json={"email": f"run{i}@example.com"})).json()["id"]
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}
        pm = (await api.post("/v1/payment_methods", json={"customer": customer, "card": card})).json()["id"]
        await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
        response = await api.post("/v1/subscriptions", json={"customer": customer, "plan": plan})
        assert response.status_code == 200, response.text
        return response.json()["id"]

    ids: list[str] = []
    for start in range(0, count, 50):
        ids += await asyncio.gather(*[one(i) for i in range(start, min(count, start + 50))])
    return plan, ids


async def _make_renewals_due(services: Services, plan: str) -> None:
    """Bring every renewal of the plan's subscriptions to 'due now' (as if a month had passed)."""
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(ScheduledTask)
            .where(
                ScheduledTask.kind == "subscription.renew",
                ScheduledTask.status == "pending",
                ScheduledTask.test_clock_id.is_(None),
            )
            .values(due_at=func.now())
        )


async def _cycle_invoices(services: Services, ids: list[str]) -> list[Invoice]:
    async with services.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(Invoice).where(
                        Invoice.subscription_id.in_(ids), Invoice.billing_reason == "subscription_cycle"
                    )
                )
            ).all()
        )


async def _charges(services: Services, invoice_ids: list[str]) -> int:
    async with services.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(Payment.invoice_id.in_(invoice_ids), Payment.status == "succeeded")
            )
            or 0
        )


def _gap_free(numbers: list[str]) -> bool:
    values = sorted(int(n.split("-")[1]) for n in numbers)
    return values == list(range(values[0], values[0] + len(values)))


async def test_two_workers_renew_a_thousand_subscriptions_exactly_once(
    api: httpx.AsyncClient, services: Services
) -> None:
    plan, ids = await _subscribe_many(api, SUBSCRIPTIONS)
    await _make_renewals_due(services, plan)
    done = await asyncio.gather(run_due_tasks(services, limit=10_000), run_due_tasks(services, limit=10_000))
    assert sum(done) >= SUBSCRIPTIONS
    assert min(done) > 0, "both workers took part"
    invoices = await _cycle_invoices(services, ids)
    assert len(invoices) == SUBSCRIPTIONS
    assert len({i.subscription_id for i in invoices}) == SUBSCRIPTIONS
    # Every renewal invoice charged exactly once, and paid.
    assert {i.status for i in invoices} == {"paid"}
    assert await _charges(services, [i.id for i in invoices]) == SUBSCRIPTIONS
    async with services.sessions() as session:
        numbers = list(
            (
                await session.scalars(
                    select(Invoice.number).where(
                        Invoice.merchant_id == invoices[0].merchant_id, Invoice.number.is_not(None)
                    )
                )
            ).all()
        )
    assert len(numbers) == 2 * SUBSCRIPTIONS
    assert _gap_free(numbers)
    # Running the tick again changes nothing.
    await run_due_tasks(services, limit=10_000)
    assert len(await _cycle_invoices(services, ids)) == SUBSCRIPTIONS


async def _renewal_tasks(services: Services, ids: list[str]) -> list[ScheduledTask]:
    """The due renewal tasks of these subscriptions, in the order a worker takes them."""
    async with services.sessions() as session:
        tasks = await session.scalars(
            select(ScheduledTask)
            .where(ScheduledTask.kind == "subscription.renew", ScheduledTask.status == "pending")
            .order_by(ScheduledTask.due_at, ScheduledTask.seq)
        )
        return [t for t in tasks if t.payload["subscription"] in set(ids)]


@pytest.mark.fault
@pytest.mark.timeout(300)
async def test_a_worker_killed_mid_run_leaves_nothing_doubled(
    api: httpx.AsyncClient, services: Services, settings: Settings, merchant: NewMerchant
) -> None:
    """The kill certainly interrupts a renewal: the test holds the row lock of one subscription in the middle of
    the run, waits until PostgreSQL shows the worker blocked on it with its renewal task claimed, and only then
    kills the worker. About 20 s on a loaded two-core machine, most of it setting up the subscriptions and
    starting a real worker process."""
    plan, ids = await _subscribe_many(api, KILLED_RUN)
    await _make_renewals_due(services, plan)
    hostage_task = (await _renewal_tasks(services, ids))[KILLED_RUN // 2]
    hostage = hostage_task.payload["subscription"]
    assert settings.database_url and settings.redis_url
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_REDIS_PREFIX": settings.redis_prefix + "-kill",
        "BILLING_LOG_LEVEL": "ERROR",
    }
    async with services.sessions() as holder:
        await holder.scalar(select(Subscription).where(Subscription.id == hostage).with_for_update())
        worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "billing", "worker", env=env)
        try:
            exited = asyncio.ensure_future(worker.wait())
            blocked = await wait_until_blocked_by(services, await backend_pid(holder), exited)
            async with services.sessions() as observer:
                claimed = await observer.scalar(
                    select(ScheduledTask.id)
                    .where(ScheduledTask.id == hostage_task.id)
                    .with_for_update(skip_locked=True)
                )
            assert claimed is None, "the worker holds the hostage's renewal task"
            assert len(await _cycle_invoices(services, [hostage])) == 0
            worker.send_signal(signal.SIGKILL)
            await asyncio.wait_for(exited, 30)
        finally:
            if worker.returncode is None:
                worker.kill()
        await holder.rollback()
    # The killed worker's backend ends when it next writes to its dead client: its transaction rolls back.
    await wait_until_gone(services, blocked)
    partial = len(await _cycle_invoices(services, ids))
    assert partial < KILLED_RUN
    # A new worker (here, the tick in-process) finishes the run.
    await run_due_tasks(services, limit=10_000)
    invoices = await _cycle_invoices(services, ids)
    assert len(invoices) == KILLED_RUN
    assert len({i.subscription_id for i in invoices}) == KILLED_RUN
    # The interrupted renewal happened once, afterwards, and was charged once.
    [renewed] = await _cycle_invoices(services, [hostage])
    assert renewed.status == "paid"
    assert await _charges(services, [renewed.id]) == 1
    # A charge interrupted by the kill is found again by its attempt key, or settled by the janitor: never two.
    assert await _charges(services, [i.id for i in invoices]) <= KILLED_RUN
    assert _gap_free([i.number for i in invoices if i.number])
    await assert_audit_clean(billing_env(settings), merchant.id)
