"""UnionPay's 全渠道 gateway (ACP, version 5.1.0) wire format as pure functions: signing, verification, times,
response codes, and the daily settlement file (对账文件).

Every message (request, synchronous answer, `backUrl` notification) is a form of key=value pairs. Its signature
(signMethod 01): the pairs except `signature`, sorted by name, joined `k=v&k=v` with raw values; SHA-256 of that
text as lowercase hex; that hex string signed RSA-SHA256 (PKCS#1 v1.5) with the sender's private key; base64.
`certId` names the key that signed (the merchant's signing certificate, or UnionPay's). Amounts (`txnAmt`) are
integer fen; `txnTime` is yyyyMMddHHmmss in China time and, with `orderId`, names a transaction.

Transaction codes used (txnType/txnSubType, bizType 000902 token payment): 79/00 open a token (the customer's
authentication page), 78/02 ask about a token, 74/01 delete a token, 01/01 consume (a debit by token), 04/00
refund (退货), 00/00 query a transaction, 76/01 download the settlement file. respCode 00 is success; 03, 04 and
05 mean the outcome is not known yet (ask again); anything else failed (RESP_DECLINES below).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from billing.channels.crypto import rsa_sign, rsa_verify
from billing.gateways.base import SettlementRow

CHINA = ZoneInfo("Asia/Shanghai")
VERSION = "5.1.0"
BIZ_TYPE = "000902"
CURRENCY_CODE = "156"  # CNY
TIME_FORMAT = "%Y%m%d%H%M%S"
FRONT_PATH = "/gateway/api/frontTransReq.do"
BACK_PATH = "/gateway/api/backTransReq.do"
QUERY_PATH = "/gateway/api/queryTrans.do"
FILE_PATH = "/gateway/api/fileTransRequest.do"

OPEN_TOKEN, TOKEN_QUERY, DELETE_TOKEN = ("79", "00"), ("78", "02"), ("74", "01")
CONSUME, REFUND, QUERY, FILE = ("01", "01"), ("04", "00"), ("00", "00"), ("76", "01")
# A token the customer (or the bank) cancelled: announced with this txnType (UnionPay's token status notice).
TOKEN_CANCELLED = "75"  # noqa: S105  (a transaction type, not a secret)

SUCCESS = "00"
PENDING = frozenset({"03", "04", "05"})
# Failures of the request itself (format, signature, merchant status): technical, never a decline.
REQUEST_ERRORS = frozenset({"01", "02", "10", "11", "12", "30", "31", "32", "33", "34", "35", "36", "37"})
NOT_FOUND = "34"  # 查无此交易
DUPLICATE = "12"  # 重复交易
# respCode → the engine's decline code (SPEC §6 classes in dunning.declines).
RESP_DECLINES: dict[str, str] = {
    "51": "insufficient_funds",  # 余额不足
    "61": "agreement_limit_exceeded",  # 超出单笔交易限额
    "62": "account_frozen",  # 卡状态不正确（冻结、挂失）
    "77": "revocation_of_authorization",  # token 已删除或未开通
    "79": "token_expired",  # token 已过期
    "71": "transaction_not_allowed",  # 交易无效，发卡行拒绝
}
REFUND_FAILURES: dict[str, str] = {"60": "amount_exceeds_charge", "34": "charge_not_found"}


class SignatureError(ValueError):
    """A message whose signature does not verify, or that is not a UnionPay form."""


def signing_text(fields: Mapping[str, str]) -> str:
    return "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != "signature")


def _digest(fields: Mapping[str, str]) -> bytes:
    return hashlib.sha256(signing_text(fields).encode()).hexdigest().encode()


def sign(fields: Mapping[str, str], private_key: str, cert_id: str) -> dict[str, str]:
    """`fields` with `certId`, `signMethod` and their `signature`."""
    signed = {**fields, "certId": cert_id, "signMethod": "01"}
    signed["signature"] = rsa_sign(private_key, _digest(signed))
    return signed


def verify(fields: Mapping[str, str], public_key: str) -> bool:
    return rsa_verify(public_key, _digest(fields), fields.get("signature", ""))


def form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()


def read_form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("the body is not a UTF-8 key=value form") from None


def txn_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime(TIME_FORMAT)


def parse_txn_time(text: str) -> datetime:
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=CHINA)


def token_data(fields: Mapping[str, str]) -> dict[str, str]:
    """`tokenPayData` ("{token=...&trId=...}") as a dict."""
    raw = fields.get("tokenPayData", "").strip()
    if not (raw.startswith("{") and raw.endswith("}")):
        return {}
    return dict(parse_qsl(raw[1:-1], keep_blank_values=True))


def write_token_data(values: Mapping[str, str]) -> str:
    return "{" + "&".join(f"{k}={v}" for k, v in values.items()) + "}"


def decline_code(resp_code: str) -> str:
    return RESP_DECLINES.get(resp_code, "generic_decline")


# --- the settlement file (INN<yyMMdd>88ZM_<merId>, inside a zip) ------------------------------------------------

# Fixed-width columns, as UnionPay's ZM file has them: name and width.
FILE_COLUMNS = (
    ("txnType", 2),
    ("orderId", 40),
    ("txnTime", 14),
    ("queryId", 21),
    ("txnAmt", 12),
    ("fee", 12),
    ("reqReserved", 64),  # the merchant's reserved field, echoed: our idempotency key
)


@dataclass(frozen=True)
class FileLine:
    txn_type: str  # "01" consume, "04" refund
    order_id: str
    txn_time: datetime
    query_id: str
    amount: int  # fen
    fee: int  # fen kept by UnionPay
    req_reserved: str


def format_settlement_file(mer_id: str, day: date, lines: Iterable[FileLine]) -> bytes:
    """The day's ZM file, zipped as the file-transfer transaction hands it out."""
    out = io.StringIO()
    for line in sorted(lines, key=lambda x: (x.txn_time, x.query_id)):
        values = (
            line.txn_type,
            line.order_id,
            txn_time(line.txn_time),
            line.query_id,
            f"{line.amount:012d}",
            f"{line.fee:012d}",
            line.req_reserved,
        )
        out.write(
            " ".join(v.ljust(width) for v, (_, width) in zip(values, FILE_COLUMNS, strict=True)) + "\r\n"
        )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"INN{day:%y%m%d}88ZM_{mer_id}", out.getvalue().encode("gbk"))
    return archive.getvalue()


def parse_settlement_file(archive: bytes) -> list[SettlementRow]:
    try:
        bundle = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        raise ValueError("the UnionPay settlement file is not a zip archive") from None
    names = [n for n in bundle.namelist() if "ZM_" in n]
    if len(names) != 1:
        raise ValueError(f"the UnionPay file should hold one ZM file, it holds {bundle.namelist()}")
    rows: list[SettlementRow] = []
    for text in bundle.read(names[0]).decode("gbk").splitlines():
        values = text.split()
        if len(values) != len(FILE_COLUMNS):
            continue
        kind, _order_id, when, query_id, amount, fee, key = values
        if kind not in ("01", "04"):
            continue
        rows.append(
            SettlementRow(
                kind="charge" if kind == "01" else "refund",
                idempotency_key=key,
                reference=query_id,
                amount=int(amount),
                currency="CNY",
                fee=int(fee),
                settled_at=parse_txn_time(when).astimezone(UTC),
            )
        )
    return rows


def file_content(archive: bytes) -> str:
    return base64.b64encode(archive).decode()
