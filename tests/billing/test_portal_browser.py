"""The portal in a real browser (Debian's chromium through playwright) against a real HTTP server, as a customer
uses it: open the link, change plan after the preview, cancel and undo, add a card that pays a past-due invoice,
pay an open invoice (from the portal and from the hosted invoice page), download a PDF, switch to 简体中文, and a
phone-sized screen. Every page is saved as a screenshot (tests/browser.py) to be looked at."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from billing.services import Services
from tests.billing.portal_helpers import path_of, portal_link
from tests.billing.test_portal import GOOD, attach, past_due, plans_and_subscription, prorations, world_at
from tests.browser import ARTIFACTS, screenshot

pytestmark = pytest.mark.browser

T0 = datetime(2027, 3, 1, 10, tzinfo=UTC)
PHONE = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
async def server(app: Any) -> AsyncIterator[str]:
    """The app on a real HTTP server (uvicorn) on a free port, in the tests' event loop; stopped at the end."""
    port = _free_port()
    running = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(running.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not running.started:
        assert loop.time() < deadline and not task.done(), "the test server did not start"
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    await task


async def _page(browser: Any, *, phone: bool = False, locale: str = "en-US") -> tuple[Any, Any]:
    context = await browser.new_context(
        viewport=PHONE if phone else {"width": 1100, "height": 900},
        locale=locale,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
    )
    return context, await context.new_page()


async def _fill_card(page: Any, number: str, month: str, year: str, cvc: str | None = None) -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry month (MM)").fill(month)
    await page.get_by_label("Expiry year (YYYY)").fill(year)
    if cvc is not None:
        await page.get_by_label("Security code (CVC)").fill(cvc)


async def _open(page: Any, server: str, link: dict[str, Any]) -> None:
    await page.goto(server + path_of(link["url"]))
    assert "/portal/s/" not in page.url  # the token is gone from the address bar


async def test_open_a_link_change_plan_after_the_preview_then_cancel_and_undo(
    api: httpx.AsyncClient, services: Services, browser: Any, server: str
) -> None:
    world = await world_at(api, services)
    await api.patch("/v1/settings", json={"portal": {"proration_behavior": "always_invoice"}})
    customer, _, pro, sub = await plans_and_subscription(api, world)
    await world.advance(T0 + timedelta(days=10))
    link = await portal_link(api, customer, return_url="https://app.example.com/account")
    context, page = await _page(browser)
    try:
        await _open(page, server, link)
        assert page.url == server + "/portal/"
        cookies = await context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
            ("billing_portal", True, "Lax")
        ]
        await page.get_by_role("heading", name="Your subscriptions").wait_for()
        await screenshot(page, "portal-overview-en")

        await page.get_by_role("link", name="Change plan").click()
        await page.get_by_text("Pro", exact=True).click()
        await screenshot(page, "portal-change-plan-en")
        await page.get_by_role("button", name="Review the change").click()
        await page.get_by_role("heading", name="Review your change").wait_for()
        due = await page.locator('[data-figure="due_today"] td.num').inner_text()
        await screenshot(page, "portal-change-preview-en")
        await page.get_by_role("button", name="Confirm change").click()
        await page.get_by_text("Your plan was changed, and").wait_for()
        assert due in await page.locator(".notice").inner_text()
        await screenshot(page, "portal-changed-en")
        changed = await world.subscription(sub["id"])
        assert changed["plan"] == pro

        await page.get_by_role("link", name="Cancel subscription").click()
        await page.get_by_label("It is too expensive").check()
        await page.get_by_label("Anything else you want to tell us? (optional)").fill(
            "We are pausing the project."
        )
        await screenshot(page, "portal-cancel-en")
        await page.get_by_role("button", name="Cancel subscription").click()
        await page.get_by_text("Your subscription will end on Apr 1, 2027.").wait_for()
        await screenshot(page, "portal-cancel-scheduled-en")
        details = (await world.subscription(sub["id"]))["cancellation_details"]
        assert details == {"reason": "too_expensive", "comment": "We are pausing the project."}

        await page.get_by_role("button", name="Don't cancel: keep renewing").click()
        await page.get_by_text("Your subscription will keep renewing as before.").wait_for()
        assert (await world.subscription(sub["id"]))["cancel_at_period_end"] is False
        await screenshot(page, "portal-renewed-en")
    finally:
        await context.close()


async def test_add_a_card_and_see_the_past_due_invoice_paid_then_switch_to_chinese(
    api: httpx.AsyncClient, services: Services, browser: Any, server: str
) -> None:
    world = await world_at(api, services)
    customer, _, invoice = await past_due(api, world, name="Ada Lovelace")
    link = await portal_link(api, customer)
    context, page = await _page(browser)
    try:
        await _open(page, server, link)
        await page.get_by_text(f"We could not collect $25.00 for invoice {invoice['number']}").wait_for()
        await screenshot(page, "portal-past-due-en")
        await page.get_by_role("link", name="Update payment method").first.click()
        await _fill_card(page, GOOD, "12", "2040", "123")
        await screenshot(page, "portal-payment-methods-en")
        await page.get_by_role("button", name="Add card and make it the default").click()
        await page.get_by_text(f"Invoice {invoice['number']} ($25.00) was paid with it.").wait_for()
        await screenshot(page, "portal-card-added-en")
        assert (await world.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"

        await page.get_by_role("button", name="简体中文").click()
        await page.get_by_role("heading", name="支付方式").wait_for()
        await screenshot(page, "portal-payment-methods-zh")
        await page.get_by_role("link", name="概览").click()
        await page.get_by_role("heading", name="您的订阅").wait_for()
        await screenshot(page, "portal-overview-zh")
        await page.get_by_role("link", name="发票").click()
        await page.get_by_role("heading", name="发票").wait_for()
        await screenshot(page, "portal-invoices-zh")
        await page.get_by_role("link", name="账单信息").click()
        await page.get_by_label("国家或地区").select_option("CN")
        await page.get_by_label("城市").fill("上海市")
        await page.get_by_label("地址第一行").fill("世纪大道 100 号")
        await page.get_by_label("税号类型").select_option("cn_tin")
        await page.get_by_label("税号", exact=True).fill("91310000MA1FL81234")
        await page.get_by_role("button", name="保存").click()
        await page.get_by_text("账单信息已保存。").wait_for()
        await screenshot(page, "portal-billing-zh")
        saved = await world.get(f"/v1/customers/{customer}")
        assert saved["address"]["country"] == "CN" and saved["tax_ids"][0]["value"] == "91310000MA1FL81234"
    finally:
        await context.close()


async def test_pay_an_open_invoice_download_its_pdf_and_pay_from_the_hosted_page_on_a_phone(
    api: httpx.AsyncClient, services: Services, browser: Any, server: str
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com", name="Ada Lovelace")
    plan = await world.plan(2500, name="Team")
    first = await world.subscribe(customer, plan)
    invoice = await world.get(f"/v1/invoices/{first['latest_invoice']}")
    second = await world.subscribe(customer, await world.plan(4900, name="Support"))
    other = await world.get(f"/v1/invoices/{second['latest_invoice']}")
    link = await portal_link(api, customer)
    context, page = await _page(browser, phone=True)
    try:
        await _open(page, server, link)
        await screenshot(page, "portal-overview-phone")
        await page.get_by_role("link", name="Invoices").click()
        await page.get_by_text("You have 2 invoices to pay.").wait_for()
        await screenshot(page, "portal-invoices-phone")
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name=f"Download invoice {invoice['number']} as PDF").click()
        download = await download_info.value
        assert download.suggested_filename == f"{invoice['number']}.pdf"
        with open(await download.path(), "rb") as pdf:  # noqa: ASYNC230 - a local temporary file
            assert pdf.read(5) == b"%PDF-"

        await page.get_by_role("link", name=f"Pay invoice {invoice['number']}").click()
        await _fill_card(page, "5555555555554444", "08", "2041")
        await screenshot(page, "portal-pay-phone")
        await page.get_by_role("button", name="Pay $25.00").click()
        await page.get_by_text(f"Thank you: invoice {invoice['number']} is paid").wait_for()
        await screenshot(page, "portal-paid-phone")
        assert (await world.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    finally:
        await context.close()

    # The hosted invoice page of the other invoice, opened by someone holding its link, pays it.
    context, page = await _page(browser, phone=True)
    try:
        await page.goto(server + path_of(other["hosted_invoice_url"]))
        await screenshot(page, "hosted-invoice-phone")
        await page.get_by_role("link", name="Pay this invoice online").click()
        await page.get_by_role("heading", name=f"Pay invoice {other['number']}").wait_for()
        assert await page.get_by_text("Mastercard •••• 4444").count() == 0  # saved cards are not offered here
        await _fill_card(page, GOOD, "12", "2040")
        await screenshot(page, "hosted-invoice-pay-phone")
        await page.get_by_role("button", name="Pay $49.00").click()
        await page.get_by_text(f"Thank you: invoice {other['number']} is paid").wait_for()
        await screenshot(page, "hosted-invoice-paid-phone")
        await page.get_by_role("link", name="Back to the invoice").click()
        await page.get_by_text("Paid", exact=True).first.wait_for()
        await screenshot(page, "hosted-invoice-after-phone")
    finally:
        await context.close()


async def _texts(page: Any, selector: str) -> list[str]:
    return [" ".join(text.split()) for text in await page.locator(selector).all_inner_texts()]


async def test_add_ons_and_prepaid_credits_in_the_portal_on_the_hosted_invoice_and_in_the_pdf(
    api: httpx.AsyncClient, services: Services, browser: Any, server: str
) -> None:
    """Team is 30.00 a month from March 1 10:00 UTC; its first period ends at the customer's midnight, April 1
    00:00 (734 hours). On March 11 10:00 (494 hours left) 2 × Extra storage at 10.00 are added:
    20.00 × 494/734 = 13.4605… → 13.46 waits for the next invoice. The wallet (0.10 a credit) holds 10.00 granted
    for good and 5.00 granted until March 25, before the renewal: so the April 1 invoice,
    30.00 + 20.00 + 13.46 = 63.46, burns 10.00 and charges the card 53.46."""
    world = await world_at(api, services)
    business = {
        "legal_name": "上海云图信息技术有限公司",
        "address": {"line1": "世纪大道 100 号", "city": "上海市", "postal_code": "200120", "country": "CN"},
        "tax_ids": [{"type": "cn_tin", "value": "91310000MA1FL81234"}],
        "payment_instructions": "Bank transfer: ICBC 1001 2345 6789",
    }
    assert (await api.patch("/v1/settings", json={"business": business})).status_code == 200
    customer = await world.customer(email="ada@example.com", name="Ada Lovelace")
    await attach(api, customer)
    team = await world.plan(3000, name="Team")
    storage = await world.plan(1000, name="Extra storage")
    sub = await world.subscribe(customer, team, collection_method="charge_automatically")
    added_at = T0 + timedelta(days=10)
    await world.advance(added_at)
    await world.post(f"/v1/subscriptions/{sub['id']}/items", {"plan": storage, "quantity": 2})
    _, charge = prorations(sub, added_at, 0, 2000)
    assert charge == 1346
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets",
        {
            "currency": "USD",
            "rate_amount": "0.10",
            "granted_amount": 1000,
            "name": "Credits",
            "auto_top_up": {"threshold": 500, "amount": 2000},
        },
    )
    await world.post(
        f"/v1/customers/{customer}/wallets/{wallet['id']}/top_up",
        {"granted_amount": 500, "expires_at": "2027-03-25T00:00:00Z"},
    )
    link = await portal_link(api, customer)
    context, page = await _page(browser)
    try:
        await _open(page, server, link)
        card = page.locator(f'[data-subscription="{sub["id"]}"]')
        assert await _texts(page, "table.items tbody tr") == [
            "Team 1 $30.00 per month $30.00",
            "Extra storage add-on 2 $10.00 per month $20.00",
        ]
        assert await card.locator('[data-figure="items_total"]').inner_text() == "$50.00 per month"
        # 30.00 + 20.00 + 13.46, less the 10.00 of credits still there on April 1.
        assert "$53.46 on Apr 1, 2027, after $10.00 of prepaid credits" in await card.inner_text()
        credits = page.locator(f'[data-wallet="{wallet["id"]}"]')
        assert await credits.locator('[data-figure="wallet_balance"]').inner_text() == "$15.00 (150 credits)"
        assert "$5.00 expire on Mar 25, 2027" in await credits.inner_text()
        assert "$20.00 is bought when the balance falls below $5.00" in await credits.inner_text()
        await screenshot(page, "portal-items-credits-en")

        await page.get_by_role("button", name="简体中文").click()
        await page.get_by_role("heading", name="预付额度 · Credits").wait_for()
        assert await _texts(page, "table.items thead th") == ["项目", "数量", "单价", "金额"]
        await screenshot(page, "portal-items-credits-zh")
    finally:
        await context.close()
    context, page = await _page(browser, phone=True)
    try:
        await _open(page, server, await portal_link(api, customer))
        await page.get_by_role("heading", name="Prepaid credits · Credits").wait_for()
        await screenshot(page, "portal-items-credits-phone")
    finally:
        await context.close()

    await world.advance(datetime(2027, 4, 1, 11, tzinfo=UTC))
    renewal = (await world.invoices(sub["id"]))[-1]
    assert [(line["description"], line["amount"]) for line in renewal["lines"]] == [
        ("1 × Team", 3000),
        ("2 × Extra storage", 2000),
        ("Remaining time on 2 × Extra storage", 1346),
    ]
    assert (renewal["total"], renewal["prepaid_credit_amount"], renewal["amount_due"]) == (6346, 1000, 5346)
    assert (renewal["status"], renewal["amount_paid"]) == ("paid", 5346)
    context, page = await _page(browser)
    try:
        await page.goto(server + path_of(renewal["hosted_invoice_url"]))
        await page.get_by_text("Prepaid credits applied").wait_for()
        # The amount the page leads with is what the card paid, not the total before the credits.
        assert await page.locator("p.headline").inner_text() == "$53.46"
        await screenshot(page, "hosted-invoice-items-credits-en")
        await page.goto(server + path_of(renewal["hosted_invoice_url"]) + "?locale=zh-CN")
        await page.get_by_text("已抵扣预付额度").wait_for()
        assert await page.get_by_text("2 × Extra storage 本周期剩余时间的费用").count() == 1
        await screenshot(page, "hosted-invoice-items-credits-zh")
    finally:
        await context.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for locale in ("en", "zh-CN"):  # kept beside the screenshots, to be looked at too
        pdf = await api.get(path_of(renewal["hosted_invoice_url"]) + "/pdf", params={"locale": locale})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        (ARTIFACTS / f"invoice-items-credits-{locale}.pdf").write_bytes(pdf.content)


async def test_an_open_invoice_shows_the_seller_the_buyer_and_how_to_pay_in_both_languages(
    api: httpx.AsyncClient, services: Services, browser: Any, server: str
) -> None:
    """The seller's profile (legal name, address, tax id, payment instructions, footer) and the buyer's (address,
    tax id) on an open invoice to pay by transfer, on its hosted page and in its PDF, in English and Chinese."""
    world = await world_at(api, services)
    business = {
        "legal_name": "Cloudmap Software Ltd",
        "address": {"line1": "1 Long Lane", "city": "London", "postal_code": "EC1A 9HF", "country": "GB"},
        "tax_ids": [{"type": "gb_vat", "value": "GB123456789"}],
        "payment_instructions": "Barclays, sort code 20-00-00, account 12345678",
        "invoice_footer": "Cloudmap Software Ltd, registered in England no. 01234567",
    }
    assert (await api.patch("/v1/settings", json={"business": business})).status_code == 200
    customer = await world.customer(
        email="li@example.com",
        name="李雷",
        address={"line1": "世纪大道 100 号", "city": "上海市", "postal_code": "200120", "country": "CN"},
        tax_ids=[{"type": "cn_tin", "value": "91310000MA1FL81234"}],
    )
    sub = await world.subscribe(
        customer, await world.plan(4900, name="Support"), collection_method="send_invoice", days_until_due=30
    )
    invoice = await world.get(f"/v1/invoices/{sub['latest_invoice']}")
    assert (invoice["status"], invoice["amount_due"]) == ("open", 4900)
    context, page = await _page(browser)
    try:
        await page.goto(server + path_of(invoice["hosted_invoice_url"]))
        text = " ".join((await page.locator("body").inner_text()).split())
        for shown in (
            "Cloudmap Software Ltd",
            "1 Long Lane",
            "GB123456789",
            "Barclays, sort code 20-00-00, account 12345678",
            "registered in England no. 01234567",
            "李雷",
            "91310000MA1FL81234",
        ):
            assert shown in text, shown
        await screenshot(page, "hosted-invoice-open-parties-en")
        await page.goto(server + path_of(invoice["hosted_invoice_url"]) + "?locale=zh-CN")
        await page.get_by_text("付款说明：Barclays").wait_for()
        await screenshot(page, "hosted-invoice-open-parties-zh")
    finally:
        await context.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for locale in ("en", "zh-CN"):
        pdf = await api.get(path_of(invoice["hosted_invoice_url"]) + "/pdf", params={"locale": locale})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        (ARTIFACTS / f"invoice-open-parties-{locale}.pdf").write_bytes(pdf.content)


async def test_an_expired_link_says_so_with_the_way_back(
    api: httpx.AsyncClient, services: Services, browser: Any, server: str
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com", locale="zh-CN")
    link = await portal_link(api, customer, return_url="https://app.example.com/account")
    await world.advance(T0 + timedelta(hours=2))
    context, page = await _page(browser, phone=True, locale="zh-CN")
    try:
        response = await page.goto(server + path_of(link["url"]))
        assert response is not None and response.status == 410
        await page.get_by_role("heading", name="此链接已过期").wait_for()
        assert (
            await page.get_by_role("link", name="返回 Merchant A").get_attribute("href")
            == "https://app.example.com/account"
        )
        await screenshot(page, "portal-link-expired-zh-phone")
    finally:
        await context.close()
