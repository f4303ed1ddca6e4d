"""Usage ingestion benchmark (issues 6 and 16): the batch endpoint of a real `billing serve` process against the
fixed ingestion floor of SPEC §11 measured in the same run, the serve process's peak RSS while batches stream, and
how soon an accepted event is visible in current usage.

    .venv/bin/python -m bench.usage [--events 300000] [--clients 4] [--duplicates 0.1]

- Floor (SPEC §11, never rewritten to mirror our schema): asyncpg `copy_records_to_table` of (id text primary
  key, customer text, meter text, value bigint, ts timestamptz) rows into a fresh table, in chunks of 5,000 (one
  per transaction, like the API's batches), measured before and after the streams; the mean is the reference (the
  machine is shared, so both are printed).
- Engine: first ONE client posts pre-encoded batches of 5,000 events in sequence, then `--clients` concurrent
  clients do the same with new ids; each stream stores `--events` unique events (plus a share of ids already
  sent, which must come back as duplicates).
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

BATCH = 5_000
CUSTOMERS = 500
FLOOR_TABLE = """
CREATE TABLE {name} (id text PRIMARY KEY, customer text, meter text, value bigint, ts timestamptz)
"""


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
    world: World, unique: int, duplicate_share: float, seed: int = 7, id_prefix: str = "e"
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
                    "id": f"{id_prefix}{n}",
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
            copy["id"] = f"{id_prefix}{rng.randrange(issued)}"
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


async def floor_rate(database_url: str, world: World, total: int, tag: str) -> float:
    """events/s of the SPEC §11 ingestion floor: asyncpg COPY of (id, customer, meter, value, ts) rows into a
    fresh table with a text primary key, in chunks of BATCH, each chunk its own transaction."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    codes = [world.meters[a][0] for a in ("count", "sum", "unique_count")]
    records = [
        (
            f"r{n}",
            world.customers[n % len(world.customers)][0],
            codes[n % 3],
            rng.randrange(1, 1000),
            now - timedelta(seconds=rng.randrange(3600)),
        )
        for n in range(total)
    ]
    table = f"ingestion_floor_{tag}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(FLOOR_TABLE.format(name=table))
        started = time.perf_counter()
        for offset in range(0, total, BATCH):
            async with connection.transaction():
                await connection.copy_records_to_table(table, records=records[offset : offset + BATCH])
        elapsed = time.perf_counter() - started
        await connection.execute(f"DROP TABLE {table}")
        return total / elapsed
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


def _stream_line(label: str, sent: int, result: StreamResult, floor: float, duplicate_share: float) -> str:
    processed = sent / result.elapsed
    stored = result.accepted / result.elapsed
    ms = 1000
    return (
        f"- {label}: {math.ceil(sent / BATCH)} batches of {BATCH:,}, {sent:,} events ({result.accepted:,} stored, "
        f"{result.duplicates:,} duplicates = {duplicate_share:.0%}) in {result.elapsed:.1f} s: **{processed:,.0f} "
        f"events/s** processed ({stored:,.0f} stored/s), **{processed / floor:.2f} of the floor** (stored only "
        f"{stored / floor:.2f}); batch latency p50 {percentile(result.latencies, 50) * ms:.0f} ms, "
        f"p99 {percentile(result.latencies, 99) * ms:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000, help="unique events each stream stores")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the second stream")
    parser.add_argument(
        "--duplicates", type=float, default=0.1, help="share of each batch that repeats old ids"
    )
    parser.add_argument("--freshness-samples", type=int, default=20)
    parser.add_argument("--note", default="", help="a line saying what this run measures (e.g. the commit)")
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
            # The rate limits guard against clients; the benchmark is the one client and measures the engine.
            "BILLING_RATE_LIMIT_PER_KEY": "1000000:1000000",
            "BILLING_RATE_LIMIT_USAGE_PER_KEY": "1000000:1000000",
        }
        created = subprocess.run(
            [sys.executable, "-m", "billing", "merchants", "create", "Bench usage"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        merchant = json.loads(created.stdout)
        key = merchant["secret_key"]
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
            world = asyncio.run(build_world(url, key, merchant["id"]))
            single_bodies, single_sent, single_dups = make_batches(world, args.events, args.duplicates)
            many_bodies, many_sent, many_dups = make_batches(
                world, args.events, args.duplicates, seed=8, id_prefix="m"
            )
            floor_before = asyncio.run(floor_rate(dsn, world, args.events, "before"))
            # Warm-up: one batch of ids outside the measured sets.
            warm, _, _ = make_batches(world, BATCH, 0.0, seed=99, id_prefix="w")
            asyncio.run(stream(url, key, warm[:1], 1))
            sampler = RssSampler(server.pid)
            rss_idle = sampler.rss()
            with sampler:
                single = asyncio.run(stream(url, key, single_bodies, 1))
                many = asyncio.run(stream(url, key, many_bodies, args.clients))
            floor_after = asyncio.run(floor_rate(dsn, world, args.events, "after"))
            fresh, how = asyncio.run(freshness(world, dsn, args.freshness_samples))
        finally:
            server.terminate()
            server.wait(30)
    for result, expected_duplicates in ((single, single_dups), (many, many_dups)):
        assert result.accepted == args.events, (result.accepted, args.events)
        assert result.duplicates == expected_duplicates, (result.duplicates, expected_duplicates)
    floor = (floor_before + floor_after) / 2
    ms = 1000
    lines = [
        *([args.note] if args.note else []),
        f"- Floor (SPEC §11: asyncpg copy_records_to_table of (id text primary key, customer, meter, value bigint, "
        f"ts) rows into a fresh table, chunks of {BATCH:,}, {args.events:,} rows): **{floor:,.0f} events/s** "
        f"(before the streams {floor_before:,.0f}, after {floor_after:,.0f})",
        _stream_line("One client, batches in sequence", single_sent, single, floor, args.duplicates),
        _stream_line(f"{args.clients} concurrent clients", many_sent, many, floor, args.duplicates),
        "- Target: ≥ 0.25 of the floor from one client, more from several; one `billing serve` process",
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
