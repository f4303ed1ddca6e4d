"""The Alipay sandbox's approval page as a tester uses it: a real `billing serve` process, Debian's chromium
(tests/browser.py), the payment method's next_action.url opened, a test buyer chosen, Approve clicked; the signed
notification reaches the engine over its own app and the payment method turns active. Screenshots of the page and
its answer are kept as test artifacts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from billing.config import Settings
from tests.billing.payment_helpers import free_port, serving
from tests.browser import screenshot


@pytest.fixture
def served(settings: Settings) -> Iterator[dict[str, str]]:
    """`billing serve` on a free port, its public URL set to that port, and a merchant's secret key."""
    assert settings.database_url is not None and settings.redis_url is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_ENV": "test",
        "BILLING_REDIS_PREFIX": settings.redis_prefix,
        "BILLING_PUBLIC_URL": url,
        "BILLING_LOG_LEVEL": "WARNING",
    }
    created = subprocess.run(
        [sys.executable, "-m", "billing", "merchants", "create", "Browser Shop"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    with serving(["serve", "--port", str(port)], url, "/ready", env, "billing serve"):
        yield {"url": url, "key": json.loads(created.stdout)["secret_key"]}


@pytest.mark.browser
async def test_a_tester_approves_an_alipay_agreement_on_the_sandbox_page_in_a_browser(
    browser: Any, served: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {served['key']}"}
    async with httpx.AsyncClient(base_url=served["url"], headers=headers, timeout=30) as api:
        configured = await api.patch(
            "/v1/settings", json={"gateways": [{"id": "alipay", "type": "alipay", "url": None}]}
        )
        assert configured.status_code == 200, configured.text
        customer = (
            await api.post(
                "/v1/customers",
                json={"currency": "CNY", "email": "han.meimei@example.com", "locale": "zh-CN"},
            )
        ).json()
        created = await api.post(
            "/v1/payment_methods",
            json={"customer": customer["id"], "type": "alipay", "agreement": {"single_amount_limit": 9900}},
        )
        assert created.status_code == 200, created.text
        pm = created.json()
        page = await browser.new_page(locale="zh-CN")
        try:
            await page.goto(pm["next_action"]["url"])
            assert "/sandbox/alipay/authorize/" in page.url
            assert await page.locator("text=¥99.00").count() == 1
            await screenshot(page, "alipay-sandbox-approval-page")
            await page.check("input[value=buyer_ok]")
            await page.click("button[value=approve]")
            await page.wait_for_selector("text=已以 buyer_ok 身份签约")
            await screenshot(page, "alipay-sandbox-approved")
        finally:
            await page.close()
        deadline = time.monotonic() + 30
        while True:
            shown = (await api.get(f"/v1/payment_methods/{pm['id']}")).json()
            if shown["status"] == "active" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert shown["status"] == "active" and shown["alipay"]["buyer_logon_id"] == "138****0001"


@pytest.mark.browser
@pytest.mark.parametrize(
    ("channel", "shown"),
    [
        # UnionPay's token product carries no amount limit (the engine enforces the agreement's own, see
        # billing/payment_methods/debits.py); e-CNY's sub-wallet agreement shows it to the buyer.
        ("unionpay", ("无感支付 token payment (bizType 000902)", "Token requestor")),
        ("ecny", ("子钱包免密支付 sub-wallet auto-pay", "¥99.00", "Max per debit")),
    ],
)
async def test_a_tester_approves_a_unionpay_or_ecny_agreement_on_its_sandbox_page_in_a_browser(
    browser: Any, served: dict[str, str], channel: str, shown: tuple[str, ...]
) -> None:
    headers = {"Authorization": f"Bearer {served['key']}"}
    async with httpx.AsyncClient(base_url=served["url"], headers=headers, timeout=30) as api:
        configured = await api.patch(
            "/v1/settings", json={"gateways": [{"id": channel, "type": channel, "url": None}]}
        )
        assert configured.status_code == 200, configured.text
        customer = (
            await api.post(
                "/v1/customers", json={"currency": "CNY", "email": "li.lei@example.com", "locale": "zh-CN"}
            )
        ).json()
        created = await api.post(
            "/v1/payment_methods",
            json={"customer": customer["id"], "type": channel, "agreement": {"single_amount_limit": 9900}},
        )
        assert created.status_code == 200, created.text
        pm = created.json()
        assert pm["status"] == "pending"
        page = await browser.new_page(locale="zh-CN")
        try:
            await page.goto(pm["next_action"]["url"])
            assert f"/sandbox/{channel}/authorize/" in page.url
            for text in shown:
                assert await page.locator(f"text={text}").count() == 1, text
            await screenshot(page, f"{channel}-sandbox-approval-page")
            await page.check("input[value=buyer_ok]")
            await page.click("button[value=approve]")
            await page.wait_for_selector("text=已以 buyer_ok 身份签约")
            await screenshot(page, f"{channel}-sandbox-approved")
        finally:
            await page.close()
        deadline = time.monotonic() + 30
        while True:
            shown_pm = (await api.get(f"/v1/payment_methods/{pm['id']}")).json()
            if shown_pm["status"] == "active" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert shown_pm["status"] == "active", shown_pm
