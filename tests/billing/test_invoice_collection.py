"""Invoices meet payments: the first invoice of a subscription is charged within the create request, renewals
are charged by the workers, and a decline moves the subscription as SPEC §4 and §6 say."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import configure_gateways, customer_with_card
from tests.billing.world import run_worker

GOOD = "4242424242424242"
DECLINES = "4000000000000341"  # attaches, every charge declined (soft)
T0 = datetime(2027, 3, 1, tzinfo=UTC)


async def plan(api: httpx.AsyncClient, amount: int = 2500, **fields: Any) -> str:
    body = {"code": "c" + secrets.token_hex(4), "name": "Team", "currency": "USD", "amount": amount, **fields}
    response = await api.post("/v1/plans", json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def on_clock(api: httpx.AsyncClient, customer_id: str) -> str:
    """Customers with cards are made without a clock by the helper; these tests need clock time."""
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": T0.isoformat()})).json()["id"]
    return clock


async def clock_customer_with_card(api: httpx.AsyncClient, number: str) -> tuple[str, str, str]:
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": T0.isoformat()})).json()["id"]
    customer = (await api.post("/v1/customers", json={"test_clock": clock, "currency": "USD"})).json()["id"]
    pm = await attach(api, customer, number)
    return clock, customer, pm


async def attach(api: httpx.AsyncClient, customer: str, number: str) -> str:
    created = await api.post(
        "/v1/payment_methods",
        json={
            "customer": customer,
            "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        },
    )
    assert created.status_code == 200, created.text
    pm = created.json()["id"]
    assert (
        await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
    ).status_code == 200
    return pm


async def advance(api: httpx.AsyncClient, services: Services, clock: str, to: datetime) -> None:
    assert (
        await api.post(f"/v1/test_clocks/{clock}/advance", json={"frozen_time": to.isoformat()})
    ).status_code == 200
    await run_worker(services)
    assert (await api.get(f"/v1/test_clocks/{clock}")).json()["status"] == "ready"


async def test_creating_a_subscription_charges_the_first_invoice_in_the_request(
    api: httpx.AsyncClient,
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer, _ = await customer_with_card(api, GOOD)
    response = await api.post("/v1/subscriptions", json={"customer": customer["id"], "plan": await plan(api)})
    assert response.status_code == 200, response.text
    sub = response.json()
    assert sub["status"] == "active"
    invoice = (await api.get(f"/v1/invoices/{sub['latest_invoice']}")).json()
    assert (invoice["status"], invoice["amount_paid"], invoice["attempt_count"]) == ("paid", 2500, 1)
    payments = (await api.get("/v1/payments", params={"customer": customer["id"]})).json()["data"]
    assert [(p["status"], p["amount"], p["invoice"]) for p in payments] == [
        ("succeeded", 2500, invoice["id"])
    ]


async def test_a_declined_first_charge_leaves_the_subscription_incomplete_until_paid(
    api: httpx.AsyncClient,
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer, _ = await customer_with_card(api, DECLINES)
    created = await api.post("/v1/subscriptions", json={"customer": customer["id"], "plan": await plan(api)})
    # The subscription exists (incomplete) whatever the card said: the request succeeded, the charge did not.
    assert created.status_code == 200, created.text
    sub = created.json()
    assert sub["status"] == "incomplete"
    invoice = (await api.get(f"/v1/invoices/{sub['latest_invoice']}")).json()
    assert (invoice["status"], invoice["attempt_count"]) == ("open", 1)
    failed = await api.get(
        "/v1/events", params={"object_id": invoice["id"], "type": "invoice.payment_failed"}
    )
    assert len(failed.json()["data"]) == 1
    # The customer adds a good card and pays: the subscription becomes active.
    await attach(api, customer["id"], GOOD)
    paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "active"


async def test_paying_with_a_declining_card_is_a_card_error_and_counts_an_attempt(
    api: httpx.AsyncClient,
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer, _ = await customer_with_card(api, DECLINES)
    invoice = (
        await api.post(
            "/v1/invoices",
            json={
                "customer": customer["id"],
                "currency": "USD",
                "lines": [{"description": "Setup", "amount": 900}],
            },
        )
    ).json()
    await api.post(f"/v1/invoices/{invoice['id']}/finalize")
    declined = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert declined.status_code == 402
    assert declined.json()["error"]["type"] == "card_error"
    after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (after["status"], after["attempt_count"], after["amount_remaining"]) == ("open", 1, 900)


async def test_without_a_payment_method_the_first_invoice_cannot_be_charged(api: httpx.AsyncClient) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer = (await api.post("/v1/customers", json={"currency": "USD"})).json()["id"]
    sub = (await api.post("/v1/subscriptions", json={"customer": customer, "plan": await plan(api)})).json()
    assert sub["status"] == "incomplete"
    failed = (
        await api.get(
            "/v1/events", params={"object_id": sub["latest_invoice"], "type": "invoice.payment_failed"}
        )
    ).json()["data"]
    assert failed[0]["data"]["object"]["last_payment_error"]["code"] == "payment_method_missing"


async def test_an_incomplete_subscription_expires_after_23_hours_and_its_invoice_is_voided(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    clock, customer, _ = await clock_customer_with_card(api, DECLINES)
    sub = (await api.post("/v1/subscriptions", json={"customer": customer, "plan": await plan(api)})).json()
    assert sub["status"] == "incomplete"
    await advance(api, services, clock, T0 + timedelta(hours=24))
    assert (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "incomplete_expired"
    assert (await api.get(f"/v1/invoices/{sub['latest_invoice']}")).json()["status"] == "void"


async def test_a_declined_renewal_makes_the_subscription_past_due(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    clock, customer, _ = await clock_customer_with_card(api, GOOD)
    sub = (await api.post("/v1/subscriptions", json={"customer": customer, "plan": await plan(api)})).json()
    assert sub["status"] == "active"
    await attach(api, customer, DECLINES)
    await advance(api, services, clock, datetime(2027, 4, 1, 1, tzinfo=UTC))
    after = (await api.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert after["status"] == "past_due"
    renewal = (await api.get(f"/v1/invoices/{after['latest_invoice']}")).json()
    assert (renewal["status"], renewal["attempt_count"]) == ("open", 1)
    past_due = await api.get("/v1/events", params={"object_id": sub["id"], "type": "subscription.past_due"})
    assert len(past_due.json()["data"]) == 1
    # Paying the open renewal brings it back.
    await attach(api, customer, GOOD)
    assert (await api.post(f"/v1/invoices/{renewal['id']}/pay", json={})).json()["status"] == "paid"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "active"


async def test_a_trial_converts_with_a_charge(api: httpx.AsyncClient, services: Services) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    clock, customer, _ = await clock_customer_with_card(api, GOOD)
    sub = (
        await api.post(
            "/v1/subscriptions", json={"customer": customer, "plan": await plan(api), "trial_period_days": 7}
        )
    ).json()
    assert sub["status"] == "trialing"
    assert sub["latest_invoice"] is None
    await advance(api, services, clock, T0 + timedelta(days=8))
    after = (await api.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert after["status"] == "active"
    assert (await api.get(f"/v1/invoices/{after['latest_invoice']}")).json()["status"] == "paid"


@pytest.mark.parametrize("how", ["add_a_card", "make_it_the_customers_default", "make_it_the_subscriptions"])
async def test_scenario_a_declined_first_charge_recovers_when_a_new_card_is_added_or_chosen(
    api: httpx.AsyncClient, services: Services, how: str
) -> None:
    """SPEC §6: a new payment method added or chosen retries the open invoice at once; for a subscription whose
    first charge was declined that is its first invoice, and paying it makes the subscription active."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    clock, customer, _ = await clock_customer_with_card(api, DECLINES)
    card = {"number": GOOD, "exp_month": 12, "exp_year": 2040, "cvc": "123"}

    async def add_good_card() -> str:
        added = await api.post("/v1/payment_methods", json={"customer": customer, "card": card})
        assert added.status_code == 200, added.text
        return str(added.json()["id"])

    # To choose a card, the customer has one on file already (not the default, which declines).
    good = None if how == "add_a_card" else await add_good_card()
    created = await api.post("/v1/subscriptions", json={"customer": customer, "plan": await plan(api, 2500)})
    assert created.status_code == 200, created.text
    sub = created.json()
    assert sub["status"] == "incomplete"
    if good is None:
        good = await add_good_card()
    elif how == "make_it_the_customers_default":
        chosen = await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": good})
        assert chosen.status_code == 200, chosen.text
    elif how == "make_it_the_subscriptions":
        chosen = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"default_payment_method": good})
        assert chosen.status_code == 200, chosen.text
    # The retry is due at once: the clock's next step (a worker's tick would run it too, see test_test_clocks).
    await advance(api, services, clock, T0 + timedelta(minutes=1))
    invoice = (await api.get(f"/v1/invoices/{sub['latest_invoice']}")).json()
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 2500)
    after = (await api.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert after["status"] == "active"
    payments = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert sorted((p["status"], p["amount"]) for p in payments) == [("failed", 2500), ("succeeded", 2500)]
    # Recovered for good: the 23-hour expiry no longer applies.
    await advance(api, services, clock, T0 + timedelta(days=2))
    assert (await api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "active"
    assert (await api.get(f"/v1/invoices/{invoice['id']}")).json()["status"] == "paid"
