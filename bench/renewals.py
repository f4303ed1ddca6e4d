"""Billing-run benchmark: renew N subscriptions (invoice + line + number + events + next tasks + a card charge
through the in-process sandbox gateway) with one and two workers, next to the rate of bare SQL transactions making
the same writes, and the worker's memory.

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
from sqlalchemy import func, select, update

import billing.tasks  # noqa: F401  registers the renewal and collection handlers
from bench.common import record, servers
from billing.clock import utc_now
from billing.config import Settings
from billing.customers.models import Customer
from billing.db.engine import asyncpg_url
from billing.payment_methods.models import PaymentMethod
from billing.scheduler.runner import run_due_tasks
from billing.services import Services, open_services
from billing.vault.cards import SecretPan

SETUP = """
WITH m AS (INSERT INTO merchants (id, name, settings, created_at)
           VALUES ($1, 'bench', '{"gateways": [{"id": "sandbox", "type": "sandbox", "url": null, "weight": 1}]}',
                   now()) RETURNING id),
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
SELECT 'sub_' || substr(c.id, 5), c.merchant_id, c.id, $2, 1, 'active', 'charge_automatically', NULL,
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

# The writes one renewal makes, as plain SQL: the baseline the engine is compared with. The engine makes them in
# four transactions (the renewal; the charge's pending row; its outcome; the invoice paid, when the collection
# task that holds the invoice commits), so the baseline does too.
RENEWAL_TX = [
    "SELECT id FROM scheduled_tasks WHERE id = $1::text FOR UPDATE SKIP LOCKED",
    "SELECT id FROM subscriptions WHERE id = $2::text FOR UPDATE",
    "SELECT id FROM customers WHERE id = $3::text FOR UPDATE",
    """INSERT INTO invoices (id, merchant_id, customer_id, subscription_id, status, currency, collection_method,
        subtotal, discount, tax, total, starting_balance, balance_applied, amount_due, amount_paid, amount_remaining,
        attempt_count, paid_out_of_band, metadata, created_at, billing_reason, subscription_period_index,
        tax_rate_ids) VALUES ('in_' || substr($1::text, 6), $4::text, $3::text, $2::text, 'draft', 'USD',
        'charge_automatically', 1500, 0, 0, 1500, 0, 0, 1500, 0, 1500, 0, false, '{}', now(), 'subscription_cycle', 1,
        '[]')""",
    """INSERT INTO invoice_lines (id, merchant_id, invoice_id, type, description, quantity, amount, discount_amount,
        tax_amount, details, metadata, created_at) VALUES ('il_' || substr($1::text, 6), $4::text,
        'in_' || substr($1::text, 6), 'subscription', '1 × Bench', 1, 1500, 0, 0, '{}', '{}', now())""",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_a' || substr($1::text, 7), "
    "$4::text, 'invoice.created', $2::text, '{}', now())",
    """INSERT INTO invoice_number_sequences (merchant_id, next_number) VALUES ($4::text, 1)
        ON CONFLICT (merchant_id) DO UPDATE SET next_number = invoice_number_sequences.next_number + 1""",
    "UPDATE invoices SET status = 'open', number = 'B-' || substr($1::text, 6), finalized_at = now() "
    "WHERE id = 'in_' || substr($1::text, 6)",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_b' || substr($1::text, 7), "
    "$4::text, 'invoice.finalized', $2::text, '{}', now())",
    """INSERT INTO scheduled_tasks (id, merchant_id, kind, due_at, payload, status, attempts, created_at)
        VALUES ('task_c' || substr($1::text, 7), $4::text, 'invoice.collect', now(), '{}', 'pending', 0, now())""",
    "UPDATE subscriptions SET period_index = 1, current_period_start = now(), updated_at = now() WHERE id = $2::text",
    """INSERT INTO scheduled_tasks (id, merchant_id, kind, due_at, payload, status, attempts, created_at)
        VALUES ('task_n' || substr($1::text, 7), $4::text, 'subscription.renew', now() + interval '1 month', '{}',
        'pending', 0, now())""",
    """INSERT INTO scheduled_tasks (id, merchant_id, kind, due_at, payload, status, attempts, created_at)
        VALUES ('task_u' || substr($1::text, 7), $4::text, 'invoice.upcoming', now() + interval '27 days', '{}',
        'pending', 0, now())""",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_c' || substr($1::text, 7), "
    "$4::text, 'subscription.renewed', $2::text, '{}', now())",
    "UPDATE scheduled_tasks SET status = 'done', completed_at = now() WHERE id = $1::text",
]
PENDING_PAYMENT_TX = [
    "SELECT id FROM payment_methods WHERE id = $5::text",
    """INSERT INTO payments (id, merchant_id, customer_id, payment_method_id, invoice_id, purpose, attempt, attempt_key,
        amount, currency, status, route, amount_refunded, metadata, created_at, settle_after, janitor_attempts)
        VALUES ('pay_' || substr($1::text, 6), $4::text, $3::text, $5::text, 'in_' || substr($1::text, 6),
        'in_' || substr($1::text, 6), 1, 'in_' || substr($1::text, 6) || ':1', 1500, 'USD', 'pending',
        '["sandbox"]', 0, '{}', now(), now() + interval '1 minute', 0)""",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_d' || substr($1::text, 7), "
    "$4::text, 'payment.created', $2::text, '{}', now())",
]
OUTCOME_TX = [
    """INSERT INTO gateway_attempts (merchant_id, connection_id, gateway_type, operation, outcome, latency_ms,
        payment_id, created_at) VALUES ($4::text, 'sandbox', 'sandbox', 'charge', 'succeeded', 1,
        'pay_' || substr($1::text, 6), now())""",
    "SELECT id FROM payments WHERE id = 'pay_' || substr($1::text, 6) FOR UPDATE",
    "UPDATE payments SET status = 'succeeded', gateway = 'sandbox', gateway_type = 'sandbox', settled_at = now() "
    "WHERE id = 'pay_' || substr($1::text, 6)",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_e' || substr($1::text, 7), "
    "$4::text, 'payment.succeeded', $2::text, '{}', now())",
]
PAID_TX = [
    "SELECT id FROM scheduled_tasks WHERE id = 'task_c' || substr($1::text, 7) FOR UPDATE SKIP LOCKED",
    "SELECT id FROM invoices WHERE id = 'in_' || substr($1::text, 6) FOR NO KEY UPDATE",
    "UPDATE invoices SET status = 'paid', amount_paid = 1500, amount_remaining = 0, attempt_count = 1, paid_at = now() "
    "WHERE id = 'in_' || substr($1::text, 6)",
    "INSERT INTO events (id, merchant_id, type, object_id, data, created_at) VALUES ('evt_f' || substr($1::text, 7), "
    "$4::text, 'invoice.paid', $2::text, '{}', now())",
    "UPDATE scheduled_tasks SET status = 'done', completed_at = now() WHERE id = 'task_c' || substr($1::text, 7)",
]
BARE_RENEWAL = [RENEWAL_TX, PENDING_PAYMENT_TX, OUTCOME_TX, PAID_TX]


def _renumber(statement: str) -> tuple[str, list[str]]:
    """Number the parameters a statement uses $1.. in order (asyncpg needs every declared one used)."""
    used = sorted(set(re.findall(r"\$(\d)", statement)))
    for position, name in enumerate(used, start=1):
        statement = statement.replace(f"${name}::", f"$@{position}::")
    return statement.replace("$@", "$"), used


PREPARED = [[_renumber(statement) for statement in transaction] for transaction in BARE_RENEWAL]
TEST_CARD = "4242424242424242"


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


async def _seed_cards(services: Services, merchant: str) -> None:
    """A card in the vault for every customer of the merchant, made their default (the vault seals each number
    with the entry's own key, so every card is stored, not copied)."""
    pan = SecretPan(TEST_CARD)
    fingerprint = await services.vault.card_fingerprint(merchant, pan)
    async with services.sessions() as session:
        customers = list(
            (await session.scalars(select(Customer.id).where(Customer.merchant_id == merchant))).all()
        )
    for start in range(0, len(customers), 500):
        async with services.sessions() as session, session.begin():
            now = utc_now()
            for customer in customers[start : start + 500]:
                entry = await services.vault.store(session, merchant, pan)
                card = PaymentMethod(
                    id="pm_" + customer[4:],
                    merchant_id=merchant,
                    customer_id=customer,
                    type="card",
                    card_brand="visa",
                    card_last4=pan.last4,
                    card_exp_month=12,
                    card_exp_year=2040,
                    card_fingerprint=fingerprint,
                    vault_entry_id=entry.id,
                    created_at=now,
                    updated_at=now,
                )
                session.add(card)
            await session.flush()
            await session.execute(
                update(Customer)
                .where(Customer.id.in_(customers[start : start + 500]))
                .values(default_payment_method=func.concat("pm_", func.substr(Customer.id, 5)))
            )


# One data directory (and so one development vault key) for every run against the benchmark's database.
DATA_DIR = Path(tempfile.mkdtemp(prefix="billing-bench-renewals-"))


def _bench_settings(database_url: str, redis_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=DATA_DIR,
        env="test",
        redis_prefix="bench-renewals",
    )


async def _engine_rate(database_url: str, redis_url: str, count: int, workers: int) -> float:
    dsn = asyncpg_url(database_url).replace("+asyncpg", "")
    merchant = await _seed(dsn, count)
    services = await open_services(_bench_settings(database_url, redis_url), pool_size=2 * workers + 2)
    try:
        await _seed_cards(services, merchant)
        started = time.perf_counter()
        done = await asyncio.gather(*[run_due_tasks(services, limit=count * 4) for _ in range(workers)])
        elapsed = time.perf_counter() - started
    finally:
        await services.close()
    assert sum(done) == 2 * count, (done, count)  # each renewal: its renewal task and its collection task
    connection = await asyncpg.connect(dsn)
    try:
        paid, charged = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE i.status = 'paid'), count(p.id) FROM invoices i "
            "LEFT JOIN payments p ON p.invoice_id = i.id AND p.status = 'succeeded' "
            "WHERE i.merchant_id = $1 AND i.billing_reason = 'subscription_cycle'",
            merchant,
        )
    finally:
        await connection.close()
    assert (paid, charged) == (count, count), f"{paid} paid, {charged} charged of {count} renewals"
    return count / elapsed


async def _bare_rate(database_url: str, count: int, workers: int) -> float:
    dsn = asyncpg_url(database_url).replace("+asyncpg", "")
    merchant = await _seed(dsn, count)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """INSERT INTO payment_methods (id, merchant_id, customer_id, type, card_brand, card_last4, card_exp_month,
                card_exp_year, card_fingerprint, metadata, created_at, updated_at)
               SELECT 'pm_' || substr(id, 5), merchant_id, id, 'card', 'visa', '4242', 12, 2040, 'bench', '{}', now(),
                now() FROM customers WHERE merchant_id = $1""",
            merchant,
        )
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
                values = {
                    "1": row["task"],
                    "2": row["sub"],
                    "3": row["cus"],
                    "4": merchant,
                    "5": "pm_" + row["cus"][4:],
                }
                for transaction in PREPARED:
                    async with conn.transaction():
                        for statement, used in transaction:
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
            f"- One worker: **{one:.0f} renewals/s** vs bare SQL {bare_one:.0f} renewals/s of the same writes in SQL: "
            f"ratio **{one / bare_one:.2f}** ({args.subscriptions} subscriptions; each renewal = invoice + line + "
            "number + finalization + events + next renewal and upcoming-notice tasks, then its collection task: a "
            "card charge through the in-process sandbox gateway (vault decryption, routing, payment row, attempt "
            "log) and the invoice paid; 4 transactions in both)",
            f"- Two workers: **{two:.0f} renewals/s** vs bare SQL {bare_two:.0f}/s: ratio **{two / bare_two:.2f}**",
            f"- {args.memory_subscriptions} renewals by one worker at {big:.0f}/s; peak RSS of the worker process "
            f"**{peak_mb:.0f} MB** (before that run: {before / 1024:.0f} MB) — tasks are claimed one at a time, "
            "nothing of the run is held in memory",
        ],
    )


if __name__ == "__main__":
    main()
