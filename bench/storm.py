"""Refund and pay storm (issue #12 item 8): 50 parallel refunds and 50 parallel pays against one real `billing
serve` process, while another merchant's GETs keep flowing, through a standalone sandbox gateway that takes
`--gateway-ms` per call (a real processor is not instant).

Measured: every answer's status (all must be 200; no 500 from an exhausted pool), the storm's latencies, the
bystander merchant's GET latency during the storm against the same GETs on the idle server, and the PostgreSQL
connections the server had open and busy (pg_stat_activity, sampled). Checked: every refund and payment amount.

    .venv/bin/python -m bench.storm [--refunds 50] [--pays 50] [--gateway-ms 200]
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
from contextlib import suppress
from typing import Any

import asyncpg
import httpx

from bench.common import percentile, record, servers
from bench.payments import standalone_sandbox
from billing.db.engine import asyncpg_url
from billing.vault.keys import generate_key_line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _merchant(env: dict[str, str], name: str) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "billing", "merchants", "create", name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(created.stdout)["secret_key"])


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _open_invoice(api: httpx.AsyncClient, customer: str, amount: int) -> str:
    created = await _ok(
        await api.post(
            "/v1/invoices",
            json={
                "customer": customer,
                "lines": [{"description": "Storm", "amount": amount}],
                "collection_method": "send_invoice",
                "days_until_due": 30,
            },
        )
    )
    finalized = await _ok(await api.post(f"/v1/invoices/{created['id']}/finalize"))
    return str(finalized["id"])


async def _bystander(client: httpx.AsyncClient, stop: asyncio.Event, out: list[tuple[int, float]]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/v1/customers", params={"limit": 10})
        out.append((response.status_code, time.perf_counter() - started))


async def _sample_connections(dsn: str, stop: asyncio.Event, peak: list[int]) -> None:
    """peak[0]: most connections the server had open; peak[1]: most of them busy (in a statement or a
    transaction) at one sample."""
    connection = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            row = await connection.fetchrow(
                "SELECT count(*) AS open, count(*) FILTER (WHERE state <> 'idle') AS busy FROM pg_stat_activity "
                "WHERE application_name = 'billing' AND datname = current_database()"
            )
            peak[0] = max(peak[0], int(row["open"]))
            peak[1] = max(peak[1], int(row["busy"]))
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def _timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


async def run(
    url: str, key_a: str, key_b: str, sandbox: str, dsn: str, args: argparse.Namespace
) -> list[str]:
    limits = httpx.Limits(max_connections=args.refunds + args.pays + 10)
    a = httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key_a}"}, timeout=120, limits=limits
    )
    b = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key_b}"}, timeout=120)
    try:
        await _ok(
            await a.patch(
                "/v1/settings",
                json={"gateways": [{"id": "main", "type": "sandbox", "url": sandbox, "timeout_ms": 5000}]},
            )
        )
        customer = await _ok(
            await a.post("/v1/customers", json={"email": "storm@example.com", "currency": "USD"})
        )
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}
        pm = await _ok(await a.post("/v1/payment_methods", json={"customer": customer["id"], "card": card}))
        await _ok(await a.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": pm["id"]}))
        to_refund: list[dict[str, Any]] = []
        for i in range(args.refunds):
            invoice = await _open_invoice(a, customer["id"], 1000 + i)
            await _ok(await a.post(f"/v1/invoices/{invoice}/pay", json={}))
            [payment] = (await _ok(await a.get("/v1/payments", params={"invoice": invoice})))["data"]
            to_refund.append(payment)
        to_pay = [await _open_invoice(a, customer["id"], 2000 + i) for i in range(args.pays)]
        await _ok(await b.post("/v1/customers", json={"email": "bystander@example.com"}))

        idle: list[tuple[int, float]] = []
        stop = asyncio.Event()
        reader = asyncio.create_task(_bystander(b, stop, idle))
        await asyncio.sleep(5)
        stop.set()
        await reader

        during: list[tuple[int, float]] = []
        peak_connections = [0, 0]
        stop = asyncio.Event()
        readers = [asyncio.create_task(_bystander(b, stop, during)) for _ in range(2)]
        sampler = asyncio.create_task(_sample_connections(dsn, stop, peak_connections))
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                _timed(a.post("/v1/refunds", json={"payment": p["id"], "amount": p["amount"] // 2}))
                for p in to_refund
            ),
            *(_timed(a.post(f"/v1/invoices/{i}/pay", json={})) for i in to_pay),
        )
        storm_s = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*readers, sampler)

        refunds, pays = answers[: args.refunds], answers[args.refunds :]
        statuses = [r.status_code for r, _ in answers]
        for (response, _), payment in zip(refunds, to_refund, strict=True):
            assert response.status_code == 200, response.text
            assert response.json()["amount"] == payment["amount"] // 2, (response.json(), payment)
            shown = await _ok(await a.get(f"/v1/payments/{payment['id']}"))
            assert shown["amount_refunded"] == payment["amount"] // 2
        for i, (response, _) in enumerate(pays):
            assert response.status_code == 200, response.text
            assert (response.json()["status"], response.json()["amount_paid"]) == ("paid", 2000 + i)
        async with httpx.AsyncClient(timeout=10) as plain:
            ledger = (await plain.get(sandbox + "/admin/state")).json()
        assert len(ledger["refunds"]) == args.refunds
        assert len(ledger["charges"]) == args.refunds + args.pays
        assert {s for s, _ in during} == {200}, _count_statuses(during)
    finally:
        await a.aclose()
        await b.aclose()

    ms = 1000.0
    idle_lat = [t for _, t in idle]
    during_lat = [t for _, t in during]
    refund_lat = [t for _, t in refunds]
    pay_lat = [t for _, t in pays]
    return [
        f"- Setup: one `billing serve` process (pool 10 + 10 overflow, BILLING_GATEWAY_CONCURRENCY "
        f"{os.environ.get('BILLING_GATEWAY_CONCURRENCY', '16')}, BILLING_CONCURRENCY_PER_KEY "
        f"{os.environ.get('BILLING_CONCURRENCY_PER_KEY', '8')}), a standalone sandbox gateway answering each call "
        f"in {args.gateway_ms} ms, PostgreSQL and Redis on this machine",
        f"- {args.refunds} refunds + {args.pays} pays sent at once: **{statuses.count(200)}/{len(statuses)} answered "
        f"200**, no 500; storm over in {storm_s:.1f} s; every refund and payment amount checked",
        f"- Refund latency p50 {percentile(refund_lat, 50) * ms:.0f} ms, p99 {percentile(refund_lat, 99) * ms:.0f} ms; "
        f"pay latency p50 {percentile(pay_lat, 50) * ms:.0f} ms, p99 {percentile(pay_lat, 99) * ms:.0f} ms "
        f"(the key's requests take turns, {os.environ.get('BILLING_CONCURRENCY_PER_KEY', '8')} at a time; gateway "
        "calls wait for the process's slots; no database connection is held while waiting)",
        f"- Another merchant's GET /v1/customers during the storm: {len(during)} requests, all 200, p50 "
        f"{percentile(during_lat, 50) * ms:.1f} ms, p99 {percentile(during_lat, 99) * ms:.1f} ms, max "
        f"{max(during_lat) * ms:.1f} ms (idle server: p50 {percentile(idle_lat, 50) * ms:.1f} ms, p99 "
        f"{percentile(idle_lat, 99) * ms:.1f} ms)",
        f"- PostgreSQL connections of the server during the storm: at most {peak_connections[0]} open (pool "
        f"limit 10 + 10), at most **{peak_connections[1]}** busy at one sample (every 50 ms)",
    ]


def _count_statuses(samples: list[tuple[int, float]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for status, _ in samples:
        counts[status] = counts.get(status, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--refunds", type=int, default=50)
    parser.add_argument("--pays", type=int, default=50)
    parser.add_argument("--gateway-ms", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with servers() as (database_url, redis_url), standalone_sandbox() as sandbox:
        httpx.post(sandbox + "/admin/mode", json={"mode": "slow", "delay_ms": args.gateway_ms}, timeout=10)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BILLING_ENV": "test",
            "BILLING_LOG_LEVEL": "ERROR",
            "BILLING_VAULT_KEYS": os.environ.get("BILLING_VAULT_KEYS") or generate_key_line("bench"),
        }
        key_a = _merchant(env, "Storm A")
        key_b = _merchant(env, "Bystander B")
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "billing", "serve", "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                with suppress(httpx.HTTPError):
                    if httpx.get(url + "/ready", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            dsn = asyncpg_url(database_url).replace("postgresql+asyncpg://", "postgresql://", 1)
            lines = asyncio.run(run(url, key_a, key_b, sandbox, dsn, args))
        finally:
            server.terminate()
            server.wait(30)
    lines.append(
        f"- Load average before the run: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} "
        "(other engineers' test suites share these 2 cores)"
    )
    record("Refund and pay storm against one API process", lines)


if __name__ == "__main__":
    main()
