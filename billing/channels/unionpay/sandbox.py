"""The UnionPay sandbox: the 全渠道 gateway's paths for token payment (frontTransReq.do, backTransReq.do,
queryTrans.do, fileTransRequest.do), an authentication page, backUrl notifications and the settlement file,
signing and verifying like UnionPay (billing.channels.unionpay.protocol).

The test buyer who authenticated decides the token's debits: buyer_ok succeeds; buyer_poor is answered 51
(余额不足); buyer_frozen 62 (卡状态不正确); buyer_slow 03 (processing), the debit succeeding when it is first
queried. A debit on a deleted token gets 77, on a token past its end 79. Requests that do not verify (unknown merId,
bad signature) are answered 11 (验签失败) and change nothing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from billing.channels.crypto import KeyFormatError
from billing.channels.sandbox_kit import (
    CHINA,
    ChannelSandbox,
    TestBuyer,
    buyer_outcome,
    digits,
    link_lifetime,
    merchant_key_pair,
    message_page,
    on_china_day,
    platform_key,
    record_refund,
    sandbox_fee,
)
from billing.channels.unionpay import protocol
from billing.clock import utc_now
from billing.gateways.asgi import HttpRequest, HttpResponse
from billing.gateways.sandbox_store import Document
from billing.ids import random_token

TOKEN_YEARS = 5
_OUTCOME_CODES = {
    "insufficient_funds": ("51", "余额不足"),
    "account_frozen": ("62", "卡状态不正确，账户已冻结"),
}


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _card_no(buyer: TestBuyer) -> str:
    return "6216" + buyer.account[-12:].rjust(12, "0")


class UnionpaySandbox(ChannelSandbox):
    channel = "UnionPay"
    channel_zh = "银联"

    @staticmethod
    def accepted(status: int, body: bytes) -> bool:
        # UnionPay retries a backUrl notification until it is answered HTTP 200.
        return status == 200

    async def down_answer(self) -> HttpResponse:
        return HttpResponse.text(503, "Service Unavailable")

    async def provision(self, body: Document) -> Document:
        key = await platform_key(self.store)
        try:
            private, public = merchant_key_pair(body.get("merchant_public_key"))
        except KeyFormatError as exc:
            return {"error": str(exc)}
        mer_id = "777290058" + digits(6)
        cert_id = digits(11)
        await self.store.put("accounts", mer_id, {"mer_id": mer_id, "public_key": public, "cert_id": cert_id})
        credentials = {
            "mer_id": mer_id,
            "merchant_cert_id": cert_id,
            "unionpay_public_key": key["public_key"],
        }
        if private is not None:
            credentials["merchant_private_key"] = private
        return credentials

    @staticmethod
    def _answer(key: Document, fields: Document) -> HttpResponse:
        signed = protocol.sign({k: str(v) for k, v in fields.items()}, key["private_key"], _cert_id(key))
        return HttpResponse.text(
            200, protocol.form(signed).decode(), "application/x-www-form-urlencoded; charset=utf-8"
        )

    # --- the gateway ---

    async def api(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        # Read before the handler runs: once it has sent a notification in the background, the answer goes out
        # without waiting on anything (as UnionPay answers before it notifies).
        key = await platform_key(self.store)
        fields = dict(request.query) if request.method == "GET" else request.form()
        echo = {
            name: fields.get(name, "")
            for name in (
                "version",
                "encoding",
                "txnType",
                "txnSubType",
                "bizType",
                "merId",
                "orderId",
                "txnTime",
            )
        }
        try:
            account = await self._verified(fields)
            txn = (fields.get("txnType", ""), fields.get("txnSubType", ""))
            if path == protocol.FRONT_PATH and txn == protocol.OPEN_TOKEN:
                return await self._open_token(request, account, fields)
            if path == protocol.BACK_PATH and txn == protocol.CONSUME:
                answer = await self._consume(account, fields)
            elif path == protocol.BACK_PATH and txn == protocol.REFUND:
                answer = await self._refund(account, fields)
            elif path == protocol.BACK_PATH and txn == protocol.TOKEN_QUERY:
                answer = await self._token_query(account, fields)
            elif path == protocol.BACK_PATH and txn == protocol.DELETE_TOKEN:
                answer = await self._delete_token(account, fields)
            elif path == protocol.QUERY_PATH and txn == protocol.QUERY:
                answer = await self._query(account, fields)
            elif path == protocol.FILE_PATH and txn == protocol.FILE:
                answer = await self._file(account, fields)
            else:
                raise _Refusal("10", f"不支持的交易类型 {txn[0]}/{txn[1]}（{path}）")
        except _Refusal as refusal:
            if path == protocol.FRONT_PATH:
                return message_page(
                    400, f"UnionPay refused the request: {refusal}", f"银联拒绝了请求：{refusal}"
                )
            return self._answer(key, {**echo, "respCode": refusal.code, "respMsg": str(refusal)})
        return self._answer(key, {**echo, "respCode": protocol.SUCCESS, "respMsg": "成功[0000000]", **answer})

    async def _verified(self, fields: dict[str, str]) -> Document:
        account = await self.store.get("accounts", fields.get("merId", ""))
        if account is None:
            raise _Refusal("11", "商户未开通或商户号无效")
        if fields.get("version") != protocol.VERSION or fields.get("signMethod") != "01":
            raise _Refusal("11", f"version 须为 {protocol.VERSION}，signMethod 须为 01")
        if fields.get("certId") != account["cert_id"] or not protocol.verify(fields, account["public_key"]):
            raise _Refusal("11", "验证签名失败")
        if not 8 <= len(fields.get("orderId", "")) <= 40 or not fields["orderId"].isalnum():
            raise _Refusal("10", "orderId 须为 8-40 位字母数字")
        try:
            protocol.parse_txn_time(fields.get("txnTime", ""))
        except ValueError:
            raise _Refusal("10", "txnTime 格式错误") from None
        return account

    # --- tokens ---

    async def _open_token(
        self, request: HttpRequest, account: Document, fields: dict[str, str]
    ) -> HttpResponse:
        sign_id = random_token(24)
        now = utc_now()
        await self.store.put(
            "signs",
            sign_id,
            {
                "id": sign_id,
                "mer_id": account["mer_id"],
                "order_id": fields["orderId"],
                "txn_time": fields["txnTime"],
                "req_reserved": fields.get("reqReserved", ""),
                "tr_id": protocol.token_data(fields).get("trId", ""),
                "notify_url": fields.get("backUrl"),
                "return_url": fields.get("frontUrl"),
                "status": "pending",
                "created_at": now.isoformat(),
                "expires_at": (now + link_lifetime()).isoformat(),
            },
        )
        return HttpResponse.redirect(f"{self.base_url(request)}/authorize/{sign_id}")

    def approval_rows(self, sign: Document) -> list[tuple[str, str, str]]:
        return [
            ("Merchant", "商户号", str(sign["mer_id"])),
            ("Product", "产品", "无感支付 token payment (bizType 000902)"),
            ("Order", "订单号", str(sign["order_id"])),
            ("Token requestor", "Token 申请方", str(sign["tr_id"])),
        ]

    async def approve(self, sign: Document, buyer: TestBuyer) -> bool:
        now = utc_now()
        token = "6" + digits(18)
        agreement = {
            "agreement_no": token,
            "mer_id": sign["mer_id"],
            "order_id": sign["order_id"],
            "txn_time": sign["txn_time"],
            "req_reserved": sign["req_reserved"],
            "tr_id": sign["tr_id"],
            "buyer": buyer.name,
            "acc_no": _masked_card(_card_no(buyer)),
            "status": "ACTIVE",
            "token_begin": protocol.txn_time(now),
            "token_end": protocol.txn_time(now + timedelta(days=365 * TOKEN_YEARS)),
            "query_id": _query_id(now),
            "notify_url": sign.get("notify_url"),
        }
        await self.store.put("agreements", token, agreement)
        await self.store.put(
            "agreement_keys", f"{sign['mer_id']}:{sign['order_id']}", {"agreement_no": token}
        )
        sign["status"] = "approved"
        await self.store.put("signs", sign["id"], sign)
        return await self._notify_token(agreement, protocol.OPEN_TOKEN[0], wait=True)

    async def revoke(self, agreement_no: str) -> Document | None:
        agreement = await self.store.get("agreements", agreement_no)
        if agreement is None:
            return None
        if agreement["status"] == "ACTIVE":
            await self._cancel(agreement, by="customer")
            agreement["notification_accepted"] = await self._notify_token(
                agreement, protocol.TOKEN_CANCELLED, wait=True
            )
        return agreement

    async def _cancel(self, agreement: Document, *, by: str) -> None:
        now = utc_now()
        agreement.update(
            status="DELETED",
            cancelled_at=protocol.txn_time(now),
            cancel_by=by,
            cancel_query_id=_query_id(now),
        )
        await self.store.put("agreements", agreement["agreement_no"], agreement)

    async def _notify_token(self, agreement: Document, txn_type: str, *, wait: bool) -> bool:
        url = agreement.get("notify_url")
        if not url:
            return False
        opened = txn_type == protocol.OPEN_TOKEN[0]
        token = {"token": agreement["agreement_no"], "trId": agreement["tr_id"], "tokenLevel": "40"}
        if opened:
            token.update(tokenBegin=agreement["token_begin"], tokenEnd=agreement["token_end"])
        fields = {
            "txnType": txn_type,
            "txnSubType": "00" if opened else "01",
            "orderId": agreement["order_id"],
            "txnTime": agreement["txn_time"] if opened else agreement["cancelled_at"],
            "queryId": agreement["query_id"] if opened else agreement["cancel_query_id"],
            "reqReserved": agreement["req_reserved"],
            "accNo": agreement["acc_no"],
            "tokenPayData": protocol.write_token_data(token),
        }
        if not opened:
            fields["cancelBy"] = agreement["cancel_by"]
        what = "token_opened" if opened else "token_cancelled"
        return await self._notify(agreement["mer_id"], url, fields, what=what, wait=wait)

    async def _notify(self, mer_id: str, url: str, fields: Document, *, what: str, wait: bool) -> bool:
        key = await platform_key(self.store)
        message = {
            "version": protocol.VERSION,
            "encoding": "UTF-8",
            "bizType": protocol.BIZ_TYPE,
            "accessType": "0",
            "merId": mer_id,
            "respCode": protocol.SUCCESS,
            "respMsg": "成功[0000000]",
            **{k: str(v) for k, v in fields.items()},
        }
        body = protocol.form(protocol.sign(message, key["private_key"], _cert_id(key)))
        return await self.notifier.send(
            notify_id=f"{message['txnType']}:{message['queryId']}",
            url=url,
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
            body=body,
            what=what,
            wait=wait,
        )

    async def _token(self, account: Document, fields: dict[str, str]) -> Document:
        token = protocol.token_data(fields).get("token", "")
        agreement = await self.store.get("agreements", token)
        if agreement is None or agreement["mer_id"] != account["mer_id"] or agreement["status"] != "ACTIVE":
            raise _Refusal("77", "token 无效或已删除")
        return agreement

    async def _token_query(self, account: Document, fields: dict[str, str]) -> Document:
        found = await self.store.get("agreement_keys", f"{account['mer_id']}:{fields['orderId']}")
        agreement = await self.store.get("agreements", found["agreement_no"]) if found else None
        if agreement is None:
            raise _Refusal(protocol.NOT_FOUND, "查无此交易")
        token = {
            "token": agreement["agreement_no"],
            "trId": agreement["tr_id"],
            "tokenBegin": agreement["token_begin"],
            "tokenEnd": agreement["token_end"],
        }
        return {
            "tokenPayData": protocol.write_token_data(token),
            "tokenStatus": "00" if agreement["status"] == "ACTIVE" else "01",
            "accNo": agreement["acc_no"],
        }

    async def _delete_token(self, account: Document, fields: dict[str, str]) -> Document:
        agreement = await self._token(account, fields)
        await self._cancel(agreement, by="merchant")
        if fields.get("backUrl"):
            agreement["notify_url"] = fields["backUrl"]
        await self._notify_token(agreement, protocol.TOKEN_CANCELLED, wait=False)
        return {"queryId": agreement["cancel_query_id"]}

    # --- debits and refunds ---

    async def _consume(self, account: Document, fields: dict[str, str]) -> Document:
        amount = _amount(fields)
        if fields.get("currencyCode", protocol.CURRENCY_CODE) != protocol.CURRENCY_CODE:
            raise _Refusal("10", "无感支付仅支持人民币（156）")
        key = f"{account['mer_id']}:{fields['orderId']}"
        held = await self.store.get("trades", key)
        if held is not None:
            if held["amount"] != amount:
                raise _Refusal(protocol.DUPLICATE, "重复交易，金额不一致")
            if held["status"] == "SUCCESS":
                raise _Refusal(protocol.DUPLICATE, "重复交易")
            return {"queryId": held["query_id"], "respCode": "03", "respMsg": "交易处理中"}
        agreement = await self._token(account, fields)
        if protocol.parse_txn_time(agreement["token_end"]) <= utc_now():
            raise _Refusal("79", "token 已过期")
        outcome = buyer_outcome(agreement)
        if outcome in _OUTCOME_CODES:
            raise _Refusal(*_OUTCOME_CODES[outcome])
        now = utc_now()
        trade = {
            "key": key,
            "mer_id": account["mer_id"],
            "order_id": fields["orderId"],
            "out_trade_no": fields.get("reqReserved", ""),
            "txn_time": fields["txnTime"],
            "query_id": _query_id(now),
            "token": agreement["agreement_no"],
            "amount": amount,
            "status": "PROCESSING" if outcome == "slow" else "SUCCESS",
            "created_at": now.isoformat(),
            "paid_at": None if outcome == "slow" else now.isoformat(),
            "notify_url": fields.get("backUrl"),
        }
        trade = await self.store.add("trades", key, trade)
        if trade["status"] == "SUCCESS":
            await self._notify_trade(trade, protocol.CONSUME[0])
            return {"queryId": trade["query_id"], "txnAmt": str(amount)}
        return {"queryId": trade["query_id"], "respCode": "03", "respMsg": "交易处理中"}

    async def _notify_trade(self, trade: Document, txn_type: str) -> None:
        if not trade.get("notify_url"):
            return
        fields = {
            "txnType": txn_type,
            "txnSubType": "01" if txn_type == protocol.CONSUME[0] else "00",
            "orderId": trade["order_id"],
            "txnTime": trade["txn_time"],
            "queryId": trade["query_id"],
            "txnAmt": str(trade["amount"]),
            "currencyCode": protocol.CURRENCY_CODE,
            "reqReserved": trade["out_request_no"]
            if txn_type == protocol.REFUND[0]
            else trade["out_trade_no"],
            "settleDate": f"{datetime.fromisoformat(trade['paid_at']).astimezone(CHINA):%m%d}",
        }
        if txn_type == protocol.REFUND[0]:
            fields["origQryId"] = trade["orig_query_id"]
        what = "consume" if txn_type == protocol.CONSUME[0] else "refund"
        await self._notify(trade["mer_id"], trade["notify_url"], fields, what=what, wait=False)

    async def _refund(self, account: Document, fields: dict[str, str]) -> Document:
        amount = _amount(fields)
        key = f"{account['mer_id']}:{fields['orderId']}"
        held = await self.store.get("refunds", key)
        if held is None:
            trade = await self.store.get("trades", f"{account['mer_id']}:{fields.get('origOrderId', '')}")
            if trade is None or (fields.get("origQryId") and fields["origQryId"] != trade["query_id"]):
                raise _Refusal(protocol.NOT_FOUND, "原交易不存在")
            if trade["status"] != "SUCCESS":
                raise _Refusal("60", "原交易状态不正确")
            now = utc_now()
            refund = {
                "id": random_token(16),
                "key": key,
                "mer_id": account["mer_id"],
                "trade_key": trade["key"],
                "order_id": fields["orderId"],
                "txn_time": fields["txnTime"],
                "out_trade_no": trade["out_trade_no"],
                "out_request_no": fields.get("reqReserved", ""),
                "orig_query_id": trade["query_id"],
                "query_id": _query_id(now),
                "amount": amount,
                "status": "SUCCESS",
                "paid_at": now.isoformat(),
                "refunded_at": now.isoformat(),
                "notify_url": fields.get("backUrl"),
            }
            over_limit = _Refusal("60", "退货金额超限")
            held, recorded = await record_refund(self.store, trade, key, refund, over_limit=over_limit)
            if recorded:
                await self._notify_trade(held, protocol.REFUND[0])
        elif held["amount"] != amount:
            raise _Refusal(protocol.DUPLICATE, "重复交易，金额不一致")
        return {
            "queryId": held["query_id"],
            "txnAmt": str(held["amount"]),
            "origQryId": held["orig_query_id"],
        }

    async def _query(self, account: Document, fields: dict[str, str]) -> Document:
        key = f"{account['mer_id']}:{fields['orderId']}"
        found = await self.store.get("trades", key) or await self.store.get("refunds", key)
        if found is None:
            raise _Refusal(protocol.NOT_FOUND, "查无此交易")
        if found["status"] == "PROCESSING":
            # buyer_slow: the debit went through in the meantime; its notification follows.
            found.update(status="SUCCESS", paid_at=utc_now().isoformat())
            await self.store.put("trades", key, found)
            await self._notify_trade(found, protocol.CONSUME[0])
        return {
            "queryId": found["query_id"],
            "origRespCode": protocol.SUCCESS if found["status"] == "SUCCESS" else "03",
            "origRespMsg": "成功" if found["status"] == "SUCCESS" else "交易处理中",
            "txnAmt": str(found["amount"]),
            "reqReserved": found.get("out_request_no") or found["out_trade_no"],
        }

    # --- the settlement file ---

    async def _file(self, account: Document, fields: dict[str, str]) -> Document:
        text = fields.get("settleDate", "")
        today = utc_now().astimezone(CHINA).date()
        try:
            day = date(today.year, int(text[:2]), int(text[2:]))
        except ValueError:
            raise _Refusal("10", "settleDate 格式为 MMDD") from None
        if day > today:
            day = day.replace(year=day.year - 1)
        archive = protocol.format_settlement_file(
            account["mer_id"], day, await self.file_lines(account["mer_id"], day)
        )
        return {
            "fileName": f"INN{day:%y%m%d}88ZM_{account['mer_id']}.zip",
            "fileContent": protocol.file_content(archive),
        }

    async def file_lines(self, mer_id: str, day: date) -> list[protocol.FileLine]:
        """The ledger's debits and refunds of `day` (China time), with the 0.6 % fee on debits."""
        lines = [
            protocol.FileLine(
                txn_type=protocol.CONSUME[0],
                order_id=t["order_id"],
                txn_time=datetime.fromisoformat(t["paid_at"]),
                query_id=t["query_id"],
                amount=t["amount"],
                fee=sandbox_fee(t["amount"]),
                req_reserved=t["out_trade_no"],
            )
            for t in await self.store.all("trades")
            if t["mer_id"] == mer_id and t["status"] == "SUCCESS" and on_china_day(t.get("paid_at"), day)
        ]
        lines += [
            protocol.FileLine(
                txn_type=protocol.REFUND[0],
                order_id=r["order_id"],
                txn_time=datetime.fromisoformat(r["refunded_at"]),
                query_id=r["query_id"],
                amount=r["amount"],
                fee=0,
                req_reserved=r["out_request_no"],
            )
            for r in await self.store.all("refunds")
            if r["mer_id"] == mer_id and on_china_day(r["refunded_at"], day)
        ]
        return lines


def _amount(fields: dict[str, str]) -> int:
    text = fields.get("txnAmt", "")
    if not text.isdigit() or int(text) <= 0 or len(text) > 12:
        raise _Refusal("10", "txnAmt 须为正整数（分）")
    return int(text)


def _query_id(moment: datetime) -> str:
    return f"{moment.astimezone(CHINA):%m%d%H%M%S}" + digits(11)


def _masked_card(number: str) -> str:
    return f"{number[:6]}******{number[-4:]}"


def _cert_id(key: Document) -> str:
    """The sandbox's signing certificate id: stable per key pair."""
    return "".join(c for c in str(key["serial"]) if c.isdigit())[:11] or "69042905377"
