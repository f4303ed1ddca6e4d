"""Entitlements through the HTTP API on test clocks (issue 17 item 5), and plans and meters referred to by code
wherever an id is accepted (item 6)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billing.services import Services
from tests.billing.world import T0, Billing


def _code(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def _feature(world: Billing, type_: str = "boolean", **fields: Any) -> str:
    code = _code(type_)
    await world.post("/v1/features", {"code": code, "name": code.title(), "type": type_, **fields})
    return code


async def _grant(world: Billing, plan: str, feature: str, value: Any) -> dict[str, Any]:
    return await world.post(f"/v1/plans/{plan}/entitlements", {"feature": feature, "value": value})


async def _entitlements(world: Billing, customer: str) -> dict[str, Any]:
    found = await world.get(f"/v1/customers/{customer}/entitlements")
    return {e["feature"]: e["value"] for e in found["entitlements"]}


async def _announced(world: Billing, customer: str) -> list[dict[str, Any]]:
    """The customer.entitlements_updated events about `customer`, oldest first."""
    events = await world.get(
        "/v1/events", object_id=customer, type="customer.entitlements_updated", limit=100
    )
    return list(reversed(events["data"]))


async def test_a_plan_and_a_meter_are_found_by_code_wherever_their_id_is(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    meter_code = _code("calls")
    meter = await world.post("/v1/meters", {"code": meter_code, "name": "Calls", "aggregation": "count"})
    assert (await world.get(f"/v1/meters/{meter_code}"))["id"] == meter["id"]
    basic_code, pro_code = _code("basic"), _code("pro")
    basic = await world.plan(1000, code=basic_code)
    pro = await world.plan(3000, code=pro_code)
    assert (await world.get(f"/v1/plans/{pro_code}"))["id"] == pro
    renamed = (await api.patch(f"/v1/plans/{pro_code}", json={"name": "Pro+"})).json()
    assert (renamed["id"], renamed["name"]) == (pro, "Pro+")
    preview = await world.post(f"/v1/plans/{basic_code}/price_preview", {"quantity": 2})
    assert (preview["plan"], preview["subtotal"]) == (basic, 2000)
    sub = await world.subscribe(await world.customer(), basic_code)
    assert sub["plan"] == basic
    changed = await world.post(
        f"/v1/subscriptions/{sub['id']}/change", {"plan": pro_code, "proration_behavior": "none"}
    )
    assert changed["plan"] == pro
    # The current plan's code is the current plan: no change at all.
    same = await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": pro_code, "quantity": 1})
    assert (same["plan"], same["quantity"]) == (pro, 1)
    listed = await world.get("/v1/subscriptions", plan=pro_code)
    assert [s["id"] for s in listed["data"]] == [sub["id"]]
    assert (await world.get("/v1/subscriptions", plan=basic_code))["data"] == []
    missing = await api.get("/v1/plans/no-such-plan")
    assert missing.status_code == 404
    assert "no-such-plan" in missing.json()["error"]["message"]


async def test_a_code_shaped_like_an_id_is_refused(api: httpx.AsyncClient) -> None:
    id_shaped = "plan_" + "A" * 24
    body = {"code": id_shaped, "name": "X", "currency": "USD", "interval": "month", "amount": 100}
    refused = await api.post("/v1/plans", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "code"
    assert "shape of an object id" in refused.json()["error"]["message"]
    meter = await api.post(
        "/v1/meters", json={"code": "mtr_" + "b" * 24, "name": "X", "aggregation": "count"}
    )
    assert meter.status_code == 400
    feature = await api.post("/v1/features", json={"code": "feat_" + "c" * 24, "name": "X"})
    assert feature.status_code == 400


async def test_features_are_created_listed_updated_and_archived(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    code = _code("support")
    created = await world.post(
        "/v1/features",
        {
            "code": code,
            "name": "Support",
            "description": "Support tier",
            "type": "enum",
            "options": ["email", "priority", "dedicated"],
        },
    )
    assert (created["object"], created["type"], created["options"], created["active"]) == (
        "feature",
        "enum",
        ["email", "priority", "dedicated"],
        True,
    )
    assert created["id"].startswith("feat_")
    assert (await world.get(f"/v1/features/{code}"))["id"] == created["id"]
    assert [f["id"] for f in (await world.get("/v1/features", code=code))["data"]] == [created["id"]]
    updated = (await api.patch(f"/v1/features/{created['id']}", json={"name": "Support tier"})).json()
    assert updated["name"] == "Support tier"
    archived = await world.post(f"/v1/features/{code}/archive")
    assert archived["active"] is False
    assert [f["id"] for f in (await world.get("/v1/features", active="false", code=code))["data"]] == [
        created["id"]
    ]
    duplicate = await api.post("/v1/features", json={"code": code, "name": "Again"})
    assert duplicate.status_code == 409
    assert "archived" in duplicate.json()["error"]["message"]
    plan = await world.plan(1000)
    refused = await api.post(f"/v1/plans/{plan}/entitlements", json={"feature": code, "value": "email"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "feature_archived"
    assert (await world.post(f"/v1/features/{code}/unarchive"))["active"] is True
    types = await api.post("/v1/features", json={"code": _code("x"), "name": "X", "type": "quota"})
    assert types.status_code == 400
    assert types.json()["error"]["param"] == "type"
    no_options = await api.post("/v1/features", json={"code": _code("x"), "name": "X", "type": "enum"})
    assert no_options.status_code == 400
    assert no_options.json()["error"]["param"] == "options"


async def test_a_plan_grants_values_of_each_features_type(api: httpx.AsyncClient, services: Services) -> None:
    world = Billing(api, services)
    sso, seats = await _feature(world), await _feature(world, "limit")
    support = await _feature(world, "enum", options=["email", "priority"])
    plan_code = _code("team")
    plan = await world.plan(1000, code=plan_code)
    await _grant(world, plan_code, sso, True)
    await _grant(world, plan, seats, 5)
    granted = await _grant(world, plan, support, "priority")
    assert granted["object"] == "plan_entitlements"
    assert granted["plan"] == plan
    assert [(e["feature"], e["type"], e["value"]) for e in granted["entitlements"]] == sorted(
        [(sso, "boolean", True), (seats, "limit", 5), (support, "enum", "priority")]
    )
    changed = await _grant(world, plan, seats, 8)
    assert {e["feature"]: e["value"] for e in changed["entitlements"]}[seats] == 8
    events = await world.get("/v1/events", object_id=plan, type="plan.entitlements_updated", limit=10)
    assert len(events["data"]) == 4
    assert {
        e["feature"]: e["value"] for e in events["data"][0]["data"]["previous_attributes"]["entitlements"]
    }[seats] == 5
    # Granting the same value again changes nothing and writes no event.
    await _grant(world, plan, seats, 8)
    assert len((await world.get("/v1/events", object_id=plan, type="plan.entitlements_updated"))["data"]) == 4
    for feature, value, expected in [
        (sso, 1, "true or false"),
        (seats, -3, "whole number"),
        (seats, "5", "whole number"),
        (support, "gold", "one of 'email', 'priority'"),
    ]:
        refused = await api.post(f"/v1/plans/{plan}/entitlements", json={"feature": feature, "value": value})
        assert refused.status_code == 400, (feature, value)
        assert expected in refused.json()["error"]["message"]
        assert refused.json()["error"]["param"] == "value"
    unknown = await api.post(f"/v1/plans/{plan}/entitlements", json={"feature": "nope", "value": True})
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (404, "feature")
    removed = (await api.delete(f"/v1/plans/{plan}/entitlements/{sso}")).json()
    assert sso not in {e["feature"] for e in removed["entitlements"]}
    assert (await api.delete(f"/v1/plans/{plan}/entitlements/{sso}")).status_code == 404
    listed = await world.get(f"/v1/plans/{plan_code}/entitlements")
    assert listed == removed


async def test_an_upgrade_raises_them_and_a_cancel_at_period_end_keeps_them_until_the_end(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    sso, seats = await _feature(world), await _feature(world, "limit")
    basic, pro = await world.plan(1000), await world.plan(3000)
    await _grant(world, basic, seats, 3)
    await _grant(world, pro, seats, 20)
    await _grant(world, pro, sso, True)
    customer = await world.customer()
    assert await _entitlements(world, customer) == {}
    sub = await world.subscribe(customer, basic)
    assert await _entitlements(world, customer) == {seats: 3}
    [started] = await _announced(world, customer)
    assert started["data"]["object"]["entitlements"] == [
        {"feature": seats, "type": "limit", "value": 3, "plans": [basic]}
    ]
    assert started["data"]["previous_attributes"] == {"entitlements": []}

    await world.advance(T0 + timedelta(days=10))
    await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": pro})
    assert await _entitlements(world, customer) == {seats: 20, sso: True}
    upgraded = (await _announced(world, customer))[-1]
    assert upgraded["data"]["previous_attributes"]["entitlements"][0]["value"] == 3

    # A metadata update changes nothing the customer may use: no event.
    await api.patch(f"/v1/subscriptions/{sub['id']}", json={"metadata": {"k": "v"}})
    assert len(await _announced(world, customer)) == 2

    pending = await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    period_end = datetime.fromisoformat(pending["current_period_end"])
    await world.advance(period_end - timedelta(hours=1))
    assert await _entitlements(world, customer) == {seats: 20, sso: True}
    assert len(await _announced(world, customer)) == 2
    await world.advance(period_end + timedelta(hours=1))
    assert (await world.subscription(sub["id"]))["status"] == "canceled"
    assert await _entitlements(world, customer) == {}
    ended = (await _announced(world, customer))[-1]
    assert ended["data"]["object"]["entitlements"] == []
    assert len(await _announced(world, customer)) == 3


async def test_across_subscriptions_the_highest_value_wins_and_ended_ones_give_nothing(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(datetime(2027, 3, 1, tzinfo=UTC))
    seats = await _feature(world, "limit")
    support = await _feature(world, "enum", options=["email", "priority", "dedicated"])
    small, large, card_only = await world.plan(500), await world.plan(900), await world.plan(700)
    await _grant(world, small, seats, 10)
    await _grant(world, small, support, "priority")
    await _grant(world, large, seats, 50)
    await _grant(world, large, support, "email")
    await _grant(world, card_only, seats, 1000)
    customer = await world.customer()
    await world.subscribe(customer, small)
    second = await world.subscribe(customer, large, trial_period_days=7)
    assert second["status"] == "trialing"
    found = (await world.get(f"/v1/customers/{customer}/entitlements"))["entitlements"]
    # One entry per feature, by feature code.
    assert found == sorted(
        [
            {"feature": seats, "type": "limit", "value": 50, "plans": [large]},
            {"feature": support, "type": "enum", "value": "priority", "plans": [small]},
        ],
        key=lambda entry: entry["feature"],
    )
    # charge_automatically without a payment method: the subscription is incomplete and grants nothing.
    incomplete = await world.post(
        "/v1/subscriptions",
        {"customer": customer, "plan": card_only, "collection_method": "charge_automatically"},
    )
    assert incomplete["status"] == "incomplete"
    assert (await _entitlements(world, customer))[seats] == 50
    await world.post(f"/v1/subscriptions/{second['id']}/cancel", {})
    assert await _entitlements(world, customer) == {seats: 10, support: "priority"}
    missing = await api.get("/v1/customers/cus_000000000000000000000000/entitlements")
    assert missing.status_code == 404


async def test_a_downgrade_at_the_period_end_keeps_the_higher_values_until_the_renewal(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    seats = await _feature(world, "limit")
    pro, basic = await world.plan(3000), await world.plan(1000)
    await _grant(world, pro, seats, 20)
    await _grant(world, basic, seats, 3)
    customer = await world.customer()
    sub = await world.subscribe(customer, pro)
    pending = await world.post(
        f"/v1/subscriptions/{sub['id']}/change", {"plan": basic, "effective": "period_end"}
    )
    assert pending["pending_change"]["plan"] == basic
    assert await _entitlements(world, customer) == {seats: 20}
    await world.advance(datetime.fromisoformat(pending["current_period_end"]) + timedelta(hours=1))
    assert (await world.subscription(sub["id"]))["plan"] == basic
    assert await _entitlements(world, customer) == {seats: 3}
    announced = await _announced(world, customer)
    assert [event["data"]["object"]["entitlements"][0]["value"] for event in announced] == [20, 3]


async def test_an_add_on_grants_its_plans_values_while_it_is_an_item(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    sso, seats = await _feature(world), await _feature(world, "limit")
    team, pack = await world.plan(3000), await world.plan(1000)
    await _grant(world, team, seats, 5)
    await _grant(world, pack, seats, 10)
    await _grant(world, pack, sso, True)
    customer = await world.customer()
    sub = await world.subscribe(customer, team)
    assert await _entitlements(world, customer) == {seats: 5}
    assert len(await _announced(world, customer)) == 1

    item = await world.post(f"/v1/subscriptions/{sub['id']}/items", {"plan": pack, "quantity": 2})
    # The add-on's plan grants as a plan does: the highest value wins, a quantity multiplies nothing (features
    # sorted by code: "boolean-…" before "limit-…").
    found = await world.get(f"/v1/customers/{customer}/entitlements")
    assert found["entitlements"] == [
        {"feature": sso, "type": "boolean", "value": True, "plans": [pack]},
        {"feature": seats, "type": "limit", "value": 10, "plans": [pack]},
    ]
    added = (await _announced(world, customer))[-1]
    assert added["data"]["previous_attributes"]["entitlements"] == [
        {"feature": seats, "type": "limit", "value": 5, "plans": [team]}
    ]
    # A quantity change keeps the item: nothing changes, nothing is announced.
    await world.post(f"/v1/subscriptions/{sub['id']}/items/{item['id']}", {"quantity": 3})
    assert len(await _announced(world, customer)) == 2

    removed = await api.delete(f"/v1/subscriptions/{sub['id']}/items/{item['id']}")
    assert removed.status_code == 200, removed.text
    assert await _entitlements(world, customer) == {seats: 5}
    assert len(await _announced(world, customer)) == 3
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {})
    assert await _entitlements(world, customer) == {}
