"""A worker killed in the middle of a test-clock advance (issue #12 item 11): another worker finishes the advance
promptly (not after arq's hour-long in-progress marker expires), and nothing is billed twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from billing.config import Settings
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.processes import assert_audit_clean, billing_env, billing_worker, wait_for
from tests.billing.world import Billing, at


async def drop_abandoned_jobs(services: Services) -> None:
    redis, queue = services.redis, services.queue_name
    async for member, _ in redis.zscan_iter(queue):
        job_id = member.decode() if isinstance(member, bytes) else str(member)
        if await redis.exists(in_progress_key_prefix + job_id):
            await redis.zrem(queue, job_id)
            await redis.delete(
                in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id
            )


pytestmark = [pytest.mark.fault, pytest.mark.timeout(400)]

SUBSCRIPTIONS = 20
MONTHS = 4


async def test_a_worker_killed_mid_advance_is_replaced_promptly_and_nothing_is_doubled(
    api: httpx.AsyncClient, services: Services, settings: Settings, merchant: NewMerchant, tmp_path: Path
) -> None:
    world = Billing(api, services)
    await world.start(at("2027-01-01T00:00:00+00:00"))
    plan = await world.plan(1500)
    subscriptions = [await world.subscribe(await world.customer(), plan) for _ in range(SUBSCRIPTIONS)]
    # The workers share the API's queue (the run's Redis prefix): the job the API enqueues is the one the first
    # worker takes, and the one arq then holds as "in progress" after the kill.
    env = billing_env(settings)

    first = billing_worker(env, tmp_path / "first.log")
    second = None
    try:
        advanced = await api.post(
            f"/v1/test_clocks/{world.clock}/advance", json={"frozen_time": "2027-05-02T00:00:00Z"}
        )
        assert advanced.json()["status"] == "advancing"

        async def partway() -> bool:
            shown = (await api.get(f"/v1/test_clocks/{world.clock}")).json()
            assert shown["status"] == "advancing", f"the advance ended before the kill: {shown}"
            return shown["frozen_time"] >= "2027-02-15"

        await wait_for(partway, deadline_s=180, what="the first worker to be part-way through the advance")
        first.kill()

        second = billing_worker(env, tmp_path / "second.log")

        async def ready() -> bool:
            shown = (await api.get(f"/v1/test_clocks/{world.clock}")).json()
            assert shown["status"] != "internal_failure", shown
            return bool(shown["status"] == "ready")

        # arq keeps the killed worker's job marked "in progress" for an hour: waiting far less than that proves
        # the new worker did not wait for it.
        await wait_for(ready, deadline_s=150, what="the second worker to finish the advance")
        assert second.alive(), second.output()
    finally:
        first.stop()
        if second is not None:
            second.stop()
        # With both workers gone, any job still marked in progress is the killed worker's (a cron tick or
        # delivery it had taken): left queued, it would keep every later burst worker of the run polling past
        # it until arq's marker expires. This test made that work, so it takes it away.
        await drop_abandoned_jobs(services)

    clock = (await api.get(f"/v1/test_clocks/{world.clock}")).json()
    assert clock["frozen_time"].startswith("2027-05-02")
    numbers: list[str] = []
    for subscription in subscriptions:
        invoices = await world.invoices(subscription["id"])
        # The first period and one renewal per month boundary crossed: Feb 1 ... Jul 1.
        assert [i["period_start"][:7] for i in invoices] == [f"2027-0{m}" for m in range(1, MONTHS + 2)]
        numbers += [i["number"] for i in invoices]
    assert len(set(numbers)) == len(numbers) == SUBSCRIPTIONS * (MONTHS + 1)
    # The killed worker's job is not left queued under arq's in-progress marker: a burst worker of any later test
    # would otherwise poll past it until the marker expires.
    left = [
        m async for m, _ in services.redis.zscan_iter(services.queue_name, match=f"advance:{world.clock}:*")
    ]
    assert left == []
    await assert_audit_clean(env, merchant.id)
