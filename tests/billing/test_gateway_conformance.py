"""One behavioural suite for every adapter behind the gateway interface (SPEC §6, §8): the card sandbox's, Alipay's,
WeChat Pay's, UnionPay's and e-CNY's, each against its sandbox through its real code path (HTTP to a standalone sandbox process, or
the same sandbox in-process through an ASGI transport). Whatever the protocol, an adapter must answer the same
outcome classes for the same situations:

- a good instrument is charged (Succeeded, with the gateway's reference);
- a customer short of money is a soft decline, a card or account that can never pay a hard one;
- a charge whose answer does not come is Unknown, and asking with the same key finds it succeeded;
- a retry with the same key charges once and answers the same reference;
- a refund goes through once, never beyond what was charged, and can be asked about;
- a key nobody charged is NotFound;
- the daily settlement listing (channels: their own bill format, downloaded and parsed) holds every charge and
  refund of the day with its fee.

The card sandbox's settlement listing comes with reconciliation (a parallel change, issue #18 item 4): when it
lands, "card" joins `SETTLEMENT`, the adapters the settlement case runs against.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from billing.channels.base import ChannelGateway
from billing.channels.sandbox_kit import ChannelSandbox
from billing.gateways.base import (
    CardInstrument,
    ChargeRequest,
    ConnectionConfig,
    Declined,
    Gateway,
    Instrument,
    NotFound,
    RefundFailed,
    RefundRequest,
    RefundSucceeded,
    Succeeded,
    Unknown,
)
from billing.gateways.registry import GatewayPool, gateway_type
from billing.gateways.sandbox_store import MemoryStore
from billing.vault.cards import SecretPan
from tests.billing.channel_helpers import sign_in_sandbox
from tests.billing.payment_helpers import FUTURE_YEAR, standalone_sandbox

CHINA = ZoneInfo("Asia/Shanghai")
CHANNELS = ("alipay", "wechat_pay", "unionpay", "ecny")
SETTLEMENT = CHANNELS + tuple(f"{channel} (standalone)" for channel in CHANNELS)


@dataclass
class Subject:
    name: str
    gateway: Gateway
    currency: str
    ok: Instrument
    poor: Instrument
    hard: Instrument
    slow: Instrument
    hard_code: str


def _card(number: str) -> CardInstrument:
    return CardInstrument(pan=SecretPan(number), brand="visa", exp_month=12, exp_year=FUTURE_YEAR)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _channel_subject(name: str, kind: str, pool: GatewayPool, url: str | None) -> Subject:
    config = ConnectionConfig(id=kind, type=kind, url=url, timeout_ms=5_000, merchant_id="mer_conformance")
    provision = gateway_type(kind).provision
    assert provision is not None
    credentials = await provision(config, pool)
    connection = ConnectionConfig(
        id=kind, type=kind, url=url, timeout_ms=5_000, credentials=credentials, merchant_id="mer_conformance"
    )
    gateway = cast(ChannelGateway, pool.gateway(connection))
    if url is None:
        browser = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=pool.channel_sandbox(kind)), base_url="http://x"
        )
    else:
        browser = httpx.AsyncClient(base_url=url)
    async with browser:
        instruments = {
            buyer: await sign_in_sandbox(gateway, browser, buyer)
            for buyer in ("buyer_ok", "buyer_poor", "buyer_frozen", "buyer_slow")
        }
    return Subject(
        name=name,
        gateway=gateway,
        currency="CNY",
        ok=instruments["buyer_ok"],
        poor=instruments["buyer_poor"],
        hard=instruments["buyer_frozen"],
        slow=instruments["buyer_slow"],
        hard_code="account_frozen",
    )


@pytest.fixture(scope="module")
def standalone_urls() -> Iterator[dict[str, str]]:
    with (
        standalone_sandbox("alipay") as alipay,
        standalone_sandbox("wechat_pay") as wechat_pay,
        standalone_sandbox("unionpay") as unionpay,
        standalone_sandbox("ecny") as ecny,
    ):
        yield {"alipay": alipay, "wechat_pay": wechat_pay, "unionpay": unionpay, "ecny": ecny}


@pytest.fixture(scope="module")
async def subjects(standalone_urls: dict[str, str]) -> AsyncIterator[dict[str, Subject]]:
    pool = GatewayPool(sandbox_store=lambda namespace: MemoryStore())
    card = pool.gateway(ConnectionConfig(id="card", type="sandbox", url=None, timeout_ms=300))
    found = {
        "card": Subject(
            name="card",
            gateway=card,
            currency="USD",
            ok=_card("4242424242424242"),
            poor=_card("4000000000009995"),
            hard=_card("4000000000009979"),
            slow=_card("4000002760003184"),
            hard_code="stolen_card",
        ),
    }
    for channel in CHANNELS:
        found[channel] = await _channel_subject(channel, channel, pool, None)
        standalone = f"{channel} (standalone)"
        found[standalone] = await _channel_subject(standalone, channel, pool, standalone_urls[channel])
    try:
        yield found
    finally:
        for app in pool.channel_sandboxes().values():
            await cast(ChannelSandbox, app).notifier.drain()
        await pool.aclose()


NAMES = ["card", *SETTLEMENT]


@pytest.fixture(params=NAMES)
def subject(request: pytest.FixtureRequest, subjects: dict[str, Subject]) -> Subject:
    return subjects[request.param]


def _request(
    subject: Subject, instrument: Instrument, amount: int = 2500, key: str | None = None
) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key or "pay_" + secrets.token_hex(12),
        amount=amount,
        currency=subject.currency,
        instrument=instrument,
        description="Conformance",
    )


def _fee(amount: int) -> int:
    """The sandboxes' 0.6 % service fee, rounded half up to the fen, computed here on its own."""
    return int((Decimal(amount) * Decimal("0.006")).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def test_a_good_instrument_is_charged(subject: Subject) -> None:
    outcome = await subject.gateway.charge(_request(subject, subject.ok))
    assert isinstance(outcome, Succeeded) and outcome.reference


async def test_a_customer_short_of_money_is_a_soft_decline(subject: Subject) -> None:
    outcome = await subject.gateway.charge(_request(subject, subject.poor))
    assert isinstance(outcome, Declined)
    assert (outcome.code, outcome.decline_type) == ("insufficient_funds", "soft")


async def test_an_instrument_that_can_never_pay_is_a_hard_decline(subject: Subject) -> None:
    outcome = await subject.gateway.charge(_request(subject, subject.hard))
    assert isinstance(outcome, Declined)
    assert (outcome.code, outcome.decline_type) == (subject.hard_code, "hard")


async def test_an_unanswered_charge_is_unknown_then_found_succeeded_by_asking(subject: Subject) -> None:
    request = _request(subject, subject.slow)
    assert isinstance(await subject.gateway.charge(request), Unknown)
    found = await subject.gateway.retrieve(request.idempotency_key)
    assert isinstance(found, Succeeded) and found.reference
    # Asking again answers the same charge.
    assert await subject.gateway.retrieve(request.idempotency_key) == found


async def test_a_retry_with_the_same_key_charges_once(subject: Subject) -> None:
    request = _request(subject, subject.ok)
    first = await subject.gateway.charge(request)
    second = await subject.gateway.charge(request)
    assert isinstance(first, Succeeded) and second == first
    assert await subject.gateway.retrieve(request.idempotency_key) == first


async def test_a_key_nobody_charged_is_not_found(subject: Subject) -> None:
    assert isinstance(await subject.gateway.retrieve("pay_" + secrets.token_hex(12)), NotFound)
    refund_key, charge_key = "re_" + secrets.token_hex(12), "pay_" + secrets.token_hex(12)
    assert isinstance(await subject.gateway.retrieve_refund(refund_key, charge_key), NotFound)


async def test_a_refund_goes_through_once_and_never_beyond_the_charge(subject: Subject) -> None:
    charge = _request(subject, subject.ok, amount=3000)
    charged = await subject.gateway.charge(charge)
    assert isinstance(charged, Succeeded)

    def refund(key: str, amount: int) -> RefundRequest:
        return RefundRequest(
            idempotency_key=key,
            charge_key=charge.idempotency_key,
            charge_reference=charged.reference,
            amount=amount,
            currency=subject.currency,
        )

    key = "re_" + secrets.token_hex(12)
    first = await subject.gateway.refund(refund(key, 1000))
    assert isinstance(first, RefundSucceeded)
    assert await subject.gateway.refund(refund(key, 1000)) == first  # the same key: the same refund
    assert await subject.gateway.retrieve_refund(key, charge.idempotency_key) == first
    too_much = await subject.gateway.refund(refund("re_" + secrets.token_hex(12), 2001))
    assert isinstance(too_much, RefundFailed) and too_much.code == "amount_exceeds_charge"
    rest = await subject.gateway.refund(refund("re_" + secrets.token_hex(12), 2000))
    assert isinstance(rest, RefundSucceeded)


@pytest.mark.parametrize("name", SETTLEMENT)
async def test_the_settlement_listing_holds_the_days_charges_and_refunds_with_fees(
    name: str, subjects: dict[str, Subject]
) -> None:
    subject = subjects[name]
    gateway = cast(ChannelGateway, subject.gateway)
    charges = [_request(subject, subject.ok, amount=amount) for amount in (2500, 1999, 83)]
    references = {}
    for charge in charges:
        outcome = await gateway.charge(charge)
        assert isinstance(outcome, Succeeded)
        references[charge.idempotency_key] = outcome.reference
    refund_key = "re_" + secrets.token_hex(12)
    refunded = await gateway.refund(
        RefundRequest(
            idempotency_key=refund_key,
            charge_key=charges[0].idempotency_key,
            charge_reference=references[charges[0].idempotency_key],
            amount=700,
            currency="CNY",
        )
    )
    assert isinstance(refunded, RefundSucceeded)
    today = datetime.now(CHINA).date()
    rows = await gateway.settlement(today)
    mine = {
        (row.kind, row.idempotency_key): row
        for row in rows
        if row.idempotency_key in {*references, refund_key}
    }
    expected_charges = {
        ("charge", charge.idempotency_key): (charge.amount, _fee(charge.amount)) for charge in charges
    }
    assert {key: (row.amount, row.fee) for key, row in mine.items() if key[0] == "charge"} == expected_charges
    refund_row = mine[("refund", refund_key)]
    assert (refund_row.amount, refund_row.fee, refund_row.currency) == (700, 0, "CNY")
    for key, row in mine.items():
        assert row.settled_at.astimezone(CHINA).date() == today and row.settled_at.tzinfo is not None
        if key[0] == "charge":
            assert row.reference == references[key[1]]


async def test_a_channel_takes_cny_only(subject: Subject) -> None:
    if subject.currency != "CNY":
        return await _card_takes_any_currency(subject)
    request = ChargeRequest(
        idempotency_key="pay_" + secrets.token_hex(12), amount=100, currency="USD", instrument=subject.ok
    )
    outcome = await subject.gateway.charge(request)
    assert isinstance(outcome, Declined) and (outcome.code, outcome.decline_type) == (
        "currency_not_supported",
        "hard",
    )
    assert isinstance(await subject.gateway.retrieve(request.idempotency_key), NotFound)
    return None


async def _card_takes_any_currency(subject: Subject) -> None:
    outcome = await subject.gateway.charge(
        ChargeRequest(
            idempotency_key="pay_" + secrets.token_hex(12), amount=100, currency="JPY", instrument=subject.ok
        )
    )
    assert isinstance(outcome, Succeeded)
