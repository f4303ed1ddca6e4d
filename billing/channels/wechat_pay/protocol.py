"""WeChat Pay API v3's wire format, as pure functions (no I/O): request signatures, response and notification
verification, the AEAD_AES_256_GCM notification resource, and the trade bill in WeChat's CSV layout.

- A request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",
  timestamp="..",serial_no=".."`, the signature being RSA-SHA256 (merchant key) over
  "METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n" (URL: path and query).
- A response and a notification carry Wechatpay-Timestamp / -Nonce / -Signature / -Serial; the signature is over
  "TIMESTAMP\\nNONCE\\nBODY\\n" under the platform key named by the serial, and the timestamp must be within five
  minutes (a replayed message is refused).
- A notification's `resource` is AES-256-GCM under the merchant's APIv3 key (32 bytes), with its `nonce` and
  `associated_data`; the ciphertext ends with the 16-byte tag. Success is answered 204 (no body); failure 4xx/5xx
  with `{"code": "FAIL", "message": "..."}`, and WeChat Pay retries.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from billing.channels.crypto import aes_gcm_decrypt, aes_gcm_encrypt, rsa_sign, rsa_verify
from billing.channels.yuan import from_yuan, to_yuan, yuan_to_fen_rounded
from billing.gateways.base import SettlementRow

CHINA = ZoneInfo("Asia/Shanghai")
SCHEME = "WECHATPAY2-SHA256-RSA2048"
ALGORITHM = "AEAD_AES_256_GCM"
MAX_CLOCK_SKEW_SECONDS = 300
APIV3_KEY_BYTES = 32


class SignatureError(ValueError):
    """A response or notification that does not verify."""


def body_text(payload: Mapping[str, Any] | None) -> str:
    return "" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def request_message(method: str, url: str, timestamp: int, nonce: str, body: str) -> bytes:
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n{body}\n".encode()


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: str,
    method: str,
    url: str,
    body: str,
    timestamp: int,
    nonce: str,
) -> str:
    """The Authorization header of one request."""
    signature = rsa_sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of an Authorization header (what WeChat Pay reads to verify a merchant's request)."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        raise SignatureError(f"the Authorization scheme must be {SCHEME}")
    return dict(_AUTH_FIELD.findall(rest))


def verify_request(
    header: str, *, public_key: str, method: str, url: str, body: str, now: int
) -> dict[str, str]:
    """Check a merchant's signed request (the sandbox does what WeChat Pay does); returns the header's fields."""
    fields = parse_authorization(header)
    try:
        stamp = int(fields.get("timestamp", ""))
    except ValueError:
        raise SignatureError("the Authorization timestamp is not a number") from None
    if abs(now - stamp) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureError("the request's timestamp is more than five minutes off")
    message = request_message(method, url, stamp, fields.get("nonce_str", ""), body)
    if not rsa_verify(public_key, message, fields.get("signature", "")):
        raise SignatureError("the request's signature does not verify under the merchant's public key")
    return fields


def response_message(timestamp: str, nonce: str, body: str) -> bytes:
    return f"{timestamp}\n{nonce}\n{body}\n".encode()


def signed_headers(*, private_key: str, serial: str, body: str, timestamp: int, nonce: str) -> dict[str, str]:
    """The Wechatpay-* headers of a response or notification (the platform's side)."""
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": rsa_sign(private_key, response_message(str(timestamp), nonce, body)),
        "Wechatpay-Signature-Type": SCHEME,
    }


def verify_signed(headers: Mapping[str, str], body: str, *, public_key: str, serial: str, now: int) -> None:
    """Check the Wechatpay-* headers of a response or notification; raises SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp, nonce = lower.get("wechatpay-timestamp", ""), lower.get("wechatpay-nonce", "")
    signature, named = lower.get("wechatpay-signature", ""), lower.get("wechatpay-serial", "")
    if not (stamp and nonce and signature and named):
        raise SignatureError("the Wechatpay-Timestamp, -Nonce, -Signature and -Serial headers are required")
    if named != serial:
        raise SignatureError(f"signed with platform key {named!r}, not the connection's {serial!r}")
    try:
        moment = int(stamp)
    except ValueError:
        raise SignatureError("Wechatpay-Timestamp is not a number") from None
    if abs(now - moment) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureError("Wechatpay-Timestamp is more than five minutes off (a replayed message?)")
    if not rsa_verify(public_key, response_message(stamp, nonce, body), signature):
        raise SignatureError("the signature does not verify under the platform public key")


def apiv3_key_bytes(key: str) -> bytes:
    raw = key.encode()
    if len(raw) != APIV3_KEY_BYTES:
        raise ValueError(f"the APIv3 key is {APIV3_KEY_BYTES} ASCII characters, not {len(raw)}")
    return raw


def encrypt_resource(apiv3_key: str, nonce: str, associated_data: str, plaintext: Mapping[str, Any]) -> str:
    return aes_gcm_encrypt(
        apiv3_key_bytes(apiv3_key), nonce.encode(), body_text(plaintext).encode(), associated_data.encode()
    )


def decrypt_resource(apiv3_key: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The plaintext of a notification's `resource`; ValueError when it does not decrypt or is not JSON."""
    if resource.get("algorithm") != ALGORITHM:
        raise ValueError(f"resource algorithm {resource.get('algorithm')!r} is not {ALGORITHM}")
    plaintext = aes_gcm_decrypt(
        apiv3_key_bytes(apiv3_key),
        str(resource.get("nonce", "")).encode(),
        str(resource.get("ciphertext", "")),
        str(resource.get("associated_data", "")).encode(),
    )
    data = json.loads(plaintext)
    if not isinstance(data, dict):
        raise ValueError("the resource is not a JSON object")
    return data


def rfc3339(moment: datetime) -> str:
    """WeChat Pay's time fields: RFC 3339 in China time, "2027-01-31T18:00:01+08:00"."""
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- what deduction failures mean ---------------------------------------------------------------------------

DECLINES: dict[str, str] = {
    "NOT_ENOUGH": "insufficient_funds",
    "NOTENOUGH": "insufficient_funds",
    "USER_ACCOUNT_ABNORMAL": "account_frozen",
    "USER_ACCOUNT_FROZEN": "account_frozen",
    "CONTRACT_NOT_EXIST": "revocation_of_authorization",
    "CONTRACT_TERMINATED": "revocation_of_authorization",
    "CONTRACT_ERROR": "revocation_of_authorization",
    "RULE_LIMIT": "agreement_limit_exceeded",
}
# Refused before anything happened: technical (fail over, never a decline).
REFUSED = frozenset(
    {
        "PARAM_ERROR",
        "INVALID_REQUEST",
        "SIGN_ERROR",
        "NO_AUTH",
        "MCH_NOT_EXISTS",
        "APPID_MCHID_NOT_MATCH",
        "FREQUENCY_LIMITED",
        "NO_PRE_NOTIFICATION",
    }
)
REFUND_FAILURES: dict[str, str] = {
    "NOT_ENOUGH": "amount_exceeds_charge",
    "INVALID_REQUEST": "amount_exceeds_charge",
    "RESOURCE_NOT_EXISTS": "charge_not_found",
    "ORDER_NOT_EXIST": "charge_not_found",
}


def decline_code(code: str) -> str:
    return DECLINES.get(code, "generic_decline")


# --- the trade bill (交易账单) -----------------------------------------------------------------------------

BILL_COLUMNS = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
SUMMARY_COLUMNS = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)


@dataclass(frozen=True)
class BillLine:
    """One row of the trade bill: a deduction (SUCCESS) or a refund of one (REFUND)."""

    at: datetime
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    amount: int  # fen of the order
    fee: int  # fen kept by WeChat Pay
    subject: str
    refund_id: str = ""
    out_refund_no: str = ""
    refund_amount: int = 0

    @property
    def is_refund(self) -> bool:
        return bool(self.out_refund_no)


def _fee_text(fen: int) -> str:
    return f"{to_yuan(fen)}000"


def format_trade_bill(lines: Iterable[BillLine], rate: str) -> str:
    """The trade bill (bill_type ALL) as WeChat Pay serves it: every value prefixed with a backtick, the summary
    in the last two lines."""
    rows = sorted(lines, key=lambda line: (line.at, line.transaction_id, line.out_refund_no))
    out = io.StringIO()
    out.write(",".join(BILL_COLUMNS) + "\r\n")
    for line in rows:
        refund = line.is_refund
        values = [
            line.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            line.appid,
            line.mchid,
            "0",
            "",
            line.transaction_id,
            line.out_trade_no,
            line.openid,
            "PAP",
            "REFUND" if refund else "SUCCESS",
            "OTHERS",
            "CNY",
            "0.00" if refund else to_yuan(line.amount),
            "0.00",
            line.refund_id if refund else "0",
            line.out_refund_no if refund else "0",
            to_yuan(line.refund_amount) if refund else "0.00",
            "0.00",
            "ORIGINAL" if refund else "",
            "SUCCESS" if refund else "",
            line.subject.replace(",", " "),
            "",
            _fee_text(-line.fee if refund else line.fee),
            rate,
            to_yuan(line.amount),
            to_yuan(line.refund_amount) if refund else "0.00",
            "",
        ]
        out.write(",".join(f"`{value}" for value in values) + "\r\n")
    trades = [line for line in rows if not line.is_refund]
    refunds = [line for line in rows if line.is_refund]
    out.write(",".join(SUMMARY_COLUMNS) + "\r\n")
    summary = [
        str(len(rows)),
        to_yuan(sum(t.amount for t in trades)),
        to_yuan(sum(r.refund_amount for r in refunds)),
        "0.00",
        _fee_text(sum(t.fee for t in trades) - sum(r.fee for r in refunds)),
        to_yuan(sum(t.amount for t in trades)),
        to_yuan(sum(r.refund_amount for r in refunds)),
    ]
    out.write(",".join(f"`{value}" for value in summary) + "\r\n")
    return out.getvalue()


def parse_trade_bill(text: str) -> list[SettlementRow]:
    """The settlement rows of a trade bill (detail rows only; the summary after its own header is ignored)."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise ValueError("the WeChat Pay bill is empty (it always has a header)")
    header = [name.strip() for name in rows[0]]
    column = {name: index for index, name in enumerate(header)}
    needed = (
        "交易时间",
        "微信订单号",
        "商户订单号",
        "交易状态",
        "订单金额",
        "手续费",
        "商户退款单号",
        "退款金额",
        "微信退款单号",
    )
    missing = [name for name in needed if name not in column]
    if missing:
        raise ValueError(f"the WeChat Pay bill lacks the columns {missing}")
    out: list[SettlementRow] = []
    for raw in rows[1:]:
        if raw and raw[0].strip() == SUMMARY_COLUMNS[0]:
            break
        values = [value.strip().removeprefix("`") for value in raw]

        def field(name: str, values: list[str] = values) -> str:
            index = column[name]
            return values[index] if index < len(values) else ""

        state = field("交易状态")
        at = datetime.strptime(field("交易时间"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA).astimezone(UTC)
        if state == "SUCCESS":
            out.append(
                SettlementRow(
                    kind="charge",
                    idempotency_key=field("商户订单号"),
                    reference=field("微信订单号"),
                    amount=from_yuan(field("订单金额")),
                    currency="CNY",
                    fee=max(0, yuan_to_fen_rounded(field("手续费"))),
                    settled_at=at,
                )
            )
        elif state == "REFUND":
            out.append(
                SettlementRow(
                    kind="refund",
                    idempotency_key=field("商户退款单号"),
                    reference=field("微信退款单号"),
                    amount=from_yuan(field("退款金额")),
                    currency="CNY",
                    # A refund row writes the fee given back as a negative figure; the row keeps nothing.
                    fee=max(0, yuan_to_fen_rounded(field("手续费"))),
                    settled_at=at,
                )
            )
    return out
