"""The authorization matrix (issue 16 item 5): every route of the application, read from the Litestar route table
(a new route is in the matrix the day it is added), against every way a request can be unauthorized:

| column | sent | answer (SPEC §3) |
|---|---|---|
| no key | no Authorization header | 401 `authentication_error` `api_key_missing` |
| malformed header | `Authorization: Basic …` | 401 `authentication_error` `authorization_malformed` |
| malformed key | `Authorization: Bearer not-a-key` | 401 `authentication_error` `invalid_api_key` |
| publishable key | `Bearer pk_…` where a secret key is needed | 403 `authentication_error` `insufficient_permissions` |
| revoked key | a revoked `sk_…` of this merchant | 401 `authentication_error` `invalid_api_key` |
| another merchant | merchant B's `sk_…` on merchant A's object ids | 404 `not_found` `resource_missing` |

Routes outside /v1 have their own authentication (console sessions, portal sessions, hosted-invoice tokens,
channel signatures) or none (health, schema); `OUTSIDE_V1` lists each with the reason, and a route under no listed
prefix fails the test. OPTIONS is the CORS preflight, answered without a key by design (tests/billing/test_cors.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.routes import ASGIRoute, HTTPRoute

from billing.api.middleware import PUBLISHABLE_ROUTES
from billing.clock import utc_now
from billing.db.engine import transaction
from billing.merchants.keys import create_key, revoke_key
from billing.merchants.service import NewMerchant
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import FUTURE_YEAR, configure_gateways, customer_with_card

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")

# Every prefix outside /v1, with how it is protected. A new prefix must be added here, with its reason.
OUTSIDE_V1 = {
    "/health": "public: liveness, answers 200 without a key (SPEC §2)",
    "/ready": "public: readiness, says only which server is down (SPEC §2)",
    "/schema": "public: the OpenAPI document and its viewer (SPEC §3)",
    "/i/": "hosted invoice pages: the unguessable token in the path is the credential (test_public_links.py)",
    "/portal": "customer portal: a one-time link opens a cookie session (test_portal_tokens.py); checked below",
    "/console": "merchant console: login session and CSRF (test_console_login.py); checked below",
    "/channels": "payment channels' notifications: authenticated by each channel's signature (test_channels.py)",
    "/sandbox/": "in-process channel sandboxes, mounted outside production only (test_channel_browser.py)",
}

# Path parameters that are not object ids: a catalog name chosen by the caller, answered within its own merchant.
NOT_OBJECT_IDS = {
    "name": "a report name from the fixed catalog (billing.reporting.reports), computed over the caller's data",
    "filename": "an export name from the fixed catalog (billing.reporting.exports), streamed for the caller",
}


# A valid body for the routes whose body has required fields, so that another merchant's request is decided by the
# object it names and not refused earlier for what its body lacks (a 400 leaks nothing either way).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/customers/{customer_id:str}/balance_transactions"): {"amount": -100, "currency": "USD"},
    ("POST", "/v1/invoices/{invoice_id:str}/lines"): {"description": "x", "amount": 1},
    ("POST", "/v1/test_clocks/{test_clock_id:str}/advance"): {"frozen_time": "2027-02-01T00:00:00Z"},
    ("POST", "/v1/plans/{plan_id:str}/entitlements"): {"feature": "sso", "value": True},
    ("POST", "/v1/customers/{customer_id:str}/wallets"): {"currency": "USD"},
    ("POST", "/v1/customers/{customer_id:str}/wallets/{wallet_id:str}/top_up"): {"granted_amount": 100},
    ("POST", "/v1/subscriptions/{subscription_id:str}/items"): {"plan": "pro"},
    ("POST", "/v1/subscriptions/{subscription_id:str}/items/{item_id:str}"): {"quantity": 2},
}


@dataclass(frozen=True)
class Column:
    name: str
    status: int
    type: str
    code: str


NO_KEY = Column("no key", 401, "authentication_error", "api_key_missing")
MALFORMED_HEADER = Column("malformed header", 401, "authentication_error", "authorization_malformed")
MALFORMED_KEY = Column("malformed key", 401, "authentication_error", "invalid_api_key")
PUBLISHABLE = Column("publishable key", 403, "authentication_error", "insufficient_permissions")
REVOKED = Column("revoked key", 401, "authentication_error", "invalid_api_key")
OTHER_MERCHANT = Column("another merchant", 404, "not_found", "resource_missing")


def _litestar(app: Any) -> Litestar:
    inner = app.app  # ApiMiddleware around the Litestar application
    assert isinstance(inner, Litestar)
    return inner


def route_table(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route, OPTIONS aside."""
    found = []
    for route in _litestar(app).routes:
        if isinstance(route, HTTPRoute):
            found += [(method, route.path) for method in sorted(route.methods) if method != "OPTIONS"]
        else:
            assert isinstance(route, ASGIRoute), route
            found.append(("*", route.path))
    return found


def v1_routes(app: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in route_table(app) if p == "/v1" or p.startswith("/v1/")]


@dataclass
class Keys:
    secret: str
    publishable: str
    revoked: str
    other: str


@pytest.fixture
async def keys(services: Services, merchant: NewMerchant, other_merchant: NewMerchant) -> Keys:
    async with transaction(services.sessions) as session:
        issued = await create_key(session, merchant.id, "secret", utc_now())
    async with transaction(services.sessions) as session:
        await revoke_key(session, merchant.id, issued.key.id, utc_now())
    return Keys(merchant.secret_key, merchant.publishable_key, issued.secret, other_merchant.secret_key)


def _fill(path: str, ids: dict[str, str]) -> str:
    return PARAM.sub(lambda m: ids.get(m.group(1), f"x_{m.group(1)}"), path)


def _expect(response: httpx.Response, column: Column, method: str, path: str) -> str | None:
    """None when the answer is the column's, else what was answered (collected, so one run shows every cell)."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{column.name}: {method} {path} -> {response.status_code} {response.text[:200]}"
    got = (response.status_code, error.get("type"), error.get("code"))
    if got != (column.status, column.type, column.code) or not error.get("message"):
        return f"{column.name}: {method} {path} -> {got} {error.get('message')!r}"
    if column.status == 401 and response.headers.get("www-authenticate") != 'Bearer realm="billing"':
        return f"{column.name}: {method} {path} -> 401 without WWW-Authenticate"
    return None


def test_the_route_table_is_read_whole(app: Any) -> None:
    """The enumeration sees the routes (a guard against a matrix that silently covers nothing): a known handful of
    each kind is in it, and every route outside /v1 falls under a prefix of OUTSIDE_V1."""
    table = route_table(app)
    for known in [
        ("POST", "/v1/customers"),
        ("DELETE", "/v1/plans/{plan_id:str}/entitlements/{feature_id:str}"),
        ("GET", "/v1/exports/{filename:str}"),
        ("POST", "/v1/tokens"),
        ("GET", "/console/invoices"),
        ("POST", "/portal/billing"),
    ]:
        assert known in table, known
    assert len(v1_routes(app)) >= 100
    unlisted = [
        (m, p) for m, p in table if not p.startswith("/v1/") and not any(p.startswith(x) for x in OUTSIDE_V1)
    ]
    assert unlisted == [], f"routes outside /v1 with no stated authentication: {unlisted}"


async def test_every_v1_route_refuses_a_request_without_a_usable_key(
    app: Any, client: httpx.AsyncClient, keys: Keys
) -> None:
    headers_of = {
        NO_KEY: {},
        MALFORMED_HEADER: {"Authorization": f"Basic {keys.secret}"},
        MALFORMED_KEY: {"Authorization": "Bearer not-a-key"},
        PUBLISHABLE: {"Authorization": f"Bearer {keys.publishable}"},
        REVOKED: {"Authorization": f"Bearer {keys.revoked}"},
    }
    wrong: list[str] = []
    cells = 0
    for method, template in v1_routes(app):
        path = _fill(template, {})
        for column, headers in headers_of.items():
            if column is PUBLISHABLE and (method, template) in PUBLISHABLE_ROUTES:
                continue  # the one route a publishable key may call: test_publishable_key_tokenizes_a_card
            body = {} if method in ("POST", "PATCH") else None
            response = await client.request(method, path, json=body, headers=headers)
            cells += 1
            if (problem := _expect(response, column, method, path)) is not None:
                wrong.append(problem)
    assert wrong == [], "\n".join(wrong)
    assert cells >= 5 * 100


async def test_publishable_key_tokenizes_a_card(client: httpx.AsyncClient, keys: Keys) -> None:
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": FUTURE_YEAR, "cvc": "123"}
    response = await client.post(
        "/v1/tokens", json={"card": card}, headers={"Authorization": f"Bearer {keys.publishable}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"].startswith("tok_")


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 200, f"{path}: {response.text}"
    created: dict[str, Any] = response.json()
    return created


async def _objects_of(api: httpx.AsyncClient) -> dict[str, str]:
    """One object of merchant A for every kind of id a /v1 path names."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    ids: dict[str, str] = {}
    customer, pm = await customer_with_card(api, "4242424242424242")
    ids["customer_id"], ids["payment_method_id"] = customer["id"], pm["id"]
    ids["test_clock_id"] = (await _post(api, "/v1/test_clocks", {"frozen_time": "2027-01-01T00:00:00Z"}))[
        "id"
    ]
    ids["meter_id"] = (
        await _post(api, "/v1/meters", {"code": "calls", "name": "Calls", "aggregation": "count"})
    )["id"]
    ids["feature_id"] = (await _post(api, "/v1/features", {"code": "sso", "name": "SSO"}))["id"]
    ids["coupon_id"] = (await _post(api, "/v1/coupons", {"percent_off": 10}))["id"]
    ids["tax_rate_id"] = (await _post(api, "/v1/tax_rates", {"display_name": "VAT", "percentage": "20"}))[
        "id"
    ]
    plan = await _post(api, "/v1/plans", {"code": "pro", "name": "Pro", "currency": "USD", "amount": 1000})
    ids["plan_id"] = plan["id"]
    await _post(api, f"/v1/plans/{plan['id']}/entitlements", {"feature": "sso", "value": True})
    ids["endpoint_id"] = (
        await _post(
            api, "/v1/webhook_endpoints", {"url": "https://example.com/hook", "enabled_events": ["*"]}
        )
    )["id"]
    # Charged at once on the card: a paid invoice, its payment, then a refund and a credit note of it.
    subscription = await _post(api, "/v1/subscriptions", {"customer": customer["id"], "plan": plan["id"]})
    ids["subscription_id"] = subscription["id"]
    ids["invoice_id"] = subscription["latest_invoice"]
    [payment] = (await api.get("/v1/payments", params={"invoice": ids["invoice_id"]})).json()["data"]
    ids["payment_id"] = payment["id"]
    ids["refund_id"] = (await _post(api, "/v1/refunds", {"payment": payment["id"], "amount": 100}))["id"]
    ids["credit_note_id"] = (
        await _post(api, "/v1/credit_notes", {"invoice": ids["invoice_id"], "amount": 1})
    )["id"]
    ids["wallet_id"] = (
        await _post(
            api, f"/v1/customers/{customer['id']}/wallets", {"currency": "USD", "granted_amount": 500}
        )
    )["id"]
    ids["item_id"] = (
        await _post(
            api,
            "/v1/invoice_items",
            {"customer": customer["id"], "currency": "USD", "amount": 300, "description": "Setup"},
        )
    )["id"]
    ids["event_id"] = (await api.get("/v1/events", params={"limit": 1})).json()["data"][0]["id"]
    # A declined charge of a one-off invoice opens a dunning case (a subscription's first invoice has none).
    declined, _ = await customer_with_card(api, "4000000000000341")
    invoice = await _post(
        api,
        "/v1/invoices",
        {"customer": declined["id"], "currency": "USD", "lines": [{"description": "x", "amount": 500}]},
    )
    await _post(api, f"/v1/invoices/{invoice['id']}/finalize", {})
    await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    [case] = (await api.get("/v1/dunning/cases", params={"invoice": invoice["id"]})).json()["data"]
    ids["case_id"] = case["id"]
    return ids


async def test_another_merchants_key_gets_404_on_every_route_naming_an_object(
    app: Any, api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    ids = await _objects_of(api)
    wrong: list[str] = []
    checked = 0
    for method, template in v1_routes(app):
        params = PARAM.findall(template)
        if not params or all(p in NOT_OBJECT_IDS for p in params):
            continue  # nothing of merchant A's is named: lists and creates answer within the caller's merchant
        missing = [p for p in params if p not in ids and p not in NOT_OBJECT_IDS]
        assert not missing, f"{method} {template}: add an object of kind {missing} to _objects_of"
        path = _fill(template, ids)
        body = BODIES.get((method, template), {}) if method in ("POST", "PATCH") else None
        response = await other_api.request(method, path, json=body)
        checked += 1
        if (problem := _expect(response, OTHER_MERCHANT, method, path)) is not None:
            wrong.append(problem)
    assert wrong == [], "\n".join(wrong)
    assert checked >= 60
    # Nothing was touched: merchant A still sees its objects as they were.
    for kind, path in [("customer_id", "/v1/customers/{}"), ("subscription_id", "/v1/subscriptions/{}")]:
        assert (await api.get(path.format(ids[kind]))).status_code == 200


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/console/invoices", 303),
        ("/console/keys", 303),
        ("/console/settings", 303),
        ("/portal", 401),
        ("/portal/invoices", 401),
        ("/portal/billing", 401),
    ],
)
async def test_console_and_portal_pages_ignore_api_keys_and_need_their_session(
    client: httpx.AsyncClient, keys: Keys, path: str, expected: int
) -> None:
    """A secret key opens no page: the console sends to its login form, the portal says the session ended."""
    for headers in ({}, {"Authorization": f"Bearer {keys.secret}"}):
        response = await client.get(path, headers=headers)
        assert response.status_code == expected, (path, headers, response.text[:300])
        if expected == 303:
            assert response.headers["location"].startswith("/console/login")
