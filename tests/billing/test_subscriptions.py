"""Subscriptions on test clocks through the HTTP API (SPEC §4, §5): periods from the anchor, trials,
cancellation, pause and resume, plan and quantity changes with each proration behaviour, coupons and taxes.

These use collection_method=send_invoice (invoices await payment) so that every figure is visible without a
payment method; card collection is exercised where payments meet invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billing.services import Services
from tests.billing.world import T0, Billing, at


async def test_a_month_end_anchor_bills_on_the_last_day_of_short_months_and_never_drifts(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    sub = await world.subscribe(await world.customer(), await world.plan(1000))
    assert sub["status"] == "active"
    assert at(sub["current_period_end"]) == datetime(2027, 2, 28, tzinfo=UTC)
    await world.advance(datetime(2028, 1, 31, 12, tzinfo=UTC))
    invoices = await world.invoices(sub["id"])
    starts = [at(i["period_start"]).date().isoformat() for i in invoices]
    assert starts == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
        "2027-07-31",
        "2027-08-31",
        "2027-09-30",
        "2027-10-31",
        "2027-11-30",
        "2027-12-31",
        "2028-01-31",
    ]
    assert {i["total"] for i in invoices} == {1000}
    assert len({i["number"] for i in invoices}) == 13
    renewed = await world.get("/v1/events", object_id=sub["id"], type="subscription.renewed", limit=100)
    assert len(renewed["data"]) == 12


async def test_periods_follow_the_customers_local_midnight(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(datetime(2027, 3, 1, 12, tzinfo=UTC))
    customer = await world.customer(timezone="Asia/Shanghai")
    sub = await world.subscribe(customer, await world.plan(500))
    # Midnight in Shanghai (UTC+8) is 16:00 UTC the day before.
    assert sub["current_period_end"] == "2027-03-31T16:00:00Z"


async def test_a_trial_costs_nothing_warns_three_days_before_and_converts(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    sub = await world.subscribe(await world.customer(), await world.plan(2000), trial_period_days=14)
    assert sub["status"] == "trialing"
    assert await world.invoices(sub["id"]) == []
    await world.advance(T0 + timedelta(days=11, hours=15))
    warned = await world.get("/v1/events", object_id=sub["id"], type="subscription.trial_will_end")
    assert len(warned["data"]) == 1
    assert await world.invoices(sub["id"]) == []
    await world.advance(T0 + timedelta(days=15))
    converted = await world.subscription(sub["id"])
    assert converted["status"] == "active"
    [invoice] = await world.invoices(sub["id"])
    assert invoice["total"] == 2000
    assert at(invoice["period_start"]) == at(sub["trial_end"])


async def test_cancel_at_period_end_stops_renewal(api: httpx.AsyncClient, services: Services) -> None:
    world = Billing(api, services)
    await world.start()
    sub = await world.subscribe(await world.customer(), await world.plan(1000))
    pending = await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    assert pending["cancel_at_period_end"] is True
    assert pending["status"] == "active"
    await world.advance(T0 + timedelta(days=60))
    ended = await world.subscription(sub["id"])
    assert ended["status"] == "canceled"
    assert ended["ended_at"] == sub["current_period_end"]
    assert len(await world.invoices(sub["id"])) == 1


async def test_immediate_cancel_with_proration_credits_unused_time(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    start = datetime(2027, 4, 1, tzinfo=UTC)  # a 30-day period from a midnight
    await world.start(start)
    customer = await world.customer()
    sub = await world.subscribe(customer, await world.plan(3000))
    await world.advance(start + timedelta(days=10))
    canceled = await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"prorate": True})
    assert canceled["status"] == "canceled"
    # 20 of 30 days unused: 2000 credited to the balance (negative = credit).
    assert (await world.get(f"/v1/customers/{customer}"))["balance"] == -2000
    again = await api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={})
    assert again.status_code == 409


async def test_no_invoices_while_paused_and_a_new_cycle_on_resume_now(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    start = datetime(2027, 5, 1, tzinfo=UTC)
    await world.start(start)
    sub = await world.subscribe(await world.customer(), await world.plan(1000))
    paused = await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    assert paused["status"] == "paused"
    await world.advance(start + timedelta(days=70))
    assert len(await world.invoices(sub["id"])) == 1
    # The paid period (May) is long over: a new cycle from the resume day, nothing to credit (tests/billing/
    # test_resume.py has the resumes inside a paid period and on the unchanged calendar).
    resumed = await world.post(f"/v1/subscriptions/{sub['id']}/resume", {"billing_cycle_anchor": "now"})
    assert resumed["status"] == "active"
    assert at(resumed["current_period_end"]) == datetime(2027, 8, 10, tzinfo=UTC)
    invoices = await world.invoices(sub["id"])
    assert len(invoices) == 2
    await world.advance(datetime(2027, 9, 10, 1, tzinfo=UTC))
    starts = [at(i["period_start"]).date().isoformat() for i in await world.invoices(sub["id"])]
    assert starts == ["2027-05-01", "2027-07-10", "2027-08-10", "2027-09-10"]


async def test_an_upgrade_with_create_prorations_lands_on_the_next_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    start = datetime(2027, 4, 1, tzinfo=UTC)
    await world.start(start)
    basic, pro = await world.plan(3000, name="Basic"), await world.plan(6000, name="Pro")
    sub = await world.subscribe(await world.customer(), basic)
    await world.advance(start + timedelta(days=15))  # half of April's 30 days remain
    changed = await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": pro})
    assert changed["plan"] == pro
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [line["amount"] for line in upcoming["lines"]] == [6000, -1500, 3000]
    assert upcoming["total"] == 7500
    await world.advance(datetime(2027, 5, 1, 1, tzinfo=UTC))
    renewal = (await world.invoices(sub["id"]))[-1]
    assert [(line["type"], line["amount"]) for line in renewal["lines"]] == [
        ("subscription", 6000),
        ("proration", -1500),
        ("proration", 3000),
    ]
    assert renewal["total"] == upcoming["total"]


async def test_always_invoice_bills_the_change_at_once_and_none_bills_nothing(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    start = datetime(2027, 4, 1, tzinfo=UTC)
    await world.start(start)
    plan = await world.plan(3000)
    now_sub = await world.subscribe(await world.customer(), plan)
    none_sub = await world.subscribe(await world.customer(), plan)
    await world.advance(start + timedelta(days=20))  # 10 of 30 days remain
    await world.post(
        f"/v1/subscriptions/{now_sub['id']}/change", {"quantity": 3, "proration_behavior": "always_invoice"}
    )
    immediate = (await world.invoices(now_sub["id"]))[-1]
    assert immediate["billing_reason"] == "subscription_update"
    assert [line["amount"] for line in immediate["lines"]] == [-1000, 3000]
    assert immediate["total"] == 2000
    await world.post(
        f"/v1/subscriptions/{none_sub['id']}/change", {"quantity": 3, "proration_behavior": "none"}
    )
    assert len(await world.invoices(none_sub["id"])) == 1
    upcoming = await world.get(f"/v1/subscriptions/{none_sub['id']}/upcoming_invoice")
    assert upcoming["total"] == 9000


async def test_a_downgrade_at_period_end_changes_the_next_period_only(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    start = datetime(2027, 4, 1, tzinfo=UTC)
    await world.start(start)
    pro, basic = await world.plan(6000), await world.plan(3000)
    sub = await world.subscribe(await world.customer(), pro)
    changed = await world.post(
        f"/v1/subscriptions/{sub['id']}/change", {"plan": basic, "effective": "period_end"}
    )
    assert changed["plan"] == pro
    assert changed["pending_change"]["plan"] == basic
    await world.advance(datetime(2027, 5, 1, 1, tzinfo=UTC))
    assert (await world.subscription(sub["id"]))["plan"] == basic
    assert [i["total"] for i in await world.invoices(sub["id"])] == [6000, 3000]


async def test_a_repeating_coupon_discounts_its_periods_only(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    start = datetime(2027, 1, 1, tzinfo=UTC)
    await world.start(start)
    coupon = await world.post(
        "/v1/coupons", {"percent_off": "25", "duration": "repeating", "duration_in_periods": 2}
    )
    sub = await world.subscribe(await world.customer(), await world.plan(4000), coupon=coupon["id"])
    redeemed = (await world.get("/v1/events", object_id=coupon["id"], type="coupon.updated"))["data"]
    assert [e["data"]["object"]["times_redeemed"] for e in redeemed] == [1]
    await world.advance(datetime(2027, 4, 1, 1, tzinfo=UTC))
    assert [(i["discount"], i["total"]) for i in await world.invoices(sub["id"])] == [
        (1000, 3000),
        (1000, 3000),
        (0, 4000),
        (0, 4000),
    ]


async def test_exclusive_and_inclusive_taxes(api: httpx.AsyncClient, services: Services) -> None:
    world = Billing(api, services)
    await world.start()
    vat = await world.post("/v1/tax_rates", {"display_name": "VAT", "percentage": "20", "inclusive": True})
    sales = await world.post("/v1/tax_rates", {"display_name": "Sales tax", "percentage": "8.875"})
    inclusive = await world.subscribe(await world.customer(), await world.plan(1200), tax_rates=[vat["id"]])
    exclusive = await world.subscribe(await world.customer(), await world.plan(1000), tax_rates=[sales["id"]])
    [inc] = await world.invoices(inclusive["id"])
    assert (inc["subtotal"], inc["tax"], inc["total"]) == (1000, 200, 1200)
    [exc] = await world.invoices(exclusive["id"])
    assert (exc["subtotal"], exc["tax"], exc["total"]) == (1000, 89, 1089)  # 88.75 → 89, half-up


async def test_paying_out_of_band_and_the_status_machine(api: httpx.AsyncClient, services: Services) -> None:
    world = Billing(api, services)
    await world.start()
    sub = await world.subscribe(await world.customer(), await world.plan(1000))
    [invoice] = await world.invoices(sub["id"])
    paid = await world.post(f"/v1/invoices/{invoice['id']}/pay", {"paid_out_of_band": True})
    assert paid["status"] == "paid"
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel")
    resume = await api.post(f"/v1/subscriptions/{sub['id']}/resume")
    assert resume.status_code == 409
    assert "canceled" in resume.json()["error"]["message"]


async def test_an_archived_plan_takes_no_new_subscriptions(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    plan = await world.plan(1000)
    await world.post(f"/v1/plans/{plan}/archive")
    response = await api.post(
        "/v1/subscriptions",
        json={
            "customer": await world.customer(),
            "plan": plan,
            "collection_method": "send_invoice",
            "days_until_due": 1,
        },
    )
    assert response.status_code == 409
    assert response.json()["error"]["param"] == "plan"


async def test_invoice_upcoming_tells_the_app_three_days_ahead_what_the_renewal_will_bill(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(datetime(2027, 4, 1, tzinfo=UTC))
    pro, basic = await world.plan(6000), await world.plan(3000)
    sub = await world.subscribe(await world.customer(), pro, quantity=2)
    await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": basic, "effective": "period_end"})

    async def notices() -> list[dict[str, Any]]:
        return (await world.get("/v1/events", object_id=sub["id"], type="invoice.upcoming"))["data"]

    await world.advance(datetime(2027, 4, 27, 23, tzinfo=UTC))
    assert await notices() == []
    await world.advance(datetime(2027, 4, 28, 1, tzinfo=UTC))
    [notice] = await notices()
    upcoming = notice["data"]["object"]
    # The notice carries the invoice the renewal will make: the pending downgrade, two seats of the new plan.
    assert upcoming == await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert (upcoming["object"], upcoming["period_start"], upcoming["total"]) == (
        "upcoming_invoice",
        "2027-05-01T00:00:00Z",
        6000,
    )
    assert [i["total"] for i in await world.invoices(sub["id"])] == [12000]
    # A subscription that will not renew gets no notice.
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    await world.advance(datetime(2027, 6, 1, 1, tzinfo=UTC))
    assert len(await notices()) == 1


async def test_changing_to_another_interval_now_restarts_the_cycle_with_a_credit_for_unused_time(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(datetime(2027, 4, 1, tzinfo=UTC))
    monthly, yearly = await world.plan(3000), await world.plan(30000, interval="year")
    sub = await world.subscribe(await world.customer(), monthly)
    await world.advance(datetime(2027, 4, 16, tzinfo=UTC))
    changed = await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": yearly})
    assert (changed["plan"], at(changed["current_period_end"])) == (yearly, datetime(2028, 4, 16, tzinfo=UTC))
    [_, change_invoice] = await world.invoices(sub["id"])
    # 15 of April's 30 days unused: 15.00 back; the new year in advance.
    assert [(line["type"], line["amount"]) for line in change_invoice["lines"]] == [
        ("proration", -1500),
        ("subscription", 30000),
    ]
    assert (change_invoice["total"], change_invoice["status"]) == (28500, "open")
    # The monthly renewal is gone; the next renewal is a year after the change.
    await world.advance(datetime(2028, 4, 16, 1, tzinfo=UTC))
    invoices = await world.invoices(sub["id"])
    assert [i["total"] for i in invoices] == [3000, 28500, 30000]
    assert (at(invoices[-1]["period_start"]), at(invoices[-1]["period_end"])) == (
        datetime(2028, 4, 16, tzinfo=UTC),
        datetime(2029, 4, 16, tzinfo=UTC),
    )


async def test_changing_to_another_interval_at_period_end_starts_its_calendar_there(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(datetime(2027, 4, 1, tzinfo=UTC))
    monthly, yearly = await world.plan(3000), await world.plan(30000, interval="year")
    sub = await world.subscribe(await world.customer(), monthly)
    await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": yearly, "effective": "period_end"})
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert (upcoming["period_start"], upcoming["period_end"], upcoming["total"]) == (
        "2027-05-01T00:00:00Z",
        "2028-05-01T00:00:00Z",
        30000,
    )
    await world.advance(datetime(2027, 7, 1, tzinfo=UTC))
    invoices = await world.invoices(sub["id"])
    assert [i["total"] for i in invoices] == [3000, 30000]
    assert (at(invoices[-1]["period_start"]), at(invoices[-1]["period_end"])) == (
        datetime(2027, 5, 1, tzinfo=UTC),
        datetime(2028, 5, 1, tzinfo=UTC),
    )
    assert at((await world.subscription(sub["id"]))["current_period_end"]) == datetime(2028, 5, 1, tzinfo=UTC)


async def test_default_payment_method_is_validated_like_the_customers(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, services: Services
) -> None:
    """Issue 12 item 7: another merchant's card, another customer's card, a detached card or an id that does not
    exist is refused when the subscription is created or updated, with the parameter named."""
    world = Billing(api, services)
    await world.start()
    customer, stranger = await world.customer(), await world.customer()
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}
    own = (await world.post("/v1/payment_methods", {"customer": customer, "card": card}))["id"]
    strangers = (await world.post("/v1/payment_methods", {"customer": stranger, "card": card}))["id"]
    detached = (await world.post("/v1/payment_methods", {"customer": customer, "card": card}))["id"]
    await world.post(f"/v1/payment_methods/{detached}/detach")
    other_customer = (await other_api.post("/v1/customers", json={})).json()["id"]
    foreign = (
        await other_api.post("/v1/payment_methods", json={"customer": other_customer, "card": card})
    ).json()["id"]
    plan = await world.plan(1000)
    for wrong in (foreign, strangers, detached, "pm_doesnotexist"):
        refused = await api.post(
            "/v1/subscriptions",
            json={
                "customer": customer,
                "plan": plan,
                "collection_method": "send_invoice",
                "days_until_due": 7,
                "default_payment_method": wrong,
            },
        )
        assert refused.status_code == 400, (wrong, refused.text)
        assert refused.json()["error"]["param"] == "default_payment_method"
    assert (await world.get("/v1/subscriptions", customer=customer))["data"] == []
    sub = await world.subscribe(customer, plan, default_payment_method=own)
    assert sub["default_payment_method"] == own
    for wrong in (foreign, strangers, detached, "pm_doesnotexist"):
        refused = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"default_payment_method": wrong})
        assert refused.status_code == 400, (wrong, refused.text)
        assert refused.json()["error"]["param"] == "default_payment_method"
    assert (await world.subscription(sub["id"]))["default_payment_method"] == own
    cleared = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"default_payment_method": None})
    assert cleared.json()["default_payment_method"] is None
