"""The WeChat Pay sandbox: the API v3 routes of 委托代扣 the engine uses, an approval page, encrypted signed
notifications and the trade bill, signing and verifying like WeChat Pay (billing.channels.wechat_pay.protocol).

Routes: POST /v3/papay/entrust-sign/contracts/pre-entrust-sign (answers a `redirect_url` to the approval page
`/authorize/{id}`), GET /v3/papay/sign/contracts/plan-id/{plan_id}/out-contract-code/{code},
POST /v3/papay/contracts/{contract_id}/terminate, POST /v3/papay/contracts/{contract_id}/notify (the
pre-notification: a deduction needs one covering its amount within the last three days),
POST /v3/papay/pay/transactions/apply, GET /v3/pay/transactions/out-trade-no/{out_trade_no},
POST /v3/refund/domestic/refunds, GET /v3/refund/domestic/refunds/{out_refund_no},
GET /v3/bill/tradebill (and the file at /v3/billdownload/file).

Every request must carry a valid WECHATPAY2-SHA256-RSA2048 Authorization (401 SIGN_ERROR otherwise); every
answer is signed with the sandbox's platform key (Wechatpay-* headers). The test buyer decides deductions:
buyer_ok succeeds; buyer_poor is refused NOT_ENOUGH; buyer_frozen USER_ACCOUNT_ABNORMAL; buyer_slow is accepted,
reads ACCEPT at the first query and SUCCESS from the second. A terminated contract is refused CONTRACT_TERMINATED.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from billing.channels.crypto import generate_private_key_pem, public_key_pem
from billing.channels.sandbox_kit import (
    TEST_BUYERS,
    ChannelSandbox,
    TestBuyer,
    digits,
    link_lifetime,
    on_china_day,
    period_words,
    platform_key,
    record_refund,
    sandbox_fee,
)
from billing.channels.wechat_pay import protocol
from billing.channels.yuan import mask_account, to_yuan
from billing.clock import utc_now
from billing.gateways.asgi import HttpRequest, HttpResponse
from billing.gateways.sandbox_store import Document
from billing.ids import random_token

PLAN_MAX_AMOUNT = 5_000_000  # fen: the sandbox plan's ceiling per deduction (¥50,000)
PRE_NOTICE_VALIDITY = timedelta(days=3)
_REFUSALS = {
    "insufficient_funds": ("NOT_ENOUGH", "用户账户余额不足"),
    "account_frozen": ("USER_ACCOUNT_ABNORMAL", "用户账户异常（已冻结），无法扣款"),
}


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class WechatPaySandbox(ChannelSandbox):
    channel = "WeChat Pay"
    channel_zh = "微信支付"

    @staticmethod
    def accepted(status: int, body: bytes) -> bool:
        return status in (200, 204)

    async def down_answer(self) -> HttpResponse:
        return HttpResponse.json(503, {"code": "SYSTEM_ERROR", "message": "系统繁忙，请稍后重试"})

    # --- accounts ---

    async def provision(self, body: Document) -> Document:
        """A sandbox merchant: mchid, appid, the merchant's key pair and serial, an APIv3 key, a plan, and the
        platform public key with its id."""
        key = await platform_key(self.store)
        private = generate_private_key_pem()
        account = {
            "mchid": "19" + digits(8),
            "appid": "wx" + random_token(16).lower(),
            "serial": random_token(40).upper(),
            "public_key": public_key_pem(private),
            "apiv3_key": random_token(32),
            "plan_id": str(100000 + int(digits(5))),
        }
        await self.store.put("accounts", account["mchid"], account)
        return {
            "mchid": account["mchid"],
            "appid": account["appid"],
            "merchant_serial_no": account["serial"],
            "merchant_private_key": private,
            "apiv3_key": account["apiv3_key"],
            "plan_id": account["plan_id"],
            "platform_public_key": key["public_key"],
            "platform_public_key_id": key["serial"],
        }

    # --- the API ---

    async def _answer(self, status: int, payload: Document | None) -> HttpResponse:
        key = await platform_key(self.store)
        text = "" if payload is None else protocol.body_text(payload)
        headers = protocol.signed_headers(
            private_key=key["private_key"],
            serial=key["serial"],
            body=text,
            timestamp=int(utc_now().timestamp()),
            nonce=random_token(32),
        )
        pairs = [(k, v) for k, v in headers.items()] + [("Request-ID", random_token(24))]
        if payload is None:
            return HttpResponse(status, b"", pairs)
        return HttpResponse(
            status, text.encode(), [("content-type", "application/json; charset=utf-8"), *pairs]
        )

    async def api(self, request: HttpRequest) -> HttpResponse:
        parts = request.parts()
        try:
            account = await self._verified(request)
            body: Document = json.loads(request.body) if request.body else {}
            if not isinstance(body, dict):
                raise _Refusal(400, "PARAM_ERROR", "请求体必须是 JSON 对象")
            status, payload = await self._route(request, parts, account, body)
        except _Refusal as refusal:
            return await self._answer(refusal.status, {"code": refusal.code, "message": refusal.message})
        except ValueError:
            return await self._answer(400, {"code": "PARAM_ERROR", "message": "请求体不是合法的 JSON"})
        if status == 200 and isinstance(payload, str):
            # The bill file: not signed, as WeChat Pay serves it.
            return HttpResponse.text(200, payload, "text/csv; charset=utf-8")
        return await self._answer(status, payload if isinstance(payload, dict) else None)

    async def _verified(self, request: HttpRequest) -> Document:
        header = request.header("authorization")
        try:
            fields = protocol.parse_authorization(header)
        except protocol.SignatureError as exc:
            raise _Refusal(401, "SIGN_ERROR", str(exc)) from None
        account = await self.store.get("accounts", fields.get("mchid", ""))
        if account is None:
            raise _Refusal(401, "MCH_NOT_EXISTS", "商户号不存在")
        if fields.get("serial_no") != account["serial"]:
            raise _Refusal(401, "SIGN_ERROR", "商户证书序列号有误")
        try:
            protocol.verify_request(
                header,
                public_key=account["public_key"],
                method=request.method,
                url=request.target,
                body=request.body.decode(),
                now=int(utc_now().timestamp()),
            )
        except protocol.SignatureError as exc:
            raise _Refusal(401, "SIGN_ERROR", f"签名错误：{exc}") from None
        return account

    async def _route(
        self, request: HttpRequest, parts: list[str], account: Document, body: Document
    ) -> tuple[int, Document | str | None]:
        method = request.method
        if method == "POST" and parts == ["v3", "papay", "entrust-sign", "contracts", "pre-entrust-sign"]:
            return 200, await self._pre_sign(request, account, body)
        if method == "GET" and parts[:4] == ["v3", "papay", "sign", "contracts"] and len(parts) == 8:
            return 200, self._contract_view(await self._contract_by_code(account, parts[5], parts[7]))
        if method == "POST" and parts[:3] == ["v3", "papay", "contracts"] and len(parts) == 5:
            contract = await self._contract(account, parts[3])
            if parts[4] == "terminate":
                await self._terminate(contract, mode="MCH_API", wait=False)
                return 204, None
            if parts[4] == "notify":
                await self._pre_notice(account, contract, body)
                return 204, None
        if method == "POST" and parts == ["v3", "papay", "pay", "transactions", "apply"]:
            return 200, await self._apply(account, body)
        if method == "GET" and parts[:4] == ["v3", "pay", "transactions", "out-trade-no"] and len(parts) == 5:
            return 200, await self._query(account, parts[4])
        if method == "POST" and parts == ["v3", "refund", "domestic", "refunds"]:
            return 200, await self._refund(account, body)
        if method == "GET" and parts[:4] == ["v3", "refund", "domestic", "refunds"] and len(parts) == 5:
            refund = await self.store.get("refunds", f"{account['mchid']}:{parts[4]}")
            if refund is None:
                raise _Refusal(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return 200, self._refund_view(refund)
        if method == "GET" and parts == ["v3", "bill", "tradebill"]:
            return 200, await self._bill_ticket(request, account)
        if method == "GET" and parts == ["v3", "billdownload", "file"]:
            return 200, await self._bill_file(account, request.query.get("token", ""))
        raise _Refusal(404, "NOT_FOUND", f"没有这个接口：{method} {request.path}")

    # --- contracts ---

    async def _pre_sign(self, request: HttpRequest, account: Document, body: Document) -> Document:
        if body.get("appid") != account["appid"]:
            raise _Refusal(400, "APPID_MCHID_NOT_MATCH", "appid 与 mchid 不匹配")
        if str(body.get("plan_id")) != account["plan_id"]:
            raise _Refusal(400, "PARAM_ERROR", "模板（plan_id）不存在")
        code = str(body.get("out_contract_code") or "")
        if not code or len(code) > 32:
            raise _Refusal(400, "PARAM_ERROR", "out_contract_code 必填，最长32位")
        existing = await self.store.get("contract_keys", f"{account['mchid']}:{code}")
        if existing is not None:
            raise _Refusal(400, "INVALID_REQUEST", "该签约协议号已签约")
        sign_id = random_token(24)
        now = utc_now()
        await self.store.put(
            "signs",
            sign_id,
            {
                "id": sign_id,
                "mchid": account["mchid"],
                "appid": account["appid"],
                "plan_id": account["plan_id"],
                "out_contract_code": code,
                "contract_display_account": str(body.get("contract_display_account") or ""),
                "notify_url": body.get("contract_notify_url"),
                "return_url": body.get("return_url"),
                "status": "pending",
                "created_at": now.isoformat(),
                "expires_at": (now + link_lifetime()).isoformat(),
            },
        )
        return {
            "redirect_url": f"{self.base_url(request)}/authorize/{sign_id}",
            "expire_time": protocol.rfc3339(now + link_lifetime()),
        }

    def approval_rows(self, sign: Document) -> list[tuple[str, str, str]]:
        return [
            ("Merchant", "商户号", str(sign["mchid"])),
            ("Product", "产品", "委托代扣 (papay)"),
            ("Plan", "模板", str(sign["plan_id"])),
            ("Contract code", "签约协议号", str(sign["out_contract_code"])),
            ("Account shown", "签约用户", str(sign["contract_display_account"])),
            ("Max per deduction", "单次扣费上限", f"¥{to_yuan(PLAN_MAX_AMOUNT)}"),
            ("Period", "扣费周期", period_words("month", 1)),
        ]

    async def approve(self, sign: Document, buyer: TestBuyer) -> bool:
        now = utc_now()
        contract_id = now.astimezone(protocol.CHINA).strftime("%Y%m%d") + digits(16)
        contract = {
            "contract_id": contract_id,
            "mchid": sign["mchid"],
            "appid": sign["appid"],
            "plan_id": sign["plan_id"],
            "out_contract_code": sign["out_contract_code"],
            "contract_display_account": sign["contract_display_account"],
            "openid": "o" + hashlib.sha256(f"{sign['appid']}:{buyer.name}".encode()).hexdigest()[:27],
            "buyer": buyer.name,
            "buyer_account": mask_account(buyer.account),
            "contract_state": "SIGNED",
            "contract_signed_time": protocol.rfc3339(now),
            "notify_url": sign.get("notify_url"),
        }
        await self.store.put("agreements", contract_id, contract)
        await self.store.put(
            "contract_keys", f"{sign['mchid']}:{sign['out_contract_code']}", {"contract_id": contract_id}
        )
        sign["status"] = "approved"
        sign["contract_id"] = contract_id
        await self.store.put("signs", sign["id"], sign)
        return await self._notify(
            contract["mchid"],
            contract.get("notify_url"),
            "PAPAY.SIGN",
            "签约成功",
            "papay",
            self._contract_view(contract),
            wait=True,
        )

    async def revoke(self, agreement_no: str) -> Document | None:
        contract = await self.store.get("agreements", agreement_no)
        if contract is None:
            return None
        if contract["contract_state"] == "SIGNED":
            contract = await self._terminate(contract, mode="USER", wait=True)
        return contract

    async def _terminate(self, contract: Document, *, mode: str, wait: bool) -> Document:
        if contract["contract_state"] != "SIGNED":
            return contract
        contract["contract_state"] = "TERMINATED"
        contract["contract_terminated_time"] = protocol.rfc3339(utc_now())
        contract["contract_termination_mode"] = mode
        await self.store.put("agreements", contract["contract_id"], contract)
        contract["notification_accepted"] = await self._notify(
            contract["mchid"],
            contract.get("notify_url"),
            "PAPAY.TERMINATE",
            "解约成功",
            "papay",
            self._contract_view(contract),
            wait=wait,
        )
        return contract

    @staticmethod
    def _contract_view(contract: Document) -> Document:
        view = {
            name: contract[name]
            for name in (
                "mchid",
                "appid",
                "contract_id",
                "plan_id",
                "out_contract_code",
                "openid",
                "contract_state",
                "contract_signed_time",
                "contract_display_account",
            )
        }
        for name in ("contract_terminated_time", "contract_termination_mode"):
            if contract.get(name):
                view[name] = contract[name]
        return view

    async def _contract(self, account: Document, contract_id: str) -> Document:
        contract = await self.store.get("agreements", contract_id)
        if contract is None or contract["mchid"] != account["mchid"]:
            raise _Refusal(404, "CONTRACT_NOT_EXIST", "签约协议不存在")
        return contract

    async def _contract_by_code(self, account: Document, plan_id: str, code: str) -> Document:
        found = await self.store.get("contract_keys", f"{account['mchid']}:{code}")
        if found is None or plan_id != account["plan_id"]:
            raise _Refusal(404, "RESOURCE_NOT_EXISTS", "签约协议不存在")
        return await self._contract(account, found["contract_id"])

    async def _pre_notice(self, account: Document, contract: Document, body: Document) -> None:
        if contract["contract_state"] != "SIGNED":
            raise _Refusal(403, "CONTRACT_TERMINATED", "签约协议已解约")
        estimated = body.get("estimated_amount") or {}
        duration = body.get("deduct_duration") or {}
        if not isinstance(estimated.get("amount"), int) or estimated.get("currency", "CNY") != "CNY":
            raise _Refusal(400, "PARAM_ERROR", "estimated_amount.amount 为整数（分），币种仅支持 CNY")
        if duration.get("unit") != "DAY" or duration.get("count") not in (1, 2, 3):
            raise _Refusal(400, "PARAM_ERROR", "deduct_duration 为 1 至 3 天")
        await self.store.put(
            "prenotices",
            contract["contract_id"],
            {"amount": estimated["amount"], "at": utc_now().isoformat()},
        )

    # --- deductions ---

    async def _apply(self, account: Document, body: Document) -> Document:
        out_trade_no = str(body.get("out_trade_no") or "")
        amount_info = body.get("amount") or {}
        amount = amount_info.get("total")
        if not out_trade_no or len(out_trade_no) > 32 or not isinstance(amount, int) or amount <= 0:
            raise _Refusal(400, "PARAM_ERROR", "out_trade_no（最长32位）与 amount.total（正整数，分）必填")
        if amount_info.get("currency", "CNY") != "CNY":
            raise _Refusal(400, "PARAM_ERROR", "委托代扣仅支持人民币（CNY）")
        key = f"{account['mchid']}:{out_trade_no}"
        held = await self.store.get("trades", key)
        if held is not None:
            if held["amount"] != amount:
                raise _Refusal(400, "INVALID_REQUEST", "商户订单号重复且金额不一致")
            return {"out_trade_no": out_trade_no, "amount": {"total": amount, "currency": "CNY"}}
        contract = await self._contract(account, str(body.get("contract_id") or ""))
        if contract["contract_state"] != "SIGNED":
            raise _Refusal(403, "CONTRACT_TERMINATED", "签约协议已解约")
        if amount > PLAN_MAX_AMOUNT:
            raise _Refusal(403, "RULE_LIMIT", "扣款金额超过模板上限")
        notice = await self.store.get("prenotices", contract["contract_id"])
        if (
            notice is None
            or notice["amount"] < amount
            or datetime.fromisoformat(notice["at"]) < utc_now() - PRE_NOTICE_VALIDITY
        ):
            raise _Refusal(
                403, "NO_PRE_NOTIFICATION", "扣款前须发送预扣费通知，且扣款金额不得高于预计扣费金额"
            )
        buyer = TEST_BUYERS.get(contract["buyer"])
        outcome = buyer.outcome if buyer else None
        if outcome in _REFUSALS:
            raise _Refusal(403, *_REFUSALS[outcome])
        now = utc_now()
        trade = {
            "key": key,
            "mchid": account["mchid"],
            "appid": account["appid"],
            "out_trade_no": out_trade_no,
            "transaction_id": "4200" + digits(24),
            "contract_id": contract["contract_id"],
            "openid": contract["openid"],
            "description": str(body.get("description") or ""),
            "amount": amount,
            "state": "ACCEPT" if outcome == "slow" else "SUCCESS",
            "queries": 0,
            "created_at": now.isoformat(),
            "success_time": None if outcome == "slow" else now.isoformat(),
            "notify_url": body.get("transaction_notify_url"),
        }
        trade = await self.store.add("trades", key, trade)
        if trade["state"] == "SUCCESS":
            await self._notify_trade(trade)
        return {"out_trade_no": out_trade_no, "amount": {"total": amount, "currency": "CNY"}}

    @staticmethod
    def _transaction(trade: Document) -> Document:
        view: Document = {
            "appid": trade["appid"],
            "mchid": trade["mchid"],
            "out_trade_no": trade["out_trade_no"],
            "transaction_id": trade["transaction_id"],
            "trade_type": "PAP",
            "trade_state": trade["state"],
            "trade_state_desc": "支付成功" if trade["state"] == "SUCCESS" else "已接收，等待扣款",
            "contract_id": trade["contract_id"],
            "payer": {"openid": trade["openid"]},
            "amount": {
                "total": trade["amount"],
                "payer_total": trade["amount"],
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
        if trade.get("success_time"):
            view["success_time"] = protocol.rfc3339(datetime.fromisoformat(trade["success_time"]))
        return view

    async def _notify_trade(self, trade: Document) -> None:
        await self._notify(
            trade["mchid"],
            trade.get("notify_url"),
            "TRANSACTION.SUCCESS",
            "支付成功",
            "transaction",
            self._transaction(trade),
            wait=False,
        )

    async def _query(self, account: Document, out_trade_no: str) -> Document:
        trade = await self.store.get("trades", f"{account['mchid']}:{out_trade_no}")
        if trade is None:
            raise _Refusal(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade["state"] == "ACCEPT":
            # buyer_slow: still processing at the first query; done from the second on.
            trade["queries"] += 1
            if trade["queries"] >= 2:
                trade["state"] = "SUCCESS"
                trade["success_time"] = utc_now().isoformat()
                await self._notify_trade(trade)
            await self.store.put("trades", trade["key"], trade)
        return self._transaction(trade)

    # --- refunds ---

    async def _refund(self, account: Document, body: Document) -> Document:
        out_refund_no = str(body.get("out_refund_no") or "")
        if not out_refund_no or len(out_refund_no) > 64:
            raise _Refusal(400, "PARAM_ERROR", "out_refund_no 必填，最长64位")
        key = f"{account['mchid']}:{out_refund_no}"
        held = await self.store.get("refunds", key)
        if held is not None:
            return self._refund_view(held)
        trade = await self.store.get("trades", f"{account['mchid']}:{body.get('out_trade_no', '')}")
        if trade is None:
            raise _Refusal(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if trade["state"] != "SUCCESS":
            raise _Refusal(400, "INVALID_REQUEST", "订单未支付成功，不能退款")
        amount_info = body.get("amount") or {}
        amount, total = amount_info.get("refund"), amount_info.get("total")
        if not isinstance(amount, int) or amount <= 0 or total != trade["amount"]:
            raise _Refusal(400, "PARAM_ERROR", "amount.refund 为正整数，amount.total 须等于原订单金额")
        now = utc_now()
        refund = {
            "key": key,
            "id": random_token(16),
            "mchid": account["mchid"],
            "refund_id": "50" + digits(28),
            "out_refund_no": out_refund_no,
            "transaction_id": trade["transaction_id"],
            "out_trade_no": trade["out_trade_no"],
            "trade_key": trade["key"],
            "amount": amount,
            "total": trade["amount"],
            "status": "SUCCESS",
            "created_at": now.isoformat(),
            "success_time": now.isoformat(),
            "notify_url": body.get("notify_url"),
        }
        over_limit = _Refusal(403, "NOT_ENOUGH", "申请退款金额超过订单可退金额")
        held, recorded = await record_refund(self.store, trade, key, refund, over_limit=over_limit)
        if recorded:
            await self._notify(
                account["mchid"],
                held.get("notify_url"),
                "REFUND.SUCCESS",
                "退款成功",
                "refund",
                self._refund_notice(held),
                wait=False,
            )
        return self._refund_view(held)

    @staticmethod
    def _refund_view(refund: Document) -> Document:
        return {
            "refund_id": refund["refund_id"],
            "out_refund_no": refund["out_refund_no"],
            "transaction_id": refund["transaction_id"],
            "out_trade_no": refund["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "success_time": protocol.rfc3339(datetime.fromisoformat(refund["success_time"])),
            "create_time": protocol.rfc3339(datetime.fromisoformat(refund["created_at"])),
            "status": refund["status"],
            "amount": {
                "total": refund["total"],
                "refund": refund["amount"],
                "payer_total": refund["total"],
                "payer_refund": refund["amount"],
                "currency": "CNY",
            },
        }

    @staticmethod
    def _refund_notice(refund: Document) -> Document:
        return {
            "mchid": refund["mchid"],
            "out_trade_no": refund["out_trade_no"],
            "transaction_id": refund["transaction_id"],
            "out_refund_no": refund["out_refund_no"],
            "refund_id": refund["refund_id"],
            "refund_status": refund["status"],
            "success_time": protocol.rfc3339(datetime.fromisoformat(refund["success_time"])),
            "amount": {
                "total": refund["total"],
                "refund": refund["amount"],
                "payer_total": refund["total"],
                "payer_refund": refund["amount"],
            },
        }

    # --- notifications ---

    async def _notify(
        self,
        mchid: str,
        url: Any,
        event_type: str,
        summary: str,
        original_type: str,
        plaintext: Document,
        *,
        wait: bool,
    ) -> bool:
        if not url:
            return False
        account = await self.store.get("accounts", mchid)
        key = await platform_key(self.store)
        if account is None:
            return False
        nonce, now = random_token(12), utc_now()
        notify_id = "EV-" + now.strftime("%Y%m%d%H%M%S") + digits(12)
        payload = {
            "id": notify_id,
            "create_time": protocol.rfc3339(now),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": protocol.ALGORITHM,
                "ciphertext": protocol.encrypt_resource(
                    account["apiv3_key"], nonce, original_type, plaintext
                ),
                "associated_data": original_type,
                "nonce": nonce,
            },
        }
        text = protocol.body_text(payload)
        headers = {
            "content-type": "application/json",
            **protocol.signed_headers(
                private_key=key["private_key"],
                serial=key["serial"],
                body=text,
                timestamp=int(now.timestamp()),
                nonce=random_token(32),
            ),
        }
        return await self.notifier.send(
            notify_id=notify_id, url=str(url), headers=headers, body=text.encode(), what=event_type, wait=wait
        )

    # --- the bill ---

    async def _bill_ticket(self, request: HttpRequest, account: Document) -> Document:
        try:
            day = date.fromisoformat(request.query.get("bill_date", ""))
        except ValueError:
            raise _Refusal(400, "PARAM_ERROR", "bill_date 格式为 YYYY-MM-DD") from None
        if request.query.get("bill_type", "ALL") != "ALL":
            raise _Refusal(400, "PARAM_ERROR", "沙箱仅支持 bill_type=ALL")
        text = protocol.format_trade_bill(await self.bill_lines(account["mchid"], day), rate="0.60%")
        token = random_token(32)
        await self.store.put(
            "bills",
            token,
            {
                "mchid": account["mchid"],
                "text": text,
                "expires_at": (utc_now() + timedelta(seconds=30)).isoformat(),
            },
        )
        return {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(text.encode()).hexdigest(),  # noqa: S324 - WeChat Pay's own choice of digest
            "download_url": f"{self.base_url(request)}/v3/billdownload/file?token={quote(token)}",
        }

    async def _bill_file(self, account: Document, token: str) -> str:
        ticket = await self.store.get("bills", token)
        if (
            ticket is None
            or ticket["mchid"] != account["mchid"]
            or datetime.fromisoformat(ticket["expires_at"]) <= utc_now()
        ):
            raise _Refusal(404, "RESOURCE_NOT_EXISTS", "账单下载链接已过期或不存在")
        return str(ticket["text"])

    async def bill_lines(self, mchid: str, day: date) -> list[protocol.BillLine]:
        """The ledger's deductions and refunds completed on `day` (China time), with the 0.6 % fee."""

        trades = {t["key"]: t for t in await self.store.all("trades") if t["mchid"] == mchid}
        lines = [
            protocol.BillLine(
                at=datetime.fromisoformat(t["success_time"]),
                appid=t["appid"],
                mchid=mchid,
                transaction_id=t["transaction_id"],
                out_trade_no=t["out_trade_no"],
                openid=t["openid"],
                amount=t["amount"],
                fee=sandbox_fee(t["amount"]),
                subject=t["description"],
            )
            for t in trades.values()
            if t["state"] == "SUCCESS" and on_china_day(t.get("success_time"), day)
        ]
        for refund in await self.store.all("refunds"):
            trade = trades.get(refund["trade_key"])
            if trade is None or not on_china_day(refund["success_time"], day):
                continue
            lines.append(
                protocol.BillLine(
                    at=datetime.fromisoformat(refund["success_time"]),
                    appid=trade["appid"],
                    mchid=mchid,
                    transaction_id=trade["transaction_id"],
                    out_trade_no=trade["out_trade_no"],
                    openid=trade["openid"],
                    amount=trade["amount"],
                    fee=0,
                    subject=trade["description"],
                    refund_id=refund["refund_id"],
                    out_refund_no=refund["out_refund_no"],
                    refund_amount=refund["amount"],
                )
            )
        return lines
