"""The Alipay sandbox: the open platform's gateway (`/gateway.do`) for the methods the engine uses, an approval
page, notifications and the trade bill, signing and verifying like Alipay (billing.channels.alipay.protocol).

Gateway methods: alipay.user.agreement.page.sign (a browser GET: verified, then redirected to the approval page
`/authorize/{id}`), alipay.user.agreement.query, alipay.user.agreement.unsign, alipay.trade.pay (a debit by
`agreement_params.agreement_no`), alipay.trade.query, alipay.trade.refund, alipay.trade.fastpay.refund.query,
alipay.data.dataservice.bill.downloadurl.query (the bill itself at `/bills/{token}`).

The test buyer who approved an agreement decides its debits: buyer_ok succeeds; buyer_poor gets
ACQ.BUYER_BALANCE_NOT_ENOUGH; buyer_frozen ACQ.BUYER_ENABLE_STATUS_FORBID; buyer_slow is answered 10003 (in
process) and the trade succeeds when it is first queried. A debit above the agreement's single amount gets
ACQ.CYCLE_PAY_SINGLE_FEE_EXCEED, a debit on an unsigned agreement ACQ.AGREEMENT_INVALID. Request-level errors
(unknown app, bad signature, stale timestamp) are answered unsigned with code 40002, as Alipay does.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from billing.channels.alipay import protocol
from billing.channels.crypto import KeyFormatError
from billing.channels.sandbox_kit import (
    ChannelSandbox,
    TestBuyer,
    buyer_outcome,
    digits,
    link_lifetime,
    merchant_key_pair,
    message_page,
    on_china_day,
    period_words,
    platform_key,
    record_refund,
    sandbox_fee,
)
from billing.channels.yuan import from_yuan, mask_account, to_yuan
from billing.clock import utc_now
from billing.gateways.asgi import HttpRequest, HttpResponse
from billing.gateways.sandbox_store import Document
from billing.ids import random_token

MAX_SKEW = timedelta(minutes=30)
_OUTCOME_SUB_CODES = {
    "insufficient_funds": ("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足"),
    "account_frozen": ("ACQ.BUYER_ENABLE_STATUS_FORBID", "买家状态非法，账户已冻结"),
}


class _Refusal(Exception):
    def __init__(self, node: Document, *, signed: bool = True) -> None:
        super().__init__(node.get("sub_msg") or node.get("msg"))
        self.node = node
        self.signed = signed


def _business(sub_code: str, sub_msg: str) -> _Refusal:
    return _Refusal(
        {"code": protocol.BUSINESS_FAILED, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}
    )


def _invalid(sub_code: str, sub_msg: str) -> _Refusal:
    return _Refusal(
        {"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg}, signed=False
    )


class AlipaySandbox(ChannelSandbox):
    channel = "Alipay"
    channel_zh = "支付宝"

    @staticmethod
    def accepted(status: int, body: bytes) -> bool:
        return status == 200 and body.strip() == b"success"

    async def down_answer(self) -> HttpResponse:
        return HttpResponse.text(503, "Service Unavailable")

    # --- accounts ---

    async def provision(self, body: Document) -> Document:
        """A sandbox app: its app_id, its key pair (unless the caller brings its public key), Alipay's key."""
        key = await platform_key(self.store)
        try:
            private, public = merchant_key_pair(body.get("app_public_key"))
        except KeyFormatError as exc:
            return {"error": str(exc)}
        app_id = "2021" + digits(12)
        await self.store.put("accounts", app_id, {"app_id": app_id, "public_key": public})
        credentials = {"app_id": app_id, "alipay_public_key": key["public_key"]}
        if private is not None:
            credentials["app_private_key"] = private
        return credentials

    # --- the gateway ---

    async def api(self, request: HttpRequest) -> HttpResponse:
        parts = request.parts()
        if request.method == "GET" and len(parts) == 2 and parts[0] == "bills":
            return await self._bill(parts[1])
        if parts != ["gateway.do"]:
            return HttpResponse.text(404, "no such route")
        params = dict(request.query)
        if request.method == "POST":
            params.update(request.form())
        method = params.get("method", "")
        key = await platform_key(self.store)
        try:
            app = await self._verified(params)
            biz = json.loads(params.get("biz_content") or "{}")
            if not isinstance(biz, dict):
                raise _invalid("isv.invalid-biz-content", "biz_content 必须是 JSON 对象")
            if method == "alipay.user.agreement.page.sign":
                return await self._page_sign(request, app, params, biz)
            handler = {
                "alipay.trade.pay": self._pay,
                "alipay.trade.query": self._query,
                "alipay.trade.refund": self._refund,
                "alipay.trade.fastpay.refund.query": self._refund_query,
                "alipay.user.agreement.query": self._agreement_query,
                "alipay.user.agreement.unsign": self._unsign,
                "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
            }.get(method)
            if handler is None:
                raise _invalid("isv.invalid-method", f"不存在的方法名 {method}")
            node = await handler(request, app, params, biz)
        except _Refusal as refusal:
            if method == "alipay.user.agreement.page.sign":
                return message_page(400, str(refusal), f"签约请求无效：{refusal}")
            body = protocol.response_text(
                method or "error", refusal.node, key["private_key"] if refusal.signed else None
            )
            return HttpResponse.text(200, body, "application/json; charset=utf-8")
        return HttpResponse.text(
            200, protocol.response_text(method, node, key["private_key"]), "application/json; charset=utf-8"
        )

    async def _verified(self, params: dict[str, str]) -> Document:
        app = await self.store.get("accounts", params.get("app_id", ""))
        if app is None:
            raise _invalid("isv.invalid-app-id", "无效的AppID参数")
        if params.get("sign_type") != "RSA2":
            raise _invalid("isv.invalid-signature-type", "sign_type 必须为 RSA2")
        if not protocol.verify_request(params, app["public_key"]):
            raise _invalid(
                "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"
            )
        try:
            sent = protocol.parse_timestamp(params.get("timestamp", ""))
        except ValueError:
            raise _invalid("isv.invalid-timestamp", "非法的时间戳参数") from None
        if abs(utc_now() - sent) > MAX_SKEW:
            raise _invalid("isv.invalid-timestamp", "时间戳与支付宝服务器时间相差过大")
        if params.get("charset", "utf-8").lower() != "utf-8":
            raise _invalid("isv.invalid-charset", "charset 仅支持 utf-8")
        return app

    async def _page_sign(
        self, request: HttpRequest, app: Document, params: dict[str, str], biz: Document
    ) -> HttpResponse:
        if biz.get("personal_product_code") != protocol.PERSONAL_PRODUCT_CODE:
            raise _invalid(
                "isv.invalid-personal-product-code",
                f"personal_product_code 须为 {protocol.PERSONAL_PRODUCT_CODE}",
            )
        external = str(biz.get("external_agreement_no") or "")
        if not external.isalnum() or len(external) > 32:
            raise _invalid(
                "isv.invalid-external-agreement-no", "external_agreement_no 仅支持字母数字，最长32位"
            )
        rule = biz.get("period_rule_params") or {}
        try:
            period_type = str(rule["period_type"]).upper()
            period = int(rule["period"])
            single = from_yuan(str(rule["single_amount"]))
        except (KeyError, ValueError, TypeError):
            raise _invalid(
                "isv.invalid-period-rule", "period_rule_params 需要 period_type、period、single_amount"
            ) from None
        if period_type not in ("DAY", "MONTH") or period < 1 or (period_type == "DAY" and period < 7):
            raise _invalid("isv.invalid-period-rule", "period_type 为 DAY 时 period 不小于 7")
        sign_id = random_token(24)
        now = utc_now()
        await self.store.put(
            "signs",
            sign_id,
            {
                "id": sign_id,
                "app_id": app["app_id"],
                "external_agreement_no": external,
                "period_type": period_type,
                "period": period,
                "single_amount": single,
                "sign_scene": biz.get("sign_scene") or protocol.SIGN_SCENE,
                "notify_url": params.get("notify_url"),
                "return_url": params.get("return_url"),
                "status": "pending",
                "created_at": now.isoformat(),
                "expires_at": (now + link_lifetime()).isoformat(),
            },
        )
        return HttpResponse.redirect(f"{self.base_url(request)}/authorize/{sign_id}")

    def approval_rows(self, sign: Document) -> list[tuple[str, str, str]]:
        period = period_words("month" if sign["period_type"] == "MONTH" else "day", int(sign["period"]))
        return [
            ("App", "应用", str(sign["app_id"])),
            ("Product", "产品", "周期扣款 CYCLE_PAY_AUTH_P"),
            ("Agreement", "商户签约号", str(sign["external_agreement_no"])),
            ("Max per debit", "单笔扣款上限", f"¥{to_yuan(int(sign['single_amount']))}"),
            ("Period", "扣款周期", period),
        ]

    async def approve(self, sign: Document, buyer: TestBuyer) -> bool:
        now = utc_now()
        agreement_no = f"{now.astimezone(protocol.CHINA):%Y}" + digits(16)
        agreement = {
            "agreement_no": agreement_no,
            "app_id": sign["app_id"],
            "external_agreement_no": sign["external_agreement_no"],
            "buyer": buyer.name,
            "alipay_user_id": "2088" + digits(12),
            "alipay_logon_id": mask_account(buyer.account),
            "status": "NORMAL",
            "single_amount": sign["single_amount"],
            "period_type": sign["period_type"],
            "period": sign["period"],
            "sign_scene": sign["sign_scene"],
            "sign_time": protocol.timestamp(now),
            "valid_time": protocol.timestamp(now),
            "invalid_time": "2115-02-01 00:00:00",
            "notify_url": sign.get("notify_url"),
        }
        await self.store.put("agreements", agreement_no, agreement)
        await self.store.put(
            "agreement_keys",
            f"{sign['app_id']}:{sign['external_agreement_no']}",
            {"agreement_no": agreement_no},
        )
        sign["status"] = "approved"
        sign["agreement_no"] = agreement_no
        await self.store.put("signs", sign["id"], sign)
        return await self._notify_agreement(agreement, "dut_user_sign", wait=True)

    async def revoke(self, agreement_no: str) -> Document | None:
        agreement = await self.store.get("agreements", agreement_no)
        if agreement is None:
            return None
        if agreement["status"] != "UNSIGN":
            agreement["status"] = "UNSIGN"
            agreement["unsign_time"] = protocol.timestamp(utc_now())
            await self.store.put("agreements", agreement_no, agreement)
            agreement["notification_accepted"] = await self._notify_agreement(
                agreement, "dut_user_unsign", wait=True
            )
        return agreement

    async def _notify_agreement(self, agreement: Document, notify_type: str, *, wait: bool) -> bool:
        url = agreement.get("notify_url")
        if not url:
            return False
        params = {
            "notify_type": notify_type,
            "agreement_no": agreement["agreement_no"],
            "external_agreement_no": agreement["external_agreement_no"],
            "status": agreement["status"],
            "alipay_user_id": agreement["alipay_user_id"],
            "alipay_logon_id": agreement["alipay_logon_id"],
            "personal_product_code": protocol.PERSONAL_PRODUCT_CODE,
            "sign_scene": agreement["sign_scene"],
            "sign_time": agreement["sign_time"],
            "valid_time": agreement["valid_time"],
            "invalid_time": agreement["invalid_time"],
        }
        if agreement.get("unsign_time"):
            params["unsign_time"] = agreement["unsign_time"]
        return await self._notify(agreement["app_id"], url, params, what=notify_type, wait=wait)

    async def _notify(self, app_id: str, url: str, fields: Document, *, what: str, wait: bool) -> bool:
        key = await platform_key(self.store)
        now = utc_now()
        notify_id = now.astimezone(protocol.CHINA).strftime("%Y%m%d") + digits(26)
        params = {
            **{k: str(v) for k, v in fields.items()},
            "notify_id": notify_id,
            "notify_time": protocol.timestamp(now),
            "app_id": app_id,
            "auth_app_id": app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
        }
        body = urlencode(protocol.sign_notification(params, key["private_key"])).encode()
        headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
        return await self.notifier.send(
            notify_id=notify_id, url=url, headers=headers, body=body, what=what, wait=wait
        )

    # --- agreements ---

    async def _agreement(self, app: Document, biz: Document) -> Document:
        agreement_no = biz.get("agreement_no")
        if not agreement_no and biz.get("external_agreement_no"):
            found = await self.store.get("agreement_keys", f"{app['app_id']}:{biz['external_agreement_no']}")
            agreement_no = found["agreement_no"] if found else None
        agreement = await self.store.get("agreements", str(agreement_no or ""))
        if agreement is None or agreement["app_id"] != app["app_id"]:
            raise _business("USER_AGREEMENT_NOT_EXIST", "用户协议不存在")
        return agreement

    async def _agreement_query(
        self, request: HttpRequest, app: Document, params: Document, biz: Document
    ) -> Document:
        agreement = await self._agreement(app, biz)
        node = {"code": protocol.SUCCESS, "msg": "Success"}
        for name in (
            "agreement_no",
            "external_agreement_no",
            "status",
            "sign_time",
            "valid_time",
            "invalid_time",
            "alipay_logon_id",
            "sign_scene",
        ):
            node[name] = agreement[name]
        node["personal_product_code"] = protocol.PERSONAL_PRODUCT_CODE
        return node

    async def _unsign(self, request: HttpRequest, app: Document, params: Document, biz: Document) -> Document:
        agreement = await self._agreement(app, biz)
        if agreement["status"] != "UNSIGN":
            agreement["status"] = "UNSIGN"
            agreement["unsign_time"] = protocol.timestamp(utc_now())
            if params.get("notify_url"):
                agreement["notify_url"] = params["notify_url"]
            await self.store.put("agreements", agreement["agreement_no"], agreement)
            await self._notify_agreement(agreement, "dut_user_unsign", wait=False)
        return {"code": protocol.SUCCESS, "msg": "Success"}

    # --- trades ---

    async def _pay(self, request: HttpRequest, app: Document, params: Document, biz: Document) -> Document:
        out_trade_no = str(biz.get("out_trade_no") or "")
        if not out_trade_no or len(out_trade_no) > 64:
            raise _business("ACQ.INVALID_PARAMETER", "out_trade_no 必填，最长64位")
        try:
            amount = from_yuan(str(biz.get("total_amount", "")))
        except ValueError:
            raise _business("ACQ.INVALID_PARAMETER", "total_amount 格式错误") from None
        if amount <= 0:
            raise _business("ACQ.INVALID_PARAMETER", "total_amount 必须大于 0")
        if biz.get("trans_currency", "CNY") != "CNY":
            raise _business("ACQ.INVALID_PARAMETER", "周期扣款仅支持人民币（CNY）")
        agreement_no = str((biz.get("agreement_params") or {}).get("agreement_no") or "")
        key = f"{app['app_id']}:{out_trade_no}"
        held = await self.store.get("trades", key)
        if held is not None:
            if held["amount"] != amount:
                raise _business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            if held["status"] in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                raise _business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            return self._pay_node(held, in_process=True)
        try:
            agreement = await self._agreement(app, {"agreement_no": agreement_no})
        except _Refusal:
            raise _business("ACQ.AGREEMENT_NOT_EXIST", "用户协议不存在") from None
        if agreement["status"] != "NORMAL":
            raise _business("ACQ.AGREEMENT_INVALID", "用户协议已失效")
        if amount > int(agreement["single_amount"]):
            raise _business("ACQ.CYCLE_PAY_SINGLE_FEE_EXCEED", "周期扣款单笔金额超限")
        outcome = buyer_outcome(agreement)
        if outcome in _OUTCOME_SUB_CODES:
            raise _business(*_OUTCOME_SUB_CODES[outcome])
        now = utc_now()
        trade = {
            "key": key,
            "app_id": app["app_id"],
            "trade_no": f"{now.astimezone(protocol.CHINA):%Y%m%d}2200" + digits(14),
            "out_trade_no": out_trade_no,
            "agreement_no": agreement_no,
            "subject": str(biz.get("subject") or ""),
            "amount": amount,
            "buyer_logon_id": agreement["alipay_logon_id"],
            "status": "WAIT_BUYER_PAY" if outcome == "slow" else "TRADE_SUCCESS",
            "created_at": now.isoformat(),
            "paid_at": None if outcome == "slow" else now.isoformat(),
            "notify_url": params.get("notify_url"),
        }
        trade = await self.store.add("trades", key, trade)
        if trade["status"] == "TRADE_SUCCESS":
            await self._notify_trade(trade)
            return self._pay_node(trade, in_process=False)
        return self._pay_node(trade, in_process=True)

    @staticmethod
    def _pay_node(trade: Document, *, in_process: bool) -> Document:
        node: Document = {
            "code": protocol.IN_PROCESS if in_process else protocol.SUCCESS,
            "msg": "Order success pay inprocess" if in_process else "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "buyer_logon_id": trade["buyer_logon_id"],
            "total_amount": to_yuan(trade["amount"]),
        }
        if not in_process:
            node["receipt_amount"] = to_yuan(trade["amount"])
            node["gmt_payment"] = protocol.timestamp(datetime.fromisoformat(trade["paid_at"]))
            node["fund_bill_list"] = [{"fund_channel": "ALIPAYACCOUNT", "amount": to_yuan(trade["amount"])}]
        return node

    async def _notify_trade(self, trade: Document, refund: Document | None = None) -> None:
        if not trade.get("notify_url"):
            return
        fields: Document = {
            "notify_type": "trade_status_sync",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "trade_status": trade["status"],
            "total_amount": to_yuan(trade["amount"]),
            "receipt_amount": to_yuan(trade["amount"]),
            "buyer_logon_id": trade["buyer_logon_id"],
            "subject": trade["subject"],
            "gmt_create": protocol.timestamp(datetime.fromisoformat(trade["created_at"])),
            "gmt_payment": protocol.timestamp(datetime.fromisoformat(trade["paid_at"])),
        }
        what = "trade_status_sync"
        if refund is not None:
            fields["out_biz_no"] = refund["out_request_no"]
            fields["refund_fee"] = to_yuan(refund["amount"])
            fields["gmt_refund"] = protocol.timestamp(datetime.fromisoformat(refund["refunded_at"]))
            what = "trade_status_sync (refund)"
        await self._notify(trade["app_id"], trade["notify_url"], fields, what=what, wait=False)

    async def _trade(self, app: Document, biz: Document) -> Document:
        trade = await self.store.get("trades", f"{app['app_id']}:{biz.get('out_trade_no', '')}")
        if trade is None:
            raise _business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return trade

    async def _query(self, request: HttpRequest, app: Document, params: Document, biz: Document) -> Document:
        trade = await self._trade(app, biz)
        if trade["status"] == "WAIT_BUYER_PAY":
            # buyer_slow: the debit went through in the meantime; its notification follows.
            trade["status"] = "TRADE_SUCCESS"
            trade["paid_at"] = utc_now().isoformat()
            await self.store.put("trades", trade["key"], trade)
            await self._notify_trade(trade)
        node = {
            "code": protocol.SUCCESS,
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "trade_status": trade["status"],
            "total_amount": to_yuan(trade["amount"]),
            "buyer_logon_id": trade["buyer_logon_id"],
        }
        if trade.get("paid_at"):
            node["send_pay_date"] = protocol.timestamp(datetime.fromisoformat(trade["paid_at"]))
        return node

    async def _refund(self, request: HttpRequest, app: Document, params: Document, biz: Document) -> Document:
        trade = await self._trade(app, biz)
        out_request_no = str(biz.get("out_request_no") or trade["out_trade_no"])
        key = f"{trade['key']}:{out_request_no}"
        held = await self.store.get("refunds", key)
        if held is None:
            if trade["status"] not in ("TRADE_SUCCESS",):
                raise _business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            try:
                amount = from_yuan(str(biz.get("refund_amount", "")))
            except ValueError:
                raise _business("ACQ.INVALID_PARAMETER", "refund_amount 格式错误") from None
            if amount <= 0:
                raise _business("ACQ.INVALID_PARAMETER", "refund_amount 必须大于 0")
            refund = {
                "id": random_token(16),
                "key": key,
                "app_id": app["app_id"],
                "trade_key": trade["key"],
                "trade_no": trade["trade_no"],
                "out_trade_no": trade["out_trade_no"],
                "out_request_no": out_request_no,
                "amount": amount,
                "status": "REFUND_SUCCESS",
                "refunded_at": utc_now().isoformat(),
                "buyer_logon_id": trade["buyer_logon_id"],
            }
            over_limit = _business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            held, recorded = await record_refund(self.store, trade, key, refund, over_limit=over_limit)
            if recorded:
                await self._notify_trade(trade, held)
            fund_change = "Y"
        else:
            fund_change = "N"
        total = await self.store.increment("refunded", trade["key"], 0)
        return {
            "code": protocol.SUCCESS,
            "msg": "Success",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "buyer_logon_id": trade["buyer_logon_id"],
            "fund_change": fund_change,
            "refund_fee": to_yuan(total),
            "gmt_refund_pay": protocol.timestamp(datetime.fromisoformat(held["refunded_at"])),
        }

    async def _refund_query(
        self, request: HttpRequest, app: Document, params: Document, biz: Document
    ) -> Document:
        trade = await self._trade(app, biz)
        out_request_no = str(biz.get("out_request_no") or trade["out_trade_no"])
        refund = await self.store.get("refunds", f"{trade['key']}:{out_request_no}")
        node: Document = {"code": protocol.SUCCESS, "msg": "Success", "out_trade_no": trade["out_trade_no"]}
        if refund is not None:
            node.update(
                {
                    "trade_no": trade["trade_no"],
                    "out_request_no": out_request_no,
                    "total_amount": to_yuan(trade["amount"]),
                    "refund_amount": to_yuan(refund["amount"]),
                    "refund_status": refund["status"],
                    "gmt_refund_pay": protocol.timestamp(datetime.fromisoformat(refund["refunded_at"])),
                }
            )
        return node

    # --- the bill ---

    async def _bill_url(
        self, request: HttpRequest, app: Document, params: Document, biz: Document
    ) -> Document:
        if biz.get("bill_type") != "trade":
            raise _business("isp.bill_type_not_support", "仅支持 trade 账单")
        try:
            day = date.fromisoformat(str(biz.get("bill_date", "")))
        except ValueError:
            raise _business("ACQ.INVALID_PARAMETER", "bill_date 格式为 yyyy-MM-dd") from None
        token = random_token(32)
        expires = utc_now() + timedelta(seconds=30)
        await self.store.put(
            "bills",
            token,
            {"app_id": app["app_id"], "day": day.isoformat(), "expires_at": expires.isoformat()},
        )
        return {
            "code": protocol.SUCCESS,
            "msg": "Success",
            "bill_download_url": f"{self.base_url(request)}/bills/{token}",
        }

    async def _bill(self, token: str) -> HttpResponse:
        ticket = await self.store.get("bills", token)
        if ticket is None or datetime.fromisoformat(ticket["expires_at"]) <= utc_now():
            return HttpResponse.text(404, "bill link expired or unknown")
        app_id, day = ticket["app_id"], date.fromisoformat(ticket["day"])
        return HttpResponse(
            200,
            protocol.format_trade_bill(app_id, day, await self.bill_lines(app_id, day), utc_now()),
            [
                ("content-type", "application/zip"),
                ("content-disposition", f'attachment; filename="{app_id}_{day:%Y%m%d}.csv.zip"'),
            ],
        )

    async def bill_lines(self, app_id: str, day: date) -> list[protocol.BillLine]:
        """The ledger's trades paid and refunds made on `day` (China time), with the 0.6 % service fee."""

        trades = {t["key"]: t for t in await self.store.all("trades") if t["app_id"] == app_id}
        lines = [
            protocol.BillLine(
                trade_no=t["trade_no"],
                out_trade_no=t["out_trade_no"],
                kind=protocol.TRADE,
                subject=t["subject"],
                created_at=datetime.fromisoformat(t["created_at"]),
                finished_at=datetime.fromisoformat(t["paid_at"]),
                buyer=t["buyer_logon_id"],
                amount=t["amount"],
                fee=sandbox_fee(t["amount"]),
            )
            for t in trades.values()
            if t["status"] == "TRADE_SUCCESS" and on_china_day(t.get("paid_at"), day)
        ]
        for refund in await self.store.all("refunds"):
            trade = trades.get(refund["trade_key"])
            if trade is None or not on_china_day(refund["refunded_at"], day):
                continue
            lines.append(
                protocol.BillLine(
                    trade_no=trade["trade_no"],
                    out_trade_no=trade["out_trade_no"],
                    kind=protocol.REFUND,
                    subject=trade["subject"],
                    created_at=datetime.fromisoformat(refund["refunded_at"]),
                    finished_at=datetime.fromisoformat(refund["refunded_at"]),
                    buyer=trade["buyer_logon_id"],
                    amount=refund["amount"],
                    fee=0,
                    out_request_no=refund["out_request_no"],
                )
            )
        return lines
