"""`billing audit` (issue 16 item 4): each check names exactly the rows that break its invariant, and a world
built through the API (renewals on a test clock, a card payment, a refund, a credit note) breaks none."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.merchants.service import NewMerchant
from billing.reporting.audit import CHECKS, run_audit
from billing.services import Services
from tests.billing.payment_helpers import run_process
from tests.billing.test_credit_notes import credit, paid_by_card
from tests.billing.world import T0, Billing

SHADOWED = (
    "invoices",
    "invoice_number_sequences",
    "payments",
    "refunds",
    "customers",
    "customer_balance_transactions",
    "events",
)

GOOD_INVOICE: dict[str, Any] = {
    "merchant_id": "mer_a",
    "status": "open",
    "subtotal": 1000,
    "discount": 0,
    "tax": 0,
    "total": 1000,
    "starting_balance": 0,
    "balance_applied": 0,
    "amount_due": 1000,
    "amount_paid": 0,
    "amount_remaining": 1000,
    "pre_payment_credit_notes_amount": 0,
    "post_payment_credit_notes_amount": 0,
    "paid_out_of_band": False,
}
PAID = {"status": "paid", "amount_paid": 1000, "amount_remaining": 0}


async def _insert(connection: AsyncConnection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    values = ", ".join(f":{column}" for column in row)
    await connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


async def _invoice(connection: AsyncConnection, invoice_id: str, **fields: Any) -> None:
    await _insert(connection, "invoices", {**GOOD_INVOICE, "id": invoice_id, **fields})


async def _payment(connection: AsyncConnection, payment_id: str, **fields: Any) -> None:
    row = {
        "id": payment_id,
        "merchant_id": "mer_a",
        "status": "succeeded",
        "amount": 1000,
        "amount_refunded": 0,
    }
    await _insert(connection, "payments", {**row, **fields})


async def _broken_world(connection: AsyncConnection) -> None:
    """Temporary tables shadowing the real ones (no CHECK constraints), holding good rows and one or two rows
    breaking each invariant."""
    for table in SHADOWED:
        await connection.execute(
            text(f"CREATE TEMP TABLE {table} AS SELECT * FROM public.{table} WITH NO DATA")
        )
    # Good rows: a paid invoice with its payment and a partial refund, an open one; a customer with a ledger.
    await _invoice(connection, "in_good1", number="INV-000001", **PAID)
    await _payment(connection, "pay_good1", invoice_id="in_good1", amount_refunded=300)
    await _insert(
        connection,
        "refunds",
        {
            "id": "re_good",
            "merchant_id": "mer_a",
            "payment_id": "pay_good1",
            "amount": 300,
            "status": "succeeded",
        },
    )
    await _insert(
        connection,
        "refunds",
        {"id": "re_failed", "payment_id": "pay_good1", "amount": 900, "status": "failed"},
    )
    await _invoice(connection, "in_good2", number="INV-000002")
    await _insert(connection, "customers", {"id": "cus_good", "merchant_id": "mer_a", "balance": -500})
    for seq, (amount, ending) in enumerate(((-700, -700), (200, -500)), start=1):
        await _insert(
            connection,
            "customer_balance_transactions",
            {
                "id": f"cbt_{seq}",
                "seq": seq,
                "customer_id": "cus_good",
                "amount": amount,
                "ending_balance": ending,
            },
        )
    # Broken invoices of merchant A (numbered on from the good ones).
    await _invoice(
        connection, "in_total", number="INV-000003", total=999, amount_due=999, amount_remaining=999
    )
    await _invoice(connection, "in_due", number="INV-000004", amount_due=900, amount_remaining=900)
    await _invoice(
        connection,
        "in_paid",
        number="INV-000005",
        status="paid",
        amount_paid=600,
        amount_remaining=400,
        paid_out_of_band=True,
    )
    await _invoice(connection, "in_unmatched", number="INV-000006", **PAID)
    await _insert(connection, "invoice_number_sequences", {"merchant_id": "mer_a", "next_number": 8})
    # Merchant B: number 2 missing, and the sequence handed out 4.
    await _invoice(connection, "in_b1", merchant_id="mer_b", number="INV-000001")
    await _invoice(connection, "in_b3", merchant_id="mer_b", number="B-000003")
    await _insert(connection, "invoice_number_sequences", {"merchant_id": "mer_b", "next_number": 5})
    # Two drafts billing one subscription period.
    for invoice_id in ("in_p1", "in_p2"):
        await _invoice(
            connection, invoice_id, status="draft", subscription_id="sub_x", subscription_period_index=3
        )
    # Refunds beyond a payment, and amount_refunded without a refund.
    await _payment(connection, "pay_over", amount_refunded=1000)
    for refund_id in ("re_over1", "re_over2"):
        await _insert(
            connection,
            "refunds",
            {
                "id": refund_id,
                "merchant_id": "mer_a",
                "payment_id": "pay_over",
                "amount": 600,
                "status": "succeeded",
            },
        )
    await _payment(connection, "pay_phantom_refund", amount_refunded=100)
    # A succeeded payment naming an invoice that is not there.
    await _payment(connection, "pay_orphan", invoice_id="in_missing")
    # Balances that are not their ledger's sum.
    await _insert(connection, "customers", {"id": "cus_bad", "merchant_id": "mer_a", "balance": -100})
    await _insert(
        connection,
        "customer_balance_transactions",
        {"id": "cbt_bad", "seq": 9, "customer_id": "cus_bad", "amount": -200, "ending_balance": -200},
    )
    await _insert(connection, "customers", {"id": "cus_no_ledger", "merchant_id": "mer_a", "balance": 50})
    # Every state change has its event, but for an invoice finalized silently and a refund whose event is gone.
    await connection.execute(text("UPDATE invoices SET finalized_at = now() WHERE number IS NOT NULL"))
    await connection.execute(
        text(
            "INSERT INTO events (id, merchant_id, type, object_id) "
            "SELECT 'evt_f' || id, merchant_id, 'invoice.finalized', id FROM invoices WHERE number IS NOT NULL "
            "UNION ALL SELECT 'evt_p' || id, merchant_id, 'invoice.paid', id FROM invoices WHERE status = 'paid' "
            "UNION ALL SELECT 'evt_s' || id, merchant_id, 'payment.succeeded', id FROM payments "
            "UNION ALL SELECT 'evt_r' || id, merchant_id, 'refund.succeeded', id FROM refunds "
            "WHERE status = 'succeeded' AND id <> 're_good'"
        )
    )
    await _invoice(
        connection, "in_silent", number="INV-000007", finalized_at=datetime(2027, 1, 1, tzinfo=UTC)
    )


EXPECTED = {
    "invoice_total": {"in_total"},
    "invoice_amount_due": {"in_due"},
    "invoice_amount_paid": {"in_paid"},
    "invoice_numbering": {"in_b3", "mer_b"},
    "one_invoice_per_period": {"in_p1"},
    "refunds_within_payment": {"pay_over", "pay_phantom_refund"},
    "payments_match_invoices": {"in_unmatched", "pay_orphan"},
    "state_changes_have_events": {"in_silent", "re_good"},
    "customer_balance_ledger": {"cus_bad", "cus_no_ledger"},
}


async def test_each_check_names_exactly_the_rows_breaking_its_invariant(services: Services) -> None:
    assert set(EXPECTED) == {check.name for check in CHECKS}
    async with services.engine.connect() as connection, connection.begin() as outer:
        await _broken_world(connection)
        results = await run_audit(connection)
        await outer.rollback()
    found = {result.check.name: {violation.id for violation in result.violations} for result in results}
    assert found == EXPECTED
    assert all(result.count == len(EXPECTED[result.check.name]) for result in results)


async def test_a_world_built_through_the_api_is_clean(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    # A card-paid invoice, then a credit note refunding part of it and crediting the balance.
    invoice, _ = await paid_by_card(api, 10000)
    note = await credit(api, invoice["id"], amount=5000, refund_amount=3000, credit_amount=2000)
    assert note.status_code == 200, note.text
    # A subscription renewed on a test clock (February 28), one renewal paid out of band.
    world = Billing(api, services)
    await world.start()
    customer = await world.customer()
    subscription = await world.subscribe(customer, await world.plan(2500))
    await world.advance(T0 + timedelta(days=29))
    invoices = await world.invoices(subscription["id"])
    assert len(invoices) == 2
    paid = await api.post(f"/v1/invoices/{invoices[1]['id']}/pay", json={"paid_out_of_band": True})
    assert paid.status_code == 200, paid.text

    async with services.engine.connect() as connection:
        results = await run_audit(connection, merchant.id)
    assert {result.check.name: result.count for result in results} == {check.name: 0 for check in CHECKS}


async def test_the_command_exits_1_and_names_the_broken_row_in_json(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, database_url: str
) -> None:
    """A balance moved without its ledger entry (only a direct UPDATE can): exit code 1, the customer named."""
    created = await api.post("/v1/customers", json={"email": "audit@example.com"})
    customer = created.json()["id"]
    async with services.engine.begin() as connection:
        await connection.execute(text("UPDATE customers SET balance = 77 WHERE id = :id"), {"id": customer})
    environment = {**os.environ, "DATABASE_URL": database_url}
    done = await run_process(
        [sys.executable, "-m", "billing", "audit", "--json", "--merchant", merchant.id],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["violations"] == 1
    [ledger] = [check for check in report["checks"] if check["count"]]
    assert (ledger["name"], [v["id"] for v in ledger["violations"]]) == (
        "customer_balance_ledger",
        [customer],
    )
