"""One-off pending invoice items (issue 17 item 1, `POST /v1/invoice_items`) through the HTTP API on a test
clock: billed on the customer's next renewal with exact amounts, then marked invoiced; deleted while pending
only; bad inputs refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from billing.services import Services
from tests.billing.world import T0, Billing


async def test_pending_items_are_billed_on_the_next_renewal_and_then_marked_invoiced(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await world.customer(currency="USD")
    sub = await world.subscribe(customer, await world.plan(1000))
    setup = await world.post(
        "/v1/invoice_items", {"customer": customer, "amount": 500, "description": "Setup fee"}
    )
    seats = await world.post(
        "/v1/invoice_items",
        {"customer": customer, "unit_amount": 250, "quantity": "3", "description": "Extra seats"},
    )
    dropped = await world.post(
        "/v1/invoice_items",
        {"customer": customer, "unit_amount_decimal": "12.5", "quantity": "2", "description": "Dropped"},
    )
    assert (setup["status"], setup["currency"], setup["amount"]) == ("pending", "USD", 500)
    assert (seats["amount"], dropped["amount"]) == (750, 25)
    deleted = await api.delete(f"/v1/invoice_items/{dropped['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    pending = await world.get("/v1/invoice_items", customer=customer, pending="true")
    assert [i["id"] for i in pending["data"]] == [seats["id"], setup["id"]]

    # The upcoming invoice shows them as the renewal will bill them.
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [line["amount"] for line in upcoming["lines"]] == [1000, 500, 750]
    assert upcoming["amount_due"] == 2250

    # Not on the first invoice (made before they existed); on the renewal: 10.00 + 5.00 + 3 x 2.50.
    await world.advance(T0 + timedelta(days=29))
    first, renewal = await world.invoices(sub["id"])
    assert first["total"] == 1000
    assert [(line["description"], line["amount"]) for line in renewal["lines"]][1:] == [
        ("Setup fee", 500),
        ("Extra seats", 750),
    ]
    assert (renewal["subtotal"], renewal["total"], renewal["amount_due"]) == (2250, 2250, 2250)
    for item in (setup, seats):
        invoiced = await world.get(f"/v1/invoice_items/{item['id']}")
        assert (invoiced["status"], invoiced["invoice"]) == ("invoiced", renewal["id"])
    assert (await world.get("/v1/invoice_items", customer=customer, pending="true"))["data"] == []
    refused = await api.delete(f"/v1/invoice_items/{setup['id']}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "invoice_item_invoiced"
    # The month after, nothing is billed twice.
    await world.advance(T0 + timedelta(days=59))
    assert (await world.invoices(sub["id"]))[-1]["total"] == 1000


async def test_bad_invoice_items_are_refused_with_what_to_do(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await world.customer(currency="USD")

    async def refused(body: dict[str, Any]) -> dict[str, Any]:
        response = await api.post(
            "/v1/invoice_items", json={"customer": customer, "description": "X", **body}
        )
        assert response.status_code == 400, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    assert (await refused({"amount": 100, "currency": "EUR"}))["param"] == "currency"
    assert (await refused({"amount": -100}))["param"] == "amount"
    assert (await refused({"amount": 100, "unit_amount": 50}))["param"] == "amount"
    assert (await refused({"unit_amount": 50, "quantity": "-1"}))["param"] == "quantity"
    assert (await refused({}))["param"] == "amount"
    assert "amout" in (await refused({"amout": 100}))["message"]
    assert (await world.get("/v1/invoice_items", customer=customer))["data"] == []
    missing = await api.post(
        "/v1/invoice_items", json={"customer": "cus_" + "x" * 24, "amount": 1, "description": "X"}
    )
    assert missing.status_code == 404
