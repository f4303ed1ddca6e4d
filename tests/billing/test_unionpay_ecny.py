"""UnionPay's and e-CNY's own parts: their wire formats (billing.channels.unionpay.protocol, ecny.protocol) from
worked examples and hypothesis round trips, and the declines only they have (a UnionPay token past its end, an e-CNY
sub-wallet's own limit) through the adapter against the in-process sandbox, with the customer's words for them;
and a day of debits and a refund reconciled (GET /v1/reconciliation) against each channel's own listing."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import cast

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.channels.base import ChannelGateway
from billing.channels.crypto import generate_private_key_pem, load_public_key, public_key_pem
from billing.channels.ecny import protocol as ecny
from billing.channels.sandbox_kit import ChannelSandbox
from billing.channels.unionpay import protocol as unionpay
from billing.channels.unionpay.adapter import order_id
from billing.gateways.base import AgreementInstrument, ChargeRequest, ConnectionConfig, Declined
from billing.gateways.registry import GatewayPool, gateway_type
from billing.gateways.sandbox_store import MemoryStore
from dunning.declines import classify_decline
from dunning.messages import failure_message, next_action
from tests.billing.channel_helpers import configure_channels, pay_one_off, sign_agreement, sign_in_sandbox

PRIVATE = generate_private_key_pem()
PUBLIC = public_key_pem(PRIVATE)
OTHER_PUBLIC = public_key_pem(generate_private_key_pem())
CHINA = unionpay.CHINA
# A day of a settlement listing: (amount, fee, is a refund) per line.
DAY_ENTRIES = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10**6), st.booleans()
    ),
    max_size=8,
)

# --- UnionPay -----------------------------------------------------------------------------------------------


def test_unionpay_signs_the_sha256_hex_of_the_sorted_fields_without_signature() -> None:
    fields = {
        "version": "5.1.0",
        "txnType": "01",
        "merId": "777290058110048",
        "txnAmt": "1000",
        "orderId": "A1",
    }
    signed = unionpay.sign(fields, PRIVATE, "69042905377")
    text = "certId=69042905377&merId=777290058110048&orderId=A1&signMethod=01&txnAmt=1000&txnType=01&version=5.1.0"
    assert unionpay.signing_text(signed) == text
    digest = hashlib.sha256(text.encode()).hexdigest().encode()
    load_public_key(PUBLIC).verify(
        base64.b64decode(signed["signature"]), digest, padding.PKCS1v15(), hashes.SHA256()
    )
    assert unionpay.verify(signed, PUBLIC)
    assert not unionpay.verify(signed, OTHER_PUBLIC)
    for name in fields:
        assert not unionpay.verify({**signed, name: signed[name] + "0"}, PUBLIC), name
    assert not unionpay.verify({**signed, "reqReserved": "added"}, PUBLIC)


def test_unionpay_token_data_and_times() -> None:
    data = unionpay.write_token_data({"token": "6235240000021", "trId": "62000000001"})
    assert data == "{token=6235240000021&trId=62000000001}"
    assert unionpay.token_data({"tokenPayData": data}) == {"token": "6235240000021", "trId": "62000000001"}
    assert unionpay.token_data({"tokenPayData": "token=1"}) == {}
    moment = datetime(2027, 1, 31, 16, 30, 5, tzinfo=UTC)
    assert unionpay.txn_time(moment) == "20270201003005"
    assert unionpay.parse_txn_time("20270201003005") == moment


def test_unionpay_order_ids_are_letters_and_digits_of_eight_to_forty() -> None:
    assert order_id("pay_3kF9aQ") == "pay3kF9aQ"
    assert order_id("re_1") == "re100000"
    assert len(order_id("pay_" + "x" * 60)) == 40


@settings(max_examples=25, deadline=None)
@given(DAY_ENTRIES)
def test_a_unionpay_settlement_file_round_trips(entries: list[tuple[int, int, bool]]) -> None:
    at = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)
    lines = [
        unionpay.FileLine(
            txn_type="04" if refund else "01",
            order_id=f"pay{index:08d}",
            txn_time=at + timedelta(minutes=index),
            query_id=f"{index:021d}",
            amount=amount,
            fee=0 if refund else fee,
            req_reserved=f"{'re' if refund else 'pay'}_{index:08d}",
        )
        for index, (amount, fee, refund) in enumerate(entries)
    ]
    rows = unionpay.parse_settlement_file(
        unionpay.format_settlement_file("777290058110048", at.date(), lines)
    )
    assert [(r.kind, r.idempotency_key, r.reference, r.amount, r.fee, r.settled_at) for r in rows] == [
        (
            "refund" if line.txn_type == "04" else "charge",
            line.req_reserved,
            line.query_id,
            line.amount,
            line.fee,
            line.txn_time,
        )
        for line in lines
    ]


@pytest.mark.parametrize(
    ("resp_code", "code", "kind"),
    [
        ("51", "insufficient_funds", "soft"),
        ("62", "account_frozen", "hard"),
        ("77", "revocation_of_authorization", "hard"),
        ("79", "token_expired", "expired"),
        ("61", "agreement_limit_exceeded", "hard"),
        ("99", "generic_decline", "soft"),
    ],
)
def test_unionpay_resp_codes_map_to_the_decline_classes(resp_code: str, code: str, kind: str) -> None:
    assert unionpay.decline_code(resp_code) == code and classify_decline(code) == kind


# --- e-CNY --------------------------------------------------------------------------------------------------


def _headers(body: str, timestamp: int, merchant: str = "E100000000000001") -> dict[str, str]:
    return ecny.signed_headers(
        private_key=PRIVATE, merchant=merchant, body=body, timestamp=timestamp, nonce="n1"
    )


def test_an_ecny_message_signs_merchant_timestamp_nonce_and_body_each_on_a_line() -> None:
    body = ecny.body_text({"outTradeNo": "pay_1", "amount": 2500})
    assert body == '{"amount":2500,"outTradeNo":"pay_1"}'
    headers = _headers(body, 1_800_000_000)
    message = f"E100000000000001\n1800000000\nn1\n{body}\n".encode()
    load_public_key(PUBLIC).verify(
        base64.b64decode(headers["X-Ecny-Signature"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    assert ecny.verify(headers, body, PUBLIC, now=1_800_000_100) == "E100000000000001"
    with pytest.raises(ecny.SignatureError, match="does not verify"):
        ecny.verify(headers, body.replace("2500", "2600"), PUBLIC, now=1_800_000_000)
    with pytest.raises(ecny.SignatureError, match="does not verify"):
        ecny.verify({**headers, "X-Ecny-Merchant": "E100000000000002"}, body, PUBLIC, now=1_800_000_000)
    with pytest.raises(ecny.SignatureError, match="five minutes"):
        ecny.verify(headers, body, PUBLIC, now=1_800_000_301)
    with pytest.raises(ecny.SignatureError, match="x-ecny-signature"):
        ecny.verify(
            {k: v for k, v in headers.items() if k != "X-Ecny-Signature"}, body, PUBLIC, now=1_800_000_000
        )


@settings(max_examples=25, deadline=None)
@given(DAY_ENTRIES)
def test_an_ecny_bill_round_trips(entries: list[tuple[int, int, bool]]) -> None:
    at = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)
    lines = [
        ecny.BillLine(
            kind=ecny.REFUND if refund else ecny.PAY,
            out_trade_no=f"pay_{index}",
            trade_no=f"C1010211000012{index:018d}",
            finished_at=at + timedelta(minutes=index),
            amount=amount,
            fee=0 if refund else fee,
            out_refund_no=f"re_{index}" if refund else "",
        )
        for index, (amount, fee, refund) in enumerate(entries)
    ]
    rows = ecny.parse_bill(ecny.format_bill("E100000000000001", date(2027, 2, 1), lines))
    assert [(r.kind, r.idempotency_key, r.reference, r.amount, r.fee, r.settled_at) for r in rows] == [
        (
            "refund" if line.kind == ecny.REFUND else "charge",
            line.out_refund_no or line.out_trade_no,
            line.trade_no,
            line.amount,
            line.fee,
            line.finished_at,
        )
        for line in lines
    ]


def test_an_ecny_bill_is_read_by_its_column_names() -> None:
    text = (
        "#数字人民币商户对账单|商户号:E1|账单日期:20270201\n"
        "手续费(元)|交易类型|商户订单号|备注|运营机构交易号|交易完成时间|交易金额(元)|商户退款单号\n"
        "0.15|支付|pay_a|x|T1|2027-02-01T10:00:00+08:00|25.00|\n"
        "0.00|退款|pay_a||T2|2027-02-01T11:00:00+08:00|7.00|re_b\n"
        "0.00|冲正|pay_c||T3|2027-02-01T12:00:00+08:00|1.00|\n"
        "#支付笔数:1\n"
    )
    rows = ecny.parse_bill(text)
    assert [(r.kind, r.idempotency_key, r.amount, r.fee) for r in rows] == [
        ("charge", "pay_a", 2500, 15),
        ("refund", "re_b", 700, 0),
    ]
    assert rows[0].settled_at == datetime(2027, 2, 1, 2, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="lacks the columns"):
        ecny.parse_bill("交易类型|商户订单号\n支付|pay_a\n")


@pytest.mark.parametrize(
    ("err_code", "code", "kind"),
    [
        ("WALLET_BALANCE_NOT_ENOUGH", "insufficient_funds", "soft"),
        ("WALLET_LIMIT_EXCEEDED", "wallet_limit_exceeded", "soft"),
        ("WALLET_FROZEN", "account_frozen", "hard"),
        ("AGREEMENT_CANCELLED", "revocation_of_authorization", "hard"),
        ("AGREEMENT_AMOUNT_EXCEEDED", "agreement_limit_exceeded", "hard"),
    ],
)
def test_ecny_error_codes_map_to_the_decline_classes(err_code: str, code: str, kind: str) -> None:
    assert ecny.decline_code(err_code) == code and classify_decline(code) == kind


# --- the declines only these channels have, end to end --------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[GatewayPool]:
    found = GatewayPool(sandbox_store=lambda namespace: MemoryStore())
    try:
        yield found
    finally:
        for app in found.channel_sandboxes().values():
            await cast(ChannelSandbox, app).notifier.drain()
        await found.aclose()


async def _gateway(pool: GatewayPool, kind: str) -> ChannelGateway:
    config = ConnectionConfig(id=kind, type=kind, url=None, timeout_ms=5_000, merchant_id="mer_declines")
    provision = gateway_type(kind).provision
    assert provision is not None
    credentials = await provision(config, pool)
    connection = ConnectionConfig(
        id=kind, type=kind, url=None, timeout_ms=5_000, credentials=credentials, merchant_id="mer_declines"
    )
    return cast(ChannelGateway, pool.gateway(connection))


def _browser(pool: GatewayPool, kind: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=pool.channel_sandbox(kind)), base_url="http://x"
    )


def _charge(instrument: AgreementInstrument, amount: int) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key="pay_" + secrets.token_hex(12), amount=amount, currency="CNY", instrument=instrument
    )


async def test_a_unionpay_token_past_its_end_is_an_expired_decline(pool: GatewayPool) -> None:
    gateway = await _gateway(pool, "unionpay")
    async with _browser(pool, "unionpay") as browser:
        token = await sign_in_sandbox(gateway, browser, "buyer_ok")
    sandbox = cast(ChannelSandbox, pool.channel_sandbox("unionpay"))
    held = await sandbox.store.get("agreements", token.agreement_no)
    assert held is not None
    held["token_end"] = unionpay.txn_time(datetime.now(UTC) - timedelta(minutes=1))
    await sandbox.store.put("agreements", token.agreement_no, held)
    outcome = await gateway.charge(_charge(token, 2500))
    assert isinstance(outcome, Declined) and (outcome.code, outcome.decline_type) == ("token_expired", "hard")
    assert next_action("token_expired") == "update_payment_method"
    assert failure_message("token_expired", "en", "unionpay").startswith(
        "Your UnionPay payment authorization (token) has expired."
    )
    assert "银联无感支付授权（token）已过期" in failure_message("token_expired", "zh-CN", "unionpay")


async def test_an_ecny_debit_above_the_sub_wallets_own_limit_is_a_soft_decline(pool: GatewayPool) -> None:
    gateway = await _gateway(pool, "ecny")
    async with _browser(pool, "ecny") as browser:
        agreement = await sign_in_sandbox(gateway, browser, "buyer_ok", single_amount_limit=500_000)
    outcome = await gateway.charge(_charge(agreement, 200_001))
    assert isinstance(outcome, Declined)
    assert (outcome.code, outcome.decline_type) == ("wallet_limit_exceeded", "soft")
    assert next_action("wallet_limit_exceeded") == "retry_later"
    assert "sub-wallet" in failure_message("wallet_limit_exceeded", "en", "ecny")
    assert "数字人民币子钱包的支付限额" in failure_message("wallet_limit_exceeded", "zh-CN", "ecny")
    # At the limit itself the same agreement pays.
    assert not isinstance(await gateway.charge(_charge(agreement, 200_000)), Declined)


# --- reconciliation against their own settlement listings -------------------------------------------------------


@pytest.mark.parametrize("channel", ["unionpay", "ecny"])
async def test_a_days_debits_and_refund_reconcile_against_the_channels_own_listing(
    api: httpx.AsyncClient, channel: str
) -> None:
    await configure_channels(api, {"id": channel, "type": channel, "url": None})
    customer = (await api.post("/v1/customers", json={"currency": "CNY", "locale": "zh-CN"})).json()["id"]
    pm = await sign_agreement(api, customer, channel)
    await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm["id"]})
    paid = [await pay_one_off(api, customer, amount) for amount in (2500, 1999)]
    refund = (await api.post("/v1/refunds", json={"payment": paid[0]["id"], "amount": 700})).json()
    assert refund["status"] == "succeeded", refund
    today = datetime.now(CHINA).date()
    answer = await api.get("/v1/reconciliation", params={"connection": channel, "date": today.isoformat()})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["counts"] == {
        "matched": 3,
        "missing_in_engine": 0,
        "missing_in_settlement": 0,
        "amount_mismatch": 0,
    }
    assert {(r["kind"], r["id"]) for r in run["rows"]} == {
        ("charge", paid[0]["id"]),
        ("charge", paid[1]["id"]),
        ("refund", refund["id"]),
    }
    fees = sum(
        int((Decimal(a) * Decimal("0.006")).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        for a in (2500, 1999)
    )
    assert fees == 15 + 12
    assert run["totals"] == [
        {"currency": "CNY", "charges": 4499, "refunds": 700, "fees": fees, "net": 4499 - 700 - fees}
    ]
