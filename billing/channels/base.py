"""What a channel adapter adds to the gateway interface (billing.gateways.base): the life of a debit agreement
and the channel's signed notifications, in the engine's terms, whatever each channel calls them.

An agreement (Alipay 周期扣款 agreement_no, WeChat Pay 委托代扣 contract_id, UnionPay token, e-CNY sub-wallet
authorization) is started by the engine (`start_agreement` → a link for the customer), approved by the customer
inside the channel, and announced by a signed notification (`read_notification` → `AgreementSigned`). It ends by
the customer in the channel (notification → `AgreementEnded`) or by the merchant (`end_agreement`). Charges and
refunds go through the ordinary `charge` / `refund` with an `AgreementInstrument`; their own notifications
(`ChargeNotice`, `RefundNotice`) settle payments whose answer was lost.

`read_notification` raises `NotificationRefused` for anything it cannot verify (signature, key, connection,
decryption, shape): the engine then answers the channel's failure form and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from billing.gateways.base import (
    AgreementInstrument,
    Declined,
    Gateway,
    NotFound,
    RefundFailed,
    RefundSucceeded,
    SettlementRow,
    Succeeded,
    TechnicalError,
    Unknown,
)

AgreementPeriod = Literal["day", "month"]
CHANNEL_CURRENCY = "CNY"


@dataclass(frozen=True)
class AgreementTerms:
    """What the customer is asked to approve."""

    external_agreement_no: str
    single_amount_limit: int  # fen
    period: AgreementPeriod
    period_count: int
    # Shown to the customer in the channel (who signs: the customer's email or name).
    subject: str
    return_url: str | None
    # The link's end (real time).
    expires_at: datetime
    display: Literal["qr_code", "redirect"] = "qr_code"


@dataclass(frozen=True)
class SignLink:
    """Where the customer approves: a page to redirect to, or to show as a QR code."""

    url: str
    kind: Literal["sign_link"] = "sign_link"


@dataclass(frozen=True)
class AgreementState:
    """What the channel says about an agreement when asked."""

    status: Literal["pending", "active", "ended"]
    agreement_no: str | None = None
    buyer: str | None = None  # masked
    signed_at: datetime | None = None
    ended_at: datetime | None = None
    kind: Literal["agreement"] = "agreement"


StartOutcome = SignLink | TechnicalError | Unknown
AgreementOutcome = AgreementState | NotFound | TechnicalError | Unknown


@dataclass(frozen=True)
class AgreementSigned:
    notify_id: str
    external_agreement_no: str
    agreement_no: str
    buyer: str  # masked
    signed_at: datetime
    valid_until: datetime | None = None


@dataclass(frozen=True)
class AgreementEnded:
    notify_id: str
    agreement_no: str
    external_agreement_no: str | None
    ended_at: datetime
    # Who ended it, as far as the channel says ("customer" when it does not).
    by: Literal["customer", "merchant", "channel"] = "customer"


@dataclass(frozen=True)
class ChargeNotice:
    notify_id: str
    idempotency_key: str
    amount: int
    currency: str
    outcome: Succeeded | Declined


@dataclass(frozen=True)
class RefundNotice:
    notify_id: str
    idempotency_key: str
    amount: int
    outcome: RefundSucceeded | RefundFailed


@dataclass(frozen=True)
class Ignored:
    """A verified notification the engine has no use for (e.g. a trade closed without payment)."""

    notify_id: str
    what: str


Notice = AgreementSigned | AgreementEnded | ChargeNotice | RefundNotice | Ignored


class NotificationRefused(Exception):
    """A notification that does not verify; the message says why (for the log, never for the sender)."""


@dataclass(frozen=True)
class NotifyReply:
    """The answer a channel expects to a notification (Alipay: the body `success`; WeChat Pay: 204)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


class ChannelGateway(Gateway, Protocol):
    """A channel adapter: a gateway (charge, retrieve, refund, retrieve_refund) plus agreements, notifications and
    the daily settlement listing."""

    async def start_agreement(self, terms: AgreementTerms) -> StartOutcome: ...

    async def retrieve_agreement(self, external_agreement_no: str) -> AgreementOutcome: ...

    async def end_agreement(self, agreement: AgreementInstrument) -> AgreementOutcome: ...

    async def read_notification(self, headers: Mapping[str, str], body: bytes) -> Notice: ...

    async def settlement(self, day: date) -> list[SettlementRow]: ...
