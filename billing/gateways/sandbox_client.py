"""The sandbox adapter: speaks HTTP (httpx) to a sandbox gateway, standalone or in-process, and turns every
answer, error and timeout into an outcome class (billing.gateways.transport says which failures are technical
and which unknown; a 200 with status "error" is a processing error: technical).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import httpx

from billing.gateways.base import (
    CardInstrument,
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
from billing.gateways.transport import Answer, GatewayHttp, server_trouble
from dunning.declines import classify_decline, decline_type


class SandboxGateway:
    def __init__(self, connection: ConnectionConfig, client: httpx.AsyncClient, *, in_process: bool) -> None:
        self.connection = connection
        self._http = GatewayHttp(connection, client, in_process=in_process)

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self._http.request(method, path, json=body)

    def _server_trouble(self, response: httpx.Response) -> TechnicalError | Unknown:
        return server_trouble(response)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise Answer(Unknown("the gateway answered something that is not JSON")) from None
        if not isinstance(data, dict):
            raise Answer(Unknown("the gateway answered an unexpected JSON shape"))
        return data

    @staticmethod
    def _charge_outcome(data: dict[str, Any]) -> Succeeded | Declined | TechnicalError | Unknown:
        status = data.get("status")
        if status == "succeeded":
            return Succeeded(reference=str(data["id"]))
        if status == "declined":
            code = str(data.get("decline_code") or "generic_decline")
            kind = decline_type(code)
            if kind is None:
                return TechnicalError(code, "the gateway answered a technical error")
            return Declined(code=code, decline_type=kind, reference=str(data.get("id") or "") or None)
        if status == "error":
            code = str(data.get("code") or "processing_error")
            if classify_decline(code) == "technical":
                return TechnicalError(code, "the gateway did not process the charge")
            return Unknown(f"the gateway answered error {code}")
        return Unknown(f"the gateway answered status {status!r}")

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        card = request.instrument
        if not isinstance(card, CardInstrument):
            return TechnicalError("instrument_not_supported", "the sandbox card processor takes cards only")
        body: dict[str, Any] = {
            "idempotency_key": request.idempotency_key,
            "amount": request.amount,
            "currency": request.currency,
            "card": {"number": card.pan.reveal(), "exp_month": card.exp_month, "exp_year": card.exp_year},
            "description": request.description,
            "metadata": request.metadata,
            "account": self.connection.merchant_id or None,
        }
        if card.cvc is not None:
            body["card"]["cvc"] = card.cvc
        try:
            response = await self._request("POST", "/charges", body)
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._charge_outcome(self._json(response))
        except Answer as answer:
            return answer.outcome

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        try:
            response = await self._request("GET", f"/charges/{idempotency_key}")
            if response.status_code == 404:
                return NotFound()
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._charge_outcome(self._json(response))
        except Answer as answer:
            return answer.outcome

    @staticmethod
    def _refund_outcome(data: dict[str, Any]) -> RefundSucceeded | RefundFailed | Unknown:
        status = data.get("status")
        if status == "succeeded":
            return RefundSucceeded(reference=str(data["id"]))
        if status == "failed":
            return RefundFailed(
                code=str(data.get("failure_code") or "refund_failed"), reference=data.get("id")
            )
        return Unknown(f"the gateway answered refund status {status!r}")

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        body = {
            "idempotency_key": request.idempotency_key,
            "charge": request.charge_key,
            "amount": request.amount,
            "reason": request.reason,
        }
        try:
            response = await self._request("POST", "/refunds", body)
            if response.status_code == 404:
                return RefundFailed(code="charge_not_found")
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._refund_outcome(self._json(response))
        except Answer as answer:
            return answer.outcome

    async def settlement(self, day: date) -> list[SettlementRow]:
        """The listing of `day` (UTC) for this connection's merchant. Raises RuntimeError when it cannot be had."""
        account = self.connection.merchant_id
        try:
            response = await self._request(
                "GET", f"/settlements/{day.isoformat()}" + (f"/{account}" if account else "")
            )
        except Answer as answer:
            raise RuntimeError(
                f"the sandbox settlement of {day} could not be fetched: {answer.outcome}"
            ) from None
        if response.status_code != 200:
            raise RuntimeError(
                f"the sandbox settlement of {day} could not be fetched ({response.status_code})"
            )
        return [
            SettlementRow(
                kind=row["kind"],
                idempotency_key=row["idempotency_key"],
                reference=row["reference"],
                amount=int(row["amount"]),
                currency=row["currency"],
                fee=int(row["fee"]),
                settled_at=datetime.fromisoformat(row["settled_at"]),
            )
            for row in self._json(response)["data"]
        ]

    async def retrieve_refund(self, idempotency_key: str, charge_key: str) -> RetrieveRefundOutcome:
        try:
            response = await self._request("GET", f"/refunds/{idempotency_key}")
            if response.status_code == 404:
                return NotFound()
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._refund_outcome(self._json(response))
        except Answer as answer:
            return answer.outcome
