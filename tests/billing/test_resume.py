"""Pause and resume on test clocks through the HTTP API (issue 12 item 1; docs/billing.md "Pause and resume").

Every expected amount is written by hand from the dates: a monthly plan of 31.00 on a calendar starting on
January 1 costs 1.00 a day in January (31 days); February has 28 days, March 31. The customer is in UTC, so
period boundaries are midnights UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import configure_gateways
from tests.billing.test_usage_billing import Metered, lines_of, qty
from tests.billing.world import Billing, at

JAN1 = datetime(2027, 1, 1, tzinfo=UTC)
FEB1 = datetime(2027, 2, 1, tzinfo=UTC)
GOOD = "4242424242424242"


def day(month: int, day_: int, hour: int = 0) -> datetime:
    return datetime(2027, month, day_, hour, tzinfo=UTC)


def figures(invoices: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(period start date, period end date, total) of each invoice, oldest first."""
    return [
        (at(i["period_start"]).date().isoformat(), at(i["period_end"]).date().isoformat(), i["total"])
        for i in invoices
    ]


async def resume(world: Billing, sub: str, **body: Any) -> dict[str, Any]:
    return await world.post(f"/v1/subscriptions/{sub}/resume", body)


async def test_scenario_resume_inside_a_paid_period_never_bills_the_paid_time_twice(
    api: httpx.AsyncClient, services: Services
) -> None:
    """The defect of issue 12: paid Jan 1 – Feb 1, paused Jan 10, resumed Jan 20. The resume charged a new full
    period from Jan 20, so Jan 20 – Feb 1 was paid twice. Now nothing is billed at the resume and the next
    renewal is Feb 1, as before the pause; the card is charged once per period."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(JAN1)
    customer = await world.customer(currency="USD")
    card = await world.post(
        "/v1/payment_methods",
        {"customer": customer, "card": {"number": GOOD, "exp_month": 12, "exp_year": 2040}},
    )
    await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": card["id"]})
    sub = await world.subscribe(
        customer, await world.plan(3100), collection_method="charge_automatically", days_until_due=None
    )
    assert sub["status"] == "active"

    await world.advance(day(1, 10))
    assert (await world.post(f"/v1/subscriptions/{sub['id']}/pause"))["status"] == "paused"
    await world.advance(day(1, 20))
    resumed = await resume(world, sub["id"])
    assert resumed["status"] == "active"
    assert (resumed["current_period_start"], resumed["current_period_end"]) == (
        "2027-01-01T00:00:00Z",
        "2027-02-01T00:00:00Z",
    )
    assert resumed["latest_invoice"] == sub["latest_invoice"]
    assert figures(await world.invoices(sub["id"])) == [("2027-01-01", "2027-02-01", 3100)]

    await world.advance(day(3, 1, 1))
    assert figures(await world.invoices(sub["id"])) == [
        ("2027-01-01", "2027-02-01", 3100),
        ("2027-02-01", "2027-03-01", 3100),
        ("2027-03-01", "2027-04-01", 3100),
    ]
    payments = (await world.get("/v1/payments", customer=customer, limit=100))["data"]
    assert sorted((p["status"], p["amount"]) for p in payments) == [("succeeded", 3100)] * 3


async def test_resume_now_credits_the_unused_paid_time_on_the_resume_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(JAN1)
    sub = await world.subscribe(await world.customer(), await world.plan(3100))
    await world.advance(day(1, 10))
    await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    await world.advance(day(1, 20))
    resumed = await resume(world, sub["id"], billing_cycle_anchor="now")
    assert (resumed["status"], resumed["current_period_start"], resumed["current_period_end"]) == (
        "active",
        "2027-01-20T00:00:00Z",
        "2027-02-20T00:00:00Z",
    )
    [_, resume_invoice] = await world.invoices(sub["id"])
    # Jan 20 – Feb 1 is 12 of January's 31 days: 12.00 of the 31.00 paid comes back; Jan 20 – Feb 20 in full.
    assert [(line["type"], line["amount"]) for line in resume_invoice["lines"]] == [
        ("proration", -1200),
        ("subscription", 3100),
    ]
    assert resume_invoice["total"] == 1900
    credit = resume_invoice["lines"][0]["period"]
    assert (credit["start"], credit["end"]) == ("2027-01-20T00:00:00Z", "2027-02-01T00:00:00Z")
    await world.advance(day(2, 20, 1))
    assert figures(await world.invoices(sub["id"]))[-1] == ("2027-02-20", "2027-03-20", 3100)


async def test_resume_now_without_prorations_inside_a_paid_period_is_refused(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(JAN1)
    sub = await world.subscribe(await world.customer(), await world.plan(3100))
    await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    refused = await api.post(
        f"/v1/subscriptions/{sub['id']}/resume",
        json={"billing_cycle_anchor": "now", "proration_behavior": "none"},
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "proration_behavior"
    assert "create_prorations" in error["message"]
    assert (await world.subscription(sub["id"]))["status"] == "paused"
    unknown = await api.post(f"/v1/subscriptions/{sub['id']}/resume", json={"billing_cycle_anchor": "later"})
    assert unknown.status_code == 400


async def test_resume_after_the_paid_period_bills_the_rest_of_the_current_period_of_the_same_calendar(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(JAN1)
    plan = await world.plan(3100)
    kept, restarted = (
        await world.subscribe(await world.customer(), plan),
        await world.subscribe(await world.customer(), plan),
    )
    await world.advance(day(1, 10))
    for sub in (kept, restarted):
        await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    await world.advance(day(3, 15))
    # Unchanged calendar: Mar 15 – Apr 1 is 17 of March's 31 days, 17.00; nothing for February (paused).
    await resume(world, kept["id"])
    # A new cycle from the resume day: a full period, nothing to credit (the paid period is over).
    await resume(world, restarted["id"], billing_cycle_anchor="now", proration_behavior="none")
    await world.advance(day(4, 15, 1))
    assert figures(await world.invoices(kept["id"])) == [
        ("2027-01-01", "2027-02-01", 3100),
        ("2027-03-15", "2027-04-01", 1700),
        ("2027-04-01", "2027-05-01", 3100),
    ]
    assert figures(await world.invoices(restarted["id"])) == [
        ("2027-01-01", "2027-02-01", 3100),
        ("2027-03-15", "2027-04-15", 3100),
        ("2027-04-15", "2027-05-15", 3100),
    ]


async def test_pausing_and_resuming_in_a_trial_keeps_the_trial(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(JAN1)
    plan = await world.plan(3100)
    kept = await world.subscribe(await world.customer(), plan, trial_period_days=14)
    late = await world.subscribe(await world.customer(), plan, trial_period_days=14)
    assert kept["trial_end"] == "2027-01-15T00:00:00Z"
    await world.advance(day(1, 5))
    for sub in (kept, late):
        await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    await world.advance(day(1, 8))
    resumed = await resume(world, kept["id"])
    assert (resumed["status"], resumed["trial_end"], resumed["current_period_end"]) == (
        "trialing",
        "2027-01-15T00:00:00Z",
        "2027-01-15T00:00:00Z",
    )
    assert await world.invoices(kept["id"]) == []
    # The trial ended while `late` was paused: it resumes on the calendar the trial end anchors,
    # Jan 20 – Feb 15 being 26 of that period's 31 days.
    await world.advance(day(1, 20))
    resumed_late = await resume(world, late["id"])
    assert (resumed_late["status"], resumed_late["trial_end"]) == ("active", "2027-01-15T00:00:00Z")
    await world.advance(day(2, 15, 1))
    assert figures(await world.invoices(kept["id"])) == [
        ("2027-01-15", "2027-02-15", 3100),
        ("2027-02-15", "2027-03-15", 3100),
    ]
    assert (await world.subscription(kept["id"]))["status"] == "active"
    assert figures(await world.invoices(late["id"])) == [
        ("2027-01-20", "2027-02-15", 2600),
        ("2027-02-15", "2027-03-15", 3100),
    ]


async def test_a_cancel_at_period_end_still_ends_a_paused_subscription_at_the_period_end(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(JAN1)
    sub = await world.subscribe(await world.customer(), await world.plan(3100))
    await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    await world.advance(day(2, 1, 1))
    ended = await world.subscription(sub["id"])
    assert (ended["status"], ended["ended_at"]) == ("canceled", "2027-02-01T00:00:00Z")
    assert len(await world.invoices(sub["id"])) == 1


async def test_a_period_resumed_on_its_calendar_bills_its_usage_whole_at_its_renewal(
    api: httpx.AsyncClient, services: Services
) -> None:
    """Nothing is invoiced at a resume inside the paid period, usage included: the period's usage is billed as
    one at its renewal (two windows would each get the plan's free units and tiers)."""
    world = Metered(api, services)
    await world.start(JAN1)
    calls = await world.meter("count")
    customer = await world.customer()
    plan = await world.metered_plan(
        3100, {"meter": calls, "model": "per_unit", "unit_amount": 25, "free_units": 2}
    )
    sub = await world.subscribe(customer, plan)
    await world.advance(day(1, 10))
    await world.count(customer, calls, day(1, 3), day(1, 4))
    await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    await world.advance(day(1, 20))
    resumed = await resume(world, sub["id"])
    assert len(await world.invoices(sub["id"])) == 1
    assert resumed["latest_invoice"] == sub["latest_invoice"]
    await world.advance(day(1, 25))
    await world.count(customer, calls, day(1, 22), day(1, 23), day(1, 24))
    await world.advance(FEB1 + timedelta(hours=2))
    renewal = (await world.invoices(sub["id"]))[-1]
    [usage] = lines_of(renewal, "usage")
    # Five calls in January, the first two free once: 3 × 0.25.
    assert (qty(usage), usage["amount"]) == ("5", 75)
    assert (usage["period"]["start"], usage["period"]["end"]) == (
        "2027-01-01T00:00:00Z",
        "2027-02-01T00:00:00Z",
    )
    assert renewal["total"] == 3100 + 75
