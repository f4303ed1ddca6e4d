"""Finance reports (issue #15 item 4) against fixtures whose numbers are worked out by hand in the comments:
MRR and its movements over three months of a test clock (upgrades, downgrades, a cancellation, a trial, coupons,
a pause), churn, receivables ageing of known invoices, success rates and revenue of known payments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import configure_gateways, customer_with_card
from tests.billing.world import run_worker


class Clock:
    def __init__(self, api: httpx.AsyncClient, services: Services) -> None:
        self.api, self.services, self.id = api, services, ""

    async def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.api.post(path, json=body or {})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def start(self, at: str) -> None:
        self.id = (await self.post("/v1/test_clocks", {"frozen_time": at}))["id"]

    async def advance(self, to: str) -> None:
        await self.post(f"/v1/test_clocks/{self.id}/advance", {"frozen_time": to})
        await run_worker(self.services)
        assert (await self.api.get(f"/v1/test_clocks/{self.id}")).json()["status"] == "ready"

    async def customer(self, name: str) -> str:
        body = {
            "test_clock": self.id,
            "name": name,
            "email": f"{name}@example.com",
            "currency": "USD",
            "timezone": "UTC",
        }
        return str((await self.post("/v1/customers", body))["id"])

    async def report(self, name: str, **params: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/reports/{name}", params={"test_clock": self.id, **params})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


async def _plan(api: httpx.AsyncClient, code: str, amount: int, interval: str = "month") -> str:
    body = {"code": code, "name": code.title(), "currency": "USD", "interval": interval, "amount": amount}
    response = await api.post("/v1/plans", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def three_months_of_subscriptions(api: httpx.AsyncClient, services: Services) -> Clock:
    """A test clock whose customers subscribe, upgrade, downgrade, cancel, trial, pause and resume over
    January to March 2027 (the figures each step makes are in the comments); the clock ends on March 20."""
    clock = Clock(api, services)
    await clock.start("2027-01-01T00:00:00Z")
    basic = await _plan(api, "basic", 1000)  # 10.00 a month
    pro = await _plan(api, "pro", 3000)  # 30.00 a month
    annual = await _plan(api, "annual", 24000, "year")  # 240.00 a year = 20.00 a month
    weekly = await _plan(api, "weekly", 700, "week")  # 7.00 a week = 7.00 × 52 / 12 = 30.333… → 30.33 a month
    half = (await clock.post("/v1/coupons", {"percent_off": "50", "duration": "forever"}))["id"]
    ten_off = (
        await clock.post(
            "/v1/coupons",
            {"amount_off": 1000, "currency": "USD", "duration": "repeating", "duration_in_periods": 2},
        )
    )["id"]
    terms = {"collection_method": "send_invoice", "days_until_due": 30}

    async def subscribe(customer: str, plan: str, **fields: Any) -> str:
        return str(
            (await clock.post("/v1/subscriptions", {"customer": customer, "plan": plan, **terms, **fields}))[
                "id"
            ]
        )

    # January 1: A 2 × basic = 20.00; B pro at half price = 15.00; C annual = 20.00; D basic in a 14-day trial
    # (nothing until it converts on January 15: 10.00); E pro with 10.00 off for two periods = 20.00.
    a = await subscribe(await clock.customer("a"), basic, quantity=2)
    b = await subscribe(await clock.customer("b"), pro, coupon=half)
    await subscribe(await clock.customer("c"), annual)
    d = await subscribe(await clock.customer("d"), basic, trial_period_days=14)
    await subscribe(await clock.customer("e"), pro, coupon=ten_off)
    # February 10: A moves to 2 × pro (60.00, +40.00 expansion); B cancels (−15.00 churned).
    await clock.advance("2027-02-10T00:00:00Z")
    await clock.post(
        f"/v1/subscriptions/{a}/change", {"plan": pro, "quantity": 2, "proration_behavior": "none"}
    )
    await clock.post(f"/v1/subscriptions/{b}/cancel", {})
    # March 1: E's coupon has covered two periods; from its third, 30.00 (+10.00 expansion).
    # March 5: A down to 1 × basic (10.00, −50.00 contraction). March 10: D paused (−10.00 churned); March 15: D
    # resumed (+10.00 reactivated). March 12: F subscribes weekly (+30.33 new).
    await clock.advance("2027-03-05T00:00:00Z")
    await clock.post(
        f"/v1/subscriptions/{a}/change", {"plan": basic, "quantity": 1, "proration_behavior": "none"}
    )
    await clock.advance("2027-03-10T00:00:00Z")
    await clock.post(f"/v1/subscriptions/{d}/pause", {})
    await clock.advance("2027-03-12T00:00:00Z")
    await subscribe(await clock.customer("f"), weekly)
    await clock.advance("2027-03-15T00:00:00Z")
    await clock.post(f"/v1/subscriptions/{d}/resume", {})
    await clock.advance("2027-03-20T00:00:00Z")
    return clock


async def test_mrr_movements_and_churn_over_three_months(api: httpx.AsyncClient, services: Services) -> None:
    clock = await three_months_of_subscriptions(api, services)
    mrr = await clock.report("mrr", **{"from": "2027-01", "to": "2027-03"})
    [usd] = mrr["currencies"]
    # Now (March 20): A 10.00 + C 20.00 + D 10.00 + E 30.00 + F 30.33 = 100.33; ARR = 12 × 100.33.
    assert (usd["currency"], usd["mrr"], usd["arr"], usd["customers"]) == ("USD", 10033, 120396, 5)
    months = {m["month"]: m for m in usd["months"]}
    # January: everything is new: 20 + 15 + 20 + 10 + 20 = 85.00.
    assert months["2027-01"] | {} == {
        "month": "2027-01",
        "mrr": 8500,
        "arr": 102000,
        "customers": 5,
        "new": 8500,
        "expansion": 0,
        "contraction": 0,
        "churned": 0,
        "reactivated": 0,
        "metered_revenue": 0,
    }
    # February: 85.00 + 40.00 − 15.00 = 110.00, four customers.
    assert (
        months["2027-02"]["mrr"],
        months["2027-02"]["expansion"],
        months["2027-02"]["churned"],
        months["2027-02"]["customers"],
    ) == (11000, 4000, 1500, 4)
    assert (
        months["2027-02"]["new"] == months["2027-02"]["contraction"] == months["2027-02"]["reactivated"] == 0
    )
    # March: 110.00 + 30.33 new + 10.00 expansion + 10.00 reactivated − 50.00 contraction − 10.00 churned = 100.33.
    assert {
        k: months["2027-03"][k]
        for k in ("mrr", "new", "expansion", "contraction", "churned", "reactivated", "customers")
    } == {
        "mrr": 10033,
        "new": 3033,
        "expansion": 1000,
        "contraction": 5000,
        "churned": 1000,
        "reactivated": 1000,
        "customers": 5,
    }

    churn = await clock.report("churn", **{"from": "2027-02", "to": "2027-03"})
    feb, mar = churn["currencies"][0]["months"]
    # February: 1 of 5 customers churned (B); gross revenue churn 15 / 85 = 0.17647…; net (15 − 40) / 85 = −0.29411…
    assert (feb["customers_at_start"], feb["customers_churned"], feb["customer_churn_rate"]) == (
        5,
        1,
        "0.2000",
    )
    assert (feb["mrr_at_start"], feb["gross_revenue_churn_rate"], feb["net_revenue_churn_rate"]) == (
        8500,
        "0.1765",
        "-0.2941",
    )
    # March: 1 of 4 churned (D's pause); gross (10 + 50) / 110 = 0.54545…; net (10 + 50 − 10 − 10) / 110 = 0.36363…
    assert (mar["customers_at_start"], mar["customers_churned"], mar["customer_churn_rate"]) == (
        4,
        1,
        "0.2500",
    )
    assert (mar["gross_revenue_churn_rate"], mar["net_revenue_churn_rate"]) == ("0.5455", "0.3636")

    # Live figures leave test clocks out.
    live = (await api.get("/v1/reports/mrr")).json()
    assert live["test_clock"] is None and live["currencies"] == []


async def test_receivables_ageing_buckets(api: httpx.AsyncClient, services: Services) -> None:
    clock = Clock(api, services)
    await clock.start("2027-06-01T12:00:00Z")
    usd = await clock.customer("ageing")
    eur = str(
        (await clock.post("/v1/customers", {"test_clock": clock.id, "currency": "EUR", "timezone": "UTC"}))[
            "id"
        ]
    )

    async def invoice(customer: str, amount: int, days: int) -> str:
        body = {
            "customer": customer,
            "collection_method": "send_invoice",
            "days_until_due": days,
            "lines": [{"description": "Work", "amount": amount}],
        }
        created = await clock.post("/v1/invoices", body)
        return str((await clock.post(f"/v1/invoices/{created['id']}/finalize"))["id"])

    # Checked 100 days after issue: days past due = 100 − days_until_due.
    for amount, days in (
        (1000, 120),
        (2000, 100),
        (3000, 99),
        (4000, 70),
        (5000, 69),
        (6000, 39),
        (7000, 10),
        (8000, 9),
    ):
        await invoice(usd, amount, days)
    voided = await invoice(usd, 9000, 0)
    await clock.post(f"/v1/invoices/{voided}/void")
    await invoice(eur, 500, 0)
    await clock.advance("2027-09-09T12:00:00Z")  # 100 days later

    report = await clock.report("ar_aging")
    buckets = {
        c["currency"]: {b["bucket"]: (b["amount"], b["invoices"]) for b in c["buckets"]}
        for c in report["currencies"]
    }
    # current: −20 and 0 days (1000 + 2000); 1–30: 1 and 30 days (3000 + 4000); 31–60: 31 days (5000);
    # 61–90: 61 and 90 days (6000 + 7000); 90+: 91 days (8000). The void invoice asks nothing.
    assert buckets["USD"] == {
        "current": (3000, 2),
        "1_30": (7000, 2),
        "31_60": (5000, 1),
        "61_90": (13000, 2),
        "90_plus": (8000, 1),
    }
    assert buckets["EUR"] == {
        "current": (0, 0),
        "1_30": (0, 0),
        "31_60": (0, 0),
        "61_90": (0, 0),
        "90_plus": (500, 1),
    }
    assert [c["total"] for c in report["currencies"]] == [500, 36000]


async def test_payment_success_and_revenue_of_known_payments(api: httpx.AsyncClient) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    good, _ = await customer_with_card(api, "4242424242424242")
    soft, _ = await customer_with_card(api, "4000000000000002")  # generic_decline
    poor, _ = await customer_with_card(api, "4000000000009995")  # insufficient_funds

    async def pay(customer: str, amount: int) -> dict[str, Any]:
        body = {
            "customer": customer,
            "currency": "USD",
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "lines": [{"description": "Work", "amount": amount}],
        }
        invoice = (await api.post("/v1/invoices", json=body)).json()
        await api.post(f"/v1/invoices/{invoice['id']}/finalize")
        await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
        return dict((await api.get(f"/v1/invoices/{invoice['id']}")).json())

    paid = [await pay(good["id"], amount) for amount in (1000, 2000, 3000)]
    unpaid = [await pay(soft["id"], 500), await pay(soft["id"], 700), await pay(poor["id"], 900)]
    assert [i["status"] for i in paid] == ["paid"] * 3 and [i["status"] for i in unpaid] == ["open"] * 3
    # A credit note of 2.00 on an open invoice, and one of 3.00 refunded on a paid one.
    assert (
        await api.post("/v1/credit_notes", json={"invoice": unpaid[0]["id"], "amount": 200})
    ).status_code == 200
    assert (
        await api.post(
            "/v1/credit_notes", json={"invoice": paid[0]["id"], "amount": 300, "refund_amount": 300}
        )
    ).status_code == 200

    month = datetime.now(UTC).strftime("%Y-%m")
    success = (await api.get("/v1/reports/payment_success", params={"from": month, "to": month})).json()
    # 6 attempts: 3 succeeded, 3 declined (2 generic_decline, 1 insufficient_funds): 50 %.
    assert (success["attempts"], success["succeeded"], success["failed"], success["success_rate"]) == (
        6,
        3,
        3,
        "0.5000",
    )
    assert [(g["key"], g["attempts"], g["succeeded"], g["success_rate"]) for g in success["by_gateway"]] == [
        ("sandbox", 6, 3, "0.5000")
    ]
    assert [(r["key"], r["failed"]) for r in success["by_decline_reason"]] == [
        ("generic_decline", 2),
        ("insufficient_funds", 1),
    ]

    revenue = (await api.get("/v1/reports/revenue", params={"from": month, "to": month})).json()
    [usd] = revenue["currencies"]
    # Invoiced 10 + 20 + 30 + 5 + 7 + 9 = 81.00; paid 60.00; still owed 5 − 2 + 7 + 9 = 19.00; credited 2 + 3;
    # refunded 3.00.
    assert usd["months"] == [
        {
            "month": month,
            "invoiced": 8100,
            "paid": 6000,
            "outstanding": 1900,
            "credited": 500,
            "refunded": 300,
        }
    ]


async def test_report_parameters_are_checked(api: httpx.AsyncClient) -> None:
    for params, param in (
        ({"from": "2027-13"}, "from"),
        ({"from": "2027-05", "to": "2027-01"}, "from"),
        ({"test_clock": "clk_nope"}, "test_clock"),
    ):
        response = await api.get("/v1/reports/mrr", params=params)
        assert response.status_code in (400, 404), response.text
        assert response.json()["error"]["param"] == param
    assert (await api.get("/v1/reports/profit")).status_code == 400


async def test_mrr_counts_add_on_items_and_a_subscriptions_own_price(
    api: httpx.AsyncClient, services: Services
) -> None:
    """January 1: G subscribes to Team (30.00 a month) with a 25 % coupon forever: 22.50. H subscribes to Team at
    its own price of 12.00: 12.00. January 15: G adds 3 × Seats (10.00 each): (30.00 + 30.00) × 75 % = 45.00, an
    expansion of 22.50. February 10: G goes down to 1 × Seats: (30.00 + 10.00) × 75 % = 30.00, a contraction of
    15.00. February 20: G removes the add-on: 22.50, a contraction of 7.50. MRR now: 22.50 + 12.00 = 34.50."""
    clock = Clock(api, services)
    await clock.start("2027-01-01T00:00:00Z")
    team = await _plan(api, "team", 3000)
    seats = await _plan(api, "seats", 1000)
    quarter = (await clock.post("/v1/coupons", {"percent_off": "25", "duration": "forever"}))["id"]
    terms = {"collection_method": "send_invoice", "days_until_due": 30}
    g = await clock.post(
        "/v1/subscriptions", {"customer": await clock.customer("g"), "plan": team, "coupon": quarter, **terms}
    )
    await clock.post(
        "/v1/subscriptions",
        {"customer": await clock.customer("h"), "plan": team, "price_overrides": {"amount": 1200}, **terms},
    )
    await clock.advance("2027-01-15T00:00:00Z")
    item = await clock.post(
        f"/v1/subscriptions/{g['id']}/items", {"plan": seats, "quantity": 3, "proration_behavior": "none"}
    )
    await clock.advance("2027-02-10T00:00:00Z")
    await clock.post(
        f"/v1/subscriptions/{g['id']}/items/{item['id']}", {"quantity": 1, "proration_behavior": "none"}
    )
    await clock.advance("2027-02-20T00:00:00Z")
    removed = await api.delete(
        f"/v1/subscriptions/{g['id']}/items/{item['id']}", params={"proration_behavior": "none"}
    )
    assert removed.status_code == 200, removed.text

    report = await clock.report("mrr", **{"from": "2027-01", "to": "2027-02"})
    [usd] = report["currencies"]
    assert (usd["mrr"], usd["arr"], usd["customers"]) == (3450, 41400, 2)
    jan, feb = usd["months"]
    # January: new 22.50 + 12.00 = 34.50, then +22.50 expansion: 57.00.
    assert (jan["mrr"], jan["new"], jan["expansion"], jan["contraction"]) == (5700, 3450, 2250, 0)
    # February: −15.00 and −7.50: 34.50.
    assert (feb["mrr"], feb["new"], feb["expansion"], feb["contraction"]) == (3450, 0, 0, 2250)
