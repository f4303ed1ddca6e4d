"""Subscription items through the HTTP API on test clocks (issue 17 item 1; Stripe's subscription items): a
subscription's plan is its first item, add-ons are more items on the same calendar and invoices, and each change
is prorated as a plan change is (docs/billing.md "Subscription items").

April 2027 has 30 days; every subscription starts on April 1 00:00 UTC, so a day is 1/30 of a period. The base
plan "Team" is 30.00 a month, the add-on "Extra storage" 10.00 a unit a month."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from billing.scheduler.models import ScheduledTask
from billing.services import Services
from billing.subscriptions.batch import load_inputs
from billing.subscriptions.service import RENEW
from tests.billing.world import Billing

APRIL = datetime(2027, 4, 1, tzinfo=UTC)
RENEWAL = datetime(2027, 5, 1, 1, tzinfo=UTC)


class Items(Billing):
    async def begin(self, **fields: Any) -> tuple[str, str, dict[str, Any]]:
        """On April 1: the plans Team and Extra storage, and a customer subscribed to Team."""
        await self.start(APRIL)
        team, storage = await self.plan(3000, name="Team"), await self.plan(1000, name="Extra storage")
        return team, storage, await self.subscribe(await self.customer(), team, **fields)

    async def add(self, sub: str, plan: str, **fields: Any) -> dict[str, Any]:
        return await self.post(f"/v1/subscriptions/{sub}/items", {"plan": plan, **fields})

    async def refused(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.api.request(method, path, json=body)
        assert response.status_code >= 400, response.text
        return {"status": response.status_code, **response.json()["error"]}

    async def lines(self, invoice: dict[str, Any]) -> list[tuple[str, str, int]]:
        return [(line["type"], line["description"], line["amount"]) for line in invoice["lines"]]


async def test_an_add_on_added_mid_period_is_prorated_onto_the_next_invoice_and_renews_as_its_own_line(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    team, storage, sub = await world.begin()
    assert sub["items"] == [
        {
            "id": "si_" + sub["id"].removeprefix("sub_"),
            "object": "subscription_item",
            "subscription": sub["id"],
            "plan": team,
            "quantity": 1,
            "created_at": "2027-04-01T00:00:00Z",
        }
    ]
    await world.advance(APRIL + timedelta(days=15))  # April 16 00:00: 15 of 30 days remain
    item = await world.add(sub["id"], storage, quantity=2)
    assert item["id"].startswith("si_") and item["id"] != sub["items"][0]["id"]
    assert (item["plan"], item["quantity"], item["created_at"]) == (storage, 2, "2027-04-16T00:00:00Z")
    shown = await world.subscription(sub["id"])
    assert [(i["plan"], i["quantity"]) for i in shown["items"]] == [(team, 1), (storage, 2)]
    assert (shown["plan"], shown["quantity"]) == (team, 1)  # the single-plan fields are unchanged
    listed = await world.get(f"/v1/subscriptions/{sub['id']}/items")
    assert [i["id"] for i in listed["data"]] == [i["id"] for i in shown["items"]]

    events = (await world.get("/v1/events", object_id=sub["id"], type="subscription.updated"))["data"]
    [updated] = [event for event in events if "items" in event["data"]["previous_attributes"]]
    assert updated["data"]["previous_attributes"] == {
        "items": [{"id": sub["items"][0]["id"], "plan": team, "quantity": 1}]
    }
    assert len(updated["data"]["object"]["items"]) == 2

    # 2 × 10.00 for the 15 remaining days of 30: 20.00 × 15/30 = 10.00, pending for the next invoice.
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    expected = [
        ("subscription", "1 × Team", 3000),
        ("subscription", "2 × Extra storage", 2000),
        ("proration", "Remaining time on 2 × Extra storage", 1000),
    ]
    assert await world.lines(upcoming) == expected
    assert upcoming["total"] == 6000  # 30.00 + 20.00 + 10.00
    assert len(await world.invoices(sub["id"])) == 1  # nothing invoiced at the change

    await world.advance(RENEWAL)
    renewal = (await world.invoices(sub["id"]))[-1]
    assert renewal["billing_reason"] == "subscription_cycle"
    assert await world.lines(renewal) == expected
    assert renewal["total"] == 6000
    [proration] = [line for line in renewal["lines"] if line["type"] == "proration"]
    assert (proration["period"]["start"], proration["period"]["end"]) == (
        "2027-04-16T00:00:00Z",
        "2027-05-01T00:00:00Z",
    )
    assert proration["details"]["fraction"] == "1/2"
    assert proration["details"]["subscription_item"] == item["id"]


async def test_a_renewal_with_two_items_bills_each_with_the_coupon_and_the_tax(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    coupon = await world.post("/v1/coupons", {"percent_off": "10", "duration": "forever"})
    tax = await world.post("/v1/tax_rates", {"display_name": "Sales tax", "percentage": "8.875"})
    _, storage, sub = await world.begin(coupon=coupon["id"], tax_rates=[tax["id"]])
    await world.add(sub["id"], storage, quantity=2, proration_behavior="none")
    assert len(await world.invoices(sub["id"])) == 1  # none: nothing billed for April's storage
    await world.advance(RENEWAL)
    renewal = (await world.invoices(sub["id"]))[-1]
    assert await world.lines(renewal) == [
        ("subscription", "1 × Team", 3000),
        ("subscription", "2 × Extra storage", 2000),
    ]
    # Subtotal 50.00; 10 % off = 5.00, spread 3.00 / 2.00; tax 8.875 % per line, half-up:
    # 27.00 × 8.875 % = 2.39625 → 2.40; 18.00 × 8.875 % = 1.5975 → 1.60; tax 4.00; total 50 − 5 + 4 = 49.00.
    assert (renewal["subtotal"], renewal["discount"], renewal["tax"], renewal["total"]) == (
        5000,
        500,
        400,
        4900,
    )


async def test_quantity_changes_prorate_the_difference_and_a_removal_credits_the_unused_time(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    team, storage, sub = await world.begin()
    item = await world.add(sub["id"], storage, quantity=2, proration_behavior="none")

    await world.advance(APRIL + timedelta(days=10))  # April 11: 20 of 30 days remain
    changed = await world.post(
        f"/v1/subscriptions/{sub['id']}/items/{item['id']}",
        {"quantity": 5, "proration_behavior": "always_invoice"},
    )
    assert changed["quantity"] == 5
    immediate = (await world.invoices(sub["id"]))[-1]
    assert immediate["billing_reason"] == "subscription_update"
    # 20.00 × 20/30 = 13.333… → −13.33 credited; 50.00 × 20/30 = 33.333… → 33.33 charged; 20.00 due now.
    assert await world.lines(immediate) == [
        ("proration", "Unused time on 2 × Extra storage", -1333),
        ("proration", "Remaining time on 5 × Extra storage", 3333),
    ]
    assert (immediate["total"], immediate["status"]) == (2000, "open")

    await world.advance(APRIL + timedelta(days=20))  # April 21: 10 of 30 days remain
    removed = await api.delete(f"/v1/subscriptions/{sub['id']}/items/{item['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"id": item["id"], "object": "subscription_item", "deleted": True}
    assert [i["plan"] for i in (await world.subscription(sub["id"]))["items"]] == [team]
    # 50.00 × 10/30 = 16.666… → −16.67 credited on the next invoice.
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    expected = [
        ("subscription", "1 × Team", 3000),
        ("proration", "Unused time on 5 × Extra storage", -1667),
    ]
    assert await world.lines(upcoming) == expected
    await world.advance(RENEWAL)
    renewal = (await world.invoices(sub["id"]))[-1]
    assert await world.lines(renewal) == expected
    assert renewal["total"] == 1333  # 30.00 − 16.67


async def test_the_first_item_is_the_subscriptions_plan_its_quantity_changes_it_and_it_cannot_be_removed(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    team, _, sub = await world.begin()
    first = sub["items"][0]["id"]
    await world.advance(APRIL + timedelta(days=15))
    item = await world.post(f"/v1/subscriptions/{sub['id']}/items/{first}", {"quantity": 3})
    assert (item["id"], item["plan"], item["quantity"]) == (first, team, 3)
    assert (await world.subscription(sub["id"]))["quantity"] == 3
    # As POST /change {"quantity": 3}: −15.00 for 1 seat's half month, +45.00 for 3 seats'.
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [line["amount"] for line in upcoming["lines"]] == [9000, -1500, 4500]
    refused = await world.refused("DELETE", f"/v1/subscriptions/{sub['id']}/items/{first}")
    assert (refused["status"], refused["code"]) == (409, "item_is_subscription_plan")
    assert "/change" in refused["message"]


async def test_a_prorated_cancel_credits_the_add_ons_unused_time_too(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    _, storage, sub = await world.begin()
    customer = sub["customer"]
    await world.add(sub["id"], storage, quantity=2, proration_behavior="always_invoice")
    await world.advance(APRIL + timedelta(days=15))
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"prorate": True})
    # Half of April unused: 30.00 / 2 + 20.00 / 2 = 25.00 to the customer's balance.
    assert (await world.get(f"/v1/customers/{customer}"))["balance"] == -2500


async def test_add_ons_are_refused_with_a_clear_error_when_they_cannot_share_the_subscriptions_invoices(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    team, storage, sub = await world.begin()
    path = f"/v1/subscriptions/{sub['id']}/items"
    euro = await world.plan(900, currency="EUR", name="Storage EUR")
    yearly = await world.plan(10000, interval="year", name="Storage yearly")
    meter = f"calls_{secrets.token_hex(3)}"
    await world.post("/v1/meters", {"code": meter, "name": "calls", "aggregation": "count"})
    metered = await world.plan(
        0, name="Calls", charges=[{"meter": meter, "model": "per_unit", "unit_amount": 1}]
    )
    cases = [
        ({"plan": euro}, 400, "item_currency_mismatch", "plan", "USD"),
        ({"plan": yearly}, 400, "item_interval_mismatch", "plan", "interval"),
        ({"plan": metered}, 400, "item_metered_unsupported", "plan", "metered"),
        ({"plan": team}, 400, "item_duplicate_plan", "plan", "quantity"),
        ({"plan": storage, "quantitty": 2}, 400, None, None, "quantitty"),
        ({"plan": storage, "quantity": 0}, 400, None, "quantity", ""),
        ({"plan": storage, "proration_behavior": "now"}, 400, None, "proration_behavior", ""),
        ({"plan": "no-such-plan"}, 404, "resource_missing", "plan", "no-such-plan"),
    ]
    for body, status, code, param, words in cases:
        error = await world.refused("POST", path, body)
        assert error["status"] == status, (body, error)
        if code is not None:
            assert error["code"] == code, (body, error)
        if param is not None:
            assert error["param"] == param, (body, error)
        assert words in error["message"], (body, error)
    item = await world.add(sub["id"], storage)
    twice = await world.refused("POST", path, {"plan": storage})
    assert (twice["code"], twice["param"]) == ("item_duplicate_plan", "plan")
    typo = await world.refused("DELETE", f"{path}/{item['id']}?proration=none")
    assert (typo["status"], typo["param"]) == (400, "proration")
    unknown = await world.refused("POST", f"{path}/si_{'x' * 24}", {"quantity": 2})
    assert unknown["status"] == 404
    # The subscription's plan cannot move to another interval under its add-ons, nor onto an add-on's plan.
    moved = await world.refused("POST", f"/v1/subscriptions/{sub['id']}/change", {"plan": yearly})
    assert (moved["status"], moved["code"]) == (400, "item_interval_mismatch")
    onto = await world.refused("POST", f"/v1/subscriptions/{sub['id']}/change", {"plan": storage})
    assert (onto["status"], onto["code"], onto["param"]) == (400, "item_duplicate_plan", "plan")
    assert [i["plan"] for i in (await world.subscription(sub["id"]))["items"]] == [team, storage]
    # A canceled subscription takes no change.
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel")
    ended = await world.refused("POST", path, {"plan": await world.plan(500, name="Backup")})
    assert ended["status"] == 409


async def test_an_item_added_twice_with_one_idempotency_key_is_added_once(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    _, storage, sub = await world.begin()
    headers = {"Idempotency-Key": secrets.token_hex(8)}
    body = {"plan": storage, "quantity": 2}
    first = await api.post(f"/v1/subscriptions/{sub['id']}/items", json=body, headers=headers)
    again = await api.post(f"/v1/subscriptions/{sub['id']}/items", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert len((await world.subscription(sub["id"]))["items"]) == 2


async def test_a_resume_bills_and_credits_the_add_ons_with_the_plan(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    _, storage, now_sub = await world.begin()
    later_sub = await world.subscribe(now_sub["customer"], await world.plan(3000, name="Team"))
    for sub in (now_sub, later_sub):
        await world.add(sub["id"], storage, quantity=2, proration_behavior="none")
    await world.advance(APRIL + timedelta(days=9))  # April 10
    for sub in (now_sub, later_sub):
        await world.post(f"/v1/subscriptions/{sub['id']}/pause")

    await world.advance(APRIL + timedelta(days=20))  # April 21: 10 of 30 paid days unused
    await world.post(f"/v1/subscriptions/{now_sub['id']}/resume", {"billing_cycle_anchor": "now"})
    resumed = (await world.invoices(now_sub["id"]))[-1]
    # −30.00 × 10/30 = −10.00 and −20.00 × 10/30 = −6.666… → −6.67 credited; a new cycle from April 21: 50.00.
    assert await world.lines(resumed) == [
        ("proration", "Unused time on Team", -1000),
        ("proration", "Unused time on 2 × Extra storage", -667),
        ("subscription", "1 × Team", 3000),
        ("subscription", "2 × Extra storage", 2000),
    ]
    assert resumed["total"] == 3333

    await world.advance(datetime(2027, 5, 16, tzinfo=UTC))  # May 16: 16 of May's 31 days left
    await world.post(f"/v1/subscriptions/{later_sub['id']}/resume")
    resumed = (await world.invoices(later_sub["id"]))[-1]
    # 30.00 × 16/31 = 15.483… → 15.48; 20.00 × 16/31 = 10.322… → 10.32; April 10 – May 16 paused, never billed.
    assert await world.lines(resumed) == [
        ("subscription", "1 × Team (from the resume to the period end)", 1548),
        ("subscription", "2 × Extra storage (from the resume to the period end)", 1032),
    ]
    assert resumed["total"] == 2580


async def test_the_renewal_batch_leaves_only_the_subscriptions_with_add_ons_to_the_single_renewal(
    api: httpx.AsyncClient, services: Services
) -> None:
    """The set-based renewal (billing/subscriptions/batch.py) bills one line per subscription: it must not take
    a subscription with add-ons, and still takes a plain one renewing beside it."""
    world = Items(api, services)
    team, storage, plain = await world.begin()
    with_addons = await world.subscribe(await world.customer(), team)
    await world.add(with_addons["id"], storage, proration_behavior="none")
    ids = [plain["id"], with_addons["id"]]
    async with services.sessions() as session, session.begin():
        tasks = (
            await session.scalars(
                select(ScheduledTask).where(
                    ScheduledTask.kind == RENEW,
                    ScheduledTask.status == "pending",
                    ScheduledTask.payload["subscription"].astext.in_(ids),
                )
            )
        ).all()
        assert len(tasks) == 2
        inputs = await load_inputs(session, list(tasks))
    assert inputs.irregular == {with_addons["id"]}


async def test_an_add_on_added_during_a_trial_costs_nothing_until_the_trial_converts(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Items(api, services)
    _, storage, sub = await world.begin(trial_period_days=14)
    assert sub["status"] == "trialing"
    await world.add(
        sub["id"], storage, quantity=2
    )  # create_prorations, but a trial is free: nothing to prorate
    assert await world.invoices(sub["id"]) == []
    await world.advance(datetime(2027, 4, 15, 1, tzinfo=UTC))  # the trial ended on April 15 00:00
    [first] = await world.invoices(sub["id"])
    assert await world.lines(first) == [
        ("subscription", "1 × Team", 3000),
        ("subscription", "2 × Extra storage", 2000),
    ]
    assert (first["period_start"], first["total"]) == ("2027-04-15T00:00:00Z", 5000)
