"""The e-CNY adapter: the gateway interface and the channel operations over an e-CNY operator's merchant API, for
one connection (one merchant number), debiting 子钱包免密支付 agreements.

Every call is a JSON POST signed with the merchant's private key (opened from the vault per call); every answer's
signature is verified with the operator's public key before it is believed. What answers mean:
- payment SUCCESS: succeeded; PROCESSING or errCode SYSTEM_BUSY: unknown (the janitor asks); ORDER_PAID (a retry
  of a debit that went through): asked at once; request errors (PARAM_ERROR, SIGN_ERROR, ...): technical; other
  errCodes: declines by protocol.ERR_DECLINES (balance → insufficient_funds, soft; the sub-wallet's own limit →
  wallet_limit_exceeded, soft; frozen wallet → account_frozen, hard; agreement cancelled →
  revocation_of_authorization, hard);
- an answer that does not verify: unknown.
Signing is a server call (agreements/sign) answered with the operator's page (`signUrl`): opened in the wallet app
by a redirect, or scanned as a QR code.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import date
from typing import Any

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
from billing.channels.ecny import protocol
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

CHANNEL = "ecny"
_STATES = {"SIGNED": "active", "WAIT_SIGN": "pending", "CANCELLED": "ended"}


def _wall_seconds() -> int:
    # Signatures carry real time (the operator checks it against its own clock), never a test clock.
    return int(utc_now().timestamp())


class EcnyGateway:
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
        self._merchant = connection.credentials.get("merchant_no", "")
        self._operator_key = connection.credentials.get("ecny_public_key", "")

    async def _call(self, resource: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """The verified answer of one call (SUCCESS or FAIL); raises Answer for transport trouble and refusals
        of the request itself."""
        try:
            private_key = await open_credential(self._secrets, self.connection, "merchant_private_key")
        except CredentialError as exc:
            raise Answer(TechnicalError("gateway_refused", str(exc))) from None
        body = protocol.body_text({"merchantNo": self._merchant, **content})
        headers = protocol.signed_headers(
            private_key=private_key,
            merchant=self._merchant,
            body=body,
            timestamp=_wall_seconds(),
            nonce=secrets.token_hex(16),
        )
        response = await self._http.request(
            "POST",
            f"{protocol.API}/{resource}",
            content=body.encode(),
            headers={**headers, "content-type": "application/json; charset=utf-8"},
        )
        if response.status_code != 200:
            raise Answer(server_trouble(response))
        try:
            protocol.verify(response.headers, response.text, self._operator_key, now=_wall_seconds())
            answer = protocol.read_json(response.content)
        except protocol.SignatureError as exc:
            raise Answer(Unknown(f"the e-CNY answer to {resource} does not verify: {exc}")) from None
        err = str(answer.get("errCode") or "")
        if err in protocol.REQUEST_ERRORS:
            raise Answer(
                TechnicalError("gateway_request_invalid", f"{resource}: {err} {answer.get('errMsg', '')}")
            )
        if err in protocol.ASK_AGAIN:
            raise Answer(Unknown(f"{resource}: {err}"))
        return answer

    # --- gateway ---

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        agreement = request.instrument
        if not isinstance(agreement, AgreementInstrument) or agreement.channel != CHANNEL:
            return TechnicalError(
                "instrument_not_supported", "an e-CNY connection debits e-CNY agreements only"
            )
        if request.currency != CHANNEL_CURRENCY:
            return Declined(code="currency_not_supported", decline_type="hard")
        content = {
            "outTradeNo": request.idempotency_key,
            "agreementId": agreement.agreement_no,
            "amount": request.amount,
            "currency": CHANNEL_CURRENCY,
            "description": (request.description or "Subscription")[:128],
            "notifyUrl": self.notify_url,
        }
        try:
            answer = await self._call("payments", content)
        except Answer as answer_:
            return answer_.outcome
        return await self._payment_outcome(request.idempotency_key, answer)

    async def _payment_outcome(self, key: str, answer: Mapping[str, Any]) -> ChargeOutcome:
        if answer.get("retCode") == protocol.SUCCESS:
            status = answer.get("status")
            if status == "SUCCESS":
                return Succeeded(reference=str(answer["tradeNo"]))
            if status == "CLOSED":
                return Declined(code="generic_decline", decline_type="soft", reference=answer.get("tradeNo"))
            return Unknown(f"the e-CNY payment is {status}")
        err = str(answer.get("errCode") or "")
        if err == protocol.ORDER_PAID:
            found = await self.retrieve(key)
            return (
                Unknown("the order is paid but the query did not find it")
                if isinstance(found, NotFound)
                else found
            )
        decline = protocol.decline_code(err)
        return Declined(
            code=decline, decline_type=decline_type(decline) or "soft", reference=answer.get("tradeNo")
        )

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        try:
            answer = await self._call("payments/query", {"outTradeNo": idempotency_key})
        except Answer as answer_:
            return answer_.outcome
        if answer.get("errCode") == protocol.ORDER_NOT_EXIST:
            return NotFound()
        if answer.get("retCode") != protocol.SUCCESS:
            return Unknown(f"the e-CNY query answered {answer.get('errCode')}")
        return await self._payment_outcome(idempotency_key, answer)

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        if request.currency != CHANNEL_CURRENCY:
            return RefundFailed(code="currency_not_supported")
        content = {
            "outRefundNo": request.idempotency_key,
            "outTradeNo": request.charge_key,
            "amount": request.amount,
            "reason": request.reason or "requested_by_customer",
            "notifyUrl": self.notify_url,
        }
        try:
            answer = await self._call("refunds", content)
        except Answer as answer_:
            return answer_.outcome
        if answer.get("retCode") == protocol.SUCCESS:
            if answer.get("status") == "SUCCESS":
                return RefundSucceeded(reference=str(answer["refundNo"]))
            return Unknown(f"the e-CNY refund is {answer.get('status')}")
        return RefundFailed(code=protocol.REFUND_FAILURES.get(str(answer.get("errCode")), "refund_failed"))

    async def retrieve_refund(self, idempotency_key: str, charge_key: str) -> RetrieveRefundOutcome:
        try:
            answer = await self._call(
                "refunds/query", {"outRefundNo": idempotency_key, "outTradeNo": charge_key}
            )
        except Answer as answer_:
            return answer_.outcome
        if answer.get("errCode") in ("REFUND_NOT_EXIST", protocol.ORDER_NOT_EXIST):
            return NotFound()
        if answer.get("retCode") == protocol.SUCCESS and answer.get("status") == "SUCCESS":
            return RefundSucceeded(reference=str(answer["refundNo"]))
        return Unknown(f"the e-CNY refund query answered {answer.get('status') or answer.get('errCode')}")

    # --- agreements ---

    async def start_agreement(self, terms: AgreementTerms) -> StartOutcome:
        content = {
            "outAgreementNo": terms.external_agreement_no,
            "singleLimit": terms.single_amount_limit,
            "periodType": terms.period.upper(),
            "periodCount": terms.period_count,
            "subject": terms.subject[:64],
            "entry": "QR_CODE" if terms.display == "qr_code" else "H5",
            "expireTime": protocol.time_text(terms.expires_at),
            "notifyUrl": self.notify_url,
        }
        if terms.return_url:
            content["returnUrl"] = terms.return_url
        try:
            answer = await self._call("agreements/sign", content)
        except Answer as answer_:
            return answer_.outcome
        if answer.get("retCode") != protocol.SUCCESS or not answer.get("signUrl"):
            return TechnicalError("gateway_request_invalid", f"agreements/sign: {answer.get('errCode')}")
        return SignLink(url=str(answer["signUrl"]))

    async def retrieve_agreement(self, external_agreement_no: str) -> AgreementOutcome:
        try:
            answer = await self._call("agreements/query", {"outAgreementNo": external_agreement_no})
        except Answer as answer_:
            return answer_.outcome
        if answer.get("errCode") == "AGREEMENT_NOT_EXIST":
            return NotFound()
        if answer.get("retCode") != protocol.SUCCESS:
            return Unknown(f"the e-CNY agreement query answered {answer.get('errCode')}")
        return AgreementState(
            status=_STATES.get(str(answer.get("status")), "ended"),  # type: ignore[arg-type]
            agreement_no=answer.get("agreementId"),
            buyer=answer.get("walletId"),
            signed_at=protocol.parse_time(answer["signTime"]) if answer.get("signTime") else None,
        )

    async def end_agreement(self, agreement: AgreementInstrument) -> AgreementOutcome:
        try:
            answer = await self._call("agreements/cancel", {"agreementId": agreement.agreement_no})
        except Answer as answer_:
            return answer_.outcome
        if answer.get("retCode") == protocol.SUCCESS:
            return AgreementState(status="ended", agreement_no=agreement.agreement_no, ended_at=utc_now())
        if answer.get("errCode") == "AGREEMENT_NOT_EXIST":
            return NotFound()
        return TechnicalError("gateway_request_invalid", f"agreements/cancel: {answer.get('errCode')}")

    # --- notifications ---

    async def read_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        try:
            text = body.decode("utf-8")
            merchant = protocol.verify(headers, text, self._operator_key, now=_wall_seconds())
            envelope = protocol.read_json(body)
        except (UnicodeDecodeError, protocol.SignatureError) as exc:
            raise NotificationRefused(f"the notification does not verify: {exc}") from None
        if merchant != self._merchant or envelope.get("merchantNo") != self._merchant:
            raise NotificationRefused(f"merchant {merchant!r} is not this connection's")
        notify_id, event = str(envelope.get("notifyId") or ""), envelope.get("eventType")
        data = envelope.get("data")
        if not notify_id or not isinstance(data, dict):
            raise NotificationRefused("the notification has no notifyId or data")
        try:
            if event == "AGREEMENT.SIGNED":
                return AgreementSigned(
                    notify_id=notify_id,
                    external_agreement_no=str(data["outAgreementNo"]),
                    agreement_no=str(data["agreementId"]),
                    buyer=str(data.get("walletId", "")),
                    signed_at=protocol.parse_time(str(data["signTime"])),
                )
            if event == "AGREEMENT.CANCELLED":
                return AgreementEnded(
                    notify_id=notify_id,
                    agreement_no=str(data["agreementId"]),
                    external_agreement_no=data.get("outAgreementNo") or None,
                    ended_at=protocol.parse_time(str(data["cancelTime"])),
                    by="merchant" if data.get("cancelBy") == "MERCHANT" else "customer",
                )
            if event == "PAYMENT.SUCCESS":
                amount = data["amount"]
                if not isinstance(amount, int) or isinstance(amount, bool):
                    raise ValueError("amount")
                return ChargeNotice(
                    notify_id=notify_id,
                    idempotency_key=str(data["outTradeNo"]),
                    amount=amount,
                    currency=str(data.get("currency", CHANNEL_CURRENCY)),
                    outcome=Succeeded(reference=str(data["tradeNo"])),
                )
            if event == "REFUND.SUCCESS":
                return RefundNotice(
                    notify_id=notify_id,
                    idempotency_key=str(data["outRefundNo"]),
                    amount=int(data["amount"]),
                    outcome=RefundSucceeded(reference=str(data["refundNo"])),
                )
        except (KeyError, ValueError, TypeError) as exc:
            raise NotificationRefused(f"a {event} notification without a valid {exc}") from None
        return Ignored(notify_id, f"eventType {event}")

    # --- settlement ---

    async def settlement(self, day: date) -> list[SettlementRow]:
        """The day's bill, fetched and parsed: the real parsing path, sandbox or not."""
        try:
            answer = await self._call("bills", {"billDate": day.isoformat()})
        except Answer as answer_:
            raise RuntimeError(f"the e-CNY bill of {day} could not be fetched: {answer_.outcome}") from None
        if answer.get("retCode") != protocol.SUCCESS or not isinstance(answer.get("content"), str):
            raise RuntimeError(f"the e-CNY operator refused the bill of {day}: {answer.get('errCode')}")
        return protocol.parse_bill(answer["content"])
