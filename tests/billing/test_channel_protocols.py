"""The channels' pure parts (billing.channels.{yuan,crypto}, alipay/protocol, wechat_pay/protocol, and the
agreement rules of billing.payment_methods.agreements): worked examples from the channels' public documentation,
and hypothesis round trips."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.channels.alipay import protocol as alipay
from billing.channels.crypto import (
    KeyFormatError,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    generate_private_key_pem,
    load_private_key,
    load_public_key,
    public_key_pem,
    rsa_sign,
    rsa_verify,
)
from billing.channels.wechat_pay import protocol as wechat
from billing.channels.yuan import fee_for, from_yuan, mask_account, to_yuan, yuan_to_fen_rounded
from billing.payment_methods.debits import debit_refusal, period_window
from billing.payment_methods.models import PaymentMethod

CHINA = ZoneInfo("Asia/Shanghai")
PRIVATE = generate_private_key_pem()
PUBLIC = public_key_pem(PRIVATE)
OTHER_PUBLIC = public_key_pem(generate_private_key_pem())


# --- amounts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(1234, "12.34"), (5, "0.05"), (100, "1.00"), (0, "0.00"), (-700, "-7.00"), (10**12, "10000000000.00")],
)
def test_fen_are_written_as_yuan_with_two_decimals(fen: int, yuan: str) -> None:
    assert to_yuan(fen) == yuan
    assert from_yuan(yuan) == fen


@pytest.mark.parametrize(("text", "fen"), [("0.1", 10), ("12", 1200), ("88.88", 8888), ("-0.06", -6)])
def test_yuan_with_fewer_decimals_read_as_fen(text: str, fen: int) -> None:
    assert from_yuan(text) == fen


@pytest.mark.parametrize("text", ["1.234", "1e3", "-", ".5", "01.00", "12,00", "", "NaN", "1.2.3"])
def test_what_is_not_a_yuan_amount_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="yuan"):
        from_yuan(text)


@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_fen_round_trip_through_yuan(fen: int) -> None:
    assert from_yuan(to_yuan(fen)) == fen


@pytest.mark.parametrize(
    ("text", "fen"), [("0.15000", 15), ("0.00500", 1), ("0.00499", 0), ("-0.06000", -6), ("12.34", 1234)]
)
def test_bill_figures_round_half_up_to_the_fen(text: str, fen: int) -> None:
    assert yuan_to_fen_rounded(text) == fen


@pytest.mark.parametrize(("amount", "fee"), [(2500, 15), (83, 0), (1999, 12), (250, 2), (84, 1)])
def test_the_six_per_mille_fee_rounds_half_up(amount: int, fee: int) -> None:
    assert fee_for(amount, Decimal(6)) == fee


@given(st.integers(min_value=0, max_value=10**12))
def test_the_fee_is_the_exact_product_rounded_half_up(amount: int) -> None:
    exact = Decimal(amount) * Decimal("0.006")
    assert fee_for(amount, Decimal(6)) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_buyer_accounts_are_masked() -> None:
    assert mask_account("13800138000") == "138****8000"
    assert mask_account("li.lei@example.com") == "l***@example.com"
    assert mask_account("abc") == "a**"


# --- RSA-SHA256 -----------------------------------------------------------------------------------------------


def test_an_rsa_signature_is_pkcs1v15_sha256_in_base64() -> None:
    message = b"app_id=2014072300007148&charset=GBK"
    signature = rsa_sign(PRIVATE, message)
    # Checked with the library directly, not through the code under test.
    load_public_key(PUBLIC).verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    assert rsa_verify(PUBLIC, message, signature)
    assert not rsa_verify(OTHER_PUBLIC, message, signature)
    assert not rsa_verify(PUBLIC, message + b"x", signature)
    assert not rsa_verify(PUBLIC, message, "not base64!")


def test_keys_are_read_as_pem_or_as_bare_base64_and_bad_ones_are_named() -> None:
    bare = "".join(line for line in PUBLIC.splitlines() if not line.startswith("-----"))
    assert load_public_key(bare).public_numbers() == load_public_key(PUBLIC).public_numbers()
    assert load_private_key(PRIVATE).key_size == 2048
    with pytest.raises(KeyFormatError, match="private key"):
        load_private_key("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")
    with pytest.raises(KeyFormatError, match="public key"):
        load_public_key("not a key at all")


# --- Alipay -------------------------------------------------------------------------------------------------------


def test_alipay_signs_the_sorted_parameters_without_sign_and_empty_ones() -> None:
    """The example of Alipay's signing guide (自行实现签名): sorted by name, `k=v` joined with `&`, raw values."""
    params = {
        "app_id": "2014072300007148",
        "method": "alipay.mobile.public.menu.add",
        "charset": "GBK",
        "sign_type": "RSA2",
        "timestamp": "2014-07-24 03:07:50",
        "biz_content": '{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out","name":"话费充值"}]}',
        "version": "1.0",
        "notify_url": "",
        "sign": "ignored",
    }
    assert alipay.signing_string(params) == (
        'app_id=2014072300007148&biz_content={"button":[{"actionParam":"ZFB_HFCZ","actionType":"out",'
        '"name":"话费充值"}]}&charset=GBK&method=alipay.mobile.public.menu.add&sign_type=RSA2'
        "&timestamp=2014-07-24 03:07:50&version=1.0"
    )
    signed = alipay.sign_params({k: v for k, v in params.items() if k != "sign"}, PRIVATE)
    assert alipay.verify_request(signed, PUBLIC)
    assert not alipay.verify_request({**signed, "charset": "utf-8"}, PUBLIC)


NOTIFY = {
    # Alipay's example of a signing notification (周期扣款 dut_user_sign), its ids shortened.
    "notify_time": "2019-11-26 10:11:42",
    "agreement_no": "20195926584211349886",
    "status": "NORMAL",
    "charset": "utf-8",
    "notify_type": "dut_user_sign",
    "alipay_user_id": "2088101122675263",
    "invalid_time": "2115-02-01 00:00:00",
    "personal_product_code": "CYCLE_PAY_AUTH_P",
    "version": "1.0",
    "sign_scene": "INDUSTRY|CARRENTAL",
    "valid_time": "2019-11-26 10:11:42",
    "external_agreement_no": "13852852878487",
    "alipay_logon_id": "159******38",
    "app_id": "2014072300007148",
    "notify_id": "2019112600222101142000830515041653",
    "sign_time": "2019-11-26 10:11:42",
    "sign_type": "RSA2",
}


def test_an_alipay_notification_is_verified_without_sign_and_sign_type() -> None:
    signed = alipay.sign_notification(NOTIFY, PRIVATE)
    assert alipay.verify_notification(signed, PUBLIC)
    # sign_type is not part of what is signed (Alipay's rule for notifications), every other field is.
    assert alipay.verify_notification({**signed, "sign_type": "RSA"}, PUBLIC)
    for name in NOTIFY:
        if name != "sign_type":
            assert not alipay.verify_notification({**signed, name: NOTIFY[name] + "0"}, PUBLIC), name
    assert not alipay.verify_notification(signed, OTHER_PUBLIC)


def test_alipay_signs_the_exact_text_of_the_response_node() -> None:
    """Alipay's trade.pay response example; the node is read back byte for byte, spaces and all."""
    node = '{"code":"10000","msg":"Success","trade_no":"2013112011001004330000121536","total_amount":"88.88", "x":"}"}'
    body = f'{{"alipay_trade_pay_response": {node} ,"sign":"{rsa_sign(PRIVATE, node.encode())}"}}'
    read = alipay.read_response(body, "alipay.trade.pay", PUBLIC)
    assert read["trade_no"] == "2013112011001004330000121536" and read["x"] == "}"
    with pytest.raises(alipay.SignatureError):
        alipay.read_response(body.replace("88.88", "88.89"), "alipay.trade.pay", PUBLIC)
    with pytest.raises(alipay.SignatureError):
        alipay.read_response(body, "alipay.trade.pay", OTHER_PUBLIC)
    unsigned_refusal = '{"alipay_trade_pay_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}}'
    assert alipay.read_response(unsigned_refusal, "alipay.trade.pay", PUBLIC)["code"] == "40002"
    unsigned_success = '{"alipay_trade_pay_response":{"code":"10000","msg":"Success"}}'
    with pytest.raises(alipay.SignatureError):
        alipay.read_response(unsigned_success, "alipay.trade.pay", PUBLIC)


json_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="abcdefghij_", min_size=1, max_size=8), json_text | st.integers(), max_size=6
    )
)
def test_any_response_node_round_trips_through_its_signature(node: dict[str, Any]) -> None:
    body = alipay.response_text("alipay.trade.query", node, PRIVATE)
    assert alipay.read_response(body, "alipay.trade.query", PUBLIC) == node


def test_alipay_times_are_china_time() -> None:
    moment = datetime(2027, 1, 31, 16, 30, 5, tzinfo=UTC)
    assert alipay.timestamp(moment) == "2027-02-01 00:30:05"
    assert alipay.parse_timestamp("2027-02-01 00:30:05") == moment


ALIPAY_BILL = """#支付宝业务明细查询
#账号：[20881234567890120156]
#起始日期：[2027年02月01日 00:00:00]   终止日期：[2027年02月02日 00:00:00]
#-----------------------------------------业务明细列表----------------------------------------
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注
2027020122001400001234567890\t,pay_renewal_1\t,交易\t,Pro 月度订阅\t,2027-02-01 09:00:00\t,2027-02-01 09:00:01\t,\t,\t,\t,\t,138****0001\t,25.00\t,25.00\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,\t,-0.15\t,0.00\t,
2027020122001400001234567890\t,pay_renewal_1\t,退款\t,Pro 月度订阅\t,2027-02-01 15:00:00\t,2027-02-01 15:00:00\t,\t,\t,\t,\t,138****0001\t,-10.00\t,-10.00\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,re_refund_1\t,0.00\t,0.00\t,
#-----------------------------------------业务明细列表结束------------------------------------
#交易合计：1笔，商家实收共：25.00元，商家优惠共：0.00元
#退款合计：1笔，商家实收退款共：-10.00元，商家优惠退款共：0.00元
#导出时间：[2027年02月02日 09:00:00]
"""


def _zip(name: str, text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        bundle.writestr(name, text.encode("gbk"))
        bundle.writestr(name.replace(".csv", "(汇总).csv"), "汇总".encode("gbk"))
    return out.getvalue()


def test_an_alipay_trade_bill_is_parsed_by_its_column_names() -> None:
    rows = alipay.parse_trade_bill(_zip("20881234567890120156_20270201_业务明细.csv", ALIPAY_BILL))
    assert [(r.kind, r.idempotency_key, r.reference, r.amount, r.fee, r.currency) for r in rows] == [
        ("charge", "pay_renewal_1", "2027020122001400001234567890", 2500, 15, "CNY"),
        ("refund", "re_refund_1", "2027020122001400001234567890", 1000, 0, "CNY"),
    ]
    assert rows[0].settled_at == datetime(2027, 2, 1, 1, 0, 1, tzinfo=UTC)


bill_amounts = st.integers(min_value=1, max_value=10**9)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(bill_amounts, st.integers(min_value=0, max_value=10**7), st.booleans()), max_size=8)
)
def test_an_alipay_bill_round_trips(entries: list[tuple[int, int, bool]]) -> None:
    day = date(2027, 2, 1)
    at = datetime(2027, 2, 1, 12, tzinfo=CHINA)
    lines = [
        alipay.BillLine(
            trade_no=f"2027020122{index:018d}",
            out_trade_no=f"pay_{index}",
            kind=alipay.REFUND if refund else alipay.TRADE,
            subject="订阅, monthly",
            created_at=at,
            finished_at=at + timedelta(seconds=index),
            buyer="138****0001",
            amount=amount,
            fee=0 if refund else fee,
            out_request_no=f"re_{index}" if refund else "",
        )
        for index, (amount, fee, refund) in enumerate(entries)
    ]
    rows = alipay.parse_trade_bill(alipay.format_trade_bill("2021000000000001", day, lines, at))
    assert sorted((r.kind, r.idempotency_key, r.amount, r.fee) for r in rows) == sorted(
        (
            "refund" if line.kind == alipay.REFUND else "charge",
            line.out_request_no or line.out_trade_no,
            line.amount,
            line.fee,
        )
        for line in lines
    )


# --- WeChat Pay ---------------------------------------------------------------------------------------------------


def test_wechat_pay_signs_method_url_timestamp_nonce_and_body_each_on_a_line() -> None:
    """The example of WeChat Pay's signature guide (签名生成): GET /v3/certificates, no body."""
    assert wechat.request_message(
        "GET", "/v3/certificates", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", ""
    ) == (b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n")
    header = wechat.authorization(
        mchid="1900009191",
        serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        private_key=PRIVATE,
        method="GET",
        url="/v3/certificates",
        body="",
        timestamp=1554208460,
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert header.startswith(
        'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
    )
    fields = wechat.verify_request(
        header, public_key=PUBLIC, method="GET", url="/v3/certificates", body="", now=1554208460 + 299
    )
    assert (fields["serial_no"], fields["timestamp"]) == (
        "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        "1554208460",
    )
    with pytest.raises(wechat.SignatureError, match="five minutes"):
        wechat.verify_request(
            header, public_key=PUBLIC, method="GET", url="/v3/certificates", body="", now=1554208460 + 301
        )
    with pytest.raises(wechat.SignatureError):
        wechat.verify_request(
            header, public_key=PUBLIC, method="POST", url="/v3/certificates", body="", now=1554208460
        )


def test_wechat_pay_answers_are_verified_with_the_named_platform_key_within_five_minutes() -> None:
    body = '{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}'
    headers = wechat.signed_headers(
        private_key=PRIVATE,
        serial="PUB_KEY_ID_0114232134912410000000000000",
        body=body,
        timestamp=1700000000,
        nonce="n" * 32,
    )
    wechat.verify_signed(
        headers, body, public_key=PUBLIC, serial="PUB_KEY_ID_0114232134912410000000000000", now=1700000100
    )
    for changed, problem in [
        ({"Wechatpay-Serial": "PUB_KEY_ID_other"}, "not the connection's"),
        ({"Wechatpay-Timestamp": "1699999000"}, "five minutes|does not verify"),
        ({"Wechatpay-Nonce": "m" * 32}, "does not verify"),
    ]:
        with pytest.raises(wechat.SignatureError, match=problem):
            wechat.verify_signed(
                {**headers, **changed},
                body,
                public_key=PUBLIC,
                serial=headers["Wechatpay-Serial"],
                now=1700000100,
            )
    with pytest.raises(wechat.SignatureError):
        wechat.verify_signed(
            headers, body + " ", public_key=PUBLIC, serial=headers["Wechatpay-Serial"], now=1700000100
        )


def test_the_aead_aes_256_gcm_resource_of_a_notification() -> None:
    """A resource as WeChat Pay sends it: base64(ciphertext || tag) under the 32-character APIv3 key."""
    key = "a" * 32
    resource = {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": wechat.encrypt_resource(key, "fdasflkja484", "transaction", {"trade_state": "SUCCESS"}),
        "associated_data": "transaction",
        "nonce": "fdasflkja484",
    }
    assert wechat.decrypt_resource(key, resource) == {"trade_state": "SUCCESS"}
    raw = base64.b64decode(resource["ciphertext"])
    assert len(raw) == len(b'{"trade_state":"SUCCESS"}') + 16  # the tag rides at the end
    for changed in ({"associated_data": "refund"}, {"nonce": "fdasflkja485"}, {"algorithm": "AES_CBC"}):
        with pytest.raises(ValueError, match=r"decrypt|algorithm"):
            wechat.decrypt_resource(key, {**resource, **changed})
    with pytest.raises(ValueError, match="does not decrypt"):
        wechat.decrypt_resource("b" * 32, resource)
    with pytest.raises(ValueError, match="32"):
        wechat.decrypt_resource("short", resource)


@given(st.binary(max_size=300), st.binary(max_size=40))
def test_aes_gcm_round_trips_and_any_change_is_refused(plaintext: bytes, aad: bytes) -> None:
    key, nonce = b"k" * 32, b"n" * 12
    sealed = aes_gcm_encrypt(key, nonce, plaintext, aad)
    assert aes_gcm_decrypt(key, nonce, sealed, aad) == plaintext
    raw = bytearray(base64.b64decode(sealed))
    raw[0] ^= 1
    with pytest.raises(ValueError, match="does not decrypt"):
        aes_gcm_decrypt(key, nonce, base64.b64encode(bytes(raw)).decode(), aad)


WECHAT_BILL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注\r\n"
    "`2027-02-01 09:00:01,`wx2421b1c4370ec43b,`10000100,`0,`,`4200000123202702011234567890,`pay_renewal_1,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`PAP,`SUCCESS,`OTHERS,`CNY,`25.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Pro,`,"
    "`0.15000,`0.60%,`25.00,`0.00,`\r\n"
    "`2027-02-01 15:00:00,`wx2421b1c4370ec43b,`10000100,`0,`,`4200000123202702011234567890,`pay_renewal_1,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`PAP,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300000000000000000000000000,"
    "`re_refund_1,`10.00,`0.00,`ORIGINAL,`SUCCESS,`Pro,`,`-0.06000,`0.60%,`25.00,`10.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`2,`25.00,`10.00,`0.00,`0.09000,`25.00,`10.00\r\n"
)


def test_a_wechat_pay_trade_bill_is_parsed_backticks_and_summary_aside() -> None:
    rows = wechat.parse_trade_bill(WECHAT_BILL)
    assert [(r.kind, r.idempotency_key, r.reference, r.amount, r.fee) for r in rows] == [
        ("charge", "pay_renewal_1", "4200000123202702011234567890", 2500, 15),
        ("refund", "re_refund_1", "50300000000000000000000000000", 1000, 0),
    ]
    assert rows[1].settled_at == datetime(2027, 2, 1, 7, 0, tzinfo=UTC)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            bill_amounts, st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**9)
        ),
        max_size=8,
    )
)
def test_a_wechat_pay_bill_round_trips(entries: list[tuple[int, int, int]]) -> None:
    at = datetime(2027, 2, 1, 12, tzinfo=CHINA)
    lines = [
        wechat.BillLine(
            at=at + timedelta(seconds=index),
            appid="wx2421b1c4370ec43b",
            mchid="10000100",
            transaction_id=f"42{index:026d}",
            out_trade_no=f"pay_{index}",
            openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            amount=amount,
            fee=fee,
            subject="Pro, monthly",
            **(
                {"refund_id": f"50{index:026d}", "out_refund_no": f"re_{index}", "refund_amount": refund}
                if refund
                else {}
            ),
        )
        for index, (amount, fee, refund) in enumerate(entries)
    ]
    rows = wechat.parse_trade_bill(wechat.format_trade_bill(lines, rate="0.60%"))
    expected = sorted(
        ("refund", line.out_refund_no, line.refund_amount, 0)
        if line.is_refund
        else ("charge", line.out_trade_no, line.amount, line.fee)
        for line in lines
    )
    assert sorted((r.kind, r.idempotency_key, r.amount, r.fee) for r in rows) == expected


# --- agreements ---------------------------------------------------------------------------------------------------


def test_agreement_periods_are_counted_from_the_signing_and_never_drift() -> None:
    signed = datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert period_window(signed, datetime(2027, 2, 15, tzinfo=UTC), "month", 1) == (
        signed,
        datetime(2027, 2, 28, 10, tzinfo=UTC),
    )
    assert period_window(signed, datetime(2027, 3, 30, tzinfo=UTC), "month", 1) == (
        datetime(2027, 2, 28, 10, tzinfo=UTC),
        datetime(2027, 3, 31, 10, tzinfo=UTC),
    )
    assert period_window(signed, datetime(2027, 2, 14, 10, tzinfo=UTC), "day", 7) == (
        datetime(2027, 2, 14, 10, tzinfo=UTC),
        datetime(2027, 2, 21, 10, tzinfo=UTC),
    )


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=5 * 365 * 24),
    st.sampled_from([("month", 1), ("month", 3), ("day", 7), ("day", 30)]),
)
def test_agreement_periods_tile_time(signed: datetime, hours: int, period: tuple[str, int]) -> None:
    now = signed + timedelta(hours=hours)
    start, end = period_window(signed, now, *period)
    assert start <= now < end
    assert period_window(signed, end, *period)[0] == end
    assert period_window(signed, start, *period) == (start, end)


def _agreement(status: str = "active", **terms: Any) -> PaymentMethod:
    return PaymentMethod(type="alipay", status=status, agreement={"single_amount_limit": 3000, **terms})


def test_debits_beyond_an_agreement_are_refused_with_a_hard_decline_code() -> None:
    assert debit_refusal(_agreement(), 3000, "CNY", 0) is None
    assert debit_refusal(_agreement(), 3001, "CNY", 0) == "agreement_limit_exceeded"
    assert debit_refusal(_agreement(), 100, "USD", 0) == "currency_not_supported"
    assert debit_refusal(_agreement("revoked"), 100, "CNY", 0) == "revocation_of_authorization"
    capped = _agreement(period_amount_limit=4000)
    assert debit_refusal(capped, 1500, "CNY", 2500) is None
    assert debit_refusal(capped, 1501, "CNY", 2500) == "agreement_limit_exceeded"
