"""Foundation benchmark: API request rate through a real `billing serve` process, idempotent replays, and the
scheduler's task throughput with one and two concurrent runners.

    .venv/bin/python -m bench.foundation [--requests 2000] [--concurrency 16] [--tasks 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import httpx

from bench.common import percentile, record, servers
from billing.clock import SYSTEM_CLOCK, utc_now
from billing.config import Settings
from billing.db.engine import transaction
from billing.scheduler.registry import TASKS, TaskContext
from billing.scheduler.runner import schedule_task
from billing.services import open_services
from billing.test_clocks.advance import run_due_tasks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _requests(
    url: str, key: str, total: int, concurrency: int, *, idempotency_key: str | None
) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(total))
    headers = {"Authorization": f"Bearer {key}"} | (
        {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    )

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in queue:
            started = time.perf_counter()
            response = await client.post(
                "/v1/customers",
                json={"email": f"bench{i}@example.com"}
                if not idempotency_key
                else {"email": "same@example.com"},
                headers=headers,
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*[client_loop(client) for _ in range(concurrency)])
    return latencies


async def _tasks(database_url: str, redis_url: str, count: int, runners: int) -> float:
    settings = Settings(
        database_url=database_url, redis_url=redis_url, data_dir=Path_tmp(), env="test", redis_prefix="bench"
    )
    services = await open_services(settings, pool_size=runners + 2)
    kind = f"bench.noop.{runners}"

    @TASKS.register(kind)
    async def noop(ctx: TaskContext) -> None:
        return None

    try:
        async with transaction(services.sessions) as session:
            from billing.merchants.service import create_merchant

            merchant = await create_merchant(session, "bench tasks")
            due = utc_now() - timedelta(seconds=1)
            for _ in range(count):
                await schedule_task(
                    session, merchant_id=merchant.id, kind=kind, due_at=due, clock=SYSTEM_CLOCK
                )
        started = time.perf_counter()
        done = await asyncio.gather(*[run_due_tasks(services, limit=count) for _ in range(runners)])
        elapsed = time.perf_counter() - started
        assert sum(done) == count, (done, count)
        return count / elapsed
    finally:
        TASKS.unregister(kind)
        await services.close()


def Path_tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="billing-bench-data-"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    with servers() as (database_url, redis_url):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BILLING_LOG_LEVEL": "ERROR",
        }
        created = subprocess.run(
            [sys.executable, "-m", "billing", "merchants", "create", "Bench"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["secret_key"]
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "billing", "serve", "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            asyncio.run(_requests(url, key, 200, args.concurrency, idempotency_key=None))  # warm-up
            started = time.perf_counter()
            creates = asyncio.run(_requests(url, key, args.requests, args.concurrency, idempotency_key=None))
            create_rate = args.requests / (time.perf_counter() - started)
            started = time.perf_counter()
            replays = asyncio.run(
                _requests(url, key, args.requests, args.concurrency, idempotency_key="bench-replay-key")
            )
            replay_rate = args.requests / (time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(30)
        one = asyncio.run(_tasks(database_url, redis_url, args.tasks, 1))
        two = asyncio.run(_tasks(database_url, redis_url, args.tasks, 2))
    ms = 1000
    record(
        "Foundation: API and scheduler",
        [
            f"- POST /v1/customers through one `billing serve` process, {args.concurrency} concurrent clients: "
            f"**{create_rate:.0f} req/s**, p50 {percentile(creates, 50) * ms:.1f} ms, "
            f"p99 {percentile(creates, 99) * ms:.1f} ms ({args.requests} requests; each = auth + insert + event + commit)",
            f"- The same POST replayed with one Idempotency-Key (concurrent duplicates wait, then replay): "
            f"**{replay_rate:.0f} req/s**, p50 {percentile(replays, 50) * ms:.1f} ms, p99 {percentile(replays, 99) * ms:.1f} ms",
            f"- Scheduler, {args.tasks} due no-op tasks, each claimed with SKIP LOCKED and completed in its own "
            f"transaction: **{one:.0f} tasks/s** with one runner, **{two:.0f} tasks/s** with two",
        ],
    )


if __name__ == "__main__":
    main()
