"""Billing-run benchmark: renew N subscriptions (invoice + line + number + events + next task) with one and two
workers, next to the rate of a bare SQL transaction making the same writes, and the worker's memory.

    .venv/bin/python -m bench.renewals [--subscriptions 2000] [--memory-subscriptions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import secrets
import tempfile
import time
from pathlib import Path

import asyncpg

import billing.tasks  # noqa: F401  registers the renewal handler
from bench.common import record, servers
from billing.config import Settings
from billing.db.engine import asyncpg_url
from billing.scheduler.runner import run_due_tasks
from billing.services import open_services

SETUP = """
WITH m AS (INSERT INTO merchants (id, name, settings, created_at) VALUES ($1, 'bench', '{}', now()) RETURNING id),
p AS (INSERT INTO plans (id, merchant_id, code, name, currency, interval, interval_count, amount_decimal,
                         charges, metadata, created_at, updated_at, in_use_since)
      SELECT $2, id, 'bench', 'Bench', 'USD', 'month', 1, 1500, '[]', '{}', now(), now(), now() FROM m RETURNING id)
SELECT 1
"""

CUSTOMERS = """
INSERT INTO customers (id, merchant_id, currency, timezone, locale, balance, metadata, created_at, updated_at)
SELECT $1::text || lpad(g::text, 20, '0'), $2, 'USD', 'UTC', 'en', 0, '{}', now(), now()
FROM generate_series(1, $3) g
"""

SUBSCRIPTIONS = """
INSERT INTO subscriptions (id, merchant_id, customer_id, plan_id, quantity, status, collection_method,
    days_until_due, billing_cycle_anchor, period_index, period_offset, current_period_start, current_period_end,
    cancel_at_period_end, tax_rate_ids, metadata, created_at, updated_at)
SELECT 'sub_' || substr(c.id, 5), c.merchant_id, c.id, $2, 1, 'active', 'send_invoice', 7,
       date_trunc('day', now()) - interval '1 month', 0, 0, now() - interval '1 month', now(), false, '[]', '{}',
       now(), now()
FROM customers c WHERE c.merchant_id = $1
"""

TASKS = """
INSERT INTO scheduled_tasks (id, merchant_id, kind, due_at, payload, status, attempts, created_at, dedupe_key)
SELECT 'task_' || substr(s.id, 5), s.merchant_id, 'subscription.renew', now() - interval '1 second',
       jsonb_build_object('subscription', s.id, 'period_index', 1), 'pending', 0, now(), 'bench:' || s.id
FROM subscriptions s WHERE s.merchant_id = $1
"""

# The writes one renewal makes, as plain SQL in one transaction: the baseline the engine is compared with.
BARE_RENEWAL = [
    "SELECT id FROM scheduled_tasks WHERE id = $1::text FOR UPDATE SKIP LOCKED",
    "SELECT id FROM subscriptions WHERE id = $2::text FOR UPDATE",
    "SELECT id FROM customers WHERE id = $3::text FOR UPDATE",
    """INSERT INTO invoices (id, merchant_id, customer_id, subscription_id, status, currency, collection_method,
        subtotal, discount, tax, total, starting_balance, balance_applied, amount_due, amount_paid, amount_remaining,
        attempt_count, paid_out_of_band, metadata, created_at, billing_reason, subscription_period_index,
        tax_rate_ids) VALUES ('in_' || substr($1::text, 6), $4::text, $3::text, $2::text, 'draft', 'USD', 'send_invoice', 1500, 0, 0, 1500,
        0, 0, 1500, 0, 1500, 0, false, '{}', now(), 'subscription_cycle', 1, '[]')""",
    """INSERT INTO invoice_lines (id, merchant_id, invoice_id, type, description, quantity, amount, discount_amount,
        tax_amount, details, metadata, created_at) VALUES ('il_' || substr($1::text, 6), $4::text, 'in_' || substr($1::text, 6),
        'subscription', '1 × Bench', 1, 1500, 0, 0, '{}', '{}', now())""",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_a' || substr($1::text, 7), $4::text, "
    "'invoice.created', $2::text, '{}', now())",
    """INSERT INTO invoice_number_sequences (merchant_id, next_number) VALUES ($4::text, 1)
        ON CONFLICT (merchant_id) DO UPDATE SET next_number = invoice_number_sequences.next_number + 1""",
    "UPDATE invoices SET status = 'open', number = 'B-' || substr($1::text, 6), finalized_at = now() "
    "WHERE id = 'in_' || substr($1::text, 6)",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_b' || substr($1::text, 7), $4::text, "
    "'invoice.finalized', $2::text, '{}', now())",
    "UPDATE subscriptions SET period_index = 1, current_period_start = now(), updated_at = now() WHERE id = $2::text",
    """INSERT INTO scheduled_tasks (id, merchant_id, kind, due_at, payload, status, attempts, created_at)
        VALUES ('task_n' || substr($1::text, 7), $4::text, 'subscription.renew', now() + interval '1 month', '{}', 'pending', 0,
        now())""",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_c' || substr($1::text, 7), $4::text, "
    "'subscription.renewed', $2::text, '{}', now())",
    "UPDATE scheduled_tasks SET status = 'done', completed_at = now() WHERE id = $1::text",
]


def _renumber(statement: str) -> tuple[str, list[str]]:
    """Number the parameters a statement uses $1.. in order (asyncpg needs every declared one used)."""
    used = sorted(set(re.findall(r"\$(\d)", statement)))
    for position, name in enumerate(used, start=1):
        statement = statement.replace(f"${name}::", f"$@{position}::")
    return statement.replace("$@", "$"), used


PREPARED = [_renumber(statement) for statement in BARE_RENEWAL]


async def _seed(dsn: str, count: int) -> str:
    merchant = "mer_" + secrets.token_hex(12)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SETUP, merchant, "plan_" + secrets.token_hex(12))
        plan = await connection.fetchval("SELECT id FROM plans WHERE merchant_id = $1", merchant)
        await connection.execute(CUSTOMERS, "cus_" + secrets.token_hex(2), merchant, count)
        await connection.execute(SUBSCRIPTIONS, merchant, plan)
        await connection.execute(TASKS, merchant)
    finally:
        await connection.close()
    return merchant


async def _engine_rate(database_url: str, redis_url: str, count: int, workers: int) -> float:
    dsn = asyncpg_url(database_url).replace("+asyncpg", "")
    merchant = await _seed(dsn, count)
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=Path(tempfile.mkdtemp()),
        env="test",
        redis_prefix="bench-renewals",
    )
    services = await open_services(settings, pool_size=workers + 2)
    try:
        started = time.perf_counter()
        done = await asyncio.gather(*[run_due_tasks(services, limit=count * 2) for _ in range(workers)])
        elapsed = time.perf_counter() - started
    finally:
        await services.close()
    assert sum(done) == count, (done, count)
    connection = await asyncpg.connect(dsn)
    try:
        renewed = await connection.fetchval(
            "SELECT count(*) FROM invoices WHERE merchant_id = $1 AND billing_reason = 'subscription_cycle' "
            "AND status = 'open'",
            merchant,
        )
    finally:
        await connection.close()
    assert renewed == count, f"{renewed} of {count} subscriptions renewed"
    return count / elapsed


async def _bare_rate(database_url: str, count: int, workers: int) -> float:
    dsn = asyncpg_url(database_url).replace("+asyncpg", "")
    merchant = await _seed(dsn, count)
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT t.id AS task, s.id AS sub, s.customer_id AS cus FROM scheduled_tasks t JOIN subscriptions s ON "
            "s.id = t.payload->>'subscription' WHERE t.merchant_id = $1",
            merchant,
        )
    finally:
        await connection.close()
    chunks = [rows[i::workers] for i in range(workers)]

    async def run(chunk: list[asyncpg.Record]) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for row in chunk:
                async with conn.transaction():
                    values = {"1": row["task"], "2": row["sub"], "3": row["cus"], "4": merchant}
                    for statement, used in PREPARED:
                        await conn.execute(statement, *[values[n] for n in used])
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*[run(chunk) for chunk in chunks])
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=2000)
    parser.add_argument("--memory-subscriptions", type=int, default=10000)
    args = parser.parse_args()
    with servers() as (database_url, redis_url):
        bare_one = asyncio.run(_bare_rate(database_url, args.subscriptions, 1))
        one = asyncio.run(_engine_rate(database_url, redis_url, args.subscriptions, 1))
        bare_two = asyncio.run(_bare_rate(database_url, args.subscriptions, 2))
        two = asyncio.run(_engine_rate(database_url, redis_url, args.subscriptions, 2))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        big = asyncio.run(_engine_rate(database_url, redis_url, args.memory_subscriptions, 1))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record(
        "Billing run: renewals",
        [
            f"- One worker: **{one:.0f} renewals/s** vs bare SQL {bare_one:.0f} tx/s of the same writes: "
            f"ratio **{one / bare_one:.2f}** ({args.subscriptions} subscriptions; invoice + line + number + "
            "finalization + events + next renewal task, each renewal its own transaction)",
            f"- Two workers: **{two:.0f} renewals/s** vs bare SQL {bare_two:.0f} tx/s: ratio **{two / bare_two:.2f}**",
            f"- {args.memory_subscriptions} renewals by one worker at {big:.0f}/s; peak RSS of the worker process "
            f"**{peak_mb:.0f} MB** (before that run: {before / 1024:.0f} MB) — tasks are claimed one at a time, "
            "nothing of the run is held in memory",
        ],
    )


if __name__ == "__main__":
    main()
