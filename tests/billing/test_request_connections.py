"""Requests that call a gateway hold at most one pooled connection at any moment, and the process bounds its
gateway calls (issue #12 item 8); a busy Idempotency-Key is a 409, and a charge whose outcome is not known yet is
a 202 that a retry with the key turns into the outcome (item 9).

Connections are counted per request with the pool's own checkout/checkin events: each request runs in its own
asyncio task (httpx's ASGI transport awaits the app in the caller's task), so "connections held by this task" is
"connections held by this request"."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text

from billing.api import idempotency
from billing.config import Settings
from billing.gateways.registry import GatewayPool
from billing.merchants.service import NewMerchant
from billing.payments.models import Payment
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import (
    charges_with_key,
    configure_gateways,
    customer_with_card,
    sandbox_admin,
    set_mode,
    standalone_sandbox,
)
from tests.billing.processes import billing_env, billing_serve
from tests.billing.test_credit_notes import open_invoice
from tests.billing.test_payments import settle_everything_due


class ConnectionsPerRequest:
    """Counts the pooled connections each asyncio task holds, and the most any task held at once; with the
    process's gateway pool, whose own peak of calls in flight is reset too."""

    def __init__(self, gateways: GatewayPool) -> None:
        self.gateways = gateways
        gateways.peak_in_flight = 0
        self.held: dict[asyncio.Task[Any], int] = {}
        self.owner: dict[int, asyncio.Task[Any]] = {}
        self.peak = 0
        self.tasks_seen: set[int] = set()

    def checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.owner[id(record)] = task
        self.held[task] = self.held.get(task, 0) + 1
        self.peak = max(self.peak, self.held[task])
        self.tasks_seen.add(id(task))

    def checkin(self, dbapi_connection: Any, record: Any) -> None:
        task = self.owner.pop(id(record), None)
        if task is not None:
            self.held[task] -= 1


@pytest.fixture
def connections(services: Services) -> Iterator[ConnectionsPerRequest]:
    tracker = ConnectionsPerRequest(services.gateways)
    engine = services.engine.sync_engine
    event.listen(engine, "checkout", tracker.checkout)
    event.listen(engine, "checkin", tracker.checkin)
    try:
        yield tracker
    finally:
        event.remove(engine, "checkout", tracker.checkout)
        event.remove(engine, "checkin", tracker.checkin)


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[str]:
    with standalone_sandbox() as url:
        yield url


@pytest.fixture
async def sandbox(slow_sandbox: str) -> AsyncIterator[str]:
    await sandbox_admin(slow_sandbox, "/admin/reset", {})
    # Every answer takes 150 ms: concurrent calls overlap, so the process's bound on calls in flight is reached.
    await set_mode(slow_sandbox, "slow", delay_ms=150, hang_ms=1500)
    yield slow_sandbox
    await set_mode(slow_sandbox, "normal")


def _connection(url: str, **extra: Any) -> dict[str, Any]:
    return {"id": "main", "type": "sandbox", "url": url, "timeout_ms": 1000, **extra}


async def _card_customer(
    api: httpx.AsyncClient, gateway: dict[str, Any], number: str = "4242424242424242"
) -> str:
    """Gateways set to `gateway` only; a USD customer whose default card is `number`."""
    await configure_gateways(api, gateway)
    customer, _ = await customer_with_card(api, number)
    updated = await api.patch(f"/v1/customers/{customer['id']}", json={"currency": "USD"})
    assert updated.status_code == 200, updated.text
    return str(customer["id"])


async def _paid_invoices(api: httpx.AsyncClient, customer: str, amounts: list[int]) -> list[dict[str, Any]]:
    """One invoice per amount, each paid by card through the API; their payments."""
    payments = []
    for amount in amounts:
        invoice = await open_invoice(api, customer, amount)
        paid = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})
        assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
        [payment] = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
        payments.append({**payment, "invoice_number": invoice["number"]})
    return payments


async def _other_merchant_reads(other_api: httpx.AsyncClient, stop: asyncio.Event) -> list[int]:
    """Another merchant's traffic, flowing while the storm runs: every answer's status."""
    await other_api.post("/v1/customers", json={"email": "bystander@example.com"})
    statuses: list[int] = []
    while not stop.is_set():
        statuses.append((await other_api.get("/v1/customers", params={"limit": 5})).status_code)
        await asyncio.sleep(0)
    return statuses


async def _storm(other_api: httpx.AsyncClient, requests: list[Any]) -> tuple[list[httpx.Response], list[int]]:
    stop = asyncio.Event()
    bystander = asyncio.create_task(_other_merchant_reads(other_api, stop))
    try:
        responses = await asyncio.gather(*requests)
    finally:
        stop.set()
    return list(responses), await bystander


def _refund_half(api: httpx.AsyncClient, payment: dict[str, Any]) -> Any:
    return api.post(
        "/v1/refunds",
        json={"payment": payment["id"], "amount": payment["amount"] // 2},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )


def _check_all_ok(responses: list[httpx.Response], bystander: list[int]) -> None:
    assert [r.status_code for r in responses] == [200] * len(responses), [
        r.text for r in responses if r.status_code != 200
    ]
    assert bystander and set(bystander) == {200}, "another merchant's reads failed meanwhile"


async def _check_refunds(
    api: httpx.AsyncClient, responses: list[httpx.Response], payments: list[dict[str, Any]], *, times: int
) -> None:
    """Each payment was refunded half its amount `times` times, by `responses` (in order)."""
    assert [(r.status_code, r.json().get("status"), r.json().get("amount")) for r in responses] == [
        (200, "succeeded", p["amount"] // 2) for p in payments for _ in range(times)
    ]
    for payment in payments:
        shown = (await api.get(f"/v1/payments/{payment['id']}")).json()
        assert shown["amount_refunded"] == times * (payment["amount"] // 2)


async def test_concurrent_refunds_hold_one_connection_each_and_all_succeed(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    sandbox: str,
    connections: ConnectionsPerRequest,
) -> None:
    customer = await _card_customer(api, _connection(sandbox))
    payments = await _paid_invoices(api, customer, [1000 + i for i in range(12)])
    connections.peak = 0
    # 24 refunds at once: half of each payment twice, more than the pool's 20 connections.
    responses, bystander = await _storm(other_api, [_refund_half(api, p) for p in payments for _ in range(2)])

    await _check_refunds(api, responses, payments, times=2)
    _check_all_ok(responses, bystander)
    assert len((await sandbox_admin(sandbox, "/admin/state"))["refunds"]) == 24
    assert connections.peak == 1, "a request held two pooled connections at once"
    assert connections.gateways.peak_in_flight <= connections.gateways.max_concurrent_calls


async def test_concurrent_pays_and_first_charges_hold_one_connection_each(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    services: Services,
    sandbox: str,
    connections: ConnectionsPerRequest,
) -> None:
    customer = await _card_customer(api, _connection(sandbox))
    invoices = [await open_invoice(api, customer, 500 + i) for i in range(16)]
    plan = await api.post(
        "/v1/plans",
        json={
            "code": f"seat-{uuid.uuid4().hex[:8]}",
            "name": "Seat",
            "currency": "USD",
            "interval": "month",
            "amount": 700,
        },
    )
    assert plan.status_code == 200, plan.text
    connections.peak = 0
    requests = [api.post(f"/v1/invoices/{i['id']}/pay", json={}) for i in invoices] + [
        api.post("/v1/subscriptions", json={"customer": customer, "plan": plan.json()["id"]})
        for _ in range(8)
    ]
    responses, bystander = await _storm(other_api, requests)

    _check_all_ok(responses, bystander)
    paid = responses[:16]
    assert [r.json()["status"] for r in paid] == ["paid"] * 16
    assert [r.json()["amount_paid"] for r in paid] == [500 + i for i in range(16)]
    subscriptions = responses[16:]
    assert {r.json()["status"] for r in subscriptions} == {"active"}
    async with services.sessions() as session:
        charged = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.customer_id == customer, Payment.status == "succeeded")
        )
    assert charged == 24
    assert len((await sandbox_admin(sandbox, "/admin/state"))["charges"]) == 24
    assert connections.peak == 1, "a request held two pooled connections at once"
    assert connections.gateways.peak_in_flight <= connections.gateways.max_concurrent_calls


async def test_concurrent_refunding_credit_notes_hold_one_connection_each(
    api: httpx.AsyncClient, services: Services, connections: ConnectionsPerRequest
) -> None:
    customer = await _card_customer(api, dict(SANDBOX_CONNECTION))
    payments = await _paid_invoices(api, customer, [800] * 6)
    connections.peak = 0
    # Two notes per invoice at once: the second waits for the first one's refund, holding nothing meanwhile.
    responses = await asyncio.gather(
        *(
            api.post("/v1/credit_notes", json={"invoice": p["invoice"], "amount": 300, "refund_amount": 300})
            for p in payments
            for _ in range(2)
        )
    )
    assert [r.status_code for r in responses] == [200] * 12, [
        r.text for r in responses if r.status_code != 200
    ]
    for payment in payments:
        notes = (await api.get("/v1/credit_notes", params={"invoice": payment["invoice"]})).json()["data"]
        number = payment["invoice_number"]
        assert sorted(n["number"] for n in notes) == [f"{number}-CN-01", f"{number}-CN-02"]
        shown = (await api.get(f"/v1/payments/{payment['id']}")).json()
        assert shown["amount_refunded"] == 600
    assert connections.peak == 1, "a request held two pooled connections at once"


async def test_a_busy_idempotency_key_is_a_409_not_a_500(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "WAIT_FOR_FIRST_REQUEST", "1s")
    key = str(uuid.uuid4())
    # The first request with the key is still inside its transaction (its row is written, not committed).
    async with services.engine.connect() as first:
        await first.execute(
            text(
                "INSERT INTO idempotency_keys (merchant_id, key, fingerprint, method, path, status, created_at, "
                "expires_at) VALUES (:m, :k, 'x', 'POST', '/v1/customers', 'in_progress', now(), "
                "now() + interval '1 day')"
            ),
            {"m": merchant.id, "k": key},
        )
        duplicate = await api.post(
            "/v1/customers", json={"email": "busy@example.com"}, headers={"Idempotency-Key": key}
        )
        await first.rollback()
    assert duplicate.status_code == 409, duplicate.text
    error = duplicate.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "idempotency_error",
        "idempotency_key_in_use",
        "Idempotency-Key",
    )
    # The key was never taken: once the first request gave up, the same key works.
    again = await api.post(
        "/v1/customers", json={"email": "busy@example.com"}, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200, again.text


async def test_a_charge_with_no_answer_is_a_202_and_a_retry_with_the_key_gets_the_outcome(
    api: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    await set_mode(sandbox, "normal", hang_ms=1500)
    # The card times out, then reports success when asked.
    customer = await _card_customer(api, _connection(sandbox, timeout_ms=300), "4000002760003184")
    invoice = await open_invoice(api, customer, 4200)
    key = str(uuid.uuid4())

    first = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    pending = first.json()
    assert (pending["object"], pending["status"], pending["invoice"], pending["amount"]) == (
        "payment",
        "pending",
        invoice["id"],
        4200,
    )

    # Asked again before the outcome is known: still 202, and nothing is sent to the gateway again.
    second = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": key})
    assert second.status_code == 202, second.text
    assert second.json()["id"] == pending["id"]

    await settle_everything_due(services)  # the janitor asks the gateway: it did charge
    outcome = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": key})
    assert outcome.status_code == 200, outcome.text
    assert (outcome.json()["object"], outcome.json()["status"], outcome.json()["amount_paid"]) == (
        "invoice",
        "paid",
        4200,
    )
    # Final now: replayed byte for byte.
    replay = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": key})
    assert (replay.status_code, replay.content) == (200, outcome.content)
    assert replay.headers["idempotent-replayed"] == "true"
    payments = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert [p["id"] for p in payments] == [pending["id"]]
    assert len(await charges_with_key(sandbox, pending["id"])) == 1


async def test_a_pending_charge_that_fails_answers_the_retry_with_the_card_error_and_never_charges_again(
    api: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    customer = await _card_customer(api, _connection(sandbox, timeout_ms=300))
    invoice = await open_invoice(api, customer, 3100)
    key = str(uuid.uuid4())
    await set_mode(sandbox, "down")
    first = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    await set_mode(sandbox, "normal")
    await settle_everything_due(services)  # never received: failed, nothing taken

    retry = await api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": key})
    assert retry.status_code == 402, retry.text
    error = retry.json()["error"]
    assert (error["type"], error["payment"], error["decline_code"]) == (
        "card_error",
        first.json()["id"],
        "gateway_unavailable",
    )
    payments = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert [p["id"] for p in payments] == [first.json()["id"]]
    assert await charges_with_key(sandbox, first.json()["id"]) == []
    # A new request (a new key) is a new attempt, and this card is charged.
    paid = await api.post(
        f"/v1/invoices/{invoice['id']}/pay", json={}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert (paid.status_code, paid.json()["status"]) == (200, "paid")


async def test_a_note_issued_with_a_refund_still_pending_does_not_hold_up_the_next_note(
    api: httpx.AsyncClient, services: Services, sandbox: str
) -> None:
    customer = await _card_customer(api, _connection(sandbox))
    [payment] = await _paid_invoices(api, customer, [900])
    invoice = {"id": payment["invoice"]}
    await set_mode(sandbox, "down")  # the refund gets no answer: the note is issued, its refund stays pending
    first = await api.post(
        "/v1/credit_notes", json={"invoice": invoice["id"], "amount": 300, "refund_amount": 300}
    )
    assert first.status_code == 200, first.text
    assert (await api.get(f"/v1/refunds/{first.json()['refund']}")).json()["status"] == "pending"
    # Only a note whose refund is still at the gateway makes the next one wait; this one is written.
    second = await api.post(
        "/v1/credit_notes", json={"invoice": invoice["id"], "amount": 200, "credit_amount": 200}
    )
    assert second.status_code == 200, second.text
    await set_mode(sandbox, "normal")
    await settle_everything_due(services)  # the janitor sends the refund again with the same key
    assert (await api.get(f"/v1/refunds/{first.json()['refund']}")).json()["status"] == "succeeded"
    assert len((await sandbox_admin(sandbox, "/admin/state"))["refunds"]) == 1


async def test_a_storm_of_refunds_and_pays_against_a_real_server_leaves_every_merchant_served(
    settings: Settings, merchant: NewMerchant, other_merchant: NewMerchant, tmp_path: Path
) -> None:
    """The issue's symptom, end to end: a `billing serve` process (pool 10 + 10) gets 40 refunds and 40 pays at
    once while another merchant reads. Every answer is a 200 (none is a 500 from an exhausted pool), every amount
    is right, and the other merchant's reads all succeed. Timings are bench/storm.py's business, not a test's."""
    count = 40
    async with billing_serve(billing_env(settings), tmp_path / "serve.log") as url:
        mine = {"Authorization": f"Bearer {merchant.secret_key}"}
        theirs = {"Authorization": f"Bearer {other_merchant.secret_key}"}
        limits = httpx.Limits(max_connections=2 * count + 10)
        async with (
            httpx.AsyncClient(base_url=url, headers=mine, timeout=120, limits=limits) as api,
            httpx.AsyncClient(base_url=url, headers=theirs, timeout=120) as other_api,
        ):
            customer = await _card_customer(api, dict(SANDBOX_CONNECTION))
            paid = await _paid_invoices(api, customer, [1000 + i for i in range(count)])
            to_pay = [await open_invoice(api, customer, 2000 + i) for i in range(count)]

            responses, bystander = await _storm(
                other_api,
                [_refund_half(api, p) for p in paid]
                + [api.post(f"/v1/invoices/{i['id']}/pay", json={}) for i in to_pay],
            )
            await _check_refunds(api, responses[:count], paid, times=1)
            _check_all_ok(responses[count:], bystander)
            assert [r.json()["status"] for r in responses[count:]] == ["paid"] * count
            assert [r.json()["amount_paid"] for r in responses[count:]] == [2000 + i for i in range(count)]
