"""Helpers for the channel tests: channel connections in settings, agreements signed through the sandbox's own
approval page (HTTP form posts, as a tester's browser sends them), and the sandboxes' admin views."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from billing.channels.base import AgreementState, AgreementTerms, ChannelGateway, SignLink
from billing.gateways.base import AgreementInstrument
from billing.settings.service import SANDBOX_CONNECTION

CHANNELS = ("alipay", "wechat_pay", "unionpay", "ecny")
# The channel's own number for a signed agreement, as the payment method shows it.
AGREEMENT_NO_FIELD = {
    "alipay": "agreement_no",
    "wechat_pay": "contract_id",
    "unionpay": "token",
    "ecny": "agreement_id",
}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def configure_channels(
    api: httpx.AsyncClient, *connections: dict[str, Any], card: bool = True
) -> dict[str, Any]:
    """settings.gateways = the card sandbox (unless card=False) and `connections` (sandbox accounts are
    provisioned by the settings call itself when a connection has no credentials)."""
    gateways = ([dict(SANDBOX_CONNECTION)] if card else []) + list(connections)
    response = await api.patch("/v1/settings", json={"gateways": gateways})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def start_agreement(
    api: httpx.AsyncClient, customer: str, channel: str, **agreement: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"customer": customer, "type": channel}
    if agreement:
        body["agreement"] = agreement
    response = await api.post("/v1/payment_methods", json=body)
    assert response.status_code == 200, response.text
    pm: dict[str, Any] = response.json()
    assert pm["status"] == "pending" and pm["next_action"]["url"], pm
    return pm


async def approval_page(client: httpx.AsyncClient, pm: dict[str, Any]) -> str:
    """Follow the payment method's next_action.url to the sandbox's approval page (Alipay's link goes through
    the gateway, which redirects); returns the page's path."""
    url = path_of(pm["next_action"]["url"])
    for _ in range(3):
        response = await client.get(url)
        if response.status_code in (301, 302, 303):
            url = path_of(response.headers["location"])
            continue
        assert response.status_code == 200, response.text
        assert "decision" in response.text
        return url
    raise AssertionError("too many redirects")


async def answer_page(
    client: httpx.AsyncClient, page: str, *, decision: str = "approve", buyer: str = "buyer_ok"
) -> str:
    response = await client.post(page, data={"decision": decision, "buyer": buyer})
    assert response.status_code == 200, response.text
    return response.text


async def sign_agreement(
    api: httpx.AsyncClient, customer: str, channel: str, *, buyer: str = "buyer_ok", **agreement: Any
) -> dict[str, Any]:
    """A pending agreement approved as `buyer` through the sandbox page; returns the payment method (active)."""
    pm = await start_agreement(api, customer, channel, **agreement)
    page = await approval_page(api, pm)
    await answer_page(api, page, buyer=buyer)
    active = (await api.get(f"/v1/payment_methods/{pm['id']}")).json()
    assert active["status"] == "active", active
    return dict(active)


async def pay_one_off(api: httpx.AsyncClient, customer: str, amount: int) -> dict[str, Any]:
    """A CNY invoice of one line, finalized and paid with the customer's default payment method: its payment."""
    invoice = (
        await api.post(
            "/v1/invoices",
            json={
                "customer": customer,
                "currency": "CNY",
                "lines": [{"description": "Seats", "amount": amount}],
            },
        )
    ).json()
    await api.post(f"/v1/invoices/{invoice['id']}/finalize", json={})
    paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    [payment] = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    return dict(payment)


def agreement_no(pm: dict[str, Any]) -> str:
    return str(pm[pm["type"]][AGREEMENT_NO_FIELD[pm["type"]]])


async def sandbox_admin(
    client: httpx.AsyncClient, channel: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An admin route of the in-process sandbox of `channel`, as mounted in the engine."""
    url = f"/sandbox/{channel}/admin/{path}"
    response = await (client.post(url, json=body or {}) if body is not None else client.get(url))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def sign_in_sandbox(
    gateway: ChannelGateway, browser: httpx.AsyncClient, buyer: str, *, single_amount_limit: int = 100_000
) -> AgreementInstrument:
    """An agreement started by the adapter, approved as `buyer` on the sandbox's page (`browser` reaches the
    sandbox), and found again by asking the channel: the adapter's own path, without the engine."""
    external = "pm" + secrets.token_hex(12)
    link = await gateway.start_agreement(
        AgreementTerms(
            external_agreement_no=external,
            single_amount_limit=single_amount_limit,
            period="month",
            period_count=1,
            subject="conformance@example.com",
            return_url=None,
            expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
    )
    assert isinstance(link, SignLink), link
    url = path_of(link.url)
    page = await browser.get(url)
    if page.status_code == 302:
        url = path_of(page.headers["location"])
        page = await browser.get(url)
    assert page.status_code == 200 and 'name="decision"' in page.text, page.text
    answered = await browser.post(url, data={"decision": "approve", "buyer": buyer})
    assert answered.status_code == 200, answered.text
    state = await gateway.retrieve_agreement(external)
    assert isinstance(state, AgreementState) and state.status == "active" and state.agreement_no, state
    return AgreementInstrument(
        channel=gateway.connection.type, agreement_no=state.agreement_no, external_agreement_no=external
    )
