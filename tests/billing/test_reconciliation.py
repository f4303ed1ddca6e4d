"""Reconciliation of a day against the card sandbox's settlement listing (SPEC §8): a payment the gateway never
settled, a settlement row the engine has no record of, and an amount that differs are each reported exactly, with
fees and net; the run is stored, its event written, and the daily task finds it done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from billing.db.engine import transaction
from billing.gateways.base import CardInstrument, ChargeRequest, Succeeded
from billing.ids import new_id
from billing.merchants.service import NewMerchant
from billing.payments.models import Payment
from billing.payments.service import collect_payment
from billing.reconciliation.service import reconcile_yesterday
from billing.services import Services
from billing.settings.service import gateway_connections
from billing.vault.cards import SecretPan
from tests.billing.payment_helpers import customer_with_card

GOOD_CARD = "4242424242424242"


def fee(amount: int) -> int:
    """The sandbox's fee: 2.9% + 30, half up."""
    return (amount * 29 + 500) // 1000 + 30


async def _pay(
    services: Services, merchant: NewMerchant, customer: dict[str, Any], purpose: str, amount: int
) -> Payment:
    payment = await collect_payment(
        services,
        merchant_id=merchant.id,
        customer_id=customer["id"],
        amount=amount,
        currency="USD",
        purpose=purpose,
    )
    assert payment.status == "succeeded"
    return payment


async def test_a_day_with_a_missing_payment_an_extra_row_and_an_amount_mismatch(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    await api.patch("/v1/settings", json={"gateways": [{"id": "sandbox", "type": "sandbox"}]})
    customer, _ = await customer_with_card(api, GOOD_CARD)
    a = await _pay(services, merchant, customer, "a", 1999)
    b = await _pay(services, merchant, customer, "b", 2500)
    c = await _pay(services, merchant, customer, "c", 3000)
    d = await _pay(services, merchant, customer, "d", 1200)
    refund = await api.post("/v1/refunds", json={"payment": a.id, "amount": 500})
    assert refund.status_code == 200 and refund.json()["status"] == "succeeded", refund.text
    # The gateway never settled d (gone from its ledger); the engine recorded b as 2400 (the gateway took 2500);
    # the gateway settled a charge of 700 the engine never made.
    await services.redis.hdel(f"{services.settings.redis_prefix}:sandbox:charges", d.id)
    async with transaction(services.sessions) as session:
        await session.execute(update(Payment).where(Payment.id == b.id).values(amount=2400))
        [connection] = await gateway_connections(session, merchant.id)
    extra_key = new_id("pay")
    card = CardInstrument(pan=SecretPan(GOOD_CARD), brand="visa", exp_month=12, exp_year=2040)
    extra = await services.gateways.gateway(connection).charge(
        ChargeRequest(idempotency_key=extra_key, amount=700, currency="USD", instrument=card)
    )
    assert isinstance(extra, Succeeded)

    today = datetime.now(UTC).date()
    answer = await api.get("/v1/reconciliation", params={"connection": "sandbox", "date": today.isoformat()})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["counts"] == {
        "matched": 3,
        "missing_in_engine": 1,
        "missing_in_settlement": 1,
        "amount_mismatch": 1,
    }
    by_status = {(r["status"], r["kind"], r["id"]) for r in run["rows"]}
    assert by_status == {
        ("matched", "charge", a.id),
        ("matched", "charge", c.id),
        ("matched", "refund", refund.json()["id"]),
        ("amount_mismatch", "charge", b.id),
        ("missing_in_engine", "charge", extra_key),
        ("missing_in_settlement", "charge", d.id),
    }
    [mismatch] = [r for r in run["rows"] if r["status"] == "amount_mismatch"]
    assert (mismatch["settlement_amount"], mismatch["engine_amount"]) == (2500, 2400)
    charges = 1999 + 2500 + 3000 + 700
    fees = fee(1999) + fee(2500) + fee(3000) + fee(700)
    assert fees == 88 + 103 + 117 + 50
    assert run["totals"] == [
        {"currency": "USD", "charges": charges, "refunds": 500, "fees": fees, "net": charges - 500 - fees}
    ]
    # The stored run is answered again (same id); the event carries the counts.
    again = (
        await api.get("/v1/reconciliation", params={"connection": "sandbox", "date": today.isoformat()})
    ).json()
    assert again["id"] == run["id"]
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    [completed] = [e for e in events if e["type"] == "reconciliation.completed"]
    assert completed["data"]["object"]["counts"] == run["counts"]
    # The daily task for the day after finds this day already run for this merchant, and stores no second run.
    await reconcile_yesterday(services, today=today + timedelta(days=1))
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    assert [e["type"] for e in events].count("reconciliation.completed") == 1


async def test_bad_parameters_are_refused_clearly(api: httpx.AsyncClient) -> None:
    unknown = await api.get("/v1/reconciliation", params={"connection": "nope", "date": "2027-01-01"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "connection"
    assert "settings.gateways" in unknown.json()["error"]["message"]
    bad_date = await api.get("/v1/reconciliation", params={"connection": "sandbox", "date": "yesterday"})
    assert bad_date.status_code == 400
    missing = await api.get("/v1/reconciliation", params={"connection": "sandbox"})
    assert missing.status_code == 400
    extra = await api.get(
        "/v1/reconciliation", params={"connection": "sandbox", "date": "2027-01-01", "day": "x"}
    )
    assert extra.status_code == 400
