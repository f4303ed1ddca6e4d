"""Credit notes and the customer balance ledger through the HTTP API (SPEC §4, §5): pre-payment credit on open
invoices, refund / balance / out-of-band splits on paid ones, bounds that hold under concurrency, gap-free numbers,
and a ledger that always adds up to the balance."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from billing.invoices.models import CustomerBalanceTransaction
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import configure_gateways, customer_with_card
from tests.billing.world import Billing


async def customer(api: httpx.AsyncClient, **fields: object) -> str:
    response = await api.post("/v1/customers", json={"currency": "USD", **fields})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def open_invoice(api: httpx.AsyncClient, customer_id: str, *amounts: int) -> dict[str, Any]:
    lines = [{"description": f"Item {i}", "amount": amount} for i, amount in enumerate(amounts)]
    created = await api.post(
        "/v1/invoices",
        json={
            "customer": customer_id,
            "lines": lines,
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
    )
    assert created.status_code == 200, created.text
    finalized = await api.post(f"/v1/invoices/{created.json()['id']}/finalize")
    assert finalized.status_code == 200, finalized.text
    body: dict[str, Any] = finalized.json()
    return body


async def paid_out_of_band(api: httpx.AsyncClient, customer_id: str, amount: int) -> dict[str, Any]:
    invoice = await open_invoice(api, customer_id, amount)
    if invoice["status"] == "paid":  # the customer's balance covered it at finalization
        return invoice
    paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={"paid_out_of_band": True})
    assert paid.status_code == 200, paid.text
    body: dict[str, Any] = paid.json()
    return body


async def paid_by_card(api: httpx.AsyncClient, amount: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An invoice paid with the sandbox's always-succeeding test card, through POST /v1/invoices/{id}/pay (the
    same collection path a renewal takes: collect_payment with the invoice as purpose)."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    cus, _ = await customer_with_card(api, "4242424242424242")
    await api.patch(f"/v1/customers/{cus['id']}", json={"currency": "USD"})
    invoice = await open_invoice(api, cus["id"], amount)
    paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid", (
        await api.get("/v1/payments", params={"invoice": invoice["id"]})
    ).text
    [payment] = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert payment["status"] == "succeeded" and payment["amount"] == amount
    body: dict[str, Any] = paid.json()
    return body, payment


async def credit(api: httpx.AsyncClient, invoice_id: str, **body: Any) -> httpx.Response:
    return await api.post("/v1/credit_notes", json={"invoice": invoice_id, **body})


async def get(api: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def event_types(api: httpx.AsyncClient, object_id: str) -> list[str]:
    return [e["type"] for e in (await get(api, f"/v1/events?object_id={object_id}&limit=100"))["data"]]


async def test_a_credit_note_on_an_open_invoice_reduces_what_is_owed_and_paying_it_off_marks_it_paid(
    api: httpx.AsyncClient,
) -> None:
    cus = await customer(api)
    invoice = await open_invoice(api, cus, 3000, 2000)
    first = await credit(api, invoice["id"], amount=2000, reason="order_change", memo="Two seats fewer")
    assert first.status_code == 200, first.text
    note = first.json()
    assert note["number"] == f"{invoice['number']}-CN-01"
    assert (note["type"], note["status"], note["amount"], note["pre_payment_amount"]) == (
        "pre_payment",
        "issued",
        2000,
        2000,
    )
    assert (note["refund"], note["customer_balance_transaction"], note["lines"]) == (None, None, [])
    after = await get(api, f"/v1/invoices/{invoice['id']}")
    # The figures stay as finalized; what is owed moved to "settled by credit".
    assert (after["total"], after["amount_due"], after["amount_remaining"], after["amount_paid"]) == (
        5000,
        5000,
        3000,
        2000,
    )
    assert (after["pre_payment_credit_notes_amount"], after["status"]) == (2000, "open")
    assert await event_types(api, note["id"]) == ["credit_note.created"]
    assert (await event_types(api, invoice["id"]))[0] == "invoice.updated"

    # Crediting a line of the invoice, up to what remains: nothing is owed any more, so the invoice is paid.
    line = invoice["lines"][0]
    rest = await credit(api, invoice["id"], lines=[{"invoice_line": line["id"], "amount": 3000}])
    assert rest.status_code == 200, rest.text
    assert rest.json()["number"] == f"{invoice['number']}-CN-02"
    assert rest.json()["lines"][0]["description"] == line["description"]
    paid = await get(api, f"/v1/invoices/{invoice['id']}")
    assert (paid["status"], paid["amount_remaining"], paid["amount_paid"], paid["paid_out_of_band"]) == (
        "paid",
        0,
        5000,
        False,
    )
    assert (await event_types(api, invoice["id"]))[0] == "invoice.paid"
    # Nothing was charged and the balance never moved.
    assert (await get(api, "/v1/payments?invoice=" + invoice["id"]))["data"] == []
    assert (await get(api, f"/v1/customers/{cus}"))["balance"] == 0


async def test_voiding_a_pre_payment_credit_note_makes_its_amount_owed_again(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    invoice = await open_invoice(api, cus, 1000)
    note = (await credit(api, invoice["id"], amount=400)).json()
    voided = await api.post(f"/v1/credit_notes/{note['id']}/void")
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["voided_at"] is not None) == ("void", True)
    after = await get(api, f"/v1/invoices/{invoice['id']}")
    assert (after["amount_remaining"], after["amount_paid"], after["pre_payment_credit_notes_amount"]) == (
        1000,
        0,
        0,
    )
    assert await event_types(api, note["id"]) == ["credit_note.voided", "credit_note.created"]
    again = await api.post(f"/v1/credit_notes/{note['id']}/void")
    assert again.status_code == 409
    # A void note no longer counts: the whole amount can be credited again, with the next number.
    full = (await credit(api, invoice["id"], amount=1000)).json()
    assert full["number"] == f"{invoice['number']}-CN-02"
    # The invoice is paid now: the note that settled it is final.
    refused = await api.post(f"/v1/credit_notes/{full['id']}/void")
    assert refused.status_code == 409
    assert "paid" in refused.json()["error"]["message"]


async def test_a_credit_note_on_a_card_paid_invoice_splits_refund_balance_and_out_of_band(
    api: httpx.AsyncClient,
) -> None:
    invoice, payment = await paid_by_card(api, 10000)
    cus = invoice["customer"]
    response = await credit(
        api,
        invoice["id"],
        amount=6000,
        refund_amount=3000,
        credit_amount=2000,
        out_of_band_amount=1000,
        reason="product_unsatisfactory",
    )
    assert response.status_code == 200, response.text
    note = response.json()
    assert (note["type"], note["post_payment_amount"], note["pre_payment_amount"]) == (
        "post_payment",
        6000,
        0,
    )

    # The refund went through the gateway that took the payment, and is listed with it.
    [refund] = (await get(api, f"/v1/refunds?payment={payment['id']}"))["data"]
    assert (refund["id"], refund["amount"], refund["status"], refund["reason"]) == (
        note["refund"],
        3000,
        "succeeded",
        "requested_by_customer",
    )
    assert (await get(api, f"/v1/payments/{payment['id']}"))["amount_refunded"] == 3000

    # The balance credit is one ledger entry, named by the note.
    assert (await get(api, f"/v1/customers/{cus}"))["balance"] == -2000
    [entry] = (await get(api, f"/v1/customers/{cus}/balance_transactions"))["data"]
    assert (entry["id"], entry["type"], entry["amount"], entry["ending_balance"], entry["credit_note"]) == (
        note["customer_balance_transaction"],
        "credit_note",
        -2000,
        -2000,
        note["id"],
    )
    after = await get(api, f"/v1/invoices/{invoice['id']}")
    assert (after["status"], after["amount_paid"], after["post_payment_credit_notes_amount"]) == (
        "paid",
        10000,
        6000,
    )
    assert "customer.updated" in await event_types(api, cus)

    # The next invoice consumes the credit.
    following = await open_invoice(api, cus, 5000)
    assert (following["starting_balance"], following["amount_due"], following["ending_balance"]) == (
        -2000,
        3000,
        0,
    )
    assert (await get(api, f"/v1/customers/{cus}"))["balance"] == 0

    # What is left to give back: 4000 of the total, of which 7000 could still be refunded to the card.
    over = await credit(api, invoice["id"], amount=4001, credit_amount=4001)
    assert over.status_code == 400
    assert over.json()["error"]["param"] == "amount"
    rest = await credit(api, invoice["id"], amount=4000, refund_amount=4000)
    assert rest.status_code == 200, rest.text
    assert (await get(api, f"/v1/payments/{payment['id']}"))["amount_refunded"] == 7000


async def test_a_paid_invoice_credit_goes_to_the_balance_unless_told_otherwise(
    api: httpx.AsyncClient,
) -> None:
    cus = await customer(api)
    invoice = await paid_out_of_band(api, cus, 2500)
    note = (await credit(api, invoice["id"], amount=500)).json()
    assert (note["credit_amount"], note["refund_amount"], note["out_of_band_amount"]) == (500, 0, 0)
    assert (await get(api, f"/v1/customers/{cus}"))["balance"] == -500


async def test_bounds_are_refused_with_the_parameter_at_fault(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    invoice = await open_invoice(api, cus, 1000)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"amount": 1001}, 400, "amount"),
        ({"amount": 100, "refund_amount": 100}, 400, "refund_amount"),
        ({"amount": 100, "lines": [{"amount": 100}]}, 400, "amount"),
        ({}, 400, "amount"),
        ({"lines": [{"amount": 1001}]}, 400, "lines"),
        (
            {"lines": [{"invoice_line": "il_000000000000000000000000", "amount": 1}]},
            400,
            "lines[0].invoice_line",
        ),
        ({"lines": [{"invoice_line": invoice["lines"][0]["id"], "amount": 1001}]}, 400, "lines[0].amount"),
        ({"amount": 0}, 400, "amount"),
        ({"amount": 10, "reason": "bored"}, 400, "reason"),
    ]
    for body, status, param in cases:
        response = await credit(api, invoice["id"], **body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["param"] == param, (body, response.text)

    draft = await api.post(
        "/v1/invoices", json={"customer": cus, "lines": [{"description": "d", "amount": 5}]}
    )
    refused = await credit(api, draft.json()["id"], amount=1)
    assert (refused.status_code, refused.json()["error"]["param"]) == (409, "invoice")

    # Paid out of band: there is no card payment to refund to.
    paid = await paid_out_of_band(api, cus, 800)
    no_card = await credit(api, paid["id"], amount=300, refund_amount=300)
    assert no_card.status_code == 400
    assert (no_card.json()["error"]["code"], no_card.json()["error"]["param"]) == (
        "no_payment_to_refund",
        "refund_amount",
    )
    mismatch = await credit(api, paid["id"], amount=300, credit_amount=100, out_of_band_amount=100)
    assert (mismatch.status_code, mismatch.json()["error"]["param"]) == (400, "credit_amount")
    # And nothing of the refused attempts was kept.
    assert (await get(api, f"/v1/credit_notes?invoice={invoice['id']}"))["data"] == []
    assert (await get(api, f"/v1/invoices/{invoice['id']}"))["amount_remaining"] == 1000


async def test_a_refund_never_exceeds_what_is_left_on_the_payment(api: httpx.AsyncClient) -> None:
    invoice, payment = await paid_by_card(api, 5000)
    direct = await api.post("/v1/refunds", json={"payment": payment["id"], "amount": 4000})
    assert direct.status_code == 200, direct.text
    too_much = await credit(api, invoice["id"], amount=2000, refund_amount=2000)
    assert too_much.status_code == 400
    assert too_much.json()["error"]["param"] == "refund_amount"
    split = await credit(api, invoice["id"], amount=2000, refund_amount=1000, credit_amount=1000)
    assert split.status_code == 200, split.text
    refunds = (await get(api, f"/v1/refunds?payment={payment['id']}"))["data"]
    assert sum(r["amount"] for r in refunds) == 5000 == payment["amount"]


async def test_a_retried_credit_note_request_never_refunds_twice(api: httpx.AsyncClient) -> None:
    invoice, payment = await paid_by_card(api, 3000)
    headers = {"Idempotency-Key": f"cn-{invoice['id']}"}
    body = {"invoice": invoice["id"], "amount": 1000, "refund_amount": 1000}
    first = await api.post("/v1/credit_notes", json=body, headers=headers)
    second = await api.post("/v1/credit_notes", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert len((await get(api, f"/v1/refunds?payment={payment['id']}"))["data"]) == 1


async def test_credit_notes_list_and_filter_by_invoice_and_customer(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    one = await open_invoice(api, cus, 1000)
    two = await open_invoice(api, cus, 1000)
    a = (await credit(api, one["id"], amount=100)).json()
    b = (await credit(api, two["id"], amount=200)).json()
    c = (await credit(api, one["id"], amount=300)).json()
    assert [n["id"] for n in (await get(api, f"/v1/credit_notes?invoice={one['id']}"))["data"]] == [
        c["id"],
        a["id"],
    ]
    by_customer = await get(api, f"/v1/credit_notes?customer={cus}&limit=2")
    assert ([n["id"] for n in by_customer["data"]], by_customer["has_more"]) == ([c["id"], b["id"]], True)
    rest = await get(api, f"/v1/credit_notes?customer={cus}&starting_after={b['id']}")
    assert [n["id"] for n in rest["data"]] == [a["id"]]
    assert (await get(api, f"/v1/credit_notes/{b['id']}")) == b


async def test_concurrent_credit_notes_on_one_invoice_never_exceed_what_it_owes(
    api: httpx.AsyncClient,
) -> None:
    cus = await customer(api)
    invoice = await open_invoice(api, cus, 1000)
    results = await asyncio.gather(*[credit(api, invoice["id"], amount=300) for _ in range(8)])
    ok = [r.json() for r in results if r.status_code == 200]
    assert len(ok) == 3
    assert all(r.status_code == 400 for r in results if r.status_code != 200)
    assert sorted(n["number"] for n in ok) == [f"{invoice['number']}-CN-0{i}" for i in (1, 2, 3)]
    after = await get(api, f"/v1/invoices/{invoice['id']}")
    assert (after["amount_remaining"], after["pre_payment_credit_notes_amount"]) == (100, 900)


async def test_concurrent_refunding_credit_notes_never_exceed_the_payment(api: httpx.AsyncClient) -> None:
    invoice, payment = await paid_by_card(api, 1000)
    results = await asyncio.gather(
        *[credit(api, invoice["id"], amount=400, refund_amount=400) for _ in range(5)]
    )
    assert sorted(r.status_code for r in results) == [200, 200, 400, 400, 400]
    refunds = (await get(api, f"/v1/refunds?payment={payment['id']}"))["data"]
    assert sorted(r["amount"] for r in refunds) == [400, 400]
    assert (await get(api, f"/v1/payments/{payment['id']}"))["amount_refunded"] == 800


async def test_the_database_refuses_to_change_an_issued_credit_note(
    api: httpx.AsyncClient, services: Services
) -> None:
    cus = await customer(api)
    invoice = await open_invoice(api, cus, 1000)
    note = (await credit(api, invoice["id"], amount=100)).json()
    for statement in (
        "UPDATE credit_notes SET amount = 1 WHERE id = :id",
        "DELETE FROM credit_notes WHERE id = :id",
        "UPDATE invoices SET pre_payment_credit_notes_amount = 5000 WHERE id = :invoice",
    ):
        with pytest.raises(DBAPIError):
            async with services.sessions() as session, session.begin():
                await session.execute(text(statement), {"id": note["id"], "invoice": invoice["id"]})


async def test_a_balance_can_be_adjusted_by_hand_and_the_ledger_is_readable(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    credit_entry = await api.post(
        f"/v1/customers/{cus}/balance_transactions",
        json={"amount": -1500, "currency": "USD", "description": "Goodwill"},
    )
    assert credit_entry.status_code == 200, credit_entry.text
    assert (credit_entry.json()["type"], credit_entry.json()["ending_balance"]) == ("adjustment", -1500)
    debit = await api.post(
        f"/v1/customers/{cus}/balance_transactions", json={"amount": 400, "currency": "USD"}
    )
    assert debit.json()["ending_balance"] == -1100
    assert (await get(api, f"/v1/customers/{cus}"))["balance"] == -1100
    ledger = await get(api, f"/v1/customers/{cus}/balance_transactions?limit=1")
    assert ([e["id"] for e in ledger["data"]], ledger["has_more"]) == ([debit.json()["id"]], True)
    wrong = await api.post(f"/v1/customers/{cus}/balance_transactions", json={"amount": 1, "currency": "EUR"})
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "currency")
    zero = await api.post(f"/v1/customers/{cus}/balance_transactions", json={"amount": 0, "currency": "USD"})
    assert (zero.status_code, zero.json()["error"]["param"]) == (400, "amount")
    assert (await event_types(api, cus))[:2] == ["customer.updated", "customer.updated"]


Operation = tuple[str, int]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("adjust"), st.integers(-5000, 5000).filter(bool)),
        st.tuples(st.just("invoice"), st.integers(1, 5000)),
        st.tuples(st.just("credit_paid"), st.integers(1, 5000)),
        st.tuples(st.just("void_last"), st.just(0)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
async def test_the_ledger_always_adds_up_to_the_balance(
    api: httpx.AsyncClient, services: Services, operations: list[Operation]
) -> None:
    cus = await customer(api)
    open_invoices: list[str] = []
    for kind, amount in operations:
        if kind == "adjust":
            response = await api.post(
                f"/v1/customers/{cus}/balance_transactions", json={"amount": amount, "currency": "USD"}
            )
        elif kind == "invoice":
            open_invoices.append((await open_invoice(api, cus, amount))["id"])
            continue
        elif kind == "credit_paid":
            paid = await paid_out_of_band(api, cus, amount)
            response = await credit(api, paid["id"], amount=max(1, amount // 2))
        else:
            if not open_invoices:
                continue
            response = await api.post(f"/v1/invoices/{open_invoices.pop()}/void")
            if response.status_code == 409:  # covered by the balance at finalization: already paid
                continue
        assert response.status_code == 200, response.text
    balance = (await get(api, f"/v1/customers/{cus}"))["balance"]
    async with services.sessions() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(CustomerBalanceTransaction.amount), 0)).where(
                CustomerBalanceTransaction.customer_id == cus
            )
        )
    assert total == balance
    # And each entry's ending balance is the running sum, oldest first.
    entries = (await get(api, f"/v1/customers/{cus}/balance_transactions?limit=100"))["data"][::-1]
    running = 0
    for entry in entries:
        running += entry["amount"]
        assert entry["ending_balance"] == running


async def test_another_merchants_invoice_cannot_be_credited_nor_its_notes_listed(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    cus = await customer(api)
    invoice = await open_invoice(api, cus, 1000)
    note = (await credit(api, invoice["id"], amount=100)).json()
    theirs = await credit(other_api, invoice["id"], amount=100)
    assert (theirs.status_code, theirs.json()["error"]["param"]) == (404, "invoice")
    for query in (f"invoice={invoice['id']}", f"customer={cus}", "limit=100"):
        assert note["id"] not in (await other_api.get(f"/v1/credit_notes?{query}")).text
    assert (await get(api, f"/v1/invoices/{invoice['id']}"))["amount_remaining"] == 900


async def test_a_refund_the_gateway_refuses_issues_no_credit_note(
    api: httpx.AsyncClient, services: Services
) -> None:
    invoice, payment = await paid_by_card(api, 2000)
    # The charge was refunded from the processor's own dashboard, behind the engine's back: the gateway refuses.
    charge = await services.gateways.in_process_app.state.ledger.charge(payment["id"])
    assert charge is not None
    assert await services.gateways.in_process_app.state.ledger.take_refundable(
        charge, charge.amount - charge.amount_refunded
    )
    refused = await credit(api, invoice["id"], amount=1500, refund_amount=1000, credit_amount=500)
    assert refused.status_code == 422, refused.text
    assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (
        "refund_failed",
        "refund_amount",
    )
    [refund] = (await get(api, f"/v1/refunds?payment={payment['id']}"))["data"]
    assert (refund["status"], refund["failure_code"]) == ("failed", "amount_exceeds_charge")
    assert refund["id"] in refused.json()["error"]["message"]
    assert (await get(api, f"/v1/credit_notes?invoice={invoice['id']}"))["data"] == []
    assert (await get(api, f"/v1/invoices/{invoice['id']}"))["post_payment_credit_notes_amount"] == 0
    assert (await get(api, f"/v1/customers/{invoice['customer']}"))["balance"] == 0


async def test_a_credit_note_shows_the_tax_it_holds_rate_by_rate(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    state = await world.post("/v1/tax_rates", {"display_name": "State tax", "percentage": "6.25"})
    city = await world.post("/v1/tax_rates", {"display_name": "City tax", "percentage": "2.625"})
    sub = await world.subscribe(
        await world.customer(), await world.plan(10000), tax_rates=[state["id"], city["id"]]
    )
    [invoice] = await world.invoices(sub["id"])
    assert (invoice["total"], invoice["tax"]) == (10888, 888)  # 6.25 + 2.63 on 100.00
    first = await credit(api, invoice["id"], amount=5444)
    assert first.status_code == 200, first.text
    assert [
        (t["tax_rate"], t["display_name"], t["percentage"], t["inclusive"], t["amount"])
        for t in first.json()["tax_amounts"]
    ] == [
        (state["id"], "State tax", "6.25", False, 313),
        (city["id"], "City tax", "2.625", False, 132),
    ]
    assert first.json()["total_excluding_tax"] == 5444 - 313 - 132
    second = (await credit(api, invoice["id"], amount=5444)).json()
    # Together the two notes give back exactly the invoice's 6.25 and 2.63.
    assert [t["amount"] for t in second["tax_amounts"]] == [312, 131]
    assert second["total_excluding_tax"] == 5444 - 312 - 131
    assert (await get(api, f"/v1/credit_notes/{second['id']}"))["tax_amounts"] == second["tax_amounts"]


async def test_an_inclusive_vat_credit_note_holds_its_share_and_an_untaxed_one_none(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    vat = await world.post("/v1/tax_rates", {"display_name": "VAT", "percentage": "20", "inclusive": True})
    sub = await world.subscribe(await world.customer(), await world.plan(1200), tax_rates=[vat["id"]])
    [invoice] = await world.invoices(sub["id"])
    note = (await credit(api, invoice["id"], amount=600)).json()
    assert [(t["inclusive"], t["amount"]) for t in note["tax_amounts"]] == [(True, 100)]
    assert note["total_excluding_tax"] == 500
    plain = await open_invoice(api, await customer(api), 700)
    untaxed = (await credit(api, plain["id"], amount=700)).json()
    assert (untaxed["tax_amounts"], untaxed["total_excluding_tax"]) == ([], 700)
