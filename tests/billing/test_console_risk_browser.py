"""The risk review queue and the reconciliation page in a real browser (Debian's chromium through playwright)
against a real `billing serve`: a finance user approves a held payment with its button, and reads a reconciled day
with its mismatch highlighted; one screenshot of each page (BILLING_TEST_ARTIFACTS)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from billing.config import Settings
from billing.merchants.service import NewMerchant
from billing.payments.service import collect_payment
from billing.reconciliation.service import reconcile_day
from billing.services import Services
from tests.billing.console_helpers import billing_serve, console_user
from tests.billing.payment_helpers import customer_with_card
from tests.browser import screenshot

pytestmark = pytest.mark.browser


async def test_a_finance_user_reviews_a_held_payment_and_reads_a_reconciled_day(
    browser: Any, settings: Settings, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    await api.patch(
        "/v1/settings",
        json={
            "gateways": [{"id": "sandbox", "type": "sandbox"}],
            "risk": {"amount_limits": {"USD": {"review": 10_000}}},
        },
    )
    customer, _ = await customer_with_card(api, "4242424242424242")
    charge = {"merchant_id": merchant.id, "customer_id": customer["id"], "currency": "USD"}
    paid = await collect_payment(services, **charge, amount=1999, purpose="small")
    lost = await collect_payment(services, **charge, amount=2500, purpose="lost")
    held = await collect_payment(services, **charge, amount=12_345, purpose="big")
    assert (paid.status, lost.status, held.status) == ("succeeded", "succeeded", "requires_review")
    await services.redis.hdel(f"{services.settings.redis_prefix}:sandbox:charges", lost.id)
    today = datetime.now(UTC).date()
    await reconcile_day(services, merchant.id, "sandbox", today)
    password = await console_user(services, merchant.id, "fin@example.com", "finance")
    with billing_serve(settings, BILLING_ENV="development") as (url, _):
        context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale="en-US")
        page = await context.new_page()
        await page.goto(url + "/console/login")
        await page.get_by_label("Email").fill("fin@example.com")
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/console/invoices")
        await page.get_by_role("link", name="Risk review").click()
        await page.wait_for_url("**/console/risk")
        assert await page.get_by_text("amount_review").count() == 1
        await screenshot(page, "console-risk-01-queue")
        await page.get_by_role("button", name=f"Approve and charge {held.id}").click()
        await page.wait_for_url("**/console/risk?done=approved*")
        assert await page.get_by_text("No payment is waiting for review.").count() == 1
        await page.goto(url + f"/console/reconciliation?connection=sandbox&date={today.isoformat()}")
        assert await page.locator("tr.mismatch").count() == 1
        await screenshot(page, "console-reconciliation-01-day")
        await context.close()
    assert (await api.get(f"/v1/payments/{held.id}")).json()["status"] == "succeeded"
