"""Payments, refunds and gateway statistics as the API shows them, and what POST /v1/refunds accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

# requires_review: held by the risk check until approved or refused (docs/risk.md); never charged meanwhile.
PaymentStatus = Literal["pending", "succeeded", "failed", "requires_review"]
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class PaymentCard(msgspec.Struct, kw_only=True):
    """The card a payment was made with, as the gateway reports it (brand and last 4 digits only)."""

    brand: str | None
    last4: str | None


class PaymentMethodDetails(msgspec.Struct, kw_only=True):
    """What was debited: a card (brand and last four), or a debit agreement of a channel (`card` is null)."""

    type: Literal["card", "alipay", "wechat_pay", "unionpay", "ecny"]
    card: PaymentCard | None


class Payment(msgspec.Struct, kw_only=True):
    """One attempt to collect money. `failure_message` is written for the customer, in their locale, and says
    what to do; `next_action` says the same for code: `update_payment_method` (hard decline or expired card),
    `retry_later` (soft decline or technical error), `wait` (the outcome is being confirmed; do not pay again)."""

    id: str
    object: Literal["payment"] = "payment"
    created_at: datetime
    amount: int
    currency: str
    status: PaymentStatus
    customer: str
    payment_method: str
    payment_method_details: PaymentMethodDetails
    invoice: str | None
    purpose: str
    attempt: int
    description: str | None
    gateway: str | None
    failure_code: str | None
    decline_type: Literal["soft", "hard"] | None
    failure_message: str | None
    next_action: str | None
    amount_refunded: int
    settled_at: datetime | None
    test_clock: str | None
    metadata: dict[str, str]


class PaymentList(ListResponse[Payment]):
    pass


class Refund(msgspec.Struct, kw_only=True):
    """Money given back from a succeeded payment, in full or in part."""

    id: str
    object: Literal["refund"] = "refund"
    created_at: datetime
    payment: str
    amount: int
    currency: str
    status: PaymentStatus
    reason: RefundReason | None
    gateway: str
    failure_code: str | None
    failure_message: str | None
    settled_at: datetime | None
    metadata: dict[str, str]


class RefundList(ListResponse[Refund]):
    pass


class RefundCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Refund a succeeded payment, in full (no amount) or in part; never more than what is left to refund."""

    payment: Annotated[str, Meta(max_length=64)]
    amount: (
        Annotated[int, Meta(gt=0, lt=10**15, description="Minor units; default: all that is left.")] | None
    ) = None
    reason: RefundReason | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class Latency(msgspec.Struct, kw_only=True):
    """Gateway answer times in milliseconds (null without attempts)."""

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None


class Circuit(msgspec.Struct, kw_only=True):
    """`open`: skipped (tried last) for new charges; `half_open`: the next charge probes it; `closed`: healthy."""

    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    last_failure_at: datetime | None
    last_failure_code: str | None


class ConnectionStats(msgspec.Struct, kw_only=True):
    """Charges through one connection in the window: outcomes, rates (0-1) and latency in milliseconds."""

    id: str
    type: str | None
    configured: bool
    charges: int
    succeeded: int
    declined: int
    technical_errors: int
    unknown: int
    success_rate: float | None
    authorization_rate: float | None
    latency_ms: Latency
    circuit: Circuit


class GatewayStats(msgspec.Struct, kw_only=True):
    """Per gateway connection: attempts, authorization rate, latency and circuit state since a time."""

    object: Literal["gateway_stats"] = "gateway_stats"
    since: datetime
    connections: list[ConnectionStats]
