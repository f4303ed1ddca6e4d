"""API load benchmark (issue 16): open-loop requests at a fixed rate against `billing serve --workers N`, with the
latency of each path at p50/p95/p99.

    .venv/bin/python -m bench.api_load [--rates 100 300] [--workers 1 2] [--seconds 10]

- Open loop: a separate process sends request i at start + i / rate whether or not earlier ones have answered,
  and a request's latency runs from that planned instant (so a server that falls behind shows it in the tail
  instead of slowing the sender down: no coordinated omission).
- The mix, in this rotation: create customer, retrieve invoice, list invoices (of a customer), upcoming invoice,
  retrieve invoice, list invoices, upcoming invoice, create customer, retrieve invoice, usage batch of 1,000
  events (one request in ten is a usage batch, two in ten create a customer, the rest read).
- The rate limits are raised for the benchmark's key: it measures the engine, not the limiter.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from bench.common import percentile, record, servers

CUSTOMERS = 40
WARMUP_RATE = 30
USAGE_BATCH = 1_000
ROTATION = (
    "create customer",
    "retrieve invoice",
    "list invoices",
    "upcoming invoice",
    "retrieve invoice",
    "list invoices",
    "upcoming invoice",
    "create customer",
    "retrieve invoice",
    "usage batch of 1,000",
)


@dataclass(frozen=True)
class Fixture:
    key: str
    customers: list[str]
    invoices: list[str]
    subscriptions: list[str]
    meter_code: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, (path, response.text)
    return dict(response.json())


async def build_fixture(url: str, key: str) -> Fixture:
    """Customers with a subscription each (so each has an invoice and an upcoming invoice), and a meter."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:
        meter = await _post(
            client, "/v1/meters", {"code": "load_calls", "name": "Calls", "aggregation": "count"}
        )
        plan = await _post(
            client,
            "/v1/plans",
            {
                "code": "load_plan",
                "name": "Load",
                "currency": "USD",
                "interval": "month",
                "amount": 1000,
                "charges": [{"meter": meter["code"], "model": "per_unit", "unit_amount": 1}],
            },
        )
        customers, subscriptions, invoices = [], [], []
        for i in range(CUSTOMERS):
            customer = await _post(client, "/v1/customers", {"email": f"load{i}@example.com"})
            subscription = await _post(
                client,
                "/v1/subscriptions",
                {
                    "customer": customer["id"],
                    "plan": plan["id"],
                    "collection_method": "send_invoice",
                    "days_until_due": 7,
                },
            )
            customers.append(customer["id"])
            subscriptions.append(subscription["id"])
        listed = await client.get("/v1/invoices", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        invoices = [invoice["id"] for invoice in listed.json()["data"]]
        assert invoices, "subscribing created no invoice to read"
        return Fixture(key, customers, invoices, subscriptions, meter["code"])


def _usage_body(fixture: Fixture, request_number: int) -> bytes:
    now = datetime.now(UTC) - timedelta(seconds=1)
    events = [
        {
            "id": f"load-{request_number}-{n}",
            "customer": fixture.customers[n % len(fixture.customers)],
            "meter": fixture.meter_code,
            "timestamp": now.isoformat(),
        }
        for n in range(USAGE_BATCH)
    ]
    return msgspec.json.encode({"events": events})


def rotation(with_usage: bool) -> tuple[str, ...]:
    """The request kinds in sending order; without usage, the batch's slot becomes one more invoice read."""
    return (
        ROTATION
        if with_usage
        else tuple("retrieve invoice" if k.startswith("usage") else k for k in ROTATION)
    )


async def _drive(
    url: str, fixture: Fixture, rate: int, seconds: float, tag: str, kinds: tuple[str, ...]
) -> list[tuple[str, float, int]]:
    total = int(rate * seconds)
    # Bodies are made before the clock starts so the sender spends its time sending.
    usage_bodies = {
        i: _usage_body(fixture, i) for i in range(total) if kinds[i % len(kinds)].startswith("usage")
    }
    results: list[tuple[str, float, int]] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    headers = {"Authorization": f"Bearer {fixture.key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def one(i: int, planned: float) -> None:
            kind = kinds[i % len(kinds)]
            n = i // len(kinds)
            if kind == "create customer":
                request = client.post("/v1/customers", json={"email": f"{tag}-{i}@example.com"})
            elif kind == "retrieve invoice":
                request = client.get(f"/v1/invoices/{fixture.invoices[n % len(fixture.invoices)]}")
            elif kind == "list invoices":
                customer = fixture.customers[n % len(fixture.customers)]
                request = client.get("/v1/invoices", params={"customer": customer, "limit": 10})
            elif kind == "upcoming invoice":
                subscription = fixture.subscriptions[n % len(fixture.subscriptions)]
                request = client.get(f"/v1/subscriptions/{subscription}/upcoming_invoice")
            else:
                request = client.post(
                    "/v1/usage_events/batch",
                    content=usage_bodies[i],
                    headers={"content-type": "application/json"},
                )
            try:
                status = (await request).status_code
            except httpx.HTTPError:
                status = 0
            results.append((kind, time.perf_counter() - planned, status))

        tasks = []
        start = time.perf_counter() + 0.2
        for i in range(total):
            planned = start + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, planned)))
        await asyncio.gather(*tasks)
    return results


def _drive_in_process(
    url: str, fixture: Fixture, rate: int, seconds: float, tag: str, kinds: tuple[str, ...], out: Any
) -> None:
    out.put(asyncio.run(_drive(url, fixture, rate, seconds, tag, kinds)))


def run_load(
    url: str, fixture: Fixture, rate: int, seconds: float, tag: str, kinds: tuple[str, ...]
) -> list[tuple[str, float, int]]:
    """The open-loop sender runs in a process of its own, so its work does not share the bench's interpreter."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    sender = context.Process(target=_drive_in_process, args=(url, fixture, rate, seconds, tag, kinds, out))
    sender.start()
    results: list[tuple[str, float, int]] = out.get(timeout=seconds + 300)
    sender.join(60)
    return results


def _wait_ready(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def summarize(
    workers: int, rate: int, results: list[tuple[str, float, int]], kinds: tuple[str, ...]
) -> list[str]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    for kind, latency, status in results:
        by_kind[kind].append(latency)
        if status != 200:
            failures[kind] += 1
    ms = 1000
    mix = "" if "usage batch of 1,000" in kinds else " (no usage batches)"
    lines = [f"- {workers} API process{'es' if workers > 1 else ''}, {rate} requests/s{mix}:"]
    for kind in dict.fromkeys(kinds):
        values = by_kind[kind]
        lines.append(
            f"  - {kind}: p50 {percentile(values, 50) * ms:.0f} ms, p95 {percentile(values, 95) * ms:.0f} ms, "
            f"p99 **{percentile(values, 99) * ms:.0f} ms** ({len(values)} requests"
            + (f", {failures[kind]} not 200" if failures[kind] else "")
            + ")"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate is held")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help=f"seconds at {WARMUP_RATE}/s before the measured rates, per server",
    )
    parser.add_argument("--no-usage", action="store_true", help="send invoice reads instead of usage batches")
    parser.add_argument("--note", default="", help="a line saying what this run measures (e.g. the commit)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.md")
    args = parser.parse_args()
    lines = [*([args.note] if args.note else [])]
    kinds = rotation(not args.no_usage)
    with servers() as (database_url, redis_url):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BILLING_LOG_LEVEL": "ERROR",
            "BILLING_RATE_LIMIT_PER_KEY": "1000000:1000000",
            "BILLING_RATE_LIMIT_USAGE_PER_KEY": "1000000:1000000",
        }
        created = subprocess.run(
            [sys.executable, "-m", "billing", "merchants", "create", "Bench load"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["secret_key"]
        fixture: Fixture | None = None
        tags = itertools.count()
        for workers in args.workers:
            port = _free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "billing", "serve", "--port", str(port), "--workers", str(workers)],
                env=env,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url)
                if fixture is None:
                    fixture = asyncio.run(build_fixture(url, key))
                if args.warmup > 0:
                    # A fresh server compiles each statement once and prepares it once per pooled connection:
                    # measured cold, a short run times the warm-up, not the engine.
                    run_load(url, fixture, WARMUP_RATE, args.warmup, f"warm{next(tags)}", kinds)
                for rate in args.rates:
                    load = os.getloadavg()
                    results = run_load(url, fixture, rate, args.seconds, f"run{next(tags)}", kinds)
                    lines += summarize(workers, rate, results, kinds)
                    lines.append(f"  - load average before: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
            finally:
                server.terminate()
                server.wait(60)
    lines.append(
        f"- Open loop from a separate process, {args.seconds:.0f} s per rate after {args.warmup:.0f} s of warm-up at "
        f"{WARMUP_RATE}/s per server start; latency from each request's planned send time. Other engineers' test "
        "suites share this 2-core machine."
    )
    if args.no_record:
        print("\n".join(lines))
    else:
        record("API load", lines)


if __name__ == "__main__":
    main()
