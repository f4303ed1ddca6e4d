"""The e-CNY sandbox: an operator's merchant API (`/ecny/api/v1/...`) for sub-wallet auto-pay agreements, the
wallet's approval page, signed notifications and the daily bill, signing and verifying like the operator
(billing.channels.ecny.protocol).

The test buyer who approved decides the debits: buyer_ok succeeds; buyer_poor gets WALLET_BALANCE_NOT_ENOUGH;
buyer_frozen WALLET_FROZEN; buyer_slow PROCESSING, the payment succeeding when it is first queried. Every
sub-wallet has its owner's own per-payment limit (¥2,000.00 here): a debit above it gets WALLET_LIMIT_EXCEEDED
whatever the agreement allows. A debit above the agreement's single limit gets AGREEMENT_AMOUNT_EXCEEDED, one on
a cancelled agreement AGREEMENT_CANCELLED. Requests that do not verify are answered SIGN_ERROR and change nothing.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

from billing.channels.crypto import KeyFormatError
from billing.channels.ecny import protocol
from billing.channels.sandbox_kit import (
    CHINA,
    ChannelSandbox,
    TestBuyer,
    buyer_outcome,
    digits,
    link_lifetime,
    merchant_key_pair,
    on_china_day,
    period_words,
    platform_key,
    record_refund,
    sandbox_fee,
)
from billing.channels.yuan import mask_account, to_yuan
from billing.clock import utc_now
from billing.gateways.asgi import HttpRequest, HttpResponse
from billing.gateways.sandbox_store import Document
from billing.ids import random_token

SUB_WALLET_LIMIT = 200_000  # fen: what every test buyer's sub-wallet allows per payment
_OUTCOME_ERRORS = {
    "insufficient_funds": ("WALLET_BALANCE_NOT_ENOUGH", "子钱包余额不足"),
    "account_frozen": ("WALLET_FROZEN", "钱包已冻结"),
}
OPERATOR = "C1010211000012"  # the sandbox's operator code (运营机构编码), as the real ones are written


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _wall_seconds() -> int:
    return int(utc_now().timestamp())


class EcnySandbox(ChannelSandbox):
    channel = "e-CNY"
    channel_zh = "数字人民币"

    @staticmethod
    def accepted(status: int, body: bytes) -> bool:
        return status == 200 and b'"retCode":"SUCCESS"' in body.replace(b" ", b"")

    async def down_answer(self) -> HttpResponse:
        return HttpResponse.text(503, "Service Unavailable")

    async def provision(self, body: Document) -> Document:
        key = await platform_key(self.store)
        try:
            private, public = merchant_key_pair(body.get("merchant_public_key"))
        except KeyFormatError as exc:
            return {"error": str(exc)}
        merchant = "E" + digits(15)
        await self.store.put("accounts", merchant, {"merchant_no": merchant, "public_key": public})
        credentials = {"merchant_no": merchant, "ecny_public_key": key["public_key"]}
        if private is not None:
            credentials["merchant_private_key"] = private
        return credentials

    @staticmethod
    def _signed(key: Document, status: int, merchant: str, content: Document) -> HttpResponse:
        body = protocol.body_text(content)
        headers = protocol.signed_headers(
            private_key=key["private_key"],
            merchant=merchant,
            body=body,
            timestamp=_wall_seconds(),
            nonce=secrets.token_hex(16),
        )
        return HttpResponse(
            status, body.encode(), [("content-type", "application/json; charset=utf-8"), *headers.items()]
        )

    # --- the API ---

    async def api(self, request: HttpRequest) -> HttpResponse:
        prefix = protocol.API.strip("/").split("/")
        parts = request.parts()
        if request.method != "POST" or parts[: len(prefix)] != prefix:
            return HttpResponse.json(
                404, {"retCode": protocol.FAIL, "errCode": "NOT_FOUND", "errMsg": "no such route"}
            )
        resource = "/".join(parts[len(prefix) :])
        merchant = ""
        # Read before the handler runs: once it has sent a notification in the background, the answer goes out
        # without waiting on anything (as the operator answers before it notifies).
        key = await platform_key(self.store)
        try:
            account, content = await self._verified(request)
            merchant = account["merchant_no"]
            handler = {
                "agreements/sign": self._sign,
                "agreements/query": self._agreement_query,
                "agreements/cancel": self._cancel,
                "payments": self._pay,
                "payments/query": self._pay_query,
                "refunds": self._refund,
                "refunds/query": self._refund_query,
                "bills": self._bill,
            }.get(resource)
            if handler is None:
                raise _Refusal("NOT_SUPPORTED", f"不支持的接口 {resource}")
            answer = await handler(request, account, content)
        except _Refusal as refusal:
            return self._signed(
                key,
                200,
                merchant,
                {"retCode": protocol.FAIL, "errCode": refusal.code, "errMsg": str(refusal)},
            )
        return self._signed(key, 200, merchant, {"retCode": protocol.SUCCESS, **answer})

    async def _verified(self, request: HttpRequest) -> tuple[Document, Document]:
        merchant = request.headers.get("x-ecny-merchant", "")
        account = await self.store.get("accounts", merchant)
        if account is None:
            raise _Refusal("MERCHANT_INVALID", "商户号不存在")
        try:
            protocol.verify(
                request.headers, request.body.decode("utf-8"), account["public_key"], now=_wall_seconds()
            )
            content = protocol.read_json(request.body)
        except (UnicodeDecodeError, protocol.SignatureError) as exc:
            raise _Refusal("SIGN_ERROR", f"验签失败：{exc}") from None
        if content.get("merchantNo") != merchant:
            raise _Refusal("PARAM_ERROR", "merchantNo 与签名商户不一致")
        return account, content

    # --- agreements ---

    async def _sign(self, request: HttpRequest, account: Document, content: Document) -> Document:
        out_no = str(content.get("outAgreementNo") or "")
        single = content.get("singleLimit")
        if not out_no.isalnum() or len(out_no) > 32 or not isinstance(single, int) or single <= 0:
            raise _Refusal("PARAM_ERROR", "outAgreementNo（字母数字，最长32位）与 singleLimit（分）必填")
        if content.get("periodType") not in ("DAY", "MONTH"):
            raise _Refusal("PARAM_ERROR", "periodType 须为 DAY 或 MONTH")
        sign_id = random_token(24)
        now = utc_now()
        await self.store.put(
            "signs",
            sign_id,
            {
                "id": sign_id,
                "merchant_no": account["merchant_no"],
                "out_agreement_no": out_no,
                "single_limit": single,
                "period_type": content["periodType"],
                "period_count": int(content.get("periodCount") or 1),
                "subject": str(content.get("subject") or ""),
                "notify_url": content.get("notifyUrl"),
                "return_url": content.get("returnUrl"),
                "status": "pending",
                "created_at": now.isoformat(),
                "expires_at": (now + link_lifetime()).isoformat(),
            },
        )
        await self.store.put("agreement_keys", f"{account['merchant_no']}:{out_no}", {"sign_id": sign_id})
        return {
            "signUrl": f"{self.base_url(request)}/authorize/{sign_id}",
            "expireTime": protocol.time_text(now + link_lifetime()),
        }

    def approval_rows(self, sign: Document) -> list[tuple[str, str, str]]:
        period = period_words("month" if sign["period_type"] == "MONTH" else "day", int(sign["period_count"]))
        return [
            ("Merchant", "商户号", str(sign["merchant_no"])),
            ("Product", "产品", "子钱包免密支付 sub-wallet auto-pay"),
            ("Agreement", "商户协议号", str(sign["out_agreement_no"])),
            ("Max per debit", "单笔扣款上限", f"¥{to_yuan(int(sign['single_limit']))}"),
            ("Period", "扣款周期", period),
            ("Signed by", "签约方", str(sign["subject"])),
        ]

    async def approve(self, sign: Document, buyer: TestBuyer) -> bool:
        now = utc_now()
        agreement_id = f"AG{now.astimezone(CHINA):%Y%m%d}" + digits(14)
        agreement = {
            "agreement_no": agreement_id,
            "merchant_no": sign["merchant_no"],
            "out_agreement_no": sign["out_agreement_no"],
            "buyer": buyer.name,
            "wallet_id": mask_account("0021" + buyer.account),
            "status": "SIGNED",
            "single_limit": sign["single_limit"],
            "sign_time": protocol.time_text(now),
            "notify_url": sign.get("notify_url"),
        }
        await self.store.put("agreements", agreement_id, agreement)
        sign.update(status="approved", agreement_no=agreement_id)
        await self.store.put("signs", sign["id"], sign)
        return await self._notify_agreement(agreement, "AGREEMENT.SIGNED", wait=True)

    async def revoke(self, agreement_no: str) -> Document | None:
        agreement = await self.store.get("agreements", agreement_no)
        if agreement is None:
            return None
        if agreement["status"] == "SIGNED":
            await self._end(agreement, by="USER")
            agreement["notification_accepted"] = await self._notify_agreement(
                agreement, "AGREEMENT.CANCELLED", wait=True
            )
        return agreement

    async def _end(self, agreement: Document, *, by: str) -> None:
        agreement.update(status="CANCELLED", cancel_time=protocol.time_text(utc_now()), cancel_by=by)
        await self.store.put("agreements", agreement["agreement_no"], agreement)

    async def _notify_agreement(self, agreement: Document, event: str, *, wait: bool) -> bool:
        data = {
            "agreementId": agreement["agreement_no"],
            "outAgreementNo": agreement["out_agreement_no"],
            "walletId": agreement["wallet_id"],
            "status": agreement["status"],
            "signTime": agreement["sign_time"],
            "singleLimit": agreement["single_limit"],
        }
        if agreement.get("cancel_time"):
            data.update(cancelTime=agreement["cancel_time"], cancelBy=agreement["cancel_by"])
        return await self._notify(
            agreement["merchant_no"], agreement.get("notify_url"), event, data, wait=wait
        )

    async def _notify(self, merchant: str, url: Any, event: str, data: Document, *, wait: bool) -> bool:
        if not url:
            return False
        key = await platform_key(self.store)
        notify_id = f"N{utc_now().astimezone(CHINA):%Y%m%d%H%M%S}" + digits(12)
        body = protocol.body_text(
            {
                "notifyId": notify_id,
                "merchantNo": merchant,
                "eventType": event,
                "createTime": protocol.time_text(utc_now()),
                "data": data,
            }
        )
        headers = {
            "content-type": "application/json; charset=utf-8",
            **protocol.signed_headers(
                private_key=key["private_key"],
                merchant=merchant,
                body=body,
                timestamp=_wall_seconds(),
                nonce=secrets.token_hex(16),
            ),
        }
        return await self.notifier.send(
            notify_id=notify_id, url=str(url), headers=headers, body=body.encode(), what=event, wait=wait
        )

    async def _agreement_query(self, request: HttpRequest, account: Document, content: Document) -> Document:
        found = await self.store.get(
            "agreement_keys", f"{account['merchant_no']}:{content.get('outAgreementNo', '')}"
        )
        sign = await self.store.get("signs", found["sign_id"]) if found else None
        if sign is None:
            raise _Refusal("AGREEMENT_NOT_EXIST", "协议不存在")
        agreement = await self.store.get("agreements", str(sign.get("agreement_no") or ""))
        if agreement is None:
            return {"status": "WAIT_SIGN", "outAgreementNo": sign["out_agreement_no"]}
        return {
            "agreementId": agreement["agreement_no"],
            "outAgreementNo": agreement["out_agreement_no"],
            "status": agreement["status"],
            "walletId": agreement["wallet_id"],
            "signTime": agreement["sign_time"],
        }

    async def _agreement(self, account: Document, agreement_id: Any) -> Document:
        agreement = await self.store.get("agreements", str(agreement_id or ""))
        if agreement is None or agreement["merchant_no"] != account["merchant_no"]:
            raise _Refusal("AGREEMENT_NOT_EXIST", "协议不存在")
        return agreement

    async def _cancel(self, request: HttpRequest, account: Document, content: Document) -> Document:
        agreement = await self._agreement(account, content.get("agreementId"))
        if agreement["status"] == "SIGNED":
            await self._end(agreement, by="MERCHANT")
            await self._notify_agreement(agreement, "AGREEMENT.CANCELLED", wait=False)
        return {"agreementId": agreement["agreement_no"], "status": agreement["status"]}

    # --- payments ---

    async def _pay(self, request: HttpRequest, account: Document, content: Document) -> Document:
        out_trade_no = str(content.get("outTradeNo") or "")
        amount = content.get("amount")
        if (
            not out_trade_no
            or len(out_trade_no) > 64
            or not isinstance(amount, int)
            or isinstance(amount, bool)
            or amount <= 0
        ):
            raise _Refusal("PARAM_ERROR", "outTradeNo（最长64位）与 amount（正整数，分）必填")
        if content.get("currency", "CNY") != "CNY":
            raise _Refusal("PARAM_ERROR", "数字人民币仅支持 CNY")
        key = f"{account['merchant_no']}:{out_trade_no}"
        held = await self.store.get("trades", key)
        if held is not None:
            if held["amount"] != amount:
                raise _Refusal("PARAM_ERROR", "同一订单号金额不一致")
            if held["status"] == "SUCCESS":
                raise _Refusal(protocol.ORDER_PAID, "订单已支付")
            return _trade_view(held)
        agreement = await self._agreement(account, content.get("agreementId"))
        if agreement["status"] != "SIGNED":
            raise _Refusal("AGREEMENT_CANCELLED", "免密协议已解约")
        if amount > int(agreement["single_limit"]):
            raise _Refusal("AGREEMENT_AMOUNT_EXCEEDED", "超出协议单笔限额")
        if amount > SUB_WALLET_LIMIT:
            raise _Refusal("WALLET_LIMIT_EXCEEDED", "超出子钱包单笔支付限额")
        outcome = buyer_outcome(agreement)
        if outcome in _OUTCOME_ERRORS:
            raise _Refusal(*_OUTCOME_ERRORS[outcome])
        now = utc_now()
        trade = {
            "key": key,
            "merchant_no": account["merchant_no"],
            "out_trade_no": out_trade_no,
            "trade_no": f"{OPERATOR}{now.astimezone(CHINA):%Y%m%d}" + digits(10),
            "agreement_no": agreement["agreement_no"],
            "amount": amount,
            "status": "PROCESSING" if outcome == "slow" else "SUCCESS",
            "created_at": now.isoformat(),
            "paid_at": None if outcome == "slow" else now.isoformat(),
            "notify_url": content.get("notifyUrl"),
        }
        trade = await self.store.add("trades", key, trade)
        if trade["status"] == "SUCCESS":
            await self._notify_trade(trade)
        return _trade_view(trade)

    async def _notify_trade(self, trade: Document) -> None:
        data = {
            "outTradeNo": trade["out_trade_no"],
            "tradeNo": trade["trade_no"],
            "amount": trade["amount"],
            "currency": "CNY",
            "status": "SUCCESS",
            "payTime": protocol.time_text(datetime.fromisoformat(trade["paid_at"])),
        }
        await self._notify(trade["merchant_no"], trade.get("notify_url"), "PAYMENT.SUCCESS", data, wait=False)

    async def _trade(self, account: Document, content: Document) -> Document:
        trade = await self.store.get("trades", f"{account['merchant_no']}:{content.get('outTradeNo', '')}")
        if trade is None:
            raise _Refusal(protocol.ORDER_NOT_EXIST, "订单不存在")
        return trade

    async def _pay_query(self, request: HttpRequest, account: Document, content: Document) -> Document:
        trade = await self._trade(account, content)
        if trade["status"] == "PROCESSING":
            # buyer_slow: the payment went through in the meantime; its notification follows.
            trade.update(status="SUCCESS", paid_at=utc_now().isoformat())
            await self.store.put("trades", trade["key"], trade)
            await self._notify_trade(trade)
        return _trade_view(trade)

    async def _refund(self, request: HttpRequest, account: Document, content: Document) -> Document:
        trade = await self._trade(account, content)
        out_refund_no = str(content.get("outRefundNo") or "")
        amount = content.get("amount")
        if not out_refund_no or not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise _Refusal("PARAM_ERROR", "outRefundNo 与 amount（正整数，分）必填")
        key = f"{trade['key']}:{out_refund_no}"
        held = await self.store.get("refunds", key)
        if held is None:
            if trade["status"] != "SUCCESS":
                raise _Refusal("ORDER_NOT_PAID", "订单未支付")
            now = utc_now()
            refund = {
                "id": random_token(16),
                "key": key,
                "merchant_no": account["merchant_no"],
                "trade_key": trade["key"],
                "out_trade_no": trade["out_trade_no"],
                "out_refund_no": out_refund_no,
                "refund_no": f"R{OPERATOR}{now.astimezone(CHINA):%Y%m%d}" + digits(10),
                "amount": amount,
                "status": "SUCCESS",
                "refunded_at": now.isoformat(),
            }
            over_limit = _Refusal("REFUND_AMOUNT_EXCEEDED", "退款金额超过可退金额")
            held, recorded = await record_refund(self.store, trade, key, refund, over_limit=over_limit)
            if recorded:
                data = {
                    "outRefundNo": out_refund_no,
                    "outTradeNo": trade["out_trade_no"],
                    "refundNo": held["refund_no"],
                    "amount": amount,
                    "status": "SUCCESS",
                    "refundTime": protocol.time_text(now),
                }
                await self._notify(
                    account["merchant_no"], content.get("notifyUrl"), "REFUND.SUCCESS", data, wait=False
                )
        return _refund_view(held)

    async def _refund_query(self, request: HttpRequest, account: Document, content: Document) -> Document:
        key = f"{account['merchant_no']}:{content.get('outTradeNo', '')}:{content.get('outRefundNo', '')}"
        refund = await self.store.get("refunds", key)
        if refund is None:
            raise _Refusal("REFUND_NOT_EXIST", "退款单不存在")
        return _refund_view(refund)

    # --- the bill ---

    async def _bill(self, request: HttpRequest, account: Document, content: Document) -> Document:
        try:
            day = date.fromisoformat(str(content.get("billDate", "")))
        except ValueError:
            raise _Refusal("PARAM_ERROR", "billDate 格式为 yyyy-MM-dd") from None
        merchant = account["merchant_no"]
        return {
            "billDate": day.isoformat(),
            "content": protocol.format_bill(merchant, day, await self.bill_lines(merchant, day)),
        }

    async def bill_lines(self, merchant: str, day: date) -> list[protocol.BillLine]:
        """The ledger's payments and refunds of `day` (China time), with the 0.6 % fee on payments."""
        lines = [
            protocol.BillLine(
                kind=protocol.PAY,
                out_trade_no=t["out_trade_no"],
                trade_no=t["trade_no"],
                finished_at=datetime.fromisoformat(t["paid_at"]),
                amount=t["amount"],
                fee=sandbox_fee(t["amount"]),
            )
            for t in await self.store.all("trades")
            if t["merchant_no"] == merchant
            and t["status"] == "SUCCESS"
            and on_china_day(t.get("paid_at"), day)
        ]
        lines += [
            protocol.BillLine(
                kind=protocol.REFUND,
                out_trade_no=r["out_trade_no"],
                trade_no=r["refund_no"],
                finished_at=datetime.fromisoformat(r["refunded_at"]),
                amount=r["amount"],
                fee=0,
                out_refund_no=r["out_refund_no"],
            )
            for r in await self.store.all("refunds")
            if r["merchant_no"] == merchant and on_china_day(r["refunded_at"], day)
        ]
        return lines


def _trade_view(trade: Document) -> Document:
    view = {
        "outTradeNo": trade["out_trade_no"],
        "tradeNo": trade["trade_no"],
        "amount": trade["amount"],
        "currency": "CNY",
        "status": trade["status"],
    }
    if trade.get("paid_at"):
        view["payTime"] = protocol.time_text(datetime.fromisoformat(trade["paid_at"]))
    return view


def _refund_view(refund: Document) -> Document:
    return {
        "outRefundNo": refund["out_refund_no"],
        "outTradeNo": refund["out_trade_no"],
        "refundNo": refund["refund_no"],
        "amount": refund["amount"],
        "status": refund["status"],
        "refundTime": protocol.time_text(datetime.fromisoformat(refund["refunded_at"])),
    }
