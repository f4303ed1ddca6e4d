"""`billing audit` over 100,000 invoices (issue 16 item 4): synthetic rows bulk-inserted set-based into a fresh
migrated database (10 merchants, 10,000 customers each with two balance ledger entries, invoices numbered 1..n
per merchant, half of them paid by a succeeded payment with a partial refund, cycle invoices one per period,
the outbox events of all of it),
then the audit timed, whole and check by check, over one REPEATABLE READ snapshot. Every row is clean, so the
run also proves the checks report nothing on a consistent database of this size.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.audit [--invoices 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg

from bench.common import record, servers
from billing.db.engine import make_engine
from billing.reporting.audit import CHECKS, run_check

MERCHANTS = 10

SETUP = [
    """INSERT INTO merchants (id, name, settings, created_at)
       SELECT 'mer_audit' || m, 'audit ' || m, '{}', now() FROM generate_series(1, $1) m""",
    # Customers: two ledger entries each (-700, +200), balance -500.
    """INSERT INTO customers (id, merchant_id, currency, timezone, locale, balance, metadata, created_at,
                             updated_at)
       SELECT 'cus_audit' || c, 'mer_audit' || (c % $1 + 1), 'USD', 'UTC', 'en', -500, '{}', now(), now()
       FROM generate_series(0, $2 - 1) c""",
    """INSERT INTO customer_balance_transactions (id, merchant_id, customer_id, type, amount, ending_balance,
                                                 currency, created_at)
       SELECT 'cbt_audit' || c || '_' || e, 'mer_audit' || (c % $1 + 1), 'cus_audit' || c, 'adjustment',
              CASE e WHEN 1 THEN -700 ELSE 200 END, CASE e WHEN 1 THEN -700 ELSE -500 END, 'USD', now()
       FROM generate_series(0, $2 - 1) c, generate_series(1, 2) e ORDER BY c, e""",
    # Invoice i belongs to customer i % customers and so to that customer's merchant; numbered by its rank in
    # the merchant; even ones paid. Subscription periods: customer c's k-th invoice is period k.
    """INSERT INTO invoices (id, merchant_id, customer_id, subscription_id, subscription_period_index, number,
                            status, currency, collection_method, billing_reason, subtotal, discount, tax, total,
                            starting_balance, balance_applied, amount_due, amount_paid, amount_remaining,
                            attempt_count, paid_out_of_band, created_at, finalized_at)
       SELECT 'in_audit' || i, 'mer_audit' || (i % $2 % $1 + 1), 'cus_audit' || (i % $2), 'sub_audit' || (i % $2),
              i / $2, 'INV-' || lpad((row_number() OVER (PARTITION BY i % $2 % $1 ORDER BY i))::text, 6, '0'),
              CASE WHEN i % 2 = 0 THEN 'paid' ELSE 'open' END, 'USD', 'charge_automatically',
              'subscription_cycle', 1200, 200, 100, 1100, 0, 0, 1100,
              CASE WHEN i % 2 = 0 THEN 1100 ELSE 0 END, CASE WHEN i % 2 = 0 THEN 0 ELSE 1100 END,
              1, false, now(), now()
       FROM generate_series(1, $3) i""",
    """INSERT INTO invoice_number_sequences (merchant_id, next_number)
       SELECT merchant_id, count(*) + 1 FROM invoices GROUP BY merchant_id""",
    # A payment method per customer (payments need one), a succeeded payment per paid invoice.
    """INSERT INTO payment_methods (id, merchant_id, customer_id, type, status, card_brand, card_last4,
                                   card_exp_month, card_exp_year, card_fingerprint, metadata, created_at,
                                   updated_at)
       SELECT 'pm_audit' || c, 'mer_audit' || (c % $1 + 1), 'cus_audit' || c, 'card', 'active', 'visa', '4242',
              12, 2040, 'fp' || c, '{}', now(), now()
       FROM generate_series(0, $2 - 1) c""",
    """INSERT INTO payments (id, merchant_id, customer_id, payment_method_id, invoice_id, purpose, attempt,
                            attempt_key, amount, currency, status, route, amount_refunded, created_at,
                            settle_after, janitor_attempts)
       SELECT 'pay_audit' || substr(id, 9), merchant_id, customer_id, 'pm_audit' || substr(customer_id, 10), id,
              'invoice:' || id, 1, 'invoice:' || id || ':1', amount_paid, 'USD', 'succeeded', '[]', 300, now(),
              now(), 0
       FROM invoices WHERE status = 'paid'""",
    """INSERT INTO refunds (id, merchant_id, payment_id, amount, currency, status, gateway, created_at,
                           settle_after, janitor_attempts)
       SELECT 're_audit' || substr(id, 10), merchant_id, id, 300, 'USD', 'succeeded', 'sandbox', now(), now(), 0
       FROM payments""",
    # The outbox events of those state changes.
    """INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
       SELECT 'evt_f' || id, merchant_id, 'invoice.finalized', id, '{}'::jsonb, now() FROM invoices
       UNION ALL SELECT 'evt_p' || id, merchant_id, 'invoice.paid', id, '{}'::jsonb, now() FROM invoices
       WHERE status = 'paid'
       UNION ALL SELECT 'evt_s' || id, merchant_id, 'payment.succeeded', id, '{}'::jsonb, now() FROM payments
       UNION ALL SELECT 'evt_r' || id, merchant_id, 'refund.succeeded', id, '{}'::jsonb, now() FROM refunds""",
    "ANALYZE",
]


async def populate(database_url: str, invoices: int) -> float:
    customers = invoices // 10
    connection = await asyncpg.connect(database_url)
    started = time.perf_counter()
    try:
        for statement in SETUP:
            # Each statement takes the leading ones of ($1 merchants, $2 customers, $3 invoices) it names.
            used = max((n for n in (1, 2, 3) if f"${n}" in statement), default=0)
            await connection.execute(statement, *[MERCHANTS, customers, invoices][:used])
    finally:
        await connection.close()
    return time.perf_counter() - started


async def time_audit(database_url: str) -> tuple[float, list[tuple[str, float, int]]]:
    engine = make_engine(database_url, null_pool=True)
    timings = []
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                started = time.perf_counter()
                for check in CHECKS:
                    began = time.perf_counter()
                    result = await run_check(connection, check)
                    timings.append((check.name, time.perf_counter() - began, result.count))
                total = time.perf_counter() - started
    finally:
        await engine.dispose()
    return total, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=100_000)
    args = parser.parse_args()
    with servers() as (database_url, _):
        plain_url = database_url.replace("+asyncpg", "")
        setup_s = asyncio.run(populate(plain_url, args.invoices))
        asyncio.run(time_audit(database_url))  # warm the cache as a running database would be
        total, timings = asyncio.run(time_audit(database_url))
    violations = sum(count for _, _, count in timings)
    by_check = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds, _ in timings)
    record(
        f"Audit: `billing audit` over {args.invoices:,} invoices",
        [
            f"- Data: {args.invoices:,} invoices of {MERCHANTS} merchants, {args.invoices // 10:,} customers with 2 "
            f"ledger entries each, {args.invoices // 2:,} succeeded payments with a refund each, "
            f"{args.invoices * 5 // 2:,} outbox events, all consistent; "
            f"inserted set-based in {setup_s:.1f} s",
            f"- All {len(CHECKS)} checks, one query each, one REPEATABLE READ snapshot, warm cache: "
            f"**{total:.2f} s**, {violations} violations",
            f"- By check: {by_check}",
            "- Load average after the run: {:.2f} / {:.2f} / {:.2f} (other engineers' work shares these cores)".format(
                *os.getloadavg()
            ),
        ],
    )


if __name__ == "__main__":
    main()
