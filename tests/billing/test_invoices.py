"""Invoices through the HTTP API (SPEC §4, §5): drafts, finalization with gap-free numbers and the customer
balance, the state machine, and immutability enforced by the database itself."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from billing.invoices.models import CustomerBalanceTransaction
from billing.services import Services


async def customer(api: httpx.AsyncClient, **fields: object) -> str:
    response = await api.post("/v1/customers", json={"currency": "USD", **fields})
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def draft(api: httpx.AsyncClient, customer_id: str, *amounts: int, **fields: object) -> dict:
    lines = [{"description": f"Item {i}", "amount": amount} for i, amount in enumerate(amounts)]
    response = await api.post("/v1/invoices", json={"customer": customer_id, "lines": lines, **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def act(api: httpx.AsyncClient, invoice_id: str, action: str, **body: object) -> httpx.Response:
    return await api.post(f"/v1/invoices/{invoice_id}/{action}", json=body or None)


async def test_a_draft_totals_its_lines_and_rounds_half_up_at_the_line(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    invoice = await draft(api, cus, 1000)
    response = await api.post(
        f"/v1/invoices/{invoice['id']}/lines",
        json={"description": "API calls", "unit_amount_decimal": "0.125", "quantity": "1002"},
    )
    body = response.json()
    assert body["status"] == "draft"
    assert body["number"] is None
    # 0.125 × 1002 = 125.25 → 125 (half-up at the line)
    assert [line["amount"] for line in body["lines"]] == [1000, 125]
    assert body["subtotal"] == body["total"] == body["amount_due"] == 1125


async def test_finalize_numbers_the_invoice_and_freezes_it(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    invoice = await draft(api, cus, 2500)
    finalized = (await act(api, invoice["id"], "finalize")).json()
    assert finalized["status"] == "open"
    assert finalized["number"].startswith("INV-")
    assert finalized["amount_remaining"] == 2500
    again = await act(api, invoice["id"], "finalize")
    assert again.status_code == 409
    assert "finalize" in again.json()["error"]["message"]
    add = await api.post(f"/v1/invoices/{invoice['id']}/lines", json={"description": "late", "amount": 1})
    assert add.status_code == 409
    assert (await api.delete(f"/v1/invoices/{invoice['id']}")).status_code == 409
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": invoice["id"]})).json()["data"]
    ]
    assert types == ["invoice.finalized", "invoice.created"]


async def test_numbers_are_gap_free_per_merchant_under_concurrency(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    cus = await customer(api)
    drafts = [await draft(api, cus, 100 + i) for i in range(12)]
    results = await asyncio.gather(*[act(api, d["id"], "finalize") for d in drafts])
    numbers = sorted(int(r.json()["number"].split("-")[1]) for r in results)
    assert numbers == list(range(numbers[0], numbers[0] + 12))
    # Another merchant starts its own sequence.
    theirs = await draft(other_api, await customer(other_api), 100)
    assert (await act(other_api, theirs["id"], "finalize")).json()["number"] == "INV-000001"


async def test_the_state_machine_allows_only_its_transitions(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    invoice = await draft(api, cus, 700)
    assert (await act(api, invoice["id"], "pay", paid_out_of_band=True)).status_code == 409  # a draft
    await act(api, invoice["id"], "finalize")
    uncollectible = (await act(api, invoice["id"], "mark_uncollectible")).json()
    assert uncollectible["status"] == "uncollectible"
    paid = (await act(api, invoice["id"], "pay", paid_out_of_band=True)).json()
    assert paid["status"] == "paid"
    assert paid["amount_paid"] == 700
    assert paid["amount_remaining"] == 0
    voided = await act(api, invoice["id"], "void")
    assert voided.status_code == 409
    assert "credit note" in voided.json()["error"]["message"]


async def test_void_an_open_invoice(api: httpx.AsyncClient) -> None:
    invoice = await draft(api, await customer(api), 300)
    await act(api, invoice["id"], "finalize")
    voided = (await act(api, invoice["id"], "void")).json()
    assert voided["status"] == "void"
    assert voided["voided_at"] is not None


async def test_the_customer_balance_is_a_ledger_applied_at_finalization(
    api: httpx.AsyncClient, services: Services
) -> None:
    cus = await customer(api)
    # A credit invoice (negative total) leaves the customer 500 in credit and is settled at once.
    credit = (await act(api, (await draft(api, cus, -500))["id"], "finalize")).json()
    assert credit["status"] == "paid"
    assert credit["amount_due"] == 0
    assert (await api.get(f"/v1/customers/{cus}")).json()["balance"] == -500

    covered = (await act(api, (await draft(api, cus, 300))["id"], "finalize")).json()
    assert (covered["starting_balance"], covered["amount_due"], covered["ending_balance"]) == (-500, 0, -200)
    assert covered["status"] == "paid"

    partly = (await act(api, (await draft(api, cus, 450))["id"], "finalize")).json()
    assert (partly["starting_balance"], partly["amount_due"], partly["ending_balance"]) == (-200, 250, 0)
    assert partly["status"] == "open"
    assert partly["subtotal"] - partly["discount"] + partly["tax"] == partly["total"]

    # Voiding gives back the balance the invoice consumed.
    await act(api, partly["id"], "void")
    assert (await api.get(f"/v1/customers/{cus}")).json()["balance"] == -200
    async with services.sessions() as session:
        ledger_sum = await session.scalar(
            select(func.sum(CustomerBalanceTransaction.amount)).where(
                CustomerBalanceTransaction.customer_id == cus
            )
        )
    assert ledger_sum == -200
    # Every move of the balance is a customer.updated event, the void's included.
    moves = (await api.get("/v1/events", params={"object_id": cus, "type": "customer.updated"})).json()[
        "data"
    ]
    assert [
        (e["data"]["previous_attributes"]["balance"], e["data"]["object"]["balance"]) for e in reversed(moves)
    ] == [
        (0, -500),
        (-500, -200),
        (-200, 0),
        (0, -200),
    ]


async def test_send_invoice_needs_days_until_due_and_gets_a_due_date(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    missing = await api.post("/v1/invoices", json={"customer": cus, "collection_method": "send_invoice"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "days_until_due"
    invoice = await draft(api, cus, 100, collection_method="send_invoice", days_until_due=30)
    finalized = (await act(api, invoice["id"], "finalize")).json()
    assert finalized["due_date"] is not None


@pytest.mark.parametrize(
    ("line", "param"),
    [
        ({"description": "x", "amount": 1, "unit_amount": 1}, "lines[0].amount"),
        ({"description": "x"}, "lines[0].amount"),
        ({"description": "x", "unit_amount": 5, "quantity": "-1"}, "lines[0].quantity"),
        ({"description": "x", "unit_amount_decimal": "1.0000000000001"}, "lines[0].unit_amount_decimal"),
    ],
)
async def test_bad_lines_name_the_field(api: httpx.AsyncClient, line: dict, param: str) -> None:
    response = await api.post("/v1/invoices", json={"customer": await customer(api), "lines": [line]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_a_customer_without_currency_needs_one_on_the_invoice(api: httpx.AsyncClient) -> None:
    no_currency = (await api.post("/v1/customers", json={})).json()["id"]
    response = await api.post("/v1/invoices", json={"customer": no_currency})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "currency"


async def test_the_database_refuses_to_change_a_finalized_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    invoice = await draft(api, await customer(api), 900)
    await act(api, invoice["id"], "finalize")
    for statement in (
        "UPDATE invoices SET total = 1, subtotal = 1 WHERE id = :id",
        "UPDATE invoice_lines SET amount = 1 WHERE invoice_id = :id",
        "DELETE FROM invoice_lines WHERE invoice_id = :id",
        "DELETE FROM invoices WHERE id = :id",
    ):
        async with services.sessions() as session:
            with pytest.raises(DBAPIError, match=r"finalized|cannot"):
                await session.execute(text(statement), {"id": invoice["id"]})
    async with services.sessions() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text("UPDATE customer_balance_transactions SET amount = 0"))
    # Paying is still allowed: only the payment state moves.
    assert (await act(api, invoice["id"], "pay", paid_out_of_band=True)).json()["status"] == "paid"


async def test_list_filters_by_customer_and_status(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    open_invoice = await draft(api, cus, 100)
    await act(api, open_invoice["id"], "finalize")
    await draft(api, cus, 200)
    listed = (await api.get("/v1/invoices", params={"customer": cus, "status": "open"})).json()
    assert [i["id"] for i in listed["data"]] == [open_invoice["id"]]
    bad = await api.get("/v1/invoices", params={"status": "lost"})
    assert bad.status_code == 400
