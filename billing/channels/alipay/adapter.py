"""The Alipay adapter: the gateway interface (billing.gateways.base) and the channel operations
(billing.channels.base) over Alipay's open platform, for one connection (one Alipay app).

Every call is a form POST to `<url>/gateway.do`, signed RSA2 with the app's private key (opened from the vault
per call); every answer is verified with the Alipay public key before it is believed. What answers mean:
- trade.pay `10000`: succeeded; `10003` (in process) or `20000` / ACQ.SYSTEM_ERROR: unknown (the janitor asks
  with alipay.trade.query); ACQ.TRADE_HAS_SUCCESS (a retry of a debit that went through): asked at once;
- `40004` business failures: declines, by sub_code (protocol.DECLINES: balance → insufficient_funds, soft;
  frozen → account_frozen, hard; agreement ended → revocation_of_authorization, hard); calls refused before any
  business (bad parameters, no permission, bad signature 4000x): technical errors;
- an answer that does not verify: unknown (never believed, never a reason to debit again).
The signing link (alipay.user.agreement.page.sign) is a signed GET URL to the gateway: Alipay (or its sandbox)
shows the approval page behind it, so starting an agreement needs no server call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from billing.channels.alipay import protocol
from billing.channels.base import (
    CHANNEL_CURRENCY,
    AgreementEnded,
    AgreementOutcome,
    AgreementSigned,
    AgreementState,
    AgreementTerms,
    ChargeNotice,
    Ignored,
    Notice,
    NotificationRefused,
    RefundNotice,
    SignLink,
    StartOutcome,
)
from billing.channels.yuan import from_yuan, to_yuan
from billing.clock import utc_now
from billing.gateways.base import (
    AgreementInstrument,
    ChargeOutcome,
    ChargeRequest,
    ConnectionConfig,
    Declined,
    NotFound,
    RefundFailed,
    RefundOutcome,
    RefundRequest,
    RefundSucceeded,
    RetrieveOutcome,
    RetrieveRefundOutcome,
    SettlementRow,
    Succeeded,
    TechnicalError,
    Unknown,
)
from billing.gateways.credentials import CredentialError, open_credential
from billing.gateways.transport import Answer, GatewayHttp, server_trouble
from dunning.declines import decline_type
from webhooks.secret_box import SecretBox

CHANNEL = "alipay"
PAY = "alipay.trade.pay"
QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
AGREEMENT_QUERY = "alipay.user.agreement.query"
UNSIGN = "alipay.user.agreement.unsign"
PAGE_SIGN = "alipay.user.agreement.page.sign"
BILL_URL = "alipay.data.dataservice.bill.downloadurl.query"


class AlipayGateway:
    def __init__(
        self,
        connection: ConnectionConfig,
        client: httpx.AsyncClient,
        *,
        secrets: SecretBox | None,
        in_process: bool,
        browser_gateway_url: str,
        notify_url: str,
    ) -> None:
        self.connection = connection
        self._http = GatewayHttp(connection, client, in_process=in_process)
        self._secrets = secrets
        self._browser_gateway_url = browser_gateway_url
        self.notify_url = notify_url
        self._app_id = connection.credentials.get("app_id", "")
        self._alipay_public_key = connection.credentials.get("alipay_public_key", "")

    async def _signed(
        self, method: str, biz: Mapping[str, Any], *, notify: bool = False, return_url: str | None = None
    ) -> dict[str, str]:
        try:
            private_key = await open_credential(self._secrets, self.connection, "app_private_key")
        except CredentialError as exc:
            raise Answer(TechnicalError("gateway_refused", str(exc))) from None
        params = protocol.request_params(
            app_id=self._app_id,
            method=method,
            biz_content=biz,
            now=utc_now(),
            notify_url=self.notify_url if notify else None,
            return_url=return_url,
        )
        return protocol.sign_params(params, private_key)

    async def _call(self, method: str, biz: Mapping[str, Any], *, notify: bool = False) -> dict[str, Any]:
        """The verified response node of one gateway call (any code); raises Answer for transport trouble."""
        params = await self._signed(method, biz, notify=notify)
        response = await self._http.request("POST", protocol.GATEWAY_PATH, data=params)
        if response.status_code != 200:
            raise Answer(server_trouble(response))
        try:
            node = protocol.read_response(response.text, method, self._alipay_public_key)
        except protocol.SignatureError as exc:
            raise Answer(Unknown(f"Alipay's answer to {method} does not verify: {exc}")) from None
        code = str(node.get("code"))
        if code in ("20001", "40001", "40002", "40003"):
            raise Answer(
                TechnicalError(
                    "gateway_request_invalid", f"{method}: {node.get('sub_code')} {node.get('sub_msg')}"
                )
            )
        if code == protocol.SERVICE_UNAVAILABLE:
            raise Answer(Unknown(f"{method}: Alipay answered 20000 (service unavailable)"))
        return node

    # --- gateway ---

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        agreement = request.instrument
        if not isinstance(agreement, AgreementInstrument) or agreement.channel != CHANNEL:
            return TechnicalError(
                "instrument_not_supported", "an Alipay connection debits Alipay agreements only"
            )
        if request.currency != CHANNEL_CURRENCY:
            return Declined(code="currency_not_supported", decline_type="hard")
        biz = {
            "out_trade_no": request.idempotency_key,
            "total_amount": to_yuan(request.amount),
            "subject": (request.description or "Subscription")[:256],
            "product_code": protocol.PRODUCT_CODE,
            "agreement_params": {"agreement_no": agreement.agreement_no},
        }
        try:
            node = await self._call(PAY, biz, notify=True)
        except Answer as answer:
            return answer.outcome
        code = str(node.get("code"))
        if code == protocol.SUCCESS:
            return Succeeded(reference=str(node["trade_no"]))
        if code == protocol.IN_PROCESS:
            return Unknown("Alipay is still processing the debit (10003)")
        sub_code = str(node.get("sub_code") or "")
        if sub_code == "ACQ.TRADE_HAS_SUCCESS":
            # A retry of a debit that went through: its trade is the answer.
            found = await self.retrieve(request.idempotency_key)
            return (
                Unknown("the trade exists but the query did not find it")
                if isinstance(found, NotFound)
                else found
            )
        if sub_code in protocol.ASK_AGAIN:
            return Unknown(f"Alipay answered {sub_code}: ask again")
        if sub_code in protocol.REFUSED or code != protocol.BUSINESS_FAILED:
            return TechnicalError(
                "gateway_request_invalid", f"{code} {sub_code} {node.get('sub_msg', '')}".strip()
            )
        decline = protocol.decline_code(sub_code)
        return Declined(
            code=decline, decline_type=decline_type(decline) or "soft", reference=node.get("trade_no")
        )

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        try:
            node = await self._call(QUERY, {"out_trade_no": idempotency_key})
        except Answer as answer:
            return answer.outcome
        code, sub_code = str(node.get("code")), str(node.get("sub_code") or "")
        if code == protocol.SUCCESS:
            status = node.get("trade_status")
            if status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                return Succeeded(reference=str(node["trade_no"]))
            if status == "TRADE_CLOSED":
                return Declined(code="generic_decline", decline_type="soft", reference=node.get("trade_no"))
            return Unknown(f"the trade is {status}")
        if sub_code == "ACQ.TRADE_NOT_EXIST":
            return NotFound()
        if sub_code == "ACQ.SYSTEM_ERROR":
            return Unknown("Alipay answered ACQ.SYSTEM_ERROR to the query")
        return TechnicalError("gateway_request_invalid", f"{code} {sub_code}")

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        if request.currency != CHANNEL_CURRENCY:
            return RefundFailed(code="currency_not_supported")
        biz = {
            "out_trade_no": request.charge_key,
            "refund_amount": to_yuan(request.amount),
            "out_request_no": request.idempotency_key,
            "refund_reason": request.reason or "requested_by_customer",
        }
        try:
            node = await self._call(REFUND, biz)
        except Answer as answer:
            return answer.outcome
        code, sub_code = str(node.get("code")), str(node.get("sub_code") or "")
        if code == protocol.SUCCESS:
            return RefundSucceeded(reference=str(node.get("trade_no")))
        if sub_code == "ACQ.SYSTEM_ERROR":
            return Unknown("Alipay answered ACQ.SYSTEM_ERROR to the refund")
        if sub_code in protocol.REFUSED:
            return TechnicalError("gateway_request_invalid", f"{code} {sub_code}")
        return RefundFailed(code=protocol.REFUND_FAILURES.get(sub_code, "refund_failed"))

    async def retrieve_refund(self, idempotency_key: str, charge_key: str) -> RetrieveRefundOutcome:
        try:
            node = await self._call(
                REFUND_QUERY, {"out_trade_no": charge_key, "out_request_no": idempotency_key}
            )
        except Answer as answer:
            return answer.outcome
        code, sub_code = str(node.get("code")), str(node.get("sub_code") or "")
        if code == protocol.SUCCESS:
            if node.get("refund_status") == "REFUND_SUCCESS":
                return RefundSucceeded(reference=str(node.get("trade_no")))
            # Alipay answers a refund it never received with success and no refund fields.
            return NotFound()
        if sub_code == "ACQ.TRADE_NOT_EXIST":
            return NotFound()
        return Unknown(f"Alipay answered {code} {sub_code} to the refund query")

    # --- agreements ---

    async def start_agreement(self, terms: AgreementTerms) -> StartOutcome:
        today = utc_now().astimezone(protocol.CHINA).date()
        # Alipay takes the first debit date; a monthly agreement's day must be the 28th or earlier.
        first = (
            today
            if terms.period == "day" or today.day <= 28
            else (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        )
        biz = {
            "personal_product_code": protocol.PERSONAL_PRODUCT_CODE,
            "product_code": protocol.PRODUCT_CODE,
            "sign_scene": self.connection.credentials.get("sign_scene") or protocol.SIGN_SCENE,
            "external_agreement_no": terms.external_agreement_no,
            "access_params": {"channel": "QRCODE" if terms.display == "qr_code" else "ALIPAYAPP"},
            "period_rule_params": {
                "period_type": terms.period.upper(),
                "period": terms.period_count,
                "execute_time": first.isoformat(),
                "single_amount": to_yuan(terms.single_amount_limit),
            },
        }
        try:
            params = await self._signed(PAGE_SIGN, biz, notify=True, return_url=terms.return_url)
        except Answer as answer:
            return answer.outcome
        return SignLink(url=f"{self._browser_gateway_url}?{urlencode(params)}")

    def _agreement_state(self, node: Mapping[str, Any]) -> AgreementState:
        status = node.get("status")
        state = "active" if status == "NORMAL" else "pending" if status == "TEMP" else "ended"
        return AgreementState(
            status=state,  # type: ignore[arg-type]
            agreement_no=node.get("agreement_no"),
            buyer=node.get("alipay_logon_id"),
            signed_at=protocol.parse_timestamp(node["sign_time"]) if node.get("sign_time") else None,
        )

    async def retrieve_agreement(self, external_agreement_no: str) -> AgreementOutcome:
        biz = {
            "personal_product_code": protocol.PERSONAL_PRODUCT_CODE,
            "sign_scene": self.connection.credentials.get("sign_scene") or protocol.SIGN_SCENE,
            "external_agreement_no": external_agreement_no,
        }
        try:
            node = await self._call(AGREEMENT_QUERY, biz)
        except Answer as answer:
            return answer.outcome
        if str(node.get("code")) == protocol.SUCCESS:
            return self._agreement_state(node)
        if node.get("sub_code") == "USER_AGREEMENT_NOT_EXIST":
            return NotFound()
        return Unknown(f"Alipay answered {node.get('code')} {node.get('sub_code')} to the agreement query")

    async def end_agreement(self, agreement: AgreementInstrument) -> AgreementOutcome:
        biz = {
            "agreement_no": agreement.agreement_no,
            "personal_product_code": protocol.PERSONAL_PRODUCT_CODE,
            "sign_scene": self.connection.credentials.get("sign_scene") or protocol.SIGN_SCENE,
        }
        try:
            node = await self._call(UNSIGN, biz, notify=True)
        except Answer as answer:
            return answer.outcome
        if str(node.get("code")) == protocol.SUCCESS:
            return AgreementState(status="ended", agreement_no=agreement.agreement_no, ended_at=utc_now())
        if node.get("sub_code") == "USER_AGREEMENT_NOT_EXIST":
            return NotFound()
        return TechnicalError("gateway_request_invalid", f"{node.get('code')} {node.get('sub_code')}")

    # --- notifications ---

    async def read_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise NotificationRefused("the body is not a UTF-8 form") from None
        if not protocol.verify_notification(params, self._alipay_public_key):
            raise NotificationRefused(
                "the signature does not verify under the connection's Alipay public key"
            )
        if params.get("app_id") != self._app_id:
            raise NotificationRefused(f"app_id {params.get('app_id')!r} is not this connection's app")
        notify_id = params.get("notify_id", "")
        if not notify_id:
            raise NotificationRefused("the notification has no notify_id")
        kind = params.get("notify_type")
        try:
            if kind == "dut_user_sign":
                if params.get("status") != "NORMAL":
                    return Ignored(notify_id, f"agreement status {params.get('status')}")
                return AgreementSigned(
                    notify_id=notify_id,
                    external_agreement_no=params["external_agreement_no"],
                    agreement_no=params["agreement_no"],
                    buyer=params.get("alipay_logon_id", ""),
                    signed_at=protocol.parse_timestamp(params.get("sign_time") or params["notify_time"]),
                    valid_until=protocol.parse_timestamp(params["invalid_time"])
                    if params.get("invalid_time")
                    else None,
                )
            if kind == "dut_user_unsign":
                return AgreementEnded(
                    notify_id=notify_id,
                    agreement_no=params["agreement_no"],
                    external_agreement_no=params.get("external_agreement_no") or None,
                    ended_at=protocol.parse_timestamp(params.get("unsign_time") or params["notify_time"]),
                )
            if kind == "trade_status_sync":
                if params.get("out_biz_no") and params.get("refund_fee"):
                    return RefundNotice(
                        notify_id=notify_id,
                        idempotency_key=params["out_biz_no"],
                        amount=from_yuan(params["refund_fee"]),
                        outcome=RefundSucceeded(reference=params["trade_no"]),
                    )
                if params.get("trade_status") in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                    return ChargeNotice(
                        notify_id=notify_id,
                        idempotency_key=params["out_trade_no"],
                        amount=from_yuan(params["total_amount"]),
                        currency=CHANNEL_CURRENCY,
                        outcome=Succeeded(reference=params["trade_no"]),
                    )
                return Ignored(notify_id, f"trade status {params.get('trade_status')}")
        except (KeyError, ValueError) as exc:
            raise NotificationRefused(f"a {kind} notification without a valid {exc}") from None
        return Ignored(notify_id, f"notify_type {kind}")

    # --- settlement ---

    async def settlement(self, day: date) -> list[SettlementRow]:
        """The trade bill of `day` (China time), downloaded and parsed: the real parsing path, sandbox or not.
        Raises Answer's outcome as a RuntimeError when the bill cannot be had."""
        try:
            node = await self._call(BILL_URL, {"bill_type": "trade", "bill_date": day.isoformat()})
            if str(node.get("code")) != protocol.SUCCESS:
                raise RuntimeError(
                    f"Alipay refused the bill of {day}: {node.get('sub_code')} {node.get('sub_msg')}"
                )
            response = await self._http.request("GET", str(node["bill_download_url"]))
        except Answer as answer:
            raise RuntimeError(f"the Alipay bill of {day} could not be fetched: {answer.outcome}") from None
        if response.status_code != 200:
            raise RuntimeError(f"the Alipay bill of {day} could not be downloaded ({response.status_code})")
        return protocol.parse_trade_bill(response.content)
