"""Subscriptions as the API shows them, and what create, cancel, change, pause and resume accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.catalog.schemas import PriceOverrides
from billing.customers.schemas import Metadata
from billing.invoices.schemas import CollectionMethod

Id = Annotated[str, Meta(max_length=64)]
# billing.subscriptions.states.STATUSES, as the API shows them.
SubscriptionStatus = Literal[
    "trialing", "active", "past_due", "unpaid", "paused", "canceled", "incomplete", "incomplete_expired"
]
# A plan's id (plan_...) or its code.
PlanRef = Annotated[str, Meta(max_length=100)]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000)]


class PendingChange(msgspec.Struct, kw_only=True):
    """A plan or quantity change scheduled for the end of the current period."""

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
    """A customer's subscription to a plan: its status, current period and how it renews. trialing, active, past_due,
    unpaid, paused, canceled or incomplete."""

    id: str
    object: Literal["subscription"] = "subscription"
    created_at: datetime
    customer: str
    plan: str
    quantity: int
    items: list[SubscriptionItem]
    status: SubscriptionStatus
    collection_method: CollectionMethod
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
    price_overrides: Annotated[
        dict[str, Any] | None,
        Meta(
            description="This subscription's own prices for its plan, as stored: plan, and only what is "
            "overridden (amount_decimal, charges, minimum_commitment); null: the plan's prices."
        ),
    ] = None
    latest_invoice: str | None
    metadata: dict[str, str]


class SubscriptionList(ListResponse[Subscription]):
    pass


class SubscriptionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new subscription: the customer, the plan and how it is collected; a trial and a coupon are optional."""

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
    price_overrides: PriceOverrides | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class SubscriptionUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What can change on a subscription without a plan change: payment method, metadata and the like."""

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
    """How to cancel: now (with or without a prorated credit) or at the end of the period."""

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
    """A change of plan or quantity, prorated now or taking effect at the end of the period."""

    plan: PlanRef | None = None
    quantity: Quantity | None = None
    proration_behavior: Literal["create_prorations", "always_invoice", "none"] = "create_prorations"
    effective: Literal["now", "period_end"] = "now"
    price_overrides: Annotated[
        PriceOverrides | UnsetType | None,
        Meta(
            description="The subscription's own prices from now on (replacing any it had; null: back to the "
            "plan's prices), prorated like a plan change. Without it, a change to another plan drops the "
            "overrides and one to the same plan keeps them. Only with effective=now."
        ),
    ] = UNSET


class UpcomingInvoice(msgspec.Struct, kw_only=True):
    """The next invoice as the renewal would make it now: the customer balance applied, then the prepaid
    credits its finalization would burn."""

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
    prepaid_credit_amount: Annotated[
        int,
        Meta(
            description="The prepaid credits of the customer's wallet in this currency that finalizing the "
            "invoice at period_start would burn, as the wallet stands now (credits expiring before then left "
            "out); already taken off amount_due."
        ),
    ] = 0
    amount_due: int
