"""What /v1 refuses before a handler runs, the same way on every route (issue #12 item 18): query parameters the
route does not declare, and JSON values that only fit after a lax conversion (`"amount": "50.00"` taken as 50)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from billing.api.middleware import PUBLISHABLE_ROUTES
from billing.merchants.service import NewMerchant


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


async def test_a_misspelt_invoice_filter_is_refused_instead_of_listing_everything(
    api: httpx.AsyncClient,
) -> None:
    # Two customers with an invoice each: before the fix `?custmer=` listed both.
    for name in ("a", "b"):
        customer = (await api.post("/v1/customers", json={"name": name, "currency": "USD"})).json()["id"]
        created = await api.post(
            "/v1/invoices", json={"customer": customer, "lines": [{"description": "x", "amount": 100}]}
        )
        assert created.status_code == 200, created.text
    error = _error(await api.get("/v1/invoices", params={"custmer": customer}))
    assert error["code"] == "parameter_unknown"
    assert error["param"] == "custmer"
    assert "custmer" in error["message"]
    assert "Did you mean 'customer'?" in error["message"]
    # The message lists what the route accepts.
    for accepted in ("customer", "subscription", "status", "limit", "starting_after"):
        assert accepted in error["message"]
    # Spelt right, the filter works.
    listed = (await api.get("/v1/invoices", params={"customer": customer})).json()["data"]
    assert [invoice["customer"] for invoice in listed] == [customer]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            if method in ("get", "post", "patch", "delete", "put"):
                found.append((method.upper(), path, operation))
    return found


async def test_every_route_refuses_an_undeclared_query_parameter_and_lists_its_declared_ones(
    client: httpx.AsyncClient, merchant: NewMerchant
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operations = _operations(document)
    assert len(operations) > 60
    for method, path, operation in operations:
        concrete = re.sub(r"\{[^}]+\}", "x_0000", path)
        key = merchant.publishable_key if (method, path) in PUBLISHABLE_ROUTES else merchant.secret_key
        response = await client.request(
            method,
            concrete,
            params={"zz_unknown": "1"},
            headers={"Authorization": f"Bearer {key}"},
            **({"json": {}} if method in ("POST", "PATCH") else {}),
        )
        assert response.status_code == 400, (method, path, response.text)
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("parameter_unknown", "zz_unknown"), (method, path)
        declared = sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
        if declared:
            listed = error["message"].split("This route accepts: ", 1)[1].rstrip(".")
            names = sorted(name.strip() for name in listed.split(","))
            # Families a handler reads itself are shown as name[<what>]; every other name is declared in OpenAPI.
            assert [n for n in names if "<" not in n] == declared, (method, path)
        else:
            assert "takes no query parameters" in error["message"], (method, path)


PRO = {"code": "strict-pro", "name": "Pro", "currency": "USD", "interval": "month", "amount": 2900}


async def _pro_plan(api: httpx.AsyncClient) -> str:
    meter = await api.post(
        "/v1/meters", json={"code": "api_calls", "name": "API calls", "aggregation": "sum"}
    )
    assert meter.status_code in (200, 409), meter.text
    charges = [{"meter": "api_calls", "model": "per_unit", "unit_amount": 2}]
    plan = await api.post("/v1/plans", json={**PRO, "charges": charges})
    assert plan.status_code == 200, plan.text
    return str(plan.json()["id"])


async def test_bracketed_families_and_aliases_are_declared_parameters(api: httpx.AsyncClient) -> None:
    plan = await _pro_plan(api)
    preview = await api.get(
        f"/v1/plans/{plan}/price_preview", params={"quantity": "3", "usage[api_calls]": "100"}
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["subtotal"] == 3 * 2900 + 100 * 2
    error = _error(await api.get(f"/v1/plans/{plan}/price_preview", params={"usages[api_calls]": "100"}))
    assert error["param"] == "usages[api_calls]"
    assert "usage[<meter code>]" in error["message"]
    assert "quantity" in error["message"]
    # `state` is the declared name of the dunning-case filter (its handler argument is case_state).
    assert (await api.get("/v1/dunning/cases", params={"state": "retrying"})).status_code == 200
    error = _error(await api.get("/v1/dunning/cases", params={"case_state": "retrying"}))
    assert error["param"] == "case_state"
    assert "state" in error["message"].split("This route accepts: ", 1)[1]


async def test_several_unknown_parameters_are_all_named(api: httpx.AsyncClient) -> None:
    error = _error(await api.get("/v1/customers", params={"limit": "2", "emial": "a@b.c", "sort": "asc"}))
    assert error["param"] == "emial"
    assert "emial" in error["message"] and "sort" in error["message"]
    assert "Did you mean 'email'?" in error["message"]


async def test_unknown_query_parameters_are_refused_before_anything_is_written(
    api: httpx.AsyncClient,
) -> None:
    customer = (await api.post("/v1/customers", json={"name": "kept"})).json()["id"]
    refused = await api.delete(f"/v1/customers/{customer}", params={"force": "true"})
    assert _error(refused)["param"] == "force"
    assert (await api.get(f"/v1/customers/{customer}")).status_code == 200
    before = len((await api.get("/v1/customers", params={"limit": 100})).json()["data"])
    refused = await api.post("/v1/customers", params={"dry_run": "1"}, json={"name": "not created"})
    assert _error(refused)["param"] == "dry_run"
    assert len((await api.get("/v1/customers", params={"limit": 100})).json()["data"]) == before


async def _open_customer(api: httpx.AsyncClient) -> str:
    return str((await api.post("/v1/customers", json={"currency": "USD"})).json()["id"])


@pytest.mark.parametrize("amount", ["50.00", "5000", 50.0, "5e3"])
async def test_an_invoice_line_amount_takes_an_integer_only(api: httpx.AsyncClient, amount: Any) -> None:
    customer = await _open_customer(api)
    response = await api.post(
        "/v1/invoices", json={"customer": customer, "lines": [{"description": "Setup", "amount": amount}]}
    )
    error = _error(response)
    assert error["code"] == "parameter_invalid"
    assert error["param"] == "lines[0].amount"
    assert "integer" in error["message"] and "minor unit" in error["message"]
    # Nothing was created for the customer.
    listed = (await api.get("/v1/invoices", params={"customer": customer})).json()["data"]
    assert listed == []


async def test_an_integer_amount_is_taken_as_minor_units(api: httpx.AsyncClient) -> None:
    customer = await _open_customer(api)
    response = await api.post(
        "/v1/invoices", json={"customer": customer, "lines": [{"description": "Setup", "amount": 5000}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["subtotal"] == 5000


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/plans",
            {"code": "p-str", "name": "P", "currency": "USD", "interval": "month", "amount": "2900"},
            "amount",
        ),
        (
            "/v1/coupons",
            {"name": "C", "amount_off": "500", "currency": "USD", "duration": "once"},
            "amount_off",
        ),
        ("/v1/refunds", {"payment": "pay_0000", "amount": "500"}, "amount"),
        ("/v1/credit_notes", {"invoice": "in_0000", "amount": "3000"}, "amount"),
    ],
)
async def test_money_fields_refuse_strings_on_every_route(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    error = _error(await api.post(path, json=body))
    assert error["param"] == param
    assert "integer" in error["message"] and "minor unit" in error["message"]


async def test_other_json_types_are_strict_too(api: httpx.AsyncClient) -> None:
    plan = await _pro_plan(api)
    customer = await _open_customer(api)
    error = _error(
        await api.post("/v1/subscriptions", json={"customer": customer, "plan": plan, "quantity": "3"})
    )
    assert error["param"] == "quantity"
    assert "integer" in error["message"] and "minor unit" not in error["message"]
    error = _error(await api.post("/v1/subscriptions/sub_0000/cancel", json={"at_period_end": "true"}))
    assert error["param"] == "at_period_end"
    assert "true or false" in error["message"]


async def test_errors_that_are_not_about_laxness_keep_their_own_answer(api: httpx.AsyncClient) -> None:
    # A value no conversion could fit, and an unknown field: answered as before, naming the field.
    error = _error(
        await api.post("/v1/invoices", json={"customer": "cus_0000", "lines": [{"amount": "ten"}]})
    )
    assert error["param"] == "lines[0].amount"
    error = _error(await api.post("/v1/customers", json={"emial": "a@example.com"}))
    assert (error["code"], error["param"]) == ("parameter_unknown", "emial")
