"""The console's risk review queue and reconciliation page over HTTP: a finance user sees held payments with the
rules that fired, approves one (charged once, audited) and refuses another; CSRF is required; the reconciliation
page shows a day's counts with mismatches highlighted and exports its rows as CSV; both pages speak Chinese."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx

from billing.merchants.service import NewMerchant
from billing.payments.service import collect_payment
from billing.services import Services
from tests.billing.console_helpers import audit_entries, console_user, csrf_of, logged_in
from tests.billing.payment_helpers import customer_with_card

GOOD_CARD = "4242424242424242"


async def _held(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, purposes: list[str]
) -> list[Any]:
    await api.patch(
        "/v1/settings",
        json={
            "gateways": [{"id": "sandbox", "type": "sandbox"}],
            "risk": {"amount_limits": {"USD": {"review": 10_000}}},
        },
    )
    customer, _ = await customer_with_card(api, GOOD_CARD)
    held = []
    for purpose in purposes:
        payment = await collect_payment(
            services,
            merchant_id=merchant.id,
            customer_id=customer["id"],
            amount=12_345,
            currency="USD",
            purpose=purpose,
        )
        assert payment.status == "requires_review"
        held.append(payment)
    return held


async def test_a_finance_user_approves_and_refuses_held_payments_with_audit_entries(
    app: Any, api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    first, second = await _held(api, services, merchant, ["order-1", "order-2"])
    password = await console_user(services, merchant.id, "fin@example.com", "finance")
    client = await logged_in(app, "fin@example.com", password)
    queue = await client.get("/console/risk")
    assert queue.status_code == 200
    assert first.id in queue.text and second.id in queue.text
    assert "amount_review" in queue.text and "$123.45" in queue.text
    csrf = csrf_of(queue.text)
    # Without the CSRF token nothing happens.
    refused_form = await client.post(f"/console/risk/{first.id}/approve", data={})
    assert refused_form.status_code == 403
    assert (await api.get(f"/v1/payments/{first.id}")).json()["status"] == "requires_review"

    approved = await client.post(f"/console/risk/{first.id}/approve", data={"csrf_token": csrf})
    assert approved.status_code == 303
    assert approved.headers["location"] == f"/console/risk?done=approved&payment={first.id}"
    assert (await api.get(f"/v1/payments/{first.id}")).json()["status"] == "succeeded"
    refused = await client.post(f"/console/risk/{second.id}/refuse", data={"csrf_token": csrf})
    assert refused.status_code == 303
    body = (await api.get(f"/v1/payments/{second.id}")).json()
    assert (body["status"], body["failure_code"]) == ("failed", "highest_risk_level")
    # A second click on the approved payment changes nothing; refusing it now is refused with a reason.
    again = await client.post(f"/console/risk/{first.id}/approve", data={"csrf_token": csrf})
    assert again.status_code == 303
    late = await client.post(f"/console/risk/{first.id}/refuse", data={"csrf_token": csrf})
    assert late.status_code == 409 and "requires_review" in late.text

    entries = await audit_entries(services, merchant.id)
    reviews = [
        (e.action, e.object_id, e.actor, (e.after or {}).get("status"))
        for e in entries
        if e.object_type == "payment"
    ]
    assert reviews == [
        ("payment.approve", first.id, "fin@example.com", "succeeded"),
        ("payment.refuse", second.id, "fin@example.com", "failed"),
    ]
    page = await client.get("/console/risk", params={"done": "approved", "payment": first.id})
    assert f"Payment {first.id} was approved and charged." in page.text
    assert "No payment is waiting for review." in page.text
    decision = (await api.get("/v1/risk_decisions", params={"subject": first.id})).json()["data"][0]
    assert (
        decision["review"]["action"] == "approved" and decision["review"]["by"] == "console:fin@example.com"
    )


async def test_the_reconciliation_page_highlights_mismatches_and_exports_csv(
    app: Any, api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    await api.patch("/v1/settings", json={"gateways": [{"id": "sandbox", "type": "sandbox"}]})
    customer, _ = await customer_with_card(api, GOOD_CARD)
    paid = await collect_payment(
        services,
        merchant_id=merchant.id,
        customer_id=customer["id"],
        amount=1999,
        currency="USD",
        purpose="p1",
    )
    lost = await collect_payment(
        services,
        merchant_id=merchant.id,
        customer_id=customer["id"],
        amount=500,
        currency="USD",
        purpose="p2",
    )
    await services.redis.hdel(f"{services.settings.redis_prefix}:sandbox:charges", lost.id)
    password = await console_user(services, merchant.id, "rec@example.com", "finance")
    client = await logged_in(app, "rec@example.com", password)
    today = datetime.now(UTC).date().isoformat()
    form = await client.get("/console/reconciliation")
    assert form.status_code == 200 and 'name="connection"' in form.text
    page = await client.get("/console/reconciliation", params={"connection": "sandbox", "date": today})
    assert page.status_code == 200, page.text
    assert page.text.count('<tr class="mismatch">') == 1
    assert "Missing in the settlement" in page.text and lost.id in page.text and paid.id in page.text
    exported = await client.get(
        "/console/reconciliation.csv", params={"connection": "sandbox", "date": today}
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(r["status"], r["id"], r["engine_amount"]) for r in rows} == {
        ("matched", paid.id, "1999"),
        ("missing_in_settlement", lost.id, "500"),
    }
    switched = await client.post(
        "/console/locale",
        data={"csrf_token": csrf_of(page.text), "locale": "zh-CN", "next": "/console/reconciliation"},
    )
    assert switched.status_code == 303
    zh = await client.get("/console/reconciliation", params={"connection": "sandbox", "date": today})
    assert "结算清单中缺失" in zh.text and "下载明细（CSV）" in zh.text
    assert "风控审核" in (await client.get("/console/risk")).text
    bad = await client.get("/console/reconciliation", params={"connection": "sandbox", "date": "2027-13-01"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text and "结算日必须是日期" in bad.text
