"""The console in a real browser (Debian's chromium through playwright) against a real `billing serve`: log in,
filter invoices, void one, open the chart pages, in English and Chinese, on a laptop and on a phone. Each step
saves a screenshot (BILLING_TEST_ARTIFACTS) to be looked at."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing.config import Settings
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.console_helpers import billing_serve, console_user
from tests.billing.test_reports import three_months_of_subscriptions
from tests.browser import screenshot

pytestmark = pytest.mark.browser


async def _invoices(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    made = []
    for name, email, currency, amount, days in (
        ("Acme Analytics", "billing@acme.example", "USD", 129_900, 30),
        ("Acme Analytics", "billing@acme.example", "USD", 4_500, 0),
        ("北京云图科技", "finance@yuntu.example", "CNY", 880_000, 15),
        ("Globex GmbH", "ap@globex.example", "EUR", 23_050, 7),
        ("Initech", "pay@initech.example", "USD", 990, 60),
    ):
        customer = (
            await api.post("/v1/customers", json={"name": name, "email": email, "currency": currency})
        ).json()["id"]
        body = {
            "customer": customer,
            "collection_method": "send_invoice",
            "days_until_due": days,
            "lines": [{"description": "Platform fee", "amount": amount}],
        }
        invoice = (await api.post("/v1/invoices", json=body)).json()
        made.append((await api.post(f"/v1/invoices/{invoice['id']}/finalize")).json())
    return made


async def test_a_finance_user_logs_in_filters_voids_and_reads_the_charts(
    browser: Any, settings: Settings, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    invoices = await _invoices(api)
    clock = await three_months_of_subscriptions(api, services)
    password = await console_user(services, merchant.id, "ana@example.com", "admin")
    with billing_serve(settings, BILLING_ENV="development") as (url, _):
        context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale="en-US")
        page = await context.new_page()
        await page.goto(url + "/console/invoices")
        assert page.url.endswith("/console/login")
        await screenshot(page, "console-01-login")
        await page.get_by_label("Email").fill("ana@example.com")
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/console/invoices")
        assert await page.locator("tr[data-invoice]").count() == 19  # 5 live, 14 of the test clock
        await screenshot(page, "console-02-invoices")

        await page.get_by_label("Search").fill("acme")
        await page.get_by_label("Total at least").fill("100")
        await page.get_by_role("button", name="Apply").click()
        await page.wait_for_url("**q=acme**")
        rows = page.locator("tr[data-invoice]")
        assert await rows.count() == 1
        big = invoices[0]
        assert await rows.first.get_attribute("data-invoice") == big["id"]
        await screenshot(page, "console-03-filtered")

        await rows.first.get_by_role("link").click()
        await page.wait_for_url(f"**/console/invoices/{big['id']}")
        await page.get_by_role("button", name="Void").click()
        await page.wait_for_url("**done=void")
        assert await page.get_by_role("status").filter(has_text="The invoice was voided.").count() == 1
        assert (await api.get(f"/v1/invoices/{big['id']}")).json()["status"] == "void"
        await screenshot(page, "console-04-voided")

        await page.goto(url + f"/console/reports/mrr?test_clock={clock.id}&from=2027-01&to=2027-03")
        assert await page.locator("figure.chart svg").count() == 2
        assert await page.get_by_text("$100.33").count() >= 1  # MRR now (see test_reports)
        await screenshot(page, "console-05-mrr")
        for name in ("churn", "revenue"):
            await page.goto(url + f"/console/reports/{name}?test_clock={clock.id}&from=2027-01&to=2027-03")
            assert await page.locator("figure.chart svg").count() >= 1
            await screenshot(page, f"console-06-{name}")
        await page.goto(url + "/console/reports/ar_aging")
        await screenshot(page, "console-07-ageing")

        await page.get_by_label("Language").select_option("zh-CN")
        await page.get_by_role("button", name="Language").click()
        await page.goto(url + f"/console/reports/mrr?test_clock={clock.id}&from=2027-01&to=2027-03")
        assert await page.get_by_role("heading", name="报表").count() == 1
        await screenshot(page, "console-08-mrr-zh")
        await page.goto(url + f"/console/invoices/{invoices[2]['id']}")
        await screenshot(page, "console-09-invoice-zh")
        await page.goto(url + "/console/keys")
        await screenshot(page, "console-10-keys-zh")

        phone = await browser.new_context(
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            storage_state=await context.storage_state(),
        )
        mobile = await phone.new_page()
        await mobile.goto(url + "/console/invoices")
        assert await mobile.locator("tr[data-invoice]").count() == 19
        await screenshot(mobile, "console-11-phone-invoices")
        await mobile.goto(url + f"/console/reports/mrr?test_clock={clock.id}&from=2027-01&to=2027-03")
        await screenshot(mobile, "console-12-phone-mrr")
        await phone.close()
        await context.close()
