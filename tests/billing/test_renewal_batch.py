"""Renewals as a set (issue 13 item 1, billing/subscriptions/batch.py): a batch of mixed subscriptions renews
exactly as the single renewal does, and one poisoned subscription fails alone.

The subscriptions are seeded by the renewal benchmark's own seeding (bench/renewals.py): on one test clock, due
at the same instant, four kinds (flat; three seats with a 10 % coupon; metered with an 8 % tax, billed in arrears
and held for the usage grace window; flat with the coupon and the tax), each customer with a card."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select

from bench.renewals import ADVANCE_TO, expected_total, seed_due_renewals
from billing.db.engine import asyncpg_url
from billing.invoices.collection import COLLECT
from billing.scheduler.registry import TASKS, BatchContext, BatchHandler, TaskRegistry
from billing.services import Services
from billing.subscriptions.service import RENEW
from billing.test_clocks.advance import advance_test_clock
from billing.test_clocks.models import TestClock
from billing.test_clocks.service import request_advance
from billing.usage.billing import CLOSE_USAGE

SUBSCRIPTIONS = 12  # three of each kind
# Customer 5 (seats + coupon) pays with a card soft-declined, customer 6 (metered + tax) with one hard-declined.
DECLINED = {5: "4000000000000002", 6: "4000000000009979"}


def _dsn(services: Services) -> str:
    return asyncpg_url(services.settings.database_url or "").replace("+asyncpg", "")


async def _advance(
    services: Services, merchant: str, clock: str, registry: TaskRegistry, to: datetime = ADVANCE_TO
) -> str:
    async with services.sessions() as session, session.begin():
        await request_advance(session, merchant, clock, to)
    return await advance_test_clock(services, clock, registry=registry)


def _spied(finished: Counter[str]) -> TaskRegistry:
    """TASKS with every batch handler counting, per kind, the tasks it finished (the others ran alone)."""
    registry = TASKS.singles_only()
    for kind in (RENEW, CLOSE_USAGE, COLLECT):
        batch = TASKS.batch_handler(kind)
        assert batch is not None

        def spy(batch: BatchHandler, kind: str) -> BatchHandler:
            async def counted(ctx: BatchContext) -> set[str]:
                done = await batch(ctx)
                finished[kind] += len(done)
                return done

            return counted

        registry.register_batch(kind)(spy(batch, kind))
    return registry


async def _world(
    services: Services, dsn: str, registry: TaskRegistry, setup: tuple[str, ...] = ()
) -> tuple[str, dict[int, int]]:
    """Seed the subscriptions, give customer 1 (three seats with the coupon) a credit of 500 (the batch leaves a customer
    with a balance to the single renewal), run `setup` (SQL given the merchant as $1), and advance the clock through
    the renewals and their charges."""
    merchant, clock, kinds = await seed_due_renewals(services, dsn, SUBSCRIPTIONS, DECLINED)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "UPDATE customers SET balance = -500 WHERE merchant_id = $1 AND id LIKE '%0001'", merchant
        )
        for statement in setup:
            await connection.execute(statement, merchant)
    finally:
        await connection.close()
    assert await _advance(services, merchant, clock, registry) == "ready"
    return merchant, kinds


async def _renewed(dsn: str, merchant: str) -> dict[str, Any]:
    """What the renewals wrote, keyed by the customer's number (ids differ between merchants)."""
    connection = await asyncpg.connect(dsn)
    try:
        invoices = await connection.fetch(
            "SELECT right(i.customer_id, 20) AS n, p.code, i.status, i.subtotal, i.discount, i.tax, i.total, "
            "i.starting_balance, i.balance_applied, i.amount_due, i.amount_paid, i.amount_remaining, "
            "i.period_start, i.period_end, i.subscription_period_index, i.coupon_id IS NOT NULL AS coupon, "
            "jsonb_array_length(i.tax_rate_ids) AS rates, i.finalized_at, i.attempt_count, "
            "i.customer_details, i.hosted_token IS NOT NULL AS hosted, "
            "(SELECT jsonb_agg(jsonb_build_array(l.type, l.description, l.amount, l.quantity::text, "
            "  l.discount_amount, l.tax_amount, l.period_start, l.period_end) ORDER BY l.seq) "
            "  FROM invoice_lines l WHERE l.invoice_id = i.id) AS lines, "
            "(SELECT array_agg(e.type ORDER BY e.seq) FROM events e WHERE e.object_id = i.id) AS events, "
            "(SELECT array_agg(e.type ORDER BY e.seq) FROM events e WHERE e.object_id = i.subscription_id) "
            "  AS subscription_events, "
            "(SELECT array_agg(p2.status || ':' || p2.amount ORDER BY p2.seq) FROM payments p2 "
            "  WHERE p2.invoice_id = i.id) AS payments "
            "FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id JOIN plans p ON p.id = s.plan_id "
            "WHERE i.merchant_id = $1 AND i.billing_reason = 'subscription_cycle' ORDER BY n, i.subscription_period_index",
            merchant,
        )
        subscriptions = await connection.fetch(
            "SELECT right(customer_id, 20) AS n, status, period_index, current_period_start, current_period_end, "
            "latest_invoice_id IS NOT NULL AS latest FROM subscriptions WHERE merchant_id = $1 ORDER BY n",
            merchant,
        )
        tasks = await connection.fetch(
            "SELECT right(s.customer_id, 20) AS n, t.kind, t.status, t.due_at, t.payload - 'subscription' AS payload "
            "FROM scheduled_tasks t JOIN subscriptions s ON s.id = t.payload->>'subscription' "
            "WHERE t.merchant_id = $1 ORDER BY n, t.kind, t.due_at",
            merchant,
        )
        numbers = await connection.fetch(
            "SELECT number FROM invoices WHERE merchant_id = $1 AND number IS NOT NULL ORDER BY number",
            merchant,
        )
        balances = await connection.fetch(
            "SELECT right(id, 20) AS n, balance FROM customers WHERE merchant_id = $1 ORDER BY n", merchant
        )
    finally:
        await connection.close()
    return {
        "invoices": [dict(row) for row in invoices],
        "subscriptions": [dict(row) for row in subscriptions],
        "tasks": [dict(row) for row in tasks],
        "numbers": [row["number"] for row in numbers],
        "balances": [dict(row) for row in balances],
    }


async def test_a_batch_of_mixed_subscriptions_renews_as_the_single_renewal_does(services: Services) -> None:
    dsn = _dsn(services)
    # The reference: the same subscriptions renewed one task at a time by the single renewal.
    reference_merchant, kinds = await _world(services, dsn, TASKS.singles_only())
    merchant, _ = await _world(services, dsn, TASKS)
    reference, batched = await _renewed(dsn, reference_merchant), await _renewed(dsn, merchant)

    assert batched == reference
    invoices = batched["invoices"]
    assert len(invoices) == SUBSCRIPTIONS  # one invoice per subscription period
    declined = {f"{n:020d}" for n in DECLINED}
    assert {invoice["n"]: invoice["status"] for invoice in invoices} == {
        f"{n:020d}": "open" if f"{n:020d}" in declined else "paid" for n in range(1, SUBSCRIPTIONS + 1)
    }
    assert {s["n"]: s["status"] for s in batched["subscriptions"] if s["n"] in declined} == dict.fromkeys(
        declined, "past_due"
    )
    # Amounts worked out by hand (bench.renewals.expected_total); the credited customer paid 500 less.
    assert sum(invoice["total"] for invoice in invoices) == sum(
        expected_total(k) * n for k, n in kinds.items()
    )
    paid = sum(invoice["total"] for invoice in invoices if invoice["n"] not in declined) - 500
    assert sum(invoice["amount_paid"] for invoice in invoices) == paid
    # Gap-free numbering: the renewal invoices are the merchant's numbers 1..N.
    assert batched["numbers"] == [f"INV-{n:06d}" for n in range(1, SUBSCRIPTIONS + 1)]
    assert invoices[0]["events"] == ["invoice.created", "invoice.finalized", "invoice.paid"]


# Late usage of February for the metered subscriptions (customers 2, 6, 10: two calls each, received in March),
# and March's calls (one more for customer 6): the April renewal recounts February (an adjustment line) and bills
# March, in both paths.
LATE_USAGE = """
INSERT INTO usage_events (merchant_id, event_id, customer_id, meter_id, "timestamp", value, properties, received_at)
SELECT s.merchant_id, 'late_' || s.id || '_' || n, s.customer_id, m.id, $2::timestamptz + n * interval '1 hour',
       NULL, '{}', $3
FROM subscriptions s JOIN meters m ON m.merchant_id = s.merchant_id, generate_series(1, $4::int) n
WHERE s.merchant_id = $1 AND right(s.customer_id, 20)::int % 4 = 2
"""


async def _two_cycles(services: Services, dsn: str, registry: TaskRegistry) -> str:
    merchant, clock, _ = await seed_due_renewals(services, dsn, SUBSCRIPTIONS)
    assert await _advance(services, merchant, clock, registry) == "ready"
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT usage_events_ensure_partitions('2027-03-15'::timestamptz, 2, 2)")
        late = ADVANCE_TO + timedelta(days=3)
        await connection.execute(LATE_USAGE, merchant, ADVANCE_TO - timedelta(days=10), late, 2)
        await connection.execute(LATE_USAGE, merchant, ADVANCE_TO + timedelta(days=5), late, 3)
        await connection.execute(
            LATE_USAGE.replace("% 4 = 2", "= 6").replace("'late_'", "'more_'"),
            merchant,
            ADVANCE_TO + timedelta(days=6),
            late,
            1,
        )
    finally:
        await connection.close()
    april = ADVANCE_TO.replace(month=4)
    assert await _advance(services, merchant, clock, registry, april) == "ready"
    return merchant


async def test_metered_renewals_with_late_usage_renew_as_the_single_renewal_does(services: Services) -> None:
    """Two cycles: the batch bills usage in arrears (the first period's usage, then the second's with a recount
    of the first's late events) and closes the held drafts exactly as the single renewal does, line for line."""
    dsn = _dsn(services)
    reference_merchant = await _two_cycles(services, dsn, TASKS.singles_only())
    finished: Counter[str] = Counter()
    merchant = await _two_cycles(services, dsn, _spied(finished))
    reference, batched = await _renewed(dsn, reference_merchant), await _renewed(dsn, merchant)

    assert batched == reference, _differences(batched, reference)
    # The batch did the work: both renewals of all 12 subscriptions, both closes of the 3 metered ones.
    assert (finished[RENEW], finished[CLOSE_USAGE]) == (2 * SUBSCRIPTIONS, 2 * 3)
    metered = {f"{n:020d}" for n in (2, 6, 10)}
    april = [i for i in batched["invoices"] if i["n"] in metered and i["subscription_period_index"] == 2]
    # March: 1,000 fee + (3 calls - 3 free) × 2 = 0 usage (4 calls for customer 6: 2); February recounted: 5 + 2
    # calls, 4 billable instead of 2: an adjustment of 4. Tax 8 %.
    assert {i["n"]: [(line[0], line[2]) for line in json.loads(i["lines"])] for i in april} == {
        f"{n:020d}": [("subscription", 1000), ("usage", 2 if n == 6 else 0), ("adjustment", 4)]
        for n in (2, 6, 10)
    }
    assert {i["n"]: (i["status"], i["total"]) for i in april} == {
        f"{n:020d}": ("paid", round((1004 + (2 if n == 6 else 0)) * 1.08)) for n in (2, 6, 10)
    }


async def test_one_poisoned_subscription_fails_alone_and_its_neighbours_renew(services: Services) -> None:
    dsn = _dsn(services)
    merchant, clock, _ = await seed_due_renewals(services, dsn, SUBSCRIPTIONS)
    connection = await asyncpg.connect(dsn)
    try:
        # An inconsistent row on purpose: a tax rate that does not exist.
        poisoned = await connection.fetchval(
            "UPDATE subscriptions SET tax_rate_ids = '[\"txr_missing\"]' WHERE merchant_id = $1 "
            "AND customer_id LIKE '%0004' RETURNING id",
            merchant,
        )
    finally:
        await connection.close()

    # A test clock never skips work: it stops at the failed renewal, after its neighbours ran.
    assert await _advance(services, merchant, clock, TASKS) == "internal_failure"

    connection = await asyncpg.connect(dsn)
    try:
        renewed = await connection.fetch(
            "SELECT subscription_id, status, number, right(customer_id, 20)::int % 4 AS kind FROM invoices "
            "WHERE merchant_id = $1 "
            "AND billing_reason = 'subscription_cycle'",
            merchant,
        )
        task = await connection.fetchrow(
            "SELECT status, last_error FROM scheduled_tasks WHERE payload->>'subscription' = $1 "
            "AND kind = 'subscription.renew' AND payload->>'period_index' = '1'",
            poisoned,
        )
    finally:
        await connection.close()
    assert poisoned not in {row["subscription_id"] for row in renewed}
    assert len(renewed) == SUBSCRIPTIONS - 1
    # Finalized and numbered, except the metered ones: drafts until the usage grace window closes (the clock
    # stopped before it did).
    assert {(row["kind"], row["status"], row["number"] is None) for row in renewed} == {
        (0, "open", False),
        (1, "open", False),
        (2, "draft", True),
        (3, "open", False),
    }
    assert task["status"] == "failed"
    assert "txr_missing" in task["last_error"]
    async with services.sessions() as session:
        stopped = await session.scalar(select(TestClock).where(TestClock.id == clock))
    assert stopped is not None and stopped.failure_message is not None
    assert "subscription.renew" in stopped.failure_message


def _differences(batched: dict[str, Any], reference: dict[str, Any]) -> list[Any]:
    """The rows that differ between the two paths, field by field (batched, reference), for a failure's message."""
    out: list[Any] = []
    for key, rows in reference.items():
        for got, want in zip(batched[key], rows, strict=False):
            if got != want:
                out.append(
                    (key, {k: (got[k], want[k]) for k in want if got.get(k) != want[k]})
                    if isinstance(want, dict)
                    else (key, got, want)
                )
        if len(batched[key]) != len(rows):
            out.append((key, "rows", len(batched[key]), len(rows)))
    return out


# Risk velocity of 4 charges per card an hour (every customer but 5 and 6 pays with the same test card), customer 3's
# card detached, customer 7 without a default payment method. Customer 1's credit is taken back: the batch leaves
# a renewal with a balance to the single renewal, whose charge then comes after the batch's, and the velocity
# rule depends on the order of the charges.
RISKY_SETUP = (
    "UPDATE customers SET balance = 0 WHERE merchant_id = $1 AND id LIKE '%0001'",
    "UPDATE merchants SET settings = jsonb_set(settings, '{risk}', "
    '\'{"velocity": {"per_fingerprint_per_hour": 4}}\') WHERE id = $1',
    "UPDATE payment_methods SET detached_at = now() WHERE merchant_id = $1 AND customer_id LIKE '%0003'",
    "UPDATE customers SET default_payment_method = NULL WHERE merchant_id = $1 AND id LIKE '%0007'",
)


async def test_charges_begun_together_decide_as_one_by_one_with_risk_and_unusable_cards(
    services: Services,
) -> None:
    """billing/payments/batch.py: the risk check counts the set's earlier charges of the same card, and a charge
    that cannot be begun (detached card, no payment method) fails alone, as in the single collection."""
    dsn = _dsn(services)
    reference_merchant, _ = await _world(services, dsn, TASKS.singles_only(), RISKY_SETUP)
    merchant, _ = await _world(services, dsn, TASKS, RISKY_SETUP)
    reference, batched = await _renewed(dsn, reference_merchant), await _renewed(dsn, merchant)

    assert batched == reference, _differences(batched, reference)
    connection = await asyncpg.connect(dsn)
    try:
        payments = await connection.fetch(
            "SELECT right(customer_id, 20)::int AS n, status, failure_code FROM payments WHERE merchant_id = $1 "
            "ORDER BY seq",
            merchant,
        )
        decisions = await connection.fetch(
            "SELECT outcome, count(*) AS n FROM risk_decisions WHERE merchant_id = $1 GROUP BY outcome "
            "ORDER BY outcome",
            merchant,
        )
        errors = await connection.fetch(
            "SELECT right(customer_id, 20)::int AS n, last_payment_error->>'code' AS code FROM invoices "
            "WHERE merchant_id = $1 AND customer_id ~ '(0003|0007)$' ORDER BY n",
            merchant,
        )
    finally:
        await connection.close()
    # At the renewal: customers 1, 4, 8, 9, 11, 12 charge the shared card: the first four pass (the fourth near the
    # limit), the fifth and sixth are blocked; 5 is declined by the gateway. Metered 2, 6, 10 charge an hour later,
    # after the grace window, when the window of the velocity rule has moved past the earlier charges.
    assert [(p["n"], p["status"], p["failure_code"]) for p in payments] == [
        (1, "succeeded", None),
        (4, "succeeded", None),
        (5, "failed", "generic_decline"),
        (8, "succeeded", None),
        (9, "succeeded", None),
        (11, "failed", "highest_risk_level"),
        (12, "failed", "highest_risk_level"),
        (2, "succeeded", None),
        (6, "failed", "stolen_card"),
        (10, "succeeded", None),
    ]
    assert {row["outcome"]: row["n"] for row in decisions} == {"allow": 8, "block": 2}
    assert [(row["n"], row["code"]) for row in errors] == [
        (3, "payment_method_not_attached"),
        (7, "payment_method_missing"),
    ]
