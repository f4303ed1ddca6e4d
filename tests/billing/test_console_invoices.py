"""The console's invoice review (issue #15 item 2): list with filters, search, sorting and pages; the detail page;
and each action through the console's forms, checked through the API (the same use cases) and the audit log.
Tenant isolation: a user of merchant A never sees or touches merchant B's invoices."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from billing.console.models import AuditEntry
from billing.merchants.service import NewMerchant
from billing.notifications.models import EmailMessage
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.console_helpers import (
    api_customer,
    api_invoice,
    audit_entries,
    console_user,
    logged_in,
    post_form,
)
from tests.billing.payment_helpers import configure_gateways, customer_with_card

_ROW = re.compile(r'data-invoice="(in_[0-9A-Za-z]+)"')


async def _rows(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/console/invoices", params=params)
    assert response.status_code == 200, response.text
    return _ROW.findall(response.text)


async def _audit(services: Services, object_id: str) -> list[AuditEntry]:
    async with services.sessions() as session:
        merchant_id = await session.scalar(
            select(AuditEntry.merchant_id).where(AuditEntry.object_id == object_id)
        )
    return await audit_entries(services, merchant_id, object_id) if merchant_id else []


async def _finance(
    app: Any, services: Services, merchant: NewMerchant, email: str = "fin@example.com"
) -> httpx.AsyncClient:
    return await logged_in(app, email, await console_user(services, merchant.id, email))


async def test_filters_search_sort_and_pages(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    li = await api_customer(api, email="li.lei@example.com", name="李雷")
    han = await api_customer(api, email="han.meimei@example.com", name="Han Meimei")
    euro = await api_customer(api, "EUR", email="eu@example.com", name="Euro GmbH")
    small = await api_invoice(api, li, 1_000)
    large = await api_invoice(api, li, 90_000)
    hers = await api_invoice(api, han, 5_000, collection_method="send_invoice", days_until_due=30)
    draft = await api_invoice(api, han, 700, finalize=False)
    eur = await api_invoice(api, euro, 3_000)
    client = await _finance(app, services, merchant)

    everything = await _rows(client)
    assert set(everything) == {small["id"], large["id"], hers["id"], draft["id"], eur["id"]}
    assert everything[0] == eur["id"]  # newest first by default
    assert await _rows(client, q="li.lei@") == [large["id"], small["id"]]
    assert await _rows(client, q="李") == [large["id"], small["id"]]
    assert await _rows(client, q="meimei", status="draft") == [draft["id"]]
    assert await _rows(client, q=large["number"]) == [large["id"]]
    assert await _rows(client, currency="EUR") == [eur["id"]]
    assert await _rows(client, customer=li, total_min="50.00") == [large["id"]]
    assert await _rows(client, total_min="10", total_max="50", currency="USD") == [hers["id"], small["id"]]
    assert await _rows(client, sort="total", dir="asc", currency="USD") == [
        draft["id"],
        small["id"],
        hers["id"],
        large["id"],
    ]
    # Charged automatically, open since finalization: overdue; the one sent with 30 days to pay is not.
    overdue = await _rows(client, overdue="1")
    assert hers["id"] not in overdue and draft["id"] not in overdue
    assert {small["id"], large["id"], eur["id"]} <= set(overdue)
    bad = await client.get("/console/invoices", params={"total_min": "12.345", "currency": "USD"})
    assert bad.status_code == 200 and "enter an amount" in bad.text
    for _ in range(26):
        await api_invoice(api, han, 100)
    first = await client.get("/console/invoices", params={"customer": han})
    assert "Page 1 of 2 · 28 results" in first.text
    second = await _rows(client, customer=han, page=2)
    assert len(second) == 3 and draft["id"] in second


async def test_the_detail_page_shows_lines_taxes_payments_credit_notes_and_events(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    rate = (
        await api.post("/v1/tax_rates", json={"display_name": "VAT", "percentage": "20", "inclusive": False})
    ).json()
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer, _ = await customer_with_card(api, "4242424242424242")
    plan = (
        await api.post(
            "/v1/plans",
            json={"code": "tax-plan", "name": "Pro", "currency": "USD", "interval": "month", "amount": 1000},
        )
    ).json()
    sub = (
        await api.post(
            "/v1/subscriptions",
            json={"customer": customer["id"], "plan": plan["id"], "tax_rates": [rate["id"]]},
        )
    ).json()
    invoice = (await api.get(f"/v1/invoices/{sub['latest_invoice']}")).json()
    assert invoice["status"] == "paid" and invoice["tax"] == 200 and invoice["total"] == 1200
    client = await _finance(app, services, merchant)
    page = await client.get(f"/console/invoices/{invoice['id']}")
    assert page.status_code == 200
    text = page.text
    assert invoice["number"] in text
    assert "VAT 20% (exclusive)" in text and "$2.00" in text and "$12.00" in text  # tax by rate, total
    assert "succeeded" in text and "Visa •••• 4242" in text  # the payment
    assert "invoice.paid" in text and "invoice.finalized" in text  # the events timeline


async def test_void_through_the_console_is_the_apis_void_with_an_audit_entry(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    invoice = await api_invoice(
        api, await api_customer(api), 4_200, collection_method="send_invoice", days_until_due=7
    )
    client = await _finance(app, services, merchant)
    response = await post_form(
        client, f"/console/invoices/{invoice['id']}", f"/console/invoices/{invoice['id']}/void"
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/invoices/{invoice['id']}?done=void"
    voided = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    assert voided["status"] == "void" and voided["voided_at"] is not None
    events = (await api.get("/v1/events", params={"object_id": invoice["id"]})).json()["data"]
    assert "invoice.voided" in [e["type"] for e in events]
    entries = await _audit(services, invoice["id"])
    assert [e.action for e in entries] == ["invoice.void"]
    assert entries[0].actor == "fin@example.com"
    assert entries[0].before is not None and entries[0].before["status"] == "open"
    assert entries[0].after is not None and entries[0].after["status"] == "void"
    page = await client.get(response.headers["location"])
    assert "The invoice was voided." in page.text and "invoice.void" in page.text
    again = await post_form(
        client, f"/console/invoices/{invoice['id']}", f"/console/invoices/{invoice['id']}/void"
    )
    assert again.status_code == 409
    assert "cannot void" in again.text
    assert len(await _audit(services, invoice["id"])) == 1


async def test_finalize_and_mark_uncollectible(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    draft = await api_invoice(
        api,
        await api_customer(api),
        2_500,
        finalize=False,
        collection_method="send_invoice",
        days_until_due=3,
    )
    client = await _finance(app, services, merchant)
    assert (
        await post_form(
            client, f"/console/invoices/{draft['id']}", f"/console/invoices/{draft['id']}/finalize"
        )
    ).status_code == 303
    finalized = (await api.get(f"/v1/invoices/{draft['id']}")).json()
    assert finalized["status"] == "open" and finalized["number"].startswith("INV-")
    assert (
        await post_form(
            client, f"/console/invoices/{draft['id']}", f"/console/invoices/{draft['id']}/mark_uncollectible"
        )
    ).status_code == 303
    assert (await api.get(f"/v1/invoices/{draft['id']}")).json()["status"] == "uncollectible"
    assert [e.action for e in await _audit(services, draft["id"])] == [
        "invoice.finalize",
        "invoice.mark_uncollectible",
    ]


async def test_credit_notes_before_and_after_payment(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    client = await _finance(app, services, merchant)
    open_invoice = await api_invoice(
        api, await api_customer(api), 10_000, collection_method="send_invoice", days_until_due=7
    )
    path = f"/console/invoices/{open_invoice['id']}"
    response = await post_form(
        client, path, f"{path}/credit_note", amount="12.50", reason="order_change", memo="Fewer seats"
    )
    assert response.status_code == 303, response.text
    assert "CN-01" in response.headers["location"]
    after = (await api.get(f"/v1/invoices/{open_invoice['id']}")).json()
    assert after["pre_payment_credit_notes_amount"] == 1250
    assert after["amount_remaining"] == 8750
    notes = (await api.get("/v1/credit_notes", params={"invoice": open_invoice["id"]})).json()["data"]
    assert [(n["amount"], n["reason"], n["memo"], n["type"]) for n in notes] == [
        (1250, "order_change", "Fewer seats", "pre_payment")
    ]
    too_precise = await post_form(client, path, f"{path}/credit_note", amount="1.005")
    assert too_precise.status_code == 400 and "USD has 2 decimals" in too_precise.text

    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer, _ = await customer_with_card(api, "4242424242424242")
    paid = await api_invoice(api, customer["id"], 6_000, currency="USD")
    paid = (await api.post(f"/v1/invoices/{paid['id']}/pay", json={})).json()
    assert paid["status"] == "paid"
    path = f"/console/invoices/{paid['id']}"
    response = await post_form(
        client,
        path,
        f"{path}/credit_note",
        amount="30.00",
        refund_amount="20.00",
        credit_amount="10.00",
        reason="duplicate",
    )
    assert response.status_code == 303, response.text
    note = (await api.get("/v1/credit_notes", params={"invoice": paid["id"]})).json()["data"][0]
    assert (note["amount"], note["refund_amount"], note["credit_amount"], note["type"]) == (
        3000,
        2000,
        1000,
        "post_payment",
    )
    refund = (await api.get(f"/v1/refunds/{note['refund']}")).json()
    assert (refund["amount"], refund["status"]) == (2000, "succeeded")
    assert (await api.get(f"/v1/customers/{customer['id']}")).json()["balance"] == -1000
    entry = (await _audit(services, paid["id"]))[-1]
    assert entry.action == "credit_note.created"
    assert entry.after is not None and entry.after["credit_note"]["refund_amount"] == 2000
    split_wrong = await post_form(
        client, path, f"{path}/credit_note", amount="5.00", refund_amount="1.00", credit_amount="1.00"
    )
    assert split_wrong.status_code == 400
    assert len((await api.get("/v1/credit_notes", params={"invoice": paid["id"]})).json()["data"]) == 1


async def test_retry_payment_charges_the_card_now(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer, _ = await customer_with_card(api, "4000000000000002")  # every charge declined (soft)
    invoice = await api_invoice(
        api, customer["id"], 3_300, currency="USD", collection_method="send_invoice", days_until_due=5
    )
    client = await _finance(app, services, merchant)
    path = f"/console/invoices/{invoice['id']}"
    failed = await post_form(client, path, f"{path}/retry")
    assert failed.status_code == 303
    assert "done=retry_failed" in failed.headers["location"]
    page = await client.get(failed.headers["location"])
    assert "The payment failed" in page.text and "generic_decline" in page.text
    good = await api.post(
        "/v1/payment_methods",
        json={
            "customer": customer["id"],
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035},
        },
    )
    await api.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": good.json()["id"]})
    paid = await post_form(client, path, f"{path}/retry")
    assert paid.headers["location"] == f"{path}?done=retry_paid"
    assert (await api.get(f"/v1/invoices/{invoice['id']}")).json()["status"] == "paid"
    payments = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert sorted(p["status"] for p in payments) == ["failed", "succeeded"]
    assert [e.action for e in await _audit(services, invoice["id"])] == [
        "invoice.retry_payment",
        "invoice.retry_payment",
    ]


async def test_resend_the_invoice_email(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    invoice = await api_invoice(
        api,
        await api_customer(api, email="billing@client.example", locale="zh-CN"),
        8_800,
        collection_method="send_invoice",
        days_until_due=14,
    )
    client = await _finance(app, services, merchant)
    path = f"/console/invoices/{invoice['id']}"
    response = await post_form(client, path, f"{path}/send")
    assert response.status_code == 303
    assert "billing%40client.example" in response.headers["location"]
    async with services.sessions() as session:
        emails = (
            await session.scalars(
                select(EmailMessage).where(
                    EmailMessage.kind == "invoice", EmailMessage.to == "billing@client.example"
                )
            )
        ).all()
    assert len(emails) == 1
    assert invoice["number"] in emails[0].subject and "发票" in emails[0].subject
    assert "US$88.00" in emails[0].text_body and "/i/" in emails[0].text_body
    over_api = await api.post(f"/v1/invoices/{invoice['id']}/send")
    assert over_api.status_code == 200
    draft = await api_invoice(api, await api_customer(api, email="x@example.com"), 100, finalize=False)
    refused = await api.post(f"/v1/invoices/{draft['id']}/send")
    assert refused.status_code == 409 and "finalize it first" in refused.json()["error"]["message"]


async def test_merchant_a_never_sees_merchant_b(
    app: Any,
    services: Services,
    merchant: NewMerchant,
    api: httpx.AsyncClient,
    other_merchant: NewMerchant,
    other_api: httpx.AsyncClient,
) -> None:
    theirs = await api_invoice(
        other_api, await api_customer(other_api, email="secret@b.example", name="B Corp"), 7_777
    )
    mine = await api_invoice(api, await api_customer(api), 1_111)
    client = await _finance(app, services, merchant, "a-user@example.com")
    assert theirs["id"] not in await _rows(client)
    assert await _rows(client, q="secret@b.example") == []
    assert await _rows(client, q=theirs["number"]) == [] or theirs["id"] not in await _rows(
        client, q=theirs["number"]
    )
    assert (await client.get(f"/console/invoices/{theirs['id']}")).status_code == 404
    for action in ("void", "mark_uncollectible", "retry", "send", "credit_note"):
        response = await post_form(
            client,
            f"/console/invoices/{mine['id']}",
            f"/console/invoices/{theirs['id']}/{action}",
            amount="1.00",
        )
        assert response.status_code == 404, action
    assert (await other_api.get(f"/v1/invoices/{theirs['id']}")).json()["status"] == "open"
    for name in ("invoices", "invoice_lines", "payments", "refunds", "credit_notes"):
        export = await client.get(f"/console/exports/{name}.csv")
        assert export.status_code == 200
        assert theirs["id"] not in export.text and "secret@b.example" not in export.text
    assert mine["id"] in (await client.get("/console/exports/invoices.csv")).text
    report = await client.get("/console/reports/revenue")
    assert report.status_code == 200 and "77.77" not in report.text
    assert await _audit(services, theirs["id"]) == []
