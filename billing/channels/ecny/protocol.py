"""The e-CNY (数字人民币) merchant API's wire format for 子钱包免密支付 (sub-wallet auto-pay agreements), as pure
functions: message signing and verification, times, error codes, and the daily bill (对账单).

There is no one public e-CNY merchant API: each operator (运营机构, the designated banks) publishes its own, all of
the same shape, which is what this models. Requests and answers are JSON bodies over HTTPS POST to
`/ecny/api/v1/<resource>`; a notification is the same, sent to the merchant's notify URL. Each message carries
four headers: `X-Ecny-Merchant` (the merchant number), `X-Ecny-Timestamp` (Unix seconds), `X-Ecny-Nonce` and
`X-Ecny-Signature`, the signature of "merchant\\ntimestamp\\nnonce\\nbody\\n" with the sender's key, its algorithm in
`X-Ecny-Sign-Type`. The operators sign with SM2 over SM3 (国密); this engine signs RSA2 (RSA-SHA256) because no
maintained SM2 implementation is among its dependencies (pure-Python `gmssl` exists on PyPI; see docs/channels.md).

Amounts are integer fen; times are "yyyy-MM-ddTHH:mm:ss+08:00". An answer's `retCode` is SUCCESS or FAIL, a
failure's `errCode` says why (ERR_DECLINES below).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from billing.channels.crypto import rsa_sign, rsa_verify
from billing.channels.yuan import from_yuan, to_yuan
from billing.gateways.base import SettlementRow

CHINA = ZoneInfo("Asia/Shanghai")
API = "/ecny/api/v1"
SIGN_TYPE = "RSA2"
MAX_SKEW_SECONDS = 300
HEADERS = ("x-ecny-merchant", "x-ecny-timestamp", "x-ecny-nonce", "x-ecny-signature")

SUCCESS, FAIL = "SUCCESS", "FAIL"
# errCode → the engine's decline code (SPEC §6 classes in dunning.declines).
ERR_DECLINES: dict[str, str] = {
    "WALLET_BALANCE_NOT_ENOUGH": "insufficient_funds",  # 子钱包余额不足
    "WALLET_LIMIT_EXCEEDED": "wallet_limit_exceeded",  # 超出子钱包单笔或日累计限额（用户在钱包App设定）
    "WALLET_FROZEN": "account_frozen",  # 钱包已冻结
    "WALLET_CLOSED": "account_frozen",  # 钱包已注销
    "AGREEMENT_CANCELLED": "revocation_of_authorization",  # 免密协议已解约
    "AGREEMENT_NOT_EXIST": "revocation_of_authorization",
    "AGREEMENT_AMOUNT_EXCEEDED": "agreement_limit_exceeded",  # 超出协议单笔限额
    "RISK_REJECTED": "highest_risk_level",
}
# The request was refused before any business: technical (fail over; never a decline).
REQUEST_ERRORS = frozenset(
    {"PARAM_ERROR", "SIGN_ERROR", "MERCHANT_INVALID", "TIMESTAMP_EXPIRED", "NOT_SUPPORTED"}
)
ASK_AGAIN = frozenset({"SYSTEM_BUSY"})
ORDER_PAID = "ORDER_PAID"
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
REFUND_FAILURES: dict[str, str] = {
    "REFUND_AMOUNT_EXCEEDED": "amount_exceeds_charge",
    "ORDER_NOT_EXIST": "charge_not_found",
    "ORDER_NOT_PAID": "charge_not_captured",
}


class SignatureError(ValueError):
    """A message whose signature does not verify, whose headers are missing, or that is too old."""


def body_text(content: Mapping[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def message(merchant: str, timestamp: int, nonce: str, body: str) -> bytes:
    return f"{merchant}\n{timestamp}\n{nonce}\n{body}\n".encode()


def signed_headers(
    *, private_key: str, merchant: str, body: str, timestamp: int, nonce: str
) -> dict[str, str]:
    return {
        "X-Ecny-Merchant": merchant,
        "X-Ecny-Timestamp": str(timestamp),
        "X-Ecny-Nonce": nonce,
        "X-Ecny-Sign-Type": SIGN_TYPE,
        "X-Ecny-Signature": rsa_sign(private_key, message(merchant, timestamp, nonce, body)),
    }


def verify(headers: Mapping[str, str], body: str, public_key: str, *, now: int) -> str:
    """The merchant number a verified message names; SignatureError otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [name for name in HEADERS if not lowered.get(name)]
    if missing:
        raise SignatureError(f"the message lacks the headers {', '.join(missing)}")
    if lowered.get("x-ecny-sign-type", SIGN_TYPE) != SIGN_TYPE:
        raise SignatureError(f"X-Ecny-Sign-Type must be {SIGN_TYPE}")
    try:
        timestamp = int(lowered["x-ecny-timestamp"])
    except ValueError:
        raise SignatureError("X-Ecny-Timestamp is not Unix seconds") from None
    if abs(now - timestamp) > MAX_SKEW_SECONDS:
        raise SignatureError("X-Ecny-Timestamp is more than five minutes away")
    merchant = lowered["x-ecny-merchant"]
    if not rsa_verify(
        public_key, message(merchant, timestamp, lowered["x-ecny-nonce"], body), lowered["x-ecny-signature"]
    ):
        raise SignatureError("the signature does not verify")
    return merchant


def read_json(body: bytes) -> dict[str, Any]:
    try:
        content = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("the body is not UTF-8 JSON") from None
    if not isinstance(content, dict):
        raise SignatureError("the body is not a JSON object")
    return content


def time_text(moment: datetime) -> str:
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def decline_code(err_code: str) -> str:
    return ERR_DECLINES.get(err_code, "generic_decline")


# --- the daily bill: a text file, `|`-separated, yuan amounts --------------------------------------------------

BILL_HEADER = (
    "交易类型",
    "商户订单号",
    "运营机构交易号",
    "交易完成时间",
    "交易金额(元)",
    "手续费(元)",
    "商户退款单号",
)
PAY, REFUND = "支付", "退款"


@dataclass(frozen=True)
class BillLine:
    kind: str  # PAY | REFUND
    out_trade_no: str
    trade_no: str
    finished_at: datetime
    amount: int  # fen
    fee: int  # fen
    out_refund_no: str = ""


def format_bill(merchant: str, day: date, lines: Iterable[BillLine]) -> str:
    rows = sorted(lines, key=lambda line: (line.finished_at, line.trade_no, line.out_refund_no))
    out = [f"#数字人民币商户对账单|商户号:{merchant}|账单日期:{day:%Y%m%d}", "|".join(BILL_HEADER)]
    for line in rows:
        out.append(
            "|".join(
                (
                    line.kind,
                    line.out_trade_no,
                    line.trade_no,
                    time_text(line.finished_at),
                    to_yuan(line.amount),
                    to_yuan(line.fee),
                    line.out_refund_no,
                )
            )
        )
    pays = [line for line in rows if line.kind == PAY]
    refunds = [line for line in rows if line.kind == REFUND]
    out.append(
        f"#支付笔数:{len(pays)}|支付金额:{to_yuan(sum(x.amount for x in pays))}|退款笔数:{len(refunds)}|"
        f"退款金额:{to_yuan(sum(x.amount for x in refunds))}|手续费:{to_yuan(sum(x.fee for x in rows))}"
    )
    return "\n".join(out) + "\n"


def parse_bill(text: str) -> list[SettlementRow]:
    """The bill's rows; columns found by their header names, summary and comment lines skipped."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ValueError("the e-CNY bill has no header row")
    header = lines[0].split("|")
    missing = [name for name in BILL_HEADER if name not in header]
    if missing:
        raise ValueError(f"the e-CNY bill lacks the columns {missing}")
    column = {name: index for index, name in enumerate(header)}
    rows: list[SettlementRow] = []
    for line in lines[1:]:
        values = line.split("|")
        if len(values) != len(header) or values[column["交易类型"]] not in (PAY, REFUND):
            continue
        refund = values[column["交易类型"]] == REFUND
        rows.append(
            SettlementRow(
                kind="refund" if refund else "charge",
                idempotency_key=values[column["商户退款单号"] if refund else column["商户订单号"]],
                reference=values[column["运营机构交易号"]],
                amount=from_yuan(values[column["交易金额(元)"]]),
                currency="CNY",
                fee=from_yuan(values[column["手续费(元)"]]),
                settled_at=parse_time(values[column["交易完成时间"]]).astimezone(UTC),
            )
        )
    return rows
