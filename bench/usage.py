"""Usage ingestion benchmark (issue 6): the batch endpoint of a real `billing serve` process against the raw COPY
rate of the same database in the same run, the serve process's peak RSS while batches stream, and how soon an
accepted event is visible in current usage.

    .venv/bin/python -m bench.usage [--events 300000] [--clients 3] [--duplicates 0.1]

- Raw COPY: asyncpg `copy_records_to_table` of the same kind of rows straight into `usage_events`, in chunks of
  10,000 (one per transaction, like the API's batches), measured before and after the stream; the mean is the
  reference (the machine is shared, so both are printed).
- Engine: `--clients` concurrent clients post pre-encoded batches of 10,000 events (unique ids, plus a share
  of ids already sent, which must come back as duplicates) until `--events` unique events are stored.
- Freshness: a single event is posted, and the clock starts at its 200 answer and stops when
  `GET /v1/customers/{id}/usage` shows it (or, if that route is absent, when the aggregation SQL counts it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import msgspec
import psutil

from bench.common import percentile, record, servers

BATCH = 10_000
CUSTOMERS = 500
COPY_COLUMNS = (
    "merchant_id",
    "event_id",
    "customer_id",
    "meter_id",
    "timestamp",
    "value",
    "properties",
    "received_at",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class World:
    url: str
    key: str
    merchant_id: str
    customers: list[tuple[str, str]]  # (id, external_id)
    meters: dict[str, tuple[str, str]]  # aggregation -> (code, id)
    fresh_customer: str = ""
    fresh_subscription: str = ""


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, (path, response.text)
    return dict(response.json())


async def build_world(url: str, key: str, merchant_id: str) -> World:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        meters: dict[str, tuple[str, str]] = {}
        for aggregation, extra in (("count", {}), ("sum", {}), ("unique_count", {"property": "user_id"})):
            meter = await _post(
                client,
                "/v1/meters",
                {"code": f"bench_{aggregation}", "name": aggregation, "aggregation": aggregation, **extra},
            )
            meters[aggregation] = (meter["code"], meter["id"])
        customers = []
        for i in range(CUSTOMERS):
            customer = await _post(
                client, "/v1/customers", {"email": f"c{i}@example.com", "external_id": f"acct-{i}"}
            )
            customers.append((customer["id"], customer["external_id"]))
        world = World(url=url, key=key, merchant_id=merchant_id, customers=customers, meters=meters)
        plan = await _post(
            client,
            "/v1/plans",
            {
                "code": "bench_metered",
                "name": "Metered",
                "currency": "USD",
                "interval": "month",
                "amount": 0,
                "charges": [{"meter": meters["count"][0], "model": "per_unit", "unit_amount": 1}],
            },
        )
        fresh = await _post(client, "/v1/customers", {"email": "fresh@example.com"})
        subscription = await _post(
            client,
            "/v1/subscriptions",
            {
                "customer": fresh["id"],
                "plan": plan["id"],
                "collection_method": "send_invoice",
                "days_until_due": 7,
            },
        )
        world.fresh_customer, world.fresh_subscription = fresh["id"], subscription["id"]
        return world


def make_batches(
    world: World, unique: int, duplicate_share: float, seed: int = 7
) -> tuple[list[bytes], int, int]:
    """Pre-encoded request bodies (so the clients cost little CPU): each batch carries BATCH events, a share of
    them repeating ids of earlier batches. Returns the bodies, the events sent and the duplicates among them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    fresh_per_batch = max(1, round(BATCH * (1 - duplicate_share)))
    bodies: list[bytes] = []
    issued = sent = duplicates = 0
    codes = [world.meters[a][0] for a in ("count", "sum", "unique_count")]
    while issued < unique:
        events = []
        take = min(fresh_per_batch, unique - issued)
        for n in range(issued, issued + take):
            customer_id, external_id = world.customers[n % len(world.customers)]
            events.append(
                {
                    "id": f"e{n}",
                    "customer": external_id if n % 2 else customer_id,
                    "meter": codes[n % 3],
                    "timestamp": (now - timedelta(seconds=rng.randrange(3600))).isoformat(),
                    "value": rng.randrange(1, 1000),
                    "properties": {"user_id": f"u{rng.randrange(5000)}", "region": "eu-west"},
                }
            )
        dup_count = BATCH - take if issued else 0
        for _ in range(dup_count):
            copy = dict(events[0])
            copy["id"] = f"e{rng.randrange(issued)}"
            events.append(copy)
        rng.shuffle(events)
        issued += take
        sent += len(events)
        duplicates += dup_count
        bodies.append(msgspec.json.encode({"events": events}))
    return bodies, sent, duplicates


@dataclass
class StreamResult:
    elapsed: float
    accepted: int
    duplicates: int
    latencies: list[float] = field(default_factory=list)


async def stream(url: str, key: str, bodies: list[bytes], clients: int) -> StreamResult:
    queue = iter(bodies)
    result = StreamResult(0.0, 0, 0)
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
            for body in queue:
                started = time.perf_counter()
                response = await client.post("/v1/usage_events/batch", content=body)
                result.latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:500]
                answer = response.json()
                assert not answer["errors"], answer["errors"][:3]
                result.accepted += answer["accepted"]
                result.duplicates += answer["duplicates"]

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    result.elapsed = time.perf_counter() - started
    return result


async def raw_copy_rate(database_url: str, world: World, total: int, tag: str) -> float:
    """events/s of asyncpg COPY of rows like the API's, in chunks of BATCH, each chunk its own transaction."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    meter_ids = [world.meters[a][1] for a in ("count", "sum", "unique_count")]
    records = [
        (
            f"raw_{tag}",
            f"r{n}",
            world.customers[n % len(world.customers)][0],
            meter_ids[n % 3],
            now - timedelta(seconds=rng.randrange(3600)),
            Decimal(rng.randrange(1, 1000)),
            json.dumps({"user_id": f"u{rng.randrange(5000)}", "region": "eu-west"}),
            now,
        )
        for n in range(total)
    ]
    connection = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        for offset in range(0, total, BATCH):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "usage_events", records=records[offset : offset + BATCH], columns=COPY_COLUMNS
                )
        return total / (time.perf_counter() - started)
    finally:
        await connection.close()


class RssSampler:
    """Peak resident memory of a process and its children, sampled every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        processes = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in processes)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def freshness(world: World, database_url: str, samples: int) -> tuple[list[float], str]:
    """Seconds from an event's 200 answer to its being counted in current usage, per sample."""
    headers = {"Authorization": f"Bearer {world.key}"}
    code, meter_id = world.meters["count"]
    times: list[float] = []
    connection = await asyncpg.connect(database_url)
    async with httpx.AsyncClient(base_url=world.url, headers=headers, timeout=60) as client:
        probe = await client.get(f"/v1/customers/{world.fresh_customer}/usage")
        via_api = probe.status_code == 200

        async def quantity() -> Decimal:
            if via_api:
                usage = (await client.get(f"/v1/customers/{world.fresh_customer}/usage")).json()
                charges = usage["subscriptions"][0]["charges"]
                return sum((Decimal(c["quantity"]) for c in charges if c["meter"] == code), Decimal(0))
            count = await connection.fetchval(
                "SELECT count(*) FROM usage_events WHERE merchant_id = $1 AND customer_id = $2 AND meter_id = $3 "
                "AND \"timestamp\" >= date_trunc('month', now()) AND \"timestamp\" < now() + interval '1 day'",
                world.merchant_id,
                world.fresh_customer,
                meter_id,
            )
            return Decimal(count)

        try:
            for i in range(samples):
                before = await quantity()
                response = await client.post(
                    "/v1/usage_events",
                    json={"id": f"fresh-{i}", "customer": world.fresh_customer, "meter": code},
                )
                assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
                answered = time.perf_counter()
                while await quantity() < before + 1:
                    if time.perf_counter() - answered > 10:
                        raise AssertionError("event not visible after 10 s")
                times.append(time.perf_counter() - answered)
        finally:
            await connection.close()
    how = "GET /v1/customers/{id}/usage" if via_api else "the aggregation SQL (GET usage route not available)"
    return times, how


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000, help="unique events to store through the API")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument(
        "--duplicates", type=float, default=0.1, help="share of each batch that repeats old ids"
    )
    parser.add_argument("--freshness-samples", type=int, default=20)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with servers() as (database_url, redis_url):
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BILLING_LOG_LEVEL": "ERROR",
        }
        created = subprocess.run(
            [sys.executable, "-m", "billing", "merchants", "create", "Bench usage"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        merchant = json.loads(created.stdout)
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
            world = asyncio.run(build_world(url, merchant["secret_key"], merchant["id"]))
            bodies, sent, expected_duplicates = make_batches(world, args.events, args.duplicates)
            raw_before = asyncio.run(raw_copy_rate(dsn, world, args.events, "before"))
            # Warm-up: one batch of ids outside the measured set.
            warm, _, _ = make_batches(world, BATCH, 0.0, seed=99)
            asyncio.run(stream(url, merchant["secret_key"], [warm[0].replace(b'"id":"e', b'"id":"w')], 1))
            sampler = RssSampler(server.pid)
            rss_idle = sampler.rss()
            with sampler:
                result = asyncio.run(stream(url, merchant["secret_key"], bodies, args.clients))
            raw_after = asyncio.run(raw_copy_rate(dsn, world, args.events, "after"))
            fresh, how = asyncio.run(freshness(world, dsn, args.freshness_samples))
        finally:
            server.terminate()
            server.wait(30)
    assert result.accepted == args.events, (result.accepted, args.events)
    assert result.duplicates == expected_duplicates, (result.duplicates, expected_duplicates)
    raw = (raw_before + raw_after) / 2
    engine = sent / result.elapsed
    stored_rate = result.accepted / result.elapsed
    ms = 1000
    lines = [
        f"- Raw COPY into usage_events (asyncpg copy_records_to_table, chunks of {BATCH:,}, {args.events:,} rows): "
        f"**{raw:,.0f} events/s** (before the stream {raw_before:,.0f}, after {raw_after:,.0f})",
        f"- Engine: {math.ceil(sent / BATCH)} batches of {BATCH:,} from {args.clients} concurrent clients to one "
        f"`billing serve` process, {sent:,} events ({result.accepted:,} stored, {result.duplicates:,} duplicates "
        f"= {args.duplicates:.0%}) in {result.elapsed:.1f} s: **{engine:,.0f} events/s** processed "
        f"({stored_rate:,.0f} stored/s); batch latency p50 {percentile(result.latencies, 50) * ms:.0f} ms, "
        f"p99 {percentile(result.latencies, 99) * ms:.0f} ms",
        f"- Ratio engine / raw COPY: **{engine / raw:.2f}** (stored events only: {stored_rate / raw:.2f}; target ≥ 0.25)",
        f"- `billing serve` RSS: **peak {sampler.peak / 2**20:.0f} MB** while batches streamed "
        f"(idle after warm-up {rss_idle / 2**20:.0f} MB; target < 300 MB)",
        f"- Freshness, 200 answer → visible in current usage via {how}: p50 {percentile(fresh, 50) * ms:.1f} ms, "
        f"max {max(fresh) * ms:.1f} ms over {len(fresh)} events (target < 1 s)",
        f"- Load average before the run: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} "
        "(other benchmarks and test suites share this machine)",
    ]
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Usage ingestion", lines)


if __name__ == "__main__":
    main()
