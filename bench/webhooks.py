"""Webhook delivery benchmark: a real `billing worker` process delivering to a real HTTP receiver on loopback.

1. Throughput: write a backlog of events while no worker runs (each fans out to every endpoint in its own
   transaction), start the worker, and time the drain from the first request received to the last.
2. Latency: with the worker running, commit events at a steady rate; for each delivery, the time from the commit
   of the event's transaction to the arrival of its first attempt at the receiver (one clock: this process).

Every request received is then verified with the reference `standardwebhooks` package, and every delivery must
be `succeeded` exactly once.

    .venv/bin/python -m bench.webhooks [--endpoints 4] [--backlog 2000] [--rate 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec
from sqlalchemy import func, select
from standardwebhooks import Webhook

from bench.common import percentile, record, servers
from billing.config import Settings
from billing.customers.schemas import CustomerCreate
from billing.customers.service import create_customer
from billing.db.engine import transaction
from billing.merchants.service import create_merchant
from billing.services import Services, open_services
from tests.webhooks.receiver import Receiver
from webhooks.delivery import DeliveryPolicy
from webhooks.delivery_models import WebhookDelivery
from webhooks.endpoints import create_endpoint
from webhooks.schemas import WebhookEndpointCreate


async def _write_events(services: Services, merchant_id: str, count: int, per_transaction: int) -> None:
    for start in range(0, count, per_transaction):
        async with transaction(services.sessions) as session:
            for _ in range(min(per_transaction, count - start)):
                await create_customer(session, merchant_id, CustomerCreate(), production=False)


async def _wait_until(receiver: Receiver, count: int, within: float) -> None:
    await receiver.wait_for(count, within=within)


def _start_worker(database_url: str, redis_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BILLING_ENV": "development",
        "BILLING_LOG_LEVEL": "ERROR",
        "BILLING_REDIS_PREFIX": f"bench-webhooks-{os.getpid()}",
        "BILLING_DATA_DIR": tempfile.mkdtemp(prefix="billing-bench-data-"),
    }
    return subprocess.Popen([sys.executable, "-m", "billing", "worker"], env=env)


async def _run(database_url: str, redis_url: str, args: argparse.Namespace) -> list[str]:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=Path(tempfile.mkdtemp(prefix="billing-bench-data-")),
        env="development",
        redis_prefix="bench-webhooks",
    )
    services = await open_services(settings, pool_size=4)
    receiver = await Receiver().start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        async with transaction(services.sessions) as session:
            merchant = await create_merchant(session, "Bench webhooks")
            secrets = []
            for index in range(args.endpoints):
                _, secret = await create_endpoint(
                    session,
                    merchant.id,
                    WebhookEndpointCreate(
                        url=receiver.url(f"/e{index}"), enabled_events=["customer.created"]
                    ),
                    production=False,
                    box=services.vault,
                )
                secrets.append((f"/e{index}", secret))

        # 1. Throughput: a backlog, then a worker.
        backlog = args.backlog * args.endpoints
        await _write_events(services, merchant.id, args.backlog, per_transaction=50)
        worker = _start_worker(database_url, redis_url)
        await _wait_until(receiver, backlog, within=600)
        arrivals = sorted(r.at for r in receiver.requests)
        drain_seconds = arrivals[-1] - arrivals[0]
        throughput = (backlog - 1) / drain_seconds

        # 2. Latency: steady writes while the worker runs.
        committed_at: dict[str, float] = {}
        interval = 1 / args.rate
        next_at = time.monotonic()
        deadline = next_at + args.seconds
        while next_at < deadline:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            async with transaction(services.sessions) as session:
                customer = await create_customer(session, merchant.id, CustomerCreate(), production=False)
            committed_at[customer.id] = time.time()
            next_at += interval
        expected = backlog + len(committed_at) * args.endpoints
        await _wait_until(receiver, expected, within=120)
        latencies = []
        first_seen: dict[tuple[str, str], float] = {}
        for request in receiver.requests:
            key = (request.path, request.webhook_id)
            first_seen.setdefault(key, request.at)
        for request in receiver.requests:
            payload = msgspec.json.decode(request.body)
            customer_id = payload["data"]["object"]["id"]
            if customer_id in committed_at and first_seen[(request.path, request.webhook_id)] == request.at:
                latencies.append(request.at - committed_at[customer_id])

        # Correctness: every request verifies, every delivery succeeded, none was sent twice.
        by_path = dict(secrets)
        for request in receiver.requests:
            Webhook(by_path[request.path]).verify(request.body, request.headers)
        duplicates = sum(n - 1 for n in Counter((r.path, r.webhook_id) for r in receiver.requests).values())
        async with services.sessions() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(WebhookDelivery.status, func.count())
                        .where(WebhookDelivery.merchant_id == merchant.id)
                        .group_by(WebhookDelivery.status)
                    )
                ).all()
            )
        assert statuses == {"succeeded": expected}, statuses
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        await receiver.stop()
        await services.close()

    policy = DeliveryPolicy()
    ms = 1000
    return [
        f"- Setup: one `billing worker` process (dispatcher: {policy.concurrency} requests in flight, "
        f"{policy.per_endpoint} per endpoint), {args.endpoints} endpoints on a loopback HTTP receiver answering 200 "
        "at once; events are `customer.created` written by `create_customer` in their own transactions.",
        f"- Throughput: a backlog of {args.backlog} events × {args.endpoints} endpoints = {backlog} deliveries "
        f"drained in {drain_seconds:.1f} s: **{throughput:.0f} deliveries/s** (each = claim share + signed POST + "
        "attempt row and state in their own transaction)",
        f"- Latency, event committed → first attempt received, at {args.rate:g} events/s for {args.seconds:g} s "
        f"({len(latencies)} deliveries): **p50 {percentile(latencies, 50) * ms:.1f} ms, "
        f"p99 {percentile(latencies, 99) * ms:.1f} ms** (max {max(latencies) * ms:.1f} ms; woken by NOTIFY)",
        f"- Checked: {len(receiver.requests)} requests, every signature verified with `standardwebhooks`, every "
        f"delivery `succeeded`, {duplicates} sent twice",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=2000, help="events written before the worker starts")
    parser.add_argument("--rate", type=float, default=50, help="events per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=20, help="length of the latency phase")
    parser.add_argument("--no-record", action="store_true", help="print the figures without appending them")
    args = parser.parse_args()
    with servers() as (database_url, redis_url):
        lines = asyncio.run(_run(database_url, redis_url, args))
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Webhooks: delivery throughput and latency", lines)


if __name__ == "__main__":
    main()
