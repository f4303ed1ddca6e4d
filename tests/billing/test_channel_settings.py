"""Channel connections in settings (docs/channels.md): one settings call makes a sandbox account; private keys and
the APIv3 key are sealed by the vault and never shown; credentials are checked; routing chooses among the
connections of a channel, fails over when one cannot start an agreement, and an agreement stays with the account
that signed it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from billing.db.engine import transaction
from billing.merchants.models import Merchant
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.channel_helpers import (
    CHANNELS,
    answer_page,
    approval_page,
    configure_channels,
    pay_one_off,
    sign_agreement,
    start_agreement,
)
from tests.billing.payment_helpers import sandbox_admin as standalone_admin
from tests.billing.payment_helpers import standalone_sandbox
from tests.billing.portal_helpers import form, portal_link, sign_in, visible_text, visitor

SECRETS = {
    "alipay": ("app_private_key",),
    "wechat_pay": ("merchant_private_key", "apiv3_key"),
    "unionpay": ("merchant_private_key",),
    "ecny": ("merchant_private_key",),
}


async def _stored(services: Services, merchant_id: str) -> dict[str, Any]:
    async with transaction(services.sessions) as session:
        settings = await session.scalar(select(Merchant.settings).where(Merchant.id == merchant_id))
    assert settings is not None
    return dict(settings)


async def _customer(api: httpx.AsyncClient) -> str:
    response = await api.post("/v1/customers", json={"currency": "CNY", "email": "wang@example.com"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("channel", CHANNELS)
async def test_one_settings_call_makes_a_sandbox_account_whose_secrets_are_sealed_and_never_shown(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, channel: str
) -> None:
    shown = await configure_channels(api, {"id": channel, "type": channel, "url": None})
    [connection] = [g for g in shown["gateways"] if g["type"] == channel]
    for name in SECRETS[channel]:
        assert connection["credentials"][name] == "[sealed]"
    raw = json.dumps(await _stored(services, merchant.id))
    assert "PRIVATE KEY" not in raw and raw.count("sealed:v1:") == len(SECRETS[channel])
    events = (await api.get("/v1/events", params={"type": "settings.updated", "limit": 5})).json()["data"]
    assert events and all(
        "PRIVATE KEY" not in json.dumps(e) and "sealed:v1:" not in json.dumps(e) for e in events
    )
    # What GET shows, sent back as it is, keeps the stored keys: agreements can still be signed and debited.
    response = await api.patch("/v1/settings", json={"gateways": shown["gateways"]})
    assert response.status_code == 200, response.text
    assert response.json()["gateways"] == shown["gateways"]
    assert json.dumps(await _stored(services, merchant.id)) == raw
    pm = await sign_agreement(api, await _customer(api), channel)
    assert pm["status"] == "active"


@pytest.mark.parametrize("channel", CHANNELS)
async def test_credentials_are_checked_and_errors_name_the_field(
    api: httpx.AsyncClient, channel: str
) -> None:
    first_secret = SECRETS[channel][0]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({first_secret: "not a key"}, f"gateways[1].credentials.{first_secret}", "parameter_invalid"),
        ({"colour": "blue"}, "gateways[1].credentials.colour", "parameter_invalid"),
        (
            {"notify_url_base": "ftp://example.com"},
            "gateways[1].credentials.notify_url_base",
            "parameter_invalid",
        ),
    ]
    for credentials, param, code in cases:
        response = await api.patch(
            "/v1/settings",
            json={
                "gateways": [
                    {"id": "sandbox", "type": "sandbox"},
                    {"id": channel, "type": channel, "url": None, "credentials": credentials},
                ]
            },
        )
        assert response.status_code == 400, response.text
        assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)
    partial = {
        "alipay": {"app_id": "2021000000000001"},
        "wechat_pay": {"mchid": "1900000109"},
        "unionpay": {"mer_id": "777290058110048"},
        "ecny": {"merchant_no": "E100000000000001"},
    }[channel]
    response = await api.patch(
        "/v1/settings", json={"gateways": [{"id": channel, "type": channel, "credentials": partial}]}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "parameter_missing"
    card_with_credentials = await api.patch(
        "/v1/settings", json={"gateways": [{"id": "s", "type": "sandbox", "credentials": {"x": "y"}}]}
    )
    assert card_with_credentials.status_code == 400
    assert card_with_credentials.json()["error"]["param"] == "gateways[0].credentials"


async def test_a_connection_with_agreements_cannot_be_removed_but_can_be_drained(
    api: httpx.AsyncClient,
) -> None:
    await configure_channels(api, {"id": "ali", "type": "alipay", "url": None})
    customer = await _customer(api)
    await sign_agreement(api, customer, "alipay")
    removed = await api.patch("/v1/settings", json={"gateways": [{"id": "sandbox", "type": "sandbox"}]})
    assert removed.status_code == 409 and removed.json()["error"]["code"] == "gateway_in_use"
    assert "ali (1 agreement)" in removed.json()["error"]["message"]
    shown = (await api.get("/v1/settings")).json()["gateways"]
    drained = [dict(g, weight=0) if g["id"] == "ali" else g for g in shown]
    assert (await api.patch("/v1/settings", json={"gateways": drained})).status_code == 200
    refused = await api.post("/v1/payment_methods", json={"customer": customer, "type": "alipay"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "gateway_not_configured"


async def test_an_agreement_is_debited_by_the_account_that_signed_it_even_when_drained(
    api: httpx.AsyncClient,
) -> None:
    await configure_channels(
        api,
        {"id": "ali_main", "type": "alipay", "url": None, "priority": 0},
        {"id": "ali_second", "type": "alipay", "url": None, "priority": 1},
    )
    customer = await _customer(api)
    routed = await sign_agreement(api, customer, "alipay")
    assert routed["alipay"]["connection"] == "ali_main"
    pinned = await sign_agreement(api, customer, "alipay", connection="ali_second")
    assert pinned["alipay"]["connection"] == "ali_second"
    shown = (await api.get("/v1/settings")).json()["gateways"]
    drained = [dict(g, weight=0) if g["id"] == "ali_second" else g for g in shown]
    assert (await api.patch("/v1/settings", json={"gateways": drained})).status_code == 200
    await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pinned["id"]})
    payment = await pay_one_off(api, customer, 1200)
    assert (payment["gateway"], payment["payment_method"]) == ("ali_second", pinned["id"])


@pytest.fixture(scope="module")
def wechat_sandbox_url() -> Any:
    with standalone_sandbox("wechat_pay") as url:
        yield url


async def test_starting_an_agreement_fails_over_to_the_next_account_when_one_is_down(
    api: httpx.AsyncClient, wechat_sandbox_url: str
) -> None:
    await configure_channels(
        api,
        {
            "id": "wx_primary",
            "type": "wechat_pay",
            "url": wechat_sandbox_url,
            "priority": 0,
            "timeout_ms": 3000,
        },
        {"id": "wx_backup", "type": "wechat_pay", "url": None, "priority": 1},
    )
    customer = await _customer(api)
    await standalone_admin(wechat_sandbox_url, "/admin/mode", {"mode": "down"})
    try:
        pm = await start_agreement(api, customer, "wechat_pay")
        assert pm["wechat_pay"]["connection"] == "wx_backup"
    finally:
        await standalone_admin(wechat_sandbox_url, "/admin/mode", {"mode": "normal"})
    # With the primary back, routing uses it again; its sandbox is reached over HTTP.
    pm = await start_agreement(api, customer, "wechat_pay")
    assert pm["wechat_pay"]["connection"] == "wx_primary"
    assert pm["next_action"]["url"].startswith(wechat_sandbox_url + "/authorize/")


async def test_the_portal_offers_agreements_of_the_channels_configured_and_removes_them_by_unsigning(
    api: httpx.AsyncClient, app: Any
) -> None:
    customer = await _customer(api)
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        page = await browser.get("/portal/payment_methods")
        assert "/portal/payment_methods/agreements/" not in page.text  # no channel connection yet
    await configure_channels(api, {"id": "alipay", "type": "alipay", "url": None})
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer, locale="zh-CN"))["url"])
        page = await browser.get("/portal/payment_methods")
        action = "/portal/payment_methods/agreements/alipay"
        assert "/portal/payment_methods/agreements/wechat_pay" not in page.text
        started = await browser.post(action, data=form(page.text, action))
        assert started.status_code == 303, started.text
        shown = await browser.get(started.headers["location"])
        [pending] = (await api.get("/v1/payment_methods", params={"customer": customer})).json()["data"]
        assert (pending["type"], pending["status"]) == ("alipay", "pending")
        assert "支付宝" in visible_text(shown.text) and "data:image/svg+xml" in shown.text
        # Approved in the channel, the agreement is then removed from the portal: unsigned in Alipay first.
        await answer_page(api, await approval_page(api, pending))
        page = await browser.get("/portal/payment_methods")
        remove = f"/portal/payment_methods/{pending['id']}/remove"
        removed = await browser.post(remove, data=form(page.text, remove))
        assert removed.status_code == 303, removed.text
    detached = (await api.get(f"/v1/payment_methods/{pending['id']}")).json()
    assert detached["customer"] is None and detached["alipay"]["end_reason"] == "unsigned_by_merchant"
