"""The sandbox adapter: speaks HTTP (httpx) to a sandbox gateway, standalone or in-process, and turns every
answer, error and timeout into an outcome class.

Which failures are technical (the charge was certainly not made, fail over) and which are unknown (it may have
been made, ask later) is decided here, by what reached the gateway:
- connect errors and pool timeouts: nothing was sent → TechnicalError;
- 503 (the gateway says it is down), or a 200 with status "error": not processed → TechnicalError;
- read/write timeouts, a dropped connection, any other 5xx, our own deadline: the request may have been
  processed → Unknown.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from billing.gateways.base import (
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
    Succeeded,
    TechnicalError,
    Unknown,
)
from dunning.declines import classify_decline, decline_type


class _Answer(Exception):
    """Internal: a failure already classified as an outcome."""

    def __init__(self, outcome: TechnicalError | Unknown) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class SandboxGateway:
    def __init__(self, connection: ConnectionConfig, client: httpx.AsyncClient, *, in_process: bool) -> None:
        self.connection = connection
        self._client = client
        self._in_process = in_process
        seconds = connection.timeout_ms / 1000
        self._timeout = httpx.Timeout(seconds, connect=min(seconds, 3.0), pool=min(seconds, 3.0))
        # httpx timeouts do not apply to an in-process (ASGI) transport; our own deadline does, always. Over the
        # network it is a backstop just above httpx's own, which classify more precisely.
        self._deadline = seconds if in_process else seconds * 2 + 1

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            async with asyncio.timeout(self._deadline):
                return await self._client.request(method, path, json=body, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Answer(
                TechnicalError("gateway_unreachable", f"{type(exc).__name__} on {method} {path}")
            ) from None
        except httpx.TimeoutException as exc:
            raise _Answer(
                Unknown(f"{type(exc).__name__}: no answer within {self.connection.timeout_ms} ms")
            ) from None
        except TimeoutError:
            raise _Answer(Unknown(f"no answer within {self.connection.timeout_ms} ms")) from None
        except httpx.HTTPError as exc:
            raise _Answer(Unknown(f"{type(exc).__name__} during {method} {path}")) from None

    def _server_trouble(self, response: httpx.Response) -> TechnicalError | Unknown:
        if response.status_code == 503:
            return TechnicalError("gateway_unavailable", "the gateway answered 503 (down)")
        if response.status_code >= 500:
            return Unknown(f"the gateway answered {response.status_code}")
        return TechnicalError(
            "gateway_request_invalid", f"the gateway refused the request ({response.status_code})"
        )

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise _Answer(Unknown("the gateway answered something that is not JSON")) from None
        if not isinstance(data, dict):
            raise _Answer(Unknown("the gateway answered an unexpected JSON shape"))
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
        body: dict[str, Any] = {
            "idempotency_key": request.idempotency_key,
            "amount": request.amount,
            "currency": request.currency,
            "card": {"number": card.pan.reveal(), "exp_month": card.exp_month, "exp_year": card.exp_year},
            "description": request.description,
            "metadata": request.metadata,
        }
        if card.cvc is not None:
            body["card"]["cvc"] = card.cvc
        try:
            response = await self._request("POST", "/charges", body)
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._charge_outcome(self._json(response))
        except _Answer as answer:
            return answer.outcome

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        try:
            response = await self._request("GET", f"/charges/{idempotency_key}")
            if response.status_code == 404:
                return NotFound()
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._charge_outcome(self._json(response))
        except _Answer as answer:
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
        except _Answer as answer:
            return answer.outcome

    async def retrieve_refund(self, idempotency_key: str) -> RetrieveRefundOutcome:
        try:
            response = await self._request("GET", f"/refunds/{idempotency_key}")
            if response.status_code == 404:
                return NotFound()
            if response.status_code != 200:
                return self._server_trouble(response)
            return self._refund_outcome(self._json(response))
        except _Answer as answer:
            return answer.outcome
