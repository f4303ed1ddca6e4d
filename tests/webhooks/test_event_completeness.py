"""Every state change writes its event, in the same transaction (SPEC §7).

The walk below drives every state change the engine can make through the API (and the worker, or a service
call where no route exists, for what happens in the background), and checks every event it writes: at the
COMMIT of the transaction that wrote the event, the row of the object the event is about must have been written
by that same transaction (PostgreSQL's `xmin`, read on the committing connection: see
tests/webhooks/commit_audit.py, which also explains why the check runs at commit time). Each step names the
event types it must produce and the object each must be about.

A second test checks that the walk covers every type in webhooks.catalog.EVENT_TYPES, except the types listed in
PENDING_FEATURES: a feature that adds an event type must add the step that produces it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Row, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, FrozenClock
from billing.customers.models import Customer
from billing.customers.schemas import CustomerCreate
from billing.customers.service import create_customer, render_customer
from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.payments.service import collect_payment
from billing.scheduler.registry import TASKS, TaskContext
from billing.scheduler.runner import schedule_task
from billing.services import Services
from billing.worker.settings import build_worker
from doctools.webhook_examples import example_event
from tests.billing.channel_helpers import agreement_no, answer_page, approval_page, start_agreement
from tests.webhooks.commit_audit import Audited, CommitAudit, Verdict
from tests.webhooks.receiver import Receiver, Reply
from webhooks.catalog import EVENT_TYPES
from webhooks.delivery import DeliveryPolicy, deliver_due
from webhooks.models import Event
from webhooks.outbox import record_event
from webhooks.payloads import REDACTED

# Event types of the catalog that no step produces yet, because the code that emits them is still being written.
# Each entry says why, and which issue brings it. Keep this empty whenever honesty allows:
# test_the_walk_covers_every_event_type_in_the_catalog fails if a type here is also declared by a step, and the
# walk fails if it ever produces one of them (the feature landed: add its step and remove it from here).
PENDING_FEATURES: dict[str, str] = {}

# Notices about a moment rather than changes of their object: the transaction that writes one only locks the
# object's row (and marks the scheduled task that emits it done), so its verdict is LOCKED, not WRITTEN.
NOTICES = {
    "subscription.trial_will_end": "three days before trial_end; the subscription itself does not change",
    "invoice.upcoming": "three days before a renewal; about the subscription, which does not change",
}

FAILING_TASK = "test.walk_failure"
CLOCK_T0 = datetime(2027, 1, 31, tzinfo=UTC)
SUB_T0 = datetime(2027, 3, 1, 10, tzinfo=UTC)
GOOD_CARD = "4242424242424242"
OTHER_CARD = "5555555555554444"
DECLINED_CARD = "4000000000000002"  # generic_decline (billing.gateways.sandbox.TEST_CARDS)
CARD_EXPIRY = {"exp_month": 12, "exp_year": 2040}


@dataclass
class Walk:
    api: httpx.AsyncClient
    services: Services
    merchant: NewMerchant
    receiver: Receiver
    sender: httpx.AsyncClient
    ids: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.api.request(method, path, json=body)
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        data: dict[str, Any] = response.json()
        return data

    async def run_worker(self) -> None:
        worker = build_worker(self.services, burst=True, with_cron=False)
        try:
            await worker.main()
        finally:
            await worker.close()

    async def advance(self, clock: str, to: datetime) -> None:
        """Advance a test clock and let a burst worker run everything due, as the worker does in production."""
        await self.call("POST", f"/v1/test_clocks/{self.ids[clock]}/advance", {"frozen_time": to.isoformat()})
        await self.run_worker()
        assert (await self.call("GET", f"/v1/test_clocks/{self.ids[clock]}"))["status"] == "ready"


@dataclass(frozen=True)
class Step:
    name: str
    # Each event type the step must write, and the key in Walk.ids of the object it must be about.
    produces: dict[str, str]
    run: Callable[[Walk], Awaitable[None]]


# --- customers, invoices, test clocks, webhook endpoints -----------------------------------------------------


async def _customer(w: Walk) -> None:
    w.ids["customer"] = (await w.call("POST", "/v1/customers", {"currency": "USD", "name": "Walker"}))["id"]


async def _update_customer(w: Walk) -> None:
    await w.call("PATCH", f"/v1/customers/{w.ids['customer']}", {"name": "Walker II"})


async def _draft(w: Walk, name: str) -> None:
    body = {"customer": w.ids["customer"], "lines": [{"description": "Setup", "amount": 4900}]}
    w.ids[name] = (await w.call("POST", "/v1/invoices", body))["id"]


async def _open_invoice(w: Walk, name: str) -> None:
    await _draft(w, name)
    await w.call("POST", f"/v1/invoices/{w.ids[name]}/finalize")


async def _delete_draft(w: Walk) -> None:
    await _draft(w, "draft")
    await w.call("DELETE", f"/v1/invoices/{w.ids['draft']}")


async def _pay(w: Walk) -> None:
    await _open_invoice(w, "paid")
    await w.call("POST", f"/v1/invoices/{w.ids['paid']}/pay", {"paid_out_of_band": True})


async def _void(w: Walk) -> None:
    await _open_invoice(w, "voided")
    await w.call("POST", f"/v1/invoices/{w.ids['voided']}/void")


async def _mark_uncollectible(w: Walk) -> None:
    await _open_invoice(w, "uncollectible")
    await w.call("POST", f"/v1/invoices/{w.ids['uncollectible']}/mark_uncollectible")


async def _delete_customer(w: Walk) -> None:
    await w.call("DELETE", f"/v1/customers/{w.ids['customer']}")


async def _clock(w: Walk) -> None:
    w.ids["clock"] = (await w.call("POST", "/v1/test_clocks", {"frozen_time": CLOCK_T0.isoformat()}))["id"]
    w.ids["clock_customer"] = (await w.call("POST", "/v1/customers", {"test_clock": w.ids["clock"]}))["id"]


async def _advance(w: Walk, days: int) -> None:
    target = (CLOCK_T0 + timedelta(days=days)).isoformat()
    await w.call("POST", f"/v1/test_clocks/{w.ids['clock']}/advance", {"frozen_time": target})


async def _clock_ready(w: Walk) -> None:
    await _advance(w, 1)
    await w.run_worker()


async def _clock_failure(w: Walk) -> None:
    async with transaction(w.services.sessions) as session:
        await schedule_task(
            session,
            merchant_id=w.merchant.id,
            kind=FAILING_TASK,
            due_at=CLOCK_T0 + timedelta(days=2),
            clock=FrozenClock(CLOCK_T0 + timedelta(days=1), test_clock_id=w.ids["clock"]),
        )
    await _advance(w, 3)
    await w.run_worker()


async def _delete_clock(w: Walk) -> None:
    await w.call("DELETE", f"/v1/test_clocks/{w.ids['clock']}")


async def _endpoint(w: Walk) -> None:
    url = w.receiver.url("/gone")
    body = {"url": url, "enabled_events": ["customer.created"]}
    w.ids["endpoint"] = (await w.call("POST", "/v1/webhook_endpoints", body))["id"]
    await w.call("PATCH", f"/v1/webhook_endpoints/{w.ids['endpoint']}", {"description": "walk"})


async def _rotate(w: Walk) -> None:
    await w.call("POST", f"/v1/webhook_endpoints/{w.ids['endpoint']}/rotate_secret")


async def _endpoint_gone(w: Walk) -> None:
    w.receiver.always(Reply(410), path="/gone")
    await w.call("POST", "/v1/customers", {})
    policy = DeliveryPolicy(timeout=2.0)
    report = await deliver_due(
        w.services.sessions, w.services.vault, w.sender, policy, merchant_id=w.merchant.id
    )
    assert [status for _, _, status in report.results] == ["failed"]


async def _delete_endpoint(w: Walk) -> None:
    await w.call("DELETE", f"/v1/webhook_endpoints/{w.ids['endpoint']}")


# --- the catalog ---------------------------------------------------------------------------------------------


async def _catalog_object(
    w: Walk, name: str, path: str, create: dict[str, Any], update: dict[str, Any]
) -> None:
    """Create, update, archive and unarchive one catalog object (each a request of its own)."""
    w.ids[name] = (await w.call("POST", path, create))["id"]
    await w.call("PATCH", f"{path}/{w.ids[name]}", update)
    archived = await w.call("POST", f"{path}/{w.ids[name]}/archive")
    assert archived["active"] is False
    assert (await w.call("POST", f"{path}/{w.ids[name]}/unarchive"))["active"] is True


async def _meter(w: Walk) -> None:
    create = {"code": "walk_calls", "name": "API calls", "aggregation": "sum"}
    await _catalog_object(w, "meter", "/v1/meters", create, {"name": "API calls (walk)"})


async def _plan(w: Walk) -> None:
    create = {
        "code": "walk_pro",
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "amount": 2000,
        "charges": [{"meter": "walk_calls", "model": "per_unit", "unit_amount": 1}],
    }
    await _catalog_object(w, "plan", "/v1/plans", create, {"name": "Pro (walk)", "metadata": {"tier": "2"}})


async def _feature(w: Walk) -> None:
    create = {"code": "walk_seats", "name": "Seats", "type": "limit"}
    await _catalog_object(w, "feature", "/v1/features", create, {"description": "Seats (walk)"})
    granted = await w.call(
        "POST", f"/v1/plans/{w.ids['plan']}/entitlements", {"feature": "walk_seats", "value": 5}
    )
    assert granted["entitlements"][0]["value"] == 5


async def _coupon(w: Walk) -> None:
    create = {"name": "Launch", "percent_off": "10", "duration": "once"}
    await _catalog_object(w, "coupon", "/v1/coupons", create, {"max_redemptions": 100})


async def _tax_rate(w: Walk) -> None:
    create = {"display_name": "VAT", "percentage": "20"}
    await _catalog_object(w, "tax_rate", "/v1/tax_rates", create, {"description": "Walk VAT"})


# --- settings, payment methods, payments, refunds ------------------------------------------------------------


async def _settings(w: Walk) -> None:
    w.ids["settings"] = w.merchant.id
    # The in-process sandbox gateway (url null), which the payment steps below charge through.
    connection = {"id": "sandbox", "type": "sandbox", "url": None, "weight": 1, "timeout_ms": 5000}
    settings = await w.call("PATCH", "/v1/settings", {"gateways": [connection]})
    assert [c["id"] for c in settings["gateways"]] == ["sandbox"]


async def _attach(w: Walk, name: str, customer: str, number: str) -> None:
    body = {"customer": w.ids[customer], "card": {"number": number, **CARD_EXPIRY}}
    w.ids[name] = (await w.call("POST", "/v1/payment_methods", body))["id"]


async def _make_default(w: Walk, customer: str, card: str) -> None:
    await w.call("PATCH", f"/v1/customers/{w.ids[customer]}", {"default_payment_method": w.ids[card]})


async def _card(w: Walk) -> None:
    w.ids["payer"] = (await w.call("POST", "/v1/customers", {"currency": "USD", "name": "Payer"}))["id"]
    await _attach(w, "card", "payer", GOOD_CARD)
    renewed = await w.call("PATCH", f"/v1/payment_methods/{w.ids['card']}", {"card": {"exp_year": 2041}})
    assert renewed["card"]["exp_year"] == 2041
    await _make_default(w, "payer", "card")


async def _detach(w: Walk) -> None:
    await _attach(w, "old_card", "payer", OTHER_CARD)
    detached = await w.call("POST", f"/v1/payment_methods/{w.ids['old_card']}/detach")
    assert detached["customer"] is None


async def _agreement(w: Walk) -> None:
    gateways = (await w.call("GET", "/v1/settings"))["gateways"]
    await w.call(
        "PATCH", "/v1/settings", {"gateways": [*gateways, {"id": "alipay", "type": "alipay", "url": None}]}
    )
    w.ids["cny_payer"] = (await w.call("POST", "/v1/customers", {"currency": "CNY", "name": "Li"}))["id"]
    pending = await start_agreement(w.api, w.ids["cny_payer"], "alipay")
    w.ids["agreement"] = pending["id"]
    await answer_page(w.api, await approval_page(w.api, pending))
    assert (await w.call("GET", f"/v1/payment_methods/{w.ids['agreement']}"))["status"] == "active"


async def _revoke_agreement(w: Walk) -> None:
    number = agreement_no(await w.call("GET", f"/v1/payment_methods/{w.ids['agreement']}"))
    revoked = await w.call("POST", f"/sandbox/alipay/admin/agreements/{number}/revoke", {})
    assert revoked["notification_accepted"] is True


async def _collect(w: Walk, name: str, payment_method: str | None = None) -> None:
    """No route collects an arbitrary amount: invoices do it through this service call."""
    payment = await collect_payment(
        w.services,
        merchant_id=w.merchant.id,
        customer_id=w.ids["payer"],
        amount=4900,
        currency="USD",
        purpose=f"walk:{name}",
        payment_method=w.ids[payment_method] if payment_method else None,
    )
    w.ids[name] = payment.id


async def _payment(w: Walk) -> None:
    await _collect(w, "payment")
    assert (await w.call("GET", f"/v1/payments/{w.ids['payment']}"))["status"] == "succeeded"


async def _held_payment(w: Walk) -> None:
    """A review limit of 40.00 USD holds the walk's 49.00 charge (docs/risk.md)."""
    await w.call("PATCH", "/v1/settings", {"risk": {"amount_limits": {"USD": {"review": 4000}}}})
    await _collect(w, "held_payment")
    assert (await w.call("GET", f"/v1/payments/{w.ids['held_payment']}"))["status"] == "requires_review"
    decisions = await w.call("GET", f"/v1/risk_decisions?subject={w.ids['held_payment']}")
    w.ids["risk_decision"] = decisions["data"][0]["id"]


async def _approve_held_payment(w: Walk) -> None:
    assert (await w.call("POST", f"/v1/payments/{w.ids['held_payment']}/approve"))["status"] == "succeeded"
    # The rules back to their defaults, for the steps after this one.
    await w.call("PATCH", "/v1/settings", {"risk": {}})


async def _reconcile(w: Walk) -> None:
    today = datetime.now(UTC).date().isoformat()
    w.ids["reconciliation"] = (await w.call("GET", f"/v1/reconciliation?connection=sandbox&date={today}"))[
        "id"
    ]


async def _declined_payment(w: Walk) -> None:
    await _attach(w, "declined_card", "payer", DECLINED_CARD)
    await _collect(w, "declined_payment", payment_method="declined_card")
    shown = await w.call("GET", f"/v1/payments/{w.ids['declined_payment']}")
    assert (shown["status"], shown["failure_code"]) == ("failed", "generic_decline")


async def _refund(w: Walk) -> None:
    refund = await w.call("POST", "/v1/refunds", {"payment": w.ids["payment"], "amount": 1000})
    assert refund["status"] == "succeeded"
    w.ids["refund"] = refund["id"]


async def _refused_refund(w: Walk) -> None:
    # The rest of the charge was refunded from the processor's own dashboard, behind the engine's back: the
    # gateway refuses to refund it again (amount_exceeds_charge).
    charge = await w.services.gateways.in_process_app.state.ledger.charge(w.ids["payment"])
    assert charge is not None
    assert await w.services.gateways.in_process_app.state.ledger.take_refundable(
        charge, charge.amount - charge.amount_refunded
    )
    refund = await w.call("POST", "/v1/refunds", {"payment": w.ids["payment"]})
    assert (refund["status"], refund["failure_code"]) == ("failed", "amount_exceeds_charge")
    w.ids["refused_refund"] = refund["id"]


# --- credit notes ---------------------------------------------------------------------------------------------


async def _credit_note(w: Walk) -> None:
    body = {"customer": w.ids["payer"], "lines": [{"description": "Consulting", "amount": 4900}]}
    w.ids["credited_invoice"] = (await w.call("POST", "/v1/invoices", body))["id"]
    await w.call("POST", f"/v1/invoices/{w.ids['credited_invoice']}/finalize")
    note = await w.call("POST", "/v1/credit_notes", {"invoice": w.ids["credited_invoice"], "amount": 1000})
    assert (note["status"], note["type"]) == ("issued", "pre_payment"), note
    w.ids["credit_note"] = note["id"]


async def _void_credit_note(w: Walk) -> None:
    assert (await w.call("POST", f"/v1/credit_notes/{w.ids['credit_note']}/void"))["status"] == "void"
    assert (await w.call("GET", f"/v1/invoices/{w.ids['credited_invoice']}"))["amount_remaining"] == 4900


# --- subscriptions (on a test clock, renewed by the worker) --------------------------------------------------


async def _subscription(w: Walk) -> None:
    w.ids["sub_clock"] = (await w.call("POST", "/v1/test_clocks", {"frozen_time": SUB_T0.isoformat()}))["id"]
    subscriber = await w.call("POST", "/v1/customers", {"test_clock": w.ids["sub_clock"], "currency": "USD"})
    w.ids["subscriber"] = subscriber["id"]
    await _attach(w, "subscriber_card", "subscriber", GOOD_CARD)
    await _make_default(w, "subscriber", "subscriber_card")
    body = {
        "customer": w.ids["subscriber"],
        "plan": w.ids["plan"],
        "trial_period_days": 14,
        "coupon": w.ids["coupon"],
        "tax_rates": [w.ids["tax_rate"]],
    }
    sub = await w.call("POST", "/v1/subscriptions", body)
    assert sub["status"] == "trialing"
    w.ids["sub"] = sub["id"]


async def _invoice_items(w: Walk) -> None:
    for name in ("sub_item", "dropped_item"):
        body = {"customer": w.ids["subscriber"], "amount": 700, "description": name}
        w.ids[name] = (await w.call("POST", "/v1/invoice_items", body))["id"]
    await w.call("DELETE", f"/v1/invoice_items/{w.ids['dropped_item']}")


async def _subscription_fields(w: Walk) -> dict[str, Any]:
    return await w.call("GET", f"/v1/subscriptions/{w.ids['sub']}")


async def _trial_will_end(w: Walk) -> None:
    trial_end = datetime.fromisoformat((await _subscription_fields(w))["trial_end"])
    await w.advance("sub_clock", trial_end - timedelta(days=2))


async def _latest_invoice(w: Walk, name: str) -> dict[str, Any]:
    sub = await _subscription_fields(w)
    w.ids[name] = sub["latest_invoice"]
    return sub


async def _renewal(w: Walk) -> None:
    trial_end = datetime.fromisoformat((await _subscription_fields(w))["trial_end"])
    await w.advance("sub_clock", trial_end + timedelta(hours=1))
    sub = await _latest_invoice(w, "renewal_invoice")
    item = await w.call("GET", f"/v1/invoice_items/{w.ids['sub_item']}")
    assert (item["status"], item["invoice"]) == ("invoiced", w.ids["renewal_invoice"])
    assert sub["status"] == "active"
    assert (await w.call("GET", f"/v1/invoices/{w.ids['renewal_invoice']}"))["status"] == "paid"


async def _update_subscription(w: Walk) -> None:
    await w.call("PATCH", f"/v1/subscriptions/{w.ids['sub']}", {"metadata": {"seats": "ten"}})


async def _pause(w: Walk) -> None:
    assert (await w.call("POST", f"/v1/subscriptions/{w.ids['sub']}/pause"))["status"] == "paused"


async def _resume(w: Walk) -> None:
    # Resumed inside the period paid at the trial's end: nothing is billed or charged again (issue 12 item 1).
    resumed = await w.call("POST", f"/v1/subscriptions/{w.ids['sub']}/resume")
    assert (resumed["status"], resumed["latest_invoice"]) == ("active", w.ids["renewal_invoice"])


async def _declined_renewal(w: Walk) -> None:
    await _attach(w, "subscriber_declined_card", "subscriber", DECLINED_CARD)
    await _make_default(w, "subscriber", "subscriber_declined_card")
    period_end = datetime.fromisoformat((await _subscription_fields(w))["current_period_end"])
    await w.advance("sub_clock", period_end + timedelta(hours=1))
    sub = await _latest_invoice(w, "declined_invoice")
    assert sub["status"] == "past_due"
    invoice = await w.call("GET", f"/v1/invoices/{w.ids['declined_invoice']}")
    assert (invoice["status"], invoice["last_payment_error"]["code"]) == ("open", "generic_decline")
    assert invoice["next_payment_attempt"] is not None
    cases = await w.call("GET", f"/v1/dunning/cases?invoice={w.ids['declined_invoice']}")
    w.ids["dunning_case"] = cases["data"][0]["id"]


async def _dunning_exhausted(w: Walk) -> None:
    # Keep the subscription past_due at the end, so the next step can still cancel it.
    await w.call("PATCH", "/v1/settings", {"dunning": {"final_action": "past_due"}})
    first_failure = datetime.fromisoformat(
        (await w.call("GET", f"/v1/dunning/cases/{w.ids['dunning_case']}"))["first_failure_at"]
    )
    await w.advance("sub_clock", first_failure + timedelta(days=7, hours=1))
    case = await w.call("GET", f"/v1/dunning/cases/{w.ids['dunning_case']}")
    assert (case["state"], case["final_action"]) == ("exhausted", "past_due")


async def _dunning_recovered(w: Walk) -> None:
    paid = await w.call("POST", f"/v1/invoices/{w.ids['declined_invoice']}/pay", {"paid_out_of_band": True})
    assert (paid["status"], paid["amount_due"]) == ("paid", 2400)
    case = await w.call("GET", f"/v1/dunning/cases/{w.ids['dunning_case']}")
    # Paid out of band: the whole amount due counts as recovered (no credit note reduced it).
    assert (case["state"], case["recovered_amount"]) == ("recovered", 2400)


async def _cancel(w: Walk) -> None:
    assert (await w.call("POST", f"/v1/subscriptions/{w.ids['sub']}/cancel", {}))["status"] == "canceled"


def _wallets(w: Walk) -> str:
    return f"/v1/customers/{w.ids['customer']}/wallets"


async def _latest_wallet_entry(w: Walk, name: str) -> None:
    listed = await w.call("GET", f"{_wallets(w)}/{w.ids['wallet']}/transactions")
    w.ids[name] = listed["data"][0]["id"]


async def _wallet(w: Walk) -> None:
    body = {"currency": "USD", "granted_amount": 1000, "auto_top_up": {"threshold": 500, "amount": 2000}}
    w.ids["wallet"] = (await w.call("POST", _wallets(w), body))["id"]
    await _latest_wallet_entry(w, "wallet_grant")


async def _burn(w: Walk, amount: int) -> None:
    body = {"customer": w.ids["customer"], "lines": [{"description": "Work", "amount": amount}]}
    invoice = (await w.call("POST", "/v1/invoices", body))["id"]
    assert (await w.call("POST", f"/v1/invoices/{invoice}/finalize"))["prepaid_credit_amount"] == amount
    await _latest_wallet_entry(w, "wallet_burn")


async def _buy_credits(w: Walk) -> None:
    await w.call("POST", f"{_wallets(w)}/{w.ids['wallet']}/top_up", {"paid_amount": 300})
    await _latest_wallet_entry(w, "wallet_purchase")
    listed = await w.call("GET", f"{_wallets(w)}/{w.ids['wallet']}/transactions")
    invoice = listed["data"][0]["invoice"]
    await w.call("POST", f"/v1/invoices/{invoice}/pay", {"paid_out_of_band": True})


async def _terminate_wallet(w: Walk) -> None:
    await w.call("POST", f"{_wallets(w)}/{w.ids['wallet']}/terminate")


WALK = [
    Step("create a customer", {"customer.created": "customer"}, _customer),
    Step("update a customer", {"customer.updated": "customer"}, _update_customer),
    Step(
        "create and delete a draft invoice",
        {"invoice.created": "draft", "invoice.deleted": "draft"},
        _delete_draft,
    ),
    Step("finalize and pay an invoice", {"invoice.finalized": "paid", "invoice.paid": "paid"}, _pay),
    Step("void an open invoice", {"invoice.voided": "voided"}, _void),
    Step(
        "mark an open invoice uncollectible",
        {"invoice.marked_uncollectible": "uncollectible"},
        _mark_uncollectible,
    ),
    Step(
        "create a wallet with granted credits",
        {"wallet.created": "wallet", "wallet_transaction.created": "wallet_grant"},
        _wallet,
    ),
    Step(
        "burn credits below the automatic top-up threshold",
        {
            "wallet_transaction.created": "wallet_burn",
            "wallet.updated": "wallet",
            "wallet.low_balance": "wallet",
        },
        lambda w: _burn(w, 700),
    ),
    Step("burn the last credits", {"wallet.depleted": "wallet"}, lambda w: _burn(w, 300)),
    Step(
        "buy credits, paid out of band",
        {"wallet_transaction.updated": "wallet_purchase"},
        _buy_credits,
    ),
    Step("terminate a wallet", {"wallet.terminated": "wallet"}, _terminate_wallet),
    Step("delete a customer", {"customer.deleted": "customer"}, _delete_customer),
    Step(
        "create a test clock with a customer",
        {"test_clock.created": "clock", "customer.created": "clock_customer"},
        _clock,
    ),
    Step(
        "advance a test clock until ready",
        {"test_clock.advancing": "clock", "test_clock.ready": "clock"},
        _clock_ready,
    ),
    Step("a due task fails while advancing", {"test_clock.internal_failure": "clock"}, _clock_failure),
    Step(
        "delete a test clock and its customers",
        {"test_clock.deleted": "clock", "customer.deleted": "clock_customer"},
        _delete_clock,
    ),
    Step(
        "create and update a webhook endpoint",
        {"webhook_endpoint.created": "endpoint", "webhook_endpoint.updated": "endpoint"},
        _endpoint,
    ),
    Step("rotate an endpoint's secret", {"webhook_endpoint.secret_rotated": "endpoint"}, _rotate),
    Step("an endpoint answers 410 Gone", {"webhook_endpoint.disabled": "endpoint"}, _endpoint_gone),
    Step("delete a webhook endpoint", {"webhook_endpoint.deleted": "endpoint"}, _delete_endpoint),
    Step(
        "create, update, archive and unarchive a meter",
        {
            "meter.created": "meter",
            "meter.updated": "meter",
            "meter.archived": "meter",
            "meter.unarchived": "meter",
        },
        _meter,
    ),
    Step(
        "create, update, archive and unarchive a plan charging for the meter",
        {"plan.created": "plan", "plan.updated": "plan", "plan.archived": "plan", "plan.unarchived": "plan"},
        _plan,
    ),
    Step(
        "create, update, archive and unarchive a feature; the plan grants it",
        {
            "feature.created": "feature",
            "feature.updated": "feature",
            "feature.archived": "feature",
            "feature.unarchived": "feature",
            "plan.entitlements_updated": "plan",
        },
        _feature,
    ),
    Step(
        "create, update, archive and unarchive a coupon",
        {
            "coupon.created": "coupon",
            "coupon.updated": "coupon",
            "coupon.archived": "coupon",
            "coupon.unarchived": "coupon",
        },
        _coupon,
    ),
    Step(
        "create, update, archive and unarchive a tax rate",
        {
            "tax_rate.created": "tax_rate",
            "tax_rate.updated": "tax_rate",
            "tax_rate.archived": "tax_rate",
            "tax_rate.unarchived": "tax_rate",
        },
        _tax_rate,
    ),
    Step("change the gateway settings", {"settings.updated": "settings"}, _settings),
    Step(
        "attach a card, renew its expiry date, make it the customer's default",
        {"payment_method.attached": "card", "payment_method.updated": "card", "customer.updated": "payer"},
        _card,
    ),
    Step("detach a card", {"payment_method.detached": "old_card"}, _detach),
    Step(
        "start an Alipay agreement; the customer approves it on the sandbox page (the signed notification)",
        {"payment_method.attached": "agreement", "payment_method.activated": "agreement"},
        _agreement,
    ),
    Step(
        "the customer revokes the agreement in Alipay (the revocation notification)",
        {"payment_method.revoked": "agreement"},
        _revoke_agreement,
    ),
    Step(
        "collect a payment (collect_payment)",
        {"payment.created": "payment", "payment.succeeded": "payment"},
        _payment,
    ),
    Step(
        "a card declines a payment (collect_payment)",
        {"payment.created": "declined_payment", "payment.failed": "declined_payment"},
        _declined_payment,
    ),
    Step(
        "the risk check holds a payment for review",
        {
            "payment.created": "held_payment",
            "payment.requires_review": "held_payment",
            "risk.decision": "risk_decision",
        },
        _held_payment,
    ),
    Step(
        "approve the held payment (charged once)",
        {"payment.succeeded": "held_payment"},
        _approve_held_payment,
    ),
    Step(
        "reconcile the day's settlement listing", {"reconciliation.completed": "reconciliation"}, _reconcile
    ),
    Step("refund part of a payment", {"refund.created": "refund", "refund.succeeded": "refund"}, _refund),
    Step(
        "the gateway refuses a refund",
        {"refund.created": "refused_refund", "refund.failed": "refused_refund"},
        _refused_refund,
    ),
    Step(
        "credit an open invoice",
        {"credit_note.created": "credit_note", "invoice.updated": "credited_invoice"},
        _credit_note,
    ),
    Step(
        "void a credit note",
        {"credit_note.voided": "credit_note", "invoice.updated": "credited_invoice"},
        _void_credit_note,
    ),
    Step(
        "subscribe with a trial, a coupon and a tax rate: the plan, its meter and the rate come into use, and the "
        "customer gets the plan's feature",
        {
            "test_clock.created": "sub_clock",
            "subscription.created": "sub",
            "customer.entitlements_updated": "subscriber",
            "plan.updated": "plan",
            "meter.updated": "meter",
            "tax_rate.updated": "tax_rate",
        },
        _subscription,
    ),
    Step(
        "add two pending invoice items for the subscriber, delete one",
        {"invoiceitem.created": "sub_item", "invoiceitem.deleted": "dropped_item"},
        _invoice_items,
    ),
    Step(
        "the test clock reaches three days before the trial ends: the trial warning and the upcoming invoice",
        {"subscription.trial_will_end": "sub", "invoice.upcoming": "sub", "test_clock.ready": "sub_clock"},
        _trial_will_end,
    ),
    Step(
        "the trial ends: the worker renews, invoices and charges the card",
        {
            "subscription.renewed": "sub",
            "invoice.created": "renewal_invoice",
            "invoice.finalized": "renewal_invoice",
            "invoice.paid": "renewal_invoice",
            "subscription.updated": "sub",
            "invoiceitem.updated": "sub_item",
        },
        _renewal,
    ),
    Step("update a subscription's metadata", {"subscription.updated": "sub"}, _update_subscription),
    Step("pause a subscription", {"subscription.paused": "sub"}, _pause),
    Step(
        "resume a subscription inside its paid period: nothing is invoiced or charged",
        {"subscription.resumed": "sub"},
        _resume,
    ),
    Step(
        "a renewal's charge is declined",
        {
            "invoice.payment_failed": "declined_invoice",
            "subscription.past_due": "sub",
            "dunning.case_opened": "dunning_case",
            "dunning.retry_scheduled": "dunning_case",
        },
        _declined_renewal,
    ),
    Step(
        "every retry of the declined renewal fails: the final action runs",
        {"dunning.exhausted": "dunning_case", "invoice.payment_failed": "declined_invoice"},
        _dunning_exhausted,
    ),
    Step(
        "the declined renewal is paid out of band: its dunning case is recovered",
        {"invoice.paid": "declined_invoice", "dunning.recovered": "dunning_case"},
        _dunning_recovered,
    ),
    Step("cancel a subscription", {"subscription.canceled": "sub"}, _cancel),
]


@pytest.fixture
def failing_task() -> Iterator[None]:
    async def fail(ctx: TaskContext) -> None:
        raise RuntimeError("the card network is down")

    TASKS.register(FAILING_TASK)(fail)
    yield
    TASKS.unregister(FAILING_TASK)


@pytest.fixture
async def walk(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> Walk:
    return Walk(api=api, services=services, merchant=merchant, receiver=receiver, sender=sender)


@pytest.fixture
async def audit(services: Services, merchant: NewMerchant) -> AsyncIterator[CommitAudit]:
    async with services.sessions() as session:
        floor = await session.scalar(select(func.coalesce(func.max(Event.seq), 0)))
    with CommitAudit(services.engine, merchant.id, floor=int(floor or 0)) as watching:
        yield watching


async def _events_after(session: AsyncSession, merchant_id: str, seq: int) -> list[Row[Any]]:
    return list(
        (
            await session.execute(
                select(
                    Event.id,
                    Event.seq,
                    Event.type,
                    Event.object_id,
                    Event.data,
                    literal_column("events.xmin::text").label("xmin"),
                )
                .where(Event.merchant_id == merchant_id, Event.seq > seq)
                .order_by(Event.seq)
            )
        ).all()
    )


def _acceptable(event_type: str, verdict: Verdict) -> bool:
    """WRITTEN always; GONE only for a deletion; LOCKED only for a notice."""
    return (
        verdict is Verdict.WRITTEN
        or (verdict is Verdict.GONE and event_type.endswith(".deleted"))
        or (verdict is Verdict.LOCKED and event_type in NOTICES)
    )


def _written_apart(events: list[Row[Any]], audit: CommitAudit) -> list[str]:
    """The events whose object's row was not written by the event's own transaction (see commit_audit)."""
    problems = []
    for event in events:
        audited: Audited | None = audit.audited.get(event.id)
        if audited is None:
            problems.append(
                f"{event.type} about {event.object_id}: committed where the audit could not see it"
            )
        elif not _acceptable(event.type, audited.verdict):
            problems.append(f"{event.type} about {event.object_id}: {audited.verdict.value}")
    return problems


async def test_every_state_change_writes_its_event_in_the_same_transaction(
    walk: Walk, audit: CommitAudit, failing_task: None
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    last_seq = audit.floor
    for step in WALK:
        await step.run(walk)
        async with walk.services.sessions() as session:
            events = await _events_after(session, walk.merchant.id, last_seq)
        written = {(e.type, e.object_id) for e in events}
        missing = {t: key for t, key in step.produces.items() if (t, walk.ids[key]) not in written}
        assert not missing, (
            f"step {step.name!r} wrote {sorted(written)}, not {[(t, walk.ids[k]) for t, k in missing.items()]}"
        )
        assert _written_apart(events, audit) == [], step.name
        for event in events:
            assert REDACTED not in str(event.data), f"{event.type} rendered something secret"
            assert event.type not in PENDING_FEATURES, (
                f"step {step.name!r} produced {event.type}, listed in PENDING_FEATURES: the feature has landed, so "
                "declare the step that produces it and remove it from PENDING_FEATURES"
            )
            seen.setdefault(event.type, event.data)
        last_seq = events[-1].seq if events else last_seq

    # The documented example of each type has exactly the fields of the real payload.
    for event_type, data in seen.items():
        documented = example_event(event_type).data.object
        assert set(documented) == set(data), f"docs example of {event_type} differs from the real payload"


async def test_the_check_catches_an_event_written_apart_from_its_change(
    services: Services, merchant: NewMerchant, audit: CommitAudit
) -> None:
    async with transaction(services.sessions) as session:
        customer = await create_customer(session, merchant.id, CustomerCreate(name="apart"), production=False)
    async with transaction(services.sessions) as session:
        # Written apart: the customer's row is not touched by this transaction.
        record_event(
            session,
            merchant_id=merchant.id,
            event_type="customer.updated",
            obj=render_customer(customer),
            clock=SYSTEM_CLOCK,
        )
    async with transaction(services.sessions) as session:
        # Only locked, not changed: a notice's shape, not a change's.
        await session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())
        record_event(
            session,
            merchant_id=merchant.id,
            event_type="customer.updated",
            obj=render_customer(customer),
            clock=SYSTEM_CLOCK,
        )
    async with transaction(services.sessions) as session:
        # The change in a savepoint (its own subtransaction id), the event after it: one transaction.
        async with session.begin_nested():
            await session.execute(
                text("UPDATE customers SET name = 'saved' WHERE id = :id"), {"id": customer.id}
            )
        record_event(
            session,
            merchant_id=merchant.id,
            event_type="customer.updated",
            obj=render_customer(customer),
            clock=SYSTEM_CLOCK,
        )
    async with services.sessions() as session:
        events = [
            e for e in await _events_after(session, merchant.id, audit.floor) if e.object_id == customer.id
        ]
    assert [e.type for e in events] == ["customer.created", *["customer.updated"] * 3]
    assert [audit.audited[e.id].verdict for e in events] == [
        Verdict.WRITTEN,
        Verdict.APART,
        Verdict.LOCKED,
        Verdict.WRITTEN,
    ]
    apart, locked = _written_apart(events, audit)
    assert apart == f"customer.updated about {customer.id}: {Verdict.APART.value}"
    assert locked == f"customer.updated about {customer.id}: {Verdict.LOCKED.value}"  # not a notice type


def test_the_walk_covers_every_event_type_in_the_catalog() -> None:
    walked = {t for step in WALK for t in step.produces}
    missing = sorted(set(EVENT_TYPES) - walked - set(PENDING_FEATURES))
    assert not missing, (
        f"no step of the walk in {__file__} produces {missing}: add the state change that emits each of them "
        "to WALK, so this test proves it writes its event in the same transaction (or, only if the code that "
        "emits it is not written yet, list it in PENDING_FEATURES with the reason)"
    )
    assert walked <= set(EVENT_TYPES), sorted(walked - set(EVENT_TYPES))
    stale = sorted(walked & set(PENDING_FEATURES))
    assert not stale, f"{stale} are produced by the walk: remove them from PENDING_FEATURES"
    assert set(PENDING_FEATURES) <= set(EVENT_TYPES), sorted(set(PENDING_FEATURES) - set(EVENT_TYPES))
    assert all(reason.strip() for reason in PENDING_FEATURES.values()), "say why each type is pending"
    assert set(NOTICES) <= walked
