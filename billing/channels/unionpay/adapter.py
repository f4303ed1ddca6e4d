"""The UnionPay adapter: the gateway interface and the channel operations over UnionPay's 全渠道 gateway, for one
connection (one UnionPay merchant, `merId`), debiting 无感支付 tokens.

Every back-office call is a form POST signed with the merchant's private key (opened from the vault per call),
named by `certId`; every answer is verified with UnionPay's public key before it is believed. Our idempotency key
travels in `reqReserved` (echoed in answers, notifications and the settlement file); `orderId` is that key with
what UnionPay does not allow removed (letters and digits only). What answers mean:
- consume respCode 00: succeeded; 03/04/05: unknown (the janitor asks with txnType 00); 12 (a repeat of an order
  that exists): asked at once; request errors (format, signature, merchant): technical; other codes: declines by
  protocol.RESP_DECLINES (51 balance → insufficient_funds, soft; 62 frozen → account_frozen, hard; 77 token
  deleted → revocation_of_authorization, hard; 79 token expired → token_expired, expired class);
- an answer that does not verify: unknown (never believed, never a reason to debit again).
The token is opened on UnionPay's page (txnType 79, a signed front request the browser carries): the link is a
signed GET URL to `frontTransReq.do` (the real gateway takes the same fields as an auto-submitted form POST).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import date
from urllib.parse import urlencode

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
from billing.channels.unionpay import protocol
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

CHANNEL = "unionpay"
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def order_id(key: str) -> str:
    """UnionPay's orderId for one of our keys: letters and digits only, 8 to 40 of them."""
    return _NOT_ALNUM.sub("", key)[:40].ljust(8, "0")


class UnionpayGateway:
    def __init__(
        self,
        connection: ConnectionConfig,
        client: httpx.AsyncClient,
        *,
        secrets: SecretBox | None,
        in_process: bool,
        browser_url: str,
        notify_url: str,
    ) -> None:
        self.connection = connection
        self._http = GatewayHttp(connection, client, in_process=in_process)
        self._secrets = secrets
        self._browser_url = browser_url
        self.notify_url = notify_url
        self._mer_id = connection.credentials.get("mer_id", "")
        self._cert_id = connection.credentials.get("merchant_cert_id", "")
        self._unionpay_key = connection.credentials.get("unionpay_public_key", "")

    def _fields(self, txn: tuple[str, str], order: str, **extra: str) -> dict[str, str]:
        return {
            "version": protocol.VERSION,
            "encoding": "UTF-8",
            "txnType": txn[0],
            "txnSubType": txn[1],
            "bizType": "000000" if txn == protocol.FILE else protocol.BIZ_TYPE,
            "channelType": "07",
            "accessType": "0",
            "merId": self._mer_id,
            "orderId": order,
            "txnTime": protocol.txn_time(utc_now()),
            **extra,
        }

    async def _signed(self, fields: Mapping[str, str]) -> dict[str, str]:
        try:
            private_key = await open_credential(self._secrets, self.connection, "merchant_private_key")
        except CredentialError as exc:
            raise Answer(TechnicalError("gateway_refused", str(exc))) from None
        return protocol.sign(fields, private_key, self._cert_id)

    async def _call(self, path: str, fields: Mapping[str, str]) -> dict[str, str]:
        """The verified answer of one call (any respCode); raises Answer for transport trouble."""
        signed = await self._signed(fields)
        response = await self._http.request("POST", path, data=signed)
        if response.status_code != 200:
            raise Answer(server_trouble(response))
        try:
            answer = protocol.read_form(response.content)
        except protocol.SignatureError as exc:
            raise Answer(Unknown(f"UnionPay's answer is unreadable: {exc}")) from None
        if not protocol.verify(answer, self._unionpay_key):
            raise Answer(Unknown(f"UnionPay's answer to txnType {fields['txnType']} does not verify"))
        return answer

    # --- gateway ---

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        token = request.instrument
        if not isinstance(token, AgreementInstrument) or token.channel != CHANNEL:
            return TechnicalError(
                "instrument_not_supported", "a UnionPay connection debits UnionPay tokens only"
            )
        if request.currency != CHANNEL_CURRENCY:
            return Declined(code="currency_not_supported", decline_type="hard")
        fields = self._fields(
            protocol.CONSUME,
            order_id(request.idempotency_key),
            txnAmt=str(request.amount),
            currencyCode=protocol.CURRENCY_CODE,
            backUrl=self.notify_url,
            reqReserved=request.idempotency_key,
            tokenPayData=protocol.write_token_data({"token": token.agreement_no}),
        )
        try:
            answer = await self._call(protocol.BACK_PATH, fields)
        except Answer as answer_:
            return answer_.outcome
        code = answer.get("respCode", "")
        if code == protocol.SUCCESS:
            return Succeeded(reference=answer["queryId"])
        if code in protocol.PENDING:
            return Unknown(f"UnionPay is still processing the debit ({code})")
        if code == protocol.DUPLICATE:
            found = await self.retrieve(request.idempotency_key)
            return (
                Unknown("the order exists but the query did not find it")
                if isinstance(found, NotFound)
                else found
            )
        if code in protocol.REQUEST_ERRORS:
            return TechnicalError("gateway_request_invalid", f"{code} {answer.get('respMsg', '')}".strip())
        decline = protocol.decline_code(code)
        return Declined(
            code=decline, decline_type=decline_type(decline) or "soft", reference=answer.get("queryId")
        )

    async def _query(self, key: str) -> dict[str, str] | NotFound:
        answer = await self._call(protocol.QUERY_PATH, self._fields(protocol.QUERY, order_id(key)))
        code = answer.get("respCode", "")
        if code == protocol.NOT_FOUND:
            return NotFound()
        if code != protocol.SUCCESS:
            raise Answer(Unknown(f"UnionPay answered {code} to the query"))
        return answer

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        try:
            found = await self._query(idempotency_key)
        except Answer as answer:
            return answer.outcome
        if isinstance(found, NotFound):
            return found
        orig = found.get("origRespCode", "")
        if orig == protocol.SUCCESS:
            return Succeeded(reference=found["queryId"])
        if orig in protocol.PENDING:
            return Unknown(f"the debit is still being processed ({orig})")
        decline = protocol.decline_code(orig)
        return Declined(
            code=decline, decline_type=decline_type(decline) or "soft", reference=found.get("queryId")
        )

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        if request.currency != CHANNEL_CURRENCY:
            return RefundFailed(code="currency_not_supported")
        fields = self._fields(
            protocol.REFUND,
            order_id(request.idempotency_key),
            txnAmt=str(request.amount),
            currencyCode=protocol.CURRENCY_CODE,
            origOrderId=order_id(request.charge_key),
            origQryId=request.charge_reference or "",
            backUrl=self.notify_url,
            reqReserved=request.idempotency_key,
        )
        try:
            answer = await self._call(protocol.BACK_PATH, fields)
        except Answer as answer_:
            return answer_.outcome
        code = answer.get("respCode", "")
        if code == protocol.SUCCESS:
            return RefundSucceeded(reference=answer["queryId"])
        if code in protocol.PENDING:
            return Unknown(f"UnionPay is still processing the refund ({code})")
        if code in protocol.REFUND_FAILURES:
            return RefundFailed(code=protocol.REFUND_FAILURES[code])
        if code in protocol.REQUEST_ERRORS:
            return TechnicalError("gateway_request_invalid", f"{code} {answer.get('respMsg', '')}".strip())
        return RefundFailed(code="refund_failed")

    async def retrieve_refund(self, idempotency_key: str, charge_key: str) -> RetrieveRefundOutcome:
        try:
            found = await self._query(idempotency_key)
        except Answer as answer:
            return answer.outcome
        if isinstance(found, NotFound):
            return found
        if found.get("origRespCode") == protocol.SUCCESS:
            return RefundSucceeded(reference=found["queryId"])
        return Unknown(f"the refund is {found.get('origRespCode')}")

    # --- tokens ---

    async def start_agreement(self, terms: AgreementTerms) -> StartOutcome:
        fields = self._fields(
            protocol.OPEN_TOKEN,
            order_id(terms.external_agreement_no),
            backUrl=self.notify_url,
            tokenPayData=protocol.write_token_data({"trId": self._mer_id[-11:], "tokenType": "01"}),
            reqReserved=terms.external_agreement_no,
        )
        if terms.return_url:
            fields["frontUrl"] = terms.return_url
        try:
            signed = await self._signed(fields)
        except Answer as answer:
            return answer.outcome
        return SignLink(url=f"{self._browser_url}{protocol.FRONT_PATH}?{urlencode(signed)}")

    async def retrieve_agreement(self, external_agreement_no: str) -> AgreementOutcome:
        try:
            answer = await self._call(
                protocol.BACK_PATH, self._fields(protocol.TOKEN_QUERY, order_id(external_agreement_no))
            )
        except Answer as answer_:
            return answer_.outcome
        code = answer.get("respCode", "")
        if code == protocol.NOT_FOUND:
            return NotFound()
        if code != protocol.SUCCESS:
            return Unknown(f"UnionPay answered {code} to the token query")
        token = protocol.token_data(answer)
        status = {"00": "active", "01": "ended"}.get(answer.get("tokenStatus", ""), "pending")
        return AgreementState(
            status=status,  # type: ignore[arg-type]
            agreement_no=token.get("token"),
            buyer=answer.get("accNo"),
            signed_at=protocol.parse_txn_time(token["tokenBegin"]) if token.get("tokenBegin") else None,
        )

    async def end_agreement(self, agreement: AgreementInstrument) -> AgreementOutcome:
        fields = self._fields(
            protocol.DELETE_TOKEN,
            order_id("del" + agreement.external_agreement_no),
            backUrl=self.notify_url,
            tokenPayData=protocol.write_token_data({"token": agreement.agreement_no}),
        )
        try:
            answer = await self._call(protocol.BACK_PATH, fields)
        except Answer as answer_:
            return answer_.outcome
        code = answer.get("respCode", "")
        if code == protocol.SUCCESS:
            return AgreementState(status="ended", agreement_no=agreement.agreement_no, ended_at=utc_now())
        if code == "77":
            return NotFound()
        return TechnicalError("gateway_request_invalid", f"{code} {answer.get('respMsg', '')}".strip())

    # --- notifications (backUrl) ---

    async def read_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        try:
            fields = protocol.read_form(body)
        except protocol.SignatureError as exc:
            raise NotificationRefused(str(exc)) from None
        if not protocol.verify(fields, self._unionpay_key):
            raise NotificationRefused(
                "the signature does not verify under the connection's UnionPay public key"
            )
        if fields.get("merId") != self._mer_id:
            raise NotificationRefused(f"merId {fields.get('merId')!r} is not this connection's merchant")
        txn_type, query_id = fields.get("txnType", ""), fields.get("queryId", "")
        if not query_id:
            raise NotificationRefused("the notification has no queryId")
        # UnionPay sends no notification id: a transaction's queryId and type name it, and a repeat carries both.
        notify_id = f"{txn_type}:{query_id}"
        code = fields.get("respCode", "")
        try:
            if txn_type == protocol.OPEN_TOKEN[0]:
                token = protocol.token_data(fields)
                if code != protocol.SUCCESS:
                    return Ignored(notify_id, f"token not opened ({code})")
                return AgreementSigned(
                    notify_id=notify_id,
                    external_agreement_no=fields["reqReserved"],
                    agreement_no=token["token"],
                    buyer=fields.get("accNo", ""),
                    signed_at=protocol.parse_txn_time(token.get("tokenBegin") or fields["txnTime"]),
                    valid_until=protocol.parse_txn_time(token["tokenEnd"]) if token.get("tokenEnd") else None,
                )
            if txn_type == protocol.TOKEN_CANCELLED:
                token = protocol.token_data(fields)
                return AgreementEnded(
                    notify_id=notify_id,
                    agreement_no=token["token"],
                    external_agreement_no=fields.get("reqReserved") or None,
                    ended_at=protocol.parse_txn_time(fields["txnTime"]),
                    by="merchant" if fields.get("cancelBy") == "merchant" else "customer",
                )
            if txn_type == protocol.CONSUME[0] and code == protocol.SUCCESS:
                return ChargeNotice(
                    notify_id=notify_id,
                    idempotency_key=fields["reqReserved"],
                    amount=int(fields["txnAmt"]),
                    currency=CHANNEL_CURRENCY,
                    outcome=Succeeded(reference=query_id),
                )
            if txn_type == protocol.REFUND[0] and code == protocol.SUCCESS:
                return RefundNotice(
                    notify_id=notify_id,
                    idempotency_key=fields["reqReserved"],
                    amount=int(fields["txnAmt"]),
                    outcome=RefundSucceeded(reference=query_id),
                )
        except (KeyError, ValueError) as exc:
            raise NotificationRefused(f"a txnType {txn_type} notification without a valid {exc}") from None
        return Ignored(notify_id, f"txnType {txn_type} respCode {code}")

    # --- settlement ---

    async def settlement(self, day: date) -> list[SettlementRow]:
        """The day's settlement file (txnType 76), downloaded and parsed: the real parsing path, sandbox or not."""
        fields = self._fields(
            protocol.FILE, order_id("file" + day.isoformat()), settleDate=f"{day:%m%d}", fileType="00"
        )
        try:
            answer = await self._call(protocol.FILE_PATH, fields)
        except Answer as answer_:
            raise RuntimeError(
                f"the UnionPay file of {day} could not be fetched: {answer_.outcome}"
            ) from None
        if answer.get("respCode") != protocol.SUCCESS:
            raise RuntimeError(
                f"UnionPay refused the file of {day}: {answer.get('respCode')} {answer.get('respMsg')}"
            )
        try:
            archive = base64.b64decode(answer.get("fileContent", ""), validate=True)
        except (binascii.Error, ValueError):
            raise RuntimeError(f"the UnionPay file of {day} is not base64") from None
        return protocol.parse_settlement_file(archive)
