"""Payments and refunds end to end: the API, collect_payment, the router, and standalone sandbox gateways
reached over real HTTP (each its own `billing sandbox-gateway` process), switched slow or down at runtime."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from billing.clock import utc_now
from billing.config import Settings
from billing.db.engine import transaction
from billing.errors import CardError, Conflict, InvalidRequest
from billing.gateways.models import GatewayAttempt
from billing.merchants.service import NewMerchant
from billing.payments.janitor import run_janitor
from billing.payments.service import collect_payment, payment_error
from billing.scheduler.models import ScheduledTask
from billing.services import Services, open_services
from billing.test_clocks.advance import run_due_tasks
from tests.billing.payment_helpers import (
    charges_with_key,
    configure_gateways,
    customer_with_card,
    run_process,
    sandbox_admin,
    set_mode,
    standalone_sandbox,
)
from tests.billing.processes import assert_audit_clean, billing_env


@pytest.fixture(scope="module")
def sandbox_urls() -> Iterator[tuple[str, str]]:
    with standalone_sandbox() as first, standalone_sandbox() as second:
        yield first, second


@pytest.fixture
async def sandboxes(sandbox_urls: tuple[str, str]) -> AsyncIterator[tuple[str, str]]:
    for url in sandbox_urls:
        await sandbox_admin(url, "/admin/reset", {})
        await set_mode(url, "normal", hang_ms=1500)
    yield sandbox_urls
    for url in sandbox_urls:
        await set_mode(url, "normal")


def connection(connection_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": connection_id, "type": "sandbox", "url": url, "timeout_ms": 400, **extra}


async def pay(
    services: Services,
    merchant: NewMerchant,
    customer: dict[str, Any],
    *,
    purpose: str | None = None,
    **kw: Any,
) -> Any:
    return await collect_payment(
        services,
        merchant_id=merchant.id,
        customer_id=customer["id"],
        amount=kw.pop("amount", 1999),
        currency=kw.pop("currency", "USD"),
        purpose=purpose or f"test:{customer['id']}",
        **kw,
    )


async def settle_everything_due(services: Services) -> Any:
    """Run the janitor as if every pending payment's wait were over."""
    return await run_janitor(services, now=utc_now() + timedelta(hours=2))


CARD_OUTCOMES = [
    # number, status right after collect, failure_code, decline_type, next_action
    ("4242424242424242", "succeeded", None, None, None),
    ("5555555555554444", "succeeded", None, None, None),
    ("4000000000000002", "failed", "generic_decline", "soft", "retry_later"),
    ("4000000000009995", "failed", "insufficient_funds", "soft", "retry_later"),
    ("4000000000000069", "failed", "expired_card", "hard", "update_payment_method"),
    ("4000000000009979", "failed", "stolen_card", "hard", "update_payment_method"),
    ("4000000000000341", "failed", "card_declined", "soft", "retry_later"),
]


@pytest.mark.parametrize(("number", "status", "code", "decline_type", "action"), CARD_OUTCOMES)
async def test_every_test_card_decides_its_charge_through_a_real_sandbox(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    sandboxes: tuple[str, str],
    number: str,
    status: str,
    code: str | None,
    decline_type: str | None,
    action: str | None,
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0]))
    customer, pm = await customer_with_card(api, number)
    payment = await pay(services, merchant, customer)
    shown = (await api.get(f"/v1/payments/{payment.id}")).json()
    assert shown["status"] == status
    assert (shown["failure_code"], shown["decline_type"], shown["next_action"]) == (
        code,
        decline_type,
        action,
    )
    assert shown["gateway"] == "main" and shown["payment_method"] == pm["id"]
    assert shown["payment_method_details"] == {
        "type": "card",
        "card": {"brand": pm["card"]["brand"], "last4": number[-4:]},
    }
    assert (shown["failure_message"] is None) == (status == "succeeded")
    assert len(await charges_with_key(sandboxes[0], payment.id)) == 1
    error = payment_error(payment)
    if status == "succeeded":
        assert error is None
    else:
        assert isinstance(error, CardError) and error.to_body()["error"]["decline_code"] == code
    events = (await api.get("/v1/events", params={"object_id": payment.id})).json()["data"]
    assert [e["type"] for e in events] == [f"payment.{status}", "payment.created"]
    assert events[0]["data"]["object"] == shown


async def test_a_processing_error_is_technical_and_settles_failed_without_a_charge(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0]))
    customer, _ = await customer_with_card(api, "4000000000000119")
    payment = await pay(services, merchant, customer)
    assert payment.status == "pending" and payment.next_action == "wait"
    # Pending is not an error: the API answers 202 with the payment (tests/billing/test_request_connections.py).
    assert payment_error(payment) is None
    await settle_everything_due(services)
    shown = (await api.get(f"/v1/payments/{payment.id}")).json()
    assert (shown["status"], shown["failure_code"], shown["decline_type"]) == (
        "failed",
        "processing_error",
        None,
    )
    assert shown["next_action"] == "retry_later"
    assert await charges_with_key(sandboxes[0], payment.id) == []


async def test_a_gateway_that_times_out_then_succeeds_when_asked_charges_exactly_once(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("slowpoke", sandboxes[0]), connection("backup", sandboxes[1]))
    customer, _ = await customer_with_card(api, "4000002760003184")
    payment = await pay(services, merchant, customer, purpose="invoice:timeout")
    # No answer within 400 ms: unknown. It must not fail over (the first gateway may have charged).
    assert payment.status == "pending" and payment.gateway == "slowpoke"
    assert payment_error(payment) is None
    assert await charges_with_key(sandboxes[1], payment.id) == []

    # Asking again with the same purpose and attempt returns the same payment and sends nothing.
    again = await pay(services, merchant, customer, purpose="invoice:timeout")
    assert again.id == payment.id

    # Too early for the janitor: the payment's requests may still be in flight.
    early = await run_janitor(services)
    assert early.payments_settled == 0
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["status"] == "pending"

    await settle_everything_due(services)
    shown = (await api.get(f"/v1/payments/{payment.id}")).json()
    assert shown["status"] == "succeeded" and shown["gateway"] == "slowpoke"
    assert len(await charges_with_key(sandboxes[0], payment.id)) == 1
    state = await sandbox_admin(sandboxes[0], "/admin/state")
    assert state["charge_requests"] == 1  # one charge request, ever; the janitor only asked
    async with services.sessions() as session:
        operations = (
            await session.execute(
                select(GatewayAttempt.connection_id, GatewayAttempt.operation, GatewayAttempt.outcome)
                .where(GatewayAttempt.payment_id == payment.id)
                .order_by(GatewayAttempt.id)
            )
        ).all()
    assert [tuple(o) for o in operations] == [
        ("slowpoke", "charge", "unknown"),
        ("slowpoke", "retrieve", "succeeded"),
    ]
    # Settled once: a second janitor pass changes nothing.
    await settle_everything_due(services)
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": payment.id})).json()["data"]
    ]
    assert types == ["payment.succeeded", "payment.created"]


async def test_a_down_gateway_fails_over_to_the_next_connection_at_once(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("primary", sandboxes[0]), connection("secondary", sandboxes[1]))
    await set_mode(sandboxes[0], "down")
    customer, _ = await customer_with_card(api, "4242424242424242")
    payment = await pay(services, merchant, customer)
    assert payment.status == "succeeded" and payment.gateway == "secondary"
    assert await charges_with_key(sandboxes[0], payment.id) == []
    assert len(await charges_with_key(sandboxes[1], payment.id)) == 1
    stats = {c["id"]: c for c in (await api.get("/v1/gateways/stats")).json()["connections"]}
    assert stats["primary"]["technical_errors"] == 1 and stats["primary"]["succeeded"] == 0
    assert stats["secondary"]["succeeded"] == 1 and stats["secondary"]["success_rate"] == 1.0
    assert stats["secondary"]["latency_ms"]["p50"] is not None


async def test_a_declined_card_does_not_fail_over(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("primary", sandboxes[0]), connection("secondary", sandboxes[1]))
    customer, _ = await customer_with_card(api, "4000000000009995")
    payment = await pay(services, merchant, customer)
    assert payment.status == "failed" and payment.gateway == "primary"
    assert await charges_with_key(sandboxes[1], payment.id) == []


async def test_both_down_is_a_clean_api_error_and_a_pending_payment_the_janitor_settles_later(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("primary", sandboxes[0]), connection("secondary", sandboxes[1]))
    for url in sandboxes:
        await set_mode(url, "down")
    customer, _ = await customer_with_card(api, "4242424242424242", locale="zh-CN")
    payment = await pay(services, merchant, customer)
    assert payment.status == "pending"
    assert payment_error(payment) is None

    # While the gateways are down the janitor cannot ask them: still pending.
    report = await settle_everything_due(services)
    assert report.payments_still_pending >= 1
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["status"] == "pending"

    # Back up: both say they never received the charge, so it failed without taking money.
    for url in sandboxes:
        await set_mode(url, "normal")
    await settle_everything_due(services)
    shown = (await api.get(f"/v1/payments/{payment.id}")).json()
    assert (shown["status"], shown["failure_code"], shown["decline_type"]) == (
        "failed",
        "gateway_unavailable",
        None,
    )
    assert shown["failure_message"] == "支付服务暂时不可用，未产生任何扣款。我们稍后会自动重试。"
    for url in sandboxes:
        assert await charges_with_key(url, payment.id) == []


async def test_two_workers_paying_the_same_invoice_at_once_produce_one_charge(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0], timeout_ms=5000))
    await set_mode(sandboxes[0], "slow", delay_ms=300)
    customer, _ = await customer_with_card(api, "4242424242424242")
    payments = await asyncio.gather(
        *(pay(services, merchant, customer, purpose="in_concurrent", attempt=1) for _ in range(6))
    )
    assert len({p.id for p in payments}) == 1
    state = await sandbox_admin(sandboxes[0], "/admin/state")
    assert state["charge_requests"] == 1
    assert len(await charges_with_key(sandboxes[0], payments[0].id)) == 1
    async with services.sessions() as session:
        calls = await session.scalar(
            select(func.count())
            .select_from(GatewayAttempt)
            .where(GatewayAttempt.payment_id == payments[0].id)
        )
    assert calls == 1


async def test_a_second_attempt_while_the_first_is_live_or_paid_is_refused(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0]))
    customer, _ = await customer_with_card(api, "4242424242424242")
    first = await pay(services, merchant, customer, purpose="in_paid", attempt=1)
    assert first.status == "succeeded"
    with pytest.raises(Conflict) as refused:
        await pay(services, merchant, customer, purpose="in_paid", attempt=2)
    assert first.id in refused.value.message
    # After a decline, the next attempt is a new payment (a new charge).
    declined_customer, _ = await customer_with_card(api, "4000000000000002")
    failed = await pay(services, merchant, declined_customer, purpose="in_retry", attempt=1)
    retried = await pay(services, merchant, declined_customer, purpose="in_retry", attempt=2)
    assert failed.status == retried.status == "failed" and failed.id != retried.id


async def test_repeated_technical_errors_open_the_circuit_so_charges_skip_that_gateway(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("flaky", sandboxes[0]), connection("steady", sandboxes[1]))
    await set_mode(sandboxes[0], "down")
    customer, _ = await customer_with_card(api, "4242424242424242")
    for attempt in range(1, 6):
        payment = await pay(services, merchant, customer, purpose=f"circuit:{attempt}")
        assert payment.status == "succeeded" and payment.gateway == "steady"
    async with services.sessions() as session:
        flaky_calls = await session.scalar(
            select(func.count())
            .select_from(GatewayAttempt)
            .where(GatewayAttempt.merchant_id == merchant.id, GatewayAttempt.connection_id == "flaky")
        )
    assert flaky_calls == 3  # then the circuit opened and the last two went straight to "steady"
    stats = {c["id"]: c for c in (await api.get("/v1/gateways/stats")).json()["connections"]}
    assert stats["flaky"]["circuit"]["state"] == "open"
    assert stats["flaky"]["circuit"]["last_failure_code"] == "gateway_unavailable"
    assert stats["steady"]["circuit"]["state"] == "closed"


async def test_the_first_charge_gets_the_cvc_and_no_later_one(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0]))
    customer, _ = await customer_with_card(api, "4242424242424242", cvc="123")
    first = await pay(services, merchant, customer, purpose="cvc:1")
    second = await pay(services, merchant, customer, purpose="cvc:2")
    [first_charge] = await charges_with_key(sandboxes[0], first.id)
    [second_charge] = await charges_with_key(sandboxes[0], second.id)
    assert first_charge["cvc_provided"] is True and second_charge["cvc_provided"] is False


async def test_the_in_process_sandbox_is_the_default_connection(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    await configure_gateways(api, {"id": "sandbox", "type": "sandbox", "url": None, "weight": 1})
    customer, _ = await customer_with_card(api, "5555555555554444")
    payment = await pay(services, merchant, customer)
    assert payment.status == "succeeded" and payment.gateway == "sandbox"
    assert await services.gateways.in_process_app.state.ledger.charge(payment.id) is not None


async def test_the_in_process_sandbox_is_one_processor_for_every_process_of_the_engine(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    # The API process charges a card whose answer never comes (in-process sandbox, 100 ms timeout)...
    await configure_gateways(
        api, {"id": "sandbox", "type": "sandbox", "url": None, "weight": 1, "timeout_ms": 100}
    )
    state = services.gateways.in_process_app.state
    customer, _ = await customer_with_card(api, "4000002760003184")
    requests_before, state.hang_ms = state.charge_requests, 1_000
    try:
        payment = await pay(services, merchant, customer, purpose="invoice:two-processes")
    finally:
        state.hang_ms = 30_000
    assert payment.status == "pending"
    # ...and the worker process (its own services, its own in-process sandbox app) settles it by asking: it finds
    # the charge the API's sandbox recorded, so the payment succeeds instead of being called never received.
    worker = await open_services(services.settings, pool_size=2)
    try:
        assert worker.gateways.in_process_app is not services.gateways.in_process_app
        await settle_everything_due(worker)
    finally:
        await worker.close()
    shown = (await api.get(f"/v1/payments/{payment.id}")).json()
    assert (shown["status"], shown["gateway"]) == ("succeeded", "sandbox")
    assert state.charge_requests == requests_before + 1  # one charge request, ever; the worker only asked


async def test_payments_list_filters_by_customer_and_status(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0]))
    good, _ = await customer_with_card(api, "4242424242424242")
    bad, _ = await customer_with_card(api, "4000000000009995", locale="zh-CN")
    ok = await pay(services, merchant, good)
    declined = await pay(services, merchant, bad)
    by_customer = (await api.get("/v1/payments", params={"customer": bad["id"]})).json()["data"]
    assert [p["id"] for p in by_customer] == [declined.id]
    assert by_customer[0]["failure_message"] == "您的卡余额不足。请更换银行卡或稍后重试。"
    failed_ids = [
        p["id"] for p in (await api.get("/v1/payments", params={"status": "failed"})).json()["data"]
    ]
    assert declined.id in failed_ids and ok.id not in failed_ids


async def test_collecting_needs_an_attached_card_and_a_configured_gateway(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    customer = (await api.post("/v1/customers", json={"name": "no card"})).json()
    with pytest.raises(InvalidRequest) as no_card:
        await pay(services, merchant, customer)
    assert no_card.value.param == "payment_method"
    await configure_gateways(api)
    with_card, _ = await customer_with_card(api, "4242424242424242")
    with pytest.raises(Exception, match="No gateway connection"):
        await pay(services, merchant, with_card)


async def test_settings_validate_gateways(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    cases = [
        ([{"id": "a", "type": "sandbox"}, {"id": "a", "type": "sandbox"}], "gateways[1].id"),
        ([{"id": "a", "type": "wechat_pay_v9"}], "gateways[0].type"),
        ([{"id": "a", "type": "sandbox", "url": "ftp://x"}], "gateways[0].url"),
    ]
    for gateways, param in cases:
        response = await api.patch("/v1/settings", json={"gateways": gateways})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    bad_id = await api.patch("/v1/settings", json={"gateways": [{"id": "Has Spaces", "type": "sandbox"}]})
    assert bad_id.status_code == 400
    settings = await configure_gateways(api, {"id": "a", "type": "sandbox", "weight": 2})
    assert settings["gateways"] == [
        {
            "id": "a",
            "type": "sandbox",
            "url": None,
            "weight": 2,
            "priority": None,
            "timeout_ms": 10000,
            "credentials": {},
        }
    ]
    assert (await api.get("/v1/settings")).json() == settings
    assert (await api.get("/v1/events", params={"type": "settings.updated", "limit": 1})).json()["data"][0][
        "data"
    ]["object"] == settings


async def test_a_connection_with_pending_payments_cannot_be_removed(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("busy", sandboxes[0]))
    await set_mode(sandboxes[0], "down")
    customer, _ = await customer_with_card(api, "4242424242424242")
    payment = await pay(services, merchant, customer)
    assert payment.status == "pending"
    response = await api.patch("/v1/settings", json={"gateways": [{"id": "other", "type": "sandbox"}]})
    assert response.status_code == 409 and response.json()["error"]["code"] == "gateway_in_use"
    assert "busy (1 pending)" in response.json()["error"]["message"]
    await set_mode(sandboxes[0], "normal")
    await settle_everything_due(services)
    assert (
        await api.patch("/v1/settings", json={"gateways": [{"id": "other", "type": "sandbox"}]})
    ).status_code == 200


def test_the_sandbox_is_refused_in_production_settings_and_cli() -> None:
    env = {**os.environ, "BILLING_ENV": "production"}
    result = subprocess.run(
        [sys.executable, "-m", "billing", "sandbox-gateway", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "production" in result.stderr


async def test_merchants_created_outside_production_start_with_the_in_process_sandbox(
    services: Services, app: Any
) -> None:
    assert services.settings.database_url is not None
    result = await run_process(
        [sys.executable, "-m", "billing", "merchants", "create", "Sandbox by default"],
        env={**os.environ, "DATABASE_URL": services.settings.database_url, "BILLING_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = json.loads(result.stdout)["secret_key"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        settings = (await client.get("/v1/settings")).json()
    assert [(g["id"], g["type"], g["url"]) for g in settings["gateways"]] == [("sandbox", "sandbox", None)]


# Refunds ---------------------------------------------------------------------------------------------------------


async def paid(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    sandboxes: tuple[str, str],
    amount: int = 5000,
) -> Any:
    await configure_gateways(api, connection("main", sandboxes[0]))
    customer, _ = await customer_with_card(api, "4242424242424242")
    payment = await pay(services, merchant, customer, amount=amount)
    assert payment.status == "succeeded"
    return payment


async def test_partial_then_full_refunds_never_exceed_what_was_captured(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    payment = await paid(api, services, merchant, sandboxes)
    partial = await api.post(
        "/v1/refunds", json={"payment": payment.id, "amount": 2000, "reason": "requested_by_customer"}
    )
    assert partial.status_code == 200, partial.text
    assert partial.json()["status"] == "succeeded" and partial.json()["amount"] == 2000
    too_much = await api.post("/v1/refunds", json={"payment": payment.id, "amount": 3001})
    assert too_much.status_code == 400
    assert (too_much.json()["error"]["code"], too_much.json()["error"]["param"]) == (
        "amount_too_large",
        "amount",
    )
    assert "3000" in too_much.json()["error"]["message"]
    rest = await api.post("/v1/refunds", json={"payment": payment.id})
    assert rest.json()["amount"] == 3000 and rest.json()["status"] == "succeeded"
    nothing_left = await api.post("/v1/refunds", json={"payment": payment.id, "amount": 1})
    assert (
        nothing_left.status_code == 422 and nothing_left.json()["error"]["code"] == "charge_already_refunded"
    )
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["amount_refunded"] == 5000
    state = await sandbox_admin(sandboxes[0], "/admin/state")
    assert [c["amount_refunded"] for c in state["charges"] if c["idempotency_key"] == payment.id] == [5000]
    listed = (await api.get("/v1/refunds", params={"payment": payment.id})).json()["data"]
    assert [r["amount"] for r in listed] == [3000, 2000]
    events = (await api.get("/v1/events", params={"object_id": partial.json()["id"]})).json()["data"]
    assert [e["type"] for e in events] == ["refund.succeeded", "refund.created"]


async def test_a_double_refund_with_the_same_key_refunds_once(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    payment = await paid(api, services, merchant, sandboxes)
    body = {"payment": payment.id, "amount": 1500}
    first, second = await asyncio.gather(
        api.post("/v1/refunds", json=body, headers={"Idempotency-Key": "refund-once"}),
        api.post("/v1/refunds", json=body, headers={"Idempotency-Key": "refund-once"}),
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    # Even when the API's own replay record is gone, the refund's key finds the first refund.
    from billing.payments.refunds import create_refund

    again = await create_refund(
        services, merchant_id=merchant.id, payment_id=payment.id, amount=1500, idempotency_key="refund-once"
    )
    assert again.id == first.json()["id"]
    state = await sandbox_admin(sandboxes[0], "/admin/state")
    assert len(state["refunds"]) == 1
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["amount_refunded"] == 1500


async def test_concurrent_refunds_cannot_together_exceed_the_payment(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    payment = await paid(api, services, merchant, sandboxes, amount=3000)
    responses = await asyncio.gather(
        *(api.post("/v1/refunds", json={"payment": payment.id, "amount": 1000}) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 422, 422]  # "already fully refunded"
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["amount_refunded"] == 3000


async def test_refunding_a_failed_payment_is_a_clear_error(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    await configure_gateways(api, connection("main", sandboxes[0]))
    customer, _ = await customer_with_card(api, "4000000000000002")
    payment = await pay(services, merchant, customer)
    response = await api.post("/v1/refunds", json={"payment": payment.id})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "payment_not_captured" and error["param"] == "payment"
    assert "nothing was captured" in error["message"]
    unknown = await api.post("/v1/refunds", json={"payment": "pay_doesnotexist000000000000"})
    assert unknown.status_code == 404


async def test_a_refund_through_a_down_gateway_is_sent_again_by_the_janitor_and_lands_once(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, sandboxes: tuple[str, str]
) -> None:
    payment = await paid(api, services, merchant, sandboxes)
    await set_mode(sandboxes[0], "down")
    response = await api.post("/v1/refunds", json={"payment": payment.id, "amount": 700})
    assert response.status_code == 200 and response.json()["status"] == "pending"
    refund_id = response.json()["id"]
    await set_mode(sandboxes[0], "normal")
    report = await settle_everything_due(services)
    assert report.refunds_settled >= 1
    assert (await api.get(f"/v1/refunds/{refund_id}")).json()["status"] == "succeeded"
    await settle_everything_due(services)
    state = await sandbox_admin(sandboxes[0], "/admin/state")
    assert [r["amount"] for r in state["refunds"]] == [700]
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["amount_refunded"] == 700


async def test_another_merchant_gets_404_on_payments_and_refunds(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    sandboxes: tuple[str, str],
) -> None:
    payment = await paid(api, services, merchant, sandboxes)
    refund = (await api.post("/v1/refunds", json={"payment": payment.id, "amount": 100})).json()
    for path in (f"/v1/payments/{payment.id}", f"/v1/refunds/{refund['id']}"):
        response = await other_api.get(path)
        assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"
    stolen = await other_api.post("/v1/refunds", json={"payment": payment.id})
    assert stolen.status_code == 404 and stolen.json()["error"]["param"] == "payment"
    for path in ("/v1/payments", "/v1/refunds"):
        assert payment.id not in (await other_api.get(path, params={"limit": 100})).text
    stats = (await other_api.get("/v1/gateways/stats")).json()
    assert all(c["id"] != "main" or c["charges"] == 0 for c in stats["connections"])
    assert (await api.get(f"/v1/payments/{payment.id}")).json()["amount_refunded"] == 100


async def test_a_sandbox_connection_slipped_into_production_settings_receives_nothing(
    services: Services, sandboxes: tuple[str, str]
) -> None:
    from billing.gateways.base import CardInstrument, ChargeRequest, ConnectionConfig, TechnicalError
    from billing.gateways.registry import GatewayPool
    from billing.vault.cards import SecretPan

    pool = GatewayPool(production=True)
    try:
        gateway = pool.gateway(ConnectionConfig(id="x", type="sandbox", url=sandboxes[0]))
        card = CardInstrument(pan=SecretPan("4242424242424242"), brand="visa", exp_month=12, exp_year=2040)
        outcome = await gateway.charge(
            ChargeRequest(idempotency_key="pay_prod", amount=100, currency="USD", instrument=card)
        )
    finally:
        await pool.aclose()
    assert isinstance(outcome, TechnicalError) and outcome.code == "gateway_refused"
    assert (await sandbox_admin(sandboxes[0], "/admin/state"))["charge_requests"] == 0


# The primary gateway's state while each invoice is paid through the API, and where its money must land. Never
# CIRCUIT_THRESHOLD (3) failures in a row, so the circuit stays closed and each routing is the failover's own.
FLAPPING = [
    ("normal", {}, "primary", "succeeded"),
    ("down", {}, "secondary", "succeeded"),
    ("slow", {"delay_ms": 100}, "primary", "succeeded"),  # slow but within its 400 ms timeout
    ("down", {}, "secondary", "succeeded"),
    ("normal", {}, "primary", "succeeded"),
    ("down", {}, "secondary", "succeeded"),
    # Past its timeout: the outcome is unknown, so no failover (the primary may have charged); 202 pending.
    ("slow", {"delay_ms": 1500}, "primary", "pending"),
    ("normal", {}, "primary", "succeeded"),
]


@pytest.mark.fault
@pytest.mark.timeout(300)
async def test_a_flapping_slow_and_down_gateway_fails_over_and_charges_every_invoice_once(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    sandboxes: tuple[str, str],
    settings: Settings,
) -> None:
    """Invoices paid through the API while the primary gateway goes down, slow and up again between them: each is
    charged once, on the gateway the failover rules give, the sandboxes' ledgers hold exactly the succeeded
    payments, and `billing audit` finds nothing wrong with the merchant's books."""
    await configure_gateways(api, connection("primary", sandboxes[0]), connection("secondary", sandboxes[1]))
    customer, _ = await customer_with_card(api, "4242424242424242")
    invoices = []
    for index, (mode, extra, _, expected_status) in enumerate(FLAPPING):
        created = await api.post(
            "/v1/invoices",
            json={
                "customer": customer["id"],
                "currency": "USD",
                "lines": [{"description": f"flap {index}", "amount": 1000 + index}],
            },
        )
        assert created.status_code == 200, created.text
        invoice = created.json()
        assert (await api.post(f"/v1/invoices/{invoice['id']}/finalize")).status_code == 200
        await set_mode(sandboxes[0], mode, **extra)
        paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
        assert paid.status_code == (202 if expected_status == "pending" else 200), (mode, paid.text)
        invoices.append(invoice["id"])
    await set_mode(sandboxes[0], "normal")
    await settle_everything_due(services)
    # The pending invoice's collection looks again PENDING_RECHECK (a minute) after the charge: now, instead.
    async with transaction(services.sessions) as session:
        rechecks = await session.execute(
            update(ScheduledTask)
            .where(ScheduledTask.status == "pending", ScheduledTask.payload["invoice"].astext.in_(invoices))
            .values(due_at=utc_now() - timedelta(seconds=1))
            .returning(ScheduledTask.payload["invoice"].astext)
        )
        assert [invoice for (invoice,) in rechecks] == [invoices[6]]
    await run_due_tasks(services)

    ledgers = {
        name: await sandbox_admin(url, "/admin/state")
        for name, url in (("primary", sandboxes[0]), ("secondary", sandboxes[1]))
    }
    for index, (invoice_id, (mode, _, gateway, _)) in enumerate(zip(invoices, FLAPPING, strict=True)):
        shown = (await api.get(f"/v1/invoices/{invoice_id}")).json()
        # 10.00 USD plus the index, so every invoice's amount is its own.
        assert (shown["status"], shown["amount_paid"]) == ("paid", 1000 + index), (mode, shown)
        payments = (await api.get("/v1/payments", params={"invoice": invoice_id})).json()["data"]
        assert [(p["status"], p["gateway"], p["amount"]) for p in payments] == [
            ("succeeded", gateway, 1000 + index)
        ], mode
        for name, ledger in ledgers.items():
            charged = [c for c in ledger["charges"] if c["idempotency_key"] == payments[0]["id"]]
            # The charge is at the gateway that answered, once; the other never saw it.
            assert [(c["status"], c["amount"]) for c in charged] == (
                [("succeeded", 1000 + index)] if name == gateway else []
            ), (mode, name)
    await assert_audit_clean(billing_env(settings), merchant.id)
