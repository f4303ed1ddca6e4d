"""The gateway interface (SPEC §6): every payment processor is an adapter with charge, retrieve and refund, each
called with an idempotency key, answering with one of a few outcome classes.

The outcome classes carry the rule that keeps money safe:
- `Succeeded` / `Declined`: the gateway decided; the payment settles.
- `TechnicalError`: the gateway says the charge was NOT made (it was down, refused the connection, had a
  processing error). Safe to fail over to the next connection at once.
- `Unknown`: the request may or may not have been processed (a timeout after sending, a dropped connection).
  Never retried elsewhere; the payment stays pending until `retrieve` with the same key says what happened.

Cards today; local methods (Alipay, WeChat Pay agreements) add their own `Instrument` type and adapter type, and
register it in `billing.gateways.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from billing.vault.cards import SecretPan


@dataclass(frozen=True)
class ConnectionConfig:
    """One entry of a merchant's `settings.gateways`: which adapter, where, and how it takes part in routing."""

    id: str
    type: str
    url: str | None
    weight: int = 1
    priority: int = 0
    timeout_ms: int = 10_000


@dataclass(frozen=True, repr=False)
class CardInstrument:
    pan: SecretPan
    brand: str
    exp_month: int
    exp_year: int
    # Only on the first authorization after the card was entered (billing.vault.cvc); None afterwards.
    cvc: str | None = None

    def __repr__(self) -> str:
        return f"CardInstrument({self.brand} ****{self.pan.last4} {self.exp_month:02d}/{self.exp_year})"


Instrument = CardInstrument


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    amount: int
    currency: str
    instrument: Instrument
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    # The idempotency key the charge was made with (the payment id) and the gateway's own reference to it.
    charge_key: str
    charge_reference: str | None
    amount: int
    currency: str
    reason: str | None = None


@dataclass(frozen=True)
class Succeeded:
    reference: str
    kind: Literal["succeeded"] = "succeeded"


@dataclass(frozen=True)
class Declined:
    code: str
    decline_type: Literal["hard", "soft"]
    reference: str | None = None
    kind: Literal["declined"] = "declined"


@dataclass(frozen=True)
class TechnicalError:
    code: str
    detail: str
    kind: Literal["technical_error"] = "technical_error"


@dataclass(frozen=True)
class Unknown:
    detail: str
    kind: Literal["unknown"] = "unknown"


@dataclass(frozen=True)
class NotFound:
    """`retrieve`: the gateway never processed a request with this key."""

    kind: Literal["not_found"] = "not_found"


@dataclass(frozen=True)
class RefundSucceeded:
    reference: str
    kind: Literal["succeeded"] = "succeeded"


@dataclass(frozen=True)
class RefundFailed:
    code: str
    reference: str | None = None
    kind: Literal["declined"] = "declined"


ChargeOutcome = Succeeded | Declined | TechnicalError | Unknown
RetrieveOutcome = Succeeded | Declined | TechnicalError | Unknown | NotFound


@dataclass(frozen=True)
class SettlementRow:
    """One line of a connection's daily settlement listing (SPEC §8), in the engine's terms, whatever the
    gateway's or channel's own file format: what reconciliation matches against payments and refunds."""

    kind: Literal["charge", "refund"]
    # The idempotency key the engine sent: a payment id for a charge, a refund id for a refund.
    idempotency_key: str
    # The gateway's or channel's own reference to the transaction.
    reference: str
    # Minor units, positive for both kinds; `fee` is what the gateway kept (minor units, never negative).
    amount: int
    currency: str
    fee: int
    settled_at: datetime


RefundOutcome = RefundSucceeded | RefundFailed | TechnicalError | Unknown
RetrieveRefundOutcome = RefundSucceeded | RefundFailed | TechnicalError | Unknown | NotFound


class Gateway(Protocol):
    """An adapter. Implementations never raise for gateway trouble: they return TechnicalError or Unknown."""

    connection: ConnectionConfig

    async def charge(self, request: ChargeRequest) -> ChargeOutcome: ...

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome: ...

    async def refund(self, request: RefundRequest) -> RefundOutcome: ...

    async def retrieve_refund(self, idempotency_key: str) -> RetrieveRefundOutcome: ...
