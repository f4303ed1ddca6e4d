"""Tenant isolation: merchant B gets 404 on every route that names one of merchant A's objects.

Table-driven: each resource adds a row that creates an object as A, and the routes that name it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # "{id}" is replaced by the object's id
    json: dict | None = None


@dataclass(frozen=True)
class Resource:
    name: str
    create: Callable[[httpx.AsyncClient], Awaitable[str]]
    routes: tuple[Route, ...]


async def _create(api: httpx.AsyncClient, path: str, body: dict) -> str:
    response = await api.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def _an_event(api: httpx.AsyncClient) -> str:
    await _create(api, "/v1/customers", {"name": "evented"})
    return (await api.get("/v1/events", params={"limit": 1})).json()["data"][0]["id"]


async def _a_draft_invoice(api: httpx.AsyncClient) -> str:
    customer = await _create(api, "/v1/customers", {"currency": "EUR"})
    return await _create(
        api, "/v1/invoices", {"customer": customer, "lines": [{"description": "x", "amount": 5}]}
    )


async def _a_subscription(api: httpx.AsyncClient) -> str:
    customer = await _create(api, "/v1/customers", {"currency": "USD"})
    plan = await _create(
        api, "/v1/plans", {"code": f"t{customer[-8:]}", "name": "T", "currency": "USD", "amount": 9}
    )
    return await _create(
        api,
        "/v1/subscriptions",
        {"customer": customer, "plan": plan, "collection_method": "send_invoice", "days_until_due": 3},
    )


async def _a_payment_method(api: httpx.AsyncClient) -> str:
    customer = await _create(api, "/v1/customers", {"name": "card holder"})
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040}
    return await _create(api, "/v1/payment_methods", {"customer": customer, "card": card})


async def _a_credit_note(api: httpx.AsyncClient) -> str:
    invoice = await _a_draft_invoice(api)
    assert (await api.post(f"/v1/invoices/{invoice}/finalize")).status_code == 200
    return await _create(api, "/v1/credit_notes", {"invoice": invoice, "amount": 1})


RESOURCES = [
    Resource(
        "customer",
        lambda api: _create(api, "/v1/customers", {"name": "A's customer"}),
        (
            Route("GET", "/v1/customers/{id}"),
            Route("PATCH", "/v1/customers/{id}", {"name": "stolen"}),
            Route("GET", "/v1/customers/{id}/entitlements"),
            Route("DELETE", "/v1/customers/{id}"),
        ),
    ),
    Resource(
        "test_clock",
        lambda api: _create(api, "/v1/test_clocks", {"frozen_time": "2027-01-01T00:00:00Z"}),
        (
            Route("GET", "/v1/test_clocks/{id}"),
            Route("POST", "/v1/test_clocks/{id}/advance", {"frozen_time": "2027-02-01T00:00:00Z"}),
            Route("DELETE", "/v1/test_clocks/{id}"),
        ),
    ),
    Resource(
        "event",
        _an_event,
        (Route("GET", "/v1/events/{id}"), Route("POST", "/v1/events/{id}/redeliver")),
    ),
    Resource(
        "webhook_endpoint",
        lambda api: _create(
            api, "/v1/webhook_endpoints", {"url": "https://example.com/hook", "enabled_events": ["*"]}
        ),
        (
            Route("GET", "/v1/webhook_endpoints/{id}"),
            Route("PATCH", "/v1/webhook_endpoints/{id}", {"url": "https://attacker.example/hook"}),
            Route("POST", "/v1/webhook_endpoints/{id}/rotate_secret"),
            Route("GET", "/v1/webhook_endpoints/{id}/deliveries"),
            Route("DELETE", "/v1/webhook_endpoints/{id}"),
        ),
    ),
    *(
        Resource(
            name,
            lambda api, path=path, body=body: _create(api, path, body),
            (
                Route("GET", path + "/{id}"),
                Route("PATCH", path + "/{id}", {"metadata": {"stolen": "yes"}}),
                Route("POST", path + "/{id}/archive"),
                Route("POST", path + "/{id}/unarchive"),
                *extra,
            ),
        )
        for name, path, body, extra in (
            ("meter", "/v1/meters", {"code": "calls", "name": "Calls", "aggregation": "count"}, ()),
            (
                "plan",
                "/v1/plans",
                {"code": "pro", "name": "Pro", "currency": "USD", "amount": 1000},
                (
                    Route("GET", "/v1/plans/{id}/price_preview"),
                    Route("POST", "/v1/plans/{id}/price_preview", {"quantity": 2}),
                    Route("GET", "/v1/plans/{id}/entitlements"),
                    Route("POST", "/v1/plans/{id}/entitlements", {"feature": "sso", "value": True}),
                ),
            ),
            ("feature", "/v1/features", {"code": "sso", "name": "SSO"}, ()),
            ("coupon", "/v1/coupons", {"percent_off": 10}, ()),
            ("tax_rate", "/v1/tax_rates", {"display_name": "VAT", "percentage": "20"}, ()),
        )
    ),
    Resource(
        "invoice",
        lambda api: _a_draft_invoice(api),
        (
            Route("GET", "/v1/invoices/{id}"),
            Route("GET", "/v1/invoices/{id}/pdf"),
            Route("POST", "/v1/invoices/{id}/lines", {"description": "x", "amount": 1}),
            Route("POST", "/v1/invoices/{id}/finalize"),
            Route("POST", "/v1/invoices/{id}/pay", {"paid_out_of_band": True}),
            Route("POST", "/v1/invoices/{id}/void"),
            Route("POST", "/v1/invoices/{id}/mark_uncollectible"),
            Route("DELETE", "/v1/invoices/{id}"),
        ),
    ),
    Resource(
        "subscription",
        lambda api: _a_subscription(api),
        (
            Route("GET", "/v1/subscriptions/{id}"),
            Route("PATCH", "/v1/subscriptions/{id}", {"metadata": {"stolen": "yes"}}),
            Route("POST", "/v1/subscriptions/{id}/cancel", {}),
            Route("POST", "/v1/subscriptions/{id}/change", {"quantity": 2}),
            Route("POST", "/v1/subscriptions/{id}/pause"),
            Route("POST", "/v1/subscriptions/{id}/resume"),
            Route("GET", "/v1/subscriptions/{id}/upcoming_invoice"),
        ),
    ),
    Resource(
        "payment_method",
        _a_payment_method,
        (
            Route("GET", "/v1/payment_methods/{id}"),
            Route("PATCH", "/v1/payment_methods/{id}", {"metadata": {"stolen": "yes"}}),
            Route("POST", "/v1/payment_methods/{id}/detach"),
        ),
    ),
    Resource(
        "credit_note",
        _a_credit_note,
        (Route("GET", "/v1/credit_notes/{id}"), Route("POST", "/v1/credit_notes/{id}/void")),
    ),
    Resource(
        "customer_balance",
        lambda api: _create(api, "/v1/customers", {"name": "A's balance", "currency": "USD"}),
        (
            Route("GET", "/v1/customers/{id}/balance_transactions"),
            Route("POST", "/v1/customers/{id}/balance_transactions", {"amount": -100, "currency": "USD"}),
        ),
    ),
]

CASES = [(resource, route) for resource in RESOURCES for route in resource.routes]


@pytest.mark.parametrize(
    ("resource", "route"), CASES, ids=[f"{r.name}:{route.method} {route.path}" for r, route in CASES]
)
async def test_another_merchant_gets_404(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, resource: Resource, route: Route
) -> None:
    object_id = await resource.create(api)
    owner_view = route.path.split("/{id}")[0] + "/" + object_id
    before = await api.get(owner_view)
    assert before.status_code == 200, before.text
    response = await other_api.request(route.method, route.path.format(id=object_id), json=route.json)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "not_found"
    # And the owner still sees it unchanged: every field as it was before the other merchant's request.
    assert (await api.get(owner_view)).json() == before.json()


async def test_lists_show_only_the_callers_objects(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    mine = await _create(api, "/v1/customers", {"name": "mine"})
    for path in ("/v1/customers", "/v1/events", "/v1/test_clocks", "/v1/invoices", "/v1/webhook_endpoints"):
        body = (await other_api.get(path, params={"limit": 100})).json()
        assert all(mine not in str(item) for item in body["data"]), path


async def test_a_cursor_from_another_merchant_is_refused(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    mine = await _create(api, "/v1/customers", {"name": "cursor"})
    response = await other_api.get("/v1/customers", params={"starting_after": mine})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "starting_after"


async def test_a_customer_cannot_join_another_merchants_test_clock(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    clock = await _create(api, "/v1/test_clocks", {"frozen_time": "2027-01-01T00:00:00Z"})
    response = await other_api.post("/v1/customers", json={"test_clock": clock})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "test_clock"
