"""Charge shapes of issue 17 through the HTTP API on test clocks: a percentage charge (rate, fixed fee, min and
max per transaction, free first transactions) on the upcoming invoice and the renewal, late transactions
adjusted, and the validation of its fields; a plan's minimum commitment (a true-up line when a period falls
short, none when it does not, prorated on a cancel)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing.services import Services
from tests.billing.portal_helpers import portal_link, sign_in, visible_text, visitor
from tests.billing.test_usage_billing import (
    APRIL,
    HOUR,
    JUNE,
    MAY,
    Metered,
    assert_invariants,
    by_meter,
    qty,
    start,
)
from tests.billing.world import at

# 2.9 % + 30¢ a transaction, at least 50¢ and at most $5, the first transaction of a period free.
CARD_FEES = {
    "model": "percentage",
    "rate": "2.9",
    "fixed_amount": 30,
    "per_transaction_min_amount": 50,
    "per_transaction_max_amount": 500,
    "free_units_per_events": 1,
}


async def test_a_percentage_charge_with_min_max_and_fixed_fee_bills_each_transaction(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    payments = await world.meter("sum")
    plan = await world.metered_plan(1000, {"meter": payments, **CARD_FEES})
    shown = await world.get(f"/v1/plans/{plan}")
    assert {k: shown["charges"][0][k] for k in CARD_FEES} == CARD_FEES
    customer = await world.customer()
    sub = await world.subscribe(customer, plan)
    await world.advance(APRIL + timedelta(days=27))
    day = APRIL + timedelta(days=20)
    # Sent out of time order: the free transaction is the earliest by timestamp ($100.00), not the first sent.
    await world.send(
        customer,
        payments,
        (day + HOUR, 1000),  # $10.00: 29 + 30 = 59¢
        (day + 2 * HOUR, 500),  # $5.00: 14.5 + 30 = 44.5¢, lifted to the 50¢ minimum
        (day + 3 * HOUR, 100000),  # $1,000.00: 2,900 + 30¢, cut to the $5 maximum
        (day, 10000),  # $100.00: the first transaction, free
    )
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [(line["type"], line["amount"]) for line in upcoming["lines"]] == [
        ("subscription", 1000),
        ("usage", 609),
    ]
    so_far = await world.get(f"/v1/subscriptions/{sub['id']}/usage")
    assert [(c["model"], c["quantity"], c["amount"]) for c in so_far["charges"]] == [
        ("percentage", "111500", 609)
    ]
    await world.advance(MAY + 2 * HOUR)
    _, renewal = await world.invoices(sub["id"])
    line = by_meter(renewal)[payments]
    assert (qty(line), line["amount"]) == ("111500", 609)
    assert line["description"] == (
        "Metered · " + payments.replace("_", " ") + " · 2.9% + $0.30 per transaction, min $0.50, max $5.00"
        " / 每笔交易 2.9% + $0.30，最低 $0.50，最高 $5.00"
    )
    details = line["details"]
    assert details["model"] == "percentage"
    assert details["transactions"] == {
        "count": 4,
        "free": 1,
        "paid": 3,
        "min_max_adjustment_decimal": "-2424.5",
    }
    assert (details["free_units"], details["billable_quantity"]) == ("10000", "101500")
    assert [row["amount_decimal"] for row in details["tiers"]] == ["2943.5", "90", "-2424.5"]
    assert renewal["total"] == 1000 + 609
    assert_invariants(renewal)


async def no_grace_window(api: httpx.AsyncClient) -> None:
    """Renewal invoices final at once, so that the next events of their period are late usage."""
    settings = await api.patch("/v1/settings", json={"usage": {"grace_period_seconds": 0}})
    assert settings.status_code == 200, settings.text


async def test_a_late_transaction_of_a_percentage_charge_is_adjusted_on_the_next_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    await no_grace_window(api)
    payments = await world.meter("sum")
    plan = await world.metered_plan(0, {"meter": payments, **CARD_FEES})
    customer = await world.customer()
    sub = await world.subscribe(customer, plan)
    await world.advance(APRIL + timedelta(days=20))
    await world.send(customer, payments, (APRIL + timedelta(days=1), 2000), (APRIL + timedelta(days=2), 2000))
    await world.advance(MAY + HOUR)
    # The late one is timestamped before both: it becomes the free first transaction, and $20.00 (88¢) is paid.
    await world.send(customer, payments, (APRIL, 2000))
    await world.advance(MAY + timedelta(days=31))
    invoices = await world.invoices(sub["id"])
    assert by_meter(invoices[1])[payments]["amount"] == 88  # (58 + 30)¢: the second $20.00 was free
    adjustment = by_meter(invoices[2], "adjustment")[payments]
    assert (qty(adjustment), adjustment["amount"]) == ("2000", 88)


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"fixed_fee": 30}, None, None),  # a typo: refused as an unknown field
        ({"rate": "-1"}, "charges[0].rate", "parameter_invalid"),
        ({"rate": "120"}, "charges[0].rate", "parameter_invalid"),
        ({"rate": None}, "charges[0].rate", "parameter_missing"),
        (
            {"per_transaction_min_amount": 600},
            "charges[0].per_transaction_min_amount",
            "parameter_conflict",
        ),
        ({"unit_amount": 5}, "charges[0].unit_amount", "parameter_not_allowed"),
    ],
)
async def test_invalid_percentage_charges_are_refused_with_the_field_named(
    api: httpx.AsyncClient, services: Services, change: dict[str, Any], param: str | None, code: str | None
) -> None:
    world = await start(api, services)
    payments = await world.meter("sum")
    body = {
        "code": "fees",
        "name": "Fees",
        "currency": "USD",
        "charges": [{"meter": payments, **CARD_FEES, **change}],
    }
    response = await api.post("/v1/plans", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if param is None:
        assert "fixed_fee" in error["message"]
    else:
        assert (error["param"], error["code"]) == (param, code)


async def test_a_percentage_charge_needs_a_sum_meter(api: httpx.AsyncClient, services: Services) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    response = await api.post(
        "/v1/plans",
        json={"code": "fees", "name": "Fees", "currency": "USD", "charges": [{"meter": calls, **CARD_FEES}]},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("charges[0].meter", "meter_aggregation_mismatch")


async def test_a_percentage_field_on_another_model_is_refused(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    response = await api.post(
        "/v1/plans",
        json={
            "code": "calls",
            "name": "Calls",
            "currency": "USD",
            "charges": [{"meter": calls, "model": "per_unit", "unit_amount": 2, "rate": "1"}],
        },
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("charges[0].rate", "parameter_not_allowed")


# --- minimum commitment ------------------------------------------------------------------------------------


async def committed(world: Metered, minimum: int = 5000) -> tuple[str, str, dict[str, Any]]:
    """$10 a month and 10¢ a call, with a $50 minimum per period: (meter, customer, subscription)."""
    calls = await world.meter("count")
    plan = await world.plan(
        1000,
        name="Metered",
        charges=[{"meter": calls, "model": "per_unit", "unit_amount": 10}],
        minimum_commitment=minimum,
    )
    assert (await world.get(f"/v1/plans/{plan}"))["minimum_commitment"] == minimum
    customer = await world.customer()
    return calls, customer, await world.subscribe(customer, plan)


def true_ups(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in invoice["lines"] if line["details"].get("reason") == "minimum_commitment"]


async def test_a_period_short_of_the_minimum_gets_a_true_up_line(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls, customer, sub = await committed(world)
    await world.advance(APRIL + timedelta(days=20))
    await world.count(customer, calls, *(APRIL + timedelta(days=1, minutes=i) for i in range(100)))
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    # $10 fixed + $10 usage = $20 of a $50 minimum: $30 more.
    assert [(line["type"], line["amount"]) for line in upcoming["lines"]] == [
        ("subscription", 1000),
        ("usage", 1000),
        ("adjustment", 3000),
    ]
    await world.advance(MAY + 2 * HOUR)
    _, renewal = await world.invoices(sub["id"])
    [line] = true_ups(renewal)
    assert (line["type"], line["amount"]) == ("adjustment", 3000)
    assert line["description"] == "Minimum commitment true-up · Metered / 最低消费补足 · Metered"
    assert (at(line["period"]["start"]), at(line["period"]["end"])) == (APRIL, MAY)
    assert {k: line["details"][k] for k in ("minimum_commitment", "fraction", "fixed_prorated", "usage")} == {
        "minimum_commitment": 5000,
        "fraction": "1/1",
        "fixed_prorated": 1000,
        "usage": 1000,
    }
    assert renewal["total"] == 1000 + 1000 + 3000  # May in advance, April's usage and April's true-up
    assert_invariants(renewal)


async def test_no_true_up_when_usage_reaches_the_minimum(api: httpx.AsyncClient, services: Services) -> None:
    world = await start(api, services)
    calls, customer, sub = await committed(world)
    await world.advance(APRIL + timedelta(days=20))
    # $10 fixed + 400 calls × 10¢ = $50: exactly the minimum, nothing to make up.
    await world.count(customer, calls, *(APRIL + timedelta(days=1, minutes=i) for i in range(400)))
    await world.advance(MAY + 2 * HOUR)
    _, renewal = await world.invoices(sub["id"])
    assert true_ups(renewal) == []
    assert renewal["total"] == 1000 + 4000


async def test_a_cancel_mid_period_owes_the_minimum_prorated(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls, customer, sub = await committed(world, minimum=6000)
    cancel_at = APRIL + timedelta(days=10)  # a third of April's 30 days
    await world.advance(cancel_at)
    await world.count(customer, calls, *(APRIL + timedelta(days=1, minutes=i) for i in range(50)))
    canceled = await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {})
    assert canceled["status"] == "canceled"
    await world.advance(cancel_at + 2 * HOUR)
    [_, final] = await world.invoices(sub["id"])
    assert final["billing_reason"] == "subscription_cancel"
    # A third of the $60 minimum is $20; a third of the $10 fee ($3.33⅓) and $5 of usage count: $11.66⅔ more.
    [line] = true_ups(final)
    assert (line["amount"], line["details"]["fraction"]) == (1167, "1/3")
    assert final["total"] == 500 + 1167


@pytest.mark.parametrize(("value", "message"), [(0, "at least 1"), (-5, "at least 1"), ("5000", "integer")])
async def test_an_invalid_minimum_commitment_is_refused(
    api: httpx.AsyncClient, services: Services, value: object, message: str
) -> None:
    await start(api, services)
    response = await api.post(
        "/v1/plans", json={"code": "min", "name": "Min", "currency": "USD", "minimum_commitment": value}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "minimum_commitment"
    assert message in error["message"].lower()


# --- per-customer prices -----------------------------------------------------------------------------------

CUSTOM = " (custom price / 专属价格)"


async def test_a_subscriptions_own_prices_bill_its_fee_and_usage_and_say_so(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    plan = await world.metered_plan(1000, {"meter": calls, "model": "per_unit", "unit_amount": 10})
    customer = await world.customer()
    overrides = {"amount": 700, "charges": [{"meter": calls, "model": "per_unit", "unit_amount": 5}]}
    sub = await world.subscribe(customer, plan, price_overrides=overrides)
    assert sub["price_overrides"]["plan"] == plan
    assert sub["price_overrides"]["amount_decimal"] == "700"
    [first] = await world.invoices(sub["id"])
    assert [(line["description"], line["amount"]) for line in first["lines"]] == [
        (f"1 × Metered{CUSTOM}", 700)
    ]
    await world.advance(APRIL + timedelta(days=20))
    await world.count(customer, calls, *(APRIL + timedelta(days=1, minutes=i) for i in range(100)))
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [(line["type"], line["amount"]) for line in upcoming["lines"]] == [
        ("subscription", 700),
        ("usage", 500),
    ]
    so_far = await world.get(f"/v1/subscriptions/{sub['id']}/usage")
    assert (so_far["total"], so_far["charges"][0]["amount"]) == (500, 500)
    await world.advance(MAY + 2 * HOUR)
    _, renewal = await world.invoices(sub["id"])
    assert [(line["type"], line["amount"]) for line in renewal["lines"]] == [
        ("subscription", 700),
        ("usage", 500),
    ]
    assert by_meter(renewal)[calls]["description"] == f"Metered{CUSTOM} · {calls.replace('_', ' ')}"
    # The plan itself is untouched: another customer pays its prices.
    assert (await world.get(f"/v1/plans/{plan}"))["amount"] == 1000
    other = await world.subscribe(await world.customer(), plan)
    assert other["price_overrides"] is None


async def test_new_prices_mid_period_are_prorated_and_a_plan_change_drops_them(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    pro = await world.plan(3000, name="Pro")
    customer = await world.customer()
    sub = await world.subscribe(customer, pro)
    await world.advance(APRIL + timedelta(days=10))  # 20 of April's 30 days remain
    changed = await world.post(
        f"/v1/subscriptions/{sub['id']}/change",
        {"price_overrides": {"amount": 1500}, "proration_behavior": "always_invoice"},
    )
    assert changed["price_overrides"] == {"plan": pro, "amount_decimal": "1500"}
    _, proration = await world.invoices(sub["id"])
    assert [(line["description"], line["amount"]) for line in proration["lines"]] == [
        ("Unused time on Pro", -2000),
        (f"Remaining time on Pro{CUSTOM}", 1000),
    ]
    assert proration["total"] == -1000
    await world.advance(MAY + HOUR)
    renewal = (await world.invoices(sub["id"]))[-1]
    assert [(line["description"], line["amount"]) for line in renewal["lines"]] == [
        (f"1 × Pro{CUSTOM}", 1500)
    ]
    team = await world.plan(5000, name="Team")
    moved = await world.post(
        f"/v1/subscriptions/{sub['id']}/change", {"plan": team, "proration_behavior": "none"}
    )
    assert moved["price_overrides"] is None


@pytest.mark.parametrize(
    ("change", "param", "code"),
    [
        ({"price_overrides": {"amout": 700}}, None, None),  # a typo: refused as an unknown field
        ({"price_overrides": {}}, "price_overrides", "parameter_missing"),
        ({"price_overrides": {"amount": -1}}, "price_overrides.amount", "parameter_invalid"),
        (
            {"price_overrides": {"charges": [{"meter": "elsewhere", "model": "per_unit", "unit_amount": 1}]}},
            "price_overrides.charges[0].meter",
            "parameter_invalid",
        ),
        (
            {"price_overrides": {"amount": 700}, "effective": "period_end"},
            "price_overrides",
            "parameter_invalid",
        ),
    ],
)
async def test_invalid_price_overrides_are_refused_with_the_field_named(
    api: httpx.AsyncClient, services: Services, change: dict[str, Any], param: str | None, code: str | None
) -> None:
    world = await start(api, services)
    customer = await world.customer()
    sub = await world.subscribe(customer, await world.plan(1000))
    response = await api.post(f"/v1/subscriptions/{sub['id']}/change", json=change)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if param is None:
        assert "amout" in error["message"]
    else:
        assert (error["param"], error["code"]) == (param, code)
    assert (await world.subscription(sub["id"]))["price_overrides"] is None


# --- avg aggregation ---------------------------------------------------------------------------------------


async def test_an_avg_meter_bills_the_mean_of_its_events_values(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    seats = await world.meter("avg")
    plan = await world.metered_plan(0, {"meter": seats, "model": "per_unit", "unit_amount": 100})
    customer = await world.customer()
    sub = await world.subscribe(customer, plan)
    await world.advance(APRIL + timedelta(days=20))
    day = APRIL + timedelta(days=3)
    await world.send(customer, seats, (day, 2), (day + HOUR, 4), (day + 2 * HOUR, "9.5"))
    await world.advance(MAY + 2 * HOUR)
    _, renewal = await world.invoices(sub["id"])
    line = by_meter(renewal)[seats]
    assert (qty(line), line["amount"], line["details"]["aggregation"]) == ("5.166666666667", 517, "avg")
    refused = await api.post(
        "/v1/usage_events",
        json={"id": "no-value", "customer": customer, "meter": seats, "timestamp": day.isoformat()},
    )
    assert refused.status_code == 400, refused.text


async def test_late_usage_lowers_the_true_up_it_was_billed_with(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    await no_grace_window(api)
    calls, customer, sub = await committed(world)
    await world.advance(APRIL + timedelta(days=20))
    await world.count(customer, calls, *(APRIL + timedelta(days=1, minutes=i) for i in range(100)))
    await world.advance(MAY + HOUR)
    _, may = await world.invoices(sub["id"])
    assert [line["amount"] for line in true_ups(may)] == [3000]
    # 50 more April calls arrive after April's invoice is final: $5 of late usage, and $5 less to make up.
    await world.count(customer, calls, *(APRIL + timedelta(days=2, minutes=i) for i in range(50)))
    await world.advance(JUNE + HOUR)
    _, _, june = await world.invoices(sub["id"])
    [late] = [line for line in june["lines"] if line["details"].get("reason") == "late_usage"]
    assert late["details"]["meter"] == calls
    assert (qty(late), late["amount"]) == ("50", 500)
    corrections = [(at(line["period"]["start"]), line["amount"]) for line in true_ups(june)]
    assert corrections == [(MAY, 4000), (APRIL, -500)]  # May had no usage: $50 − $10; April's lowered
    assert june["total"] == 1000 + 0 + 500 - 500 + 4000
    assert_invariants(june)


async def test_the_portal_shows_the_customer_the_price_they_pay_not_the_plans(
    api: httpx.AsyncClient, services: Services, app: Any
) -> None:
    world = await start(api, services)
    plan = await world.plan(1000)
    customer = await world.customer()
    await world.subscribe(customer, plan, price_overrides={"amount": 700})
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        page = visible_text((await browser.get("/portal/")).text)
    assert f"Pro{CUSTOM}" in page
    assert "$7.00" in page and "$10.00" not in page
