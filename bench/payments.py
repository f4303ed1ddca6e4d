"""Payments benchmark: charge latency through the sandbox gateway, in-process (ASGI transport) and over real
HTTP (a `billing sandbox-gateway` process), both for the bare gateway call (adapter → sandbox → outcome) and for
the whole `collect_payment` (pending row committed, vault decrypt, routed charge, outcome + stats + events
committed).

    .venv/bin/python -m bench.payments [--charges 1000] [--payments 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import percentile, record, servers
from billing.config import Settings
from billing.customers.schemas import CustomerCreate, CustomerUpdate
from billing.customers.service import create_customer, update_customer
from billing.db.engine import transaction
from billing.gateways.base import CardInstrument, ChargeRequest, ConnectionConfig, Succeeded
from billing.ids import new_id
from billing.merchants.service import create_merchant
from billing.payment_methods.schemas import CardInput, PaymentMethodCreate
from billing.payment_methods.service import create_payment_method
from billing.payments.service import collect_payment
from billing.services import Services, open_services
from billing.settings.schemas import GatewayConnection, SettingsUpdate
from billing.settings.service import update_settings
from billing.vault.cards import SecretPan
from billing.vault.keys import generate_key_line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def standalone_sandbox() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "sandbox-gateway", "--port", str(port)],
        env={**os.environ, "BILLING_ENV": "test", "BILLING_LOG_LEVEL": "WARNING"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/admin/state", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _summary(label: str, seconds: list[float], wall: float | None = None) -> str:
    ms = [s * 1000 for s in seconds]
    rate = f", **{len(ms) / wall:.0f}/s**" if wall else ""
    return (
        f"- {label}: p50 **{percentile(ms, 50):.2f} ms**, p99 **{percentile(ms, 99):.2f} ms**, "
        f"max {max(ms):.2f} ms ({len(ms)} charges{rate})"
    )


async def _timed(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    numbers = iter(range(count))

    async def loop() -> None:
        for i in numbers:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def _setup(services: Services) -> tuple[str, str]:
    async with transaction(services.sessions) as session:
        merchant = await create_merchant(session, "Bench payments")
        customer = await create_customer(session, merchant.id, CustomerCreate(name="Bench"), production=False)
        card = CardInput(number="4242424242424242", exp_month=12, exp_year=2040)
        pm, _ = await create_payment_method(
            session, merchant.id, PaymentMethodCreate(customer=customer.id, card=card), services.vault
        )
        await update_customer(session, merchant.id, customer.id, CustomerUpdate(default_payment_method=pm.id))
    return merchant.id, customer.id


async def _use_connection(services: Services, merchant_id: str, url: str | None) -> None:
    async with transaction(services.sessions) as session:
        await update_settings(
            session,
            merchant_id,
            SettingsUpdate(gateways=[GatewayConnection(id="bench", type="sandbox", url=url)]),
            production=False,
        )


async def _run(database_url: str, redis_url: str, args: argparse.Namespace) -> list[str]:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=Path("/tmp/billing-bench-payments"),
        env="test",
        redis_prefix="billing-bench-payments",
        vault_keys=generate_key_line("bench"),
    )
    services = await open_services(settings, pool_size=20)
    lines: list[str] = []
    try:
        merchant_id, customer_id = await _setup(services)
        instrument = CardInstrument(
            pan=SecretPan("4242424242424242"), brand="visa", exp_month=12, exp_year=2040
        )
        with standalone_sandbox() as http_url:
            for label, url in (
                ("in-process sandbox (ASGI transport)", None),
                ("HTTP sandbox (uvicorn, loopback)", http_url),
            ):
                gateway = services.gateways.gateway(ConnectionConfig(id="bench", type="sandbox", url=url))

                async def charge(_: int, gateway=gateway) -> None:  # type: ignore[no-untyped-def]
                    outcome = await gateway.charge(
                        ChargeRequest(
                            idempotency_key=new_id("pay"), amount=1999, currency="USD", instrument=instrument
                        )
                    )
                    assert isinstance(outcome, Succeeded), outcome

                await _timed(50, 1, charge)  # warm up
                latencies, wall = await _timed(args.charges, 1, charge)
                lines.append(_summary(f"Gateway call only, {label}, sequential", latencies, wall))

                await _use_connection(services, merchant_id, url)

                async def pay(i: int, tag: str = label) -> None:
                    payment = await collect_payment(
                        services,
                        merchant_id=merchant_id,
                        customer_id=customer_id,
                        amount=1999,
                        currency="USD",
                        purpose=f"bench:{tag}:{i}:{time.monotonic_ns()}",
                    )
                    assert payment.status == "succeeded", payment.failure_code

                await _timed(20, 1, pay)
                latencies, wall = await _timed(args.payments, 1, pay)
                lines.append(_summary(f"collect_payment end to end, {label}, sequential", latencies, wall))
                latencies, wall = await _timed(args.payments, args.concurrency, pay)
                lines.append(
                    _summary(
                        f"collect_payment end to end, {label}, {args.concurrency} concurrent", latencies, wall
                    )
                )
    finally:
        await services.close()
    lines.append(
        "- collect_payment = 3 transactions (pending row + event; the charge outside any transaction; outcome + "
        "attempt stats + breaker + event), one vault decryption (AES-256-GCM unwrap + decrypt), one Redis GETDEL "
        "(CVC), one gateway request; PostgreSQL and Redis on this machine"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--charges", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with servers() as (database_url, redis_url):
        lines = asyncio.run(_run(database_url, redis_url, args))
    record("Payments: charge latency through the sandbox gateway", lines)


if __name__ == "__main__":
    main()
