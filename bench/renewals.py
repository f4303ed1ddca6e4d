"""Billing-run benchmark against the fixed renewal floor of SPEC §11 (issue 13 item 5).

N subscriptions on one test clock (four kinds, mixed: a flat plan; three seats with a 10 % coupon; a plan with a
metered charge and an 8 % exclusive tax; the flat plan with the coupon and the tax) fall due at once; the clock is
advanced past the period end and the usage grace window by one in-process worker. Each renewal is the whole
path: invoice + lines + number + finalization + events + next tasks, then a card charge through the in-process
sandbox gateway (vault decryption, routing, payment row, attempt log) and the invoice paid.

Beside it, in the same run on the same database, the renewal floor: one transaction of `insert invoice … returning
id`, two `insert invoice line`, one `insert event` (the outbox), on 8 connections. The floor is fixed: it never
mirrors the engine's own statements. Also printed: the worker's RSS (this process runs the worker) and the SQL
statements per renewal (counted with a SQLAlchemy `before_cursor_execute` listener).

    .venv/bin/python -m bench.renewals [--subscriptions 2000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from sqlalchemy import event, func, select, update

import billing.wiring  # noqa: F401  the task table (renewal and collection handlers) and the hooks
from bench.common import record, servers
from billing.catalog.coupons import create_coupon
from billing.catalog.meters import create_meter
from billing.catalog.plans import create_plan
from billing.catalog.schemas import Charge, CouponCreate, MeterCreate, PlanCreate, TaxRateCreate
from billing.catalog.tax_rates import create_tax_rate
from billing.clock import utc_now
from billing.config import Settings
from billing.customers.models import Customer
from billing.db.engine import asyncpg_url
from billing.payment_methods.models import PaymentMethod
from billing.scheduler.registry import TASKS, TaskRegistry
from billing.services import Services, open_services
from billing.test_clocks.advance import advance_test_clock
from billing.test_clocks.schemas import TestClockCreate
from billing.test_clocks.service import create_test_clock, request_advance
from billing.vault.cards import SecretPan

# The renewals fall due at RENEWS_AT (clock time); the advance goes past the usage grace window (1 h by default),
# so the invoices held for late usage are finalized and charged inside the measured run too.
RENEWS_AT = datetime(2027, 3, 1, tzinfo=UTC)
ADVANCE_TO = RENEWS_AT + timedelta(hours=2)
TEST_CARD = "4242424242424242"
CALLS_PER_METERED_SUBSCRIPTION = 5

MERCHANT = """
INSERT INTO merchants (id, name, settings, created_at)
VALUES ($1, 'bench', '{"gateways": [{"id": "sandbox", "type": "sandbox", "url": null, "weight": 1}]}', now())
"""

CUSTOMERS = """
INSERT INTO customers (id, merchant_id, currency, timezone, locale, balance, metadata, created_at, updated_at,
                       test_clock_id)
SELECT $1::text || lpad(g::text, 20, '0'), $2, 'USD', 'UTC', 'en', 0, '{}', $4, $4, $3
FROM generate_series(1, $5::int) g
"""

# Kind of a subscription = its customer's number mod 4: 0 flat; 1 three seats + coupon; 2 metered + tax;
# 3 flat + coupon + tax. Period 0 is February 2027; period 1 starts at RENEWS_AT.
SUBSCRIPTIONS = """
INSERT INTO subscriptions (id, merchant_id, customer_id, plan_id, quantity, status, collection_method,
    days_until_due, billing_cycle_anchor, period_index, period_offset, current_period_start, current_period_end,
    cancel_at_period_end, coupon_id, coupon_start_index, tax_rate_ids, metadata, created_at, updated_at)
SELECT 'sub_' || substr(c.id, 5), c.merchant_id, c.id,
       CASE k.kind WHEN 1 THEN $3 WHEN 2 THEN $4 ELSE $2 END,
       CASE k.kind WHEN 1 THEN 3 ELSE 1 END,
       'active', 'charge_automatically', NULL, $7, 0, 0, $7, $8, false,
       CASE WHEN k.kind IN (1, 3) THEN $5 END, CASE WHEN k.kind IN (1, 3) THEN 0 END,
       CASE WHEN k.kind IN (2, 3) THEN jsonb_build_array($6::text) ELSE '[]'::jsonb END, '{}', $7, $7
FROM customers c, LATERAL (SELECT (substr(c.id, 9)::bigint % 4)::int AS kind) k
WHERE c.merchant_id = $1
"""

RENEWAL_TASKS = """
INSERT INTO scheduled_tasks (id, merchant_id, test_clock_id, kind, due_at, payload, status, attempts, created_at,
                             dedupe_key)
SELECT 'task_' || substr(s.id, 5), s.merchant_id, $2, 'subscription.renew', s.current_period_end,
       jsonb_build_object('subscription', s.id, 'period_index', 1), 'pending', 0, s.created_at,
       'renew:' || s.id || ':1:' || extract(epoch FROM s.current_period_end)::bigint
FROM subscriptions s WHERE s.merchant_id = $1
"""

USAGE = """
INSERT INTO usage_events (merchant_id, event_id, customer_id, meter_id, "timestamp", value, properties, received_at)
SELECT s.merchant_id, 'ev_' || substr(s.id, 5) || '_' || n, s.customer_id, $2,
       s.current_period_start + n * interval '1 day', NULL, '{}', s.current_period_start + n * interval '1 day'
FROM subscriptions s, generate_series(1, $3::int) n
WHERE s.merchant_id = $1 AND s.plan_id = $4
"""

# SPEC §11's renewal floor, on the engine's own tables: the fixed minimum of writes a renewal stands for.
FLOOR_INVOICE = """
INSERT INTO invoices (id, merchant_id, customer_id, status, currency, collection_method, subtotal, discount, tax,
    total, starting_balance, balance_applied, amount_due, amount_paid, amount_remaining, attempt_count,
    paid_out_of_band, metadata, created_at, billing_reason, tax_rate_ids)
VALUES ($1, $2, $3, 'draft', 'USD', 'charge_automatically', 1500, 0, 0, 1500, 0, 0, 1500, 0, 1500, 0, false, '{}',
    now(), 'subscription_cycle', '[]')
RETURNING id
"""
FLOOR_LINE = """
INSERT INTO invoice_lines (id, merchant_id, invoice_id, type, description, quantity, amount, discount_amount,
    tax_amount, details, metadata, created_at)
VALUES ($1, $2, $3, 'subscription', '1 × Bench', 1, 750, 0, 0, '{}', '{}', now())
"""
FLOOR_EVENT = """
INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
VALUES ($1, $2, 'invoice.created', $3, '{}', now())
"""
FLOOR_CONNECTIONS = 8


@dataclass(frozen=True)
class Catalog:
    flat: str
    seats: str
    metered: str
    meter: str
    coupon: str
    tax_rate: str


def expected_total(kind: int) -> int:
    """The invoice total of one renewal of a subscription of `kind`, worked out by hand from the catalog below."""
    usage = max(0, CALLS_PER_METERED_SUBSCRIPTION - 3) * 2  # 2 per call after 3 free calls
    return {
        0: 1500,
        1: 3 * 900 - 270,  # 10 % off 2,700
        2: (1000 + usage) + round(Decimal(1000 + usage) * Decimal("0.08")),  # 8 % exclusive tax
        3: (1500 - 150) + 108,  # 10 % off, then 8 % of 1,350
    }[kind]


async def _catalog(services: Services, merchant: str) -> tuple[Catalog, str]:
    async with services.sessions() as session, session.begin():
        meter = await create_meter(
            session, merchant, MeterCreate(code="calls", name="API calls", aggregation="count")
        )

        async def plan(code: str, amount: int, charges: list[Charge]) -> str:
            created = await create_plan(
                session,
                merchant,
                PlanCreate(code=code, name=code.title(), currency="USD", amount=amount, charges=charges),
            )
            return created.id

        catalog = Catalog(
            flat=await plan("flat", 1500, []),
            seats=await plan("seats", 900, []),
            metered=await plan(
                "metered", 1000, [Charge(meter="calls", model="per_unit", unit_amount=2, free_units=3)]
            ),
            meter=meter.id,
            coupon=(
                await create_coupon(
                    session, merchant, CouponCreate(percent_off=Decimal(10), duration="forever")
                )
            ).id,
            tax_rate=(
                await create_tax_rate(
                    session, merchant, TaxRateCreate(display_name="VAT", percentage=Decimal(8))
                )
            ).id,
        )
        clock = await create_test_clock(
            session, merchant, TestClockCreate(frozen_time=RENEWS_AT - timedelta(seconds=1))
        )
    return catalog, clock.id


async def _seed_cards(services: Services, merchant: str, cards: Mapping[int, str]) -> None:
    """A card in the vault for every customer of the merchant, made their default (the vault seals each number
    with the entry's own key, so every card is stored, not copied): TEST_CARD, or `cards[n]` for customer n."""
    pans = {number: SecretPan(number) for number in {TEST_CARD, *cards.values()}}
    fingerprints = {
        number: await services.vault.card_fingerprint(merchant, pan) for number, pan in pans.items()
    }
    async with services.sessions() as session:
        customers = list(
            (await session.scalars(select(Customer.id).where(Customer.merchant_id == merchant))).all()
        )
    for start in range(0, len(customers), 500):
        async with services.sessions() as session, session.begin():
            now = utc_now()
            for customer in customers[start : start + 500]:
                number = cards.get(int(customer[-20:]), TEST_CARD)
                pan = pans[number]
                entry = await services.vault.store(session, merchant, pan)
                session.add(
                    PaymentMethod(
                        id="pm_" + customer[4:],
                        merchant_id=merchant,
                        customer_id=customer,
                        type="card",
                        card_brand="visa",
                        card_last4=pan.last4,
                        card_exp_month=12,
                        card_exp_year=2040,
                        card_fingerprint=fingerprints[number],
                        vault_entry_id=entry.id,
                        created_at=now,
                        updated_at=now,
                    )
                )
            await session.flush()
            await session.execute(
                update(Customer)
                .where(Customer.id.in_(customers[start : start + 500]))
                .values(default_payment_method=func.concat("pm_", func.substr(Customer.id, 5)))
            )


async def seed_due_renewals(
    services: Services, dsn: str, count: int, cards: Mapping[int, str] | None = None
) -> tuple[str, str, dict[int, int]]:
    """A merchant with `count` subscriptions due at RENEWS_AT on one test clock (customer n's card: TEST_CARD, or
    `cards[n]`); returns the merchant, the clock and how many subscriptions of each kind."""
    merchant = "mer_" + secrets.token_hex(12)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(MERCHANT, merchant)
    finally:
        await connection.close()
    catalog, clock = await _catalog(services, merchant)
    period_start = RENEWS_AT.replace(month=2)
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute(
                CUSTOMERS, "cus_" + secrets.token_hex(2), merchant, clock, period_start, count
            )
            await connection.execute(
                SUBSCRIPTIONS,
                merchant,
                catalog.flat,
                catalog.seats,
                catalog.metered,
                catalog.coupon,
                catalog.tax_rate,
                period_start,
                RENEWS_AT,
            )
            await connection.execute(RENEWAL_TASKS, merchant, clock)
            await connection.execute(
                USAGE, merchant, catalog.meter, CALLS_PER_METERED_SUBSCRIPTION, catalog.metered
            )
    finally:
        await connection.close()
    await _seed_cards(services, merchant, cards or {})
    kinds = {kind: sum(1 for n in range(1, count + 1) if n % 4 == kind) for kind in range(4)}
    return merchant, clock, kinds


class RssSampler:
    """The peak resident memory of this process (the worker) while a run lasts, sampled every 20 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, self.process.memory_info().rss)


class StatementCounter:
    """SQL statements sent by an engine while the counter is attached (an executemany counts once)."""

    def __init__(self, services: Services) -> None:
        self.engine = services.engine.sync_engine
        self.count = 0

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


@dataclass(frozen=True)
class EngineRun:
    rate: float
    statements_per_renewal: float
    rss_before_mb: float
    rss_peak_mb: float
    profile: str


def _profiled(enabled: bool) -> tuple[Callable[[], None], Callable[[], str]]:
    """Start/stop hooks of a pyinstrument profile (a development tool, not a dependency of the engine: imported
    only when asked for)."""
    if not enabled:
        return (lambda: None), (lambda: "")
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled", interval=0.002)

    def stop() -> str:
        profiler.stop()
        return str(profiler.output_text(unicode=True, color=False, show_all=False))

    return profiler.start, stop


async def _engine_run(
    database_url: str, redis_url: str, count: int, *, profile: bool, registry: TaskRegistry
) -> EngineRun:
    dsn = asyncpg_url(database_url).replace("+asyncpg", "")
    services = await open_services(_bench_settings(database_url, redis_url), pool_size=4)
    try:
        merchant, clock, kinds = await seed_due_renewals(services, dsn, count)
        async with services.sessions() as session, session.begin():
            await request_advance(session, merchant, clock, ADVANCE_TO)
        start_profile, stop_profile = _profiled(profile)
        with RssSampler() as rss, StatementCounter(services) as statements:
            start_profile()
            started = time.perf_counter()
            status = await advance_test_clock(services, clock, registry=registry)
            elapsed = time.perf_counter() - started
            text = stop_profile()
    finally:
        await services.close()
    assert status == "ready", status
    await _check(dsn, merchant, kinds)
    return EngineRun(
        rate=count / elapsed,
        statements_per_renewal=statements.count / count,
        rss_before_mb=rss.before / 2**20,
        rss_peak_mb=rss.peak / 2**20,
        profile=text,
    )


async def _check(dsn: str, merchant: str, kinds: dict[int, int]) -> None:
    """Every subscription renewed once, its invoice paid by a card charge, for the amount worked out by hand."""
    connection = await asyncpg.connect(dsn)
    try:
        paid, charged, total, numbered = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE i.status = 'paid'), count(p.id), coalesce(sum(i.total), 0), "
            "count(DISTINCT i.number) FROM invoices i "
            "LEFT JOIN payments p ON p.invoice_id = i.id AND p.status = 'succeeded' "
            "WHERE i.merchant_id = $1 AND i.billing_reason = 'subscription_cycle'",
            merchant,
        )
    finally:
        await connection.close()
    count = sum(kinds.values())
    expected = sum(expected_total(kind) * n for kind, n in kinds.items())
    assert (paid, charged, numbered) == (count, count, count), (
        f"{paid} paid, {charged} charged, {numbered} numbers of {count} renewals"
    )
    assert total == expected, f"invoiced {total}, expected {expected}"


async def _floor_rate(dsn: str, transactions: int) -> float:
    """SPEC §11's renewal floor: `transactions` transactions of the fixed writes, on FLOOR_CONNECTIONS connections."""
    merchant = "mer_" + secrets.token_hex(12)
    customer = "cus_" + secrets.token_hex(12)
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(MERCHANT, merchant)
        await setup.execute(
            "INSERT INTO customers (id, merchant_id, currency, timezone, locale, balance, metadata, created_at, "
            "updated_at) VALUES ($1, $2, 'USD', 'UTC', 'en', 0, '{}', now(), now())",
            customer,
            merchant,
        )
    finally:
        await setup.close()
    numbers = itertools.count()
    prefix = secrets.token_hex(4)

    async def run(share: int) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            for _ in range(share):
                n = next(numbers)
                async with connection.transaction():
                    invoice = await connection.fetchval(
                        FLOOR_INVOICE, f"in_{prefix}{n:020d}", merchant, customer
                    )
                    await connection.execute(FLOOR_LINE, f"il_{prefix}a{n:020d}", merchant, invoice)
                    await connection.execute(FLOOR_LINE, f"il_{prefix}b{n:020d}", merchant, invoice)
                    await connection.execute(FLOOR_EVENT, f"evt_{prefix}{n:020d}", merchant, invoice)
        finally:
            await connection.close()

    shares = [transactions // FLOOR_CONNECTIONS] * FLOOR_CONNECTIONS
    started = time.perf_counter()
    await asyncio.gather(*[run(share) for share in shares])
    return sum(shares) / (time.perf_counter() - started)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=2000)
    parser.add_argument("--floor-transactions", type=int, default=8000)
    parser.add_argument(
        "--profile", action="store_true", help="print a pyinstrument profile of the engine run"
    )
    parser.add_argument(
        "--singles",
        action="store_true",
        help="run every task alone (no batch handlers): the path before issue 13",
    )
    parser.add_argument("--note", default="", help="a line recorded with the figures (what the engine was)")
    args = parser.parse_args()
    load = psutil.getloadavg()
    with servers() as (database_url, redis_url):
        dsn = asyncpg_url(database_url).replace("+asyncpg", "")
        floor_before = asyncio.run(_floor_rate(dsn, args.floor_transactions))
        registry = TASKS.singles_only() if args.singles else TASKS
        run = asyncio.run(
            _engine_run(database_url, redis_url, args.subscriptions, profile=args.profile, registry=registry)
        )
        floor_after = asyncio.run(_floor_rate(dsn, args.floor_transactions))
    floor = (floor_before + floor_after) / 2
    if run.profile:
        print(run.profile)
    record(
        "Billing run: renewals against the renewal floor (SPEC §11)",
        [
            *([f"- Engine: {args.note}"] if args.note else []),
            f"- One worker: **{run.rate:.1f} renewals/s** ({args.subscriptions} subscriptions due at once on a test "
            "clock: flat, seats + coupon, metered + tax, flat + coupon + tax; each renewal = invoice + lines + "
            "number + finalization + events + next tasks + a card charge through the in-process sandbox + the "
            "invoice paid; every total checked against amounts worked out by hand)",
            f"- Renewal floor, same run, same database ({FLOOR_CONNECTIONS} connections, insert invoice returning "
            f"id + 2 lines + 1 outbox row per transaction): **{floor:.0f}/s** (before the engine run "
            f"{floor_before:.0f}/s, after {floor_after:.0f}/s)",
            f"- Ratio engine / floor: **{run.rate / floor:.4f}** (goal ≥ 0.10)",
            f"- SQL statements per renewal: **{run.statements_per_renewal:.1f}**",
            f"- Worker RSS: {run.rss_before_mb:.0f} MB before the run, **peak {run.rss_peak_mb:.0f} MB**",
            f"- Load average before the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (2 shared cores)",
        ],
    )


if __name__ == "__main__":
    main()
