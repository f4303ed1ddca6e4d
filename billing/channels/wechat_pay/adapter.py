"""The WeChat Pay adapter: the gateway interface and the channel operations over API v3, for one connection (one
merchant id, its app id and its 委托代扣 plan).

Every request is signed WECHATPAY2-SHA256-RSA2048 with the merchant key (opened from the vault per call); every
answer must carry a valid platform signature before it is believed (an unverifiable 2xx is unknown).
A debit is a pre-notification (预扣费通知, POST /v3/papay/contracts/{id}/notify, covering the amount) followed by
the deduction (POST /v3/papay/pay/transactions/apply) and one query of its order:
- the deduction refused (NOT_ENOUGH, USER_ACCOUNT_ABNORMAL, CONTRACT_TERMINATED...): a decline by code
  (protocol.DECLINES); refused before any business (PARAM_ERROR, SIGN_ERROR, 429...): a technical error;
- accepted, and the order SUCCESS: succeeded; still ACCEPT (or any other state): unknown, settled by the janitor's
  query or by the TRANSACTION.SUCCESS notification, whichever comes first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

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
from billing.channels.wechat_pay import protocol
from billing.channels.yuan import mask_account
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
from billing.ids import random_token
from dunning.declines import decline_type
from webhooks.secret_box import SecretBox

CHANNEL = "wechat_pay"


class WechatPayGateway:
    def __init__(
        self,
        connection: ConnectionConfig,
        client: httpx.AsyncClient,
        *,
        secrets: SecretBox | None,
        in_process: bool,
        notify_url: str,
    ) -> None:
        self.connection = connection
        self._http = GatewayHttp(connection, client, in_process=in_process)
        self._secrets = secrets
        self.notify_url = notify_url
        credentials = connection.credentials
        self._mchid = credentials.get("mchid", "")
        self._appid = credentials.get("appid", "")
        self._serial = credentials.get("merchant_serial_no", "")
        self._plan_id = credentials.get("plan_id", "")
        self._platform_key = credentials.get("platform_public_key", "")
        self._platform_key_id = credentials.get("platform_public_key_id", "")

    async def _secret(self, name: str) -> str:
        try:
            return await open_credential(self._secrets, self.connection, name)
        except CredentialError as exc:
            raise Answer(TechnicalError("gateway_refused", str(exc))) from None

    async def _call(
        self, method: str, path: str, payload: Mapping[str, Any] | None = None, *, verify: bool = True
    ) -> tuple[int, dict[str, Any] | None, httpx.Response]:
        """Send one signed request; returns the status and the verified JSON body (None for 204)."""
        body = protocol.body_text(payload) if payload is not None else ""
        url = urlsplit(path)
        target = url.path + (f"?{url.query}" if url.query else "")
        header = protocol.authorization(
            mchid=self._mchid,
            serial_no=self._serial,
            private_key=await self._secret("merchant_private_key"),
            method=method,
            url=target,
            body=body,
            timestamp=int(utc_now().timestamp()),
            nonce=random_token(32),
        )
        headers = {"Authorization": header, "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        response = await self._http.request(
            method, path, headers=headers, content=body.encode() if body else None
        )
        if response.status_code == 503 or (
            response.status_code >= 500 and not response.headers.get("wechatpay-signature")
        ):
            raise Answer(server_trouble(response))
        if verify:
            try:
                protocol.verify_signed(
                    response.headers,
                    response.text,
                    public_key=self._platform_key,
                    serial=self._platform_key_id,
                    now=int(utc_now().timestamp()),
                )
            except protocol.SignatureError as exc:
                raise Answer(
                    Unknown(f"WeChat Pay's answer to {method} {url.path} does not verify: {exc}")
                ) from None
        if response.status_code == 204 or not response.content:
            return response.status_code, None, response
        try:
            data = response.json()
        except ValueError:
            if not verify:
                return response.status_code, None, response
            raise Answer(Unknown("WeChat Pay answered something that is not JSON")) from None
        return response.status_code, data if isinstance(data, dict) else None, response

    @staticmethod
    def _error(data: dict[str, Any] | None) -> str:
        return str((data or {}).get("code") or "")

    # --- gateway ---

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        contract = request.instrument
        if not isinstance(contract, AgreementInstrument) or contract.channel != CHANNEL:
            return TechnicalError(
                "instrument_not_supported", "a WeChat Pay connection debits WeChat Pay contracts only"
            )
        if request.currency != CHANNEL_CURRENCY:
            return Declined(code="currency_not_supported", decline_type="hard")
        try:
            status, data, _ = await self._call(
                "POST",
                f"/v3/papay/contracts/{quote(contract.agreement_no)}/notify",
                {
                    "mchid": self._mchid,
                    "appid": self._appid,
                    "deduct_duration": {"count": 1, "unit": "DAY"},
                    "estimated_amount": {"amount": request.amount, "currency": CHANNEL_CURRENCY},
                },
            )
            if status != 204:
                return self._deduction_refused(status, data)
            status, data, _ = await self._call(
                "POST",
                "/v3/papay/pay/transactions/apply",
                {
                    "appid": self._appid,
                    "out_trade_no": request.idempotency_key,
                    "description": (request.description or "Subscription")[:127],
                    "transaction_notify_url": self.notify_url,
                    "contract_id": contract.agreement_no,
                    "amount": {"total": request.amount, "currency": CHANNEL_CURRENCY},
                },
            )
        except Answer as answer:
            return answer.outcome
        if status != 200:
            return self._deduction_refused(status, data)
        found = await self.retrieve(request.idempotency_key)
        if isinstance(found, NotFound | TechnicalError):
            # Accepted a moment ago: its order must exist. Not knowing is not a reason to debit again.
            return Unknown(f"the deduction was accepted but its order reads {found.kind}")
        return found

    def _deduction_refused(self, status: int, data: dict[str, Any] | None) -> ChargeOutcome:
        code = self._error(data)
        if status >= 500 or code == "SYSTEM_ERROR":
            return Unknown(f"WeChat Pay answered {status} {code}")
        if code in protocol.DECLINES:
            decline = protocol.decline_code(code)
            return Declined(code=decline, decline_type=decline_type(decline) or "soft")
        return TechnicalError("gateway_request_invalid", f"WeChat Pay refused the deduction: {status} {code}")

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        try:
            status, data, _ = await self._call(
                "GET",
                f"/v3/pay/transactions/out-trade-no/{quote(idempotency_key)}?mchid={quote(self._mchid)}",
            )
        except Answer as answer:
            return answer.outcome
        if status == 404:
            return NotFound()
        if status != 200 or data is None:
            return Unknown(f"WeChat Pay answered {status} {self._error(data)} to the order query")
        state = data.get("trade_state")
        if state == "SUCCESS":
            return Succeeded(reference=str(data["transaction_id"]))
        if state in ("PAYERROR", "CLOSED", "REVOKED"):
            return Declined(code="generic_decline", decline_type="soft", reference=data.get("transaction_id"))
        return Unknown(f"the order is {state}")

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        if request.currency != CHANNEL_CURRENCY:
            return RefundFailed(code="currency_not_supported")
        try:
            # A refund names the order's total: read it from the order (which also proves it was paid).
            status, order, _ = await self._call(
                "GET",
                f"/v3/pay/transactions/out-trade-no/{quote(request.charge_key)}?mchid={quote(self._mchid)}",
            )
            if status == 404:
                return RefundFailed(code="charge_not_found")
            if status != 200 or order is None:
                return Unknown(f"WeChat Pay answered {status} {self._error(order)} to the order query")
            if order.get("trade_state") != "SUCCESS":
                return RefundFailed(code="charge_not_captured")
            status, data, _ = await self._call(
                "POST",
                "/v3/refund/domestic/refunds",
                {
                    "out_trade_no": request.charge_key,
                    "out_refund_no": request.idempotency_key,
                    "reason": request.reason or "requested_by_customer",
                    "notify_url": self.notify_url,
                    "amount": {
                        "refund": request.amount,
                        "total": int(order["amount"]["total"]),
                        "currency": CHANNEL_CURRENCY,
                    },
                },
            )
        except Answer as answer:
            return answer.outcome
        outcome = self._refund_outcome(status, data)
        return RefundFailed(code="charge_not_found") if isinstance(outcome, NotFound) else outcome

    def _refund_outcome(self, status: int, data: dict[str, Any] | None) -> RetrieveRefundOutcome:
        if status == 404:
            return NotFound()
        if status == 200 and data is not None:
            state = data.get("status")
            if state == "SUCCESS":
                return RefundSucceeded(reference=str(data["refund_id"]))
            if state in ("CLOSED", "ABNORMAL"):
                return RefundFailed(code="refund_failed", reference=data.get("refund_id"))
            return Unknown(f"the refund is {state}")
        code = self._error(data)
        if status >= 500 or code == "SYSTEM_ERROR":
            return Unknown(f"WeChat Pay answered {status} {code}")
        return RefundFailed(code=protocol.REFUND_FAILURES.get(code, "refund_failed"))

    async def retrieve_refund(self, idempotency_key: str, charge_key: str) -> RetrieveRefundOutcome:
        try:
            status, data, _ = await self._call("GET", f"/v3/refund/domestic/refunds/{quote(idempotency_key)}")
        except Answer as answer:
            return answer.outcome
        return self._refund_outcome(status, data)

    # --- agreements ---

    async def start_agreement(self, terms: AgreementTerms) -> StartOutcome:
        try:
            status, data, _ = await self._call(
                "POST",
                "/v3/papay/entrust-sign/contracts/pre-entrust-sign",
                {
                    "sign_scene": "SIGN_SCENE_QRCODE" if terms.display == "qr_code" else "SIGN_SCENE_H5",
                    "appid": self._appid,
                    "plan_id": int(self._plan_id) if self._plan_id.isdigit() else self._plan_id,
                    "out_contract_code": terms.external_agreement_no,
                    "contract_display_account": terms.subject[:32],
                    "contract_notify_url": self.notify_url,
                    **({"return_url": terms.return_url} if terms.return_url else {}),
                },
            )
        except Answer as answer:
            return answer.outcome
        if status == 200 and data is not None and data.get("redirect_url"):
            return SignLink(url=str(data["redirect_url"]))
        if status >= 500:
            return Unknown(f"WeChat Pay answered {status} to the pre-signing")
        return TechnicalError(
            "gateway_request_invalid", f"WeChat Pay refused the pre-signing: {status} {self._error(data)}"
        )

    @staticmethod
    def _contract_state(data: Mapping[str, Any]) -> AgreementState:
        state = data.get("contract_state")
        return AgreementState(
            status="active" if state == "SIGNED" else "ended",
            agreement_no=data.get("contract_id"),
            buyer=mask_account(str(data["openid"])) if data.get("openid") else None,
            signed_at=protocol.parse_rfc3339(data["contract_signed_time"])
            if data.get("contract_signed_time")
            else None,
            ended_at=protocol.parse_rfc3339(data["contract_terminated_time"])
            if data.get("contract_terminated_time")
            else None,
        )

    async def retrieve_agreement(self, external_agreement_no: str) -> AgreementOutcome:
        try:
            status, data, _ = await self._call(
                "GET",
                f"/v3/papay/sign/contracts/plan-id/{quote(self._plan_id)}/out-contract-code/"
                f"{quote(external_agreement_no)}?appid={quote(self._appid)}",
            )
        except Answer as answer:
            return answer.outcome
        if status == 404:
            return NotFound()
        if status != 200 or data is None:
            return Unknown(f"WeChat Pay answered {status} {self._error(data)} to the contract query")
        return self._contract_state(data)

    async def end_agreement(self, agreement: AgreementInstrument) -> AgreementOutcome:
        try:
            status, data, _ = await self._call(
                "POST",
                f"/v3/papay/contracts/{quote(agreement.agreement_no)}/terminate",
                {"appid": self._appid, "contract_termination_remark": "merchant ended the agreement"},
            )
        except Answer as answer:
            return answer.outcome
        if status == 204:
            return AgreementState(status="ended", agreement_no=agreement.agreement_no, ended_at=utc_now())
        if status == 404:
            return NotFound()
        if status >= 500:
            return Unknown(f"WeChat Pay answered {status} to the termination")
        return TechnicalError(
            "gateway_request_invalid", f"WeChat Pay refused the termination: {self._error(data)}"
        )

    # --- notifications ---

    async def read_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        try:
            text = body.decode("utf-8")
            protocol.verify_signed(
                headers,
                text,
                public_key=self._platform_key,
                serial=self._platform_key_id,
                now=int(utc_now().timestamp()),
            )
            envelope = json.loads(text)
            plaintext = protocol.decrypt_resource(await self._secret("apiv3_key"), envelope["resource"])
        except (UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            raise NotificationRefused(f"the notification does not verify or decrypt: {exc}") from None
        except Answer as answer:
            raise NotificationRefused(str(answer)) from None
        if plaintext.get("mchid") != self._mchid:
            raise NotificationRefused(f"mchid {plaintext.get('mchid')!r} is not this connection's merchant")
        notify_id, event = str(envelope.get("id") or ""), envelope.get("event_type")
        if not notify_id:
            raise NotificationRefused("the notification has no id")
        try:
            if event == "PAPAY.SIGN" and plaintext.get("contract_state") == "SIGNED":
                state = self._contract_state(plaintext)
                assert state.signed_at is not None and state.agreement_no is not None
                return AgreementSigned(
                    notify_id=notify_id,
                    external_agreement_no=str(plaintext["out_contract_code"]),
                    agreement_no=state.agreement_no,
                    buyer=state.buyer or "",
                    signed_at=state.signed_at,
                )
            if event == "PAPAY.TERMINATE":
                mode = plaintext.get("contract_termination_mode")
                return AgreementEnded(
                    notify_id=notify_id,
                    agreement_no=str(plaintext["contract_id"]),
                    external_agreement_no=plaintext.get("out_contract_code"),
                    ended_at=protocol.parse_rfc3339(plaintext["contract_terminated_time"]),
                    by="merchant" if mode == "MCH_API" else "customer",
                )
            if event == "TRANSACTION.SUCCESS" and plaintext.get("trade_state") == "SUCCESS":
                return ChargeNotice(
                    notify_id=notify_id,
                    idempotency_key=str(plaintext["out_trade_no"]),
                    amount=int(plaintext["amount"]["total"]),
                    currency=str(plaintext["amount"].get("currency", CHANNEL_CURRENCY)),
                    outcome=Succeeded(reference=str(plaintext["transaction_id"])),
                )
            if event == "REFUND.SUCCESS" and plaintext.get("refund_status") == "SUCCESS":
                return RefundNotice(
                    notify_id=notify_id,
                    idempotency_key=str(plaintext["out_refund_no"]),
                    amount=int(plaintext["amount"]["refund"]),
                    outcome=RefundSucceeded(reference=str(plaintext["refund_id"])),
                )
        except (KeyError, ValueError, TypeError, AssertionError) as exc:
            raise NotificationRefused(f"a {event} notification without a valid {exc}") from None
        return Ignored(notify_id, f"event {event}")

    # --- settlement ---

    async def settlement(self, day: date) -> list[SettlementRow]:
        """The trade bill of `day` (China time), downloaded, checked against its SHA-1 and parsed."""
        try:
            status, data, _ = await self._call(
                "GET", f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL"
            )
            if status != 200 or data is None:
                raise RuntimeError(f"WeChat Pay refused the bill of {day}: {status} {self._error(data)}")
            # The file itself is not signed; its SHA-1 came in the signed answer above.
            status, _, response = await self._call("GET", str(data["download_url"]), verify=False)
        except Answer as answer:
            raise RuntimeError(
                f"the WeChat Pay bill of {day} could not be fetched: {answer.outcome}"
            ) from None
        if status != 200:
            raise RuntimeError(f"the WeChat Pay bill of {day} could not be downloaded ({status})")
        digest = hashlib.sha1(response.content).hexdigest()  # noqa: S324 - WeChat Pay's own choice of digest
        if data.get("hash_type") == "SHA1" and digest != data.get("hash_value"):
            raise RuntimeError(f"the WeChat Pay bill of {day} does not match its SHA-1")
        return protocol.parse_trade_bill(response.content.decode("utf-8"))
