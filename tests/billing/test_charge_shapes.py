"""Charge shapes of issue 17 through the HTTP API on test clocks: a percentage charge (rate, fixed fee, min and
max per transaction, free first transactions) on the upcoming invoice and the renewal, late transactions
adjusted, and the validation of its fields."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing.services import Services
from tests.billing.test_usage_billing import APRIL, HOUR, MAY, assert_invariants, by_meter, qty, start

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


async def test_a_late_transaction_of_a_percentage_charge_is_adjusted_on_the_next_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    settings = await api.patch("/v1/settings", json={"usage": {"grace_period_seconds": 0}})
    assert settings.status_code == 200, settings.text
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
