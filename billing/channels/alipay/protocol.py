"""The Alipay open platform's wire format, as pure functions (no I/O): request signing, response and
notification verification, timestamps, and the trade bill (对账单) in Alipay's CSV layout.

Signing (sign_type RSA2): every request parameter except `sign` (and empty ones), sorted by name, joined as
`k=v&k=v` with raw (not URL-encoded) values, signed RSA-SHA256 with the app's private key, base64. A response is
`{"<method with _>_response": {...}, "sign": "..."}` and Alipay signs the exact text of the response node.
An asynchronous notification is a form post signed over its parameters except `sign` AND `sign_type`, answered
with the body `success` (anything else and Alipay retries: 4m, 10m, 10m, 1h, 2h, 6h, 15h).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from billing.channels.crypto import rsa_sign, rsa_verify
from billing.channels.yuan import from_yuan, to_yuan
from billing.gateways.base import SettlementRow

CHINA = ZoneInfo("Asia/Shanghai")
GATEWAY_PATH = "/gateway.do"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
PERSONAL_PRODUCT_CODE = "CYCLE_PAY_AUTH_P"
PRODUCT_CODE = "CYCLE_PAY_AUTH"
SIGN_SCENE = "INDUSTRY|DIGITAL_MEDIA"
SUCCESS = "10000"
IN_PROCESS = "10003"  # 订单创建成功支付处理中: the outcome is not known yet
SERVICE_UNAVAILABLE = "20000"
BUSINESS_FAILED = "40004"


class SignatureError(ValueError):
    """A response or notification whose signature does not verify (or is missing)."""


def signing_string(params: Mapping[str, str], *, exclude: Iterable[str] = ("sign",)) -> str:
    """The text Alipay signs: parameters sorted by name, without `exclude` and without empty values."""
    skipped = set(exclude)
    return "&".join(
        f"{name}={params[name]}"
        for name in sorted(params)
        if name not in skipped and params[name] not in ("", None)
    )


def sign_params(params: Mapping[str, str], private_key: str) -> dict[str, str]:
    """`params` with their `sign` added (requests: `sign_type` is part of what is signed)."""
    signed = dict(params)
    signed["sign"] = rsa_sign(private_key, signing_string(params).encode())
    return signed


def verify_request(params: Mapping[str, str], public_key: str) -> bool:
    """A request as Alipay checks it: the signature over everything but `sign`."""
    return rsa_verify(public_key, signing_string(params).encode(), params.get("sign", ""))


def sign_notification(params: Mapping[str, str], private_key: str) -> dict[str, str]:
    signed = dict(params)
    signed["sign"] = rsa_sign(private_key, signing_string(params, exclude=("sign", "sign_type")).encode())
    return signed


def verify_notification(params: Mapping[str, str], public_key: str) -> bool:
    """An asynchronous notification: the signature over everything but `sign` and `sign_type`."""
    message = signing_string(params, exclude=("sign", "sign_type")).encode()
    return rsa_verify(public_key, message, params.get("sign", ""))


def timestamp(moment: datetime) -> str:
    """Alipay's `timestamp` / time fields: "yyyy-MM-dd HH:mm:ss" in China time."""
    return moment.astimezone(CHINA).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text.strip(), TIMESTAMP_FORMAT).replace(tzinfo=CHINA)


def biz_json(content: Mapping[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def request_params(
    *,
    app_id: str,
    method: str,
    biz_content: Mapping[str, Any],
    now: datetime,
    notify_url: str | None = None,
    return_url: str | None = None,
) -> dict[str, str]:
    """The common parameters of one Open API call (unsigned)."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": timestamp(now),
        "version": "1.0",
        "biz_content": biz_json(biz_content),
    }
    if notify_url:
        params["notify_url"] = notify_url
    if return_url:
        params["return_url"] = return_url
    return params


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def _raw_member(text: str, key: str) -> str | None:
    """The exact text of the top-level member `key` of the JSON object `text` (what Alipay signed)."""
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*', text)
    if match is None:
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(text, match.end())
    except ValueError:
        return None
    return text[match.end() : end]


def response_text(method: str, node: Mapping[str, Any], private_key: str | None) -> str:
    """A response as Alipay writes it: the node, and its signature when a key is given."""
    raw = biz_json(node)
    body = '{"' + response_key(method) + '":' + raw
    if private_key is not None:
        body += ',"sign":"' + rsa_sign(private_key, raw.encode()) + '"'
    return body + "}"


def read_response(text: str, method: str, public_key: str) -> dict[str, Any]:
    """The verified response node of `method`. Alipay leaves errors about the request itself (bad signature,
    unknown app: codes 20000-40003) unsigned; those are returned unverified, as they cannot move money."""
    try:
        whole = json.loads(text)
    except ValueError:
        raise SignatureError("the response is not JSON") from None
    key = response_key(method) if response_key(method) in whole else "error_response"
    raw = _raw_member(text, key)
    node = whole.get(key)
    if raw is None or not isinstance(node, dict):
        raise SignatureError(f"the response has no {response_key(method)} node")
    signature = whole.get("sign")
    if signature is None and str(node.get("code")) != SUCCESS and node.get("code") in _UNSIGNED_ERRORS:
        return node
    if not isinstance(signature, str) or not rsa_verify(public_key, raw.encode(), signature):
        raise SignatureError("the response's signature does not verify under the Alipay public key")
    return node


# Request-level failures Alipay answers without a signature (the gateway refused the call before any business).
_UNSIGNED_ERRORS = frozenset({"20000", "20001", "40001", "40002", "40003"})


# --- what trade.pay failures mean (sub_code → the engine's decline code) ------------------------------------

DECLINES: dict[str, str] = {
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "insufficient_funds",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH": "insufficient_funds",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR": "insufficient_funds",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR": "insufficient_funds",
    "ACQ.BUYER_ENABLE_STATUS_FORBID": "account_frozen",
    "ACQ.AGREEMENT_NOT_EXIST": "revocation_of_authorization",
    "ACQ.AGREEMENT_INVALID": "revocation_of_authorization",
    "ACQ.AGREEMENT_STATUS_NOT_NORMAL": "revocation_of_authorization",
    "ACQ.AGREEMENT_ERROR": "revocation_of_authorization",
    "ACQ.CYCLE_PAY_SINGLE_FEE_EXCEED": "agreement_limit_exceeded",
    "ACQ.CYCLE_PAY_TOTAL_FEE_EXCEED": "agreement_limit_exceeded",
    "ACQ.CYCLE_PAY_TOTAL_TIMES_EXCEED": "agreement_limit_exceeded",
    "ACQ.CYCLE_PAY_DATE_NOT_MATCH": "agreement_limit_exceeded",
    "ACQ.TRADE_BUYER_NOT_MATCH": "transaction_not_allowed",
    "ACQ.PAYMENT_REQUEST_HAS_RISK": "highest_risk_level",
}
# The call was refused before anything happened: a technical error (fail over; never a decline).
REFUSED = frozenset(
    {
        "ACQ.INVALID_PARAMETER",
        "ACQ.ACCESS_FORBIDDEN",
        "ACQ.PARTNER_ERROR",
        "ACQ.CONTEXT_INCONSISTENT",
        "ACQ.EXIST_FORBIDDEN_WORD",
        "ACQ.TOTAL_FEE_EXCEED",
        "ACQ.BEYOND_PAY_RESTRICTION",
    }
)
# Ask again: the outcome is not known.
ASK_AGAIN = frozenset({"ACQ.SYSTEM_ERROR", "ACQ.TRADE_HAS_SUCCESS"})
REFUND_FAILURES: dict[str, str] = {
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "amount_exceeds_charge",
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": "amount_exceeds_charge",
    "ACQ.REFUND_FEE_ERROR": "amount_exceeds_charge",
    "ACQ.TRADE_NOT_EXIST": "charge_not_found",
    "ACQ.TRADE_STATUS_ERROR": "charge_not_captured",
    "ACQ.TRADE_HAS_CLOSE": "charge_not_captured",
}


def decline_code(sub_code: str) -> str:
    """The engine's decline code for a trade.pay business failure (unknown ones: a generic, soft decline)."""
    return DECLINES.get(sub_code, "generic_decline")


# --- the trade bill (对账单, 业务明细) ------------------------------------------------------------------------

BILL_COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
TRADE, REFUND = "交易", "退款"
BILL_ENCODING = "gbk"


@dataclass(frozen=True)
class BillLine:
    """One line of the business detail (业务明细): a trade, or a refund of one."""

    trade_no: str
    out_trade_no: str
    kind: str  # TRADE | REFUND
    subject: str
    created_at: datetime
    finished_at: datetime
    buyer: str
    amount: int  # fen, positive; written negative for refunds
    fee: int  # fen kept by Alipay, positive; written negative (a charge to the merchant)
    out_request_no: str = ""


def _date_words(moment: datetime) -> str:
    local = moment.astimezone(CHINA)
    return f"{local.year}年{local.month:02d}月{local.day:02d}日 {local:%H:%M:%S}"


def format_trade_bill(account: str, day: date, lines: Iterable[BillLine], exported_at: datetime) -> bytes:
    """The trade bill of `day` as Alipay hands it out: a zip holding the detail CSV and its summary, in GBK."""
    rows = sorted(lines, key=lambda line: (line.finished_at, line.trade_no, line.out_request_no))
    start = datetime(day.year, day.month, day.day, tzinfo=CHINA)
    out = io.StringIO()
    out.write("#支付宝业务明细查询\n")
    out.write(f"#账号：[{account}]\n")
    out.write(f"#起始日期：[{_date_words(start)}]   终止日期：[{_date_words(start + timedelta(days=1))}]\n")
    out.write(
        "#-----------------------------------------业务明细列表----------------------------------------\n"
    )
    out.write(",".join(BILL_COLUMNS) + "\n")
    for line in rows:
        sign = -1 if line.kind == REFUND else 1
        amount = to_yuan(sign * line.amount)
        fields = [
            line.trade_no,
            line.out_trade_no,
            line.kind,
            line.subject.replace(",", " "),
            timestamp(line.created_at),
            timestamp(line.finished_at),
            "",
            "",
            "",
            "",
            line.buyer,
            amount,
            amount,
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "",
            "0.00",
            "0.00",
            line.out_request_no,
            to_yuan(-line.fee),
            "0.00",
            "",
        ]
        # Alipay pads each value with a tab so spreadsheets keep long numbers as text.
        out.write(",".join(f"{value}\t" for value in fields) + "\n")
    out.write(
        "#-----------------------------------------业务明细列表结束------------------------------------\n"
    )
    trades = [line for line in rows if line.kind == TRADE]
    refunds = [line for line in rows if line.kind == REFUND]
    out.write(
        f"#交易合计：{len(trades)}笔，商家实收共：{to_yuan(sum(t.amount for t in trades))}元，商家优惠共：0.00元\n"
    )
    out.write(
        f"#退款合计：{len(refunds)}笔，商家实收退款共：{to_yuan(-sum(r.amount for r in refunds))}元，"
        "商家优惠退款共：0.00元\n"
    )
    out.write(f"#导出时间：[{_date_words(exported_at)}]\n")
    stamp = f"{day:%Y%m%d}"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"{account}_{stamp}_业务明细.csv", out.getvalue().encode(BILL_ENCODING))
        summary = (
            "#支付宝业务汇总查询\n"
            f"#账号：[{account}]\n"
            f"交易笔数,交易金额（元）,退款笔数,退款金额（元）,服务费（元）\n"
            f"{len(trades)},{to_yuan(sum(t.amount for t in trades))},{len(refunds)},"
            f"{to_yuan(-sum(r.amount for r in refunds))},{to_yuan(-sum(line.fee for line in rows))}\n"
        )
        bundle.writestr(f"{account}_{stamp}_业务明细(汇总).csv", summary.encode(BILL_ENCODING))
    return archive.getvalue()


def parse_trade_bill(archive: bytes) -> list[SettlementRow]:
    """The settlement rows of a trade bill zip (the 业务明细 file; its summary is ignored). Columns are found by
    their header names, so a bill with extra or reordered columns still reads."""
    try:
        bundle = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        raise ValueError("the Alipay bill is not a zip archive") from None
    names = [n for n in bundle.namelist() if n.endswith("业务明细.csv")]
    if len(names) != 1:
        raise ValueError(f"the Alipay bill should hold one 业务明细.csv, it holds {bundle.namelist()}")
    text = bundle.read(names[0]).decode(BILL_ENCODING)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ValueError("the Alipay bill has no header row")
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader)]
    column = {name: index for index, name in enumerate(header)}
    missing = [
        name
        for name in ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "服务费（元）")
        if name not in column
    ]
    if missing:
        raise ValueError(f"the Alipay bill lacks the columns {missing}")
    rows: list[SettlementRow] = []
    for raw in reader:
        values = [value.strip() for value in raw]

        def field(name: str, values: list[str] = values) -> str:
            index = column.get(name)
            return values[index] if index is not None and index < len(values) else ""

        kind = field("业务类型")
        if kind not in (TRADE, REFUND):
            continue
        refund = kind == REFUND
        rows.append(
            SettlementRow(
                kind="refund" if refund else "charge",
                idempotency_key=field("退款批次号/请求号") if refund else field("商户订单号"),
                reference=field("支付宝交易号"),
                amount=abs(from_yuan(field("订单金额（元）"))),
                currency="CNY",
                fee=max(0, -from_yuan(field("服务费（元）") or "0")),
                settled_at=parse_timestamp(field("完成时间")).astimezone(UTC),
            )
        )
    return rows
