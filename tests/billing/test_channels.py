"""Alipay, WeChat Pay, UnionPay and e-CNY debit agreements through the HTTP API on test clocks (SPEC §8, docs/channels.md): signed
on the sandbox's approval page, they pay subscriptions, renewals, dunning retries, refunds and credit notes like
cards do, with the channels' decline reasons; notifications are verified, applied once, and forged ones change
nothing. Each test runs once per channel, against its in-process sandbox (the adapter's real code path)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import func, select

from billing.channels.alipay import protocol as alipay_protocol
from billing.channels.ecny import protocol as ecny_protocol
from billing.channels.models import ChannelNotification
from billing.channels.sandbox_kit import ChannelSandbox, platform_key
from billing.channels.unionpay import protocol as unionpay_protocol
from billing.channels.wechat_pay import protocol as wechat_protocol
from billing.channels.yuan import to_yuan
from billing.clock import utc_now
from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.payment_methods.agreements import settle_pending_agreements
from billing.payments.janitor import run_janitor
from billing.services import Services
from tests.billing.channel_helpers import (
    CHANNELS,
    agreement_no,
    answer_page,
    approval_page,
    configure_channels,
    path_of,
    sandbox_admin,
    sign_agreement,
    start_agreement,
)
from tests.billing.world import run_worker

T0 = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NAMES = {"alipay": "支付宝", "wechat_pay": "微信支付", "unionpay": "银联", "ecny": "数字人民币"}
# What each sandbox calls its notifications (the `what` of its log): signed, debited, ended.
SIGNED = ("dut_user_sign", "PAPAY.SIGN", "token_opened", "AGREEMENT.SIGNED")
DEBITED = ("trade_status_sync", "TRANSACTION.SUCCESS", "consume", "PAYMENT.SUCCESS")
ENDED = ("dut_user_unsign", "PAPAY.TERMINATE", "token_cancelled", "AGREEMENT.CANCELLED")


class ChannelWorld:
    def __init__(self, api: httpx.AsyncClient, services: Services, channel: str) -> None:
        self.api, self.services, self.channel = api, services, channel
        self.clock = self.customer = self.sub = self.plan = ""
        self.pm: dict[str, Any] = {}

    @property
    def sandbox(self) -> ChannelSandbox:
        return cast(ChannelSandbox, self.services.gateways.channel_sandbox(self.channel))

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        response = await self.api.request(method, path, json=body, params=params or None)
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        return response.json()

    async def start(self, *, amount: int = 2500, **dunning: Any) -> None:
        """A CNY customer in Shanghai on a test clock, an agreement approved as buyer_ok, a monthly
        subscription paid by it at T0."""
        if dunning:
            await self.call("PATCH", "/v1/settings", {"dunning": dunning})
        await configure_channels(self.api, {"id": self.channel, "type": self.channel, "url": None})
        self.clock = (await self.call("POST", "/v1/test_clocks", {"frozen_time": T0.isoformat()}))["id"]
        self.customer = (
            await self.call(
                "POST",
                "/v1/customers",
                {
                    "test_clock": self.clock,
                    "currency": "CNY",
                    "timezone": "Asia/Shanghai",
                    "locale": "zh-CN",
                    "email": "li.lei@example.com",
                },
            )
        )["id"]
        self.pm = await self.agreement("buyer_ok")
        self.plan = (
            await self.call(
                "POST",
                "/v1/plans",
                {"code": "c" + secrets.token_hex(4), "name": "Pro", "currency": "CNY", "amount": amount},
            )
        )["id"]
        sub = await self.call("POST", "/v1/subscriptions", {"customer": self.customer, "plan": self.plan})
        assert sub["status"] == "active", sub
        self.sub = sub["id"]

    async def agreement(self, buyer: str, *, default: bool = True, **terms: Any) -> dict[str, Any]:
        pm = await sign_agreement(self.api, self.customer, self.channel, buyer=buyer, **terms)
        if default:
            await self.call("PATCH", f"/v1/customers/{self.customer}", {"default_payment_method": pm["id"]})
        return pm

    async def advance(self, to: datetime) -> None:
        await self.call("POST", f"/v1/test_clocks/{self.clock}/advance", {"frozen_time": to.isoformat()})
        await run_worker(self.services)
        assert (await self.call("GET", f"/v1/test_clocks/{self.clock}"))["status"] == "ready"

    async def subscription(self) -> dict[str, Any]:
        return dict(await self.call("GET", f"/v1/subscriptions/{self.sub}"))

    async def renew(self) -> dict[str, Any]:
        """Advance to an hour after the current period ends; the renewal invoice."""
        end = datetime.fromisoformat((await self.subscription())["current_period_end"])
        await self.advance(end + timedelta(hours=1))
        return dict(await self.call("GET", f"/v1/invoices/{(await self.subscription())['latest_invoice']}"))

    async def payments(self, invoice: str) -> list[dict[str, Any]]:
        return list(reversed((await self.call("GET", "/v1/payments", invoice=invoice, limit=100))["data"]))

    async def case(self, invoice: str) -> dict[str, Any]:
        [found] = (await self.call("GET", "/v1/dunning/cases", invoice=invoice))["data"]
        return dict(found)

    async def events(self, object_id: str, event_type: str) -> list[dict[str, Any]]:
        found = await self.call("GET", "/v1/events", object_id=object_id, type=event_type, limit=100)
        return list(reversed(found["data"]))

    async def ledger(self) -> dict[str, Any]:
        return await sandbox_admin(self.api, self.channel, "state")

    async def notifications(self) -> list[dict[str, Any]]:
        """What the sandbox sent to this merchant (the in-process sandbox serves every merchant of the run)."""
        await self.sandbox.notifier.drain()
        merchant = (await self.call("GET", "/v1/settings"))["id"]
        sent = (await sandbox_admin(self.api, self.channel, "notifications"))["notifications"]
        return [n for n in sent if f"/notify/{merchant}/" in n["url"]]


@pytest.fixture(params=CHANNELS)
async def world(
    request: pytest.FixtureRequest, api: httpx.AsyncClient, services: Services
) -> AsyncIterator[ChannelWorld]:
    found = ChannelWorld(api, services, request.param)
    yield found
    await found.sandbox.notifier.drain()


def trade_keys(ledger: dict[str, Any]) -> set[str]:
    return {t["out_trade_no"] for t in ledger["trades"]}


async def test_an_agreement_signed_on_the_sandbox_page_pays_three_renewals_a_refund_and_a_credit_note(
    world: ChannelWorld,
) -> None:
    """About 9 s per channel: three test-clock advances, each a worker run collecting a renewal through the
    channel, are the point of the test (bounded: three periods)."""
    await world.start()
    assert world.pm["type"] == world.channel and world.pm[world.channel]["single_amount_limit"] == 100_000
    assert [
        e["data"]["object"]["status"] for e in await world.events(world.pm["id"], "payment_method.activated")
    ] == ["active"]
    renewals = [await world.renew() for _ in range(3)]
    assert [i["status"] for i in renewals] == ["paid", "paid", "paid"]
    payments = [p for invoice in renewals for p in await world.payments(invoice["id"])]
    assert [(p["status"], p["amount"], p["currency"], p["gateway"]) for p in payments] == [
        ("succeeded", 2500, "CNY", world.channel)
    ] * 3
    assert {p["payment_method_details"]["type"] for p in payments} == {world.channel}
    ledger = await world.ledger()
    assert {p["id"] for p in payments} <= trade_keys(ledger)
    # A partial refund of one renewal, and a credit note refunding part of another, through the channel.
    refund = await world.call("POST", "/v1/refunds", {"payment": payments[0]["id"], "amount": 1000})
    assert (refund["status"], refund["amount"], refund["gateway"]) == ("succeeded", 1000, world.channel)
    note = await world.call(
        "POST", "/v1/credit_notes", {"invoice": renewals[1]["id"], "amount": 500, "refund_amount": 500}
    )
    note_refund = await world.call("GET", f"/v1/refunds/{note['refund']}")
    assert (note_refund["status"], note_refund["amount"], note_refund["payment"]) == (
        "succeeded",
        500,
        payments[1]["id"],
    )
    ours = {p["id"] for p in payments}
    refunded = {
        (r["out_trade_no"], r["amount"])
        for r in (await world.ledger())["refunds"]
        if r["out_trade_no"] in ours
    }
    assert refunded == {(payments[0]["id"], 1000), (payments[1]["id"], 500)}
    assert (await world.call("GET", f"/v1/payments/{payments[0]['id']}"))["amount_refunded"] == 1000
    # Every notification the sandbox sent (the signing, each debit, each refund) was accepted by the engine.
    sent = await world.notifications()
    assert sent and all(n["accepted"] for n in sent), sent
    assert len(sent) == 1 + 4 + 2  # signed; the first invoice and three renewals; two refunds


async def test_buyer_poor_is_retried_by_dunning_and_recovered_by_a_new_agreement(world: ChannelWorld) -> None:
    await world.start()
    poor = await world.agreement("buyer_poor")
    invoice = await world.renew()
    [failed] = await world.payments(invoice["id"])
    assert (failed["status"], failed["failure_code"], failed["decline_type"]) == (
        "failed",
        "insufficient_funds",
        "soft",
    )
    assert NAMES[world.channel] in failed["failure_message"] and "余额不足" in failed["failure_message"]
    case = await world.case(invoice["id"])
    assert case["state"] == "retrying"
    await world.advance(datetime.fromisoformat(case["next_attempt_at"]) + timedelta(minutes=1))
    assert [p["status"] for p in await world.payments(invoice["id"])] == ["failed", "failed"]
    assert {p["payment_method"] for p in await world.payments(invoice["id"])} == {poor["id"]}
    # The customer signs a new agreement with an account that can pay: the invoice is tried again at once.
    ok = await world.agreement("buyer_ok", default=False)
    now = datetime.fromisoformat((await world.call("GET", f"/v1/test_clocks/{world.clock}"))["frozen_time"])
    await world.advance(now + timedelta(minutes=1))
    paid = await world.payments(invoice["id"])
    assert [(p["status"], p["payment_method"]) for p in paid] == [
        ("failed", poor["id"]),
        ("failed", poor["id"]),
        ("succeeded", ok["id"]),
    ]
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    assert (await world.case(invoice["id"]))["state"] == "recovered"
    assert (await world.subscription())["status"] == "active"


async def test_buyer_frozen_is_a_hard_decline_that_waits_for_a_new_agreement(world: ChannelWorld) -> None:
    await world.start()
    await world.agreement("buyer_frozen")
    invoice = await world.renew()
    [failed] = await world.payments(invoice["id"])
    assert (failed["failure_code"], failed["decline_type"], failed["next_action"]) == (
        "account_frozen",
        "hard",
        "update_payment_method",
    )
    assert "冻结" in failed["failure_message"]
    case = await world.case(invoice["id"])
    assert (case["state"], case["next_attempt_at"]) == ("awaiting_payment_method", None)
    await world.advance(datetime.fromisoformat(invoice["created_at"]) + timedelta(days=6))
    assert len(await world.payments(invoice["id"])) == 1


async def test_a_revocation_notification_revokes_the_agreement_and_stops_debits(world: ChannelWorld) -> None:
    await world.start()
    revoked = await sandbox_admin(world.api, world.channel, f"agreements/{agreement_no(world.pm)}/revoke", {})
    assert revoked["notification_accepted"] is True
    pm = await world.call("GET", f"/v1/payment_methods/{world.pm['id']}")
    assert (pm["status"], pm[world.channel]["end_reason"]) == ("revoked", "revoked_by_customer")
    [event] = await world.events(world.pm["id"], "payment_method.revoked")
    assert event["data"]["object"]["status"] == "revoked"
    requests_before = (await world.ledger())["api_requests"]
    invoice = await world.renew()
    [failed] = await world.payments(invoice["id"])
    assert (failed["status"], failed["failure_code"], failed["decline_type"]) == (
        "failed",
        "revocation_of_authorization",
        "hard",
    )
    # Declined by the engine: the channel never heard of this debit.
    ledger = await world.ledger()
    assert failed["id"] not in trade_keys(ledger) and ledger["api_requests"] == requests_before
    assert (await world.case(invoice["id"]))["state"] == "awaiting_payment_method"


async def _count_notifications(services: Services, merchant_id: str) -> int:
    async with transaction(services.sessions) as session:
        counted = await session.scalar(
            select(func.count())
            .select_from(ChannelNotification)
            .where(ChannelNotification.merchant_id == merchant_id)
        )
        return int(counted or 0)


async def _post(
    api: httpx.AsyncClient,
    notification: dict[str, Any],
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    url: str | None = None,
) -> httpx.Response:
    return await api.post(
        path_of(url or notification["url"]),
        content=(body if body is not None else notification["body"]).encode(),
        headers=headers if headers is not None else notification["headers"],
    )


def _accepted(channel: str, response: httpx.Response) -> bool:
    if channel == "alipay":
        assert response.status_code == 200
        return response.text == "success"
    if channel == "ecny":
        return response.status_code == 200 and response.json() == {"retCode": "SUCCESS"}
    return response.status_code == (200 if channel == "unionpay" else 204)


async def test_repeated_and_forged_notifications_change_nothing(
    world: ChannelWorld, services: Services
) -> None:
    await world.start()
    invoice = await world.renew()
    [payment] = await world.payments(invoice["id"])
    sent = await world.notifications()
    signed = next(n for n in sent if n["what"] in SIGNED)
    trade = [n for n in sent if n["what"] in DEBITED][-1]
    merchant_id = (await world.call("GET", "/v1/settings"))["id"]
    seen = await _count_notifications(services, merchant_id)
    events = (await world.call("GET", "/v1/events", limit=100))["data"]
    # The same notifications again: answered as accepted, applied never twice.
    assert _accepted(world.channel, await _post(world.api, signed))
    assert _accepted(world.channel, await _post(world.api, trade))
    # Forged: a changed body (its signature no longer matches) is refused in the channel's failure form.
    if world.channel == "alipay":
        params = dict(parse_qsl(signed["body"]))
        params["agreement_no"] = "20279999999999999999"
        forged = await _post(world.api, signed, body=urlencode(params))
        assert (forged.status_code, forged.text) == (200, "fail")
    elif world.channel == "unionpay":
        params = dict(parse_qsl(signed["body"]))
        params["accNo"] = "621700******9999"
        forged = await _post(world.api, signed, body=urlencode(params))
        assert (forged.status_code, forged.text) == (400, "fail")
    elif world.channel == "ecny":
        forged = await _post(world.api, signed, body=signed["body"].replace('"SIGNED"', '"SIGNED "'))
        assert forged.status_code == 400 and forged.json()["retCode"] == "FAIL"
    else:
        forged = await _post(world.api, signed, body=signed["body"].replace("签约成功", "签约成功!"))
        assert forged.status_code == 400 and forged.json()["code"] == "FAIL"
    # A notification naming a connection that does not exist is refused.
    elsewhere = signed["url"].rsplit("/", 1)[0] + "/no_such_connection"
    assert not _accepted(world.channel, await _post(world.api, signed, url=elsewhere))
    # A correctly signed debit notification whose amount is not the payment's is refused.
    assert not _accepted(world.channel, await _resigned_with_amount(world, trade, payment["amount"] + 100))
    # Nothing changed: no new notification applied, no event written, the agreement and payment as they were.
    assert await _count_notifications(services, merchant_id) == seen
    assert (await world.call("GET", "/v1/events", limit=100))["data"] == events
    assert (await world.call("GET", f"/v1/payment_methods/{world.pm['id']}"))["status"] == "active"
    assert (await world.call("GET", f"/v1/payments/{payment['id']}"))["status"] == "succeeded"


async def _resigned_with_amount(
    world: ChannelWorld, notification: dict[str, Any], amount: int
) -> httpx.Response:
    """The sandbox's own notification of a debit with its amount changed, signed again with the sandbox's key
    (what only someone holding the channel's key could send): the engine still refuses a wrong amount."""
    key = await platform_key(world.sandbox.store)
    if world.channel == "alipay":
        params = dict(parse_qsl(notification["body"]))
        params["total_amount"] = to_yuan(amount)
        params["notify_id"] = "forged" + secrets.token_hex(8)
        body = urlencode(alipay_protocol.sign_notification(params, key["private_key"]))
        return await _post(world.api, notification, body=body)
    if world.channel == "unionpay":
        params = dict(parse_qsl(notification["body"]))
        params["txnAmt"] = str(amount)
        params["queryId"] = "9" + secrets.token_hex(10)
        signed = unionpay_protocol.sign(params, key["private_key"], params["certId"])
        return await _post(world.api, notification, body=urlencode(signed))
    if world.channel == "ecny":
        envelope = json.loads(notification["body"])
        envelope["data"]["amount"] = amount
        envelope["notifyId"] = "Nforged" + secrets.token_hex(8)
        text = ecny_protocol.body_text(envelope)
        headers = {
            "content-type": "application/json",
            **ecny_protocol.signed_headers(
                private_key=key["private_key"],
                merchant=envelope["merchantNo"],
                body=text,
                timestamp=int(datetime.now(UTC).timestamp()),
                nonce=secrets.token_hex(16),
            ),
        }
        return await _post(world.api, notification, body=text, headers=headers)
    [connection] = [
        g for g in (await world.call("GET", "/v1/settings"))["gateways"] if g["type"] == "wechat_pay"
    ]
    account = await world.sandbox.store.get("accounts", connection["credentials"]["mchid"])
    assert account is not None
    envelope = json.loads(notification["body"])
    plaintext = wechat_protocol.decrypt_resource(account["apiv3_key"], envelope["resource"])
    plaintext["amount"]["total"] = amount
    nonce = secrets.token_hex(6)
    envelope["id"] = "EV-forged" + secrets.token_hex(8)
    envelope["resource"]["nonce"] = nonce
    envelope["resource"]["ciphertext"] = wechat_protocol.encrypt_resource(
        account["apiv3_key"], nonce, envelope["resource"]["associated_data"], plaintext
    )
    text = wechat_protocol.body_text(envelope)
    headers = {
        "content-type": "application/json",
        **wechat_protocol.signed_headers(
            private_key=key["private_key"],
            serial=key["serial"],
            body=text,
            timestamp=int(datetime.now(UTC).timestamp()),
            nonce=secrets.token_hex(16),
        ),
    }
    return await _post(world.api, notification, body=text, headers=headers)


async def _pay_one_off(world: ChannelWorld, amount: int, currency: str = "CNY") -> tuple[httpx.Response, str]:
    invoice = await world.call(
        "POST",
        "/v1/invoices",
        {
            "customer": world.customer,
            "currency": currency,
            "lines": [{"description": "Extra seats", "amount": amount}],
        },
    )
    await world.call("POST", f"/v1/invoices/{invoice['id']}/finalize", {})
    return await world.api.post(f"/v1/invoices/{invoice['id']}/pay", json={}), invoice["id"]


async def test_cny_only_channels_refuse_other_currencies_at_creation_and_at_charge(
    world: ChannelWorld,
) -> None:
    await configure_channels(world.api, {"id": world.channel, "type": world.channel, "url": None})
    dollars = (await world.call("POST", "/v1/customers", {"currency": "USD"}))["id"]
    refused = await world.api.post("/v1/payment_methods", json={"customer": dollars, "type": world.channel})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("currency_not_supported", "customer") and "CNY" in error[
        "message"
    ]
    # A customer without a currency may sign; a debit in another currency is declined before the channel.
    world.customer = (await world.call("POST", "/v1/customers", {"locale": "zh-CN"}))["id"]
    await world.agreement("buyer_ok")
    before = (await world.ledger())["api_requests"]
    response, invoice = await _pay_one_off(world, 1500, "USD")
    assert response.status_code == 402, response.text
    assert response.json()["error"]["decline_code"] == "currency_not_supported"
    [payment] = await world.payments(invoice)
    assert payment["decline_type"] == "hard" and "人民币" in payment["failure_message"]
    assert (await world.ledger())["api_requests"] == before


async def test_debits_beyond_the_agreements_limits_are_declined_before_the_channel(
    world: ChannelWorld,
) -> None:
    await configure_channels(world.api, {"id": world.channel, "type": world.channel, "url": None})
    world.customer = (await world.call("POST", "/v1/customers", {"currency": "CNY", "locale": "zh-CN"}))["id"]
    pm = await world.agreement(
        "buyer_ok",
        single_amount_limit=3000,
        period_amount_limit=4000,
        period={"interval": "month", "interval_count": 1},
    )
    assert (pm[world.channel]["single_amount_limit"], pm[world.channel]["period_amount_limit"]) == (
        3000,
        4000,
    )
    before = (await world.ledger())["api_requests"]
    above_single, first = await _pay_one_off(world, 3001)
    assert (
        above_single.status_code == 402
        and above_single.json()["error"]["decline_code"] == "agreement_limit_exceeded"
    )
    [declined] = await world.payments(first)
    assert "限额" in declined["failure_message"] and declined["decline_type"] == "hard"
    assert (await world.ledger())["api_requests"] == before
    paid, _ = await _pay_one_off(world, 2500)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    # 2500 already taken this period: 2500 more would pass the period's 4000.
    over_period, _ = await _pay_one_off(world, 2500)
    assert (
        over_period.status_code == 402
        and over_period.json()["error"]["decline_code"] == "agreement_limit_exceeded"
    )
    within, _ = await _pay_one_off(world, 1500)
    assert within.status_code == 200 and within.json()["status"] == "paid"


async def test_a_pending_agreement_is_not_a_usable_default_and_a_declined_page_leaves_it_pending(
    world: ChannelWorld,
) -> None:
    await configure_channels(world.api, {"id": world.channel, "type": world.channel, "url": None})
    world.customer = (await world.call("POST", "/v1/customers", {"currency": "CNY"}))["id"]
    pm = await start_agreement(world.api, world.customer, world.channel, display="redirect")
    assert pm["next_action"]["type"] == "redirect_to_url"
    assert pm["next_action"]["qr_code_svg"].startswith("<svg")
    refused = await world.api.patch(
        f"/v1/customers/{world.customer}", json={"default_payment_method": pm["id"]}
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "payment_method_pending"
    page = await approval_page(world.api, pm)
    assert "拒绝签约" in await answer_page(world.api, page, decision="decline")
    still = await world.call("GET", f"/v1/payment_methods/{pm['id']}")
    assert (still["status"], still["next_action"]["url"]) == ("pending", pm["next_action"]["url"])
    # The same page cannot be answered twice.
    again = await world.api.post(page, data={"decision": "approve", "buyer": "buyer_ok"})
    assert again.status_code == 409


async def test_detach_unsigns_the_agreement_in_the_channel_and_nothing_changes_when_it_cannot(
    world: ChannelWorld,
) -> None:
    await world.start()
    await sandbox_admin(world.api, world.channel, "mode", {"mode": "down"})
    failed = await world.api.post(f"/v1/payment_methods/{world.pm['id']}/detach", json={})
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "channel_unavailable"
    assert (await world.call("GET", f"/v1/payment_methods/{world.pm['id']}"))["status"] == "active"
    await sandbox_admin(world.api, world.channel, "mode", {"mode": "normal"})
    detached = await world.call("POST", f"/v1/payment_methods/{world.pm['id']}/detach", {})
    assert detached["customer"] is None and detached[world.channel]["end_reason"] == "unsigned_by_merchant"
    [agreement] = [
        a
        for a in (await world.ledger())["agreements"]
        if a.get("agreement_no", a.get("contract_id")) == agreement_no(world.pm)
    ]
    assert agreement.get("status", agreement.get("contract_state")) in (
        "UNSIGN",
        "TERMINATED",
        "DELETED",
        "CANCELLED",
    )
    # The channel's own notice of the unsigning arrives and changes nothing more.
    sent = await world.notifications()
    assert sent[-1]["what"] in ENDED and sent[-1]["accepted"]
    assert len(await world.events(world.pm["id"], "payment_method.detached")) == 1
    assert (await world.call("GET", f"/v1/payment_methods/{world.pm['id']}"))["status"] == "active"
    # A pending agreement is detached without asking the channel.
    pending = await start_agreement(world.api, world.customer, world.channel)
    dropped = await world.call("POST", f"/v1/payment_methods/{pending['id']}/detach", {})
    assert dropped[world.channel]["end_reason"] == "abandoned" and "next_action" not in dropped


async def test_buyer_slow_is_unknown_then_settled_by_the_janitor(
    world: ChannelWorld, services: Services
) -> None:
    """About 6 s per channel: a renewal left pending, a janitor pass over the run, and a second clock advance
    (bounded: one of each)."""
    await world.start()
    await world.agreement("buyer_slow")
    invoice = await world.renew()
    [pending] = await world.payments(invoice["id"])
    assert pending["status"] == "pending" and pending["next_action"] == "wait"
    report = await run_janitor(services, now=utc_now() + timedelta(hours=2))
    assert report.payments_settled >= 1
    assert (await world.call("GET", f"/v1/payments/{pending['id']}"))["status"] == "succeeded"
    # The invoice's collection looks again a minute later (its clock) and finds the payment succeeded.
    end = datetime.fromisoformat((await world.call("GET", f"/v1/test_clocks/{world.clock}"))["frozen_time"])
    await world.advance(end + timedelta(minutes=2))
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    assert len(await world.payments(invoice["id"])) == 1


async def test_a_missed_signing_notification_is_recovered_by_asking_and_an_unapproved_link_expires(
    world: ChannelWorld, services: Services, merchant: NewMerchant
) -> None:
    # Other tests of the run leave pending agreements of their own merchants: the passes here look at this one.
    settle = partial(settle_pending_agreements, services.sessions, services.gateways, merchant_id=merchant.id)
    await configure_channels(world.api, {"id": world.channel, "type": world.channel, "url": None})
    world.customer = (await world.call("POST", "/v1/customers", {"currency": "CNY"}))["id"]
    approved = await start_agreement(world.api, world.customer, world.channel)
    forgotten = await start_agreement(world.api, world.customer, world.channel)
    page = await approval_page(world.api, approved)
    wired = services.gateways.notify_app
    services.gateways.notify_app = None  # the notification is lost on its way
    try:
        assert "尚未确认收到通知" in await answer_page(world.api, page)
    finally:
        services.gateways.notify_app = wired
    assert (await world.call("GET", f"/v1/payment_methods/{approved['id']}"))["status"] == "pending"
    # Before its first recheck the janitor leaves it alone; then it asks the channel and activates it.
    assert await settle(now=utc_now()) == 0
    assert await settle(now=utc_now() + timedelta(minutes=6)) == 1
    active = await world.call("GET", f"/v1/payment_methods/{approved['id']}")
    assert active["status"] == "active" and active[world.channel]["signed_at"] is not None
    assert len(await world.events(approved["id"], "payment_method.activated")) == 1
    # The other link runs out unapproved: expired, with its reason, once the link and its grace are over.
    assert (await world.call("GET", f"/v1/payment_methods/{forgotten['id']}"))["status"] == "pending"
    late = datetime.fromisoformat(forgotten["next_action"]["expires_at"]) + timedelta(minutes=3)
    assert await settle(now=late) == 1
    expired = await world.call("GET", f"/v1/payment_methods/{forgotten['id']}")
    assert (expired["status"], expired[world.channel]["end_reason"]) == ("expired", "link_expired")
    assert "next_action" not in expired
    [updated] = await world.events(forgotten["id"], "payment_method.updated")
    assert updated["data"]["previous_attributes"]["status"] == "pending"
