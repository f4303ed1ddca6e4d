"""Subscriptions as the API shows them, and what create, cancel, change, pause and resume accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

Id = Annotated[str, Meta(max_length=64)]
# A plan's id (plan_...) or its code.
PlanRef = Annotated[str, Meta(max_length=100)]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000)]


class PendingChange(msgspec.Struct, kw_only=True):
    plan: str
    quantity: int
    effective_at: datetime


CancellationReason = Literal[
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
]


class CancellationDetails(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Why the subscription was cancelled, as the customer said (the portal asks; the API may pass it on)."""

    reason: (
        Annotated[
            CancellationReason,
            Meta(
                description="too_expensive, missing_features, switched_service, unused, customer_service, "
                "too_complex, low_quality or other."
            ),
        ]
        | None
    ) = None
    comment: Annotated[str, Meta(max_length=1000, description="The customer's own words.")] | None = None


class SubscriptionItem(msgspec.Struct, kw_only=True):
    """One item of a subscription: the first is the subscription's own plan and quantity, the others add-ons."""

    id: str
    object: Literal["subscription_item"] = "subscription_item"
    subscription: str
    plan: str
    quantity: int
    created_at: datetime


class Subscription(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["subscription"] = "subscription"
    created_at: datetime
    customer: str
    plan: str
    quantity: int
    items: list[SubscriptionItem]
    status: str
    collection_method: str
    days_until_due: int | None
    default_payment_method: str | None
    billing_cycle_anchor: datetime
    current_period_start: datetime
    current_period_end: datetime
    trial_start: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    cancellation_details: CancellationDetails | None = None
    ended_at: datetime | None
    paused_at: datetime | None
    coupon: str | None
    tax_rates: list[str]
    pending_change: PendingChange | None
    latest_invoice: str | None
    metadata: dict[str, str]


class SubscriptionList(ListResponse[Subscription]):
    pass


class SubscriptionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    customer: Id
    plan: PlanRef
    quantity: Quantity = 1
    trial_period_days: Annotated[int, Meta(ge=0, le=730)] | None = None
    billing_cycle_anchor: datetime | None = None
    coupon: Id | None = None
    tax_rates: Annotated[list[Id], Meta(max_length=5)] = msgspec.field(default_factory=list)
    collection_method: Literal["charge_automatically", "send_invoice"] = "charge_automatically"
    days_until_due: Annotated[int, Meta(ge=0, le=365)] | None = None
    default_payment_method: Id | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class SubscriptionUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    metadata: Metadata | UnsetType = UNSET
    default_payment_method: Id | UnsetType | None = UNSET
    cancel_at_period_end: (
        Annotated[
            bool,
            Meta(
                description="false takes back a cancellation at the period end (the subscription renews as "
                "before, its cancellation_details cleared); true schedules one, like cancel with at_period_end."
            ),
        ]
        | UnsetType
    ) = UNSET


class SubscriptionCancel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    at_period_end: bool = False
    prorate: bool = False
    cancellation_details: CancellationDetails | None = None


class SubscriptionResume(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How a paused subscription resumes (docs/billing.md "Pause and resume")."""

    # unchanged: keep the calendar (nothing billed inside a paid period; after it, the rest of the current
    # period); now: a new billing cycle from today, invoiced at once.
    billing_cycle_anchor: Literal["unchanged", "now"] = "unchanged"
    # With `now` inside a paid period: credit the unused paid time on the resume invoice (create_prorations,
    # always_invoice), or not (none, refused there: it would bill that time twice). With `unchanged` after the
    # paid period: charge the rest of the current period (prorated), or nothing until the next renewal (none).
    proration_behavior: Literal["create_prorations", "always_invoice", "none"] = "create_prorations"


class SubscriptionChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    plan: PlanRef | None = None
    quantity: Quantity | None = None
    proration_behavior: Literal["create_prorations", "always_invoice", "none"] = "create_prorations"
    effective: Literal["now", "period_end"] = "now"


class UpcomingInvoice(msgspec.Struct, kw_only=True):
    """The next invoice exactly as the renewal would make it, before the customer balance is applied."""

    object: Literal["upcoming_invoice"] = "upcoming_invoice"
    subscription: str
    customer: str
    currency: str
    period_start: datetime
    period_end: datetime
    lines: list[dict[str, Any]]
    subtotal: int
    discount: int
    tax: int
    total: int
    starting_balance: int
    amount_due: int
