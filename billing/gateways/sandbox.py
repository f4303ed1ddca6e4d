"""The sandbox gateway (SPEC §6): a small card processor over HTTP, for development and tests.

It runs standalone (`billing sandbox-gateway --port P`, uvicorn) or in-process (the same ASGI app behind
`httpx.ASGITransport`). What it charged and refunded is its ledger, like a processor's own database: in memory
for a standalone sandbox, in Redis (under the engine's key prefix) for the in-process one, so that the API and
worker processes of one engine share one processor — a charge the API left unconfirmed is found by the worker's
janitor, as it would be at a real processor. Its switches (mode, delays) stay per process.

Behaviour a billing engine must survive, on purpose:
- the test card number decides each charge (TEST_CARDS); any other valid number succeeds;
- an idempotency key per charge and per refund: the same key never charges (or refunds) twice, it answers the
  first result. A charge is recorded the moment it arrives, before any delay, as a real processor commits
  before it answers; only technical errors (processing_error, down) are not recorded, so a retry re-runs them;
- `POST /admin/mode {"mode": "normal"|"slow"|"down", "delay_ms": N}`: slow delays every answer, down answers
  503 to everything but /admin, so timeouts and failover can be tested for real;
- 4000 0027 6000 3184 is charged, then the answer never comes (it waits `hang_ms`, 30 s by default): the caller
  times out and must ask `GET /charges/{key}`, which answers succeeded.

Card numbers are used to decide the outcome and dropped: the sandbox keeps only brand and last four digits.

Routes: POST /charges, GET /charges/{key}, POST /refunds, GET /refunds/{key}, POST /admin/mode,
GET /admin/state, POST /admin/reset.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis

from billing.gateways.asgi import HttpRequest, HttpResponse, MiniApp, serve
from billing.ids import random_token
from billing.luhn import luhn_valid
from billing.vault.cards import detect_brand

HANG_CARD = "4000002760003184"
PROCESSING_ERROR_CARD = "4000000000000119"
TEST_CARDS: dict[str, str | None] = {
    "4242424242424242": None,
    "5555555555554444": None,
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000009979": "stolen_card",
    "4000000000000119": "processing_error",
    "4000000000000341": "card_declined",
    HANG_CARD: None,
}
MODES = ("normal", "slow", "down")


@dataclass
class SandboxCharge:
    id: str
    idempotency_key: str
    amount: int
    currency: str
    status: str  # succeeded | declined
    decline_code: str | None
    brand: str
    last4: str
    cvc_provided: bool
    amount_refunded: int = 0
    created: float = field(default_factory=time.time)
    object: str = "charge"
    # The merchant account the charge was made for (one sandbox serves every merchant of a process): its
    # settlement listing holds its own charges only.
    account: str | None = None


@dataclass
class SandboxRefund:
    id: str
    idempotency_key: str
    charge: str
    amount: int
    status: str  # succeeded | failed
    failure_code: str | None
    created: float = field(default_factory=time.time)
    object: str = "refund"


class SandboxLedger(Protocol):
    """The charges and refunds a sandbox made, by idempotency key."""

    async def charge(self, key: str) -> SandboxCharge | None: ...

    async def add_charge(self, charge: SandboxCharge) -> SandboxCharge:
        """Record `charge` unless its key already has one; returns the charge the key holds."""
        ...

    async def refund(self, key: str) -> SandboxRefund | None: ...

    async def add_refund(self, refund: SandboxRefund) -> SandboxRefund: ...

    async def take_refundable(self, charge: SandboxCharge, amount: int) -> bool:
        """Count `amount` as refunded from `charge` if that leaves no more refunded than charged (atomic)."""
        ...

    async def everything(self) -> tuple[list[SandboxCharge], list[SandboxRefund]]: ...

    async def clear(self) -> None: ...


class MemoryLedger:
    def __init__(self) -> None:
        self.charges: dict[str, SandboxCharge] = {}
        self.refunds: dict[str, SandboxRefund] = {}

    async def charge(self, key: str) -> SandboxCharge | None:
        return self.charges.get(key)

    async def add_charge(self, charge: SandboxCharge) -> SandboxCharge:
        return self.charges.setdefault(charge.idempotency_key, charge)

    async def refund(self, key: str) -> SandboxRefund | None:
        return self.refunds.get(key)

    async def add_refund(self, refund: SandboxRefund) -> SandboxRefund:
        return self.refunds.setdefault(refund.idempotency_key, refund)

    async def take_refundable(self, charge: SandboxCharge, amount: int) -> bool:
        held = self.charges[charge.idempotency_key]
        if held.amount_refunded + amount > held.amount:
            return False
        held.amount_refunded += amount
        return True

    async def everything(self) -> tuple[list[SandboxCharge], list[SandboxRefund]]:
        return list(self.charges.values()), list(self.refunds.values())

    async def clear(self) -> None:
        self.charges.clear()
        self.refunds.clear()


class RedisLedger:
    """The ledger in two Redis hashes (and a third for refunded amounts, moved with HINCRBY so that concurrent
    refunds of one charge from several processes never refund more than was charged)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        # redis-py types its hash commands as "awaitable or not" (one class for sync and async clients).
        self._redis: Any = redis
        self._charges = f"{prefix}:sandbox:charges"
        self._refunds = f"{prefix}:sandbox:refunds"
        self._refunded = f"{prefix}:sandbox:refunded"

    async def charge(self, key: str) -> SandboxCharge | None:
        raw = await self._redis.hget(self._charges, key)
        if raw is None:
            return None
        charge = msgspec.json.decode(raw, type=SandboxCharge)
        charge.amount_refunded = int(await self._redis.hget(self._refunded, key) or 0)
        return charge

    async def add_charge(self, charge: SandboxCharge) -> SandboxCharge:
        if await self._redis.hsetnx(self._charges, charge.idempotency_key, msgspec.json.encode(charge)):
            return charge
        held = await self.charge(charge.idempotency_key)
        assert held is not None
        return held

    async def refund(self, key: str) -> SandboxRefund | None:
        raw = await self._redis.hget(self._refunds, key)
        return None if raw is None else msgspec.json.decode(raw, type=SandboxRefund)

    async def add_refund(self, refund: SandboxRefund) -> SandboxRefund:
        if await self._redis.hsetnx(self._refunds, refund.idempotency_key, msgspec.json.encode(refund)):
            return refund
        held = await self.refund(refund.idempotency_key)
        assert held is not None
        return held

    async def take_refundable(self, charge: SandboxCharge, amount: int) -> bool:
        total = int(await self._redis.hincrby(self._refunded, charge.idempotency_key, amount))
        if total > charge.amount:
            await self._redis.hincrby(self._refunded, charge.idempotency_key, -amount)
            return False
        return True

    async def everything(self) -> tuple[list[SandboxCharge], list[SandboxRefund]]:
        charges = [c for key in await self._redis.hkeys(self._charges) if (c := await self.charge(key))]
        refunds = [
            msgspec.json.decode(raw, type=SandboxRefund) for raw in await self._redis.hvals(self._refunds)
        ]
        return charges, refunds

    async def clear(self) -> None:
        await self._redis.delete(self._charges, self._refunds, self._refunded)


@dataclass
class SandboxState:
    """The switches of one sandbox process, and its ledger."""

    ledger: SandboxLedger = field(default_factory=MemoryLedger)
    mode: str = "normal"
    delay_ms: int = 0
    hang_ms: int = 30_000
    charge_requests: int = 0

    async def reset(self) -> None:
        self.mode, self.delay_ms, self.hang_ms = "normal", 0, 30_000
        await self.ledger.clear()
        self.charge_requests = 0


class _CardBody(msgspec.Struct, forbid_unknown_fields=True):
    number: str
    exp_month: int
    exp_year: int
    cvc: str | None = None


class _ChargeBody(msgspec.Struct, forbid_unknown_fields=True):
    idempotency_key: str
    amount: int
    currency: str
    card: _CardBody
    description: str | None = None
    metadata: dict[str, str] = {}
    account: str | None = None


class _RefundBody(msgspec.Struct, forbid_unknown_fields=True):
    idempotency_key: str
    charge: str
    amount: int
    reason: str | None = None


class _ModeBody(msgspec.Struct, forbid_unknown_fields=True):
    mode: str
    delay_ms: int | None = None
    hang_ms: int | None = None


_encoder = msgspec.json.Encoder()


class SandboxApp(MiniApp):
    """The ASGI application; one instance is one processor with its own memory."""

    def __init__(self, state: SandboxState | None = None) -> None:
        self.state = state or SandboxState()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        status, payload = await self.dispatch(request.method, request.path, request.body)
        return HttpResponse(status, _encoder.encode(payload), [("content-type", "application/json")])

    async def dispatch(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        state = self.state
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["admin"]:
            return await self._admin(method, parts[1:], body)
        if state.mode == "down":
            return 503, {"error": {"code": "gateway_unavailable", "message": "The sandbox gateway is down."}}
        try:
            if method == "POST" and parts == ["charges"]:
                return await self._charge(msgspec.json.decode(body, type=_ChargeBody))
            if method == "POST" and parts == ["refunds"]:
                return await self._delayed(await self._refund(msgspec.json.decode(body, type=_RefundBody)))
            if method == "GET" and len(parts) == 2 and parts[0] == "charges":
                charge = await state.ledger.charge(parts[1])
                found = (200, asdict(charge)) if charge else (404, _error("no_such_charge"))
                return await self._delayed(found)
            if method == "GET" and len(parts) in (2, 3) and parts[0] == "settlements":
                return await self._settlement(parts[1], parts[2] if len(parts) == 3 else None)
            if method == "GET" and len(parts) == 2 and parts[0] == "refunds":
                refund = await state.ledger.refund(parts[1])
                found = (200, asdict(refund)) if refund else (404, _error("no_such_refund"))
                return await self._delayed(found)
        except msgspec.ValidationError as exc:
            return 400, _error("invalid_request", str(exc))
        except msgspec.DecodeError:
            return 400, _error("invalid_request", "The body is not JSON.")
        return 404, _error("no_such_route")

    async def _delayed(self, answer: tuple[int, Any]) -> tuple[int, Any]:
        if self.state.mode == "slow" and self.state.delay_ms:
            await asyncio.sleep(self.state.delay_ms / 1000)
        return answer

    async def _charge(self, body: _ChargeBody) -> tuple[int, Any]:
        state = self.state
        state.charge_requests += 1
        number = body.card.number
        hang = number == HANG_CARD
        existing = await state.ledger.charge(body.idempotency_key)
        if existing is not None:
            if existing.amount != body.amount or existing.currency != body.currency.upper():
                return 409, _error(
                    "idempotency_key_reused", "This idempotency key was used for a charge of another amount."
                )
            answer: tuple[int, Any] = (200, asdict(existing))
        elif body.amount <= 0 or len(body.currency) != 3:
            return 400, _error("invalid_request", "amount must be positive and currency a 3-letter code.")
        elif number == PROCESSING_ERROR_CARD:
            answer = (
                200,
                {"status": "error", "code": "processing_error", "idempotency_key": body.idempotency_key},
            )
        else:
            decline = TEST_CARDS.get(number)
            if not (number.isdigit() and 12 <= len(number) <= 19 and luhn_valid(number)):
                decline = "incorrect_number"
            charge = SandboxCharge(
                id="ch_" + random_token(24),
                idempotency_key=body.idempotency_key,
                amount=body.amount,
                currency=body.currency.upper(),
                status="declined" if decline else "succeeded",
                decline_code=decline,
                brand=_brand(number),
                last4=number[-4:],
                cvc_provided=body.card.cvc is not None,
                account=body.account,
            )
            # Recorded before any delay: a processor commits first, then answers (or fails to). Two requests
            # racing with one key get the first one's charge.
            charge = await state.ledger.add_charge(charge)
            answer = (200, asdict(charge))
        if hang:
            await asyncio.sleep(state.hang_ms / 1000)
        return await self._delayed(answer)

    async def _refund(self, body: _RefundBody) -> tuple[int, Any]:
        ledger = self.state.ledger
        existing = await ledger.refund(body.idempotency_key)
        if existing is not None:
            return 200, asdict(existing)
        charge = await ledger.charge(body.charge)
        if charge is None:
            return 404, _error("no_such_charge", "No charge was made with this idempotency key.")
        failure = None
        if charge.status != "succeeded":
            failure = "charge_not_captured"
        elif body.amount <= 0 or not await ledger.take_refundable(charge, body.amount):
            failure = "amount_exceeds_charge"
        refund = SandboxRefund(
            id="rf_" + random_token(24),
            idempotency_key=body.idempotency_key,
            charge=body.charge,
            amount=body.amount,
            status="failed" if failure else "succeeded",
            failure_code=failure,
        )
        held = await ledger.add_refund(refund)
        if held is not refund and failure is None:
            # A concurrent request with the same key recorded its refund first: give back what this one took.
            await ledger.take_refundable(charge, -body.amount)
        return 200, asdict(held)

    async def _settlement(self, day: str, account: str | None) -> tuple[int, Any]:
        """The daily settlement listing (UTC days) of one account: succeeded charges, with a fee of 2.9% + 30
        minor units (half up), and succeeded refunds, without fee."""
        try:
            start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp()
        except ValueError:
            return 400, _error("invalid_request", "The day must be written YYYY-MM-DD.")
        charges, refunds = await self.state.ledger.everything()
        mine = {c.idempotency_key: c for c in charges if account is None or c.account == account}
        rows: list[dict[str, Any]] = []
        for charge in sorted(mine.values(), key=lambda c: c.created):
            if charge.status == "succeeded" and start <= charge.created < start + 86_400:
                rows.append(
                    _settlement_row(
                        "charge",
                        charge.idempotency_key,
                        charge.id,
                        charge.amount,
                        charge.currency,
                        (charge.amount * 29 + 500) // 1000 + 30,
                        charge.created,
                    )
                )
        for refund in sorted(refunds, key=lambda r: r.created):
            paid = mine.get(refund.charge)
            if paid is not None and refund.status == "succeeded" and start <= refund.created < start + 86_400:
                rows.append(
                    _settlement_row(
                        "refund",
                        refund.idempotency_key,
                        refund.id,
                        refund.amount,
                        paid.currency,
                        0,
                        refund.created,
                    )
                )
        return 200, {"object": "list", "day": day, "data": rows}

    async def _admin(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
        state = self.state
        if method == "POST" and parts == ["mode"]:
            try:
                change = msgspec.json.decode(body, type=_ModeBody)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                return 400, _error("invalid_request", str(exc))
            if change.mode not in MODES:
                return 400, _error("invalid_request", f"mode must be one of {', '.join(MODES)}.")
            state.mode = change.mode
            if change.delay_ms is not None:
                state.delay_ms = max(0, change.delay_ms)
            if change.hang_ms is not None:
                state.hang_ms = max(0, change.hang_ms)
        elif method == "POST" and parts == ["reset"]:
            await state.reset()
        elif not (method == "GET" and parts == ["state"]):
            return 404, _error("no_such_route")
        charges, refunds = await state.ledger.everything()
        return 200, {
            "mode": state.mode,
            "delay_ms": state.delay_ms,
            "hang_ms": state.hang_ms,
            "charge_requests": state.charge_requests,
            "charges": [asdict(c) for c in charges],
            "refunds": [asdict(r) for r in refunds],
        }


def _settlement_row(
    kind: str, key: str, reference: str, amount: int, currency: str, fee: int, at: float
) -> dict[str, Any]:
    return {
        "kind": kind,
        "idempotency_key": key,
        "reference": reference,
        "amount": amount,
        "currency": currency,
        "fee": fee,
        "settled_at": datetime.fromtimestamp(at, UTC).isoformat(),
    }


def _brand(number: str) -> str:
    if number.isdigit() and len(number) >= 12:
        return detect_brand(number) or "unknown"
    return "unknown"


def _error(code: str, message: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def in_process_sandbox(redis: Redis, prefix: str) -> SandboxApp:
    """The in-process sandbox of connections with `url: null`: its ledger in the engine's Redis, shared by every
    process of that engine."""
    return SandboxApp(SandboxState(ledger=RedisLedger(redis, prefix)))


def run_standalone(host: str, port: int) -> None:
    """`billing sandbox-gateway`: serve a fresh sandbox over HTTP until interrupted."""
    serve(SandboxApp(), host, port)
