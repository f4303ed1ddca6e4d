"""The risk check on charges (SPEC §9): settings validated, blocklist and velocity rules block before any gateway
call, a review holds the payment until it is approved (charged exactly once) or refused."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from billing.db.engine import transaction
from billing.gateways.models import GatewayAttempt
from billing.merchants.service import NewMerchant
from billing.payments.service import collect_payment
from billing.services import Services
from billing.test_clocks.advance import run_due_tasks
from tests.billing.payment_helpers import customer_with_card

GOOD_CARD = "4242424242424242"


async def _risk(api: httpx.AsyncClient, risk: dict[str, Any]) -> httpx.Response:
    # With the in-process sandbox gateway, as a new merchant has outside production.
    return await api.patch(
        "/v1/settings", json={"risk": risk, "gateways": [{"id": "sandbox", "type": "sandbox"}]}
    )


async def _pay(
    services: Services, merchant: NewMerchant, customer: dict[str, Any], purpose: str, amount: int = 1999
) -> Any:
    return await collect_payment(
        services,
        merchant_id=merchant.id,
        customer_id=customer["id"],
        amount=amount,
        currency="USD",
        purpose=purpose,
    )


async def _gateway_calls(services: Services, payment_id: str) -> int:
    async with transaction(services.sessions) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(GatewayAttempt)
                .where(GatewayAttempt.payment_id == payment_id)
            )
            or 0
        )


async def test_risk_settings_are_validated_and_normalized(api: httpx.AsyncClient) -> None:
    bad = {
        "currency": ({"amount_limits": {"XYZ": {"review": 1}}}, "risk.amount_limits.XYZ"),
        "order": ({"amount_limits": {"USD": {"review": 500, "block": 500}}}, "risk.amount_limits.USD"),
        "ip": ({"blocklists": {"ips": ["10.0.0.1", "not-an-ip"]}}, "risk.blocklists.ips[1]"),
        "country": ({"blocklists": {"countries": ["KPX"]}}, "risk.blocklists.countries[0]"),
        "email": ({"blocklists": {"emails": ["nobody"]}}, "risk.blocklists.emails[0]"),
    }
    for name, (risk, param) in bad.items():
        response = await _risk(api, risk)
        assert response.status_code == 400, name
        assert response.json()["error"]["param"] == param, (name, response.text)
    unknown = await _risk(api, {"velocity": {"per_card": 3}})
    assert unknown.status_code == 400
    ok = await _risk(
        api,
        {
            "velocity": {"per_customer_per_hour": 5},
            "amount_limits": {"usd": {"review": 5000}},
            "blocklists": {"emails": ["Fraud@Example.com"], "countries": ["kp"], "ips": ["2001:db8::0:1"]},
        },
    )
    assert ok.status_code == 200, ok.text
    risk = (await api.get("/v1/settings")).json()["risk"]
    assert risk["velocity"] == {
        "per_fingerprint_per_hour": None,
        "per_customer_per_hour": 5,
        "per_ip_per_hour": None,
    }
    assert risk["amount_limits"] == {"USD": {"review": 5000, "block": None}}
    assert risk["blocklists"] == {
        "fingerprints": [],
        "emails": ["fraud@example.com"],
        "ips": ["2001:db8::1"],
        "countries": ["KP"],
    }
    assert risk["review_score"] == 50 and risk["enabled"] is True


async def test_a_blocklisted_card_is_declined_hard_before_any_gateway_call(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    customer, pm = await customer_with_card(api, GOOD_CARD, locale="zh-CN")
    assert (
        await _risk(api, {"blocklists": {"fingerprints": [pm["card"]["fingerprint"]]}})
    ).status_code == 200
    payment = await _pay(services, merchant, customer, "blocked")
    assert (payment.status, payment.failure_code, payment.decline_type) == (
        "failed",
        "highest_risk_level",
        "hard",
    )
    assert "blocklist_fingerprint" in (payment.failure_message or "")
    assert "风控规则" in (payment.failure_message or "")
    assert await _gateway_calls(services, payment.id) == 0
    decisions = (await api.get("/v1/risk_decisions", params={"subject": payment.id})).json()["data"]
    assert [(d["outcome"], d["score"], [r["rule"] for r in d["reasons"]]) for d in decisions] == [
        ("block", 100, ["blocklist_fingerprint"])
    ]
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    assert {"risk.decision", "payment.failed"} <= {e["type"] for e in events}


async def test_velocity_per_customer_blocks_the_attempt_over_the_limit(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    customer, _ = await customer_with_card(api, GOOD_CARD)
    # Attaching the card was the customer's first attempt of the hour; the limit is 3.
    assert (await _risk(api, {"velocity": {"per_customer_per_hour": 3}})).status_code == 200
    first = await _pay(services, merchant, customer, "v1")
    second = await _pay(services, merchant, customer, "v2")
    third = await _pay(services, merchant, customer, "v3")
    assert [first.status, second.status, third.status] == ["succeeded", "succeeded", "failed"]
    assert third.failure_code == "highest_risk_level"
    assert "velocity_customer" in (third.failure_message or "")
    assert await _gateway_calls(services, third.id) == 0


async def test_a_review_holds_the_payment_and_its_approval_charges_exactly_once(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    customer, _ = await customer_with_card(api, GOOD_CARD)
    assert (
        await _risk(api, {"amount_limits": {"USD": {"review": 5000, "block": 100000}}})
    ).status_code == 200
    held = await _pay(services, merchant, customer, "big", amount=5000)
    assert held.status == "requires_review" and held.failure_code is None
    assert await _gateway_calls(services, held.id) == 0
    # The same purpose again finds the held payment: nothing new is charged while it waits.
    again = await _pay(services, merchant, customer, "big", amount=5000)
    assert again.id == held.id and again.status == "requires_review"
    queue = (await api.get("/v1/payments", params={"status": "requires_review"})).json()["data"]
    assert [p["id"] for p in queue] == [held.id]

    approved = await api.post(f"/v1/payments/{held.id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "succeeded"
    repeated = await api.post(f"/v1/payments/{held.id}/approve")
    assert repeated.status_code == 200 and repeated.json()["status"] == "succeeded"
    assert await _gateway_calls(services, held.id) == 1
    refused_late = await api.post(f"/v1/payments/{held.id}/refuse")
    assert refused_late.status_code == 409
    assert refused_late.json()["error"]["code"] == "payment_not_in_review"
    decision = (await api.get("/v1/risk_decisions", params={"subject": held.id})).json()["data"][0]
    assert (decision["outcome"], decision["score"], decision["review"]["action"]) == (
        "review",
        60,
        "approved",
    )


async def test_a_refused_review_fails_hard_without_a_charge(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    customer, _ = await customer_with_card(api, GOOD_CARD)
    assert (await _risk(api, {"amount_limits": {"USD": {"review": 5000}}})).status_code == 200
    held = await _pay(services, merchant, customer, "big", amount=7000)
    refused = await api.post(f"/v1/payments/{held.id}/refuse")
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert (body["status"], body["failure_code"], body["decline_type"]) == (
        "failed",
        "highest_risk_level",
        "hard",
    )
    assert "refused_in_review" in body["failure_message"]
    assert await _gateway_calls(services, held.id) == 0
    assert (await api.post(f"/v1/payments/{held.id}/approve")).status_code == 409


async def test_rapid_attachments_of_one_card_are_blocked_and_the_blocked_attempt_is_kept(
    api: httpx.AsyncClient,
) -> None:
    assert (await _risk(api, {"velocity": {"per_fingerprint_per_hour": 3}})).status_code == 200
    customer = (await api.post("/v1/customers", json={"email": "rapid@example.com"})).json()
    card = {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2040}
    answers = [
        await api.post("/v1/payment_methods", json={"customer": customer["id"], "card": card})
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 402, 402]
    error = answers[3].json()["error"]
    assert (error["type"], error["decline_code"], error["rule"]) == (
        "card_error",
        "highest_risk_level",
        "velocity_fingerprint",
    )
    assert "velocity_fingerprint" in error["message"]
    blocked = (await api.get("/v1/risk_decisions", params={"outcome": "block"})).json()["data"]
    # Both refused attempts are stored (in their own transaction: the request's rolled back), newest first.
    assert [d["reasons"][0]["detail"] for d in blocked] == [
        "5 attempts per card in the last hour, over the limit of 3",
        "4 attempts per card in the last hour, over the limit of 3",
    ]
    attached = (await api.get("/v1/payment_methods", params={"customer": customer["id"]})).json()["data"]
    assert len(attached) == 3


async def test_a_customer_in_a_blocked_country_cannot_attach_a_card(api: httpx.AsyncClient) -> None:
    assert (await _risk(api, {"blocklists": {"countries": ["kp"]}})).status_code == 200
    customer = (
        await api.post(
            "/v1/customers",
            json={"email": "c@example.com", "locale": "zh-CN", "address": {"line1": "1", "country": "KP"}},
        )
    ).json()
    answer = await api.post(
        "/v1/payment_methods",
        json={"customer": customer["id"], "card": {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2040}},
    )
    assert answer.status_code == 402, answer.text
    assert "blocklist_country" in answer.json()["error"]["message"]
    assert "风控规则" in answer.json()["error"]["message"]


async def _open_invoice(api: httpx.AsyncClient, customer: dict[str, Any], amount: int) -> dict[str, Any]:
    body = {
        "customer": customer["id"],
        "currency": "USD",
        "lines": [{"description": "Seats", "amount": amount}],
    }
    invoice = (await api.post("/v1/invoices", json=body)).json()
    finalized = await api.post(f"/v1/invoices/{invoice['id']}/finalize")
    assert finalized.status_code == 200, finalized.text
    return dict(finalized.json())


async def test_an_invoice_held_for_review_is_paid_once_approved(
    api: httpx.AsyncClient, services: Services
) -> None:
    customer, _ = await customer_with_card(api, GOOD_CARD)
    assert (await _risk(api, {"amount_limits": {"USD": {"review": 5000}}})).status_code == 200
    invoice = await _open_invoice(api, customer, 9000)
    paying = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert paying.status_code in (200, 202), paying.text
    [held] = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert held["status"] == "requires_review"
    after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (after["status"], after["attempt_count"], after["amount_remaining"]) == ("open", 0, 9000)
    # Paying again while it waits finds the same held payment.
    await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert len((await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]) == 1

    assert (await api.post(f"/v1/payments/{held['id']}/approve")).json()["status"] == "succeeded"
    # The review scheduled the invoice's collection again for the same attempt (the worker's tick runs it).
    assert await run_due_tasks(services) >= 1
    paid = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (paid["status"], paid["amount_paid"], paid["attempt_count"]) == ("paid", 9000, 1)
    assert await _gateway_calls(services, held["id"]) == 1


async def test_a_blocked_invoice_payment_is_a_hard_failure_for_dunning(api: httpx.AsyncClient) -> None:
    customer, pm = await customer_with_card(api, GOOD_CARD)
    assert (
        await _risk(api, {"blocklists": {"fingerprints": [pm["card"]["fingerprint"]]}})
    ).status_code == 200
    invoice = await _open_invoice(api, customer, 900)
    declined = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
    assert declined.status_code == 402
    assert declined.json()["error"]["decline_code"] == "highest_risk_level"
    after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    error = after["last_payment_error"]
    assert (error["code"], error["decline_type"], error["decline_class"]) == (
        "highest_risk_level",
        "hard",
        "hard",
    )
    # A hard decline is not retried on a schedule: it waits for a new payment method.
    assert after["next_payment_attempt"] is None
