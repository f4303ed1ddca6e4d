"""Test clocks (SPEC §4): objects live in clock time; advance runs due work in time order, then turns ready."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from billing.api.app import create_app
from billing.clock import FrozenClock, SystemClock
from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TASKS, TaskContext
from billing.scheduler.runner import schedule_task
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from billing.test_clocks.advance import run_due_tasks
from billing.test_clocks.models import TestClock
from billing.worker import jobs
from billing.worker.settings import build_worker
from tests.billing.payment_helpers import configure_gateways

T0 = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
RECORD = "test.record"
FAIL = "test.fail"
seen: list[tuple[str, datetime]] = []


@pytest.fixture(autouse=True)
def handlers() -> Iterator[None]:
    async def record(ctx: TaskContext) -> None:
        seen.append((ctx.task.payload["name"], ctx.clock.now()))
        follow_up = ctx.task.payload.get("follow_up_hours")
        if follow_up:
            await schedule_task(
                ctx.session,
                merchant_id=ctx.task.merchant_id,
                kind=RECORD,
                due_at=ctx.clock.now() + timedelta(hours=follow_up),
                clock=ctx.clock,
                payload={"name": ctx.task.payload["name"] + "+follow-up"},
            )

    async def fail(ctx: TaskContext) -> None:
        raise RuntimeError("card network exploded")

    seen.clear()
    TASKS.register(RECORD)(record)
    TASKS.register(FAIL)(fail)
    yield
    TASKS.unregister(RECORD)
    TASKS.unregister(FAIL)


async def new_clock(api: httpx.AsyncClient, at: datetime = T0) -> dict:
    response = await api.post("/v1/test_clocks", json={"frozen_time": at.isoformat(), "name": "renewals"})
    assert response.status_code == 200, response.text
    return response.json()


async def schedule(
    services: Services, merchant_id: str, clock_id: str, kind: str, due: datetime, **payload: object
) -> None:
    async with transaction(services.sessions) as session:
        await schedule_task(
            session,
            merchant_id=merchant_id,
            kind=kind,
            due_at=due,
            clock=FrozenClock(T0, test_clock_id=clock_id),
            payload=dict(payload),
        )


async def run_worker(services: Services) -> None:
    worker = build_worker(services, burst=True, with_cron=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_a_customer_on_a_clock_is_created_in_clock_time(api: httpx.AsyncClient) -> None:
    clock = await new_clock(api)
    customer = (await api.post("/v1/customers", json={"test_clock": clock["id"]})).json()
    assert customer["test_clock"] == clock["id"]
    assert datetime.fromisoformat(customer["created_at"]) == T0
    event = (await api.get("/v1/events", params={"object_id": customer["id"]})).json()["data"][0]
    assert datetime.fromisoformat(event["created_at"]) == T0


async def test_advance_runs_due_work_in_time_order_at_its_due_time(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    clock = await new_clock(api)
    day = timedelta(days=1)
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + 3 * day, name="day3")
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + 1 * day, name="day1", follow_up_hours=36)
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + 2 * day, name="day2")
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + 40 * day, name="day40")

    response = await api.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": (T0 + 10 * day).isoformat()}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "advancing"
    await run_worker(services)

    after = (await api.get(f"/v1/test_clocks/{clock['id']}")).json()
    assert after["status"] == "ready"
    assert datetime.fromisoformat(after["frozen_time"]) == T0 + 10 * day
    assert seen == [
        ("day1", T0 + day),
        ("day2", T0 + 2 * day),
        ("day1+follow-up", T0 + day + timedelta(hours=36)),
        ("day3", T0 + 3 * day),
    ]
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": clock["id"]})).json()["data"]
    ]
    assert types == ["test_clock.ready", "test_clock.advancing", "test_clock.created"]

    # The task beyond the target waits for a later advance.
    await api.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": (T0 + 41 * day).isoformat()}
    )
    await run_worker(services)
    assert seen[-1] == ("day40", T0 + 40 * day)


async def test_advance_must_move_forward(api: httpx.AsyncClient) -> None:
    clock = await new_clock(api)
    response = await api.post(f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": T0.isoformat()})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "frozen_time"


async def test_advance_while_advancing_is_a_conflict(api: httpx.AsyncClient) -> None:
    clock = await new_clock(api)
    target = {"frozen_time": (T0 + timedelta(days=1)).isoformat()}
    assert (await api.post(f"/v1/test_clocks/{clock['id']}/advance", json=target)).status_code == 200
    again = await api.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": (T0 + timedelta(days=2)).isoformat()}
    )
    assert again.status_code == 409
    assert "ready" in again.json()["error"]["message"]


async def test_a_failing_task_stops_the_clock_with_a_reason(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    clock = await new_clock(api)
    await schedule(services, merchant.id, clock["id"], FAIL, T0 + timedelta(hours=1))
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + timedelta(hours=2), name="after")
    await api.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": (T0 + timedelta(days=1)).isoformat()}
    )
    await run_worker(services)
    after = (await api.get(f"/v1/test_clocks/{clock['id']}")).json()
    assert after["status"] == "internal_failure"
    assert "card network exploded" in after["failure_message"]
    assert seen == []


async def test_the_sweeper_recovers_an_advance_whose_job_was_lost(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    clock = await new_clock(api)
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + timedelta(hours=5), name="rescued")
    # The API marked the clock advancing, but its job never reached Redis.
    async with transaction(services.sessions) as session:
        await session.execute(
            update(TestClock)
            .where(TestClock.id == clock["id"])
            .values(
                status="advancing",
                target_time=T0 + timedelta(days=1),
                advance_requested_at=datetime.now(UTC) - timedelta(minutes=5),
            )
        )
    report = await jobs.sweep({"services": services})
    assert report["clocks_reenqueued"] >= 1
    await run_worker(services)
    assert (await api.get(f"/v1/test_clocks/{clock['id']}")).json()["status"] == "ready"
    assert seen == [("rescued", T0 + timedelta(hours=5))]


async def test_deleting_a_clock_deletes_its_customers(api: httpx.AsyncClient) -> None:
    clock = await new_clock(api)
    customer = (await api.post("/v1/customers", json={"test_clock": clock["id"]})).json()
    assert (await api.delete(f"/v1/test_clocks/{clock['id']}")).json()["deleted"] is True
    assert (await api.get(f"/v1/customers/{customer['id']}")).status_code == 404
    assert (await api.get(f"/v1/test_clocks/{clock['id']}")).status_code == 404


async def test_test_clocks_are_refused_in_production(services: Services, merchant: NewMerchant) -> None:
    production = dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, env="production")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(production)),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {merchant.secret_key}"},
    ) as api:
        response = await api.post("/v1/test_clocks", json={"frozen_time": T0.isoformat()})
        assert response.status_code == 403
        assert "production" in response.json()["error"]["message"]
        # Listing and retrieving are refused alike, before any lookup (an unknown id is not a 404 here).
        for path in ("/v1/test_clocks", "/v1/test_clocks/clk_unknown"):
            response = await api.get(path)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "test_clocks_disabled", path


async def test_real_time_tasks_run_once_when_due(services: Services, merchant: NewMerchant) -> None:
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        for i in range(20):
            await schedule_task(
                session,
                merchant_id=merchant.id,
                kind=RECORD,
                due_at=now - timedelta(seconds=1),
                clock=SystemClock(),
                payload={"name": f"due{i}"},
            )
        await schedule_task(
            session,
            merchant_id=merchant.id,
            kind=RECORD,
            due_at=now + timedelta(hours=1),
            clock=SystemClock(),
            payload={"name": "later"},
        )
    # Two workers tick at once: SKIP LOCKED gives each task to exactly one of them.
    # (Other tests' real-time tasks share this database, so the counts may include theirs; ours are checked by
    # name: each ran exactly once.)
    counts = await asyncio.gather(run_due_tasks(services), run_due_tasks(services))
    assert sum(counts) >= 20
    names = sorted(name for name, _ in seen)
    assert names == sorted(f"due{i}" for i in range(20))
    await run_due_tasks(services)
    assert len(seen) == 20
    async with services.sessions() as session:
        pending = await session.scalar(
            select(func.count())
            .select_from(ScheduledTask)
            .where(ScheduledTask.merchant_id == merchant.id, ScheduledTask.status == "pending")
        )
    assert pending == 1


async def test_scheduling_twice_under_one_dedupe_key_adds_one_task(
    services: Services, merchant: NewMerchant
) -> None:
    async with transaction(services.sessions) as session:
        first = await schedule_task(
            session,
            merchant_id=merchant.id,
            kind=RECORD,
            due_at=T0,
            clock=SystemClock(),
            dedupe_key=f"once:{merchant.id}",
        )
        second = await schedule_task(
            session,
            merchant_id=merchant.id,
            kind=RECORD,
            due_at=T0,
            clock=SystemClock(),
            dedupe_key=f"once:{merchant.id}",
        )
    assert first is not None and second is None


async def tick_until(services: Services, done: Callable[[], Awaitable[bool]]) -> None:
    """Run the worker's tick (jobs.tick, every second in a worker) until `done`, with a generous deadline."""
    deadline = asyncio.get_running_loop().time() + 60
    while not await done():
        assert asyncio.get_running_loop().time() < deadline, "the tick never ran the due work"
        await jobs.tick({"services": services})
        await asyncio.sleep(0.2)


async def test_work_due_by_a_ready_clocks_time_runs_on_the_workers_tick_in_clock_time(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    clock = await new_clock(api)
    await schedule(services, merchant.id, clock["id"], RECORD, T0 - timedelta(hours=2), name="overdue")
    await schedule(services, merchant.id, clock["id"], RECORD, T0, name="due now")
    await schedule(services, merchant.id, clock["id"], RECORD, T0 + timedelta(seconds=1), name="future")
    advancing = await new_clock(api)
    await schedule(services, merchant.id, advancing["id"], RECORD, T0, name="advancing clock")
    await api.post(
        f"/v1/test_clocks/{advancing['id']}/advance",
        json={"frozen_time": (T0 + timedelta(days=1)).isoformat()},
    )

    async def ran_both() -> bool:
        return len([name for name, _ in seen if name in ("overdue", "due now")]) == 2

    await tick_until(services, ran_both)
    # In due order, at the clock's frozen time (the time of the world they run in), and nothing else: not work
    # due later, not the work of a clock that is advancing (its advance runs it, in order).
    assert [entry for entry in seen if entry[0] != "advancing clock"] == [("overdue", T0), ("due now", T0)]
    assert "advancing clock" not in [name for name, _ in seen]
    after = (await api.get(f"/v1/test_clocks/{clock['id']}")).json()
    assert (after["status"], after["frozen_time"]) == ("ready", "2027-01-31T12:00:00Z")
    await run_worker(services)
    assert ("advancing clock", T0) in seen
    assert "future" not in [name for name, _ in seen]


async def test_a_new_card_on_a_past_due_customer_of_a_ready_clock_is_charged_by_the_tick(
    api: httpx.AsyncClient, services: Services
) -> None:
    """Issue 12 item 4: the retry a new card schedules is due at the clock's time; a worker runs it at once, as it
    would in real time, without another advance."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    start = datetime(2027, 3, 1, 10, tzinfo=UTC)
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": start.isoformat()})).json()["id"]
    customer = (await api.post("/v1/customers", json={"test_clock": clock, "currency": "USD"})).json()["id"]

    async def card(number: str) -> None:
        body = {"customer": customer, "card": {"number": number, "exp_month": 12, "exp_year": 2040}}
        pm = (await api.post("/v1/payment_methods", json=body)).json()["id"]
        assert (
            await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
        ).status_code == 200

    await card("4242424242424242")
    plan = {"code": f"t{secrets.token_hex(4)}", "name": "Team", "currency": "USD", "amount": 2500}
    plan_id = (await api.post("/v1/plans", json=plan)).json()["id"]
    sub = (await api.post("/v1/subscriptions", json={"customer": customer, "plan": plan_id})).json()
    await card("4000000000000341")  # declines every charge
    await api.post(f"/v1/test_clocks/{clock}/advance", json={"frozen_time": "2027-04-01T01:00:00Z"})
    await run_worker(services)
    renewal = (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["latest_invoice"]
    assert (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "past_due"

    await card("5555555555554444")

    async def paid() -> bool:
        return (await api.get(f"/v1/invoices/{renewal}")).json()["status"] == "paid"

    await tick_until(services, paid)
    assert (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "active"
    payments = (await api.get("/v1/payments", params={"invoice": renewal})).json()["data"]
    assert sorted((p["status"], p["amount"]) for p in payments) == [("failed", 2500), ("succeeded", 2500)]
    after = (await api.get(f"/v1/test_clocks/{clock}")).json()
    assert (after["status"], after["frozen_time"]) == ("ready", "2027-04-01T01:00:00Z")
