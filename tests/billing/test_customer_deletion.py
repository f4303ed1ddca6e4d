"""Deleting a customer who still has live dependents (issue 12 item 2; docs/billing.md "Deleting a customer").

The customer's live subscriptions end in the deleting transaction with their pending work, as Stripe does; its
open invoices are written off (uncollectible: nothing can charge a deleted customer) and their dunning cases
close; nothing is left for a task or a test-clock advance to trip on."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from billing.notifications import card_expiry
from billing.scheduler.models import ScheduledTask
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import configure_gateways
from tests.billing.world import Billing

T0 = datetime(2027, 3, 1, 10, tzinfo=UTC)
GOOD = "4242424242424242"
SOFT = "4000000000000341"  # attaches, every charge declined card_declined (soft)


async def attach(world: Billing, customer: str, number: str) -> str:
    card = {"number": number, "exp_month": 12, "exp_year": 2040}
    pm = (await world.post("/v1/payment_methods", {"customer": customer, "card": card}))["id"]
    assert (
        await world.api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
    ).status_code == 200
    return str(pm)


async def pending_tasks(services: Services, clock: str) -> int:
    """The clock's pending work about its customers' objects (its daily card-expiry scan is the clock's own and
    ends by itself once no subscription there is live)."""
    async with services.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(ScheduledTask)
                .where(
                    ScheduledTask.test_clock_id == clock,
                    ScheduledTask.status == "pending",
                    ScheduledTask.kind != card_expiry.SCAN,
                )
            )
            or 0
        )


async def test_scenario_deleting_a_customer_with_live_dependents_ends_them_and_the_clock_still_advances(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(currency="USD", email="gone@example.com")
    await attach(world, customer, GOOD)
    plan = await world.plan(2500)
    charged = await world.subscribe(
        customer, plan, collection_method="charge_automatically", days_until_due=None
    )
    trialing = await world.subscribe(customer, plan, trial_period_days=60)
    invoiced = await world.subscribe(customer, plan, days_until_due=30)
    assert (charged["status"], trialing["status"], invoiced["status"]) == ("active", "trialing", "active")
    # The renewal of April 1 is declined: the subscription is past due, its invoice in dunning with a retry
    # planned for April 2.
    await attach(world, customer, SOFT)
    await world.advance(datetime(2027, 4, 1, 1, tzinfo=UTC))
    past_due = await world.subscription(charged["id"])
    assert past_due["status"] == "past_due"
    [case] = (await world.get("/v1/dunning/cases", customer=customer))["data"]
    assert case["state"] == "retrying"
    open_invoices = (await world.get("/v1/invoices", customer=customer, status="open", limit=100))["data"]
    assert len(open_invoices) == 3  # the declined renewal and the two send_invoice ones (March, April)
    assert await pending_tasks(services, world.clock) > 0

    deleted = await api.delete(f"/v1/customers/{customer}")
    assert deleted.status_code == 200, deleted.text
    assert (await api.get(f"/v1/customers/{customer}")).status_code == 404

    for sub in (charged, trialing, invoiced):
        ended = await world.subscription(sub["id"])
        assert (ended["status"], ended["ended_at"]) == ("canceled", "2027-04-01T01:00:00Z")
        # Canceling again is a conflict about the subscription, not a 404 about its customer.
        again = await api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={})
        assert again.status_code == 409, again.text
        assert "canceled" in again.json()["error"]["message"]
    for invoice in open_invoices:
        assert (await world.get(f"/v1/invoices/{invoice['id']}"))["status"] == "uncollectible"
    assert (await world.get(f"/v1/dunning/cases/{case['id']}"))["state"] == "voided"
    assert await pending_tasks(services, world.clock) == 0

    # Months later, nothing was renewed, retried or charged, and the clock is ready.
    payments_before = (await world.get("/v1/payments", customer=customer, limit=100))["data"]
    await world.advance(datetime(2027, 6, 15, tzinfo=UTC))
    invoices = (await world.get("/v1/invoices", customer=customer, limit=100))["data"]
    assert (
        len(invoices) == 4
    )  # March: the charged first invoice and the send_invoice one; April: both renewals
    assert (await world.get("/v1/payments", customer=customer, limit=100))["data"] == payments_before
    events = (await world.get("/v1/events", object_id=charged["id"], type="subscription.canceled"))["data"]
    assert len(events) == 1


async def test_deleting_a_test_clock_ends_its_customers_subscriptions(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(T0)
    sub = await world.subscribe(await world.customer(), await world.plan(2500))
    assert (await api.delete(f"/v1/test_clocks/{world.clock}")).status_code == 200
    ended = await world.subscription(sub["id"])
    assert ended["status"] == "canceled"
    [invoice] = await world.invoices(sub["id"])
    assert invoice["status"] == "uncollectible"
