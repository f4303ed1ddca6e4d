"""Risk check benchmark (SPEC §9: under 5 ms per decision): `check_risk` as a charge runs it, against the real
database: the merchant's rules read, the recent attempts counted in one indexed query, the pure decision, the
decision row inserted (and its event, when not allow). Measured per decision inside its own transaction (the
commit is timed apart), over a history of earlier decisions so the velocity query reads real indexes.

    python -m bench.risk [--history 50000] [--decisions 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import timedelta

from sqlalchemy import insert, text

from bench.common import percentile, record, servers
from billing.clock import SYSTEM_CLOCK, utc_now
from billing.customers.models import Customer
from billing.customers.schemas import CustomerCreate
from billing.customers.service import create_customer
from billing.db.engine import make_engine, make_sessionmaker, transaction
from billing.ids import new_id
from billing.merchants.service import create_merchant
from billing.risk.models import RiskDecision
from billing.risk.service import Subject, check_risk
from billing.settings.schemas import RiskBlocklists, RiskSettings, RiskVelocity, SettingsUpdate
from billing.settings.service import update_settings

CUSTOMERS = 200


async def _run(database_url: str, args: argparse.Namespace) -> list[str]:
    engine = make_engine(database_url, pool_size=4)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as session:
        merchant = await create_merchant(session, "Bench risk")
        customers: list[Customer] = [
            await create_customer(
                session, merchant.id, CustomerCreate(email=f"c{i}@example.com"), production=False
            )
            for i in range(CUSTOMERS)
        ]
        await update_settings(
            session,
            merchant.id,
            SettingsUpdate(
                risk=RiskSettings(
                    velocity=RiskVelocity(
                        per_fingerprint_per_hour=10_000, per_customer_per_hour=10_000, per_ip_per_hour=10_000
                    ),
                    blocklists=RiskBlocklists(
                        fingerprints=[f"fp_bad_{i}" for i in range(500)],
                        emails=[f"bad{i}@example.com" for i in range(500)],
                        ips=[f"203.0.113.{i}" for i in range(200)],
                        countries=["KP"],
                    ),
                )
            ),
            production=False,
        )
    # History: earlier decisions over the last two hours, spread over cards, customers and IPs.
    now = utc_now()
    async with transaction(sessions) as session:
        for start in range(0, args.history, 5000):
            await session.execute(
                insert(RiskDecision),
                [
                    {
                        "id": new_id("rsk"),
                        "merchant_id": merchant.id,
                        "subject_type": "payment",
                        "subject_id": new_id("pay"),
                        "customer_id": customers[i % CUSTOMERS].id,
                        "fingerprint": f"fp_{i % 1000}",
                        "ip": f"198.51.{i % 200}.{i % 250}",
                        "amount": 1999,
                        "currency": "USD",
                        "outcome": "allow",
                        "score": 0,
                        "reasons": [],
                        "created_at": now - timedelta(seconds=(i * 7) % 7200),
                    }
                    for i in range(start, min(args.history, start + 5000))
                ],
            )
    async with engine.connect() as connection:
        # What autovacuum does to a table of this size in production: the visibility map lets the counts be
        # index-only scans without heap fetches.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("VACUUM ANALYZE risk_decisions")
    # The floor, measured in the same run: the two round trips the check cannot avoid (one read, one insert)
    # with nothing else, so a loaded machine shows as a loaded floor, not as a slow check.
    floor_ms: list[float] = []
    async with sessions() as session:
        await session.execute(text("CREATE TEMPORARY TABLE floor_rows (id text, at timestamptz)"))
        for i in range(args.decisions):
            t0 = time.perf_counter()
            await session.execute(text("SELECT 1"))
            await session.execute(text("INSERT INTO floor_rows VALUES (:id, now())"), {"id": str(i)})
            floor_ms.append((time.perf_counter() - t0) * 1000)
        await session.rollback()
    check_ms: list[float] = []
    commit_ms: list[float] = []
    began = time.perf_counter()
    for i in range(args.decisions):
        subject = Subject(
            type="payment",
            id=new_id("pay"),
            customer=customers[i % CUSTOMERS],
            fingerprint=f"fp_{i % 1000}",
            ip=f"198.51.{i % 200}.{i % 250}",
            amount=1999,
            currency="USD",
        )
        async with sessions() as session:
            async with session.begin():
                t0 = time.perf_counter()
                await check_risk(session, merchant.id, subject, SYSTEM_CLOCK)
                t1 = time.perf_counter()
            t2 = time.perf_counter()
        check_ms.append((t1 - t0) * 1000)
        commit_ms.append((t2 - t1) * 1000)
    elapsed = time.perf_counter() - began
    await engine.dispose()
    return [
        f"- check_risk per decision (one statement: risk settings, blocklist look-ups, three velocity counts; then decide + insert, in an open "
        f"transaction), sequential: p50 **{percentile(check_ms, 50):.2f} ms**, p99 **{percentile(check_ms, 99):.2f} "
        f"ms**, max {max(check_ms):.2f} ms ({args.decisions} decisions over a history of {args.history} decisions, "
        f"1000 cards, {CUSTOMERS} customers, 40000 IPs; blocklists of 500 cards, 500 emails, 200 IPs)",
        f"- floor in the same run, two bare round trips (SELECT 1 + one INSERT): p50 {percentile(floor_ms, 50):.2f} "
        f"ms, p99 {percentile(floor_ms, 99):.2f} ms; load average at the end {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores",
        f"- with its commit, one decision per transaction: **{args.decisions / elapsed:.0f} decisions/s** "
        f"(commit p50 {percentile(commit_ms, 50):.2f} ms)",
        "- PostgreSQL on this machine; the 5 ms budget of SPEC §9 is for the check, the commit is the charge's own",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    with servers() as (database_url, _redis_url):
        lines = asyncio.run(_run(database_url, args))
    record("Risk: decision latency against the real database", lines)


if __name__ == "__main__":
    main()
