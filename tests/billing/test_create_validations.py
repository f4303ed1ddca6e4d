"""Every validation of the create paths, as a table (issue 19 item 1): each bad input answers an error that names
the parameter and says what to do, and creates nothing.

The statuses follow SPEC §3 as Stripe does: 400 for an invalid value, 404 (`resource_missing`) for an id or code
that names nothing in this account, 402 (`card_error`) for card details a card network would refuse."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from billing.api.errors import explain_constraint

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}


def plan(**fields: Any) -> dict[str, Any]:
    return {"code": "p1", "name": "P", "currency": "USD", "amount": 100, **fields}


def charge(**fields: Any) -> dict[str, Any]:
    return {"meter": "{meter}", "model": "per_unit", "unit_amount": 1, **fields}


def subscription(**fields: Any) -> dict[str, Any]:
    return {"customer": "{customer}", "plan": "{plan}", **fields}


def event(**fields: Any) -> dict[str, Any]:
    return {"id": "e1", "customer": "{customer}", "meter": "{meter}", "timestamp": "{now}", **fields}


def endpoint(**fields: Any) -> dict[str, Any]:
    return {"url": "https://example.com/hook", "enabled_events": ["*"], **fields}


@dataclass(frozen=True)
class Bad:
    path: str
    body: dict[str, Any]
    param: str
    # Words of the message that tell the caller what to send instead.
    advice: str
    status: int = 400


TABLE = [
    Bad("/v1/customers", {"email": "not-an-email"}, "email", "/schema/openapi.json"),
    Bad("/v1/customers", {"currency": "ZZZ"}, "currency", "use a code such as 'USD'"),
    Bad("/v1/customers", {"timezone": "Mars/Base"}, "timezone", "such as 'America/New_York'"),
    Bad("/v1/customers", {"locale": "klingon"}, "locale", "/schema/openapi.json"),
    Bad("/v1/customers", {"test_clock": "clk_nope"}, "test_clock", "Check the id", 404),
    Bad("/v1/customers", {"tax_ids": [{"type": "xx_vat", "value": "1"}]}, "tax_ids[0].type", "one of cn_tin"),
    Bad("/v1/customers", {"name": "x" * 300}, "name", "at most"),
    Bad("/v1/plans", plan(code="has space"), "code", "e.g. 'api_calls'"),
    Bad("/v1/plans", plan(currency="ZZZ"), "currency", "use a code such as"),
    Bad("/v1/plans", plan(interval="fortnight"), "interval", "one of 'day', 'week', 'month', 'year'"),
    Bad("/v1/plans", plan(interval_count=0), "interval_count", "between 1 and 36"),
    Bad("/v1/plans", plan(amount=-1), "amount", "must not be negative"),
    Bad("/v1/plans", plan(amount_decimal="100"), "amount_decimal", "either amount or amount_decimal"),
    Bad("/v1/plans", plan(trial_period_days=-1), "trial_period_days", "or null for no trial"),
    Bad("/v1/plans", plan(charges=[charge(meter="nope")]), "charges[0].meter", "Create it first", 400),
    Bad("/v1/plans", plan(charges=[charge(), charge()]), "charges[1].meter", "Merge the two charges"),
    Bad("/v1/plans", plan(charges=[charge(model="magic")]), "charges[0].model", "one of 'per_unit'"),
    Bad(
        "/v1/plans",
        plan(charges=[{"meter": "{meter}", "model": "graduated"}]),
        "charges[0].tiers",
        "at least one tier",
    ),
    Bad("/v1/coupons", {"percent_off": 150}, "percent_off", "at most 100"),
    Bad("/v1/coupons", {"duration": "once"}, "percent_off", "exactly one of percent_off and amount_off"),
    Bad("/v1/coupons", {"amount_off": 500}, "currency", "the currency the amount is in"),
    Bad("/v1/coupons", {"percent_off": 10, "duration": "repeating"}, "duration_in_periods", "at least 1"),
    Bad("/v1/coupons", {"percent_off": 10, "max_redemptions": 0}, "max_redemptions", "or null for no limit"),
    Bad("/v1/coupons", {"percent_off": 10, "redeem_by": "2020-01-01T00:00:00Z"}, "redeem_by", "Archive the"),
    Bad("/v1/tax_rates", {"display_name": "VAT", "percentage": -5}, "percentage", "between 0 and 100"),
    Bad("/v1/tax_rates", {"display_name": "VAT", "percentage": 200}, "percentage", "between 0 and 100"),
    Bad("/v1/tax_rates", {"display_name": "", "percentage": 20}, "display_name", "must not be empty"),
    Bad("/v1/meters", {"code": "m1", "name": "M", "aggregation": "median"}, "aggregation", "one of 'count'"),
    Bad(
        "/v1/meters", {"code": "m1", "name": "M", "aggregation": "sum", "property": "n"}, "property", "remove"
    ),
    Bad(
        "/v1/meters", {"code": "m1", "name": "M", "aggregation": "unique_count"}, "property", "e.g. 'user_id'"
    ),
    Bad("/v1/meters", {"code": "bad code", "name": "M", "aggregation": "count"}, "code", "e.g. 'api_calls'"),
    Bad("/v1/subscriptions", subscription(customer="cus_nope"), "customer", "Check the id", 404),
    Bad("/v1/subscriptions", subscription(plan="plan_nope"), "plan", "Check the id", 404),
    Bad("/v1/subscriptions", subscription(plan="{eur_plan}"), "plan", "Use a plan in USD"),
    Bad(
        "/v1/subscriptions",
        subscription(collection_method="send_invoice"),
        "days_until_due",
        "Send it, or use collection_method=charge_automatically",
    ),
    Bad("/v1/subscriptions", subscription(tax_rates=["{tax_rate}"] * 2), "tax_rates", "List each rate once"),
    Bad(
        "/v1/subscriptions",
        subscription(billing_cycle_anchor="2020-01-01T00:00:00Z"),
        "billing_cycle_anchor",
        "must be a future instant",
    ),
    Bad("/v1/subscriptions", subscription(quantity=0), "quantity", "at least 1"),
    Bad("/v1/subscriptions", subscription(trial_period_days=1000), "trial_period_days", "at most 730"),
    Bad("/v1/subscriptions", subscription(coupon="{eur_coupon}"), "coupon", "Use a coupon in USD"),
    Bad(
        "/v1/subscriptions",
        subscription(default_payment_method="pm_nope"),
        "default_payment_method",
        "Attach",
    ),
    Bad("/v1/payment_methods", {"customer": "{customer}"}, "card", "Give exactly one of card"),
    Bad(
        "/v1/payment_methods",
        {"customer": "{customer}", "card": {**CARD, "number": "4242424242424241"}},
        "card[number]",
        "Check the number",
        402,
    ),
    Bad(
        "/v1/payment_methods",
        {"customer": "{customer}", "card": {**CARD, "exp_month": 13}},
        "card[exp_month]",
        "from 1 to 12",
        402,
    ),
    Bad(
        "/v1/payment_methods",
        {"customer": "{customer}", "card": {**CARD, "exp_month": 1, "exp_year": 2020}},
        "card[exp_year]",
        "Use a card that has not expired",
        402,
    ),
    Bad("/v1/payment_methods", {"customer": "{customer}", "token": "tok_nope"}, "token", "Check the id", 404),
    Bad("/v1/payment_methods", {"customer": "cus_nope", "card": CARD}, "customer", "Check the id", 404),
    Bad("/v1/usage_events", event(customer="cus_nope"), "customer", "Create the customer first"),
    Bad("/v1/usage_events", event(meter="nope"), "meter", "Create it first"),
    Bad("/v1/usage_events", event(timestamp="yesterday"), "timestamp", "e.g. '2026-11-25T10:00:00Z'"),
    Bad("/v1/usage_events", {k: v for k, v in event().items() if k != "id"}, "id", "your own unique id"),
    Bad("/v1/usage_events", event(meter="{sum_meter}"), "value", "send the quantity as a number"),
    Bad("/v1/webhook_endpoints", endpoint(url="ftp://example.com/hook"), "url", "must start with https://"),
    Bad("/v1/webhook_endpoints", endpoint(url="http://169.254.169.254/h"), "url", "only delivered to public"),
    Bad(
        "/v1/webhook_endpoints", endpoint(enabled_events=["nonsense.x"]), "enabled_events[0]", "docs/webhooks"
    ),
    Bad("/v1/webhook_endpoints", endpoint(enabled_events=[]), "enabled_events", "must not be empty"),
]


async def _references(api: httpx.AsyncClient) -> dict[str, str]:
    """The valid objects the bad inputs point at, so that each row breaks one rule only."""

    async def created(path: str, body: dict[str, Any], field: str = "id") -> str:
        response = await api.post(path, json=body)
        assert response.status_code == 200, response.text
        return str(response.json()[field])

    return {
        "meter": await created(
            "/v1/meters", {"code": "calls", "name": "Calls", "aggregation": "count"}, "code"
        ),
        "sum_meter": await created(
            "/v1/meters", {"code": "bytes", "name": "B", "aggregation": "sum"}, "code"
        ),
        "customer": await created("/v1/customers", {"currency": "USD"}),
        "plan": await created("/v1/plans", plan(code="usd")),
        "eur_plan": await created("/v1/plans", plan(code="eur", currency="EUR")),
        "tax_rate": await created("/v1/tax_rates", {"display_name": "VAT", "percentage": 20}),
        "eur_coupon": await created("/v1/coupons", {"amount_off": 100, "currency": "EUR"}),
        "now": datetime.now(UTC).isoformat(),
    }


async def _counts(api: httpx.AsyncClient) -> dict[str, int]:
    """How many objects each listable create path holds."""
    paths = ["/v1/customers", "/v1/plans", "/v1/coupons", "/v1/tax_rates", "/v1/meters", "/v1/subscriptions"]
    return {p: len((await api.get(p, params={"limit": 100})).json()["data"]) for p in paths}


async def test_every_bad_input_of_a_create_path_names_its_parameter_and_says_what_to_do(
    api: httpx.AsyncClient,
) -> None:
    references = await _references(api)
    before = await _counts(api)
    wrong = []
    for row in TABLE:
        text = json.dumps(row.body)
        for name, value in references.items():
            text = text.replace("{" + name + "}", value)
        response = await api.post(row.path, content=text, headers={"content-type": "application/json"})
        error = response.json().get("error", {})
        got = (response.status_code, error.get("param"), row.advice in str(error.get("message")))
        if got != (row.status, row.param, True):
            wrong.append(f"{row.path} {text}: {response.status_code} {error}")
    assert wrong == [], "\n".join(wrong)
    assert await _counts(api) == before


def test_constraint_messages_read_as_sentences_about_the_value() -> None:
    assert explain_constraint("Expected int >= 1") == "must be a whole number of at least 1"
    assert explain_constraint("Expected int <= 730") == "must be a whole number of at most 730"
    assert explain_constraint("Expected str of length >= 1") == "must not be empty"
    assert explain_constraint("Expected str of length <= 200") == "must be at most 200 characters long"
    assert explain_constraint("Expected array of length <= 5") == "must hold at most 5 items"
    assert explain_constraint("Invalid enum value 'klingon'") == "'klingon' is not one of its accepted values"
    assert explain_constraint("Expected `int`, got `str`") == "must be int, not str"
    assert explain_constraint("something else") == "something else"
