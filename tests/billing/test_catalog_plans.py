"""Plans through the HTTP API (SPEC §4 plans): pricing validated by the pure `plans` package with the field
path in `param`, meters referenced by code, codes unique, pricing frozen once in use, archive, price preview."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from billing.catalog.models import Meter
from billing.catalog.plans import ensure_plan_subscribable, get_plan, mark_plan_in_use, update_plan
from billing.catalog.schemas import PlanUpdate
from billing.db.engine import transaction
from billing.errors import Conflict
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.locks import backend_pid, wait_until_blocked_by


async def create_meter(api: httpx.AsyncClient, code: str = "api_calls", **fields: Any) -> dict:
    body = {"code": code, "name": code.replace("_", " ").title(), "aggregation": "sum", **fields}
    response = await api.post("/v1/meters", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def graduated(meter: str = "api_calls") -> dict:
    """1,000 calls free, then 0.5 cents each up to 10,000, then 0.2 cents, plus a 5.00 platform fee."""
    return {
        "meter": meter,
        "model": "graduated",
        "tiers": [
            {"up_to": 1000, "unit_amount": 0},
            {"up_to": 10000, "unit_amount_decimal": "0.5"},
            {"up_to": None, "unit_amount_decimal": "0.2", "flat_amount": 500},
        ],
    }


async def create_plan(api: httpx.AsyncClient, code: str = "pro", **fields: Any) -> dict:
    body = {"code": code, "name": "Pro", "currency": "USD", "interval": "month", "amount": 2900, **fields}
    response = await api.post("/v1/plans", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def mark_in_use(services: Services, merchant: NewMerchant, plan_id: str) -> None:
    """What the subscriptions feature does in the transaction that first subscribes to a plan."""
    async with transaction(services.sessions) as session:
        plan = await get_plan(session, merchant.id, plan_id)
        await mark_plan_in_use(session, plan)


async def error_of(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


# --- create, retrieve, list ------------------------------------------------------------------------------


async def test_create_returns_the_plan_with_its_charges_in_canonical_form(api: httpx.AsyncClient) -> None:
    await create_meter(api)
    plan = await create_plan(
        api, currency="usd", trial_period_days=14, charges=[graduated()], metadata={"tier": "b2b"}
    )
    assert plan["id"].startswith("plan_") and plan["object"] == "plan"
    assert plan["currency"] == "USD"
    assert (plan["interval"], plan["interval_count"]) == ("month", 1)
    assert (plan["amount"], plan["amount_decimal"]) == (2900, "2900")
    assert plan["trial_period_days"] == 14
    assert plan["active"] is True and plan["in_use"] is False
    assert plan["metadata"] == {"tier": "b2b"}
    [charge] = plan["charges"]
    assert charge["meter"] == "api_calls" and charge["model"] == "graduated"
    assert charge["unit_amount"] is None and charge["unit_amount_decimal"] is None
    assert charge["tiers"] == [
        {"up_to": 1000, "unit_amount": 0, "unit_amount_decimal": "0", "flat_amount": None},
        {"up_to": 10000, "unit_amount": None, "unit_amount_decimal": "0.5", "flat_amount": None},
        {"up_to": None, "unit_amount": None, "unit_amount_decimal": "0.2", "flat_amount": 500},
    ]
    fetched = await api.get(f"/v1/plans/{plan['id']}")
    assert fetched.status_code == 200 and fetched.json() == plan


async def test_a_fractional_advance_price_is_kept_exactly(api: httpx.AsyncClient) -> None:
    plan = await create_plan(api, code="micro", amount=None, amount_decimal="0.125000")
    assert (plan["amount"], plan["amount_decimal"]) == (None, "0.125")


async def test_a_plan_without_an_amount_costs_nothing_in_advance(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/plans", json={"code": "usage-only", "name": "Usage", "currency": "EUR"})
    assert response.status_code == 200, response.text
    assert (response.json()["amount"], response.json()["amount_decimal"]) == (0, "0")


@pytest.mark.parametrize(
    ("charge", "expected"),
    [
        ({"model": "per_unit", "unit_amount": 3}, {"unit_amount": 3, "unit_amount_decimal": "3"}),
        ({"model": "per_unit", "unit_amount_decimal": "0.0025"}, {"unit_amount": None}),
        (
            {"model": "package", "unit_amount": 100, "package_size": 1000, "free_units": 500},
            {"package_size": 1000, "free_units": 500},
        ),
        (
            {"model": "volume", "tiers": [{"up_to": 10, "unit_amount": 5}, {"unit_amount": 4}]},
            {
                "tiers": [
                    {"up_to": 10, "unit_amount": 5, "unit_amount_decimal": "5", "flat_amount": None},
                    {"up_to": None, "unit_amount": 4, "unit_amount_decimal": "4", "flat_amount": None},
                ]
            },
        ),
    ],
    ids=["per_unit", "per_unit-decimal", "package", "volume"],
)
async def test_every_pricing_model_is_accepted(api: httpx.AsyncClient, charge: dict, expected: dict) -> None:
    meter = await create_meter(api, code=f"m_{charge['model']}_{len(str(charge))}")
    plan = await create_plan(api, code=f"p_{meter['id']}", charges=[{"meter": meter["code"], **charge}])
    stored = plan["charges"][0]
    for key, value in expected.items():
        assert stored[key] == value


async def test_lists_are_newest_first_and_filter_by_code_and_active(api: httpx.AsyncClient) -> None:
    first = await create_plan(api, code="basic")
    second = await create_plan(api, code="team")
    await api.post(f"/v1/plans/{first['id']}/archive")
    listed = (await api.get("/v1/plans", params={"limit": 2})).json()
    assert [p["id"] for p in listed["data"]] == [second["id"], first["id"]]
    assert listed["url"] == "/v1/plans"
    by_code = (await api.get("/v1/plans", params={"code": "team"})).json()["data"]
    assert [p["id"] for p in by_code] == [second["id"]]
    active = (await api.get("/v1/plans", params={"active": "true", "limit": 100})).json()["data"]
    archived = (await api.get("/v1/plans", params={"active": "false", "limit": 100})).json()["data"]
    assert second["id"] in [p["id"] for p in active] and first["id"] not in [p["id"] for p in active]
    assert [p["id"] for p in archived] == [first["id"]]


# --- every invalid plan is a 4xx naming the field and why ------------------------------------------------

INVALID_PLANS = [
    ({"amount": -1}, "amount", "must not be negative"),
    ({"amount": None, "amount_decimal": "-0.5"}, "amount_decimal", "must not be negative"),
    ({"amount_decimal": "0.5"}, "amount_decimal", "not both"),
    ({"amount": None, "amount_decimal": "0.1234567890123"}, "amount_decimal", "at most 12"),
    ({"amount": 19.99}, "amount", "int"),
    ({"currency": "XYZ"}, "currency", "ISO 4217"),
    ({"currency": "DEM"}, "currency", "not a currency customers can pay in"),
    ({"interval": "fortnight"}, "interval", "'day', 'week', 'month', 'year'"),
    ({"interval_count": 0}, "interval_count", "between 1 and 36"),
    ({"interval": "year", "interval_count": 4}, "interval_count", "at most three years"),
    ({"trial_period_days": 0}, "trial_period_days", "between 1 and 730"),
    ({"code": "has space"}, "code", "letters, digits"),
    (
        {"charges": [{"meter": "calls", "model": "per_unit", "unit_amount": -3}]},
        "charges[0].unit_amount",
        "must not be negative",
    ),
    (
        {"charges": [{"meter": "calls", "model": "per_unit"}]},
        "charges[0].unit_amount",
        "is required",
    ),
    (
        {"charges": [{"meter": "calls", "model": "stairs", "unit_amount": 1}]},
        "charges[0].model",
        "'per_unit', 'graduated', 'volume', 'package'",
    ),
    (
        {"charges": [{"meter": "calls", "model": "package", "unit_amount": 100}]},
        "charges[0].package_size",
        "required for a package charge",
    ),
    (
        {"charges": [{"meter": "calls", "model": "package", "unit_amount": 100, "package_size": 0}]},
        "charges[0].package_size",
        "at least 1",
    ),
    (
        {"charges": [{"meter": "calls", "model": "graduated", "tiers": []}]},
        "charges[0].tiers",
        "at least one tier",
    ),
    (
        {
            "charges": [
                {
                    "meter": "calls",
                    "model": "graduated",
                    "tiers": [
                        {"up_to": 100, "unit_amount": 2},
                        {"up_to": 1000, "unit_amount": 1},
                        {"up_to": 1000, "unit_amount": 1},
                        {"up_to": None, "unit_amount": 0},
                    ],
                }
            ]
        },
        "charges[0].tiers[2].up_to",
        "must be greater than charges[0].tiers[1].up_to (1000)",
    ),
    (
        {
            "charges": [
                {
                    "meter": "calls",
                    "model": "volume",
                    "tiers": [{"up_to": 100, "unit_amount": 2}, {"up_to": 200, "unit_amount": 1}],
                }
            ]
        },
        "charges[0].tiers[1].up_to",
        "must be null (no limit) on the last tier",
    ),
    (
        {
            "charges": [
                {
                    "meter": "calls",
                    "model": "graduated",
                    "tiers": [{"up_to": None, "unit_amount_decimal": "1e3"}],
                }
            ]
        },
        "charges[0].tiers[0].unit_amount_decimal",
        "without an exponent",
    ),
    (
        {
            "charges": [
                {
                    "meter": "calls",
                    "model": "graduated",
                    "tiers": [{"up_to": None, "unit_amount": 1, "flat_amount": -100}],
                }
            ]
        },
        "charges[0].tiers[0].flat_amount",
        "must not be negative",
    ),
    (
        {
            "charges": [
                {"meter": "calls", "model": "graduated", "unit_amount": 5, "tiers": [{"unit_amount": 1}]}
            ]
        },
        "charges[0].unit_amount",
        "put unit prices on its tiers",
    ),
    (
        {"charges": [{"meter": "calls", "model": "per_unit", "unit_amount": 1, "free_units": -5}]},
        "charges[0].free_units",
        "must not be negative",
    ),
    (
        {"charges": [{"meter": "calls", "model": "per_unit", "unit_amount": 1.5}]},
        "charges[0].unit_amount",
        "expected int",
    ),
    (
        {
            "charges": [
                {"meter": "calls", "model": "per_unit", "unit_amount": 1},
                {"meter": "calls", "model": "per_unit", "unit_amount": 2},
            ]
        },
        "charges[1].meter",
        "already charged by charges[0]",
    ),
    (
        {"charges": [{"meter": "nope", "model": "per_unit", "unit_amount": 1}]},
        "charges[0].meter",
        "no meter with code 'nope'",
    ),
]


@pytest.mark.parametrize(
    ("fields", "param", "reason"), INVALID_PLANS, ids=[f"{case[1]}:{case[2]}" for case in INVALID_PLANS]
)
async def test_an_invalid_plan_is_a_400_naming_the_field_and_why(
    api: httpx.AsyncClient, fields: dict, param: str, reason: str
) -> None:
    await api.post("/v1/meters", json={"code": "calls", "name": "Calls", "aggregation": "count"})
    body = {"code": "bad", "name": "Bad", "currency": "USD", "interval": "month", "amount": 100, **fields}
    error = await error_of(await api.post("/v1/plans", json=body))
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert reason.lower() in error["message"].lower(), error["message"]
    # Nothing was created.
    assert (await api.get("/v1/plans", params={"code": "bad"})).json()["data"] == []


async def test_an_archived_meter_cannot_be_charged_by_a_new_plan(api: httpx.AsyncClient) -> None:
    meter = await create_meter(api, code="legacy_calls")
    await api.post(f"/v1/meters/{meter['id']}/archive")
    error = await error_of(
        await api.post(
            "/v1/plans",
            json={
                "code": "p",
                "name": "P",
                "currency": "USD",
                "charges": [{"meter": "legacy_calls", "model": "per_unit", "unit_amount": 1}],
            },
        )
    )
    assert error["param"] == "charges[0].meter" and error["code"] == "meter_archived"
    assert "unarchive" in error["message"]


async def test_archiving_a_meter_leaves_the_plans_that_charge_for_it_editable(api: httpx.AsyncClient) -> None:
    meter = await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    assert (await api.post(f"/v1/meters/{meter['id']}/archive")).status_code == 200
    # The plan keeps charging the archived meter, and may still re-price that charge...
    repriced = {"meter": "api_calls", "model": "per_unit", "unit_amount": 1}
    response = await api.patch(f"/v1/plans/{plan['id']}", json={"charges": [repriced]})
    assert response.status_code == 200, response.text
    # ...but another plan cannot start charging it.
    error = await error_of(
        await api.post(
            "/v1/plans", json={"code": "new", "name": "N", "currency": "USD", "charges": [repriced]}
        )
    )
    assert error["code"] == "meter_archived"


async def test_another_merchants_meter_is_unknown(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    await create_meter(api, code="secret_meter")
    error = await error_of(
        await other_api.post(
            "/v1/plans",
            json={
                "code": "p",
                "name": "P",
                "currency": "USD",
                "charges": [{"meter": "secret_meter", "model": "per_unit", "unit_amount": 1}],
            },
        )
    )
    assert error["param"] == "charges[0].meter" and error["code"] == "resource_missing"


async def test_plan_codes_are_unique_per_merchant(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    first = await create_plan(api, code="gold")
    error = await error_of(
        await api.post("/v1/plans", json={"code": "gold", "name": "Gold 2", "currency": "USD"}), 409
    )
    assert error["type"] == "conflict" and error["param"] == "code"
    assert first["id"] in error["message"]
    # Another merchant may use the same code.
    assert (
        await other_api.post("/v1/plans", json={"code": "gold", "name": "G", "currency": "USD"})
    ).status_code == 200
    # Renaming another plan onto a taken code is the same conflict.
    other = await create_plan(api, code="silver")
    error = await error_of(await api.patch(f"/v1/plans/{other['id']}", json={"code": "gold"}), 409)
    assert error["param"] == "code" and first["id"] in error["message"]


# --- update: pricing while not in use, 409 once in use ---------------------------------------------------


async def test_pricing_of_a_plan_not_in_use_can_change(api: httpx.AsyncClient) -> None:
    await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    response = await api.patch(
        f"/v1/plans/{plan['id']}",
        json={
            "amount_decimal": "3900.5",
            "interval": "year",
            "charges": [{"meter": "api_calls", "model": "per_unit", "unit_amount": 1}],
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["amount"], updated["amount_decimal"], updated["interval"]) == (None, "3900.5", "year")
    assert updated["charges"][0]["model"] == "per_unit"
    event = (await api.get("/v1/events", params={"type": "plan.updated", "object_id": plan["id"]})).json()[
        "data"
    ][0]
    assert event["data"]["object"]["interval"] == "year"
    assert event["data"]["previous_attributes"]["interval"] == "month"
    assert event["data"]["previous_attributes"]["amount"] == 2900


async def test_a_plan_in_use_refuses_a_pricing_change_with_409(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    await mark_in_use(services, merchant, plan["id"])
    assert (await api.get(f"/v1/plans/{plan['id']}")).json()["in_use"] is True

    for change, param in (
        ({"amount": 3900}, "amount"),
        ({"currency": "EUR"}, "currency"),
        ({"interval_count": 3}, "interval_count"),
        ({"trial_period_days": 30}, "trial_period_days"),
        ({"charges": []}, "charges"),
    ):
        error = await error_of(await api.patch(f"/v1/plans/{plan['id']}", json=change), 409)
        assert error["type"] == "conflict" and error["code"] == "plan_in_use" and error["param"] == param
        assert f"Plan {plan['id']} is used by subscriptions, so its pricing cannot change" in error["message"]
        assert "create a new plan" in error["message"]
    assert (await api.get(f"/v1/plans/{plan['id']}")).json()["amount"] == 2900


async def test_a_plan_in_use_still_takes_the_same_pricing_and_new_names(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    await mark_in_use(services, merchant, plan["id"])
    # The same pricing spelled differently ("usd", the amount as a decimal) is no change.
    response = await api.patch(
        f"/v1/plans/{plan['id']}",
        json={
            "name": "Pro (2027)",
            "description": "For teams",
            "metadata": {"segment": "smb"},
            "currency": "usd",
            "amount_decimal": "2900.000",
            "charges": [graduated()],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["metadata"]) == (
        "Pro (2027)",
        "For teams",
        {"segment": "smb"},
    )
    assert body["amount"] == 2900 and body["charges"] == plan["charges"]


async def test_marking_a_plan_in_use_freezes_its_meters_and_emits_events(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    meter = await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    await mark_in_use(services, merchant, plan["id"])
    await mark_in_use(services, merchant, plan["id"])  # twice is harmless
    assert (await api.get(f"/v1/meters/{meter['id']}")).json()["in_use"] is True
    error = await error_of(await api.patch(f"/v1/meters/{meter['id']}", json={"aggregation": "max"}), 409)
    assert error["code"] == "meter_in_use" and error["param"] == "aggregation"
    for object_id, event_type in ((plan["id"], "plan.updated"), (meter["id"], "meter.updated")):
        events = (await api.get("/v1/events", params={"object_id": object_id, "type": event_type})).json()[
            "data"
        ]
        assert len(events) == 1
        assert events[0]["data"]["previous_attributes"] == {"in_use": False}
    async with services.sessions() as session:
        stored = await session.scalar(select(Meter).where(Meter.id == meter["id"]))
        assert stored is not None and stored.in_use_since is not None


async def test_marking_in_use_waits_for_a_concurrent_pricing_change_and_reads_the_new_price(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    plan = await create_plan(api)
    async with services.sessions() as editor, services.sessions() as subscriber:
        stale = await get_plan(subscriber, merchant.id, plan["id"])  # a subscription read the old price
        subscriber_pid = await backend_pid(subscriber)
        async with editor.begin():
            await update_plan(editor, merchant.id, plan["id"], PlanUpdate(amount=3900))
            marking = asyncio.create_task(mark_plan_in_use(subscriber, stale))
            # It waits for the editor's row lock: PostgreSQL says so, and it has not finished.
            editor_pid = await backend_pid(editor)
            assert await wait_until_blocked_by(services, editor_pid, marking) == subscriber_pid
            assert not marking.done()
        marked = await marking
        assert marked.amount_decimal == Decimal(3900)  # and then prices with what was committed
        await subscriber.commit()
    error = await error_of(await api.patch(f"/v1/plans/{plan['id']}", json={"amount": 4900}), 409)
    assert error["code"] == "plan_in_use"


# --- archive ---------------------------------------------------------------------------------------------


async def test_an_archived_plan_is_not_subscribable_until_unarchived(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    plan = await create_plan(api)
    archived = await api.post(f"/v1/plans/{plan['id']}/archive")
    assert archived.status_code == 200 and archived.json()["active"] is False
    assert (await api.post(f"/v1/plans/{plan['id']}/archive")).status_code == 200  # idempotent
    async with services.sessions() as session:
        stored = await get_plan(session, merchant.id, plan["id"])
        with pytest.raises(Conflict) as refused:
            ensure_plan_subscribable(stored)
    assert refused.value.status == 409 and refused.value.param == "plan"
    assert refused.value.code == "plan_archived" and "unarchive" in refused.value.message

    assert (await api.post(f"/v1/plans/{plan['id']}/unarchive")).json()["active"] is True
    async with services.sessions() as session:
        ensure_plan_subscribable(await get_plan(session, merchant.id, plan["id"]))
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": plan["id"]})).json()["data"]
    ]
    assert types == ["plan.unarchived", "plan.archived", "plan.created"]


# --- price preview ---------------------------------------------------------------------------------------


async def test_price_preview_prices_graduated_usage_with_its_tier_breakdown(api: httpx.AsyncClient) -> None:
    await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    response = await api.get(
        f"/v1/plans/{plan['id']}/price_preview", params={"quantity": 3, "usage[api_calls]": "12345"}
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    advance, usage = preview["lines"]
    # 3 seats × 29.00, billed in advance.
    assert (advance["type"], advance["billed"], advance["amount"]) == ("subscription", "in_advance", 8700)
    # 1,000 free; 9,000 × 0.5 = 4,500; 2,345 × 0.2 = 469 plus the 500 flat fee of the last tier.
    assert (usage["type"], usage["billed"], usage["meter"]) == ("usage", "in_arrears", "api_calls")
    assert [
        (t["quantity"], t["unit_amount_decimal"], t["flat_amount"], t["amount_decimal"])
        for t in usage["tiers"]
    ] == [
        ("1000", "0", 0, "0"),
        ("9000", "0.5", 0, "4500"),
        ("2345", "0.2", 500, "969"),
    ]
    assert usage["amount"] == 5469
    assert preview["subtotal"] == 8700 + 5469
    assert preview["currency"] == "USD" and preview["plan"] == plan["id"]
    # The body form answers the same.
    posted = await api.post(
        f"/v1/plans/{plan['id']}/price_preview", json={"quantity": 3, "usage": {"api_calls": 12345}}
    )
    assert posted.status_code == 200 and posted.json() == preview


async def test_price_preview_rounds_each_line_once_half_up(api: httpx.AsyncClient) -> None:
    await create_meter(api, code="gb_hours")
    plan = await create_plan(
        api,
        amount=None,
        amount_decimal="0.5",
        charges=[{"meter": "gb_hours", "model": "per_unit", "unit_amount_decimal": "0.25"}],
    )
    preview = (
        await api.post(
            f"/v1/plans/{plan['id']}/price_preview", json={"quantity": 5, "usage": {"gb_hours": "10.5"}}
        )
    ).json()
    advance, usage = preview["lines"]
    assert (advance["amount_decimal"], advance["amount"]) == ("2.5", 3)
    assert (usage["amount_decimal"], usage["amount"]) == ("2.625", 3)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"usage[unknown]": "5"}, "usage[unknown]"),
        ({"usage[api_calls]": "-5"}, "usage[api_calls]"),
        ({"usage[api_calls]": "1e9"}, "usage[api_calls]"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "many"}, "quantity"),
    ],
)
async def test_price_preview_refuses_bad_input_naming_it(
    api: httpx.AsyncClient, params: dict, param: str
) -> None:
    await create_meter(api)
    plan = await create_plan(api, charges=[graduated()])
    error = await error_of(await api.get(f"/v1/plans/{plan['id']}/price_preview", params=params))
    assert error["param"] == param, error


# --- tenant isolation of lists (the per-id routes are rows of test_tenant_isolation.py) -------------------


async def test_catalog_lists_show_only_the_callers_objects(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    mine = [
        (await create_meter(api, code="mine"))["id"],
        (await create_plan(api, code="mine"))["id"],
        (await api.post("/v1/coupons", json={"percent_off": 5})).json()["id"],
        (await api.post("/v1/tax_rates", json={"display_name": "T", "percentage": "5"})).json()["id"],
    ]
    for path, object_id in zip(
        ("/v1/meters", "/v1/plans", "/v1/coupons", "/v1/tax_rates"), mine, strict=True
    ):
        theirs = (await other_api.get(path, params={"limit": 100})).json()["data"]
        assert object_id not in [item["id"] for item in theirs], path
        cursor = await other_api.get(path, params={"starting_after": object_id})
        assert cursor.status_code == 400 and cursor.json()["error"]["param"] == "starting_after"
    assert (await other_api.get("/v1/plans", params={"code": "mine"})).json()["data"] == []
