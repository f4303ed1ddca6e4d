"""CSV exports (issue #15 item 3): documented columns, header first, minor units beside the currency, RFC 3339
times, the period filter, and a 100,000-row export streamed by a real `billing serve` in bounded memory."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from billing.config import Settings
from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.reporting.exports import EXPORTS
from billing.services import Services
from tests.billing.console_helpers import billing_serve

DOCS = Path(__file__).resolve().parents[2] / "docs" / "console.md"


def _rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


async def test_every_export_has_its_documented_header(api: httpx.AsyncClient) -> None:
    documented = DOCS.read_text()
    for name, export in EXPORTS.items():
        response = await api.get(f"/v1/exports/{name}.csv")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
        header = _rows(response.text)[0]
        assert header == export.header
        assert "`" + "`, `".join(header) + "`" in documented, (
            f"docs/console.md must list the {name} columns in order"
        )


async def test_an_invoice_row_and_the_period_filter(api: httpx.AsyncClient) -> None:
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": "2027-04-30T23:30:00Z"})).json()["id"]
    customer = (
        await api.post(
            "/v1/customers",
            json={"currency": "JPY", "email": "=cmd@example.com", "name": "+Tanaka", "test_clock": clock},
        )
    ).json()["id"]
    body = {
        "customer": customer,
        "collection_method": "send_invoice",
        "days_until_due": 10,
        "lines": [{"description": "-Setup", "amount": 12000}],
    }
    invoice = (await api.post("/v1/invoices", json=body)).json()
    invoice = (await api.post(f"/v1/invoices/{invoice['id']}/finalize")).json()
    rows = _rows(
        (await api.get("/v1/exports/invoices.csv", params={"from": "2027-04-30", "to": "2027-04-30"})).text
    )
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (
        row["id"],
        row["number"],
        row["status"],
        row["currency"],
        row["total"],
        row["amount_remaining"],
    ) == (invoice["id"], invoice["number"], "open", "JPY", "12000", "12000")
    assert row["created_at"] == "2027-04-30T23:30:00Z" and row["due_date"] == "2027-05-10T23:30:00Z"
    assert row["customer_email"] == "'=cmd@example.com" and row["customer_name"] == "'+Tanaka"  # no formulas
    assert row["test_clock"] == clock and row["paid_at"] == ""
    assert len(_rows((await api.get("/v1/exports/invoices.csv", params={"from": "2027-05-01"})).text)) == 1
    lines = _rows(
        (
            await api.get("/v1/exports/invoice_lines.csv", params={"to": "2027-04-30", "from": "2027-04-30"})
        ).text
    )
    assert [dict(zip(lines[0], r, strict=True))["description"] for r in lines[1:]] == ["'-Setup"]


async def test_bad_export_requests(api: httpx.AsyncClient, app: Any, merchant: NewMerchant) -> None:
    for params, param in (
        ({"from": "2027-02-30"}, "from"),
        ({"to": "May"}, "to"),
        ({"from": "2027-05-02", "to": "2027-05-01"}, "from"),
    ):
        response = await api.get("/v1/exports/payments.csv", params=params)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert (await api.get("/v1/exports/customers.csv")).status_code == 400
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://billing.test"
    ) as anonymous:
        assert (await anonymous.get("/v1/exports/invoices.csv")).status_code == 401
        publishable = await anonymous.get(
            "/v1/exports/invoices.csv", headers={"Authorization": f"Bearer {merchant.publishable_key}"}
        )
        assert publishable.status_code == 403


ROWS = 100_000


async def _insert_invoices(services: Services, merchant_id: str, count: int) -> None:
    """`count` open invoices in one set-based statement (the export reads them as any others)."""
    async with transaction(services.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO customers (id, merchant_id, email, name, currency, timezone, locale, balance, metadata, created_at, updated_at) "
                "VALUES ('cus_exportbench' || substr(md5(CAST(:m AS text)), 1, 9), CAST(:m AS text), 'bulk@example.com', 'Bulk Buyer', 'USD', 'UTC', 'en', 0, '{}', now(), now())"
            ),
            {"m": merchant_id},
        )
        await session.execute(
            text(
                "INSERT INTO invoices (id, merchant_id, customer_id, number, status, currency, collection_method, "
                "subtotal, discount, tax, total, starting_balance, balance_applied, amount_due, amount_paid, amount_remaining, "
                "attempt_count, paid_out_of_band, created_at, finalized_at) "
                "SELECT 'in_' || lpad(i::text, 24, '0'), CAST(:m AS text), 'cus_exportbench' || substr(md5(CAST(:m AS text)), 1, 9), 'BULK-' || lpad(i::text, 6, '0'), "
                "'open', 'USD', 'send_invoice', 1000 + i, 0, 0, 1000 + i, 0, 0, 1000 + i, 0, 1000 + i, 0, false, "
                "timestamptz '2027-01-01T00:00:00Z' + i * interval '1 second', timestamptz '2027-01-01T00:00:00Z' + i * interval '1 second' "
                "FROM generate_series(1, :n) AS i"
            ),
            {"m": merchant_id, "n": count},
        )


async def test_a_100000_row_export_streams_in_bounded_memory(
    settings: Settings, services: Services, merchant: NewMerchant
) -> None:
    await _insert_invoices(services, merchant.id, ROWS)
    with billing_serve(settings) as (url, server):
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {merchant.secret_key}"}, timeout=120
        ) as client:
            await client.get(
                "/v1/exports/invoices.csv", params={"to": "2026-01-01"}
            )  # warm up: imports, pools
            baseline = server.memory_info().rss
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, server.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            lines = 0
            size = 0
            first = last = b""
            tail = b""
            try:
                async with client.stream("GET", "/v1/exports/invoices.csv") as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                        if len(first) < 1000:
                            first = (first + chunk)[:1000]
                        tail = (tail + chunk)[-400:]
                        await asyncio.sleep(0)
            finally:
                elapsed = time.monotonic() - started
                done.set()
                sampler.join()
            last = tail
    assert lines == ROWS + 1
    assert first.startswith(b"id,number,status,customer,")
    assert b"in_000000000000000000000001,BULK-000001,open," in first
    assert b"in_000000000000000000100000,BULK-100000,open," in last
    growth = peak - baseline
    print(
        f"\nexport of {ROWS} invoices in {elapsed:.1f} s: {size / 1e6:.1f} MB of CSV; server RSS {baseline / 1e6:.1f} MB before, peak {peak / 1e6:.1f} MB (+{growth / 1e6:.1f} MB)"
    )
    # Held in memory, the answer alone would add its own size; streamed, the server holds a batch at a time.
    assert growth < size * 3 // 4
