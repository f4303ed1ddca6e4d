"""Payment methods and tokens through the HTTP API (SPEC §4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from billing.clock import utc_now
from billing.merchants.service import NewMerchant
from billing.payment_methods.models import CardToken, PaymentMethod
from billing.payments.janitor import run_janitor
from billing.services import Services
from billing.vault.models import VaultEntry
from tests.billing.payment_helpers import FUTURE_YEAR, customer_with_card

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": FUTURE_YEAR, "cvc": "123"}


@pytest.fixture
async def public(app: Any, merchant: NewMerchant) -> Any:
    """A client with merchant A's publishable key, as a browser card form has."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {merchant.publishable_key}"},
    ) as client:
        yield client


async def new_customer(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/customers", json={"email": "card@example.com", **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_card_is_attached_and_only_its_display_fields_come_back(api: httpx.AsyncClient) -> None:
    customer = await new_customer(api)
    response = await api.post("/v1/payment_methods", json={"customer": customer["id"], "card": CARD})
    assert response.status_code == 200, response.text
    pm = response.json()
    assert pm["id"].startswith("pm_") and pm["object"] == "payment_method" and pm["type"] == "card"
    assert pm["customer"] == customer["id"]
    assert pm["card"] == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": FUTURE_YEAR,
        "fingerprint": pm["card"]["fingerprint"],
    }
    assert "4242424242424242" not in response.text and "cvc" not in response.text
    assert (await api.get(f"/v1/payment_methods/{pm['id']}")).json() == pm


async def test_the_same_card_has_the_same_fingerprint(api: httpx.AsyncClient) -> None:
    customer = await new_customer(api)
    first = (await api.post("/v1/payment_methods", json={"customer": customer["id"], "card": CARD})).json()
    second = (
        await api.post(
            "/v1/payment_methods",
            json={"customer": customer["id"], "card": {**CARD, "number": "4242-4242-4242-4242"}},
        )
    ).json()
    other = (
        await api.post(
            "/v1/payment_methods",
            json={"customer": customer["id"], "card": {**CARD, "number": "5555555555554444"}},
        )
    ).json()
    assert first["card"]["fingerprint"] == second["card"]["fingerprint"] != other["card"]["fingerprint"]


@pytest.mark.parametrize(
    ("card", "code", "param"),
    [
        ({**CARD, "number": "4242424242424241"}, "incorrect_number", "card[number]"),
        ({**CARD, "exp_year": 2020}, "expired_card", "card[exp_year]"),
        ({**CARD, "exp_month": 13}, "invalid_expiry_month", "card[exp_month]"),
        ({**CARD, "cvc": "12"}, "invalid_cvc", "card[cvc]"),
        ({**CARD, "number": "378282246310005", "cvc": "123"}, "invalid_cvc", "card[cvc]"),
    ],
)
async def test_card_problems_are_card_errors_naming_the_field(
    api: httpx.AsyncClient, card: dict[str, Any], code: str, param: str
) -> None:
    customer = await new_customer(api)
    response = await api.post("/v1/payment_methods", json={"customer": customer["id"], "card": card})
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("card_error", code, param)
    assert card["number"] not in response.text


async def test_card_or_token_exactly_one(api: httpx.AsyncClient) -> None:
    customer = await new_customer(api)
    neither = await api.post("/v1/payment_methods", json={"customer": customer["id"]})
    assert neither.status_code == 400 and neither.json()["error"]["param"] == "card"
    both = await api.post(
        "/v1/payment_methods", json={"customer": customer["id"], "card": CARD, "token": "tok_x"}
    )
    assert both.status_code == 400 and both.json()["error"]["param"] == "token"


async def test_a_token_from_the_publishable_key_attaches_once(
    api: httpx.AsyncClient, public: httpx.AsyncClient
) -> None:
    tokenized = await public.post("/v1/tokens", json={"card": CARD})
    assert tokenized.status_code == 200, tokenized.text
    token = tokenized.json()
    assert token["id"].startswith("tok_") and token["used"] is False
    assert token["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": FUTURE_YEAR}
    customer = await new_customer(api)
    pm = await api.post("/v1/payment_methods", json={"customer": customer["id"], "token": token["id"]})
    assert pm.status_code == 200, pm.text
    assert pm.json()["card"]["last4"] == "4242"
    again = await api.post("/v1/payment_methods", json={"customer": customer["id"], "token": token["id"]})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "token_already_used"


async def test_an_expired_token_is_refused_and_its_card_destroyed(
    api: httpx.AsyncClient, public: httpx.AsyncClient, services: Services
) -> None:
    token = (await public.post("/v1/tokens", json={"card": CARD})).json()
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(CardToken)
            .where(CardToken.id == token["id"])
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
    customer = await new_customer(api)
    response = await api.post("/v1/payment_methods", json={"customer": customer["id"], "token": token["id"]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "token_expired"
    async with services.sessions() as session:
        entry_id = await session.scalar(select(CardToken.vault_entry_id).where(CardToken.id == token["id"]))
    assert entry_id is not None
    report = await run_janitor(services)
    assert report.tokens_purged >= 1
    async with services.sessions() as session:
        assert await session.scalar(select(VaultEntry.id).where(VaultEntry.id == entry_id)) is None


async def test_tokens_need_the_publishable_key_and_it_can_do_nothing_else(
    api: httpx.AsyncClient, public: httpx.AsyncClient
) -> None:
    with_secret = await api.post("/v1/tokens", json={"card": CARD})
    assert with_secret.status_code == 403
    assert with_secret.json()["error"]["code"] == "publishable_key_required"
    customer = await new_customer(api)
    for method, path in [
        ("GET", "/v1/payment_methods"),
        ("POST", "/v1/payment_methods"),
        ("GET", "/v1/payments"),
        ("POST", "/v1/refunds"),
        ("GET", f"/v1/customers/{customer['id']}"),
        ("GET", "/v1/settings"),
    ]:
        response = await public.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 403, (method, path)


async def test_a_token_of_another_merchant_is_not_found(
    other_api: httpx.AsyncClient, public: httpx.AsyncClient
) -> None:
    token = (await public.post("/v1/tokens", json={"card": CARD})).json()
    customer = await new_customer(other_api)
    response = await other_api.post(
        "/v1/payment_methods", json={"customer": customer["id"], "token": token["id"]}
    )
    assert response.status_code == 404 and response.json()["error"]["param"] == "token"


async def test_list_per_customer_update_expiry_and_detach(api: httpx.AsyncClient, services: Services) -> None:
    customer, pm = await customer_with_card(api, "4242424242424242")
    _, other_pm = await customer_with_card(api, "5555555555554444")
    listed = (await api.get("/v1/payment_methods", params={"customer": customer["id"]})).json()
    assert [p["id"] for p in listed["data"]] == [pm["id"]]
    assert other_pm["id"] not in str(listed)

    updated = await api.patch(f"/v1/payment_methods/{pm['id']}", json={"card": {"exp_year": FUTURE_YEAR + 1}})
    assert updated.status_code == 200 and updated.json()["card"]["exp_year"] == FUTURE_YEAR + 1
    expired = await api.patch(f"/v1/payment_methods/{pm['id']}", json={"card": {"exp_year": 2020}})
    assert expired.status_code == 402 and expired.json()["error"]["code"] == "expired_card"

    assert customer["default_payment_method"] == pm["id"]
    detached = await api.post(f"/v1/payment_methods/{pm['id']}/detach")
    assert detached.status_code == 200 and detached.json()["customer"] is None
    assert (await api.get(f"/v1/customers/{customer['id']}")).json()["default_payment_method"] is None
    assert (await api.get("/v1/payment_methods", params={"customer": customer["id"]})).json()["data"] == []
    again = await api.post(f"/v1/payment_methods/{pm['id']}/detach")
    assert again.status_code == 400 and again.json()["error"]["code"] == "payment_method_not_attached"
    # The card number is destroyed for good.
    async with services.sessions() as session:
        row = await session.scalar(select(PaymentMethod).where(PaymentMethod.id == pm["id"]))
        assert row is not None and row.vault_entry_id is None

    events = (await api.get("/v1/events", params={"object_id": pm["id"]})).json()["data"]
    assert [e["type"] for e in events] == [
        "payment_method.detached",
        "payment_method.updated",
        "payment_method.attached",
    ]
    assert events[1]["data"]["previous_attributes"]["card"]["exp_year"] == FUTURE_YEAR


async def test_default_payment_method_must_be_attached_to_that_customer(api: httpx.AsyncClient) -> None:
    customer = await new_customer(api)
    _, someone_elses = await customer_with_card(api, "4242424242424242")
    response = await api.patch(
        f"/v1/customers/{customer['id']}", json={"default_payment_method": someone_elses["id"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "default_payment_method"
    cleared = await api.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": None})
    assert cleared.status_code == 200 and cleared.json()["default_payment_method"] is None


async def test_a_card_error_with_an_idempotency_key_is_replayed_without_the_number(
    api: httpx.AsyncClient,
) -> None:
    customer = await new_customer(api)
    body = {"customer": customer["id"], "card": {**CARD, "number": "4242424242424241"}}
    first = await api.post("/v1/payment_methods", json=body, headers={"Idempotency-Key": "pm-bad-card-1"})
    second = await api.post("/v1/payment_methods", json=body, headers={"Idempotency-Key": "pm-bad-card-1"})
    assert first.status_code == second.status_code == 402
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
