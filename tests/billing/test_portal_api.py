"""The API side of the portal (issue 14): portal sessions with flows and a locale, plans offered in the portal,
customers' addresses and tax ids, a subscription's cancellation details and its undo, and the merchant's portal
and branding settings, shown wherever customers look."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from billing.invoices.documents import load_invoice_document, render_pdf
from billing.invoices.models import Invoice
from billing.notifications.models import EmailMessage
from billing.services import Services
from billing.settings.branding import contrast_ratio
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import configure_gateways
from tests.billing.portal_helpers import path_of, portal_link, sign_in, visible_text, visitor
from tests.billing.test_portal import past_due
from tests.billing.world import Billing

T0 = datetime(2027, 3, 1, 10, tzinfo=UTC)


async def world_at(api: httpx.AsyncClient, services: Services) -> Billing:
    await configure_gateways(api, SANDBOX_CONNECTION)
    world = Billing(api, services)
    await world.start(T0)
    return world


async def test_a_session_names_its_flow_and_language(api: httpx.AsyncClient, services: Services) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    sub = await world.subscribe(customer, await world.plan(1000))
    session = await portal_link(
        api,
        customer,
        locale="zh-CN",
        flow={"type": "subscription_update", "subscription": sub["id"]},
        return_url="https://app.example.com/",
    )
    assert session["flow"] == {"type": "subscription_update", "subscription": sub["id"], "invoice": None}
    assert session["locale"] == "zh-CN" and session["return_url"] == "https://app.example.com/"
    plain = await portal_link(api, customer)
    assert plain["flow"] is None and plain["locale"] is None


async def test_a_flow_must_name_this_customers_object_in_a_state_the_task_can_be_done_in(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    eve = await world.customer(email="eve@example.com")
    own = await world.subscribe(customer, await world.plan(1000))
    eves = await world.subscribe(eve, await world.plan(1000))
    invoice = await world.get(f"/v1/invoices/{own['latest_invoice']}")
    paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={"paid_out_of_band": True})
    assert paid.status_code == 200
    foreign = (await other_api.post("/v1/customers", json={})).json()["id"]

    async def refused(flow: dict[str, Any], status: int, param: str, who: str = customer) -> None:
        answer = await api.post("/v1/portal_sessions", json={"customer": who, "flow": flow})
        assert answer.status_code == status, (flow, answer.text)
        assert answer.json()["error"]["param"] == param

    await refused({"type": "subscription_cancel", "subscription": eves["id"]}, 400, "flow.subscription")
    await refused({"type": "subscription_cancel"}, 400, "flow.subscription")
    await refused(
        {"type": "subscription_update", "subscription": "sub_" + "0" * 24}, 404, "flow.subscription"
    )
    await refused({"type": "invoice_pay", "invoice": invoice["id"]}, 400, "flow.invoice")  # paid already
    await refused({"type": "invoice_pay"}, 400, "flow.invoice")
    await refused({"type": "payment_method_update", "invoice": invoice["id"]}, 400, "flow.invoice")
    await refused({"type": "no_such_flow"}, 400, "flow.type")
    answer = await api.post("/v1/portal_sessions", json={"customer": foreign})
    assert answer.status_code == 404


async def test_plans_say_whether_the_portal_offers_them(api: httpx.AsyncClient) -> None:
    body = {"code": "pv1", "name": "Pro", "currency": "USD", "amount": 3000}
    offered = (await api.post("/v1/plans", json={**body, "portal_visible": True})).json()
    hidden = (await api.post("/v1/plans", json={**body, "code": "pv2"})).json()
    assert offered["portal_visible"] is True and hidden["portal_visible"] is False
    listed = (await api.get("/v1/plans", params={"portal_visible": "true"})).json()["data"]
    assert [p["id"] for p in listed] == [offered["id"]]
    # Offering a plan is not pricing: it may change while the plan is in use.
    updated = await api.patch(f"/v1/plans/{hidden['id']}", json={"portal_visible": True})
    assert updated.status_code == 200 and updated.json()["portal_visible"] is True


async def test_customers_carry_an_address_and_tax_ids(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/customers",
        json={
            "name": "上海示例科技有限公司",
            "address": {"line1": "世纪大道 100 号", "city": "浦东新区", "state": "上海市", "country": "cn"},
            "tax_ids": [{"type": "cn_tin", "value": "91310000 MA1FL8 1234"}],
        },
    )
    assert created.status_code == 200, created.text
    customer = created.json()
    assert customer["address"]["country"] == "CN" and customer["address"]["postal_code"] is None
    assert customer["tax_ids"] == [{"type": "cn_tin", "value": "91310000MA1FL81234"}]
    cleared = await api.patch(f"/v1/customers/{customer['id']}", json={"address": None, "tax_ids": []})
    assert cleared.json()["address"] is None and cleared.json()["tax_ids"] == []
    for body, param in (
        ({"address": {"city": "Paris"}}, "address.country"),
        ({"address": {"country": "XX"}}, "address.country"),
        ({"tax_ids": [{"type": "eu_vat", "value": "1"}]}, "tax_ids[0].value"),
        ({"tax_ids": [{"type": "ssn", "value": "1"}]}, "tax_ids[0].type"),
        (
            {
                "tax_ids": [
                    {"type": "gb_vat", "value": "GB123456789"},
                    {"type": "gb_vat", "value": "gb 123456789"},
                ]
            },
            "tax_ids[1]",
        ),
    ):
        refused = await api.patch(f"/v1/customers/{customer['id']}", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["param"] == param, refused.text


async def test_a_cancellation_keeps_its_reason_and_can_be_taken_back_over_the_api(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    sub = await world.subscribe(customer, await world.plan(1000))
    canceled = await api.post(
        f"/v1/subscriptions/{sub['id']}/cancel",
        json={"at_period_end": True, "cancellation_details": {"reason": "unused", "comment": "Seasonal"}},
    )
    assert canceled.json()["cancellation_details"] == {"reason": "unused", "comment": "Seasonal"}
    bad = await api.post(
        f"/v1/subscriptions/{sub['id']}/cancel", json={"cancellation_details": {"reason": "bored"}}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("cancellation_details")
    undone = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"cancel_at_period_end": False})
    assert undone.status_code == 200
    assert undone.json()["cancel_at_period_end"] is False and undone.json()["cancellation_details"] is None
    again = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"cancel_at_period_end": True})
    assert again.json()["cancel_at_period_end"] is True
    ended = await api.post(f"/v1/subscriptions/{sub['id']}/cancel", json={})
    assert ended.json()["status"] == "canceled"
    refused = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"cancel_at_period_end": False})
    assert refused.status_code == 409


async def test_portal_and_branding_settings_are_validated(api: httpx.AsyncClient) -> None:
    defaults = (await api.get("/v1/settings")).json()
    assert defaults["portal"] == {
        "proration_behavior": "create_prorations",
        "plan_changes": True,
        "cancel_mode": "at_period_end",
        "cancel_now_prorate": False,
    }
    assert defaults["branding"] == {
        "display_name": None,
        "logo_url": None,
        "accent_color": None,
        "support_email": None,
    }
    yellow = await api.patch("/v1/settings", json={"branding": {"accent_color": "#FFFF00"}})
    stored = yellow.json()["branding"]["accent_color"]
    assert stored != "#ffff00" and contrast_ratio(stored, "#ffffff") >= 4.5
    assert stored[1:3] == stored[3:5] and stored[5:7] == "00"  # still a yellow: the same hue, darker
    dark = await api.patch("/v1/settings", json={"branding": {"accent_color": "#123456"}})
    assert dark.json()["branding"]["accent_color"] == "#123456"
    for body, param in (
        ({"branding": {"accent_color": "blue"}}, "branding.accent_color"),
        ({"branding": {"logo_url": "http://example.com/logo.png"}}, "branding.logo_url"),
        ({"branding": {"logo_url": "https://user:pw@example.com/logo.png"}}, "branding.logo_url"),
        ({"branding": {"support_email": "not an email"}}, "branding.support_email"),
        ({"portal": {"cancel_mode": "whenever"}}, "portal.cancel_mode"),
    ):
        refused = await api.patch("/v1/settings", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["param"] == param, refused.text
    # Only what is sent changes.
    kept = await api.patch("/v1/settings", json={"portal": {"plan_changes": False}})
    assert kept.json()["portal"]["proration_behavior"] == "create_prorations"
    assert kept.json()["branding"]["accent_color"] == "#123456"


async def test_the_brand_shows_on_the_portal_the_hosted_invoice_and_the_pdf(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    await api.patch(
        "/v1/settings",
        json={
            "branding": {
                "display_name": "Acme Cloud",
                "accent_color": "#5b21b6",
                "support_email": "help@acme.example",
            }
        },
    )
    customer = await world.customer(email="ada@example.com")
    sub = await world.subscribe(customer, await world.plan(1000))
    invoice = await world.get(f"/v1/invoices/{sub['latest_invoice']}")
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        page = await browser.get("/portal/")
        assert ":root{--accent:#5b21b6}" in page.text
        words = visible_text(page.text)
        assert "Acme Cloud" in words and "Merchant A" not in words
        assert "Questions? Write to help@acme.example." in words
        hosted = await browser.get(path_of(invoice["hosted_invoice_url"]))
        words = visible_text(hosted.text)
        assert "Acme Cloud" in words and "Questions about this invoice? Write to help@acme.example." in words
        assert "--accent:#5b21b6" in hosted.text
        pdf = await browser.get(path_of(invoice["invoice_pdf"]))
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    async with services.sessions() as session:
        row = await session.get(Invoice, invoice["id"])
        assert row is not None
        doc = await load_invoice_document(session, row)
    assert doc.merchant_name == "Acme Cloud" and doc.accent_color == "#5b21b6"
    text = render_pdf(doc, compress=False)
    assert b"Acme Cloud" in text and b"help@acme.example" in text


async def test_the_brand_shows_in_customer_emails(api: httpx.AsyncClient, services: Services) -> None:
    world = await world_at(api, services)
    await api.patch(
        "/v1/settings",
        json={
            "branding": {
                "display_name": "Acme Cloud",
                "accent_color": "#5b21b6",
                "support_email": "help@acme.example",
                "logo_url": "https://acme.example/logo.png",
            }
        },
    )
    customer, _, invoice = await past_due(api, world, locale="zh-CN")
    async with services.sessions() as session:
        mail = await session.scalar(
            select(EmailMessage).where(
                EmailMessage.customer_id == customer, EmailMessage.kind == "payment_failed"
            )
        )
    assert mail is not None
    assert (
        "—— Acme Cloud" in mail.text_body and "如有疑问，请发送邮件至 help@acme.example。" in mail.text_body
    )
    assert mail.html_body is not None
    assert 'src="https://acme.example/logo.png"' in mail.html_body and "background:#5b21b6" in mail.html_body
    assert invoice["number"] in mail.subject
